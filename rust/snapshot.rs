// SPDX-License-Identifier: GPL-2.0

//! The snapshot store of a secondary: point-in-time images of its data device,
//! kept by copy-on-write into an exception store device (the table's
//! `snap_store`). See `Documentation/rcopy-snapshots.rst` for the design, and
//! `rcore::snapmap` and `rcore::snapstore` for the map and the on-disk format.
//!
//! - A snapshot opens when the secondary's apply reaches a marker in the
//!   primary's ordered stream ([`Store::open`]): everything before it applied and
//!   flushed, nothing after it applied yet.
//! - Before the apply overwrites a track for the first time since the newest
//!   snapshot opened, [`Store::before_write`] copies the old track to a free slot
//!   and makes the record durable; only then does the overwrite go down.
//! - Snapshot devices (`rcopy-snap` targets, `snaptarget.rs`) read through
//!   [`Store::route`]: each track from its slot if it was copied, else from the
//!   data device.
//!
//! What if the machine dies between any two writes of a copy: see
//! `rcore::snapstore` (the module text walks through each write). What if the
//! store fills up: the snapshots that needed the copy are invalidated (recorded
//! in the store's superblock first) and the apply goes on; replication never
//! waits for the store. What if a table reload runs: the store is shared by every
//! table that names it (`registry::find_store`), so a reload keeps the map in
//! memory and never loads it twice.
//!
//! Locking: [`StoreInner`] is guarded by the mutex `Store::inner`. The apply
//! thread holds it across a copy's I/O (the data device and the store, never a
//! snapshot device), snapshot devices hold it only to look a track up, messages
//! hold it for a listing, a deletion or a rollback. Reads of the data device that
//! a snapshot device has in flight are counted in `Store::live_reads` (per bucket
//! of tracks), outside the lock.

use crate::blk::{self, Bdev, IoBuf};
use crate::rcore::geometry::SECTOR_SHIFT;
use crate::rcore::snapmap::{Entry, Epoch, Record, SlotNo, SnapMap, Where, MAX_SNAPSHOTS};
use crate::rcore::snapstore::{self as store, SnapInfo, SnapState, StoreError, StoreSb, BLOCK};
use core::fmt::Write;
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

/// Buckets of tracks for the count of snapshot-device reads of the data device.
const LIVE_BUCKETS: usize = 64;

type Map = SnapMap<KVVec<Entry>, KVVec<u32>>;

/// The state guarded by `Store::inner`.
pub(crate) struct StoreInner {
    sb: KBox<StoreSb>,
    map: Map,
    /// Per record block: the sequence number of its current copy (0: never written).
    rec_seq: KVVec<u64>,
    /// One block, for the superblock and record blocks.
    blk: IoBuf,
    /// One chunk of a track being copied.
    chunk: IoBuf,
    /// Open snapshot devices, per epoch: (epoch, count).
    users: [(Epoch, u32); MAX_SNAPSHOTS],
}

/// One exception store, shared by the tables that name it.
#[pin_data]
pub(crate) struct Store {
    /// The store device. Every table holding this store has it open.
    dev: Bdev,
    /// The data device whose tracks are kept. Every table holding this store has
    /// it open.
    data: Bdev,
    pub(crate) devt: u32,
    pub(crate) data_devt: u32,
    track_size: u32,
    tracks: u64,
    #[pin]
    inner: Mutex<StoreInner>,
    live_reads: [AtomicU32; LIVE_BUCKETS],
}

fn store_err(e: StoreError) -> Error {
    match e {
        StoreError::TableFull => ENOSPC,
        StoreError::NoSnapshot => ENOENT,
        _ => EINVAL,
    }
}

/// The first `BLOCK` bytes of `buf`, as a block.
fn block_of(buf: &mut IoBuf) -> Result<&mut [u8; BLOCK]> {
    buf.get_mut(..BLOCK)
        .and_then(|b| b.try_into().ok())
        .ok_or(EINVAL)
}

/// The epochs of the table's snapshots that `keep` selects, and how many.
fn select_locked(
    g: &StoreInner,
    keep: impl Fn(&SnapInfo) -> bool,
) -> ([Epoch; MAX_SNAPSHOTS], usize) {
    let mut out = [0 as Epoch; MAX_SNAPSHOTS];
    let mut n = 0;
    for s in g.sb.snaps.iter().filter(|s| s.epoch != 0 && keep(s)) {
        if let Some(o) = out.get_mut(n) {
            *o = s.epoch;
            n += 1;
        }
    }
    (out, n)
}

