// SPDX-License-Identifier: GPL-2.0

//! Marking dirty tracks: the persistent bitmap (`metadata.rs`, one bit per track)
//! refined by the sub-track map (`rcore::submap`, which sixteenths of a recently
//! dirtied track were written), so that a resync sends what changed rather than
//! whole tracks.
//!
//! Every bit set for the primary goes through one of these:
//! - [`Pair::mark_written`]: a write of a known range (not shipped, failed locally,
//!   or never confirmed by the peer): its sixteenths are noted;
//! - [`Pair::mark_whole`], [`Pair::merge_peer_word`], [`Pair::mark_all`]: anything
//!   else (a failed copy read, the peer's bitmap, a full copy): the tracks' entries
//!   are dropped, so they are resynced whole.
//!
//! The copier (`primary::copy_track`) clears a bit and then takes its entry
//! ([`Pair::take_parts`]). The rule that makes this safe is in `rcore::submap`.
//!
//! What if the machine dies: the map is memory only; the bitmap on disk has every
//! bit, and a restart resyncs whole tracks. The link drops: the unconfirmed entries
//! are marked with their ranges. A reload keeps the engine (and the map) or stops it
//! (and the map is rebuilt empty: whole tracks).

use crate::engine::Pair;
use crate::rcore::submap::{self, SubMap};
use core::ops::Range;
use kernel::prelude::*;

/// The sub-track map of a pair (`Pair::sub`; the lock is irq-safe because a write's
/// completion marks from interrupt context; it is never held while taking another).
pub(crate) type SubTracks = SubMap<KVVec<u64>>;

/// Bytes per sixteenth for a pair with `track_size` tracks (0: no sub-track map,
/// the tracks are too small, or too large for one copy I/O).
pub(crate) fn part_bytes(track_size: u32) -> u64 {
    match submap::part_bytes(track_size) {
        Some(p) if u64::from(track_size) <= crate::blk::MAX_IO as u64 => p,
        _ => 0,
    }
}

/// An empty map for a device of `tracks` tracks (at most `submap::MAX_SLOTS` slots:
/// 128 KiB whatever the size; 16 slots when sixteenths are not used).
pub(crate) fn new_map(tracks: u64, part: u64) -> Result<SubTracks> {
    let n = if part == 0 {
        16
    } else {
        submap::slots_for(tracks)
    };
    let mut v = KVVec::with_capacity(n, GFP_KERNEL)?;
    for _ in 0..n {
        v.push(0u64, GFP_KERNEL)?;
    }
    Ok(SubMap::new(v))
}

impl Pair {
    /// Marks `tracks` for a write of `nr` sectors at `sector` (the tracks it
    /// touches); returns whether the bits are all on disk (see `Metadata::mark`).
    /// Any context.
    pub(crate) fn mark_written(&self, tracks: Range<u64>, sector: u64, nr: u64) -> bool {
        let part = self.sub_part;
        if part != 0 && nr != 0 {
            let bm = self.bitmap();
            let (off, len) = (sector << 9, nr << 9);
            let mut m = self.sub.lock();
            for t in tracks.clone() {
                // Before the bit is set: whether it was set decides (rcore::submap).
                m.note(t, submap::mask_of(t, off, len, part), bm.test(t));
            }
        }
        self.md.mark(tracks)
    }

    /// Marks `tracks` whole; returns whether the bits are all on disk. Any context.
    pub(crate) fn mark_whole(&self, tracks: Range<u64>) -> bool {
        let on_disk = self.md.mark(tracks.clone());
        self.forget_parts(tracks);
        on_disk
    }

    fn forget_parts(&self, tracks: Range<u64>) {
        if self.sub_part != 0 {
            let mut m = self.sub.lock();
            if !m.is_empty() {
                for t in tracks {
                    m.forget(t);
                }
            }
        }
    }

    /// ORs word `i` of the peer's bitmap into this side's (whole tracks); returns the
    /// bits newly set. The caller persists. Thread context.
    pub(crate) fn merge_peer_word(&self, i: u64, v: u64) -> u64 {
        let n = self.md.merge_word(i, v);
        if v != 0 && self.sub_part != 0 {
            let mut m = self.sub.lock();
            for b in 0..64 {
                if v & (1 << b) != 0 {
                    m.forget(i * 64 + b);
                }
            }
        }
        n
    }

    /// Marks every track whole (a full copy). Thread context.
    pub(crate) fn mark_all(&self) {
        self.md.mark_all();
        self.sub.lock().clear();
    }

    /// The copier cleared the bits of `track..track + n`: takes their entries into
    /// `out` (`None`: the whole track). Any context.
    pub(crate) fn take_parts(&self, track: u64, out: &mut [Option<u16>]) {
        if self.sub_part == 0 {
            out.fill(None);
            return;
        }
        let mut m = self.sub.lock();
        for (i, o) in out.iter_mut().enumerate() {
            *o = m.take(track + i as u64);
        }
    }
}
