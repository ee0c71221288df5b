// SPDX-License-Identifier: GPL-2.0

//! The per-pair replication engine.
//!
//! Primary: `map` copies each write into an [`Entry`] of the time-ordered cache (a ring
//! in sequence order) while the local write goes down in parallel; the sender thread
//! ships entries in order, and when the cache is idle it copies dirty tracks (the
//! initial copy is a resync with every bit set). In sync mode a write completes when
//! both its local write and the peer's ACK are done; in async mode when it is local.
//! A write that cannot be shipped (no link, a dirty track, a full cache) sets the bits
//! of its tracks instead, and again when it completes, so the copier never misses it.
//!
//! Secondary: one thread accepts the connection and applies writes strictly in
//! sequence order, each completed on disk before the next starts, so its disk always
//! holds an image the primary had at some moment; it acknowledges each after the write.
//!
//! Locking: `sh` (a spinlock, never taken in interrupt context) protects the ring and
//! connection state; bio completion touches only atomics.

use crate::blk::{self, Bdev, IoBuf};
use crate::dm::{Bio, BioList, Op, TableRef};
use crate::kthread::{self, Thread};
use crate::link::{now_ns, Identity, Link, LinkError, D};
use crate::metadata::Metadata;
use crate::net::Socket;
use crate::rcore::addr::SockAddr;
use crate::rcore::bitmap::TrackBitmap;
use crate::rcore::format;
use crate::rcore::geometry;
use crate::rcore::proto::{self, Header, Kind};
use crate::rcore::status::{Conn, Mode, Role, State};
use crate::rcore::table::TableArgs;
use core::ops::Range;
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::prelude::*;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::sync::{Arc, CondVar, Mutex, SpinLock};

/// Per-bio state, in DM's per-bio data.
pub(crate) struct PerBio {
    flags: AtomicU32,
    seq: u64,
    tracks: Range<u64>,
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
const PB_DEFER_SUBMIT: u32 = 16;
/// Held back by `end_io` until its bits are on disk; then completed.
const PB_DEFER_ENDIO: u32 = 32;

/// What `map` does with a write.
pub(crate) enum Decision {
    /// Send it down now.
    Go,
    /// Kept until its bitmap bits are on disk (the caller returns `Submitted`).
    Defer,
    /// Fail it.
    Kill,
}

/// Whether DM may complete a bio now.
pub(crate) enum Completion {
    Done,
    /// The peer's ACK will complete it.
    Later,
}

/// The pair configuration, from the table line.
pub(crate) struct Config {
    pub(crate) role: Role,
    pub(crate) mode: Mode,
    pub(crate) peer: Option<SockAddr>,
    pub(crate) local: Option<SockAddr>,
    pub(crate) secret: KVec<u8>,
    pub(crate) pair_word: KVec<u8>,
    pub(crate) cache_size: u64,
    pub(crate) timeout_ms: u32,
    pub(crate) resync_rate: u64,
    pub(crate) track_size: u32,
    pub(crate) size_bytes: u64,
}

impl Config {
    pub(crate) fn new(a: &TableArgs<'_>, role: Role, size_bytes: u64) -> Result<Config> {
        let mut secret = KVec::new();
        secret.extend_from_slice(a.secret, GFP_KERNEL)?;
        let mut pair_word = KVec::new();
        pair_word.extend_from_slice(a.pair_id, GFP_KERNEL)?;
        Ok(Config {
            role,
            mode: a.mode,
            peer: a.peer,
            local: a.local,
            secret,
            pair_word,
            cache_size: a.cache_size,
            timeout_ms: a.timeout_ms,
            resync_rate: a.resync_rate,
            track_size: a.track_size,
            size_bytes,
        })
    }

    /// The table arguments this configuration came from (devices left empty).
    pub(crate) fn args(&self) -> TableArgs<'_> {
        let mut a = TableArgs::new(&[], &[]);
        a.track_size = self.track_size;
        a.role = Some(self.role);
        a.mode = self.mode;
        a.peer = self.peer;
        a.local = self.local;
        a.secret = &self.secret;
        a.pair_id = &self.pair_word;
        a.cache_size = self.cache_size;
        a.timeout_ms = self.timeout_ms;
        a.resync_rate = self.resync_rate;
        a
    }

    /// The 16-byte pair id the handshake and the metadata carry.
    pub(crate) fn pair_id(&self) -> [u8; 16] {
        proto::pair_id_from_name(&self.pair_word)
    }

    fn ping_ms(&self) -> u32 {
        (self.timeout_ms / 4).max(100)
    }
}

/// One write in the time-ordered cache.
struct Entry {
    seq: u64,
    dep: u64,
    sector: u64,
    nr_sectors: u32,
    flags: u16,
    len: u32,
    data: Option<blk::NoIoBuf>,
    /// Sync mode: the bio waiting for this entry's ACK.
    bio: Option<BioRef>,
    tracks: Range<u64>,
    issued_ns: u64,
}

