//! `rcopyctl snapshot`, `snapshots`, `snapshot-delete`, `snapshot-activate`,
//! `snapshot-deactivate` and `snapshot-rollback`: point-in-time images of a
//! secondary (`Documentation/rcopy-snapshots.rst`).
//!
//! The primary asks (message `snapshot`, which returns a ticket) and the
//! secondary takes the snapshot when its apply reaches the marker; the primary
//! learns the outcome from the secondary's answer (message `snapshot-result
//! TICKET`), which [`wait_result`] polls. Everything else happens on the
//! secondary, whose table names the snapshot store (`snap_store`).

use std::time::{Duration, Instant, SystemTime};

use rcopy_core::imagesum::{self, SUM_LEN};
use rcopy_core::snapstore;

use crate::cli::parse_name;
use crate::create::{self, TARGET_TYPE};
use crate::dm_ioctl::{Control, Target};
use crate::error::{os_msg, Error};
use crate::kmsg::KmsgWatch;
use crate::snaplist::{self, Snap};
use crate::takeover::LiveTable;
use crate::{devnode, open_control, out};

/// Name of the kernel's snapshot target type.
pub const SNAP_TARGET: &str = "rcopy-snap";

/// How often `snapshot` asks for the outcome.
pub const POLL: Duration = Duration::from_millis(50);

/// How long `snapshot` waits for the peer's answer by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long `snapshot --verify` waits by default: the primary scans its whole
/// image before the answer.
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(600);

/// How often `snapshot --verify` asks for the outcome.
pub const VERIFY_POLL: Duration = Duration::from_millis(250);

/// The outcome of a snapshot request (`snapshot-result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No answer yet.
    Pending,
    /// Taken on the peer, with this id (epoch).
    Taken(u32),
    /// `snapshot-verify`: taken with this id, and the primary's image sum at the
    /// marker computed and recorded with it on the peer.
    TakenSum(u32, [u8; SUM_LEN]),
    /// `snapshot-verify`: taken with this id, but the sum could not be computed
    /// or delivered (the link dropped during the scan, a read error).
    SumLost(u32),
    /// Refused by the peer with this errno.
    Refused(i32),
    /// The link dropped before the answer.
    Lost,
}

