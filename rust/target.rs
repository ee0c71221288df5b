// SPDX-License-Identifier: GPL-2.0

//! The `rcopy` target: table parsing, I/O mapping, status and messages.
//!
//! In simplex (no peer configured) every bio is remapped to the data device at the
//! same offset; flushes, FUA, discards and write-zeroes pass through unchanged.

use crate::blk::Bdev;
use crate::dm::{
    Bio, CtrError, DevCallout, DmDev, EndIo, MapResult, Op, OutBuf, StatusKind, Target, TargetOps,
};
use crate::engine::{Completion, Config, Decision, Pair, PerBio};
use crate::link::now_real_ns;
use crate::metadata::{LoadError, Metadata};
use crate::rcore::proto::{self, Mark};
use crate::rcore::{geometry, status, table};
use crate::registry;
use crate::snapshot::{OpenError, Store};
use crate::split::{Req, SplitCopy};
use crate::tlog::MarkOutcome;
use core::fmt::Write;
use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::sync::Arc;

/// The module's version, as `version` reports it.
pub(crate) const VERSION_STR: &str = "0.1.0";
/// Replication wire protocol version (the one this module speaks in its HELLO).
pub(crate) const PROTOCOL_VERSION: u32 = crate::rcore::proto::PROTO_VERSION;
/// On-disk metadata format version.
pub(crate) const METADATA_VERSION: u32 = crate::rcore::format::META_VERSION;

/// Bio counters shown in the status line.
struct Counters {
    reads: Atomic<u64>,
    writes: Atomic<u64>,
    flushes: Atomic<u64>,
    discards: Atomic<u64>,
    write_zeroes: Atomic<u64>,
    io_errors: Atomic<u64>,
}

impl Counters {
    fn new() -> Self {
        Self {
            reads: Atomic::new(0),
            writes: Atomic::new(0),
            flushes: Atomic::new(0),
            discards: Atomic::new(0),
            write_zeroes: Atomic::new(0),
            io_errors: Atomic::new(0),
        }
    }

    fn all(&self) -> [&Atomic<u64>; 6] {
        [
            &self.reads,
            &self.writes,
            &self.flushes,
            &self.discards,
            &self.write_zeroes,
            &self.io_errors,
        ]
    }
}

/// Devices claimed in the registry (the first `.1` of them); released on drop.
struct Claim([u32; 4], usize);

impl Drop for Claim {
    fn drop(&mut self) {
        registry::release(&self.0[..self.1]);
    }
}

/// A snapshot store this table holds (in the registry); let go of on drop.
struct HeldStore(Arc<Store>);

impl Drop for HeldStore {
    fn drop(&mut self) {
        registry::release_store(&self.0);
    }
}

/// One rcopy target.
///
/// Lifecycle: `new` (the constructor) parses, opens the devices and reads the
/// metadata, writing nothing; `preresume` starts the engine, `postsuspend` stops it
/// (see `engine.rs`); `Drop` (the destructor) stops it if DM never suspended it.
///
/// A reload whose table differs from the live one only in `resync_rate` or
/// `timeout_ms` keeps the running engine (`registry::adopt_pair`): both tables
/// hold it, the old table's `postsuspend` leaves it running, the new table's
/// `preresume` hands it the new options, and whichever table is destroyed last
/// stops it. The connection, the cache and a copy in progress carry on.
pub(crate) struct Rcopy {
    /// The replication engine; `None` in simplex. Declared first: it is stopped (in
    /// `Drop`) before the devices it uses are released.
    pair: Option<Arc<Pair>>,
    /// The local split copy (`split_dev`), stopped before its devices are released.
    split: Option<Arc<SplitCopy>>,
    /// The snapshot store, held until the engine above has stopped.
    store: Option<HeldStore>,
    data: DmDev,
    meta: DmDev,
    /// The `snap_store` device.
    store_dev: Option<DmDev>,
    /// The `split_dev` device.
    split_dev: Option<DmDev>,
    track_size: u32,
    /// This table's `resync_rate` and `timeout_ms`, given to the engine at
    /// `preresume` (an adopted engine may still run with the old table's).
    resync_rate: u64,
    timeout_ms: u32,
    table: crate::dm::TableRef,
    counters: Counters,
    _claim: Claim,
}