/// Why a store could not be used.
pub(crate) enum OpenError {
    /// Not a store, or another device's.
    Store(StoreError),
    /// I/O or memory.
    Io(Error),
}

impl From<Error> for OpenError {
    fn from(e: Error) -> Self {
        OpenError::Io(e)
    }
}

impl From<kernel::alloc::AllocError> for OpenError {
    fn from(_: kernel::alloc::AllocError) -> Self {
        OpenError::Io(ENOMEM)
    }
}

impl Store {
    /// Reads the store on `dev` for the data device `data` (`device_bytes`,
    /// `track_size`, the pair `pair_id`) and rebuilds its map. Constructor context.
    ///
    /// # Safety
    ///
    /// Every holder of the result must keep `dev` and `data` open.
    pub(crate) unsafe fn load(
        dev: Bdev,
        data: Bdev,
        device_bytes: u64,
        track_size: u32,
        pair_id: &[u8; 16],
    ) -> Result<Arc<Store>, OpenError> {
        let mut blk = blk::iobuf(BLOCK)?;
        // The two superblock copies: the valid one with the higher sequence.
        let mut sb = KBox::new(StoreSb::new(0, [0; 16], 0, 0, 0), GFP_KERNEL)?;
        let mut other = KBox::new(StoreSb::new(0, [0; 16], 0, 0, 0), GFP_KERNEL)?;
        dev.read(0, &mut blk, BLOCK)?;
        let a = sb.decode_into(block_of(&mut blk)?).map(|()| sb.seq);
        dev.read((BLOCK as u64) >> SECTOR_SHIFT, &mut blk, BLOCK)?;
        let b = other.decode_into(block_of(&mut blk)?).map(|()| other.seq);
        match store::pick(a, b).map_err(OpenError::Store)? {
            Some(0) => {}
            Some(_) => core::mem::swap(&mut sb, &mut other),
            None => return Err(OpenError::Store(a.err().unwrap_or(StoreError::Empty))),
        }
        drop(other);
        sb.check(device_bytes, track_size, pair_id)
            .map_err(OpenError::Store)?;
        let tracks = device_bytes.div_ceil(u64::from(track_size));
        let slots = sb.slot_count;
        let mut entries = KVVec::with_capacity(slots as usize, GFP_KERNEL)?;
        entries.resize(slots as usize, Entry::EMPTY, GFP_KERNEL)?;
        let nbuckets = (slots as usize / 2).max(1);
        let mut heads = KVVec::with_capacity(nbuckets, GFP_KERNEL)?;
        heads.resize(nbuckets, 0u32, GFP_KERNEL)?;
        let mut live = [0; MAX_SNAPSHOTS];
        let nlive = sb.live(&mut live);
        let mut loader = SnapMap::load(entries, heads, tracks, sb.newest_epoch, &live[..nlive])
            .map_err(|_| OpenError::Store(StoreError::Corrupt))?;
        let nblocks = store::record_blocks(slots);
        let mut rec_seq = KVVec::with_capacity(nblocks as usize, GFP_KERNEL)?;
        let mut blk2 = blk::iobuf(BLOCK)?;
        for b in 0..nblocks {
            dev.read(store::record_offset(b, 0) >> SECTOR_SHIFT, &mut blk, BLOCK)?;
            dev.read(store::record_offset(b, 1) >> SECTOR_SHIFT, &mut blk2, BLOCK)?;
            let h0 = store::decode_records(block_of(&mut blk)?, &sb, b, tracks).map(|h| h.seq);
            let h1 = store::decode_records(block_of(&mut blk2)?, &sb, b, tracks).map(|h| h.seq);
            let (seq0, seq1) = (h0.unwrap_or(0), h1.unwrap_or(0));
            let pick = store::pick(h0, h1).map_err(OpenError::Store)?;
            let (cur, seq) = match pick {
                None => {
                    // Nothing usable: the next write must still go above any copy
                    // a torn write left with a higher sequence number.
                    rec_seq.push(seq0.max(seq1), GFP_KERNEL)?;
                    continue;
                }
                Some(0) => (&mut blk, seq0),
                Some(_) => (&mut blk2, seq1),
            };
            rec_seq.push(seq.max(seq0).max(seq1), GFP_KERNEL)?;
            let cur = block_of(cur)?;
            for j in 0..store::RECORDS_PER_BLOCK {
                if let Some(r) = store::record_in(cur, j) {
                    loader
                        .add(r)
                        .map_err(|_| OpenError::Store(StoreError::Corrupt))?;
                }
            }
        }
        let map = loader.finish(|_| ());
        let chunk = blk::iobuf((track_size as usize).min(blk::MAX_IO))?;
        let inner = StoreInner {
            sb,
            map,
            rec_seq,
            blk,
            chunk,
            users: [(0, 0); MAX_SNAPSHOTS],
        };
        let (devt, data_devt) = (dev.devt(), data.devt());
        Arc::pin_init(
            try_pin_init!(Store {
                dev,
                data,
                devt,
                data_devt,
                track_size,
                tracks,
                inner <- kernel::new_mutex!(inner),
                live_reads: [const { AtomicU32::new(0) }; LIVE_BUCKETS],
            }? Error),
            GFP_KERNEL,
        )
        .map_err(OpenError::Io)
    }

