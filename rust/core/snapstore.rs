// SPDX-License-Identifier: GPL-2.0

//! The exception store's on-disk format: where the secondary keeps the old
//! tracks its snapshots need (see [`super::snapmap`] for the map, and
//! `Documentation/rcopy-snapshots.rst`).
//!
//! Layout of the store device, all integers little endian, blocks of 4 KiB:
//!
//! - blocks 0 and 1: two copies of the [`StoreSb`] superblock (geometry and the
//!   snapshot table). Write `n` goes to copy `n % 2`; the valid copy with the
//!   higher `seq` is current, so a torn write leaves the previous one.
//! - from byte 8192: the *record blocks*. Record block `b` holds the records of
//!   slots `b * 252 .. (b + 1) * 252`, 16 bytes each (track, slot, epoch; all zero
//!   for a slot with no record), behind a 64-byte header (magic, store id, block
//!   number, sequence number, CRC-32C). Each record block also has two copies
//!   (block `b`, copy `c` at `8192 + (2 b + c) * 4096`), written alternately by
//!   sequence number like the superblock. A copy from another store (an older
//!   format of the device: another store id) or written at another place (block
//!   number) is *stale*; a torn one fails its CRC; either way the other copy is
//!   used. The kernel never has two writes in flight to one record block.
//! - from [`data_offset`] (aligned to the track size): slot `s`, one track, at
//!   `data_offset + s * track_size`.
//!
//! Records are indexed by slot rather than appended to a ring: a slot holds one
//! record at a time, so the area is bounded by the store's size and never needs
//! compaction, and the slots of copies made together share a block (the map hands
//! out free slots lowest first), so one record write often covers several copies.
//! A deletion writes no record block: it removes the snapshot from the superblock,
//! and a record no live snapshot needs is dropped at the next load (and its slot
//! reused meanwhile) whatever its block still says.
//!
//! # What a crash leaves, at each write of the copy-on-write sequence
//!
//! A write to track `t` while snapshot `e` is the newest live one:
//!
//! 1. *Read the old track* from the data device. Nothing written yet.
//! 2. *Write it to a free slot `s`* of the store. A crash here leaves slot `s`
//!    with no record (or a stale record of deleted snapshots, dropped at load):
//!    the data is ignored. The overwrite was not submitted, so the data device
//!    still holds the old track; the primary still holds the write unconfirmed
//!    and resends it (as a resync of the track), which copies again.
//! 3. *Write record block `s / 252`*, with PREFLUSH (so step 2 is on stable media
//!    first) and FUA, into the copy after the current one. Torn: its CRC fails and
//!    the previous copy is used, which lacks `(t, s, e)`; as step 2. Complete: the
//!    record is durable and names durable data.
//! 4. *Submit the overwrite.* A crash before, during or after it: the record is
//!    durable, so every snapshot that needs the old track reads slot `s`; the data
//!    device's track may be old, new or torn, and the primary resyncs it. After
//!    the restart the track needs no copy (the record is there), so the resent
//!    write goes straight to the data device and never copies the torn track.
//!
//! Opening snapshot `e` (its marker reached in the stream): *flush the data
//! device* (the image the snapshot names must be on stable media: a later copy
//! reads it back as the old track), then *write the superblock* with the new
//! entry (FUA), then confirm to the primary; nothing after the marker is applied
//! before that. A crash before the superblock write is complete leaves no
//! snapshot (a torn copy falls back to the previous one) and nothing applied past
//! the marker; after it, the snapshot exists even if the confirmation was lost.
//!
//! Deleting or invalidating a snapshot: *write the superblock* without it (FUA),
//! then free its slots in memory. A crash before: the snapshot is still there.
//! After: its records are dropped at load. A freed slot is rewritten only after
//! the superblock no longer names any snapshot that needs it, so a stale record
//! can point at new data only when nothing reads it.

use super::crc32c::Crc32c;
use super::le::{get, put, u32_at, u64_at};
use super::snapmap::{Epoch, Record, SlotNo, MAX_SLOTS, MAX_SNAPSHOTS};
use super::table::{MAX_TRACK_SIZE, MIN_TRACK_SIZE};

