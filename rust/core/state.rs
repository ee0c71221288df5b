// SPDX-License-Identifier: GPL-2.0

//! The pair state machine.
//!
//! A [`Pair`] is what one side knows about its pair: the pair [`State`],
//! this side's [`Role`], the link state [`Conn`] and three flags. [`next`]
//! applies an [`Event`] and either gives the new `Pair` or refuses with
//! [`Invalid`], changing nothing. It is pure: the engine performs the side
//! effects named in the table (marking tracks, starting the copy job, ...)
//! under the same lock that publishes the new state.
//!
//! The transition table is in `Documentation/rcopy-protocol.rst`
//! ("Pair state machine"); [`next`] is the reference.
//!
//! Invariants, checked by [`Pair::is_valid`] and kept by [`next`]:
//!
//! - `simplex` if and only if `conn` is `standalone`; a simplex pair has
//!   role primary, is consistent and has no flag set.
//! - `duplex` and `resyncing` need `conn` `connected`.
//! - `held` (operator suspend) only in `suspended` or `swapped`.
//! - `swapped` only as primary with `took_over`; `took_over` only as primary
//!   in `swapped` or `resyncing`.
//! - a primary is always consistent; a secondary is consistent in `duplex`
//!   and never in `copying` or `resyncing`.

use core::fmt;

pub use super::status::{Conn, Role, State};

/// One side's view of its pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    /// Pair state.
    pub state: State,
    /// This side's role.
    pub role: Role,
    /// Link state.
    pub conn: Conn,
    /// The operator suspended the pair: no resync starts until resumed.
    pub held: bool,
    /// This side's data is a usable (crash-consistent) image. Always true for
    /// a primary; false on a secondary while tracks arrive out of order
    /// (initial copy, resync) until the copy completes. Only a consistent
    /// secondary may be promoted.
    pub consistent: bool,
    /// This side took over as primary (`swapped`) and has not yet copied
    /// its writes back to the old primary. Losing the link or an operator
    /// suspend during that copy-back returns to `swapped`.
    pub took_over: bool,
}

impl Default for Pair {
    fn default() -> Self {
        Pair::SIMPLEX
    }
}

/// Something that happens to a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The operator pairs a simplex device, with this side in the given role.
    Configure(Role),
    /// The operator dissolves the pair; the device becomes simplex.
    Dissolve,
    /// The link came up and the peer authenticated.
    Connected,
    /// The link went down (error, timeout, BYE, REJECT).
    Disconnected,
    /// The initial copy finished.
    CopyDone,
    /// The operator suspended the pair.
    OperatorSuspend,
    /// The operator resumed a suspended pair.
    OperatorResume,
    /// The async write cache is full: the primary falls back to marking.
    Overflow,
    /// Copying of marked tracks starts (bitmaps exchanged and merged).
    ResyncStart,
    /// No marked track is left and nothing is in flight.
    ResyncDone,
    /// The operator makes this secondary the primary.
    Promote,
    /// The operator makes this primary a secondary.
    Demote,
}

impl Event {
    /// Every event, for tests and tables.
    pub const ALL: &'static [Event] = &[
        Event::Configure(Role::Primary),
        Event::Configure(Role::Secondary),
        Event::Dissolve,
        Event::Connected,
        Event::Disconnected,
        Event::CopyDone,
        Event::OperatorSuspend,
        Event::OperatorResume,
        Event::Overflow,
        Event::ResyncStart,
        Event::ResyncDone,
        Event::Promote,
        Event::Demote,
    ];

    /// A short name for log lines.
    pub fn name(self) -> &'static str {
        match self {
            Event::Configure(Role::Primary) => "configure primary",
            Event::Configure(Role::Secondary) => "configure secondary",
            Event::Dissolve => "dissolve",
            Event::Connected => "connected",
            Event::Disconnected => "disconnected",
            Event::CopyDone => "copy done",
            Event::OperatorSuspend => "suspend",
            Event::OperatorResume => "resume",
            Event::Overflow => "cache overflow",
            Event::ResyncStart => "resync start",
            Event::ResyncDone => "resync done",
            Event::Promote => "promote",
            Event::Demote => "demote",
        }
    }
}

/// A refused transition. The pair is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid {
    /// The pair as it was (and still is).
    pub from: Pair,
    /// The refused event.
    pub event: Event,
    reason: &'static str,
}

impl Invalid {
    /// Why, as static text for a log line or a message reply.
    pub fn message(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} refused in state {}: {}",
            self.event.name(),
            self.from.state.as_str(),
            self.reason
        )
    }
}

