//! `rcopyctl promote`, `demote`, `switchover`, `resolve` and `unpair`: role
//! changes of a running pair.
//!
//! The kernel takes a table reload from role secondary to role primary as a
//! promotion (it starts a new generation), and the reverse as a demotion; it
//! never refuses either. The safety rails are here: a secondary that is not a
//! usable image, or still connected to its primary, is not promoted unless
//! `--force` is given; a planned switchover first has the primary hand
//! everything to its peer (`handover`), and stays primary if that fails.
//!
//! Every role change is `suspend`, `reload`, `resume` (the ioctls of `dmsetup
//! suspend`, `reload` and `resume`): the suspend is where a handover drains,
//! and the status read while suspended (the old table still live) tells
//! whether the peer holds everything. The new table is the live one with its
//! role (and addresses) changed, built by the pure [`retable`].

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcopy_core::addr::SockAddr;
use rcopy_core::gens::Decision;
use rcopy_core::status::{Conn, Role, State, Status};
use rcopy_core::table::{self, format_table, TableArgs};

use crate::cli::FileArgs;
use crate::create::{self, redact_params, TARGET_TYPE};
use crate::dm_ioctl::{Control, Target, TargetStatus};
use crate::error::{os_msg, Error};
use crate::kmsg::{self, KmsgWatch};
use crate::size::human_bytes;
use crate::snap;
use crate::snaplist::{self, Snap};
use crate::status_view::refusal;
use crate::{commands, meta, open_control, out, resource};

/// The role a table is rebuilt with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want<'a> {
    /// Role primary; `peer` replaces the table's peer address when given.
    Primary { peer: Option<&'a str> },
    /// Role secondary; `local` replaces the table's local address when given.
    Secondary { local: Option<&'a str> },
    /// No role: a standalone device over the same devices and track size.
    Simplex,
}

/// A live table's parameters, split into words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTable {
    words: Vec<String>,
}

impl LiveTable {
    /// Parses the parameters with the kernel's table parser.
    pub fn new(name: &str, params: &str) -> Result<LiveTable, Error> {
        let t = LiveTable {
            words: params.split_ascii_whitespace().map(String::from).collect(),
        };
        t.args().map_err(|e| {
            Error::new(format!(
                "cannot read the table of {name}: {e}: {:?}",
                redact_params(params)
            ))
        })?;
        Ok(t)
    }

    /// The parsed table.
    pub fn args(&self) -> Result<TableArgs<'_>, table::TableError> {
        let refs: Vec<&[u8]> = self.words.iter().map(|w| w.as_bytes()).collect();
        table::parse(&refs)
    }

    /// The table's role (`None`: standalone).
    pub fn role(&self) -> Option<Role> {
        self.args().ok().and_then(|a| a.role)
    }

    /// The table's peer address, if any.
    pub fn peer(&self) -> Option<SockAddr> {
        self.args().ok().and_then(|a| a.peer)
    }

    /// The table's local address, if any.
    pub fn local(&self) -> Option<SockAddr> {
        self.args().ok().and_then(|a| a.local)
    }

    /// The metadata device word (`major:minor`, as the kernel shows it).
    pub fn meta_dev(&self) -> &str {
        self.words.get(1).map_or("", String::as_str)
    }

    /// The table's `snap_store` word (`major:minor`, as the kernel shows it).
    pub fn snap_store(&self) -> Option<String> {
        self.args()
            .ok()
            .filter(|a| !a.snap_store.is_empty())
            .map(|a| String::from_utf8_lossy(a.snap_store).into_owned())
    }

    /// The track size.
    pub fn track_size(&self) -> u32 {
        self.args()
            .map_or(table::DEFAULT_TRACK_SIZE, |a| a.track_size)
    }
}

/// Why an address word was refused.
fn bad_addr(flag: &str, addr: &str) -> Error {
    Error::usage(format!(
        "{flag} {addr:?}: {}",
        table::TableError::BadAddress.message()
    ))
}

/// The parameters of `live` with the role `want`: the same devices and
/// options, `role` changed (or, for [`Want::Simplex`], only the devices, the
/// track size and the split copy kept: a table without `split_dev` would let
/// writes go unrecorded in the split copy's bitmaps). A table with a split
/// copy is not made a secondary (the kernel refuses `split_dev` there). Both addresses are kept in a table of either role
/// (the kernel uses the one its role needs); a given one replaces the
/// table's. Pure: the result is checked with the kernel's table parser.
pub fn retable(name: &str, live: &LiveTable, want: Want<'_>) -> Result<String, Error> {
    let a = live
        .args()
        .map_err(|e| Error::new(format!("cannot read the table of {name}: {e}")))?;
    let data = live.words.first().map_or("", String::as_str);
    let meta = live.meta_dev();
    let mut n = a;
    match want {
        Want::Simplex => {
            n = TableArgs::new(a.data_dev, a.meta_dev);
            n.track_size = a.track_size;
            n.split_dev = a.split_dev;
        }
        Want::Primary { peer } => {
            n.role = Some(Role::Primary);
            if let Some(p) = peer {
                n.peer = Some(SockAddr::parse(p.as_bytes()).ok_or_else(|| bad_addr("--peer", p))?);
            }
            if n.peer.is_none() {
                return Err(Error::new(format!(
                    "cannot promote {name}: its table has no peer address for the new primary \
                     to connect to (nor its resource file): give --peer ADDR:PORT (where the \
                     other side listens)"
                )));
            }
        }
        Want::Secondary { .. } if !a.split_dev.is_empty() => {
            return Err(Error::new(format!(
                "cannot demote {name}: it keeps a split copy (split_dev {}), which only a \
                 standalone device or a primary can keep; remove split_dev from its table \
                 first (its writes are then no longer recorded for the copy)",
                String::from_utf8_lossy(a.split_dev)
            )));
        }
        Want::Secondary { local } => {
            n.role = Some(Role::Secondary);
            if let Some(l) = local {
                n.local =
                    Some(SockAddr::parse(l.as_bytes()).ok_or_else(|| bad_addr("--local", l))?);
            }
            if n.local.is_none() {
                return Err(Error::new(format!(
                    "cannot demote {name}: its table has no local address for the secondary \
                     to listen on (nor its resource file): give --local ADDR:PORT (where this \
                     side listens)"
                )));
            }
        }
    }
    if want != Want::Simplex && n.secret == b"-" {
        return Err(Error::new(format!(
            "cannot rebuild the table of {name}: the kernel hides its secret; \
             use rcopyctl adjust with a resource file, or dmsetup reload"
        )));
    }
    let mut line = String::new();
    format_table(&mut line, data, meta, &n)
        .map_err(|_| Error::new(format!("cannot rebuild the table of {name}")))?;
    // The kernel's parser has the last word.
    let words: Vec<&[u8]> = line.split_ascii_whitespace().map(str::as_bytes).collect();
    table::parse(&words).map_err(|e| {
        Error::new(format!(
            "cannot rebuild the table of {name}: {e}: {:?}",
            redact_params(&line)
        ))
    })?;
    Ok(line)
}

