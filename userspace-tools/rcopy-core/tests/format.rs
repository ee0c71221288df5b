//! On-disk metadata format: superblock round trips, corruption detection,
//! decoder robustness, generation rules and bitmap block arithmetic.

use proptest::prelude::*;
use rcopy_core::crc32c::crc32c;
use rcopy_core::format::*;
use rcopy_core::geometry::{bitmap_bytes, meta_bytes_needed, tracks};
use rcopy_core::proto::pair_id_from_name;
use rcopy_core::table::{MAX_TRACK_SIZE, MIN_TRACK_SIZE};

/// The layout documented in `Documentation/rcopy.rst`, *On-disk format*.
const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
const OFF_FLAGS: usize = 12;
const OFF_PAIR_ID: usize = 16;
const OFF_NODE_ID: usize = 32;
const OFF_SIZE: usize = 40;
const OFF_TRACK: usize = 48;
const OFF_CRC: usize = 52;
const OFF_GEN_CURRENT: usize = 56;
const OFF_GEN_BITMAP: usize = 64;
const OFF_GEN_HISTORY: usize = 72;
const OFF_DIRTY: usize = 88;
const OFF_GEN_PEER_PREV: usize = 96;
const OFF_NAME: usize = 104;
const NAME_LEN: usize = 64;
const USED: usize = 168;

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

fn put(b: &mut [u8], off: usize, v: &[u8]) {
    b[off..off + v.len()].copy_from_slice(v);
}

/// Writes the CRC of `b` (its CRC field zeroed) into the CRC field.
fn seal(b: &mut [u8; SB_BYTES]) {
    put(b, OFF_CRC, &[0; 4]);
    let crc = crc32c(b);
    put(b, OFF_CRC, &crc.to_le_bytes());
}

