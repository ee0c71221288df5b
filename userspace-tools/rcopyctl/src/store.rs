//! `rcopyctl create-store` and `rcopyctl inspect-store`: the snapshot store
//! (exception store) of a secondary.
//!
//! The format is `rcopy_core::snapstore`, the code the kernel runs (see
//! `Documentation/rcopy-snapshots.rst`). A store is formatted for one data
//! device: its pair id, its size in bytes (the rcopy device's: the table length
//! times 512) and the track size of the table. The whole record area is zeroed
//! (the kernel takes a non-zero record block that does not decode as an error),
//! then both superblock copies are written: sequence 0 in copy 0 and 1 in copy 1,
//! so the kernel's first write (sequence 2, copy 0) leaves a valid copy behind.

use rcopy_core::format::{MetaError, Superblock, SB_BYTES};
use rcopy_core::proto::pair_id_from_name;
use rcopy_core::snapstore::{
    self, pick, record_blocks, record_offset, slots_for, StoreError, StoreSb, BLOCK, SB_MAGIC,
};

use crate::create::check_track_size;
use crate::error::Error;
use crate::json::{self, Value};
use crate::meta::{
    check_pair_id, hex, pair_label, random_id, Access, AlignedBuf, Dev, CHUNK, DEFAULT_PAIR_ID,
};
use crate::size::{human_bytes, Size};
use crate::snaplist::{self, Snap};
use crate::{out, signature};

/// What `rcopyctl create-store` was asked for.
#[derive(Debug, Clone, Copy)]
pub struct CreateRequest<'a> {
    pub store: &'a str,
    /// The data device (its size is the store's device size)...
    pub data: Option<&'a str>,
    /// ...or the size itself.
    pub size: Option<&'a Size>,
    pub track_size: Option<&'a Size>,
    pub pair_id: Option<&'a str>,
    pub force: bool,
}

/// What `create-store` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub path: String,
    /// Where the device size came from: the data device's path, or `--size X`.
    pub size_from: String,
    pub pair_name: String,
    pub sb: StoreSb,
    pub store_size: u64,
    /// What was overwritten (`--force`), if anything known.
    pub replaced: Option<String>,
    pub warnings: Vec<String>,
}

/// Describes a store superblock for messages: `an rcopy snapshot store of
/// pair r0 (for 1 GiB in 64 KiB tracks, 2 snapshots)`. The pair is named
/// when its id is that of one of `words` (the pair id words tried).
pub fn describe(sb: &StoreSb, words: &[&str]) -> String {
    let pair = match words
        .iter()
        .find(|w| pair_id_from_name(w.as_bytes()) == sb.pair_id)
    {
        Some(w) => format!("pair {w}"),
        None => format!("pair id {}…", hex(&sb.pair_id[..4])),
    };
    let n = sb.snaps.iter().filter(|s| s.epoch != 0).count();
    format!(
        "an rcopy snapshot store of {pair} (for {} in {} tracks, {n} snapshot{})",
        human_bytes(sb.device_bytes),
        human_bytes(u64::from(sb.track_size)),
        if n == 1 { "" } else { "s" }
    )
}

/// The two superblock copies as read: each decoded or refused.
#[derive(Debug, Clone)]
pub struct Copies {
    pub copies: [Result<StoreSb, StoreError>; 2],
}

impl Copies {
    /// Decodes the two 4 KiB blocks at bytes 0 and 4096.
    pub fn decode(b0: &[u8], b1: &[u8]) -> Copies {
        let one = |b: &[u8]| -> Result<StoreSb, StoreError> {
            let block: &[u8; BLOCK] = b.try_into().map_err(|_| StoreError::Empty)?;
            let mut sb = StoreSb::new(0, [0; 16], 0, 0, 0);
            sb.decode_into(block)?;
            Ok(sb)
        };
        Copies {
            copies: [one(b0), one(b1)],
        }
    }

