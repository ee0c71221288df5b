// SPDX-License-Identifier: GPL-2.0

//! The secondary's copy-on-write map for point-in-time snapshots, in memory.
//!
//! Snapshots are numbered by *epoch*: 1, 2, 3, ..., never reused (the store's
//! superblock keeps the highest one ever opened). Snapshot `k` is the secondary's
//! image at the moment it was opened. From then on, before a track of the data
//! device is overwritten for the first time since the newest live snapshot was
//! opened, the old track is copied to a *slot* of the exception store and a
//! *record* `(track, slot, epoch)` is made, `epoch` being the newest live snapshot.
//!
//! - **Who a record serves.** A record of `track` at epoch `e` serves every live
//!   snapshot `k <= e` for which there is no earlier record of `track` at an epoch
//!   `>= k`. Records of one track are made with strictly increasing epochs, so
//!   each serves the snapshots in `(p, e]`, `p` being the epoch of the track's
//!   previous record (0 if none).
//! - **Reading** snapshot `k` at `track`: the record of `track` with the lowest
//!   epoch `>= k`, else the live data device.
//! - **Writing** `track` needs a copy when some live snapshot exists and the
//!   track's newest record is older than the newest live snapshot.
//! - **Deleting** a snapshot frees every record whose interval `(p, e]` no longer
//!   holds a live snapshot. Every record kept holds one, and the intervals of a
//!   track are disjoint, so a track never has more records than there are live
//!   snapshots, and a store with no snapshot holds no record.
//!
//! # Memory
//!
//! Nothing is allocated here. The caller provides one [`Entry`] per store slot
//! (16 bytes each; the entry of slot `s` *is* the record held in slot `s`, so the
//! map can never hold more records than the store has slots) and a bucket array
//! of `u32` for a hash of track numbers (one bucket per slot or two is plenty).
//! Free slots are threaded through their entries, so the free list costs nothing
//! either. Memory is proportional to the store, never to the data device: a
//! 64 GiB store in 64 KiB tracks (1 Mi slots) takes 16 MiB of entries plus 4 MiB
//! of buckets, as `kvmalloc` memory in the kernel.
//!
//! # Complexity
//!
//! With `c` the length of a hash chain (about `used / buckets` plus the records
//! of one track, at most `MAX_SNAPSHOTS`): [`SnapMap::needs_copy`],
//! [`SnapMap::lookup`] and [`SnapMap::record`] are `O(c)`; [`SnapMap::reserve`],
//! [`SnapMap::release`] and [`SnapMap::open`] are `O(1)` (`open` is
//! `O(MAX_SNAPSHOTS)`); [`SnapMap::delete`] sweeps every bucket and record,
//! `O(buckets + used * c)`, and so does [`Loader::finish`]. Nothing here sleeps;
//! the caller holds its lock around each call (a mutex around `delete` and the
//! load, which can take milliseconds on a large store).
//!
//! # The caller's duties (the kernel's COW sequence)
//!
//! For a write about to overwrite `track`: if [`SnapMap::needs_copy`], take a slot
//! with [`SnapMap::reserve`], read the old track, write it to the slot, write the
//! record block durably (see [`super::snapstore`]), then [`SnapMap::record`], and
//! only then submit the overwrite; on an I/O error, [`SnapMap::release`] the slot.
//! Two writes to one track are never copied at once (the secondary applies one
//! write at a time). With no free slot, the snapshots [`SnapMap::needing`] names
//! are invalidated (superblock first, then [`SnapMap::delete`]) and the write goes
//! on: replication never blocks on the store. A deletion is recorded in the store's
//! superblock *before* [`SnapMap::delete`] frees its slots, so a freed slot is never
//! rewritten while the disk still names a snapshot that needs it.

use core::ops::DerefMut;

/// A snapshot's number; 0 is never a snapshot.
pub type Epoch = u32;
/// A slot of the exception store (one track of data).
pub type SlotNo = u32;

/// Most snapshots live at once.
pub const MAX_SNAPSHOTS: usize = 32;
/// Most slots a map can manage.
pub const MAX_SLOTS: u32 = u32::MAX - 2;
/// End of a chain or of the free list.
const NIL: u32 = u32::MAX;
/// Link of a reserved slot (taken from the free list, not yet a record).
const RESERVED: u32 = u32::MAX - 1;

