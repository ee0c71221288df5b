// SPDX-License-Identifier: GPL-2.0

//! The activity log (AL): the extents of the device that may hold writes the peer
//! has not confirmed as durable.
//!
//! Invariant (what makes a primary crash safe): every write that was submitted to
//! the local disk or sent to the peer, and whose durability on the peer is not yet
//! confirmed, lies in an extent recorded *on disk* as hot, or has its tracks' bits set
//! *on disk* in the bitmap. After an unclean stop every hot extent is marked in the
//! bitmap and resynced, so the two disks converge whatever was in flight.
//!
//! The in-memory [`AlTable`] holds up to `capacity` slots. A write to an extent
//! already hot only takes a reference (no metadata I/O). Making an extent hot is a
//! *transaction*: [`AlTable::plan`] assigns it a slot (evicting the least recently
//! used extent with no references), the caller writes the whole on-disk set with
//! [`encode`], and only then [`AlTable::commit`] lets writes use it. An extent being
//! evicted has no references, so every write to it was confirmed durable or had its
//! bits persisted before the transaction that drops it.
//!
//! On disk, the AL region holds two copies; transaction `n` goes to copy `n % 2`, so
//! a torn write leaves the previous transaction readable. A copy is a 4 KiB header
//! followed by the extent numbers, 8 bytes each (little endian), with a CRC-32C over
//! the header (CRC field zeroed) and the entries. See `Documentation/rcopy.rst`.

use super::crc32c::Crc32c;
use super::le::{put, u32_at, u64_at};
use core::ops::{DerefMut, Range};

/// Magic of an AL copy's header.
pub const AL_MAGIC: [u8; 8] = *b"RCPYALOG";
/// Format version of the AL header.
pub const AL_VERSION: u32 = 1;
/// Most hot extents a table may ask for.
pub const AL_MAX_EXTENTS: u32 = 4096;
/// Fewest hot extents a table may ask for.
pub const AL_MIN_EXTENTS: u32 = 7;
/// Default number of hot extents.
pub const DEFAULT_AL_EXTENTS: u32 = 512;
/// Default extent size in bytes (4 MiB, DRBD's).
pub const DEFAULT_AL_EXTENT_SIZE: u64 = 4 << 20;
/// Largest extent size in bytes.
pub const MAX_AL_EXTENT_SIZE: u64 = 1 << 30;
/// Bytes of the header block.
pub const AL_HEADER_BYTES: usize = 4096;
/// Bytes of one on-disk copy: header plus room for [`AL_MAX_EXTENTS`] entries.
pub const AL_COPY_BYTES: u64 = AL_HEADER_BYTES as u64 + AL_MAX_EXTENTS as u64 * 8;
/// Bytes of the AL region (two copies).
pub const AL_REGION_BYTES: u64 = 2 * AL_COPY_BYTES;
/// A slot that holds no extent.
pub const NO_EXTENT: u64 = u64::MAX;

const O_MAGIC: usize = 0;
const O_VERSION: usize = 8;
const O_COUNT: usize = 12;
const O_TXN: usize = 16;
const O_SHIFT: usize = 24;
const O_CRC: usize = 28;
/// Header bytes in use; the rest of the header block is zero.
const HEADER_USED: usize = 32;

/// Why an AL copy was not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlError {
    /// All zeroes: never written.
    Empty,
    /// Not an AL header.
    BadMagic,
    /// A version or field this code does not know.
    BadField,
    /// Checksum mismatch (a torn or corrupt write).
    BadChecksum,
}

/// A decoded AL copy header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlHeader {
    /// Transaction number (higher is newer).
    pub txn: u64,
    /// log2 of the extent size the entries use.
    pub extent_shift: u32,
    /// Number of entries.
    pub count: u32,
}

/// Bytes a copy with `count` entries occupies (header plus whole 4 KiB blocks).
pub fn copy_bytes(count: u32) -> usize {
    AL_HEADER_BYTES + (count as usize * 8).div_ceil(4096) * 4096
}

/// Whether `bytes` is a valid extent size for a device with `track_size` tracks.
pub fn extent_size_valid(bytes: u64, track_size: u32) -> bool {
    bytes.is_power_of_two() && bytes >= u64::from(track_size) && bytes <= MAX_AL_EXTENT_SIZE
}

/// The extents `[sector, sector + nr)` touches, for extents of `1 << shift` bytes.
pub fn extent_range(sector: u64, nr_sectors: u64, shift: u32) -> Range<u64> {
    if nr_sectors == 0 || shift < 9 {
        return 0..0;
    }
    let s = shift - 9;
    let end = sector.saturating_add(nr_sectors);
    (sector >> s)..((end - 1) >> s) + 1
}