    /// Whether either copy carries the store's magic (a store, usable or not).
    pub fn has_magic(b0: &[u8], b1: &[u8]) -> bool {
        b0.starts_with(&SB_MAGIC) || b1.starts_with(&SB_MAGIC)
    }

    /// The current copy, as the kernel picks it: `Ok(Some(i))`, `Ok(None)` when
    /// neither holds a superblock, `Err` when the store is unusable.
    pub fn current(&self) -> Result<Option<usize>, StoreError> {
        let seq = |r: &Result<StoreSb, StoreError>| r.as_ref().map(|s| s.seq).map_err(|e| *e);
        pick(seq(&self.copies[0]), seq(&self.copies[1])).map(|o| o.map(|i| i as usize))
    }
}

/// Reads `len` bytes at `off` for a signature scan (`None` on an error).
fn scan_read(dev: &Dev, off: u64, len: usize) -> Option<Vec<u8>> {
    dev.read_at(off, len).ok().map(|b| b.bytes().to_vec())
}

/// What the device holds that `create-store` should not overwrite silently.
fn existing(dev: &Dev, words: &[&str]) -> Option<String> {
    let b0 = scan_read(dev, 0, BLOCK)?;
    let b1 = scan_read(dev, BLOCK as u64, BLOCK).unwrap_or_default();
    if Copies::has_magic(&b0, &b1) {
        let c = Copies::decode(&b0, &b1);
        return Some(match c.current() {
            Ok(Some(i)) => match &c.copies[i] {
                Ok(sb) => describe(sb, words),
                Err(e) => format!(
                    "an rcopy snapshot store that cannot be read ({})",
                    e.message()
                ),
            },
            Ok(None) => "an rcopy snapshot store with no usable superblock".to_string(),
            Err(e) => format!(
                "an rcopy snapshot store that cannot be read ({})",
                e.message()
            ),
        });
    }
    if let Ok(block) = <[u8; SB_BYTES]>::try_from(&b0[..SB_BYTES.min(b0.len())]) {
        match Superblock::decode(&block) {
            Ok(sb) => {
                return Some(format!(
                    "rcopy metadata of pair {} (a metadata device)",
                    pair_label(&sb)
                ))
            }
            Err(MetaError::BadVersion | MetaError::BadChecksum | MetaError::BadField) => {
                return Some("rcopy metadata that cannot be used (a metadata device)".to_string())
            }
            Err(_) => {}
        }
    }
    let mut read = |off: u64, len: usize| scan_read(dev, off, len);
    signature::detect(dev.size, &mut read)
}

/// Checks `--size` as a device size: whole sectors, not zero.
fn check_size(s: &Size) -> Result<u64, Error> {
    if s.bytes == 0 || s.bytes % 512 != 0 {
        return Err(Error::usage(format!(
            "--size {:?}: the rcopy device's size must be a non-zero multiple of 512 bytes \
             (the table length in sectors times 512)",
            s.text
        )));
    }
    Ok(s.bytes)
}

