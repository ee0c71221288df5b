//! `rcopyctl create`: checks, table line, and the DM calls.

use std::fs::File;
use std::io::Read;

use rcopy_core::addr::SockAddr;
use rcopy_core::geometry::{meta_bytes_needed, SECTOR_SIZE};
use rcopy_core::table::{self, TableArgs, TableError, DEFAULT_TRACK_SIZE, MAX_SECRET};

use crate::addr;
use crate::blockdev::{self, BlockDev};
use crate::cli::{DeviceArgs, LinkArgs};
use crate::dm_ioctl::{Control, Target};
use crate::error::{os_msg, Error};
use crate::kmsg::KmsgWatch;
use crate::size::{human_bytes, Size};
use crate::suggest;
use crate::{devnode, open_control, out};

/// Name of the kernel target type.
pub const TARGET_TYPE: &str = "rcopy";

/// Checks the track size and returns it as the table takes it. A bad one is
/// a usage error quoting what was typed.
pub fn check_track_size(size: Option<&Size>) -> Result<u32, Error> {
    let Some(s) = size else {
        return Ok(DEFAULT_TRACK_SIZE);
    };
    let bad = || {
        Error::usage(format!(
            "--track-size {:?}: {}",
            s.text,
            TableError::BadTrackSize.message()
        ))
    };
    if !table::track_size_valid(s.bytes) {
        return Err(bad());
    }
    u32::try_from(s.bytes).map_err(|_| bad())
}

/// [`plan_args`] for a standalone device with the given track size.
#[cfg(test)]
pub fn plan(data: &BlockDev, meta: &BlockDev, track_size: u32) -> Result<Target, Error> {
    let mut args = TableArgs::new(b"", b"");
    args.track_size = track_size;
    plan_args(data, meta, &args)
}

/// Builds the single rcopy target covering the whole data device, after the
/// checks the kernel would make: distinct devices, a non-empty volume, a
/// metadata device large enough. Devices go in as `major:minor`; the options
/// are those of `args` (as checked by [`TableOptions::args`]; its device
/// words are ignored), written by the kernel's own `format_table`.
pub fn plan_args(data: &BlockDev, meta: &BlockDev, args: &TableArgs<'_>) -> Result<Target, Error> {
    let len = check_devices(
        (&data.path, data.size),
        (&meta.path, meta.size),
        data.rdev == meta.rdev,
        args.track_size,
    )?;
    let sectors = len / SECTOR_SIZE;
    let mut params = String::new();
    table::format_table(&mut params, &data.major_minor(), &meta.major_minor(), args)
        .map_err(|_| Error::new("cannot format the table line"))?;
    Ok(Target {
        start: 0,
        length: sectors,
        target_type: TARGET_TYPE.to_string(),
        params,
    })
}

/// The checks the kernel makes on the two devices, each given as (path, size in
/// bytes): distinct (`same` false), a volume of at least one sector, and a metadata
/// device large enough for it in `track_size` tracks. Returns the volume size in
/// bytes: the data device's whole sectors. Shared by `create` and `create-md`.
pub fn check_devices(
    data: (&str, u64),
    meta: (&str, u64),
    same: bool,
    track_size: u32,
) -> Result<u64, Error> {
    if same {
        return Err(Error::new(format!(
            "{} ({} and {} are the same device)",
            TableError::SameDevice.message(),
            data.0,
            meta.0
        )));
    }
    let len = data.1 / SECTOR_SIZE * SECTOR_SIZE;
    if len == 0 {
        return Err(Error::new(format!(
            "data device {} is smaller than one sector",
            data.0
        )));
    }
    let need = meta_bytes_needed(len, track_size);
    if meta.1 < need {
        return Err(Error::new(format!(
            "metadata device {} too small: {} bytes, needs {} bytes ({}) for {} with {} tracks",
            meta.0,
            meta.1,
            need,
            human_bytes(need),
            human_bytes(len),
            human_bytes(u64::from(track_size))
        )));
    }
    Ok(len)
}

/// The table line as `dmsetup table` shows it.
pub fn table_line(t: &Target) -> String {
    format!("{} {} {} {}", t.start, t.length, t.target_type, t.params)
}

/// The table parameters with the value of the `secret` option replaced by
/// `-`, for showing. Options are word pairs after `#opt_args`, so only a word
/// in value position after `secret` is replaced.
pub fn redact_params(params: &str) -> String {
    let words: Vec<&str> = params.split(' ').collect();
    let mut out: Vec<&str> = words.clone();
    // words: data meta [#opt_args name value ...]
    if words.len() > 3 {
        let mut i = 3;
        while i + 1 < words.len() {
            if words[i] == "secret" {
                out[i + 1] = "-";
            }
            i += 2;
        }
    }
    out.join(" ")
}

/// [`table_line`] with the secret shown as `-`.
pub fn redacted_line(t: &Target) -> String {
    format!(
        "{} {} {} {}",
        t.start,
        t.length,
        t.target_type,
        redact_params(&t.params)
    )
}

/// The DM UUID rcopyctl gives a device it creates.
pub fn dm_uuid(name: &str) -> String {
    format!("RCOPY-{name}")
}

