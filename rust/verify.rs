// SPDX-License-Identifier: GPL-2.0

//! `snapshot --verify` on the primary: the image sum (`rcore::imagesum`) of this
//! side's data device exactly at a snapshot marker's place in the stream, sent to
//! the secondary, which keeps it with the snapshot so that the snapshot's own sum
//! can be compared with it (`rcopyctl snapshot-verify`).
//!
//! How the sum is exact while writes go on (no pause, no copy kept):
//! - The run starts under the lock that gives writes their sequence numbers, in
//!   the same critical section as the marker (`Pair::request_verify`). Every write
//!   sequenced before the marker is in the image; every write after it is not.
//! - A write sequenced after the marker that touches a track not yet summed is
//!   held (`Pair::ship` puts it on `Pair::verify_held`) until the scan has read
//!   and summed that track; held writes' tracks are summed first, so the wait is
//!   one track read.
//! - Before the scan reads a track, it waits until no write to it is in flight
//!   locally (`Pair::inflight`): those can only be writes sequenced before the
//!   marker, since later ones to an unsummed track are held.
//! - A write that goes down without being sequenced (the link is down, the ring
//!   or the async cache is full, a huge discard) taints the run: its place
//!   relative to the marker is unknown, so no sum is reported (`sum-lost`).
//!
//! What if the machine dies here: nothing is written by the run; the snapshot on
//! the secondary simply has no sum. What if the link drops: the run is tainted,
//! held writes are let go, and the result is `sum-lost`. What if `dmsetup reload`
//! runs: the engine stops (`Pair::stop` stops this thread after DM has completed
//! every bio, held ones included, which the thread lets go as long as it runs).
//!
//! Locking: [`VerifyRun`] lives in `Shared::verify`, under the pair's spinlock
//! `sh`.

use crate::blk::{self, IoBuf};
use crate::dm::BioList;
use crate::engine::{Pair, PerBio};
use crate::kthread;
use crate::rcore::geometry::SECTOR_SHIFT;
use crate::rcore::imagesum::{self, TrackDigest, SUM_LEN};
use crate::rcore::proto;
use crate::rcore::status::Conn;
use crate::tlog::MarkOutcome;
use core::ops::Range;
use kernel::prelude::*;
use kernel::sync::atomic::Relaxed;
use kernel::sync::Arc;

/// How long the thread waits for the secondary's answers, in 10 ms naps.
const ANSWER_NAPS: u32 = 60_000;

/// One verify run. Guarded by the pair's spinlock `sh` (in `Shared::verify`).
pub(crate) struct VerifyRun {
    /// The snapshot marker's ticket.
    pub(crate) ticket: u64,
    /// One bit per track: summed.
    summed: KVVec<u64>,
    /// Writes are held on unsummed tracks (the scan is running).
    pub(crate) active: bool,
    /// A write went down unsequenced meanwhile: no sum is reported.
    pub(crate) tainted: bool,
}

impl VerifyRun {
    /// A run for `tracks` tracks and the marker `ticket` (set once it is queued).
    /// Process context.
    pub(crate) fn new(tracks: u64) -> Result<KBox<VerifyRun>> {
        let words = usize::try_from(tracks.div_ceil(64)).map_err(|_| EINVAL)?;
        let mut summed = KVVec::with_capacity(words, GFP_KERNEL)?;
        summed.resize(words, 0, GFP_KERNEL)?;
        Ok(KBox::new(
            VerifyRun {
                ticket: 0,
                summed,
                active: true,
                tainted: false,
            },
            GFP_KERNEL,
        )?)
    }

    fn is_summed(&self, t: u64) -> bool {
        self.summed
            .get((t / 64) as usize)
            .is_some_and(|w| w & (1 << (t % 64)) != 0)
    }

    /// Whether a write to `tracks` must wait for the scan.
    pub(crate) fn holds(&self, tracks: Range<u64>) -> bool {
        self.active && tracks.into_iter().any(|t| !self.is_summed(t))
    }

    fn set_summed(&mut self, t: u64) {
        if let Some(w) = self.summed.get_mut((t / 64) as usize) {
            *w |= 1 << (t % 64);
        }
    }
}

/// The scan's state, private to the verify thread.
struct Scan {
    buf: IoBuf,
    sum: [u8; SUM_LEN],
    tracks: u64,
    summed: u64,
    held: u64,
}

impl Scan {
    /// Sums track `t` unless it is summed already: waits for the writes in flight
    /// on it (sequenced before the marker), reads it, adds its digest, marks it.
    fn track(&mut self, p: &Pair, t: u64) -> Result {
        if p.sh.lock().verify.as_ref().is_none_or(|v| v.is_summed(t)) {
            return Ok(());
        }
        let ts = u64::from(p.cfg.track_size);
        let start = t * ts;
        let end = (start + ts).min(p.cfg.size_bytes);
        let (sector, nr) = (start >> SECTOR_SHIFT, (end - start) >> SECTOR_SHIFT);
        while p.inflight.busy(sector, nr) {
            if p.stopping() {
                return Err(EINTR);
            }
            kthread::nap_ms(1);
        }
        let mut d = TrackDigest::new(t);
        let mut at = start;
        while at < end {
            let n = ((end - at) as usize).min(self.buf.len());
            p.data.read(at >> SECTOR_SHIFT, &mut self.buf, n)?;
            d.update(&self.buf[..n]);
            at += n as u64;
        }
        imagesum::add(&mut self.sum, &d.finish());
        if let Some(v) = p.sh.lock().verify.as_mut() {
            v.set_summed(t);
        }
        self.summed += 1;
        Ok(())
    }

