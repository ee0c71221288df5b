// SPDX-License-Identifier: GPL-2.0

//! Which block devices rcopy targets hold, so that no device serves two targets.
//!
//! Device-mapper lets any number of tables open the same lower device; rcopy must
//! not, because two targets replicating one disk would corrupt each other's bitmaps.
//! A table reload of the same mapped device may take over its own devices, so each
//! claim records the mapped device that made it.
//!
//! It also records each engine (`Pair`) and the tables holding it, so that a reload
//! that changes only tunables keeps the running engine (see `target::Rcopy`).

use crate::engine::Pair;
use crate::snapshot::Store;
use kernel::alloc::AllocError;
use kernel::prelude::*;
use kernel::sync::{global_lock, Arc};

#[derive(Clone, Copy)]
struct Claim {
    dev: u32,
    md: usize,
    /// Claims of one mapped device live in two tables during a reload; count them.
    holders: u32,
}

global_lock! {
    // SAFETY: initialised by `init` in the module initialiser before any use.
    unsafe(uninit) static CLAIMS: Mutex<KVec<Claim>> = KVec::new();
}

/// Initialises the registry. Called once, from the module initialiser.
pub(crate) fn init() {
    // SAFETY: called exactly once, before any other use of `CLAIMS`, `PAIRS` and
    // `STORES`.
    unsafe {
        CLAIMS.init();
        PAIRS.init();
        STORES.init();
    }
}

/// Why a claim was refused.
pub(crate) enum ClaimError {
    /// Another mapped device holds one of the devices.
    InUse,
    /// Out of memory.
    NoMem,
}

/// Claims `devs` for the mapped device `md`, all or none.
pub(crate) fn claim(devs: &[u32], md: usize) -> Result<(), ClaimError> {
    let mut claims = CLAIMS.lock();
    if claims.iter().any(|c| devs.contains(&c.dev) && c.md != md) {
        return Err(ClaimError::InUse);
    }
    claims
        .reserve(devs.len(), GFP_KERNEL)
        .map_err(|_| ClaimError::NoMem)?;
    for &dev in devs {
        if let Some(c) = claims.iter_mut().find(|c| c.dev == dev) {
            c.holders += 1;
        } else {
            claims
                .push(
                    Claim {
                        dev,
                        md,
                        holders: 1,
                    },
                    GFP_KERNEL,
                )
                .map_err(|_| ClaimError::NoMem)?;
        }
    }
    Ok(())
}

/// Releases claims made by `claim`.
pub(crate) fn release(devs: &[u32]) {
    let mut claims = CLAIMS.lock();
    for &dev in devs {
        if let Some(i) = claims.iter().position(|c| c.dev == dev) {
            if claims[i].holders > 1 {
                claims[i].holders -= 1;
            } else {
                // `i` was just found, so removal cannot fail.
                let _ = claims.remove(i);
            }
        }
    }
}

/// A running or startable engine, and how many tables hold it.
struct Held {
    md: usize,
    pair: Arc<Pair>,
    /// Tables holding the engine: 1, or 2 while a reload that kept it is loaded.
    tables: u32,
}

global_lock! {
    // SAFETY: initialised by `init` in the module initialiser before any use.
    unsafe(uninit) static PAIRS: Mutex<KVec<Held>> = KVec::new();
}

/// Records a new engine, held by the table being constructed for the mapped
/// device `md`. Constructor context.
pub(crate) fn register_pair(md: usize, pair: &Arc<Pair>) -> Result<(), AllocError> {
    PAIRS.lock().push(
        Held {
            md,
            pair: pair.clone(),
            tables: 1,
        },
        GFP_KERNEL,
    )
}

/// The engine of the mapped device `md` that `fits`, now also held by the table
/// being constructed. Constructor context.
pub(crate) fn adopt_pair(md: usize, fits: impl Fn(&Pair) -> bool) -> Option<Arc<Pair>> {
    let mut pairs = PAIRS.lock();
    let h = pairs.iter_mut().find(|h| h.md == md && fits(&h.pair))?;
    h.tables += 1;
    Some(h.pair.clone())
}

/// Whether another table also holds `pair` (a reload that kept it is loaded).
/// `postsuspend` context.
pub(crate) fn pair_shared(pair: &Arc<Pair>) -> bool {
    PAIRS
        .lock()
        .iter()
        .any(|h| Arc::ptr_eq(&h.pair, pair) && h.tables > 1)
}

/// A table let go of `pair`; true if it was the last (the caller stops the engine).
/// Destructor context.
pub(crate) fn release_pair(pair: &Arc<Pair>) -> bool {
    let mut pairs = PAIRS.lock();
    let Some(i) = pairs.iter().position(|h| Arc::ptr_eq(&h.pair, pair)) else {
        // Never registered (the constructor failed before): nobody else holds it.
        return true;
    };
    if pairs[i].tables > 1 {
        pairs[i].tables -= 1;
        return false;
    }
    // `i` was just found, so removal cannot fail; the engine itself is dropped by
    // the caller's reference, after it is stopped, not under this lock.
    let held = pairs.remove(i);
    drop(pairs);
    drop(held);
    true
}

/// A snapshot store and how many tables hold it (the rcopy device's tables and
/// its snapshot devices).
struct HeldStore {
    store: Arc<Store>,
    tables: u32,
}

global_lock! {
    // SAFETY: initialised by `init` in the module initialiser before any use.
    unsafe(uninit) static STORES: Mutex<KVec<HeldStore>> = KVec::new();
}

/// The store on the device `devt`, if a table holds it, now also held by the
/// caller's table. Constructor context.
pub(crate) fn find_store(devt: u32) -> Option<Arc<Store>> {
    let mut stores = STORES.lock();
    let h = stores.iter_mut().find(|h| h.store.devt == devt)?;
    h.tables += 1;
    Some(h.store.clone())
}

/// Records a store just loaded by the caller's table. Constructor context.
pub(crate) fn register_store(store: &Arc<Store>) -> Result<(), AllocError> {
    STORES.lock().push(
        HeldStore {
            store: store.clone(),
            tables: 1,
        },
        GFP_KERNEL,
    )
}

/// A table let go of `store`. Destructor context.
pub(crate) fn release_store(store: &Arc<Store>) {
    let mut stores = STORES.lock();
    let Some(i) = stores.iter().position(|h| Arc::ptr_eq(&h.store, store)) else {
        return;
    };
    if stores[i].tables > 1 {
        stores[i].tables -= 1;
        return;
    }
    let held = stores.remove(i);
    drop(stores);
    drop(held);
}
