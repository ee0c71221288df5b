// SPDX-License-Identifier: GPL-2.0

//! The dirty-track bitmap: one bit per track, set and cleared without locks.
//!
//! Bits are set from any context (including bio completion), and cleared only by
//! test-and-clear, so that a track whose bit a concurrent writer sets again is copied
//! again: see `Documentation/rcopy.rst`, *Resync*.

use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};

/// A bitmap over caller-provided words (`ceil(bits / 64)` of them, zeroed or not).
pub struct TrackBitmap<'a> {
    words: &'a [AtomicU64],
    bits: u64,
    set: &'a AtomicU64,
}

/// Number of 64-bit words a bitmap of `bits` bits needs.
pub fn words_for(bits: u64) -> u64 {
    bits.div_ceil(64)
}

impl<'a> TrackBitmap<'a> {
    /// A bitmap of `bits` bits over `words`, with `set` counting the set bits. `bits`
    /// is cut to what `words` can hold.
    pub fn new(words: &'a [AtomicU64], bits: u64, set: &'a AtomicU64) -> Self {
        let cap = (words.len() as u64).saturating_mul(64);
        TrackBitmap {
            words,
            bits: bits.min(cap),
            set,
        }
    }

    /// Number of tracks.
    pub fn len(&self) -> u64 {
        self.bits
    }

    /// Whether the bitmap has no tracks.
    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }

    fn word(&self, bit: u64) -> Option<(&AtomicU64, u64)> {
        if bit >= self.bits {
            return None;
        }
        let w = self.words.get(usize::try_from(bit / 64).ok()?)?;
        Some((w, 1u64 << (bit % 64)))
    }

    /// Sets one bit; returns whether it was clear.
    pub fn set(&self, bit: u64) -> bool {
        let Some((w, mask)) = self.word(bit) else {
            return false;
        };
        let newly = w.fetch_or(mask, Ordering::AcqRel) & mask == 0;
        if newly {
            self.set.fetch_add(1, Ordering::Relaxed);
        }
        newly
    }

    /// Sets every bit in `range` (cut to the bitmap); returns how many were clear.
    pub fn set_range(&self, range: Range<u64>) -> u64 {
        let mut n = 0;
        for bit in range.start..range.end.min(self.bits) {
            n += u64::from(self.set(bit));
        }
        n
    }

    /// Whether any bit in `range` is set.
    pub fn any_in(&self, range: Range<u64>) -> bool {
        (range.start..range.end.min(self.bits)).any(|b| self.test(b))
    }

    /// Whether a bit is set.
    pub fn test(&self, bit: u64) -> bool {
        self.word(bit)
            .is_some_and(|(w, mask)| w.load(Ordering::Acquire) & mask != 0)
    }

    /// Clears one bit; returns whether it was set.
    pub fn test_and_clear(&self, bit: u64) -> bool {
        let Some((w, mask)) = self.word(bit) else {
            return false;
        };
        let was = w.fetch_and(!mask, Ordering::AcqRel) & mask != 0;
        if was {
            self.set.fetch_sub(1, Ordering::Relaxed);
        }
        was
    }

    /// Sets every bit.
    pub fn set_all(&self) -> u64 {
        self.set_range(0..self.bits)
    }

    /// Clears every bit; returns how many were set.
    pub fn clear_all(&self) -> u64 {
        let mut n = 0u64;
        for w in self.words {
            n += u64::from(w.swap(0, Ordering::AcqRel).count_ones());
        }
        self.set.fetch_sub(n.min(self.count()), Ordering::Relaxed);
        n
    }

    /// Word `i` (tracks `64 * i .. 64 * i + 64`, track `t` as bit `t % 64`); 0 past
    /// the end.
    pub fn word_at(&self, i: u64) -> u64 {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.words.get(i))
            .map_or(0, |w| w.load(Ordering::Acquire))
    }

    /// Sets the bits of `word` at word `i` (bits past the bitmap's end are
    /// ignored); returns how many were newly set.
    pub fn or_word(&self, i: u64, word: u64) -> u64 {
        let first = i.saturating_mul(64);
        if first >= self.bits {
            return 0;
        }
        let valid = if self.bits - first >= 64 {
            u64::MAX
        } else {
            (1u64 << (self.bits - first)) - 1
        };
        let Some(w) = usize::try_from(i).ok().and_then(|i| self.words.get(i)) else {
            return 0;
        };
        let add = word & valid;
        let old = w.fetch_or(add, Ordering::AcqRel);
        let n = u64::from((add & !old).count_ones());
        self.set.fetch_add(n, Ordering::Relaxed);
        n
    }

    /// Number of set bits.
    pub fn count(&self) -> u64 {
        self.set.load(Ordering::Relaxed)
    }

    /// The first set bit at or after `from`, wrapping around to 0 once.
    pub fn next_set(&self, from: u64) -> Option<u64> {
        if self.count() == 0 {
            return None;
        }
        let from = if from >= self.bits { 0 } else { from };
        self.scan(from, self.bits).or_else(|| self.scan(0, from))
    }

    fn scan(&self, start: u64, end: u64) -> Option<u64> {
        let mut bit = start;
        while bit < end {
            let (w, _) = self.word(bit)?;
            let v = w.load(Ordering::Acquire) >> (bit % 64);
            if v != 0 {
                let found = bit + u64::from(v.trailing_zeros());
                return (found < end).then_some(found);
            }
            bit = (bit / 64 + 1) * 64;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_clear_scan() {
        let words: [AtomicU64; 3] = Default::default();
        let count = AtomicU64::new(0);
        let b = TrackBitmap::new(&words, 130, &count);
        assert_eq!(b.next_set(0), None);
        assert!(b.set(5));
        assert!(!b.set(5));
        assert_eq!(b.set_range(60..70), 10);
        assert!(!b.set(130));
        assert_eq!(b.count(), 11);
        assert_eq!(b.next_set(6), Some(60));
        assert_eq!(b.next_set(70), Some(5));
        assert!(b.test_and_clear(5));
        assert!(!b.test_and_clear(5));
        assert_eq!(b.count(), 10);
        assert!(b.any_in(69..100));
        assert!(!b.any_in(70..130));
        assert_eq!(b.set_all(), 120);
        assert_eq!(b.count(), 130);
        assert_eq!(b.next_set(129), Some(129));
    }
}
