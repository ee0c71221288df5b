// SPDX-License-Identifier: GPL-2.0

//! Track arithmetic and metadata sizing.
//!
//! A track is the unit of the dirty-track bitmap: `track_size` bytes,
//! track `n` covers bytes `[n * track_size, (n + 1) * track_size)`.
//! All functions are overflow-safe; a `track_size` of zero yields no tracks.

use core::ops::Range;

/// Bytes in a sector (the block layer's unit).
pub const SECTOR_SIZE: u64 = 512;
/// `log2(SECTOR_SIZE)`.
pub const SECTOR_SHIFT: u32 = 9;
/// Bytes of the metadata superblock, at the start of the metadata device.
pub const SUPERBLOCK_BYTES: u64 = 4096;
/// The bitmap area is rounded up to a multiple of this.
pub const META_BLOCK_BYTES: u64 = 4096;

/// Number of tracks covering `len_bytes`: `ceil(len_bytes / track_size)`.
pub fn tracks(len_bytes: u64, track_size: u32) -> u64 {
    let ts = u64::from(track_size);
    match (len_bytes.checked_div(ts), len_bytes.checked_rem(ts)) {
        (Some(q), Some(0)) => q,
        (Some(q), Some(_)) => q.saturating_add(1),
        _ => 0,
    }
}

/// Bytes of the bitmap for `len_bytes`: one bit per track, rounded up to
/// [`META_BLOCK_BYTES`].
pub fn bitmap_bytes(len_bytes: u64, track_size: u32) -> u64 {
    let t = tracks(len_bytes, track_size);
    round_up(t.div_ceil(8), META_BLOCK_BYTES)
}

/// Byte offset of the activity log region: right after the bitmap,
/// `4096 + roundup(ceil(tracks / 8), 4096)`. Saturates at `u64::MAX`.
pub fn al_offset(len_bytes: u64, track_size: u32) -> u64 {
    SUPERBLOCK_BYTES.saturating_add(bitmap_bytes(len_bytes, track_size))
}

/// Bytes the metadata device must hold for a volume of `len_bytes`: superblock,
/// bitmap, then the activity log ([`super::activity::AL_REGION_BYTES`]).
/// Saturates at `u64::MAX`.
pub fn meta_bytes_needed(len_bytes: u64, track_size: u32) -> u64 {
    al_offset(len_bytes, track_size).saturating_add(super::activity::AL_REGION_BYTES)
}

/// Rounds `v` up to a multiple of `align` (saturating; `align` 0 leaves `v`).
pub fn round_up(v: u64, align: u64) -> u64 {
    match v.checked_rem(align) {
        Some(0) | None => v,
        Some(r) => v.saturating_add(align - r),
    }
}

/// The tracks touched by the byte range `[offset_bytes, offset_bytes +
/// len_bytes)`: every track holding at least one of its bytes. Empty when
/// `len_bytes` is 0 (or `track_size` is 0). A range reaching past
/// `u64::MAX` is cut at the last byte addressable.
pub fn track_range(offset_bytes: u64, len_bytes: u64, track_size: u32) -> Range<u64> {
    let ts = u64::from(track_size);
    if len_bytes == 0 || ts == 0 {
        return 0..0;
    }
    let last = offset_bytes.saturating_add(len_bytes - 1);
    let first = offset_bytes / ts;
    let end = (last / ts).saturating_add(1);
    first..end
}

/// [`track_range`] for a range given in 512-byte sectors (as in a bio).
/// Empty if the start sector is not addressable in bytes.
pub fn sector_track_range(sector: u64, nr_sectors: u64, track_size: u32) -> Range<u64> {
    let len = nr_sectors.saturating_mul(SECTOR_SIZE);
    match sector.checked_mul(SECTOR_SIZE) {
        Some(off) => track_range(off, len, track_size),
        None => 0..0,
    }
}

/// The byte range covered by `track` on a volume of `len_bytes`
/// (the last track may be short). Empty if `track` is past the end.
pub fn track_bytes(track: u64, len_bytes: u64, track_size: u32) -> Range<u64> {
    let ts = u64::from(track_size);
    match track.checked_mul(ts) {
        Some(start) if start < len_bytes => start..start.saturating_add(ts).min(len_bytes),
        _ => 0..0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(tracks(0, 4096), 0);
        assert_eq!(tracks(1, 4096), 1);
        assert_eq!(tracks(4096, 4096), 1);
        assert_eq!(tracks(4097, 4096), 2);
        assert_eq!(tracks(u64::MAX, 4096), (u64::MAX >> 12) + 1);
        assert_eq!(tracks(100, 0), 0);
    }

    #[test]
    fn meta() {
        // 1 TiB at 64 KiB: 16 Mi tracks, 2 MiB of bitmap, plus the superblock.
        let al = super::super::activity::AL_REGION_BYTES;
        assert_eq!(meta_bytes_needed(1 << 40, 65536), (2 << 20) + 4096 + al);
        assert_eq!(meta_bytes_needed(0, 65536), 4096 + al);
        assert_eq!(meta_bytes_needed(1, 65536), 8192 + al);
        assert_eq!(al_offset(u64::MAX, 4096), 4096 + (1u64 << 49));
    }

    #[test]
    fn ranges() {
        assert_eq!(track_range(0, 0, 4096), 0..0);
        assert_eq!(track_range(0, 1, 4096), 0..1);
        assert_eq!(track_range(4095, 2, 4096), 0..2);
        assert_eq!(track_range(4096, 4096, 4096), 1..2);
        assert_eq!(
            track_range(u64::MAX, u64::MAX, 4096),
            (u64::MAX >> 12)..(u64::MAX >> 12) + 1
        );
        assert_eq!(sector_track_range(8, 8, 4096), 1..2);
        assert_eq!(track_bytes(2, 10000, 4096), 8192..10000);
        assert_eq!(track_bytes(3, 10000, 4096), 0..0);
    }
}