impl Drop for Rcopy {
    fn drop(&mut self) {
        if let Some(s) = &self.split {
            s.stop();
        }
        if let Some(p) = &self.pair {
            // The last table holding the engine stops it.
            if registry::release_pair(p) {
                p.stop();
            }
        }
    }
}

/// The secret as `dmsetup table` shows it.
const HIDDEN_SECRET: &[u8] = b"-";

fn inval(e: table::TableError) -> CtrError {
    CtrError::inval(e.reason())
}

/// The devices a table opened, and the store it holds.
struct Devs {
    data: DmDev,
    meta: DmDev,
    store_dev: Option<DmDev>,
    store: Option<HeldStore>,
    split_dev: Option<DmDev>,
}

/// The `snap_store` word of the table, NUL-terminated (the constructor's words
/// are C strings: the word and its NUL are contiguous).
fn args_store_word<'a>(args: &[&'a CStr], option: &[u8]) -> Option<&'a [u8]> {
    let i = args.iter().position(|a| a.to_bytes() == option)?;
    args.get(i + 1).map(|w| w.to_bytes_with_nul())
}

/// Looks up the device an option names (`snap_store`, `split_dev`), if the
/// table gives one (`value` parsed, empty for none); it must differ from the
/// devices in `taken`. Constructor context.
fn option_device(
    ti: &mut Target<'_>,
    args: &[&CStr],
    (option, value): (&[u8], &[u8]),
    bad: table::TableError,
    lookup: table::TableError,
    taken: &[u32],
) -> Result<Option<DmDev>, CtrError> {
    if value.is_empty() {
        return Ok(None);
    }
    let Ok(path) = CStr::from_bytes_with_nul(args_store_word(args, option).unwrap_or(b"\0")) else {
        return Err(inval(bad));
    };
    let d = ti.get_device(path).map_err(|err| CtrError {
        err,
        reason: lookup.reason(),
    })?;
    if taken.contains(&d.devt()) {
        return Err(inval(table::TableError::SameDevice));
    }
    Ok(Some(d))
}

impl Rcopy {
    /// The snapshot store on `dev` for this table's data device: the one another
    /// table of this host already holds (a reload, or a snapshot device), else
    /// loaded from the device. Constructor context.
    fn hold_store(cfg: &Config, data: &DmDev, dev: &DmDev) -> Result<Arc<Store>, CtrError> {
        if let Some(s) = registry::find_store(dev.devt()) {
            if s.data_devt != data.devt() {
                registry::release_store(&s);
                return Err(inval(table::TableError::StoreInvalid));
            }
            return Ok(s);
        }
        let pair_id = crate::rcore::proto::pair_id_from_name(&cfg.pair_word);
        // SAFETY: every table that holds the store (registry) has both devices
        // open: this one (`dev` and `data` are moved into it) and any snapshot
        // device (which opens both); the store does I/O only for the engine and
        // for messages of a table that holds it.
        let s = unsafe {
            Store::load(
                Bdev::new(dev),
                Bdev::new(data),
                cfg.size_bytes,
                cfg.track_size,
                &pair_id,
            )
        }
        .map_err(|e| match e {
            OpenError::Store(e) => {
                pr_warn!("snap_store: {}\n", e.message());
                inval(table::TableError::StoreInvalid)
            }
            OpenError::Io(err) => CtrError {
                err,
                reason: c"Snapshot store device I/O error",
            },
        })?;
        registry::register_store(&s).map_err(|_| CtrError {
            err: ENOMEM,
            reason: c"Cannot allocate memory",
        })?;
        Ok(s)
    }

    /// The constructor's last step: the target around its devices and engine.
    fn build(
        ti: &Target<'_>,
        pair: Option<Arc<Pair>>,
        split: Option<Arc<SplitCopy>>,
        devs: Devs,
        parsed: &table::TableArgs<'_>,
        claim: Claim,
    ) -> Result<KBox<Self>, CtrError> {
        KBox::new(
            Self {
                pair,
                split,
                store: devs.store,
                data: devs.data,
                meta: devs.meta,
                store_dev: devs.store_dev,
                split_dev: devs.split_dev,
                track_size: parsed.track_size,
                resync_rate: parsed.resync_rate,
                timeout_ms: parsed.timeout_ms,
                table: ti.table(),
                counters: Counters::new(),
                _claim: claim,
            },
            GFP_KERNEL,
        )
        .map_err(|_| CtrError {
            err: ENOMEM,
            reason: c"Cannot allocate memory",
        })
    }

