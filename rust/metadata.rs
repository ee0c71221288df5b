// SPDX-License-Identifier: GPL-2.0

//! The metadata device: the superblock and the persistent dirty-track bitmap.
//!
//! The bitmap lives in memory (`bits`, one bit per track: 2 MiB per TiB at 64 KiB
//! tracks, the only per-track memory) and on disk. A write that sets a bit is held
//! back until the bitmap block holding it is on disk (FUA), so a crash never loses a
//! set bit; a write whose bits are set and on disk costs no metadata I/O.
//!
//! What is on disk is known per bitmap block, not per bit: `pending` counts, per
//! block, the bits set in memory (0 to 1, under the `pending` lock) since the last
//! write of that block took its snapshot. A block write takes its snapshot and the
//! count together under the lock and subtracts the count once the write is done. So
//! a set bit is on disk whenever its block's count is zero; a write that finds a
//! count above zero (its own bit, or another writer's still in flight) is held until
//! the next [`Metadata::persist`], which writes every block with a count. This costs
//! a writer a wait only while another write's bit in the same block (32768 tracks,
//! 2 GiB) is on its way to disk.
//!
//! Bits are cleared on disk only once the peer confirmed everything
//! ([`Metadata::clear_synced`], [`Metadata::adopt`]): until then a block write ORs
//! memory into what the disk holds, so a bit the copier cleared in memory (the track
//! sent, not yet confirmed durable) survives a crash. A bit set again after a
//! clearing write's snapshot is counted and held back by its writer.
//!
//! Lifecycle (only one engine ever owns a metadata device): the constructor only
//! reads and checks ([`Metadata::open`]); the device is formatted, re-read and its
//! activity log replayed in `preresume` ([`Metadata::activate`]), after the previous
//! table (a reload) wrote everything out in its `postsuspend`
//! ([`Metadata::deactivate`]). Between the two no I/O reaches the device.
//!
//! Errors are sticky: after a failed metadata write the device no longer holds back
//! writes for it (they would wait forever), `error()` says so in the status line,
//! and the pair stops claiming crash safety.

use crate::blk::{self, Bdev, IoBuf};
use crate::rcore::activity;
use crate::rcore::bitmap::{self, TrackBitmap};
use crate::rcore::format::{self, MetaError, PairName, Superblock};
use crate::rcore::geometry;
use crate::rcore::proto;
use core::ops::Range;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use kernel::prelude::*;
use kernel::sync::{Mutex, SpinLockIrq};

/// Why the metadata could not be used.
pub(crate) enum LoadError {
    /// The metadata is not this pair's, or is corrupt.
    Meta(MetaError),
    /// Reading or writing the metadata device failed.
    Io(Error),
}

impl From<Error> for LoadError {
    fn from(e: Error) -> Self {
        LoadError::Io(e)
    }
}

impl From<kernel::alloc::AllocError> for LoadError {
    fn from(_: kernel::alloc::AllocError) -> Self {
        LoadError::Io(ENOMEM)
    }
}

/// Superblock and bitmap of one rcopy device.
#[pin_data]
pub(crate) struct Metadata {
    dev: Bdev,
    tracks: u64,
    size: u64,
    track_size: u32,
    /// The table's pair id, and its word as a superblock name (none if the format
    /// cannot hold it): what a formatted superblock carries.
    pair_id: [u8; 16],
    name: PairName,
    bits: KVVec<AtomicU64>,
    dirty: AtomicU64,
    /// Per bitmap block: bits set in memory since the snapshot of the last write of
    /// the block (see the module doc). Setting a bit of `bits` from clear to set
    /// happens under this lock; so does a block write's snapshot. Taken from any
    /// context (a write's completion marks), hence the irq-safe lock; never held
    /// across I/O.
    #[pin]
    pending: SpinLockIrq<KVVec<u32>>,
    /// Per bitmap block: memory has bits the disk lacks.
    stale: KVVec<AtomicU32>,
    /// The device held no metadata when opened: `activate` formats it.
    fresh: AtomicU32,
    /// Writing the metadata failed: stop holding writes back for it.
    failed: AtomicU32,
    #[pin]
    io: Mutex<MdIo>,
}

/// What `io` protects: the superblock, a block buffer, and the AL copy buffer.
struct MdIo {
    sb: Superblock,
    buf: IoBuf,
    al_buf: IoBuf,
    /// The next activity-log transaction number.
    al_txn: u64,
}

