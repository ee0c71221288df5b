// SPDX-License-Identifier: GPL-2.0

//! The local split copy (table option `split_dev`): a second local device kept as
//! a copy of the data device that `split` freezes into a point-in-time image,
//! `refresh` updates range by range, and `rejoin` brings back by copying only the
//! tracks written since the split. The state machine, the bitmaps and the on-disk
//! format are `rcore::split`; `Documentation/rcopy-snapshots.rst`, *Local split
//! copy*, gives the design.
//!
//! The write path: `map` asks [`SplitCopy::admit`] whether a write may go down at
//! once (its tracks' bits are already set durably and no old track must be copied
//! first). If not, the bio is handed to the split thread, which copies the old
//! tracks it must (copy-on-write), sets the bits durably, and only then lets the
//! bio go on (to the replication engine, or down).
//!
//! The copier (the same thread) works in batches of tracks. For each batch it
//! marks the tracks busy (writes to them go to the thread and wait), flips the
//! admission phase and waits until every write admitted before the flip has
//! completed, so that no write it did not see is still in flight on a track it
//! reads. It then copies the batch, flushes the copy device and clears the bits
//! durably.
//!
//! What if the machine dies here: every bit is written (FUA) *before* the write
//! it stands for may go down, and cleared only *after* the copy it stands for is
//! durable, so the bitmaps on disk always cover every difference; the copy
//! of an old track is durable (FUA) before its overwrite is submitted. A crash
//! mid-split resumes the split at the next start and ends with the image as of
//! the request. What if the disk loses its volatile cache: the copies are written
//! FUA or flushed before their bits are cleared; a lost overwrite of the original
//! leaves a bit set that needed none. What if `dmsetup reload` runs now: each
//! table has its own `SplitCopy`; the old one stops at `postsuspend` (after DM
//! has finished every bio, ours included) and the new one reads the state from
//! the device at `preresume`.
//!
//! Locking: [`SplitInner`] is guarded by the spinlock `SplitCopy::inner`: `map`
//! takes it for a few bit tests; only the split thread changes the bitmaps, the
//! busy range and the state (a message only queues a request). [`SplitIo`] is
//! guarded by the mutex `SplitCopy::io`, held by the split thread (and `start`)
//! across I/O.

use crate::blk::{self, Bdev, IoBuf};
use crate::dm::{Bio, BioList, TableRef};
use crate::engine::{Decision, Pair, PerBio};
use crate::kthread::{self, Thread};
use crate::rcore::geometry::SECTOR_SHIFT;
use crate::rcore::split::{self as fmt, Header, Layout, Loaded, Map, Mode, SplitState, BLOCK};
use core::ops::Range;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::prelude::*;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::sync::{Arc, Mutex, SpinLock};

/// Tracks the copier takes per batch.
const BATCH: u64 = 32;

/// A request a message queued for the split thread.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Req {
    /// Freeze the copy (from forming or formed).
    Split,
    /// Copy back what changed since the split (from split).
    Rejoin,
    /// Make these tracks of the copy equal the original's (from split).
    Refresh(Range<u64>),
}

/// What `map` and the split thread share. Guarded by `SplitCopy::inner`.
pub(crate) struct SplitInner {
    mode: Mode,
    /// CREATE, SPLIT and UPDATE, laid out as on the device.
    maps: IoBuf,
    /// Tracks the copier is copying: writes to them wait for it.
    busy: Range<u64>,
    /// Writes admitted now are counted in `SplitCopy::inflight[phase]`.
    phase: usize,
    req: Option<Req>,
    /// Between `start` and `stop`.
    running: bool,
    /// An I/O error: the copy is no longer kept (sticky until the next start).
    failed: bool,
}

/// The split thread's I/O state. Guarded by `SplitCopy::io`.
pub(crate) struct SplitIo {
    hdr: Header,
    /// One block, for the header and bitmap blocks.
    blk: IoBuf,
    /// One chunk of a track being copied.
    chunk: IoBuf,
    /// Where the copier goes on looking for work.
    cursor: u64,
    thread: Option<Thread>,
}

