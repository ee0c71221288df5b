//! `rcopyctl`: set up and inspect rcopy device-mapper devices.

mod blockdev;
mod cli;
mod commands;
mod create;
mod devnode;
mod dm_ioctl;
mod error;
mod json;
mod kmsg;
mod meta;
mod size;
mod status_view;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use dm_ioctl::{Control, CONTROL_PATH};
use error::{os_msg, Error};

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

fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Create { dev, role, link } => create::run(&create::Request {
            dev: &dev,
            role: role.as_deref(),
            link: &link,
        }),
        Command::Pair { dev, role, link } => create::run(&create::Request {
            dev: &dev,
            role: Some(&role),
            link: &link,
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
            track_size,
            pair_id: pair_id.as_deref(),
            force,
        }),
        Command::InspectMd { meta, json } => meta::run_inspect(&meta, json),
        Command::Remove { name } => commands::remove(&name),
        Command::Status { name, json } => commands::status(name.as_deref(), json),
        Command::Wait {
            name,
            state,
            timeout,
        } => commands::wait(&name, state, timeout),
        Command::Version => commands::version(),
        Command::Message { name, words } => commands::message(&name, &words),
        Command::Suspend { name } => commands::message(&name, &["suspend".to_string()]),
        Command::Resume { name } => commands::message(&name, &["resume".to_string()]),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "rcopyctl: {e}");
            ExitCode::from(1)
        }
    }
}