/// What [`Metadata::activate`] found.
pub(crate) struct Activated {
    /// The previous stop was clean.
    pub(crate) clean: bool,
    /// Extents the activity log held (marked for resync).
    pub(crate) al_extents: u32,
    /// Tracks newly marked from them.
    pub(crate) al_tracks: u64,
}

fn zeroed_words(n: u64) -> Result<KVVec<AtomicU64>> {
    let mut v = KVVec::with_capacity(n as usize, GFP_KERNEL)?;
    for _ in 0..n {
        v.push(AtomicU64::new(0), GFP_KERNEL)?;
    }
    Ok(v)
}

impl Metadata {
    /// Reads and checks the metadata for a device of `size` bytes in `track_size`
    /// tracks of the pair named `pair_word` (the table's `pair_id` word), and
    /// allocates the bitmap. Writes nothing (the constructor runs while a previous
    /// table may still own the device).
    pub(crate) fn open(
        dev: Bdev,
        size: u64,
        track_size: u32,
        pair_word: &[u8],
    ) -> Result<Pin<KBox<Metadata>>, LoadError> {
        let tracks = geometry::tracks(size, track_size);
        let words = bitmap::words_for(tracks);
        let blocks = format::bitmap_blocks(tracks);
        let mut buf = blk::iobuf(format::BITMAP_BLOCK)?;
        let pair_id = proto::pair_id_from_name(pair_word);
        let name = PairName::new(pair_word).unwrap_or(PairName::NONE);
        let (sb, fresh) = Self::read_sb(&dev, &mut buf, size, track_size, pair_id, name)?;
        let mut stale = KVVec::with_capacity(blocks as usize, GFP_KERNEL)?;
        let mut pending = KVVec::with_capacity(blocks as usize, GFP_KERNEL)?;
        for _ in 0..blocks {
            stale.push(AtomicU32::new(0), GFP_KERNEL)?;
            pending.push(0u32, GFP_KERNEL)?;
        }
        let al_buf = blk::iobuf(activity::AL_COPY_BYTES as usize)?;
        let bits = zeroed_words(words)?;
        KBox::pin_init(
            pin_init!(Metadata {
                dev,
                tracks,
                size,
                track_size,
                pair_id,
                name,
                bits,
                dirty: AtomicU64::new(0),
                pending <- kernel::new_spinlock_irq!(pending),
                stale,
                fresh: AtomicU32::new(u32::from(fresh)),
                failed: AtomicU32::new(0),
                io <- kernel::new_mutex!(MdIo { sb, buf, al_buf, al_txn: 1 }),
            }),
            GFP_KERNEL,
        )
        .map_err(|_| LoadError::Io(ENOMEM))
    }

    fn read_sb(
        dev: &Bdev,
        buf: &mut IoBuf,
        size: u64,
        track_size: u32,
        pair_id: [u8; 16],
        name: PairName,
    ) -> Result<(Superblock, bool), LoadError> {
        dev.read(0, buf, format::SB_BYTES)?;
        let sb_bytes: &[u8; format::SB_BYTES] = buf
            .get(..format::SB_BYTES)
            .and_then(|b| b.try_into().ok())
            .ok_or(LoadError::Io(EINVAL))?;
        match Superblock::decode(sb_bytes) {
            // The decoded superblock is kept whole, its name with it: only `update_sb`
            // changes it, and never the name.
            Ok(sb) => {
                sb.check(size, track_size, &pair_id)
                    .map_err(LoadError::Meta)?;
                Ok((sb, false))
            }
            Err(MetaError::NotFormatted) => {
                let mut r = [0u64; 2];
                // SAFETY: `r` is a writable 16-byte buffer.
                unsafe { kernel::bindings::get_random_bytes(r.as_mut_ptr().cast(), 16) };
                let sb = Superblock::new(pair_id, r[0], r[1] | 1, size, track_size);
                Ok((Superblock { name, ..sb }, true))
            }
            Err(e) => Err(LoadError::Meta(e)),
        }
    }