/// Block size of the superblock and record blocks.
pub const BLOCK: usize = 4096;
/// Magic of a superblock copy.
pub const SB_MAGIC: [u8; 8] = *b"RCPYSNAP";
/// Magic of a record block copy.
pub const REC_MAGIC: [u8; 8] = *b"RCPYSNRB";
/// Format version (superblock and record blocks).
pub const STORE_VERSION: u32 = 1;
/// Byte offset of the first record block.
pub const RECORDS_OFFSET: u64 = 2 * BLOCK as u64;
/// Bytes of a record block's header.
pub const REC_HEADER: usize = 64;
/// Bytes of one record.
pub const REC_BYTES: usize = 16;
/// Records in one record block.
pub const RECORDS_PER_BLOCK: u32 = ((BLOCK - REC_HEADER) / REC_BYTES) as u32;
/// Bytes of a snapshot name (NUL-padded).
pub const NAME_LEN: usize = 32;
/// Bytes of the primary's checksum of a snapshot.
pub const CHECKSUM_LEN: usize = 32;

/// Snapshot flag: `checksum` holds the primary's checksum of the snapshot.
pub const SNAP_CHECKSUM: u8 = 1 << 0;
/// Snapshot flag: taken automatically before a resync.
pub const SNAP_BEFORE_RESYNC: u8 = 1 << 1;
/// Snapshot flag: a consistency point (the secondary's last complete epoch in
/// consistency-point mode; the previous one is deleted when a newer one opens,
/// and the secondary rolls back to it when it starts).
pub const SNAP_POINT: u8 = 1 << 2;
/// Every snapshot flag.
pub const SNAP_FLAGS: u8 = SNAP_CHECKSUM | SNAP_BEFORE_RESYNC | SNAP_POINT;

// Superblock fields.
const O_MAGIC: usize = 0;
const O_VERSION: usize = 8;
const O_CRC: usize = 12;
const O_SEQ: usize = 16;
const O_STORE_ID: usize = 24;
const O_PAIR_ID: usize = 32;
const O_DEVICE: usize = 48;
const O_TRACK: usize = 56;
const O_SLOTS: usize = 60;
const O_NEWEST: usize = 64;
/// Superblock header bytes; the snapshot table follows.
const SB_HEADER: usize = 128;
/// Bytes of one snapshot table entry.
const SNAP_BYTES: usize = 96;
/// End of the snapshot table; the rest of the block is zero.
const SB_USED: usize = SB_HEADER + MAX_SNAPSHOTS * SNAP_BYTES;

// Snapshot entry fields.
const S_EPOCH: usize = 0;
const S_STATE: usize = 4;
const S_FLAGS: usize = 5;
const S_SEQ: usize = 8;
const S_GEN: usize = 16;
const S_CREATED: usize = 24;
const S_NAME: usize = 32;
const S_SUM: usize = 64;

// Record block header fields (magic, version and CRC as in the superblock).
const R_STORE_ID: usize = 16;
const R_BLOCK: usize = 24;
const R_SEQ: usize = 32;
const R_COUNT: usize = 40;
const R_USED: usize = 44;

/// Why a block was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// All zeroes: never written.
    Empty,
    /// Not a store block of this kind.
    BadMagic,
    /// A format version this code does not know.
    BadVersion,
    /// The CRC does not match (a torn or corrupt write).
    BadChecksum,
    /// A record block of another store, or written for another place.
    Stale,
    /// A field out of range, unknown flags, a bad name or record, non-zero
    /// reserved bytes.
    BadField,
    /// The store was made for a data device of another size.
    WrongSize,
    /// The store was made with another track size.
    WrongTrackSize,
    /// The store belongs to another pair.
    WrongPair,
    /// The snapshot table is full.
    TableFull,
    /// No snapshot of that epoch in the table.
    NoSnapshot,
    /// Both copies unusable in a way no single interrupted write explains.
    Corrupt,
}

