// SPDX-License-Identifier: GPL-2.0

//! The activity log of a primary (see [`crate::rcore::activity`] for the invariant
//! and the on-disk format).
//!
//! A write shipped while connected takes references on its extents in `map`
//! ([`ActivityLog::acquire`]); when one is not hot, the bio is handed to the
//! metadata thread, which plans the extents, writes the transaction (after the bitmap,
//! so bits that replaced a released reference are on disk before the log drops their
//! extent) and then ships and submits the bio. References are dropped when the peer
//! confirms the write durable, or after its tracks were marked in the bitmap.
//!
//! What if the machine dies here: before the transaction is on disk, the write was
//! neither submitted nor sent; after it, the extent is resynced on the next start.

use crate::metadata::Metadata;
use crate::rcore::activity::{self, AlTable, PlanError, Slot};
use core::ops::Range;
use kernel::prelude::*;
use kernel::sync::{Mutex, SpinLock};

/// The activity log of one device.
#[pin_data]
pub(crate) struct ActivityLog {
    /// log2 of the extent size in bytes.
    shift: u32,
    /// The in-memory table. Spinlock: taken in `map` and by the link threads, never
    /// in interrupt context; nothing sleeps under it.
    #[pin]
    table: SpinLock<AlTable<KVVec<Slot>>>,
    /// Scratch for the extents of a transaction; only the metadata thread (and
    /// `preresume`/`postsuspend`, which never run with it) writes transactions.
    #[pin]
    scratch: Mutex<KVVec<u64>>,
}

impl ActivityLog {
    /// A log of `extents` slots of `extent_size` bytes (a power of two).
    pub(crate) fn new(extents: u32, extent_size: u64) -> Result<impl PinInit<Self, Error>> {
        let mut slots = KVVec::with_capacity(extents as usize, GFP_KERNEL)?;
        let mut scratch = KVVec::with_capacity(extents as usize, GFP_KERNEL)?;
        for _ in 0..extents {
            slots.push(Slot::EMPTY, GFP_KERNEL)?;
            scratch.push(0u64, GFP_KERNEL)?;
        }
        Ok(try_pin_init!(ActivityLog {
            shift: extent_size.trailing_zeros(),
            table <- kernel::new_spinlock!(AlTable::new(slots)),
            scratch <- kernel::new_mutex!(scratch),
        }))
    }

    /// The extents `[sector, sector + nr)` touches.
    pub(crate) fn extents(&self, sector: u64, nr: u64) -> Range<u64> {
        activity::extent_range(sector, nr, self.shift)
    }

    /// Takes references on `r` if every extent is hot. Any context but interrupt.
    pub(crate) fn acquire(&self, r: Range<u64>) -> bool {
        r.is_empty() || self.table.lock().acquire(r)
    }

    /// Drops references taken by [`ActivityLog::acquire`]. Any context but interrupt.
    pub(crate) fn release(&self, r: Range<u64>) {
        if !r.is_empty() {
            self.table.lock().release(r);
        }
    }

    /// Plans `r` (metadata thread). `Err(TooLarge)` means it never fits.
    pub(crate) fn plan(&self, r: Range<u64>) -> Result<(), PlanError> {
        self.table.lock().plan(r).map(|_| ())
    }

    /// Writes a transaction if one is due, then lets writes use the planned
    /// extents. The bitmap is written first. Metadata thread only.
    pub(crate) fn commit(&self, md: &Metadata) -> Result {
        if !self.table.lock().needs_commit() {
            return Ok(());
        }
        md.persist()?;
        let mut scratch = self.scratch.lock();
        let n = self.table.lock().on_disk_set(&mut scratch);
        md.write_al(self.shift, scratch.get(..n).unwrap_or(&[]))?;
        self.table.lock().commit();
        Ok(())
    }

    /// Forgets every extent (after a clean stop wrote an empty log; no references
    /// are held then).
    pub(crate) fn reset(&self) {
        let mut t = self.table.lock();
        t.clear_unreferenced();
        t.commit();
    }

    /// Hot extents and references held, for the status line.
    pub(crate) fn usage(&self) -> (usize, u64) {
        let t = self.table.lock();
        (t.hot(), t.refs())
    }
}
