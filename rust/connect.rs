// SPDX-License-Identifier: GPL-2.0

//! The primary's connection attempts to its peer, overlapping: a new SYN every
//! [`EVERY_MS`] while the older attempts keep waiting, each up to its own life.
//!
//! Why overlapping: a single attempt that waits for TCP's own SYN retransmissions
//! (1 s, then 3 s, ...) finds a returning link up to seconds late, and a short
//! attempt that is abandoned for a new one never connects over a path whose round
//! trip is longer than the attempt. Overlapping attempts do both: whichever SYN
//! gets the first answer wins, the others are closed before the handshake.

use crate::link::now_ns;
use crate::net::{Attempt, Socket};
use crate::rcore::addr::SockAddr;
use kernel::prelude::*;

/// How often a new attempt starts while none has connected.
pub(crate) const EVERY_MS: u32 = 250;

/// The most attempts waiting at once; with [`EVERY_MS`], also the longest life of
/// one (4 s): a path slower than that does not connect.
const MAX_PENDING: usize = 16;

/// How often [`Connector::step`] looks at the attempts.
const STEP_MS: u32 = 10;

/// One attempt: its socket (SYN sent) and when it started (ns, monotonic).
struct Pending {
    sock: Socket,
    started: u64,
}

/// The attempts in progress. Used by one thread only (the pair's main thread on a
/// primary), so it needs no lock.
pub(crate) struct Connector {
    pending: KVec<Pending>,
    last_start: Option<u64>,
    /// An attempt lived its whole life without an answer since the last connection
    /// (cleared by [`Connector::take_unanswered`]).
    unanswered: bool,
}

impl Connector {
    pub(crate) fn new() -> Connector {
        Connector {
            pending: KVec::new(),
            last_start: None,
            unanswered: false,
        }
    }

    /// Drops every attempt (the carrier went, the operator disconnected, the pair
    /// stops). A closed attempt that had not connected sends nothing.
    pub(crate) fn clear(&mut self) {
        self.pending.clear();
        self.last_start = None;
    }

    /// Whether an attempt went unanswered since the last call.
    pub(crate) fn take_unanswered(&mut self) -> bool {
        core::mem::replace(&mut self.unanswered, false)
    }

    /// One step: starts an attempt to `addr` if none started within [`EVERY_MS`]
    /// (and fewer than [`MAX_PENDING`] wait), drops the attempts that failed (a
    /// refusal, an unreachable host) or outlived `min(timeout_ms, 4 s)`, and
    /// returns the first that connected (closing the others). Otherwise it naps
    /// [`STEP_MS`] and returns `Ok(None)`. An error is one from starting an
    /// attempt (no route, no memory): the caller waits before the next step.
    ///
    /// Context: the pair's main thread on a primary; sleeps.
    pub(crate) fn step(&mut self, addr: &SockAddr, timeout_ms: u32) -> Result<Option<Socket>> {
        let now = now_ns();
        let life_ms = timeout_ms.clamp(EVERY_MS, EVERY_MS * MAX_PENDING as u32);
        let life_ns = u64::from(life_ms) * 1_000_000;
        let due = self
            .last_start
            .is_none_or(|t| now >= t + u64::from(EVERY_MS) * 1_000_000);
        if due && self.pending.len() < MAX_PENDING {
            self.last_start = Some(now);
            let sock = Socket::connect_start(addr, timeout_ms)?;
            self.pending
                .push(Pending { sock, started: now }, GFP_KERNEL)?;
        }
        // Oldest first: if two connected, the peer most likely accepted the older
        // one first, so the handshake is not left waiting behind the other.
        let mut i = 0;
        while i < self.pending.len() {
            match self.pending[i].sock.attempt() {
                Attempt::Connected => {
                    let won = self.pending.remove(i)?;
                    self.clear();
                    return Ok(Some(won.sock));
                }
                Attempt::Failed => {
                    self.pending.remove(i)?;
                }
                Attempt::Waiting if now >= self.pending[i].started + life_ns => {
                    self.unanswered = true;
                    self.pending.remove(i)?;
                }
                Attempt::Waiting => i += 1,
            }
        }
        crate::kthread::nap_ms(STEP_MS);
        Ok(None)
    }
}