    /// Sectors in a track.
    pub(crate) fn track_sectors(&self) -> u64 {
        u64::from(self.track_size) >> SECTOR_SHIFT
    }

    /// Writes the superblock (the next copy, FUA). Caller holds `inner`.
    fn write_sb_locked(&self, g: &mut StoreInner) -> Result {
        g.sb.seq += 1;
        let seq = g.sb.seq;
        let StoreInner { sb, blk, .. } = g;
        sb.encode_into(block_of(blk)?);
        let sector = (u64::from(store::copy_for(seq)) * BLOCK as u64) >> SECTOR_SHIFT;
        self.dev.write(sector, blk, BLOCK, true, false)
    }

    /// Opens a snapshot at this point of the stream (the caller applied and
    /// flushed everything before the marker, and applies nothing after it until
    /// this returns). Context: the secondary's apply thread.
    pub(crate) fn open(&self, name: &[u8], stream_seq: u64, gen: u64, flags: u8) -> Result<Epoch> {
        let mut g = self.inner.lock();
        let mut info = SnapInfo::NONE;
        info.state = SnapState::Ready;
        info.flags = flags;
        info.stream_seq = stream_seq;
        info.gen = gen;
        info.created_ns = crate::link::now_real_ns();
        let n = name.len().min(info.name.len());
        info.name[..n].copy_from_slice(&name[..n]);
        let epoch = g.sb.add(info).map_err(store_err)?;
        if let Err(e) = self.write_sb_locked(&mut g) {
            // Not on disk: not taken. The epoch stays used (never reused).
            let _ = g.sb.remove(epoch);
            return Err(e);
        }
        if g.map.open(epoch).is_err() {
            // The map has room whenever the table had (invalid snapshots take a
            // table entry and no map entry), and the apply thread never leaves a
            // copy half done: not reached. Undo on disk rather than lie.
            let _ = g.sb.remove(epoch);
            let _ = self.write_sb_locked(&mut g);
            return Err(EINVAL);
        }
        Ok(epoch)
    }

    /// Before the apply overwrites `tracks` (a range of track numbers): copies each
    /// track some live snapshot still reads from the data device, and waits for
    /// snapshot devices' reads of those tracks that are in flight. Context: the
    /// secondary's apply thread (the only writer of the data device).
    pub(crate) fn before_write(&self, tracks: core::ops::Range<u64>, name: &str) {
        if tracks.is_empty() {
            return;
        }
        let mut copied = false;
        {
            let mut g = self.inner.lock();
            if g.map.newest_live().is_none() {
                return;
            }
            for t in tracks.clone() {
                if !g.map.needs_copy(t) {
                    continue;
                }
                let why = match g.map.reserve() {
                    None => "the store is full",
                    Some(slot) => match self.copy_locked(&mut g, t, slot) {
                        Ok(()) => {
                            copied = true;
                            continue;
                        }
                        Err(_) => {
                            let _ = g.map.release(slot);
                            "copying the track to the store failed"
                        }
                    },
                };
                self.invalidate_needing_locked(&mut g, t, why, name);
            }
        }
        if copied {
            // A snapshot device that looked one of these tracks up before the copy
            // was recorded reads the data device: let that read finish first.
            // Lookups made since find the slot.
            for t in tracks {
                let b = &self.live_reads[(t % LIVE_BUCKETS as u64) as usize];
                while b.load(Ordering::Acquire) != 0 {
                    crate::kthread::sleep_ms(1);
                }
            }
        }
    }

