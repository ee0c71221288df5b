//! Command-line syntax.

use clap::{Parser, Subcommand};

use crate::dm_ioctl::DM_NAME_LEN;
use crate::size::parse_size;

/// Set up and inspect rcopy replicated block devices.
#[derive(Debug, Parser)]
#[command(name = "rcopyctl", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an rcopy device over a data device and a metadata device.
    Create {
        /// Name of the new device (/dev/mapper/NAME).
        #[arg(value_parser = parse_name)]
        name: String,
        /// The data device.
        #[arg(long, value_name = "DEV")]
        data: String,
        /// The metadata device (superblock and dirty-track bitmap).
        #[arg(long, value_name = "DEV")]
        meta: String,
        /// Dirty-track unit: a power of two from 4K to 16M (bytes, or K/M).
        #[arg(long, value_name = "BYTES", value_parser = parse_size)]
        track_size: Option<u64>,
        /// Check everything and print the table line, but create nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove an rcopy device.
    Remove {
        /// Name of the device.
        #[arg(value_parser = parse_name)]
        name: String,
    },
    /// Show the status of one rcopy device, or of all of them.
    Status {
        /// Name of the device (default: every rcopy device).
        #[arg(value_parser = parse_name)]
        name: Option<String>,
        /// Print JSON: an object for NAME, else an array.
        #[arg(long)]
        json: bool,
    },
    /// Show rcopyctl's version and the kernel target's.
    Version,
    /// Send a message to the device's target (like `dmsetup message NAME 0 ...`).
    Message {
        /// Name of the device.
        #[arg(value_parser = parse_name)]
        name: String,
        /// The message and its arguments.
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        words: Vec<String>,
    },
}

/// Accepts a device-mapper device name.
pub fn parse_name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("device name is empty".into());
    }
    if s.len() >= DM_NAME_LEN {
        return Err(format!(
            "device name is too long (at most {} bytes)",
            DM_NAME_LEN - 1
        ));
    }
    if s.contains('/') || s.contains('\0') {
        return Err("device name cannot contain '/'".into());
    }
    if s == "control" || s == "." || s == ".." {
        return Err(format!("device name cannot be {s:?}"));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn names() {
        assert!(parse_name("r0").is_ok());
        assert!(parse_name("").is_err());
        assert!(parse_name("a/b").is_err());
        assert!(parse_name("control").is_err());
        assert!(parse_name(&"x".repeat(127)).is_ok());
        assert!(parse_name(&"x".repeat(128)).is_err());
    }

    #[test]
    fn parses_create() {
        let c = Cli::try_parse_from([
            "rcopyctl",
            "create",
            "r0",
            "--data",
            "/dev/vdb",
            "--meta",
            "/dev/vdc",
            "--track-size",
            "1M",
        ])
        .unwrap();
        match c.command {
            Command::Create {
                name,
                data,
                meta,
                track_size,
                dry_run,
            } => {
                assert!(!dry_run);
                assert_eq!(name, "r0");
                assert_eq!(data, "/dev/vdb");
                assert_eq!(meta, "/dev/vdc");
                assert_eq!(track_size, Some(1 << 20));
            }
            other => panic!("{other:?}"),
        }
        let e =
            Cli::try_parse_from(["rcopyctl", "create", "r0", "--data", "/dev/vdb"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = Cli::try_parse_from([
            "rcopyctl",
            "create",
            "r0",
            "--data",
            "a",
            "--meta",
            "b",
            "--track-size",
            "lots",
        ])
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn parses_others() {
        let c = Cli::try_parse_from(["rcopyctl", "status", "--json"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Status {
                name: None,
                json: true
            }
        ));
        let c = Cli::try_parse_from(["rcopyctl", "message", "r0", "stats_reset"]).unwrap();
        assert!(
            matches!(c.command, Command::Message { ref words, .. } if words == &["stats_reset"])
        );
        assert!(Cli::try_parse_from(["rcopyctl", "message", "r0"]).is_err());
        assert!(Cli::try_parse_from(["rcopyctl", "remove"]).is_err());
        assert!(Cli::try_parse_from(["rcopyctl", "version"]).is_ok());
    }
}
