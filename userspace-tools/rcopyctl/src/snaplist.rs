//! Snapshot tables: the lines of the secondary's `snapshots` message and the
//! table of a snapshot store's superblock, parsed into one shape and printed
//! for people (a table) or programs (JSON).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcopy_core::imagesum::{self, SUM_LEN};
use rcopy_core::snapstore::{SnapInfo, SnapState, SNAP_BEFORE_RESYNC, SNAP_CHECKSUM};

use crate::events::timestamp;
use crate::json::{self, Value};
use crate::size::human_secs;

/// One snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snap {
    /// Its epoch, also its id.
    pub epoch: u32,
    /// Its name (`None`: unnamed).
    pub name: Option<String>,
    /// `ready` (readable) or `invalid` (the store ran out of slots).
    pub ready: bool,
    /// Taken automatically before a copy or resync overwrote the image.
    pub before_resync: bool,
    /// The primary's image sum at the snapshot's marker (`snapshot --verify`),
    /// if one was recorded (flag `SNAP_CHECKSUM`).
    pub sum: Option<[u8; SUM_LEN]>,
    /// Wall-clock time of the opening, ns since 1970.
    pub created_ns: u64,
    /// Sequence number of the marker in the primary's stream.
    pub stream_seq: u64,
    /// The primary's generation when the marker was sent.
    pub gen: u64,
}

impl Snap {
    /// From a store superblock's table entry.
    pub fn from_info(s: &SnapInfo) -> Snap {
        let name = String::from_utf8_lossy(s.name()).into_owned();
        Snap {
            epoch: s.epoch,
            name: (!name.is_empty()).then_some(name),
            ready: s.state == SnapState::Ready,
            before_resync: s.flags & SNAP_BEFORE_RESYNC != 0,
            sum: (s.flags & SNAP_CHECKSUM != 0).then_some(s.checksum),
            created_ns: s.created_ns,
            stream_seq: s.stream_seq,
            gen: s.gen,
        }
    }

    /// `ready` or `invalid`.
    pub fn state(&self) -> &'static str {
        if self.ready {
            "ready"
        } else {
            "invalid"
        }
    }

    /// The flag names (`before-resync`; a recorded sum has its own column).
    pub fn flags(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        if self.before_resync {
            f.push("before-resync");
        }
        f
    }

    /// The recorded sum as 64 hex digits.
    pub fn sum_hex(&self) -> Option<String> {
        self.sum.as_ref().map(hex)
    }

    /// The name, or `-`.
    pub fn shown_name(&self) -> &str {
        self.name.as_deref().unwrap_or("-")
    }

    fn created(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.created_ns)
    }
}

/// A sum as 64 lower-case hex digits.
pub fn hex(sum: &[u8; SUM_LEN]) -> String {
    String::from_utf8_lossy(&imagesum::hex(sum)).into_owned()
}

/// Parses one line of the `snapshots` message: `EPOCH NAME STATE FLAGS
/// CREATED_NS STREAM_SEQ GEN [SUM]` (NAME and FLAGS `-` for none; GEN in hex;
/// SUM, the primary's image sum in 64 hex digits or `-`, printed by modules
/// that know `snapshot-verify`).
pub fn parse_line(line: &str) -> Result<Snap, String> {
    let w: Vec<&str> = line.split_ascii_whitespace().collect();
    let bad = |what: &str| format!("unexpected snapshot line {line:?}: {what}");
    if w.len() != 7 && w.len() != 8 {
        return Err(bad("expected 7 or 8 words"));
    }
    let sum = match w.get(7) {
        None | Some(&"-") => None,
        Some(h) => Some(imagesum::parse_hex(h.as_bytes()).ok_or_else(|| bad("bad sum"))?),
    };
    let num = |s: &str, what: &str| s.parse::<u64>().map_err(|_| bad(what));
    let epoch = u32::try_from(num(w[0], "bad epoch")?).map_err(|_| bad("bad epoch"))?;
    if epoch == 0 {
        return Err(bad("epoch 0"));
    }
    let ready = match w[2] {
        "ready" => true,
        "invalid" => false,
        _ => return Err(bad("bad state")),
    };
    // An unknown flag (one added later, or `checksum`, which the sum column
    // says) is shown nowhere, but no reason to fail.
    let before_resync = w[3].split(',').any(|f| f == "before-resync");
    Ok(Snap {
        epoch,
        name: (w[1] != "-").then(|| w[1].to_string()),
        ready,
        before_resync,
        sum,
        created_ns: num(w[4], "bad creation time")?,
        stream_seq: num(w[5], "bad stream sequence")?,
        gen: u64::from_str_radix(w[6], 16).map_err(|_| bad("bad generation"))?,
    })
}

/// Parses the whole output of the `snapshots` message (empty: none).
pub fn parse(text: &str) -> Result<Vec<Snap>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_line)
        .collect()
}

/// How long ago `created_ns` was at `now`, for people: `3m05s`; `-` for a
/// time in the future (a clock set back) or none.
pub fn age(created_ns: u64, now: SystemTime) -> String {
    let created = UNIX_EPOCH + Duration::from_nanos(created_ns);
    match now.duration_since(created) {
        Ok(d) if created_ns != 0 => human_secs(d.as_secs()),
        _ => "-".to_string(),
    }
}

