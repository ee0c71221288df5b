// SPDX-License-Identifier: GPL-2.0

//! One side of a replicated pair: the bio path, the transfer log, lifecycle and status.
//!
//! Primary: `map` copies each write into an [`Entry`] of the transfer log (a ring in
//! sequence order) while the local write goes down in parallel; `primary.rs` ships
//! entries in order and copies dirty tracks when the log is idle. An entry is kept
//! until the peer confirms it *durable* (an ACK with `ACK_DURABLE`, which the peer
//! sends after a flush covering it): host flushes travel as such, and the sender adds
//! a barrier (an empty flush) when entries wait unconfirmed. When the link drops,
//! every unconfirmed entry's tracks are marked. In sync mode a write completes when
//! both its local write and the peer's ACK are done; a flush or FUA write waits for
//! the durable ACK. In async mode a write (and a host flush) completes when local.
//!
//! A write shipped while connected first takes its extents in the activity log
//! (`activity.rs`); one that cannot be shipped (no link, a dirty track, a full cache)
//! sets the bits of its tracks instead, on disk before it goes down, and again when
//! it completes so the copier never misses it.
//!
//! Secondary: `secondary.rs` applies writes strictly in sequence order, so its disk
//! always holds an image the primary had at some moment.
//!
//! Lifecycle: the constructor builds a [`Pair`] and starts nothing. `preresume` calls
//! [`Pair::start`]: the metadata is taken over (activity log replayed) and the threads
//! start. `postsuspend` calls [`Pair::stop`]: threads stop, everything unconfirmed is
//! marked, the bitmap is written and the stop recorded as clean. So a table reload
//! never runs two engines on one metadata device: DM suspends the old table (its
//! postsuspend) before it resumes the new one (its preresume).
//!
//! Locking: `sh` ([`Shared`], a spinlock never taken in interrupt context) guards the
//! transfer log and connection state; the activity log has its own spinlock, never
//! held together with `sh`. Bio completion (`end_io`, interrupt context) touches only
//! atomics.

pub(crate) use crate::config::Config;
pub(crate) use crate::tlog::{BioRef, Entry, Shared};

use crate::activity::ActivityLog;
use crate::blk::Bdev;
use crate::dm::{Bio, BioList, Op, TableRef};
use crate::inflight::Inflight;
use crate::kthread::{self, Thread};
use crate::link::{now_ns, Identity, Link, LinkError, D};
use crate::metadata::Metadata;
use crate::net::Socket;
use crate::pagebuf::PageBuf;
use crate::rcore::addr::SockAddr;
use crate::rcore::bitmap::TrackBitmap;
use crate::rcore::format;
use crate::rcore::gens::{self, Decision as Handshake, GenInfo};
use crate::rcore::geometry;
use crate::rcore::proto::{self, Header};
use crate::rcore::status::{Conn, DevError, Mode, Role, State};
use crate::snapshot::Store;
use crate::tlog::MarkOutcome;
use core::ops::Range;
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::prelude::*;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::sync::{Arc, CondVar, Mutex, SpinLock, SpinLockIrq};

/// Per-bio state, in DM's per-bio data. Written in full by `map` before anything
/// else, so `end_io` always finds it initialised.
pub(crate) struct PerBio {
    pub(crate) flags: AtomicU32,
    seq: u64,
    sector: u64,
    nr: u64,
    tracks: Range<u64>,
    /// The split copy's admission tag (`split::tag_of`; 0: not counted), taken
    /// back at the first `end_io`.
    pub(crate) split: AtomicU32,
}

impl PerBio {
    /// The per-bio data of a write that no engine handles (simplex), admitted by
    /// the split copy with `split`.
    pub(crate) fn local(split: u32) -> PerBio {
        PerBio {
            flags: AtomicU32::new(0),
            seq: 0,
            sector: 0,
            nr: 0,
            tracks: 0..0,
            split: AtomicU32::new(split),
        }
    }

    /// First sector of the write on the data device.
    pub(crate) fn sector(&self) -> u64 {
        self.sector
    }

    /// Length of the write in sectors.
    pub(crate) fn nr(&self) -> u64 {
        self.nr
    }

    /// The tracks the write touches.
    pub(crate) fn tracks(&self) -> Range<u64> {
        self.tracks.clone()
    }
}

/// The local write has completed.
const PB_LOCAL: u32 = 1;
/// The peer's part is done (acknowledged, or not needed).
const PB_REMOTE: u32 = 2;
/// The write was shipped with `seq`.
const PB_SHIPPED: u32 = 4;
/// The write was not shipped: set its tracks' bits again when it completes.
const PB_MARK: u32 = 8;
/// Held back by `map` until its bits are on disk; then submitted.
pub(crate) const PB_DEFER_SUBMIT: u32 = 16;
/// Held back by `end_io` until its bits are on disk; then completed.
pub(crate) const PB_DEFER_ENDIO: u32 = 32;
/// Held back by `map` until its extents are hot or a conflicting write completed;
/// the metadata thread then decides again (ship or mark) and submits it.
pub(crate) const PB_HELD: u32 = 64;
/// Counted in [`Inflight`] until its local write completes.
const PB_COUNTED: u32 = 128;

/// What `map` does with a write.
pub(crate) enum Decision {
    /// Send it down now.
    Go,
    /// Kept by the target (the caller returns `Submitted`).
    Defer,
    /// Fail it.
    Kill,
}

/// Whether DM may complete a bio now.
pub(crate) enum Completion {
    Done,
    /// The peer's ACK (or the metadata thread) will complete it.
    Later,
}

/// Counters shown in the status line.
pub(crate) struct LinkStats {
    pub(crate) sent_bytes: u64,
    pub(crate) acked_bytes: u64,
    pub(crate) sync_done: u64,
    pub(crate) sync_total: u64,
    pub(crate) cache_used: u64,
    pub(crate) lag_ms: u64,
    pub(crate) dirty_bytes: u64,
    pub(crate) sync_rate: u64,
    pub(crate) eta_s: u64,
    pub(crate) consistent: bool,
}