/// Whether a primary, read while suspended, left nothing for its peer to
/// fetch: no dirty track (the engine marks every write the peer did not
/// confirm durable when it stops), no cached write, no activity-log
/// reference held for an unconfirmed write.
pub fn drained(s: &Status) -> bool {
    s.dirty_bytes == 0 && s.cache_used == 0 && s.al_refs == 0
}

/// Whether the kernel's handover line says it gave up.
fn gave_up(kernel: Option<&str>) -> bool {
    kernel.is_some_and(|k| k.starts_with("handover: gave up"))
}

/// Whether a handover worked: [`drained`], and the kernel did not log that
/// it gave up (the peer may then hold every write without having been told
/// it is in sync). Without a kernel line (no access to the log), the status
/// decides.
pub fn handed_over(s: &Status, kernel: Option<&str>) -> bool {
    drained(s) && !gave_up(kernel)
}

/// What the peer holds after a demotion's suspend, in words.
fn held_text(s: &Status, kernel: Option<&str>) -> String {
    if !drained(s) {
        format!(
            "the peer lacks {} of this side's writes: promoting it rolls them back",
            human_bytes(s.dirty_bytes.max(s.cache_used))
        )
    } else if gave_up(kernel) {
        "the peer lacks no write, but the handover did not complete (it may not know it is \
         in sync)"
            .to_string()
    } else {
        "the peer holds everything".to_string()
    }
}

/// What happens next: go on, or stop with a note (exit 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Do it.
    Go,
    /// Nothing to do: print this.
    Done(String),
}

fn standalone(name: &str, what: &str) -> Error {
    Error::new(format!(
        "{name} is a standalone device (no role): nothing to {what}; \
         pair it first (rcopyctl adjust NAME with a resource file, or rcopyctl pair)"
    ))
}

/// The checks of `promote`, on the live table's role and the status.
#[cfg(test)]
pub fn promote_plan(
    name: &str,
    role: Option<Role>,
    s: &Status,
    force: bool,
) -> Result<Plan, Error> {
    promote_plan_with(name, role, s, force, false)
}

/// [`promote_plan`]; with `rollback` (`promote --rollback`) an inconsistent
/// side is not refused: the rollback makes it consistent (checked after it).
pub fn promote_plan_with(
    name: &str,
    role: Option<Role>,
    s: &Status,
    force: bool,
    rollback: bool,
) -> Result<Plan, Error> {
    match role {
        None => return Err(standalone(name, "promote")),
        Some(Role::Primary) => {
            return Ok(Plan::Done(format!(
                "{name} is already primary (generation {:016x}): nothing to do",
                s.gen
            )))
        }
        Some(Role::Secondary) => {}
    }
    if !s.consistent && !force && !rollback {
        return Err(Error::new(format!(
            "cannot promote {name}: it is not consistent (a copy or resync to it did not \
             finish: its data is not a usable image); --force promotes it anyway, \
             --rollback rolls it back to its pre-resync snapshot first"
        )));
    }
    if s.conn == Conn::Connected && !force {
        return Err(Error::new(format!(
            "cannot promote {name}: the primary is still connected: demote it first \
             (rcopyctl demote {name} on the primary); --force promotes anyway"
        )));
    }
    Ok(Plan::Go)
}

/// The snapshot `promote --rollback [WHICH]` rolls back to, and the word that
/// names it to the kernel: `which`, else the newest ready pre-resync one.
pub fn rollback_choice(
    name: &str,
    snaps: &[Snap],
    which: Option<&str>,
) -> Result<(Snap, String), Error> {
    let s = match which {
        Some(w) => {
            let s = snaplist::find(snaps, w)
                .map_err(|e| Error::new(format!("cannot promote {name} with --rollback: {e}")))?;
            if !s.ready {
                return Err(Error::new(format!(
                    "cannot promote {name} with --rollback: snapshot {} is invalid (the store \
                     ran out of slots): it cannot be rolled back to",
                    s.epoch
                )));
            }
            s
        }
        None => snaplist::newest_before_resync(snaps).ok_or_else(|| {
            Error::new(format!(
                "cannot promote {name} with --rollback: it has no ready pre-resync snapshot \
                 (flag before-resync; {} snapshot(s) in all: rcopyctl snapshots {name}); \
                 give --rollback=ID to roll back to another one, or promote without it",
                snaps.len()
            ))
        })?,
    };
    let word = snaplist::word_for(snaps, s)
        .map_err(|e| Error::new(format!("cannot promote {name} with --rollback: {e}")))?;
    Ok((s.clone(), word))
}

/// The checks of `demote`.
pub fn demote_plan(name: &str, role: Option<Role>) -> Result<Plan, Error> {
    match role {
        None => Err(standalone(name, "demote")),
        Some(Role::Secondary) => Ok(Plan::Done(format!(
            "{name} is already secondary: nothing to do"
        ))),
        Some(Role::Primary) => Ok(Plan::Go),
    }
}

/// The checks of `switchover` (a planned handover on the primary).
pub fn switchover_plan(name: &str, role: Option<Role>, s: &Status) -> Result<Plan, Error> {
    match role {
        None => return Err(standalone(name, "switch over")),
        Some(Role::Secondary) => {
            return Err(Error::new(format!(
                "{name} is the secondary: run rcopyctl switchover {name} on the primary, \
                 then rcopyctl promote {name} here"
            )))
        }
        Some(Role::Primary) => {}
    }
    if s.conn != Conn::Connected || s.state != State::Duplex {
        return Err(Error::new(format!(
            "cannot switch {name} over: the pair is not connected and in sync \
             (state {}, conn {}): a switchover hands everything to the peer first; \
             wait for it (rcopyctl wait {name} --state duplex), or use rcopyctl demote",
            s.state, s.conn
        )));
    }
    Ok(Plan::Go)
}

/// Which way `resolve` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// On the primary: keep its data, overwrite the peer's.
    KeepLocal,
    /// On the secondary: discard its data, take the primary's.
    DiscardLocal,
    /// Withdraw a resolution not yet used.
    Cancel,
}

impl Resolution {
    /// The message word.
    pub fn word(self) -> &'static str {
        match self {
            Resolution::KeepLocal => "keep-local",
            Resolution::DiscardLocal => "discard-local",
            Resolution::Cancel => "none",
        }
    }
}