/// One table's split copy.
#[pin_data]
pub(crate) struct SplitCopy {
    data: Bdev,
    copy: Bdev,
    layout: Layout,
    track_size: u32,
    data_bytes: u64,
    /// The replication engine the writes go on to (`None`: simplex).
    pair: Option<Arc<Pair>>,
    table: TableRef,
    #[pin]
    inner: SpinLock<SplitInner>,
    #[pin]
    io: Mutex<SplitIo>,
    deferred: BioList,
    inflight: [Atomic<u64>; 2],
    task: AtomicPtr<kernel::bindings::task_struct>,
    /// Tracks copied since the table was loaded, and of those, before an overwrite.
    pub(crate) copied: Atomic<u64>,
    pub(crate) cow: Atomic<u64>,
}

/// The tag `map` puts in a write's per-bio data: the admission phase plus one
/// (0: not counted).
pub(crate) fn tag_of(phase: usize) -> u32 {
    phase as u32 + 1
}

impl SplitCopy {
    /// Checks `copy` for a split copy of an image of `data_bytes` at `track_size`
    /// (its size, and a header of the same geometry or none) and allocates the
    /// bitmaps. Constructor context; reads, writes nothing.
    ///
    /// # Safety
    ///
    /// `data` and `copy` must stay open while the result is used (the table holds
    /// them, and the split thread stops at `postsuspend` or `Drop`).
    pub(crate) unsafe fn new(
        data: Bdev,
        copy: Bdev,
        copy_bytes: u64,
        data_bytes: u64,
        track_size: u32,
        pair: Option<Arc<Pair>>,
        table: TableRef,
    ) -> Result<Arc<SplitCopy>> {
        let layout = Layout::new(data_bytes, track_size).ok_or(EINVAL)?;
        if layout.device_bytes().is_none_or(|n| n > copy_bytes) {
            pr_warn!(
                "split_dev: {} bytes needed, the device has {}\n",
                layout.device_bytes().unwrap_or(0),
                copy_bytes
            );
            return Err(EINVAL);
        }
        let mut blk = blk::iobuf(BLOCK)?;
        read_header(&copy, &layout, &mut blk, data_bytes, track_size)?;
        let maps_len = usize::try_from(layout.maps_len()).map_err(|_| EINVAL)?;
        let inner = SplitInner {
            mode: Header::new(data_bytes, track_size).mode,
            maps: blk::iobuf(maps_len)?,
            busy: 0..0,
            phase: 0,
            req: None,
            running: false,
            failed: false,
        };
        let io = SplitIo {
            hdr: Header::new(data_bytes, track_size),
            blk,
            chunk: blk::iobuf((track_size as usize).min(blk::MAX_IO))?,
            cursor: 0,
            thread: None,
        };
        Arc::pin_init(
            try_pin_init!(SplitCopy {
                data,
                copy,
                layout,
                track_size,
                data_bytes,
                pair,
                table,
                inner <- kernel::new_spinlock!(inner),
                io <- kernel::new_mutex!(io),
                deferred: BioList::new(),
                inflight: [Atomic::new(0), Atomic::new(0)],
                task: AtomicPtr::new(core::ptr::null_mut()),
                copied: Atomic::new(0),
                cow: Atomic::new(0),
            }? Error),
            GFP_KERNEL,
        )
    }

    // ------------------------------------------------------------ lifecycle

    /// Loads the state from the device (formatting a blank one) and starts the
    /// split thread. Context: `preresume`.
    pub(crate) fn start(self: &Arc<Self>) -> Result {
        let mut io = self.io.lock();
        if io.thread.is_some() {
            return Ok(());
        }
        let loaded = read_header(
            &self.copy,
            &self.layout,
            &mut io.blk,
            self.data_bytes,
            self.track_size,
        )?;
        let mut maps = core::mem::take(&mut self.inner.lock().maps);
        let r = self.load_maps(&mut io, &mut maps, loaded);
        let mode = io.hdr.mode.clone();
        {
            let mut g = self.inner.lock();
            g.maps = maps;
            g.mode = mode;
            g.busy = 0..0;
            g.req = None;
            g.failed = false;
        }
        r?;
        io.cursor = 0;
        let t = Thread::spawn(format_args!("rcopy-split"), self.clone(), split_main)?;
        self.task.store(t.task(), Ordering::Release);
        io.thread = Some(t);
        self.inner.lock().running = true;
        Ok(())
    }