    /// Messages `snapshot` and `point`: queues a marker of `kind` named `word`
    /// and prints its ticket.
    fn queue_mark(
        &self,
        message: &str,
        kind: u8,
        word: &[u8],
        out: &mut OutBuf<'_>,
    ) -> Result<bool> {
        let p = self.replicated(message)?;
        // `snapshot-verify` sends a snapshot marker and sums the image there.
        let verify = kind == proto::MARK_SUM;
        let kind = if verify { proto::MARK_SNAPSHOT } else { kind };
        let Some(mark) = Mark::new(kind, word) else {
            pr_warn!("{message}: a name is up to 32 of [A-Za-z0-9._:+@-]\n");
            return Err(EINVAL);
        };
        let ticket = if verify {
            p.request_verify(mark)
        } else {
            p.request_mark(mark)
        };
        let ticket = ticket.inspect_err(|e| {
            let why = match *e {
                e if e == ENOTCONN => "the peer is not connected",
                e if e == EOPNOTSUPP => "the peer does not take markers (older module)",
                e if e == EAGAIN => "the peer's image is not consistent (copy or resync)",
                e if e == EBUSY && verify => {
                    "another snapshot-verify is summing, or the transfer log is full"
                }
                e if e == EBUSY => "the transfer log is full, try again",
                _ => "only a primary sends markers",
            };
            pr_warn!("{}: {message} refused: {why}\n", p.name())
        })?;
        let _ = write!(out, "{ticket}");
        Ok(true)
    }

    /// The snapshot store, for a message that needs one.
    fn snap_store(&self, message: &str) -> Result<&Arc<Store>> {
        self.store.as_ref().map(|s| &s.0).ok_or_else(|| {
            pr_warn!("{message}: no snap_store in this device's table\n");
            EINVAL
        })
    }

    /// The split copy, for a message that needs one.
    fn split_copy(&self, message: &str) -> Result<&Arc<SplitCopy>> {
        self.split.as_ref().ok_or_else(|| {
            pr_warn!("{message}: no split_dev in this device's table\n");
            EINVAL
        })
    }

    /// Messages `split`, `rejoin`, `refresh`: queue the request; the split thread
    /// carries it out and raises an event when it is done.
    fn split_request(&self, message: &str, req: Req) -> Result<bool> {
        let s = self.split_copy(message)?;
        s.request(req).inspect_err(|e| {
            let why = if *e == EAGAIN {
                "the device is suspended, or its split copy failed"
            } else if message == "split" {
                "a split starts from forming or formed"
            } else {
                "only a split copy (not splitting or refreshing) can be rejoined or refreshed"
            };
            pr_warn!("{message} refused: {why} (state {})\n", s.summary().0)
        })?;
        Ok(false)
    }

    /// The pair, for a message that only a replicated device takes.
    fn replicated(&self, message: &str) -> Result<&Arc<Pair>> {
        self.pair.as_ref().ok_or_else(|| {
            pr_warn!("{message}: not a replicated device\n");
            EINVAL
        })
    }

