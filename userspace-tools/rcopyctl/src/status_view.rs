//! Presenting rcopy status lines: a readable block, or JSON.

use rcopy_core::status::{Conn, Role, State, Status};

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

/// The progress of a running copy or resync: `25.0% (256 MiB of 1 GiB)`,
/// or `-` when none runs. The secondary does not count it: its primary's
/// status shows it.
pub fn progress(s: &Status) -> String {
    if !matches!(s.state, State::Copying | State::Resyncing) {
        return "-".to_string();
    }
    match percent(s.sync_done, s.sync_total) {
        Some(p) => format!(
            "{p} ({} of {})",
            human_bytes(s.sync_done),
            human_bytes(s.sync_total)
        ),
        None if s.role == Role::Secondary => "- (shown on the primary)".to_string(),
        None => "-".to_string(),
    }
}

/// The human-readable block for one device.
pub fn human(name: &str, s: &Status) -> String {
    let progress = progress(s);
    // A standalone device has no pair: its role and mode mean nothing.
    let standalone = s.state == State::Simplex && s.conn == Conn::Standalone;
    let (role, mode) = if standalone {
        ("- (standalone)", "-")
    } else {
        (s.role.as_str(), s.mode.as_str())
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
        ("role", role.to_string()),
        ("mode", mode.to_string()),
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
    fn progress_only_while_copying() {
        let mut s = Status::parse(LINE).unwrap();
        s.state = State::Resyncing;
        s.sync_done = 3 << 20;
        s.sync_total = 4 << 20;
        assert!(human("r0", &s).contains("  progress:   75.0% (3 MiB of 4 MiB)\n"));
        s.state = State::Duplex;
        let h = human("r0", &s);
        assert!(h.contains("  progress:   -\n"), "{h}");
        assert!(h.contains("  state:      duplex\n"), "{h}");
        assert!(h.contains("  role:       primary\n"), "{h}");
        assert!(h.contains("  mode:       async\n"), "{h}");
        assert!(h.contains("  sent/acked: 286.1 MiB / 285.1 MiB\n"), "{h}");
        // The secondary mirrors the primary's state but not its counters.
        s.state = State::Copying;
        s.role = Role::Secondary;
        s.sync_done = 0;
        s.sync_total = 0;
        let h = human("r0", &s);
        assert!(h.contains("  role:       secondary\n"), "{h}");
        assert!(
            h.contains("  progress:   - (shown on the primary)\n"),
            "{h}"
        );
    }

    #[test]
    fn standalone() {
        let line = "state=simplex role=primary mode=sync conn=standalone peer=- \
            track_size=65536 size=1073741824 dirty_bytes=0 cache_fill=0/0 sync_done=0 \
            sync_total=0 sent_bytes=0 acked_bytes=0 lag_ms=0 lag_bytes=0 reads=1 \
            writes=2 flushes=3 discards=4 write_zeroes=5 io_errors=6";
        let h = human("r1", &Status::parse(line).unwrap());
        assert!(h.contains("  state:      simplex\n"), "{h}");
        assert!(h.contains("  role:       - (standalone)\n"), "{h}");
        assert!(h.contains("  mode:       -\n"), "{h}");
        assert!(h.contains("  connection: standalone\n"), "{h}");
        assert!(h.contains("  peer:       -\n"), "{h}");
        let j = json("r1", &Status::parse(line).unwrap());
        assert!(
            j.contains("\"role\": \"primary\", \"mode\": \"sync\""),
            "{j}"
        );
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
