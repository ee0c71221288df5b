// SPDX-License-Identifier: GPL-2.0

//! The sub-track map: which parts of a dirty track actually changed.
//!
//! The dirty-track bitmap has one bit per track (64 KiB by default), which keeps
//! it small (2 MiB per TiB) but makes a resync after scattered small writes send
//! 16 times what was written. This map refines recently dirtied tracks: for up to
//! a fixed number of tracks it holds a 16-bit mask of the track's sixteenths
//! (4 KiB each at the default track size) that were written. A resync sends only
//! those sixteenths of a track that has an entry, and the whole track otherwise.
//!
//! The rule that keeps it safe is one-sided: **a track whose bit is set and which
//! has an entry differs from the peer at most in the entry's sixteenths; a track
//! whose bit is set and which has no entry may differ anywhere.** So:
//! - a write that marks a track whose bit was clear creates (or widens) the entry;
//! - a write that marks a track whose bit was already set widens an existing entry,
//!   and adds none if there is none (the track is already whole);
//! - anything that marks whole tracks (a failed read, the peer's bitmap, a full
//!   copy, a track of unknown extent) sets the bits *and then* removes the entries,
//!   under the same lock as the two cases above;
//! - the copier clears a bit and then takes its entry: what it takes is a superset
//!   of what changed before the clear, and a write after the clear sets the bit
//!   again (copied again later).
//!
//! An entry may outlive its bit (a clear that was not followed by a take); it only
//! makes a later entry wider than needed, never narrower. When the map is full a
//! new track gets no entry, i.e. it is resynced whole. The map is memory only: after
//! a restart the persisted bitmap alone says what to resync, whole tracks.
//!
//! Storage is open addressing with linear probing and backward-shift deletion,
//! one `u64` per slot: `(track + 1) << 16 | mask`, 0 for an empty slot. The
//! capacity is a power of two and the map refuses inserts beyond 3/4 of it.

use core::ops::DerefMut;

/// Sixteenths per track: bits in a mask.
pub const PARTS: u64 = 16;
/// The largest capacity a pair uses (slots): 16384 x 8 bytes = 128 KiB, for any
/// device size.
pub const MAX_SLOTS: usize = 16384;
const EMPTY: u64 = 0;

/// Bytes in one sixteenth of a track, or `None` when the track is too small to
/// split into sixteenths of whole sectors (or is not a multiple of 16 sectors).
pub fn part_bytes(track_size: u32) -> Option<u64> {
    let ts = u64::from(track_size);
    (ts >= PARTS * 512 && ts % (PARTS * 512) == 0).then_some(ts / PARTS)
}

/// Slots for a device of `tracks` tracks: a power of two, at most [`MAX_SLOTS`],
/// at least 16, and no more than needed to give every track an entry.
pub fn slots_for(tracks: u64) -> usize {
    let want = tracks.saturating_mul(4).div_ceil(3).max(16);
    let want = usize::try_from(want).unwrap_or(MAX_SLOTS).min(MAX_SLOTS);
    want.checked_next_power_of_two()
        .unwrap_or(MAX_SLOTS)
        .min(MAX_SLOTS)
}

/// The sixteenths of track `track` that the byte range `[off, off + len)` touches
/// (rounded outwards). `part` is [`part_bytes`].
pub fn mask_of(track: u64, off: u64, len: u64, part: u64) -> u16 {
    if len == 0 || part == 0 {
        return 0;
    }
    let start = track.saturating_mul(part).saturating_mul(PARTS);
    let end = start.saturating_add(part * PARTS);
    let lo = off.max(start);
    let hi = off.saturating_add(len).min(end);
    if lo >= hi {
        return 0;
    }
    let first = (lo - start) / part;
    let last = (hi - start - 1) / part;
    let mut m = 0u16;
    for i in first..=last.min(PARTS - 1) {
        m |= 1 << i;
    }
    m
}

/// Calls `f(offset, len)` for each run of set bits of `mask` in track `track`,
/// clipped to `dev_bytes`; returns the number of runs passed to `f`.
pub fn runs(mask: u16, track: u64, part: u64, dev_bytes: u64, mut f: impl FnMut(u64, u64)) -> u32 {
    let base = track.saturating_mul(part).saturating_mul(PARTS);
    let mut n = 0;
    let mut i = 0;
    while i < PARTS {
        if mask & (1 << i) == 0 {
            i += 1;
            continue;
        }
        let s = i;
        while i < PARTS && mask & (1 << i) != 0 {
            i += 1;
        }
        let off = base.saturating_add(s * part);
        let end = base.saturating_add(i * part).min(dev_bytes);
        if off < end {
            f(off, end - off);
            n += 1;
        }
    }
    n
}