    fn write_info(&self, ti: &Target<'_>, out: &mut OutBuf<'_>) -> core::fmt::Result {
        let c = &self.counters;
        let mut st = status::Status {
            track_size: self.track_size.into(),
            size: ti.len() << geometry::SECTOR_SHIFT,
            reads: c.reads.load(Relaxed),
            writes: c.writes.load(Relaxed),
            flushes: c.flushes.load(Relaxed),
            discards: c.discards.load(Relaxed),
            write_zeroes: c.write_zeroes.load(Relaxed),
            io_errors: c.io_errors.load(Relaxed),
            ..Default::default()
        };
        if let Some(s) = &self.split {
            let (word, create, changed) = s.summary();
            st.split = word;
            st.split_create = create;
            st.split_changed = changed;
            st.split_copied = s.copied.load(Relaxed);
            st.split_cow = s.cow.load(Relaxed);
        }
        if let Some(p) = &self.pair {
            let (state, conn) = p.state();
            let l = p.stats();
            st.state = state;
            st.conn = conn;
            st.role = p.cfg.role;
            st.mode = p.mode();
            if let Some(a) = p.peer() {
                let mut b = [0u8; status::PEER_MAX];
                let mut w = crate::rcore::fmtbuf::BufWriter::new(&mut b);
                if write!(w, "{a}").is_ok() {
                    st.peer = status::Peer::new(w.as_str()).unwrap_or_default();
                }
            }
            st.dirty_bytes = l.dirty_bytes;
            st.cache_used = l.cache_used;
            st.cache_max = p.cfg.cache_size;
            st.sync_done = l.sync_done;
            st.sync_total = l.sync_total;
            st.sent_bytes = l.sent_bytes;
            st.acked_bytes = l.acked_bytes;
            st.lag_ms = l.lag_ms;
            st.lag_bytes = l.cache_used;
            st.sync_rate = l.sync_rate;
            st.eta_s = l.eta_s;
            st.consistent = l.consistent;
            st.error = p.error();
            let (hot, refs) = p.al_usage();
            st.al_hot = hot as u64;
            st.al_refs = refs;
            st.decision = p.decision();
            st.gen = p.md.sb().gen_current;
            st.peer_tracks = p.peer_tracks.load(Relaxed);
            st.point = p.point.load(Relaxed);
            let at = p.point_at_ns.load(Relaxed);
            if at != 0 {
                st.point_age_s = now_real_ns().saturating_sub(at) / 1_000_000_000;
            }
        }
        st.write(out)
    }

    fn write_table(&self, out: &mut OutBuf<'_>) -> core::fmt::Result {
        let data = self.data.name().to_str().unwrap_or("?");
        let meta = self.meta.name().to_str().unwrap_or("?");
        let split_name = self.split_dev.as_ref().map(|d| d.name());
        let split_dev = split_name.map_or(&[][..], |n| n.to_bytes());
        match &self.pair {
            Some(p) => {
                // The secret is not shown: `dmsetup table` output lands in logs and
                // bug reports. `dmsetup message NAME 0 secret` prints it.
                let mut a = p.cfg.args();
                a.secret = HIDDEN_SECRET;
                let store_name = self.store_dev.as_ref().map(|d| d.name());
                a.snap_store = store_name.map_or(&[][..], |n| n.to_bytes());
                a.resync_rate = self.resync_rate;
                a.timeout_ms = self.timeout_ms;
                a.split_dev = split_dev;
                table::format_table(out, data, meta, &a)
            }
            None => {
                let mut a = table::TableArgs::new(&[], &[]);
                a.track_size = self.track_size;
                a.split_dev = split_dev;
                table::format_table(out, data, meta, &a)
            }
        }
    }

    fn write_ima(&self, out: &mut OutBuf<'_>) -> core::fmt::Result {
        let data = self.data.name().to_str().unwrap_or("?");
        let meta = self.meta.name().to_str().unwrap_or("?");
        write!(
            out,
            "target_name=rcopy,target_version={VERSION_STR},data={data},meta={meta},track_size={};",
            self.track_size
        )
    }
}

impl TargetOps for Rcopy {
    const NAME: &'static CStr = c"rcopy";
    const VERSION: [u32; 3] = [0, 1, 0];