/// Joins kernel reasons, or falls back to the errno text.
pub fn reason(reasons: &[String], e: &std::io::Error) -> String {
    if reasons.is_empty() {
        return os_msg(e);
    }
    reasons
        .iter()
        .map(|r| {
            if r == "unknown target type" {
                "the kernel has no rcopy target (is dm_rcopy loaded?)".to_string()
            } else {
                r.clone()
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What `rcopyctl create` (or `pair`) was asked for.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub dev: &'a DeviceArgs,
    pub role: Option<&'a str>,
    pub link: &'a LinkArgs,
    /// The resource file the request comes from (`None`: the flags), for
    /// messages about its addresses.
    pub origin: Option<&'a str>,
}

/// The target `req` asks for, after every check that needs no device-mapper.
pub fn prepare(req: &Request<'_>) -> Result<Target, Error> {
    prepare_with(req, true)
}

/// [`prepare`]; with `exclusive` false the devices may be held (by the
/// live table of the device being compared or reloaded).
pub fn prepare_with(req: &Request<'_>, exclusive: bool) -> Result<Target, Error> {
    // Options first: a wrong flag is reported before any device is touched.
    let ts = check_track_size(req.dev.track_size.as_ref())?;
    let secret = secret(req.link)?;
    let mut link = req.link.clone();
    let (peer_label, local_label) = match req.origin {
        Some(path) => (format!("{path}: address"), format!("{path}: address")),
        None => ("--peer".to_string(), "--local".to_string()),
    };
    link.peer = link
        .peer
        .as_deref()
        .map(|a| addr::resolve(&peer_label, a))
        .transpose()?;
    link.local = link
        .local
        .as_deref()
        .map(|a| addr::resolve(&local_label, a))
        .transpose()?;
    let opts = table_options_with(
        ts,
        req.role,
        &link,
        secret.as_ref(),
        req.dev.split_dev.as_deref(),
    )?;
    let mut args = opts.args();
    let data_dev = blockdev::inspect_with("data device", &req.dev.data, exclusive)?;
    let meta_dev = blockdev::inspect_with("metadata device", &req.dev.meta, exclusive)?;
    // The store goes in the table as `major:minor`, as the kernel shows it.
    let store = link
        .snap_store
        .as_deref()
        .map(|p| blockdev::inspect_with("snapshot store", p, exclusive))
        .transpose()?;
    let store_mm = store.as_ref().map(BlockDev::major_minor);
    if let Some(st) = &store {
        if st.rdev == data_dev.rdev || st.rdev == meta_dev.rdev {
            return Err(Error::new(format!(
                "the snapshot store {} must differ from the data and metadata devices",
                st.path
            )));
        }
    }
    if let Some(mm) = &store_mm {
        args.snap_store = mm.as_bytes();
    }
    // The split copy device too (`major:minor`), checked against the others.
    let split = req
        .dev
        .split_dev
        .as_deref()
        .map(|p| blockdev::inspect_with("split copy device", p, exclusive))
        .transpose()?;
    let split_mm = split.as_ref().map(BlockDev::major_minor);
    if let Some(sd) = &split {
        let others = [Some(&data_dev), Some(&meta_dev), store.as_ref()];
        if others.iter().flatten().any(|o| o.rdev == sd.rdev) {
            return Err(Error::new(format!(
                "the split copy device {} must differ from the data and metadata devices and \
                 the snapshot store",
                sd.path
            )));
        }
    }
    if let Some(mm) = &split_mm {
        args.split_dev = mm.as_bytes();
    }
    let target = plan_args(&data_dev, &meta_dev, &args)?;
    if let Some(sd) = &split {
        crate::splitdev::check(&sd.path, sd.size, target.length * SECTOR_SIZE, ts)?;
    }
    if let Some(st) = &store {
        // The kernel's own check of the store, named before it refuses the table.
        let pair = link
            .pair_id
            .as_deref()
            .unwrap_or(crate::meta::DEFAULT_PAIR_ID);
        crate::store::check_for(&st.path, target.length * SECTOR_SIZE, ts, pair)?;
    }
    Ok(target)
}

/// Runs `rcopyctl create` and `rcopyctl pair`.
pub fn run(req: &Request<'_>) -> Result<(), Error> {
    let target = prepare(req)?;
    if req.dev.dry_run {
        if req.dev.show_secret {
            out(&table_line(&target));
        } else {
            out(&redacted_line(&target));
        }
        return Ok(());
    }
    let ctl = open_control()?;
    activate(&ctl, &req.dev.name, &target)
}

/// Creates device `name` (DM UUID `RCOPY-<name>`) with `target` and
/// activates it; on failure nothing is left behind.
pub fn activate(ctl: &Control, name: &str, target: &Target) -> Result<(), Error> {
    activate_with(ctl, name, target, false)
}

/// [`activate`], the table loaded read-only when `readonly` (a snapshot
/// device).
pub fn activate_with(
    ctl: &Control,
    name: &str,
    target: &Target,
    readonly: bool,
) -> Result<(), Error> {
    let created =
        ctl.create_with_uuid(name, &dm_uuid(name))
            .map_err(|e| match e.raw_os_error() {
                Some(libc::EBUSY) | Some(libc::EEXIST) => {
                    Error::new(format!("device {name} already exists"))
                }
                _ => Error::new(format!("cannot create {name}: {}", os_msg(&e))),
            })?;
    let dev = created.dev;
    let dev_mm = format!("{}:{}", libc::major(dev), libc::minor(dev));

    let mut watch = KmsgWatch::start();
    let flags = if readonly {
        crate::dm_ioctl::DM_READONLY_FLAG
    } else {
        0
    };
    if let Err(e) = ctl.load_table_with(name, std::slice::from_ref(target), flags) {
        let why = reason(&watch.dm_reasons(Some(&dev_mm)), &e);
        return Err(undo(ctl, name, dev, format!("cannot create {name}: {why}")));
    }
    let resumed = match ctl.resume(name) {
        Ok(r) => r,
        Err(e) => {
            let why = reason(&watch.dm_reasons(Some(&dev_mm)), &e);
            return Err(undo(
                ctl,
                name,
                dev,
                format!("cannot create {name}: activating the table failed: {why}"),
            ));
        }
    };
    // /dev/mapper/NAME is there when this returns (udev made it, or we did).
    devnode::settle(name, dev, &resumed.udev)
}

/// The pair's secret and the flag it came from (for messages; the secret
/// itself is never printed in an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub word: String,
    pub origin: String,
}

/// Reads the secret from `--secret-file` or `--secret`, if given.
pub fn secret(link: &LinkArgs) -> Result<Option<Secret>, Error> {
    let s = match (&link.secret_file, &link.secret) {
        (Some(path), _) => Secret {
            word: read_secret_file(path)?,
            origin: format!("--secret-file {path}"),
        },
        (None, Some(word)) => Secret {
            word: word.clone(),
            origin: "--secret".to_string(),
        },
        (None, None) => return Ok(None),
    };
    check_word(&s.origin, "the secret", &s.word, false)?;
    Ok(Some(s))
}

/// The secret in a secret file: its first line, without leading and
/// trailing whitespace. Only the first few KiB are read.
pub fn read_secret_file(path: &str) -> Result<String, Error> {
    let what = format!("--secret-file {path}");
    let f = File::open(path).map_err(|e| Error::new(format!("{what}: {}", os_msg(&e))))?;
    let mut buf = Vec::new();
    f.take(4096)
        .read_to_end(&mut buf)
        .map_err(|e| Error::new(format!("{what}: {}", os_msg(&e))))?;
    let line = match buf.iter().position(|&b| b == b'\n') {
        Some(i) => &buf[..i],
        None => &buf[..],
    };
    let line = line.trim_ascii();
    // What the file holds is a bad value (exit 2); a file that cannot be
    // read is a failure (exit 1).
    if line.is_empty() {
        return Err(Error::usage(format!(
            "{what}: the secret (the first line of the file) is empty"
        )));
    }
    let s = std::str::from_utf8(line)
        .map_err(|_| Error::usage(format!("{what}: the secret is not valid UTF-8 text")))?;
    Ok(s.to_string())
}

/// Checks that `value` is one table word: not empty, no whitespace (which
/// would split it), no backslash (device-mapper's escape character), no
/// control characters. `what` names it; the value is quoted after the flag
/// when `shown` (never for a secret).
pub fn check_word(flag: &str, what: &str, value: &str, shown: bool) -> Result<(), Error> {
    let label = if shown {
        format!("{flag} {value:?}")
    } else {
        flag.to_string()
    };
    let why = if value.is_empty() {
        "is empty"
    } else if value.chars().any(char::is_whitespace) {
        "contains whitespace: it must be a single word"
    } else if value.contains('\\') {
        "contains a backslash, which device-mapper would take as an escape"
    } else if value.chars().any(char::is_control) {
        "contains control characters"
    } else {
        return Ok(());
    };
    Err(Error::usage(format!("{label}: {what} {why}")))
}

/// The table words after the devices (`#opt_args` and the options),
/// checked by the kernel's own parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableOptions {
    /// Placeholder device words, `#opt_args`, then the options.
    words: Vec<String>,
}

impl TableOptions {
    /// The parsed arguments (devices are placeholders).
    pub fn args(&self) -> TableArgs<'_> {
        let refs: Vec<&[u8]> = self.words.iter().map(|w| w.as_bytes()).collect();
        // `table_options` only returns words that parse.
        table::parse(&refs).unwrap_or_else(|_| TableArgs::new(b"-", b"-"))
    }
}

