//! `rcopyctl remove`, `status`, `wait`, `version` and `message`.

use std::time::{Duration, Instant};

use rcopy_core::status::{State, Status};

use crate::create::TARGET_TYPE;
use crate::dm_ioctl::{Control, TargetStatus};
use crate::error::{os_msg, Error};
use crate::kmsg::KmsgWatch;
use crate::{devnode, open_control, out, status_view};

/// Maps an errno from a per-device request to a message.
fn dev_error(name: &str, what: &str, e: &std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENXIO) => Error::new(format!("device {name} does not exist")),
        _ => Error::new(format!("{what} {name}: {}", os_msg(e))),
    }
}

/// The live table's rcopy target status, `Ok(None)` if the device has a
/// table of another type, or no table.
fn rcopy_status(ctl: &Control, name: &str) -> std::io::Result<Option<TargetStatus>> {
    let targets = ctl.table_status(name, false)?;
    Ok(targets.into_iter().find(|t| t.target_type == TARGET_TYPE))
}

/// The parsed status line of one rcopy device.
pub fn device_status(ctl: &Control, name: &str) -> Result<Status, Error> {
    let t = rcopy_status(ctl, name)
        .map_err(|e| dev_error(name, "cannot read status of", &e))?
        .ok_or_else(|| Error::new(format!("device {name} is not an rcopy device")))?;
    Status::parse(&t.text).map_err(|e| Error::new(format!("device {name}: {e}: {:?}", t.text)))
}

/// How often `rcopyctl wait` reads the status.
pub const WAIT_POLL: Duration = Duration::from_millis(200);

/// Runs `rcopyctl wait`.
pub fn wait(name: &str, want: State, timeout_secs: Option<u64>) -> Result<(), Error> {
    let ctl = open_control()?;
    wait_for(name, want, timeout_secs, WAIT_POLL, || {
        device_status(&ctl, name).map(|s| s.state)
    })
}

/// Calls `poll` every `every` until it returns `want` (`Ok`), fails (its
/// error), or `timeout_secs` have passed (`<name>: still <state> after N s`).
/// The state is always read at least once, and once more at the deadline.
pub fn wait_for(
    name: &str,
    want: State,
    timeout_secs: Option<u64>,
    every: Duration,
    mut poll: impl FnMut() -> Result<State, Error>,
) -> Result<(), Error> {
    let start = Instant::now();
    let deadline = timeout_secs.map(Duration::from_secs);
    loop {
        let state = poll()?;
        if state == want {
            return Ok(());
        }
        let nap = match deadline {
            Some(d) => {
                let left = d.saturating_sub(start.elapsed());
                if left.is_zero() {
                    return Err(Error::timeout(format!(
                        "{name}: still {state} after {} s",
                        timeout_secs.unwrap_or(0)
                    )));
                }
                every.min(left)
            }
            None => every,
        };
        std::thread::sleep(nap);
    }
}

/// Runs `rcopyctl remove`.
pub fn remove(name: &str) -> Result<(), Error> {
    let ctl = open_control()?;
    let info = ctl
        .info(name)
        .map_err(|e| dev_error(name, "cannot remove", &e))?;
    let targets = ctl
        .table_status(name, false)
        .map_err(|e| dev_error(name, "cannot remove", &e))?;
    if let Some(t) = targets.iter().find(|t| t.target_type != TARGET_TYPE) {
        return Err(Error::new(format!(
            "device {name} is not an rcopy device (target type {})",
            t.target_type
        )));
    }
    let udev = ctl.remove(name).map_err(|e| match e.raw_os_error() {
        Some(libc::EBUSY) => Error::new(format!("device {name} is in use (mounted or held open)")),
        _ => dev_error(name, "cannot remove", &e),
    })?;
    if let crate::udev::Outcome::Late(why) = udev {
        crate::err_line(&Error::new(format!("warning: {name}: {why}")));
    }
    devnode::remove(name, info.dev);
    Ok(())
}

/// How `rcopyctl status` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFormat {
    /// One line per device.
    Compact,
    /// The full block per device.
    Verbose,
    /// A JSON array.
    Json,
    /// Nothing: the exit code says how healthy the devices are.
    Check,
}

/// Exit code of `status --check` when the status cannot be read.
pub const CHECK_UNKNOWN: u8 = 4;

/// The parsed status of NAME, or of every rcopy device, and the last error
/// met (a device that could not be read).
pub fn collect(name: Option<&str>) -> (Vec<(String, Status)>, Option<Error>) {
    match open_control() {
        Ok(ctl) => collect_with(&ctl, name),
        Err(e) => (Vec::new(), Some(e)),
    }
}

/// [`collect`] on an open control node.
pub fn collect_with(ctl: &Control, name: Option<&str>) -> (Vec<(String, Status)>, Option<Error>) {
    if let Some(name) = name {
        return match device_status(ctl, name) {
            Ok(s) => (vec![(name.to_string(), s)], None),
            Err(e) => (Vec::new(), Some(e)),
        };
    }
    let devices = match ctl.list_devices() {
        Ok(d) => d,
        Err(e) => {
            return (
                Vec::new(),
                Some(Error::new(format!("cannot list devices: {}", os_msg(&e)))),
            )
        }
    };
    let mut shown = Vec::new();
    let mut failed = None;
    for d in devices {
        let t = match rcopy_status(ctl, &d.name) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            // Removed between the list and the query.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => continue,
            Err(e) => {
                failed = Some(dev_error(&d.name, "cannot read status of", &e));
                continue;
            }
        };
        match Status::parse(&t.text) {
            Ok(s) => shown.push((d.name, s)),
            Err(e) => failed = Some(Error::new(format!("device {}: {e}: {:?}", d.name, t.text))),
        }
    }
    (shown, failed)
}