    /// Reads (or formats) the bitmaps and repairs what a crash may have left.
    fn load_maps(&self, io: &mut SplitIo, maps: &mut IoBuf, loaded: Loaded) -> Result {
        let l = &self.layout;
        match loaded {
            Loaded::Blank => {
                maps.fill(0);
                l.fill_create(maps);
                io.hdr = Header::new(self.data_bytes, self.track_size);
                // Bitmaps first, then the header that makes them count.
                self.write_all_maps(maps)?;
                io.hdr.seq = 0;
                self.write_header(io)?;
                pr_info!("split_dev: new split copy, forming (copies every track)\n");
            }
            Loaded::Header(h) => {
                io.hdr = h;
                let len = maps.len();
                let mut at = 0;
                while at < len {
                    let n = (len - at).min(blk::MAX_IO);
                    let mut chunk = blk::iobuf(n)?;
                    self.copy
                        .read((l.maps_offset() + at as u64) >> SECTOR_SHIFT, &mut chunk, n)?;
                    maps[at..at + n].copy_from_slice(&chunk[..n]);
                    at += n;
                }
                // Bits past the last track mean nothing; a damaged block must not
                // make the counts lie.
                l.clear_tail(maps);
                // UPDATE only lives through a refresh: one that ended (its header
                // written) before UPDATE was folded into SPLIT is finished here.
                if io.hdr.mode.refresh.is_none() && l.count_all(maps, Map::Update) != 0 {
                    if io.hdr.mode.state == SplitState::Split {
                        l.fold_update(maps);
                    } else {
                        for t in 0..l.tracks {
                            l.put(maps, Map::Update, t, false);
                        }
                    }
                    self.write_all_maps(maps)?;
                }
                pr_info!(
                    "split_dev: split copy {}, {} tracks to copy, {} changed since the split\n",
                    io.hdr.mode.as_str(),
                    l.count_all(maps, Map::Create),
                    l.count_all(maps, Map::Split)
                );
            }
        }
        Ok(())
    }

    /// Stops the split thread. Context: `postsuspend` or the destructor; DM has
    /// completed every bio, so none waits in `deferred`.
    pub(crate) fn stop(&self) {
        let t = {
            let mut io = self.io.lock();
            self.inner.lock().running = false;
            io.thread.take()
        };
        drop(t);
        self.task.store(core::ptr::null_mut(), Ordering::Release);
    }

    fn wake(&self) {
        let t = self.task.load(Ordering::Acquire);
        if !t.is_null() {
            // SAFETY: the thread lives until `stop` clears `task` after joining it;
            // `map` runs only while the device is not suspended (before `stop`), and
            // messages wake only while `running` (checked under `inner`).
            unsafe { kernel::bindings::wake_up_process(t) };
        }
    }

    // ------------------------------------------------------------ write path

    /// Whether a write to sectors `sector .. sector + nr` of the data device may go
    /// down at once; if so it is counted as in flight and its tag returned (put it
    /// in the per-bio data; [`SplitCopy::done`] at completion). Any context.
    pub(crate) fn admit(&self, sector: u64, nr: u64) -> Option<u32> {
        let tracks = self.layout.tracks_of(sector, nr, self.track_size);
        let g = self.inner.lock();
        if g.failed || !g.running {
            // Untracked (failed), or a flush; nothing waits for the copy.
            return Some(0);
        }
        let busy = tracks.start < g.busy.end && g.busy.start < tracks.end;
        if busy
            || !tracks
                .clone()
                .all(|t| fmt::admits(&g.mode, &self.layout, &g.maps, t))
        {
            return None;
        }
        self.inflight[g.phase].add(1, Relaxed);
        Some(tag_of(g.phase))
    }

