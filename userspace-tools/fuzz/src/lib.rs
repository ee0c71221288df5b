//! Fuzz harnesses for rcopy's pure core: what a peer, a metadata device, a
//! snapshot store or a split copy device can feed the kernel module.
//!
//! Each function takes arbitrary bytes, must never panic (the core promises "no
//! panics on any input"; these are built with overflow checks and debug
//! assertions on), and asserts a few properties that hold for every input: a
//! decoded value encodes back to the bytes it came from, a CRC fixed up by the
//! harness is accepted, the handshake decision is deterministic and a resolved
//! refusal always proceeds. The libFuzzer binaries in `fuzz_targets/` call them;
//! `tests/corpus.rs` replays the committed corpus and the regression inputs
//! through them. See `Documentation/rcopy-fuzzing.rst`.
#![forbid(unsafe_code)]

use rcopy_core::activity::{self, AL_HEADER_BYTES, AL_MAX_EXTENTS};
use rcopy_core::crc32c::{crc32c, Crc32c};
use rcopy_core::format::{Superblock, SB_BYTES};
use rcopy_core::gens::{decide, Decision, GenInfo, GF_BLANK, GF_RESOLVE};
use rcopy_core::le::{u32_at, u64_at};
use rcopy_core::proto::{
    self, Header, Hello, Kind, Mark, MarkResult, ProtoError, RejectReason, ACK_MARK, HEADER_LEN,
    HELLO_LEN, MARK_LEN, MARK_NAME_LEN, MARK_POINT, MARK_SNAPSHOT, MAX_ERRNO, MAX_PAYLOAD,
    WRITE_MARK, WRITE_PREFLUSH,
};
use rcopy_core::snapmap::{Entry, SnapMap, MAX_SNAPSHOTS};
use rcopy_core::snapstore::{
    self, decode_records, encode_records, record_in, StoreSb, BLOCK, RECORDS_PER_BLOCK,
};
use rcopy_core::split::{
    self, Header as SplitHeader, Layout, Loaded, Map, Mode, SplitError, SplitState,
};
use rcopy_core::state::Pair;
use std::ops::Range;

pub mod seeds;

/// Offset of the CRC field in a snapshot-store block (superblock and record block).
const STORE_CRC: usize = 12;
/// Offsets of the store id and the block number in a record block.
const REC_STORE_ID: usize = 16;
const REC_BLOCK: usize = 24;

/// Offset of the CRC field in a frame header (`Documentation/rcopy-protocol.rst`).
const FRAME_CRC: usize = 40;
/// Offset of the CRC field in the superblock (`Documentation/rcopy.rst`).
const SB_CRC: usize = 52;
/// Offsets in an activity-log copy's header: entry count, CRC, bytes in use.
const AL_COUNT: usize = 12;
const AL_CRC: usize = 28;
const AL_USED: usize = 32;

/// The `max_payload` limits a receiver may pass to [`Header::decode`]: none, the
/// protocol's, one a small-buffered side might use, and none at all.
const MAX_PAYLOADS: [u32; 4] = [u32::MAX, MAX_PAYLOAD, 64 << 10, 0];