/// The checks of `resolve`: the role must fit, and (unless `force`, or to
/// cancel) the last handshake must have been refused.
pub fn resolve_plan(
    name: &str,
    role: Option<Role>,
    s: &Status,
    how: Resolution,
    force: bool,
) -> Result<Plan, Error> {
    let role = role.ok_or_else(|| standalone(name, "resolve"))?;
    match (how, role) {
        (Resolution::KeepLocal, Role::Secondary) => {
            return Err(Error::new(format!(
                "{name} is the secondary: --keep-local keeps the primary's data and is run on \
                 the primary (rcopyctl resolve {name} --keep-local there); to give up this \
                 side's data run rcopyctl resolve {name} --discard-local here"
            )))
        }
        (Resolution::DiscardLocal, Role::Primary) => {
            return Err(Error::new(format!(
                "{name} is the primary: --discard-local is run on the secondary (whose data is \
                 overwritten: rcopyctl resolve {name} --discard-local there); to keep this \
                 side's data run rcopyctl resolve {name} --keep-local here"
            )))
        }
        _ => {}
    }
    if how != Resolution::Cancel && !force && refusal(s).is_none() {
        let last = s.decision.map_or("none (no handshake yet)", |d| d.as_str());
        return Err(Error::new(format!(
            "nothing to resolve on {name}: the last handshake decided {last}; resolve answers \
             a split-brain, stale-primary or unrelated refusal (--force sends it anyway, for \
             the next handshake)"
        )));
    }
    Ok(Plan::Go)
}

/// What `resolve` prints once the message is accepted.
pub fn resolve_report(name: &str, how: Resolution, last: Option<Decision>) -> String {
    let how_much = if last == Some(Decision::Unrelated) {
        "every track (the two sides share no history)"
    } else {
        "the tracks either side marked since they parted (both bitmaps), or every track \
         if they share no generation to count from"
    };
    match how {
        Resolution::KeepLocal => format!(
            "{name}: resolved: this side's data is kept. At the next handshake (the primary \
             retries every few seconds) the peer's writes since the split are discarded: it \
             is resynced from here, {how_much}; it is not consistent until that ends."
        ),
        Resolution::DiscardLocal => format!(
            "{name}: resolved: this side's data will be discarded. At the next handshake (the \
             primary retries every few seconds) its writes since the split are lost: it is \
             resynced from the primary, {how_much}; it is not consistent until that ends."
        ),
        Resolution::Cancel => format!(
            "{name}: resolution withdrawn: the next handshake refuses again if the two sides \
             diverged"
        ),
    }
}

/// The checks of `unpair`.
pub fn unpair_plan(name: &str, role: Option<Role>, s: &Status, force: bool) -> Result<Plan, Error> {
    if role.is_none() {
        return Ok(Plan::Done(format!(
            "{name} is already a standalone device: nothing to do"
        )));
    }
    if !s.consistent && !force {
        return Err(Error::new(format!(
            "cannot unpair {name}: it is not consistent (a copy or resync to it did not \
             finish: its data is not a usable image); --force unpairs it anyway"
        )));
    }
    Ok(Plan::Go)
}

/// How a demotion's handover went, before the suspend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handover {
    /// Asked for (`handover` message accepted).
    Asked,
    /// Not asked: the pair was not connected.
    NotConnected,
    /// Not asked: `--no-handover`.
    Skipped,
    /// The kernel refused the message (why).
    Refused(String),
}

/// Seconds with three decimals.
pub fn secs(d: Duration) -> String {
    let ms = d.as_millis();
    format!("{}.{:03} s", ms / 1000, ms % 1000)
}

/// Timings of a role change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long the suspend took (a handover waits in it).
    pub drain: Duration,
    /// From the suspend call to the resume returning: how long I/O stood.
    pub pause: Duration,
}

/// What `demote` and `switchover` print. `s` is the status read while
/// suspended, before the new table; `kernel` the kernel's handover line.
pub fn demote_report(
    name: &str,
    local: &str,
    h: &Handover,
    s: &Status,
    t: Timing,
    kernel: Option<&str>,
) -> Vec<String> {
    let held = held_text(s, kernel);
    let how = match h {
        Handover::Asked if handed_over(s, kernel) => "handover".to_string(),
        Handover::Asked => "handover gave up".to_string(),
        Handover::NotConnected => "no handover: not connected".to_string(),
        Handover::Skipped => "no handover: --no-handover".to_string(),
        Handover::Refused(why) => format!("no handover: the kernel refused it: {why}"),
    };
    let mut lines = vec![
        format!("{name}: demoted to secondary (listens on {local})"),
        format!("  drain:     {} ({how}; {held})", secs(t.drain)),
    ];
    if let Some(k) = kernel {
        lines.push(format!("  kernel:    {k}"));
    }
    lines.push(format!(
        "  I/O pause: {} (from the suspend to the resume)",
        secs(t.pause)
    ));
    lines
}

/// The kernel's handover line about device `name` among log records
/// (`<name>: handover: ...`), from `handover:` on.
pub fn handover_line(records: &[String], name: &str) -> Option<String> {
    let tag = format!("{name}: handover: ");
    records.iter().rev().find_map(|r| {
        r.find(&tag)
            .map(|i| r[i + name.len() + 2..].trim_end().to_string())
    })
}

// ---------------------------------------------------------------- devices

/// The live rcopy table and status of `name`.
struct Live {
    target: TargetStatus,
    table: LiveTable,
    status: Status,
}

fn dev_error(name: &str, e: &std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENXIO) => Error::new(format!("device {name} does not exist")),
        _ => Error::new(format!("cannot read {name}: {}", os_msg(e))),
    }
}

fn read_status(ctl: &Control, name: &str) -> Result<Status, Error> {
    let t = ctl
        .table_status(name, false)
        .map_err(|e| dev_error(name, &e))?
        .into_iter()
        .find(|t| t.target_type == TARGET_TYPE)
        .ok_or_else(|| Error::new(format!("device {name} is not an rcopy device")))?;
    Status::parse(&t.text).map_err(|e| Error::new(format!("device {name}: {e}: {:?}", t.text)))
}

/// Whether table parameters carry the secret as `-` (how the kernel shows it).
fn hides_secret(params: &str) -> bool {
    let w: Vec<&str> = params.split_ascii_whitespace().collect();
    w.windows(2).any(|p| p[0] == "secret" && p[1] == "-")
}

/// `params` with a hidden secret (`secret -`) replaced by `secret`.
fn with_secret(params: &str, secret: &str) -> String {
    let mut out: Vec<&str> = params.split_ascii_whitespace().collect();
    for i in 1..out.len() {
        if out[i - 1] == "secret" && out[i] == "-" {
            out[i] = secret;
        }
    }
    out.join(" ")
}

fn read_live(ctl: &Control, name: &str) -> Result<Live, Error> {
    let targets = ctl
        .table_status(name, true)
        .map_err(|e| dev_error(name, &e))?;
    if targets.len() != 1 || targets[0].target_type != TARGET_TYPE {
        return Err(Error::new(format!(
            "device {name} is not an rcopy device (one rcopy target)"
        )));
    }
    let mut target = targets.into_iter().next().expect("one target");
    if hides_secret(&target.text) {
        // The kernel shows the secret as `-`; it tells it when asked.
        let secret = ctl
            .message(name, 0, &["secret".to_string()])
            .map_err(|e| dev_error(name, &e))?
            .unwrap_or_default();
        if !secret.is_empty() {
            target.text = with_secret(&target.text, &secret);
        }
    }
    let table = LiveTable::new(name, &target.text)?;
    let status = read_status(ctl, name)?;
    Ok(Live {
        target,
        table,
        status,
    })
}