/// Hex digits of a sum the table shows.
pub const SUM_SHOWN: usize = 16;

/// The table for people: one row per snapshot, aligned columns. `SUM` is the
/// start of the primary's image sum (`-`: none recorded).
pub fn table(snaps: &[Snap], now: SystemTime) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        "ID".into(),
        "NAME".into(),
        "STATE".into(),
        "AGE".into(),
        "CREATED".into(),
        "SUM".into(),
        "FLAGS".into(),
    ]];
    for s in snaps {
        let flags = s.flags();
        rows.push([
            s.epoch.to_string(),
            s.shown_name().to_string(),
            s.state().to_string(),
            age(s.created_ns, now),
            timestamp(s.created()),
            s.sum_hex()
                .map_or("-".to_string(), |h| h[..SUM_SHOWN].to_string()),
            if flags.is_empty() {
                "-".to_string()
            } else {
                flags.join(",")
            },
        ]);
    }
    let mut width = [0usize; 7];
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(width.iter()).enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One snapshot as a JSON object: `id`, `name` (null: none), `state`,
/// `flags`, `created_ns`, `created` (UTC), `stream_seq`, `gen` (16 hex digits),
/// `sum` (64 hex digits; null: none recorded).
pub fn json_object(s: &Snap) -> String {
    json::object(&[
        ("id", Value::Num(u64::from(s.epoch))),
        ("name", s.name.clone().map_or(Value::Null, Value::Str)),
        ("state", Value::Str(s.state().to_string())),
        (
            "flags",
            Value::List(
                s.flags()
                    .into_iter()
                    .map(|f| Value::Str(f.to_string()))
                    .collect(),
            ),
        ),
        ("created_ns", Value::Num(s.created_ns)),
        ("created", Value::Str(timestamp(s.created()))),
        ("stream_seq", Value::Num(s.stream_seq)),
        ("gen", Value::Str(format!("{:016x}", s.gen))),
        ("sum", s.sum_hex().map_or(Value::Null, Value::Str)),
    ])
}

/// A JSON array of [`json_object`]s.
pub fn json_array(snaps: &[Snap]) -> String {
    let items: Vec<String> = snaps.iter().map(json_object).collect();
    json::array(&items)
}

/// Finds the snapshot `which` names: a snapshot of that name first (as the
/// kernel resolves it), else the id it spells. Several snapshots of one name
/// are refused: the kernel would pick one of them by its table order.
pub fn find<'a>(snaps: &'a [Snap], which: &str) -> Result<&'a Snap, String> {
    let named: Vec<&Snap> = snaps
        .iter()
        .filter(|s| s.name.as_deref() == Some(which))
        .collect();
    match named.as_slice() {
        [one] => return Ok(one),
        [] => {}
        many => {
            let ids: Vec<String> = many.iter().map(|s| s.epoch.to_string()).collect();
            return Err(format!(
                "{} snapshots are named {which:?} (ids {}): give the id",
                many.len(),
                ids.join(", ")
            ));
        }
    }
    if let Ok(id) = which.parse::<u32>() {
        if let Some(s) = snaps.iter().find(|s| s.epoch == id) {
            return Ok(s);
        }
    }
    Err(format!("no snapshot {which:?} (neither a name nor an id)"))
}

/// The word that makes the kernel (which looks a name up first, then an id)
/// pick snapshot `s`: its id, unless another snapshot is named like that id,
/// then its name.
pub fn word_for(snaps: &[Snap], s: &Snap) -> Result<String, String> {
    let id = s.epoch.to_string();
    let shadowed = snaps.iter().any(|o| o.name.as_deref() == Some(id.as_str()));
    if !shadowed {
        return Ok(id);
    }
    match &s.name {
        Some(n) if snaps.iter().filter(|o| o.name.as_ref() == Some(n)).count() == 1 => {
            Ok(n.clone())
        }
        _ => Err(format!(
            "snapshot {id} cannot be named to the kernel: another snapshot is named {id:?}; \
             delete or rename that one first"
        )),
    }
}

