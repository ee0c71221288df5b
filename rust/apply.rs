// SPDX-License-Identifier: GPL-2.0

//! The secondary's parallel apply: plain writes go to the disk concurrently, as far
//! as the primary's dependency numbers allow (`rcore::order`).
//!
//! Each WRITE carries `seq` and `dep`: every write that completed on the primary
//! before this one was issued has a seq `<= dep` (the primary also holds a write that
//! overlaps one in flight until that one completes, so overlaps are such edges). A
//! write is submitted once every write `<= dep` is applied here ([`ApplyGate`]), so
//! the set of writes on this disk is always one the primary's disk could have held
//! after a crash (the prefix tests check it: QMP stop, kill, an ordered writer).
//!
//! Everything that is not a plain data write first waits until every earlier write
//! is applied ([`Applier::drain`]) and is then handled in order, one at a time, as
//! before: flushes, PREFLUSH and FUA writes (their durable ACK covers everything
//! before them), markers, discards and zeroes, state changes, COPY_DONE.
//!
//! Acknowledgements: writes complete out of order; a separate thread (`rcopy-ack`)
//! sends an ACK for the applied prefix whenever it grows (an ACK covers every seq up
//! to it, as the primary reads it). A write that fails stops the prefix below it; the
//! serve thread reports it (an ACK with the errno) and closes the connection.
//!
//! Memory: [`SLOTS`] receive buffers of one frame each (1 MiB), per connection.
//!
//! What if the machine dies here: the disk holds a set of writes closed under
//! happens-before (writes in flight land or not, as on the primary's disk); the
//! primary resyncs whatever it did not see acknowledged as durable. The disk loses its
//! volatile cache: only what a durable ACK covered was flushed, and the primary
//! keeps the rest marked. The link drops: the serve thread stops receiving, waits
//! for the writes in flight, and stops the acker before the buffers go.
//!
//! Locking: [`ApplyInner`] is behind an irq-safe spinlock, taken by the serve thread,
//! the acker and bio completions (interrupt context); it is never held across I/O or
//! while taking another lock. `cv` is signalled whenever it changes.

use crate::blk::{self, IoBuf};
use crate::engine::Pair;
use crate::kthread::{self, Thread};
use crate::link::Link;
use crate::rcore::geometry;
use crate::rcore::order::ApplyGate;
use crate::rcore::proto::{self, Header};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::{Arc, CondVar, SpinLockIrq};

/// Writes (and frames) in flight at most: receive buffers per connection.
pub(crate) const SLOTS: usize = 8;

/// The gate's window: 256 sequence numbers past the applied prefix.
type Gate = ApplyGate<4>;

/// What the serve thread, the acker and bio completions share.
struct ApplyInner {
    /// `None` until the first write of the connection sets its base.
    gate: Option<Gate>,
    /// Which slots hold a frame (bit per slot).
    busy: u32,
    /// Writes submitted and not completed.
    inflight: u32,
    /// The first write that failed: (seq, errno).
    failed: Option<(u64, i32)>,
    /// The prefix last acknowledged by the acker (or the serve thread).
    acked: u64,
    /// The connection is over: the acker exits.
    done: bool,
}

/// One receive buffer, and the write it carries while in flight.
struct Slot {
    /// Written only by the serve thread while the slot is free (its `busy` bit
    /// clear); read by the disk while the write is in flight.
    buf: UnsafeCell<IoBuf>,
    seq: AtomicU64,
    /// The [`ApplyShared`] this slot belongs to, for the completion.
    owner: AtomicPtr<ApplyShared>,
    /// Its index in `slots` (its bit in `busy`).
    index: usize,
}

/// The state of one connection's apply.
#[pin_data]
pub(crate) struct ApplyShared {
    #[pin]
    inner: SpinLockIrq<ApplyInner>,
    #[pin]
    cv: CondVar,
    slots: KVec<Slot>,
    link: Arc<Link>,
}

// SAFETY: the slots' buffers are touched by one party at a time: the serve thread
// while the slot is free (its `busy` bit, under `inner`), the block layer while its
// write is in flight; everything else is atomics or behind `inner`.
unsafe impl Sync for ApplyShared {}
// SAFETY: as above; the buffers are plain memory.
unsafe impl Send for ApplyShared {}

/// A received frame, in slot `i`'s buffer.
pub(crate) struct Frame {
    pub(crate) h: Header,
    slot: usize,
}

/// The serve thread's handle: the shared state and the acker thread.
pub(crate) struct Applier {
    shared: Arc<ApplyShared>,
    acker: Option<Thread>,
}