/// Runs `rcopyctl status`; returns the exit code (for `--check`, the worst
/// health; else 0 or the error's).
pub fn status(name: Option<&str>, format: StatusFormat) -> Result<u8, Error> {
    let (shown, failed) = collect(name);
    match format {
        // Always an array, even when nothing could be read.
        StatusFormat::Json => out(&status_view::json_array(&shown)),
        StatusFormat::Check => {
            if failed.is_some() {
                return Ok(CHECK_UNKNOWN);
            }
            let worst = shown.iter().map(|(_, s)| status_view::health(s)).max();
            return Ok(worst.map_or(0, |h| h as u8));
        }
        StatusFormat::Compact | StatusFormat::Verbose => {
            if shown.is_empty() && failed.is_none() {
                out("no rcopy devices");
            } else if format == StatusFormat::Compact {
                for (n, s) in &shown {
                    out(&status_view::compact(n, s));
                    if let Some(a) = status_view::alert(s) {
                        out(&a);
                    }
                }
            } else {
                let blocks: Vec<String> = shown
                    .iter()
                    .map(|(n, s)| status_view::human(n, s))
                    .collect();
                if !blocks.is_empty() {
                    out(blocks.join("\n").trim_end());
                }
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(0),
    }
}

/// Runs `rcopyctl status --watch`: redraws the status every second.
pub fn watch(name: Option<&str>, verbose: bool) -> Result<(), Error> {
    loop {
        let (shown, failed) = collect(name);
        let mut screen = String::from("\x1b[H\x1b[2J");
        screen.push_str(&status_view::watch_screen(&shown, verbose));
        if let Some(e) = failed {
            screen.push_str(&format!("rcopyctl: {e}\n"));
        }
        out(screen.trim_end());
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Runs `rcopyctl metrics`. Prints the metrics of what could be read, then
/// fails if something could not.
pub fn metrics(name: Option<&str>) -> Result<(), Error> {
    let (shown, failed) = collect(name);
    let text = status_view::metrics(&shown);
    out(text.trim_end());
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Runs `rcopyctl version`.
pub fn version() -> Result<(), Error> {
    out(&format!("rcopyctl {}", env!("CARGO_PKG_VERSION")));
    let ctl = match Control::open() {
        Ok(c) => c,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            out("kernel target: not loaded (no device-mapper)");
            return Ok(());
        }
        Err(_) => open_control()?,
    };
    let versions = ctl
        .list_versions()
        .map_err(|e| Error::new(format!("cannot list kernel targets: {}", os_msg(&e))))?;
    match versions.iter().find(|v| v.name == TARGET_TYPE) {
        Some(v) => out(&format!(
            "kernel target: {} {}.{}.{}",
            v.name, v.version[0], v.version[1], v.version[2]
        )),
        None => out("kernel target: not loaded"),
    }
    Ok(())
}

/// Runs `rcopyctl message`: sends the words to the target at sector 0 and
/// prints the target's output, if any.
pub fn message(name: &str, words: &[String]) -> Result<(), Error> {
    let ctl = open_control()?;
    let info = ctl
        .info(name)
        .map_err(|e| dev_error(name, "cannot send a message to", &e))?;
    let dev_mm = format!("{}:{}", libc::major(info.dev), libc::minor(info.dev));
    let mut watch = KmsgWatch::start();
    match ctl.message(name, 0, words) {
        Ok(Some(text)) => {
            if !text.is_empty() {
                out(text.trim_end_matches('\n'));
            }
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => {
            let reasons = watch.dm_reasons(Some(&dev_mm));
            let why = if reasons.is_empty() {
                os_msg(&e)
            } else {
                reasons.join("; ")
            };
            Err(Error::new(format!(
                "message {:?} to {name} failed: {why}",
                words.join(" ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_reaches_the_state() {
        let mut seen = vec![State::Copying, State::Copying, State::Duplex].into_iter();
        let mut polls = 0;
        wait_for(
            "r0",
            State::Duplex,
            Some(60),
            Duration::from_millis(1),
            || {
                polls += 1;
                Ok(seen.next().unwrap_or(State::Suspended))
            },
        )
        .unwrap();
        assert_eq!(polls, 3);
        // No timeout: waits as long as it takes.
        let mut n = 0;
        wait_for("r0", State::Duplex, None, Duration::from_millis(1), || {
            n += 1;
            Ok(if n < 5 {
                State::Resyncing
            } else {
                State::Duplex
            })
        })
        .unwrap();
        assert_eq!(n, 5);
    }

    #[test]
    fn wait_times_out() {
        let mut polls = 0;
        let e = wait_for(
            "r0",
            State::Duplex,
            Some(0),
            Duration::from_millis(1),
            || {
                polls += 1;
                Ok(State::Copying)
            },
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "r0: still copying after 0 s");
        assert_eq!(polls, 1);
        let start = Instant::now();
        let e = wait_for(
            "r1",
            State::Duplex,
            Some(1),
            Duration::from_millis(200),
            || Ok(State::Suspended),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "r1: still suspended after 1 s");
        let took = start.elapsed();
        assert!(took >= Duration::from_secs(1), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }

    #[test]
    fn wait_stops_on_errors() {
        let e = wait_for("r0", State::Duplex, None, Duration::from_millis(1), || {
            Err(Error::new("device r0 does not exist"))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "device r0 does not exist");
    }
}
