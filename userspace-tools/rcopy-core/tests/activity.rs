//! The activity log: on-disk copies and the in-memory slot table.

use proptest::prelude::*;
use rcopy_core::activity::*;
use std::collections::BTreeSet;

#[test]
fn encode_decode_round_trip() {
    let mut buf = vec![0u8; AL_COPY_BYTES as usize];
    let n = encode(&mut buf, 7, 22, &[3, 1, 99]);
    assert_eq!(n, 8192);
    let h = decode(&buf).unwrap();
    assert_eq!(
        h,
        AlHeader {
            txn: 7,
            extent_shift: 22,
            count: 3
        }
    );
    assert_eq!((entry(&buf, 0), entry(&buf, 1), entry(&buf, 2)), (3, 1, 99));
    assert_eq!(decode(&vec![0u8; 4096]), Err(AlError::Empty));
    // A torn entry block is caught by the checksum.
    buf[4096 + 9] ^= 1;
    assert_eq!(decode(&buf), Err(AlError::BadChecksum));
    // An empty log is one header block.
    assert_eq!(encode(&mut buf, 8, 22, &[]), 4096);
    assert_eq!(decode(&buf).unwrap().count, 0);
    let mut junk = vec![0u8; 4096];
    junk[0] = b'X';
    assert_eq!(decode(&junk), Err(AlError::BadMagic));
}

#[test]
fn newest_copy_wins_and_torn_falls_back() {
    let h = |txn| {
        Ok(AlHeader {
            txn,
            extent_shift: 22,
            count: 0,
        })
    };
    assert_eq!(newest(h(4), h(5)), Some(1));
    assert_eq!(newest(h(6), h(5)), Some(0));
    assert_eq!(newest(h(6), Err(AlError::BadChecksum)), Some(0));
    assert_eq!(newest(Err(AlError::Empty), h(1)), Some(1));
    assert_eq!(newest(Err(AlError::Empty), Err(AlError::Empty)), None);
}

#[test]
fn ranges() {
    // 4 MiB extents = 8192 sectors.
    assert_eq!(extent_range(0, 8, 22), 0..1);
    assert_eq!(extent_range(8190, 4, 22), 0..2);
    assert_eq!(extent_range(8192, 8192, 22), 1..2);
    assert_eq!(extent_range(5, 0, 22), 0..0);
    assert_eq!(extent_tracks(2, 22, 16), 128..192);
    assert!(extent_size_valid(4 << 20, 65536));
    assert!(!extent_size_valid(32768, 65536));
    assert!(!extent_size_valid(3 << 20, 4096));
}

#[test]
fn acquire_needs_commit() {
    let mut t = AlTable::new(vec![Slot::EMPTY; 2]);
    assert!(!t.acquire(5..6));
    assert_eq!(t.plan(5..6), Ok(true));
    // Planned but not on disk: still not usable.
    assert!(!t.acquire(5..6));
    t.commit();
    assert!(t.acquire(5..6));
    assert_eq!(t.plan(6..7), Ok(true));
    t.commit();
    assert!(t.acquire(6..7));
    // Both slots referenced: a third extent must wait.
    assert_eq!(t.plan(7..8), Err(PlanError::Busy));
    t.release(5..6);
    assert_eq!(t.plan(7..8), Ok(true));
    let mut out = [0u64; 4];
    let n = t.on_disk_set(&mut out);
    let set: BTreeSet<u64> = out[..n].iter().copied().collect();
    assert_eq!(set, BTreeSet::from([6, 7]));
    assert_eq!(t.plan(0..3), Err(PlanError::TooLarge));
}

#[derive(Debug, Clone)]
enum Op {
    Write(u64, u64),
    Complete(usize),
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..20, 1u64..3).prop_map(|(a, n)| Op::Write(a, n)),
        (0usize..64).prop_map(Op::Complete),
        Just(Op::Flush),
    ]
}

proptest! {
    /// Whatever the order of writes, completions and transactions, every extent
    /// with a write in flight is in the last transaction written to disk, and the
    /// table never holds an extent twice or more than its capacity.
    #[test]
    fn inflight_extents_are_on_disk(cap in 2usize..8, ops in proptest::collection::vec(op(), 1..200)) {
        let mut t = AlTable::new(vec![Slot::EMPTY; cap]);
        let mut on_disk: BTreeSet<u64> = BTreeSet::new();
        let mut inflight: Vec<std::ops::Range<u64>> = Vec::new();
        let mut waiting: Vec<std::ops::Range<u64>> = Vec::new();
        for o in ops {
            match o {
                Op::Write(a, n) => {
                    let r = a..a + n;
                    if t.acquire(r.clone()) {
                        inflight.push(r);
                    } else {
                        waiting.push(r);
                    }
                }
                Op::Complete(i) => {
                    if !inflight.is_empty() {
                        let r = inflight.remove(i % inflight.len());
                        t.release(r);
                    }
                }
                Op::Flush => {
                    // What the metadata thread does: plan what waits, write, commit.
                    let mut still = Vec::new();
                    for r in waiting.drain(..) {
                        if t.plan(r.clone()).is_err() {
                            still.push(r);
                        }
                    }
                    if t.needs_commit() {
                        let mut out = vec![0u64; cap];
                        let n = t.on_disk_set(&mut out);
                        on_disk = out[..n].iter().copied().collect();
                        prop_assert_eq!(on_disk.len(), n, "an extent twice in the table");
                        t.commit();
                    }
                    for r in std::mem::take(&mut still) {
                        if t.acquire(r.clone()) { inflight.push(r) } else { waiting.push(r) }
                    }
                    let w: Vec<_> = std::mem::take(&mut waiting);
                    for r in w {
                        if t.acquire(r.clone()) { inflight.push(r) } else { waiting.push(r) }
                    }
                }
            }
            for r in &inflight {
                for e in r.clone() {
                    prop_assert!(on_disk.contains(&e), "extent {} in flight but not on disk", e);
                }
            }
            prop_assert!(t.hot() <= cap);
            let refs: u64 = inflight.iter().map(|r| r.end - r.start).sum();
            prop_assert_eq!(t.refs(), refs);
        }
    }

    /// Decoding never panics, and anything that decodes re-encodes to the same bytes.
    #[test]
    fn decode_any(bytes in proptest::collection::vec(any::<u8>(), 0..9000)) {
        if let Ok(h) = decode(&bytes) {
            let entries: Vec<u64> = (0..h.count).map(|i| entry(&bytes, i)).collect();
            let mut again = vec![0u8; copy_bytes(h.count)];
            encode(&mut again, h.txn, h.extent_shift, &entries);
            prop_assert_eq!(decode(&again), Ok(h));
        }
    }

    #[test]
    fn round_trip(txn in any::<u64>(), shift in 12u32..=30, es in proptest::collection::vec(any::<u64>(), 0..600)) {
        let mut buf = vec![0u8; AL_COPY_BYTES as usize];
        let n = encode(&mut buf, txn, shift, &es);
        prop_assert_eq!(n, copy_bytes(es.len() as u32));
        let h = decode(&buf[..n]).unwrap();
        prop_assert_eq!(h.count as usize, es.len());
        for (i, e) in es.iter().enumerate() {
            prop_assert_eq!(entry(&buf, i as u32), *e);
        }
    }
}
