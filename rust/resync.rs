// SPDX-License-Identifier: GPL-2.0

//! The primary's copier: claims runs of dirty tracks, reads them, and sends them as
//! `WRITE_COPY` frames, with the next runs' reads in flight while this one is sent.
//!
//! A copy has two steps. [`claim`] (under `sh`) clears the run's bits, takes its
//! sub-track entries and gives its extents sequence numbers and log entries;
//! [`start`] submits the read. [`finish`] waits for the read and sends the frames.
//! The send loop (`primary::send_loop`) claims and starts the next runs, one per
//! free buffer ([`alloc_bufs`]: two large, fourteen small), before it finishes the
//! current one when nothing else is queued, so the disk reads run while the link
//! sends: a resync moves at the slower of the two, not at their sum (DRBD keeps
//! several resync requests in flight for the same reason). Short runs (scattered
//! 4 KiB writes) keep up to 16 reads in flight: a resync of 8 MiB written as 4 KiB
//! random blocks took 2.3 to 3.1 s with two, 1.2 to 1.6 s with sixteen.
//!
//! Order: frames go on the wire in sequence order. A claimed run's seqs come before
//! anything queued after the claim, so the send loop finishes a claimed copy before
//! it sends anything else, and claims ahead only while nothing else is queued.
//!
//! What if the machine dies here: the bits are cleared in memory only; on disk they
//! stay set until the peer confirmed everything (`Metadata::clear_synced`), so a
//! restart copies these tracks again. The link drops (or a read fails): a claimed
//! run's log entries are not confirmed, so `fail_inflight` marks their ranges
//! again; a read still in flight is waited for before its buffer is reused
//! ([`PendingRead`]'s drop). A reload: the old pair's threads stop first, so one
//! copier runs per metadata device.

use crate::blk::{self, IoBuf, PendingRead};
use crate::engine::{Entry, Pair};
use crate::link::{now_ns, Link, LinkError};
use crate::rcore::geometry;
use crate::rcore::proto::{self, Header};
use crate::rcore::submap;
use kernel::prelude::*;
use kernel::sync::atomic::Relaxed;

/// Tracks a copy run spans at most when sixteenths are used (their entries are
/// taken into an array of this size).
const MAX_RUN: usize = 16;

/// A run of dirty tracks claimed for copying: its bits are clear, its sub-track
/// entries taken, and its extents hold log entries with seqs `first_seq..`.
pub(crate) struct Claim {
    track: u64,
    n: u64,
    start: u64,
    end: u64,
    /// The sub-track entries of tracks `track..track + n` (`None`: the whole
    /// track); empty when sixteenths are not used.
    parts: [Option<u16>; MAX_RUN],
    nparts: usize,
    first_seq: u64,
    /// The dependency every frame of the run carries.
    dep: u64,
    /// The bytes `lo..hi` the extents lie in.
    lo: u64,
    hi: u64,
    /// The longest extent (and read): the copy buffer's length.
    chunk: u64,
}

impl Claim {
    /// Calls `f(offset, length)` for each extent, in order, each at most `chunk`.
    fn extents(&self, p: &Pair, f: &mut dyn FnMut(u64, u64)) {
        if self.nparts == 0 {
            let mut off = self.start;
            while off < self.end {
                let len = (self.end - off).min(self.chunk);
                f(off, len);
                off += len;
            }
        } else {
            for_extents(p, self.track, &self.parts[..self.nparts], f);
        }
    }

    /// Whether one read covers every extent (the usual case: a run is at most one
    /// chunk, unless tracks are larger than that).
    fn one_read(&self) -> bool {
        self.hi > self.lo && self.hi - self.lo <= self.chunk
    }
}

/// A claimed run with its buffer: its read in flight, or (a run one read cannot
/// cover) read extent by extent when sent.
pub(crate) struct Copy<'a> {
    claim: Claim,
    io: Io<'a>,
}

