// SPDX-License-Identifier: GPL-2.0

//! Conflict buckets: which counters a write in flight holds (see `rust/inflight.rs`).
//!
//! The device is cut into 4 KiB blocks, hashed onto [`BUCKETS`] counters. A range
//! holds the buckets of all its blocks (every bucket once if it covers more blocks
//! than there are buckets). The property the kernel relies on: two ranges that
//! overlap always hold at least one bucket in common, so a write that finds all its
//! buckets free overlaps no write in flight.

/// Number of buckets (a power of two).
pub const BUCKETS: u64 = 4096;
/// Sectors per block.
pub const BLOCK_SECTORS: u64 = 8;

/// The buckets of `[sector, sector + nr)`: `count` buckets starting at `first`,
/// bucket `k` being [`bucket`]`(first, k)`. Empty for `nr == 0`.
pub fn buckets(sector: u64, nr: u64) -> (u64, u64) {
    if nr == 0 {
        return (0, 0);
    }
    let first = sector / BLOCK_SECTORS;
    let last = sector.saturating_add(nr - 1) / BLOCK_SECTORS;
    (first, (last - first).saturating_add(1).min(BUCKETS))
}

/// The `k`th bucket of a range whose first block is `first`.
pub fn bucket(first: u64, k: u64) -> usize {
    (first.wrapping_add(k) % BUCKETS) as usize
}