    /// Hands a write `admit` refused to the split thread. Any context.
    pub(crate) fn defer(&self, bio: &Bio<'_>) {
        self.deferred.push(bio);
        self.wake();
    }

    /// A write admitted with `tag` has completed. Any context.
    pub(crate) fn done(&self, tag: u32) {
        if let Some(c) = tag
            .checked_sub(1)
            .and_then(|p| self.inflight.get(p as usize))
        {
            c.fetch_sub(1, Relaxed);
            self.wake();
        }
    }

    /// Queues a request from a message: refused with `EBUSY` in the wrong state
    /// (or with a request pending), `EAGAIN` while suspended. Process context.
    pub(crate) fn request(&self, r: Req) -> Result {
        let mut g = self.inner.lock();
        if !g.running || g.failed {
            return Err(EAGAIN);
        }
        let ok = g.req.is_none()
            && match &r {
                Req::Split => g.mode.can_split(),
                Req::Rejoin => g.mode.can_rejoin(),
                Req::Refresh(t) => g.mode.can_rejoin() && t.start < t.end,
            };
        if !ok {
            return Err(EBUSY);
        }
        g.req = Some(r);
        drop(g);
        self.wake();
        Ok(())
    }

    /// The tracks sectors `start .. start + nr` touch; `EINVAL` past the end.
    pub(crate) fn tracks_of(&self, start: u64, nr: u64) -> Result<Range<u64>> {
        let end = start.checked_add(nr).ok_or(EINVAL)?;
        if nr == 0 || end > self.data_bytes >> SECTOR_SHIFT {
            return Err(EINVAL);
        }
        Ok(self.layout.tracks_of(start, nr, self.track_size))
    }

    /// The status words: state, CREATE count, SPLIT+UPDATE count. Any context.
    pub(crate) fn summary(&self) -> (&'static str, u64, u64) {
        let g = self.inner.lock();
        let l = &self.layout;
        // A request the thread has not taken up yet shows as the state it leads
        // to, so that a status read right after the message sees it.
        let word = match (&g.req, g.failed) {
            (_, true) => "failed",
            (Some(Req::Split), _) => "splitting",
            (Some(Req::Rejoin), _) => "forming",
            (Some(Req::Refresh(_)), _) => "refreshing",
            (None, _) => g.mode.as_str(),
        };
        (
            word,
            l.count_all(&g.maps, Map::Create),
            l.count_all(&g.maps, Map::Split) + l.count_all(&g.maps, Map::Update),
        )
    }

    // ------------------------------------------------------------ split thread

    /// Takes a refused write through: copies the old tracks it must, sets its bits
    /// durably, then admits it and hands it on. Context: the split thread.
    fn take_write(&self, io: &mut SplitIo, bio: Bio<'static>) {
        let nr = u64::from(bio.size() >> SECTOR_SHIFT);
        let sector = bio.sector();
        let tracks = self.layout.tracks_of(sector, nr, self.track_size);
        if let Err(e) = self.prepare(io, tracks) {
            self.fail(io, "copying an old track", e);
        }
        let tag = {
            let g = self.inner.lock();
            if g.failed {
                0
            } else {
                self.inflight[g.phase].add(1, Relaxed);
                tag_of(g.phase)
            }
        };
        let pb = crate::dm::per_bio_ptr::<PerBio>(&bio);
        match &self.pair {
            Some(p) => match p.map_write(&bio, sector, pb, tag) {
                Decision::Go | Decision::Kill => bio.submit_remapped(),
                Decision::Defer => {}
            },
            None => {
                // SAFETY: the per-bio data of a bio this target holds is ours.
                unsafe { pb.write(PerBio::local(tag)) };
                bio.submit_remapped();
            }
        }
    }

