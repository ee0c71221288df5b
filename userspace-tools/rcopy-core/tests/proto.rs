//! Wire format: decoder robustness, round trips, checksums, handshake.

use proptest::prelude::*;
use rcopy_core::gens::{GenInfo, GF_BLANK, GF_CONSISTENT, GF_FLAGS, GF_RESOLVE};
use rcopy_core::proto::*;
use rcopy_core::state::Pair;
use rcopy_core::status::{Conn, Mode, Role, State};

const MAX: u32 = MAX_PAYLOAD;

fn frame(h: &Header, payload: &[u8]) -> [u8; HEADER_LEN] {
    h.encode(payload)
}

/// Decodes and checks a frame as a receiver does.
fn receive(bytes: &[u8; HEADER_LEN], payload: &[u8]) -> Result<Header, ProtoError> {
    let h = Header::decode(bytes, MAX)?;
    h.verify_crc(bytes, payload)?;
    Ok(h)
}

fn gen_info_strategy() -> impl Strategy<Value = GenInfo> {
    (any::<[u64; 5]>(), 0..=GF_FLAGS).prop_map(|(g, flags)| GenInfo {
        current: g[0],
        peer: g[1],
        peer_prev: g[2],
        history: [g[3], g[4]],
        flags,
    })
}

fn hello_strategy() -> impl Strategy<Value = Hello> {
    (
        1u32..5,
        any::<u32>(),
        any::<[u8; 16]>(),
        any::<u64>().prop_map(|v| v & !511),
        12u32..=24,
        any::<bool>(),
        any::<bool>(),
        any::<u64>(),
        any::<[u8; 32]>(),
        gen_info_strategy(),
    )
        .prop_map(
            |(proto_version, features, pair_id, device_bytes, ts, p, s, node_id, nonce, gens)| {
                Hello {
                    proto_version,
                    features,
                    pair_id,
                    device_bytes,
                    track_size: 1 << ts,
                    role: if p { Role::Primary } else { Role::Secondary },
                    mode: if s { Mode::Sync } else { Mode::Async },
                    node_id,
                    nonce,
                    gens,
                }
            },
        )
}

fn pair_strategy() -> impl Strategy<Value = Pair> {
    (
        prop::sample::select(State::ALL),
        any::<bool>(),
        prop::sample::select(Conn::ALL),
        any::<[bool; 3]>(),
    )
        .prop_map(|(state, p, conn, [held, consistent, took_over])| Pair {
            state,
            role: if p { Role::Primary } else { Role::Secondary },
            conn,
            held,
            consistent,
            took_over,
        })
        .prop_filter("valid pair", Pair::is_valid)
}

fn write_strategy() -> impl Strategy<Value = (Header, Vec<u8>)> {
    let extra = prop::sample::select(vec![
        0,
        WRITE_FUA,
        WRITE_PREFLUSH,
        WRITE_FUA | WRITE_PREFLUSH,
    ]);
    (
        1u64..u64::MAX,
        any::<u64>(),
        0u64..(1 << 40),
        0u8..4,
        1u32..=16,
        extra,
        any::<bool>(),
        any::<u8>(),
    )
        .prop_map(|(seq, dep, sector, shape, nr, extra, copy, fill)| {
            let dep = dep % seq;
            let copy = if copy { WRITE_COPY } else { 0 };
            let (flags, nr, sector) = match shape {
                0 => (extra | copy, nr, sector),
                1 => (WRITE_DISCARD | extra, nr, sector),
                2 => (WRITE_ZEROES | extra | copy, nr, sector),
                _ => (WRITE_PREFLUSH, 0, 0),
            };
            let h = Header::write(seq, dep, sector, nr, flags);
            let payload = (0..h.len).map(|i| (i as u8) ^ fill).collect();
            (h, payload)
        })
}

/// Any valid frame, of every kind.
fn frame_strategy() -> impl Strategy<Value = (Header, Vec<u8>)> {
    prop_oneof![
        hello_strategy().prop_map(|h| (Header::hello(), h.encode().to_vec())),
        any::<[u8; 32]>().prop_map(|m| (Header::auth(), m.to_vec())),
        Just((Header::auth_ok(), vec![])),
        Just((Header::bye(), vec![])),
        (any::<u64>(), "[ -~]{0,256}").prop_map(|(c, t)| (
            Header::reject(RejectReason::from_code(c), t.len() as u32),
            t.into_bytes()
        )),
        write_strategy(),
        (1u64.., any::<bool>(), 0u64..=MAX_ERRNO)
            .prop_map(|(s, d, e)| (Header::ack(s, if d { ACK_DURABLE } else { 0 }, e), vec![])),
        any::<u64>().prop_map(|t| (Header::ping(t), vec![])),
        any::<u64>().prop_map(|t| (Header::pong(t), vec![])),
        any::<u64>().prop_map(|b| (Header::copy_done(b), vec![])),
        pair_strategy().prop_map(|p| (Header::state(p.encode()), vec![])),
        (0u64..(1 << 50), prop::collection::vec(any::<u64>(), 0..40)).prop_map(|(w, words)| {
            let payload: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            (Header::bitmap(w * 64, words.len() as u32), payload)
        }),
    ]
}

