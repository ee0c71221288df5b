//! Presenting rcopy status lines: a readable block, or JSON.

use rcopy_core::gens::Decision;
use rcopy_core::status::{Conn, DevError, Role, State, Status};

use crate::json::{self, Value};
use crate::size::{human_bytes, human_secs};

/// Version of the `status --json` object layout. 2: every key of the core's
/// status line (`consistent`, `sync_rate`, `eta_s` added), `schema_version`.
pub const JSON_SCHEMA_VERSION: u64 = 2;

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
            "{p} ({} of {}){}",
            human_bytes(s.sync_done),
            human_bytes(s.sync_total),
            rate_eta(s)
        ),
        None if s.role == Role::Secondary => "- (shown on the primary)".to_string(),
        None => "-".to_string(),
    }
}

/// `, 10 MiB/s, ETA 1m20s` while a copy or resync has a rate; else nothing.
fn rate_eta(s: &Status) -> String {
    if s.sync_rate == 0 {
        return String::new();
    }
    format!(
        ", {}/s, ETA {}",
        human_bytes(s.sync_rate),
        human_secs(s.eta_s)
    )
}

fn compact_bytes(n: u64) -> String {
    human_bytes(n).replace(' ', "")
}

/// One line for one device, as `drbdadm status` prints: `name` then
/// `key:value` words.
pub fn compact(name: &str, s: &Status) -> String {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let standalone = s.state == State::Simplex && s.conn == Conn::Standalone;
    let mut w = vec![name.to_string()];
    if standalone {
        w.push("standalone".into());
        w.push(format!("state:{}", s.state));
    } else {
        w.push(format!("role:{}", s.role));
        w.push(format!("mode:{}", s.mode));
        w.push(format!("state:{}", s.state));
        w.push(format!("conn:{}", s.conn));
        w.push(format!("peer:{}", s.peer));
    }
    w.push(format!("consistent:{}", yes_no(s.consistent)));
    if !standalone {
        w.push(format!("dirty:{}", compact_bytes(s.dirty_bytes)));
        w.push(format!("lag:{}ms", s.lag_ms));
    }
    if matches!(s.state, State::Copying | State::Resyncing) {
        if let Some(p) = percent(s.sync_done, s.sync_total) {
            w.push(format!("progress:{p}"));
        }
        if s.sync_rate > 0 {
            w.push(format!("rate:{}/s", compact_bytes(s.sync_rate)));
            w.push(format!("eta:{}", human_secs(s.eta_s)));
        }
    }
    w.extend(crate::splitview::compact_words(s));
    if s.io_errors > 0 {
        w.push(format!("io_errors:{}", s.io_errors));
    }
    if s.error != DevError::None {
        w.push(format!("error:{}", s.error.as_str()));
    }
    if let Some(d) = refusal(s) {
        w.push(format!("decision:{}", d.as_str()));
    }
    w.join(" ")
}

/// The handshake refusal the device reports (`decision` split-brain,
/// stale-primary or unrelated), if any.
pub fn refusal(s: &Status) -> Option<Decision> {
    s.decision.filter(|d| !d.proceeds())
}

/// The headline of a refusal.
pub fn refusal_title(d: Decision) -> &'static str {
    match d {
        Decision::SplitBrain => "SPLIT BRAIN",
        Decision::StalePrimary => "STALE PRIMARY",
        Decision::Unrelated => "UNRELATED DATA",
        Decision::Bitmap | Decision::FullCopy => "",
    }
}

/// The alert line printed under a device whose last handshake was refused:
/// `  SPLIT BRAIN: <what to do>`; `None` when there is no refusal.
pub fn alert(s: &Status) -> Option<String> {
    let d = refusal(s)?;
    Some(format!(
        "  {}: the connection was refused: {} (the primary retries every few seconds)",
        refusal_title(d),
        d.advice()
    ))
}

/// What `decision` means, for the verbose view.
pub fn decision_text(d: Option<Decision>) -> String {
    match d {
        None => "- (no handshake yet)".to_string(),
        Some(Decision::Bitmap) => "bitmap (only the marked tracks are copied)".to_string(),
        Some(Decision::FullCopy) => "full (every track is copied)".to_string(),
        Some(d) => format!("{} (refused: {})", d.as_str(), d.advice()),
    }
}