/// The tracks extent `e` covers, for tracks of `1 << track_shift` bytes.
pub fn extent_tracks(e: u64, extent_shift: u32, track_shift: u32) -> Range<u64> {
    let per = 1u64 << extent_shift.saturating_sub(track_shift);
    e.saturating_mul(per)..e.saturating_add(1).saturating_mul(per)
}

fn crc_of(buf: &[u8], count: u32) -> u32 {
    let mut c = Crc32c::new();
    let mut hdr = [0u8; HEADER_USED];
    if let Some(h) = buf.get(..HEADER_USED) {
        hdr.copy_from_slice(h);
    }
    put(&mut hdr, O_CRC, &[0; 4]);
    c.update(&hdr);
    // The rest of the header block is zero by construction; the CRC covers what
    // carries meaning: the used header bytes and the entries.
    let n = count as usize * 8;
    if let Some(e) = buf.get(AL_HEADER_BYTES..AL_HEADER_BYTES + n) {
        c.update(e);
    }
    c.finish()
}

/// Writes a copy of transaction `txn` holding `extents` into `buf` (which must hold
/// [`copy_bytes`] of their count; zeroed here). Returns the bytes to write.
pub fn encode(buf: &mut [u8], txn: u64, extent_shift: u32, extents: &[u64]) -> usize {
    let count = extents.len().min(AL_MAX_EXTENTS as usize) as u32;
    let len = copy_bytes(count).min(buf.len());
    if let Some(b) = buf.get_mut(..len) {
        b.fill(0);
    }
    put(buf, O_MAGIC, &AL_MAGIC);
    put(buf, O_VERSION, &AL_VERSION.to_le_bytes());
    put(buf, O_COUNT, &count.to_le_bytes());
    put(buf, O_TXN, &txn.to_le_bytes());
    put(buf, O_SHIFT, &extent_shift.to_le_bytes());
    for (i, e) in extents.iter().take(count as usize).enumerate() {
        put(buf, AL_HEADER_BYTES + i * 8, &e.to_le_bytes());
    }
    let crc = crc_of(buf, count);
    put(buf, O_CRC, &crc.to_le_bytes());
    len
}

/// Decodes the header of a copy. `buf` must hold the header block; the entries are
/// checked too when `buf` holds them ([`AlError::BadChecksum`] if it does not).
pub fn decode(buf: &[u8]) -> Result<AlHeader, AlError> {
    let head = buf.get(..AL_HEADER_BYTES).ok_or(AlError::BadField)?;
    if head.iter().all(|b| *b == 0) {
        return Err(AlError::Empty);
    }
    if head.get(..8) != Some(&AL_MAGIC[..]) {
        return Err(AlError::BadMagic);
    }
    let count = u32_at(buf, O_COUNT);
    let shift = u32_at(buf, O_SHIFT);
    if u32_at(buf, O_VERSION) != AL_VERSION
        || count > AL_MAX_EXTENTS
        || !(12..=30).contains(&shift)
        || head
            .get(HEADER_USED..)
            .is_some_and(|r| r.iter().any(|b| *b != 0))
    {
        return Err(AlError::BadField);
    }
    if buf.len() < AL_HEADER_BYTES + count as usize * 8 || crc_of(buf, count) != u32_at(buf, O_CRC)
    {
        return Err(AlError::BadChecksum);
    }
    Ok(AlHeader {
        txn: u64_at(buf, O_TXN),
        extent_shift: shift,
        count,
    })
}

/// Entry `i` of a decoded copy.
pub fn entry(buf: &[u8], i: u32) -> u64 {
    u64_at(buf, AL_HEADER_BYTES + i as usize * 8)
}

/// Which of two decoded copies is current: the valid one with the higher
/// transaction. `None` if neither is valid.
pub fn newest(a: Result<AlHeader, AlError>, b: Result<AlHeader, AlError>) -> Option<usize> {
    match (a, b) {
        (Ok(x), Ok(y)) => Some(if y.txn > x.txn { 1 } else { 0 }),
        (Ok(_), Err(_)) => Some(0),
        (Err(_), Ok(_)) => Some(1),
        _ => None,
    }
}

/// One slot of the in-memory table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The extent, or [`NO_EXTENT`].
    pub extent: u64,
    /// Writes in flight in the extent whose durability on the peer is unconfirmed.
    pub refs: u32,
    /// Planned but not yet on disk: writes may not use it.
    pub pending: bool,
    /// Last use, for LRU eviction.
    pub used: u64,
}

