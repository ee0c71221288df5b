//! One-line errors for the user.

use std::fmt;
use std::io;

/// A runtime error: printed as `rcopyctl: <message>`, exit code 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    pub fn new(msg: impl Into<String>) -> Error {
        Error(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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
}