    /// The copy-on-write and bit setting [`fmt::write_work`] asks for `tracks`.
    fn prepare(&self, io: &mut SplitIo, tracks: Range<u64>) -> Result {
        let l = &self.layout;
        let work = |t| {
            let g = self.inner.lock();
            (!g.failed).then(|| fmt::write_work(&g.mode, l, &g.maps, t))
        };
        for t in tracks.clone() {
            let Some(w) = work(t) else { return Ok(()) };
            if let Some(m) = w.cow_from {
                self.copy_track(io, t, true)?;
                self.cow.add(1, Relaxed);
                self.copied.add(1, Relaxed);
                self.persist_bits(io, m, t..t + 1, false)?;
            }
        }
        // The marks, a run of tracks with the same bitmap at a time (a write can
        // straddle the edge of a range being refreshed).
        let mut t = tracks.start;
        while t < tracks.end {
            let Some(m) = work(t).map(|w| w.mark) else {
                return Ok(());
            };
            let mut end = t + 1;
            while end < tracks.end && work(end).map(|w| w.mark) == Some(m) {
                end += 1;
            }
            self.persist_bits(io, m, t..end, true)?;
            t = end;
        }
        Ok(())
    }

    /// Sets (or clears) bit `m` of `tracks` durably: each block is written with
    /// the change before the change is made in memory, so `map` never admits a
    /// write on a bit that is not yet on the device.
    fn persist_bits(&self, io: &mut SplitIo, m: Map, tracks: Range<u64>, v: bool) -> Result {
        let l = &self.layout;
        let mut t = tracks.start;
        while t < tracks.end {
            let b = l.block_of(m, t);
            let off = b * BLOCK;
            {
                let g = self.inner.lock();
                io.blk[..BLOCK].copy_from_slice(&g.maps[off..off + BLOCK]);
            }
            // Stage every bit of this block in the copy.
            let mut changed = false;
            let mut end = t;
            while end < tracks.end && l.block_of(m, end) == b {
                let Some((byte, mask)) = l.pos(m, end) else {
                    break;
                };
                if let Some(x) = io.blk.get_mut(byte % BLOCK) {
                    if (*x & mask != 0) != v {
                        *x ^= mask;
                        changed = true;
                    }
                }
                end += 1;
            }
            if changed {
                let sector = (l.maps_offset() + off as u64) >> SECTOR_SHIFT;
                self.copy.write(sector, &mut io.blk, BLOCK, true, false)?;
                let mut g = self.inner.lock();
                for x in t..end {
                    l.put(&mut g.maps, m, x, v);
                }
            }
            t = end;
        }
        Ok(())
    }

    /// Copies track `t` of the original to the copy (FUA when `fua`).
    fn copy_track(&self, io: &mut SplitIo, t: u64, fua: bool) -> Result {
        let ts = u64::from(self.track_size);
        let start = t * ts;
        let len = ts.min(self.data_bytes - start);
        blk::copy(
            &self.data,
            start,
            &self.copy,
            start,
            len,
            &mut io.chunk,
            fua,
        )
    }

    /// Writes the header to its next copy (FUA).
    fn write_header(&self, io: &mut SplitIo) -> Result {
        io.hdr.seq += 1;
        let mut b = [0u8; BLOCK];
        io.hdr.encode_into(&mut b);
        io.blk[..BLOCK].copy_from_slice(&b);
        let off = self.layout.header_offset((io.hdr.seq & 1) as usize);
        self.copy
            .write(off >> SECTOR_SHIFT, &mut io.blk, BLOCK, true, false)
    }

    /// Writes every bitmap block from `maps` (FUA at the end).
    fn write_all_maps(&self, maps: &mut IoBuf) -> Result {
        let len = maps.len();
        let mut at = 0;
        while at < len {
            let n = (len - at).min(blk::MAX_IO);
            let mut chunk = blk::iobuf(n)?;
            chunk[..n].copy_from_slice(&maps[at..at + n]);
            self.copy.write(
                (self.layout.maps_offset() + at as u64) >> SECTOR_SHIFT,
                &mut chunk,
                n,
                true,
                false,
            )?;
            at += n;
        }
        Ok(())
    }

    /// Writes bitmap `m`'s blocks as they are in memory (FUA).
    fn write_map(&self, io: &mut SplitIo, m: Map) -> Result {
        for b in self.layout.blocks(m) {
            let off = b * BLOCK;
            {
                let g = self.inner.lock();
                io.blk[..BLOCK].copy_from_slice(&g.maps[off..off + BLOCK]);
            }
            let sector = (self.layout.maps_offset() + off as u64) >> SECTOR_SHIFT;
            self.copy.write(sector, &mut io.blk, BLOCK, true, false)?;
        }
        Ok(())
    }