    fn new(ti: &mut Target<'_>, args: &[&CStr]) -> Result<KBox<Self>, CtrError> {
        // Time the frame CRC again: the module's load may have fallen in a busy moment.
        crate::link::choose_crc32c();
        let mut words = KVec::with_capacity(args.len(), GFP_KERNEL).map_err(|_| CtrError {
            err: ENOMEM,
            reason: c"Cannot allocate memory",
        })?;
        for a in args {
            words.push(a.to_bytes(), GFP_KERNEL).map_err(|_| CtrError {
                err: ENOMEM,
                reason: c"Cannot allocate memory",
            })?;
        }
        let parsed = table::parse(&words).map_err(inval)?;
        if parsed.secret == HIDDEN_SECRET {
            // What `dmsetup table` shows in its place: a copied table line must not
            // silently become a pair with the secret "-".
            return Err(CtrError::inval(
                c"secret - is how dmsetup table hides the secret: give the secret itself (dmsetup message NAME 0 secret prints it)",
            ));
        }
        // `parse` accepted at least two words, so both device words exist.
        let (Some(data_path), Some(meta_path)) = (args.first(), args.get(1)) else {
            return Err(inval(table::TableError::ArgCount));
        };
        let data = ti.get_device(data_path).map_err(|err| CtrError {
            err,
            reason: table::TableError::DataLookup.reason(),
        })?;
        let meta = ti.get_device(meta_path).map_err(|err| CtrError {
            err,
            reason: table::TableError::MetaLookup.reason(),
        })?;
        if data.devt() == meta.devt() {
            return Err(inval(table::TableError::SameDevice));
        }
        if ti.len() > data.sectors() {
            return Err(inval(table::TableError::LengthExceedsData));
        }
        let need =
            geometry::meta_bytes_needed(ti.len() << geometry::SECTOR_SHIFT, parsed.track_size);
        if meta.sectors() << geometry::SECTOR_SHIFT < need {
            return Err(inval(table::TableError::MetaTooSmall));
        }
        let store_dev = option_device(
            ti,
            args,
            (b"snap_store", parsed.snap_store),
            table::TableError::BadSnapStore,
            table::TableError::StoreLookup,
            &[data.devt(), meta.devt()],
        )?;
        let store_devt = store_dev.as_ref().map_or(0, |d| d.devt());
        let split_dev = option_device(
            ti,
            args,
            (b"split_dev", parsed.split_dev),
            table::TableError::BadSplitDev,
            table::TableError::SplitLookup,
            &[data.devt(), meta.devt(), store_devt],
        )?;
        let mut devs = [data.devt(), meta.devt(), 0, 0];
        let mut ndevs = 2;
        for d in [store_dev.as_ref(), split_dev.as_ref()]
            .into_iter()
            .flatten()
        {
            devs[ndevs] = d.devt();
            ndevs += 1;
        }
        registry::claim(&devs[..ndevs], ti.md_id()).map_err(|e| match e {
            registry::ClaimError::InUse => CtrError {
                err: EBUSY,
                reason: table::TableError::DeviceInUse.reason(),
            },
            registry::ClaimError::NoMem => CtrError {
                err: ENOMEM,
                reason: c"Cannot allocate memory",
            },
        })?;
        let claim = Claim(devs, ndevs);
        ti.set_special_bios(1, 1, 1);
        ti.set_per_bio_data::<PerBio>();
        let nomem = |_| CtrError {
            err: ENOMEM,
            reason: c"Cannot allocate memory",
        };
        let (pair, store) = match parsed.role {
            None => (None, None),
            Some(role) => {
                // Frames carry at most 1 MiB: split larger bios.
                ti.set_max_io_len(2048).map_err(nomem)?;
                let cfg = Config::new(&parsed, role, ti.len() << geometry::SECTOR_SHIFT)
                    .map_err(nomem)?;
                let store = match &store_dev {
                    None => None,
                    Some(d) => Some(HeldStore(Self::hold_store(&cfg, &data, d)?)),
                };
                // A reload that changes only tunables keeps the running engine. This
                // table holds the same data and metadata devices open (checked by
                // `same_engine`), which keeps the engine's handles on them valid
                // however long it outlives the table that built it.
                if let Some(p) = registry::adopt_pair(ti.md_id(), |p| {
                    p.same_engine(&cfg, data.devt(), meta.devt(), store_devt)
                }) {
                    pr_info!(
                        "{}: table loaded with the running engine kept (only tunables differ)\n",
                        p.name()
                    );
                    (Some(p), store)
                } else {
                    let mut nbuf = [0u8; 128];
                    let name = ti.device_name(&mut nbuf);
                    // SAFETY: `meta` is moved into the target below. The engine is
                    // stopped (by the `Drop` of the last table holding it, see
                    // `registry::release_pair`) before that table releases its
                    // handle, and every table holding the engine has this same
                    // device open (`Pair::same_engine`).
                    let mdev = unsafe { Bdev::new(&meta) };
                    let md = Metadata::open(mdev, cfg.size_bytes, cfg.track_size, &cfg.pair_word)
                        .map_err(|e| match e {
                        LoadError::Meta(m) => CtrError::inval(m.reason()),
                        LoadError::Io(err) => CtrError {
                            err,
                            reason: c"Metadata device I/O error",
                        },
                    })?;
                    let st = store.as_ref().map(|s| s.0.clone());
                    // SAFETY: as for `meta` above: the last table holding the engine,
                    // which has this same data device open, stops it before releasing
                    // it. The engine raises events on the live table, swapped in at
                    // `preresume` (`Pair::retune`) before DM frees the old one.
                    let p = unsafe { Pair::new(cfg, Bdev::new(&data), md, st, ti.table(), name) }
                        .map_err(nomem)?;
                    registry::register_pair(ti.md_id(), &p).map_err(|_| CtrError {
                        err: ENOMEM,
                        reason: c"Cannot allocate memory",
                    })?;
                    (Some(p), store)
                }
            }
        };
        let split = match &split_dev {
            None => None,
            Some(d) => {
                // SAFETY: `data` and `d` are moved into the target below, which stops
                // the split copy's thread (`postsuspend`, or `Drop`) before it
                // releases them.
                let s = unsafe {
                    SplitCopy::new(
                        Bdev::new(&data),
                        Bdev::new(d),
                        d.sectors() << geometry::SECTOR_SHIFT,
                        ti.len() << geometry::SECTOR_SHIFT,
                        parsed.track_size,
                        pair.clone(),
                        ti.table(),
                    )
                };
                Some(s.map_err(|e| {
                    if e == EINVAL {
                        inval(table::TableError::SplitInvalid)
                    } else {
                        CtrError {
                            err: e,
                            reason: c"Split copy device I/O error",
                        }
                    }
                })?)
            }
        };
        let devs = Devs {
            data,
            meta,
            store_dev,
            store,
            split_dev,
        };
        Self::build(ti, pair, split, devs, &parsed, claim)
    }

