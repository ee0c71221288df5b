// SPDX-License-Identifier: GPL-2.0

//! The rcopy table line: parsing and canonical formatting.
//!
//! The words after the target name are
//! `<data_dev> <meta_dev> [<#opt_args> <opt_arg>*]`
//! (see `Documentation/rcopy.rst`). Words are byte strings: the kernel does
//! not guarantee UTF-8.
//!
//! Adding an option: add a [`OptSpec`] to [`OPTIONS`], a field to
//! [`TableArgs`] (and its default in [`TableArgs::new`]), an arm in
//! `apply_option`, and the non-default case in [`format_table`].

use super::activity::{
    AL_MAX_EXTENTS, AL_MIN_EXTENTS, DEFAULT_AL_EXTENTS, DEFAULT_AL_EXTENT_SIZE, MAX_AL_EXTENT_SIZE,
};
use super::addr::SockAddr;
use super::status::{Mode, Role};
use core::fmt;

/// Default track size in bytes (64 KiB).
pub const DEFAULT_TRACK_SIZE: u32 = 65536;
/// Smallest accepted track size in bytes.
pub const MIN_TRACK_SIZE: u32 = 4096;
/// Largest accepted track size in bytes (16 MiB).
pub const MAX_TRACK_SIZE: u32 = 16 << 20;

/// Name of the `track_size` option.
pub const OPT_TRACK_SIZE: &str = "track_size";
/// Default async cache limit in bytes (64 MiB).
pub const DEFAULT_CACHE_SIZE: u64 = 64 << 20;
/// Smallest async cache limit (1 MiB: one maximal write).
pub const MIN_CACHE_SIZE: u64 = 1 << 20;
/// Largest async cache limit (4 GiB).
pub const MAX_CACHE_SIZE: u64 = 4 << 30;
/// Default heartbeat timeout in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u32 = 5000;
/// Longest secret, in bytes.
pub const MAX_SECRET: usize = 64;
/// Longest pair id, in bytes.
pub const MAX_PAIR_ID: usize = 64;

/// Describes one optional argument: its name and how many value words follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptSpec {
    /// The option word.
    pub name: &'static str,
    /// Number of value words that follow the option word.
    pub values: usize,
}

/// Every optional argument the target accepts.
pub const OPTIONS: &[OptSpec] = &[
    OptSpec {
        name: OPT_TRACK_SIZE,
        values: 1,
    },
    OptSpec {
        name: "role",
        values: 1,
    },
    OptSpec {
        name: "mode",
        values: 1,
    },
    OptSpec {
        name: "peer",
        values: 1,
    },
    OptSpec {
        name: "local",
        values: 1,
    },
    OptSpec {
        name: "secret",
        values: 1,
    },
    OptSpec {
        name: "pair_id",
        values: 1,
    },
    OptSpec {
        name: "cache_size",
        values: 1,
    },
    OptSpec {
        name: "timeout_ms",
        values: 1,
    },
    OptSpec {
        name: "resync_rate",
        values: 1,
    },
    OptSpec {
        name: "al_extents",
        values: 1,
    },
    OptSpec {
        name: "al_extent_size",
        values: 1,
    },
    OptSpec {
        name: "snap_store",
        values: 1,
    },
    OptSpec {
        name: "split_dev",
        values: 1,
    },
];

/// Looks an option word up in [`OPTIONS`].
pub fn find_option(word: &[u8]) -> Option<&'static OptSpec> {
    OPTIONS.iter().find(|o| o.name.as_bytes() == word)
}