const fn state_code(s: State) -> u64 {
    match s {
        State::Simplex => 0,
        State::Copying => 1,
        State::Duplex => 2,
        State::Suspended => 3,
        State::Resyncing => 4,
        State::Swapped => 5,
    }
}

fn state_from(c: u64) -> Option<State> {
    Some(match c {
        0 => State::Simplex,
        1 => State::Copying,
        2 => State::Duplex,
        3 => State::Suspended,
        4 => State::Resyncing,
        5 => State::Swapped,
        _ => return None,
    })
}

const fn conn_code(c: Conn) -> u64 {
    match c {
        Conn::Standalone => 0,
        Conn::Connecting => 1,
        Conn::Connected => 2,
    }
}

fn conn_from(c: u64) -> Option<Conn> {
    Some(match c {
        0 => Conn::Standalone,
        1 => Conn::Connecting,
        2 => Conn::Connected,
        _ => return None,
    })
}

const HELD: u64 = 1 << 24;
const CONSISTENT: u64 = 1 << 25;
const TOOK_OVER: u64 = 1 << 26;

impl Pair {
    /// An unpaired device.
    pub const SIMPLEX: Pair = Pair {
        state: State::Simplex,
        role: Role::Primary,
        conn: Conn::Standalone,
        held: false,
        consistent: true,
        took_over: false,
    };

    /// Whether every invariant of the module documentation holds.
    pub fn is_valid(&self) -> bool {
        let primary = self.role == Role::Primary;
        let simplex_ok = (self.state == State::Simplex) == (self.conn == Conn::Standalone);
        let simplex_clean = self.state != State::Simplex
            || (primary && self.consistent && !self.held && !self.took_over);
        let linked =
            !matches!(self.state, State::Duplex | State::Resyncing) || self.conn == Conn::Connected;
        let held_ok = !self.held || matches!(self.state, State::Suspended | State::Swapped);
        let swapped_ok = self.state != State::Swapped || (primary && self.took_over);
        let took_ok =
            !self.took_over || (primary && matches!(self.state, State::Swapped | State::Resyncing));
        let consistent_ok = if primary {
            self.consistent
        } else {
            match self.state {
                State::Copying | State::Resyncing => !self.consistent,
                State::Duplex => self.consistent,
                _ => true,
            }
        };
        simplex_ok && simplex_clean && linked && held_ok && swapped_ok && took_ok && consistent_ok
    }

    /// Whether host writes are accepted (a secondary refuses them).
    pub fn accepts_writes(&self) -> bool {
        self.role == Role::Primary
    }

    /// Whether a host write must set its tracks in the dirty bitmap (before
    /// it is submitted) instead of being shipped: a primary in `suspended`,
    /// `resyncing` or `swapped`.
    pub fn marks_writes(&self) -> bool {
        self.role == Role::Primary
            && matches!(
                self.state,
                State::Suspended | State::Resyncing | State::Swapped
            )
    }

    /// Whether host writes are shipped in the ordered stream: a connected
    /// primary in `duplex`, or in `copying` for writes below the copy
    /// pointer (writes above it are left to the copy).
    pub fn ships_writes(&self) -> bool {
        self.role == Role::Primary
            && self.conn == Conn::Connected
            && matches!(self.state, State::Duplex | State::Copying)
    }

    /// The pair as loaded after a restart of this side: the link is down,
    /// so `copying`, `duplex` and `resyncing` become `suspended` (or
    /// `swapped` after a takeover). As on [`Event::Disconnected`], a
    /// primary that was `copying` must mark every track at or above the
    /// persisted copy pointer.
    pub fn after_restart(&self) -> Pair {
        let mut p = *self;
        if p.state == State::Simplex {
            p.conn = Conn::Standalone;
            return p;
        }
        p.conn = Conn::Connecting;
        if matches!(p.state, State::Copying | State::Duplex | State::Resyncing) {
            p.state = stopped(&p);
        }
        p
    }

    /// Encodes the pair as the `a` field of a STATE frame: bits 0-7 state,
    /// 8-15 role, 16-23 conn, 24 held, 25 consistent, 26 took over; every
    /// other bit zero.
    pub fn encode(&self) -> u64 {
        let role = match self.role {
            Role::Primary => 0,
            Role::Secondary => 1,
        };
        let mut v = state_code(self.state) | (role << 8) | (conn_code(self.conn) << 16);
        if self.held {
            v |= HELD;
        }
        if self.consistent {
            v |= CONSISTENT;
        }
        if self.took_over {
            v |= TOOK_OVER;
        }
        v
    }