/// Formats the store `req.store` for a data device: zeroes the superblocks and
/// the record area, then writes both superblock copies, each step flushed.
/// `new_id` gives the store id.
pub fn create_store(
    req: &CreateRequest<'_>,
    new_id: impl FnOnce() -> Result<u64, Error>,
) -> Result<Created, Error> {
    // Options first: a wrong flag is reported before any device is touched.
    let track_size = check_track_size(req.track_size)?;
    let pair_name = req.pair_id.unwrap_or(DEFAULT_PAIR_ID);
    check_pair_id(pair_name)?;
    let size_given = req.size.map(check_size).transpose()?;

    let data = req
        .data
        .map(|d| Dev::open("data device", d, Access::Size))
        .transpose()?;
    let store = Dev::open(
        "snapshot store",
        req.store,
        Access::Write { force: req.force },
    )?;
    let (device_bytes, size_from) = match (&data, size_given, req.size) {
        (Some(d), _, _) => {
            if d.same_as(&store) {
                return Err(Error::new(format!(
                    "the snapshot store and the data device must differ ({} and {} are the \
                     same device)",
                    store.path, d.path
                )));
            }
            let len = d.size / 512 * 512;
            if len == 0 {
                return Err(Error::new(format!(
                    "data device {} is smaller than one sector",
                    d.path
                )));
            }
            (len, d.path.clone())
        }
        (None, Some(n), Some(s)) => (n, format!("--size {}", s.text)),
        _ => return Err(Error::usage("give --data DEV or --size SIZE")),
    };
    let slots = slots_for(store.size, track_size);
    if slots == 0 {
        let need = snapstore::store_bytes(1, track_size);
        return Err(Error::new(format!(
            "snapshot store {} too small: {} bytes; one slot of {} tracks needs {need} bytes ({})",
            store.path,
            store.size,
            human_bytes(u64::from(track_size)),
            human_bytes(need)
        )));
    }

    let mut warnings = Vec::new();
    if store.in_use {
        warnings.push(format!(
            "snapshot store {} is in use (held exclusively by another user); writing anyway \
             (--force)",
            store.path
        ));
    }
    let words = [pair_name, DEFAULT_PAIR_ID];
    let replaced = existing(&store, &words);
    if let (Some(what), false) = (&replaced, req.force) {
        return Err(Error::new(format!(
            "{} holds {what}: refusing to overwrite it (use --force to overwrite)",
            store.path
        )));
    }

    let mut sb = StoreSb::new(
        new_id()?,
        pair_id_from_name(pair_name.as_bytes()),
        device_bytes,
        track_size,
        slots,
    );
    // 1. Zero the superblocks and every record block (the area before slot 0).
    let area = snapstore::data_offset(slots, track_size);
    let zeroes = AlignedBuf::zeroed(CHUNK);
    let mut done = 0u64;
    while done < area {
        let n = (area - done).min(CHUNK as u64) as usize;
        let buf = if n == CHUNK {
            &zeroes
        } else {
            &AlignedBuf::zeroed(n)
        };
        store.write_at(done, buf)?;
        done += n as u64;
    }
    store.sync()?;
    // 2. Both superblock copies: write n goes to copy n % 2.
    for seq in 0..2u64 {
        sb.seq = seq;
        let mut block = [0u8; BLOCK];
        sb.encode_into(&mut block);
        let mut buf = AlignedBuf::zeroed(BLOCK);
        buf.bytes_mut().copy_from_slice(&block);
        let copy = snapstore::copy_for(seq);
        store.write_at(u64::from(copy) * BLOCK as u64, &buf)?;
    }
    store.sync()?;
    // Read it back, as the kernel will.
    let b0 = store.read_at(0, BLOCK)?;
    let b1 = store.read_at(BLOCK as u64, BLOCK)?;
    let c = Copies::decode(b0.bytes(), b1.bytes());
    match c.current() {
        Ok(Some(i)) if c.copies[i].as_ref() == Ok(&sb) => {}
        _ => {
            return Err(Error::new(format!(
                "{}: the superblock read back differs from the one written",
                store.path
            )))
        }
    }
    Ok(Created {
        path: store.path.clone(),
        size_from,
        pair_name: pair_name.to_string(),
        sb,
        store_size: store.size,
        replaced: req.force.then_some(replaced).flatten(),
        warnings,
    })
}

/// Bytes of overwritten data the store keeps: one track per slot.
fn capacity(sb: &StoreSb) -> u64 {
    u64::from(sb.slot_count) * u64::from(sb.track_size)
}

