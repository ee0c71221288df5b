// SPDX-License-Identifier: GPL-2.0

//! rcopy: remote copy for block devices, as the device-mapper target `rcopy`.
//!
//! See `Documentation/rcopy.rst` for the table line, status line and messages.

use kernel::prelude::*;

mod activity;
mod apply;
mod blk;
mod config;
mod connect;
mod dirty;
mod dm;
mod engine;
mod inflight;
mod kthread;
mod link;
mod mdthread;
mod metadata;
mod net;
mod pagebuf;
mod primary;
#[allow(dead_code, unreachable_pub)]
#[path = "core/mod.rs"]
mod rcore;
mod registry;
mod resync;
mod route;
mod secondary;
mod snapshot;
mod snaptarget;
mod split;
mod target;
mod tlog;
mod verify;

module! {
    type: RcopyModule,
    name: "dm_rcopy",
    authors: ["rcopy developers"],
    description: "rcopy: remote copy device-mapper target",
    license: "GPL",
    alias: ["dm-rcopy"],
}

struct RcopyModule {
    // Dropped in this order: the target types go before the bio set their devices use.
    _snap_target: dm::Registration,
    _target: dm::Registration,
    _bioset: blk::BioSet,
}

impl kernel::Module for RcopyModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        registry::init();
        link::check_crc32c()?;
        link::choose_crc32c();
        let bioset = blk::BioSet::new()?;
        let reg = dm::Registration::new::<target::Rcopy>(module)?;
        let snap = dm::Registration::new::<snaptarget::RcopySnap>(module)?;
        pr_info!("rcopy {} loaded\n", target::VERSION_STR);
        Ok(Self {
            _snap_target: snap,
            _target: reg,
            _bioset: bioset,
        })
    }
}