/// A bio whose completion waits for the peer.
struct BioRef(*mut kernel::bindings::bio);
// SAFETY: a bio may be completed from any thread.
unsafe impl Send for BioRef {}

struct Shared {
    conn: Conn,
    link: Option<Arc<Link>>,
    /// The first full copy to the current peer has finished.
    synced: bool,
    /// The first full copy has started (every bit was set once).
    copy_started: bool,
    next_seq: u64,
    ring: KVec<Option<Entry>>,
    /// Oldest unacknowledged, first unsent, and next free ring positions.
    head: u64,
    unsent: u64,
    tail: u64,
    cache_bytes: u64,
    copy_cursor: u64,
    last_state: State,
    /// Secondary: the state the primary last reported.
    peer_state: Option<State>,
    /// Secondary: the mode the connected primary runs in.
    peer_mode: Option<Mode>,
}

impl Shared {
    fn slot(&mut self, pos: u64) -> Option<&mut Option<Entry>> {
        let cap = self.ring.len() as u64;
        self.ring.get_mut((pos % cap.max(1)) as usize)
    }

    /// Retires the oldest entry if it sits below ring position `limit` and its
    /// sequence number is at most `max_seq`.
    fn pop_head(&mut self, limit: u64, max_seq: u64) -> Option<Entry> {
        while self.head < limit {
            let head = self.head;
            let slot = self.slot(head)?;
            if slot.as_ref().is_some_and(|e| e.seq > max_seq) {
                return None;
            }
            let e = slot.take();
            self.head += 1;
            if let Some(e) = e {
                self.cache_bytes = self.cache_bytes.saturating_sub(u64::from(e.len));
                return Some(e);
            }
        }
        None
    }

    fn ring_full(&self) -> bool {
        self.tail - self.head >= self.ring.len() as u64
    }
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
    data: Bdev,
    table: TableRef,
    name: KVec<u8>,
    node_id: u64,
    md: Pin<KBox<Metadata>>,
    /// Writes waiting for their bitmap bits to reach the disk.
    deferred: BioList,
    md_task: core::sync::atomic::AtomicPtr<kernel::bindings::task_struct>,
    #[pin]
    sh: SpinLock<Shared>,
    #[pin]
    wake: CondVar,
    #[pin]
    threads: Mutex<KVec<Thread>>,
    #[pin]
    listener: Mutex<Option<Arc<Socket>>>,
    max_completed: Atomic<u64>,
    shipping: Atomic<u32>,
    stopping: Atomic<u32>,
    /// The operator suspended the pair (`suspend` message).
    held: Atomic<u32>,
    refused_log: Atomic<u64>,
    sent_bytes: Atomic<u64>,
    acked_bytes: Atomic<u64>,
    sync_done: Atomic<u64>,
    sync_total: Atomic<u64>,
    copy_t0: Atomic<u64>,
}

impl Pair {
    /// Creates the pair and starts its threads.
    ///
    /// # Safety
    ///
    /// `data` must stay open, and `table` valid, until [`Pair::stop`] has returned.
    pub(crate) unsafe fn start(
        cfg: Config,
        data: Bdev,
        md: Pin<KBox<Metadata>>,
        table: TableRef,
        name: &str,
    ) -> Result<Arc<Pair>> {
        let sb = md.sb();
        let synced = cfg.role == Role::Primary && sb.flags & format::SB_SYNCED != 0;
        let cap = (cfg.cache_size / 4096)
            .clamp(256, 65536)
            .next_power_of_two() as usize;
        let mut ring = KVec::with_capacity(cap, GFP_KERNEL)?;
        for _ in 0..cap {
            ring.push(None, GFP_KERNEL)?;
        }
        let mut nm = KVec::new();
        nm.extend_from_slice(name.as_bytes(), GFP_KERNEL)?;
        let mut node_id = 0u64;
        // SAFETY: `node_id` is a writable 8-byte buffer.
        unsafe { kernel::bindings::get_random_bytes((&raw mut node_id).cast(), 8) };
        let role = cfg.role;
        let pair = Arc::pin_init(
            pin_init!(Pair {
                cfg,
                data,
                table,
                name: nm,
                node_id,
                md,
                deferred: BioList::new(),
                md_task: core::sync::atomic::AtomicPtr::new(core::ptr::null_mut()),
                sh <- kernel::new_spinlock!(Shared {
                    conn: Conn::Connecting,
                    link: None,
                    synced,
                    copy_started: synced,
                    next_seq: 1,
                    ring,
                    head: 0,
                    unsent: 0,
                    tail: 0,
                    cache_bytes: 0,
                    copy_cursor: 0,
                    last_state: State::Suspended,
                    peer_state: None,
                    peer_mode: None,
                }),
                wake <- kernel::new_condvar!(),
                threads <- kernel::new_mutex!(KVec::new()),
                listener <- kernel::new_mutex!(None),
                max_completed: Atomic::new(0),
                shipping: Atomic::new(0),
                stopping: Atomic::new(0),
                held: Atomic::new(0),
                refused_log: Atomic::new(0),
                sent_bytes: Atomic::new(0),
                acked_bytes: Atomic::new(0),
                sync_done: Atomic::new(0),
                sync_total: Atomic::new(0),
                copy_t0: Atomic::new(0),
            }),
            GFP_KERNEL,
        )?;
        let mut threads = KVec::new();
        let main: fn(&Arc<Pair>) = match role {
            Role::Primary => primary_main,
            Role::Secondary => secondary_main,
        };
        let r = (|| -> Result {
            threads.push(
                Thread::spawn(format_args!("rcopy-{name}"), pair.clone(), main)?,
                GFP_KERNEL,
            )?;
            let mdt = Thread::spawn(format_args!("rcopy-md-{name}"), pair.clone(), md_main)?;
            pair.md_task.store(mdt.task(), Ordering::Release);
            threads.push(mdt, GFP_KERNEL)?;
            threads.push(
                Thread::spawn(format_args!("rcopy-wd-{name}"), pair.clone(), watchdog_main)?,
                GFP_KERNEL,
            )?;
            Ok(())
        })();
        *pair.threads.lock() = threads;
        if let Err(e) = r {
            pair.stop();
            return Err(e);
        }
        Ok(pair)
    }