    /// Takes the device over (`preresume`; no I/O of this device is in flight):
    /// formats it if it was blank, else re-reads the superblock and bitmap (a
    /// previous table may have changed them since `open`), marks every extent the
    /// activity log holds, writes the bitmap out, empties the log, and records in the
    /// superblock that the device runs. Thread context.
    pub(crate) fn activate(&self) -> Result<Activated, LoadError> {
        let blocks = self.stale.len() as u64;
        let mut io = self.io.lock();
        let fresh = if self.fresh.load(SeqCst) != 0 {
            true
        } else {
            let (sb, fresh) = Self::read_sb(
                &self.dev,
                &mut io.buf,
                self.size,
                self.track_size,
                self.pair_id,
                self.name,
            )?;
            io.sb = sb;
            fresh
        };
        let mut out = Activated {
            clean: true,
            al_extents: 0,
            al_tracks: 0,
        };
        if fresh {
            io.buf.fill(0);
            for b in 0..blocks {
                let off = format::block_offset(b) >> 9;
                self.dev
                    .write(off, &mut io.buf, format::BITMAP_BLOCK, true, false)?;
            }
            for w in self.bits.iter() {
                w.store(0, SeqCst);
            }
            self.dirty.store(0, SeqCst);
        } else {
            let mut set = 0u64;
            for b in 0..blocks {
                self.dev.read(
                    format::block_offset(b) >> 9,
                    &mut io.buf,
                    format::BITMAP_BLOCK,
                )?;
                for i in 0..format::WORDS_PER_BLOCK {
                    let w = b as usize * format::WORDS_PER_BLOCK + i;
                    let Some(slot) = self.bits.get(w) else { break };
                    let mut v =
                        u64::from_le_bytes(io.buf[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
                    // Bits past the last track mean nothing.
                    let first = w as u64 * 64;
                    if first + 64 > self.tracks {
                        v &= (1u64 << (self.tracks - first)) - 1;
                    }
                    set += u64::from(v.count_ones());
                    slot.store(v, SeqCst);
                }
            }
            self.dirty.store(set, SeqCst);
            out.clean = io.sb.flags & format::SB_CLEAN != 0;
            let (txn, extents, shift) = self.read_al_locked(&mut io)?;
            io.al_txn = txn + 1;
            out.al_extents = extents;
            if extents > 0 {
                let ts_shift = self.track_size.trailing_zeros();
                for i in 0..extents {
                    let e = activity::entry(&io.al_buf, i);
                    let r = activity::extent_tracks(e, shift, ts_shift);
                    let r = r.start.min(self.tracks)..r.end.min(self.tracks);
                    // No writer runs yet (preresume); `persist` below writes them.
                    out.al_tracks += self.bitmap().set_range(r.clone());
                    self.mark_stale(r);
                }
            }
        }
        drop(io);
        // Marked extents reach the bitmap on disk before the log forgets them.
        self.persist()?;
        self.write_al(0, &[])?;
        self.update_sb(|sb| sb.flags &= !format::SB_CLEAN)?;
        self.fresh.store(0, SeqCst);
        Ok(out)
    }

    /// Releases the device (`postsuspend`, after the engine stopped and marked
    /// everything unconfirmed): writes the bitmap, empties the activity log, and
    /// records a clean stop. Thread context.
    pub(crate) fn deactivate(&self) -> Result {
        self.persist()?;
        self.write_al(0, &[])?;
        self.update_sb(|sb| sb.flags |= format::SB_CLEAN)
    }

    /// Reads both AL copies; leaves the newest valid one in `io.al_buf` and returns
    /// its transaction, entry count and extent shift (0, 0, 22 if none is valid).
    fn read_al_locked(&self, io: &mut MdIo) -> Result<(u64, u32, u32)> {
        let base = geometry::al_offset(self.size, self.track_size);
        let mut heads = [Err(activity::AlError::Empty); 2];
        for (c, h) in heads.iter_mut().enumerate() {
            let off = base + c as u64 * activity::AL_COPY_BYTES;
            self.dev
                .read(off >> 9, &mut io.al_buf, activity::AL_COPY_BYTES as usize)?;
            *h = activity::decode(&io.al_buf);
        }
        let Some(c) = activity::newest(heads[0], heads[1]) else {
            return Ok((0, 0, 22));
        };
        if c == 0 {
            // The buffer holds copy 1: read copy 0 again.
            self.dev
                .read(base >> 9, &mut io.al_buf, activity::AL_COPY_BYTES as usize)?;
        }
        let h = heads[c].map_err(|_| EIO)?;
        Ok((h.txn, h.count, h.extent_shift))
    }

    /// Writes an activity-log transaction recording `extents` (of `1 << shift`
    /// bytes), with FUA, into the copy its number selects. Thread context.
    pub(crate) fn write_al(&self, shift: u32, extents: &[u64]) -> Result {
        let shift = if shift == 0 { 22 } else { shift };
        let base = geometry::al_offset(self.size, self.track_size);
        let mut io = self.io.lock();
        let txn = io.al_txn;
        io.al_txn += 1;
        let len = activity::encode(&mut io.al_buf, txn, shift, extents);
        let off = base + (txn % 2) * activity::AL_COPY_BYTES;
        let r = self.dev.write(off >> 9, &mut io.al_buf, len, true, false);
        if r.is_err() {
            self.set_failed();
        }
        r
    }

    /// The metadata device's number.
    pub(crate) fn devt(&self) -> u32 {
        self.dev.devt()
    }

    /// The metadata device failed a write: the error shown in the status line.
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(SeqCst) != 0
    }

    /// The in-memory bitmap.
    pub(crate) fn bitmap(&self) -> TrackBitmap<'_> {
        TrackBitmap::new(&self.bits, self.tracks, &self.dirty)
    }