impl Applier {
    /// Allocates the buffers and starts the acker for `link`. Thread context.
    pub(crate) fn new(name: &str, link: &Arc<Link>) -> Result<Applier> {
        let mut slots = KVec::with_capacity(SLOTS, GFP_KERNEL)?;
        for index in 0..SLOTS {
            slots.push(
                Slot {
                    buf: UnsafeCell::new(blk::iobuf(proto::MAX_PAYLOAD as usize)?),
                    seq: AtomicU64::new(0),
                    owner: AtomicPtr::new(core::ptr::null_mut()),
                    index,
                },
                GFP_KERNEL,
            )?;
        }
        let shared = Arc::pin_init(
            pin_init!(ApplyShared {
                inner <- kernel::new_spinlock_irq!(ApplyInner {
                    gate: None,
                    busy: 0,
                    inflight: 0,
                    failed: None,
                    acked: 0,
                    done: false,
                }),
                cv <- kernel::new_condvar!(),
                slots,
                link: link.clone(),
            }),
            GFP_KERNEL,
        )?;
        let owner = core::ptr::from_ref::<ApplyShared>(&shared).cast_mut();
        for s in shared.slots.iter() {
            s.owner.store(owner, Ordering::Release);
        }
        let acker = Thread::spawn(format_args!("rcopy-ack-{name}"), shared.clone(), acker_main)?;
        Ok(Applier {
            shared,
            acker: Some(acker),
        })
    }

    /// Receives the next frame into a free slot (waiting for one). Thread context.
    pub(crate) fn recv(&self) -> Result<Frame, crate::link::LinkError> {
        let sh = &*self.shared;
        let slot = {
            let mut g = sh.inner.lock();
            loop {
                let free = (!g.busy).trailing_zeros() as usize;
                if free < SLOTS {
                    g.busy |= 1 << free;
                    break free;
                }
                sh.cv.wait(&mut g);
            }
        };
        // SAFETY: the slot's busy bit is ours: no write of it is in flight and no
        // one else touches its buffer until we clear the bit.
        let buf = unsafe { &mut *sh.slot(slot).buf.get() };
        match sh.link.recv(buf) {
            Ok(h) => Ok(Frame { h, slot }),
            Err(e) => {
                sh.release(slot);
                Err(e)
            }
        }
    }

    /// The payload of `f` (while `f` is held). Thread context.
    pub(crate) fn buf<'a>(&'a self, f: &'a mut Frame) -> &'a mut IoBuf {
        // SAFETY: the frame's slot is busy and not submitted: the serve thread (the
        // caller, holding `f`) is its only user.
        unsafe { &mut *self.shared.slot(f.slot).buf.get() }
    }

    /// Done with a frame handled synchronously: its slot is free again.
    pub(crate) fn release(&self, f: Frame) {
        self.shared.release(f.slot);
    }

    /// Takes write `seq` (dependency `dep`) into the gate, waiting for room in its
    /// window; a gap in the sequence numbers (not sent by this protocol version)
    /// drains and starts the window again. Returns the first failure, if any.
    fn admit(&self, seq: u64, dep: u64) -> Result<(), (u64, i32)> {
        let sh = &*self.shared;
        let mut g = sh.inner.lock();
        loop {
            if let Some(f) = g.failed {
                return Err(f);
            }
            match &g.gate {
                Some(gate) if gate.received().checked_add(1) == Some(seq) => {
                    if gate.has_room() {
                        break;
                    }
                }
                Some(_) if g.inflight > 0 => {}
                _ => {
                    // First write, or a gap once everything is applied.
                    g.gate = Some(Gate::with_base(seq - 1));
                    g.acked = g.acked.max(seq - 1);
                    break;
                }
            }
            sh.cv.wait(&mut g);
        }
        if let Some(gate) = g.gate.as_mut() {
            // Cannot fail: next in order, room checked, and the caller checked
            // `dep < seq`.
            let _ = gate.receive(seq, dep.min(seq - 1));
        }
        Ok(())
    }

    /// Marks write `seq` applied (handled synchronously by the serve thread, which
    /// sent its ACK itself: the acker does not repeat it).
    pub(crate) fn applied(&self, seq: u64) {
        let mut g = self.shared.inner.lock();
        if let Some(gate) = g.gate.as_mut() {
            let _ = gate.applied(seq);
            if gate.prefix() == seq {
                g.acked = g.acked.max(seq);
            }
        }
        drop(g);
        self.shared.cv.notify_all();
    }

    /// Waits until every received write is applied (or one failed: returned).
    /// Thread context.
    pub(crate) fn drain(&self) -> Result<(), (u64, i32)> {
        let sh = &*self.shared;
        let mut g = sh.inner.lock();
        loop {
            if let Some(f) = g.failed {
                return Err(f);
            }
            if g.inflight == 0 {
                return Ok(());
            }
            sh.cv.wait(&mut g);
        }
    }

    /// Takes write `h` into the gate, for a frame handled synchronously after
    /// [`Self::drain`] (so everything before it is applied).
    pub(crate) fn admit_sync(&self, h: &Header) -> Result<(), (u64, i32)> {
        self.admit(h.seq, h.seq - 1)
    }