/// What `create-store` prints.
pub fn created_text(c: &Created) -> String {
    let sb = &c.sb;
    let heading = match &c.replaced {
        Some(old) => format!("{}: wrote a snapshot store (replacing {old})", c.path),
        None => format!("{}: wrote a snapshot store", c.path),
    };
    let tracks = sb.device_bytes.div_ceil(u64::from(sb.track_size));
    crate::meta::rows(
        &heading,
        &[
            (
                "pair id",
                format!("{} (--pair-id {})", hex(&sb.pair_id), c.pair_name),
            ),
            ("store id", format!("{:016x}", sb.store_id)),
            (
                "device size",
                format!(
                    "{} ({} bytes, from {})",
                    human_bytes(sb.device_bytes),
                    sb.device_bytes,
                    c.size_from
                ),
            ),
            (
                "track size",
                format!(
                    "{} ({tracks} tracks)",
                    human_bytes(u64::from(sb.track_size))
                ),
            ),
            ("slots", sb.slot_count.to_string()),
            (
                "capacity",
                format!(
                    "{} of overwritten tracks ({:.1}% of the device)",
                    human_bytes(capacity(sb)),
                    capacity(sb) as f64 * 100.0 / sb.device_bytes.max(1) as f64
                ),
            ),
            (
                "store",
                format!(
                    "{} used of {}",
                    human_bytes(snapstore::store_bytes(sb.slot_count, sb.track_size)),
                    human_bytes(c.store_size)
                ),
            ),
        ],
    )
}

/// Runs `rcopyctl create-store`.
pub fn run_create(req: &CreateRequest<'_>) -> Result<(), Error> {
    let c = create_store(req, random_id)?;
    for w in &c.warnings {
        eprintln!("rcopyctl: warning: {w}");
    }
    out(created_text(&c).trim_end());
    Ok(())
}

/// What `inspect-store` found.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub path: String,
    pub store_size: u64,
    /// Each copy's sequence number, or why it was refused.
    pub copies: [Result<u64, StoreError>; 2],
    /// The current copy.
    pub current: usize,
    pub sb: StoreSb,
    /// Records held in the current copies of the record blocks.
    pub records: u64,
    /// Record blocks that cannot be used (both copies refused, or malformed).
    pub bad_blocks: u64,
}

/// Reads the superblocks and the record blocks of the store at `path`.
pub fn inspect_store(path: &str) -> Result<Inspection, Error> {
    let dev = Dev::open("snapshot store", path, Access::Read)?;
    if dev.size < 2 * BLOCK as u64 {
        return Err(Error::new(format!(
            "{path} is too small to hold a snapshot store ({} bytes)",
            dev.size
        )));
    }
    let b0 = dev.read_at(0, BLOCK)?;
    let b1 = dev.read_at(BLOCK as u64, BLOCK)?;
    let c = Copies::decode(b0.bytes(), b1.bytes());
    let current = match c.current() {
        Ok(Some(i)) => i,
        Ok(None) if !Copies::has_magic(b0.bytes(), b1.bytes()) => {
            return Err(Error::new(format!("{path} holds no snapshot store")))
        }
        Ok(None) => {
            return Err(Error::new(format!(
                "{path}: no usable superblock copy in the snapshot store"
            )))
        }
        Err(e) => return Err(Error::new(format!("{path}: {}", e.message()))),
    };
    let sb = c.copies[current]
        .clone()
        .map_err(|e| Error::new(format!("{path}: {}", e.message())))?;
    let need = snapstore::store_bytes(sb.slot_count, sb.track_size);
    if dev.size < need {
        return Err(Error::new(format!(
            "{path}: the store is smaller than its superblock says: {} bytes, needs {need}",
            dev.size
        )));
    }
    let tracks = sb.device_bytes.div_ceil(u64::from(sb.track_size));
    let (mut records, mut bad_blocks) = (0u64, 0u64);
    for b in 0..record_blocks(sb.slot_count) {
        let r0 = dev.read_at(record_offset(b, 0), BLOCK)?;
        let r1 = dev.read_at(record_offset(b, 1), BLOCK)?;
        let dec = |buf: &AlignedBuf| -> Result<snapstore::RecHeader, StoreError> {
            let block: &[u8; BLOCK] = buf.bytes().try_into().map_err(|_| StoreError::Empty)?;
            snapstore::decode_records(block, &sb, b, tracks)
        };
        let (h0, h1) = (dec(&r0), dec(&r1));
        let seq = |h: &Result<snapstore::RecHeader, StoreError>| h.map(|h| h.seq);
        match pick(seq(&h0), seq(&h1)) {
            Ok(Some(0)) => records += u64::from(h0.map_or(0, |h| h.count)),
            Ok(Some(_)) => records += u64::from(h1.map_or(0, |h| h.count)),
            Ok(None) => {}
            Err(_) => bad_blocks += 1,
        }
    }
    let seqs = |r: &Result<StoreSb, StoreError>| r.as_ref().map(|s| s.seq).map_err(|e| *e);
    Ok(Inspection {
        path: path.to_string(),
        store_size: dev.size,
        copies: [seqs(&c.copies[0]), seqs(&c.copies[1])],
        current,
        sb,
        records,
        bad_blocks,
    })
}

