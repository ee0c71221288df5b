//! The exception store's on-disk format: superblock and record blocks, torn and
//! stale copies, geometry, and decoders on arbitrary bytes.

use proptest::prelude::*;
use rcopy_core::crc32c::crc32c;
use rcopy_core::snapmap::{Record, MAX_SNAPSHOTS};
use rcopy_core::snapstore::*;

const CRC: usize = 12;

/// Sets a block's CRC to what a correct writer would write.
fn reseal(b: &mut [u8; BLOCK]) {
    b[CRC..CRC + 4].fill(0);
    let c = crc32c(b);
    b[CRC..CRC + 4].copy_from_slice(&c.to_le_bytes());
}

fn sb() -> StoreSb {
    let mut sb = StoreSb::new(0xabcd, [7; 16], 1 << 30, 65536, 1000);
    let info = SnapInfo {
        state: SnapState::Ready,
        flags: SNAP_CHECKSUM,
        stream_seq: 12345,
        gen: 0x1111,
        created_ns: 99,
        name: pad_name(b"nightly-1").unwrap(),
        checksum: [0x5a; CHECKSUM_LEN],
        ..SnapInfo::NONE
    };
    assert_eq!(sb.add(info), Ok(1));
    let auto = SnapInfo {
        flags: SNAP_BEFORE_RESYNC,
        ..SnapInfo::NONE
    };
    assert_eq!(sb.add(auto), Ok(2));
    sb.seq = 3;
    sb
}

fn decode(b: &[u8; BLOCK]) -> Result<StoreSb, StoreError> {
    let mut s = StoreSb::new(0, [0; 16], 0, 4096, 0);
    s.decode_into(b).map(|()| s)
}

#[test]
fn superblock_round_trip_and_table() {
    let mut s = sb();
    let mut b = [0u8; BLOCK];
    s.encode_into(&mut b);
    assert_eq!(decode(&b), Ok(s.clone()));
    assert_eq!(s.find(1).unwrap().name(), b"nightly-1");
    assert_eq!(s.find(2).unwrap().name(), b"");
    assert_eq!(s.check(1 << 30, 65536, &[7; 16]), Ok(()));
    assert_eq!(
        s.check(1 << 29, 65536, &[7; 16]),
        Err(StoreError::WrongSize)
    );
    assert_eq!(
        s.check(1 << 30, 4096, &[7; 16]),
        Err(StoreError::WrongTrackSize)
    );
    assert_eq!(
        s.check(1 << 30, 65536, &[8; 16]),
        Err(StoreError::WrongPair)
    );
    s.find_mut(2).unwrap().state = SnapState::Invalid;
    let mut live = [0; MAX_SNAPSHOTS];
    let n = s.live(&mut live);
    assert_eq!(&live[..n], &[1]);
    assert_eq!(s.remove(1), Ok(()));
    assert_eq!(s.remove(1), Err(StoreError::NoSnapshot));
    // Epochs are never reused, even after a removal.
    assert_eq!(s.add(SnapInfo::NONE), Ok(3));
    for _ in 0..MAX_SNAPSHOTS - 2 {
        s.add(SnapInfo::NONE).unwrap();
    }
    assert_eq!(s.add(SnapInfo::NONE), Err(StoreError::TableFull));
    s.encode_into(&mut b);
    assert_eq!(decode(&b), Ok(s));
}