    fn map(&self, ti: &Target<'_>, bio: &mut Bio<'_>) -> MapResult {
        let c = &self.counters;
        if bio.is_preflush() {
            c.flushes.add(1, Relaxed);
        }
        let size = bio.size();
        match bio.op() {
            Op::Read => c.reads.add(1, Relaxed),
            Op::Write if size > 0 => c.writes.add(1, Relaxed),
            Op::Flush => c.flushes.add(1, Relaxed),
            Op::Discard => c.discards.add(1, Relaxed),
            Op::WriteZeroes => c.write_zeroes.add(1, Relaxed),
            _ => {}
        }
        // An empty flush carries no sector; everything else moves by the target's
        // offset in the mapped device, as dm-linear does.
        let sector = if size > 0 {
            bio.sector().saturating_sub(ti.begin())
        } else {
            bio.sector()
        };
        bio.remap(&self.data, sector);
        if bio.op() == Op::Read {
            return MapResult::Remapped;
        }
        // The split copy first: a write whose bits are not all set durably (or
        // whose old tracks must be copied first) goes to its thread, which hands
        // it on here once done (`SplitCopy::take_write`).
        let tag = match &self.split {
            Some(s) if size > 0 => match s.admit(sector, u64::from(size >> 9)) {
                Some(tag) => tag,
                None => {
                    s.defer(bio);
                    return MapResult::Submitted;
                }
            },
            _ => 0,
        };
        let pb = crate::dm::per_bio_ptr::<PerBio>(bio);
        if let Some(p) = &self.pair {
            return match p.map_write(bio, sector, pb, tag) {
                Decision::Go => MapResult::Remapped,
                Decision::Defer => MapResult::Submitted,
                Decision::Kill => MapResult::Kill,
            };
        }
        if self.split.is_some() {
            // SAFETY: the per-bio data is ours until the bio completes.
            unsafe { pb.write(PerBio::local(tag)) };
        }
        MapResult::Remapped
    }