/// One slot's entry: the record it holds (`epoch >= 1`), or a free or reserved
/// slot (`epoch == 0`). The fields are private: only the map changes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    track: u64,
    epoch: Epoch,
    /// Next entry in the bucket chain (records) or in the free list (free), or
    /// [`RESERVED`].
    link: u32,
}

impl Entry {
    /// The value to fill caller storage with before [`SnapMap::new`].
    pub const EMPTY: Entry = Entry {
        track: 0,
        epoch: 0,
        link: NIL,
    };
}

/// A record: `slot` holds `track` as it was before the first write after
/// snapshot `epoch` (the newest live snapshot then) was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Record {
    /// The data device's track.
    pub track: u64,
    /// The store's slot.
    pub slot: SlotNo,
    /// The newest live snapshot when the copy was made.
    pub epoch: Epoch,
}

/// Where a snapshot's track is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Where {
    /// The data device: the track was not overwritten since the snapshot.
    Live,
    /// This slot of the store.
    Slot(SlotNo),
}

/// Why a call was refused; nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapError {
    /// Caller storage unusable: no bucket, or more entries than [`MAX_SLOTS`].
    Storage,
    /// [`MAX_SNAPSHOTS`] snapshots are live.
    TooMany,
    /// A new snapshot's epoch is not above every epoch opened before.
    EpochOrder,
    /// No live snapshot has this epoch.
    NoSnapshot,
    /// No snapshot is live: nothing to record for.
    NoneLive,
    /// A track past the device's end.
    BadTrack,
    /// A slot out of range, or not in the state the call needs.
    BadSlot,
    /// The track is already preserved for the newest live snapshot.
    NotNeeded,
    /// A copy is in progress (a slot is reserved): a snapshot cannot open now.
    Busy,
    /// Load: records or snapshot list that no valid history produces (a slot or a
    /// `(track, epoch)` twice, an epoch above the newest, live epochs unsorted).
    Corrupt,
}

impl SnapError {
    /// Static text for a log line.
    pub fn message(self) -> &'static str {
        match self {
            SnapError::Storage => "snapshot map storage unusable",
            SnapError::TooMany => "too many snapshots",
            SnapError::EpochOrder => "snapshot epoch not above the newest",
            SnapError::NoSnapshot => "no such snapshot",
            SnapError::NoneLive => "no live snapshot",
            SnapError::BadTrack => "track past the end of the device",
            SnapError::BadSlot => "store slot out of range or in the wrong state",
            SnapError::NotNeeded => "track already preserved",
            SnapError::Busy => "a track copy is in progress",
            SnapError::Corrupt => "snapshot store records are inconsistent",
        }
    }
}

/// The map over caller-provided entries (one per slot) and hash buckets.
pub struct SnapMap<E, H> {
    entries: E,
    heads: H,
    tracks: u64,
    free: u32,
    nfree: u32,
    nused: u32,
    live: [Epoch; MAX_SNAPSHOTS],
    nlive: usize,
    newest: Epoch,
}

/// Records of one track in a bucket chain, with a step budget (the chain can
/// never be longer than the slots, so a damaged link cannot loop forever).
struct Chain<'a> {
    entries: &'a [Entry],
    at: u32,
    track: u64,
    budget: usize,
}

impl Iterator for Chain<'_> {
    type Item = (SlotNo, Entry);

    fn next(&mut self) -> Option<(SlotNo, Entry)> {
        while self.at != NIL && self.budget > 0 {
            self.budget -= 1;
            let i = self.at;
            let e = *self.entries.get(i as usize)?;
            self.at = e.link;
            if e.track == self.track {
                return Some((i, e));
            }
        }
        None
    }
}

impl<E: DerefMut<Target = [Entry]>, H: DerefMut<Target = [u32]>> SnapMap<E, H> {
    /// An empty map (no snapshot, every slot free) over `entries` (one per store
    /// slot) and `heads` (hash buckets, at least one) for a device of `tracks`
    /// tracks. Both are overwritten.
    pub fn new(entries: E, heads: H, tracks: u64) -> Result<Self, SnapError> {
        if heads.is_empty() || entries.len() > MAX_SLOTS as usize {
            return Err(SnapError::Storage);
        }
        let mut m = SnapMap {
            entries,
            heads,
            tracks,
            free: NIL,
            nfree: 0,
            nused: 0,
            live: [0; MAX_SNAPSHOTS],
            nlive: 0,
            newest: 0,
        };
        m.heads.fill(NIL);
        let n = m.slots();
        for (i, e) in m.entries.iter_mut().enumerate() {
            let next = i as u32 + 1;
            *e = Entry {
                link: if next < n { next } else { NIL },
                ..Entry::EMPTY
            };
        }
        m.free = if n > 0 { 0 } else { NIL };
        m.nfree = n;
        Ok(m)
    }