/// 48 bytes that get past the magic/version checks (and often reserved),
/// so the per-kind checks see random fields.
fn near_valid_header() -> impl Strategy<Value = [u8; HEADER_LEN]> {
    (
        any::<[u8; HEADER_LEN]>(),
        0u8..=14,
        any::<bool>(),
        any::<u16>(),
    )
        .prop_map(|(mut b, kind, zero_reserved, small_len)| {
            b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
            b[4] = VERSION;
            b[5] = kind;
            if zero_reserved {
                b[44..48].fill(0);
                b[8..12].copy_from_slice(&u32::from(small_len).to_le_bytes());
            }
            b
        })
}

#[test]
fn golden_layout() {
    let h = Header::write(7, 5, 0x0102_0304_0506_0708, 8, WRITE_FUA);
    let payload = [0xabu8; 4096];
    let b = h.encode(&payload);
    assert_eq!(&b[0..4], b"RCPY");
    assert_eq!(b[4], 1);
    assert_eq!(b[5], Kind::Write.code());
    assert_eq!(b[5], 5);
    assert_eq!(&b[6..8], &[1, 0]);
    assert_eq!(&b[8..12], &4096u32.to_le_bytes());
    assert_eq!(&b[12..16], &8u32.to_le_bytes());
    assert_eq!(&b[16..24], &7u64.to_le_bytes());
    assert_eq!(&b[24..32], &[8, 7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(&b[32..40], &5u64.to_le_bytes());
    assert_eq!(&b[44..48], &[0; 4]);
    let mut z = b;
    z[40..44].fill(0);
    let mut c = rcopy_core::crc32c::Crc32c::new();
    c.update(&z).update(&payload);
    assert_eq!(&b[40..44], &c.finish().to_le_bytes());
    let d = Header::decode(&b, MAX).unwrap();
    assert_eq!(
        d,
        Header {
            crc: c.finish(),
            ..h
        }
    );
    d.verify_crc(&b, &payload).unwrap();
}

#[test]
fn kind_codes_are_stable() {
    let codes: Vec<(u8, &str)> = Kind::ALL.iter().map(|k| (k.code(), k.name())).collect();
    assert_eq!(
        codes,
        [
            (1, "HELLO"),
            (2, "AUTH"),
            (3, "AUTH_OK"),
            (4, "REJECT"),
            (5, "WRITE"),
            (6, "ACK"),
            (7, "PING"),
            (8, "PONG"),
            (9, "COPY_DONE"),
            (10, "STATE"),
            (11, "BYE"),
            (12, "BITMAP")
        ]
    );
    assert_eq!(Kind::from_code(0), None);
    assert_eq!(Kind::from_code(13), None);
    assert_eq!((PROTO_VERSION, HELLO_LEN), (2, 128));
}

#[test]
fn mark_payloads() {
    let m = Mark::new(MARK_POINT, b"").unwrap();
    assert_eq!(Mark::decode(&m.encode()), Ok(m));
    assert_eq!(m.name(), b"");
    let long = [b'a'; MARK_NAME_LEN];
    let m = Mark::new(MARK_SNAPSHOT, &long).unwrap();
    assert_eq!(Mark::decode(&m.encode()).map(|m| m.name().len()), Ok(32));
    assert_eq!(Mark::new(MARK_SNAPSHOT, &[b'a'; 33]), None);
    assert_eq!(Mark::new(0, b""), None, "kind 0");
    assert_eq!(Mark::new(3, b""), None, "kind 3");
    assert_eq!(Mark::new(MARK_SNAPSHOT, b"a b"), None);
    assert_eq!(Mark::new(MARK_SNAPSHOT, b"a/b"), None);
    let good = Mark::new(MARK_SNAPSHOT, b"x").unwrap().encode();
    let bad = |f: &dyn Fn(&mut [u8; MARK_LEN])| {
        let mut b = good;
        f(&mut b);
        Mark::decode(&b)
    };
    assert_eq!(bad(&|b| b[0] = 0), Err(ProtoError::BadMark), "kind 0");
    assert_eq!(
        bad(&|b| b[0] = 3),
        Err(ProtoError::BadMark),
        "kind 3 without an id"
    );
    assert_eq!(
        bad(&|b| b[5] = 1),
        Err(ProtoError::BadMark),
        "an id on a snapshot"
    );
    // A sum marker: any 32 bytes, a non-zero id.
    let sum = Mark::sum(7, [0xa5; MARK_NAME_LEN]).unwrap();
    assert_eq!(Mark::decode(&sum.encode()), Ok(sum));
    assert_eq!(sum.encode()[4..8], 7u32.to_le_bytes());
    assert_eq!(Mark::sum(0, [0; MARK_NAME_LEN]), None);
    assert_eq!(bad(&|b| b[3] = 1), Err(ProtoError::BadMark), "reserved");
    assert_eq!(bad(&|b| b[8] = b' '), Err(ProtoError::BadMark), "a space");
    assert_eq!(
        bad(&|b| b[10] = b'y'),
        Err(ProtoError::BadMark),
        "after the NUL"
    );
    assert_eq!(Mark::decode(&good[..39]), Err(ProtoError::BadLength));
    assert_eq!(
        MarkResult::decode(MarkResult::Taken(u32::MAX).encode()),
        Some(MarkResult::Taken(u32::MAX))
    );
    assert_eq!(
        MarkResult::decode(MarkResult::Refused(4095).encode()),
        Some(MarkResult::Refused(4095))
    );
    assert_eq!(MarkResult::decode(4096 << 32), None);
}

proptest! {
    #[test]
    fn mark_decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(m) = Mark::decode(&b) {
            prop_assert_eq!(&m.encode()[..], &b[..]);
        }
    }
}

#[test]
fn decode_errors() {
    let ok = |h: Header| {
        let b = frame(&h, &vec![0; h.len as usize]);
        Header::decode(&b, MAX)
    };
    let raw = |h: Header, f: &dyn Fn(&mut [u8; HEADER_LEN])| {
        let mut b = h.encode_with_crc(0);
        f(&mut b);
        Header::decode(&b, MAX)
    };
    let w = Header::write(2, 1, 100, 8, 0);
    assert!(ok(w).is_ok());
    assert_eq!(raw(w, &|b| b[0] = b'X'), Err(ProtoError::BadMagic));
    assert_eq!(raw(w, &|b| b[4] = 7), Err(ProtoError::BadVersion));
    assert_eq!(raw(w, &|b| b[5] = 0), Err(ProtoError::UnknownKind));
    assert_eq!(raw(w, &|b| b[5] = 13), Err(ProtoError::UnknownKind));
    assert_eq!(raw(w, &|b| b[47] = 1), Err(ProtoError::ReservedNotZero));
    assert_eq!(raw(w, &|b| b[7] = 0x80), Err(ProtoError::BadFlags));
    assert_eq!(
        ok(Header {
            flags: 1,
            ..Header::bye()
        }),
        Err(ProtoError::BadFlags)
    );
    // Lengths.
    assert_eq!(
        ok(Header::write(2, 1, 0, 2049, 0)),
        Err(ProtoError::TooLong),
        "a WRITE above MAX_PAYLOAD"
    );
    assert!(ok(Header::write(2, 1, 0, 2048, 0)).is_ok());
    assert_eq!(
        Header::decode(&frame(&w, &[0; 4096]), 4095),
        Err(ProtoError::TooLong)
    );
    assert_eq!(ok(Header { len: 4095, ..w }), Err(ProtoError::BadLength));
    assert_eq!(
        ok(Header {
            len: 79,
            ..Header::hello()
        }),
        Err(ProtoError::BadLength)
    );
    assert_eq!(
        ok(Header {
            len: 31,
            ..Header::auth()
        }),
        Err(ProtoError::BadLength)
    );
    assert_eq!(
        ok(Header {
            len: 1,
            ..Header::ping(0)
        }),
        Err(ProtoError::BadLength)
    );
    assert_eq!(
        ok(Header::reject(RejectReason::Auth, 257)),
        Err(ProtoError::BadLength)
    );
    assert!(ok(Header::reject(RejectReason::Other(99), 256)).is_ok());
    // Unused fields.
    assert_eq!(
        ok(Header {
            seq: 1,
            ..Header::ping(0)
        }),
        Err(ProtoError::UnusedNotZero)
    );
    assert_eq!(
        ok(Header {
            a: 1,
            ..Header::hello()
        }),
        Err(ProtoError::UnusedNotZero)
    );
    assert_eq!(
        ok(Header {
            b: 1,
            ..Header::auth_ok()
        }),
        Err(ProtoError::UnusedNotZero)
    );
    assert_eq!(
        ok(Header {
            nr_sectors: 1,
            ..Header::ack(1, 0, 0)
        }),
        Err(ProtoError::UnusedNotZero)
    );
    // WRITE rules.
    assert_eq!(ok(Header::write(0, 0, 0, 1, 0)), Err(ProtoError::BadSeq));
    assert_eq!(
        ok(Header::write(5, 5, 0, 1, 0)),
        Err(ProtoError::BadDependency)
    );
    assert_eq!(
        ok(Header::write(5, 9, 0, 1, 0)),
        Err(ProtoError::BadDependency)
    );
    assert_eq!(
        ok(Header::write(5, 4, u64::MAX, 1, 0)),
        Err(ProtoError::SectorOverflow)
    );
    assert!(ok(Header::write(5, 4, u64::MAX - 1, 1, WRITE_DISCARD)).is_ok());
    assert_eq!(
        ok(Header::write(5, 4, 0, 8, WRITE_DISCARD | WRITE_ZEROES)),
        Err(ProtoError::BadWriteFlags)
    );
    assert_eq!(
        ok(Header::write(5, 4, 0, 8, WRITE_DISCARD | WRITE_COPY)),
        Err(ProtoError::BadWriteFlags)
    );
    assert!(ok(Header::write(
        5,
        4,
        0,
        8,
        WRITE_ZEROES | WRITE_COPY | WRITE_FUA
    ))
    .is_ok());
    assert_eq!(
        ok(Header {
            len: 512,
            ..Header::write(5, 4, 0, 8, WRITE_DISCARD)
        }),
        Err(ProtoError::BadLength)
    );
    assert_eq!(Header::write(5, 4, 0, u32::MAX, WRITE_DISCARD).len, 0);
    assert!(ok(Header::write(5, 4, 0, u32::MAX, WRITE_DISCARD)).is_ok());
    // Pure flush: PREFLUSH alone, no sectors, no payload.
    assert!(ok(Header::write(5, 4, 0, 0, WRITE_PREFLUSH)).is_ok());
    assert_eq!(
        ok(Header::write(5, 4, 0, 0, 0)),
        Err(ProtoError::BadWriteFlags)
    );
    assert_eq!(
        ok(Header::write(5, 4, 0, 0, WRITE_FUA)),
        Err(ProtoError::BadWriteFlags)
    );
    assert_eq!(
        ok(Header::write(5, 4, 0, 0, WRITE_PREFLUSH | WRITE_DISCARD)),
        Err(ProtoError::BadWriteFlags)
    );
    assert_eq!(
        ok(Header::write(5, 4, 9, 0, WRITE_PREFLUSH)),
        Err(ProtoError::UnusedNotZero)
    );
    // ACK rules.
    assert!(ok(Header::ack(1, ACK_DURABLE, 5)).is_ok());
    assert_eq!(ok(Header::ack(0, 0, 0)), Err(ProtoError::BadSeq));
    assert_eq!(ok(Header::ack(1, 4, 0)), Err(ProtoError::BadAckFlags));
    assert_eq!(ok(Header::ack(1, 0, 4096)), Err(ProtoError::BadErrno));
    // MARK rules: PREFLUSH with it, no sectors, a ticket, a 40-byte payload; its
    // ACK carries a result, not an errno.
    let m = Header::mark(7, 6, 3);
    let mark = Mark::new(MARK_SNAPSHOT, b"nightly-1").unwrap();
    assert_eq!(
        Header::decode(&frame(&m, &mark.encode()), MAX).map(|h| (h.kind, h.flags, h.a, h.b)),
        Ok((Kind::Write, WRITE_MARK | WRITE_PREFLUSH, 3, 6)),
        "a marker with a named snapshot"
    );
    assert_eq!(
        ok(Header { a: 0, ..m }),
        Err(ProtoError::BadMark),
        "a marker without a ticket"
    );
    assert_eq!(
        ok(Header {
            flags: WRITE_MARK,
            ..m
        }),
        Err(ProtoError::BadWriteFlags)
    );
    assert_eq!(
        ok(Header { nr_sectors: 8, ..m }),
        Err(ProtoError::BadWriteFlags)
    );
    assert_eq!(ok(Header { len: 39, ..m }), Err(ProtoError::BadLength));
    assert_eq!(
        ok(Header {
            flags: WRITE_MARK | WRITE_PREFLUSH | WRITE_FUA,
            ..m
        }),
        Err(ProtoError::BadWriteFlags)
    );
    assert!(ok(Header::ack_mark(7, MarkResult::Taken(1))).is_ok());
    assert!(ok(Header::ack_mark(7, MarkResult::Refused(19))).is_ok());
    for b in [0u64, 1 << 32 | 1, 1 << 48, 4096 << 32] {
        assert_eq!(
            ok(Header {
                b,
                ..Header::ack_mark(7, MarkResult::Taken(1))
            }),
            Err(ProtoError::BadMark),
            "ACK_MARK result {b:#x}"
        );
    }
    // STATE must decode.
    assert!(ok(Header::state(Pair::SIMPLEX.encode())).is_ok());
    assert_eq!(ok(Header::state(1 << 40)), Err(ProtoError::BadState));
    assert_eq!(ok(Header::state(0xff)), Err(ProtoError::BadState));
    // BITMAP rules: whole words, from a multiple of 64 tracks, `a` the first
    // track and nothing else; the empty one ends the list.
    assert!(ok(Header::bitmap(0, 0)).is_ok());
    assert!(ok(Header::bitmap(128, 3)).is_ok());
    assert!(ok(Header::bitmap(!63, MAX / 8)).is_ok());
    assert_eq!(Header::bitmap(64, 2).len, 16);
    assert_eq!(ok(Header::bitmap(65, 1)), Err(ProtoError::BadBitmap));
    assert_eq!(ok(Header::bitmap(32, 0)), Err(ProtoError::BadBitmap));
    assert_eq!(
        ok(Header {
            len: 12,
            ..Header::bitmap(0, 1)
        }),
        Err(ProtoError::BadLength)
    );
    assert_eq!(ok(Header::bitmap(0, MAX / 8 + 1)), Err(ProtoError::TooLong));
    assert_eq!(ok(Header::bitmap(0, u32::MAX)), Err(ProtoError::TooLong));
    for h in [
        Header {
            seq: 1,
            ..Header::bitmap(0, 1)
        },
        Header {
            b: 1,
            ..Header::bitmap(0, 1)
        },
        Header {
            nr_sectors: 1,
            ..Header::bitmap(0, 1)
        },
    ] {
        assert_eq!(ok(h), Err(ProtoError::UnusedNotZero));
    }
    assert_eq!(
        ok(Header {
            flags: 1,
            ..Header::bitmap(0, 1)
        }),
        Err(ProtoError::BadFlags)
    );
    assert!(!Kind::Bitmap.allowed_before_auth());
    // Every error has a distinct, non-empty message.
    let all = [
        ProtoError::BadMagic,
        ProtoError::BadVersion,
        ProtoError::UnknownKind,
        ProtoError::ReservedNotZero,
        ProtoError::BadFlags,
        ProtoError::TooLong,
        ProtoError::BadLength,
        ProtoError::UnusedNotZero,
        ProtoError::BadSeq,
        ProtoError::BadDependency,
        ProtoError::SectorOverflow,
        ProtoError::BadWriteFlags,
        ProtoError::BadAckFlags,
        ProtoError::BadErrno,
        ProtoError::BadState,
        ProtoError::PayloadLength,
        ProtoError::BadCrc,
        ProtoError::HelloReserved,
        ProtoError::BadBitmap,
        ProtoError::HelloGenFlags,
        ProtoError::HelloVersion,
        ProtoError::HelloRole,
        ProtoError::HelloMode,
        ProtoError::HelloTrackSize,
        ProtoError::HelloDeviceSize,
        ProtoError::BadText,
        ProtoError::BadMark,
    ];
    let mut msgs: Vec<&str> = all.iter().map(|e| e.message()).collect();
    assert!(msgs.iter().all(|m| !m.is_empty() && m.is_ascii()));
    msgs.sort();
    msgs.dedup();
    assert_eq!(msgs.len(), all.len());
}

#[test]
fn crc_errors() {
    let h = Header::write(3, 0, 8, 1, 0);
    let p = [7u8; 512];
    let b = frame(&h, &p);
    let d = Header::decode(&b, MAX).unwrap();
    assert_eq!(d.verify_crc(&b, &p[..511]), Err(ProtoError::PayloadLength));
    let mut q = p;
    q[100] ^= 1;
    assert_eq!(d.verify_crc(&b, &q), Err(ProtoError::BadCrc));
    // Scattered payload: continue the CRC over pieces.
    let mut c = Header::crc_state(&b);
    c.update(&p[..100]).update(&p[100..]);
    assert_eq!(d.check_crc(c.finish()), Ok(()));
    let mut s = h.crc_state_for_send();
    s.update(&p[..3]).update(&p[3..]);
    assert_eq!(h.encode_with_crc(s.finish()), b);
}

#[test]
fn write_fits_device() {
    let h = Header::write(1, 0, 8, 8, 0);
    assert!(h.write_fits(16 * 512));
    assert!(!h.write_fits(16 * 512 - 1));
    assert!(!h.write_fits(15 * 512));
    assert!(!Header::write(1, 0, u64::MAX, 8, WRITE_DISCARD).write_fits(u64::MAX));
}

#[test]
fn hello_decode_errors() {
    let good = Hello {
        proto_version: 1,
        features: 0,
        pair_id: [1; 16],
        device_bytes: 1 << 30,
        track_size: 65536,
        role: Role::Primary,
        mode: Mode::Async,
        node_id: 1,
        nonce: [9; 32],
        gens: GenInfo {
            current: 0x0102_0304_0506_0708,
            peer: 0x11,
            peer_prev: 0x12,
            history: [0x13, 0x14],
            flags: GF_CONSISTENT | GF_RESOLVE,
        },
    };
    let b = good.encode();
    assert_eq!(Hello::decode(&b), Ok(good));
    assert_eq!(Hello::decode(&b[..79]), Err(ProtoError::BadLength));
    assert_eq!(
        Hello::decode(&b[..80]),
        Err(ProtoError::BadLength),
        "a protocol 1 HELLO"
    );
    assert_eq!(Hello::decode(&b[..127]), Err(ProtoError::BadLength));
    // The documented generation fields.
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    assert_eq!(
        (u64_at(80), u64_at(88), u64_at(96), u64_at(104), u64_at(112)),
        (0x0102_0304_0506_0708, 0x11, 0x12, 0x13, 0x14)
    );
    assert_eq!(&b[120..124], &6u32.to_le_bytes());
    assert_eq!(&b[124..128], &[0; 4]);
    assert_eq!(
        (GF_BLANK, GF_CONSISTENT, GF_RESOLVE, GF_FLAGS),
        (1, 2, 4, 7)
    );
    assert_eq!(
        Hello::decode(&[b.as_slice(), &[0]].concat()),
        Err(ProtoError::BadLength)
    );
    let bad = |f: &dyn Fn(&mut [u8; HELLO_LEN])| {
        let mut x = b;
        f(&mut x);
        Hello::decode(&x)
    };
    assert_eq!(bad(&|x| x[0..4].fill(0)), Err(ProtoError::HelloVersion));
    assert_eq!(bad(&|x| x[36] = 2), Err(ProtoError::HelloRole));
    assert_eq!(bad(&|x| x[37] = 2), Err(ProtoError::HelloMode));
    assert_eq!(bad(&|x| x[38] = 1), Err(ProtoError::HelloReserved));
    assert_eq!(
        bad(&|x| x[32..36].copy_from_slice(&65537u32.to_le_bytes())),
        Err(ProtoError::HelloTrackSize)
    );
    assert_eq!(
        bad(&|x| x[32..36].copy_from_slice(&2048u32.to_le_bytes())),
        Err(ProtoError::HelloTrackSize)
    );
    assert_eq!(
        bad(&|x| x[32..36].copy_from_slice(&(32u32 << 20).to_le_bytes())),
        Err(ProtoError::HelloTrackSize)
    );
    assert_eq!(bad(&|x| x[24] = 1), Err(ProtoError::HelloDeviceSize));
    assert_eq!(bad(&|x| x[120] = 8), Err(ProtoError::HelloGenFlags));
    assert_eq!(bad(&|x| x[123] = 0x80), Err(ProtoError::HelloGenFlags));
    for i in 124..128 {
        assert_eq!(
            bad(&|x| x[i] = 1),
            Err(ProtoError::HelloReserved),
            "byte {i}"
        );
    }
    // The generation ids themselves are not checked (0 means none).
    let zero = bad(&|x| x[80..120].fill(0)).unwrap();
    assert_eq!(
        zero.gens,
        GenInfo {
            flags: GF_CONSISTENT | GF_RESOLVE,
            ..GenInfo::default()
        }
    );
}

#[test]
fn hello_check_peer() {
    let me = Hello {
        proto_version: 1,
        features: 0b1010,
        pair_id: [1; 16],
        device_bytes: 1 << 30,
        track_size: 65536,
        role: Role::Primary,
        mode: Mode::Sync,
        node_id: 1,
        nonce: [1; 32],
        gens: GenInfo::default(),
    };
    let peer = Hello {
        role: Role::Secondary,
        node_id: 2,
        nonce: [2; 32],
        proto_version: 3,
        features: 0b0110,
        ..me
    };
    assert_eq!(me.check_peer(&peer), Ok(()));
    assert_eq!(me.negotiated_version(&peer), 1);
    assert_eq!(me.negotiated_features(&peer), 0b0010);
    let refuse = |p: Hello| me.check_peer(&p);
    assert_eq!(
        refuse(Hello {
            pair_id: [2; 16],
            ..peer
        }),
        Err(RejectReason::PairId)
    );
    assert_eq!(
        refuse(Hello {
            device_bytes: 1 << 29,
            ..peer
        }),
        Err(RejectReason::DeviceSize)
    );
    assert_eq!(
        refuse(Hello {
            track_size: 4096,
            ..peer
        }),
        Err(RejectReason::TrackSize)
    );
    assert_eq!(
        refuse(Hello {
            role: Role::Primary,
            ..peer
        }),
        Err(RejectReason::Role)
    );
    assert_eq!(
        refuse(Hello { node_id: 1, ..peer }),
        Err(RejectReason::SameNode)
    );
    assert_eq!(
        refuse(me),
        Err(RejectReason::SameNode),
        "our own HELLO reflected back"
    );
    assert_eq!(
        refuse(Hello {
            nonce: me.nonce,
            ..peer
        }),
        Err(RejectReason::SameNode)
    );
    // A HELLO of ours claiming a version this code does not speak is refused.
    let three = Hello {
        proto_version: PROTO_VERSION + 1,
        ..me
    };
    assert_eq!(three.check_peer(&peer), Err(RejectReason::Version));
    let two = Hello {
        proto_version: PROTO_VERSION,
        ..me
    };
    assert_eq!(two.negotiated_version(&peer), 2);
    assert_eq!(two.check_peer(&peer), Ok(()));
    // The generation facts take no part in the peer check (the decision is
    // made from them afterwards).
    assert_eq!(
        me.check_peer(&Hello {
            gens: GenInfo {
                current: 7,
                flags: GF_BLANK,
                ..GenInfo::default()
            },
            ..peer
        }),
        Ok(())
    );
    assert_eq!(
        Hello {
            role: Role::Secondary,
            ..me
        }
        .check_peer(&Hello {
            role: Role::Secondary,
            ..peer
        }),
        Ok(())
    );
}

#[test]
fn reject_reasons_and_text() {
    for c in 0..20 {
        assert_eq!(RejectReason::from_code(c).code(), c);
        assert!(!RejectReason::from_code(c).message().is_empty());
    }
    assert_eq!(RejectReason::from_code(6), RejectReason::Auth);
    assert_eq!(
        reject_text(b"track size mismatch"),
        Ok("track size mismatch")
    );
    assert_eq!(reject_text(&[0xff]), Err(ProtoError::BadText));
    assert_eq!(reject_text(&[b'a'; 257]), Err(ProtoError::BadText));
    assert!(reject_text(&[b'a'; 256]).is_ok());
}

#[test]
fn pair_id_derivation() {
    let mut msg = b"rcopy-pair-id-v1".to_vec();
    msg.extend_from_slice(b"default");
    let d = rcopy_core::sha256::sha256(&msg);
    assert_eq!(pair_id_from_name(b"default"), d[..16]);
    assert_ne!(pair_id_from_name(b"a"), pair_id_from_name(b"b"));
}

#[test]
fn kinds_before_auth() {
    let allowed: Vec<Kind> = Kind::ALL
        .iter()
        .copied()
        .filter(|k| k.allowed_before_auth())
        .collect();
    assert_eq!(
        allowed,
        [
            Kind::Hello,
            Kind::Auth,
            Kind::AuthOk,
            Kind::Reject,
            Kind::Bye
        ]
    );
}

/// The handshake between an initiator A and a responder B.
#[test]
fn auth_handshake() {
    let secret = b"correct horse battery staple";
    let pair = [0x42; 16];
    let na = [0xa1; 32];
    let nb = [0xb2; 32];
    // Each proves itself over the peer's nonce.
    let mac_a = auth_mac(secret, &pair, &na, &nb, true);
    let mac_b = auth_mac(secret, &pair, &nb, &na, false);
    assert!(
        auth_verify(secret, &pair, &nb, &na, false, &mac_a),
        "B accepts A"
    );
    assert!(
        auth_verify(secret, &pair, &na, &nb, true, &mac_b),
        "A accepts B"
    );
    assert_ne!(mac_a, mac_b);
    // Reflection: sending B's own MAC back to B fails.
    assert!(!auth_verify(secret, &pair, &nb, &na, false, &mac_b));
    // Wrong secret, pair, nonce, truncation.
    assert!(!auth_verify(b"wrong", &pair, &nb, &na, false, &mac_a));
    assert!(!auth_verify(secret, &[0x43; 16], &nb, &na, false, &mac_a));
    assert!(
        !auth_verify(secret, &pair, &[0xb3; 32], &na, false, &mac_a),
        "replay in a new session"
    );
    assert!(!auth_verify(secret, &pair, &nb, &na, false, &mac_a[..31]));
    // Swapped-role reflection: an attacker that is initiator on one connection
    // and responder on another cannot turn one MAC into the other.
    let as_responder = auth_mac(secret, &pair, &na, &nb, false);
    assert!(!auth_verify(secret, &pair, &nb, &na, false, &as_responder));
    // Equals the documented construction.
    let mut msg = b"rcopy-auth-v1".to_vec();
    msg.push(b'I');
    msg.extend_from_slice(&pair);
    msg.extend_from_slice(&nb);
    msg.extend_from_slice(&na);
    assert_eq!(mac_a, rcopy_core::hmac::hmac_sha256(secret, &msg));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_header_never_panics(b in any::<[u8; HEADER_LEN]>(), max in any::<u32>()) {
        if let Ok(h) = Header::decode(&b, max) {
            prop_assert_eq!(h.encode_with_crc(h.crc), b);
        }
    }

    #[test]
    fn near_valid_header_never_panics(b in near_valid_header(), payload in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(h) = Header::decode(&b, MAX) {
            prop_assert!(h.len <= MAX);
            prop_assert_eq!(h.encode_with_crc(h.crc), b);
            let _ = h.verify_crc(&b, &payload);
            let _ = h.write_fits(1 << 30);
            if h.kind == Kind::Hello {
                let _ = Hello::decode(&payload);
            }
            if h.kind == Kind::Reject {
                let _ = reject_text(&payload);
            }
        }
    }

    #[test]
    fn arbitrary_hello_never_panics(
        b in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..140),
            prop::collection::vec(any::<u8>(), HELLO_LEN..=HELLO_LEN),
        ],
    ) {
        if let Ok(h) = Hello::decode(&b) {
            prop_assert_eq!(&h.encode()[..], &b[..]);
        }
    }

    #[test]
    fn hello_round_trip(h in hello_strategy()) {
        prop_assert_eq!(Hello::decode(&h.encode()), Ok(h));
    }

    #[test]
    fn hello_gen_flags_are_checked(h in hello_strategy(), flags in any::<u32>()) {
        let mut b = h.encode();
        b[120..124].copy_from_slice(&flags.to_le_bytes());
        if flags & !GF_FLAGS == 0 {
            let want = Hello { gens: GenInfo { flags, ..h.gens }, ..h };
            prop_assert_eq!(Hello::decode(&b), Ok(want));
        } else {
            prop_assert_eq!(Hello::decode(&b), Err(ProtoError::HelloGenFlags));
        }
    }

    #[test]
    fn every_kind_round_trips((h, payload) in frame_strategy()) {
        prop_assert_eq!(h.validate(MAX), Ok(()));
        let b = h.encode(&payload);
        let d = receive(&b, &payload).unwrap();
        prop_assert_eq!(Header { crc: 0, ..d }, h);
        prop_assert_eq!(d.encode_with_crc(d.crc), b);
        if h.kind == Kind::Hello {
            prop_assert!(Hello::decode(&payload).is_ok());
        }
        if h.kind == Kind::State {
            prop_assert!(Pair::decode(d.a).is_some());
        }
    }

    #[test]
    fn any_bit_flip_is_caught((h, payload) in frame_strategy(), bit in any::<prop::sample::Index>()) {
        let b = h.encode(&payload);
        let total = (HEADER_LEN + payload.len()) * 8;
        let bit = bit.index(total);
        let (mut b2, mut p2) = (b, payload.clone());
        if bit < HEADER_LEN * 8 {
            b2[bit / 8] ^= 1 << (bit % 8);
        } else {
            let i = bit - HEADER_LEN * 8;
            p2[i / 8] ^= 1 << (i % 8);
        }
        prop_assert!(receive(&b2, &p2).is_err(), "flip of bit {} not caught", bit);
    }

    #[test]
    fn random_payload_fails_crc((h, payload) in frame_strategy(), junk in prop::collection::vec(any::<u8>(), 0..64)) {
        let b = h.encode(&payload);
        let d = Header::decode(&b, MAX).unwrap();
        if junk != payload {
            prop_assert!(d.verify_crc(&b, &junk).is_err());
        }
    }
}