    /// A copy of the superblock.
    pub(crate) fn sb(&self) -> Superblock {
        self.io.lock().sb
    }

    /// Sets the bits of `tracks`; returns whether they are all on disk already (if not,
    /// the caller must hold its write back until [`Metadata::persist`] has run).
    /// Any context.
    pub(crate) fn mark(&self, tracks: Range<u64>) -> bool {
        let (first, last) = (tracks.start, tracks.end.min(self.tracks));
        if first >= last {
            return true;
        }
        let bm = self.bitmap();
        let mut pending = self.pending.lock();
        for t in first..last {
            if bm.set(t) {
                if let Some(c) = pending.get_mut(format::block_of_track(t) as usize) {
                    *c = c.saturating_add(1);
                }
            }
        }
        let mut all = true;
        for b in format::block_of_track(first)..=format::block_of_track(last - 1) {
            if pending.get(b as usize).is_some_and(|&c| c != 0) {
                all = false;
                if let Some(s) = self.stale.get(b as usize) {
                    s.store(1, SeqCst);
                }
            }
        }
        drop(pending);
        all || self.failed.load(SeqCst) != 0
    }

    /// ORs word `i` of a bitmap (the peer's) into memory, counted like [`Self::mark`]
    /// (a writer relying on one of these bits waits until it is on disk); returns the
    /// bits newly set. The caller persists. Thread context.
    pub(crate) fn merge_word(&self, i: u64, v: u64) -> u64 {
        let mut pending = self.pending.lock();
        let n = self.bitmap().or_word(i, v);
        if n > 0 {
            let b = format::block_of_track(i * 64) as usize;
            if let Some(c) = pending.get_mut(b) {
                *c = c.saturating_add(n as u32);
            }
            if let Some(s) = self.stale.get(b) {
                s.store(1, SeqCst);
            }
        }
        n
    }

    /// Sets every bit (a full copy), counted like [`Self::mark`]. Thread context.
    pub(crate) fn mark_all(&self) {
        if self.tracks > 0 {
            self.mark(0..self.tracks);
        }
    }

    /// Notes that the blocks holding `tracks` must be written by the next persist.
    pub(crate) fn mark_stale(&self, tracks: Range<u64>) {
        let (first, last) = (tracks.start, tracks.end.min(self.tracks));
        if first >= last {
            return;
        }
        for b in format::block_of_track(first)..=format::block_of_track(last - 1) {
            if let Some(s) = self.stale.get(b as usize) {
                s.store(1, SeqCst);
            }
        }
    }

    /// The metadata device failed: keep the bitmap in memory only.
    pub(crate) fn set_failed(&self) {
        self.failed.store(1, SeqCst);
    }