/// `major:minor` of a device.
fn dev_mm(ctl: &Control, name: &str) -> String {
    ctl.info(name)
        .map(|i| format!("{}:{}", libc::major(i.dev), libc::minor(i.dev)))
        .unwrap_or_default()
}

/// The outcome of [`swap`].
struct Swapped {
    timing: Timing,
    /// The status read while suspended (the old table still live).
    suspended: Status,
    /// Kernel log records from the start to the suspend's end.
    records: Vec<String>,
}

/// Suspends `name`, reads its status, runs `between` on it and the kernel
/// log records so far (it may refuse: the old table is then resumed), loads
/// `params` and resumes: `dmsetup suspend`, `reload`, `resume`. Anything
/// that fails before the new table is live resumes the old one.
fn swap(
    ctl: &Control,
    name: &str,
    live: &Live,
    params: &str,
    between: impl FnOnce(&Status, &[String]) -> Result<(), Error>,
) -> Result<Swapped, Error> {
    let mm = dev_mm(ctl, name);
    let mut watch = KmsgWatch::start();
    let t0 = Instant::now();
    ctl.suspend(name)
        .map_err(|e| Error::new(format!("cannot suspend {name}: {}", os_msg(&e))))?;
    let drain = t0.elapsed();
    let mut records = watch.new_records();
    let resume_old = |why: Error| -> Error {
        match ctl.resume(name) {
            Ok(_) => Error::new(format!("{why} ({name} resumed with its old table)")),
            Err(e) => Error::new(format!(
                "{why}; resuming {name} with its old table failed too: {} \
                 (it stays suspended: dmsetup resume {name})",
                os_msg(&e)
            )),
        }
    };
    let suspended = match read_status(ctl, name) {
        Ok(s) => s,
        Err(e) => return Err(resume_old(e)),
    };
    if let Err(e) = between(&suspended, &records) {
        return Err(resume_old(e));
    }
    let target = Target {
        start: live.target.start,
        length: live.target.length,
        target_type: TARGET_TYPE.to_string(),
        params: params.to_string(),
    };
    if let Err(e) = ctl.load_table(name, std::slice::from_ref(&target)) {
        records.extend(watch.new_records());
        let why = create::reason(&kmsg::dm_reasons(&records, Some(&mm)), &e);
        return Err(resume_old(Error::new(format!(
            "cannot reload {name}: the new table was refused: {why}"
        ))));
    }
    let resumed = match ctl.resume(name) {
        Ok(r) => r,
        Err(e) => {
            records.extend(watch.new_records());
            let why = create::reason(&kmsg::dm_reasons(&records, Some(&mm)), &e);
            return Err(Error::new(format!(
                "cannot resume {name} with the new table: {why} (it stays suspended: fix the \
                 cause, then dmsetup resume {name})"
            )));
        }
    };
    // I/O flows again once the resume ioctl returned (waiting for udev
    // afterwards is no pause).
    let pause = resumed.at.duration_since(t0);
    if let Err(e) = crate::devnode::settle(name, resumed.dev, &resumed.udev) {
        crate::err_line(&Error::new(format!("warning: {e}")));
    }
    Ok(Swapped {
        timing: Timing { drain, pause },
        suspended,
        records,
    })
}

/// An address from a flag, resolved as `create` does.
fn flag_addr(flag: &str, a: Option<&str>) -> Result<Option<String>, Error> {
    a.map(|a| crate::addr::resolve(flag, a)).transpose()
}

/// An address the table lacks, from the resource file `DIR/NAME.toml` if
/// there is one: this host's (`mine`, where it listens) or the other
/// host's. `Ok(None)` when there is no such file or address.
fn file_addr(name: &str, files: &FileArgs, mine: bool) -> Result<Option<String>, Error> {
    let path = format!("{}/{name}.toml", files.config_dir.trim_end_matches('/'));
    if !Path::new(&path).exists() {
        return Ok(None);
    }
    let r = resource::load(&files.config_dir, name)?;
    let host = files.host.clone().unwrap_or_else(resource::hostname);
    let (me, other) = r.addresses(&host)?;
    let a = if mine { me } else { other };
    a.map(|a| crate::addr::resolve(&format!("{path}: address"), &a))
        .transpose()
}

/// The address for the new role: the flag's, else none if the table has
/// one, else the resource file's.
fn pick_addr(
    name: &str,
    flag: (&str, Option<&str>),
    in_table: bool,
    files: &FileArgs,
    mine: bool,
) -> Result<Option<String>, Error> {
    match flag_addr(flag.0, flag.1)? {
        Some(a) => Ok(Some(a)),
        None if in_table => Ok(None),
        None => file_addr(name, files, mine),
    }
}

/// Runs `rcopyctl promote`.
pub fn promote(
    name: &str,
    force: bool,
    rollback: Option<Option<&str>>,
    peer: Option<&str>,
    files: &FileArgs,
) -> Result<(), Error> {
    flag_addr("--peer", peer)?;
    let ctl = open_control()?;
    let live = read_live(&ctl, name)?;
    let plan = promote_plan_with(
        name,
        live.table.role(),
        &live.status,
        force,
        rollback.is_some(),
    )?;
    if let Plan::Done(note) = plan {
        out(&note);
        return Ok(());
    }
    let target = match rollback {
        Some(which) => Some(rollback_choice(name, &snap::list_of(&ctl, name)?, which)?),
        None => None,
    };
    let peer = pick_addr(
        name,
        ("--peer", peer),
        live.table.peer().is_some(),
        files,
        false,
    )?;
    let params = retable(
        name,
        &live.table,
        Want::Primary {
            peer: peer.as_deref(),
        },
    )?;
    if !live.status.consistent && target.is_none() {
        eprintln!(
            "rcopyctl: warning: promoting {name} although it is not consistent (--force): \
             its data may not be a usable image"
        );
    }
    if live.status.conn == Conn::Connected {
        eprintln!(
            "rcopyctl: warning: promoting {name} while its primary is connected (--force): \
             the two sides diverge; their next handshake is refused until resolved"
        );
    }
    let mut rolled = None;
    let sw = swap(&ctl, name, &live, &params, |_, _| {
        let Some((s, word)) = &target else {
            return Ok(());
        };
        // Suspended, the old table live: roll back, then check what it gave.
        let n = snap::rollback_suspended(&ctl, name, s, word)?;
        rolled = Some(n);
        let st = read_status(&ctl, name)?;
        if !st.consistent && !force {
            return Err(Error::new(format!(
                "{}, but {name} is still not consistent: not promoted (--force promotes anyway)",
                snap::rolled_back_text(name, s, n)
            )));
        }
        Ok(())
    })?;
    if let (Some((s, _)), Some(n)) = (&target, rolled) {
        out(&snap::rolled_back_text(name, s, n));
    }
    let table = LiveTable::new(name, &params)?;
    let to = table.peer().map(|p| p.to_string()).unwrap_or_default();
    match read_status(&ctl, name) {
        Ok(s) => out(&format!(
            "{name}: promoted to primary (generation {:016x}; connects to {to})",
            s.gen
        )),
        Err(_) => out(&format!("{name}: promoted to primary (connects to {to})")),
    }
    out(&format!(
        "  I/O pause: {} (from the suspend to the resume)",
        secs(sw.timing.pause)
    ));
    Ok(())
}