/// Parses the output of `snapshot-result`.
pub fn parse_result(text: &str) -> Result<Outcome, String> {
    let w: Vec<&str> = text.split_ascii_whitespace().collect();
    let bad = || format!("unexpected answer to snapshot-result: {text:?}");
    match w.as_slice() {
        ["pending"] => Ok(Outcome::Pending),
        ["lost"] => Ok(Outcome::Lost),
        ["taken", e] => e.parse().map(Outcome::Taken).map_err(|_| bad()),
        ["taken", e, "sum", h] => {
            let e = e.parse().map_err(|_| bad())?;
            let sum = imagesum::parse_hex(h.as_bytes()).ok_or_else(bad)?;
            Ok(Outcome::TakenSum(e, sum))
        }
        ["taken", e, "sum-lost"] => e.parse().map(Outcome::SumLost).map_err(|_| bad()),
        ["refused", e] => e.parse().map(Outcome::Refused).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// Why the peer refused a snapshot, in words.
pub fn refusal_text(errno: i32) -> String {
    match errno {
        libc::ENODEV => "the peer has no snapshot store (no snap_store in its table; format one \
                         with rcopyctl create-store and add it)"
            .to_string(),
        libc::EAGAIN => {
            "the peer's image is not consistent (a copy or resync to it is running)".to_string()
        }
        libc::ENOSPC => "the peer's snapshot table is full (32 snapshots): delete some there \
                         (rcopyctl snapshot-delete)"
            .to_string(),
        libc::EOPNOTSUPP => "the peer does not take snapshots (an older module)".to_string(),
        libc::EIO => "I/O error on the peer's snapshot store".to_string(),
        e => format!(
            "{} (errno {e})",
            os_msg(&std::io::Error::from_raw_os_error(e))
        ),
    }
}

/// Asks `ask` (one `snapshot-result` message) every `every` until the answer is
/// not `pending` or `timeout` has passed (then `Outcome::Pending`). Asks at least
/// once, and once more at the deadline.
pub fn wait_result(
    timeout: Duration,
    every: Duration,
    mut ask: impl FnMut() -> Result<String, Error>,
) -> Result<Outcome, Error> {
    let start = Instant::now();
    loop {
        let o = parse_result(&ask()?).map_err(Error::new)?;
        if o != Outcome::Pending {
            return Ok(o);
        }
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Ok(Outcome::Pending);
        }
        std::thread::sleep(every.min(left));
    }
}

/// What `snapshot` says about an outcome: the line to print (`Ok`) or the error.
pub fn report(
    name: &str,
    snapname: Option<&str>,
    ticket: u64,
    o: Outcome,
    timeout: Duration,
) -> Result<String, Error> {
    let named = snapname.map(|n| format!(" ({n})")).unwrap_or_default();
    match o {
        Outcome::Taken(e) => Ok(format!("{name}: snapshot {e}{named} taken on the peer")),
        Outcome::TakenSum(e, sum) => Ok(format!(
            "{name}: snapshot {e}{named} taken on the peer; primary image sum {} recorded \
             there (check the peer's copy there: rcopyctl snapshot-verify {name} {e})",
            crate::snaplist::hex(&sum)
        )),
        Outcome::SumLost(e) => Err(Error::new(format!(
            "{name}: snapshot {e}{named} was taken on the peer, but the primary's image sum \
             was not computed or not delivered (the link dropped during the scan, or a read \
             failed): it has no recorded sum and cannot be verified; delete it and take \
             another with --verify"
        ))),
        Outcome::Refused(e) => Err(Error::new(format!(
            "{name}: the peer refused the snapshot{named}: {}",
            refusal_text(e)
        ))),
        Outcome::Lost => Err(Error::new(format!(
            "{name}: the link to the peer dropped before it answered: the snapshot{named} may \
             or may not have been taken (list them on the peer: rcopyctl snapshots {name})"
        ))),
        Outcome::Pending => Err(Error::new(format!(
            "{name}: no answer from the peer after {} (ticket {ticket}): the snapshot{named} \
             may still be taken; ask again with rcopyctl message {name} snapshot-result {ticket}",
            human_duration(timeout)
        ))),
    }
}

/// What `snapshot --verify` says about an outcome: [`report`], but a snapshot
/// taken without a sum is an error, and a wait that timed out names the scan.
pub fn verify_report(
    name: &str,
    snapname: Option<&str>,
    ticket: u64,
    o: Outcome,
    timeout: Duration,
) -> Result<String, Error> {
    let named = snapname.map(|n| format!(" ({n})")).unwrap_or_default();
    match o {
        Outcome::Taken(e) => Err(Error::new(format!(
            "{name}: snapshot {e}{named} was taken on the peer, but the module answered \
             without the primary's image sum (as to a plain snapshot): it cannot be verified"
        ))),
        Outcome::Pending => Err(Error::new(format!(
            "{name}: no final answer after {} (ticket {ticket}): the snapshot{named} may be \
             taken and the primary's scan still running; ask again with rcopyctl message \
             {name} snapshot-result {ticket}, or give a longer --timeout",
            human_duration(timeout)
        ))),
        o => report(name, snapname, ticket, o, timeout),
    }
}

/// `1.5 s`, `60 s`, `250 ms`.
pub fn human_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.3} s", d.as_secs_f64())
    }
}

/// Parses `--timeout`: a whole number with an optional unit `ms`, `s`, `m` or
/// `h` (seconds without one).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = t.split_at(digits);
    let expected = "expected a whole number with an optional unit ms, s, m or h (e.g. 30s, \
                    500ms, 2m)";
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: {expected}"))?;
    let d = match unit {
        "ms" => Some(Duration::from_millis(n)),
        "" | "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => return Err(format!("invalid duration {s:?}: {expected}")),
    };
    d.ok_or_else(|| format!("invalid duration {s:?}: too long"))
}