/// A replicated pair (one side of it).
#[pin_data]
pub(crate) struct Pair {
    pub(crate) cfg: Config,
    pub(crate) data: Bdev,
    /// The live table's, for raising events: a reload that keeps this engine (see
    /// [`Pair::same_engine`]) points it at the new table at `preresume`, before DM
    /// frees the old one. Held while an event is raised, so the old table is never
    /// used after the swap.
    #[pin]
    table: Mutex<TableRef>,
    /// `resync_rate` of the live table (bytes/s, 0: unlimited); a reload may change it.
    resync_rate: Atomic<u64>,
    /// `timeout_ms` of the live table; a reload may change it.
    timeout_ms: Atomic<u32>,
    name: KVec<u8>,
    node_id: u64,
    pub(crate) md: Pin<KBox<Metadata>>,
    /// Bytes per sixteenth of a track in `sub` (0: not used); see `dirty.rs`.
    pub(crate) sub_part: u64,
    /// Which sixteenths of recently dirtied tracks were written (`dirty.rs`).
    #[pin]
    pub(crate) sub: SpinLockIrq<crate::dirty::SubTracks>,
    /// The snapshot store (`snap_store`), used while this side is a secondary.
    pub(crate) store: Option<Arc<Store>>,
    #[pin]
    pub(crate) al: ActivityLog,
    pub(crate) inflight: Inflight,
    /// Bios the metadata thread must handle (`PB_DEFER_*`, `PB_HELD`).
    pub(crate) deferred: BioList,
    /// Bios held with `PB_HELD`, to wake the metadata thread when that may end.
    pub(crate) held: Atomic<u32>,
    md_task: core::sync::atomic::AtomicPtr<kernel::bindings::task_struct>,
    #[pin]
    pub(crate) sh: SpinLock<Shared>,
    #[pin]
    pub(crate) wake: CondVar,
    /// The running threads; empty while suspended.
    #[pin]
    threads: Mutex<KVec<Thread>>,
    /// The `snapshot-verify` thread (`crate::verify`), idle once its run is over.
    #[pin]
    verify_thread: Mutex<Option<Thread>>,
    /// Writes waiting for the verify scan to sum their tracks.
    pub(crate) verify_held: BioList,
    /// A write went down unsequenced since the verify run began (see `verify.rs`).
    pub(crate) verify_taint: Atomic<u32>,
    #[pin]
    pub(crate) listener: Mutex<Option<Arc<Socket>>>,
    /// The `dep` of the next shipped write: the highest seq of a shipped write that
    /// completed locally, or of a resync copy claimed ([`Pair::raise_max_completed`]).
    pub(crate) max_completed: Atomic<u64>,
    /// With `copy_floor` (`tlog::Shared`), the `dep` of the next resync copy: the
    /// highest seq of a shipped write that completed locally. Copies do not raise it:
    /// copies claimed between two wraps of the copier never overlap, so one need not
    /// wait for another on the peer (`resync::claim`).
    pub(crate) max_written: Atomic<u64>,
    pub(crate) shipping: Atomic<u32>,
    stopping: Atomic<u32>,
    /// The operator disconnected the pair (`suspend`/`disconnect` message).
    pub(crate) held_off: Atomic<u32>,
    refused_log: Atomic<u64>,
    pub(crate) sent_bytes: Atomic<u64>,
    pub(crate) acked_bytes: Atomic<u64>,
    pub(crate) sync_done: Atomic<u64>,
    pub(crate) sync_total: Atomic<u64>,
    pub(crate) copy_t0: Atomic<u64>,
    /// The last apply on this secondary failed (cleared by a completed resync).
    pub(crate) apply_failed: Atomic<u32>,
    /// Primary: the current generation may be held by the peer, so the next write
    /// that cannot be shipped must first start a new one ([`GEN_BUMP_NEEDED`]; the
    /// metadata thread takes it: [`GEN_BUMP_WRITING`] while it writes the superblock).
    /// Set whenever the link is not up, cleared when it comes up.
    pub(crate) gen_bump: Atomic<u32>,
    /// The operator resolved a refusal in this side's favour (primary, `resolve
    /// keep-local`) or the peer's (secondary, `resolve discard-local`): sent as
    /// `GF_RESOLVE` until a handshake proceeds.
    pub(crate) resolve_flag: Atomic<u32>,
    /// Primary: the next `postsuspend` first waits until the peer holds everything.
    pub(crate) handover: Atomic<u32>,
    /// The last handshake's decision (0: none; else 1 + index in `Decision::ALL`).
    decision: Atomic<u32>,
    /// Tracks the peer's bitmap added at the last handshake.
    pub(crate) peer_tracks: Atomic<u64>,
    /// Secondary: the connected primary's generation, adopted when its copy or
    /// resync completes. Primary: the generation this side's HELLO sent, recorded
    /// as the peer's when it confirms the adoption.
    pub(crate) peer_gen: Atomic<u64>,
    /// The last complete consistency point (status `point`): a secondary's point
    /// snapshot, or the id the peer gave the last point this primary asked for.
    pub(crate) point: Atomic<u64>,
    /// When that point was made (wall clock, ns).
    pub(crate) point_at_ns: Atomic<u64>,
}

/// [`Pair::gen_bump`]: nothing to do.
pub(crate) const GEN_BUMP_NONE: u32 = 0;
/// [`Pair::gen_bump`]: a new generation is needed before an unshipped write.
pub(crate) const GEN_BUMP_NEEDED: u32 = 1;
/// [`Pair::gen_bump`]: the metadata thread is writing it.
pub(crate) const GEN_BUMP_WRITING: u32 = 2;

/// How long a handover waits for the peer to catch up.
const HANDOVER_MS: u64 = 60_000;

impl Pair {
    /// Builds the pair (constructor context). Nothing runs until [`Pair::start`].
    ///
    /// # Safety
    ///
    /// `data` must stay open until the pair is dropped, and `table` valid until
    /// [`Pair::retune`] replaces it or the pair is dropped.
    pub(crate) unsafe fn new(
        cfg: Config,
        data: Bdev,
        md: Pin<KBox<Metadata>>,
        store: Option<Arc<Store>>,
        table: TableRef,
        name: &str,
    ) -> Result<Arc<Pair>> {
        let cap = (cfg.cache_size / 4096)
            .clamp(256, 65536)
            .next_power_of_two() as usize;
        let mut ring = KVVec::with_capacity(cap, GFP_KERNEL)?;
        for _ in 0..cap {
            ring.push(None, GFP_KERNEL)?;
        }
        let mut nm = KVec::new();
        nm.extend_from_slice(name.as_bytes(), GFP_KERNEL)?;
        let mut node_id = 0u64;
        // SAFETY: `node_id` is a writable 8-byte buffer.
        unsafe { kernel::bindings::get_random_bytes((&raw mut node_id).cast(), 8) };
        // An extent holds whole tracks.
        let extent = cfg.al_extent_size.max(u64::from(cfg.track_size));
        let al = ActivityLog::new(cfg.al_extents, extent)?;
        let (resync_rate, timeout_ms) = (cfg.resync_rate, cfg.timeout_ms);
        let sub_part = crate::dirty::part_bytes(cfg.track_size);
        let sub =
            crate::dirty::new_map(geometry::tracks(cfg.size_bytes, cfg.track_size), sub_part)?;
        Arc::pin_init(
            try_pin_init!(Pair {
                cfg,
                data,
                table <- kernel::new_mutex!(table),
                resync_rate: Atomic::new(resync_rate),
                timeout_ms: Atomic::new(timeout_ms),
                name: nm,
                node_id,
                md,
                sub_part,
                sub <- kernel::new_spinlock_irq!(sub),
                store,
                al <- al,
                inflight: Inflight::new()?,
                deferred: BioList::new(),
                held: Atomic::new(0),
                md_task: core::sync::atomic::AtomicPtr::new(core::ptr::null_mut()),
                sh <- kernel::new_spinlock!(Shared {
                    conn: Conn::Connecting,
                    link: None,
                    synced: false,
                    copy_started: false,
                    next_seq: 1,
                    ring,
                    head: 0,
                    applied: 0,
                    unsent: 0,
                    tail: 0,
                    cache_bytes: 0,
                    copy_cursor: 0,
                    copy_floor: 0,
                    barrier_seq: 0,
                    uncovered_ns: 0,
                    gap: false,
                    need_done: false,
                    await_adopt: false,
                    peer_inconsistent: false,
                    last_state: State::Suspended,
                    peer_state: None,
                    peer_mode: None,
                    next_ticket: 1,
                    mark_results: [(0, crate::tlog::MarkOutcome::Lost); crate::tlog::MARK_RESULTS],
                    verify: None,
                }),
                wake <- kernel::new_condvar!(),
                threads <- kernel::new_mutex!(KVec::new()),
                verify_thread <- kernel::new_mutex!(None),
                verify_held: BioList::new(),
                verify_taint: Atomic::new(0),
                listener <- kernel::new_mutex!(None),
                max_completed: Atomic::new(0),
                max_written: Atomic::new(0),
                shipping: Atomic::new(0),
                stopping: Atomic::new(0),
                held_off: Atomic::new(0),
                refused_log: Atomic::new(0),
                sent_bytes: Atomic::new(0),
                acked_bytes: Atomic::new(0),
                sync_done: Atomic::new(0),
                sync_total: Atomic::new(0),
                copy_t0: Atomic::new(0),
                apply_failed: Atomic::new(0),
                gen_bump: Atomic::new(GEN_BUMP_NEEDED),
                resolve_flag: Atomic::new(0),
                handover: Atomic::new(0),
                decision: Atomic::new(0),
                peer_tracks: Atomic::new(0),
                peer_gen: Atomic::new(0),
                point: Atomic::new(0),
                point_at_ns: Atomic::new(0),
            }? Error),
            GFP_KERNEL,
        )
    }