/// Parsed table arguments. Device words are borrowed as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableArgs<'a> {
    /// The data device, as a path or `major:minor`.
    pub data_dev: &'a [u8],
    /// The metadata device, as a path or `major:minor`.
    pub meta_dev: &'a [u8],
    /// Track size in bytes; a valid one (see [`track_size_valid`]).
    pub track_size: u32,
    /// This side's role; `None` for a standalone (simplex) device.
    pub role: Option<Role>,
    /// Replication mode.
    pub mode: Mode,
    /// Where the primary connects to.
    pub peer: Option<SockAddr>,
    /// Where the secondary listens.
    pub local: Option<SockAddr>,
    /// Shared secret authenticating the link (empty: none given).
    pub secret: &'a [u8],
    /// Pair identity, the same on both sides.
    pub pair_id: &'a [u8],
    /// Async cache limit in bytes.
    pub cache_size: u64,
    /// Heartbeat timeout in milliseconds.
    pub timeout_ms: u32,
    /// Resync rate limit in bytes per second; 0 for none.
    pub resync_rate: u64,
    /// Activity log: how many extents may be hot at once.
    pub al_extents: u32,
    /// Activity log: extent size in bytes (a power of two; a track at least is used).
    pub al_extent_size: u64,
    /// `snap_store`: the exception store device for snapshots taken on this side
    /// while it is a secondary (empty: none).
    pub snap_store: &'a [u8],
    /// `split_dev`: a second local device kept as a local mirror that can be split
    /// into a point-in-time copy (empty: none). Simplex or primary only.
    pub split_dev: &'a [u8],
}

impl<'a> TableArgs<'a> {
    /// Arguments with the given devices and every option at its default.
    pub fn new(data_dev: &'a [u8], meta_dev: &'a [u8]) -> Self {
        TableArgs {
            data_dev,
            meta_dev,
            track_size: DEFAULT_TRACK_SIZE,
            role: None,
            mode: Mode::Sync,
            peer: None,
            local: None,
            secret: &[],
            pair_id: b"default",
            cache_size: DEFAULT_CACHE_SIZE,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            resync_rate: 0,
            al_extents: DEFAULT_AL_EXTENTS,
            al_extent_size: DEFAULT_AL_EXTENT_SIZE,
            snap_store: &[],
            split_dev: &[],
        }
    }
}

/// Why a table line was refused. [`TableError::message`] gives the reason
/// logged by the kernel. The variants marked "(kernel)", and the device lookups
/// and sizes, are detected by the kernel module, not by [`parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableError {
    /// Fewer than two arguments, or extra words.
    ArgCount,
    /// `#opt_args` not a number, or more than the words that follow.
    OptArgCount,
    /// An option name not in [`OPTIONS`].
    UnknownOption,
    /// An option without its value.
    MissingValue,
    /// `track_size` not a power of two in range.
    BadTrackSize,
    /// `data_dev` does not exist or cannot be opened.
    DataLookup,
    /// `meta_dev` does not exist or cannot be opened.
    MetaLookup,
    /// The same device given twice.
    SameDevice,
    /// `<length>` larger than the data device.
    LengthExceedsData,
    /// The metadata device is too small.
    MetaTooSmall,
    /// Data or metadata device already used by another rcopy target.
    DeviceInUse,
    /// `role` not `primary` or `secondary`.
    BadRole,
    /// `mode` not `sync` or `async`.
    BadMode,
    /// `peer` or `local` not `a.b.c.d:port`.
    BadAddress,
    /// `secret` longer than [`MAX_SECRET`].
    BadSecret,
    /// `pair_id` longer than [`MAX_PAIR_ID`].
    BadPairId,
    /// `cache_size` out of range.
    BadCacheSize,
    /// `timeout_ms` out of range.
    BadTimeout,
    /// A primary without `peer`.
    MissingPeer,
    /// A secondary without `local`.
    MissingLocal,
    /// A role without `secret`.
    MissingSecret,
    /// Replication options without `role`.
    MissingRole,
    /// `resync_rate` not a number.
    BadResyncRate,
    /// `al_extents` out of range.
    BadAlExtents,
    /// `al_extent_size` not a power of two from the track size to 1 GiB.
    BadAlExtentSize,
    /// `snap_store` empty.
    BadSnapStore,
    /// `snap_store` does not exist or cannot be opened (kernel).
    StoreLookup,
    /// `snap_store` does not hold a snapshot store for this device (kernel).
    StoreInvalid,
    /// `split_dev` empty.
    BadSplitDev,
    /// `split_dev` on a secondary (its writes bypass the target).
    SplitOnSecondary,
    /// `split_dev` does not exist or cannot be opened (kernel).
    SplitLookup,
    /// `split_dev` is too small, or holds a split copy of another geometry (kernel).
    SplitInvalid,
}

