// SPDX-License-Identifier: GPL-2.0

//! Block I/O on a lower device (synchronous, or a read the caller waits for later),
//! for the threads that resync and apply replicated writes.

use crate::dm::DmDev;
use crate::rcore::geometry::SECTOR_SHIFT;
use core::ptr;
use core::sync::atomic::{AtomicI32, Ordering};
use kernel::alloc::allocator::Vmalloc;
use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::Completion;

/// Largest single I/O: 256 pages, the most one bio holds.
pub(crate) const MAX_IO: usize = 1 << 20;

/// `GFP_NOIO`: may sleep to reclaim memory, but never by starting I/O (we are in the
/// I/O path). The kernel crate has no constant for it.
pub(crate) const GFP_NOIO: bindings::gfp_t =
    (1 << bindings::___GFP_DIRECT_RECLAIM_BIT) | (1 << bindings::___GFP_KSWAPD_RECLAIM_BIT);

/// A lower block device used from engine threads.
///
/// Invariant: the device stays open while this exists (the target that owns the
/// `DmDev` stops every engine thread before releasing it).
#[derive(Clone, Copy)]
pub(crate) struct Bdev {
    raw: *mut bindings::block_device,
}

// SAFETY: a block device may be used from any thread while it is open.
unsafe impl Send for Bdev {}
// SAFETY: as above.
unsafe impl Sync for Bdev {}

/// rcopy's own bio set, for the engine threads' I/O (metadata, resync reads, applied
/// writes). Not `fs_bio_set`: filesystems above rcopy allocate from that one, and a
/// thread completing their writes must not wait for bios they hold. Its mempool
/// reserve means an allocation (`GFP_NOIO`) always ends, at worst once one of our
/// own bios completes. One per module; every device shares it.
pub(crate) struct BioSet {
    bs: KBox<bindings::bio_set>,
}

// SAFETY: the bio set is used only through the kernel's bio API, which locks what it
// shares; dropping it (`bioset_exit`) from another thread is allowed.
unsafe impl Send for BioSet {}
// SAFETY: `&BioSet` gives no access to the bio set.
unsafe impl Sync for BioSet {}

/// The registered [`BioSet`], null before module init and after module exit.
static BIOSET: core::sync::atomic::AtomicPtr<bindings::bio_set> =
    core::sync::atomic::AtomicPtr::new(ptr::null_mut());

impl BioSet {
    /// Bios kept in reserve.
    const POOL: u32 = 16;

    /// Creates the module's bio set and makes it the one engine I/O uses.
    pub(crate) fn new() -> Result<Self> {
        let mut bs = KBox::new(bindings::bio_set::default(), GFP_KERNEL)?;
        // SAFETY: `bs` is zeroed memory that will not move (boxed) until
        // `bioset_exit` in `drop`.
        errno(unsafe {
            bindings::bioset_init(&mut *bs, Self::POOL, 0, bindings::BIOSET_NEED_BVECS as i32)
        })?;
        BIOSET.store(&mut *bs, core::sync::atomic::Ordering::Release);
        Ok(Self { bs })
    }
}

impl Drop for BioSet {
    fn drop(&mut self) {
        BIOSET.store(ptr::null_mut(), core::sync::atomic::Ordering::Release);
        // SAFETY: initialised in `new`; no device exists at module exit, so no bio
        // from it is in flight.
        unsafe { bindings::bioset_exit(&mut *self.bs) };
    }
}

/// The bio set for engine I/O: rcopy's own, or `fs_bio_set` before it exists.
fn bioset() -> *mut bindings::bio_set {
    let p = BIOSET.load(core::sync::atomic::Ordering::Acquire);
    if p.is_null() {
        &raw mut bindings::fs_bio_set
    } else {
        p
    }
}

/// A page-aligned buffer for synchronous I/O and network transfers.
pub(crate) type IoBuf = Vec<u8, Vmalloc>;

/// A zeroed [`IoBuf`] of `len` bytes.
pub(crate) fn iobuf(len: usize) -> Result<IoBuf> {
    let mut v = IoBuf::with_capacity(len, GFP_KERNEL)?;
    v.resize(len, 0, GFP_KERNEL)?;
    Ok(v)
}

fn errno(ret: i32) -> Result {
    if ret < 0 {
        Err(Error::from_errno(ret))
    } else {
        Ok(())
    }
}

impl Bdev {
    /// The device of an open `DmDev`.
    ///
    /// # Safety
    ///
    /// The caller must keep `dev` open while the result (or a copy) is used.
    pub(crate) unsafe fn new(dev: &DmDev) -> Bdev {
        Bdev { raw: dev.bdev() }
    }

    /// The device number.
    pub(crate) fn devt(&self) -> u32 {
        // SAFETY: the device is open while `self` is used (the `new` contract).
        unsafe { (*self.raw).bd_dev }
    }

