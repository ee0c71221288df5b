//! `rcopyctl remove`, `status`, `version` and `message`.

use rcopy_core::status::Status;

use crate::create::TARGET_TYPE;
use crate::dm_ioctl::{Control, TargetStatus};
use crate::error::{os_msg, Error};
use crate::kmsg::KmsgWatch;
use crate::{devnode, json, open_control, out, status_view};

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
    ctl.remove(name).map_err(|e| match e.raw_os_error() {
        Some(libc::EBUSY) => Error::new(format!("device {name} is in use (mounted or held open)")),
        _ => dev_error(name, "cannot remove", &e),
    })?;
    devnode::remove(name, info.dev);
    Ok(())
}

/// Runs `rcopyctl status`.
pub fn status(name: Option<&str>, as_json: bool) -> Result<(), Error> {
    let ctl = open_control()?;
    if let Some(name) = name {
        let t = rcopy_status(&ctl, name)
            .map_err(|e| dev_error(name, "cannot read status of", &e))?
            .ok_or_else(|| Error::new(format!("device {name} is not an rcopy device")))?;
        let s = Status::parse(&t.text)
            .map_err(|e| Error::new(format!("device {name}: {e}: {:?}", t.text)))?;
        if as_json {
            out(&status_view::json(name, &s));
        } else {
            out(status_view::human(name, &s).trim_end());
        }
        return Ok(());
    }

    let devices = ctl
        .list_devices()
        .map_err(|e| Error::new(format!("cannot list devices: {}", os_msg(&e))))?;
    let mut shown = Vec::new();
    let mut failed = None;
    for d in devices {
        let t = match rcopy_status(&ctl, &d.name) {
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
    if as_json {
        let items: Vec<String> = shown.iter().map(|(n, s)| status_view::json(n, s)).collect();
        out(&json::array(&items));
    } else if shown.is_empty() && failed.is_none() {
        out("no rcopy devices");
    } else {
        let blocks: Vec<String> = shown
            .iter()
            .map(|(n, s)| status_view::human(n, s))
            .collect();
        out(blocks.join("\n").trim_end());
    }
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