enum Io<'a> {
    Reading(PendingRead<'a>),
    Later(&'a mut IoBuf),
}

/// Claims the next run of dirty tracks at or after `from` (up to `chunk` bytes of
/// them, so the disk and the link see large I/O): test-and-clear their bits, take
/// their sub-track entries, take sequence numbers and log entries. A track with an
/// entry sends only its written sixteenths (`dirty.rs`); the others are sent whole.
/// `None`: nothing copyable now (no dirty track, writes in flight on it, entries
/// queued before it, or no room in the log).
///
/// A run with a shipped write still in flight locally is skipped for now: the read
/// could miss that write and overwrite it on the peer, which applies the copy later.
/// Writes that take a sequence number after the claim depend on it (the claim raises
/// `max_completed`, see [`Pair::raise_max_completed`]), so the peer applies them
/// after it and they need no wait.
///
/// Context: the pair's main thread while connected; takes `sh`.
fn claim(p: &Pair, from: u64, chunk: u64) -> Option<Claim> {
    let track = p.bitmap().next_set(from)?;
    let ts = u64::from(p.cfg.track_size);
    let mut max_tracks = (chunk / ts).max(1);
    let mut sh = p.sh.lock();
    let free = (sh.ring.len() as u64) - (sh.tail - sh.head);
    if free < chunk.div_ceil(ts).max(16) || sh.unsent != sh.tail {
        return None;
    }
    if p.sub_part != 0 {
        // A track's sixteenths make at most 8 runs, one log entry each.
        max_tracks = max_tracks.min(MAX_RUN as u64).min(free / 8);
    }
    let mut n = 0;
    while n < max_tracks && p.bitmap().test(track + n) {
        n += 1;
    }
    let sectors = |n: u64| ((track + n) * ts).min(p.cfg.size_bytes) / 512 - track * ts / 512;
    if p.inflight.busy(track * ts / 512, sectors(n)) {
        n = 1;
        if p.inflight.busy(track * ts / 512, sectors(1)) {
            sh.copy_cursor = track + 1;
            return None;
        }
    }
    // Clear the run's bits before reading: a write that sets one again after this
    // point is copied again later.
    let mut got = 0;
    while got < n && p.bitmap().test_and_clear(track + got) {
        got += 1;
    }
    let n = got;
    if n == 0 {
        return None;
    }
    sh.copy_cursor = track + n;
    if track < from {
        // A new pass over the bitmap: this run may overlap any copy claimed so far
        // (a track marked again after its copy), which the peer may not have
        // applied yet.
        sh.copy_floor = sh.next_seq - 1;
    }
    let mut c = Claim {
        track,
        n,
        start: track * ts,
        end: ((track + n) * ts).min(p.cfg.size_bytes),
        parts: [None; MAX_RUN],
        nparts: 0,
        first_seq: sh.next_seq,
        // The writes completed before the claim (the read sees them; a write in
        // flight on the run blocked the claim, `busy` above, and `end_io` raises
        // `max_written` before it leaves `inflight`), and the copies before the
        // last wrap (`copy_floor`), not those since: the cursor only moves forward
        // between wraps, so those runs are disjoint from this one and the peer may
        // apply them in parallel. A write issued after the claim depends on the
        // copy (below). Model test: `resync_copies_converge_with_concurrent_writes`
        // (rcopy-core `tests/order.rs`).
        dep: p
            .max_written
            .load(Relaxed)
            .max(sh.copy_floor)
            .min(sh.next_seq - 1),
        lo: u64::MAX,
        hi: 0,
        chunk,
    };
    if p.sub_part != 0 {
        c.nparts = n as usize;
        p.take_parts(track, &mut c.parts[..c.nparts]);
    }
    let (mut lo, mut hi) = (u64::MAX, 0);
    c.extents(p, &mut |off, len| {
        let seq = sh.next_seq;
        sh.next_seq += 1;
        lo = lo.min(off);
        hi = hi.max(off + len);
        sh.push(Entry {
            seq,
            dep: c.dep,
            sector: off >> 9,
            nr_sectors: (len >> 9) as u32,
            flags: proto::WRITE_COPY,
            len: len as u32,
            data: None,
            bio: None,
            tracks: geometry::track_range(off, len, p.cfg.track_size),
            al: 0..0,
            issued_ns: now_ns(),
            mark: None,
        });
    });
    (c.lo, c.hi) = (lo, hi);
    // Everything queued before was sent (checked above), so these are next on the
    // wire; the send loop sends them (`finish`) before anything queued later.
    sh.unsent = sh.tail;
    // Writes that take a seq from now on depend on these copies: the peer applies
    // them after the copies, which may read data older than they write.
    p.raise_max_completed(sh.next_seq - 1);
    Some(c)
}

/// Marks a claimed run's tracks again after its read failed, and says so.
fn read_failed(p: &Pair, c: &Claim, e: Error) -> LinkError {
    pr_err!(
        "{}: reading tracks {}..{} for the copy failed: errno {}\n",
        p.name(),
        c.track,
        c.track + c.n,
        -e.to_errno()
    );
    p.mark_whole(c.track..c.track + c.n);
    LinkError::Io(e)
}

/// Starts reading a claimed run into `buf` (at least `chunk` bytes).
///
/// Context: the pair's main thread; does not wait for the disk.
fn start<'a>(p: &Pair, c: Claim, buf: &'a mut IoBuf) -> Result<Copy<'a>, LinkError> {
    let io = if c.one_read() {
        let r = p.data.read_async(c.lo >> 9, buf, (c.hi - c.lo) as usize);
        Io::Reading(r.map_err(|e| read_failed(p, &c, e))?)
    } else {
        Io::Later(buf)
    };
    Ok(Copy { claim: c, io })
}