/// The newest ready snapshot taken before a resync, if any.
pub fn newest_before_resync(snaps: &[Snap]) -> Option<&Snap> {
    snaps
        .iter()
        .filter(|s| s.before_resync && s.ready)
        .max_by_key(|s| s.epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "1 nightly ready - 1764520000000000000 42 00000000000000ab\n\
                       3 pre-resync ready before-resync 1764520300000000000 0 1234567890abcdef\n\
                       4 - invalid - 1764520400000000000 77 0000000000000001\n";

    #[test]
    fn parses_the_message() {
        let v = parse(OUT).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(
            v[0],
            Snap {
                epoch: 1,
                name: Some("nightly".into()),
                ready: true,
                before_resync: false,
                sum: None,
                created_ns: 1_764_520_000_000_000_000,
                stream_seq: 42,
                gen: 0xab,
            }
        );
        assert!(v[1].before_resync && v[1].ready);
        assert_eq!(v[1].gen, 0x1234_5678_90ab_cdef);
        assert_eq!(v[2].name, None);
        assert!(!v[2].ready);
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("\n").unwrap(), vec![]);
        for bad in [
            "1 a ready - 1 2",
            "x a ready - 1 2 3",
            "0 a ready - 1 2 3",
            "1 a fine - 1 2 3",
            "1 a ready - t 2 3",
            "1 a ready - 1 2 zz",
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
        // An unknown flag is tolerated.
        assert!(parse_line("1 a ready new-flag 1 2 3").is_ok());
    }

    const SUM: &str = "00000000000000000000000000000000000000000000000000000000000001ff";

    #[test]
    fn parses_the_sum_column() {
        // Modules that know snapshot-verify print an 8th column: the sum or `-`.
        let s = parse_line(&format!("5 v1 ready checksum 1 2 ab {SUM}")).unwrap();
        let mut want = [0u8; SUM_LEN];
        want[30] = 1;
        want[31] = 0xff;
        assert_eq!(s.sum, Some(want));
        assert_eq!(s.sum_hex().as_deref(), Some(SUM));
        assert_eq!((s.epoch, s.gen, s.before_resync), (5, 0xab, false));
        let s = parse_line("6 - ready - 1 2 ab -").unwrap();
        assert_eq!(s.sum, None);
        // Upper-case hex is read too; the sum is shown in lower case.
        let s = parse_line(&format!("7 x ready - 1 2 3 {}", SUM.to_uppercase())).unwrap();
        assert_eq!(s.sum_hex().as_deref(), Some(SUM));
        // Seven columns (an older module): no sum.
        assert_eq!(parse_line("1 a ready - 1 2 3").unwrap().sum, None);
        for bad in [
            "1 a ready - 1 2 3 12ab",
            &format!("1 a ready - 1 2 3 {}0", SUM),
            &format!("1 a ready - 1 2 3 {}", SUM.replace('f', "g")),
            &format!("1 a ready - 1 2 3 {SUM} extra"),
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
        let v = parse(&format!(
            "{OUT}5 v1 ready checksum 1764520500000000000 9 ab {SUM}\n"
        ))
        .unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_764_520_600);
        let t = table(&v, now);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].contains("CREATED                   SUM               FLAGS"),
            "{t}"
        );
        assert!(lines[4].contains("  0000000000000000  "), "{t}");
        assert!(!lines[4].contains(SUM), "{t}");
        assert!(lines[1].contains(".000Z  -                 -"), "{t}");
        let j: serde_json::Value = serde_json::from_str(&json_array(&v)).unwrap();
        assert_eq!(j[3]["sum"], SUM);
        assert_eq!(j[3]["flags"].as_array().unwrap().len(), 0);
        assert_eq!(j[0]["sum"], serde_json::Value::Null);
    }

    #[test]
    fn table_and_json() {
        let v = parse(OUT).unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_764_520_600);
        let t = table(&v, now);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(
            lines[0].starts_with("ID  NAME        STATE    AGE     CREATED"),
            "{t}"
        );
        assert!(
            lines[1].starts_with("1   nightly     ready    10m00s  2025-11-30T16:26:40.000Z"),
            "{t}"
        );
        assert!(lines[2].ends_with("before-resync"), "{t}");
        assert!(lines[3].contains("-           invalid"), "{t}");
        let j: serde_json::Value = serde_json::from_str(&json_array(&v)).unwrap();
        assert_eq!(j[0]["id"], 1);
        assert_eq!(j[0]["name"], "nightly");
        assert_eq!(j[1]["flags"][0], "before-resync");
        assert_eq!(j[2]["name"], serde_json::Value::Null);
        assert_eq!(j[2]["state"], "invalid");
        assert_eq!(j[1]["gen"], "1234567890abcdef");
        assert_eq!(j[0]["created"], "2025-11-30T16:26:40.000Z");
        assert_eq!(json_array(&[]), "[]");
        assert_eq!(age(0, now), "-");
        assert_eq!(age(u64::MAX, now), "-");
    }

    #[test]
    fn finding() {
        let mut v = parse(OUT).unwrap();
        assert_eq!(find(&v, "nightly").unwrap().epoch, 1);
        assert_eq!(find(&v, "4").unwrap().epoch, 4);
        assert!(find(&v, "2").unwrap_err().contains("no snapshot \"2\""));
        assert_eq!(newest_before_resync(&v).unwrap().epoch, 3);
        assert_eq!(word_for(&v, &v[0]).unwrap(), "1");
        // A snapshot named "4" shadows id 4: the name wins, as in the kernel.
        v[0].name = Some("4".into());
        assert_eq!(find(&v, "4").unwrap().epoch, 1);
        assert_eq!(word_for(&v, &v[0]).unwrap(), "1");
        let e = word_for(&v, &v[2]).unwrap_err();
        assert!(e.contains("another snapshot is named \"4\""), "{e}");
        v[1].name = Some("4".into());
        assert!(find(&v, "4").unwrap_err().contains("2 snapshots are named"));
        v[1].ready = false;
        assert_eq!(newest_before_resync(&v), None);
    }
}