    /// Takes the metadata over and starts the threads (`preresume`). A no-op if
    /// they run already.
    pub(crate) fn start(self: &Arc<Self>) -> Result {
        let mut threads = self.threads.lock();
        if !threads.is_empty() {
            return Ok(());
        }
        let act = self.md.activate().map_err(|e| match e {
            crate::metadata::LoadError::Io(e) => e,
            crate::metadata::LoadError::Meta(_) => EINVAL,
        })?;
        self.al.reset();
        if !act.clean || act.al_extents > 0 {
            pr_warn!(
                "{}: not stopped cleanly: marked {} tracks of {} activity-log extents for resync\n",
                self.name(),
                act.al_tracks,
                act.al_extents
            );
        }
        if let Some(st) = &self.store {
            // Consistency-point mode: the image returns to the last complete point
            // (what arrived of the next one is undone, and marked for the peer).
            if let Some((epoch, at)) = st.newest_point() {
                self.rollback_to(st, epoch)?;
                self.set_point(u64::from(epoch), at);
            }
        }
        self.take_role()?;
        if let (Role::Primary, Some(st)) = (self.cfg.role, &self.store) {
            // Writes reach the data device through `map` here, which keeps no old
            // tracks: snapshots taken as a secondary would silently change.
            st.invalidate_all(self.name(), "this side is now the primary");
        }
        let sb = self.md.sb();
        {
            let mut sh = self.sh.lock();
            let synced = self.cfg.role == Role::Primary && sb.flags & format::SB_SYNCED != 0;
            sh.synced = synced;
            sh.copy_started = false;
            sh.need_done = false;
            sh.await_adopt = false;
            sh.conn = Conn::Connecting;
            sh.link = None;
            sh.last_state = State::Suspended;
            sh.peer_state = None;
        }
        // Writes that cannot be shipped start a new generation first.
        self.gen_bump.store(GEN_BUMP_NEEDED, Relaxed);
        self.handover.store(0, Relaxed);
        self.stopping.store(0, Relaxed);
        let name = self.name();
        let main: fn(&Arc<Pair>) = match self.cfg.role {
            Role::Primary => crate::primary::primary_main,
            Role::Secondary => crate::secondary::secondary_main,
        };
        let r = (|| -> Result {
            let mdt = Thread::spawn(
                format_args!("rcopy-md-{name}"),
                self.clone(),
                crate::mdthread::md_main,
            )?;
            self.md_task.store(mdt.task(), Ordering::Release);
            threads.push(mdt, GFP_KERNEL)?;
            threads.push(
                Thread::spawn(format_args!("rcopy-{name}"), self.clone(), main)?,
                GFP_KERNEL,
            )?;
            threads.push(
                Thread::spawn(format_args!("rcopy-wd-{name}"), self.clone(), watchdog_main)?,
                GFP_KERNEL,
            )?;
            Ok(())
        })();
        drop(threads);
        if let Err(e) = r {
            self.stop();
            return Err(e);
        }
        Ok(())
    }

    /// Records this side's role in the superblock at `preresume`: a secondary
    /// whose table now says primary is promoted (takeover: its peer holds at most
    /// the generation it followed, plus what the peer's own bitmap marks; a new
    /// generation starts), a primary whose table now says secondary is demoted (its
    /// image is its own, consistent; its bitmap keeps what its peer never
    /// confirmed, for the peer to fetch).
    ///
    /// What if the machine dies here: the superblock is one FUA write; before it,
    /// the side is still what it was, after it, what the table says.
    fn take_role(&self) -> Result {
        let sb = self.md.sb();
        let was_primary = sb.flags & format::SB_PRIMARY != 0;
        match self.cfg.role {
            Role::Primary if !was_primary => {
                let gen = random_gen();
                let synced = sb.flags & format::SB_SYNCED != 0;
                self.md.update_sb(|sb| {
                    if synced {
                        sb.promote(gen);
                    }
                    sb.flags |= format::SB_PRIMARY;
                })?;
                if synced {
                    pr_info!(
                        "{}: promoted to primary: generation {:016x} starts (the peer is expected at {:016x})\n",
                        self.name(),
                        gen,
                        sb.gen_current
                    );
                } else {
                    pr_info!(
                        "{}: primary (this side was never in sync with a peer)\n",
                        self.name()
                    );
                }
            }
            Role::Secondary if was_primary => {
                self.md.update_sb(|sb| {
                    sb.flags &= !format::SB_PRIMARY;
                    sb.flags |= format::SB_CONSISTENT;
                })?;
                pr_info!(
                    "{}: demoted to secondary at generation {:016x}, {} tracks its peer never confirmed\n",
                    self.name(),
                    sb.gen_current,
                    self.bitmap().count()
                );
            }
            _ => {}
        }
        Ok(())
    }