impl StoreError {
    /// Static text for a log line.
    pub fn message(self) -> &'static str {
        match self {
            StoreError::Empty => "snapshot store block never written",
            StoreError::BadMagic => "snapshot store holds something else (bad magic)",
            StoreError::BadVersion => "snapshot store format version not supported",
            StoreError::BadChecksum => "snapshot store block is corrupt (bad checksum)",
            StoreError::Stale => "snapshot store block is stale",
            StoreError::BadField => "snapshot store block is corrupt (bad field)",
            StoreError::WrongSize => "snapshot store was made for a device of another size",
            StoreError::WrongTrackSize => "snapshot store was made with another track size",
            StoreError::WrongPair => "snapshot store belongs to another pair",
            StoreError::TableFull => "snapshot table is full",
            StoreError::NoSnapshot => "no such snapshot",
            StoreError::Corrupt => "snapshot store is corrupt (both copies unusable)",
        }
    }
}

/// State of a snapshot in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapState {
    /// Readable; its records are kept.
    Ready = 1,
    /// The store ran out of slots before a track it needed was copied: listed
    /// (so the operator sees why), never readable, its records not kept.
    Invalid = 2,
}

/// One snapshot of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapInfo {
    /// Its epoch, also its id (0: an unused table entry).
    pub epoch: Epoch,
    /// Its state.
    pub state: SnapState,
    /// `SNAP_*` flags.
    pub flags: u8,
    /// Sequence number of the marker in the primary's stream (of the connection
    /// identified by `gen`).
    pub stream_seq: u64,
    /// The primary's generation id when the marker was sent.
    pub gen: u64,
    /// Wall-clock time of the opening, ns since the epoch (informational).
    pub created_ns: u64,
    /// Its name: `[A-Za-z0-9._:+@-]`, NUL-padded, possibly empty.
    pub name: [u8; NAME_LEN],
    /// The primary's checksum of the same point in time (valid with
    /// [`SNAP_CHECKSUM`]).
    pub checksum: [u8; CHECKSUM_LEN],
}

impl SnapInfo {
    /// An unused table entry.
    pub const NONE: SnapInfo = SnapInfo {
        epoch: 0,
        state: SnapState::Ready,
        flags: 0,
        stream_seq: 0,
        gen: 0,
        created_ns: 0,
        name: [0; NAME_LEN],
        checksum: [0; CHECKSUM_LEN],
    };

    /// The name without its padding.
    pub fn name(&self) -> &[u8] {
        let n = self.name.iter().position(|&c| c == 0).unwrap_or(NAME_LEN);
        self.name.get(..n).unwrap_or(&[])
    }
}

/// Whether `name` may name a snapshot (empty allowed: unnamed).
pub fn name_valid(name: &[u8]) -> bool {
    name.len() <= NAME_LEN
        && name
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"._:+@-".contains(&c))
}

/// A name padded for [`SnapInfo::name`], if valid.
pub fn pad_name(name: &[u8]) -> Option<[u8; NAME_LEN]> {
    if !name_valid(name) {
        return None;
    }
    let mut out = [0u8; NAME_LEN];
    put(&mut out, 0, name);
    Some(out)
}

/// The superblock: the store's geometry and the snapshot table. About 3.5 KiB:
/// the kernel keeps it in a heap allocation and uses the `_into` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSb {
    /// Write count; the valid copy with the higher one is current.
    pub seq: u64,
    /// Random id made when the store was formatted (in every record block).
    pub store_id: u64,
    /// The pair the store belongs to.
    pub pair_id: [u8; 16],
    /// Size of the data device in bytes.
    pub device_bytes: u64,
    /// Track size in bytes (the slot size).
    pub track_size: u32,
    /// Number of slots.
    pub slot_count: u32,
    /// Highest epoch ever opened (epochs are never reused).
    pub newest_epoch: Epoch,
    /// The table; unused entries have epoch 0.
    pub snaps: [SnapInfo; MAX_SNAPSHOTS],
}

fn block_crc(b: &[u8; BLOCK]) -> u32 {
    Crc32c::new()
        .update(b.get(..O_CRC).unwrap_or(&[]))
        .update(&[0; 4])
        .update(b.get(O_CRC + 4..).unwrap_or(&[]))
        .finish()
}