/// A progress bar `[#####...............]` of `width` cells.
pub fn bar(done: u64, total: u64, width: usize) -> String {
    let filled = if total == 0 {
        0
    } else {
        let f = u128::from(done.min(total)) * width as u128 / u128::from(total);
        f as usize
    };
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

/// What `status --watch` draws: per device its line (or block), and during
/// a copy or resync a bar with the percentage, rate and ETA.
pub fn watch_screen(devices: &[(String, Status)], verbose: bool) -> String {
    if devices.is_empty() {
        return "no rcopy devices\n".to_string();
    }
    let mut out = String::new();
    for (n, s) in devices {
        if verbose {
            out.push_str(&human(n, s));
        } else {
            out.push_str(&compact(n, s));
            out.push('\n');
            if let Some(a) = alert(s) {
                out.push_str(&a);
                out.push('\n');
            }
        }
        if matches!(s.state, State::Copying | State::Resyncing) && s.sync_total > 0 {
            out.push_str(&format!(
                "  {} {} {}/s ETA {}\n",
                bar(s.sync_done, s.sync_total, 40),
                percent(s.sync_done, s.sync_total).unwrap_or_default(),
                human_bytes(s.sync_rate),
                if s.sync_rate == 0 {
                    "-".to_string()
                } else {
                    human_secs(s.eta_s)
                }
            ));
        }
    }
    out
}

/// How healthy a device is, for `status --check` (mdadm `--test` style).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    /// In sync and connected, or a standalone device without I/O errors.
    Healthy = 0,
    /// Usable but without a current copy on the peer: disconnected,
    /// connecting, copying or resyncing.
    Degraded = 1,
    /// This side's data is not a usable image, I/O errors were seen, the
    /// device reports a sticky error (`error` not `none`), or the last
    /// handshake was refused (split brain, stale primary, unrelated data).
    Failed = 2,
}

