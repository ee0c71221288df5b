//! Seed inputs: one valid encoding of each thing a target decodes, made with the
//! core's own encoders, so the fuzzer starts past the magic numbers and CRCs.
//! `cargo run --example seeds` writes them into `corpus/<target>/seed-<name>`;
//! `tests/corpus.rs` checks they still decode (a format change makes them stale).

use rcopy_core::activity;
use rcopy_core::format::{Superblock, SB_CLEAN, SB_CONSISTENT, SB_PRIMARY, SB_SYNCED};
use rcopy_core::gens::{GenInfo, GF_BLANK, GF_CONSISTENT, GF_RESOLVE};
use rcopy_core::proto::{
    pair_id_from_name, Header, Hello, Mark, MarkResult, RejectReason, ACK_DURABLE, HELLO_LEN,
    MARK_POINT, MARK_SNAPSHOT, PROTO_VERSION, WRITE_DISCARD, WRITE_FUA, WRITE_PREFLUSH,
    WRITE_ZEROES,
};
use rcopy_core::snapmap::Record;
use rcopy_core::snapstore::{
    self, SnapInfo, SnapState, StoreSb, BLOCK, SNAP_BEFORE_RESYNC, SNAP_CHECKSUM,
};
use rcopy_core::split::Mode;
use rcopy_core::split::{self, SplitState};
use rcopy_core::state::{Conn, Pair, Role, State};
use rcopy_core::status::Mode as RcopyMode;
use std::ops::Range;

/// One seed: the target it is for, a file-name suffix, the bytes.
pub struct Seed {
    /// `frame`, `handshake`, `superblock`, `activity`, `snapstore` or `split`.
    pub target: &'static str,
    /// Short name, unique within the target.
    pub name: String,
    /// The input.
    pub data: Vec<u8>,
}

fn seed(target: &'static str, name: &str, data: Vec<u8>) -> Seed {
    Seed {
        target,
        name: name.to_string(),
        data,
    }
}

/// A HELLO as a side with these generation facts would send it.
pub fn hello(role: Role, node: u64, gens: GenInfo) -> Hello {
    Hello {
        proto_version: PROTO_VERSION,
        features: 0,
        pair_id: pair_id_from_name(b"r0"),
        device_bytes: 1 << 30,
        track_size: 64 << 10,
        role,
        mode: RcopyMode::Sync,
        node_id: node,
        nonce: [node as u8; 32],
        gens,
    }
}

fn gens(current: u64, peer: u64, peer_prev: u64, history: [u64; 2], flags: u32) -> GenInfo {
    GenInfo {
        current,
        peer,
        peer_prev,
        history,
        flags,
    }
}

/// A marker's payload.
fn mark(kind: u8, name: &[u8]) -> Vec<u8> {
    Mark::new(kind, name)
        .expect("valid mark name")
        .encode()
        .to_vec()
}

fn frame(h: Header, payload: &[u8]) -> Vec<u8> {
    let mut v = h.encode(payload).to_vec();
    v.extend_from_slice(payload);
    v
}