fn seal(b: &mut [u8; BLOCK]) {
    let crc = block_crc(b);
    put(b, O_CRC, &crc.to_le_bytes());
}

/// Checks what every block shares: not empty, magic, version, CRC.
fn check_block(b: &[u8; BLOCK], magic: &[u8; 8]) -> Result<(), StoreError> {
    if b.iter().all(|&c| c == 0) {
        return Err(StoreError::Empty);
    }
    if get::<8>(b, O_MAGIC) != *magic {
        return Err(StoreError::BadMagic);
    }
    if u32_at(b, O_VERSION) != STORE_VERSION {
        return Err(StoreError::BadVersion);
    }
    if block_crc(b) != u32_at(b, O_CRC) {
        return Err(StoreError::BadChecksum);
    }
    Ok(())
}

fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|&c| c == 0)
}

impl StoreSb {
    /// A freshly formatted store with no snapshot.
    pub fn new(
        store_id: u64,
        pair_id: [u8; 16],
        device_bytes: u64,
        track_size: u32,
        slot_count: u32,
    ) -> Self {
        StoreSb {
            seq: 0,
            store_id,
            pair_id,
            device_bytes,
            track_size,
            slot_count,
            newest_epoch: 0,
            snaps: [SnapInfo::NONE; MAX_SNAPSHOTS],
        }
    }

    /// Writes the block, with its CRC, into `b`.
    pub fn encode_into(&self, b: &mut [u8; BLOCK]) {
        b.fill(0);
        put(b, O_MAGIC, &SB_MAGIC);
        put(b, O_VERSION, &STORE_VERSION.to_le_bytes());
        put(b, O_SEQ, &self.seq.to_le_bytes());
        put(b, O_STORE_ID, &self.store_id.to_le_bytes());
        put(b, O_PAIR_ID, &self.pair_id);
        put(b, O_DEVICE, &self.device_bytes.to_le_bytes());
        put(b, O_TRACK, &self.track_size.to_le_bytes());
        put(b, O_SLOTS, &self.slot_count.to_le_bytes());
        put(b, O_NEWEST, &self.newest_epoch.to_le_bytes());
        for (i, s) in self.snaps.iter().enumerate().filter(|(_, s)| s.epoch != 0) {
            let o = SB_HEADER + i * SNAP_BYTES;
            put(b, o + S_EPOCH, &s.epoch.to_le_bytes());
            put(b, o + S_STATE, &[s.state as u8, s.flags]);
            put(b, o + S_SEQ, &s.stream_seq.to_le_bytes());
            put(b, o + S_GEN, &s.gen.to_le_bytes());
            put(b, o + S_CREATED, &s.created_ns.to_le_bytes());
            put(b, o + S_NAME, &s.name);
            put(b, o + S_SUM, &s.checksum);
        }
        seal(b);
    }

    /// Reads a superblock copy into `self` (unchanged on error), checking magic,
    /// version, CRC and every field.
    pub fn decode_into(&mut self, b: &[u8; BLOCK]) -> Result<(), StoreError> {
        check_block(b, &SB_MAGIC)?;
        let track_size = u32_at(b, O_TRACK);
        let device_bytes = u64_at(b, O_DEVICE);
        let slot_count = u32_at(b, O_SLOTS);
        let newest = u32_at(b, O_NEWEST);
        let ts_ok =
            track_size.is_power_of_two() && (MIN_TRACK_SIZE..=MAX_TRACK_SIZE).contains(&track_size);
        if !ts_ok
            || device_bytes % 512 != 0
            || slot_count > MAX_SLOTS
            || !all_zero(b.get(O_NEWEST + 4..SB_HEADER).unwrap_or(&[]))
            || !all_zero(b.get(SB_USED..).unwrap_or(&[]))
        {
            return Err(StoreError::BadField);
        }
        let mut snaps = [SnapInfo::NONE; MAX_SNAPSHOTS];
        for (i, s) in snaps.iter_mut().enumerate() {
            let o = SB_HEADER + i * SNAP_BYTES;
            let raw = b.get(o..o + SNAP_BYTES).unwrap_or(&[]);
            *s = decode_snap(raw, newest)?;
        }
        // Epochs are unique.
        for (i, s) in snaps.iter().enumerate().filter(|(_, s)| s.epoch != 0) {
            if snaps.iter().skip(i + 1).any(|t| t.epoch == s.epoch) {
                return Err(StoreError::BadField);
            }
        }
        *self = StoreSb {
            seq: u64_at(b, O_SEQ),
            store_id: u64_at(b, O_STORE_ID),
            pair_id: get(b, O_PAIR_ID),
            device_bytes,
            track_size,
            slot_count,
            newest_epoch: newest,
            snaps,
        };
        Ok(())
    }

