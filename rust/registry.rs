// SPDX-License-Identifier: GPL-2.0

//! Which block devices rcopy targets hold, so that no device serves two targets.
//!
//! Device-mapper lets any number of tables open the same lower device; rcopy must
//! not, because two targets replicating one disk would corrupt each other's bitmaps.
//! A table reload of the same mapped device may take over its own devices, so each
//! claim records the mapped device that made it.

use kernel::prelude::*;
use kernel::sync::global_lock;

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
    // SAFETY: called exactly once, before any other use of `CLAIMS`.
    unsafe { CLAIMS.init() };
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