    /// Decodes [`Pair::encode`]; `None` for unknown codes, set unknown bits
    /// or a pair breaking an invariant.
    pub fn decode(v: u64) -> Option<Pair> {
        if v & !(0xff_ffff | HELD | CONSISTENT | TOOK_OVER) != 0 {
            return None;
        }
        let p = Pair {
            state: state_from(v & 0xff)?,
            role: match (v >> 8) & 0xff {
                0 => Role::Primary,
                1 => Role::Secondary,
                _ => return None,
            },
            conn: conn_from((v >> 16) & 0xff)?,
            held: v & HELD != 0,
            consistent: v & CONSISTENT != 0,
            took_over: v & TOOK_OVER != 0,
        };
        p.is_valid().then_some(p)
    }
}

/// Where a stopped copy or resync goes: back to `swapped` during a
/// takeover's copy-back, else `suspended`.
fn stopped(p: &Pair) -> State {
    if p.took_over {
        State::Swapped
    } else {
        State::Suspended
    }
}

/// Applies `event` to `p`. See the module documentation and
/// `Documentation/rcopy-protocol.rst` for the table.
pub fn next(p: Pair, event: Event) -> Result<Pair, Invalid> {
    let no = |reason: &'static str| {
        Err(Invalid {
            from: p,
            event,
            reason,
        })
    };
    let mut n = p;
    let primary = p.role == Role::Primary;
    let connected = p.conn == Conn::Connected;
    if p.state == State::Simplex && !matches!(event, Event::Configure(_)) {
        return no("no pair configured");
    }
    match event {
        Event::Configure(role) => {
            if p.state != State::Simplex {
                return no("a pair is already configured");
            }
            n = Pair {
                state: State::Copying,
                role,
                conn: Conn::Connecting,
                held: false,
                consistent: role == Role::Primary,
                took_over: false,
            };
        }
        Event::Dissolve => n = Pair::SIMPLEX,
        Event::Connected => {
            if p.conn != Conn::Connecting {
                return no("already connected");
            }
            n.conn = Conn::Connected;
        }
        Event::Disconnected => {
            if !connected {
                return no("not connected");
            }
            n.conn = Conn::Connecting;
            n.state = match p.state {
                State::Copying | State::Duplex | State::Resyncing => stopped(&p),
                s => s,
            };
        }
        Event::CopyDone => {
            if p.state != State::Copying {
                return no("no initial copy running");
            }
            if !connected {
                return no("not connected");
            }
            n.state = State::Duplex;
            n.consistent = true;
        }
        Event::OperatorSuspend => {
            if p.held {
                return no("already suspended");
            }
            n.held = true;
            n.state = match p.state {
                State::Copying | State::Duplex | State::Resyncing => stopped(&p),
                s => s,
            };
        }
        Event::OperatorResume => {
            if !p.held {
                return no("not suspended");
            }
            n.held = false;
        }
        Event::Overflow => {
            if !primary {
                return no("only a primary caches writes");
            }
            if !connected || !matches!(p.state, State::Duplex | State::Copying) {
                return no("not shipping writes");
            }
            n.state = State::Resyncing;
        }
        Event::ResyncStart => {
            if !connected {
                return no("not connected");
            }
            if p.held {
                return no("suspended by the operator");
            }
            let ok = if primary {
                matches!(p.state, State::Suspended | State::Swapped)
            } else {
                matches!(p.state, State::Suspended | State::Duplex | State::Copying)
            };
            if !ok {
                return no("nothing to resync from this state");
            }
            n.state = State::Resyncing;
            n.consistent = primary;
        }
        Event::ResyncDone => {
            if p.state != State::Resyncing {
                return no("no resync running");
            }
            n.state = State::Duplex;
            n.consistent = true;
            n.took_over = false;
        }
        Event::Promote => {
            if primary {
                return no("already primary");
            }
            if !p.consistent {
                return no("data is not consistent");
            }
            match (p.state, connected) {
                // Takeover: the old primary is gone.
                (State::Suspended, false) => {
                    n.state = State::Swapped;
                    n.took_over = true;
                }
                // Failback handover: the peer was demoted first.
                (State::Duplex, true) => {}
                (State::Suspended, true) => return no("peer still connected"),
                _ => return no("cannot promote in this state"),
            }
            n.role = Role::Primary;
        }
        Event::Demote => {
            if !primary {
                return no("already secondary");
            }
            match (p.state, connected) {
                (State::Duplex, true) | (State::Suspended, false) => {}
                (State::Swapped, _) => return no("writes not yet copied back"),
                (State::Suspended, true) => return no("peer connected"),
                _ => return no("cannot demote in this state"),
            }
            n.role = Role::Secondary;
        }
    }
    Ok(n)
}
