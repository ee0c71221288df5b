// SPDX-License-Identifier: GPL-2.0

//! The status line (`dmsetup status`): space-separated `key=value` words
//! in a fixed order (see `Documentation/rcopy.rst`).
//!
//! New keys are only ever appended. Parsers look keys up by name and ignore
//! keys they do not know.

use core::fmt;

macro_rules! word_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vm])* $var),+
        }

        impl $name {
            /// Every value, in documentation order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The word used in the status line.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$var => $s),+
                }
            }

            /// Parses a status-line word.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($s => Some($name::$var),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

word_enum!(
    /// Pair state.
    State {
        /// No pair.
        Simplex => "simplex",
        /// Initial copy running.
        Copying => "copying",
        /// In sync.
        Duplex => "duplex",
        /// Peer unreachable or pair suspended; tracks are being marked.
        Suspended => "suspended",
        /// Dirty tracks are being copied.
        Resyncing => "resyncing",
        /// A secondary has taken over.
        Swapped => "swapped",
    }
);

word_enum!(
    /// Role of this side of the pair.
    Role {
        /// The side that takes writes and ships them.
        Primary => "primary",
        /// The side that applies the primary's writes.
        Secondary => "secondary",
    }
);

word_enum!(
    /// Replication mode.
    Mode {
        /// Writes complete after the peer acknowledges.
        Sync => "sync",
        /// Writes complete once local.
        Async => "async",
    }
);

word_enum!(
    /// Connection state of the replication link.
    Conn {
        /// No peer configured.
        Standalone => "standalone",
        /// Trying to reach the peer.
        Connecting => "connecting",
        /// Link up.
        Connected => "connected",
    }
);

/// Longest peer address kept, in bytes (`[<ipv6>%<scope>]:<port>` fits).
pub const PEER_MAX: usize = 64;

/// The peer's `address:port`, or none (`-` in the status line).
///
/// Stored inline: no allocation. Never empty, never holds whitespace.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    len: u8,
    buf: [u8; PEER_MAX],
}

impl Peer {
    /// No peer.
    pub const NONE: Peer = Peer {
        len: 0,
        buf: [0; PEER_MAX],
    };

    /// A peer address. `"-"` gives [`Peer::NONE`]; `None` if `s` is empty,
    /// longer than [`PEER_MAX`], or holds whitespace, `=` or control bytes.
    pub fn new(s: &str) -> Option<Peer> {
        if s == "-" {
            return Some(Peer::NONE);
        }
        let b = s.as_bytes();
        if b.is_empty()
            || b.len() > PEER_MAX
            || b.iter().any(|&c| c <= b' ' || c == b'=' || c == 0x7f)
        {
            return None;
        }
        let mut p = Peer::NONE;
        let dst = p.buf.get_mut(..b.len())?;
        dst.copy_from_slice(b);
        p.len = u8::try_from(b.len()).ok()?;
        Some(p)
    }

    /// Whether no peer is set.
    pub fn is_none(&self) -> bool {
        self.len == 0
    }

    /// The address, or `"-"` when none.
    pub fn as_str(&self) -> &str {
        if self.len == 0 {
            return "-";
        }
        self.buf
            .get(..usize::from(self.len))
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("-")
    }
}

impl Default for Peer {
    fn default() -> Self {
        Peer::NONE
    }
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Peer({:?})", self.as_str())
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many of [`KEYS`] every status line has; the later ones were appended since.
pub const REQUIRED_KEYS: usize = 21;

/// Status keys in line order.
pub const KEYS: [&str; 37] = [
    "state",
    "role",
    "mode",
    "conn",
    "peer",
    "track_size",
    "size",
    "dirty_bytes",
    "cache_fill",
    "sync_done",
    "sync_total",
    "sent_bytes",
    "acked_bytes",
    "lag_ms",
    "lag_bytes",
    "reads",
    "writes",
    "flushes",
    "discards",
    "write_zeroes",
    "io_errors",
    "sync_rate",
    "eta_s",
    "consistent",
    "error",
    "al_hot",
    "al_refs",
    "decision",
    "gen",
    "peer_tracks",
    "point",
    "point_age_s",
    "split",
    "split_create",
    "split_changed",
    "split_copied",
    "split_cow",
];

/// The words of the `split` key: no split copy, or its state
/// (`rcore::split::Mode::as_str`).
/// `failed`: the copy device or a read for it failed; writes go on untracked and
/// the copy must be made again (see `Documentation/rcopy-snapshots.rst`).
pub const SPLIT_WORDS: [&str; 7] = [
    "none",
    "forming",
    "formed",
    "splitting",
    "split",
    "refreshing",
    "failed",
];

/// A sticky error: what the device can no longer guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DevError {
    /// None.
    #[default]
    None,
    /// A metadata write failed: no crash safety until the device is reloaded.
    Metadata,
    /// This secondary failed to apply a write: not consistent until a resync ends.
    Apply,
}

