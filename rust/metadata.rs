// SPDX-License-Identifier: GPL-2.0

//! The metadata device: the superblock and the persistent dirty-track bitmap.
//!
//! The bitmap lives in memory (`bits`) and on disk. `persisted` holds the bits known
//! to be set on disk. A write that sets a bit which is not yet persisted is held back
//! until the bitmap block is on disk (FUA), so a crash never loses a set bit; a write
//! whose bits are already persisted costs no metadata I/O. Bits are cleared on disk
//! only lazily, once the peer is in sync: first the `persisted` bits are cleared, then
//! the block is read from memory and written, all under `io_lock`, so a bit set
//! concurrently is either in the written block or held back by its writer.

use crate::blk::{self, Bdev, IoBuf};
use crate::rcore::bitmap::{self, TrackBitmap};
use crate::rcore::format::{self, MetaError, Superblock};
use crate::rcore::geometry;
use core::ops::Range;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use kernel::prelude::*;
use kernel::sync::Mutex;

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
    bits: KVec<AtomicU64>,
    dirty: AtomicU64,
    persisted: KVec<AtomicU64>,
    /// Per bitmap block: memory has bits the disk lacks.
    stale: KVec<AtomicU32>,
    /// Writing the metadata failed: stop holding writes back for it.
    failed: AtomicU32,
    #[pin]
    io: Mutex<MdIo>,
}

/// What `io` protects: the superblock and a block buffer.
struct MdIo {
    sb: Superblock,
    buf: IoBuf,
}

fn zeroed_words(n: u64) -> Result<KVec<AtomicU64>> {
    let mut v = KVec::with_capacity(n as usize, GFP_KERNEL)?;
    for _ in 0..n {
        v.push(AtomicU64::new(0), GFP_KERNEL)?;
    }
    Ok(v)
}