/// 4096 pseudo-random bytes from `seed`, each non-zero with probability
/// about `density / 256` (so from almost all zeroes to almost none); with a
/// valid magic and version if asked, and sealed with a valid CRC if asked.
fn arbitrary_block(
    seed: u64,
    density: u8,
    magic: bool,
    version: bool,
    sealed: bool,
) -> [u8; SB_BYTES] {
    let mut x = seed | 1;
    let mut next = || {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut b = [0u8; SB_BYTES];
    for c in b.iter_mut() {
        let r = next();
        if (r & 0xff) < u64::from(density) {
            *c = (r >> 8) as u8;
        }
    }
    if magic {
        put(&mut b, OFF_MAGIC, b"RCPYMETA");
    }
    if version {
        put(&mut b, OFF_VERSION, &2u32.to_le_bytes());
    }
    if sealed {
        seal(&mut b);
    }
    b
}

fn valid_track_size() -> impl Strategy<Value = u32> {
    (0u32..=12).prop_map(|k| MIN_TRACK_SIZE << k)
}

/// A character a pair name may hold: mostly printable ASCII (no space, no
/// backslash), sometimes multi-byte UTF-8.
fn name_char() -> impl Strategy<Value = char> {
    prop_oneof![
        8 => (0x21u8..=0x7e).prop_filter("backslash", |&c| c != b'\\').prop_map(char::from),
        1 => prop::sample::select(vec!['é', 'ß', '€', '→', '名', '𝄞']),
    ]
}

/// A valid pair name of 1 to 64 bytes.
fn pair_name() -> impl Strategy<Value = String> {
    prop::collection::vec(name_char(), 1..=64).prop_map(|cs| {
        let mut s = String::new();
        for c in cs {
            if s.len() + c.len_utf8() > NAME_LEN {
                break;
            }
            s.push(c);
        }
        s
    })
}

/// A pair id and name `decode` accepts: no name and any id, or a name and its
/// hash.
fn pair_identity() -> impl Strategy<Value = ([u8; 16], PairName)> {
    prop_oneof![
        any::<[u8; 16]>().prop_map(|id| (id, PairName::NONE)),
        pair_name().prop_map(|n| (
            pair_id_from_name(n.as_bytes()),
            PairName::new(n.as_bytes()).unwrap()
        )),
    ]
}

/// Any superblock `decode` must accept.
fn valid_superblock() -> impl Strategy<Value = Superblock> {
    (
        (0..=SB_FLAGS),
        pair_identity(),
        any::<u64>(),
        any::<u64>().prop_map(|v| v & !511),
        valid_track_size(),
        1..=u64::MAX,
        any::<u64>(),
        any::<[u64; 2]>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(flags, (pair_id, name), node_id, size_bytes, track_size, gc, gb, gh, dirty, gpp)| {
                Superblock {
                    flags,
                    pair_id,
                    name,
                    node_id,
                    size_bytes,
                    track_size,
                    gen_current: gc,
                    gen_bitmap: gb,
                    gen_peer_prev: gpp,
                    gen_history: gh,
                    dirty_tracks: dirty,
                }
            },
        )
}

/// The error `decode` gives for an encoded superblock whose byte `off` was
/// changed: the magic and version are checked before the checksum.
fn expected_error(off: usize) -> MetaError {
    match off {
        0..=7 => MetaError::BadMagic,
        8..=11 => MetaError::BadVersion,
        _ => MetaError::BadChecksum,
    }
}

#[test]
fn documented_layout() {
    let sb = Superblock {
        flags: SB_SYNCED | SB_PRIMARY,
        pair_id: *b"0123456789abcdef",
        name: PairName::NONE,
        node_id: 0x1122_3344_5566_7788,
        size_bytes: 1 << 30,
        track_size: 65536,
        gen_current: 0xa1,
        gen_bitmap: 0xa2,
        gen_peer_prev: 0xa5,
        gen_history: [0xa3, 0xa4],
        dirty_tracks: 17,
    };
    let b = sb.encode();
    assert_eq!(&b[OFF_MAGIC..OFF_MAGIC + 8], b"RCPYMETA");
    assert_eq!(u32_at(&b, OFF_VERSION), 2);
    assert_eq!(u32_at(&b, OFF_FLAGS), 0b1001);
    assert_eq!(&b[OFF_PAIR_ID..OFF_PAIR_ID + 16], b"0123456789abcdef");
    assert_eq!(u64_at(&b, OFF_NODE_ID), 0x1122_3344_5566_7788);
    assert_eq!(u64_at(&b, OFF_SIZE), 1 << 30);
    assert_eq!(u32_at(&b, OFF_TRACK), 65536);
    assert_eq!(u64_at(&b, OFF_GEN_CURRENT), 0xa1);
    assert_eq!(u64_at(&b, OFF_GEN_BITMAP), 0xa2);
    assert_eq!(u64_at(&b, OFF_GEN_HISTORY), 0xa3);
    assert_eq!(u64_at(&b, OFF_GEN_HISTORY + 8), 0xa4);
    assert_eq!(u64_at(&b, OFF_DIRTY), 17);
    assert_eq!(u64_at(&b, OFF_GEN_PEER_PREV), 0xa5);
    assert!(b[USED..].iter().all(|&c| c == 0));
    let mut z = b;
    put(&mut z, OFF_CRC, &[0; 4]);
    assert_eq!(u32_at(&b, OFF_CRC), crc32c(&z));
    // The flag bits.
    assert_eq!(
        (SB_SYNCED, SB_COPY_STARTED, SB_CONSISTENT, SB_PRIMARY),
        (1, 2, 4, 8)
    );
    assert_eq!(SB_FLAGS, 0x1f);
    assert_eq!((SB_BYTES, BITMAP_OFFSET, BITMAP_BLOCK), (4096, 4096, 4096));
    assert_eq!((WORDS_PER_BLOCK, TRACKS_PER_BLOCK), (512, 32768));
    assert_eq!(META_VERSION, 2);
    assert_eq!(NAME_BYTES, NAME_LEN);
}

#[test]
fn name_layout() {
    let sb = Superblock::for_pair(b"r0", 1, 2, 1 << 30, 65536);
    let b = sb.encode();
    assert_eq!(&b[OFF_PAIR_ID..OFF_PAIR_ID + 16], &pair_id_from_name(b"r0"));
    assert_eq!(&b[OFF_NAME..OFF_NAME + 2], b"r0");
    assert!(b[OFF_NAME + 2..].iter().all(|&c| c == 0));
    assert_eq!(Superblock::decode(&b).unwrap().name.as_str(), "r0");
}

/// A superblock of `sb`'s fields whose name field holds `field`, sealed.
fn with_name_field(sb: &Superblock, field: &[u8]) -> [u8; SB_BYTES] {
    let mut b = sb.encode();
    b[OFF_NAME..OFF_NAME + NAME_LEN].fill(0);
    put(&mut b, OFF_NAME, field);
    seal(&mut b);
    b
}

#[test]
fn names_of_every_length() {
    for len in 1..=NAME_LEN {
        for word in ["p".repeat(len), "é".repeat(len / 2) + &"x".repeat(len % 2)] {
            if word.is_empty() {
                continue;
            }
            let sb = Superblock::for_pair(word.as_bytes(), 1, 2, 1 << 30, 65536);
            assert_eq!(sb.name.as_str(), word);
            assert_eq!(sb.pair_id, pair_id_from_name(word.as_bytes()));
            let b = sb.encode();
            assert_eq!(&b[OFF_NAME..OFF_NAME + len], word.as_bytes());
            assert_eq!(Superblock::decode(&b), Ok(sb), "{word}");
        }
    }
    // One byte more than the table takes: not a name.
    let long = "p".repeat(NAME_LEN + 1);
    assert_eq!(PairName::new(long.as_bytes()), None);
    let sb = Superblock::for_pair(long.as_bytes(), 1, 2, 1 << 30, 65536);
    assert_eq!(sb.name, PairName::NONE);
    assert_eq!(sb.pair_id, pair_id_from_name(long.as_bytes()));
}

#[test]
fn superblocks_from_before_names_decode_without_one() {
    // What the previous version wrote: the same fields, zeroes past byte 104.
    let old = Superblock::new(pair_id_from_name(b"r0"), 1, 2, 1 << 30, 65536);
    let mut b = [0u8; SB_BYTES];
    put(&mut b, OFF_MAGIC, b"RCPYMETA");
    put(&mut b, OFF_VERSION, &2u32.to_le_bytes());
    put(&mut b, OFF_PAIR_ID, &pair_id_from_name(b"r0"));
    put(&mut b, OFF_NODE_ID, &1u64.to_le_bytes());
    put(&mut b, OFF_SIZE, &(1u64 << 30).to_le_bytes());
    put(&mut b, OFF_TRACK, &65536u32.to_le_bytes());
    put(&mut b, OFF_GEN_CURRENT, &2u64.to_le_bytes());
    seal(&mut b);
    let sb = Superblock::decode(&b).unwrap();
    assert_eq!(sb, old);
    assert!(sb.name.is_empty());
    assert_eq!(sb.name.as_str(), "");
    // Rewritten (as the kernel does after a change), it stays without a name.
    assert_eq!(sb.encode(), b);
}

#[test]
fn bad_names_are_refused() {
    let sb = Superblock::for_pair(b"r0", 1, 2, 1 << 30, 65536);
    let bad: [&[u8]; 10] = [
        b"r0\0x",          // a byte after the first NUL
        b"\0r0",           // NUL first, bytes after it
        b"r 0",            // whitespace
        b"r0\n",           // control character
        b"r\\0",           // backslash
        b"r0\xff",         // not UTF-8
        b"r0\xc3",         // truncated UTF-8
        b"r0\xc2\xa0",     // U+00A0, Unicode whitespace
        b"r0\xc2\x85",     // U+0085, a C1 control character
        &[b'r'; NAME_LEN], // valid, but not the name `pair_id` was made from
    ];
    for field in bad {
        assert_eq!(
            Superblock::decode(&with_name_field(&sb, field)),
            Err(MetaError::BadField),
            "{field:?}"
        );
    }
    // The right name, or none: accepted.
    assert_eq!(Superblock::decode(&with_name_field(&sb, b"r0")), Ok(sb));
    let none = Superblock::decode(&with_name_field(&sb, b"")).unwrap();
    assert_eq!((none.pair_id, none.name), (sb.pair_id, PairName::NONE));
    // A name whose hash is not `pair_id`.
    assert_eq!(
        Superblock::decode(&with_name_field(&sb, b"r1")),
        Err(MetaError::BadField)
    );
}

#[test]
fn bit_flips_are_caught() {
    let mut sb = Superblock::new([0x5a; 16], 7, 9, 1 << 40, 1 << 20);
    sb.flags = SB_SYNCED | SB_CONSISTENT;
    sb.new_generation(10);
    let good = sb.encode();
    // Every bit of the fields, and one bit of every reserved byte (each bit
    // position in turn); the property tests below cover the rest at random.
    let field_bits = 0..USED * 8;
    let reserved_bits = (USED..SB_BYTES).map(|off| off * 8 + off % 8);
    for bit in field_bits.chain(reserved_bits) {
        let mut b = good;
        b[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(
            Superblock::decode(&b),
            Err(expected_error(bit / 8)),
            "bit {bit}"
        );
    }
}

#[test]
fn messages() {
    let all = [
        MetaError::NotFormatted,
        MetaError::BadMagic,
        MetaError::BadVersion,
        MetaError::BadChecksum,
        MetaError::BadField,
        MetaError::WrongSize,
        MetaError::WrongTrackSize,
        MetaError::WrongPair,
    ];
    for (i, e) in all.iter().enumerate() {
        assert!(!e.message().is_empty());
        assert_eq!(e.to_string(), e.message());
        assert_eq!(e.reason().to_bytes(), e.message().as_bytes());
        for other in &all[i + 1..] {
            assert_ne!(e.message(), other.message());
        }
    }
    assert_eq!(
        MetaError::WrongPair.message(),
        "Metadata belongs to another pair"
    );
    assert_eq!(
        MetaError::BadChecksum.message(),
        "Metadata superblock is corrupt (bad checksum)"
    );
}

#[test]
fn generation_examples() {
    // A fresh superblock: no peer known yet.
    let mut sb = Superblock::new([1; 16], 1, 0x10, 1 << 30, 65536);
    assert_eq!(
        (
            sb.gen_current,
            sb.gen_bitmap,
            sb.gen_peer_prev,
            sb.gen_history
        ),
        (0x10, 0, 0, [0, 0])
    );
    // The initial copy completes and the peer confirms it holds 0x10.
    sb.peer_caught_up(0x10);
    assert_eq!((sb.gen_bitmap, sb.gen_peer_prev), (0x10, 0));
    // The link goes down and the primary writes: generation 0x11. The peer's
    // generation stays 0x10, and the bitmap counts from it.
    sb.new_generation(0x11);
    assert_eq!(
        (
            sb.gen_current,
            sb.gen_bitmap,
            sb.gen_peer_prev,
            sb.gen_history
        ),
        (0x11, 0x10, 0, [0x10, 0])
    );
    // A restart before any resync: still from 0x10.
    sb.new_generation(0x12);
    assert_eq!(
        (
            sb.gen_current,
            sb.gen_bitmap,
            sb.gen_peer_prev,
            sb.gen_history
        ),
        (0x12, 0x10, 0, [0x11, 0x10])
    );
    // The handshake finds the peer at 0x10, then the resync completes and the
    // peer confirms it holds 0x12; 0x10, an ancestor both share, is kept.
    sb.peer_is_at(0x10);
    sb.peer_caught_up(0x12);
    assert_eq!((sb.gen_bitmap, sb.gen_peer_prev), (0x12, 0x10));
    // Idempotent: a second confirmation changes nothing.
    sb.peer_caught_up(0x12);
    assert_eq!((sb.gen_bitmap, sb.gen_peer_prev), (0x12, 0x10));
    // The next handshake forgets the previous one.
    sb.peer_is_at(0x12);
    assert_eq!((sb.gen_bitmap, sb.gen_peer_prev), (0x12, 0));
    let info = sb.gen_info(rcopy_core::gens::GF_CONSISTENT);
    assert_eq!(
        (
            info.current,
            info.peer,
            info.peer_prev,
            info.history,
            info.flags
        ),
        (0x12, 0x12, 0, [0x11, 0x10], 2)
    );

    // The secondary: fresh metadata at 0x50, then the copy from the primary
    // at 0x12 completes.
    let mut s = Superblock::new([1; 16], 2, 0x50, 1 << 30, 65536);
    s.adopt(0x12);
    assert_eq!(
        (s.gen_current, s.gen_bitmap, s.gen_peer_prev, s.gen_history),
        (0x12, 0, 0, [0x50, 0])
    );
    // Adopting the generation it already holds changes nothing.
    s.adopt(0x12);
    assert_eq!((s.gen_current, s.gen_history), (0x12, [0x50, 0]));
    // Takeover: its peer holds at most 0x12, its own writes are 0x60.
    s.promote(0x60);
    assert_eq!(
        (s.gen_current, s.gen_bitmap, s.gen_peer_prev, s.gen_history),
        (0x60, 0x12, 0, [0x12, 0x50])
    );
}

#[test]
fn block_examples() {
    assert_eq!(bitmap_blocks(0), 0);
    assert_eq!(bitmap_blocks(1), 1);
    assert_eq!(bitmap_blocks(32768), 1);
    assert_eq!(bitmap_blocks(32769), 2);
    assert_eq!(bitmap_blocks(u64::MAX), (u64::MAX >> 15) + 1);
    assert_eq!(block_of_track(32767), 0);
    assert_eq!(block_of_track(32768), 1);
    assert_eq!(block_offset(0), 4096);
    assert_eq!(block_offset(2), 12288);
    // 1 TiB at 64 KiB: 16 Mi tracks in 512 blocks, 2 MiB of bitmap.
    assert_eq!(bitmap_blocks(tracks(1 << 40, 65536)), 512);
    assert_eq!(
        block_offset(bitmap_blocks(tracks(1 << 40, 65536))),
        rcopy_core::geometry::al_offset(1 << 40, 65536)
    );
    assert_eq!(
        meta_bytes_needed(1 << 40, 65536),
        rcopy_core::geometry::al_offset(1 << 40, 65536) + rcopy_core::activity::AL_REGION_BYTES
    );
}

#[derive(Debug, Clone)]
enum GenOp {
    New(u64),
    /// The peer confirmed a generation (`None`: the current one).
    CaughtUp(Option<u64>),
    PeerIsAt(u64),
    Adopt(u64),
    Promote(u64),
}

/// Generation ids: mostly from a small alphabet (so they repeat), sometimes any.
fn gen_id() -> impl Strategy<Value = u64> {
    prop_oneof![3 => 1..=6u64, 1 => 1..=u64::MAX]
}

fn gen_op() -> impl Strategy<Value = GenOp> {
    prop_oneof![
        3 => gen_id().prop_map(GenOp::New),
        2 => prop_oneof![3 => Just(None), 1 => gen_id().prop_map(Some)].prop_map(GenOp::CaughtUp),
        1 => prop_oneof![Just(0u64), gen_id()].prop_map(GenOp::PeerIsAt),
        1 => gen_id().prop_map(GenOp::Adopt),
        1 => gen_id().prop_map(GenOp::Promote),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn round_trip(sb in valid_superblock()) {
        let b = sb.encode();
        prop_assert_eq!(Superblock::decode(&b), Ok(sb));
        prop_assert_eq!(&b[..8], b"RCPYMETA");
        prop_assert!(b[USED..].iter().all(|&c| c == 0));
        // Encoding is deterministic, and decoding what was decoded gives
        // the same bytes.
        prop_assert_eq!(sb.encode(), b);
        prop_assert_eq!(sb.check(sb.size_bytes, sb.track_size, &sb.pair_id), Ok(()));
    }

    #[test]
    fn any_byte_corruption_is_rejected(sb in valid_superblock(), off in 0..SB_BYTES, x in 1..=255u8) {
        let mut b = sb.encode();
        b[off] ^= x;
        prop_assert_eq!(Superblock::decode(&b), Err(expected_error(off)));
    }

    #[test]
    fn any_bit_flip_is_rejected(sb in valid_superblock(), bit in 0..SB_BYTES * 8) {
        let mut b = sb.encode();
        b[bit / 8] ^= 1 << (bit % 8);
        prop_assert_eq!(Superblock::decode(&b), Err(expected_error(bit / 8)));
    }

    #[test]
    fn short_bursts_are_rejected(sb in valid_superblock(), off in 0..SB_BYTES - 4, x in 1..=u32::MAX) {
        // CRC-32C catches every error burst of up to 32 bits.
        let mut b = sb.encode();
        for (i, m) in x.to_le_bytes().iter().enumerate() {
            b[off + i] ^= m;
        }
        prop_assert!(Superblock::decode(&b).is_err());
    }

    #[test]
    fn decode_never_panics(
        seed in any::<u64>(),
        density in any::<u8>(),
        magic in any::<bool>(),
        version in any::<bool>(),
        sealed in any::<bool>(),
    ) {
        let b = arbitrary_block(seed, density, magic, version, sealed);
        match Superblock::decode(&b) {
            // Whatever is accepted encodes back to the same bytes.
            Ok(sb) => prop_assert_eq!(sb.encode(), b),
            Err(e) if magic && version && sealed => {
                // Past the magic, version and checksum: only the field
                // checks can refuse it.
                prop_assert_eq!(e, MetaError::BadField);
            }
            Err(e) if magic && version => {
                prop_assert!(matches!(e, MetaError::BadChecksum | MetaError::BadField), "{:?}", e);
            }
            Err(_) => {}
        }
    }

    #[test]
    fn field_checks_match_the_model(
        flags in prop_oneof![0..=SB_FLAGS, any::<u32>()],
        size in prop_oneof![any::<u64>().prop_map(|v| v & !511), any::<u64>()],
        track in prop_oneof![valid_track_size(), any::<u32>(), (0u32..32).prop_map(|k| 1 << k)],
        gen_current in prop_oneof![Just(0u64), any::<u64>()],
        junk in prop_oneof![3 => Just(None), 1 => (USED..SB_BYTES, 1..=255u8).prop_map(Some)],
        rest in any::<([u8; 16], u64, u64, [u64; 2], u64, u64)>(),
    ) {
        // A properly sealed block with arbitrary field values: accepted
        // exactly when every field is in range and the reserved bytes are
        // zero.
        let (pair_id, node_id, gen_bitmap, gen_history, dirty, gen_peer_prev) = rest;
        let mut b = [0u8; SB_BYTES];
        put(&mut b, OFF_MAGIC, b"RCPYMETA");
        put(&mut b, OFF_VERSION, &2u32.to_le_bytes());
        put(&mut b, OFF_FLAGS, &flags.to_le_bytes());
        put(&mut b, OFF_PAIR_ID, &pair_id);
        put(&mut b, OFF_NODE_ID, &node_id.to_le_bytes());
        put(&mut b, OFF_SIZE, &size.to_le_bytes());
        put(&mut b, OFF_TRACK, &track.to_le_bytes());
        put(&mut b, OFF_GEN_CURRENT, &gen_current.to_le_bytes());
        put(&mut b, OFF_GEN_BITMAP, &gen_bitmap.to_le_bytes());
        put(&mut b, OFF_GEN_HISTORY, &gen_history[0].to_le_bytes());
        put(&mut b, OFF_GEN_HISTORY + 8, &gen_history[1].to_le_bytes());
        put(&mut b, OFF_DIRTY, &dirty.to_le_bytes());
        put(&mut b, OFF_GEN_PEER_PREV, &gen_peer_prev.to_le_bytes());
        if let Some((off, x)) = junk {
            b[off] ^= x;
        }
        seal(&mut b);
        let valid = flags & !SB_FLAGS == 0
            && track.is_power_of_two()
            && (MIN_TRACK_SIZE..=MAX_TRACK_SIZE).contains(&track)
            && size % 512 == 0
            && gen_current != 0
            && junk.is_none();
        let want = Superblock {
            flags,
            pair_id,
            name: PairName::NONE,
            node_id,
            size_bytes: size,
            track_size: track,
            gen_current,
            gen_bitmap,
            gen_peer_prev,
            gen_history,
            dirty_tracks: dirty,
        };
        if valid {
            prop_assert_eq!(Superblock::decode(&b), Ok(want));
        } else {
            prop_assert_eq!(Superblock::decode(&b), Err(MetaError::BadField));
        }
    }

    #[test]
    fn name_field_matches_the_model(
        sb in valid_superblock(),
        name in pair_name(),
        field in prop_oneof![
            // A name, maybe with junk after its NUL.
            (pair_name(), prop::option::of((0..NAME_LEN, 1..=255u8))).prop_map(|(n, junk)| {
                let mut f = [0u8; NAME_LEN];
                f[..n.len()].copy_from_slice(n.as_bytes());
                if let Some((off, x)) = junk {
                    f[off] ^= x;
                }
                f
            }),
            any::<[u8; 32]>().prop_map(|h| {
                let mut f = [0u8; NAME_LEN];
                f[..32].copy_from_slice(&h);
                f
            }),
        ],
        hashed in any::<bool>(),
    ) {
        // Independent model of the rule: bytes up to the first NUL are a name
        // rcopyctl would accept (or none), only NULs follow, and a name is the
        // one `pair_id` was made from.
        let len = field.iter().position(|&c| c == 0).unwrap_or(NAME_LEN);
        let text = std::str::from_utf8(&field[..len]).ok();
        let word_ok = text.is_some_and(|t| {
            !t.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\\')
        });
        let pad_ok = field[len..].iter().all(|&c| c == 0);
        let mut s = sb;
        s.pair_id = if hashed { pair_id_from_name(&field[..len]) } else { pair_id_from_name(name.as_bytes()) };
        let valid = pad_ok
            && (len == 0 || (word_ok && pair_id_from_name(&field[..len]) == s.pair_id));
        let got = Superblock::decode(&with_name_field(&s, &field));
        if valid {
            let d = got.unwrap();
            prop_assert_eq!(d.name.as_bytes(), &field[..len]);
            prop_assert_eq!(d.pair_id, s.pair_id);
        } else {
            prop_assert_eq!(got, Err(MetaError::BadField));
        }
    }

    #[test]
    fn check_names_the_first_mismatch(
        sb in valid_superblock(),
        size in any::<u64>(),
        track in valid_track_size(),
        pair in any::<[u8; 16]>(),
    ) {
        let want = if pair != sb.pair_id {
            Err(MetaError::WrongPair)
        } else if size != sb.size_bytes {
            Err(MetaError::WrongSize)
        } else if track != sb.track_size {
            Err(MetaError::WrongTrackSize)
        } else {
            Ok(())
        };
        prop_assert_eq!(sb.check(size, track, &pair), want);
        prop_assert_eq!(sb.check(sb.size_bytes, sb.track_size, &sb.pair_id), Ok(()));
        let mut other = sb.pair_id;
        other[0] ^= 1;
        prop_assert_eq!(sb.check(sb.size_bytes, sb.track_size, &other), Err(MetaError::WrongPair));
    }

    #[test]
    fn generations_follow_the_model(
        start in 1..=u64::MAX,
        ops in proptest::collection::vec(gen_op(), 0..40),
    ) {
        // Model: every generation this side has had, oldest first; the peer's
        // generation (0: none) and the one before it.
        let mut gens = vec![start];
        let (mut peer, mut prev) = (0u64, 0u64);
        let mut sb = Superblock::new([3; 16], 1, start, 1 << 30, 65536);
        for op in ops {
            let cur = *gens.last().unwrap();
            match op {
                GenOp::New(g) => {
                    // The peer's generation stays: the bitmap still counts from it.
                    gens.push(g);
                    sb.new_generation(g);
                }
                GenOp::CaughtUp(g) => {
                    let g = g.unwrap_or(cur);
                    if peer != g {
                        prev = peer;
                        peer = g;
                    }
                    sb.peer_caught_up(g);
                    prop_assert_eq!(sb.gen_bitmap, g);
                }
                GenOp::PeerIsAt(g) => {
                    (peer, prev) = (g, 0);
                    sb.peer_is_at(g);
                }
                GenOp::Adopt(g) => {
                    if g != cur {
                        gens.push(g);
                    }
                    (peer, prev) = (0, 0);
                    sb.adopt(g);
                    prop_assert_eq!(sb.gen_current, g);
                }
                GenOp::Promote(g) => {
                    (peer, prev) = (cur, 0);
                    gens.push(g);
                    sb.promote(g);
                    // The old generation is the peer's and the newest history.
                    prop_assert_eq!((sb.gen_bitmap, sb.gen_history[0]), (cur, cur));
                }
            }
            let n = gens.len();
            let older = |k: usize| if n > k { gens[n - 1 - k] } else { 0 };
            prop_assert_eq!(sb.gen_current, gens[n - 1]);
            prop_assert_eq!((sb.gen_bitmap, sb.gen_peer_prev), (peer, prev));
            prop_assert_eq!(sb.gen_history, [older(1), older(2)]);
            // What the HELLO carries is what the superblock holds.
            let info = sb.gen_info(5);
            prop_assert_eq!(
                (info.current, info.peer, info.peer_prev, info.history, info.flags),
                (sb.gen_current, sb.gen_bitmap, sb.gen_peer_prev, sb.gen_history, 5)
            );
            // And what is kept survives the disk.
            prop_assert_eq!(Superblock::decode(&sb.encode()), Ok(sb));
        }
    }

    #[test]
    fn block_math_matches_the_model(t in any::<u64>(), n in any::<u64>(), blk in 0u64..(1 << 50)) {
        // bitmap_blocks: the fewest blocks of 32768 bits holding n bits.
        let nb = u128::from(bitmap_blocks(n));
        prop_assert!(nb * 32768 >= u128::from(n));
        prop_assert!(nb == 0 || (nb - 1) * 32768 < u128::from(n));
        // block_of_track: the block whose range holds t.
        let b = u128::from(block_of_track(t));
        prop_assert!(b * 32768 <= u128::from(t) && u128::from(t) < (b + 1) * 32768);
        // block_offset: after the superblock, 4096 bytes each.
        prop_assert_eq!(u128::from(block_offset(blk)), 4096 + u128::from(blk) * 4096);
    }

    #[test]
    fn bitmap_area_matches_geometry(len in any::<u64>(), ts in valid_track_size()) {
        let n = tracks(len, ts);
        prop_assert_eq!(bitmap_blocks(n) * BITMAP_BLOCK as u64, bitmap_bytes(len, ts));
        prop_assert_eq!(block_offset(bitmap_blocks(n)), rcopy_core::geometry::al_offset(len, ts));
        if n > 0 {
            // The last track's block is the last block.
            prop_assert_eq!(block_of_track(n - 1) + 1, bitmap_blocks(n));
        }
    }

    #[test]
    fn blocks_of_words_are_a_flat_bit_array(t in 0u64..(1 << 52)) {
        // Track t is bit t % 64 of little-endian word t / 64 of its block:
        // the same as bit t % 8 of byte t / 8 of the whole bitmap area.
        let word = (t % TRACKS_PER_BLOCK) / 64;
        prop_assert!(word < WORDS_PER_BLOCK as u64);
        let byte = block_offset(block_of_track(t)) + word * 8 + (t % 64) / 8;
        prop_assert_eq!(byte, BITMAP_OFFSET + t / 8);
        let w: u64 = 1 << (t % 64);
        let in_word = (byte - block_offset(block_of_track(t)) - word * 8) as usize;
        prop_assert_eq!(w.to_le_bytes()[in_word], 1u8 << (t % 8));
    }
}
