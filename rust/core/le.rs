// SPDX-License-Identifier: GPL-2.0

//! Little-endian fields at fixed offsets of a byte buffer, for the wire format and
//! the on-disk format. Out-of-range offsets read zeroes and write nothing: callers
//! use fixed layouts that fit their buffers, and no input can make these panic.

/// Writes `bytes` at `off`, if they fit.
pub fn put(buf: &mut [u8], off: usize, bytes: &[u8]) {
    if let Some(dst) = off
        .checked_add(bytes.len())
        .and_then(|end| buf.get_mut(off..end))
    {
        dst.copy_from_slice(bytes);
    }
}

/// `N` bytes at `off`, or zeroes if they do not fit.
pub fn get<const N: usize>(buf: &[u8], off: usize) -> [u8; N] {
    buf.get(off..)
        .and_then(|s| s.first_chunk::<N>())
        .copied()
        .unwrap_or([0; N])
}

/// A little-endian `u16` at `off`.
pub fn u16_at(buf: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(get(buf, off))
}

/// A little-endian `u32` at `off`.
pub fn u32_at(buf: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(get(buf, off))
}

/// A little-endian `u64` at `off`.
pub fn u64_at(buf: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(get(buf, off))
}
