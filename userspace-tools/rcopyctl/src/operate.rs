//! `rcopyctl up`, `down` and `adjust`: devices from resource files.

use crate::cli::ResourceArgs;
use crate::create::{self, redact_params, Request, TARGET_TYPE};
use crate::dm_ioctl::{Control, Target};
use crate::error::{os_msg, Error};
use crate::kmsg::KmsgWatch;
use crate::resource::{self, Resource};
use crate::{commands, open_control, out};

/// What to do with one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Up,
    Down,
    Adjust,
}

/// The option words of a table's parameters (after the two devices and
/// `#opt_args`), as `(name, value)` pairs.
pub fn options(params: &str) -> Vec<(String, String)> {
    let w: Vec<&str> = params.split_ascii_whitespace().collect();
    w.get(3..)
        .unwrap_or(&[])
        .chunks(2)
        .map(|c| {
            (
                c[0].to_string(),
                c.get(1).copied().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The differences between a live table's parameters and the wanted ones,
/// as `key old -> new` (secrets shown as `-`); empty if they are the same.
/// A live secret shown as `-` (a kernel that hides it) counts as unchanged.
pub fn diff(live: &str, want: &str) -> Vec<String> {
    let lw: Vec<&str> = live.split_ascii_whitespace().collect();
    let ww: Vec<&str> = want.split_ascii_whitespace().collect();
    let mut out = Vec::new();
    for (i, what) in ["data device", "metadata device"].iter().enumerate() {
        if lw.get(i) != ww.get(i) {
            out.push(format!(
                "{what} {} -> {}",
                lw.get(i).unwrap_or(&"-"),
                ww.get(i).unwrap_or(&"-")
            ));
        }
    }
    let lo = options(live);
    let wo = options(want);
    let get =
        |o: &[(String, String)], k: &str| o.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut keys: Vec<String> = lo.iter().chain(wo.iter()).map(|(k, _)| k.clone()).collect();
    keys.dedup();
    let mut seen = Vec::new();
    for k in keys {
        if seen.contains(&k) {
            continue;
        }
        seen.push(k.clone());
        let (a, b) = (get(&lo, &k), get(&wo, &k));
        if a == b || (k == "secret" && a.as_deref() == Some("-")) {
            continue;
        }
        let show = |v: Option<String>| match v {
            None => "(default)".to_string(),
            Some(_) if k == "secret" => "-".to_string(),
            Some(v) => v,
        };
        out.push(format!("{k} {} -> {}", show(a), show(b)));
    }
    out
}

/// The live rcopy table parameters of `name`; `None` if no such device.
fn live_params(ctl: &Control, name: &str) -> Result<Option<String>, Error> {
    match ctl.table_status(name, true) {
        Ok(t) => match t.into_iter().find(|t| t.target_type == TARGET_TYPE) {
            Some(t) => Ok(Some(t.text)),
            None => Err(Error::new(format!(
                "device {name} exists but is not an rcopy device"
            ))),
        },
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(None),
        Err(e) => Err(Error::new(format!(
            "cannot read the table of {name}: {}",
            os_msg(&e)
        ))),
    }
}

/// The target this host's section of `r` asks for. `live`: the device is
/// up, so its devices are held by its own table (not checked for exclusive
/// use).
fn wanted(r: &Resource, host: &str, live: bool) -> Result<Target, Error> {
    let (dev, role, link) = r.args_for(host)?;
    create::prepare_with(
        &Request {
            dev: &dev,
            role: role.as_deref(),
            link: &link,
        },
        !live,
    )
    .map_err(|e| {
        let code = e.exit_code();
        let e2 = Error::new(format!("{}: {e}", r.path));
        if code == 2 {
            e2.into_usage()
        } else {
            e2
        }
    })
}

/// Loads `target` into `name`'s inactive slot and swaps it in (suspend,
/// resume), as `dmsetup reload` + `dmsetup suspend` + `dmsetup resume`.
fn reload(ctl: &Control, name: &str, target: &Target) -> Result<(), Error> {
    let info = ctl
        .info(name)
        .map_err(|e| Error::new(format!("cannot reload {name}: {}", os_msg(&e))))?;
    let dev_mm = format!("{}:{}", libc::major(info.dev), libc::minor(info.dev));
    let mut watch = KmsgWatch::start();
    ctl.load_table(name, std::slice::from_ref(target))
        .map_err(|e| {
            let why = create::reason(&watch.dm_reasons(Some(&dev_mm)), &e);
            Error::new(format!(
                "cannot reload {name}: the new table was refused: {why}"
            ))
        })?;
    ctl.suspend(name).map_err(|e| {
        Error::new(format!(
            "cannot reload {name}: suspend failed: {}",
            os_msg(&e)
        ))
    })?;
    ctl.resume(name).map_err(|e| {
        let why = create::reason(&watch.dm_reasons(Some(&dev_mm)), &e);
        Error::new(format!("cannot reload {name}: resume failed: {why}"))
    })
}

/// Acts on one resource; prints one line saying what was done.
fn one(action: Action, r: &Resource, host: &str, dry_run: bool) -> Result<(), Error> {
    let name = r.name.as_str();
    if action == Action::Down {
        // Only the name is needed: a device is taken down even if its
        // resource file no longer matches it.
        let ctl = open_control()?;
        if live_params(&ctl, name)?.is_none() {
            out(&format!("{name}: already down"));
            return Ok(());
        }
        if dry_run {
            out(&format!("{name}: would remove"));
            return Ok(());
        }
        commands::remove(name)?;
        out(&format!("{name}: down"));
        return Ok(());
    }
    // The file is checked before device-mapper is needed.
    r.args_for(host)?;
    let ctl = open_control()?;
    let live = live_params(&ctl, name)?;
    let target = wanted(r, host, live.is_some())?;
    let Some(live) = live else {
        if dry_run {
            out(&format!(
                "{name}: would create: {}",
                create::redacted_line(&target)
            ));
            return Ok(());
        }
        create::activate(&ctl, name, &target)?;
        out(&format!("{name}: up"));
        return Ok(());
    };
    let changes = diff(&live, &target.params);
    if changes.is_empty() {
        out(&format!(
            "{name}: {}",
            if action == Action::Up {
                "already up"
            } else {
                "unchanged"
            }
        ));
        return Ok(());
    }
    if action == Action::Up {
        return Err(Error::new(format!(
            "{name} is up with another table ({}): run rcopyctl adjust {name}",
            changes.join(", ")
        )));
    }
    if dry_run {
        out(&format!(
            "{name}: would reload: {} ({})",
            redact_params(&target.params),
            changes.join(", ")
        ));
        return Ok(());
    }
    reload(&ctl, name, &target)?;
    out(&format!("{name}: reloaded ({})", changes.join(", ")));
    Ok(())
}

/// Runs `up`, `down` or `adjust` over the resources named (or all of them);
/// goes on after a failure and returns the last error.
pub fn run(action: Action, a: &ResourceArgs) -> Result<(), Error> {
    let names = if a.all {
        resource::list(&a.config_dir)?
    } else {
        a.names.clone()
    };
    if names.is_empty() {
        return Err(Error::new(format!(
            "no resource files (*.toml) in {}",
            a.config_dir
        )));
    }
    let host = a.host.clone().unwrap_or_else(resource::hostname);
    let mut last = None;
    for n in &names {
        let r = resource::load(&a.config_dir, n).and_then(|r| one(action, &r, &host, a.dry_run));
        if let Err(e) = r {
            crate::err_line(&e);
            last = Some(e);
        }
    }
    match last {
        // Already printed.
        Some(e) => Err(crate::error::Error::reported(e)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_words() {
        assert_eq!(
            options("254:0 254:16 4 role primary peer 10.0.0.2:1"),
            vec![
                ("role".to_string(), "primary".to_string()),
                ("peer".to_string(), "10.0.0.2:1".to_string())
            ]
        );
        assert!(options("254:0 254:16").is_empty());
    }

    #[test]
    fn diffs() {
        let live = "254:0 254:16 6 role primary peer 10.77.0.2:7788 secret k";
        assert!(diff(live, live).is_empty());
        assert_eq!(
            diff(
                live,
                "254:0 254:16 8 role primary peer 10.77.0.2:7788 secret k resync_rate 1048576"
            ),
            vec!["resync_rate (default) -> 1048576"]
        );
        assert_eq!(
            diff(
                live,
                "254:0 254:16 6 role primary peer 10.77.0.2:7788 secret other"
            ),
            vec!["secret - -> -"]
        );
        // A kernel that shows the secret as `-`: not a change.
        assert!(diff(
            "254:0 254:16 6 role primary peer 10.77.0.2:7788 secret -",
            live
        )
        .is_empty());
        assert_eq!(
            diff(
                live,
                "254:0 254:32 6 role primary peer 10.77.0.3:7788 secret k"
            ),
            vec![
                "metadata device 254:16 -> 254:32",
                "peer 10.77.0.2:7788 -> 10.77.0.3:7788"
            ]
        );
    }
}