    fn end_io(&self, bio: &Bio<'_>, status: u8) -> EndIo {
        if status != 0 {
            self.counters.io_errors.add(1, Relaxed);
        }
        if let Some(s) = &self.split {
            if bio.op() != Op::Read {
                // The first completion (the local write) ends the split copy's
                // count; `end_io` may run again for a replicated write.
                let pb = crate::dm::per_bio::<PerBio>(bio);
                s.done(pb.split.swap(0, core::sync::atomic::Ordering::AcqRel));
            }
        }
        match &self.pair {
            Some(p) if bio.op() != Op::Read => {
                match p.end_io(bio, crate::dm::per_bio::<PerBio>(bio), status == 0) {
                    Completion::Done => EndIo::Done,
                    Completion::Later => EndIo::Incomplete,
                }
            }
            _ => EndIo::Done,
        }
    }

    fn status(&self, ti: &Target<'_>, kind: StatusKind, out: &mut OutBuf<'_>) {
        // A buffer too small for the line gets it cut short, as DM's DMEMIT does.
        let _ = match kind {
            StatusKind::Info => self.write_info(ti, out),
            StatusKind::Table => self.write_table(out),
            StatusKind::Ima => self.write_ima(out),
        };
    }

    fn message(&self, _ti: &Target<'_>, args: &[&CStr], out: &mut OutBuf<'_>) -> Result<bool> {
        let Some(cmd) = args.first() else {
            return Err(EINVAL);
        };
        let name = cmd.to_str().unwrap_or("?");
        let nargs = args.len() - 1;
        match (name, nargs) {
            ("stats_reset", 0) => {
                for c in self.counters.all() {
                    c.store(0, Relaxed);
                }
                Ok(false)
            }
            ("version", 0) => {
                let _ = write!(
                    out,
                    "rcopy {VERSION_STR} protocol {PROTOCOL_VERSION} metadata {METADATA_VERSION}"
                );
                Ok(true)
            }
            ("suspend" | "resume" | "disconnect" | "connect", 0) => {
                let p = self.replicated(name)?;
                let r = if matches!(name, "suspend" | "disconnect") {
                    p.disconnect()
                } else {
                    p.connect()
                };
                r.inspect_err(|_| pr_warn!("{name}: only the primary of a pair can {name}\n"))?;
                Ok(false)
            }
            ("secret", 0) => {
                let p = self.replicated(name)?;
                let _ = out.write_str(core::str::from_utf8(&p.cfg.secret).unwrap_or(""));
                Ok(true)
            }
            ("handover", 0) => {
                let p = self.replicated(name)?;
                p.request_handover().inspect_err(|_| {
                    pr_warn!("handover: only the primary of a pair can hand over\n")
                })?;
                Ok(false)
            }
            ("resolve", 1) => {
                let p = self.replicated(name)?;
                let how = args.get(1).and_then(|a| a.to_str().ok()).unwrap_or("");
                p.resolve(how)?;
                Ok(false)
            }
            ("snapshot", 0 | 1) => {
                let word = args.get(1).map_or(&b""[..], |a| a.to_bytes());
                self.queue_mark(name, proto::MARK_SNAPSHOT, word, out)
            }
            ("point", 0) => self.queue_mark(name, proto::MARK_POINT, b"", out),
            ("snapshot-verify", 0 | 1) => {
                let word = args.get(1).map_or(&b""[..], |a| a.to_bytes());
                self.queue_mark(name, proto::MARK_SUM, word, out)
            }
            ("snapshot-result", 1) => {
                let p = self.replicated(name)?;
                let ticket = args
                    .get(1)
                    .and_then(|a| table::parse_u64(a.to_bytes()))
                    .ok_or(EINVAL)?;
                let _ = match p.mark_outcome(ticket)? {
                    None => write!(out, "pending"),
                    Some(MarkOutcome::Taken(id)) => write!(out, "taken {id}"),
                    Some(MarkOutcome::Refused(e)) => write!(out, "refused {e}"),
                    Some(MarkOutcome::Lost) => write!(out, "lost"),
                    Some(MarkOutcome::Summed(id, sum)) => write!(
                        out,
                        "taken {id} sum {}",
                        core::str::from_utf8(&crate::rcore::imagesum::hex(&sum)).unwrap_or("?")
                    ),
                    Some(MarkOutcome::SumLost(id)) => write!(out, "taken {id} sum-lost"),
                };
                Ok(true)
            }
            ("snapshots", 0) => {
                let st = self.snap_store(name)?;
                let _ = st.list(out);
                Ok(true)
            }
            ("snapshot-delete", 1) => {
                let st = self.snap_store(name)?;
                let which = args.get(1).map_or(&b""[..], |a| a.to_bytes());
                let epoch = st.resolve(which).ok_or(ENOENT)?;
                st.delete(epoch).inspect_err(|e| {
                    let why = if *e == EBUSY {
                        "a snapshot device reads it"
                    } else {
                        "failed"
                    };
                    pr_warn!("snapshot-delete: snapshot {epoch}: {why}\n")
                })?;
                Ok(false)
            }
            ("snapshot-rollback", 1) => {
                let p = self.replicated(name)?;
                let st = self.snap_store(name)?;
                if p.running() {
                    pr_warn!(
                        "{}: snapshot-rollback: suspend the device first\n",
                        p.name()
                    );
                    return Err(EBUSY);
                }
                let which = args.get(1).map_or(&b""[..], |a| a.to_bytes());
                let epoch = st.resolve(which).ok_or(ENOENT)?;
                let n = p.rollback_to(st, epoch)?;
                let _ = write!(out, "{n}");
                Ok(true)
            }
            ("split" | "rejoin", 0) => {
                let req = if name == "split" {
                    Req::Split
                } else {
                    Req::Rejoin
                };
                self.split_request(name, req)
            }
            ("refresh", 2) => {
                let s = self.split_copy(name)?;
                let num = |i: usize| {
                    args.get(i)
                        .and_then(|a| table::parse_u64(a.to_bytes()))
                        .ok_or(EINVAL)
                };
                let tracks = s.tracks_of(num(1)?, num(2)?).inspect_err(|_| {
                    pr_warn!("refresh: give a start sector and a sector count within the device\n")
                })?;
                self.split_request(name, Req::Refresh(tracks))
            }
            (
                "stats_reset" | "version" | "suspend" | "resume" | "disconnect" | "connect"
                | "handover" | "resolve" | "secret" | "snapshot" | "snapshot-result" | "snapshots"
                | "point" | "snapshot-delete" | "snapshot-rollback" | "split" | "rejoin"
                | "snapshot-verify" | "refresh",
                _,
            ) => {
                pr_warn!("{name}: wrong number of arguments\n");
                Err(EINVAL)
            }
            _ => {
                pr_warn!("unknown message: {name}\n");
                Err(EINVAL)
            }
        }
    }