    /// Reads or writes `buf` (at most [`MAX_IO`] bytes of an [`IoBuf`]) at `sector`.
    fn rw(&self, sector: u64, buf: *mut u8, len: usize, opf: u32) -> Result {
        if len == 0 || len > MAX_IO {
            return Err(EINVAL);
        }
        let pages = len.div_ceil(4096) as u16;
        // SAFETY: `bioset()` is initialised (ours, or the kernel's general one); the
        // device is open.
        let bio = unsafe { bindings::bio_alloc_bioset(self.raw, pages, opf, GFP_NOIO, bioset()) };
        if bio.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: `bio` is ours; `buf` is vmalloc memory of `len` bytes that outlives
        // the synchronous I/O below.
        let r = unsafe {
            (*bio).bi_iter.bi_sector = sector;
            if bindings::bio_add_vmalloc(bio, buf.cast(), len as u32) {
                errno(bindings::submit_bio_wait(bio))
            } else {
                Err(EIO)
            }
        };
        // SAFETY: the bio is complete (or was never submitted) and ours to free.
        unsafe { bindings::bio_put(bio) };
        r
    }

    /// Writes the first `len` bytes of `buf` at `sector`, with FUA and a preceding
    /// flush as asked.
    pub(crate) fn write(
        &self,
        sector: u64,
        buf: &mut IoBuf,
        len: usize,
        fua: bool,
        preflush: bool,
    ) -> Result {
        if len > buf.len() {
            return Err(EINVAL);
        }
        let mut opf = bindings::req_op_REQ_OP_WRITE | (1 << bindings::req_flag_bits___REQ_SYNC);
        if fua {
            opf |= 1 << bindings::req_flag_bits___REQ_FUA;
        }
        if preflush {
            opf |= 1 << bindings::req_flag_bits___REQ_PREFLUSH;
        }
        self.rw(sector, buf.as_mut_ptr(), len, opf)
    }

    /// Submits a write of `len` bytes at `buf` to `sector` without waiting:
    /// `end_io(bio)` runs at completion (any context, usually interrupt) with
    /// `private` in the bio's `bi_private`, and must put the bio.
    ///
    /// # Safety
    ///
    /// `buf` must be `len` bytes of vmalloc memory that stays valid and unchanged,
    /// and `private` valid, until `end_io` has run.
    pub(crate) unsafe fn submit_write(
        &self,
        sector: u64,
        buf: *mut u8,
        len: usize,
        private: *mut core::ffi::c_void,
        end_io: unsafe extern "C" fn(*mut bindings::bio),
    ) -> Result {
        let opf = bindings::req_op_REQ_OP_WRITE | (1 << bindings::req_flag_bits___REQ_SYNC);
        // SAFETY: the caller's contract is `submit`'s.
        unsafe { self.submit(opf, sector, buf, len, private, end_io) }
    }

    /// Submits a bio of `opf` for `len` bytes at `buf` and `sector`; see
    /// [`Bdev::submit_write`].
    ///
    /// # Safety
    ///
    /// `buf` must be `len` bytes of vmalloc memory that stays valid (and unchanged
    /// for a write, unaliased for a read), and `private` valid, until `end_io` has
    /// run.
    unsafe fn submit(
        &self,
        opf: u32,
        sector: u64,
        buf: *mut u8,
        len: usize,
        private: *mut core::ffi::c_void,
        end_io: unsafe extern "C" fn(*mut bindings::bio),
    ) -> Result {
        if len == 0 || len > MAX_IO {
            return Err(EINVAL);
        }
        let pages = len.div_ceil(4096) as u16;
        // SAFETY: `bioset()` is initialised; the device is open.
        let bio = unsafe { bindings::bio_alloc_bioset(self.raw, pages, opf, GFP_NOIO, bioset()) };
        if bio.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: `bio` is ours until submitted; `buf` and `private` stay valid until
        // `end_io` (the caller's contract), which puts the bio.
        unsafe {
            (*bio).bi_iter.bi_sector = sector;
            if !bindings::bio_add_vmalloc(bio, buf.cast(), len as u32) {
                bindings::bio_put(bio);
                return Err(EIO);
            }
            (*bio).bi_private = private;
            (*bio).bi_end_io = Some(end_io);
            bindings::submit_bio(bio);
        }
        Ok(())
    }