#[test]
fn superblock_refusals() {
    let mut good = [0u8; BLOCK];
    sb().encode_into(&mut good);
    assert_eq!(decode(&[0; BLOCK]), Err(StoreError::Empty));
    let mut b = good;
    b[200] ^= 1;
    assert_eq!(decode(&b), Err(StoreError::BadChecksum));
    let mut b = good;
    b[0] = b'X';
    assert_eq!(decode(&b), Err(StoreError::BadMagic));
    let mut b = good;
    b[8] = 9;
    assert_eq!(decode(&b), Err(StoreError::BadVersion));
    // Each of these is a bad field once the CRC is fixed up.
    let first = 128; // the first snapshot entry
    let cases: [(&str, usize, u8); 9] = [
        ("track size", 56, 3),
        ("reserved header", 100, 1),
        ("past the table", 3500, 1),
        ("state", first + 4, 7),
        ("flags", first + 5, 0x80),
        ("entry reserved", first + 6, 1),
        ("name char", first + 32, b' '),
        ("name padding", first + 50, b'a'),
        ("epoch above newest", first, 9),
    ];
    for (what, off, v) in cases {
        let mut b = good;
        b[off] = v;
        reseal(&mut b);
        assert_eq!(decode(&b), Err(StoreError::BadField), "{what}");
    }
    // A checksum without its flag, a duplicate epoch, an unused entry not zero.
    let mut s = sb();
    s.find_mut(1).unwrap().flags = 0;
    let mut b = [0u8; BLOCK];
    s.encode_into(&mut b);
    assert_eq!(decode(&b), Err(StoreError::BadField), "stray checksum");
    let mut s = sb();
    s.snaps[1].epoch = 1;
    s.encode_into(&mut b);
    assert_eq!(decode(&b), Err(StoreError::BadField), "duplicate epoch");
    let mut b = good;
    b[128 + 3 * 96 + 20] = 1;
    reseal(&mut b);
    assert_eq!(decode(&b), Err(StoreError::BadField), "unused entry");
    assert!(pad_name(b"has space").is_none());
    assert!(pad_name(&[b'a'; NAME_LEN + 1]).is_none());
}

fn rec(track: u64, slot: u32, epoch: u32) -> Record {
    Record { track, slot, epoch }
}

#[test]
fn record_blocks_round_trip_stale_and_torn() {
    let s = sb();
    let mut b = [0u8; BLOCK];
    let want = [rec(5, 252, 1), rec(9, 260, 2)];
    let n = encode_records(&mut b, s.store_id, 1, 4, |slot| {
        want.iter().copied().find(|r| r.slot == slot)
    });
    assert_eq!(n, 2);
    assert_eq!(
        decode_records(&b, &s, 1, 100),
        Ok(RecHeader { seq: 4, count: 2 })
    );
    let got: Vec<Record> = (0..RECORDS_PER_BLOCK)
        .filter_map(|j| record_in(&b, j))
        .collect();
    assert_eq!(got, want);
    // Written for block 1: stale at any other place, and for any other store.
    assert_eq!(decode_records(&b, &s, 0, 100), Err(StoreError::Stale));
    let mut other = s.clone();
    other.store_id = 1;
    assert_eq!(decode_records(&b, &other, 1, 100), Err(StoreError::Stale));
    // Tracks and epochs are checked against the device and the superblock.
    assert_eq!(decode_records(&b, &s, 1, 9), Err(StoreError::BadField));
    let mut older = s.clone();
    older.newest_epoch = 1;
    assert_eq!(
        decode_records(&b, &older, 1, 100),
        Err(StoreError::BadField)
    );
    let mut fewer = s.clone();
    fewer.slot_count = 255;
    assert_eq!(
        decode_records(&b, &fewer, 1, 100),
        Err(StoreError::BadField)
    );
    // A record not at its slot's place, a wrong count, a torn block.
    let mut bad = b;
    bad[64 + 8] = 0; // record 0 now claims slot 0
    reseal(&mut bad);
    assert_eq!(decode_records(&bad, &s, 1, 100), Err(StoreError::BadField));
    let mut bad = b;
    bad[40] = 3;
    reseal(&mut bad);
    assert_eq!(decode_records(&bad, &s, 1, 100), Err(StoreError::BadField));
    let mut torn = b;
    torn[3000] = 0xff;
    assert_eq!(
        decode_records(&torn, &s, 1, 100),
        Err(StoreError::BadChecksum)
    );
    // A record handed in for another slot is left out.
    assert_eq!(
        encode_records(&mut b, 1, 0, 1, |_| Some(rec(1, 9999, 1))),
        0
    );
}