/// Claims the next run at or after `from` and starts its read into a free buffer
/// (the run is at most the buffer's length); `None`: no buffer is free, or nothing
/// is copyable now (see [`claim`]). A run is claimed only with a buffer in hand, so
/// a claimed run is always read and sent.
///
/// Context: the pair's main thread while connected; takes `sh`.
pub(crate) fn claim_and_start<'a>(
    p: &Pair,
    bufs: &mut Bufs<'a>,
    from: u64,
) -> Result<Option<Copy<'a>>, LinkError> {
    let Some(buf) = bufs.take(u64::from(p.cfg.track_size)) else {
        return Ok(None);
    };
    match claim(p, from, buf.len() as u64) {
        Some(c) => {
            bufs.short = c.hi.saturating_sub(c.lo) <= SMALL_IO as u64;
            start(p, c, buf).map(Some)
        }
        None => {
            bufs.put(buf);
            Ok(None)
        }
    }
}

/// Waits for a copy's read and sends its frames; gives its buffer back.
///
/// Context: the pair's main thread; sleeps on the disk and the socket.
pub(crate) fn finish<'a>(p: &Pair, link: &Link, cp: Copy<'a>) -> Result<&'a mut IoBuf, LinkError> {
    let c = cp.claim;
    let (whole, buf) = match cp.io {
        Io::Reading(r) => match r.wait() {
            (Ok(()), Some(buf)) => (true, buf),
            (Ok(()), None) => return Err(read_failed(p, &c, EINVAL)),
            (Err(e), _) => return Err(read_failed(p, &c, e)),
        },
        Io::Later(buf) => (false, buf),
    };
    let mut seq = c.first_seq;
    let mut r = Ok(());
    c.extents(p, &mut |off, len| {
        if r.is_err() {
            return;
        }
        let data = if whole {
            (off - c.lo) as usize..(off - c.lo + len) as usize
        } else {
            if let Err(e) = p.data.read(off >> 9, buf, len as usize) {
                r = Err(read_failed(p, &c, e));
                return;
            }
            0..len as usize
        };
        let h = Header::write(seq, c.dep, off >> 9, (len >> 9) as u32, proto::WRITE_COPY);
        seq += 1;
        r = link.send(&h, &buf[data]);
        if r.is_ok() {
            p.sent_bytes.fetch_add(len, Relaxed);
        }
    });
    r?;
    p.sync_done.fetch_add(c.end - c.start, Relaxed);
    Ok(buf)
}

/// Calls `f(offset, length)` for the extents a copy of tracks `track..` sends, given
/// their sub-track entries (`None`: the whole track), adjacent extents merged.
fn for_extents(p: &Pair, track: u64, parts: &[Option<u16>], f: &mut dyn FnMut(u64, u64)) {
    let ts = u64::from(p.cfg.track_size);
    let size = p.cfg.size_bytes;
    let (mut cur, mut cur_len) = (0u64, 0u64);
    let mut add = |off: u64, len: u64| {
        if cur_len > 0 && cur + cur_len == off {
            cur_len += len;
        } else {
            if cur_len > 0 {
                f(cur, cur_len);
            }
            (cur, cur_len) = (off, len);
        }
    };
    for (i, m) in parts.iter().enumerate() {
        let t = track + i as u64;
        match m {
            Some(mask) => {
                submap::runs(*mask, t, p.sub_part, size, &mut add);
            }
            None => {
                let off = t * ts;
                let end = (off + ts).min(size);
                if off < end {
                    add(off, end - off);
                }
            }
        }
    }
    if cur_len > 0 {
        f(cur, cur_len);
    }
}

