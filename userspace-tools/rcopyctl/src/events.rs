//! `rcopyctl events`: a stream of state changes, one line each.
//!
//! Each rcopy device's DM event counter (raised by the kernel on state
//! changes: link up or down, end of a copy or resync) and status are read
//! every 200 ms; a changed counter or a change in the fields an operator
//! follows (state, connection, consistency, role, mode, peer, error, the
//! handshake's decision) prints one
//! event. Devices that appear or go away print `create` and `destroy`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcopy_core::status::Status;

use crate::error::Error;
use crate::json::{self, Value};
use crate::{commands, open_control, out};

/// Version of the `events --json` line layout.
pub const EVENTS_SCHEMA_VERSION: u64 = 1;

/// How often devices are read.
pub const POLL: Duration = Duration::from_millis(200);

/// What one device looked like at one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub event_nr: u32,
    pub status: Status,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `exists` (initial state), `create`, `change` or `destroy`.
    pub kind: &'static str,
    pub name: String,
    pub event_nr: u32,
    /// Changed fields: (key, old, new).
    pub changes: Vec<(&'static str, String, String)>,
    /// The status after the event (none after `destroy`).
    pub status: Option<Status>,
}

/// The fields an event reports, as words (`split`: the split copy's state).
fn fields(s: &Status) -> [(&'static str, String); 9] {
    [
        ("role", s.role.to_string()),
        ("mode", s.mode.to_string()),
        ("state", s.state.to_string()),
        ("conn", s.conn.to_string()),
        ("peer", s.peer.to_string()),
        (
            "consistent",
            if s.consistent { "yes" } else { "no" }.to_string(),
        ),
        ("error", s.error.as_str().to_string()),
        (
            "decision",
            s.decision.map_or("none", |d| d.as_str()).to_string(),
        ),
        ("split", s.split.to_string()),
    ]
}

/// The events between two reads of every device.
pub fn diff(before: &BTreeMap<String, Snapshot>, now: &BTreeMap<String, Snapshot>) -> Vec<Event> {
    let mut ev = Vec::new();
    for (name, s) in now {
        match before.get(name) {
            None => ev.push(Event {
                kind: "create",
                name: name.clone(),
                event_nr: s.event_nr,
                changes: Vec::new(),
                status: Some(s.status),
            }),
            Some(old) => {
                let changes: Vec<(&'static str, String, String)> = fields(&old.status)
                    .into_iter()
                    .zip(fields(&s.status))
                    .filter(|(a, b)| a.1 != b.1)
                    .map(|(a, b)| (a.0, a.1, b.1))
                    .collect();
                if !changes.is_empty() || old.event_nr != s.event_nr {
                    ev.push(Event {
                        kind: "change",
                        name: name.clone(),
                        event_nr: s.event_nr,
                        changes,
                        status: Some(s.status),
                    });
                }
            }
        }
    }
    for (name, s) in before {
        if !now.contains_key(name) {
            ev.push(Event {
                kind: "destroy",
                name: name.clone(),
                event_nr: s.event_nr,
                changes: Vec::new(),
                status: None,
            });
        }
    }
    ev
}

/// `exists` events for every device.
pub fn initial(now: &BTreeMap<String, Snapshot>) -> Vec<Event> {
    now.iter()
        .map(|(name, s)| Event {
            kind: "exists",
            name: name.clone(),
            event_nr: s.event_nr,
            changes: Vec::new(),
            status: Some(s.status),
        })
        .collect()
}

/// UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// One line for people: `TIME KIND NAME key:old->new ... event:N`.
pub fn human(time: &str, e: &Event) -> String {
    let mut w = vec![time.to_string(), e.kind.to_string(), e.name.clone()];
    match (e.kind, &e.status) {
        ("change", _) => {
            for (k, a, b) in &e.changes {
                w.push(format!("{k}:{a}->{b}"));
            }
        }
        (_, Some(s)) => {
            for (k, v) in fields(s) {
                // A device without a split copy does not say so on every line.
                if k != "split" || v != "none" {
                    w.push(format!("{k}:{v}"));
                }
            }
        }
        _ => {}
    }
    w.push(format!("event:{}", e.event_nr));
    w.join(" ")
}

/// One JSON object (a line of JSON Lines).
pub fn json_line(time: &str, e: &Event) -> String {
    let changes = json::object(
        &e.changes
            .iter()
            .map(|(k, a, b)| {
                (
                    *k,
                    Value::List(vec![Value::Str(a.clone()), Value::Str(b.clone())]),
                )
            })
            .collect::<Vec<_>>(),
    );
    let status = match &e.status {
        Some(s) => crate::status_view::json(&e.name, s),
        None => "null".to_string(),
    };
    let head = json::object(&[
        ("schema_version", Value::Num(EVENTS_SCHEMA_VERSION)),
        ("time", Value::Str(time.to_string())),
        ("type", Value::Str(e.kind.to_string())),
        ("name", Value::Str(e.name.clone())),
        ("event_nr", Value::Num(u64::from(e.event_nr))),
    ]);
    // Splice the two pre-encoded objects in.
    format!(
        "{}, \"changes\": {changes}, \"status\": {status}}}",
        head.trim_end_matches('}')
    )
}

/// Reads every rcopy device (or NAME).
fn read_all(name: Option<&str>) -> Result<BTreeMap<String, Snapshot>, Error> {
    let ctl = open_control()?;
    let (shown, failed) = commands::collect_with(&ctl, name);
    if let (Some(e), None) = (failed, name) {
        return Err(e);
    }
    let mut m = BTreeMap::new();
    for (n, status) in shown {
        let event_nr = ctl.info(&n).map(|h| h.event_nr).unwrap_or(0);
        m.insert(n, Snapshot { event_nr, status });
    }
    Ok(m)
}

/// Runs `rcopyctl events`.
pub fn run(name: Option<&str>, as_json: bool, now_only: bool) -> Result<(), Error> {
    let print = |evs: &[Event]| {
        let t = timestamp(SystemTime::now());
        for e in evs {
            out(&if as_json {
                json_line(&t, e)
            } else {
                human(&t, e)
            });
        }
    };
    let mut before = read_all(name)?;
    print(&initial(&before));
    if now_only {
        return Ok(());
    }
    loop {
        std::thread::sleep(POLL);
        let now = read_all(name)?;
        print(&diff(&before, &now));
        before = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcopy_core::status::{Conn, State};

    fn snap(state: State, conn: Conn, nr: u32) -> Snapshot {
        Snapshot {
            event_nr: nr,
            status: Status {
                state,
                conn,
                ..Status::default()
            },
        }
    }

    #[test]
    fn diffs() {
        let mut a = BTreeMap::new();
        a.insert("r0".to_string(), snap(State::Duplex, Conn::Connected, 1));
        assert!(diff(&a, &a).is_empty());
        let mut b = a.clone();
        b.insert(
            "r0".to_string(),
            snap(State::Suspended, Conn::Connecting, 2),
        );
        b.insert("r1".to_string(), snap(State::Simplex, Conn::Standalone, 0));
        let ev = diff(&a, &b);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].kind, "change");
        assert_eq!(
            ev[0].changes,
            vec![
                ("state", "duplex".to_string(), "suspended".to_string()),
                ("conn", "connected".to_string(), "connecting".to_string())
            ]
        );
        assert_eq!(
            human("T", &ev[0]),
            "T change r0 state:duplex->suspended conn:connected->connecting event:2"
        );
        assert_eq!(ev[1].kind, "create");
        assert_eq!(
            human("T", &ev[1]),
            "T create r1 role:primary mode:sync state:simplex conn:standalone peer:- consistent:yes \
             error:none decision:none event:0"
        );
        // The split copy's state: on the lines of a device that has one.
        let mut c = a.clone();
        c.get_mut("r0").unwrap().status.split = "split";
        c.get_mut("r0").unwrap().event_nr = 2;
        let ev = diff(&a, &c);
        assert_eq!(human("T", &ev[0]), "T change r0 split:none->split event:2");
        assert!(human("T", &initial(&c)[0]).ends_with(" decision:none split:split event:2"));
        // An event counter that moves alone is an event too.
        let mut c = a.clone();
        c.get_mut("r0").unwrap().event_nr = 5;
        let ev = diff(&a, &c);
        assert_eq!(ev.len(), 1);
        assert!(ev[0].changes.is_empty());
        // Gone.
        let ev = diff(&b, &a);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[1].kind, "destroy");
        assert_eq!(ev[1].name, "r1");
        assert_eq!(initial(&a)[0].kind, "exists");
    }

    #[test]
    fn json_lines_parse() {
        let mut a = BTreeMap::new();
        a.insert("r0".to_string(), snap(State::Duplex, Conn::Connected, 1));
        let mut b = BTreeMap::new();
        b.insert(
            "r0".to_string(),
            snap(State::Suspended, Conn::Connecting, 2),
        );
        for e in diff(&a, &b).iter().chain(diff(&b, &BTreeMap::new()).iter()) {
            let line = json_line("2026-11-30T10:00:00.000Z", e);
            assert!(!line.contains('\n'));
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["schema_version"], 1);
            assert_eq!(v["name"], "r0");
            if e.kind == "change" {
                assert_eq!(v["changes"]["state"][0], "duplex");
                assert_eq!(v["changes"]["state"][1], "suspended");
                assert_eq!(v["status"]["state"], "suspended");
                assert_eq!(v["event_nr"], 2);
            } else {
                assert_eq!(v["type"], "destroy");
                assert!(v["status"].is_null());
            }
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(timestamp(t), "2026-11-18T11:06:40.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(timestamp(leap), "2000-02-29T00:00:00.000Z");
    }
}
