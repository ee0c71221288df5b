//! Presenting rcopy status lines: a readable block, or JSON.

use rcopy_core::status::Status;

use crate::json::{self, Value};
use crate::size::human_bytes;

/// Percentage `done / total` with one decimal, `None` when `total` is 0.
pub fn percent(done: u64, total: u64) -> Option<String> {
    if total == 0 {
        return None;
    }
    let tenths = (u128::from(done.min(total)) * 1000) / u128::from(total);
    Some(format!("{}.{}%", tenths / 10, tenths % 10))
}

/// Milliseconds as seconds with three decimals.
pub fn seconds(ms: u64) -> String {
    format!("{}.{:03} s", ms / 1000, ms % 1000)
}

/// The human-readable block for one device.
pub fn human(name: &str, s: &Status) -> String {
    let progress = match percent(s.sync_done, s.sync_total) {
        Some(p) => format!(
            "{p} ({} of {})",
            human_bytes(s.sync_done),
            human_bytes(s.sync_total)
        ),
        None => "-".to_string(),
    };
    let cache = if s.cache_max == 0 {
        format!("{} (no cache)", human_bytes(s.cache_used))
    } else {
        format!(
            "{} of {} ({})",
            human_bytes(s.cache_used),
            human_bytes(s.cache_max),
            percent(s.cache_used, s.cache_max).unwrap_or_default()
        )
    };
    let rows: [(&str, String); 13] = [
        ("state", s.state.as_str().to_string()),
        ("role", s.role.as_str().to_string()),
        ("mode", s.mode.as_str().to_string()),
        ("connection", s.conn.as_str().to_string()),
        ("peer", s.peer.as_str().to_string()),
        (
            "size",
            format!(
                "{} (tracks of {})",
                human_bytes(s.size),
                human_bytes(s.track_size)
            ),
        ),
        ("dirty", human_bytes(s.dirty_bytes)),
        ("cache fill", cache),
        ("progress", progress),
        (
            "sent/acked",
            format!(
                "{} / {}",
                human_bytes(s.sent_bytes),
                human_bytes(s.acked_bytes)
            ),
        ),
        (
            "lag",
            format!("{} ({})", seconds(s.lag_ms), human_bytes(s.lag_bytes)),
        ),
        (
            "I/O",
            format!(
                "{} reads, {} writes, {} flushes, {} discards, {} write-zeroes",
                s.reads, s.writes, s.flushes, s.discards, s.write_zeroes
            ),
        ),
        ("I/O errors", s.io_errors.to_string()),
    ];
    let mut out = format!("{name}:\n");
    for (label, value) in rows {
        out.push_str(&format!("  {:<12}{}\n", format!("{label}:"), value));
    }
    out
}

/// The JSON object for one device: `name` plus the raw status fields
/// (`cache_fill` split into `cache_used` and `cache_max`; no peer is null).
pub fn json(name: &str, s: &Status) -> String {
    let peer = if s.peer.is_none() {
        Value::Null
    } else {
        Value::Str(s.peer.as_str().to_string())
    };
    json::object(&[
        ("name", Value::Str(name.to_string())),
        ("state", Value::Str(s.state.as_str().into())),
        ("role", Value::Str(s.role.as_str().into())),
        ("mode", Value::Str(s.mode.as_str().into())),
        ("conn", Value::Str(s.conn.as_str().into())),
        ("peer", peer),
        ("track_size", Value::Num(s.track_size)),
        ("size", Value::Num(s.size)),
        ("dirty_bytes", Value::Num(s.dirty_bytes)),
        ("cache_used", Value::Num(s.cache_used)),
        ("cache_max", Value::Num(s.cache_max)),
        ("sync_done", Value::Num(s.sync_done)),
        ("sync_total", Value::Num(s.sync_total)),
        ("sent_bytes", Value::Num(s.sent_bytes)),
        ("acked_bytes", Value::Num(s.acked_bytes)),
        ("lag_ms", Value::Num(s.lag_ms)),
        ("lag_bytes", Value::Num(s.lag_bytes)),
        ("reads", Value::Num(s.reads)),
        ("writes", Value::Num(s.writes)),
        ("flushes", Value::Num(s.flushes)),
        ("discards", Value::Num(s.discards)),
        ("write_zeroes", Value::Num(s.write_zeroes)),
        ("io_errors", Value::Num(s.io_errors)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "state=copying role=primary mode=async conn=connected \
        peer=10.0.0.2:7788 track_size=65536 size=1073741824 dirty_bytes=131072 \
        cache_fill=1048576/67108864 sync_done=268435456 sync_total=1073741824 \
        sent_bytes=300000000 acked_bytes=299000000 lag_ms=1250 lag_bytes=4096 \
        reads=10 writes=20 flushes=3 discards=1 write_zeroes=0 io_errors=0";

    #[test]
    fn human_block() {
        let s = Status::parse(LINE).unwrap();
        let h = human("r0", &s);
        assert!(h.starts_with("r0:\n  state:      copying\n"), "{h}");
        assert!(h.contains("  connection: connected\n"), "{h}");
        assert!(h.contains("  peer:       10.0.0.2:7788\n"), "{h}");
        assert!(
            h.contains("  size:       1 GiB (tracks of 64 KiB)\n"),
            "{h}"
        );
        assert!(h.contains("  dirty:      128 KiB\n"), "{h}");
        assert!(h.contains("  cache fill: 1 MiB of 64 MiB (1.5%)\n"), "{h}");
        assert!(
            h.contains("  progress:   25.0% (256 MiB of 1 GiB)\n"),
            "{h}"
        );
        assert!(h.contains("  lag:        1.250 s (4 KiB)\n"), "{h}");
        assert!(h.contains("  I/O:        10 reads, 20 writes,"), "{h}");
    }

    #[test]
    fn idle_progress() {
        let mut s = Status::parse(LINE).unwrap();
        s.sync_total = 0;
        s.cache_max = 0;
        let h = human("r0", &s);
        assert!(h.contains("  progress:   -\n"), "{h}");
        assert!(h.contains("(no cache)"), "{h}");
    }

    #[test]
    fn json_object() {
        let s = Status::parse(LINE).unwrap();
        let j = json("r0", &s);
        assert!(
            j.starts_with("{\"name\": \"r0\", \"state\": \"copying\""),
            "{j}"
        );
        assert!(j.contains("\"peer\": \"10.0.0.2:7788\""), "{j}");
        assert!(
            j.contains("\"cache_used\": 1048576, \"cache_max\": 67108864"),
            "{j}"
        );
        assert!(j.ends_with("\"io_errors\": 0}"), "{j}");
        let mut s = s;
        s.peer = rcopy_core::status::Peer::NONE;
        assert!(json("r0", &s).contains("\"peer\": null"));
    }

    #[test]
    fn percents() {
        assert_eq!(percent(0, 0), None);
        assert_eq!(percent(1, 3).unwrap(), "33.3%");
        assert_eq!(percent(u64::MAX, u64::MAX).unwrap(), "100.0%");
        assert_eq!(seconds(5), "0.005 s");
    }
}
