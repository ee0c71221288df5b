//! What the committed corpus reaches: every error each decoder can return, every
//! frame kind, every handshake decision, every result of the split copy's `pick`. Replays the corpus (as the harnesses
//! see it) and fails if an outcome is missing, so a corpus that lost coverage, or
//! a decoder that grew a new error, is noticed. `cargo test -- --nocapture`
//! prints the tally.

use std::collections::BTreeMap;
use std::path::Path;

use rcopy_core::activity::{self, AL_HEADER_BYTES};
use rcopy_core::crc32c::crc32c;
use rcopy_core::format::{Superblock, SB_BYTES};
use rcopy_core::gens::decide;
use rcopy_core::proto::{
    reject_text, Header, Hello, Kind, Mark, MarkResult, ACK_MARK, HEADER_LEN, HELLO_LEN, WRITE_MARK,
};
use rcopy_core::snapstore::{decode_records, StoreSb, BLOCK};
use rcopy_core::split::{self, Loaded};

type Tally = BTreeMap<String, usize>;

fn inputs(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    v.sort();
    v
}

fn note<T: std::fmt::Debug, E: std::fmt::Debug>(t: &mut Tally, what: &str, r: &Result<T, E>) {
    let key = match r {
        Ok(_) => format!("{what}: Ok"),
        Err(e) => format!("{what}: {e:?}"),
    };
    *t.entry(key).or_default() += 1;
}

fn frame(t: &mut Tally, data: &[u8]) {
    let mut hdr = [0u8; HEADER_LEN];
    let n = data.len().min(HEADER_LEN);
    hdr[..n].copy_from_slice(&data[..n]);
    let payload = &data[n..];
    note(t, "reject_text", &reject_text(data));
    note(t, "Hello::decode", &Hello::decode(data));
    for pass in 0..2 {
        if pass == 1 {
            let crc = Header::crc_state(&hdr).update(payload).finish();
            hdr[40..44].copy_from_slice(&crc.to_le_bytes());
        }
        for max in [u32::MAX, 0] {
            let r = Header::decode(&hdr, max);
            note(t, "Header::decode", &r);
            let Ok(h) = r else { continue };
            *t.entry(format!("kind: {:?}", h.kind)).or_default() += 1;
            note(t, "verify_crc", &h.verify_crc(&hdr, payload));
            match h.kind {
                Kind::Hello => note(t, "Hello::decode", &Hello::decode(payload)),
                Kind::Reject => note(t, "reject_text", &reject_text(payload)),
                Kind::Write if h.flags & WRITE_MARK != 0 => {
                    note(t, "Mark::decode", &Mark::decode(payload))
                }
                Kind::Ack if h.a & ACK_MARK != 0 => {
                    let r = match MarkResult::decode(h.b) {
                        Some(MarkResult::Taken(_)) => "Taken",
                        Some(MarkResult::Refused(_)) => "Refused",
                        None => "None",
                    };
                    *t.entry(format!("MarkResult: {r}")).or_default() += 1;
                }
                _ => {}
            }
        }
    }
}

fn handshake(t: &mut Tally, data: &[u8]) {
    let mut a = [0u8; HELLO_LEN];
    let mut b = [0u8; HELLO_LEN];
    let n = data.len().min(HELLO_LEN);
    a[..n].copy_from_slice(&data[..n]);
    let m = (data.len() - n).min(HELLO_LEN);
    b[..m].copy_from_slice(&data[n..n + m]);
    let (pa, pb) = (Hello::decode(&a), Hello::decode(&b));
    note(t, "Hello::decode", &pa);
    note(t, "Hello::decode", &pb);
    if let (Ok(p), Ok(s)) = (pa, pb) {
        note(t, "check_peer", &p.check_peer(&s));
        for d in [decide(&p.gens, &s.gens), decide(&s.gens, &p.gens)] {
            *t.entry(format!("decide: {d:?}")).or_default() += 1;
        }
    }
}

fn superblock(t: &mut Tally, data: &[u8]) {
    let mut b = [0u8; SB_BYTES];
    let n = data.len().min(SB_BYTES);
    b[..n].copy_from_slice(&data[..n]);
    note(t, "Superblock::decode", &Superblock::decode(&b));
    b[52..56].fill(0);
    let crc = crc32c(&b);
    b[52..56].copy_from_slice(&crc.to_le_bytes());
    note(t, "Superblock::decode", &Superblock::decode(&b));
}

