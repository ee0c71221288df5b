//! Reading the kernel's reason for a refusal from `/dev/kmsg`.
//!
//! Device-mapper ioctls only return an errno; the reason (for example
//! `device-mapper: table: 253:0: rcopy: Metadata device too small`) goes to
//! the kernel log. A [`KmsgWatch`] is started before the request and read
//! after a failure.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;

/// Watches `/dev/kmsg` from the moment it is started. Best effort: if the
/// log cannot be opened, it reports nothing.
pub struct KmsgWatch {
    file: Option<File>,
}

impl KmsgWatch {
    /// Opens `/dev/kmsg` non-blocking, positioned after the last record.
    pub fn start() -> KmsgWatch {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/kmsg")
            .ok()
            .and_then(|mut f| f.seek(SeekFrom::End(0)).ok().map(|_| f));
        KmsgWatch { file }
    }

    /// The message text of every record logged since [`KmsgWatch::start`]
    /// (or the last call), without the `prio,seq,time,flags;` prefix.
    pub fn new_records(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let Some(f) = self.file.as_mut() else {
            return out;
        };
        // One read returns one record; the buffer must hold a whole one.
        let mut buf = vec![0u8; 16 << 10];
        for _ in 0..10_000 {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Some(t) = record_text(&buf[..n]) {
                        out.push(t);
                    }
                }
                // EPIPE: records were overwritten; the next read goes on.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break, // EAGAIN: nothing more
            }
        }
        out
    }

    /// The device-mapper reasons logged since the start, see [`dm_reasons`].
    pub fn dm_reasons(&mut self, dev: Option<&str>) -> Vec<String> {
        dm_reasons(&self.new_records(), dev)
    }
}

/// The text of one `/dev/kmsg` record: after the first `;`, up to the first
/// newline (continuation lines hold key=value metadata).
pub fn record_text(rec: &[u8]) -> Option<String> {
    let semi = rec.iter().position(|&c| c == b';')?;
    let body = &rec[semi + 1..];
    let end = body.iter().position(|&c| c == b'\n').unwrap_or(body.len());
    Some(String::from_utf8_lossy(&body[..end]).into_owned())
}

/// Picks the device-mapper lines among `records` and shortens them to the
/// reason: `device-mapper: table: <dev>: rcopy: <reason>` gives `<reason>`,
/// `device-mapper: rcopy: <text>` gives `<text>`, any other device-mapper
/// line loses its `device-mapper: ` prefix. Table lines for another device
/// than `dev` (`major:minor`), and the generic follow-up lines that add
/// nothing, are dropped.
pub fn dm_reasons(records: &[String], dev: Option<&str>) -> Vec<String> {
    const NOISE: &[&str] = &[
        "ioctl: error adding target to table",
        "ioctl: unable to set up device queue for new table.",
    ];
    let mut out = Vec::new();
    for r in records {
        let Some(i) = r.find("device-mapper: ") else {
            continue;
        };
        let mut text = &r[i + "device-mapper: ".len()..];
        if NOISE.contains(&text) {
            continue;
        }
        if let Some(rest) = text.strip_prefix("table: ") {
            if let Some((d, reason)) = rest.split_once(": ") {
                if dev.is_some_and(|want| want != d) {
                    continue;
                }
                text = reason;
            }
        }
        if let Some(reason) = text.strip_prefix("rcopy: ") {
            text = reason;
        }
        out.push(strip_errno(text).to_string());
    }
    out
}

/// Drops the ` (-EINVAL)` that `dm_table_add_target` appends (`%pe`).
pub fn strip_errno(text: &str) -> &str {
    match text.rfind(" (-E") {
        Some(i)
            if text.ends_with(')')
                && text[i + 4..text.len() - 1]
                    .bytes()
                    .all(|c| c.is_ascii_uppercase()) =>
        {
            &text[..i]
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_prefix() {
        let r = b"3,712,5140900,-;device-mapper: table: 253:0: rcopy: Metadata device too small\n SUBSYSTEM=block\n";
        assert_eq!(
            record_text(r).unwrap(),
            "device-mapper: table: 253:0: rcopy: Metadata device too small"
        );
        assert_eq!(record_text(b"no separator"), None);
    }

    #[test]
    fn reasons() {
        let recs: Vec<String> = [
            "usb 1-1: new device",
            "device-mapper: table: 253:1: rcopy: Data and metadata devices must differ",
            "device-mapper: table: 253:0: rcopy: Data and metadata devices must differ (-EINVAL)",
            "device-mapper: ioctl: error adding target to table",
            "device-mapper: rcopy: unknown message: foo",
            "device-mapper: table: 253:0: linear: Device lookup failed",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            dm_reasons(&recs, Some("253:0")),
            vec![
                "Data and metadata devices must differ",
                "unknown message: foo",
                "linear: Device lookup failed"
            ]
        );
        assert_eq!(dm_reasons(&recs, None).len(), 4);
        assert_eq!(strip_errno("a (b)"), "a (b)");
        assert_eq!(strip_errno("x (-ENOMEM)"), "x");
        assert_eq!(strip_errno("x (-E1)"), "x (-E1)");
    }
}
