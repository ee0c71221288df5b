//! Track arithmetic: examples and properties against a naive model.

use proptest::prelude::*;
use rcopy_core::geometry::{
    bitmap_bytes, meta_bytes_needed, sector_track_range, track_bytes, track_range, tracks,
};

/// Tracks touched, found by testing every track for overlap.
fn naive_touched(off: u64, len: u64, ts: u64) -> Vec<u64> {
    let end = off + len;
    (0..=end / ts + 1)
        .filter(|t| {
            let (a, b) = (t * ts, (t + 1) * ts);
            a < end && off < b
        })
        .collect()
}

fn track_size() -> impl Strategy<Value = u32> {
    prop_oneof![(0u32..=12).prop_map(|k| 4096 << k), 1u32..5000]
}

#[test]
fn documented_metadata_size() {
    // Superblock, bitmap, then two 36 KiB copies of the activity log.
    assert_eq!(meta_bytes_needed(1 << 40, 65536), (2 << 20) + 4096 + 73728);
    assert_eq!(meta_bytes_needed(1 << 30, 1 << 20), 8192 + 73728);
}

proptest! {
    #[test]
    fn range_is_exactly_the_touched_tracks(off in 0u64..(1 << 22), len in 0u64..(1 << 18), ts in track_size()) {
        let r = track_range(off, len, ts);
        let got: Vec<u64> = r.collect();
        prop_assert_eq!(got, naive_touched(off, len, u64::from(ts)));
    }

    #[test]
    fn range_bounds_hold_everywhere(off in any::<u64>(), len in any::<u64>(), ts in track_size()) {
        let ts64 = u64::from(ts);
        let r = track_range(off, len, ts);
        if len == 0 {
            prop_assert!(r.is_empty());
        } else {
            prop_assert!(r.start < r.end);
            prop_assert_eq!(r.start, off / ts64);
            if let Some(end) = off.checked_add(len) {
                // Last touched byte is end - 1.
                prop_assert_eq!(r.end, (end - 1) / ts64 + 1);
            }
        }
    }

    #[test]
    fn sectors_match_bytes(sector in 0u64..(1 << 40), n in 0u64..(1 << 20), ts in track_size()) {
        prop_assert_eq!(sector_track_range(sector, n, ts), track_range(sector * 512, n * 512, ts));
    }

    #[test]
    fn track_count_is_ceiling(len in any::<u64>(), ts in track_size()) {
        let ts64 = u128::from(ts);
        let t = u128::from(tracks(len, ts));
        prop_assert!(t * ts64 >= u128::from(len));
        prop_assert!(t == 0 || (t - 1) * ts64 < u128::from(len));
    }

    #[test]
    fn metadata_size_formula(len in any::<u64>(), ts in track_size()) {
        let t = u128::from(tracks(len, ts));
        let bits_bytes = t.div_ceil(8);
        let expect = 4096 + bits_bytes.div_ceil(4096) * 4096;
        prop_assert_eq!(u128::from(rcopy_core::geometry::al_offset(len, ts)), expect);
        prop_assert_eq!(
            u128::from(meta_bytes_needed(len, ts)),
            (expect + 73728).min(u128::from(u64::MAX))
        );
        prop_assert_eq!(bitmap_bytes(len, ts) % 4096, 0);
    }

    #[test]
    fn tracks_tile_the_volume(len in 1u64..(1 << 24), ts in track_size()) {
        let n = tracks(len, ts);
        let mut next = 0;
        for t in 0..n {
            let b = track_bytes(t, len, ts);
            prop_assert_eq!(b.start, next);
            prop_assert!(b.end > b.start);
            next = b.end;
        }
        prop_assert_eq!(next, len);
        prop_assert!(track_bytes(n, len, ts).is_empty());
    }
}