#[test]
fn pick_the_current_copy() {
    use StoreError::*;
    assert_eq!(pick(Ok(4), Ok(5)), Ok(Some(1)));
    assert_eq!(pick(Ok(6), Ok(5)), Ok(Some(0)));
    assert_eq!(
        pick(Ok(6), Err(BadChecksum)),
        Ok(Some(0)),
        "torn newer copy"
    );
    assert_eq!(pick(Err(Stale), Ok(1)), Ok(Some(1)));
    assert_eq!(pick(Err(Empty), Err(Empty)), Ok(None), "never written");
    assert_eq!(
        pick(Err(BadChecksum), Err(Empty)),
        Ok(None),
        "first write torn"
    );
    assert_eq!(pick(Err(Stale), Err(BadChecksum)), Ok(None));
    assert_eq!(pick(Err(BadChecksum), Err(BadChecksum)), Err(Corrupt));
    assert_eq!(pick(Ok(1), Err(BadField)), Err(BadField));
    assert_eq!(pick(Err(BadMagic), Ok(1)), Err(BadMagic));
    // Writes alternate between the copies.
    assert_eq!((copy_for(4), copy_for(5)), (0, 1));
}

#[test]
fn geometry() {
    assert_eq!(RECORDS_PER_BLOCK, 252);
    assert_eq!(record_blocks(0), 0);
    assert_eq!(record_blocks(253), 2);
    assert_eq!(block_of_slot(252), 1);
    assert_eq!(record_offset(1, 1), 8192 + 3 * 4096);
    // 1000 slots: 4 record blocks (8 copies) end at 40 KiB; data at 64 KiB.
    assert_eq!(data_offset(1000, 65536), 65536);
    assert_eq!(slot_offset(1000, 65536, 2), 3 * 65536);
    assert_eq!(store_bytes(1000, 65536), 1001 * 65536);
    assert_eq!(slots_for(1001 * 65536, 65536), 1000);
    assert_eq!(slots_for(4096, 4096), 0);
    assert_eq!(slots_for(1 << 40, 0), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// `slots_for` gives the most slots that fit.
    #[test]
    fn slots_for_is_the_most_that_fit(bytes in 0u64..(1 << 44), shift in 12u32..25) {
        let ts = 1u32 << shift;
        let n = slots_for(bytes, ts);
        prop_assert!(n == 0 || store_bytes(n, ts) <= bytes);
        prop_assert!(n == u32::MAX - 2 || store_bytes(n + 1, ts) > bytes);
    }

    /// The decoders never panic, and what they accept encodes back to the same
    /// bytes, on arbitrary blocks and on valid ones with bytes changed (CRC fixed).
    #[test]
    fn decoders_accept_only_what_they_write(
        junk in prop::collection::vec(any::<u8>(), BLOCK),
        flips in prop::collection::vec((0usize..BLOCK, any::<u8>()), 1..4),
        reseal_it in any::<bool>(),
    ) {
        let junk: [u8; BLOCK] = junk.try_into().unwrap();
        let s = sb();
        let mut good = [0u8; BLOCK];
        s.encode_into(&mut good);
        let mut recs = [0u8; BLOCK];
        encode_records(&mut recs, s.store_id, 0, 9, |slot| {
            (slot % 3 == 0).then_some(rec(u64::from(slot), slot, 1 + slot % 2))
        });
        for base in [junk, good, recs] {
            let mut b = base;
            for &(o, v) in &flips {
                b[o] ^= v;
            }
            if reseal_it {
                reseal(&mut b);
            }
            if let Ok(d) = decode(&b) {
                let mut again = [0u8; BLOCK];
                d.encode_into(&mut again);
                prop_assert_eq!(again, b);
            }
            if let Ok(h) = decode_records(&b, &s, 0, 1 << 20) {
                let mut again = [0u8; BLOCK];
                let n = encode_records(&mut again, s.store_id, 0, h.seq, |slot| {
                    record_in(&b, slot)
                });
                prop_assert_eq!(n, h.count);
                prop_assert_eq!(again, b);
            }
        }
    }
}