/// Runs `rcopyctl demote` (`handover`: ask for one when connected) and
/// `rcopyctl switchover` (`strict`: refuse unless connected and duplex,
/// and stay primary unless the handover drained).
/// Longest wait for the cache to drain before the suspend.
const PRE_DRAIN: Duration = Duration::from_secs(30);

/// Before the suspend (which holds I/O until the peer holds everything), lets
/// the cache and the dirty tracks drain while I/O still flows, so the pause
/// the handover imposes covers only what arrives meanwhile. Bounded by
/// [`PRE_DRAIN`]: under a steady load the suspend drains the rest.
fn pre_drain(ctl: &Control, name: &str, first: &Status) {
    let pending = |s: &Status| s.cache_used + s.dirty_bytes;
    if pending(first) == 0 {
        return;
    }
    let t0 = Instant::now();
    let mut last = pending(first);
    while t0.elapsed() < PRE_DRAIN {
        std::thread::sleep(Duration::from_millis(50));
        match read_status(ctl, name) {
            Ok(s) if s.conn == Conn::Connected => {
                last = pending(&s);
                if last == 0 {
                    break;
                }
            }
            _ => break,
        }
    }
    out(&format!(
        "  pre-drain: {} ({} bytes pending at the start, {} at the suspend)",
        secs(t0.elapsed()),
        pending(first),
        last
    ));
}

fn demote_with(
    name: &str,
    local: Option<&str>,
    files: &FileArgs,
    handover: bool,
    strict: bool,
) -> Result<(), Error> {
    flag_addr("--local", local)?;
    let ctl = open_control()?;
    let live = read_live(&ctl, name)?;
    let plan = if strict {
        switchover_plan(name, live.table.role(), &live.status)?
    } else {
        demote_plan(name, live.table.role())?
    };
    if let Plan::Done(note) = plan {
        out(&note);
        return Ok(());
    }
    let local = pick_addr(
        name,
        ("--local", local),
        live.table.local().is_some(),
        files,
        true,
    )?;
    let params = retable(
        name,
        &live.table,
        Want::Secondary {
            local: local.as_deref(),
        },
    )?;
    let h = if !handover {
        Handover::Skipped
    } else if live.status.conn != Conn::Connected {
        Handover::NotConnected
    } else {
        pre_drain(&ctl, name, &live.status);
        match ctl.message(name, 0, &["handover".to_string()]) {
            Ok(_) => Handover::Asked,
            Err(e) if strict => {
                return Err(Error::new(format!(
                    "cannot switch {name} over: the kernel refused the handover: {} \
                     (nothing changed)",
                    os_msg(&e)
                )))
            }
            Err(e) => Handover::Refused(os_msg(&e)),
        }
    };
    let started = Instant::now();
    let sw = swap(&ctl, name, &live, &params, |s, records| {
        let kernel = handover_line(records, name);
        if strict && !handed_over(s, kernel.as_deref()) {
            return Err(Error::new(format!(
                "cannot switch {name} over: the handover did not drain in {} ({}): {name} \
                 stays primary, nothing is lost",
                secs(started.elapsed()),
                held_text(s, kernel.as_deref())
            )));
        }
        Ok(())
    })?;
    let new = LiveTable::new(name, &params)?;
    let local = new.local().map(|a| a.to_string()).unwrap_or_default();
    let kernel = handover_line(&sw.records, name);
    for l in demote_report(
        name,
        &local,
        &h,
        &sw.suspended,
        sw.timing,
        kernel.as_deref(),
    ) {
        out(&l);
    }
    if strict {
        let peer = live
            .table
            .peer()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default();
        out(&format!(
            "now run: rcopyctl promote {name} on the peer{peer}"
        ));
    }
    Ok(())
}

/// Runs `rcopyctl demote`.
pub fn demote(
    name: &str,
    local: Option<&str>,
    no_handover: bool,
    files: &FileArgs,
) -> Result<(), Error> {
    demote_with(name, local, files, !no_handover, false)
}

/// Runs `rcopyctl switchover` (alias `failback`).
pub fn switchover(name: &str, local: Option<&str>, files: &FileArgs) -> Result<(), Error> {
    demote_with(name, local, files, true, true)
}

/// Runs `rcopyctl resolve`.
pub fn resolve(name: &str, how: Resolution, force: bool) -> Result<(), Error> {
    let ctl = open_control()?;
    let live = read_live(&ctl, name)?;
    if let Plan::Done(note) = resolve_plan(name, live.table.role(), &live.status, how, force)? {
        out(&note);
        return Ok(());
    }
    commands::message(name, &["resolve".to_string(), how.word().to_string()])?;
    out(&resolve_report(name, how, live.status.decision));
    Ok(())
}

/// A block node for a `major:minor` device word: an existing node under
/// `/dev`, or one made for the purpose (removed on drop).
struct Node {
    path: PathBuf,
    made: bool,
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.made {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// `(major, minor)` of a `major:minor` word.
pub fn parse_mm(word: &str) -> Option<(u32, u32)> {
    let (a, b) = word.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn is_node(p: &Path, rdev: u64) -> bool {
    fs::metadata(p).is_ok_and(|m| m.file_type().is_block_device() && m.rdev() == rdev)
}

fn node_for(word: &str) -> Result<Node, Error> {
    if word.starts_with('/') {
        return Ok(Node {
            path: PathBuf::from(word),
            made: false,
        });
    }
    let (ma, mi) = parse_mm(word)
        .ok_or_else(|| Error::new(format!("metadata device {word:?}: not major:minor")))?;
    let rdev = libc::makedev(ma, mi);
    let mut candidates = vec![PathBuf::from(format!("/dev/block/{ma}:{mi}"))];
    if let Ok(u) = fs::read_to_string(format!("/sys/dev/block/{ma}:{mi}/uevent")) {
        if let Some(n) = u.lines().find_map(|l| l.strip_prefix("DEVNAME=")) {
            candidates.insert(0, Path::new("/dev").join(n));
        }
    }
    if let Some(p) = candidates.into_iter().find(|p| is_node(p, rdev)) {
        return Ok(Node {
            path: p,
            made: false,
        });
    }
    let path = PathBuf::from(format!("/dev/.rcopyctl-{ma}-{mi}-{}", std::process::id()));
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::new("bad node path"))?;
    // SAFETY: `c` is a valid NUL-terminated path that lives across the call.
    let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFBLK | 0o600, rdev) };
    if rc != 0 {
        return Err(Error::new(format!(
            "metadata device {word}: no node under /dev, and making one failed: {}",
            os_msg(&std::io::Error::last_os_error())
        )));
    }
    Ok(Node { path, made: true })
}