    /// Flips the admission phase and waits until every write admitted before the
    /// flip has completed.
    fn flip_and_wait(&self, busy: Range<u64>, mode: Option<Mode>) {
        let old = {
            let mut g = self.inner.lock();
            g.busy = busy;
            if let Some(m) = mode {
                g.mode = m;
            }
            let old = g.phase;
            g.phase ^= 1;
            old
        };
        let mut waited = 0u32;
        while self.inflight[old].load(Relaxed) != 0 {
            kthread::nap_ms(1);
            waited += 1;
            if waited == 30_000 {
                pr_warn!("split_dev: still waiting for writes in flight after 30 s\n");
            }
        }
    }

    /// Carries out a queued request. Returns whether there was one.
    fn run_request(&self, io: &mut SplitIo) -> Result<bool> {
        let Some(req) = self.inner.lock().req.clone() else {
            return Ok(false);
        };
        let l = &self.layout;
        match req.clone() {
            Req::Split => {
                io.hdr.mode = Mode {
                    state: SplitState::Splitting,
                    refresh: None,
                };
                io.hdr.splits += 1;
                io.hdr.split_at_ns = crate::link::now_real_ns();
                self.write_header(io)?;
                self.flip_and_wait(0..0, Some(io.hdr.mode.clone()));
                pr_info!(
                    "split_dev: splitting: {} tracks to copy as of now\n",
                    self.summary().1
                );
            }
            Req::Rejoin => {
                // CREATE |= SPLIT | UPDATE on the device first (more CREATE bits
                // are harmless while split), then the state, then the rest.
                l.create_changed(&mut self.inner.lock().maps);
                self.write_map(io, Map::Create)?;
                io.hdr.mode = Mode {
                    state: SplitState::Forming,
                    refresh: None,
                };
                self.write_header(io)?;
                {
                    let mut g = self.inner.lock();
                    g.mode = io.hdr.mode.clone();
                    l.clear_changed(&mut g.maps);
                }
                self.write_map(io, Map::Split)?;
                self.write_map(io, Map::Update)?;
                pr_info!(
                    "split_dev: rejoining: {} tracks changed since the split to copy\n",
                    self.summary().1
                );
            }
            Req::Refresh(r) => {
                io.hdr.mode = Mode {
                    state: SplitState::Split,
                    refresh: Some(r.clone()),
                };
                self.write_header(io)?;
                self.flip_and_wait(0..0, Some(io.hdr.mode.clone()));
                pr_info!("split_dev: refreshing tracks {}..{}\n", r.start, r.end);
            }
        }
        io.cursor = 0;
        self.inner.lock().req = None;
        Ok(true)
    }

    /// One batch of the background copy. Returns whether there was work.
    fn run_copier(&self, io: &mut SplitIo) -> Result<bool> {
        let l = &self.layout;
        let (work, first) = {
            let g = self.inner.lock();
            let Some((m, range)) = g.mode.copy_work(l.tracks) else {
                return Ok(false);
            };
            let from = io.cursor.clamp(range.start, range.end);
            let first = l
                .next_set(&g.maps, m, from..range.end)
                .or_else(|| l.next_set(&g.maps, m, range.start..from));
            ((m, range), first)
        };
        let (m, range) = work;
        let Some(first) = first else {
            self.settle(io)?;
            return Ok(true);
        };
        let batch = first..(first + BATCH).min(range.end);
        self.flip_and_wait(batch.clone(), None);
        let mut todo = [false; BATCH as usize];
        {
            let g = self.inner.lock();
            for (i, t) in batch.clone().enumerate() {
                todo[i] = l.get(&g.maps, m, t);
            }
        }
        let r = (|| -> Result {
            for (i, t) in batch.clone().enumerate() {
                if todo[i] {
                    self.copy_track(io, t, false)?;
                    self.copied.add(1, Relaxed);
                    io.hdr.copied += 1;
                }
            }
            self.copy.flush()?;
            // Every bit of the batch is clear now (no write could set one: its
            // tracks are busy), so one write per bitmap block clears them all.
            self.persist_bits(io, m, batch.clone(), false)
        })();
        self.inner.lock().busy = 0..0;
        r?;
        io.cursor = batch.end;
        Ok(true)
    }