/// [`table_options_with`] without a split copy device.
#[cfg(test)]
pub fn table_options(
    track_size: u32,
    role: Option<&str>,
    link: &LinkArgs,
    secret: Option<&Secret>,
) -> Result<TableOptions, Error> {
    table_options_with(track_size, role, link, secret, None)
}

/// Builds the option words from the flags and checks them with
/// `rcopy_core::table::parse`, the parser the kernel runs; each refusal is
/// reported with the flag it comes from. `split_dev`: `--split-dev`.
pub fn table_options_with(
    track_size: u32,
    role: Option<&str>,
    link: &LinkArgs,
    secret: Option<&Secret>,
    split_dev: Option<&str>,
) -> Result<TableOptions, Error> {
    if let Some(sd) = split_dev {
        check_word("--split-dev", "the split copy device path", sd, true)?;
    }
    if let Some(id) = &link.pair_id {
        check_word("--pair-id", "the pair id", id, true)?;
    }
    if let Some(st) = &link.snap_store {
        check_word("--snap-store", "the snapshot store path", st, true)?;
    }
    let mut opts: Vec<(&str, String)> = Vec::new();
    if track_size != DEFAULT_TRACK_SIZE {
        opts.push(("track_size", track_size.to_string()));
    }
    if let Some(r) = role {
        opts.push(("role", r.to_string()));
    }
    let given = [
        ("mode", link.mode.clone()),
        ("peer", link.peer.clone()),
        ("local", link.local.clone()),
        ("secret", secret.map(|s| s.word.clone())),
        ("pair_id", link.pair_id.clone()),
        (
            "cache_size",
            link.cache_size.as_ref().map(|c| c.bytes.to_string()),
        ),
        ("timeout_ms", link.timeout_ms.clone()),
        (
            "resync_rate",
            link.resync_rate.as_ref().map(|r| r.bytes.to_string()),
        ),
        ("snap_store", link.snap_store.clone()),
        ("split_dev", split_dev.map(str::to_string)),
    ];
    for (name, value) in given {
        if let Some(v) = value {
            opts.push((name, v));
        }
    }
    let mut words = vec![
        "-".to_string(),
        "-".to_string(),
        (opts.len() * 2).to_string(),
    ];
    for (name, value) in opts {
        words.push(name.to_string());
        words.push(value);
    }
    let t = TableOptions { words };
    {
        let refs: Vec<&[u8]> = t.words.iter().map(|w| w.as_bytes()).collect();
        let args = table::parse(&refs).map_err(|e| match e {
            TableError::BadSplitDev | TableError::SplitOnSecondary => Error::usage(format!(
                "--split-dev {:?}: {}",
                split_dev.unwrap_or(""),
                e.message()
            )),
            e => flag_error(e, role, link, secret),
        })?;
        cli_rules(&args, link)?;
    }
    Ok(t)
}