    /// Store slots.
    pub fn slots(&self) -> u32 {
        self.entries.len() as u32
    }

    /// Tracks of the data device.
    pub fn tracks(&self) -> u64 {
        self.tracks
    }

    /// Free slots.
    pub fn free_slots(&self) -> u32 {
        self.nfree
    }

    /// Slots holding records.
    pub fn used_slots(&self) -> u32 {
        self.nused
    }

    /// Slots reserved for copies in progress.
    pub fn reserved_slots(&self) -> u32 {
        self.slots()
            .saturating_sub(self.nfree)
            .saturating_sub(self.nused)
    }

    /// The live snapshots, oldest first.
    pub fn live(&self) -> &[Epoch] {
        self.live.get(..self.nlive).unwrap_or(&[])
    }

    /// Whether snapshot `epoch` is live.
    pub fn is_live(&self, epoch: Epoch) -> bool {
        self.live().binary_search(&epoch).is_ok()
    }

    /// The newest live snapshot.
    pub fn newest_live(&self) -> Option<Epoch> {
        self.live().last().copied()
    }

    /// The highest epoch ever opened (0: none).
    pub fn newest(&self) -> Epoch {
        self.newest
    }

    /// The record slot `slot` holds, if any.
    pub fn record_at(&self, slot: SlotNo) -> Option<Record> {
        let e = self.entries.get(slot as usize)?;
        (e.epoch != 0).then_some(Record {
            track: e.track,
            slot,
            epoch: e.epoch,
        })
    }

    fn bucket(&self, track: u64) -> usize {
        let h = (track.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize;
        h.checked_rem(self.heads.len()).unwrap_or(0)
    }

    fn head(&self, b: usize) -> u32 {
        self.heads.get(b).copied().unwrap_or(NIL)
    }

    fn chain(&self, track: u64) -> Chain<'_> {
        Chain {
            entries: &self.entries,
            at: self.head(self.bucket(track)),
            track,
            budget: self.entries.len(),
        }
    }

    /// Epoch of the newest record of `track` (0: none).
    fn max_epoch(&self, track: u64) -> Epoch {
        self.chain(track).map(|(_, e)| e.epoch).max().unwrap_or(0)
    }

    /// Epoch of the newest record of `track` older than `epoch` (0: none).
    fn prev_epoch(&self, track: u64, epoch: Epoch) -> Epoch {
        self.chain(track)
            .map(|(_, e)| e.epoch)
            .filter(|&x| x < epoch)
            .max()
            .unwrap_or(0)
    }

    /// Whether some live snapshot lies in `(after, upto]`.
    fn live_in(&self, after: Epoch, upto: Epoch) -> bool {
        self.live().iter().any(|&k| k > after && k <= upto)
    }

    /// Whether a write to `track` must first copy the old track. False past the
    /// device's end.
    pub fn needs_copy(&self, track: u64) -> bool {
        track < self.tracks
            && self
                .newest_live()
                .is_some_and(|e| self.max_epoch(track) < e)
    }

    /// The live snapshots that read `track` from the data device (those a write
    /// to it must preserve), oldest first, into `out`; returns how many. Empty
    /// exactly when [`SnapMap::needs_copy`] is false.
    pub fn needing(&self, track: u64, out: &mut [Epoch]) -> usize {
        if track >= self.tracks {
            return 0;
        }
        let m = self.max_epoch(track);
        let mut n = 0;
        for &k in self.live().iter().filter(|&&k| k > m) {
            if let Some(o) = out.get_mut(n) {
                *o = k;
                n += 1;
            }
        }
        n
    }

