// SPDX-License-Identifier: GPL-2.0

//! The transfer log: a ring of the primary's entries in sequence order, from the
//! write's `map` until the peer confirms it durable, and the connection state kept
//! with it under the pair's spinlock (see `engine.rs` for the locking and
//! `primary.rs` for how entries move).
//!
//! What if the link drops here: `Pair::fail_inflight` pops every entry, marks its
//! tracks and drops its activity-log references. What if the machine dies: the
//! entries are lost with it, and the activity log and the bitmap say what to resync.

use crate::link::{now_ns, Link};
use crate::pagebuf::PageBuf;
use crate::rcore::proto;
use crate::rcore::status::{Conn, Mode, State};
use core::ops::Range;
use kernel::prelude::*;
use kernel::sync::Arc;

/// One write (or copy run, or barrier) in the transfer log.
pub(crate) struct Entry {
    pub(crate) seq: u64,
    pub(crate) dep: u64,
    pub(crate) sector: u64,
    pub(crate) nr_sectors: u32,
    pub(crate) flags: u16,
    pub(crate) len: u32,
    /// The payload, until it is sent.
    pub(crate) data: Option<PageBuf>,
    /// Sync mode: the bio waiting for this entry's ACK.
    pub(crate) bio: Option<BioRef>,
    /// Tracks to mark if the peer never confirms the entry durable.
    pub(crate) tracks: Range<u64>,
    /// Activity-log extents referenced until then.
    pub(crate) al: Range<u64>,
    pub(crate) issued_ns: u64,
    /// A marker (`WRITE_MARK`), with `sector` holding its ticket.
    pub(crate) mark: Option<proto::Mark>,
}

impl Entry {
    /// An empty flush: once the peer acknowledges it, everything before it is durable.
    pub(crate) fn barrier(seq: u64) -> Entry {
        Entry {
            seq,
            dep: seq - 1,
            sector: 0,
            nr_sectors: 0,
            flags: proto::WRITE_PREFLUSH,
            len: 0,
            data: None,
            bio: None,
            tracks: 0..0,
            al: 0..0,
            issued_ns: now_ns(),
            mark: None,
        }
    }

    /// A marker: once the peer reached it, it acted on `mark` (took a snapshot,
    /// closed a consistency point) and answers for `ticket`.
    pub(crate) fn marker(seq: u64, ticket: u64, mark: proto::Mark) -> Entry {
        Entry {
            sector: ticket,
            flags: proto::WRITE_MARK | proto::WRITE_PREFLUSH,
            mark: Some(mark),
            ..Entry::barrier(seq)
        }
    }
}

/// How many marker results the primary remembers.
pub(crate) const MARK_RESULTS: usize = 16;

/// What became of a marker, by ticket (`Shared::mark_results`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum MarkOutcome {
    /// The peer acted on it: the id it gave (a snapshot's epoch).
    Taken(u32),
    /// The peer refused it (errno).
    Refused(u16),
    /// The link dropped before the peer answered.
    Lost,
    /// A `snapshot-verify` marker: the snapshot was taken with this id, and the
    /// primary's image sum at its marker is recorded with it on the peer.
    Summed(u32, [u8; crate::rcore::imagesum::SUM_LEN]),
    /// A `snapshot-verify` marker: the snapshot was taken with this id, but no sum
    /// could be computed or delivered.
    SumLost(u32),
}

/// A bio whose completion waits for the peer.
pub(crate) struct BioRef(pub(crate) *mut kernel::bindings::bio);
// SAFETY: a bio may be completed from any thread.
unsafe impl Send for BioRef {}

