// SPDX-License-Identifier: GPL-2.0

//! Pure logic shared by the `dm_rcopy` kernel module and `rcopyctl`.
//!
//! Everything here is `core`-only: no allocation, no `unsafe`, no panics on
//! any input. The kernel crate includes this directory as a module
//! (`#[path = "core/mod.rs"] mod rcore;`) and userspace includes it from the
//! `rcopy-core` crate, so this file must not carry inner crate attributes.

pub mod activity;
pub mod addr;
pub mod bitmap;
pub mod conflict;
pub mod crc32c;
pub mod fmtbuf;
pub mod format;
pub mod gens;
pub mod geometry;
pub mod hmac;
pub mod imagesum;
pub mod le;
pub mod order;
pub mod proto;
pub mod sha256;
pub mod snapmap;
pub mod snapstore;
pub mod split;
pub mod state;
pub mod status;
pub mod submap;
pub mod table;