    /// Where snapshot `epoch` reads `track` from.
    pub fn lookup(&self, epoch: Epoch, track: u64) -> Result<Where, SnapError> {
        if !self.is_live(epoch) {
            return Err(SnapError::NoSnapshot);
        }
        if track >= self.tracks {
            return Err(SnapError::BadTrack);
        }
        Ok(self
            .chain(track)
            .filter(|(_, e)| e.epoch >= epoch)
            .min_by_key(|(_, e)| e.epoch)
            .map_or(Where::Live, |(s, _)| Where::Slot(s)))
    }

    /// Opens snapshot `epoch` (above every epoch opened before). Refused while a
    /// copy is in progress.
    pub fn open(&mut self, epoch: Epoch) -> Result<(), SnapError> {
        if epoch <= self.newest {
            return Err(SnapError::EpochOrder);
        }
        if self.reserved_slots() != 0 {
            return Err(SnapError::Busy);
        }
        let slot = self.live.get_mut(self.nlive).ok_or(SnapError::TooMany)?;
        *slot = epoch;
        self.nlive += 1;
        self.newest = epoch;
        Ok(())
    }

    /// Takes a free slot for a copy, lowest first after a load; `None` when the
    /// store is full.
    pub fn reserve(&mut self) -> Option<SlotNo> {
        let s = self.free;
        let e = self.entries.get_mut(s as usize)?;
        self.free = e.link;
        e.link = RESERVED;
        self.nfree -= 1;
        Some(s)
    }

    /// Gives back a reserved slot whose copy failed or is no longer needed.
    pub fn release(&mut self, slot: SlotNo) -> Result<(), SnapError> {
        let free = self.free;
        let e = self
            .entries
            .get_mut(slot as usize)
            .filter(|e| e.epoch == 0 && e.link == RESERVED)
            .ok_or(SnapError::BadSlot)?;
        e.link = free;
        self.free = slot;
        self.nfree += 1;
        Ok(())
    }

    /// Records that reserved `slot` now durably holds the old `track`, for the
    /// newest live snapshot. Refused (nothing changes, the slot stays reserved)
    /// if the track needs no copy.
    pub fn record(&mut self, track: u64, slot: SlotNo) -> Result<(), SnapError> {
        if track >= self.tracks {
            return Err(SnapError::BadTrack);
        }
        let epoch = self.newest_live().ok_or(SnapError::NoneLive)?;
        let ok = self
            .entries
            .get(slot as usize)
            .is_some_and(|e| e.epoch == 0 && e.link == RESERVED);
        if !ok {
            return Err(SnapError::BadSlot);
        }
        if !self.needs_copy(track) {
            return Err(SnapError::NotNeeded);
        }
        self.link(track, slot, epoch);
        Ok(())
    }

    /// Puts a record in `slot` at the head of its bucket's chain.
    fn link(&mut self, track: u64, slot: SlotNo, epoch: Epoch) {
        let b = self.bucket(track);
        let head = self.head(b);
        if let (Some(e), Some(h)) = (self.entries.get_mut(slot as usize), self.heads.get_mut(b)) {
            *e = Entry {
                track,
                epoch,
                link: head,
            };
            *h = slot;
            self.nused += 1;
        }
    }

    /// Deletes (or invalidates) snapshot `epoch`, frees every record no live
    /// snapshot needs any more, calling `freed` for each of their slots; returns
    /// how many. Record the deletion on disk first (see the module's text).
    pub fn delete(&mut self, epoch: Epoch, freed: impl FnMut(SlotNo)) -> Result<u32, SnapError> {
        let i = self
            .live()
            .binary_search(&epoch)
            .map_err(|_| SnapError::NoSnapshot)?;
        if let Some(tail) = self.live.get_mut(i..self.nlive) {
            tail.rotate_left(1);
        }
        self.nlive -= 1;
        if let Some(l) = self.live.get_mut(self.nlive) {
            *l = 0;
        }
        let mut freed = freed;
        Ok(self.sweep(|r| freed(r.slot)))
    }

