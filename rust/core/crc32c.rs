// SPDX-License-Identifier: GPL-2.0

//! CRC-32C (Castagnoli), as used by iSCSI (RFC 3720), ext4 and btrfs.
//!
//! Reflected polynomial `0x82F63B78`, initial value and final XOR
//! `0xFFFFFFFF`. Table-driven, slicing-by-8: eight 256-entry tables built at
//! compile time by a `const fn` (8 KiB of read-only data).
//!
//! ```text
//! let mut c = Crc32c::new();
//! c.update(b"1234").update(b"56789");
//! assert_eq!(c.finish(), crc32c(b"123456789"));
//! ```

/// The reflected Castagnoli polynomial.
pub const POLY: u32 = 0x82F6_3B78;

const fn make_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut s = 1;
        while s < 8 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            s += 1;
        }
        i += 1;
    }
    t
}

static TABLES: [[u32; 256]; 8] = make_tables();

/// Table lookup by the low byte of `v` (always in bounds: the index is a `u8`).
#[inline(always)]
fn t(table: &[u32; 256], v: u32) -> u32 {
    table[usize::from(v as u8)]
}

/// Incremental CRC-32C. Feed bytes with [`Crc32c::update`] in any split;
/// [`Crc32c::finish`] gives the same value as [`crc32c`] over the
/// concatenation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crc32c {
    state: u32,
}

impl Default for Crc32c {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32c {
    /// A CRC over no bytes yet.
    pub const fn new() -> Self {
        Crc32c { state: !0 }
    }

    /// Resumes from a raw register value, as returned by
    /// [`Crc32c::raw_state`] (not inverted: the convention of the kernel's
    /// `crc32c(crc, p, len)`, which callers start with `~0`).
    pub const fn from_raw_state(state: u32) -> Self {
        Crc32c { state }
    }

    /// The raw register value, to continue with another implementation
    /// (e.g. the kernel's accelerated `crc32c()`); [`Crc32c::finish`] is its
    /// bitwise complement.
    pub const fn raw_state(&self) -> u32 {
        self.state
    }

    /// Continues the CRC over `data`.
    pub fn update(&mut self, data: &[u8]) -> &mut Self {
        let [t0, t1, t2, t3, t4, t5, t6, t7] = &TABLES;
        let mut c = self.state;
        let mut rest = data;
        while let Some((w, tail)) = rest.split_first_chunk::<8>() {
            let lo = c ^ u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            let hi = u32::from_le_bytes([w[4], w[5], w[6], w[7]]);
            c = t(t7, lo)
                ^ t(t6, lo >> 8)
                ^ t(t5, lo >> 16)
                ^ t(t4, lo >> 24)
                ^ t(t3, hi)
                ^ t(t2, hi >> 8)
                ^ t(t1, hi >> 16)
                ^ t(t0, hi >> 24);
            rest = tail;
        }
        for &b in rest {
            c = (c >> 8) ^ t(t0, c ^ u32::from(b));
        }
        self.state = c;
        self
    }

    /// Feeds `data` through `raw`, another implementation of the same raw update
    /// (reflected CRC-32C, no inversion: `raw(state, data)` returns the state after
    /// `data`), e.g. the kernel's `crc32c()`, which uses the CPU's instruction.
    pub fn update_with(&mut self, data: &[u8], raw: impl FnOnce(u32, &[u8]) -> u32) -> &mut Self {
        self.state = raw(self.state, data);
        self
    }

    /// The raw update of [`Crc32c::update`] as a function, for [`Crc32c::update_with`].
    pub fn raw_update(state: u32, data: &[u8]) -> u32 {
        let mut c = Crc32c { state };
        c.update(data);
        c.state
    }

    /// The CRC of every byte fed so far. Does not reset the state: more
    /// bytes may still be fed.
    pub fn finish(&self) -> u32 {
        !self.state
    }
}

/// CRC-32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    Crc32c::new().update(data).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_with_the_raw_update_is_update() {
        let data: [u8; 300] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        for n in [0, 1, 9, 300] {
            let mut a = Crc32c::new();
            a.update(&data[..n]);
            let mut b = Crc32c::new();
            b.update_with(&data[..n], Crc32c::raw_update);
            assert_eq!(a.finish(), b.finish());
        }
    }

    fn bitwise(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            }
        }
        !c
    }

    #[test]
    fn check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn raw_state_hand_off() {
        let mut a = Crc32c::new();
        a.update(b"12345");
        let mut b = Crc32c::from_raw_state(a.raw_state());
        b.update(b"6789");
        assert_eq!(b.finish(), 0xE306_9283);
        assert_eq!(!b.raw_state(), b.finish());
    }

    #[test]
    fn matches_bitwise() {
        let mut buf = [0u8; 200];
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        for n in 0..buf.len() {
            assert_eq!(crc32c(&buf[..n]), bitwise(&buf[..n]));
        }
    }
}