/// The map over caller-provided slots (a `Vec<u64>`, or `KVVec<u64>` in the kernel).
pub struct SubMap<S> {
    slots: S,
    len: usize,
}

impl<S: DerefMut<Target = [u64]>> SubMap<S> {
    /// A map over `slots`, all zero; their number must be a power of two (else the
    /// map holds nothing).
    pub fn new(mut slots: S) -> Self {
        slots.fill(EMPTY);
        SubMap { slots, len: 0 }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn usable(&self) -> bool {
        let n = self.slots.len();
        n >= 2 && n.is_power_of_two()
    }

    fn home(&self, track: u64) -> usize {
        let h = track.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> 32) as usize & (self.slots.len() - 1)
    }

    fn key(slot: u64) -> u64 {
        slot >> 16
    }

    /// The slot holding `track`, if any.
    fn find(&self, track: u64) -> Option<usize> {
        if !self.usable() || track >= (1 << 47) {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(track);
        for _ in 0..self.slots.len() {
            let s = *self.slots.get(i)?;
            if s == EMPTY {
                return None;
            }
            if Self::key(s) == track + 1 {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// The mask of `track`, if it has an entry.
    pub fn get(&self, track: u64) -> Option<u16> {
        self.find(track)
            .and_then(|i| self.slots.get(i))
            .map(|s| *s as u16)
    }

    /// ORs `mask` into the entry of `track`, creating it if `create` (and the map
    /// has room). Returns whether the track has an entry afterwards.
    fn or(&mut self, track: u64, mask: u16, create: bool) -> bool {
        if let Some(i) = self.find(track) {
            if let Some(s) = self.slots.get_mut(i) {
                *s |= u64::from(mask);
            }
            return true;
        }
        if !create || !self.usable() || track >= (1 << 47) || mask == 0 {
            return false;
        }
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            return false;
        }
        let m = self.slots.len() - 1;
        let mut i = self.home(track);
        loop {
            match self.slots.get_mut(i) {
                Some(s) if *s == EMPTY => {
                    *s = ((track + 1) << 16) | u64::from(mask);
                    self.len += 1;
                    return true;
                }
                Some(_) => i = (i + 1) & m,
                None => return false,
            }
        }
    }

    /// A write changed the sixteenths `mask` of `track`; `bit_was_set` is whether
    /// the track's bit was set before this write set it. Call it under the lock
    /// that also covers [`SubMap::forget`], before setting the bit. Returns whether
    /// the track now has an entry (otherwise it is resynced whole).
    pub fn note(&mut self, track: u64, mask: u16, bit_was_set: bool) -> bool {
        self.or(track, mask, !bit_was_set)
    }

    /// The whole of `track` may differ: removes its entry. Call it after setting the
    /// bit, under the lock.
    pub fn forget(&mut self, track: u64) {
        let _ = self.take(track);
    }

    /// Removes and returns the entry of `track` (the copier, after clearing the bit).
    pub fn take(&mut self, track: u64) -> Option<u16> {
        let mut hole = self.find(track)?;
        let v = self.slots.get(hole).map(|s| *s as u16)?;
        let m = self.slots.len() - 1;
        // Backward-shift deletion: move later entries of the probe run into the hole
        // when their home is not between the hole and them.
        let mut j = (hole + 1) & m;
        loop {
            let s = match self.slots.get(j) {
                Some(&s) if s != EMPTY => s,
                _ => break,
            };
            let home = self.home(Self::key(s) - 1);
            // Distance from home to j and from home to the hole (cyclic).
            let dj = j.wrapping_sub(home) & m;
            let dh = hole.wrapping_sub(home) & m;
            if dh <= dj {
                if let Some(h) = self.slots.get_mut(hole) {
                    *h = s;
                }
                hole = j;
            }
            j = (j + 1) & m;
        }
        if let Some(h) = self.slots.get_mut(hole) {
            *h = EMPTY;
        }
        self.len -= 1;
        Some(v)
    }

    /// Drops every entry (every track whole, or the bitmap cleared).
    pub fn clear(&mut self) {
        self.slots.fill(EMPTY);
        self.len = 0;
    }
}