/// Runs `rcopyctl unpair`.
pub fn unpair(name: &str, force: bool) -> Result<(), Error> {
    let ctl = open_control()?;
    let live = read_live(&ctl, name)?;
    if let Plan::Done(note) = unpair_plan(name, live.table.role(), &live.status, force)? {
        out(&note);
        return Ok(());
    }
    let params = retable(name, &live.table, Want::Simplex)?;
    let node = node_for(live.table.meta_dev())?;
    let path = node.path.to_string_lossy().into_owned();
    let gen = meta::random_id()?;
    let size = live.target.length << 9;
    let track_size = live.table.track_size();
    let mut marked = None;
    let sw = swap(&ctl, name, &live, &params, |_, _| {
        marked = Some(meta::mark_unpaired(&path, size, track_size, gen)?);
        Ok(())
    })?;
    let m = marked.expect("marked before the reload");
    out(&format!(
        "{name}: unpaired: a standalone device now (simplex), its data kept"
    ));
    out(&format!(
        "  metadata:  {} ({}): generation {:016x} started, all {} tracks marked: a standalone \
         device tracks no writes, so the first resync after pairing again copies every track",
        live.table.meta_dev(),
        path,
        m.sb.gen_current,
        m.tracks
    ));
    out(&format!(
        "  I/O pause: {} (from the suspend to the resume)",
        secs(sw.timing.pause)
    ));
    out(&format!(
        "to pair it again: load a table with a role (rcopyctl adjust {name} with its resource \
         file, or dmsetup reload); its peer's handshake will not trust it silently"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: &str = "254:0 254:16 8 role secondary local 10.77.0.2:7788 secret k pair_id r0";
    const PRI: &str = "254:0 254:16 10 track_size 4096 role primary mode async \
                       peer 10.77.0.2:7788 secret k";

    fn lt(p: &str) -> LiveTable {
        LiveTable::new("r0", p).unwrap()
    }

    #[test]
    fn promoted_table() {
        let t = lt(SEC);
        assert_eq!(t.role(), Some(Role::Secondary));
        assert_eq!(t.meta_dev(), "254:16");
        let e = retable("r0", &t, Want::Primary { peer: None }).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot promote r0: its table has no peer address for the new primary to connect \
             to (nor its resource file): give --peer ADDR:PORT (where the other side listens)"
        );
        assert_eq!(e.exit_code(), 1);
        let p = retable(
            "r0",
            &t,
            Want::Primary {
                peer: Some("10.77.0.1:7788"),
            },
        )
        .unwrap();
        // Both addresses kept; everything else as it was.
        assert_eq!(
            p,
            "254:0 254:16 10 role primary peer 10.77.0.1:7788 local 10.77.0.2:7788 secret k \
             pair_id r0"
        );
        let e = retable("r0", &t, Want::Primary { peer: Some("x") }).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.to_string(),
            "--peer \"x\": Invalid address: must be a.b.c.d:port or [v6]:port"
        );
        // A table with both: the peer is taken from it.
        let both = lt(&p);
        let back = retable("r0", &both, Want::Secondary { local: None }).unwrap();
        assert_eq!(
            back,
            "254:0 254:16 10 role secondary peer 10.77.0.1:7788 local 10.77.0.2:7788 secret k \
             pair_id r0"
        );
        assert_eq!(
            retable("r0", &lt(&back), Want::Primary { peer: None }).unwrap(),
            p
        );
    }

    #[test]
    fn demoted_table() {
        let t = lt(PRI);
        assert_eq!(t.role(), Some(Role::Primary));
        assert_eq!(t.track_size(), 4096);
        let e = retable("r0", &t, Want::Secondary { local: None }).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot demote r0: its table has no local address for the secondary to listen \
             on (nor its resource file): give --local ADDR:PORT (where this side listens)"
        );
        let d = retable(
            "r0",
            &t,
            Want::Secondary {
                local: Some("10.77.0.1:7788"),
            },
        )
        .unwrap();
        assert_eq!(
            d,
            "254:0 254:16 12 track_size 4096 role secondary mode async peer 10.77.0.2:7788 \
             local 10.77.0.1:7788 secret k"
        );
        // A given address replaces the table's.
        let d2 = retable(
            "r0",
            &lt(&d),
            Want::Secondary {
                local: Some("10.77.0.9:1"),
            },
        )
        .unwrap();
        assert!(d2.contains(" local 10.77.0.9:1 "), "{d2}");
        // The live table's hidden secret is filled in from the kernel's answer.
        let shown = "254:0 254:16 6 role primary peer 10.77.0.2:7788 secret -";
        assert!(hides_secret(shown));
        assert!(!hides_secret(
            "254:0 254:16 6 role primary peer 10.77.0.2:7788 secret k"
        ));
        assert_eq!(
            with_secret(shown, "k"),
            "254:0 254:16 6 role primary peer 10.77.0.2:7788 secret k"
        );
        // A hidden secret cannot be rebuilt.
        let hidden = lt("254:0 254:16 6 role primary peer 10.77.0.2:7788 secret -");
        let e = retable(
            "r0",
            &hidden,
            Want::Secondary {
                local: Some("1.2.3.4:5"),
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("the kernel hides its secret"), "{e}");
    }

    #[test]
    fn simplex_table() {
        assert_eq!(
            retable("r0", &lt(PRI), Want::Simplex).unwrap(),
            "254:0 254:16 2 track_size 4096"
        );
        assert_eq!(
            retable("r0", &lt(SEC), Want::Simplex).unwrap(),
            "254:0 254:16"
        );
        // The split copy stays with the unpaired device.
        let split = format!("{PRI} split_dev 254:32").replace(" 10 ", " 12 ");
        assert_eq!(
            retable("r0", &lt(&split), Want::Simplex).unwrap(),
            "254:0 254:16 4 track_size 4096 split_dev 254:32"
        );
        // ... and a device with one is not demoted.
        let e = retable(
            "r0",
            &lt(&split),
            Want::Secondary {
                local: Some("10.77.0.1:7788"),
            },
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(
            e.to_string()
                .starts_with("cannot demote r0: it keeps a split copy (split_dev 254:32)"),
            "{e}"
        );
        let s = lt("254:0 254:16");
        assert_eq!(s.role(), None);
        assert_eq!(s.track_size(), table::DEFAULT_TRACK_SIZE);
        // A bad live table is reported, secret hidden.
        let e = LiveTable::new("r0", "254:0 254:16 4 role primary secret k").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read the table of r0: Role primary needs a peer address: \
             \"254:0 254:16 4 role primary secret -\""
        );
    }

    fn status(conn: Conn, state: State, consistent: bool) -> Status {
        Status {
            conn,
            state,
            consistent,
            gen: 0xabc,
            ..Status::default()
        }
    }

    #[test]
    fn promote_checks() {
        let ok = status(Conn::Connecting, State::Suspended, true);
        let sec = Some(Role::Secondary);
        assert_eq!(promote_plan("r0", sec, &ok, false).unwrap(), Plan::Go);
        assert_eq!(
            promote_plan("r0", Some(Role::Primary), &ok, false).unwrap(),
            Plan::Done("r0 is already primary (generation 0000000000000abc): nothing to do".into())
        );
        let e = promote_plan("r0", None, &ok, true).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("r0 is a standalone device (no role): nothing to promote"),
            "{e}"
        );
        let bad = status(Conn::Connecting, State::Copying, false);
        let e = promote_plan("r0", sec, &bad, false).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert_eq!(
            e.to_string(),
            "cannot promote r0: it is not consistent (a copy or resync to it did not finish: \
             its data is not a usable image); --force promotes it anyway, --rollback rolls \
             it back to its pre-resync snapshot first"
        );
        assert_eq!(promote_plan("r0", sec, &bad, true).unwrap(), Plan::Go);
        // --rollback: the rollback makes it consistent; still not while connected.
        assert_eq!(
            promote_plan_with("r0", sec, &bad, false, true).unwrap(),
            Plan::Go
        );
        let conn_bad = status(Conn::Connected, State::Resyncing, false);
        assert!(promote_plan_with("r0", sec, &conn_bad, false, true).is_err());
        let conn = status(Conn::Connected, State::Duplex, true);
        let e = promote_plan("r0", sec, &conn, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot promote r0: the primary is still connected: demote it first (rcopyctl \
             demote r0 on the primary); --force promotes anyway"
        );
        assert_eq!(promote_plan("r0", sec, &conn, true).unwrap(), Plan::Go);
    }

    #[test]
    fn rollback_choices() {
        let snaps = snaplist::parse(
            "1 nightly ready - 1 1 0000000000000001\n\
             2 pre-resync ready before-resync 2 0 0000000000000001\n\
             3 - invalid - 3 7 0000000000000001\n\
             5 pre-resync ready before-resync 5 0 0000000000000002\n",
        )
        .unwrap();
        // The newest pre-resync snapshot by default, named by its id.
        let (s, w) = rollback_choice("r0", &snaps, None).unwrap();
        assert_eq!((s.epoch, w.as_str()), (5, "5"));
        let (s, w) = rollback_choice("r0", &snaps, Some("nightly")).unwrap();
        assert_eq!((s.epoch, w.as_str()), (1, "1"));
        // Two snapshots of that name: give the id.
        let e = rollback_choice("r0", &snaps, Some("pre-resync")).unwrap_err();
        assert!(e.to_string().contains("give the id"), "{e}");
        let e = rollback_choice("r0", &snaps, Some("3")).unwrap_err();
        assert!(e.to_string().contains("is invalid"), "{e}");
        let e = rollback_choice("r0", &snaps, Some("9")).unwrap_err();
        assert!(e.to_string().contains("no snapshot \"9\""), "{e}");
        let none = snaplist::parse("1 nightly ready - 1 1 0000000000000001\n").unwrap();
        let e = rollback_choice("r0", &none, None).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(
            e.to_string().starts_with(
                "cannot promote r0 with --rollback: it has no ready pre-resync snapshot"
            ),
            "{e}"
        );
    }

    #[test]
    fn demote_and_switchover_checks() {
        assert_eq!(demote_plan("r0", Some(Role::Primary)).unwrap(), Plan::Go);
        assert_eq!(
            demote_plan("r0", Some(Role::Secondary)).unwrap(),
            Plan::Done("r0 is already secondary: nothing to do".into())
        );
        assert!(demote_plan("r0", None).is_err());
        let duplex = status(Conn::Connected, State::Duplex, true);
        let pri = Some(Role::Primary);
        assert_eq!(switchover_plan("r0", pri, &duplex).unwrap(), Plan::Go);
        let e = switchover_plan("r0", Some(Role::Secondary), &duplex).unwrap_err();
        assert_eq!(
            e.to_string(),
            "r0 is the secondary: run rcopyctl switchover r0 on the primary, then rcopyctl \
             promote r0 here"
        );
        for (c, st) in [
            (Conn::Connected, State::Resyncing),
            (Conn::Connecting, State::Suspended),
            (Conn::Standalone, State::Suspended),
        ] {
            let e = switchover_plan("r0", pri, &status(c, st, true)).unwrap_err();
            assert_eq!(e.exit_code(), 1);
            assert_eq!(
                e.to_string(),
                format!(
                    "cannot switch r0 over: the pair is not connected and in sync (state {st}, \
                     conn {c}): a switchover hands everything to the peer first; wait for it \
                     (rcopyctl wait r0 --state duplex), or use rcopyctl demote"
                )
            );
        }
    }

    #[test]
    fn resolve_checks() {
        let mut s = status(Conn::Connecting, State::Suspended, true);
        let (pri, sec) = (Some(Role::Primary), Some(Role::Secondary));
        // No refusal: nothing to resolve, unless forced.
        let e = resolve_plan("r0", pri, &s, Resolution::KeepLocal, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "nothing to resolve on r0: the last handshake decided none (no handshake yet); \
             resolve answers a split-brain, stale-primary or unrelated refusal (--force sends \
             it anyway, for the next handshake)"
        );
        assert_eq!(
            resolve_plan("r0", pri, &s, Resolution::KeepLocal, true).unwrap(),
            Plan::Go
        );
        s.decision = Some(Decision::Bitmap);
        let e = resolve_plan("r0", sec, &s, Resolution::DiscardLocal, false).unwrap_err();
        assert!(e.to_string().contains("decided bitmap;"), "{e}");
        assert_eq!(
            resolve_plan("r0", sec, &s, Resolution::Cancel, false).unwrap(),
            Plan::Go
        );
        s.decision = Some(Decision::SplitBrain);
        assert_eq!(
            resolve_plan("r0", pri, &s, Resolution::KeepLocal, false).unwrap(),
            Plan::Go
        );
        assert_eq!(
            resolve_plan("r0", sec, &s, Resolution::DiscardLocal, false).unwrap(),
            Plan::Go
        );
        // The wrong side says which command to run instead.
        let e = resolve_plan("r0", sec, &s, Resolution::KeepLocal, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "r0 is the secondary: --keep-local keeps the primary's data and is run on the \
             primary (rcopyctl resolve r0 --keep-local there); to give up this side's data \
             run rcopyctl resolve r0 --discard-local here"
        );
        let e = resolve_plan("r0", pri, &s, Resolution::DiscardLocal, true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "r0 is the primary: --discard-local is run on the secondary (whose data is \
             overwritten: rcopyctl resolve r0 --discard-local there); to keep this side's \
             data run rcopyctl resolve r0 --keep-local here"
        );
        assert!(resolve_plan("r0", None, &s, Resolution::KeepLocal, true).is_err());
        assert_eq!(Resolution::KeepLocal.word(), "keep-local");
        assert_eq!(Resolution::DiscardLocal.word(), "discard-local");
        assert_eq!(Resolution::Cancel.word(), "none");
        let r = resolve_report("r0", Resolution::KeepLocal, Some(Decision::SplitBrain));
        assert!(
            r.starts_with("r0: resolved: this side's data is kept."),
            "{r}"
        );
        assert!(r.contains("(both bitmaps)"), "{r}");
        let r = resolve_report("r0", Resolution::DiscardLocal, Some(Decision::Unrelated));
        assert!(
            r.contains("every track (the two sides share no history)"),
            "{r}"
        );
        assert!(r.contains("its writes since the split are lost"), "{r}");
    }

    #[test]
    fn unpair_checks() {
        let ok = status(Conn::Connected, State::Duplex, true);
        assert_eq!(
            unpair_plan("r0", None, &ok, false).unwrap(),
            Plan::Done("r0 is already a standalone device: nothing to do".into())
        );
        assert_eq!(
            unpair_plan("r0", Some(Role::Primary), &ok, false).unwrap(),
            Plan::Go
        );
        let bad = status(Conn::Connected, State::Copying, false);
        let e = unpair_plan("r0", Some(Role::Secondary), &bad, false).unwrap_err();
        assert!(e.to_string().ends_with("--force unpairs it anyway"), "{e}");
        assert_eq!(
            unpair_plan("r0", Some(Role::Secondary), &bad, true).unwrap(),
            Plan::Go
        );
    }

    #[test]
    fn demote_reports() {
        let t = Timing {
            drain: Duration::from_millis(312),
            pause: Duration::from_millis(1420),
        };
        let clean = status(Conn::Connecting, State::Suspended, true);
        assert!(drained(&clean));
        let lines = demote_report(
            "r0",
            "10.77.0.1:7788",
            &Handover::Asked,
            &clean,
            t,
            Some("handover: peer holds everything (300 ms)"),
        );
        assert_eq!(
            lines,
            vec![
                "r0: demoted to secondary (listens on 10.77.0.1:7788)",
                "  drain:     0.312 s (handover; the peer holds everything)",
                "  kernel:    handover: peer holds everything (300 ms)",
                "  I/O pause: 1.420 s (from the suspend to the resume)",
            ]
        );
        let mut dirty = clean;
        dirty.dirty_bytes = 128 << 10;
        assert!(!drained(&dirty));
        let lines = demote_report("r0", "10.77.0.1:7788", &Handover::Asked, &dirty, t, None);
        assert_eq!(
            lines[1],
            "  drain:     0.312 s (handover gave up; the peer lacks 128 KiB of this side's \
             writes: promoting it rolls them back)"
        );
        assert_eq!(lines.len(), 3);
        let l = demote_report("r0", "a", &Handover::NotConnected, &dirty, t, None);
        assert!(
            l[1].contains("(no handover: not connected; the peer lacks"),
            "{l:?}"
        );
        let l = demote_report("r0", "a", &Handover::Skipped, &clean, t, None);
        assert!(l[1].ends_with("(no handover: --no-handover; the peer holds everything)"));
        let l = demote_report(
            "r0",
            "a",
            &Handover::Refused("Invalid argument".into()),
            &clean,
            t,
            None,
        );
        assert!(l[1].contains("no handover: the kernel refused it: Invalid argument;"));
        // Drained, but the kernel gave up: not handed over.
        let k = Some(
            "handover: gave up after 60000 ms: the peer does not hold everything (0 tracks marked)",
        );
        assert!(handed_over(&clean, None));
        assert!(!handed_over(&clean, k));
        assert!(handed_over(
            &clean,
            Some("handover: peer holds everything (3 ms)")
        ));
        let l = demote_report("r0", "a", &Handover::Asked, &clean, t, k);
        assert_eq!(
            l[1],
            "  drain:     0.312 s (handover gave up; the peer lacks no write, but the handover \
             did not complete (it may not know it is in sync))"
        );
        let mut refs = clean;
        refs.al_refs = 1;
        assert!(!drained(&refs));
        let mut cached = clean;
        cached.cache_used = 4096;
        assert!(!drained(&cached));
    }

    #[test]
    fn addresses_from_the_resource_file() {
        let dir = std::env::temp_dir().join(format!("rcopyctl-takeover-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("r0.toml"),
            "secret_file = \"/k\"\n[host.alpha]\nrole = \"primary\"\ndata = \"/dev/vda\"\n\
             meta = \"/dev/vdb\"\naddress = \"10.77.0.1:7788\"\n[host.beta]\n\
             role = \"secondary\"\ndata = \"/dev/vda\"\nmeta = \"/dev/vdb\"\n\
             address = \"10.77.0.2:7788\"\n",
        )
        .unwrap();
        let files = |host: &str| FileArgs {
            config_dir: dir.to_string_lossy().into_owned(),
            host: Some(host.to_string()),
        };
        // beta promoted: it connects to alpha; alpha demoted: it listens on its own.
        assert_eq!(
            pick_addr("r0", ("--peer", None), false, &files("beta"), false).unwrap(),
            Some("10.77.0.1:7788".to_string())
        );
        assert_eq!(
            pick_addr("r0", ("--local", None), false, &files("alpha"), true).unwrap(),
            Some("10.77.0.1:7788".to_string())
        );
        // The table's own address wins; a flag wins over both.
        assert_eq!(
            pick_addr("r0", ("--peer", None), true, &files("beta"), false).unwrap(),
            None
        );
        assert_eq!(
            pick_addr(
                "r0",
                ("--peer", Some("10.0.0.9:1")),
                false,
                &files("beta"),
                false
            )
            .unwrap(),
            Some("10.0.0.9:1".to_string())
        );
        // No file: nothing; a host without a section: its error.
        assert_eq!(
            pick_addr("r9", ("--peer", None), false, &files("beta"), false).unwrap(),
            None
        );
        let e = pick_addr("r0", ("--peer", None), false, &files("gamma"), false).unwrap_err();
        assert!(e.to_string().contains("no [host.gamma] section"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn kernel_lines() {
        let recs = vec![
            "dm_rcopy: r0: disconnected".to_string(),
            "dm_rcopy: r0: handover: peer holds everything (12 ms)".to_string(),
            "dm_rcopy: r10: handover: gave up after 60000 ms".to_string(),
        ];
        assert_eq!(
            handover_line(&recs, "r0").as_deref(),
            Some("handover: peer holds everything (12 ms)")
        );
        assert_eq!(
            handover_line(&recs, "r10").as_deref(),
            Some("handover: gave up after 60000 ms")
        );
        assert_eq!(handover_line(&recs[..1], "r0"), None);
        assert_eq!(handover_line(&recs, "r1"), None);
        assert_eq!(secs(Duration::from_micros(1_234_567)), "1.234 s");
        assert_eq!(parse_mm("254:16"), Some((254, 16)));
        assert_eq!(parse_mm("254"), None);
        assert_eq!(parse_mm("a:1"), None);
    }
}
