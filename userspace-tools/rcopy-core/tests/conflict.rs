//! Conflict buckets: overlapping ranges always share a bucket.

use proptest::prelude::*;
use rcopy_core::conflict::*;
use std::collections::BTreeSet;

fn set(sector: u64, nr: u64) -> BTreeSet<usize> {
    let (first, n) = buckets(sector, nr);
    (0..n).map(|k| bucket(first, k)).collect()
}

#[test]
fn examples() {
    assert_eq!(buckets(0, 0), (0, 0));
    assert_eq!(buckets(0, 8), (0, 1));
    assert_eq!(buckets(7, 2), (0, 2));
    assert_eq!(buckets(8, 2048), (1, 256));
    assert_eq!(buckets(0, u64::MAX).1, BUCKETS);
    assert_eq!(set(BUCKETS * BLOCK_SECTORS, 8), set(0, 8));
}

proptest! {
    #[test]
    fn overlapping_ranges_share_a_bucket(
        a in 0u64..(1 << 40), an in 1u64..100_000,
        off in 0u64..100_000, bn in 1u64..100_000,
    ) {
        // b starts inside a.
        let b = a + off % an;
        prop_assert!(!set(a, an).is_disjoint(&set(b, bn)));
    }

    #[test]
    fn every_bucket_at_most_once(s in any::<u64>(), n in 0u64..1 << 20) {
        let (first, count) = buckets(s, n);
        prop_assert!(count <= BUCKETS);
        prop_assert_eq!(set(s, n).len() as u64, count);
        let _ = first;
    }
}