    /// Submits plain write `f` once its dependencies are applied; its slot stays
    /// busy until the write completes. Returns the first failure, if any (the frame
    /// is then dropped, never submitted). Thread context.
    pub(crate) fn submit(&self, p: &Pair, f: Frame) -> Result<(), (u64, i32)> {
        let (seq, dep) = (f.h.seq, f.h.b);
        if let Err(e) = self.admit(seq, dep) {
            self.release(f);
            return Err(e);
        }
        let sh = &*self.shared;
        {
            let mut g = sh.inner.lock();
            loop {
                if let Some(e) = g.failed {
                    drop(g);
                    self.release(f);
                    return Err(e);
                }
                if g.gate.as_ref().is_some_and(|gate| gate.may_submit(dep)) {
                    break;
                }
                sh.cv.wait(&mut g);
            }
            g.inflight += 1;
        }
        let nr = u64::from(f.h.nr_sectors);
        if let Some(st) = &p.store {
            let tracks = geometry::track_range(f.h.a << 9, nr << 9, p.cfg.track_size);
            st.before_write(tracks, p.name());
        }
        let slot = sh.slot(f.slot);
        slot.seq.store(seq, Ordering::Relaxed);
        // SAFETY: the buffer (busy slot) stays untouched until `end_write` runs for
        // this bio; `slot` lives in `shared`, which outlives every write in flight
        // (dropping the `Applier` waits for them).
        let r = unsafe {
            p.data.submit_write(
                f.h.a,
                (*slot.buf.get()).as_mut_ptr(),
                f.h.len as usize,
                core::ptr::from_ref::<Slot>(slot).cast_mut().cast(),
                end_write,
            )
        };
        if let Err(e) = r {
            // Never submitted: completes as a failure now.
            sh.completed(f.slot, seq, e.to_errno());
        }
        Ok(())
    }
}

impl Drop for Applier {
    /// The connection is over: waits for the writes in flight (their buffers are
    /// about to go), stops the acker. Thread context.
    fn drop(&mut self) {
        let sh = &*self.shared;
        let mut g = sh.inner.lock();
        while g.inflight > 0 {
            sh.cv.wait(&mut g);
        }
        g.done = true;
        drop(g);
        sh.cv.notify_all();
        drop(self.acker.take());
    }
}

impl ApplyShared {
    fn slot(&self, i: usize) -> &Slot {
        // The index always comes from `busy`'s bits below SLOTS.
        &self.slots[i.min(SLOTS - 1)]
    }

    fn release(&self, slot: usize) {
        self.inner.lock().busy &= !(1 << slot);
        self.cv.notify_all();
    }

    /// Write `seq` in `slot` completed with `errno` (0: done). Any context.
    fn completed(&self, slot: usize, seq: u64, errno: i32) {
        let mut g = self.inner.lock();
        if errno != 0 {
            if g.failed.is_none_or(|(s, _)| s > seq) {
                g.failed = Some((seq, errno));
            }
        } else if let Some(gate) = g.gate.as_mut() {
            let _ = gate.applied(seq);
        }
        g.inflight -= 1;
        g.busy &= !(1 << slot);
        drop(g);
        self.cv.notify_all();
    }
}

/// A write's bio completed (interrupt context).
///
/// # Safety
///
/// `bio` is one [`Applier::submit`] submitted: its `bi_private` points to a slot of
/// a live [`ApplyShared`].
unsafe extern "C" fn end_write(bio: *mut bindings::bio) {
    // SAFETY: per the contract, `bi_private` is a slot of a live `ApplyShared`,
    // which dropping the `Applier` keeps alive until this completion has run.
    let slot = unsafe { &*(*bio).bi_private.cast::<Slot>() };
    // SAFETY: the bio is ours and complete; not used below.
    let errno = unsafe { blk::put_completed(bio) };
    // SAFETY: set before any write was submitted; the owner outlives its writes.
    let sh = unsafe { &*slot.owner.load(Ordering::Acquire) };
    sh.completed(slot.index, slot.seq.load(Ordering::Relaxed), errno);
}

/// Sends an ACK for the applied prefix whenever it grows, until the connection is
/// over.
///
/// Context: its own thread, one per connection.
fn acker_main(sh: &Arc<ApplyShared>) {
    loop {
        let mut g = sh.inner.lock();
        let prefix = g.gate.as_ref().map_or(g.acked, |gate| gate.prefix());
        if prefix <= g.acked {
            if g.done || kthread::should_stop() {
                return;
            }
            let _ = sh
                .cv
                .wait_interruptible_timeout(&mut g, kthread::jiffies(100));
            continue;
        }
        g.acked = prefix;
        drop(g);
        if sh.link.send(&Header::ack(prefix, 0, 0), &[]).is_err() {
            return;
        }
    }
}