fn activity(t: &mut Tally, data: &[u8]) {
    note(t, "activity::decode", &activity::decode(data));
    let n = data.len().min(32);
    let mut buf = vec![0u8; AL_HEADER_BYTES + data.len() - n];
    buf[..n].copy_from_slice(&data[..n]);
    buf[AL_HEADER_BYTES..].copy_from_slice(&data[n..]);
    note(t, "activity::decode", &activity::decode(&buf));
    rcopy_fuzz::fix_al_crc(&mut buf);
    note(t, "activity::decode", &activity::decode(&buf));
}

fn snapstore(t: &mut Tally, data: &[u8]) {
    let mut sbb = [0u8; BLOCK];
    let n = data.len().min(BLOCK);
    sbb[..n].copy_from_slice(&data[..n]);
    let mut rb = [0u8; BLOCK];
    let m = (data.len() - n).min(BLOCK);
    rb[..m].copy_from_slice(&data[n..n + m]);
    let mut sb = StoreSb::new(0, [0; 16], 0, 4096, 0);
    for pass in 0..2 {
        if pass == 1 {
            rcopy_fuzz::fix_store_crc(&mut sbb);
        }
        let mut s = StoreSb::new(0, [0; 16], 0, 4096, 0);
        let r = s.decode_into(&sbb);
        note(t, "StoreSb::decode", &r);
        if r.is_ok() {
            sb = s;
        }
    }
    if sb.slot_count == 0 {
        sb = StoreSb::new(
            u64::from_le_bytes(rb[16..24].try_into().unwrap()),
            [0; 16],
            1 << 40,
            4096,
            u32::MAX - 2,
        );
        sb.newest_epoch = u32::MAX;
    }
    let tracks = sb.device_bytes / u64::from(sb.track_size);
    for pass in 0..2 {
        if pass == 1 {
            rcopy_fuzz::fix_store_crc(&mut rb);
        }
        for block in [
            u32::try_from(u64::from_le_bytes(rb[24..32].try_into().unwrap())).unwrap_or(0),
            0,
        ] {
            note(
                t,
                "decode_records",
                &decode_records(&rb, &sb, block, tracks),
            );
        }
    }
}

/// The split copy: its header copies (as fuzzed, CRC fixed up, the second copy)
/// and `pick` on the pairs the harness tries.
fn split(t: &mut Tally, data: &[u8]) {
    let c = rcopy_fuzz::split_copies(data);
    let r =
        [&c.raw, &c.fixed, &c.second].map(|b| split::Header::decode(b, c.data_bytes, c.track_size));
    for x in &r {
        note(t, "split::Header::decode", x);
    }
    for (a, b) in [(0, 1), (1, 2), (0, 2)] {
        let key = match split::pick(r[a].clone(), r[b].clone()) {
            Ok(Loaded::Blank) => "Blank".to_string(),
            Ok(Loaded::Header(_)) => "Header".to_string(),
            Err(e) => format!("{e:?}"),
        };
        *t.entry(format!("split::pick: {key}")).or_default() += 1;
    }
}