    fn iterate_devices(&self, ti: &Target<'_>, f: &mut DevCallout<'_>) -> i32 {
        f.call(&self.data, 0, ti.len())
    }

    fn io_hints(&self, _limits: &mut bindings::queue_limits) {
        // The limits DM stacked from the data device (via `iterate_devices`) are
        // already right for a pass-through mapping.
    }

    fn preresume(&self) -> Result {
        if let Some(s) = &self.split {
            s.start().inspect_err(|e| {
                pr_err!(
                    "split_dev: cannot start: errno {} (copy device unreadable or unwritable)\n",
                    -e.to_errno()
                )
            })?;
        }
        let Some(p) = &self.pair else { return Ok(()) };
        // This table is the live one from now on (DM frees the old one only after
        // this returns).
        p.retune(self.table, self.resync_rate, self.timeout_ms);
        p.start().inspect_err(|e| {
            pr_err!(
                "{}: cannot start: errno {} (metadata device unreadable or threads unavailable)\n",
                p.name(),
                -e.to_errno()
            )
        })
    }

    fn postsuspend(&self) {
        if let Some(s) = &self.split {
            s.stop();
        }
        if let Some(p) = &self.pair {
            // A loaded table that kept this engine (a tunables-only reload) resumes
            // it next: keep it running. Otherwise stop it, as a plain suspend does.
            if !registry::pair_shared(p) {
                p.stop();
            }
        }
    }
}