    /// Stops every thread and drops the connection. Pending sync-mode writes complete
    /// (their tracks are marked).
    pub(crate) fn stop(&self) {
        self.stopping.store(1, Relaxed);
        if let Some(l) = self.listener.lock().take() {
            l.shutdown();
        }
        if let Some(link) = self.sh.lock().link.clone() {
            link.kill();
        }
        self.wake.notify_all();
        let threads = core::mem::take(&mut *self.threads.lock());
        drop(threads);
        self.fail_inflight();
    }

    /// The operator suspends the pair: the primary disconnects (orderly) and marks
    /// every write until [`Pair::resume`].
    pub(crate) fn suspend(&self) -> Result {
        if self.cfg.role != Role::Primary {
            return Err(EINVAL);
        }
        self.held.store(1, Relaxed);
        if let Some(link) = self.sh.lock().link.clone() {
            let _ = link.send(&Header::bye(), &[]);
            link.kill();
        }
        self.wake.notify_all();
        pr_info!("{}: suspended by the operator\n", self.name());
        Ok(())
    }

    /// Ends an operator suspend: reconnect and resync the marked tracks.
    pub(crate) fn resume(&self) -> Result {
        if self.cfg.role != Role::Primary {
            return Err(EINVAL);
        }
        if self.held.xchg(0, Relaxed) != 0 {
            pr_info!("{}: resumed by the operator\n", self.name());
        }
        Ok(())
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Relaxed) != 0 || kthread::should_stop()
    }

    fn bitmap(&self) -> TrackBitmap<'_> {
        self.md.bitmap()
    }

    /// Holds `bio` until its bits are on disk; the metadata thread then goes on with
    /// `then` (`PB_DEFER_SUBMIT` or `PB_DEFER_ENDIO`).
    fn defer(&self, bio: &Bio<'_>, pb: &PerBio, then: u32) {
        pb.flags.fetch_or(then, Ordering::AcqRel);
        self.deferred.push(bio);
        let t = self.md_task.load(Ordering::Acquire);
        if !t.is_null() {
            // SAFETY: the metadata thread lives until `stop`, which runs only after DM
            // has finished with every bio.
            unsafe { kernel::bindings::wake_up_process(t) };
        }
    }

    fn name(&self) -> &str {
        core::str::from_utf8(&self.name).unwrap_or("?")
    }

    fn track_range(&self, sector: u64, nr: u64) -> Range<u64> {
        geometry::sector_track_range(sector, nr, self.cfg.track_size)
    }

    // ---------------------------------------------------------------- I/O path

    /// Maps a bio on the primary (anything but a read). Returns false if it must fail.
    pub(crate) fn map_write(&self, bio: &Bio<'_>, sector: u64, pb: *mut PerBio) -> Decision {
        // Every bio that reaches `end_io` needs its per-bio data, a killed one too.
        // SAFETY: `pb` is this bio's per-bio data, ours until the bio completes.
        unsafe {
            pb.write(PerBio {
                flags: AtomicU32::new(PB_REMOTE),
                seq: 0,
                tracks: 0..0,
            })
        };
        // SAFETY: as above, now initialised.
        let pb = unsafe { &mut *pb };
        if self.cfg.role == Role::Secondary {
            // A flush changes no data: pass it down. Everything else is refused.
            if bio.size() == 0 && bio.is_preflush() {
                return Decision::Go;
            }
            self.log_refused();
            return Decision::Kill;
        }
        let size = bio.size();
        let nr = u64::from(size >> 9);
        let op = bio.op();
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
        let tracks = if nr > 0 {
            self.track_range(sector, nr)
        } else {
            0..0
        };
        pb.tracks = tracks.clone();
        if self.shipping.load(Relaxed) == 0 {
            return self.mark_unshipped(bio, pb);
        }
        let data = if op == Op::Write && size > 0 {
            match blk::copy_bio_data(bio) {
                Ok(d) => Some(d),
                Err(_) => {
                    return self.mark_unshipped(bio, pb);
                }
            }
        } else {
            None
        };
        let len = data.as_ref().map_or(0, |d| d.len() as u64);
        let sync = self.cfg.mode == Mode::Sync;
        let mut sh = self.sh.lock();
        let over = self.cfg.mode == Mode::Async && sh.cache_bytes + len > self.cfg.cache_size;
        if sh.conn != Conn::Connected
            || sh.ring_full()
            || over
            || self.bitmap().any_in(tracks.clone())
        {
            drop(sh);
            return self.mark_unshipped(bio, pb);
        }
        let seq = sh.next_seq;
        sh.next_seq += 1;
        let dep = self.max_completed.load(Relaxed).min(seq - 1);
        let entry = Entry {
            seq,
            dep,
            sector: if nr > 0 { sector } else { 0 },
            nr_sectors: nr as u32,
            flags,
            len: len as u32,
            data,
            bio: sync.then(|| BioRef(bio.as_raw())),
            tracks,
            issued_ns: now_ns(),
        };
        let tail = sh.tail;
        if let Some(slot) = sh.slot(tail) {
            *slot = Some(entry);
        }
        sh.tail += 1;
        sh.cache_bytes += len;
        pb.seq = seq;
        pb.flags.store(
            PB_SHIPPED | if sync { 0 } else { PB_REMOTE },
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
        if self.md.mark(pb.tracks.clone()) {
            Decision::Go
        } else {
            self.defer(bio, pb, PB_DEFER_SUBMIT);
            Decision::Defer
        }
    }

    /// A bio's local write completed (interrupt context: atomics only).
    pub(crate) fn end_io(&self, bio: &Bio<'_>, pb: &PerBio, ok: bool) -> Completion {
        let f = pb.flags.load(Ordering::Acquire);
        if (f & PB_MARK != 0 || !ok) && !self.md.mark(pb.tracks.clone()) {
            // Complete only once the bits are on disk.
            self.defer(bio, pb, PB_DEFER_ENDIO);
            return Completion::Later;
        }
        if f & PB_SHIPPED != 0 {
            let mut cur = self.max_completed.load(Relaxed);
            while cur < pb.seq {
                match self.max_completed.cmpxchg(cur, pb.seq, Relaxed) {
                    Ok(_) => break,
                    Err(v) => cur = v,
                }
            }
        }
        if pb.flags.fetch_or(PB_LOCAL, Ordering::AcqRel) & PB_REMOTE != 0 {
            Completion::Done
        } else {
            Completion::Later
        }
    }

    /// The peer's part of a sync-mode write is done: complete it if the local part is.
    fn complete_remote(&self, bio: BioRef) {
        // SAFETY: a bio waiting for its ACK is alive: DM completes it only after our
        // `end_io` said `Done`, which needs `PB_REMOTE`, set only here.
        let b = unsafe { Bio::from_raw_waiting(bio.0) };
        let pb = crate::dm::per_bio::<PerBio>(&b);
        if pb.flags.fetch_or(PB_REMOTE, Ordering::AcqRel) & PB_LOCAL != 0 {
            b.endio();
        }
    }

    /// Marks and completes everything in flight (the link is gone).
    fn fail_inflight(&self) {
        loop {
            let mut sh = self.sh.lock();
            let tail = sh.tail;
            let Some(e) = sh.pop_head(tail, u64::MAX) else {
                sh.unsent = sh.tail;
                sh.cache_bytes = 0;
                return;
            };
            drop(sh);
            self.bitmap().set_range(e.tracks.clone());
            if let Some(b) = e.bio {
                self.complete_remote(b);
            }
        }
    }

    // ---------------------------------------------------------------- status

    /// The pair state as the status line shows it.
    pub(crate) fn state(&self) -> (State, Conn) {
        let sh = self.sh.lock();
        let conn = if self.held.load(Relaxed) != 0 && sh.conn != Conn::Connected {
            Conn::Standalone
        } else {
            sh.conn
        };
        (self.state_locked(&sh), conn)
    }

    fn state_locked(&self, sh: &Shared) -> State {
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

    pub(crate) fn stats(&self) -> LinkStats {
        let sh = self.sh.lock();
        let head = sh.head;
        let lag_ms = if sh.head < sh.tail {
            let cap = sh.ring.len() as u64;
            sh.ring
                .get((head % cap.max(1)) as usize)
                .and_then(|e| e.as_ref())
                .map_or(0, |e| (now_ns().saturating_sub(e.issued_ns)) / 1_000_000)
        } else {
            0
        };
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
            Role::Secondary => self.md.sb().flags & format::SB_CONSISTENT != 0,
        };
        let cache_used = self.sh.lock().cache_bytes;
        LinkStats {
            sent_bytes: self.sent_bytes.load(Relaxed),
            acked_bytes: self.acked_bytes.load(Relaxed),
            sync_done: self.sync_done.load(Relaxed),
            sync_total: total,
            cache_used,
            lag_ms,
            dirty_bytes,
            sync_rate,
            eta_s,
            consistent,
        }
    }

    /// Raises a DM event and tells the peer when the state changed.
    fn publish(&self, link: Option<&Link>) {
        let mut sh = self.sh.lock();
        let st = self.state_locked(&sh);
        if st == sh.last_state {
            return;
        }
        sh.last_state = st;
        drop(sh);
        self.table.event();
        if let (Some(l), Role::Primary) = (link, self.cfg.role) {
            let me = crate::rcore::state::Pair {
                state: st,
                role: Role::Primary,
                conn: Conn::Connected,
                held: false,
                consistent: true,
                took_over: false,
            };
            let _ = l.send(&Header::state(me.encode()), &[]);
        }
    }

    fn set_link(&self, link: Option<Arc<Link>>, conn: Conn) {
        let mut sh = self.sh.lock();
        sh.link = link;
        sh.conn = conn;
        if conn != Conn::Connected {
            sh.peer_state = None;
        }
        drop(sh);
        self.shipping.store(
            u32::from(conn == Conn::Connected && self.cfg.role == Role::Primary),
            Relaxed,
        );
    }

    fn identity(&self) -> Identity<'_> {
        Identity {
            secret: &self.cfg.secret,
            pair_id: proto::pair_id_from_name(&self.cfg.pair_word),
            device_bytes: self.cfg.size_bytes,
            track_size: self.cfg.track_size,
            role: self.cfg.role,
            mode: self.cfg.mode,
            node_id: self.node_id,
        }
    }
}