    /// `postsuspend` after a `handover` message: waits (DM has quiesced the device's
    /// I/O) until the peer holds everything (no dirty track, no unconfirmed entry,
    /// and the peer told it is in sync), at most [`HANDOVER_MS`] and while the link
    /// stays up. Returns whether it did.
    fn wait_handover(&self) -> bool {
        if self.handover.xchg(0, Relaxed) == 0 || self.cfg.role != Role::Primary {
            return false;
        }
        let t0 = now_ns();
        loop {
            let done = {
                let sh = self.sh.lock();
                if sh.conn != Conn::Connected {
                    break;
                }
                sh.head == sh.tail
                    && !sh.need_done
                    && !sh.await_adopt
                    && sh.synced
                    && self.bitmap().count() == 0
            };
            let ms = now_ns().saturating_sub(t0) / 1_000_000;
            if done {
                pr_info!(
                    "{}: handover: peer holds everything ({} ms)\n",
                    self.name(),
                    ms
                );
                return true;
            }
            if ms >= HANDOVER_MS {
                break;
            }
            self.wake.notify_all();
            kthread::sleep_ms(5);
        }
        pr_warn!(
            "{}: handover: gave up after {} ms: the peer does not hold everything ({} tracks marked)\n",
            self.name(),
            now_ns().saturating_sub(t0) / 1_000_000,
            self.bitmap().count()
        );
        false
    }

    /// `handover` message: the next `postsuspend` hands everything over first.
    pub(crate) fn request_handover(&self) -> Result {
        if self.cfg.role != Role::Primary {
            return Err(EINVAL);
        }
        self.handover.store(1, Relaxed);
        Ok(())
    }

    /// `resolve keep-local` (primary), `resolve discard-local` (secondary) or
    /// `resolve none`: whether the next handshake may overwrite the secondary
    /// after a refusal.
    pub(crate) fn resolve(&self, how: &str) -> Result {
        let v = match (how, self.cfg.role) {
            ("keep-local", Role::Primary) | ("discard-local", Role::Secondary) => 1,
            ("none", _) => 0,
            _ => {
                pr_warn!(
                    "{}: resolve {}: use keep-local on the primary or discard-local on the secondary\n",
                    self.name(),
                    how
                );
                return Err(EINVAL);
            }
        };
        self.resolve_flag.store(v, Relaxed);
        if v != 0 {
            pr_info!(
                "{}: resolve {}: the next handshake overwrites the secondary with the primary's data\n",
                self.name(),
                how
            );
        }
        Ok(())
    }

    /// The last handshake's decision.
    pub(crate) fn decision(&self) -> Option<Handshake> {
        let i = self.decision.load(Relaxed) as usize;
        i.checked_sub(1)
            .and_then(|i| Handshake::ALL.get(i).copied())
    }

    /// Records (and, on a refusal, logs) a handshake's decision.
    pub(crate) fn set_decision(&self, d: Handshake, mine: &GenInfo, peer: &GenInfo) {
        let i = Handshake::ALL
            .iter()
            .position(|x| *x == d)
            .map_or(0, |i| i + 1);
        let old = self.decision.xchg(i as u32, Relaxed);
        if d.proceeds() {
            if d == Handshake::FullCopy || old != i as u32 {
                pr_info!(
                    "{}: handshake: {} (generations: here {:016x}, peer {:016x})\n",
                    self.name(),
                    d.as_str(),
                    mine.current,
                    peer.current
                );
            }
            self.resolve_flag.store(0, Relaxed);
        } else if old != i as u32 {
            // Logged once per change: the primary retries every few seconds.
            pr_err!(
                "{}: connection refused: {} (generations: here {:016x} peer-known {:016x}, peer {:016x} peer-known {:016x}): {}\n",
                self.name(),
                d.as_str(),
                mine.current,
                mine.peer,
                peer.current,
                peer.peer,
                d.advice()
            );
        }
        if old != i as u32 {
            self.event();
        }
    }

    /// Stops every thread and drops the connection (`postsuspend`, and the
    /// destructor): everything the peer did not confirm durable is marked, the
    /// bitmap written, the activity log emptied and the stop recorded as clean. DM
    /// has completed every bio of the device before it calls this.
    pub(crate) fn stop(&self) {
        // A verify run ends (it lets every write it held go on while it runs, so
        // DM has completed them all before `postsuspend` calls this).
        drop(self.verify_thread.lock().take());
        if let Some(v) = self.sh.lock().verify.take() {
            pr_warn!(
                "{}: the image sum for snapshot ticket {} was abandoned (the device stopped)\n",
                self.name(),
                v.ticket
            );
        }
        if self.threads.lock().is_empty() {
            return;
        }
        self.wait_handover();
        let mut threads = core::mem::take(&mut *self.threads.lock());
        if threads.is_empty() {
            return;
        }
        self.stopping.store(1, Relaxed);
        if let Some(l) = self.listener.lock().take() {
            l.shutdown();
        }
        if let Some(link) = self.sh.lock().link.clone() {
            link.kill();
        }
        self.wake.notify_all();
        // Newest first: the metadata thread (started first) goes last, as it handles
        // what the others leave.
        while let Some(t) = threads.pop() {
            drop(t);
        }
        self.md_task.store(core::ptr::null_mut(), Ordering::Release);
        self.fail_inflight();
        self.set_link(None, Conn::Connecting);
        if let Err(e) = self.md.deactivate() {
            pr_err!(
                "{}: writing the metadata at stop failed: errno {}; the next start resyncs what the activity log holds\n",
                self.name(),
                -e.to_errno()
            );
        }
    }

    /// The operator disconnects the pair: the primary disconnects (orderly) and
    /// marks every write until [`Pair::connect`].
    pub(crate) fn disconnect(&self) -> Result {
        if self.cfg.role != Role::Primary {
            return Err(EINVAL);
        }
        self.held_off.store(1, Relaxed);
        if let Some(link) = self.sh.lock().link.clone() {
            let _ = link.send(&Header::bye(), &[]);
            link.kill();
        }
        self.wake.notify_all();
        pr_info!("{}: disconnected by the operator\n", self.name());
        Ok(())
    }

