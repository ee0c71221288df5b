// SPDX-License-Identifier: GPL-2.0

//! A pair's configuration, from its table line.

use crate::rcore::addr::SockAddr;
use crate::rcore::status::{Mode, Role};
use crate::rcore::table::TableArgs;
use kernel::prelude::*;

/// The pair configuration, from the table line.
pub(crate) struct Config {
    pub(crate) role: Role,
    pub(crate) mode: Mode,
    pub(crate) peer: Option<SockAddr>,
    pub(crate) local: Option<SockAddr>,
    pub(crate) secret: KVec<u8>,
    pub(crate) pair_word: KVec<u8>,
    pub(crate) cache_size: u64,
    pub(crate) timeout_ms: u32,
    pub(crate) resync_rate: u64,
    pub(crate) track_size: u32,
    pub(crate) size_bytes: u64,
    pub(crate) al_extents: u32,
    pub(crate) al_extent_size: u64,
}

impl Config {
    pub(crate) fn new(a: &TableArgs<'_>, role: Role, size_bytes: u64) -> Result<Config> {
        let mut secret = KVec::new();
        secret.extend_from_slice(a.secret, GFP_KERNEL)?;
        let mut pair_word = KVec::new();
        pair_word.extend_from_slice(a.pair_id, GFP_KERNEL)?;
        Ok(Config {
            role,
            mode: a.mode,
            peer: a.peer,
            local: a.local,
            secret,
            pair_word,
            cache_size: a.cache_size,
            timeout_ms: a.timeout_ms,
            resync_rate: a.resync_rate,
            track_size: a.track_size,
            size_bytes,
            al_extents: a.al_extents,
            al_extent_size: a.al_extent_size,
        })
    }

    /// The table arguments this configuration came from (devices left empty).
    pub(crate) fn args(&self) -> TableArgs<'_> {
        let mut a = TableArgs::new(&[], &[]);
        a.track_size = self.track_size;
        a.role = Some(self.role);
        a.mode = self.mode;
        a.peer = self.peer;
        a.local = self.local;
        a.secret = &self.secret;
        a.pair_id = &self.pair_word;
        a.cache_size = self.cache_size;
        a.timeout_ms = self.timeout_ms;
        a.resync_rate = self.resync_rate;
        a.al_extents = self.al_extents;
        a.al_extent_size = self.al_extent_size;
        a
    }
}