    /// The copier found no more work: forming ends formed, splitting ends split, a
    /// refresh ends.
    fn settle(&self, io: &mut SplitIo) -> Result {
        let l = &self.layout;
        let was = self.inner.lock().mode.clone();
        io.hdr.mode = was.settled();
        self.write_header(io)?;
        {
            let mut g = self.inner.lock();
            g.mode = io.hdr.mode.clone();
            if was.refresh.is_some() {
                // UPDATE bits were set durably; SPLIT set in memory now is safe
                // (a crash folds UPDATE again at load).
                l.fold_update(&mut g.maps);
            }
        }
        if was.refresh.is_some() {
            self.write_map(io, Map::Split)?;
            self.write_map(io, Map::Update)?;
        }
        pr_info!(
            "split_dev: {} (tracks copied since load: {})\n",
            io.hdr.mode.as_str(),
            self.copied.load(Relaxed)
        );
        self.table.event();
        Ok(())
    }

    /// An I/O error: stop keeping the copy. Writes go on untracked; the headers
    /// are zeroed where possible, so the next start takes the device as blank and
    /// copies everything again rather than trusting bitmaps that missed writes.
    fn fail(&self, io: &mut SplitIo, what: &str, e: Error) {
        {
            let mut g = self.inner.lock();
            if g.failed {
                return;
            }
            g.failed = true;
            g.busy = 0..0;
            g.req = None;
        }
        pr_err!(
            "split_dev: {what} failed: errno {}; the split copy is no longer kept (it is copied again from scratch at the next start)\n",
            -e.to_errno()
        );
        io.blk[..BLOCK].fill(0);
        for i in 0..2 {
            let off = self.layout.header_offset(i);
            let _ = self
                .copy
                .write(off >> SECTOR_SHIFT, &mut io.blk, BLOCK, true, false);
        }
        self.table.event();
    }
}

/// Reads both header copies and picks the current one; refuses a foreign or
/// mismatched device.
fn read_header(
    copy: &Bdev,
    l: &Layout,
    blk: &mut IoBuf,
    data_bytes: u64,
    track_size: u32,
) -> Result<Loaded> {
    let mut hdrs = [const { None }; 2];
    for (i, h) in hdrs.iter_mut().enumerate() {
        copy.read(l.header_offset(i) >> SECTOR_SHIFT, blk, BLOCK)?;
        let mut b = [0u8; BLOCK];
        b.copy_from_slice(&blk[..BLOCK]);
        *h = Some(Header::decode(&b, data_bytes, track_size));
    }
    let [Some(a), Some(b)] = hdrs else {
        return Err(EINVAL);
    };
    fmt::pick(a, b).map_err(|e| {
        pr_warn!("split_dev: header refused: {e:?}\n");
        EINVAL
    })
}

/// Context: the split thread, from `start` to `stop`.
fn split_main(s: &Arc<SplitCopy>) {
    loop {
        let stopping = kthread::should_stop();
        let mut did = false;
        let mut io = s.io.lock();
        if !s.deferred.is_empty() {
            let batch = BioList::new();
            s.deferred.drain(|b| batch.push(&b));
            batch.drain(|bio| s.take_write(&mut io, bio));
            did = true;
        }
        if stopping {
            if s.deferred.is_empty() {
                break;
            }
            continue;
        }
        let failed = s.inner.lock().failed;
        if !failed {
            let r = s
                .run_request(&mut io)
                .and_then(|a| Ok(a | s.run_copier(&mut io)?));
            match r {
                Ok(a) => did |= a,
                Err(e) => s.fail(&mut io, "the split copy's I/O", e),
            }
        }
        drop(io);
        if !did {
            kthread::nap_ms(200);
        }
    }
}