impl TableError {
    /// The reason, NUL-terminated for the kernel's `ti->error`, exactly as
    /// documented in `Documentation/rcopy.rst`.
    pub fn reason(&self) -> &'static core::ffi::CStr {
        match self {
            TableError::ArgCount => c"Invalid argument count",
            TableError::OptArgCount => c"Invalid optional argument count",
            TableError::UnknownOption => c"Unknown optional argument",
            TableError::MissingValue => c"Missing value for optional argument",
            TableError::BadTrackSize => {
                c"Invalid track_size: must be a power of two from 4096 to 16777216"
            }
            TableError::DataLookup => c"Data device lookup failed",
            TableError::MetaLookup => c"Metadata device lookup failed",
            TableError::SameDevice => c"Data and metadata devices must differ",
            TableError::LengthExceedsData => c"Device length exceeds data device size",
            TableError::MetaTooSmall => c"Metadata device too small",
            TableError::DeviceInUse => c"Device already used by another rcopy target",
            TableError::BadRole => c"Invalid role: must be primary or secondary",
            TableError::BadMode => c"Invalid mode: must be sync or async",
            TableError::BadAddress => c"Invalid address: must be a.b.c.d:port or [v6]:port",
            TableError::BadSecret => c"Invalid secret: at most 64 bytes",
            TableError::BadPairId => c"Invalid pair_id: 1 to 64 bytes",
            TableError::BadCacheSize => c"Invalid cache_size: must be from 1048576 to 4294967296",
            TableError::BadTimeout => c"Invalid timeout_ms: must be from 500 to 600000",
            TableError::MissingPeer => c"Role primary needs a peer address",
            TableError::MissingLocal => c"Role secondary needs a local address",
            TableError::MissingSecret => c"A replicated device needs a secret",
            TableError::MissingRole => c"Replication options need a role",
            TableError::BadResyncRate => c"Invalid resync_rate: bytes per second, 0 for no limit",
            TableError::BadAlExtents => c"Invalid al_extents: must be from 7 to 4096",
            TableError::BadAlExtentSize => {
                c"Invalid al_extent_size: must be a power of two up to 1073741824"
            }
            TableError::BadSnapStore => c"Invalid snap_store: a device path or major:minor",
            TableError::StoreLookup => c"Snapshot store device lookup failed",
            TableError::StoreInvalid => {
                c"Snapshot store device does not hold a snapshot store for this device (rcopyctl create-store)"
            }
            TableError::BadSplitDev => c"Invalid split_dev: a device path or major:minor",
            TableError::SplitOnSecondary => {
                c"split_dev is for a standalone device or a primary, not a secondary"
            }
            TableError::SplitLookup => c"Split copy device lookup failed",
            TableError::SplitInvalid => {
                c"Split copy device too small, or it holds a split copy of another size or track size"
            }
        }
    }

    /// The reason as a string slice (see [`TableError::reason`]).
    pub fn message(&self) -> &'static str {
        self.reason().to_str().unwrap_or("")
    }
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// Parses an unsigned decimal number: digits only, no sign, no spaces,
/// at least one digit; `None` on overflow.
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

/// Whether `bytes` is an acceptable track size.
pub fn track_size_valid(bytes: u64) -> bool {
    bytes.is_power_of_two()
        && bytes >= u64::from(MIN_TRACK_SIZE)
        && bytes <= u64::from(MAX_TRACK_SIZE)
}

/// Parses and checks a track size word.
pub fn parse_track_size(word: &[u8]) -> Result<u32, TableError> {
    match parse_u64(word) {
        Some(v) if track_size_valid(v) => u32::try_from(v).map_err(|_| TableError::BadTrackSize),
        _ => Err(TableError::BadTrackSize),
    }
}

