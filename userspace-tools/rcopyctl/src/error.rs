//! One-line errors for the user, and the exit code each one gets.

use std::fmt;
use std::io;

/// What kind of failure an [`Error`] is; it decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The operation failed (a device is missing, the kernel refused): exit 1.
    Failure,
    /// The command line or a resource file is wrong: exit 2.
    Usage,
    /// `wait` gave up at its `--timeout`: exit 3.
    Timeout,
}

/// Exit status of a run that failed.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status of a usage error (bad flag, bad flag value, bad resource file).
pub const EXIT_USAGE: u8 = 2;
/// Exit status of `wait` when its `--timeout` passes.
pub const EXIT_TIMEOUT: u8 = 3;

/// An error: printed as `rcopyctl: <message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    msg: String,
    kind: Kind,
}

impl Error {
    /// An operational failure (exit 1).
    pub fn new(msg: impl Into<String>) -> Error {
        Error {
            msg: msg.into(),
            kind: Kind::Failure,
        }
    }

    /// A usage error (exit 2).
    pub fn usage(msg: impl Into<String>) -> Error {
        Error {
            msg: msg.into(),
            kind: Kind::Usage,
        }
    }

    /// A timeout (exit 3).
    pub fn timeout(msg: impl Into<String>) -> Error {
        Error {
            msg: msg.into(),
            kind: Kind::Timeout,
        }
    }

    /// An error already printed: same exit code, no message.
    pub fn reported(e: Error) -> Error {
        Error {
            msg: String::new(),
            kind: e.kind,
        }
    }

    /// The same error as a usage error.
    pub fn into_usage(mut self) -> Error {
        self.kind = Kind::Usage;
        self
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            Kind::Failure => EXIT_FAILURE,
            Kind::Usage => EXIT_USAGE,
            Kind::Timeout => EXIT_TIMEOUT,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

/// The OS's text for an I/O error, without Rust's " (os error N)" suffix.
pub fn os_msg(e: &io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_suffix() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(os_msg(&e), "No such file or directory");
        let e = io::Error::other("plain");
        assert_eq!(os_msg(&e), "plain");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(Error::new("x").exit_code(), 1);
        assert_eq!(Error::usage("x").exit_code(), 2);
        assert_eq!(Error::timeout("x").exit_code(), 3);
        assert_eq!(Error::new("x").into_usage().exit_code(), 2);
        assert_eq!(Error::usage("m").to_string(), "m");
    }
}