impl DevError {
    /// The status-line word.
    pub fn as_str(&self) -> &'static str {
        match self {
            DevError::None => "none",
            DevError::Metadata => "metadata",
            DevError::Apply => "apply",
        }
    }

    /// Parses a status-line word.
    pub fn parse(s: &str) -> Option<DevError> {
        [DevError::None, DevError::Metadata, DevError::Apply]
            .into_iter()
            .find(|e| e.as_str() == s)
    }
}

/// Everything the status line reports. Byte counts are in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Pair state.
    pub state: State,
    /// Role of this side.
    pub role: Role,
    /// Replication mode.
    pub mode: Mode,
    /// Link state.
    pub conn: Conn,
    /// Peer address or none.
    pub peer: Peer,
    /// Track size.
    pub track_size: u64,
    /// Volume size.
    pub size: u64,
    /// Bytes covered by set bits of the dirty-track bitmap.
    pub dirty_bytes: u64,
    /// Bytes held in the write cache (`cache_fill` before the `/`).
    pub cache_used: u64,
    /// Write cache limit (`cache_fill` after the `/`).
    pub cache_max: u64,
    /// Progress of the running copy or resync.
    pub sync_done: u64,
    /// Total of the running copy or resync.
    pub sync_total: u64,
    /// Payload bytes sent to the peer.
    pub sent_bytes: u64,
    /// Payload bytes acknowledged by the peer.
    pub acked_bytes: u64,
    /// How far the peer is behind, in milliseconds.
    pub lag_ms: u64,
    /// How far the peer is behind, in bytes.
    pub lag_bytes: u64,
    /// Read bios seen.
    pub reads: u64,
    /// Write bios seen.
    pub writes: u64,
    /// Flush bios seen.
    pub flushes: u64,
    /// Discard bios seen.
    pub discards: u64,
    /// Write-zeroes bios seen.
    pub write_zeroes: u64,
    /// Bios completed with an error by the data device.
    pub io_errors: u64,
    /// Copy or resync rate, bytes per second (0 when none runs).
    pub sync_rate: u64,
    /// Seconds until the running copy or resync ends, at `sync_rate`.
    pub eta_s: u64,
    /// This side's data is a usable image (false on a secondary during a copy).
    pub consistent: bool,
    /// The sticky error, if any.
    pub error: DevError,
    /// Activity-log extents hot.
    pub al_hot: u64,
    /// Activity-log references held by writes the peer has not confirmed durable.
    pub al_refs: u64,
    /// What the last handshake decided from the generation ids (`none` before
    /// the first one).
    pub decision: Option<super::gens::Decision>,
    /// This side's current generation (`gen`, 16 hex digits; 0 for simplex).
    pub gen: u64,
    /// Tracks the peer's bitmap added at the last handshake (on the primary: what
    /// the peer wrote and never had confirmed, rolled back by the resync).
    pub peer_tracks: u64,
    /// The last complete consistency point: on a secondary, the id of the point
    /// its image can return to; on a primary, the id the peer gave the last point
    /// it confirmed (0: none).
    pub point: u64,
    /// Seconds since that point was made (0 with no point).
    pub point_age_s: u64,
    /// The local split copy's state, one of [`SPLIT_WORDS`] (`none`: no `split_dev`).
    pub split: &'static str,
    /// Tracks marked CREATE: written since the copy took them (forming, formed),
    /// or still to be copied as of the split (splitting).
    pub split_create: u64,
    /// Tracks marked SPLIT or UPDATE: written since the split.
    pub split_changed: u64,
    /// Tracks copied to the split copy since the table was loaded.
    pub split_copied: u64,
    /// Of those, tracks copied before a write could overwrite them.
    pub split_cow: u64,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            state: State::Simplex,
            role: Role::Primary,
            mode: Mode::Sync,
            conn: Conn::Standalone,
            peer: Peer::NONE,
            track_size: 0,
            size: 0,
            dirty_bytes: 0,
            cache_used: 0,
            cache_max: 0,
            sync_done: 0,
            sync_total: 0,
            sent_bytes: 0,
            acked_bytes: 0,
            lag_ms: 0,
            lag_bytes: 0,
            reads: 0,
            writes: 0,
            flushes: 0,
            discards: 0,
            write_zeroes: 0,
            io_errors: 0,
            sync_rate: 0,
            eta_s: 0,
            consistent: true,
            error: DevError::None,
            al_hot: 0,
            al_refs: 0,
            decision: None,
            gen: 0,
            peer_tracks: 0,
            point: 0,
            point_age_s: 0,
            split: "none",
            split_create: 0,
            split_changed: 0,
            split_copied: 0,
            split_cow: 0,
        }
    }
}