    /// Copies one track from byte `from` of `src` to byte `to` of `dst` through
    /// `chunk` (no flush). Caller holds `inner`.
    fn copy_track(&self, chunk: &mut IoBuf, src: &Bdev, from: u64, dst: &Bdev, to: u64) -> Result {
        blk::copy(src, from, dst, to, u64::from(self.track_size), chunk, false)
    }

    /// Copies track `t` to `slot` and makes the record durable (see the crash
    /// analysis in `rcore::snapstore`). Caller holds `inner`.
    fn copy_locked(&self, g: &mut StoreInner, t: u64, slot: SlotNo) -> Result {
        let ts = u64::from(self.track_size);
        let dst = store::slot_offset(g.sb.slot_count, self.track_size, slot);
        self.copy_track(&mut g.chunk, &self.data, t * ts, &self.dev, dst)?;
        let epoch = g.map.newest_live().ok_or(EINVAL)?;
        let b = store::block_of_slot(slot);
        let seq = g.rec_seq.get(b as usize).copied().ok_or(EINVAL)? + 1;
        let StoreInner { sb, map, blk, .. } = g;
        let pending = Record {
            track: t,
            slot,
            epoch,
        };
        store::encode_records(block_of(blk)?, sb.store_id, b, seq, |s| {
            if s == slot {
                Some(pending)
            } else {
                map.record_at(s)
            }
        });
        // PREFLUSH: the copied data is on stable media before the record names it.
        let at = store::record_offset(b, store::copy_for(seq)) >> SECTOR_SHIFT;
        self.dev.write(at, blk, BLOCK, true, true)?;
        if let Some(s) = g.rec_seq.get_mut(b as usize) {
            *s = seq;
        }
        g.map.record(t, slot).map_err(|_| EINVAL)
    }

    /// The store could not keep track `t` for the snapshots that need it: they
    /// become invalid (on disk first), and their records are freed. Caller holds
    /// `inner`.
    fn invalidate_needing_locked(&self, g: &mut StoreInner, t: u64, why: &str, name: &str) {
        let mut need = [0 as Epoch; MAX_SNAPSHOTS];
        let n = g.map.needing(t, &mut need);
        self.invalidate_locked(g, &need[..n], format_args!("{why} (track {t})"), name);
    }

    /// Invalidates every ready snapshot (on disk first): the data device is about
    /// to be written without copies. Process context.
    pub(crate) fn invalidate_all(&self, name: &str, why: &str) {
        let mut g = self.inner.lock();
        let (live, n) = select_locked(&g, |s| s.state == SnapState::Ready);
        self.invalidate_locked(&mut g, &live[..n], format_args!("{why}"), name);
    }

    /// Marks `epochs` invalid in the superblock, writes it, then frees their
    /// records. Caller holds `inner`.
    fn invalidate_locked(
        &self,
        g: &mut StoreInner,
        epochs: &[Epoch],
        why: core::fmt::Arguments<'_>,
        name: &str,
    ) {
        if epochs.is_empty() {
            return;
        }
        for &e in epochs {
            if let Some(s) = g.sb.find_mut(e) {
                s.state = SnapState::Invalid;
            }
        }
        if let Err(err) = self.write_sb_locked(g) {
            pr_err!(
                "{name}: writing the snapshot store superblock failed: errno {}\n",
                -err.to_errno()
            );
        }
        for &e in epochs {
            let _ = g.map.delete(e, |_| ());
            pr_warn!("{name}: snapshot {e} is no longer valid: {why}\n");
        }
    }

    /// Where snapshot `epoch` reads `track`: `None` for the live data device (a
    /// read counted until [`Store::end_live_read`]), else the sector of the
    /// track's slot on the store device. Context: a snapshot device's `map`.
    pub(crate) fn route(&self, epoch: Epoch, track: u64) -> Result<Option<u64>> {
        let g = self.inner.lock();
        match g.map.lookup(epoch, track).map_err(|_| EIO)? {
            Where::Live => {
                self.live_reads[(track % LIVE_BUCKETS as u64) as usize]
                    .fetch_add(1, Ordering::AcqRel);
                Ok(None)
            }
            Where::Slot(slot) => Ok(Some(
                store::slot_offset(g.sb.slot_count, self.track_size, slot) >> SECTOR_SHIFT,
            )),
        }
    }