/// Every seed.
pub fn all() -> Vec<Seed> {
    let mut out = Vec::new();

    // Frames: one of each kind, WRITE in its shapes (markers too), ACK with and
    // without a marker's result.
    let c = GF_CONSISTENT;
    let p_hello = hello(Role::Primary, 1, gens(0xA1, 0xB1, 0, [0xA0, 0], c));
    let duplex = Pair {
        state: State::Duplex,
        role: Role::Secondary,
        conn: Conn::Connected,
        held: false,
        consistent: true,
        took_over: false,
    };
    let frames: Vec<(&str, Header, Vec<u8>)> = vec![
        ("hello", Header::hello(), p_hello.encode().to_vec()),
        ("auth", Header::auth(), vec![0x5a; 32]),
        ("auth-ok", Header::auth_ok(), vec![]),
        (
            "reject",
            Header::reject(RejectReason::SplitBrain, 11),
            b"split brain".to_vec(),
        ),
        (
            "write",
            Header::write(7, 5, 2048, 1, WRITE_FUA),
            vec![0xab; 512],
        ),
        (
            "write-discard",
            Header::write(8, 7, 4096, 256, WRITE_DISCARD),
            vec![],
        ),
        (
            "write-zeroes",
            Header::write(9, 0, 0, 8, WRITE_ZEROES),
            vec![],
        ),
        ("flush", Header::write(10, 9, 0, 0, WRITE_PREFLUSH), vec![]),
        ("ack", Header::ack(7, ACK_DURABLE, 0), vec![]),
        (
            "mark-snapshot",
            Header::mark(11, 10, 1),
            mark(MARK_SNAPSHOT, b"nightly-2024.01:r0@a+b_c"),
        ),
        ("mark-point", Header::mark(12, 11, 2), mark(MARK_POINT, b"")),
        (
            "ack-mark-taken",
            Header::ack_mark(11, MarkResult::Taken(3)),
            vec![],
        ),
        // ENODEV: no snapshot store on the secondary.
        (
            "ack-mark-refused",
            Header::ack_mark(12, MarkResult::Refused(19)),
            vec![],
        ),
        ("ping", Header::ping(123_456_789), vec![]),
        ("pong", Header::pong(123_456_789), vec![]),
        ("copy-done", Header::copy_done(1 << 30), vec![]),
        ("state", Header::state(duplex.encode()), vec![]),
        ("bitmap", Header::bitmap(128, 2), vec![0x0f; 16]),
        ("bye", Header::bye(), vec![]),
    ];
    for (name, h, payload) in frames {
        out.push(seed("frame", name, frame(h, &payload)));
    }

    // Handshakes: primary's HELLO then secondary's, one per rule of `decide`.
    let cases: [(&str, GenInfo, GenInfo); 8] = [
        (
            "blank",
            gens(0xA1, 0, 0, [0; 2], c),
            gens(0xC1, 0, 0, [0; 2], GF_BLANK),
        ),
        (
            "bitmap",
            gens(0xA2, 0xA1, 0, [0xA1, 0], c),
            gens(0xA1, 0, 0, [0; 2], c),
        ),
        (
            "old-image",
            gens(0xA3, 0xA2, 0, [0xA2, 0xA1], c),
            gens(0xA1, 0, 0, [0; 2], c),
        ),
        (
            "stale-primary",
            gens(0xA1, 0xB1, 0, [0xA0, 0], c),
            gens(0xB2, 0xA1, 0, [0xA1, 0], c),
        ),
        (
            "split-brain",
            gens(0xA2, 0xA1, 0, [0xA1, 0], c),
            gens(0xB2, 0xA1, 0, [0xA1, 0], c),
        ),
        (
            "resolved",
            gens(0xA2, 0xA1, 0, [0xA1, 0], c | GF_RESOLVE),
            gens(0xB2, 0xA1, 0, [0xA1, 0], c),
        ),
        (
            "unrelated",
            gens(0xA1, 0, 0, [0; 2], c),
            gens(0xB1, 0, 0, [0; 2], c),
        ),
        (
            "primary-blank",
            gens(0xA1, 0, 0, [0; 2], GF_BLANK),
            gens(0xB1, 0, 0, [0; 2], c),
        ),
    ];
    for (name, p, s) in cases {
        let mut v = hello(Role::Primary, 1, p).encode().to_vec();
        v.extend_from_slice(&hello(Role::Secondary, 2, s).encode());
        debug_assert_eq!(v.len(), 2 * HELLO_LEN);
        out.push(seed("handshake", name, v));
    }
    // Two primaries: refused by check_peer (a distinct result, not a distinct
    // branch, so the fuzzer alone does not keep such an input).
    let mut v = hello(Role::Primary, 1, cases[1].1).encode().to_vec();
    v.extend_from_slice(&hello(Role::Primary, 2, cases[1].2).encode());
    out.push(seed("handshake", "two-primaries", v));

    // Superblocks: a fresh one without a name (made before names were stored),
    // a synced primary's, and one with the longest name; trailing zeroes cut (the
    // harness pads them back).
    let fresh = Superblock::new(pair_id_from_name(b"r0"), 0x1111, 0xA1, 1 << 30, 64 << 10);
    let named = Superblock::for_pair(&[b'n'; 64], 0x2222, 0xC1, 1 << 30, 64 << 10);
    let mut synced = Superblock::for_pair(b"r0", 0x1111, 0xA1, 1 << 30, 64 << 10);
    synced.flags = SB_SYNCED | SB_CONSISTENT | SB_PRIMARY | SB_CLEAN;
    synced.promote(0xA2);
    synced.peer_caught_up(0xB1);
    synced.dirty_tracks = 3;
    for (name, sb) in [("fresh", fresh), ("synced", synced), ("named", named)] {
        let mut b = sb.encode().to_vec();
        while b.last() == Some(&0) {
            b.pop();
        }
        out.push(seed("superblock", name, b));
    }

    // Activity-log copies, in the harness's compact form (32 header bytes, then
    // the entries) and one whole copy as it lies on disk.
    for (name, txn, shift, extents) in [
        ("al-empty", 1u64, 22u32, vec![]),
        ("al-three", 41, 22, vec![0u64, 7, 4095]),
        ("al-1g", 2, 30, vec![1u64]),
    ] {
        let mut buf = vec![0u8; activity::copy_bytes(extents.len() as u32)];
        activity::encode(&mut buf, txn, shift, &extents);
        let mut v = buf[..32].to_vec();
        v.extend_from_slice(&buf[activity::AL_HEADER_BYTES..][..extents.len() * 8]);
        out.push(seed("activity", name, v));
    }
    let mut whole = vec![0u8; activity::copy_bytes(2)];
    activity::encode(&mut whole, 9, 22, &[3, 5]);
    whole.truncate(activity::AL_HEADER_BYTES + 16);
    out.push(seed("activity", "al-whole", whole));

    // Snapshot store: a superblock copy, then a record block copy.
    let mut sb = StoreSb::new(0x5eed, pair_id_from_name(b"r0"), 1 << 30, 64 << 10, 1000);
    let store = |sb: &StoreSb, block: u32, recs: &[Record]| {
        let mut v = vec![0u8; 2 * BLOCK];
        let (a, b) = v.split_at_mut(BLOCK);
        sb.encode_into(a.try_into().expect("one block"));
        snapstore::encode_records(
            b.try_into().expect("one block"),
            sb.store_id,
            block,
            3,
            |s| recs.iter().copied().find(|r| r.slot == s),
        );
        v
    };
    out.push(seed("snapstore", "empty", store(&sb, 0, &[])));
    let named = SnapInfo {
        flags: SNAP_CHECKSUM,
        stream_seq: 4096,
        gen: 0xA1,
        created_ns: 1_700_000_000_000_000_000,
        name: snapstore::pad_name(b"nightly").expect("valid name"),
        checksum: [0x42; 32],
        ..SnapInfo::NONE
    };
    let _ = sb.add(named);
    let _ = sb.add(SnapInfo {
        flags: SNAP_BEFORE_RESYNC,
        ..SnapInfo::NONE
    });
    let _ = sb.add(SnapInfo {
        state: SnapState::Invalid,
        ..SnapInfo::NONE
    });
    sb.seq = 7;
    let r = |track, slot, epoch| Record { track, slot, epoch };
    let recs = [r(5, 0, 1), r(5, 1, 2), r(9, 2, 1), r(11, 251, 3)];
    out.push(seed("snapstore", "snapshots", store(&sb, 0, &recs)));
    out.push(seed(
        "snapstore",
        "block-1",
        store(&sb, 1, &[r(1, 252, 2), r(2, 300, 2)]),
    ));
    out.push(seed(
        "snapstore",
        "superblock-only",
        store(&sb, 0, &[])[..BLOCK].to_vec(),
    ));

    split_seeds(&mut out);
    out
}