/// Why a status line could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusError {
    /// A required key is absent.
    Missing(&'static str),
    /// A known key has a value that does not parse.
    BadValue(&'static str),
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusError::Missing(k) => write!(f, "status key {} missing", k),
            StatusError::BadValue(k) => write!(f, "status key {} has a bad value", k),
        }
    }
}

/// Splits a status line into `(key, value)` pairs. Words without `=` are
/// skipped; a value may itself contain `=`.
pub fn parse_kv(line: &str) -> impl Iterator<Item = (&str, &str)> {
    line.split_ascii_whitespace()
        .filter_map(|w| w.split_once('='))
}

fn num(key: &'static str, v: &str) -> Result<u64, StatusError> {
    super::table::parse_u64(v.as_bytes()).ok_or(StatusError::BadValue(key))
}

impl Status {
    /// Writes the status line: every key of [`KEYS`] in order, separated by
    /// single spaces, no trailing space or newline.
    pub fn write(&self, w: &mut impl fmt::Write) -> fmt::Result {
        write!(
            w,
            "state={} role={} mode={} conn={} peer={} track_size={} size={} \
             dirty_bytes={} cache_fill={}/{} sync_done={} sync_total={} \
             sent_bytes={} acked_bytes={} lag_ms={} lag_bytes={} reads={} \
             writes={} flushes={} discards={} write_zeroes={} io_errors={} \
             sync_rate={} eta_s={} consistent={} error={} al_hot={} al_refs={} \
             decision={} gen={:016x} peer_tracks={} point={} point_age_s={} \
             split={} split_create={} split_changed={} split_copied={} split_cow={}",
            self.state.as_str(),
            self.role.as_str(),
            self.mode.as_str(),
            self.conn.as_str(),
            self.peer.as_str(),
            self.track_size,
            self.size,
            self.dirty_bytes,
            self.cache_used,
            self.cache_max,
            self.sync_done,
            self.sync_total,
            self.sent_bytes,
            self.acked_bytes,
            self.lag_ms,
            self.lag_bytes,
            self.reads,
            self.writes,
            self.flushes,
            self.discards,
            self.write_zeroes,
            self.io_errors,
            self.sync_rate,
            self.eta_s,
            if self.consistent { "yes" } else { "no" },
            self.error.as_str(),
            self.al_hot,
            self.al_refs,
            self.decision.map_or("none", |d| d.as_str()),
            self.gen,
            self.peer_tracks,
            self.point,
            self.point_age_s,
            self.split,
            self.split_create,
            self.split_changed,
            self.split_copied,
            self.split_cow,
        )
    }

    /// Parses a status line. Keys are looked up by name, unknown keys are
    /// ignored, a repeated key takes its last value; every key of [`KEYS`]
    /// must be present.
    pub fn parse(line: &str) -> Result<Status, StatusError> {
        let mut s = Status::default();
        let mut seen = [false; KEYS.len()];
        for (k, v) in parse_kv(line) {
            let Some(idx) = KEYS.iter().position(|&key| key == k) else {
                continue;
            };
            let key = KEYS.get(idx).copied().unwrap_or("");
            s.set(idx, key, v)?;
            if let Some(flag) = seen.get_mut(idx) {
                *flag = true;
            }
        }
        // Keys appended after the first version may be absent (an older module).
        let mut required = seen.iter().zip(KEYS.iter()).take(REQUIRED_KEYS);
        if let Some((_, key)) = required.find(|(f, _)| !**f) {
            return Err(StatusError::Missing(key));
        }
        Ok(s)
    }