/// Copy buffers of a connection of [`blk::MAX_IO`] bytes, for runs of whole tracks.
pub(crate) const BIG: usize = 2;
/// Copy buffers of [`SMALL_IO`] bytes, for short runs.
pub(crate) const SMALL: usize = 14;
/// A small copy buffer's length: one default track.
pub(crate) const SMALL_IO: usize = 64 << 10;
/// Copy buffers in all: the most runs claimed (and reads in flight) at once.
pub(crate) const NBUF: usize = BIG + SMALL;

/// Allocates a connection's copy buffers: [`BIG`] of [`blk::MAX_IO`] bytes, then
/// [`SMALL`] of [`SMALL_IO`] (2.9 MiB in all).
///
/// Why two sizes: a resync of whole tracks reads a megabyte at a time, and two
/// such reads (one in flight while the other is sent) keep the disk and the link
/// busy. A resync of scattered 4 KiB writes claims one short run per track, and
/// two reads in flight leave the disk idle for most of each round trip of a read:
/// the small buffers let [`SMALL`] more short reads be in flight, as DRBD keeps
/// many resync requests in flight, without holding 16 MiB per pair.
///
/// Context: thread context; sleeps to allocate.
pub(crate) fn alloc_bufs() -> Result<KVec<IoBuf>> {
    let mut v = KVec::with_capacity(NBUF, GFP_KERNEL)?;
    for i in 0..NBUF {
        let len = if i < BIG { blk::MAX_IO } else { SMALL_IO };
        v.push(blk::iobuf(len)?, GFP_KERNEL)?;
    }
    Ok(v)
}

/// A connection's free copy buffers. Used by the send loop only (no lock).
pub(crate) struct Bufs<'a> {
    free: [Option<&'a mut IoBuf>; NBUF],
    /// The latest claim's span fit a small buffer: the next may take one (a
    /// resync of whole tracks keeps to the large buffers and large runs).
    short: bool,
}

impl<'a> Bufs<'a> {
    pub(crate) fn new(bufs: &'a mut [IoBuf]) -> Self {
        let mut free: [Option<&'a mut IoBuf>; NBUF] = Default::default();
        for (slot, b) in free.iter_mut().zip(bufs.iter_mut()) {
            *slot = Some(b);
        }
        Bufs { free, short: false }
    }

    /// A free buffer: a large one if one is free, else a small one if the latest
    /// claim was short and a track fits one (`ts`: the track size; a claim's
    /// extents are at most `max(ts, buffer length)`, see [`claim`]).
    fn take(&mut self, ts: u64) -> Option<&'a mut IoBuf> {
        let small_ok = self.short && ts <= SMALL_IO as u64;
        let pos = self
            .free
            .iter()
            .position(|b| b.as_ref().is_some_and(|b| b.len() >= blk::MAX_IO))
            .or_else(|| {
                small_ok
                    .then(|| self.free.iter().position(Option::is_some))
                    .flatten()
            })?;
        self.free[pos].take()
    }

    /// Gives a buffer back.
    pub(crate) fn put(&mut self, buf: &'a mut IoBuf) {
        if let Some(slot) = self.free.iter_mut().find(|b| b.is_none()) {
            *slot = Some(buf);
        }
    }
}

/// The claimed runs whose reads are in flight, oldest first: their frames go out
/// in this order (their seqs are in this order, see the module's "Order"). At most
/// [`NBUF`]: a run is claimed only with a buffer in hand.
pub(crate) struct Queue<'a> {
    q: [Option<Copy<'a>>; NBUF],
    head: usize,
    len: usize,
}

impl<'a> Queue<'a> {
    pub(crate) fn new() -> Self {
        Queue {
            q: core::array::from_fn(|_| None),
            head: 0,
            len: 0,
        }
    }

    /// Queues a claimed run behind the others.
    pub(crate) fn push(&mut self, c: Copy<'a>) {
        // Never full: there are as many slots as buffers.
        self.q[(self.head + self.len) % NBUF] = Some(c);
        self.len += 1;
    }

    /// The oldest claimed run.
    pub(crate) fn pop(&mut self) -> Option<Copy<'a>> {
        let c = self.q[self.head].take()?;
        self.head = (self.head + 1) % NBUF;
        self.len -= 1;
        Some(c)
    }
}