    /// Writes every bitmap block whose memory has bits the disk lacks: the stale
    /// ones, and any with a pending count (its stale flag may have been taken by a
    /// concurrent persist whose write is not done yet: a writer released after this
    /// returns must find its bits on disk). Thread context.
    pub(crate) fn persist(&self) -> Result {
        for (b, s) in self.stale.iter().enumerate() {
            let pending = self.pending.lock().get(b).is_some_and(|&c| c != 0);
            if s.swap(0, SeqCst) != 0 || pending {
                if let Err(e) = self.write_block(b as u64, false) {
                    s.store(1, SeqCst);
                    self.set_failed();
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Clears on disk the bits that memory no longer has (after a resync), and
    /// records in the superblock that a copy to the peer completed (the peer's
    /// generation is recorded when it confirms: [`Superblock::peer_caught_up`]).
    /// Thread context.
    pub(crate) fn clear_synced(&self) -> Result {
        self.write_cleared()?;
        self.update_sb(|sb| sb.flags |= format::SB_SYNCED | format::SB_PRIMARY)
    }

    /// A secondary's copy or resync from the primary at generation `gen` completed
    /// and was flushed: this side now holds that generation, consistent. Its own
    /// bitmap (what it wrote as a primary and its peer never confirmed; the primary
    /// fetched it at the handshake and copied over it) is cleared first, so a crash
    /// between the two writes leaves the bits, fetched again next time. Thread
    /// context.
    pub(crate) fn adopt(&self, gen: u64) -> Result {
        if self.bitmap().clear_all() > 0 {
            self.write_cleared()?;
        }
        self.update_sb(|sb| {
            sb.adopt(gen);
            sb.flags |= format::SB_SYNCED | format::SB_CONSISTENT;
            sb.flags &= !format::SB_PRIMARY;
        })
    }

    fn write_cleared(&self) -> Result {
        for b in 0..self.stale.len() as u64 {
            self.write_block(b, true)?;
        }
        Ok(())
    }

    /// Writes bitmap block `b`: snapshots memory together with the block's pending
    /// count, and subtracts that count once the block is on disk.
    ///
    /// Without `clearing` (setting bits: [`Self::persist`]), the block is read first
    /// and memory is ORed into it: a bit the copier cleared in memory stays set on
    /// disk until the peer confirmed the copy durable ([`Self::clear_synced`]), so a
    /// crash in between still resyncs the track. With `clearing` (everything is
    /// confirmed), memory is written as it is. Thread context.
    fn write_block(&self, b: u64, clearing: bool) -> Result {
        let mut io = self.io.lock();
        let first = b as usize * format::WORDS_PER_BLOCK;
        let n = format::WORDS_PER_BLOCK.min(self.bits.len().saturating_sub(first));
        let off = format::block_offset(b) >> 9;
        if clearing || self.fresh.load(SeqCst) != 0 {
            io.buf.fill(0);
        } else {
            self.dev.read(off, &mut io.buf, format::BITMAP_BLOCK)?;
        }
        // Snapshot memory into the block buffer (no 4 KiB arrays on the kernel stack).
        let counted = {
            let pending = self.pending.lock();
            for i in 0..n {
                let v = self.bits.get(first + i).map_or(0, |w| w.load(SeqCst));
                let d = u64::from_le_bytes(io.buf[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
                io.buf[i * 8..i * 8 + 8].copy_from_slice(&(v | d).to_le_bytes());
            }
            pending.get(b as usize).copied().unwrap_or(0)
        };
        self.dev
            .write(off, &mut io.buf, format::BITMAP_BLOCK, true, false)?;
        if counted > 0 {
            if let Some(c) = self.pending.lock().get_mut(b as usize) {
                *c -= counted.min(*c);
            }
        }
        Ok(())
    }

    /// Changes the superblock and writes it (FUA).
    pub(crate) fn update_sb(&self, f: impl FnOnce(&mut Superblock)) -> Result {
        let mut io = self.io.lock();
        f(&mut io.sb);
        let r = Self::write_sb_locked(&self.dev, &mut io, self.dirty.load(SeqCst));
        if r.is_err() {
            self.set_failed();
        }
        r
    }

    fn write_sb_locked(dev: &Bdev, io: &mut MdIo, dirty: u64) -> Result {
        io.sb.dirty_tracks = dirty;
        let sb = io.sb;
        let block: &mut [u8; format::SB_BYTES] = io
            .buf
            .get_mut(..format::SB_BYTES)
            .and_then(|b| b.try_into().ok())
            .ok_or(EINVAL)?;
        sb.encode_into(block);
        dev.write(0, &mut io.buf, format::SB_BYTES, true, true)
    }
}