    /// A read [`Store::route`] sent to the data device completed. Any context.
    pub(crate) fn end_live_read(&self, track: u64) {
        self.live_reads[(track % LIVE_BUCKETS as u64) as usize].fetch_sub(1, Ordering::AcqRel);
    }

    /// A snapshot device opens snapshot `epoch` (refused unless it is ready).
    pub(crate) fn get(&self, epoch: Epoch) -> Result {
        let mut g = self.inner.lock();
        if !g.map.is_live(epoch) {
            return Err(ENOENT);
        }
        if let Some(u) = g.users.iter_mut().find(|u| u.0 == epoch && u.1 > 0) {
            u.1 += 1;
        } else if let Some(u) = g.users.iter_mut().find(|u| u.1 == 0) {
            *u = (epoch, 1);
        } else {
            return Err(EBUSY);
        }
        Ok(())
    }

    /// A snapshot device of `epoch` closed.
    pub(crate) fn put(&self, epoch: Epoch) {
        let mut g = self.inner.lock();
        if let Some(u) = g.users.iter_mut().find(|u| u.0 == epoch && u.1 > 0) {
            u.1 -= 1;
        }
    }

    /// Records the primary's image sum at snapshot `epoch`'s marker (a `MARK_SUM`
    /// marker): in the superblock (FUA) before the secondary confirms it.
    /// `ENOENT` for no such snapshot. Context: the apply thread.
    pub(crate) fn set_sum(&self, epoch: Epoch, sum: &[u8; store::CHECKSUM_LEN]) -> Result {
        let mut g = self.inner.lock();
        let s = g.sb.find_mut(epoch).ok_or(ENOENT)?;
        s.checksum = *sum;
        s.flags |= store::SNAP_CHECKSUM;
        self.write_sb_locked(&mut g)
    }

    /// Deletes snapshot `epoch` (refused while a snapshot device reads it).
    /// Context: a message.
    pub(crate) fn delete(&self, epoch: Epoch) -> Result {
        let mut g = self.inner.lock();
        if g.users.iter().any(|u| u.0 == epoch && u.1 > 0) {
            return Err(EBUSY);
        }
        g.sb.remove(epoch).map_err(store_err)?;
        // On disk first: a freed slot is reused only once no superblock names it.
        self.write_sb_locked(&mut g)?;
        if g.map.is_live(epoch) {
            let _ = g.map.delete(epoch, |_| ());
        }
        Ok(())
    }

    /// Deletes the snapshots taken before a resync (it completed: the image is
    /// consistent again). One a snapshot device reads is kept. Context: the
    /// secondary's receive thread.
    pub(crate) fn delete_before_resync(&self, name: &str) {
        let (epochs, n) = select_locked(&self.inner.lock(), |s| {
            s.flags & store::SNAP_BEFORE_RESYNC != 0
        });
        for &e in &epochs[..n] {
            match self.delete(e) {
                Ok(()) => pr_info!("{name}: resync done: pre-resync snapshot {e} deleted\n"),
                Err(err) => pr_warn!(
                    "{name}: resync done: pre-resync snapshot {e} kept: errno {}\n",
                    -err.to_errno()
                ),
            }
        }
    }

    /// The newest ready consistency point and when it was made (wall clock, ns).
    pub(crate) fn newest_point(&self) -> Option<(Epoch, u64)> {
        let g = self.inner.lock();
        g.sb.snaps
            .iter()
            .filter(|s| {
                s.epoch != 0 && s.state == SnapState::Ready && s.flags & store::SNAP_POINT != 0
            })
            .max_by_key(|s| s.epoch)
            .map(|s| (s.epoch, s.created_ns))
    }