fn log_link_end(p: &Pair, what: &str, e: &LinkError) {
    pr_warn!("{}: {}: {}\n", p.name(), what, D(e));
}

// -------------------------------------------------------------------- metadata

/// Writes new bitmap bits to disk, then releases the writes that waited for them.
fn md_main(p: &Arc<Pair>) {
    while !p.stopping() {
        if p.deferred.is_empty() {
            kthread::nap_ms(100);
            continue;
        }
        md_flush(p);
    }
    md_flush(p);
}

fn md_flush(p: &Pair) {
    if let Err(e) = p.md.persist() {
        pr_err!(
            "{}: writing the bitmap to the metadata device failed: errno {}; bits are kept in memory only\n",
            p.name(),
            -e.to_errno()
        );
        p.md.set_failed();
    }
    p.deferred.drain(|bio| {
        let pb = crate::dm::per_bio::<PerBio>(&bio);
        let f = pb
            .flags
            .fetch_and(!(PB_DEFER_SUBMIT | PB_DEFER_ENDIO), Ordering::AcqRel);
        if f & PB_DEFER_SUBMIT != 0 {
            bio.submit_remapped();
        } else {
            bio.endio();
        }
    });
}

// -------------------------------------------------------------------- watchdog

/// Declares a silent peer dead: no frame for `timeout_ms` ends the connection.
fn watchdog_main(p: &Arc<Pair>) {
    let tick = (p.cfg.timeout_ms / 10).clamp(50, 500);
    while !p.stopping() {
        kthread::sleep_ms(tick);
        let link = p.sh.lock().link.clone();
        if let Some(l) = link {
            let silent_ms = now_ns().saturating_sub(l.last_rx.load(Relaxed)) / 1_000_000;
            if !l.is_dead() && silent_ms > u64::from(p.cfg.timeout_ms) {
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

// -------------------------------------------------------------------- primary

fn primary_main(p: &Arc<Pair>) {
    let Some(peer) = p.cfg.peer else { return };
    let mut buf = match blk::iobuf(proto::MAX_PAYLOAD as usize) {
        Ok(b) => b,
        Err(_) => return,
    };
    let mut copy_buf = match blk::iobuf(blk::MAX_IO) {
        Ok(b) => b,
        Err(_) => return,
    };
    let mut quiet = false;
    while !p.stopping() {
        if p.held.load(Relaxed) != 0 {
            // Suspended by the operator: stay away until `resume`.
            kthread::nap_ms(500);
            continue;
        }
        let sock = match Socket::connect(&peer, p.cfg.timeout_ms) {
            Ok(s) => s,
            Err(e) => {
                if !quiet {
                    pr_info!(
                        "{}: cannot connect to {}: errno {}; retrying\n",
                        p.name(),
                        D(&peer),
                        -e.to_errno()
                    );
                    quiet = true;
                }
                kthread::sleep_ms(1000);
                continue;
            }
        };
        let Ok(link) = Link::new(sock) else { continue };
        p.set_link(Some(link.clone()), Conn::Connecting);
        if let Err(e) = link.handshake(&p.identity(), true, &mut buf) {
            log_link_end(p, "handshake with peer failed", &e);
            link.kill();
            p.set_link(None, Conn::Connecting);
            kthread::sleep_ms(1000);
            continue;
        }
        quiet = false;
        pr_info!(
            "{}: connected to {} ({} mode)\n",
            p.name(),
            D(&peer),
            D(&p.cfg.mode)
        );
        {
            let mut sh = p.sh.lock();
            if !sh.copy_started {
                // The initial copy: every track is dirty. A copy interrupted by a
                // link loss resumes where it was: copied tracks stay clean.
                sh.copy_started = true;
                sh.copy_cursor = 0;
                drop(sh);
                p.bitmap().set_all();
            }
        }
        p.set_link(Some(link.clone()), Conn::Connected);
        p.publish(Some(&*link));
        let rx = Thread::spawn(
            format_args!("rcopy-rx-{}", p.name()),
            p.clone(),
            primary_rx_main,
        );
        let r = match rx {
            Ok(_) => primary_send_loop(p, &link, &mut copy_buf),
            Err(e) => Err(LinkError::Io(e)),
        };
        link.kill();
        drop(rx);
        if let Err(e) = r {
            if !p.stopping() {
                log_link_end(p, "replication link down", &e);
            }
        }
        p.set_link(None, Conn::Connecting);
        p.fail_inflight();
        p.publish(None);
        if p.sh.lock().synced {
            // Writes from now on are ones the peer lacks: a new generation.
            let mut g = 0u64;
            // SAFETY: `g` is a writable 8-byte buffer.
            unsafe { kernel::bindings::get_random_bytes((&raw mut g).cast(), 8) };
            let _ = p.md.update_sb(|sb| sb.new_generation(g | 1));
        }
    }
}

/// Ships cache entries in order; copies dirty tracks when the cache is idle.
fn primary_send_loop(p: &Arc<Pair>, link: &Link, copy_buf: &mut IoBuf) -> Result<(), LinkError> {
    let ping_ns = u64::from(p.cfg.ping_ms()) * 1_000_000;
    let mut last_tx = now_ns();
    let mut copy_pending_done = false;
    while !p.stopping() && !link.is_dead() {
        let mut sh = p.sh.lock();
        // 1. the next unsent entry
        if sh.unsent < sh.tail {
            let pos = sh.unsent;
            sh.unsent += 1;
            let next = sh.slot(pos).and_then(|s| s.as_mut()).map(|e| {
                (
                    Header::write(e.seq, e.dep, e.sector, e.nr_sectors, e.flags),
                    e.data.take(),
                )
            });
            drop(sh);
            if let Some((h, data)) = next {
                let payload = data.as_deref().unwrap_or(&[]);
                link.send(&h, payload)?;
                p.sent_bytes.fetch_add(payload.len() as u64, Relaxed);
                last_tx = now_ns();
            }
            continue;
        }
        // 2. copy a dirty track while the cache has room
        let dirty = p.bitmap().count() > 0;
        let room = (sh.ring.len() as u64) - (sh.tail - sh.head) >= 16;
        if dirty && room && sh.cache_bytes < p.cfg.cache_size {
            let from = sh.copy_cursor;
            drop(sh);
            if !copy_pending_done {
                copy_pending_done = true;
                p.copy_t0.store(now_ns(), Relaxed);
                p.sync_total
                    .store(p.bitmap().count() * u64::from(p.cfg.track_size), Relaxed);
                p.sync_done.store(0, Relaxed);
                p.publish(Some(link));
            }
            copy_track(p, link, from, copy_buf)?;
            last_tx = now_ns();
            continue;
        }
        // 3. the copy finished once everything sent is acknowledged
        if !dirty && copy_pending_done && sh.head == sh.tail {
            copy_pending_done = false;
            sh.synced = true;
            drop(sh);
            // The last track may be short of a whole track: report the copy complete.
            p.sync_done.store(p.sync_total.load(Relaxed), Relaxed);
            if let Err(e) = p.md.clear_synced() {
                pr_err!(
                    "{}: updating the metadata failed: errno {}\n",
                    p.name(),
                    -e.to_errno()
                );
            }
            let _ =
                p.md.update_sb(|sb| sb.flags |= format::SB_SYNCED | format::SB_PRIMARY);
            link.send(&Header::copy_done(p.sync_done.load(Relaxed)), &[])?;
            pr_info!("{}: peer is in sync\n", p.name());
            p.publish(Some(link));
            continue;
        }
        // 4. idle: heartbeat, then wait for work
        if now_ns().saturating_sub(last_tx) >= ping_ns {
            drop(sh);
            link.send(&Header::ping(now_ns()), &[])?;
            last_tx = now_ns();
            continue;
        }
        let _ = p
            .wake
            .wait_interruptible_timeout(&mut sh, kthread::jiffies(p.cfg.ping_ms()));
    }
    if link.is_dead() {
        Err(LinkError::Io(ECONNRESET))
    } else {
        Ok(())
    }
}

/// Copies the next run of dirty tracks at or after `from` (up to 1 MiB of them, so
/// the disk and the link see large I/O): test-and-clear their bits, take sequence
/// numbers, read, send. On failure the tracks are marked again.
fn copy_track(p: &Arc<Pair>, link: &Link, from: u64, buf: &mut IoBuf) -> Result<(), LinkError> {
    let Some(track) = p.bitmap().next_set(from) else {
        return Ok(());
    };
    let ts = u64::from(p.cfg.track_size);
    let chunk = buf.len() as u64;
    let max_tracks = (chunk / ts).max(1);
    let mut sh = p.sh.lock();
    let free = (sh.ring.len() as u64) - (sh.tail - sh.head);
    if free < chunk.div_ceil(ts).max(16) || sh.unsent != sh.tail {
        return Ok(());
    }
    // Clear the run's bits before reading: a write that sets one again after this
    // point is copied again later.
    let mut n = 0;
    while n < max_tracks && p.bitmap().test_and_clear(track + n) {
        n += 1;
    }
    if n == 0 {
        return Ok(());
    }
    let start = track * ts;
    let end = ((track + n) * ts).min(p.cfg.size_bytes);
    let chunks = (end - start).div_ceil(chunk);
    sh.copy_cursor = track + n;
    let first_seq = sh.next_seq;
    for i in 0..chunks {
        let seq = sh.next_seq;
        sh.next_seq += 1;
        let off = start + i * chunk;
        let len = (end - off).min(chunk);
        let tail = sh.tail;
        if let Some(slot) = sh.slot(tail) {
            *slot = Some(Entry {
                seq,
                dep: seq - 1,
                sector: off >> 9,
                nr_sectors: (len >> 9) as u32,
                flags: proto::WRITE_COPY,
                len: len as u32,
                data: None,
                bio: None,
                tracks: geometry::track_range(off, len, p.cfg.track_size),
                issued_ns: now_ns(),
            });
        }
        sh.tail += 1;
        sh.cache_bytes += len;
    }
    // Everything queued before was sent (checked above), so these are next on the wire.
    sh.unsent = sh.tail;
    drop(sh);
    for i in 0..chunks {
        let off = start + i * chunk;
        let len = (end - off).min(chunk) as usize;
        if let Err(e) = p.data.read(off >> 9, buf, len) {
            pr_err!(
                "{}: reading tracks {}..{} for the copy failed: errno {}\n",
                p.name(),
                track,
                track + n,
                -e.to_errno()
            );
            p.bitmap().set_range(track..track + n);
            return Err(LinkError::Io(e));
        }
        let h = Header::write(
            first_seq + i,
            first_seq + i - 1,
            off >> 9,
            (len >> 9) as u32,
            proto::WRITE_COPY,
        );
        link.send(&h, &buf[..len])?;
        p.sent_bytes.fetch_add(len as u64, Relaxed);
    }
    p.sync_done.fetch_add(end - start, Relaxed);
    throttle(p);
    Ok(())
}

/// Keeps the copy at or below `resync_rate` bytes per second.
fn throttle(p: &Pair) {
    let rate = p.cfg.resync_rate;
    if rate == 0 {
        return;
    }
    let done = p.sync_done.load(Relaxed);
    let due_ns = done.saturating_mul(1_000_000_000) / rate;
    let spent = now_ns().saturating_sub(p.copy_t0.load(Relaxed));
    if due_ns > spent && !p.stopping() {
        kthread::nap_ms(((due_ns - spent) / 1_000_000).min(1000) as u32 + 1);
    }
}

/// Receives ACKs and PONGs on the primary.
fn primary_rx_main(p: &Arc<Pair>) {
    let Some(link) = p.sh.lock().link.clone() else {
        return;
    };
    let mut buf = [0u8; 512];
    while !p.stopping() && !link.is_dead() {
        let h = match link.recv(&mut buf) {
            Ok(h) => h,
            Err(e) => {
                if !p.stopping() && !link.is_dead() {
                    log_link_end(p, "receive failed", &e);
                }
                link.kill();
                break;
            }
        };
        match h.kind {
            Kind::Ack => ack(p, h.seq, h.b),
            Kind::Pong | Kind::Ping => {}
            Kind::Bye => link.kill(),
            k => {
                log_link_end(p, "disconnecting", &LinkError::Unexpected(k));
                link.kill();
            }
        }
    }
    p.wake.notify_all();
}

/// Retires every entry up to `seq`, completing sync-mode writes.
fn ack(p: &Pair, seq: u64, errno: u64) {
    loop {
        let mut sh = p.sh.lock();
        let unsent = sh.unsent;
        let Some(e) = sh.pop_head(unsent, seq) else {
            return;
        };
        drop(sh);
        p.acked_bytes.fetch_add(u64::from(e.len), Relaxed);
        if errno != 0 && e.seq == seq {
            pr_err!("{}: peer failed write {}: errno {}\n", p.name(), seq, errno);
            p.bitmap().set_range(e.tracks.clone());
        }
        if let Some(b) = e.bio {
            p.complete_remote(b);
        }
        p.wake.notify_one();
    }
}

// -------------------------------------------------------------------- secondary

fn secondary_main(p: &Arc<Pair>) {
    let Some(local) = p.cfg.local else { return };
    let mut buf = match blk::iobuf(proto::MAX_PAYLOAD as usize) {
        Ok(b) => b,
        Err(_) => return,
    };
    let mut quiet = false;
    while !p.stopping() {
        let lsock = match Socket::listen(&local)
            .and_then(|s| Arc::new(s, GFP_KERNEL).map_err(Into::into))
        {
            Ok(s) => s,
            Err(e) => {
                if !quiet {
                    pr_warn!(
                        "{}: cannot listen on {}: errno {}; retrying\n",
                        p.name(),
                        D(&local),
                        -e.to_errno()
                    );
                    quiet = true;
                }
                kthread::sleep_ms(1000);
                continue;
            }
        };
        quiet = false;
        *p.listener.lock() = Some(lsock.clone());
        if p.stopping() {
            break;
        }
        while !p.stopping() {
            let Ok(sock) = lsock.accept() else { break };
            let Ok(link) = Link::new(sock) else { continue };
            p.set_link(Some(link.clone()), Conn::Connecting);
            match link.handshake(&p.identity(), false, &mut buf) {
                Ok(hello) => {
                    p.sh.lock().peer_mode = Some(hello.mode);
                    pr_info!(
                        "{}: primary {} connected\n",
                        p.name(),
                        D(&link.peer.unwrap_or(local))
                    );
                    p.set_link(Some(link.clone()), Conn::Connected);
                    p.publish(None);
                    if let Err(e) = serve(p, &link, &mut buf) {
                        if !p.stopping() {
                            log_link_end(p, "replication link down", &e);
                        }
                    }
                }
                Err(e) => {
                    let who = link.peer.unwrap_or(SockAddr {
                        ip: [0; 4],
                        port: 0,
                    });
                    log_link_end(p, "refused connection", &e);
                    pr_warn!("{}: (peer {})\n", p.name(), D(&who));
                }
            }
            link.kill();
            p.set_link(None, Conn::Connecting);
            p.publish(None);
        }
        p.listener.lock().take();
    }
}

/// Applies frames from the primary, in order, acknowledging each write.
fn serve(p: &Pair, link: &Link, buf: &mut IoBuf) -> Result<(), LinkError> {
    let mut last_seq = 0u64;
    while !p.stopping() {
        let h = link.recv(buf)?;
        match h.kind {
            Kind::Write => {
                if !h.write_fits(p.cfg.size_bytes) {
                    return Err(LinkError::Proto(proto::ProtoError::SectorOverflow));
                }
                // Writes are applied in sequence order: one out of order is a
                // protocol error, never applied.
                if h.seq <= last_seq {
                    return Err(LinkError::Proto(proto::ProtoError::BadSeq));
                }
                last_seq = h.seq;
                let r = apply(p, &h, buf);
                let errno = r.err().map_or(0, |e| (-e.to_errno()) as u64);
                link.send(&Header::ack(h.seq, proto::ACK_DURABLE, errno), &[])?;
            }
            Kind::Ping => link.send(&Header::pong(h.a), &[])?,
            Kind::State => {
                let st = crate::rcore::state::Pair::decode(h.a).map(|s| s.state);
                p.sh.lock().peer_state = st;
                if matches!(st, Some(State::Copying | State::Resyncing)) {
                    // Tracks now arrive out of order: not a usable image until done.
                    let _ = p.md.update_sb(|sb| sb.flags &= !format::SB_CONSISTENT);
                }
                p.publish(None);
            }
            Kind::CopyDone => {
                p.sh.lock().peer_state = Some(State::Duplex);
                let _ = p.md.update_sb(|sb| sb.flags |= format::SB_CONSISTENT);
                p.publish(None);
            }
            Kind::Bye => return Ok(()),
            k => return Err(LinkError::Unexpected(k)),
        }
    }
    Ok(())
}

fn apply(p: &Pair, h: &Header, buf: &mut IoBuf) -> Result {
    let nr = u64::from(h.nr_sectors);
    let f = h.flags;
    if f & proto::WRITE_DISCARD != 0 {
        p.data.discard(h.a, nr)
    } else if f & proto::WRITE_ZEROES != 0 {
        p.data.zeroout(h.a, nr)
    } else if nr == 0 {
        p.data.flush()
    } else {
        p.data.write(
            h.a,
            buf,
            h.len as usize,
            f & proto::WRITE_FUA != 0,
            f & proto::WRITE_PREFLUSH != 0,
        )
    }
}
