// SPDX-License-Identifier: GPL-2.0

//! Kernel threads that run a function over shared state until they are stopped.

use core::fmt;
use kernel::bindings;
use kernel::ffi;
use kernel::prelude::*;
use kernel::str::CStrExt;
use kernel::sync::Arc;

/// What a thread runs: the function and the state it shares with its owner.
struct Start<T: Send + Sync + 'static> {
    state: Arc<T>,
    run: fn(&Arc<T>),
}

/// A running kernel thread. Dropping it stops it (`kthread_stop`) and waits for it.
///
/// Invariant: `task` is a thread made by [`Thread::spawn`] that does not exit before
/// `kthread_stop` is called on it, so the task stays valid until then. `start` is
/// the `Start<T>` handed to it and `free` drops one: the thread takes it when its
/// function starts, and if it is stopped before that (the kernel then never calls
/// the function), `Drop` frees it.
pub(crate) struct Thread {
    task: *mut bindings::task_struct,
    start: *mut ffi::c_void,
    free: unsafe fn(*mut ffi::c_void),
}

/// Drops a `Start<T>` that its thread never took.
///
/// # Safety
///
/// `data` comes from `KBox::into_raw` of a `Start<T>` that nothing else owns.
unsafe fn free_start<T: Send + Sync + 'static>(data: *mut ffi::c_void) {
    // SAFETY: guaranteed by the caller.
    drop(unsafe { KBox::from_raw(data.cast::<Start<T>>()) });
}

// SAFETY: `kthread_stop` may be called from any thread.
unsafe impl Send for Thread {}
// SAFETY: `&Thread` exposes nothing.
unsafe impl Sync for Thread {}

/// # Safety
///
/// `data` must come from `KBox::into_raw` of a `Start<T>` in [`Thread::spawn`].
unsafe extern "C" fn thread_main<T: Send + Sync + 'static>(data: *mut ffi::c_void) -> ffi::c_int {
    // SAFETY: guaranteed by the caller; the box is taken exactly once, here.
    let start = unsafe { KBox::from_raw(data.cast::<Start<T>>()) };
    // Every rcopy thread sits in the I/O path (the link threads complete writes, the
    // metadata thread releases them): its allocations must never wait for I/O that
    // waits for it. This is `memalloc_noio_save()`, for the whole life of the thread.
    // SAFETY: `get_current()` is this running task; only the task itself changes
    // its `PF_MEMALLOC_*` flags.
    unsafe { (*bindings::get_current()).flags |= bindings::PF_MEMALLOC_NOIO };
    (start.run)(&start.state);
    drop(start);
    // Never exit before `kthread_stop`: the owner's `Drop` relies on the task existing.
    while !should_stop() {
        // SAFETY: plain sleep of the current thread; `kthread_stop` wakes it.
        unsafe { bindings::schedule_timeout_interruptible(bindings::HZ as isize) };
    }
    0
}

/// Whether the current kernel thread has been asked to stop.
pub(crate) fn should_stop() -> bool {
    // SAFETY: only called from threads made by `Thread::spawn`.
    unsafe { bindings::kthread_should_stop() }
}

/// Milliseconds as jiffies.
pub(crate) fn jiffies(ms: u32) -> kernel::time::Jiffies {
    // SAFETY: a pure conversion.
    unsafe { bindings::__msecs_to_jiffies(ms) }
}

/// Sleeps for up to `ms` milliseconds; any wake-up (`wake_up_process`) ends it early.
pub(crate) fn nap_ms(ms: u32) {
    // SAFETY: a plain sleep of the current thread.
    unsafe { bindings::schedule_timeout_interruptible(jiffies(ms) as isize) };
}

/// Sleeps for `ms` milliseconds or until the thread is woken to stop.
pub(crate) fn sleep_ms(ms: u32) {
    // SAFETY: sleeping in thread context is allowed; a wake-up ends it early.
    unsafe { bindings::msleep_interruptible(ms) };
}

impl Thread {
    /// Starts a thread named `name` running `run(&state)`; `run` must return soon after
    /// [`should_stop`] becomes true.
    pub(crate) fn spawn<T: Send + Sync + 'static>(
        name: fmt::Arguments<'_>,
        state: Arc<T>,
        run: fn(&Arc<T>),
    ) -> Result<Thread> {
        let mut buf = [0u8; 16];
        let mut w = crate::rcore::fmtbuf::BufWriter::new(&mut buf[..15]);
        // A name longer than TASK_COMM_LEN is cut, as the kernel would.
        let _ = fmt::Write::write_fmt(&mut w, name);
        let len = w.len();
        let name = CStr::from_bytes_with_nul(&buf[..=len]).map_err(|_| EINVAL)?;
        let start = KBox::new(Start { state, run }, GFP_KERNEL)?;
        let data = KBox::into_raw(start).cast::<ffi::c_void>();
        // SAFETY: `thread_main::<T>` takes ownership of `data`; `"%s"` with a
        // NUL-terminated string is a valid format.
        let task = unsafe {
            bindings::kthread_create_on_node(
                Some(thread_main::<T>),
                data,
                bindings::NUMA_NO_NODE,
                c"%s".as_char_ptr(),
                name.as_char_ptr(),
            )
        };
        if task.is_null() || (task as usize) >= usize::MAX - 4095 {
            // SAFETY: the thread was not created, so `data` is still ours.
            drop(unsafe { KBox::from_raw(data.cast::<Start<T>>()) });
            return Err(Error::from_errno(task as isize as i32));
        }
        // SAFETY: `task` is a new, not yet started kthread.
        unsafe { bindings::wake_up_process(task) };
        Ok(Thread {
            task,
            start: data,
            free: free_start::<T>,
        })
    }
}

impl Thread {
    /// The thread's task, to wake it with `wake_up_process`.
    pub(crate) fn task(&self) -> *mut bindings::task_struct {
        self.task
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        // SAFETY: the task is valid until this call (type invariant).
        let r = unsafe { bindings::kthread_stop(self.task) };
        // `thread_main` always returns 0; -EINTR means the kernel stopped the thread
        // before calling it, so it never took its state (whose `Arc` would leak,
        // with everything it holds: seen with connections that ended at once).
        if r == -(bindings::EINTR as i32) {
            // SAFETY: `thread_main` never ran, so `start` is still unowned (type
            // invariant), and the thread is gone.
            unsafe { (self.free)(self.start) };
        }
    }
}
