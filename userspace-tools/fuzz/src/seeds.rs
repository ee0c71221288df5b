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
use rcopy_core::state::{Conn, Pair, Role, State};
use rcopy_core::status::Mode;

/// One seed: the target it is for, a file-name suffix, the bytes.
pub struct Seed {
    /// `frame`, `handshake`, `superblock`, `activity` or `snapstore`.
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
        mode: Mode::Sync,
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

    out
}