    fn set(&mut self, idx: usize, key: &'static str, v: &str) -> Result<(), StatusError> {
        let bad = StatusError::BadValue(key);
        match idx {
            0 => self.state = State::parse(v).ok_or(bad)?,
            1 => self.role = Role::parse(v).ok_or(bad)?,
            2 => self.mode = Mode::parse(v).ok_or(bad)?,
            3 => self.conn = Conn::parse(v).ok_or(bad)?,
            4 => self.peer = Peer::new(v).ok_or(bad)?,
            5 => self.track_size = num(key, v)?,
            6 => self.size = num(key, v)?,
            7 => self.dirty_bytes = num(key, v)?,
            8 => {
                let (u, m) = v.split_once('/').ok_or(bad)?;
                self.cache_used = num(key, u)?;
                self.cache_max = num(key, m)?;
            }
            9 => self.sync_done = num(key, v)?,
            10 => self.sync_total = num(key, v)?,
            11 => self.sent_bytes = num(key, v)?,
            12 => self.acked_bytes = num(key, v)?,
            13 => self.lag_ms = num(key, v)?,
            14 => self.lag_bytes = num(key, v)?,
            15 => self.reads = num(key, v)?,
            16 => self.writes = num(key, v)?,
            17 => self.flushes = num(key, v)?,
            18 => self.discards = num(key, v)?,
            19 => self.write_zeroes = num(key, v)?,
            20 => self.io_errors = num(key, v)?,
            21 => self.sync_rate = num(key, v)?,
            22 => self.eta_s = num(key, v)?,
            23 => {
                self.consistent = match v {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(bad),
                }
            }
            24 => self.error = DevError::parse(v).ok_or(bad)?,
            25 => self.al_hot = num(key, v)?,
            26 => self.al_refs = num(key, v)?,
            27 => {
                self.decision = match v {
                    "none" => None,
                    _ => Some(super::gens::Decision::parse(v).ok_or(bad)?),
                }
            }
            28 => {
                if v.len() != 16 {
                    return Err(bad);
                }
                self.gen = u64::from_str_radix(v, 16).map_err(|_| bad)?;
            }
            29 => self.peer_tracks = num(key, v)?,
            30 => self.point = num(key, v)?,
            31 => self.point_age_s = num(key, v)?,
            32 => self.split = SPLIT_WORDS.iter().copied().find(|w| *w == v).ok_or(bad)?,
            33 => self.split_create = num(key, v)?,
            34 => self.split_changed = num(key, v)?,
            35 => self.split_copied = num(key, v)?,
            36 => self.split_cow = num(key, v)?,
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fmtbuf::BufWriter;
    use super::*;

    const LINE: &str = "state=simplex role=primary mode=sync conn=standalone peer=- \
        track_size=65536 size=1073741824 dirty_bytes=0 cache_fill=0/0 sync_done=0 \
        sync_total=0 sent_bytes=0 acked_bytes=0 lag_ms=0 lag_bytes=0 reads=1 \
        writes=2 flushes=3 discards=4 write_zeroes=5 io_errors=6 sync_rate=0 eta_s=0 consistent=yes \
        error=none al_hot=0 al_refs=0 decision=none gen=0000000000000000 peer_tracks=0 \
        point=0 point_age_s=0 split=none split_create=0 split_changed=0 split_copied=0 \
        split_cow=0";

    #[test]
    fn round_trip() {
        let s = Status::parse(LINE).unwrap();
        assert_eq!(s.size, 1 << 30);
        assert_eq!(s.io_errors, 6);
        let mut b = [0u8; 512];
        let mut w = BufWriter::new(&mut b);
        s.write(&mut w).unwrap();
        assert_eq!(w.as_str(), LINE);
    }

    #[test]
    fn unknown_and_missing() {
        let mut b = [0u8; 600];
        let mut w = BufWriter::new(&mut b);
        write!(w, "new_key=7 {} later=x junk", LINE).unwrap();
        assert_eq!(
            Status::parse(w.as_str()).unwrap(),
            Status::parse(LINE).unwrap()
        );
        assert_eq!(
            Status::parse("state=simplex"),
            Err(StatusError::Missing("role"))
        );
        assert_eq!(
            Status::parse("state=bogus"),
            Err(StatusError::BadValue("state"))
        );
    }

    #[test]
    fn peer() {
        assert!(Peer::new("-").unwrap().is_none());
        assert_eq!(
            Peer::new("10.0.0.1:7788").unwrap().as_str(),
            "10.0.0.1:7788"
        );
        assert!(Peer::new("").is_none());
        assert!(Peer::new("a b").is_none());
        assert!(Peer::new(core::str::from_utf8(&[b'x'; 65]).unwrap()).is_none());
    }

    use core::fmt::Write;
}