    /// Sums the tracks of the held writes, then lets them go on. Returns whether
    /// there were any.
    fn held(&mut self, p: &Pair) -> Result<bool> {
        let batch = BioList::new();
        p.verify_held.drain(|b| batch.push(&b));
        if batch.is_empty() {
            return Ok(false);
        }
        let mut r = Ok(());
        batch.for_each(|bio| {
            self.held += 1;
            let tracks = crate::dm::per_bio::<PerBio>(bio).tracks();
            for t in tracks {
                if r.is_ok() {
                    r = self.track(p, t);
                }
            }
        });
        // Let them go even after an error (the run is over then: `finish` clears
        // `active`, so they are not held again).
        if r.is_err() {
            stop_holding(p);
        }
        batch.drain(|bio| {
            crate::mdthread::release_held(p, bio);
        });
        r.map(|()| true)
    }
}

/// Lets every held write go on (decided again by `Pair::ship`). Called once no
/// run holds writes any more, so none is held again. Process context.
pub(crate) fn release_all(p: &Pair) {
    // `drain` takes the whole list first: a write held again goes on a new one.
    p.verify_held.drain(|bio| {
        crate::mdthread::release_held(p, bio);
    });
}

/// Ends the holding: no write waits for the scan from now on.
fn stop_holding(p: &Pair) {
    if let Some(v) = p.sh.lock().verify.as_mut() {
        v.active = false;
    }
}

/// The scan, then the sum's delivery. Context: the pair's verify thread, started
/// by `Pair::request_verify`.
pub(crate) fn verify_main(p: &Arc<Pair>) {
    let Some(ticket) = p.sh.lock().verify.as_ref().map(|v| v.ticket) else {
        return;
    };
    let t0 = crate::link::now_ns();
    let sum = scan(p);
    stop_holding(p);
    // Writes held at the end go on.
    release_all(p);
    let tainted =
        p.sh.lock().verify.as_ref().is_none_or(|v| v.tainted) || p.verify_taint.load(Relaxed) != 0;
    let outcome = deliver(p, ticket, if tainted { None } else { sum.as_ref() });
    let ms = (crate::link::now_ns() - t0) / 1_000_000;
    match (&sum, outcome) {
        (Some(s), Some(MarkOutcome::Summed(id, _))) => pr_info!(
            "{}: snapshot {}: image sum {} computed over {} tracks in {} ms ({} writes waited for the scan), recorded on the peer\n",
            p.name(),
            id,
            core::str::from_utf8(&imagesum::hex(&s.sum)).unwrap_or("?"),
            s.tracks,
            ms,
            s.held
        ),
        _ => pr_warn!(
            "{}: snapshot ticket {}: no image sum (the link dropped or a write went down unsequenced during the scan, or the snapshot was not taken)\n",
            p.name(),
            ticket
        ),
    }
    p.sh.lock().verify = None;
    p.event();
}

/// Sums every track; `None` if the run ended early.
fn scan(p: &Pair) -> Option<Scan> {
    let buf = blk::iobuf((p.cfg.track_size as usize).min(blk::MAX_IO)).ok()?;
    let tracks = p.cfg.size_bytes.div_ceil(u64::from(p.cfg.track_size));
    let mut s = Scan {
        buf,
        sum: [0; SUM_LEN],
        tracks,
        summed: 0,
        held: 0,
    };
    let mut next = 0u64;
    while !p.stopping() {
        {
            let sh = p.sh.lock();
            // A dropped link: the sum could not be delivered (and unsequenced
            // writes follow).
            if p.verify_taint.load(Relaxed) != 0
                || sh.conn != Conn::Connected
                || sh.verify.as_ref().is_none_or(|v| v.tainted)
            {
                return None;
            }
        }
        match s.held(p) {
            Ok(true) => continue,
            Ok(false) => {}
            Err(_) => return None,
        }
        while next < tracks
            && p.sh
                .lock()
                .verify
                .as_ref()
                .is_some_and(|v| v.is_summed(next))
        {
            next += 1;
        }
        if next >= tracks {
            return (s.summed == tracks).then_some(s);
        }
        if s.track(p, next).is_err() {
            return None;
        }
    }
    None
}

/// Waits for the snapshot's id, then sends the sum and waits for the secondary to
/// record it. Records the outcome for the ticket and returns it.
fn deliver(p: &Pair, ticket: u64, sum: Option<&Scan>) -> Option<MarkOutcome> {
    let id = match wait_outcome(p, ticket)? {
        MarkOutcome::Taken(id) => id,
        // Refused or lost: that is the ticket's outcome already.
        o => return Some(o),
    };
    let sent = sum
        .and_then(|s| proto::Mark::sum(id, s.sum))
        .and_then(|m| p.request_mark(m).ok());
    let outcome = match (sent.and_then(|t| wait_outcome(p, t)), sum) {
        (Some(MarkOutcome::Taken(_)), Some(s)) => MarkOutcome::Summed(id, s.sum),
        _ => MarkOutcome::SumLost(id),
    };
    p.sh.lock().mark_done(ticket, outcome);
    Some(outcome)
}

/// The outcome of marker `ticket` once there is one (`None`: stopping, or no
/// answer in time).
fn wait_outcome(p: &Pair, ticket: u64) -> Option<MarkOutcome> {
    for _ in 0..ANSWER_NAPS {
        if let Some(o) = p.sh.lock().mark_outcome(ticket) {
            return Some(o);
        }
        if p.stopping() {
            return None;
        }
        kthread::nap_ms(10);
    }
    None
}