    /// Checks the store against the secondary's table line.
    pub fn check(
        &self,
        device_bytes: u64,
        track_size: u32,
        pair_id: &[u8; 16],
    ) -> Result<(), StoreError> {
        if self.pair_id != *pair_id {
            return Err(StoreError::WrongPair);
        }
        if self.device_bytes != device_bytes {
            return Err(StoreError::WrongSize);
        }
        if self.track_size != track_size {
            return Err(StoreError::WrongTrackSize);
        }
        Ok(())
    }

    /// Adds a snapshot with the next epoch (returned). `info.epoch` is ignored.
    /// Nothing changes if the table is full.
    pub fn add(&mut self, info: SnapInfo) -> Result<Epoch, StoreError> {
        let epoch = self
            .newest_epoch
            .checked_add(1)
            .ok_or(StoreError::TableFull)?;
        let e = self
            .snaps
            .iter_mut()
            .find(|s| s.epoch == 0)
            .ok_or(StoreError::TableFull)?;
        *e = SnapInfo { epoch, ..info };
        self.newest_epoch = epoch;
        Ok(epoch)
    }

    /// The snapshot of `epoch`.
    pub fn find(&self, epoch: Epoch) -> Option<&SnapInfo> {
        self.snaps.iter().find(|s| s.epoch == epoch && epoch != 0)
    }

    /// The snapshot of `epoch`, to change (state, checksum).
    pub fn find_mut(&mut self, epoch: Epoch) -> Option<&mut SnapInfo> {
        self.snaps
            .iter_mut()
            .find(|s| s.epoch == epoch && epoch != 0)
    }

    /// Removes the snapshot of `epoch` from the table.
    pub fn remove(&mut self, epoch: Epoch) -> Result<(), StoreError> {
        let s = self.find_mut(epoch).ok_or(StoreError::NoSnapshot)?;
        *s = SnapInfo::NONE;
        Ok(())
    }

    /// The readable snapshots' epochs (for [`super::snapmap::SnapMap::load`]),
    /// into `out`; returns how many.
    pub fn live(&self, out: &mut [Epoch; MAX_SNAPSHOTS]) -> usize {
        let mut n = 0;
        for s in self
            .snaps
            .iter()
            .filter(|s| s.epoch != 0 && s.state == SnapState::Ready)
        {
            if let Some(o) = out.get_mut(n) {
                *o = s.epoch;
                n += 1;
            }
        }
        n
    }
}

fn decode_snap(raw: &[u8], newest: Epoch) -> Result<SnapInfo, StoreError> {
    let epoch = u32_at(raw, S_EPOCH);
    if epoch == 0 {
        return if all_zero(raw) {
            Ok(SnapInfo::NONE)
        } else {
            Err(StoreError::BadField)
        };
    }
    let state = match get::<1>(raw, S_STATE) {
        [1] => SnapState::Ready,
        [2] => SnapState::Invalid,
        _ => return Err(StoreError::BadField),
    };
    let [flags] = get::<1>(raw, S_FLAGS);
    let name: [u8; NAME_LEN] = get(raw, S_NAME);
    let n = name.iter().position(|&c| c == 0).unwrap_or(NAME_LEN);
    let (used, pad) = name.split_at(n);
    let checksum: [u8; CHECKSUM_LEN] = get(raw, S_SUM);
    if epoch > newest
        || flags & !SNAP_FLAGS != 0
        || get::<2>(raw, S_FLAGS + 1) != [0; 2]
        || !name_valid(used)
        || !all_zero(pad)
        || (flags & SNAP_CHECKSUM == 0 && !all_zero(&checksum))
    {
        return Err(StoreError::BadField);
    }
    Ok(SnapInfo {
        epoch,
        state,
        flags,
        stream_seq: u64_at(raw, S_SEQ),
        gen: u64_at(raw, S_GEN),
        created_ns: u64_at(raw, S_CREATED),
        name,
        checksum,
    })
}