    /// Ends an operator disconnect: reconnect and resync the marked tracks.
    pub(crate) fn connect(&self) -> Result {
        if self.cfg.role != Role::Primary {
            return Err(EINVAL);
        }
        if self.held_off.xchg(0, Relaxed) != 0 {
            pr_info!("{}: reconnecting at the operator's request\n", self.name());
            // Under `sh`, so the main thread is either waiting (woken) or has not
            // yet re-checked `held_off` (and sees it clear).
            let _sh = self.sh.lock();
            self.wake.notify_all();
        }
        Ok(())
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Relaxed) != 0 || kthread::should_stop()
    }

    pub(crate) fn bitmap(&self) -> TrackBitmap<'_> {
        self.md.bitmap()
    }

    /// Wakes the metadata thread. Any context.
    pub(crate) fn wake_md(&self) {
        let t = self.md_task.load(Ordering::Acquire);
        if !t.is_null() {
            // SAFETY: the metadata thread lives until `stop` clears `md_task` after
            // joining it, and `stop` runs only after DM has finished with every bio.
            unsafe { kernel::bindings::wake_up_process(t) };
        }
    }

    /// Hands `bio` to the metadata thread, which goes on with `then`
    /// (`PB_DEFER_SUBMIT`, `PB_DEFER_ENDIO` or `PB_HELD`).
    pub(crate) fn defer(&self, bio: &Bio<'_>, pb: &PerBio, then: u32) {
        pb.flags.fetch_or(then, Ordering::AcqRel);
        if then == PB_HELD {
            self.held.add(1, Relaxed);
        }
        self.deferred.push(bio);
        self.wake_md();
    }

    pub(crate) fn name(&self) -> &str {
        core::str::from_utf8(&self.name).unwrap_or("?")
    }

    fn track_range(&self, sector: u64, nr: u64) -> Range<u64> {
        geometry::sector_track_range(sector, nr, self.cfg.track_size)
    }

    // ---------------------------------------------------------------- I/O path

    /// Maps a bio on the primary (anything but a read).
    /// `split` is the split copy's admission tag, kept in the per-bio data.
    pub(crate) fn map_write(
        &self,
        bio: &Bio<'_>,
        sector: u64,
        pb: *mut PerBio,
        split: u32,
    ) -> Decision {
        let nr = u64::from(bio.size() >> 9);
        // Every bio that reaches `end_io` needs its per-bio data, a killed one too.
        // SAFETY: `pb` is this bio's per-bio data, ours until the bio completes.
        unsafe {
            pb.write(PerBio {
                flags: AtomicU32::new(PB_REMOTE),
                seq: 0,
                sector,
                nr,
                tracks: if nr > 0 {
                    self.track_range(sector, nr)
                } else {
                    0..0
                },
                split: AtomicU32::new(split),
            })
        };
        // SAFETY: as above, now initialised.
        let pb = unsafe { &mut *pb };
        if self.cfg.role == Role::Secondary {
            // A flush changes no data: pass it down. Everything else is refused.
            if nr == 0 && bio.is_preflush() {
                return Decision::Go;
            }
            self.log_refused();
            return Decision::Kill;
        }
        self.ship(bio, pb)
    }

    /// Raises `max_completed` to `seq` (never lowers it). Any context.
    ///
    /// Called when a shipped write completes locally, and by the copier when it claims
    /// a run (under `sh`, so every write that takes a seq after the claim sees it):
    /// a write issued after a copy's claim then depends on the copy, so the peer
    /// applies it after the copy. Without that, a write issued between the claim and
    /// the copy's read, still in flight during the read, could be applied on the peer
    /// before the copy, which would then overwrite it with the older data it read (the
    /// parallel apply, `apply.rs`, submits a write once its `dep` is applied). The
    /// model test `resync_copies_converge_with_concurrent_writes` (rcopy-core
    /// `tests/order.rs`) checks the rule, and that without it the disks can differ.
    pub(crate) fn raise_max_completed(&self, seq: u64) {
        raise(&self.max_completed, seq);
    }

    /// Ships a write, or marks it. Called by `map`, and by the metadata thread for
    /// a bio held with `PB_HELD`. `Defer` means the bio now belongs to the metadata
    /// thread (held, or waiting for its bits).
    pub(crate) fn ship(&self, bio: &Bio<'_>, pb: &mut PerBio) -> Decision {
        if self.shipping.load(Relaxed) == 0 {
            return self.mark_unshipped(bio, pb);
        }
        let al = self.al.extents(pb.sector, pb.nr);
        if al.end - al.start > u64::from(self.cfg.al_extents) / 2 {
            // Larger than the log can hold at once (a huge discard): mark instead.
            self.sh.lock().note_gap();
            return self.mark_unshipped(bio, pb);
        }
        // A failed metadata device cannot record extents: ship without (the status
        // line shows the error; crash safety is gone until it is replaced).
        if !self.md.failed() && !self.al.acquire(al.clone()) {
            self.defer(bio, pb, PB_HELD);
            return Decision::Defer;
        }
        let al = if self.md.failed() { 0..0 } else { al };
        let op = bio.op();
        let size = bio.size();
        let mut flags = 0u16;
        match op {
            Op::Discard => flags |= proto::WRITE_DISCARD,
            Op::WriteZeroes => flags |= proto::WRITE_ZEROES,
            _ => {}
        }
        if bio.is_fua() {
            flags |= proto::WRITE_FUA;
        }
        if bio.is_preflush() {
            flags |= proto::WRITE_PREFLUSH;
        }
        if op == Op::Write && size == 0 && flags != 0 {
            // An empty PREFLUSH|FUA bio (jbd2 commits issue them) writes nothing: on
            // the wire it is a flush, PREFLUSH alone, which the peer's frame check
            // requires of a write with no sectors. Its durable ACK covers the FUA.
            flags = proto::WRITE_PREFLUSH;
        }
        let data = if op == Op::Write && size > 0 {
            match PageBuf::from_bio(bio) {
                Ok(d) => Some(d),
                Err(_) => {
                    self.al.release(al);
                    self.sh.lock().note_gap();
                    return self.mark_unshipped(bio, pb);
                }
            }
        } else {
            None
        };
        let len = data.as_ref().map_or(0, |d| d.len() as u64);
        let sync = self.cfg.mode == Mode::Sync;
        let mut sh = self.sh.lock();
        // A verify scan is summing the image at a marker: a write sequenced now
        // (after it) waits until the scan has summed its tracks (`verify.rs`).
        if sh
            .verify
            .as_ref()
            .is_some_and(|v| v.holds(pb.tracks.clone()))
        {
            drop(sh);
            self.al.release(al);
            self.verify_held.push(bio);
            return Decision::Defer;
        }
        let over = self.cfg.mode == Mode::Async && sh.cache_bytes + len > self.cfg.cache_size;
        if sh.conn != Conn::Connected
            || sh.ring_full()
            || over
            || self.bitmap().any_in(pb.tracks.clone())
        {
            sh.note_gap();
            drop(sh);
            self.al.release(al);
            return self.mark_unshipped(bio, pb);
        }
        if self.inflight.busy(pb.sector, pb.nr) {
            // An overlapping write is in flight: wait for it, so both disks apply
            // the two in the same order.
            drop(sh);
            self.al.release(al);
            self.defer(bio, pb, PB_HELD);
            return Decision::Defer;
        }
        self.inflight.add(pb.sector, pb.nr);
        let seq = sh.next_seq;
        sh.next_seq += 1;
        let dep = self.max_completed.load(Relaxed).min(seq - 1);
        sh.push(Entry {
            seq,
            dep,
            sector: if pb.nr > 0 { pb.sector } else { 0 },
            nr_sectors: pb.nr as u32,
            flags,
            len: len as u32,
            data,
            bio: sync.then(|| BioRef(bio.as_raw())),
            tracks: pb.tracks.clone(),
            al,
            issued_ns: now_ns(),
            mark: None,
        });
        pb.seq = seq;
        pb.flags.store(
            PB_SHIPPED | PB_COUNTED | if sync { 0 } else { PB_REMOTE },
            Ordering::Release,
        );
        drop(sh);
        self.wake.notify_one();
        Decision::Go
    }

    /// Logs a refused local write on the secondary, at most once a second.
    fn log_refused(&self) {
        let now = now_ns();
        let last = self.refused_log.load(Relaxed);
        if now.saturating_sub(last) > 1_000_000_000
            && self.refused_log.cmpxchg(last, now, Relaxed).is_ok()
        {
            pr_err!(
                "{}: write refused: this device is the secondary of its pair\n",
                self.name()
            );
        }
    }

    /// The write is not shipped: mark its tracks (again when it completes, for the
    /// copier), holding it back until the bits are on disk.
    fn mark_unshipped(&self, bio: &Bio<'_>, pb: &mut PerBio) -> Decision {
        pb.flags.store(PB_REMOTE | PB_MARK, Ordering::Release);
        // Unsequenced: its place relative to a verify marker is unknown.
        self.verify_taint.store(1, Relaxed);
        // Until a new generation is on disk, the write waits for the metadata thread.
        if self.mark_written(pb.tracks.clone(), pb.sector, pb.nr)
            && self.gen_bump.load(Relaxed) == GEN_BUMP_NONE
        {
            Decision::Go
        } else {
            self.defer(bio, pb, PB_DEFER_SUBMIT);
            Decision::Defer
        }
    }

    /// A bio's local write completed (interrupt context: atomics only).
    pub(crate) fn end_io(&self, bio: &Bio<'_>, pb: &PerBio, ok: bool) -> Completion {
        let f = pb.flags.load(Ordering::Acquire);
        if f & PB_SHIPPED != 0 {
            // Before the write leaves `inflight`: whoever finds its range free (an
            // overlapping write that was held back, a copier claiming the track, on
            // another CPU) must also see its seq in the deps it takes, or the peer
            // could apply the two in the other order. (`inflight.sub` is a release,
            // `busy` an acquire.)
            self.raise_max_completed(pb.seq);
            raise(&self.max_written, pb.seq);
        }
        if f & PB_COUNTED != 0
            && pb.flags.fetch_and(!PB_COUNTED, Ordering::AcqRel) & PB_COUNTED != 0
        {
            self.inflight.sub(pb.sector, pb.nr);
            if self.held.load(Relaxed) != 0 {
                self.wake_md();
            }
        }
        if (f & PB_MARK != 0 || !ok) && !self.mark_written(pb.tracks.clone(), pb.sector, pb.nr) {
            // Complete only once the bits are on disk.
            self.defer(bio, pb, PB_DEFER_ENDIO);
            return Completion::Later;
        }
        if pb.flags.fetch_or(PB_LOCAL, Ordering::AcqRel) & PB_REMOTE != 0 {
            Completion::Done
        } else {
            Completion::Later
        }
    }

    /// The peer's part of a sync-mode write is done: complete it if the local part is.
    pub(crate) fn complete_remote(&self, bio: BioRef) {
        // SAFETY: a bio waiting for its ACK is alive: DM completes it only after our
        // `end_io` said `Done`, which needs `PB_REMOTE`, set only here.
        let b = unsafe { Bio::from_raw_waiting(bio.0) };
        let pb = crate::dm::per_bio::<PerBio>(&b);
        if pb.flags.fetch_or(PB_REMOTE, Ordering::AcqRel) & PB_LOCAL != 0 {
            b.endio();
        }
    }

    /// The link is gone: marks the tracks of everything the peer did not confirm
    /// durable, drops their activity-log references and completes waiting writes.
    ///
    /// The bits are set in memory (and their blocks noted stale) before the
    /// references drop; the activity log writes the bitmap before any transaction
    /// that could forget their extents, so a crash at any point still resyncs them.
    pub(crate) fn fail_inflight(&self) {
        loop {
            let mut sh = self.sh.lock();
            let tail = sh.tail;
            let Some(e) = sh.pop_head(tail, u64::MAX) else {
                sh.applied = sh.tail;
                sh.unsent = sh.tail;
                sh.cache_bytes = 0;
                sh.uncovered_ns = 0;
                return;
            };
            if sh.applied < sh.head {
                sh.applied = sh.head;
            }
            if sh.unsent < sh.head {
                sh.unsent = sh.head;
            }
            if e.mark.is_some() {
                // The peer never answered: whether it took the snapshot is unknown
                // here (it lists what it holds).
                sh.mark_done(e.sector, crate::tlog::MarkOutcome::Lost);
            }
            drop(sh);
            self.mark_written(e.tracks.clone(), e.sector, u64::from(e.nr_sectors));
            self.al.release(e.al.clone());
            if let Some(b) = e.bio {
                self.complete_remote(b);
            }
        }
    }

    // ---------------------------------------------------------------- status

    /// The pair state as the status line shows it.
    pub(crate) fn state(&self) -> (State, Conn) {
        let sh = self.sh.lock();
        let conn = if self.held_off.load(Relaxed) != 0 && sh.conn != Conn::Connected {
            Conn::Standalone
        } else {
            sh.conn
        };
        (self.state_locked(&sh), conn)
    }

    pub(crate) fn state_locked(&self, sh: &Shared) -> State {
        if self.cfg.role == Role::Secondary {
            return match (sh.conn, sh.peer_state) {
                (Conn::Connected, Some(s)) => s,
                (Conn::Connected, None) => State::Copying,
                _ => State::Suspended,
            };
        }
        match sh.conn {
            Conn::Connected if !sh.synced => State::Copying,
            Conn::Connected if self.bitmap().count() > 0 => State::Resyncing,
            Conn::Connected => State::Duplex,
            _ => State::Suspended,
        }
    }

    /// The replication mode: a secondary shows the connected primary's.
    pub(crate) fn mode(&self) -> Mode {
        match self.cfg.role {
            Role::Primary => self.cfg.mode,
            Role::Secondary => self.sh.lock().peer_mode.unwrap_or(self.cfg.mode),
        }
    }

    /// The peer's address, as known.
    pub(crate) fn peer(&self) -> Option<SockAddr> {
        match self.cfg.role {
            Role::Primary => self.cfg.peer,
            Role::Secondary => self.sh.lock().link.as_ref().and_then(|l| l.peer),
        }
    }

    /// The sticky error the status line shows.
    pub(crate) fn error(&self) -> DevError {
        if self.md.failed() {
            DevError::Metadata
        } else if self.apply_failed.load(Relaxed) != 0 {
            DevError::Apply
        } else {
            DevError::None
        }
    }

    /// Activity log: hot extents and references.
    pub(crate) fn al_usage(&self) -> (usize, u64) {
        self.al.usage()
    }

    pub(crate) fn stats(&self) -> LinkStats {
        let sh = self.sh.lock();
        let head = sh.applied;
        let lag_ms = if sh.applied < sh.tail {
            let cap = sh.ring.len() as u64;
            sh.ring
                .get((head % cap.max(1)) as usize)
                .and_then(|e| e.as_ref())
                .map_or(0, |e| (now_ns().saturating_sub(e.issued_ns)) / 1_000_000)
        } else {
            0
        };
        let cache_used = sh.cache_bytes;
        drop(sh);
        let done = self.sync_done.load(Relaxed);
        let dirty_bytes = self.bitmap().count() * u64::from(self.cfg.track_size);
        // Tracks dirtied while a copy runs add to it: the total grows with them.
        let total = self.sync_total.load(Relaxed).max(done + dirty_bytes);
        let t0 = self.copy_t0.load(Relaxed);
        let copying = done < total && t0 != 0;
        let secs_ms = now_ns().saturating_sub(t0) / 1_000_000;
        let sync_rate = if copying && secs_ms > 0 {
            done.saturating_mul(1000) / secs_ms
        } else {
            0
        };
        let eta_s = total
            .saturating_sub(done)
            .checked_div(sync_rate)
            .unwrap_or(0);
        let consistent = match self.cfg.role {
            Role::Primary => true,
            Role::Secondary => {
                self.md.sb().flags & format::SB_CONSISTENT != 0
                    && self.apply_failed.load(Relaxed) == 0
            }
        };
        LinkStats {
            sent_bytes: self.sent_bytes.load(Relaxed),
            acked_bytes: self.acked_bytes.load(Relaxed),
            sync_done: done,
            sync_total: total,
            cache_used,
            lag_ms,
            dirty_bytes,
            sync_rate,
            eta_s,
            consistent,
        }
    }

    /// Raises a DM event, and tells the peer (primary) when the state changed.
    pub(crate) fn publish(&self, link: Option<&Link>) {
        let mut sh = self.sh.lock();
        let st = self.state_locked(&sh);
        if st == sh.last_state {
            return;
        }
        sh.last_state = st;
        if matches!(st, State::Copying | State::Resyncing) {
            sh.peer_inconsistent = true;
        }
        drop(sh);
        self.table.lock().event();
        if let (Some(l), Role::Primary) = (link, self.cfg.role) {
            let _ = l.send(&Header::state(state_word(st)), &[]);
        }
    }

    /// Raises a DM event (a change the state does not show, e.g. an error).
    pub(crate) fn event(&self) {
        self.table.lock().event();
    }

    /// Whether a table reload with `cfg` on the devices `data` and `meta` may keep
    /// this engine running (constructor context): everything but the options
    /// [`Pair::retune`] changes in place is the same. A reload that changes anything
    /// else (role, peer, mode, secret, cache or activity-log size) builds a new
    /// engine instead, which starts when this one has stopped (and reconnects).
    pub(crate) fn same_engine(&self, cfg: &Config, data: u32, meta: u32, store: u32) -> bool {
        let (a, b) = (&self.cfg, cfg);
        self.data.devt() == data
            && self.md.devt() == meta
            && self.store.as_ref().map_or(0, |s| s.devt) == store
            && a.role == b.role
            && a.mode == b.mode
            && a.peer == b.peer
            && a.local == b.local
            && a.secret == b.secret
            && a.pair_word == b.pair_word
            && a.cache_size == b.cache_size
            && a.track_size == b.track_size
            && a.size_bytes == b.size_bytes
            && a.al_extents == b.al_extents
            && a.al_extent_size == b.al_extent_size
    }

    /// Queues a marker after every write mapped so far (message `snapshot`):
    /// the peer acts on it with everything before it applied and flushed, and
    /// nothing after. Returns its ticket; `mark_outcome` says what became of it.
    /// Only a primary in `duplex` state (the peer's image is a prefix of this
    /// side's writes) whose peer speaks markers. Process context.
    pub(crate) fn request_mark(&self, mark: proto::Mark) -> Result<u64> {
        let mut sh = self.sh.lock();
        let ticket = self.request_mark_locked(&mut sh, mark)?;
        drop(sh);
        self.wake.notify_all();
        Ok(ticket)
    }

    /// Message `snapshot-verify`: a snapshot marker, and at the same place in the
    /// stream the start of a scan that sums this side's image there (`verify.rs`).
    /// `EBUSY` while another runs. Process context.
    pub(crate) fn request_verify(self: &Arc<Self>, mark: proto::Mark) -> Result<u64> {
        let tracks = self.cfg.size_bytes.div_ceil(u64::from(self.cfg.track_size));
        let mut run = crate::verify::VerifyRun::new(tracks)?;
        let mut vt = self.verify_thread.lock();
        let ticket = {
            let mut sh = self.sh.lock();
            if sh.verify.is_some() {
                return Err(EBUSY);
            }
            let ticket = self.request_mark_locked(&mut sh, mark)?;
            run.ticket = ticket;
            self.verify_taint.store(0, Relaxed);
            sh.verify = Some(run);
            ticket
        };
        self.wake.notify_all();
        // The previous run's thread is idle: stop it.
        drop(vt.take());
        let name = self.name();
        match Thread::spawn(
            format_args!("rcopy-vfy-{name}"),
            self.clone(),
            crate::verify::verify_main,
        ) {
            Ok(t) => *vt = Some(t),
            Err(e) => {
                // The snapshot goes on without a sum; let go of what was held.
                self.sh.lock().verify = None;
                crate::verify::release_all(self);
                pr_warn!(
                    "{}: snapshot ticket {}: no verify thread (errno {}): no image sum\n",
                    self.name(),
                    ticket,
                    -e.to_errno()
                );
            }
        }
        Ok(ticket)
    }

    /// Queues marker `mark` (see `request_mark`). Caller holds `sh`.
    fn request_mark_locked(&self, sh: &mut Shared, mark: proto::Mark) -> Result<u64> {
        if self.cfg.role != Role::Primary {
            return Err(EINVAL);
        }
        let speaks = sh
            .link
            .as_ref()
            .is_some_and(|l| l.speaks(proto::FEATURE_MARKS));
        if sh.conn != Conn::Connected {
            return Err(ENOTCONN);
        }
        if !speaks {
            return Err(EOPNOTSUPP);
        }
        if self.state_locked(sh) != State::Duplex || sh.peer_inconsistent || sh.gap {
            // A copy or resync: the peer's image is not a prefix of this side's.
            return Err(EAGAIN);
        }
        if sh.ring_full() {
            return Err(EBUSY);
        }
        let seq = sh.next_seq;
        sh.next_seq += 1;
        let ticket = sh.next_ticket;
        sh.next_ticket += 1;
        sh.push(Entry::marker(seq, ticket, mark));
        Ok(ticket)
    }

    /// What became of marker `ticket`: `Ok(None)` while pending, `Err` if there
    /// was no such ticket or it is too old to be remembered.
    pub(crate) fn mark_outcome(&self, ticket: u64) -> Result<Option<MarkOutcome>> {
        let sh = self.sh.lock();
        if ticket == 0 || ticket >= sh.next_ticket {
            return Err(ENOENT);
        }
        if sh.verify.as_ref().is_some_and(|v| v.ticket == ticket) {
            // The snapshot may be taken, but its sum is not recorded yet.
            return Ok(None);
        }
        match sh.mark_outcome(ticket) {
            Some(o) => Ok(Some(o)),
            None if sh.next_ticket - ticket <= crate::tlog::MARK_RESULTS as u64 => Ok(None),
            None => Err(ENOENT),
        }
    }

    /// Writes snapshot `epoch` back onto the data device (message
    /// `snapshot-rollback`, engine stopped): a takeover after a disaster during a
    /// resync gets the consistent image the resync began from. The tracks it
    /// rewrites are marked in the bitmap (a peer may hold newer data there), and
    /// the image is recorded as consistent. Returns the tracks rewritten.
    ///
    /// What if the machine dies during it: the snapshot is untouched (its slots
    /// are only read), so the rollback can run again; the superblock says
    /// inconsistent until the end.
    pub(crate) fn rollback_to(&self, st: &Store, epoch: u32) -> Result<u64> {
        let n = st.rollback(epoch, |t| {
            self.mark_whole(t..t + 1);
            self.md.mark_stale(t..t + 1);
        })?;
        // The superblock write (PREFLUSH, FUA) makes the bitmap blocks durable too.
        self.md.persist()?;
        self.md.update_sb(|sb| sb.flags |= format::SB_CONSISTENT)?;
        pr_info!(
            "{}: rolled back to snapshot {}: {} tracks rewritten and marked for the peer\n",
            self.name(),
            epoch,
            n
        );
        self.apply_failed.store(0, Relaxed);
        Ok(n)
    }

    /// Records the last complete consistency point (`at`: wall clock, ns).
    pub(crate) fn set_point(&self, id: u64, at: u64) {
        self.point.store(id, Relaxed);
        self.point_at_ns.store(at, Relaxed);
    }

    /// Whether the threads run (the device is resumed).
    pub(crate) fn running(&self) -> bool {
        !self.threads.lock().is_empty()
    }

    /// Takes the options of the table being resumed and points events at it
    /// (`preresume`). The running threads read the options at their next use: a
    /// copy or resync goes on at the new rate, the watchdog and pings use the new
    /// timeout from their next tick.
    pub(crate) fn retune(&self, table: TableRef, resync_rate: u64, timeout_ms: u32) {
        *self.table.lock() = table;
        let old_rate = self.resync_rate.xchg(resync_rate, Relaxed);
        let old_timeout = self.timeout_ms.xchg(timeout_ms, Relaxed);
        if old_rate != resync_rate || old_timeout != timeout_ms {
            pr_info!(
                "{}: options changed in place: resync_rate {} -> {}, timeout_ms {} -> {}\n",
                self.name(),
                old_rate,
                resync_rate,
                old_timeout,
                timeout_ms
            );
        }
    }

    /// The live table's `resync_rate` (bytes/s, 0: unlimited).
    pub(crate) fn resync_rate(&self) -> u64 {
        self.resync_rate.load(Relaxed)
    }

    /// The live table's `timeout_ms`.
    pub(crate) fn timeout_ms(&self) -> u32 {
        self.timeout_ms.load(Relaxed)
    }

    /// The interval between pings: a quarter of the timeout, at least 100 ms.
    pub(crate) fn ping_ms(&self) -> u32 {
        (self.timeout_ms() / 4).max(100)
    }

    pub(crate) fn set_link(&self, link: Option<Arc<Link>>, conn: Conn) {
        // Before shipping stops: a write that is not shipped sees the bump.
        if conn != Conn::Connected {
            self.gen_bump.store(GEN_BUMP_NEEDED, Relaxed);
        }
        let mut sh = self.sh.lock();
        sh.link = link;
        sh.conn = conn;
        if conn != Conn::Connected {
            sh.peer_state = None;
            sh.gap = false;
            sh.peer_inconsistent = false;
        }
        drop(sh);
        self.shipping.store(
            u32::from(conn == Conn::Connected && self.cfg.role == Role::Primary),
            Relaxed,
        );
        if conn == Conn::Connected {
            // Every write is shipped from now on: the peer gets it. A bump the
            // metadata thread is writing right now is left to finish (it clears
            // `GEN_BUMP_WRITING` itself): see `Pair::gen_settled`.
            let _ = self
                .gen_bump
                .cmpxchg(GEN_BUMP_NEEDED, GEN_BUMP_NONE, Relaxed);
        }
    }

    /// This side's generation once no bump is being written. Called by a primary
    /// right after `set_link(.., Connected)`: from then on no new bump starts, so
    /// if the result differs from the generation its HELLO sent, a bump raced
    /// with the handshake (writes that went down unshipped during it) and the
    /// peer would adopt a generation this side has already left: the caller
    /// drops the connection and shakes hands again. Context: the primary's main
    /// thread.
    pub(crate) fn gen_settled(&self) -> u64 {
        while self.gen_bump.load(Relaxed) == GEN_BUMP_WRITING && !self.stopping() {
            kthread::nap_ms(1);
        }
        self.md.sb().gen_current
    }

    /// The generation facts this side sends in its HELLO.
    pub(crate) fn gen_info(&self) -> GenInfo {
        let sb = self.md.sb();
        let mut flags = 0;
        if sb.flags & format::SB_SYNCED == 0 {
            flags |= gens::GF_BLANK;
        }
        if self.cfg.role == Role::Primary
            || (sb.flags & format::SB_CONSISTENT != 0 && self.apply_failed.load(Relaxed) == 0)
        {
            flags |= gens::GF_CONSISTENT;
        }
        if self.resolve_flag.load(Relaxed) != 0 {
            flags |= gens::GF_RESOLVE;
        }
        sb.gen_info(flags)
    }

    pub(crate) fn identity(&self) -> Identity<'_> {
        Identity {
            secret: &self.cfg.secret,
            pair_id: proto::pair_id_from_name(&self.cfg.pair_word),
            device_bytes: self.cfg.size_bytes,
            track_size: self.cfg.track_size,
            role: self.cfg.role,
            mode: self.cfg.mode,
            node_id: self.node_id,
            gens: self.gen_info(),
        }
    }
}