/// Rules of rcopyctl beyond the kernel's: options that the kernel would
/// accept but ignore are refused, so a mistyped command does not silently
/// set up something else. Both addresses are accepted with either role: the
/// role uses one, the table keeps the other for a later `promote` or
/// `demote` (the kernel's own rules still want the one the role needs).
fn cli_rules(a: &TableArgs<'_>, link: &LinkArgs) -> Result<(), Error> {
    match a.role {
        None if link.any() => Err(Error::usage(format!(
            "{}: give --role primary or --role secondary with {}",
            TableError::MissingRole.message(),
            given_flags(link).join(", ")
        ))),
        _ => Ok(()),
    }
}

/// The replication flags given, for messages.
fn given_flags(link: &LinkArgs) -> Vec<&'static str> {
    [
        ("--peer", link.peer.is_some()),
        ("--local", link.local.is_some()),
        ("--mode", link.mode.is_some()),
        ("--secret-file", link.secret_file.is_some()),
        ("--secret", link.secret.is_some()),
        ("--pair-id", link.pair_id.is_some()),
        ("--cache-size", link.cache_size.is_some()),
        ("--timeout-ms", link.timeout_ms.is_some()),
        ("--resync-rate", link.resync_rate.is_some()),
        ("--snap-store", link.snap_store.is_some()),
    ]
    .into_iter()
    .filter_map(|(f, on)| on.then_some(f))
    .collect()
}

/// A table refusal as a message naming the flag at fault. The kernel's
/// reason is kept word for word (it is what `Documentation/rcopy.rst` lists).
fn flag_error(
    e: TableError,
    role: Option<&str>,
    link: &LinkArgs,
    secret: Option<&Secret>,
) -> Error {
    let why = e.message();
    let shown = |v: &Option<String>| format!("{:?}", v.as_deref().unwrap_or(""));
    let msg = match e {
        TableError::BadTrackSize => format!("--track-size: {why}"),
        TableError::BadRole => {
            let r = role.unwrap_or("");
            format!(
                "--role {r:?}: {why}{}",
                suggest::hint(r, &["primary", "secondary"])
            )
        }
        TableError::BadMode => format!(
            "--mode {}: {why}{}",
            shown(&link.mode),
            suggest::hint(link.mode.as_deref().unwrap_or(""), &["sync", "async"])
        ),
        TableError::BadAddress => {
            let peer_ok = link
                .peer
                .as_deref()
                .map_or(true, |p| SockAddr::parse(p.as_bytes()).is_some());
            if peer_ok {
                format!("--local {}: {why}", shown(&link.local))
            } else {
                format!("--peer {}: {why}", shown(&link.peer))
            }
        }
        TableError::BadSecret => {
            let (origin, len) = secret.map_or(("--secret", 0), |s| (&s.origin, s.word.len()));
            format!("{origin}: {why} (the secret has {len} bytes; at most {MAX_SECRET})")
        }
        TableError::BadPairId => format!(
            "--pair-id {}: {why} (got {} bytes)",
            shown(&link.pair_id),
            link.pair_id.as_deref().map_or(0, str::len)
        ),
        TableError::BadCacheSize => format!(
            "--cache-size {:?}: {why} (1M to 4G)",
            link.cache_size.as_ref().map_or("", |c| c.text.as_str())
        ),
        TableError::BadTimeout => format!(
            "--timeout-ms {}: {why} (a whole number of milliseconds, 500 to 600000)",
            shown(&link.timeout_ms)
        ),
        TableError::BadResyncRate => format!(
            "--resync-rate {:?}: {why}",
            link.resync_rate.as_ref().map_or("", |c| c.text.as_str())
        ),
        TableError::BadSnapStore => format!("--snap-store {}: {why}", shown(&link.snap_store)),
        TableError::MissingPeer => {
            format!("{why}: give --peer ADDR:PORT, the address the secondary listens on")
        }
        TableError::MissingLocal => {
            format!("{why}: give --local ADDR:PORT, the address to listen on for the primary")
        }
        TableError::MissingSecret => {
            format!("{why}: give --secret-file PATH (or --secret WORD), the same on both sides")
        }
        TableError::MissingRole => format!(
            "{why}: give --role primary or --role secondary with {}",
            given_flags(link).join(", ")
        ),
        TableError::ArgCount
        | TableError::OptArgCount
        | TableError::UnknownOption
        | TableError::MissingValue => {
            return Error::new(format!("internal error: bad table line built: {why}"))
        }
        // Device checks (DataLookup, MetaLookup, SameDevice,
        // LengthExceedsData, MetaTooSmall, DeviceInUse) and options that
        // rcopyctl does not set: the kernel's reason as it is.
        _ => return Error::new(why.to_string()),
    };
    Error::usage(msg)
}