impl Slot {
    /// An empty slot.
    pub const EMPTY: Slot = Slot {
        extent: NO_EXTENT,
        refs: 0,
        pending: false,
        used: 0,
    };
}

/// Why [`AlTable::plan`] could not make extents hot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanError {
    /// Every slot has references: wait for some to be released.
    Busy,
    /// More extents than the table can ever hold at once.
    TooLarge,
}

/// The in-memory activity log over caller-provided slots.
pub struct AlTable<S> {
    slots: S,
    tick: u64,
    /// The slots changed since the last [`AlTable::commit`].
    changed: bool,
}

impl<S: DerefMut<Target = [Slot]>> AlTable<S> {
    /// A table over `slots` (each must be [`Slot::EMPTY`]).
    pub fn new(slots: S) -> Self {
        AlTable {
            slots,
            tick: 0,
            changed: false,
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.deref().len()
    }

    fn find(&self, e: u64) -> Option<usize> {
        self.slots.deref().iter().position(|s| s.extent == e)
    }

    /// Takes a reference on every extent of `r` if all are hot (on disk); otherwise
    /// changes nothing and returns false.
    pub fn acquire(&mut self, r: Range<u64>) -> bool {
        let hot = r
            .clone()
            .all(|e| self.find(e).is_some_and(|i| !self.slots.deref()[i].pending));
        if !hot {
            return false;
        }
        self.tick += 1;
        let tick = self.tick;
        for e in r {
            if let Some(i) = self.find(e) {
                let s = &mut self.slots.deref_mut()[i];
                s.refs = s.refs.saturating_add(1);
                s.used = tick;
            }
        }
        true
    }

    /// Drops the references [`AlTable::acquire`] took on `r`.
    pub fn release(&mut self, r: Range<u64>) {
        for e in r {
            if let Some(i) = self.find(e) {
                let s = &mut self.slots.deref_mut()[i];
                s.refs = s.refs.saturating_sub(1);
            }
        }
    }

    /// Assigns slots to the extents of `r` that have none, as pending. Returns
    /// whether a transaction is needed (some slot is pending). On error nothing that
    /// was hot changes; extents already planned stay planned.
    pub fn plan(&mut self, r: Range<u64>) -> Result<bool, PlanError> {
        if r.end.saturating_sub(r.start) > self.capacity() as u64 {
            return Err(PlanError::TooLarge);
        }
        self.tick += 1;
        for e in r.clone() {
            if self.find(e).is_some() {
                continue;
            }
            // An empty slot, else the least recently used one with no references
            // that is not part of this plan.
            let victim = self
                .slots
                .as_ref()
                .iter()
                .enumerate()
                .filter(|(_, s)| s.refs == 0 && !(s.pending || r.contains(&s.extent)))
                .min_by_key(|(_, s)| if s.extent == NO_EXTENT { 0 } else { s.used + 1 })
                .map(|(i, _)| i)
                .ok_or(PlanError::Busy)?;
            self.slots.deref_mut()[victim] = Slot {
                extent: e,
                refs: 0,
                pending: true,
                used: self.tick,
            };
            self.changed = true;
        }
        Ok(self.changed)
    }

    /// Whether a transaction is due (slots changed since the last commit).
    pub fn needs_commit(&self) -> bool {
        self.changed
    }

    /// The extents a transaction must record (hot and pending), into `out`; returns
    /// how many.
    pub fn on_disk_set(&self, out: &mut [u64]) -> usize {
        let mut n = 0;
        for s in self.slots.deref().iter().filter(|s| s.extent != NO_EXTENT) {
            if let Some(o) = out.get_mut(n) {
                *o = s.extent;
                n += 1;
            }
        }
        n
    }

    /// The transaction written by the caller is on disk: pending slots become hot.
    pub fn commit(&mut self) {
        for s in self.slots.deref_mut() {
            s.pending = false;
        }
        self.changed = false;
    }

    /// Empties the table (after a clean stop, or once its extents are marked in the
    /// bitmap). Slots with references are kept.
    pub fn clear_unreferenced(&mut self) {
        for s in self.slots.deref_mut() {
            if s.refs == 0 && s.extent != NO_EXTENT {
                *s = Slot::EMPTY;
                self.changed = true;
            }
        }
    }

    /// Number of extents hot or pending.
    pub fn hot(&self) -> usize {
        self.slots
            .as_ref()
            .iter()
            .filter(|s| s.extent != NO_EXTENT)
            .count()
    }

    /// Total references held.
    pub fn refs(&self) -> u64 {
        self.slots.deref().iter().map(|s| u64::from(s.refs)).sum()
    }
}
