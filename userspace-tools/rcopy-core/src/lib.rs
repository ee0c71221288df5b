//! rcopy's pure logic (table line, status line, track geometry).
//!
//! The sources live in `rust/core/` at the top of the repository and are
//! compiled into both the `dm_rcopy` kernel module and this crate; this
//! file only includes them by path.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

#[path = "../../../rust/core/mod.rs"]
mod rcore;

pub use rcore::*;