    /// Frees every record whose interval holds no live snapshot. Deciding each
    /// record against the records left so far gives the same result as against
    /// the records before the sweep: a freed record's interval held no live
    /// snapshot, so merging it into the next record's interval adds none.
    fn sweep(&mut self, mut freed: impl FnMut(Record)) -> u32 {
        let mut n = 0;
        for b in 0..self.heads.len() {
            let mut prev = NIL;
            let mut at = self.head(b);
            let mut budget = self.entries.len();
            while at != NIL && budget > 0 {
                budget -= 1;
                let Some(e) = self.entries.get(at as usize).copied() else {
                    break;
                };
                let p = self.prev_epoch(e.track, e.epoch);
                if self.live_in(p, e.epoch) {
                    prev = at;
                } else {
                    // Unlink, then push on the free list.
                    match self.entries.get_mut(prev as usize) {
                        Some(pe) => pe.link = e.link,
                        None => {
                            if let Some(h) = self.heads.get_mut(b) {
                                *h = e.link;
                            }
                        }
                    }
                    let free = self.free;
                    if let Some(x) = self.entries.get_mut(at as usize) {
                        *x = Entry {
                            link: free,
                            ..Entry::EMPTY
                        };
                    }
                    self.free = at;
                    self.nfree += 1;
                    self.nused -= 1;
                    freed(Record {
                        track: e.track,
                        slot: at,
                        epoch: e.epoch,
                    });
                    n += 1;
                }
                at = e.link;
            }
        }
        n
    }

    /// Starts rebuilding a map from the store: the live snapshots (any order),
    /// the highest epoch ever opened, then each record read from disk with
    /// [`Loader::add`], and [`Loader::finish`].
    pub fn load(
        entries: E,
        heads: H,
        tracks: u64,
        newest: Epoch,
        live: &[Epoch],
    ) -> Result<Loader<E, H>, SnapError> {
        let mut m = SnapMap::new(entries, heads, tracks)?;
        if live.len() > MAX_SNAPSHOTS {
            return Err(SnapError::TooMany);
        }
        for &k in live {
            if k == 0 || k > newest {
                return Err(SnapError::Corrupt);
            }
            let at = m.live().binary_search(&k).err().ok_or(SnapError::Corrupt)?;
            let n = m.nlive;
            if let Some(l) = m.live.get_mut(at..=n) {
                l.rotate_right(1);
                if let Some(first) = l.first_mut() {
                    *first = k;
                }
            }
            m.nlive += 1;
        }
        m.newest = newest;
        // While loading, every slot is "not yet seen"; the free list is rebuilt at
        // the end.
        for e in m.entries.iter_mut() {
            *e = Entry::EMPTY;
        }
        m.free = NIL;
        m.nfree = 0;
        Ok(Loader { map: m })
    }
}

/// A map being rebuilt from the records on disk (see [`SnapMap::load`]).
pub struct Loader<E, H> {
    map: SnapMap<E, H>,
}

impl<E: DerefMut<Target = [Entry]>, H: DerefMut<Target = [u32]>> Loader<E, H> {
    /// Adds one record read from the store. Records of snapshots since deleted
    /// are expected (the store does not erase them); [`Loader::finish`] drops them.
    pub fn add(&mut self, r: Record) -> Result<(), SnapError> {
        let m = &mut self.map;
        if r.track >= m.tracks {
            return Err(SnapError::BadTrack);
        }
        if r.epoch == 0 || r.epoch > m.newest {
            return Err(SnapError::Corrupt);
        }
        if m.entries.get(r.slot as usize).map(|e| e.epoch) != Some(0) {
            return Err(if (r.slot as usize) < m.entries.len() {
                SnapError::Corrupt
            } else {
                SnapError::BadSlot
            });
        }
        if m.chain(r.track).any(|(_, e)| e.epoch == r.epoch) {
            return Err(SnapError::Corrupt);
        }
        m.link(r.track, r.slot, r.epoch);
        Ok(())
    }

    /// Drops the records no live snapshot needs (calling `dropped` for each),
    /// threads every other slot onto the free list (lowest first) and returns the
    /// map, ready for use.
    pub fn finish(self, dropped: impl FnMut(Record)) -> SnapMap<E, H> {
        let mut m = self.map;
        m.sweep(dropped);
        // The sweep pushed the dropped slots on an otherwise empty list; rebuild it
        // over every free slot in ascending order, so copies fill the store (and
        // its record blocks) from the start.
        m.free = NIL;
        m.nfree = 0;
        let n = m.slots();
        for i in (0..n).rev() {
            let free = m.free;
            if let Some(e) = m.entries.get_mut(i as usize) {
                if e.epoch == 0 {
                    *e = Entry {
                        link: free,
                        ..Entry::EMPTY
                    };
                    m.free = i;
                    m.nfree += 1;
                }
            }
        }
        m
    }
}