fn copy_text(r: &Result<u64, StoreError>, current: bool) -> String {
    match r {
        Ok(seq) if current => format!("seq {seq} (current)"),
        Ok(seq) => format!("seq {seq}"),
        Err(StoreError::Empty) => "empty".to_string(),
        Err(e) => format!("refused: {}", e.message()),
    }
}

/// The snapshots of a store's table, by epoch.
pub fn snapshots(sb: &StoreSb) -> Vec<Snap> {
    let mut v: Vec<Snap> = sb
        .snaps
        .iter()
        .filter(|s| s.epoch != 0)
        .map(Snap::from_info)
        .collect();
    v.sort_by_key(|s| s.epoch);
    v
}

/// `inspect-store`'s text.
pub fn inspection_text(i: &Inspection, now: std::time::SystemTime) -> String {
    let sb = &i.sb;
    let mut pair = hex(&sb.pair_id);
    if sb.pair_id == pair_id_from_name(DEFAULT_PAIR_ID.as_bytes()) {
        pair.push_str(" (pair_id default)");
    }
    let tracks = sb.device_bytes.div_ceil(u64::from(sb.track_size));
    let mut r: Vec<(&str, String)> = vec![
        ("version", snapstore::STORE_VERSION.to_string()),
        ("pair id", pair),
        ("store id", format!("{:016x}", sb.store_id)),
        (
            "device size",
            format!(
                "{} ({} bytes)",
                human_bytes(sb.device_bytes),
                sb.device_bytes
            ),
        ),
        (
            "track size",
            format!(
                "{} ({tracks} tracks)",
                human_bytes(u64::from(sb.track_size))
            ),
        ),
        (
            "slots",
            format!(
                "{} ({} of overwritten tracks), {} records",
                sb.slot_count,
                human_bytes(capacity(sb)),
                i.records
            ),
        ),
        ("superblock 0", copy_text(&i.copies[0], i.current == 0)),
        ("superblock 1", copy_text(&i.copies[1], i.current == 1)),
        ("newest epoch", sb.newest_epoch.to_string()),
    ];
    if i.bad_blocks != 0 {
        r.push((
            "bad blocks",
            format!("{} record blocks cannot be read", i.bad_blocks),
        ));
    }
    r.push((
        "store",
        format!(
            "{} used of {}",
            human_bytes(snapstore::store_bytes(sb.slot_count, sb.track_size)),
            human_bytes(i.store_size)
        ),
    ));
    let snaps = snapshots(sb);
    r.push(("snapshots", snaps.len().to_string()));
    let mut s = crate::meta::rows(&format!("{}: rcopy snapshot store", i.path), &r);
    if !snaps.is_empty() {
        for line in snaplist::table(&snaps, now).lines() {
            s.push_str(&format!("    {line}\n"));
        }
    }
    s
}