const STORE_SB_ERRORS: &[&str] = &[
    "Ok",
    "Empty",
    "BadMagic",
    "BadVersion",
    "BadChecksum",
    "BadField",
];
const STORE_REC_ERRORS: &[&str] = &[
    "Ok",
    "Empty",
    "BadMagic",
    "BadVersion",
    "BadChecksum",
    "Stale",
    "BadField",
];
const PROTO_ERRORS: &[&str] = &[
    "BadMagic",
    "BadVersion",
    "UnknownKind",
    "ReservedNotZero",
    "BadFlags",
    "TooLong",
    "BadLength",
    "UnusedNotZero",
    "BadSeq",
    "BadDependency",
    "SectorOverflow",
    "BadWriteFlags",
    "BadAckFlags",
    "BadErrno",
    "BadState",
    "BadBitmap",
    "BadMark",
];
/// `Mark::decode` on the payload of a decoded marker header: a good mark, a bad
/// kind, reserved byte or name, and a payload shorter or longer than the 40
/// bytes the header promises.
const MARK_ERRORS: &[&str] = &["Ok", "BadMark", "BadLength"];
/// The result of a decoded ACK_MARK (validate refuses any other).
const MARK_RESULTS: &[&str] = &["Taken", "Refused"];
const CRC_ERRORS: &[&str] = &["Ok", "PayloadLength", "BadCrc"];
const HELLO_ERRORS: &[&str] = &[
    "Ok",
    "BadLength",
    "HelloReserved",
    "HelloGenFlags",
    "HelloVersion",
    "HelloRole",
    "HelloMode",
    "HelloTrackSize",
    "HelloDeviceSize",
];
const DECISIONS: &[&str] = &[
    "Bitmap",
    "FullCopy",
    "SplitBrain",
    "StalePrimary",
    "Unrelated",
];
const CHECK_PEER: &[&str] = &[
    "Ok",
    "Version",
    "SameNode",
    "PairId",
    "DeviceSize",
    "TrackSize",
    "Role",
];
const META_ERRORS: &[&str] = &[
    "Ok",
    "NotFormatted",
    "BadMagic",
    "BadVersion",
    "BadChecksum",
    "BadField",
];
const AL_ERRORS: &[&str] = &["Ok", "Empty", "BadMagic", "BadField", "BadChecksum"];
const SPLIT_ERRORS: &[&str] = &["Ok", "Blank", "Foreign", "Torn", "BadField", "Geometry"];
/// `pick`: a header, a blank device, two torn copies, and each refusal.
const SPLIT_PICKS: &[&str] = &["Header", "Blank", "Torn", "Foreign", "BadField", "Geometry"];

#[test]
fn corpus_reaches_every_outcome() {
    let mut t = Tally::new();
    for d in inputs("frame") {
        frame(&mut t, &d);
    }
    for d in inputs("handshake") {
        handshake(&mut t, &d);
    }
    for d in inputs("superblock") {
        superblock(&mut t, &d);
    }
    for d in inputs("activity") {
        activity(&mut t, &d);
    }
    for d in inputs("snapstore") {
        snapstore(&mut t, &d);
    }
    for d in inputs("split") {
        split(&mut t, &d);
    }
    for (k, n) in &t {
        println!("{n:6}  {k}");
    }
    let mut want: Vec<String> = Vec::new();
    want.extend(PROTO_ERRORS.iter().map(|e| format!("Header::decode: {e}")));
    want.push("Header::decode: Ok".into());
    want.extend(Kind::ALL.iter().map(|k| format!("kind: {k:?}")));
    want.extend(CRC_ERRORS.iter().map(|e| format!("verify_crc: {e}")));
    want.extend(HELLO_ERRORS.iter().map(|e| format!("Hello::decode: {e}")));
    want.extend(["reject_text: Ok".into(), "reject_text: BadText".into()]);
    want.extend(MARK_ERRORS.iter().map(|e| format!("Mark::decode: {e}")));
    want.extend(MARK_RESULTS.iter().map(|r| format!("MarkResult: {r}")));
    want.extend(DECISIONS.iter().map(|d| format!("decide: {d}")));
    want.extend(CHECK_PEER.iter().map(|e| format!("check_peer: {e}")));
    want.extend(
        META_ERRORS
            .iter()
            .map(|e| format!("Superblock::decode: {e}")),
    );
    want.extend(AL_ERRORS.iter().map(|e| format!("activity::decode: {e}")));
    want.extend(
        STORE_SB_ERRORS
            .iter()
            .map(|e| format!("StoreSb::decode: {e}")),
    );
    want.extend(
        STORE_REC_ERRORS
            .iter()
            .map(|e| format!("decode_records: {e}")),
    );
    want.extend(
        SPLIT_ERRORS
            .iter()
            .map(|e| format!("split::Header::decode: {e}")),
    );
    want.extend(SPLIT_PICKS.iter().map(|e| format!("split::pick: {e}")));
    let missing: Vec<&String> = want.iter().filter(|k| !t.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "the corpus no longer reaches: {missing:?}"
    );
}