/// A decoded record block copy's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecHeader {
    /// Write count of this block; the valid copy with the higher one is current.
    pub seq: u64,
    /// Records in the block.
    pub count: u32,
}

/// Number of record blocks for `slots` slots.
pub fn record_blocks(slots: u32) -> u32 {
    slots.div_ceil(RECORDS_PER_BLOCK)
}

/// The record block holding slot `slot`'s record.
pub fn block_of_slot(slot: SlotNo) -> u32 {
    slot / RECORDS_PER_BLOCK
}

/// Byte offset of copy `copy` (0 or 1) of record block `block`.
pub fn record_offset(block: u32, copy: u32) -> u64 {
    RECORDS_OFFSET + (2 * u64::from(block) + u64::from(copy & 1)) * BLOCK as u64
}

/// Which copy write number `seq` of a block goes to (superblock or record block).
pub fn copy_for(seq: u64) -> u32 {
    (seq & 1) as u32
}

/// Byte offset of slot 0: after the record blocks, rounded up to the track size.
pub fn data_offset(slots: u32, track_size: u32) -> u64 {
    let end = record_offset(record_blocks(slots), 0);
    super::geometry::round_up(end, u64::from(track_size))
}

/// Byte offset of slot `slot`'s data (saturating).
pub fn slot_offset(slots: u32, track_size: u32, slot: SlotNo) -> u64 {
    data_offset(slots, track_size)
        .saturating_add(u64::from(slot).saturating_mul(u64::from(track_size)))
}

/// Bytes a store of `slots` slots needs (saturating).
pub fn store_bytes(slots: u32, track_size: u32) -> u64 {
    slot_offset(slots, track_size, slots)
}

/// The most slots a store device of `bytes` holds (0 for a zero track size).
pub fn slots_for(bytes: u64, track_size: u32) -> u32 {
    let ts = u64::from(track_size);
    if ts == 0 {
        return 0;
    }
    // Each slot costs a track plus about 2 * 16 bytes of record copies: start from
    // that estimate and step to the most that fit (a few steps at most).
    let per = ts.saturating_add(2 * REC_BYTES as u64);
    let est = bytes.saturating_sub(RECORDS_OFFSET) / per;
    let mut n = u32::try_from(est).unwrap_or(MAX_SLOTS).min(MAX_SLOTS);
    while n > 0 && store_bytes(n, track_size) > bytes {
        let over = store_bytes(n, track_size) - bytes;
        n = n.saturating_sub(u32::try_from(over.div_ceil(ts)).unwrap_or(u32::MAX).max(1));
    }
    // A step down may overshoot by a slot or two (the data area starts at a track
    // boundary): step back up to the most that fit.
    while n < MAX_SLOTS && store_bytes(n + 1, track_size) <= bytes {
        n += 1;
    }
    n
}

/// Writes copy `seq` of record block `block` into `b`: for each of its slots,
/// `record_of(slot)` gives the record it holds, if any (records whose slot is
/// not that slot are left out). Returns the number of records written.
pub fn encode_records(
    b: &mut [u8; BLOCK],
    store_id: u64,
    block: u32,
    seq: u64,
    mut record_of: impl FnMut(SlotNo) -> Option<Record>,
) -> u32 {
    b.fill(0);
    put(b, O_MAGIC, &REC_MAGIC);
    put(b, O_VERSION, &STORE_VERSION.to_le_bytes());
    put(b, R_STORE_ID, &store_id.to_le_bytes());
    put(b, R_BLOCK, &u64::from(block).to_le_bytes());
    put(b, R_SEQ, &seq.to_le_bytes());
    let first = block.saturating_mul(RECORDS_PER_BLOCK);
    let mut count = 0u32;
    for j in 0..RECORDS_PER_BLOCK {
        let Some(slot) = first.checked_add(j) else {
            break;
        };
        let Some(r) = record_of(slot).filter(|r| r.slot == slot && r.epoch != 0) else {
            continue;
        };
        let o = REC_HEADER + j as usize * REC_BYTES;
        put(b, o, &r.track.to_le_bytes());
        put(b, o + 8, &r.slot.to_le_bytes());
        put(b, o + 12, &r.epoch.to_le_bytes());
        count += 1;
    }
    put(b, R_COUNT, &count.to_le_bytes());
    seal(b);
    count
}