/// `inspect-store --json`: one object; `snapshots` is the array `snapshots
/// --json` prints.
pub fn inspection_json(i: &Inspection) -> String {
    let sb = &i.sb;
    let copy = |r: &Result<u64, StoreError>| match r {
        Ok(seq) => Value::Num(*seq),
        Err(_) => Value::Null,
    };
    let snaps: Vec<String> = snapshots(sb).iter().map(snaplist::json_object).collect();
    let head = json::object(&[
        ("path", Value::Str(i.path.clone())),
        ("version", Value::Num(u64::from(snapstore::STORE_VERSION))),
        ("pair_id", Value::Str(hex(&sb.pair_id))),
        ("store_id", Value::Str(format!("{:016x}", sb.store_id))),
        ("device_size", Value::Num(sb.device_bytes)),
        ("track_size", Value::Num(u64::from(sb.track_size))),
        ("slots", Value::Num(u64::from(sb.slot_count))),
        ("capacity", Value::Num(capacity(sb))),
        ("records", Value::Num(i.records)),
        ("bad_record_blocks", Value::Num(i.bad_blocks)),
        (
            "sb_seq",
            Value::List(vec![copy(&i.copies[0]), copy(&i.copies[1])]),
        ),
        ("sb_current", Value::Num(i.current as u64)),
        ("seq", Value::Num(sb.seq)),
        ("newest_epoch", Value::Num(u64::from(sb.newest_epoch))),
        ("store_size", Value::Num(i.store_size)),
    ]);
    // `json::object` has no nested objects: splice the array in.
    format!(
        "{}, \"snapshots\": [{}]}}",
        head.trim_end_matches('}'),
        snaps.join(", ")
    )
}

/// Runs `rcopyctl inspect-store`.
pub fn run_inspect(path: &str, as_json: bool) -> Result<(), Error> {
    let i = inspect_store(path)?;
    if as_json {
        out(&inspection_json(&i));
    } else {
        out(inspection_text(&i, std::time::SystemTime::now()).trim_end());
    }
    Ok(())
}