/// The fields of [`crate::engine::Pair`] guarded by its spinlock `sh`.
///
/// Ring positions: `head` (oldest entry not confirmed durable) <= `applied` (oldest
/// not acknowledged) <= `unsent` (oldest not sent) <= `tail` (next free).
pub(crate) struct Shared {
    pub(crate) conn: Conn,
    pub(crate) link: Option<Arc<Link>>,
    /// The first full copy to the current peer has finished.
    pub(crate) synced: bool,
    /// The first full copy has started (every bit was set once).
    pub(crate) copy_started: bool,
    pub(crate) next_seq: u64,
    pub(crate) ring: KVVec<Option<Entry>>,
    pub(crate) head: u64,
    pub(crate) applied: u64,
    pub(crate) unsent: u64,
    pub(crate) tail: u64,
    /// Payload bytes not yet acknowledged.
    pub(crate) cache_bytes: u64,
    /// Where the copier looks for the next dirty track (it wraps to 0 at the end).
    pub(crate) copy_cursor: u64,
    /// The last seq of the copies claimed before the copier's latest wrap (or this
    /// connection): a later copy may overlap them, so it depends on them. Copies
    /// claimed between two wraps never overlap (`resync::claim`).
    pub(crate) copy_floor: u64,
    /// Sequence number of the last barrier queued.
    pub(crate) barrier_seq: u64,
    /// When the oldest entry queued after that barrier was issued (`now_ns`; 0:
    /// none). The next barrier waits until this is old enough: entries before the
    /// last barrier are already covered by it, so their age must not start another
    /// one while it is on its way (that sent a barrier, a flush on the peer, after
    /// nearly every write under load).
    pub(crate) uncovered_ns: u64,
    /// A write was marked instead of shipped while connected: the peer must hear it
    /// is no longer a prefix before anything later is sent.
    pub(crate) gap: bool,
    /// Primary: the peer must be told the copy or resync is done (COPY_DONE, after
    /// which it adopts this side's generation) once nothing is dirty or unconfirmed.
    pub(crate) need_done: bool,
    /// Primary: COPY_DONE was sent; the peer has not yet confirmed it adopted this
    /// side's generation.
    pub(crate) await_adopt: bool,
    /// The peer was told (this connection) that its image is not a usable prefix.
    pub(crate) peer_inconsistent: bool,
    pub(crate) last_state: State,
    /// Secondary: the state the primary last reported.
    pub(crate) peer_state: Option<State>,
    /// Secondary: the mode the connected primary runs in.
    pub(crate) peer_mode: Option<Mode>,
    /// Primary: the next marker ticket (from 1).
    pub(crate) next_ticket: u64,
    /// Primary: the outcomes of the last [`MARK_RESULTS`] markers, by ticket.
    pub(crate) mark_results: [(u64, MarkOutcome); MARK_RESULTS],
    /// Primary: the `snapshot-verify` run in progress (`crate::verify`).
    pub(crate) verify: Option<KBox<crate::verify::VerifyRun>>,
}

impl Shared {
    pub(crate) fn slot(&mut self, pos: u64) -> Option<&mut Option<Entry>> {
        let cap = self.ring.len() as u64;
        self.ring.get_mut((pos % cap.max(1)) as usize)
    }

    /// Retires the oldest entry if it sits below ring position `limit` and its
    /// sequence number is at most `max_seq`.
    pub(crate) fn pop_head(&mut self, limit: u64, max_seq: u64) -> Option<Entry> {
        while self.head < limit {
            let head = self.head;
            let slot = self.slot(head)?;
            if slot.as_ref().is_some_and(|e| e.seq > max_seq) {
                return None;
            }
            let e = slot.take();
            self.head += 1;
            if let Some(e) = e {
                return Some(e);
            }
        }
        None
    }

    /// Records what became of the marker `ticket`.
    pub(crate) fn mark_done(&mut self, ticket: u64, outcome: MarkOutcome) {
        let i = (ticket % MARK_RESULTS as u64) as usize;
        if let Some(r) = self.mark_results.get_mut(i) {
            *r = (ticket, outcome);
        }
    }

    /// What became of the marker `ticket`: `None` while it is pending (or too old
    /// to remember: the caller compares with `next_ticket`).
    pub(crate) fn mark_outcome(&self, ticket: u64) -> Option<MarkOutcome> {
        let i = (ticket % MARK_RESULTS as u64) as usize;
        self.mark_results
            .get(i)
            .filter(|r| r.0 == ticket)
            .map(|r| r.1)
    }

    pub(crate) fn ring_full(&self) -> bool {
        self.tail - self.head >= self.ring.len() as u64
    }

    /// Queues `e` at the tail (the caller checked for room).
    pub(crate) fn push(&mut self, e: Entry) {
        let tail = self.tail;
        self.cache_bytes += u64::from(e.len);
        if self.uncovered_ns == 0 {
            self.uncovered_ns = e.issued_ns.max(1);
        }
        if let Some(slot) = self.slot(tail) {
            *slot = Some(e);
        }
        self.tail += 1;
    }

    /// A write is marked instead of shipped: if connected, the peer must hear (once
    /// per connection) that it is no longer a prefix before anything later is sent.
    pub(crate) fn note_gap(&mut self) {
        if self.conn == Conn::Connected && !self.peer_inconsistent {
            self.gap = true;
            self.peer_inconsistent = true;
        }
    }

    /// Queues a barrier unless the newest entry already is one.
    pub(crate) fn push_barrier(&mut self) {
        if self.ring_full() || self.barrier_seq + 1 == self.next_seq || self.head == self.tail {
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.barrier_seq = seq;
        self.push(Entry::barrier(seq));
        self.uncovered_ns = 0;
    }
}