/// Record `j` of a block copy, if it holds one (no checks: use after
/// [`decode_records`]).
pub fn record_in(b: &[u8; BLOCK], j: u32) -> Option<Record> {
    let o = REC_HEADER + j as usize * REC_BYTES;
    let epoch = u32_at(b, o + 12);
    (j < RECORDS_PER_BLOCK && epoch != 0).then(|| Record {
        track: u64_at(b, o),
        slot: u32_at(b, o + 8),
        epoch,
    })
}

/// Checks copy of record block `block` of the store `sb` describes, for a data
/// device of `tracks` tracks: magic, version, CRC, store id and block number
/// (else [`StoreError::Stale`]), then every record (its slot is its place, below
/// `slot_count`; its track below `tracks`; its epoch at most the newest; unused
/// places all zero) and the count.
pub fn decode_records(
    b: &[u8; BLOCK],
    sb: &StoreSb,
    block: u32,
    tracks: u64,
) -> Result<RecHeader, StoreError> {
    check_block(b, &REC_MAGIC)?;
    if u64_at(b, R_STORE_ID) != sb.store_id || u64_at(b, R_BLOCK) != u64::from(block) {
        return Err(StoreError::Stale);
    }
    if !all_zero(b.get(R_USED..REC_HEADER).unwrap_or(&[])) {
        return Err(StoreError::BadField);
    }
    let first = u64::from(block) * u64::from(RECORDS_PER_BLOCK);
    let mut count = 0u32;
    for j in 0..RECORDS_PER_BLOCK {
        let o = REC_HEADER + j as usize * REC_BYTES;
        match record_in(b, j) {
            None => {
                if !all_zero(b.get(o..o + REC_BYTES).unwrap_or(&[])) {
                    return Err(StoreError::BadField);
                }
            }
            Some(r) => {
                if u64::from(r.slot) != first + u64::from(j)
                    || r.slot >= sb.slot_count
                    || r.track >= tracks
                    || r.epoch > sb.newest_epoch
                {
                    return Err(StoreError::BadField);
                }
                count += 1;
            }
        }
    }
    if count != u32_at(b, R_COUNT) {
        return Err(StoreError::BadField);
    }
    Ok(RecHeader {
        seq: u64_at(b, R_SEQ),
        count,
    })
}

/// Which of a block's two decoded copies is current, by sequence number: `Some(i)`
/// for copy `i`, `None` when the block holds nothing (never written, stale, or a
/// first write torn). Err when a copy passed its CRC yet is malformed, or both
/// copies are torn (one interrupted write never tears both: the other copy is
/// written only after this one completed).
pub fn pick(
    a: Result<u64, StoreError>,
    b: Result<u64, StoreError>,
) -> Result<Option<u32>, StoreError> {
    for r in [&a, &b] {
        if let Err(e) = r {
            if !matches!(
                e,
                StoreError::Empty | StoreError::Stale | StoreError::BadChecksum
            ) {
                return Err(*e);
            }
        }
    }
    match (a, b) {
        (Ok(x), Ok(y)) => Ok(Some(if y > x { 1 } else { 0 })),
        (Ok(_), Err(_)) => Ok(Some(0)),
        (Err(_), Ok(_)) => Ok(Some(1)),
        (Err(StoreError::BadChecksum), Err(StoreError::BadChecksum)) => Err(StoreError::Corrupt),
        _ => Ok(None),
    }
}
