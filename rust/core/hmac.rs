// SPDX-License-Identifier: GPL-2.0

//! HMAC-SHA256 (RFC 2104) and a constant-time comparison.

use super::sha256::{Sha256, BLOCK_LEN, DIGEST_LEN};

/// Bytes in an HMAC-SHA256 tag.
pub const MAC_LEN: usize = DIGEST_LEN;

/// Incremental HMAC-SHA256.
#[derive(Clone)]
pub struct HmacSha256 {
    inner: Sha256,
    /// The key block XORed with the outer pad.
    okey: [u8; BLOCK_LEN],
}

impl HmacSha256 {
    /// Starts a MAC under `key` (any length; keys longer than 64 bytes are
    /// hashed first, as RFC 2104 says).
    pub fn new(key: &[u8]) -> Self {
        let mut k = [0u8; BLOCK_LEN];
        if key.len() > BLOCK_LEN {
            let d = super::sha256::sha256(key);
            if let Some(dst) = k.get_mut(..DIGEST_LEN) {
                dst.copy_from_slice(&d);
            }
        } else if let Some(dst) = k.get_mut(..key.len()) {
            dst.copy_from_slice(key);
        }
        let mut ikey = k;
        let mut okey = k;
        for b in ikey.iter_mut() {
            *b ^= 0x36;
        }
        for b in okey.iter_mut() {
            *b ^= 0x5c;
        }
        let mut inner = Sha256::new();
        inner.update(&ikey);
        HmacSha256 { inner, okey }
    }

    /// Continues the MAC over `data`.
    pub fn update(&mut self, data: &[u8]) -> &mut Self {
        self.inner.update(data);
        self
    }

    /// The tag over every byte fed.
    pub fn finalize(self) -> [u8; MAC_LEN] {
        let ih = self.inner.finalize();
        let mut outer = Sha256::new();
        outer.update(&self.okey).update(&ih);
        outer.finalize()
    }
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; MAC_LEN] {
    let mut m = HmacSha256::new(key);
    m.update(data);
    m.finalize()
}

/// Compares two byte strings in time that depends only on their lengths
/// (lengths are not secret). Use it for every MAC check.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut acc = 0u8;
    for (x, y) in a.iter().zip(b) {
        acc |= x ^ y;
    }
    core::hint::black_box(acc) == 0
}