/// Accepts a snapshot name as the kernel does: 1 to 32 of `[A-Za-z0-9._:+@-]`.
pub fn parse_snapname(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("the snapshot name is empty (leave it out for an unnamed snapshot)".into());
    }
    if !snapstore::name_valid(s.as_bytes()) {
        return Err(format!(
            "a snapshot name is up to {} characters of A-Z a-z 0-9 . _ : + @ - (got {} bytes)",
            snapstore::NAME_LEN,
            s.len()
        ));
    }
    Ok(s.to_string())
}

/// Accepts a snapshot id or name (`snapshot-delete` and friends).
pub fn parse_which(s: &str) -> Result<String, String> {
    if s.parse::<u32>().is_ok_and(|n| n > 0) {
        return Ok(s.to_string());
    }
    parse_snapname(s).map_err(|e| format!("neither a snapshot id (1, 2, ...) nor a name: {e}"))
}

// ---------------------------------------------------------------- devices

/// A message that failed: the errno and the kernel's reason (or the errno's
/// text).
pub struct Refused {
    pub errno: Option<i32>,
    pub why: String,
}

/// Sends `words` to `name` and returns its output (empty for none); on a
/// failure, the kernel's reason from its log.
pub fn send(ctl: &Control, name: &str, words: &[String]) -> Result<String, Refused> {
    let mm = ctl
        .info(name)
        .map(|i| format!("{}:{}", libc::major(i.dev), libc::minor(i.dev)))
        .map_err(|e| Refused {
            errno: e.raw_os_error(),
            why: match e.raw_os_error() {
                Some(libc::ENXIO) => format!("device {name} does not exist"),
                _ => os_msg(&e),
            },
        })?;
    let mut watch = KmsgWatch::start();
    match ctl.message(name, 0, words) {
        Ok(t) => Ok(t.unwrap_or_default()),
        Err(e) => {
            let reasons = watch.dm_reasons(Some(&mm));
            Err(Refused {
                errno: e.raw_os_error(),
                why: if reasons.is_empty() {
                    os_msg(&e)
                } else {
                    reasons.join("; ")
                },
            })
        }
    }
}

/// [`send`] with the failure as an error: `what NAME: reason`.
fn send_or(ctl: &Control, name: &str, words: &[String], what: &str) -> Result<String, Error> {
    send(ctl, name, words).map_err(|r| Error::new(format!("{what} {name}: {}", r.why)))
}

/// The snapshots of the secondary `name` (message `snapshots`).
pub fn list_of(ctl: &Control, name: &str) -> Result<Vec<Snap>, Error> {
    let text = send_or(
        ctl,
        name,
        &["snapshots".to_string()],
        "cannot list the snapshots of",
    )?;
    snaplist::parse(&text).map_err(Error::new)
}

/// `snapshot N (name)` for messages.
pub fn label(s: &Snap) -> String {
    match &s.name {
        Some(n) => format!("snapshot {} ({n})", s.epoch),
        None => format!("snapshot {}", s.epoch),
    }
}

/// The snapshot `which` names on `name`, and the word that names it to the
/// kernel.
pub fn resolve(ctl: &Control, name: &str, which: &str) -> Result<(Vec<Snap>, Snap, String), Error> {
    let snaps = list_of(ctl, name)?;
    let s = snaplist::find(&snaps, which)
        .map_err(|e| Error::new(format!("{name}: {e}")))?
        .clone();
    let word = snaplist::word_for(&snaps, &s).map_err(|e| Error::new(format!("{name}: {e}")))?;
    Ok((snaps, s, word))
}