fn apply_option<'a>(
    args: &mut TableArgs<'a>,
    spec: &OptSpec,
    values: &[&'a [u8]],
) -> Result<(), TableError> {
    let word: &'a [u8] = values.first().ok_or(TableError::MissingValue)?;
    let text = core::str::from_utf8(word).unwrap_or("");
    match spec.name {
        OPT_TRACK_SIZE => args.track_size = parse_track_size(word)?,
        "role" => args.role = Some(Role::parse(text).ok_or(TableError::BadRole)?),
        "mode" => args.mode = Mode::parse(text).ok_or(TableError::BadMode)?,
        "peer" => args.peer = Some(SockAddr::parse(word).ok_or(TableError::BadAddress)?),
        "local" => args.local = Some(SockAddr::parse(word).ok_or(TableError::BadAddress)?),
        "secret" if word.len() <= MAX_SECRET => args.secret = word,
        "secret" => return Err(TableError::BadSecret),
        "pair_id" if !word.is_empty() && word.len() <= MAX_PAIR_ID => args.pair_id = word,
        "pair_id" => return Err(TableError::BadPairId),
        "cache_size" => {
            args.cache_size = parse_u64(word)
                .filter(|v| (MIN_CACHE_SIZE..=MAX_CACHE_SIZE).contains(v))
                .ok_or(TableError::BadCacheSize)?
        }
        "timeout_ms" => {
            args.timeout_ms = parse_u64(word)
                .filter(|v| (500..=600_000).contains(v))
                .and_then(|v| u32::try_from(v).ok())
                .ok_or(TableError::BadTimeout)?
        }
        "resync_rate" => args.resync_rate = parse_u64(word).ok_or(TableError::BadResyncRate)?,
        "al_extents" => {
            args.al_extents = parse_u64(word)
                .filter(|v| (u64::from(AL_MIN_EXTENTS)..=u64::from(AL_MAX_EXTENTS)).contains(v))
                .and_then(|v| u32::try_from(v).ok())
                .ok_or(TableError::BadAlExtents)?
        }
        "al_extent_size" => {
            args.al_extent_size = parse_u64(word)
                .filter(|v| v.is_power_of_two() && *v <= MAX_AL_EXTENT_SIZE)
                .ok_or(TableError::BadAlExtentSize)?
        }
        "snap_store" if !word.is_empty() => args.snap_store = word,
        "snap_store" => return Err(TableError::BadSnapStore),
        "split_dev" if !word.is_empty() => args.split_dev = word,
        "split_dev" => return Err(TableError::BadSplitDev),
        _ => return Err(TableError::UnknownOption),
    }
    Ok(())
}

/// Parses the table arguments (the words after the target name).
///
/// A repeated option takes its last value.
pub fn parse<'a>(args: &[&'a [u8]]) -> Result<TableArgs<'a>, TableError> {
    let (data_dev, meta_dev, rest) = match args {
        [d, m, rest @ ..] => (*d, *m, rest),
        _ => return Err(TableError::ArgCount),
    };
    let mut out = TableArgs::new(data_dev, meta_dev);
    let (count_word, opts) = match rest {
        [] => return Ok(out),
        [c, opts @ ..] => (*c, opts),
    };
    let count = parse_u64(count_word).ok_or(TableError::OptArgCount)?;
    let count = usize::try_from(count).map_err(|_| TableError::OptArgCount)?;
    if count > opts.len() {
        return Err(TableError::OptArgCount);
    }
    if count < opts.len() {
        return Err(TableError::ArgCount);
    }
    let mut i = 0usize;
    while let Some(word) = opts.get(i) {
        let spec = find_option(word).ok_or(TableError::UnknownOption)?;
        let start = i.checked_add(1).ok_or(TableError::OptArgCount)?;
        let end = start
            .checked_add(spec.values)
            .ok_or(TableError::OptArgCount)?;
        let values = opts.get(start..end).ok_or(TableError::MissingValue)?;
        apply_option(&mut out, spec, values)?;
        i = end;
    }
    check_roles(&out)?;
    Ok(out)
}