/// The frame decoder: `data` is a 48-byte header (zero-padded if shorter) and
/// its payload. Runs [`Header::decode`] under several payload limits,
/// [`Header::validate`], [`Header::verify_crc`] as received and with the CRC
/// fixed up, and the payload decoders of the kinds that have one
/// ([`Hello::decode`], [`proto::reject_text`], [`Mark::decode`] for a marker,
/// [`MarkResult::decode`] for a marker's ACK); the whole input also goes through
/// `Hello::decode` and `reject_text` directly.
pub fn frame(data: &[u8]) {
    let mut hdr = [0u8; HEADER_LEN];
    let n = data.len().min(HEADER_LEN);
    hdr[..n].copy_from_slice(&data[..n]);
    let payload = &data[n..];

    let _ = Hello::decode(data);
    let _ = proto::reject_text(data);

    for max in MAX_PAYLOADS {
        check_frame(&hdr, payload, max);
    }
    // The same header with the CRC a correct sender would have put there, so
    // the payload decoders are reached past the checksum.
    let crc = Header::crc_state(&hdr).update(payload).finish();
    hdr[FRAME_CRC..FRAME_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    check_frame(&hdr, payload, u32::MAX);
    if let Ok(h) = Header::decode(&hdr, u32::MAX) {
        if payload.len() == h.len as usize {
            assert_eq!(h.verify_crc(&hdr, payload), Ok(()), "fixed-up CRC refused");
            assert_eq!(h.encode(payload), hdr, "encode(payload) differs");
        }
    }
}

fn check_frame(hdr: &[u8; HEADER_LEN], payload: &[u8], max: u32) {
    let Ok(h) = Header::decode(hdr, max) else {
        return;
    };
    assert!(h.len <= max.min(MAX_PAYLOAD), "len over the limit accepted");
    assert_eq!(h.validate(max), Ok(()), "decoded header fails validate");
    assert_eq!(h.encode_with_crc(h.crc), *hdr, "header does not re-encode");
    assert_eq!(Kind::from_code(h.kind.code()), Some(h.kind));
    let _ = h.write_fits(u64::MAX);
    let _ = h.write_fits(0);
    let _ = h.write_fits(h.a.wrapping_mul(512));
    let crc_ok = h.verify_crc(hdr, payload).is_ok();
    // A payload of another length never verifies.
    if payload.len() != h.len as usize {
        assert!(!crc_ok, "payload of the wrong length accepted");
    }
    let _ = h.check_crc(h.crc);
    match h.kind {
        Kind::Hello => {
            if let Ok(hello) = Hello::decode(payload) {
                assert_eq!(hello.encode()[..], payload[..], "HELLO does not re-encode");
            }
        }
        Kind::Reject => {
            let _ = RejectReason::from_code(h.a).message();
            assert_eq!(RejectReason::from_code(h.a).code(), h.a);
            if let Ok(text) = proto::reject_text(payload) {
                assert_eq!(text.as_bytes(), payload);
            }
        }
        Kind::State => {
            let p = Pair::decode(h.a).expect("validate accepted a bad STATE");
            assert_eq!(p.encode(), h.a, "STATE does not re-encode");
        }
        Kind::Write if h.flags & WRITE_MARK != 0 => {
            // validate lets a marker through only in its one shape.
            assert_eq!(h.flags, WRITE_MARK | WRITE_PREFLUSH, "marker flags");
            assert_eq!(h.nr_sectors, 0, "marker with sectors");
            assert_eq!(h.len as usize, MARK_LEN, "marker length");
            assert_ne!(h.a, 0, "marker without a ticket");
            check_mark(payload);
        }
        Kind::Ack if h.a & ACK_MARK != 0 => {
            let r = MarkResult::decode(h.b).expect("validate accepted a bad ACK_MARK result");
            assert_eq!(r.encode(), h.b, "ACK_MARK result does not re-encode");
            // Separate arms, so libFuzzer keeps an input of each.
            match r {
                MarkResult::Taken(id) => assert_ne!(id, 0, "taken without an id"),
                MarkResult::Refused(e) => {
                    assert!(e != 0 && u64::from(e) <= MAX_ERRNO, "refused: errno {e}")
                }
            }
        }
        _ => {}
    }
}

/// A marker's payload (as received, of any length): [`Mark::decode`] takes
/// exactly [`MARK_LEN`] bytes; a mark it accepts re-encodes to the same bytes,
/// and [`Mark::new`] on its kind and unpadded name gives the same mark
/// ([`Mark::sum`] on its id and sum for an image sum).
fn check_mark(payload: &[u8]) {
    if payload.len() != MARK_LEN {
        assert_eq!(
            Mark::decode(payload),
            Err(ProtoError::BadLength),
            "marker payload of the wrong length"
        );
        return;
    }
    match Mark::decode(payload) {
        Ok(m) if m.kind == proto::MARK_SUM => {
            // An image sum: any 32 bytes, a non-zero id.
            assert_ne!(m.id, 0, "sum mark without an id");
            assert_eq!(m.encode()[..], payload[..], "sum mark does not re-encode");
            assert_eq!(Mark::sum(m.id, m.name), Some(m), "Mark::sum differs");
        }
        Ok(m) => {
            assert!(matches!(m.kind, MARK_SNAPSHOT | MARK_POINT), "mark kind");
            assert_eq!(m.id, 0, "an id on a snapshot or point mark");
            assert_eq!(m.encode()[..], payload[..], "mark does not re-encode");
            let name = m.name();
            assert!(name.len() <= MARK_NAME_LEN);
            assert!(name.iter().all(|&c| proto::mark_name_char(c)), "mark name");
            assert_eq!(Mark::new(m.kind, name), Some(m), "Mark::new differs");
        }
        Err(e) => assert_eq!(e, ProtoError::BadMark, "mark payload refused"),
    }
}

/// The handshake decision: `data` is two HELLO payloads (zero-padded), the first
/// taken as the primary's. When both decode, [`Hello::check_peer`] runs both ways
/// and [`decide`] runs on the pair in both orders; the decision must be
/// deterministic, parse back from its status word, give advice exactly when it
/// refuses, be a full copy for a blank secondary, and proceed whenever either
/// side carries the resolve flag. The raw generation fields (before HELLO's
/// checks) go through `decide` too.
pub fn handshake(data: &[u8]) {
    let mut a = [0u8; HELLO_LEN];
    let mut b = [0u8; HELLO_LEN];
    let n = data.len().min(HELLO_LEN);
    a[..n].copy_from_slice(&data[..n]);
    let rest = &data[n..];
    let m = rest.len().min(HELLO_LEN);
    b[..m].copy_from_slice(&rest[..m]);

    check_decision(&raw_gens(&a), &raw_gens(&b));
    let (Ok(p), Ok(s)) = (Hello::decode(&a), Hello::decode(&b)) else {
        return;
    };
    let _ = p.check_peer(&s);
    let _ = s.check_peer(&p);
    assert_eq!(p.negotiated_version(&s), s.negotiated_version(&p));
    assert_eq!(p.negotiated_features(&s), s.negotiated_features(&p));
    check_decision(&p.gens, &s.gens);
    check_decision(&s.gens, &p.gens);
}

/// The generation fields of a HELLO payload as they lie, unchecked.
fn raw_gens(b: &[u8; HELLO_LEN]) -> GenInfo {
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    GenInfo {
        current: u64_at(80),
        peer: u64_at(88),
        peer_prev: u64_at(96),
        history: [u64_at(104), u64_at(112)],
        flags: u32::from_le_bytes(b[120..124].try_into().unwrap_or([0; 4])),
    }
}

fn check_decision(p: &GenInfo, s: &GenInfo) {
    let d = decide(p, s);
    assert_eq!(decide(p, s), d, "decide is not deterministic");
    assert_eq!(Decision::parse(d.as_str()), Some(d));
    assert_eq!(d.advice().is_empty(), d.proceeds(), "advice for {d:?}");
    if s.flags & GF_BLANK != 0 {
        assert_eq!(d, Decision::FullCopy, "blank secondary");
    }
    if (p.flags | s.flags) & GF_RESOLVE != 0 {
        assert!(d.proceeds(), "resolved yet refused: {d:?}");
    }
}

/// The superblock decoder: `data` is the start of the 4 KiB block (zero-padded,
/// cut at 4 KiB). [`Superblock::decode`] runs on it as is and with the CRC fixed
/// up; a decoded superblock must encode back to the same block and pass its own
/// [`Superblock::check`].
pub fn superblock(data: &[u8]) {
    let mut b = [0u8; SB_BYTES];
    let n = data.len().min(SB_BYTES);
    b[..n].copy_from_slice(&data[..n]);
    check_superblock(&b);
    b[SB_CRC..SB_CRC + 4].fill(0);
    let crc = crc32c(&b);
    b[SB_CRC..SB_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    check_superblock(&b);
}

fn check_superblock(b: &[u8; SB_BYTES]) {
    let Ok(sb) = Superblock::decode(b) else {
        return;
    };
    assert_eq!(sb.encode(), *b, "superblock does not re-encode");
    assert_eq!(sb.check(sb.size_bytes, sb.track_size, &sb.pair_id), Ok(()));
    // The generation steps a side takes keep its superblock readable, and the
    // handshake decides on whatever they leave.
    let next = sb.gen_current.rotate_left(1) | 1;
    let mut steps = [sb; 5];
    steps[0].new_generation(next);
    steps[1].peer_caught_up(sb.gen_history[0]);
    steps[2].peer_is_at(sb.gen_peer_prev);
    steps[3].adopt(next);
    steps[4].promote(next);
    for s in &steps {
        assert_eq!(
            Superblock::decode(&s.encode()),
            Ok(*s),
            "step breaks the superblock"
        );
        check_decision(&sb.gen_info(0), &s.gen_info(0));
        check_decision(&s.gen_info(0), &sb.gen_info(0));
    }
}

/// The activity-log decoder. The whole input goes through [`activity::decode`]
/// as is (any length); then a copy is built from it: the first 32 bytes are the
/// header's used bytes (zero-padded), the rest of the header block is zero and
/// the remaining input is the entries, and it is decoded as is and with the CRC
/// fixed up. A decoded copy must encode back to the same bytes, and
/// [`activity::newest`] picks a valid copy of the two.
pub fn activity(data: &[u8]) {
    let raw = activity::decode(data);
    if let Ok(h) = raw {
        for i in 0..h.count {
            let _ = activity::entry(data, i);
        }
    }
    let n = data.len().min(AL_USED);
    let entries = &data[n..];
    let mut buf = vec![0u8; AL_HEADER_BYTES + entries.len()];
    buf[..n].copy_from_slice(&data[..n]);
    buf[AL_HEADER_BYTES..].copy_from_slice(entries);
    let _ = check_activity(&buf);
    fix_al_crc(&mut buf);
    let fixed = check_activity(&buf);
    match activity::newest(raw, fixed) {
        Some(0) => assert!(raw.is_ok()),
        Some(1) => assert!(fixed.is_ok()),
        Some(_) => panic!("newest picked neither copy"),
        None => assert!(raw.is_err() && fixed.is_err()),
    }
}

/// Sets an activity-log copy's CRC to the one a correct writer would have put
/// there: CRC-32C over the header's used bytes (CRC zeroed) and the entries.
pub fn fix_al_crc(buf: &mut [u8]) {
    let count = u32::from_le_bytes(buf[AL_COUNT..AL_COUNT + 4].try_into().unwrap_or([0; 4]));
    let mut hdr = [0u8; AL_USED];
    hdr.copy_from_slice(&buf[..AL_USED]);
    hdr[AL_CRC..AL_CRC + 4].fill(0);
    let mut c = Crc32c::new();
    c.update(&hdr);
    if count <= AL_MAX_EXTENTS {
        let end = AL_HEADER_BYTES + count as usize * 8;
        if let Some(e) = buf.get(AL_HEADER_BYTES..end) {
            c.update(e);
        }
    }
    let crc = c.finish();
    buf[AL_CRC..AL_CRC + 4].copy_from_slice(&crc.to_le_bytes());
}

fn check_activity(buf: &[u8]) -> Result<activity::AlHeader, activity::AlError> {
    let r = activity::decode(buf);
    if let Ok(h) = r {
        assert!(h.count <= AL_MAX_EXTENTS);
        assert!((12..=30).contains(&h.extent_shift));
        let extents: Vec<u64> = (0..h.count).map(|i| activity::entry(buf, i)).collect();
        let mut again = vec![0u8; activity::copy_bytes(h.count)];
        let len = activity::encode(&mut again, h.txn, h.extent_shift, &extents);
        let used = AL_HEADER_BYTES + h.count as usize * 8;
        assert!(len >= used);
        assert_eq!(again[..used], buf[..used], "AL copy does not re-encode");
        for &e in extents.iter().take(4) {
            let _ = activity::extent_tracks(e, h.extent_shift, 12);
            let _ = activity::extent_tracks(e, h.extent_shift, 24);
        }
    }
    r
}

/// Sets a snapshot-store block's CRC to the one a correct writer would have put
/// there: CRC-32C over the block with the CRC field zeroed.
pub fn fix_store_crc(b: &mut [u8; BLOCK]) {
    b[STORE_CRC..STORE_CRC + 4].fill(0);
    let crc = crc32c(b);
    b[STORE_CRC..STORE_CRC + 4].copy_from_slice(&crc.to_le_bytes());
}

/// The snapshot store's decoders: `data` is a superblock copy (the first 4 KiB,
/// zero-padded) and a record block copy (the next 4 KiB). Each is decoded as is
/// and with the CRC fixed up. A decoded superblock re-encodes to the same block,
/// passes its own `check`, and stays decodable after a snapshot is added and one
/// removed. The record block is decoded against the decoded superblock (or one
/// made to match it: its own store id, every slot and epoch allowed) at the block
/// number it claims and at block 0; a decoded block re-encodes to the same bytes,
/// its records load into a snapshot map (errors allowed, never a panic), and
/// `pick` chooses a copy that decoded.
pub fn snapstore(data: &[u8]) {
    let mut sbb = [0u8; BLOCK];
    let n = data.len().min(BLOCK);
    sbb[..n].copy_from_slice(&data[..n]);
    let rest = &data[n..];
    let mut rb = [0u8; BLOCK];
    let m = rest.len().min(BLOCK);
    rb[..m].copy_from_slice(&rest[..m]);

    let mut sb = check_store_sb(&sbb);
    fix_store_crc(&mut sbb);
    if let Some(fixed) = check_store_sb(&sbb) {
        sb = Some(fixed);
    }
    let sb = sb.unwrap_or_else(|| {
        let id = u64::from_le_bytes(
            rb[REC_STORE_ID..REC_STORE_ID + 8]
                .try_into()
                .unwrap_or([0; 8]),
        );
        let mut s = StoreSb::new(id, [0; 16], 1 << 40, 4096, u32::MAX - 2);
        s.newest_epoch = u32::MAX;
        s
    });
    let claimed = u64::from_le_bytes(rb[REC_BLOCK..REC_BLOCK + 8].try_into().unwrap_or([0; 8]));
    let claimed = u32::try_from(claimed).unwrap_or(0);
    let tracks = sb.device_bytes / u64::from(sb.track_size.max(1));
    for block in [claimed, 0] {
        let raw = check_records(&rb, &sb, block, tracks);
        let mut fixed_b = rb;
        fix_store_crc(&mut fixed_b);
        let fixed = check_records(&fixed_b, &sb, block, tracks);
        match snapstore::pick(raw, fixed) {
            Ok(Some(0)) => assert!(raw.is_ok()),
            Ok(Some(1)) => assert!(fixed.is_ok()),
            Ok(Some(_)) => panic!("pick chose neither copy"),
            Ok(None) => assert!(raw.is_err() && fixed.is_err()),
            Err(_) => assert!(raw.is_err() || fixed.is_err()),
        }
    }
}

fn check_store_sb(b: &[u8; BLOCK]) -> Option<StoreSb> {
    let mut sb = StoreSb::new(0, [0; 16], 0, 4096, 0);
    sb.decode_into(b).ok()?;
    let mut again = [0u8; BLOCK];
    sb.encode_into(&mut again);
    assert_eq!(again, *b, "store superblock does not re-encode");
    assert_eq!(
        sb.check(sb.device_bytes, sb.track_size, &sb.pair_id),
        Ok(())
    );
    let mut live = [0; MAX_SNAPSHOTS];
    let n = sb.live(&mut live);
    assert!(live[..n].iter().all(|&e| e != 0 && e <= sb.newest_epoch));
    // Adding and removing snapshots keeps it decodable.
    let mut next = sb.clone();
    if let Some(&e) = live[..n].first() {
        next.remove(e).expect("a live snapshot is in the table");
    }
    let _ = next.add(snapstore::SnapInfo::NONE);
    next.encode_into(&mut again);
    let mut back = StoreSb::new(0, [0; 16], 0, 4096, 0);
    assert_eq!(
        back.decode_into(&again),
        Ok(()),
        "a table step breaks the superblock"
    );
    assert_eq!(back, next);
    Some(sb)
}

fn check_records(
    b: &[u8; BLOCK],
    sb: &StoreSb,
    block: u32,
    tracks: u64,
) -> Result<u64, snapstore::StoreError> {
    let h = decode_records(b, sb, block, tracks)?;
    let mut again = [0u8; BLOCK];
    let n = encode_records(&mut again, sb.store_id, block, h.seq, |s| {
        s.checked_sub(block.saturating_mul(RECORDS_PER_BLOCK))
            .and_then(|j| record_in(b, j))
    });
    assert_eq!(n, h.count);
    assert_eq!(again, *b, "record block does not re-encode");
    // Load the records into a map over the slots up to this block's (bounded).
    let slots = (block.saturating_add(1).saturating_mul(RECORDS_PER_BLOCK)).min(1 << 16);
    let mut live = [0; MAX_SNAPSHOTS];
    let nl = sb.live(&mut live);
    let entries = vec![Entry::EMPTY; slots as usize];
    if let Ok(mut l) = SnapMap::load(
        entries,
        vec![0u32; 64],
        tracks,
        sb.newest_epoch,
        &live[..nl],
    ) {
        for j in 0..RECORDS_PER_BLOCK {
            if let Some(r) = record_in(b, j) {
                let _ = l.add(r);
            }
        }
        let m = l.finish(|_| {});
        assert_eq!(m.used_slots() + m.free_slots(), m.slots());
        for j in 0..RECORDS_PER_BLOCK {
            if let Some(r) = record_in(b, j) {
                for &k in m.live() {
                    let _ = m.lookup(k, r.track);
                }
                let _ = m.needs_copy(r.track);
            }
        }
    }
    Ok(h.seq)
}

/// Offsets in a split copy header block (`rust/core/split.rs`): the image size,
/// the track size, the counters, the CRC (over the bytes before it) and the end
/// of the used part (the rest must be zero).
const SPLIT_DATA: usize = 24;
const SPLIT_TRACK: usize = 32;
const SPLIT_SPLITS: usize = 56;
const SPLIT_COPIED: usize = 64;
const SPLIT_AT: usize = 72;
const SPLIT_CRC: usize = 80;
const SPLIT_USED: usize = 84;
/// The four bytes between the track size and the refresh start: no field, and
/// `Header::decode` does not look at them (a decoded block re-encodes with them
/// zeroed).
const SPLIT_GAP: Range<usize> = 36..40;
/// The `split` target's parameters, before the header block (little-endian):
///
/// | bytes    | what                                                            |
/// |----------|-----------------------------------------------------------------|
/// | 0        | bit 0: decode at the geometry below, not the block's own         |
/// | 1..13    | that geometry: image bytes (u64), track size (u32)               |
/// | 13..21   | the second copy's sequence                                       |
/// | 21..24   | how it is spoilt (`% 4`: not, zeroed, a checksummed byte changed, a byte past the used part set) and where (u16) |
/// | 24..41   | its state (`% 4`) and refresh range (two u64) if the first copy does not decode |
/// | 48..57   | the small layout: tracks (u8), track size (u32, at least 512), bytes short of the last track (u32) |
/// | 57..60   | its mode: state (`% 4`), refresh start and end (u8; both 0: none) |
/// | 64..160  | its CREATE, SPLIT and UPDATE bits, 32 bytes each                 |
/// | 160..256 | 32 operations: code (low nibble the operation, high nibble its bitmap or state), two arguments |
pub const SPLIT_PARAMS: usize = 256;
const SPLIT_MAPS: usize = 64;
const SPLIT_MAP_BYTES: usize = 32;
const SPLIT_OPS: usize = 160;

/// Sets a split copy header's CRC to the one a correct writer would have put
/// there: CRC-32C over the bytes before the CRC field.
pub fn fix_split_crc(b: &mut [u8; split::BLOCK]) {
    let crc = crc32c(&b[..SPLIT_CRC]);
    b[SPLIT_CRC..SPLIT_CRC + 4].copy_from_slice(&crc.to_le_bytes());
}

fn split_state(code: u8) -> SplitState {
    match code % 4 {
        0 => SplitState::Forming,
        1 => SplitState::Formed,
        2 => SplitState::Splitting,
        _ => SplitState::Split,
    }
}

/// The blocks the `split` target decodes, and the geometry it decodes them at.
pub struct SplitCopies {
    /// The header block as fuzzed.
    pub raw: Box<[u8; split::BLOCK]>,
    /// The same with its CRC fixed up.
    pub fixed: Box<[u8; split::BLOCK]>,
    /// The header the second copy was encoded from.
    pub second_header: SplitHeader,
    /// The second copy: `second_header` encoded, then maybe spoilt.
    pub second: Box<[u8; split::BLOCK]>,
    /// The image size the copies are decoded against.
    pub data_bytes: u64,
    /// The track size they are decoded against.
    pub track_size: u32,
}

/// Builds the `split` target's copies from its input (see [`split()`]).
pub fn split_copies(data: &[u8]) -> SplitCopies {
    let mut p = [0u8; SPLIT_PARAMS];
    let n = data.len().min(SPLIT_PARAMS);
    p[..n].copy_from_slice(&data[..n]);
    let rest = &data[n..];
    let mut raw = Box::new([0u8; split::BLOCK]);
    let m = rest.len().min(split::BLOCK);
    raw[..m].copy_from_slice(&rest[..m]);
    let mut fixed = raw.clone();
    fix_split_crc(&mut fixed);

    // The geometry: the block's own (so a good header decodes) or the one given.
    let (data_bytes, track_size) = if p[0] & 1 != 0 {
        (u64_at(&p, 1), u32_at(&p, 9))
    } else {
        (u64_at(&raw[..], SPLIT_DATA), u32_at(&raw[..], SPLIT_TRACK))
    };
    // The second copy: the first one's header (if it decodes, raw or fixed up) at
    // another sequence, else one made of the parameters; then spoilt or not.
    let seq = u64_at(&p, 13);
    let first = SplitHeader::decode(&fixed, data_bytes, track_size);
    let second_header = match first {
        Ok(h) => SplitHeader { seq, ..h },
        Err(_) => {
            let (rs, re) = (u64_at(&p, 25), u64_at(&p, 33));
            SplitHeader {
                seq,
                mode: Mode {
                    state: split_state(p[24]),
                    refresh: (rs != 0 || re != 0).then_some(rs..re),
                },
                data_bytes,
                track_size,
                splits: u64_at(&raw[..], SPLIT_SPLITS),
                copied: u64_at(&raw[..], SPLIT_COPIED),
                split_at_ns: u64_at(&raw[..], SPLIT_AT),
            }
        }
    };
    let mut second = Box::new([0u8; split::BLOCK]);
    second_header.encode_into(&mut second);
    let at = usize::from(u16::from_le_bytes([p[22], p[23]]));
    match p[21] % 4 {
        1 => second.fill(0),
        2 => second[at % SPLIT_USED] ^= p[23] | 1,
        3 => second[SPLIT_USED + at % (split::BLOCK - SPLIT_USED)] |= p[22] | 1,
        _ => {}
    }
    SplitCopies {
        raw,
        fixed,
        second_header,
        second,
        data_bytes,
        track_size,
    }
}

/// The split copy (`rust/core/split.rs`). `data` is [`SPLIT_PARAMS`] bytes of
/// parameters, then a header block (4 KiB; both zero-padded; bytes past them
/// unused).
///
/// - The block is decoded as is and with its CRC fixed up, at a geometry from the
///   parameters or from the block itself. A decoded header re-encodes to a block
///   that decodes to the same header, equal to the input but for the unused gap
///   (bytes 36..40) and so the CRC.
/// - A second copy is encoded from a header (the first copy's at another
///   sequence, or one made of the parameters: any state and refresh range) and
///   decoded: as encoded it decodes to that header exactly when the header is one
///   a writer may write (a refresh only while split, non-empty, inside the image),
///   and to `BadField` otherwise; at another geometry to `Geometry`. It is then
///   kept, zeroed (`Blank`), given a changed checksummed byte (`Foreign` in the
///   magic or version, `Torn` elsewhere) or a byte past the used part (`BadField`).
/// - `pick` of pairs of these copies: a foreign, bad or mismatched copy refuses;
///   a valid copy wins over a torn or blank one, the higher sequence of two valid
///   ones; blank with blank or torn is `Blank`; torn with torn is `Torn`.
/// - `Layout::new` at the decode geometry: `None` exactly for a zero track size or
///   a device size past `u64`, else the documented placement.
/// - A small layout (up to 255 tracks) and its three bitmaps from the parameters
///   go through up to 32 operations: `put`, `get`, `next_set`, `count`,
///   `count_all`, `fill_create`, `rejoin`, `fold_update`, a write as
///   `write_work` asks for it (then `admits` lets it down), a mode change (the
///   mode's `copy_work`, `settled`, `can_split`, `can_rejoin`), and `tracks_of`;
///   each is checked against a bit-by-bit model, and no bit past the last track is
///   ever set.
pub fn split(data: &[u8]) {
    let c = split_copies(data);
    let (d, ts) = (c.data_bytes, c.track_size);
    let raw = SplitHeader::decode(&c.raw, d, ts);
    let fixed = SplitHeader::decode(&c.fixed, d, ts);
    if let Ok(h) = &fixed {
        // (A good raw block is the fixed one: the assertion below.)
        check_split_header(&c.fixed, h, d, ts);
    }
    // Fixing the CRC changes only the CRC: a good copy stays good, a foreign one
    // foreign, and none is torn after it.
    if raw.is_ok() {
        assert_eq!(fixed, raw, "fixing a good CRC changed the header");
    }
    if raw == Err(SplitError::Foreign) {
        assert_eq!(fixed, Err(SplitError::Foreign));
    }
    assert_ne!(fixed, Err(SplitError::Torn), "torn with its CRC fixed");

    let second = check_second_copy(&c);
    for (a, b) in [
        (&raw, &fixed),
        (&fixed, &second),
        (&raw, &second),
        (&second, &second),
    ] {
        check_pick(a, b);
        check_pick(b, a);
    }

    check_split_layout(d, ts);
    if let Ok(h) = &fixed {
        let tracks = d.div_ceil(u64::from(ts.max(1)));
        check_mode(&h.mode, tracks);
    }
    let mut p = [0u8; SPLIT_PARAMS];
    let n = data.len().min(SPLIT_PARAMS);
    p[..n].copy_from_slice(&data[..n]);
    split_bitmaps(&p);
}

/// A header decoded from `b` at `d`/`ts`: it re-encodes to a block that decodes
/// to it, which is `b` with the unused gap zeroed and the CRC fixed up.
fn check_split_header(b: &[u8; split::BLOCK], h: &SplitHeader, d: u64, ts: u32) {
    assert_eq!(
        (h.data_bytes, h.track_size),
        (d, ts),
        "geometry not checked"
    );
    let tracks = d.div_ceil(u64::from(ts.max(1)));
    if let Some(r) = &h.mode.refresh {
        assert_eq!(h.mode.state, SplitState::Split, "refresh while not split");
        assert!(r.start < r.end && r.end <= tracks, "refresh range {r:?}");
    }
    let mut again = [0u8; split::BLOCK];
    h.encode_into(&mut again);
    assert_eq!(
        SplitHeader::decode(&again, d, ts).as_ref(),
        Ok(h),
        "header does not round-trip"
    );
    let mut want = *b;
    want[SPLIT_GAP].fill(0);
    fix_split_crc(&mut want);
    assert!(again == want, "header re-encodes to another block");
}

/// The header a writer may write (and so `decode` returns), or the error.
fn split_expected(h: &SplitHeader, d: u64, ts: u32) -> Result<SplitHeader, SplitError> {
    let refresh = match &h.mode.refresh {
        None => None,
        Some(r) if r.start == 0 && r.end == 0 => None,
        Some(r) if h.mode.state == SplitState::Split && r.start < r.end => Some(r.clone()),
        Some(_) => return Err(SplitError::BadField),
    };
    if (h.data_bytes, h.track_size) != (d, ts) {
        return Err(SplitError::Geometry);
    }
    if refresh
        .as_ref()
        .is_some_and(|r| r.end > d.div_ceil(u64::from(ts.max(1))))
    {
        return Err(SplitError::BadField);
    }
    let mut h = h.clone();
    h.mode.refresh = refresh;
    Ok(h)
}

/// The second copy: its encoding decodes as [`split_expected`] says (also at
/// another geometry), then the spoilt block gives the error its damage calls for.
fn check_second_copy(c: &SplitCopies) -> Result<SplitHeader, SplitError> {
    let (d, ts) = (c.data_bytes, c.track_size);
    let h = &c.second_header;
    let mut enc = [0u8; split::BLOCK];
    h.encode_into(&mut enc);
    let want = split_expected(h, d, ts);
    assert_eq!(SplitHeader::decode(&enc, d, ts), want, "encoded header");
    if let Ok(w) = &want {
        check_split_header(&enc, w, d, ts);
        let other = split_expected(h, d ^ 1, ts);
        assert_eq!(other, Err(SplitError::Geometry));
        assert_eq!(SplitHeader::decode(&enc, d ^ 1, ts), other);
        assert_eq!(
            SplitHeader::decode(&enc, d, ts ^ 1),
            Err(SplitError::Geometry),
            "track size not checked"
        );
    }
    let r = SplitHeader::decode(&c.second, d, ts);
    // (Whole-slice comparisons: a byte-by-byte loop would be instrumented per byte.)
    let diff = (c.second[..] != enc[..])
        .then(|| (0..split::BLOCK).find(|&i| c.second[i] != enc[i]))
        .flatten();
    match diff {
        None => assert_eq!(r, want),
        Some(_) if c.second[..] == [0u8; split::BLOCK][..] => {
            assert_eq!(r, Err(SplitError::Blank))
        }
        Some(i) if i < 12 => assert_eq!(r, Err(SplitError::Foreign), "byte {i} changed"),
        Some(i) if i < SPLIT_USED => assert_eq!(r, Err(SplitError::Torn), "byte {i} changed"),
        Some(i) => assert_eq!(r, Err(SplitError::BadField), "byte {i} set"),
    }
    r
}

/// `pick`'s rules, on any two copies.
fn check_pick(a: &Result<SplitHeader, SplitError>, b: &Result<SplitHeader, SplitError>) {
    use SplitError::{BadField, Blank, Foreign, Geometry, Torn};
    let r = split::pick(a.clone(), b.clone());
    let refuses =
        |x: &Result<SplitHeader, SplitError>| matches!(x, Err(Foreign | BadField | Geometry));
    if refuses(a) || refuses(b) {
        // The first copy's refusal, else the second's.
        let first = if refuses(a) { a } else { b };
        assert_eq!(r.map(|_| ()), first.clone().map(|_| ()), "refusal");
        return;
    }
    let want = match (a, b) {
        (Ok(x), Ok(y)) => Ok(Loaded::Header(if y.seq > x.seq { y } else { x }.clone())),
        (Ok(x), Err(_)) | (Err(_), Ok(x)) => Ok(Loaded::Header(x.clone())),
        (Err(Blank), _) | (_, Err(Blank)) => Ok(Loaded::Blank),
        _ => Err(Torn),
    };
    // Separate arms, so libFuzzer keeps an input of each.
    match &r {
        Ok(Loaded::Header(h)) => {
            assert!(
                a.as_ref().map_or(true, |x| x.seq <= h.seq),
                "older copy won"
            );
            assert!(
                b.as_ref().map_or(true, |x| x.seq <= h.seq),
                "older copy won"
            );
        }
        Ok(Loaded::Blank) => assert!(a.is_err() && b.is_err(), "blank over a valid copy"),
        Err(e) => assert_eq!(*e, Torn),
    }
    assert_eq!(r, want, "pick");
}

/// `Layout::new` at any geometry: `None` exactly for a zero track size or a
/// device past `u64`, else the documented placement.
fn check_split_layout(d: u64, ts: u32) {
    let Some(l) = Layout::new(d, ts) else {
        if ts != 0 {
            let start = u128::from(d.div_ceil(split::BLOCK as u64)) * split::BLOCK as u128;
            let tracks = d.div_ceil(u64::from(ts));
            let map = tracks.div_ceil(8).div_ceil(split::BLOCK as u64).max(1) * split::BLOCK as u64;
            let dev = start + 2 * split::BLOCK as u128 + 3 * u128::from(map);
            assert!(dev > u128::from(u64::MAX), "Layout::new({d}, {ts}) refused");
        }
        return;
    };
    let block = split::BLOCK as u64;
    assert_eq!(l.tracks, d.div_ceil(u64::from(ts)));
    // One bit per track, padded to whole blocks, at least one.
    assert_eq!(
        l.map_bytes,
        l.tracks.div_ceil(8).div_ceil(block).max(1) * block
    );
    assert!(l.start % block == 0 && l.start >= d && l.start - d < block);
    assert_eq!(l.header_offset(0), l.start);
    assert_eq!(l.header_offset(1), l.start + block);
    assert_eq!(l.maps_offset(), l.start + 2 * block);
    assert_eq!(l.maps_len(), 3 * l.map_bytes);
    assert_eq!(l.device_bytes(), Some(l.maps_offset() + l.maps_len()));
    let per = usize::try_from(l.map_bytes / block).unwrap_or(usize::MAX);
    for (i, m) in [Map::Create, Map::Split, Map::Update]
        .into_iter()
        .enumerate()
    {
        let blocks = l.blocks(m);
        assert_eq!((blocks.start, blocks.len()), (i * per, per));
        if l.tracks > 0 {
            assert!(blocks.contains(&l.block_of(m, 0)));
            assert!(blocks.contains(&l.block_of(m, l.tracks - 1)));
        }
    }
}

/// The mode's promises, at `tracks` tracks.
fn check_mode(m: &Mode, tracks: u64) {
    use SplitState::{Formed, Forming, Split, Splitting};
    assert_eq!(m.can_split(), matches!(m.state, Forming | Formed));
    assert_eq!(m.can_rejoin(), m.state == Split && m.refresh.is_none());
    let work = m.copy_work(tracks);
    match (m.state, &m.refresh) {
        (Forming | Splitting, _) => assert_eq!(work, Some((Map::Create, 0..tracks))),
        (Split, Some(r)) => assert_eq!(work, Some((Map::Split, r.clone()))),
        _ => assert_eq!(work, None),
    }
    let s = m.settled();
    assert_eq!(s.refresh, None);
    let want = match m.state {
        Forming => Formed,
        Splitting => Split,
        st => st,
    };
    assert_eq!(s.state, want);
    assert_eq!(s.copy_work(tracks), None, "work after settling");
    assert_eq!(s.settled(), s);
    let word = m.as_str();
    if m.refresh.is_some() {
        assert_eq!(word, "refreshing");
    } else {
        assert_eq!(word, m.state.as_str());
    }
    for t in [0, 1, tracks.saturating_sub(1), tracks] {
        assert_eq!(
            m.refreshing(t),
            m.refresh.as_ref().is_some_and(|r| r.contains(&t))
        );
    }
}

/// The model of bit `t` of `m`: read straight from the buffer.
fn split_bit(l: &Layout, maps: &[u8], m: Map, t: u64) -> bool {
    let i = (m as u64 * l.map_bytes + t / 8) as usize;
    maps[i] >> (t % 8) & 1 != 0
}

fn split_count(l: &Layout, maps: &[u8], m: Map, r: Range<u64>) -> u64 {
    let end = r.end.min(l.tracks);
    (r.start..end).filter(|&t| split_bit(l, maps, m, t)).count() as u64
}

/// No bit past the last track is set, in any of the three bitmaps.
fn no_stray_bits(l: &Layout, maps: &[u8]) {
    let used = l.tracks.div_ceil(8) as usize;
    for m in 0..3 {
        let base = m * l.map_bytes as usize;
        if l.tracks % 8 != 0 {
            assert_eq!(
                maps[base + used - 1] >> (l.tracks % 8),
                0,
                "bit past the end"
            );
        }
        let pad = &maps[base + used..base + l.map_bytes as usize];
        assert!(pad == &[0u8; split::BLOCK][..pad.len()], "bit past the end");
    }
}

const SPLIT_MAPS_ALL: [Map; 3] = [Map::Create, Map::Split, Map::Update];

/// The bitmaps of a small layout, through the operations the parameters list.
fn split_bitmaps(p: &[u8; SPLIT_PARAMS]) {
    let tracks = u64::from(p[48]);
    let ts = u32_at(p, 49).max(512);
    let slack = if tracks > 0 {
        u64::from(u32_at(p, 53)) % u64::from(ts)
    } else {
        0
    };
    let l = Layout::new(tracks * u64::from(ts) - slack, ts).expect("small layout");
    assert_eq!(l.tracks, tracks);
    let mut maps = vec![0u8; l.maps_len() as usize];
    // The three bitmaps, bits past the last track cleared: `put` never sets them,
    // and `count_all` counts on that.
    let used = tracks.div_ceil(8) as usize;
    for (i, m) in SPLIT_MAPS_ALL.into_iter().enumerate() {
        let base = (m as u64 * l.map_bytes) as usize;
        let from = SPLIT_MAPS + i * SPLIT_MAP_BYTES;
        maps[base..base + used].copy_from_slice(&p[from..from + used]);
        if tracks % 8 != 0 {
            maps[base + used - 1] &= (1u8 << (tracks % 8)) - 1;
        }
    }
    let mut mode = Mode {
        state: split_state(p[57]),
        refresh: (p[58] != 0 || p[59] != 0).then_some(u64::from(p[58])..u64::from(p[59])),
    };
    check_mode(&mode, tracks);
    for op in p[SPLIT_OPS..].chunks_exact(3) {
        let (code, a, b) = (op[0], u64::from(op[1]), u64::from(op[2]));
        let m = SPLIT_MAPS_ALL[usize::from(code >> 4) % 3];
        match code & 15 {
            0 => {
                let v = code & 0x80 != 0;
                let old = a < tracks && split_bit(&l, &maps, m, a);
                let n = l.count_all(&maps, m);
                let changed = l.put(&mut maps, m, a, v);
                assert_eq!(changed, a < tracks && old != v, "put's result");
                if a < tracks {
                    assert_eq!(split_bit(&l, &maps, m, a), v, "put");
                    assert_eq!(l.get(&maps, m, a), v, "get after put");
                }
                let n2 = l.count_all(&maps, m);
                match (changed, v) {
                    (false, _) => assert_eq!(n2, n),
                    (true, true) => assert_eq!(n2, n + 1),
                    (true, false) => assert_eq!(n2 + 1, n),
                }
            }
            1 => {
                for t in 0..=255 {
                    let want = t < tracks && split_bit(&l, &maps, m, t);
                    assert_eq!(l.get(&maps, m, t), want, "get {m:?} {t}");
                }
                assert!(!l.get(&maps, m, u64::MAX));
            }
            2 => {
                let want = (a..b.min(tracks)).find(|&t| split_bit(&l, &maps, m, t));
                assert_eq!(l.next_set(&maps, m, a..b), want, "next_set {m:?} {a}..{b}");
                let all = (0..tracks).find(|&t| split_bit(&l, &maps, m, t));
                assert_eq!(l.next_set(&maps, m, 0..u64::MAX), all);
            }
            3 => {
                assert_eq!(l.count(&maps, m, a..b), split_count(&l, &maps, m, a..b));
                assert_eq!(
                    l.count_all(&maps, m),
                    split_count(&l, &maps, m, 0..tracks),
                    "count_all {m:?}"
                );
            }
            4 => {
                let before = maps.clone();
                l.fill_create(&mut maps);
                assert_eq!(l.count_all(&maps, Map::Create), tracks);
                let mb = l.map_bytes as usize;
                assert_eq!(
                    maps[mb..],
                    before[mb..],
                    "fill_create touched SPLIT or UPDATE"
                );
            }
            5 => {
                let before = maps.clone();
                l.rejoin(&mut maps);
                assert_eq!(l.count_all(&maps, Map::Split), 0, "SPLIT after rejoin");
                assert_eq!(l.count_all(&maps, Map::Update), 0, "UPDATE after rejoin");
                for t in 0..tracks {
                    let was = SPLIT_MAPS_ALL.map(|m| split_bit(&l, &before, m, t));
                    assert_eq!(
                        split_bit(&l, &maps, Map::Create, t),
                        was[0] || was[1] || was[2],
                        "CREATE after rejoin, track {t}"
                    );
                }
            }
            6 => {
                let before = maps.clone();
                l.fold_update(&mut maps);
                assert_eq!(l.count_all(&maps, Map::Update), 0, "UPDATE after fold");
                for t in 0..tracks {
                    let was = SPLIT_MAPS_ALL.map(|m| split_bit(&l, &before, m, t));
                    assert_eq!(split_bit(&l, &maps, Map::Create, t), was[0]);
                    assert_eq!(
                        split_bit(&l, &maps, Map::Split, t),
                        was[1] || was[2],
                        "SPLIT after fold, track {t}"
                    );
                }
            }
            7 => split_write(&l, &mut maps, &mode, a),
            8 => {
                mode = Mode {
                    state: split_state(code >> 4),
                    refresh: (a != 0 || b != 0).then_some(a..b),
                };
                check_mode(&mode, tracks);
            }
            9 => {
                // A few sectors around the start of track `a`, at most `b` tracks long.
                let spt = u64::from(ts) / 512;
                let start = (a * spt).saturating_sub(u64::from(code >> 4));
                let nr = b * spt.div_ceil(8);
                check_tracks_of(&l, start, nr, ts);
                check_tracks_of(&l, start, 0, ts);
                check_tracks_of(&l, u64::MAX - nr, nr, ts);
                check_tracks_of(&l, start, u64::MAX, ts);
            }
            _ => {
                // The copier's pick: the first set bit from the cursor `a`, wrapping
                // (over a range a refresh may have: decode and the message refuse
                // an empty one).
                if let Some((wm, r)) = mode.copy_work(tracks).filter(|(_, r)| r.start < r.end) {
                    let from = a.clamp(r.start, r.end);
                    let first = l
                        .next_set(&maps, wm, from..r.end)
                        .or_else(|| l.next_set(&maps, wm, r.start..from));
                    let any = split_count(&l, &maps, wm, r.clone()) > 0;
                    assert_eq!(first.is_some(), any, "copier missed a bit");
                    if let Some(t) = first {
                        assert!(r.contains(&t) && split_bit(&l, &maps, wm, t));
                    }
                }
            }
        }
        no_stray_bits(&l, &maps);
    }
}

/// A write to track `t`: `write_work` follows its rules; once its work is done
/// (old track copied and that bit cleared, its bit set) `admits` lets it down.
fn split_write(l: &Layout, maps: &mut [u8], mode: &Mode, t: u64) {
    use SplitState::{Formed, Forming, Split, Splitting};
    let w = split::write_work(mode, l, maps, t);
    let bit = |m| t < l.tracks && split_bit(l, maps, m, t);
    let (cow, mark) = match mode.state {
        Forming | Formed => (None, Map::Create),
        Splitting => (bit(Map::Create).then_some(Map::Create), Map::Split),
        Split if mode.refreshing(t) => (bit(Map::Split).then_some(Map::Split), Map::Update),
        Split => (None, Map::Split),
    };
    assert_eq!(
        (w.cow_from, w.mark),
        (cow, mark),
        "write_work {mode:?} track {t}"
    );
    let admitted = split::admits(mode, l, maps, t);
    assert_eq!(admitted, cow.is_none() && bit(mark), "admits");
    if let Some(c) = w.cow_from {
        assert!(l.put(maps, c, t, false));
    }
    l.put(maps, w.mark, t, true);
    assert_eq!(
        split::admits(mode, l, maps, t),
        t < l.tracks,
        "a prepared write waits"
    );
}

/// `tracks_of`: within the image, and (for some sectors) exactly the tracks they touch.
fn check_tracks_of(l: &Layout, start: u64, nr: u64, ts: u32) {
    let r = l.tracks_of(start, nr, ts);
    assert!(r.start <= r.end && r.end <= l.tracks, "tracks_of {r:?}");
    let (s, e) = (
        u128::from(start) * 512,
        (u128::from(start) + u128::from(nr)) * 512,
    );
    if nr == 0 || e > u128::from(u64::MAX) {
        // Zero sectors may still name the track they start in; past `u64` the
        // byte offsets saturate.
        assert!(
            nr != 0 || r.end - r.start <= 1,
            "tracks_of({start}, 0) = {r:?}"
        );
        return;
    }
    let ts = u128::from(ts);
    let clamp = |v: u128| u64::try_from(v).unwrap_or(u64::MAX).min(l.tracks);
    assert_eq!(
        r,
        clamp(s / ts)..clamp(e.div_ceil(ts)),
        "tracks_of({start}, {nr})"
    );
}