/// Sends a marker message (`words`, on the primary), then polls
/// `snapshot-result` for its ticket every `every` until the answer is final or
/// `timeout` passed. Returns the ticket and the outcome. `busy` is added to the
/// error when the message fails with `EBUSY`.
fn marker_and_wait(
    name: &str,
    words: &[String],
    what: &str,
    (timeout, every): (Duration, Duration),
    busy: &str,
) -> Result<(u64, Outcome), Error> {
    let ctl = open_control()?;
    let text = send(&ctl, name, words).map_err(|r| {
        let hint = if r.errno == Some(libc::EBUSY) {
            busy
        } else {
            ""
        };
        Error::new(format!("cannot {what} {name}: {}{hint}", r.why))
    })?;
    let ticket: u64 = text.trim().parse().map_err(|_| {
        Error::new(format!(
            "{name}: unexpected answer to {}: {text:?} (is it the primary?)",
            words.first().map_or("", String::as_str)
        ))
    })?;
    let ask = vec!["snapshot-result".to_string(), ticket.to_string()];
    let o = wait_result(timeout, every, || {
        send_or(&ctl, name, &ask, "cannot read the result of")
    })?;
    Ok((ticket, o))
}

/// Runs `rcopyctl snapshot` (on the primary); with `verify`, `snapshot-verify`:
/// the primary also sums its image at the marker and sends the sum to the peer.
pub fn take(
    name: &str,
    snapname: Option<&str>,
    timeout: Option<Duration>,
    verify: bool,
) -> Result<(), Error> {
    let word = if verify {
        "snapshot-verify"
    } else {
        "snapshot"
    };
    let mut words = vec![word.to_string()];
    words.extend(snapname.map(str::to_string));
    if !verify {
        let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
        let (ticket, o) = marker_and_wait(name, &words, "take a snapshot of", (timeout, POLL), "")?;
        out(&report(name, snapname, ticket, o, timeout)?);
        return Ok(());
    }
    let timeout = timeout.unwrap_or(VERIFY_TIMEOUT);
    let (ticket, o) = marker_and_wait(
        name,
        &words,
        "take a verified snapshot of",
        (timeout, VERIFY_POLL),
        " (one snapshot --verify runs at a time: wait for the running one)",
    )?;
    out(&verify_report(name, snapname, ticket, o, timeout)?);
    Ok(())
}

/// Runs `rcopyctl mark` (on the primary): ends a consistency point and waits
/// until the peer confirms it holds it.
pub fn mark(name: &str, timeout: Option<Duration>) -> Result<(), Error> {
    let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
    let (ticket, o) = marker_and_wait(
        name,
        &["point".to_string()],
        "mark a point on",
        (timeout, POLL),
        "",
    )?;
    out(&point_report(name, ticket, o, timeout)?);
    Ok(())
}

/// What `mark` says about an outcome.
pub fn point_report(
    name: &str,
    ticket: u64,
    o: Outcome,
    timeout: Duration,
) -> Result<String, Error> {
    match o {
        // A point has no sum; an answer with one is read as its id.
        Outcome::Taken(e) | Outcome::TakenSum(e, _) | Outcome::SumLost(e) => Ok(format!(
            "{name}: consistency point {e} complete on the peer"
        )),
        Outcome::Refused(e) => Err(Error::new(format!(
            "{name}: the peer refused the consistency point: {}",
            refusal_text(e)
        ))),
        Outcome::Lost => Err(Error::new(format!(
            "{name}: the link to the peer dropped before it answered: the peer holds this point \
             or the one before (rcopyctl status {name} --verbose on the peer)"
        ))),
        Outcome::Pending => Err(Error::new(format!(
            "{name}: no answer from the peer after {} (ticket {ticket})",
            human_duration(timeout)
        ))),
    }
}

/// Runs `rcopyctl snapshots` (on the secondary).
pub fn list(name: &str, json: bool) -> Result<(), Error> {
    let ctl = open_control()?;
    let snaps = list_of(&ctl, name)?;
    if json {
        out(&snaplist::json_array(&snaps));
    } else if snaps.is_empty() {
        out(&format!("{name}: no snapshots"));
    } else {
        out(snaplist::table(&snaps, SystemTime::now()).trim_end());
    }
    Ok(())
}