/// Cross-option rules: what each role needs.
fn check_roles(a: &TableArgs<'_>) -> Result<(), TableError> {
    match a.role {
        None if a.peer.is_some()
            || a.local.is_some()
            || !a.secret.is_empty()
            || !a.snap_store.is_empty() =>
        {
            Err(TableError::MissingRole)
        }
        None => Ok(()),
        Some(Role::Secondary) if !a.split_dev.is_empty() => Err(TableError::SplitOnSecondary),
        Some(Role::Primary) if a.peer.is_none() => Err(TableError::MissingPeer),
        Some(Role::Secondary) if a.local.is_none() => Err(TableError::MissingLocal),
        Some(_) if a.secret.is_empty() => Err(TableError::MissingSecret),
        Some(_) => Ok(()),
    }
}

/// Writes the canonical table arguments (as for `STATUSTYPE_TABLE`):
/// the two devices, then `#opt_args` and the options that differ from
/// their defaults; nothing after the devices when all are default. The
/// device words of `args` are ignored in favour of `data` and `meta`.
pub fn format_table(
    w: &mut impl fmt::Write,
    data: &str,
    meta: &str,
    args: &TableArgs<'_>,
) -> fmt::Result {
    write!(w, "{} {}", data, meta)?;
    let d = TableArgs::new(&[], &[]);
    let secret = core::str::from_utf8(args.secret).unwrap_or("?");
    let pair_id = core::str::from_utf8(args.pair_id).unwrap_or("?");
    let snap_store = core::str::from_utf8(args.snap_store).unwrap_or("?");
    let split_dev = core::str::from_utf8(args.split_dev).unwrap_or("?");
    let opts: [(&str, Option<&dyn fmt::Display>); 14] = [
        (
            OPT_TRACK_SIZE,
            (args.track_size != d.track_size).then_some(&args.track_size as &dyn fmt::Display),
        ),
        ("role", args.role.as_ref().map(|r| r as &dyn fmt::Display)),
        (
            "mode",
            (args.role.is_some() && args.mode != d.mode).then_some(&args.mode as &dyn fmt::Display),
        ),
        ("peer", args.peer.as_ref().map(|p| p as &dyn fmt::Display)),
        ("local", args.local.as_ref().map(|p| p as &dyn fmt::Display)),
        (
            "secret",
            (!args.secret.is_empty()).then_some(&secret as &dyn fmt::Display),
        ),
        (
            "pair_id",
            (args.pair_id != d.pair_id).then_some(&pair_id as &dyn fmt::Display),
        ),
        (
            "cache_size",
            (args.cache_size != d.cache_size).then_some(&args.cache_size as &dyn fmt::Display),
        ),
        (
            "timeout_ms",
            (args.timeout_ms != d.timeout_ms).then_some(&args.timeout_ms as &dyn fmt::Display),
        ),
        (
            "resync_rate",
            (args.resync_rate != d.resync_rate).then_some(&args.resync_rate as &dyn fmt::Display),
        ),
        (
            "al_extents",
            (args.al_extents != d.al_extents).then_some(&args.al_extents as &dyn fmt::Display),
        ),
        (
            "al_extent_size",
            (args.al_extent_size != d.al_extent_size)
                .then_some(&args.al_extent_size as &dyn fmt::Display),
        ),
        (
            "snap_store",
            (!args.snap_store.is_empty()).then_some(&snap_store as &dyn fmt::Display),
        ),
        (
            "split_dev",
            (!args.split_dev.is_empty()).then_some(&split_dev as &dyn fmt::Display),
        ),
    ];
    let words = opts.iter().filter(|(_, v)| v.is_some()).count() * 2;
    if words == 0 {
        return Ok(());
    }
    write!(w, " {}", words)?;
    for (name, value) in opts.iter() {
        if let Some(v) = value {
            write!(w, " {} {}", name, v)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fmtbuf::BufWriter;
    use super::*;

    fn words<'a>(line: &'a str, out: &mut [&'a [u8]; 16]) -> usize {
        let mut n = 0;
        for (slot, w) in out.iter_mut().zip(line.split_ascii_whitespace()) {
            *slot = w.as_bytes();
            n += 1;
        }
        n
    }

    fn p(line: &str) -> Result<TableArgs<'_>, TableError> {
        let mut buf: [&[u8]; 16] = [&[]; 16];
        let n = words(line, &mut buf);
        parse(&buf[..n])
    }

    #[test]
    fn basic() {
        let a = p("/dev/vdb /dev/vdc").unwrap();
        assert_eq!(a.data_dev, b"/dev/vdb");
        assert_eq!(a.meta_dev, b"/dev/vdc");
        assert_eq!(a.track_size, DEFAULT_TRACK_SIZE);
        assert_eq!(p("a b 0").unwrap().track_size, DEFAULT_TRACK_SIZE);
        assert_eq!(p("a b 2 track_size 1048576").unwrap().track_size, 1 << 20);
        assert_eq!(
            p("a b 4 track_size 4096 track_size 8192")
                .unwrap()
                .track_size,
            8192
        );
    }

    #[test]
    fn errors() {
        assert_eq!(p(""), Err(TableError::ArgCount));
        assert_eq!(p("a"), Err(TableError::ArgCount));
        assert_eq!(p("a b x"), Err(TableError::OptArgCount));
        assert_eq!(p("a b -1"), Err(TableError::OptArgCount));
        assert_eq!(p("a b 3 track_size 4096"), Err(TableError::OptArgCount));
        assert_eq!(p("a b 1 track_size 4096"), Err(TableError::ArgCount));
        assert_eq!(p("a b 0 extra"), Err(TableError::ArgCount));
        assert_eq!(p("a b 1 track_size"), Err(TableError::MissingValue));
        assert_eq!(p("a b 2 foo 1"), Err(TableError::UnknownOption));
        assert_eq!(p("a b 2 track_size 4095"), Err(TableError::BadTrackSize));
        assert_eq!(p("a b 2 track_size 2048"), Err(TableError::BadTrackSize));
        assert_eq!(
            p("a b 2 track_size 33554432"),
            Err(TableError::BadTrackSize)
        );
        assert_eq!(p("a b 2 track_size 0x1000"), Err(TableError::BadTrackSize));
        assert_eq!(
            p("a b 99999999999999999999999 x"),
            Err(TableError::OptArgCount)
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"+1"), None);
        assert_eq!(parse_u64(b" 1"), None);
    }

    #[test]
    fn format() {
        let mut b = [0u8; 64];
        let mut w = BufWriter::new(&mut b);
        format_table(&mut w, "253:1", "253:2", &TableArgs::new(b"", b"")).unwrap();
        assert_eq!(w.as_str(), "253:1 253:2");
        let mut b = [0u8; 64];
        let mut w = BufWriter::new(&mut b);
        let mut a = TableArgs::new(b"", b"");
        a.track_size = 4096;
        format_table(&mut w, "253:1", "253:2", &a).unwrap();
        assert_eq!(w.as_str(), "253:1 253:2 2 track_size 4096");
        let mut b = [0u8; 256];
        let mut w = BufWriter::new(&mut b);
        a.role = Some(Role::Primary);
        a.mode = Mode::Async;
        a.peer = SockAddr::parse(b"10.0.0.2:7788");
        a.secret = b"s3";
        format_table(&mut w, "1:2", "1:3", &a).unwrap();
        let line = w.as_str();
        assert_eq!(
            line,
            "1:2 1:3 10 track_size 4096 role primary mode async peer 10.0.0.2:7788 secret s3"
        );
        let mut words: [&[u8]; 16] = [&[]; 16];
        let mut n = 0;
        for (slot, w) in words.iter_mut().zip(line.split_ascii_whitespace()) {
            *slot = w.as_bytes();
            n += 1;
        }
        let back = parse(&words[..n]).unwrap();
        assert_eq!(back.role, a.role);
        assert_eq!(back.mode, a.mode);
        assert_eq!(back.peer, a.peer);
        assert_eq!(back.secret, a.secret);
    }

    #[test]
    fn messages() {
        assert_eq!(
            TableError::BadTrackSize.message(),
            "Invalid track_size: must be a power of two from 4096 to 16777216"
        );
        assert_eq!(
            TableError::SameDevice.message(),
            "Data and metadata devices must differ"
        );
    }
}