    /// Starts reading `len` bytes at `sector` into the front of `buf`, and returns
    /// at once: [`PendingRead::wait`] waits for the data and gives the buffer back.
    ///
    /// Context: an rcopy thread (may sleep to allocate; `PF_MEMALLOC_NOIO` set).
    pub(crate) fn read_async<'a>(
        &self,
        sector: u64,
        buf: &'a mut IoBuf,
        len: usize,
    ) -> Result<PendingRead<'a>> {
        if len > buf.len() {
            return Err(EINVAL);
        }
        let done = KBox::pin_init(
            pin_init!(ReadDone {
                done <- Completion::new(),
                errno: AtomicI32::new(0),
            }),
            // NOIO in effect: rcopy's threads run with `PF_MEMALLOC_NOIO` (`kthread.rs`).
            GFP_KERNEL,
        )?;
        let private = ptr::from_ref::<ReadDone>(&done).cast_mut().cast();
        // SAFETY: `buf` is vmalloc memory of at least `len` bytes, borrowed mutably by
        // the result until `wait` (or drop) has seen the completion; `done` is pinned
        // in the result, which frees it only after that (see `PendingRead`).
        unsafe {
            self.submit(
                bindings::req_op_REQ_OP_READ,
                sector,
                buf.as_mut_ptr(),
                len,
                private,
                end_read,
            )?;
        }
        Ok(PendingRead {
            done,
            buf: Some(buf),
        })
    }

    /// Reads `len` bytes at `sector` into the front of `buf`.
    pub(crate) fn read(&self, sector: u64, buf: &mut IoBuf, len: usize) -> Result {
        if len > buf.len() {
            return Err(EINVAL);
        }
        self.rw(sector, buf.as_mut_ptr(), len, bindings::req_op_REQ_OP_READ)
    }

    /// Flushes the device's volatile cache.
    pub(crate) fn flush(&self) -> Result {
        // SAFETY: the device is open (type invariant).
        errno(unsafe { bindings::blkdev_issue_flush(self.raw) })
    }

    /// Discards `nr` sectors at `sector`.
    pub(crate) fn discard(&self, sector: u64, nr: u64) -> Result {
        // SAFETY: the device is open (type invariant).
        errno(unsafe { bindings::blkdev_issue_discard(self.raw, sector, nr, GFP_NOIO) })
    }

    /// Zeroes `nr` sectors at `sector`.
    pub(crate) fn zeroout(&self, sector: u64, nr: u64) -> Result {
        // SAFETY: the device is open (type invariant).
        errno(unsafe { bindings::blkdev_issue_zeroout(self.raw, sector, nr, GFP_NOIO, 0) })
    }
}

/// Copies `len` bytes from byte `from` of `src` to byte `to` of `dst`, a chunk
/// (`chunk`'s length) at a time; each write with FUA if `fua`. Process context.
pub(crate) fn copy(
    src: &Bdev,
    from: u64,
    dst: &Bdev,
    to: u64,
    len: u64,
    chunk: &mut IoBuf,
    fua: bool,
) -> Result {
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(chunk.len() as u64) as usize;
        src.read((from + done) >> SECTOR_SHIFT, chunk, n)?;
        dst.write((to + done) >> SECTOR_SHIFT, chunk, n, fua, false)?;
        done += n as u64;
    }
    Ok(())
}

/// Where an asynchronous read reports its end.
#[pin_data]
struct ReadDone {
    #[pin]
    done: Completion,
    /// The read's result: 0 or a negative errno, set before `done` completes.
    errno: AtomicI32,
}

/// A read [`Bdev::read_async`] started into a borrowed buffer.
///
/// Invariant: the bio's `bi_private` is `done`, and the bio reads into `buf`; both
/// stay valid until `done` completes, which `wait` and `drop` wait for. (The borrow
/// only ends through one of them: the crate never forgets a `PendingRead`.)
pub(crate) struct PendingRead<'a> {
    done: Pin<KBox<ReadDone>>,
    buf: Option<&'a mut IoBuf>,
}

impl<'a> PendingRead<'a> {
    /// Waits for the read; returns its result and the buffer.
    ///
    /// Context: process context; sleeps.
    pub(crate) fn wait(mut self) -> (Result, Option<&'a mut IoBuf>) {
        self.done.done.wait_for_completion();
        let r = errno(self.done.errno.load(Ordering::Acquire));
        (r, self.buf.take())
    }
}

impl Drop for PendingRead<'_> {
    fn drop(&mut self) {
        // The bio may still write into the buffer and signal `done`: wait for it
        // (at once if `wait` already did: the completion stays done).
        self.done.done.wait_for_completion();
    }
}

/// An asynchronous read's bio completed (any context, usually interrupt).
///
/// # Safety
///
/// `bio` is one [`Bdev::read_async`] submitted: `bi_private` is its live `ReadDone`.
unsafe extern "C" fn end_read(bio: *mut bindings::bio) {
    // SAFETY: per the contract, `bi_private` is the `ReadDone` its `PendingRead`
    // keeps until `done` completes, which happens last below.
    let done = unsafe { &*(*bio).bi_private.cast::<ReadDone>() };
    // SAFETY: the bio is ours and complete; not used below.
    let e = unsafe { put_completed(bio) };
    done.errno.store(e, Ordering::Release);
    // After this the waiter may free `done`: it returns only once `complete_all`
    // released the completion's lock, and nothing here touches `done` afterwards.
    done.done.complete_all();
}

/// Puts a completed bio; returns the errno it ended with (0 or negative).
///
/// # Safety
///
/// `bio` is a completed bio the caller owns (in its `bi_end_io`), not used after.
pub(crate) unsafe fn put_completed(bio: *mut bindings::bio) -> i32 {
    // SAFETY: the bio is live until the `bio_put` below (the caller's contract).
    let status = unsafe { (*bio).bi_status };
    let errno = if status != 0 {
        // SAFETY: a plain conversion of the bio's status.
        unsafe { bindings::blk_status_to_errno(status) }
    } else {
        0
    };
    // SAFETY: the bio is the caller's and complete.
    unsafe { bindings::bio_put(bio) };
    errno
}