/// Runs `rcopyctl snapshot-delete` (on the secondary).
pub fn delete(name: &str, which: &str) -> Result<(), Error> {
    let ctl = open_control()?;
    let (_, s, word) = resolve(&ctl, name, which)?;
    send(&ctl, name, &["snapshot-delete".to_string(), word]).map_err(|r| {
        let hint = if r.errno == Some(libc::EBUSY) {
            " (a snapshot device reads it: rcopyctl snapshot-deactivate DEVNAME first)"
        } else {
            ""
        };
        Error::new(format!(
            "cannot delete {} of {name}: {}{hint}",
            label(&s),
            r.why
        ))
    })?;
    out(&format!("{name}: {} deleted", label(&s)));
    Ok(())
}

/// The default name of a snapshot device.
pub fn device_name(name: &str, epoch: u32) -> String {
    format!("{name}-snap-{epoch}")
}

/// The target of a snapshot device: `0 LEN rcopy-snap STORE EPOCH`.
pub fn snap_target(length: u64, store: &str, epoch: u32) -> Target {
    Target {
        start: 0,
        length,
        target_type: SNAP_TARGET.to_string(),
        params: format!("{store} {epoch}"),
    }
}

/// The rcopy target of `name` (its length, and its table's store word).
pub fn store_of(ctl: &Control, name: &str) -> Result<(u64, String), Error> {
    let targets = ctl
        .table_status(name, true)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => Error::new(format!("device {name} does not exist")),
            _ => Error::new(format!("cannot read the table of {name}: {}", os_msg(&e))),
        })?;
    let t = targets
        .into_iter()
        .find(|t| t.target_type == TARGET_TYPE)
        .ok_or_else(|| Error::new(format!("device {name} is not an rcopy device")))?;
    let live = LiveTable::new(name, &t.text)?;
    let store = live.snap_store().ok_or_else(|| {
        Error::new(format!(
            "{name} has no snapshot store (no snap_store in its table)"
        ))
    })?;
    Ok((t.length, store))
}

/// Runs `rcopyctl snapshot-activate` (on the secondary): a read-only device
/// showing the snapshot.
pub fn activate(name: &str, which: &str, devname: Option<&str>) -> Result<(), Error> {
    let ctl = open_control()?;
    let (length, store) = store_of(&ctl, name)?;
    let (_, s, _) = resolve(&ctl, name, which)?;
    if !s.ready {
        return Err(Error::new(format!(
            "{name}: {} is invalid (the store ran out of slots before a track it needed was \
             copied): it cannot be read",
            label(&s)
        )));
    }
    let dev = match devname {
        Some(d) => d.to_string(),
        None => device_name(name, s.epoch),
    };
    parse_name(&dev).map_err(|e| Error::usage(format!("device name {dev:?}: {e}")))?;
    let target = snap_target(length, &store, s.epoch);
    create::activate_with(&ctl, &dev, &target, true)?;
    out(&format!(
        "/dev/mapper/{dev}: {} of {name}, read-only",
        label(&s)
    ));
    Ok(())
}

/// Runs `rcopyctl snapshot-deactivate`: removes a snapshot device.
pub fn deactivate(dev: &str) -> Result<(), Error> {
    let ctl = open_control()?;
    let info = ctl.info(dev).map_err(|e| match e.raw_os_error() {
        Some(libc::ENXIO) => Error::new(format!("device {dev} does not exist")),
        _ => Error::new(format!("cannot remove {dev}: {}", os_msg(&e))),
    })?;
    let targets = ctl
        .table_status(dev, false)
        .map_err(|e| Error::new(format!("cannot remove {dev}: {}", os_msg(&e))))?;
    if targets.is_empty() || targets.iter().any(|t| t.target_type != SNAP_TARGET) {
        return Err(Error::new(format!(
            "device {dev} is not a snapshot device (target {SNAP_TARGET})"
        )));
    }
    ctl.remove(dev).map_err(|e| match e.raw_os_error() {
        Some(libc::EBUSY) => Error::new(format!("device {dev} is in use (mounted or held open)")),
        _ => Error::new(format!("cannot remove {dev}: {}", os_msg(&e))),
    })?;
    devnode::remove(dev, info.dev);
    out(&format!("{dev}: removed"));
    Ok(())
}

