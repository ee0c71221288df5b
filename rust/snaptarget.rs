// SPDX-License-Identifier: GPL-2.0

//! The `rcopy-snap` target: a snapshot of a secondary, read-only, as a block device.
//!
//! Table: `<start> <length> rcopy-snap <store_dev> <epoch>`. The store must be held
//! by an rcopy device on this host (its table names it as `snap_store`), which is
//! where the map of copied tracks lives. Every bio is split at track boundaries
//! (`max_io_len`), so each is read from one place: the track's slot in the store
//! if the track was overwritten since the snapshot, else the data device. Writes,
//! discards and write-zeroes fail: a snapshot is a fixed image.
//!
//! What if the apply overwrites a track while a read of it is in flight here: the
//! read was counted (`Store::route`) and the apply, having recorded the copy,
//! waits for it before the overwrite goes down (`Store::before_write`). What if
//! the rcopy device goes away: this table holds the store and both devices, so
//! reads go on against a data device nobody writes.

use crate::dm::{
    Bio, CtrError, DevCallout, DmDev, EndIo, MapResult, Op, OutBuf, StatusKind, Target, TargetOps,
};
use crate::rcore::snapmap::Epoch;
use crate::rcore::table;
use crate::registry;
use crate::snapshot::Store;
use core::fmt::Write;
use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::Arc;

/// Per-bio data: the track a read of the data device is counted for.
struct SnapBio {
    live_track: u64,
}

const NOT_LIVE: u64 = u64::MAX;

/// One snapshot device.
pub(crate) struct RcopySnap {
    store: Arc<Store>,
    epoch: Epoch,
    store_dev: DmDev,
    data: DmDev,
}

impl Drop for RcopySnap {
    fn drop(&mut self) {
        self.store.put(self.epoch);
        registry::release_store(&self.store);
    }
}

fn inval(reason: &'static CStr) -> CtrError {
    CtrError::inval(reason)
}

impl TargetOps for RcopySnap {
    const NAME: &'static CStr = c"rcopy-snap";
    const VERSION: [u32; 3] = [0, 1, 0];

    fn new(ti: &mut Target<'_>, args: &[&CStr]) -> Result<KBox<Self>, CtrError> {
        let [store_path, epoch_word] = args else {
            return Err(inval(c"Invalid argument count: <store_dev> <epoch>"));
        };
        let epoch = table::parse_u64(epoch_word.to_bytes())
            .and_then(|e| Epoch::try_from(e).ok())
            .filter(|&e| e != 0)
            .ok_or_else(|| inval(c"Invalid epoch: a snapshot number"))?;
        let store_dev = ti.get_device(store_path).map_err(|err| CtrError {
            err,
            reason: table::TableError::StoreLookup.reason(),
        })?;
        let store = registry::find_store(store_dev.devt()).ok_or_else(|| {
            inval(c"No rcopy device on this host holds this snapshot store (is it up, with snap_store?)")
        })?;
        // From here the store is held: give it back on every error.
        let fail = |store: &Arc<Store>, e: CtrError| {
            registry::release_store(store);
            e
        };
        let mut name = [0u8; 24];
        let mut w = crate::rcore::fmtbuf::BufWriter::new(&mut name);
        let _ = write!(
            w,
            "{}:{}\0",
            store.data_devt >> 20,
            store.data_devt & 0xfffff
        );
        let Ok(data_path) = CStr::from_bytes_until_nul(&name) else {
            return Err(fail(&store, inval(c"Data device lookup failed")));
        };
        let data = match ti.get_device(data_path) {
            Ok(d) => d,
            Err(err) => {
                return Err(fail(
                    &store,
                    CtrError {
                        err,
                        reason: table::TableError::DataLookup.reason(),
                    },
                ))
            }
        };
        if ti.len() > store.tracks() * store.track_sectors() || ti.len() > data.sectors() {
            return Err(fail(
                &store,
                inval(c"Device length exceeds data device size"),
            ));
        }
        if let Err(err) = store.get(epoch) {
            return Err(fail(
                &store,
                CtrError {
                    err,
                    reason: c"No ready snapshot with this epoch in the store",
                },
            ));
        }
        if let Err(err) = ti.set_max_io_len(store.track_sectors()) {
            store.put(epoch);
            return Err(fail(
                &store,
                CtrError {
                    err,
                    reason: c"Cannot allocate memory",
                },
            ));
        }
        ti.set_per_bio_data::<SnapBio>();
        ti.set_special_bios(1, 0, 0);
        KBox::new(
            Self {
                store,
                epoch,
                store_dev,
                data,
            },
            GFP_KERNEL,
        )
        .map_err(|_| CtrError {
            err: ENOMEM,
            reason: c"Cannot allocate memory",
        })
    }

    fn map(&self, ti: &Target<'_>, bio: &mut Bio<'_>) -> MapResult {
        let pb = crate::dm::per_bio_ptr::<SnapBio>(bio);
        // SAFETY: DM gave this bio per-bio data of `SnapBio`'s size; `end_io`
        // reads it only after this initialises it.
        unsafe {
            pb.write(SnapBio {
                live_track: NOT_LIVE,
            })
        };
        if bio.op() != Op::Read {
            if bio.is_preflush() && bio.size() == 0 {
                // Nothing is written here: a flush has nothing to make durable,
                // but pass it on so that the caller's ordering holds below too.
                bio.remap(&self.data, 0);
                return MapResult::Remapped;
            }
            return MapResult::Kill;
        }
        let sector = bio.sector().saturating_sub(ti.begin());
        let ts = self.store.track_sectors().max(1);
        let track = sector / ts;
        match self.store.route(self.epoch, track) {
            Ok(None) => {
                // SAFETY: as above; this bio's data is ours until it completes.
                unsafe { (*pb).live_track = track };
                bio.remap(&self.data, sector);
                MapResult::Remapped
            }
            Ok(Some(slot_sector)) => {
                bio.remap(&self.store_dev, slot_sector + sector % ts);
                MapResult::Remapped
            }
            Err(_) => MapResult::Kill,
        }
    }

    fn end_io(&self, bio: &Bio<'_>, _status: u8) -> EndIo {
        let pb = crate::dm::per_bio::<SnapBio>(bio);
        if pb.live_track != NOT_LIVE {
            self.store.end_live_read(pb.live_track);
        }
        EndIo::Done
    }

    fn status(&self, _ti: &Target<'_>, kind: StatusKind, out: &mut OutBuf<'_>) {
        let _ = match kind {
            StatusKind::Info => write!(out, "epoch {}", self.epoch),
            StatusKind::Table => write!(
                out,
                "{} {}",
                self.store_dev.name().to_str().unwrap_or("?"),
                self.epoch
            ),
            StatusKind::Ima => write!(out, "target_name=rcopy-snap,epoch={};", self.epoch),
        };
    }

    fn message(&self, _ti: &Target<'_>, _args: &[&CStr], _out: &mut OutBuf<'_>) -> Result<bool> {
        Err(EINVAL)
    }

    fn iterate_devices(&self, ti: &Target<'_>, f: &mut DevCallout<'_>) -> i32 {
        let r = f.call(&self.data, 0, ti.len());
        if r != 0 {
            return r;
        }
        f.call(&self.store_dev, 0, self.store_dev.sectors())
    }

    fn io_hints(&self, _limits: &mut bindings::queue_limits) {}

    fn preresume(&self) -> Result {
        Ok(())
    }

    fn postsuspend(&self) {}
}