/// A fresh random, non-zero generation id.
pub(crate) fn random_gen() -> u64 {
    let mut g = 0u64;
    // SAFETY: `g` is a writable 8-byte buffer.
    unsafe { kernel::bindings::get_random_bytes((&raw mut g).cast(), 8) };
    g | 1
}

/// The STATE frame's word for a primary in state `st`.
pub(crate) fn state_word(st: State) -> u64 {
    crate::rcore::state::Pair {
        state: st,
        role: Role::Primary,
        conn: Conn::Connected,
        held: false,
        consistent: true,
        took_over: false,
    }
    .encode()
}

pub(crate) fn log_link_end(p: &Pair, what: &str, e: &LinkError) {
    pr_warn!("{}: {}: {}\n", p.name(), what, D(e));
}

/// Declares a silent peer dead: no frame for `timeout_ms` ends the connection.
fn watchdog_main(p: &Arc<Pair>) {
    let tick = (p.timeout_ms() / 10).clamp(50, 500);
    while !p.stopping() {
        kthread::sleep_ms(tick);
        let link = p.sh.lock().link.clone();
        if let Some(l) = link {
            let silent_ms = now_ns().saturating_sub(l.last_rx.load(Relaxed)) / 1_000_000;
            if !l.is_dead() && silent_ms > u64::from(p.timeout_ms()) {
                pr_warn!(
                    "{}: peer silent for {} ms: disconnecting\n",
                    p.name(),
                    silent_ms
                );
                l.kill();
                p.wake.notify_all();
            }
        }
    }
}

/// Raises `a` to `v` (never lowers it). Any context.
fn raise(a: &Atomic<u64>, v: u64) {
    let mut cur = a.load(Relaxed);
    while cur < v {
        match a.cmpxchg(cur, v, Relaxed) {
            Ok(_) => break,
            Err(now) => cur = now,
        }
    }
}