/// Sends `snapshot-rollback WORD` to the suspended `name`; returns the number
/// of tracks rewritten.
pub fn rollback_suspended(ctl: &Control, name: &str, s: &Snap, word: &str) -> Result<u64, Error> {
    let text = send(
        ctl,
        name,
        &["snapshot-rollback".to_string(), word.to_string()],
    )
    .map_err(|r| {
        let hint = if r.errno == Some(libc::EBUSY) {
            " (a snapshot device reads the store: deactivate it first)"
        } else {
            ""
        };
        Error::new(format!(
            "cannot roll {name} back to {}: {}{hint}",
            label(s),
            r.why
        ))
    })?;
    text.trim().parse().map_err(|_| {
        Error::new(format!(
            "{name}: unexpected answer to snapshot-rollback: {text:?}"
        ))
    })
}

/// The line a rollback prints.
pub fn rolled_back_text(name: &str, s: &Snap, tracks: u64) -> String {
    format!(
        "{name}: rolled back to {}: {tracks} track{} rewritten (marked for the peer)",
        label(s),
        if tracks == 1 { "" } else { "s" }
    )
}

/// Runs `rcopyctl snapshot-rollback` (on the secondary): suspend, message,
/// resume. The device is resumed whatever the message gave.
pub fn rollback(name: &str, which: &str) -> Result<(), Error> {
    let ctl = open_control()?;
    let (_, s, word) = resolve(&ctl, name, which)?;
    ctl.suspend(name)
        .map_err(|e| Error::new(format!("cannot suspend {name}: {}", os_msg(&e))))?;
    let r = rollback_suspended(&ctl, name, &s, &word);
    let resumed = ctl.resume(name);
    let n = match (r, resumed) {
        (Ok(n), Ok(res)) => {
            if let Err(e) = devnode::settle(name, res.dev, &res.udev) {
                crate::err_line(&Error::new(format!("warning: {e}")));
            }
            n
        }
        (Err(e), Ok(_)) => return Err(Error::new(format!("{e} ({name} resumed)"))),
        (r, Err(e)) => {
            let done = match r {
                Ok(n) => rolled_back_text(name, &s, n),
                Err(e) => e.to_string(),
            };
            return Err(Error::new(format!(
                "{done}; resuming {name} failed: {} (it stays suspended: dmsetup resume {name})",
                os_msg(&e)
            )));
        }
    };
    out(&rolled_back_text(name, &s, n));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results() {
        assert_eq!(parse_result("pending"), Ok(Outcome::Pending));
        assert_eq!(parse_result("taken 3\n"), Ok(Outcome::Taken(3)));
        assert_eq!(parse_result("refused 19"), Ok(Outcome::Refused(19)));
        assert_eq!(parse_result("lost"), Ok(Outcome::Lost));
        for bad in ["", "taken", "taken x", "refused", "done 3", "pending 1"] {
            assert!(parse_result(bad).is_err(), "{bad}");
        }
    }

    const SUM: &str = "1a2b000000000000000000000000000000000000000000000000000000000003";

    #[test]
    fn verify_results() {
        let mut sum = [0u8; SUM_LEN];
        sum[0] = 0x1a;
        sum[1] = 0x2b;
        sum[31] = 3;
        assert_eq!(
            parse_result(&format!("taken 3 sum {SUM}\n")),
            Ok(Outcome::TakenSum(3, sum))
        );
        assert_eq!(parse_result("taken 4 sum-lost"), Ok(Outcome::SumLost(4)));
        for bad in [
            "taken 3 sum".to_string(),
            "taken 3 sum 1a2b".to_string(),
            format!("taken 3 sum {SUM}0"),
            format!("taken 3 sum {}", SUM.replace('a', "x")),
            format!("taken x sum {SUM}"),
            format!("taken 3 sum {SUM} more"),
            "taken 3 sum-lost x".to_string(),
            "taken x sum-lost".to_string(),
            "taken 3 lost".to_string(),
        ] {
            assert!(parse_result(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn verify_reports() {
        let t = VERIFY_TIMEOUT;
        let sum = imagesum::parse_hex(SUM.as_bytes()).unwrap();
        let ok = verify_report("r0", Some("v1"), 5, Outcome::TakenSum(3, sum), t).unwrap();
        assert_eq!(
            ok,
            format!(
                "r0: snapshot 3 (v1) taken on the peer; primary image sum {SUM} recorded there \
                 (check the peer's copy there: rcopyctl snapshot-verify r0 3)"
            )
        );
        let e = verify_report("r0", None, 5, Outcome::SumLost(3), t).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(e.to_string().starts_with("r0: snapshot 3 was taken"), "{e}");
        assert!(e.to_string().contains("cannot be verified"), "{e}");
        // A plain answer to a verify: the sum is missing.
        let e = verify_report("r0", None, 5, Outcome::Taken(3), t).unwrap_err();
        assert!(
            e.to_string().contains("without the primary's image sum"),
            "{e}"
        );
        let e = verify_report("r0", None, 5, Outcome::Refused(libc::ENODEV), t).unwrap_err();
        assert!(e.to_string().contains("no snapshot store"), "{e}");
        let e = verify_report("r0", None, 5, Outcome::Lost, t).unwrap_err();
        assert!(e.to_string().contains("dropped before it answered"), "{e}");
        let e = verify_report("r0", None, 9, Outcome::Pending, t).unwrap_err();
        assert!(
            e.to_string()
                .contains("no final answer after 600 s (ticket 9)"),
            "{e}"
        );
        assert!(e.to_string().contains("scan still running"), "{e}");
        // A plain snapshot whose answer carries a sum reports it too.
        assert!(report("r0", None, 5, Outcome::TakenSum(3, sum), t)
            .unwrap()
            .contains(SUM));
        assert!(report("r0", None, 5, Outcome::SumLost(3), t).is_err());
        // The poll stops at a sum answer.
        let mut answers = ["pending", "pending"].into_iter();
        let o = wait_result(Duration::from_secs(10), Duration::from_millis(1), || {
            Ok(answers
                .next()
                .map_or(format!("taken 3 sum {SUM}"), str::to_string))
        })
        .unwrap();
        assert_eq!(o, Outcome::TakenSum(3, sum));
    }

    #[test]
    fn polls_until_answered() {
        let mut answers = ["pending", "pending", "taken 7"].into_iter();
        let mut asked = 0;
        let o = wait_result(Duration::from_secs(10), Duration::from_millis(1), || {
            asked += 1;
            Ok(answers.next().unwrap_or("lost").to_string())
        })
        .unwrap();
        assert_eq!((o, asked), (Outcome::Taken(7), 3));
        let o = wait_result(Duration::ZERO, Duration::from_millis(1), || {
            Ok("refused 11".into())
        })
        .unwrap();
        assert_eq!(o, Outcome::Refused(11));
        // Times out: at least one question, one more at the deadline.
        let mut asked = 0;
        let t0 = Instant::now();
        let o = wait_result(
            Duration::from_millis(120),
            Duration::from_millis(50),
            || {
                asked += 1;
                Ok("pending".into())
            },
        )
        .unwrap();
        assert_eq!(o, Outcome::Pending);
        assert!(t0.elapsed() >= Duration::from_millis(120));
        assert!((3..=5).contains(&asked), "{asked}");
        let mut asked = 0;
        let o = wait_result(Duration::ZERO, Duration::from_millis(1), || {
            asked += 1;
            Ok("pending".into())
        })
        .unwrap();
        assert_eq!((o, asked), (Outcome::Pending, 1));
        // An error (or a strange answer) stops the wait.
        let e = wait_result(Duration::from_secs(10), Duration::from_millis(1), || {
            Err(Error::new("cannot read"))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "cannot read");
        let e = wait_result(Duration::from_secs(10), Duration::from_millis(1), || {
            Ok("what".into())
        })
        .unwrap_err();
        assert!(e.to_string().contains("unexpected answer"), "{e}");
    }

    #[test]
    fn reports() {
        let t = Duration::from_secs(60);
        assert_eq!(
            report("r0", Some("nightly"), 5, Outcome::Taken(3), t).unwrap(),
            "r0: snapshot 3 (nightly) taken on the peer"
        );
        assert_eq!(
            report("r0", None, 5, Outcome::Taken(4), t).unwrap(),
            "r0: snapshot 4 taken on the peer"
        );
        let e = report("r0", None, 5, Outcome::Refused(libc::ENODEV), t).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(e.to_string().contains("no snapshot store"), "{e}");
        let e = report("r0", None, 5, Outcome::Refused(libc::EAGAIN), t).unwrap_err();
        assert!(e.to_string().contains("not consistent"), "{e}");
        let e = report("r0", None, 5, Outcome::Refused(libc::ENOSPC), t).unwrap_err();
        assert!(e.to_string().contains("table is full"), "{e}");
        let e = report("r0", None, 5, Outcome::Refused(libc::EPERM), t).unwrap_err();
        assert!(e.to_string().contains("(errno 1)"), "{e}");
        let e = report("r0", Some("x"), 5, Outcome::Lost, t).unwrap_err();
        assert!(e.to_string().contains("dropped before it answered"), "{e}");
        let e = report("r0", None, 5, Outcome::Pending, t).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(
            e.to_string()
                .contains("no answer from the peer after 60 s (ticket 5)"),
            "{e}"
        );
        assert!(e.to_string().contains("snapshot-result 5"), "{e}");
    }

    #[test]
    fn point_reports() {
        let t = Duration::from_secs(60);
        assert_eq!(
            point_report("r0", 2, Outcome::Taken(7), t).unwrap(),
            "r0: consistency point 7 complete on the peer"
        );
        let e = point_report("r0", 2, Outcome::Refused(libc::ENODEV), t).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(e.to_string().contains("no snapshot store"), "{e}");
        let e = point_report("r0", 2, Outcome::Lost, t).unwrap_err();
        assert!(e.to_string().contains("or the one before"), "{e}");
        let e = point_report("r0", 2, Outcome::Pending, t).unwrap_err();
        assert!(e.to_string().contains("(ticket 2)"), "{e}");
    }

    #[test]
    fn durations_and_names() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "s", "1.5s", "-1", "10x", "1 s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration("1x").unwrap_err().contains("\"1x\""));
        assert_eq!(human_duration(Duration::from_millis(250)), "250 ms");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.500 s");
        assert!(parse_snapname("nightly-2026.11.30@01:00+x_y").is_ok());
        assert!(parse_snapname("").is_err());
        assert!(parse_snapname("a b").is_err());
        assert!(parse_snapname(&"x".repeat(33)).is_err());
        assert!(parse_snapname(&"x".repeat(32)).is_ok());
        assert!(parse_which("3").is_ok());
        assert!(parse_which("pre-resync").is_ok());
        assert!(parse_which("a/b").is_err());
        assert_eq!(device_name("r0", 3), "r0-snap-3");
        let t = snap_target(2097152, "254:48", 3);
        assert_eq!(create::table_line(&t), "0 2097152 rcopy-snap 254:48 3");
    }
}
