//! Fuzz harnesses for rcopy's pure core: what a peer, a metadata device or a
//! snapshot store can feed the kernel module.
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
use rcopy_core::proto::{
    self, Header, Hello, Kind, Mark, MarkResult, ProtoError, RejectReason, ACK_MARK, HEADER_LEN,
    HELLO_LEN, MARK_LEN, MARK_NAME_LEN, MARK_POINT, MARK_SNAPSHOT, MAX_ERRNO, MAX_PAYLOAD,
    WRITE_MARK, WRITE_PREFLUSH,
};
use rcopy_core::snapmap::{Entry, SnapMap, MAX_SNAPSHOTS};
use rcopy_core::snapstore::{
    self, decode_records, encode_records, record_in, StoreSb, BLOCK, RECORDS_PER_BLOCK,
};
use rcopy_core::state::Pair;

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