/// Classifies one device.
pub fn health(s: &Status) -> Health {
    if !s.consistent || s.io_errors > 0 || s.error != DevError::None || refusal(s).is_some() {
        return Health::Failed;
    }
    if s.state == State::Simplex && s.conn == Conn::Standalone {
        return Health::Healthy;
    }
    if s.state == State::Duplex && s.conn == Conn::Connected {
        return Health::Healthy;
    }
    Health::Degraded
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
    let rows: [(&str, String); 14] = [
        ("state", s.state.as_str().to_string()),
        (
            "consistent",
            if s.consistent {
                "yes".to_string()
            } else {
                "no (not a usable image until the copy or resync ends)".to_string()
            },
        ),
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
    if let Some(a) = alert(s) {
        out.push_str(&a);
        out.push('\n');
    }
    let pair_rows: [(&str, String); 3] = if standalone {
        [
            ("decision", "-".to_string()),
            ("generation", "-".to_string()),
            ("peer marks", "-".to_string()),
        ]
    } else {
        [
            ("decision", decision_text(s.decision)),
            ("generation", format!("{:016x}", s.gen)),
            (
                "peer marks",
                format!(
                    "{} tracks (the peer's bitmap, added at the last handshake)",
                    s.peer_tracks
                ),
            ),
        ]
    };
    let split_rows = crate::splitview::human_rows(s);
    for (label, value) in rows.into_iter().chain(pair_rows).chain(split_rows) {
        out.push_str(&format!("  {:<12}{}\n", format!("{label}:"), value));
    }
    out
}

/// The JSON object for one device: `schema_version`, `name`, then every key
/// of the status line as the core writes it (so a key added to the core
/// appears here without a change), in line order: numbers as numbers,
/// `consistent` as a boolean, `gen` a string of 16 hex digits, `peer` null
/// for `-`, `cache_fill` split into
/// `cache_used` and `cache_max`.
pub fn json(name: &str, s: &Status) -> String {
    let mut line = String::new();
    // Writing to a String cannot fail.
    let _ = s.write(&mut line);
    let mut fields: Vec<(String, Value)> = vec![
        ("schema_version".into(), Value::Num(JSON_SCHEMA_VERSION)),
        ("name".into(), Value::Str(name.to_string())),
    ];
    for (k, v) in rcopy_core::status::parse_kv(&line) {
        match k {
            "cache_fill" => {
                let (u, m) = v.split_once('/').unwrap_or((v, "0"));
                fields.push(("cache_used".into(), json_word(u)));
                fields.push(("cache_max".into(), json_word(m)));
            }
            "peer" if v == "-" => fields.push((k.into(), Value::Null)),
            "consistent" => fields.push((k.into(), Value::Bool(v == "yes"))),
            // 16 hex digits, as inspect-md shows generations: never a number.
            "gen" => fields.push((k.into(), Value::Str(v.to_string()))),
            _ => fields.push((k.into(), json_word(v))),
        }
    }
    json::object(&fields)
}

/// A status value: a number if it is one, else a string.
fn json_word(v: &str) -> Value {
    match rcopy_core::table::parse_u64(v.as_bytes()) {
        Some(n) => Value::Num(n),
        None => Value::Str(v.to_string()),
    }
}

/// The JSON array of devices (`[]` when there are none).
pub fn json_array(devices: &[(String, Status)]) -> String {
    let items: Vec<String> = devices.iter().map(|(n, s)| json(n, s)).collect();
    json::array(&items)
}

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus text exposition format (version 0.0.4) for the devices.
pub fn metrics(devices: &[(String, Status)]) -> String {
    type Get = fn(&Status) -> u64;
    let families: [(&str, &str, &str, Get); 23] = [
        (
            "rcopy_size_bytes",
            "gauge",
            "Size of the replicated volume.",
            |s| s.size,
        ),
        (
            "rcopy_track_size_bytes",
            "gauge",
            "Dirty-track unit.",
            |s| s.track_size,
        ),
        (
            "rcopy_connected",
            "gauge",
            "1 if the replication link is up.",
            |s| u64::from(s.conn == Conn::Connected),
        ),
        (
            "rcopy_consistent",
            "gauge",
            "1 if this side holds a usable image.",
            |s| u64::from(s.consistent),
        ),
        (
            "rcopy_health",
            "gauge",
            "0 healthy, 1 degraded, 2 inconsistent or failed (as status --check).",
            |s| health(s) as u64,
        ),
        (
            "rcopy_refused",
            "gauge",
            "1 if the last handshake was refused (split brain, stale primary, unrelated data).",
            |s| u64::from(refusal(s).is_some()),
        ),
        (
            "rcopy_peer_tracks",
            "gauge",
            "Tracks the peer's bitmap added at the last handshake.",
            |s| s.peer_tracks,
        ),
        (
            "rcopy_dirty_bytes",
            "gauge",
            "Bytes covered by dirty tracks (to resync).",
            |s| s.dirty_bytes,
        ),
        (
            "rcopy_cache_used_bytes",
            "gauge",
            "Bytes held in the async write cache.",
            |s| s.cache_used,
        ),
        (
            "rcopy_cache_max_bytes",
            "gauge",
            "Limit of the async write cache.",
            |s| s.cache_max,
        ),
        (
            "rcopy_sync_done_bytes",
            "gauge",
            "Progress of the running copy or resync.",
            |s| s.sync_done,
        ),
        (
            "rcopy_sync_total_bytes",
            "gauge",
            "Total of the running copy or resync.",
            |s| s.sync_total,
        ),
        (
            "rcopy_sync_rate_bytes_per_second",
            "gauge",
            "Rate of the running copy or resync.",
            |s| s.sync_rate,
        ),
        (
            "rcopy_sync_eta_seconds",
            "gauge",
            "Time left in the running copy or resync.",
            |s| s.eta_s,
        ),
        (
            "rcopy_lag_bytes",
            "gauge",
            "How far the peer is behind, in bytes.",
            |s| s.lag_bytes,
        ),
        (
            "rcopy_sent_bytes_total",
            "counter",
            "Payload bytes sent to the peer.",
            |s| s.sent_bytes,
        ),
        (
            "rcopy_acked_bytes_total",
            "counter",
            "Payload bytes acknowledged by the peer.",
            |s| s.acked_bytes,
        ),
        ("rcopy_reads_total", "counter", "Read bios.", |s| s.reads),
        ("rcopy_writes_total", "counter", "Write bios.", |s| s.writes),
        ("rcopy_flushes_total", "counter", "Flush bios.", |s| {
            s.flushes
        }),
        ("rcopy_discards_total", "counter", "Discard bios.", |s| {
            s.discards
        }),
        (
            "rcopy_write_zeroes_total",
            "counter",
            "Write-zeroes bios.",
            |s| s.write_zeroes,
        ),
        (
            "rcopy_io_errors_total",
            "counter",
            "Bios failed by the data device.",
            |s| s.io_errors,
        ),
    ];
    let mut out = String::new();
    out.push_str(
        "# HELP rcopy_info Static facts of a device (value always 1).\n# TYPE rcopy_info gauge\n",
    );
    for (n, s) in devices {
        out.push_str(&format!(
            "rcopy_info{{device=\"{}\",role=\"{}\",mode=\"{}\",peer=\"{}\"}} 1\n",
            label(n),
            s.role,
            s.mode,
            label(s.peer.as_str())
        ));
    }
    out.push_str(
        "# HELP rcopy_state 1 for the device's current pair state.\n# TYPE rcopy_state gauge\n",
    );
    for (n, s) in devices {
        for st in State::ALL {
            out.push_str(&format!(
                "rcopy_state{{device=\"{}\",state=\"{}\"}} {}\n",
                label(n),
                st,
                u64::from(*st == s.state)
            ));
        }
    }
    out.push_str("# HELP rcopy_lag_seconds How far the peer is behind, in seconds.\n# TYPE rcopy_lag_seconds gauge\n");
    for (n, s) in devices {
        out.push_str(&format!(
            "rcopy_lag_seconds{{device=\"{}\"}} {}.{:03}\n",
            label(n),
            s.lag_ms / 1000,
            s.lag_ms % 1000
        ));
    }
    for (name, kind, help, get) in families {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (n, s) in devices {
            out.push_str(&format!("{name}{{device=\"{}\"}} {}\n", label(n), get(s)));
        }
    }
    out
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
            j.starts_with("{\"schema_version\": 2, \"name\": \"r0\", \"state\": \"copying\""),
            "{j}"
        );
        assert!(j.contains("\"peer\": \"10.0.0.2:7788\""), "{j}");
        assert!(
            j.contains("\"cache_used\": 1048576, \"cache_max\": 67108864"),
            "{j}"
        );
        assert!(
            j.contains("\"sync_rate\": 0, \"eta_s\": 0, \"consistent\": true"),
            "{j}"
        );
        let mut s = s;
        s.peer = rcopy_core::status::Peer::NONE;
        s.consistent = false;
        s.sync_rate = 5 << 20;
        s.eta_s = 42;
        let j = json("r0", &s);
        assert!(j.contains("\"peer\": null"), "{j}");
        assert!(
            j.contains("\"sync_rate\": 5242880, \"eta_s\": 42, \"consistent\": false"),
            "{j}"
        );
    }

    /// The JSON array parses, and every key of the core's status line is in
    /// each object, with the right type: no key can be left out again.
    #[test]
    fn json_schema() {
        let s = Status::parse(LINE).unwrap();
        let text = json_array(&[("r0".to_string(), s), ("r\"1".to_string(), s)]);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let arr = v.as_array().unwrap();
        assert_eq!(arr.len(), 2);
        assert_eq!(arr[1]["name"], "r\"1");
        for o in arr {
            let o = o.as_object().unwrap();
            assert_eq!(o["schema_version"], JSON_SCHEMA_VERSION);
            // Every key the core writes, typed from the line itself.
            let mut line = String::new();
            s.write(&mut line).unwrap();
            for (key, v) in rcopy_core::status::parse_kv(&line) {
                match key {
                    "cache_fill" => {
                        assert!(o["cache_used"].is_u64());
                        assert!(o["cache_max"].is_u64());
                    }
                    "consistent" => assert!(o[key].is_boolean(), "{key}"),
                    "peer" if v == "-" => assert!(o[key].is_null()),
                    "gen" => assert_eq!(o[key], v, "{key}"),
                    _ if v.bytes().all(|b| b.is_ascii_digit()) => {
                        assert!(o[key].is_u64(), "{key} missing or not a number: {text}")
                    }
                    _ => assert_eq!(o[key], v, "{key}"),
                }
            }
            for key in rcopy_core::status::KEYS {
                assert!(
                    key == "cache_fill" || o.contains_key(key),
                    "{key} missing: {text}"
                );
            }
            // Nothing else but those and ours.
            assert_eq!(o.len(), rcopy_core::status::KEYS.len() + 3);
        }
        // No device: still an array.
        assert_eq!(json_array(&[]), "[]");
        let v: serde_json::Value = serde_json::from_str(&json_array(&[])).unwrap();
        assert!(v.as_array().unwrap().is_empty());
    }

    #[test]
    fn compact_lines() {
        let mut s = Status::parse(LINE).unwrap();
        s.sync_rate = 10 << 20;
        s.eta_s = 80;
        s.consistent = true;
        assert_eq!(
            compact("r0", &s),
            "r0 role:primary mode:async state:copying conn:connected peer:10.0.0.2:7788 \
             consistent:yes dirty:128KiB lag:1250ms progress:25.0% rate:10MiB/s eta:1m20s"
        );
        assert!(human("r0", &s)
            .contains("  progress:   25.0% (256 MiB of 1 GiB), 10 MiB/s, ETA 1m20s\n"));
        s.state = State::Duplex;
        s.role = Role::Secondary;
        s.consistent = false;
        s.io_errors = 3;
        assert_eq!(
            compact("r0", &s),
            "r0 role:secondary mode:async state:duplex conn:connected peer:10.0.0.2:7788 \
             consistent:no dirty:128KiB lag:1250ms io_errors:3"
        );
        let h = human("r0", &s);
        assert!(h.contains("  consistent: no (not a usable image"), "{h}");
        let line = "state=simplex role=primary mode=sync conn=standalone peer=- \
            track_size=65536 size=1073741824 dirty_bytes=0 cache_fill=0/0 sync_done=0 \
            sync_total=0 sent_bytes=0 acked_bytes=0 lag_ms=0 lag_bytes=0 reads=1 \
            writes=2 flushes=3 discards=4 write_zeroes=5 io_errors=0";
        assert_eq!(
            compact("r1", &Status::parse(line).unwrap()),
            "r1 standalone state:simplex consistent:yes"
        );
    }

    #[test]
    fn split_copy_fields() {
        let line = format!(
            "{LINE} consistent=yes error=none al_hot=0 al_refs=0 decision=none \
             gen=0000000000000000 peer_tracks=0 point=0 point_age_s=0 split=splitting \
             split_create=300 split_changed=12 split_copied=724 split_cow=5"
        );
        let s = Status::parse(&line).unwrap();
        assert_eq!(s.split, "splitting");
        let c = compact("r0", &s);
        assert!(
            c.ends_with(" split:splitting split_create:300 split_changed:12"),
            "{c}"
        );
        let h = human("r0", &s);
        assert!(
            h.contains("  split copy: splitting (being frozen: 300 tracks left to copy"),
            "{h}"
        );
        assert!(
            h.contains("  split I/O:  724 tracks copied since the table was loaded, 5 of them"),
            "{h}"
        );
        let v: serde_json::Value = serde_json::from_str(&json("r0", &s)).unwrap();
        assert_eq!(v["split"], "splitting");
        assert_eq!(v["split_cow"], 5);
        // Without a split copy: nothing.
        let s = Status::parse(LINE).unwrap();
        assert!(!compact("r0", &s).contains("split"));
        assert!(!human("r0", &s).contains("split"));
    }

    #[test]
    fn watch_screens() {
        assert_eq!(bar(0, 0, 4), "[....]");
        assert_eq!(bar(1, 4, 4), "[#...]");
        assert_eq!(bar(9, 4, 4), "[####]");
        let mut s = Status::parse(LINE).unwrap();
        s.sync_rate = 1 << 20;
        s.eta_s = 768;
        let w = watch_screen(&[("r0".to_string(), s)], false);
        let lines: Vec<&str> = w.lines().collect();
        assert_eq!(lines.len(), 2, "{w}");
        assert!(lines[0].starts_with("r0 role:primary"), "{w}");
        assert_eq!(
            lines[1],
            format!(
                "  [{}{}] 25.0% 1 MiB/s ETA 12m48s",
                "#".repeat(10),
                ".".repeat(30)
            )
        );
        s.state = State::Duplex;
        assert_eq!(
            watch_screen(&[("r0".to_string(), s)], false)
                .lines()
                .count(),
            1
        );
        assert!(watch_screen(&[("r0".to_string(), s)], true).contains("  consistent: yes\n"));
        assert_eq!(watch_screen(&[], false), "no rcopy devices\n");
    }

    #[test]
    fn healths() {
        let mut s = Status::parse(LINE).unwrap();
        // Copying: the primary is fine, the pair is not redundant yet.
        assert_eq!(health(&s), Health::Degraded);
        s.state = State::Duplex;
        assert_eq!(health(&s), Health::Healthy);
        s.conn = Conn::Connecting;
        assert_eq!(health(&s), Health::Degraded);
        s.state = State::Suspended;
        assert_eq!(health(&s), Health::Degraded);
        s.consistent = false;
        assert_eq!(health(&s), Health::Failed);
        s.consistent = true;
        s.io_errors = 1;
        assert_eq!(health(&s), Health::Failed);
        let mut st = Status::default();
        assert_eq!(health(&st), Health::Healthy);
        st.error = DevError::Metadata;
        assert_eq!(health(&st), Health::Failed);
        assert!(
            compact("r1", &st).ends_with(" error:metadata"),
            "{}",
            compact("r1", &st)
        );
        st.error = DevError::None;
        st.io_errors = 1;
        assert_eq!(health(&st), Health::Failed);
        assert_eq!(Health::Failed as u8, 2);
    }

    /// A strict reader of the Prometheus text format: every sample belongs
    /// to a family announced by HELP and TYPE, names and labels are well
    /// formed, values are numbers, no sample repeats.
    fn check_exposition(text: &str) -> Vec<(String, String, f64)> {
        let mut typed: std::collections::HashMap<String, String> = Default::default();
        let mut helped = std::collections::HashSet::new();
        let mut seen = std::collections::HashSet::new();
        let mut samples = Vec::new();
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.chars().enumerate().all(|(i, c)| {
                    c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
                })
        };
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (n, help) = rest.split_once(' ').unwrap();
                assert!(name_ok(n) && !help.is_empty(), "{line}");
                assert!(helped.insert(n.to_string()), "HELP twice: {line}");
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (n, t) = rest.split_once(' ').unwrap();
                assert!(["gauge", "counter"].contains(&t), "{line}");
                assert!(
                    typed.insert(n.to_string(), t.to_string()).is_none(),
                    "{line}"
                );
                continue;
            }
            assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
            let (series, value) = line.rsplit_once(' ').unwrap();
            let v: f64 = value.parse().unwrap_or_else(|_| panic!("value: {line}"));
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.strip_suffix('}').unwrap_or_else(|| panic!("{line}"))),
                None => (series, ""),
            };
            assert!(name_ok(name), "{line}");
            assert!(
                typed.contains_key(name) && helped.contains(name),
                "undeclared: {line}"
            );
            if typed[name] == "counter" {
                assert!(name.ends_with("_total"), "{line}");
            }
            // label="value" pairs, values with \\, \" and \n escapes only.
            let mut rest = labels;
            while !rest.is_empty() {
                let (k, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
                assert!(name_ok(k), "{line}");
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => {
                            let (_, e) = chars.next().unwrap();
                            assert!(['\\', '"', 'n'].contains(&e), "{line}");
                        }
                        Some((i, '"')) => break i,
                        Some(_) => {}
                        None => panic!("unterminated label: {line}"),
                    }
                };
                rest = &after[end + 1..];
                rest = rest.strip_prefix(',').unwrap_or(rest);
            }
            assert!(seen.insert(series.to_string()), "repeated: {line}");
            samples.push((name.to_string(), labels.to_string(), v));
        }
        samples
    }

    #[test]
    fn metrics_parse() {
        let mut s = Status::parse(LINE).unwrap();
        s.sync_rate = 1000;
        let text = metrics(&[
            ("r0".to_string(), s),
            ("we\"ird".to_string(), Status::default()),
        ]);
        let samples = check_exposition(&text);
        let get = |n: &str, l: &str| {
            samples
                .iter()
                .find(|(name, labels, _)| name == n && labels == l)
                .map(|x| x.2)
        };
        assert_eq!(get("rcopy_dirty_bytes", "device=\"r0\""), Some(131072.0));
        assert_eq!(get("rcopy_lag_seconds", "device=\"r0\""), Some(1.25));
        assert_eq!(get("rcopy_sent_bytes_total", "device=\"r0\""), Some(3e8));
        assert_eq!(
            get("rcopy_acked_bytes_total", "device=\"r0\""),
            Some(2.99e8)
        );
        assert_eq!(
            get("rcopy_sync_rate_bytes_per_second", "device=\"r0\""),
            Some(1000.0)
        );
        assert_eq!(
            get("rcopy_state", "device=\"r0\",state=\"copying\""),
            Some(1.0)
        );
        assert_eq!(
            get("rcopy_state", "device=\"r0\",state=\"duplex\""),
            Some(0.0)
        );
        assert_eq!(get("rcopy_connected", "device=\"r0\""), Some(1.0));
        assert_eq!(get("rcopy_health", "device=\"r0\""), Some(1.0));
        assert_eq!(get("rcopy_dirty_bytes", "device=\"we\\\"ird\""), Some(0.0));
        // The checker itself refuses bad text.
        assert!(std::panic::catch_unwind(|| check_exposition("rcopy_x 1\n")).is_err());
        assert!(std::panic::catch_unwind(|| {
            check_exposition("# HELP a h\n# TYPE a gauge\na{d=\"x} 1\n")
        })
        .is_err());
        // No device: the families are announced, no samples.
        assert!(check_exposition(&metrics(&[])).is_empty());
    }

    #[test]
    fn refusals() {
        let mut s = Status::parse(LINE).unwrap();
        s.state = State::Suspended;
        s.conn = Conn::Connecting;
        s.gen = 0x1234_5678_9abc_def0;
        s.peer_tracks = 7;
        // Proceeding decisions are no alert.
        for d in [None, Some(Decision::Bitmap), Some(Decision::FullCopy)] {
            s.decision = d;
            assert_eq!(alert(&s), None);
            assert_eq!(health(&s), Health::Degraded);
            assert!(!compact("r0", &s).contains("decision"));
        }
        s.decision = Some(Decision::SplitBrain);
        assert_eq!(health(&s), Health::Failed);
        assert!(
            compact("r0", &s).ends_with(" decision:split-brain"),
            "{}",
            compact("r0", &s)
        );
        let a = alert(&s).unwrap();
        assert_eq!(
            a,
            format!(
                "  SPLIT BRAIN: the connection was refused: {} (the primary retries every few \
                 seconds)",
                Decision::SplitBrain.advice()
            )
        );
        let h = human("r0", &s);
        assert!(
            h.starts_with(&format!("r0:\n{a}\n  state:      suspended\n")),
            "{h}"
        );
        assert!(
            h.contains("  decision:   split-brain (refused: both sides wrote"),
            "{h}"
        );
        assert!(h.contains("  generation: 123456789abcdef0\n"), "{h}");
        assert!(
            h.contains("  peer marks: 7 tracks (the peer's bitmap, added at the last handshake)\n"),
            "{h}"
        );
        let w = watch_screen(&[("r0".to_string(), s)], false);
        assert_eq!(w.lines().nth(1), Some(a.as_str()), "{w}");
        s.decision = Some(Decision::StalePrimary);
        assert!(alert(&s).unwrap().starts_with("  STALE PRIMARY: "));
        s.decision = Some(Decision::Unrelated);
        assert!(alert(&s).unwrap().starts_with("  UNRELATED DATA: "));
        let text = metrics(&[("r0".to_string(), s)]);
        assert!(text.contains("rcopy_refused{device=\"r0\"} 1\n"), "{text}");
        assert!(
            text.contains("rcopy_peer_tracks{device=\"r0\"} 7\n"),
            "{text}"
        );
        s.decision = Some(Decision::Bitmap);
        let h = human("r0", &s);
        assert!(
            h.contains("  decision:   bitmap (only the marked tracks are copied)\n"),
            "{h}"
        );
        s.decision = None;
        assert!(human("r0", &s).contains("  decision:   - (no handshake yet)\n"));
        // A standalone device has no handshake.
        let h = human("r1", &Status::default());
        assert!(h.contains("  decision:   -\n  generation: -\n"), "{h}");
    }

    #[test]
    fn json_generation_is_a_string() {
        let mut s = Status::parse(LINE).unwrap();
        // All decimal digits: still the hex string, never a number.
        s.gen = 0x0000_0000_0000_0123;
        s.decision = Some(Decision::StalePrimary);
        let v: serde_json::Value = serde_json::from_str(&json("r0", &s)).unwrap();
        assert_eq!(v["gen"], "0000000000000123");
        assert_eq!(v["decision"], "stale-primary");
        assert_eq!(v["peer_tracks"], 0);
        s.decision = None;
        let v: serde_json::Value = serde_json::from_str(&json("r0", &s)).unwrap();
        assert_eq!(v["decision"], "none");
    }

    #[test]
    fn percents() {
        assert_eq!(percent(0, 0), None);
        assert_eq!(percent(1, 3).unwrap(), "33.3%");
        assert_eq!(percent(u64::MAX, u64::MAX).unwrap(), "100.0%");
        assert_eq!(seconds(5), "0.005 s");
    }
}