/// The `split` target's parameters (see [`crate::split()`]).
struct SplitParams {
    /// Decode at this geometry instead of the block's own.
    geometry: Option<(u64, u32)>,
    /// The second copy's sequence, how it is spoilt (0 not, 1 zeroed, 2 a
    /// checksummed byte changed, 3 a byte past the used part set) and where.
    seq2: u64,
    spoil: u8,
    at: u16,
    /// The second copy's state and refresh range when the first does not decode.
    state2: u8,
    refresh2: (u64, u64),
    /// The small layout: tracks, track size, bytes short of whole tracks.
    tracks: u8,
    track_size: u32,
    slack: u32,
    /// Its mode: state code (0 forming, 1 formed, 2 splitting, 3 split) and refresh.
    state: u8,
    refresh: (u8, u8),
    /// CREATE, SPLIT and UPDATE bits: the tracks set in each.
    bits: [&'static [u8]; 3],
    /// Operations: code (low nibble the operation, high nibble its bitmap or
    /// state), two arguments.
    ops: Vec<(u8, u8, u8)>,
}

impl SplitParams {
    fn new(tracks: u8) -> SplitParams {
        SplitParams {
            geometry: None,
            seq2: 2,
            spoil: 0,
            at: 0,
            state2: 0,
            refresh2: (0, 0),
            tracks,
            track_size: 64 << 10,
            slack: 0,
            state: 0,
            refresh: (0, 0),
            bits: [&[], &[], &[]],
            ops: Vec::new(),
        }
    }

