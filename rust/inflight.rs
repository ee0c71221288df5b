// SPDX-License-Identifier: GPL-2.0

//! Conflict detection for writes in flight to the local disk.
//!
//! Two shipped writes that overlap and are both in flight could reach the local disk
//! in one order and the peer (which applies in sequence order) in the other; a resync
//! read of a track with a shipped write still in flight could read the old data and
//! send it after the write. Both would leave the disks silently different.
//!
//! Every shipped write counts itself, from the moment it takes its sequence number
//! (under the pair's lock) until its local write completes, in hashed buckets of
//! 4 KiB blocks (`rust/core/conflict.rs`). A write that finds one of its buckets busy is held back until they
//! are free, so overlapping writes reach both disks in sequence order; the copier
//! skips a run with a busy bucket and comes back to it. A hash collision only delays,
//! never reorders. Counting and the check run under the pair's lock; the decrement
//! is an atomic, safe in interrupt context.

use crate::rcore::conflict::{bucket, buckets, BUCKETS};
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::prelude::*;

/// In-flight counters of one device.
pub(crate) struct Inflight {
    b: KVVec<AtomicU32>,
}

impl Inflight {
    pub(crate) fn new() -> Result<Self> {
        let mut b = KVVec::with_capacity(BUCKETS as usize, GFP_KERNEL)?;
        for _ in 0..BUCKETS {
            b.push(AtomicU32::new(0), GFP_KERNEL)?;
        }
        Ok(Self { b })
    }

    /// Calls `f` on each bucket of `[sector, sector + nr)` while it returns true.
    fn each(&self, sector: u64, nr: u64, mut f: impl FnMut(&AtomicU32) -> bool) -> bool {
        let (first, n) = buckets(sector, nr);
        (0..n).all(|k| self.b.get(bucket(first, k)).is_none_or(&mut f))
    }

    /// Whether a write in flight may overlap `[sector, sector + nr)`. Under the pair's lock.
    pub(crate) fn busy(&self, sector: u64, nr: u64) -> bool {
        !self.each(sector, nr, |c| c.load(Ordering::Acquire) == 0)
    }

    /// Counts a write in flight. Under the pair's lock.
    pub(crate) fn add(&self, sector: u64, nr: u64) {
        self.each(sector, nr, |c| {
            c.fetch_add(1, Ordering::AcqRel);
            true
        });
    }

    /// The write's local part completed. Any context.
    pub(crate) fn sub(&self, sector: u64, nr: u64) {
        self.each(sector, nr, |c| {
            c.fetch_sub(1, Ordering::AcqRel);
            true
        });
    }
}
