//! `rcopyctl`: set up and inspect rcopy device-mapper devices.

mod addr;
mod blockdev;
mod cli;
mod commands;
mod create;
mod devnode;
mod dm_ioctl;
mod error;
mod events;
mod generate;
mod json;
mod kmsg;
mod meta;
mod operate;
mod resource;
mod signature;
mod size;
mod snap;
mod snaplist;
mod snapverify;
mod split;
mod splitdev;
mod splitview;
mod status_view;
mod store;
mod suggest;
mod takeover;
#[cfg(test)]
mod testfile;
mod udev;

/// The bad-value table of the `bad_values` test, for the unit test that
/// checks it covers every argument (see `cli`).
#[cfg(test)]
#[allow(dead_code)]
#[path = "../tests/bad_values/cases.rs"]
mod bad_value_cases;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use commands::StatusFormat;
use dm_ioctl::{Control, CONTROL_PATH};
use error::{os_msg, Error};
use operate::Action;

/// Opens the device-mapper control node, with a hint when that fails.
pub fn open_control() -> Result<Control, Error> {
    Control::open().map_err(|e| {
        Error::new(format!(
            "cannot open {CONTROL_PATH}: {} (is device-mapper loaded? are you root?)",
            os_msg(&e)
        ))
    })
}

/// Prints a line to stdout; a closed pipe is not an error worth a panic.
pub fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{s}");
}

/// Prints an error as `rcopyctl: <message>` to stderr (nothing for an
/// error already reported).
pub fn err_line(e: &Error) {
    let msg = e.to_string();
    if !msg.is_empty() {
        let _ = writeln!(std::io::stderr(), "rcopyctl: {msg}");
    }
}

/// Runs the command; `Ok` holds the exit code of a run that did not fail
/// (0, or the health code of `status --check`).
fn run(cli: Cli) -> Result<u8, Error> {
    match cli.command {
        Command::Create { dev, role, link } => create::run(&create::Request {
            dev: &dev,
            role: role.as_deref(),
            link: &link,
            origin: None,
        }),
        Command::Pair { dev, role, link } => create::run(&create::Request {
            dev: &dev,
            role: Some(&role),
            link: &link,
            origin: None,
        }),
        Command::CreateMd {
            meta,
            data,
            track_size,
            pair_id,
            force,
        } => meta::run_create(&meta::CreateRequest {
            meta: &meta,
            data: &data,
            track_size: track_size.as_ref(),
            pair_id: pair_id.as_deref(),
            force,
        }),
        Command::InspectMd { meta, json } => meta::run_inspect(&meta, json),
        Command::CreateStore {
            store,
            data,
            size,
            track_size,
            pair_id,
            force,
        } => store::run_create(&store::CreateRequest {
            store: &store,
            data: data.as_deref(),
            size: size.as_ref(),
            track_size: track_size.as_ref(),
            pair_id: pair_id.as_deref(),
            force,
        }),
        Command::InspectStore { store, json } => store::run_inspect(&store, json),
        Command::Remove { name } => commands::remove(&name),
        Command::Status {
            name,
            json,
            verbose,
            check,
            watch,
        } => {
            if watch {
                return commands::watch(name.as_deref(), verbose).map(|()| 0);
            }
            let format = if check {
                StatusFormat::Check
            } else if json {
                StatusFormat::Json
            } else if verbose {
                StatusFormat::Verbose
            } else {
                StatusFormat::Compact
            };
            return commands::status(name.as_deref(), format);
        }
        Command::Metrics { name } => commands::metrics(name.as_deref()),
        Command::Events { name, json, now } => events::run(name.as_deref(), json, now),
        Command::Up(a) => operate::run(Action::Up, &a),
        Command::Down(a) => operate::run(Action::Down, &a),
        Command::Adjust(a) => operate::run(Action::Adjust, &a),
        Command::Wait {
            name,
            state,
            timeout,
        } => commands::wait(&name, state, timeout),
        Command::Version => commands::version(),
        Command::Message { name, words } => commands::message(&name, &words),
        Command::Promote {
            name,
            force,
            rollback,
            peer,
            files,
        } => takeover::promote(
            &name,
            force,
            rollback.as_ref().map(Option::as_deref),
            peer.as_deref(),
            &files,
        ),
        Command::Snapshot {
            name,
            snapname,
            timeout,
            verify,
        } => snap::take(&name, snapname.as_deref(), timeout, verify),
        Command::Snapshots { name, json } => snap::list(&name, json),
        Command::Mark { name, timeout } => snap::mark(&name, timeout),
        Command::SnapshotDelete { name, snapshot } => snap::delete(&name, &snapshot),
        Command::SnapshotActivate {
            name,
            snapshot,
            device,
        } => snap::activate(&name, &snapshot, device.as_deref()),
        Command::SnapshotDeactivate { device } => snap::deactivate(&device),
        Command::SnapshotRollback { name, snapshot } => snap::rollback(&name, &snapshot),
        Command::Split { name, wait } => split::run(&name, split::Ask::Split, wait),
        Command::Rejoin { name, wait } => split::run(&name, split::Ask::Rejoin, wait),
        Command::Refresh {
            name,
            offset,
            length,
            wait,
        } => split::run(
            &name,
            split::Ask::Refresh {
                offset: &offset,
                length: &length,
            },
            wait,
        ),
        Command::SnapshotVerify {
            name,
            snapshot,
            sum_only,
        } => snapverify::run(&name, &snapshot, sum_only),
        Command::Demote {
            name,
            local,
            no_handover,
            files,
        } => takeover::demote(&name, local.as_deref(), no_handover, &files),
        Command::Switchover { name, local, files } => {
            takeover::switchover(&name, local.as_deref(), &files)
        }
        Command::Resolve {
            name,
            keep_local,
            discard_local,
            cancel: _,
            force,
        } => {
            let how = if keep_local {
                takeover::Resolution::KeepLocal
            } else if discard_local {
                takeover::Resolution::DiscardLocal
            } else {
                takeover::Resolution::Cancel
            };
            takeover::resolve(&name, how, force)
        }
        Command::Unpair { name, force } => takeover::unpair(&name, force),
        Command::Disconnect { name } => commands::message(&name, &["suspend".to_string()]),
        Command::Connect { name } => commands::message(&name, &["resume".to_string()]),
    }
    .map(|()| 0)
}

fn main() -> ExitCode {
    // Clap prints its own usage errors and exits 2.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let result = if generate::wanted(&args) {
        generate::run(generate::GenCli::parse_from(args).command).map(|()| 0)
    } else {
        run(Cli::parse_from(args))
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            err_line(&e);
            ExitCode::from(e.exit_code())
        }
    }
}