    /// The parameters, then the header block.
    fn input(&self, block: &[u8; split::BLOCK]) -> Vec<u8> {
        let mut p = vec![0u8; crate::SPLIT_PARAMS];
        if let Some((d, ts)) = self.geometry {
            p[0] = 1;
            p[1..9].copy_from_slice(&d.to_le_bytes());
            p[9..13].copy_from_slice(&ts.to_le_bytes());
        }
        p[13..21].copy_from_slice(&self.seq2.to_le_bytes());
        p[21] = self.spoil;
        p[22..24].copy_from_slice(&self.at.to_le_bytes());
        p[24] = self.state2;
        p[25..33].copy_from_slice(&self.refresh2.0.to_le_bytes());
        p[33..41].copy_from_slice(&self.refresh2.1.to_le_bytes());
        p[48] = self.tracks;
        p[49..53].copy_from_slice(&self.track_size.to_le_bytes());
        p[53..57].copy_from_slice(&self.slack.to_le_bytes());
        p[57] = self.state;
        (p[58], p[59]) = self.refresh;
        for (i, set) in self.bits.iter().enumerate() {
            for &t in *set {
                p[64 + i * 32 + usize::from(t / 8)] |= 1 << (t % 8);
            }
        }
        for (i, &(code, a, b)) in self.ops.iter().take(32).enumerate() {
            p[160 + 3 * i..163 + 3 * i].copy_from_slice(&[code, a, b]);
        }
        p.extend_from_slice(block);
        p
    }
}

/// Operation codes of the `split` target (the low nibble).
const PUT: u8 = 0;
const GET: u8 = 1;
const NEXT: u8 = 2;
const COUNT: u8 = 3;
const FILL: u8 = 4;
const REJOIN: u8 = 5;
const FOLD: u8 = 6;
const WRITE: u8 = 7;
const MODE: u8 = 8;
const TRACKS_OF: u8 = 9;
const COPIER: u8 = 10;
/// High nibbles: the bitmap (0 CREATE, 1 SPLIT, 2 UPDATE; with `put`, plus 8 to
/// set the bit: 9 CREATE, 10 SPLIT, 8 UPDATE) or the state of `MODE`.
const SET_CREATE: u8 = 0x90;
const SET_SPLIT: u8 = 0xa0;
const SET_UPDATE: u8 = 0x80;
const SPLIT_MAP: u8 = 0x10;
const UPDATE_MAP: u8 = 0x20;

fn split_header(state: SplitState, refresh: Option<Range<u64>>, seq: u64) -> split::Header {
    let mut h = split::Header::new(64 << 20, 64 << 10);
    h.seq = seq;
    h.mode = Mode { state, refresh };
    h
}

fn split_block(h: &split::Header) -> [u8; split::BLOCK] {
    let mut b = [0u8; split::BLOCK];
    h.encode_into(&mut b);
    b
}

/// Split copies: one block for each `decode` outcome, each with a second copy
/// and a run of the small bitmaps (the life of a copy: formed, split, written,
/// refreshed, rejoined).
fn split_seeds(out: &mut Vec<Seed>) {
    use SplitState::{Formed, Forming, Split, Splitting};
    let forming = split_header(Forming, None, 1);

    // Forming, then formed, a split, writes while splitting and split, a refresh.
    let mut p = SplitParams::new(100);
    p.bits = [&[0, 1, 2, 50, 99], &[], &[]];
    p.ops = vec![
        (MODE, 0, 0),
        (WRITE, 5, 0),
        (WRITE, 99, 0),
        (WRITE, 100, 0),
        (COPIER, 0, 0),
        (NEXT, 3, 90),
        (COUNT, 0, 100),
        (MODE | 0x10, 0, 0),
        (WRITE, 7, 0),
        (MODE | 0x20, 0, 0),
        (WRITE, 50, 0),
        (WRITE, 51, 0),
        (COPIER, 60, 0),
        (PUT, 0, 0),
        (PUT, 1, 0),
        (PUT, 2, 0),
        (MODE | 0x30, 0, 0),
        (WRITE, 60, 0),
        (MODE | 0x30, 40, 70),
        (WRITE, 60, 0),
        (WRITE, 65, 0),
        (COPIER, 45, 0),
        (GET | UPDATE_MAP, 0, 0),
        (FOLD, 0, 0),
        (COUNT | SPLIT_MAP, 50, 70),
        (MODE | 0x30, 0, 0),
        (REJOIN, 0, 0),
        (GET, 0, 0),
        (FILL, 0, 0),
        (NEXT | UPDATE_MAP, 0, 255),
        (TRACKS_OF | 0x30, 10, 3),
        (TRACKS_OF, 99, 1),
    ];
    out.push(seed("split", "forming", p.input(&split_block(&forming))));

    // Split with a refresh running; its second copy torn (a sequence byte).
    let mut refreshing = split_header(Split, Some(3..9), 7);
    refreshing.splits = 1;
    refreshing.copied = 12;
    refreshing.split_at_ns = 1_700_000_000_000_000_000;
    let mut p = SplitParams::new(255);
    p.spoil = 2;
    p.at = 20;
    p.track_size = 4096;
    p.slack = 1000;
    p.state = 3;
    p.refresh = (3, 9);
    p.bits = [&[], &[1, 3, 4, 8, 254], &[3]];
    p.ops = vec![
        (WRITE, 3, 0),
        (WRITE, 4, 0),
        (WRITE, 200, 0),
        (COPIER, 0, 0),
        (SET_UPDATE, 5, 0),
        (SET_SPLIT, 9, 0),
        (SET_CREATE, 254, 0),
        (SET_CREATE, 255, 0),
        (FOLD, 0, 0),
        (COUNT | UPDATE_MAP, 0, 255),
        (NEXT | SPLIT_MAP, 5, 255),
        (REJOIN, 0, 0),
        (COUNT, 0, 255),
        (TRACKS_OF | 0x70, 254, 2),
    ];
    out.push(seed(
        "split",
        "refreshing",
        p.input(&split_block(&refreshing)),
    ));

    // Splitting, the second copy blank; a few tracks, not a whole byte.
    let mut p = SplitParams::new(7);
    p.spoil = 1;
    p.state = 2;
    p.track_size = 1 << 24;
    p.slack = 4095;
    p.bits = [&[0, 6], &[], &[]];
    p.ops = vec![
        (WRITE, 0, 0),
        (WRITE, 1, 0),
        (WRITE, 7, 0),
        (COPIER, 3, 0),
        (GET | SPLIT_MAP, 0, 0),
        (FILL, 0, 0),
        (REJOIN, 0, 0),
        (TRACKS_OF | 0x10, 6, 9),
    ];
    let splitting = split_header(Splitting, None, 5);
    out.push(seed(
        "split",
        "splitting",
        p.input(&split_block(&splitting)),
    ));

    // Formed, decoded at another size (Geometry); the second copy, made of the
    // parameters, has a refresh while splitting (BadField).
    let mut p = SplitParams::new(0);
    p.geometry = Some((128 << 20, 64 << 10));
    p.state2 = 2;
    p.refresh2 = (1, 2);
    p.ops = vec![(GET, 0, 0), (NEXT, 0, 9), (COUNT, 0, 9), (FILL, 0, 0)];
    let formed = split_header(Formed, None, 3);
    out.push(seed("split", "other-size", p.input(&split_block(&formed))));

    // A blank device; the second copy, made of the parameters, torn (the first
    // format write tore).
    let mut p = SplitParams::new(16);
    p.seq2 = 1;
    p.spoil = 2;
    p.at = 40;
    p.ops = vec![(FILL, 0, 0), (COUNT, 0, 16), (WRITE, 3, 0)];
    out.push(seed("split", "blank", p.input(&[0; split::BLOCK])));

    // Another header on the device (an rcopy superblock); a byte set past the
    // second copy's used part.
    let mut p = SplitParams::new(1);
    p.spoil = 3;
    p.at = 1000;
    let sb = Superblock::for_pair(b"r0", 0x1111, 0xA1, 1 << 30, 64 << 10);
    let mut b = [0u8; split::BLOCK];
    b[..sb.encode().len()].copy_from_slice(&sb.encode());
    out.push(seed("split", "foreign", p.input(&b)));

    // Another version.
    let mut b = split_block(&forming);
    b[8] = 2;
    crate::fix_split_crc(&mut b);
    out.push(seed("split", "version-2", SplitParams::new(8).input(&b)));

    // A torn write (the sequence changed after the CRC); the second copy torn too.
    let mut b = split_block(&split_header(Formed, None, 4));
    b[16] = 5;
    let mut p = SplitParams::new(8);
    p.spoil = 2;
    p.at = 82;
    out.push(seed("split", "torn", p.input(&b)));

    // Bad fields, with good CRCs: an unknown state, a refresh while forming, a
    // refresh past the image, a byte past the used part.
    let mut b = split_block(&forming);
    b[12] = 9;
    crate::fix_split_crc(&mut b);
    out.push(seed("split", "bad-state", SplitParams::new(8).input(&b)));
    let b = split_block(&split_header(Forming, Some(1..2), 6));
    out.push(seed(
        "split",
        "refresh-forming",
        SplitParams::new(8).input(&b),
    ));
    let b = split_block(&split_header(Split, Some(1000..1025), 8));
    out.push(seed(
        "split",
        "refresh-past-end",
        SplitParams::new(8).input(&b),
    ));
    let mut b = split_block(&forming);
    b[4095] = 1;
    out.push(seed("split", "tail-byte", SplitParams::new(8).input(&b)));
}