    /// Deletes the consistency points older than `epoch` (a newer one is complete).
    /// Context: the secondary's apply thread.
    pub(crate) fn delete_points_before(&self, epoch: Epoch, name: &str) {
        let (old, n) = select_locked(&self.inner.lock(), |s| {
            s.epoch < epoch && s.flags & store::SNAP_POINT != 0
        });
        for &e in &old[..n] {
            if let Err(err) = self.delete(e) {
                pr_warn!(
                    "{name}: consistency point {e} kept: errno {}\n",
                    -err.to_errno()
                );
            }
        }
    }

    /// Lists the snapshots, one per line: epoch, name (`-` if none), state, flags
    /// (`before-resync`), creation time (ns since the epoch), stream sequence
    /// number, generation. Context: a message.
    pub(crate) fn list(&self, out: &mut impl Write) -> core::fmt::Result {
        let g = self.inner.lock();
        let mut snaps: KVec<SnapInfo> = KVec::new();
        for s in g.sb.snaps.iter().filter(|s| s.epoch != 0) {
            if snaps.push(*s, GFP_KERNEL).is_err() {
                break;
            }
        }
        snaps.sort_unstable_by_key(|s| s.epoch);
        for s in snaps.iter() {
            let name = core::str::from_utf8(s.name()).unwrap_or("?");
            let hex = crate::rcore::imagesum::hex(&s.checksum);
            let sum = if s.flags & store::SNAP_CHECKSUM != 0 {
                core::str::from_utf8(&hex).unwrap_or("-")
            } else {
                "-"
            };
            writeln!(
                out,
                "{} {} {} {} {} {} {:016x} {}",
                s.epoch,
                if name.is_empty() { "-" } else { name },
                match s.state {
                    SnapState::Ready => "ready",
                    SnapState::Invalid => "invalid",
                },
                if s.flags & store::SNAP_BEFORE_RESYNC != 0 {
                    "before-resync"
                } else if s.flags & store::SNAP_POINT != 0 {
                    "point"
                } else {
                    "-"
                },
                s.created_ns,
                s.stream_seq,
                s.gen,
                sum
            )?;
        }
        Ok(())
    }

    /// The epoch of the snapshot named `name`, or the number `name` spells.
    pub(crate) fn resolve(&self, name: &[u8]) -> Option<Epoch> {
        let g = self.inner.lock();
        if let Some(s) =
            g.sb.snaps
                .iter()
                .find(|s| s.epoch != 0 && !name.is_empty() && s.name() == name)
        {
            return Some(s.epoch);
        }
        let n = crate::rcore::table::parse_u64(name)?;
        let e = Epoch::try_from(n).ok()?;
        g.sb.find(e).map(|s| s.epoch)
    }

    /// Writes snapshot `epoch`'s image back onto the data device, calling
    /// `restored` for each track it rewrites, then deletes every newer snapshot
    /// (they no longer describe this device). The engine must be stopped: nothing
    /// else writes the data device meanwhile. Context: a message.
    pub(crate) fn rollback(&self, epoch: Epoch, mut restored: impl FnMut(u64)) -> Result<u64> {
        let mut g = self.inner.lock();
        if !g.map.is_live(epoch) {
            return Err(ENOENT);
        }
        // The newer snapshots are deleted below: none may be in use. The snapshot
        // itself and older ones stay valid (their slots are only read).
        if g.users.iter().any(|u| u.0 > epoch && u.1 > 0) {
            return Err(EBUSY);
        }
        let ts = u64::from(self.track_size);
        let slots = g.sb.slot_count;
        let mut n = 0u64;
        for slot in 0..slots {
            let Some(r) = g.map.record_at(slot) else {
                continue;
            };
            if g.map.lookup(epoch, r.track) != Ok(Where::Slot(slot)) {
                continue;
            }
            let src = store::slot_offset(slots, self.track_size, slot);
            self.copy_track(&mut g.chunk, &self.dev, src, &self.data, r.track * ts)?;
            restored(r.track);
            n += 1;
        }
        self.data.flush()?;
        // Newer snapshots described the data device as it was; it is not any more.
        let (newer, k) = select_locked(&g, |s| s.epoch > epoch);
        for &e in &newer[..k] {
            let _ = g.sb.remove(e);
        }
        self.write_sb_locked(&mut g)?;
        for &e in &newer[..k] {
            if g.map.is_live(e) {
                let _ = g.map.delete(e, |_| ());
            }
        }
        Ok(n)
    }

    /// Tracks of the data device.
    pub(crate) fn tracks(&self) -> u64 {
        self.tracks
    }
}
