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

/// Something several tables share (an engine, a snapshot store), and how many
/// of them hold it. The last table to let go of it is told so.
struct Held<T> {
    /// What it is found by: the mapped device (an engine), the store device
    /// (a store).
    key: usize,
    item: Arc<T>,
    /// Tables holding it.
    tables: u32,
}

/// Records `item`, held by the table being constructed. Constructor context.
fn hold<T>(list: &mut KVec<Held<T>>, key: usize, item: &Arc<T>) -> Result<(), AllocError> {
    list.push(
        Held {
            key,
            item: item.clone(),
            tables: 1,
        },
        GFP_KERNEL,
    )
}

/// The item of `key` that `fits`, now also held by the table being constructed.
fn share<T>(list: &mut KVec<Held<T>>, key: usize, fits: impl Fn(&T) -> bool) -> Option<Arc<T>> {
    let h = list.iter_mut().find(|h| h.key == key && fits(&h.item))?;
    h.tables += 1;
    Some(h.item.clone())
}

/// A table let go of `item`: its record if that was the last table (the caller
/// drops it outside the lock), `None` if other tables still hold it or it was
/// never recorded.
fn let_go<T>(list: &mut KVec<Held<T>>, item: &Arc<T>) -> Option<Held<T>> {
    let i = list.iter().position(|h| Arc::ptr_eq(&h.item, item))?;
    if list[i].tables > 1 {
        list[i].tables -= 1;
        return None;
    }
    // `i` was just found, so removal cannot fail.
    list.remove(i).ok()
}

global_lock! {
    // SAFETY: initialised by `init` in the module initialiser before any use.
    unsafe(uninit) static PAIRS: Mutex<KVec<Held<Pair>>> = KVec::new();
}

global_lock! {
    // SAFETY: initialised by `init` in the module initialiser before any use.
    unsafe(uninit) static STORES: Mutex<KVec<Held<Store>>> = KVec::new();
}

/// Records a new engine, held by the table being constructed for the mapped
/// device `md`. Constructor context.
pub(crate) fn register_pair(md: usize, pair: &Arc<Pair>) -> Result<(), AllocError> {
    hold(&mut PAIRS.lock(), md, pair)
}

/// The engine of the mapped device `md` that `fits`, now also held by the table
/// being constructed. Constructor context.
pub(crate) fn adopt_pair(md: usize, fits: impl Fn(&Pair) -> bool) -> Option<Arc<Pair>> {
    share(&mut PAIRS.lock(), md, fits)
}

/// Whether another table also holds `pair` (a reload that kept it is loaded).
/// `postsuspend` context.
pub(crate) fn pair_shared(pair: &Arc<Pair>) -> bool {
    PAIRS
        .lock()
        .iter()
        .any(|h| Arc::ptr_eq(&h.item, pair) && h.tables > 1)
}

/// A table let go of `pair`; true if it was the last (the caller stops the engine).
/// Destructor context.
pub(crate) fn release_pair(pair: &Arc<Pair>) -> bool {
    let mut pairs = PAIRS.lock();
    if !pairs.iter().any(|h| Arc::ptr_eq(&h.item, pair)) {
        // Never registered (the constructor failed before): nobody else holds it.
        return true;
    }
    let last = let_go(&mut pairs, pair);
    drop(pairs);
    // The engine itself is dropped by the caller's reference, after it is
    // stopped, not under this lock.
    last.is_some()
}

/// The store on the device `devt`, if a table holds it, now also held by the
/// caller's table. Constructor context.
pub(crate) fn find_store(devt: u32) -> Option<Arc<Store>> {
    share(&mut STORES.lock(), devt as usize, |_| true)
}

/// Records a store just loaded by the caller's table. Constructor context.
pub(crate) fn register_store(store: &Arc<Store>) -> Result<(), AllocError> {
    hold(&mut STORES.lock(), store.devt as usize, store)
}

/// A table let go of `store`. Destructor context.
pub(crate) fn release_store(store: &Arc<Store>) {
    let last = let_go(&mut STORES.lock(), store);
    drop(last);
}