impl Metadata {
    /// Reads (or, if the device holds no metadata, creates) the metadata for a device
    /// of `size` bytes in `track_size` tracks of pair `pair_id`.
    pub(crate) fn load(
        dev: Bdev,
        size: u64,
        track_size: u32,
        pair_id: [u8; 16],
    ) -> Result<Pin<KBox<Metadata>>, LoadError> {
        let tracks = geometry::tracks(size, track_size);
        let words = bitmap::words_for(tracks);
        let blocks = format::bitmap_blocks(tracks);
        let mut buf = blk::iobuf(format::BITMAP_BLOCK)?;
        dev.read(0, &mut buf, format::SB_BYTES)?;
        let sb_bytes: &[u8; format::SB_BYTES] = buf
            .get(..format::SB_BYTES)
            .and_then(|b| b.try_into().ok())
            .ok_or(LoadError::Io(EINVAL))?;
        let (sb, fresh) = match Superblock::decode(sb_bytes) {
            Ok(sb) => {
                sb.check(size, track_size, &pair_id)
                    .map_err(LoadError::Meta)?;
                (sb, false)
            }
            Err(MetaError::NotFormatted) => {
                let mut r = [0u64; 2];
                // SAFETY: `r` is a writable 16-byte buffer.
                unsafe { kernel::bindings::get_random_bytes(r.as_mut_ptr().cast(), 16) };
                (
                    Superblock::new(pair_id, r[0], r[1] | 1, size, track_size),
                    true,
                )
            }
            Err(e) => return Err(LoadError::Meta(e)),
        };
        let bits = zeroed_words(words)?;
        let persisted = zeroed_words(words)?;
        let mut stale = KVec::with_capacity(blocks as usize, GFP_KERNEL)?;
        for _ in 0..blocks {
            stale.push(AtomicU32::new(0), GFP_KERNEL)?;
        }
        let mut set = 0u64;
        if !fresh {
            for b in 0..blocks {
                dev.read(format::block_offset(b) >> 9, &mut buf, format::BITMAP_BLOCK)?;
                for i in 0..format::WORDS_PER_BLOCK {
                    let w = b as usize * format::WORDS_PER_BLOCK + i;
                    let Some(slot) = bits.get(w) else { break };
                    let mut v =
                        u64::from_le_bytes(buf[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
                    // Bits past the last track mean nothing.
                    let first = w as u64 * 64;
                    if first + 64 > tracks {
                        v &= (1u64 << (tracks - first)) - 1;
                    }
                    set += u64::from(v.count_ones());
                    slot.store(v, SeqCst);
                    if let Some(p) = persisted.get(w) {
                        p.store(v, SeqCst);
                    }
                }
            }
        }
        let md = KBox::pin_init(
            pin_init!(Metadata {
                dev,
                tracks,
                bits,
                dirty: AtomicU64::new(set),
                persisted,
                stale,
                failed: AtomicU32::new(0),
                io <- kernel::new_mutex!(MdIo { sb, buf }),
            }),
            GFP_KERNEL,
        )
        .map_err(|_| LoadError::Io(ENOMEM))?;
        if fresh {
            // A new device: an empty bitmap, then the superblock.
            let mut io = md.io.lock();
            io.buf.fill(0);
            for b in 0..blocks {
                let off = format::block_offset(b) >> 9;
                md.dev
                    .write(off, &mut io.buf, format::BITMAP_BLOCK, true, false)?;
            }
            drop(io);
            md.write_sb()?;
        }
        Ok(md)
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
        self.bitmap().set_range(tracks.clone());
        self.is_persisted(tracks) || self.failed.load(SeqCst) != 0
    }

    /// The metadata device failed: keep the bitmap in memory only.
    pub(crate) fn set_failed(&self) {
        self.failed.store(1, SeqCst);
    }

    /// Whether every bit of `tracks` is set on disk. Marks the blocks that are not.
    fn is_persisted(&self, tracks: Range<u64>) -> bool {
        let mut all = true;
        for t in tracks.start..tracks.end.min(self.tracks) {
            let on_disk = self
                .persisted
                .get((t / 64) as usize)
                .is_some_and(|w| w.load(SeqCst) & (1 << (t % 64)) != 0);
            if !on_disk {
                all = false;
                if let Some(s) = self.stale.get(format::block_of_track(t) as usize) {
                    s.store(1, SeqCst);
                }
            }
        }
        all
    }

    /// Writes every bitmap block whose memory has bits the disk lacks. Thread context.
    pub(crate) fn persist(&self) -> Result {
        for (b, s) in self.stale.iter().enumerate() {
            if s.swap(0, SeqCst) != 0 {
                if let Err(e) = self.write_block(b as u64, false) {
                    s.store(1, SeqCst);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Clears on disk the bits that memory no longer has (after a resync), and
    /// records in the superblock that the peer is in sync. Thread context.
    pub(crate) fn clear_synced(&self) -> Result {
        for b in 0..self.stale.len() as u64 {
            self.write_block(b, true)?;
        }
        self.update_sb(|sb| sb.bitmap_cleared())
    }

    /// Writes bitmap block `b` from memory. With `clearing`, bits clear in memory are
    /// first forgotten as persisted, so a writer setting one again waits for a write.
    fn write_block(&self, b: u64, clearing: bool) -> Result {
        let mut io = self.io.lock();
        let first = b as usize * format::WORDS_PER_BLOCK;
        let n = format::WORDS_PER_BLOCK.min(self.bits.len().saturating_sub(first));
        if clearing {
            for i in 0..n {
                if let (Some(m), Some(p)) =
                    (self.bits.get(first + i), self.persisted.get(first + i))
                {
                    p.fetch_and(m.load(SeqCst), SeqCst);
                }
            }
        }
        // Snapshot memory into the block buffer (no 4 KiB arrays on the kernel stack).
        io.buf.fill(0);
        for i in 0..n {
            let v = self.bits.get(first + i).map_or(0, |w| w.load(SeqCst));
            io.buf[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        let off = format::block_offset(b) >> 9;
        self.dev
            .write(off, &mut io.buf, format::BITMAP_BLOCK, true, false)?;
        for i in 0..n {
            let v = u64::from_le_bytes(io.buf[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
            if let Some(p) = self.persisted.get(first + i) {
                p.fetch_or(v, SeqCst);
            }
        }
        Ok(())
    }

    /// Changes the superblock and writes it (FUA).
    pub(crate) fn update_sb(&self, f: impl FnOnce(&mut Superblock)) -> Result {
        let mut io = self.io.lock();
        f(&mut io.sb);
        Self::write_sb_locked(&self.dev, &mut io, self.dirty.load(SeqCst))
    }

    fn write_sb(&self) -> Result {
        let mut io = self.io.lock();
        Self::write_sb_locked(&self.dev, &mut io, self.dirty.load(SeqCst))
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
