//! `rcopyctl up`, `down` and `adjust`: devices from resource files.

use crate::cli::ResourceArgs;
use crate::create::{self, redact_params, Request, TARGET_TYPE};
use crate::dm_ioctl::{Control, Target};
use crate::error::{os_msg, Error};
use crate::kmsg::KmsgWatch;
use crate::resource::{self, Resource};
use crate::{commands, devnode, open_control, out};

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

/// The `role` option of table parameters (`None`: standalone).
pub fn role_of(params: &str) -> Option<String> {
    options(params)
        .into_iter()
        .rev()
        .find(|(k, _)| k == "role")
        .map(|(_, v)| v)
}

/// Refuses a reload that changes the role of a running pair: that is a
/// takeover (or an unpairing), which has its own commands and checks.
/// Giving a standalone device a role (pairing it again) is fine.
pub fn check_role_change(name: &str, live: &str, want: &str) -> Result<(), Error> {
    match (role_of(live), role_of(want)) {
        (Some(a), Some(b)) if a != b => {
            let how = if a == "primary" {
                format!("rcopyctl demote {name} (or rcopyctl switchover {name})")
            } else {
                format!("rcopyctl promote {name}")
            };
            Err(Error::new(format!(
                "{name} runs as {a} but its resource file gives this host role {b}: a role \
                 change is a takeover: run {how}, or fix the resource file"
            )))
        }
        (Some(a), None) => Err(Error::new(format!(
            "{name} runs as {a} but its resource file gives this host no role: to make it \
             a standalone device run rcopyctl unpair {name}"
        ))),
        _ => Ok(()),
    }
}

/// The differences between a live table's parameters and the wanted ones,
/// as `key old -> new` (secrets shown as `-`); empty if they are the same.
/// A live secret shown as `-` (a kernel that hides it) counts as unchanged,
/// and so does an address the wanted role does not use and does not give
/// (the peer of a secondary, the local address of a primary), which a
/// `promote` or `demote` keeps in the table.
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
    let want_role = role_of(want);
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
        let unused = match want_role.as_deref() {
            Some("primary") => "local",
            Some("secondary") => "peer",
            _ => "",
        };
        if k == unused && b.is_none() {
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
            origin: Some(&r.path),
        },
        !live,
    )
    .map_err(|e| {
        let code = e.exit_code();
        let msg = e.to_string();
        let e2 = if msg.starts_with(&format!("{}: ", r.path)) {
            Error::new(msg)
        } else {
            Error::new(format!("{}: {msg}", r.path))
        };
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
    let resumed = ctl.resume(name).map_err(|e| {
        let why = create::reason(&watch.dm_reasons(Some(&dev_mm)), &e);
        Error::new(format!("cannot reload {name}: resume failed: {why}"))
    })?;
    devnode::settle(name, resumed.dev, &resumed.udev)
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
    if !changes.is_empty() {
        check_role_change(name, &live, &target.params)?;
    }
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
    fn role_changes_are_refused() {
        let pri = "254:0 254:16 6 role primary peer 10.77.0.2:7788 secret k";
        let sec = "254:0 254:16 6 role secondary local 10.77.0.1:7788 secret k";
        let simplex = "254:0 254:16";
        assert_eq!(role_of(pri).as_deref(), Some("primary"));
        assert_eq!(role_of(simplex), None);
        assert!(check_role_change("r0", pri, pri).is_ok());
        // Pairing a standalone device again is fine.
        assert!(check_role_change("r0", simplex, sec).is_ok());
        assert!(check_role_change("r0", simplex, simplex).is_ok());
        let e = check_role_change("r0", pri, sec).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert_eq!(
            e.to_string(),
            "r0 runs as primary but its resource file gives this host role secondary: a role \
             change is a takeover: run rcopyctl demote r0 (or rcopyctl switchover r0), or fix \
             the resource file"
        );
        let e = check_role_change("r0", sec, pri).unwrap_err();
        assert!(e.to_string().contains("run rcopyctl promote r0, or"), "{e}");
        let e = check_role_change("r0", sec, simplex).unwrap_err();
        assert_eq!(
            e.to_string(),
            "r0 runs as secondary but its resource file gives this host no role: to make it a \
             standalone device run rcopyctl unpair r0"
        );
    }

    #[test]
    fn kept_addresses_are_no_change() {
        // After a promote the table keeps the address it listened on; the
        // resource file of the new primary gives only its peer.
        let promoted =
            "254:0 254:16 8 role primary peer 10.77.0.1:7788 local 10.77.0.2:7788 secret k";
        let file = "254:0 254:16 6 role primary peer 10.77.0.1:7788 secret k";
        assert!(diff(promoted, file).is_empty());
        let demoted =
            "254:0 254:16 8 role secondary peer 10.77.0.2:7788 local 10.77.0.1:7788 secret k";
        let file = "254:0 254:16 6 role secondary local 10.77.0.1:7788 secret k";
        assert!(diff(demoted, file).is_empty());
        // An address the file gives is compared, used or not.
        let file2 =
            "254:0 254:16 8 role secondary peer 10.77.0.9:7788 local 10.77.0.1:7788 secret k";
        assert_eq!(
            diff(demoted, file2),
            vec!["peer 10.77.0.2:7788 -> 10.77.0.9:7788"]
        );
        // The one the role uses is always compared.
        assert_eq!(
            diff(demoted, "254:0 254:16 6 role secondary secret k"),
            vec!["local 10.77.0.1:7788 -> (default)"]
        );
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
