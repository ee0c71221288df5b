// SPDX-License-Identifier: GPL-2.0

//! The image sum of `snapshot --verify`: over every track `t` of an image, the
//! SHA-256 of `t` (8 bytes, little-endian) followed by the track's content (the
//! last track may be short), read as a 256-bit big-endian number; the sum of
//! these modulo 2^256. Addition is order-independent, so the primary folds tracks
//! in whatever order its scan reaches them (a track a write is waiting for goes
//! first), and the secondary sums its snapshot track by track in order.

use super::sha256::Sha256;

/// Bytes of a sum.
pub const SUM_LEN: usize = 32;

/// Adds `v` to `acc`, modulo 2^256 (both big-endian).
pub fn add(acc: &mut [u8; SUM_LEN], v: &[u8; SUM_LEN]) {
    let mut carry = 0u16;
    for (a, b) in acc.iter_mut().rev().zip(v.iter().rev()) {
        let s = u16::from(*a) + u16::from(*b) + carry;
        *a = s as u8;
        carry = s >> 8;
    }
}

/// One track's digest, fed in chunks.
pub struct TrackDigest(Sha256);

impl TrackDigest {
    /// The digest of track `track`: starts with its number.
    pub fn new(track: u64) -> TrackDigest {
        let mut h = Sha256::new();
        h.update(&track.to_le_bytes());
        TrackDigest(h)
    }

    /// Feeds the next bytes of the track's content.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest, to [`add`] to the sum.
    pub fn finish(self) -> [u8; SUM_LEN] {
        self.0.finalize()
    }
}

/// The sum as 64 lower-case hex digits.
pub fn hex(sum: &[u8; SUM_LEN]) -> [u8; 2 * SUM_LEN] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 2 * SUM_LEN];
    for (i, b) in sum.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 15)];
    }
    out
}

/// Parses 64 hex digits; `None` otherwise.
pub fn parse_hex(s: &[u8]) -> Option<[u8; SUM_LEN]> {
    if s.len() != 2 * SUM_LEN {
        return None;
    }
    let mut out = [0u8; SUM_LEN];
    for (i, o) in out.iter_mut().enumerate() {
        let d = |c: u8| (c as char).to_digit(16).map(|v| v as u8);
        *o = (d(s[2 * i])? << 4) | d(s[2 * i + 1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_carries_and_wraps() {
        let mut a = [0xffu8; SUM_LEN];
        let mut one = [0u8; SUM_LEN];
        one[SUM_LEN - 1] = 1;
        add(&mut a, &one);
        assert_eq!(a, [0u8; SUM_LEN]);
        let mut b = [0u8; SUM_LEN];
        b[SUM_LEN - 1] = 0xff;
        add(&mut b, &one);
        assert_eq!(b[SUM_LEN - 2..], [1, 0]);
    }

    #[test]
    fn order_does_not_matter_and_hex_round_trips() {
        let d: [[u8; SUM_LEN]; 3] = [0u64, 1, 2].map(|t| {
            let mut h = TrackDigest::new(t);
            h.update(b"content");
            h.finish()
        });
        let (mut x, mut y) = ([0u8; SUM_LEN], [0u8; SUM_LEN]);
        for v in &d {
            add(&mut x, v);
        }
        for v in d.iter().rev() {
            add(&mut y, v);
        }
        assert_eq!(x, y);
        assert_eq!(parse_hex(&hex(&x)), Some(x));
        assert_eq!(parse_hex(b"zz"), None);
    }
}