/// Checks that the store at `path` is one for this device (`rcopyctl create
/// --snap-store`, `up`), with the kernel's own check, so a mistake is named
/// before the kernel refuses the table.
pub fn check_for(
    path: &str,
    device_bytes: u64,
    track_size: u32,
    pair_word: &str,
) -> Result<(), Error> {
    let i = inspect_store(path).map_err(|e| {
        Error::new(format!(
            "snapshot store {path}: {e} (format it with rcopyctl create-store)"
        ))
    })?;
    i.sb.check(
        device_bytes,
        track_size,
        &pair_id_from_name(pair_word.as_bytes()),
    )
    .map_err(|e| {
        Error::new(format!(
            "snapshot store {path}: {}: it is {} (format it again with rcopyctl \
                 create-store {path} --data DEV --pair-id {pair_word}{})",
            e.message(),
            describe(&i.sb, &[pair_word, DEFAULT_PAIR_ID]),
            if track_size == rcopy_core::table::DEFAULT_TRACK_SIZE {
                String::new()
            } else {
                format!(" --track-size {track_size}")
            }
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testfile::TempFile;

    fn req<'a>(store: &'a TempFile, data: &'a TempFile) -> CreateRequest<'a> {
        CreateRequest {
            store: store.path(),
            data: Some(data.path()),
            size: None,
            track_size: None,
            pair_id: Some("r0"),
            force: false,
        }
    }

    fn decode(b: Vec<u8>) -> Result<StoreSb, StoreError> {
        let mut sb = StoreSb::new(0, [0; 16], 0, 0, 0);
        sb.decode_into(b.as_slice().try_into().unwrap())?;
        Ok(sb)
    }

    #[test]
    fn create_then_inspect() {
        let data = TempFile::new("data", (1 << 30) + 100);
        let store = TempFile::new("store", 64 << 20);
        // Junk in the record area: create-store zeroes it.
        let slots = slots_for(64 << 20, 65536);
        let area = snapstore::data_offset(slots, 65536);
        store.write_at(
            2 * BLOCK as u64,
            &vec![0x5a; (area - 2 * BLOCK as u64) as usize],
        );
        let c = create_store(&req(&store, &data), || Ok(0x77)).unwrap();
        assert_eq!(c.replaced, None);
        assert_eq!(c.sb.slot_count, slots);
        assert_eq!(c.sb.device_bytes, 1 << 30);
        assert_eq!(c.sb.track_size, 65536);
        assert_eq!(c.sb.pair_id, pair_id_from_name(b"r0"));
        assert_eq!(c.sb.store_id, 0x77);
        // Both copies decode with the kernel's decoder; copy 1 is current.
        let s0 = decode(store.read_at(0, BLOCK)).unwrap();
        let s1 = decode(store.read_at(BLOCK as u64, BLOCK)).unwrap();
        assert_eq!((s0.seq, s1.seq), (0, 1));
        assert_eq!(s1, c.sb);
        assert_eq!(
            s0,
            StoreSb {
                seq: 0,
                ..c.sb.clone()
            }
        );
        assert_eq!(pick(Ok(s0.seq), Ok(s1.seq)), Ok(Some(1)));
        s1.check(1 << 30, 65536, &pair_id_from_name(b"r0")).unwrap();
        // The record area is zero.
        assert!(store
            .read_at(2 * BLOCK as u64, (area - 2 * BLOCK as u64) as usize)
            .iter()
            .all(|&b| b == 0));
        let t = created_text(&c);
        assert!(t.contains("  slots:         "), "{t}");
        assert!(t.contains("--pair-id r0"), "{t}");
        assert!(t.contains("(1073741824 bytes, from "), "{t}");

        let i = inspect_store(store.path()).unwrap();
        assert_eq!(i.current, 1);
        assert_eq!(i.copies, [Ok(0), Ok(1)]);
        assert_eq!((i.records, i.bad_blocks), (0, 0));
        let t = inspection_text(&i, std::time::SystemTime::now());
        assert!(t.contains("  superblock 1:  seq 1 (current)\n"), "{t}");
        assert!(t.contains("  snapshots:     0\n"), "{t}");
        let j: serde_json::Value = serde_json::from_str(&inspection_json(&i)).unwrap();
        assert_eq!(j["slots"], u64::from(slots));
        assert_eq!(j["sb_current"], 1);
        assert_eq!(j["snapshots"], serde_json::json!([]));

        // A store is recognised, its pair named: refused without --force.
        let e = create_store(&req(&store, &data), || Ok(1)).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(
            e.to_string().contains(
                "holds an rcopy snapshot store of pair r0 (for 1 GiB in 64 KiB tracks, 0 \
                 snapshots): refusing"
            ),
            "{e}"
        );
        let mut other = req(&store, &data);
        other.pair_id = Some("r9");
        let e = create_store(&other, || Ok(1)).unwrap_err().to_string();
        assert!(e.contains("of pair id "), "{e}");
        other.force = true;
        let c = create_store(&other, || Ok(2)).unwrap();
        assert!(c.replaced.unwrap().contains("snapshot store"));
    }

    #[test]
    fn snapshots_in_the_table() {
        let data = TempFile::new("data", 1 << 30);
        let store = TempFile::new("store", 8 << 20);
        let c = create_store(&req(&store, &data), || Ok(5)).unwrap();
        // The kernel adds a snapshot: sequence 2, copy 0.
        let mut sb = c.sb.clone();
        let mut info = snapstore::SnapInfo::NONE;
        info.name = snapstore::pad_name(b"pre-resync").unwrap();
        info.flags = snapstore::SNAP_BEFORE_RESYNC;
        info.created_ns = 1_764_520_000_000_000_000;
        sb.add(info).unwrap();
        // A verified snapshot: the primary's sum is recorded with it.
        let mut info = snapstore::SnapInfo::NONE;
        info.flags = snapstore::SNAP_CHECKSUM;
        info.checksum = [0xab; snapstore::CHECKSUM_LEN];
        sb.add(info).unwrap();
        sb.seq = 2;
        let mut b = [0u8; BLOCK];
        sb.encode_into(&mut b);
        store.write_at(0, &b);
        let i = inspect_store(store.path()).unwrap();
        assert_eq!(i.current, 0);
        let t = inspection_text(&i, std::time::SystemTime::now());
        assert!(t.contains("  snapshots:     2\n"), "{t}");
        assert!(t.contains("abababababababab  -"), "{t}");
        assert!(t.contains("pre-resync"), "{t}");
        assert!(t.contains("before-resync"), "{t}");
        let j: serde_json::Value = serde_json::from_str(&inspection_json(&i)).unwrap();
        assert_eq!(j["snapshots"][0]["name"], "pre-resync");
        assert_eq!(j["snapshots"][0]["id"], 1);
        assert_eq!(j["snapshots"][0]["sum"], serde_json::Value::Null);
        assert_eq!(j["snapshots"][1]["sum"], "ab".repeat(32));
        // Torn write of copy 0: copy 1 is used.
        store.write_at(100, &[0xff; 8]);
        let i = inspect_store(store.path()).unwrap();
        assert_eq!(i.current, 1);
        assert!(matches!(i.copies[0], Err(StoreError::BadChecksum)));
        // check_for: the kernel's checks, named.
        check_for(store.path(), 1 << 30, 65536, "r0").unwrap();
        let e = check_for(store.path(), 1 << 30, 65536, "r1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("belongs to another pair"), "{e}");
        let e = check_for(store.path(), 2 << 30, 65536, "r0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("another size"), "{e}");
    }

    #[test]
    fn refusals() {
        let data = TempFile::new("data", 1 << 30);
        // Too small for one slot.
        let tiny = TempFile::new("tiny", 64 << 10);
        let e = create_store(&req(&tiny, &data), || Ok(1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("too small"), "{e}");
        // A known signature.
        let store = TempFile::new("store", 8 << 20);
        store.write_at(1024 + 56, &0xef53u16.to_le_bytes());
        let e = create_store(&req(&store, &data), || Ok(1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds an ext2 filesystem: refusing"), "{e}");
        // rcopy metadata.
        let meta = TempFile::new("meta", 8 << 20);
        let sb = Superblock::for_pair(b"r0", 1, 2, 1 << 30, 65536);
        meta.write_at(0, &sb.encode());
        let e = create_store(&req(&meta, &data), || Ok(1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds rcopy metadata of pair r0"), "{e}");
        // The same file twice.
        let e = create_store(&req(&data, &data), || Ok(1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("must differ"), "{e}");
        // Bad flags: usage errors quoting the value, before any device.
        let mut r = req(&store, &data);
        let bad = Size {
            bytes: 1000,
            text: "1000".into(),
        };
        r.data = None;
        r.size = Some(&bad);
        let e = create_store(&r, || Ok(1)).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().starts_with("--size \"1000\": "), "{e}");
        // --size instead of --data.
        let good = Size {
            bytes: 1 << 30,
            text: "1G".into(),
        };
        r.size = Some(&good);
        r.force = true;
        let c = create_store(&r, || Ok(1)).unwrap();
        assert_eq!(c.sb.device_bytes, 1 << 30);
        assert_eq!(c.size_from, "--size 1G");
        assert!(c.replaced.unwrap().contains("ext2"));
        // Not a store.
        let e = inspect_store(data.path()).unwrap_err().to_string();
        assert!(e.contains("holds no snapshot store"), "{e}");
    }
}