/// Removes a half-created device and returns `err`, noting a failed removal.
fn undo(ctl: &Control, name: &str, dev: u64, err: String) -> Error {
    match ctl.remove(name) {
        Ok(_) => {
            devnode::remove(name, dev);
            Error::new(err)
        }
        Err(e) => Error::new(format!(
            "{err} (removing the half-created device failed too: {})",
            os_msg(&e)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(path: &str, major: u32, minor: u32, size: u64) -> BlockDev {
        BlockDev {
            path: path.into(),
            rdev: libc::makedev(major, minor),
            size,
        }
    }

    #[test]
    fn table_default_and_custom() {
        let d = dev("/dev/vdb", 254, 16, 1 << 30);
        let m = dev("/dev/vdc", 254, 32, 1 << 20);
        let t = plan(&d, &m, DEFAULT_TRACK_SIZE).unwrap();
        assert_eq!(table_line(&t), "0 2097152 rcopy 254:16 254:32");
        let t = plan(&d, &m, 1 << 20).unwrap();
        assert_eq!(
            table_line(&t),
            "0 2097152 rcopy 254:16 254:32 2 track_size 1048576"
        );
    }

    #[test]
    fn odd_size_rounds_down_to_sectors() {
        let d = dev("/dev/vdb", 8, 16, 1000);
        let m = dev("/dev/vdc", 8, 32, meta_bytes_needed(512, 4096));
        assert_eq!(plan(&d, &m, 4096).unwrap().length, 1);
        let tiny = dev("/dev/vdb", 8, 16, 511);
        assert!(plan(&tiny, &m, 4096).is_err());
    }

    #[test]
    fn refusals() {
        let d = dev("/dev/vdb", 254, 16, 1 << 40);
        let same = dev("/dev/disk/by-id/x", 254, 16, 1 << 40);
        let e = plan(&d, &same, DEFAULT_TRACK_SIZE).unwrap_err().to_string();
        assert!(
            e.starts_with("Data and metadata devices must differ"),
            "{e}"
        );
        // 1 TiB at 64 KiB needs a 2 MiB bitmap and more (see geometry).
        let need = meta_bytes_needed(1 << 40, DEFAULT_TRACK_SIZE);
        assert!(need > 2 << 20);
        let small = dev("/dev/vdc", 254, 32, 2 << 20);
        let e = plan(&d, &small, DEFAULT_TRACK_SIZE)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "metadata device /dev/vdc too small: 2097152 bytes, needs {need} bytes \
                 ({}) for 1 TiB with 64 KiB tracks",
                human_bytes(need)
            )
        );
        let short = dev("/dev/vdc", 254, 32, need - 1);
        assert!(plan(&d, &short, DEFAULT_TRACK_SIZE).is_err());
        let enough = dev("/dev/vdc", 254, 32, need);
        assert!(plan(&d, &enough, DEFAULT_TRACK_SIZE).is_ok());
    }

    #[test]
    fn reasons() {
        let e = std::io::Error::from_raw_os_error(libc::EINVAL);
        assert_eq!(reason(&[], &e), "Invalid argument");
        assert_eq!(
            reason(&["unknown target type".into()], &e),
            "the kernel has no rcopy target (is dm_rcopy loaded?)"
        );
        assert_eq!(reason(&["a".into(), "b".into()], &e), "a; b");
    }

    #[test]
    fn track_sizes() {
        let ts = |n: u64| check_track_size(Some(&Size::bytes(n)));
        assert_eq!(check_track_size(None).unwrap(), 65536);
        assert_eq!(ts(4096).unwrap(), 4096);
        assert_eq!(ts(16 << 20).unwrap(), 16 << 20);
        let e = ts(3000).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.to_string(),
            "--track-size \"3000\": Invalid track_size: must be a power of two from 4096 to 16777216"
        );
        // What was typed is quoted, not the converted value.
        let typed = crate::size::parse_size_arg("3K").unwrap();
        let e = check_track_size(Some(&typed)).unwrap_err().to_string();
        assert!(e.starts_with("--track-size \"3K\": "), "{e}");
        assert!(ts(32 << 20).is_err());
        assert!(ts(1 << 40).is_err());
    }

    /// A temporary file with `content`, removed on drop.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(tag: &str, content: &[u8]) -> TempFile {
            let p =
                std::env::temp_dir().join(format!("rcopyctl-test-{}-{tag}", std::process::id()));
            std::fs::write(&p, content).unwrap();
            TempFile(p)
        }

        fn path(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Runs the option checks as `run` does; the table line for a 1 GiB
    /// volume, or the error text.
    fn line(
        track_size: Option<u64>,
        role: Option<&str>,
        link: &LinkArgs,
    ) -> Result<String, String> {
        let go = || -> Result<String, Error> {
            let ts = check_track_size(track_size.map(Size::bytes).as_ref())?;
            let secret = secret(link)?;
            let opts = table_options(ts, role, link, secret.as_ref())?;
            let d = dev("/dev/vda", 254, 0, 1 << 30);
            let m = dev("/dev/vdb", 254, 16, 1 << 20);
            Ok(table_line(&plan_args(&d, &m, &opts.args())?))
        };
        go().map_err(|e| e.to_string())
    }

    fn link(f: impl FnOnce(&mut LinkArgs)) -> LinkArgs {
        let mut l = LinkArgs::default();
        f(&mut l);
        l
    }

    #[test]
    fn pair_tables() {
        let l = link(|l| {
            l.local = Some("10.77.0.2:7788".into());
            l.secret = Some("k3y".into());
        });
        assert_eq!(
            line(None, Some("secondary"), &l).unwrap(),
            "0 2097152 rcopy 254:0 254:16 6 role secondary local 10.77.0.2:7788 secret k3y"
        );
        let l = link(|l| {
            l.peer = Some("10.77.0.2:7788".into());
            l.secret = Some("k3y".into());
            l.mode = Some("async".into());
            l.pair_id = Some("r0-pair".into());
            l.cache_size = Some(Size::bytes(128 << 20));
            l.timeout_ms = Some("10000".into());
        });
        assert_eq!(
            line(Some(1 << 20), Some("primary"), &l).unwrap(),
            "0 2097152 rcopy 254:0 254:16 16 track_size 1048576 role primary mode async \
             peer 10.77.0.2:7788 secret k3y pair_id r0-pair cache_size 134217728 timeout_ms 10000"
        );
        // Defaults given explicitly are left out, as `dmsetup table` shows them.
        let l = link(|l| {
            l.peer = Some("10.77.0.2:7788".into());
            l.secret = Some("k3y".into());
            l.mode = Some("sync".into());
            l.pair_id = Some("default".into());
            l.cache_size = Some(Size::bytes(64 << 20));
            l.timeout_ms = Some("5000".into());
        });
        assert_eq!(
            line(None, Some("primary"), &l).unwrap(),
            "0 2097152 rcopy 254:0 254:16 6 role primary peer 10.77.0.2:7788 secret k3y"
        );
        // No role: the standalone table, unchanged.
        assert_eq!(
            line(None, None, &LinkArgs::default()).unwrap(),
            "0 2097152 rcopy 254:0 254:16"
        );
    }

    #[test]
    fn snap_store_option() {
        // The kernel's parser takes it with a role; prepare_with then puts the
        // store's major:minor in its place.
        let l = link(|l| {
            l.local = Some("10.0.0.2:7788".into());
            l.secret = Some("k".into());
            l.snap_store = Some("/dev/vdd".into());
        });
        let t = line(None, Some("secondary"), &l).unwrap();
        assert!(t.ends_with(" snap_store /dev/vdd"), "{t}");
        let e = line(
            None,
            None,
            &link(|l| l.snap_store = Some("/dev/vdd".into())),
        )
        .unwrap_err();
        assert!(
            e.contains("give --role primary or --role secondary with --snap-store"),
            "{e}"
        );
    }

    #[test]
    fn split_dev_option() {
        // Standalone or primary; the kernel's parser refuses it on a secondary.
        let opts = |role: Option<&str>, l: &LinkArgs, sd: &str| {
            let s = secret(l).unwrap();
            table_options_with(DEFAULT_TRACK_SIZE, role, l, s.as_ref(), Some(sd)).map(|o| {
                let d = dev("/dev/vda", 254, 0, 1 << 30);
                let m = dev("/dev/vdb", 254, 16, 1 << 20);
                table_line(&plan_args(&d, &m, &o.args()).unwrap())
            })
        };
        assert_eq!(
            opts(None, &LinkArgs::default(), "/dev/vdc").unwrap(),
            "0 2097152 rcopy 254:0 254:16 2 split_dev /dev/vdc"
        );
        let pri = link(|l| {
            l.peer = Some("10.0.0.2:7788".into());
            l.secret = Some("k".into());
        });
        let t = opts(Some("primary"), &pri, "/dev/vdc").unwrap();
        assert!(t.ends_with(" secret k split_dev /dev/vdc"), "{t}");
        let sec = link(|l| {
            l.local = Some("10.0.0.2:7788".into());
            l.secret = Some("k".into());
        });
        let e = opts(Some("secondary"), &sec, "/dev/vdc").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.to_string(),
            "--split-dev \"/dev/vdc\": split_dev is for a standalone device or a primary, not a \
             secondary"
        );
        let e = opts(None, &LinkArgs::default(), "a b").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string()
                .starts_with("--split-dev \"a b\": the split copy device path contains whitespace"),
            "{e}"
        );
    }

    #[test]
    fn split_dev_is_checked_before_the_kernel() {
        // Devices that are not block devices are named before anything else.
        let dev = DeviceArgs {
            name: "r0".into(),
            data: "/dev/null".into(),
            meta: "/dev/null".into(),
            track_size: None,
            dry_run: true,
            show_secret: false,
            split_dev: Some("/nonexistent/split".into()),
        };
        let l = LinkArgs::default();
        let e = prepare(&Request {
            dev: &dev,
            role: None,
            link: &l,
            origin: None,
        })
        .unwrap_err();
        assert!(
            e.to_string().contains("/dev/null: not a block device"),
            "{e}"
        );
    }

    #[test]
    fn cross_option_errors() {
        let secret = |l: &mut LinkArgs| l.secret = Some("k".into());
        let e = line(None, Some("primary"), &link(secret)).unwrap_err();
        assert_eq!(
            e,
            "Role primary needs a peer address: give --peer ADDR:PORT, \
             the address the secondary listens on"
        );
        let e = line(None, Some("secondary"), &link(secret)).unwrap_err();
        assert!(
            e.starts_with("Role secondary needs a local address: give --local"),
            "{e}"
        );
        let e = line(
            None,
            Some("primary"),
            &link(|l| l.peer = Some("10.0.0.2:1".into())),
        )
        .unwrap_err();
        assert!(
            e.starts_with("A replicated device needs a secret: give --secret-file PATH"),
            "{e}"
        );
        let e = line(None, None, &link(|l| l.peer = Some("10.0.0.2:1".into()))).unwrap_err();
        assert_eq!(
            e,
            "Replication options need a role: give --role primary or --role secondary with --peer"
        );
        let e = line(
            None,
            None,
            &link(|l| {
                l.mode = Some("async".into());
                l.timeout_ms = Some("1000".into());
            }),
        )
        .unwrap_err();
        assert!(e.ends_with("with --mode, --timeout-ms"), "{e}");
        // Both addresses with either role: the table keeps the one the role
        // does not use, for a later promote or demote.
        for role in ["primary", "secondary"] {
            let l = line(
                None,
                Some(role),
                &link(|l| {
                    secret(l);
                    l.peer = Some("10.0.0.2:1".into());
                    l.local = Some("10.0.0.1:1".into());
                }),
            )
            .unwrap();
            assert!(
                l.ends_with(&format!(
                    " 8 role {role} peer 10.0.0.2:1 local 10.0.0.1:1 secret k"
                )),
                "{l}"
            );
        }
        // The one the role needs is still required.
        let e = line(
            None,
            Some("primary"),
            &link(|l| {
                secret(l);
                l.local = Some("10.0.0.1:1".into());
            }),
        )
        .unwrap_err();
        assert!(e.starts_with("Role primary needs a peer address"), "{e}");
    }

    #[test]
    fn value_errors() {
        let base = |l: &mut LinkArgs| {
            l.peer = Some("10.0.0.2:7788".into());
            l.secret = Some("k".into());
        };
        let e = line(None, Some("master"), &link(base)).unwrap_err();
        assert_eq!(
            e,
            "--role \"master\": Invalid role: must be primary or secondary"
        );
        let e = line(
            None,
            Some("primary"),
            &link(|l| {
                base(l);
                l.mode = Some("semi".into());
            }),
        )
        .unwrap_err();
        assert_eq!(e, "--mode \"semi\": Invalid mode: must be sync or async");
        let e = line(
            None,
            Some("primary"),
            &link(|l| {
                base(l);
                l.peer = Some("10.0.0:7788".into());
            }),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "--peer \"10.0.0:7788\": Invalid address: must be a.b.c.d:port or [v6]:port"
        );
        let e = line(
            None,
            Some("secondary"),
            &link(|l| {
                l.secret = Some("k".into());
                l.local = Some("host:7788".into());
            }),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "--local \"host:7788\": Invalid address: must be a.b.c.d:port or [v6]:port"
        );
        let e = line(
            None,
            Some("primary"),
            &link(|l| {
                base(l);
                l.secret = Some("x".repeat(65));
            }),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "--secret: Invalid secret: at most 64 bytes (the secret has 65 bytes; at most 64)"
        );
        assert!(line(
            None,
            Some("primary"),
            &link(|l| {
                base(l);
                l.secret = Some("x".repeat(64));
            }),
        )
        .is_ok());
        let e = line(
            None,
            Some("primary"),
            &link(|l| {
                base(l);
                l.pair_id = Some("p".repeat(65));
            }),
        )
        .unwrap_err();
        assert_eq!(
            e,
            format!(
                "--pair-id {:?}: Invalid pair_id: 1 to 64 bytes (got 65 bytes)",
                "p".repeat(65)
            )
        );
        let e = line(
            None,
            Some("primary"),
            &link(|l| {
                base(l);
                l.pair_id = Some("a b".into());
            }),
        )
        .unwrap_err();
        assert!(
            e.starts_with("--pair-id \"a b\": the pair id contains whitespace"),
            "{e}"
        );
        let e = line(
            None,
            Some("primary"),
            &link(|l| {
                base(l);
                l.cache_size = Some(Size::bytes(512 << 10));
            }),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "--cache-size \"524288\": Invalid cache_size: must be from 1048576 to 4294967296 (1M to 4G)"
        );
        for ok in [1u64 << 20, 4 << 30] {
            assert!(line(
                None,
                Some("primary"),
                &link(|l| {
                    base(l);
                    l.cache_size = Some(Size::bytes(ok));
                })
            )
            .is_ok());
        }
        for bad in ["499", "600001", "5s", ""] {
            let e = line(
                None,
                Some("primary"),
                &link(|l| {
                    base(l);
                    l.timeout_ms = Some(bad.into());
                }),
            )
            .unwrap_err();
            assert_eq!(
                e,
                format!(
                    "--timeout-ms {bad:?}: Invalid timeout_ms: must be from 500 to 600000 \
                     (a whole number of milliseconds, 500 to 600000)"
                )
            );
        }
        let e = line(Some(3000), Some("primary"), &link(base)).unwrap_err();
        assert!(
            e.starts_with("--track-size \"3000\": Invalid track_size"),
            "{e}"
        );
    }

    /// The error of the option checks, kept whole (its kind too).
    fn error(track_size: Option<u64>, role: Option<&str>, link: &LinkArgs) -> Error {
        let ts = match check_track_size(track_size.map(Size::bytes).as_ref()) {
            Ok(t) => t,
            Err(e) => return e,
        };
        let s = match secret(link) {
            Ok(s) => s,
            Err(e) => return e,
        };
        table_options(ts, role, link, s.as_ref()).unwrap_err()
    }

    #[test]
    fn bad_flag_values_are_usage_errors() {
        let base = |l: &mut LinkArgs| {
            l.peer = Some("10.77.0.2:7788".into());
            l.secret = Some("k".into());
        };
        let e = error(None, Some("primry"), &link(base));
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.to_string(),
            "--role \"primry\": Invalid role: must be primary or secondary; did you mean \"primary\"?"
        );
        let e = error(
            None,
            Some("primary"),
            &link(|l| {
                base(l);
                l.mode = Some("asnyc".into());
            }),
        );
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().ends_with("did you mean \"async\"?"), "{e}");
        let e = error(
            None,
            Some("primary"),
            &link(|l| {
                base(l);
                l.timeout_ms = Some("5s".into());
            }),
        );
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().starts_with("--timeout-ms \"5s\""), "{e}");
        let e = error(
            None,
            Some("primary"),
            &link(|l| {
                base(l);
                l.cache_size = Some(crate::size::parse_size_arg("100G").unwrap());
            }),
        );
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().starts_with("--cache-size \"100G\": "), "{e}");
        assert_eq!(
            error(Some(3000), Some("primary"), &link(base)).exit_code(),
            2
        );
        assert_eq!(
            error(
                None,
                Some("primary"),
                &link(|l| l.secret = Some("k".into()))
            )
            .exit_code(),
            2
        );
        assert_eq!(
            error(
                None,
                Some("primary"),
                &link(|l| l.secret = Some("a b".into()))
            )
            .exit_code(),
            2
        );
        // A missing secret file is not a usage error.
        let e = error(
            None,
            Some("primary"),
            &link(|l| l.secret_file = Some("/nonexistent/rcopy.key".into())),
        );
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn address_labels() {
        let dev = DeviceArgs {
            name: "r0".into(),
            data: "/nonexistent/a".into(),
            meta: "/nonexistent/b".into(),
            track_size: None,
            dry_run: true,
            show_secret: false,
            split_dev: None,
        };
        let l = link(|l| {
            l.peer = Some("no-such-host.invalid:7788".into());
            l.secret = Some("k".into());
        });
        let req = |origin| Request {
            dev: &dev,
            role: Some("primary"),
            link: &l,
            origin,
        };
        // From a flag, the flag is named; from a resource file, the file.
        let e = prepare(&req(None)).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(
            e.to_string()
                .starts_with("--peer \"no-such-host.invalid:7788\": cannot resolve"),
            "{e}"
        );
        let e = prepare(&req(Some("/etc/rcopy.d/r0.toml"))).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "/etc/rcopy.d/r0.toml: address \"no-such-host.invalid:7788\": cannot resolve"
            ),
            "{e}"
        );
        // A resolved name reaches the device checks.
        let l = link(|l| {
            l.peer = Some("localhost:7788".into());
            l.secret = Some("k".into());
        });
        let r = Request {
            dev: &dev,
            role: Some("primary"),
            link: &l,
            origin: None,
        };
        let e = prepare(&r).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/a"), "{e}");
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_params("254:0 254:16 6 role primary peer 10.77.0.2:7788 secret k3y"),
            "254:0 254:16 6 role primary peer 10.77.0.2:7788 secret -"
        );
        // Only the value of the option named secret: a pair id "secret" is kept.
        assert_eq!(
            redact_params("254:0 254:16 6 pair_id secret secret s3 role primary"),
            "254:0 254:16 6 pair_id secret secret - role primary"
        );
        assert_eq!(redact_params("254:0 254:16"), "254:0 254:16");
        let l = link(|l| {
            l.peer = Some("10.77.0.2:7788".into());
            l.secret = Some("t0p-s3cret".into());
        });
        let ts = check_track_size(None).unwrap();
        let s = secret(&l).unwrap();
        let opts = table_options(ts, Some("primary"), &l, s.as_ref()).unwrap();
        let t = plan_args(
            &dev("/dev/vda", 254, 0, 1 << 30),
            &dev("/dev/vdb", 254, 16, 1 << 20),
            &opts.args(),
        )
        .unwrap();
        let shown = redacted_line(&t);
        assert!(!shown.contains("t0p-s3cret"), "{shown}");
        assert!(shown.ends_with("secret -"), "{shown}");
        assert!(table_line(&t).ends_with("secret t0p-s3cret"));
        assert_eq!(dm_uuid("r0"), "RCOPY-r0");
    }

    #[test]
    fn secret_words() {
        for (bad, why) in [
            ("", "is empty"),
            ("q1 q2", "contains whitespace"),
            ("q1\\q2", "contains a backslash"),
            ("q1\u{7}q2", "contains control characters"),
        ] {
            let l = link(|l| l.secret = Some(bad.into()));
            let e = secret(&l).unwrap_err().to_string();
            assert!(e.starts_with("--secret: the secret "), "{e}");
            assert!(e.contains(why), "{e}");
            assert!(!e.contains("q1"), "the secret must not be shown: {e}");
        }
    }

    #[test]
    fn secret_files() {
        let f = TempFile::new("ok", b"  s3cr3t-word \t\r\nsecond line\n");
        assert_eq!(read_secret_file(f.path()).unwrap(), "s3cr3t-word");
        let l = link(|l| l.secret_file = Some(f.path().into()));
        let s = secret(&l).unwrap().unwrap();
        assert_eq!(s.word, "s3cr3t-word");
        assert_eq!(s.origin, format!("--secret-file {}", f.path()));
        let f = TempFile::new("nonl", b"k");
        assert_eq!(read_secret_file(f.path()).unwrap(), "k");

        let f = TempFile::new("empty", b"");
        let e = read_secret_file(f.path()).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "--secret-file {}: the secret (the first line of the file) is empty",
                f.path()
            )
        );
        let f = TempFile::new("blank", b"   \nsecret on line 2\n");
        assert!(read_secret_file(f.path())
            .unwrap_err()
            .to_string()
            .ends_with("is empty"));
        let f = TempFile::new("space", b"two words\n");
        let e = secret(&link(|l| l.secret_file = Some(f.path().into())))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "--secret-file {}: the secret contains whitespace: it must be a single word",
                f.path()
            )
        );
        let f = TempFile::new("long", format!("{}\n", "z".repeat(65)).as_bytes());
        let e = line(
            None,
            Some("secondary"),
            &link(|l| {
                l.local = Some("10.77.0.2:7788".into());
                l.secret_file = Some(f.path().into());
            }),
        )
        .unwrap_err();
        assert_eq!(
            e,
            format!(
                "--secret-file {}: Invalid secret: at most 64 bytes \
                 (the secret has 65 bytes; at most 64)",
                f.path()
            )
        );
        let f = TempFile::new("huge", &[b'y'; 10000]);
        assert!(line(
            None,
            Some("secondary"),
            &link(|l| {
                l.local = Some("10.77.0.2:7788".into());
                l.secret_file = Some(f.path().into());
            }),
        )
        .unwrap_err()
        .contains("Invalid secret: at most 64 bytes"));
        let f = TempFile::new("binary", b"\xff\xfe\n");
        assert!(read_secret_file(f.path())
            .unwrap_err()
            .to_string()
            .ends_with("the secret is not valid UTF-8 text"));
        let e = read_secret_file("/nonexistent/rcopy.key")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--secret-file /nonexistent/rcopy.key: No such file or directory"
        );
        // A secret file used for the table.
        let f = TempFile::new("table", b"from-file\n");
        assert_eq!(
            line(
                None,
                Some("secondary"),
                &link(|l| {
                    l.local = Some("10.77.0.2:7788".into());
                    l.secret_file = Some(f.path().into());
                }),
            )
            .unwrap(),
            "0 2097152 rcopy 254:0 254:16 6 role secondary local 10.77.0.2:7788 secret from-file"
        );
    }
}
