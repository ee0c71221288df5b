//! Resource files: one TOML file per pair, identical on both hosts, with a
//! section per host (as `/etc/drbd.d/*.res`). See `Documentation/rcopyctl.rst`.
//!
//! ```toml
//! mode = "sync"
//! pair_id = "r0"
//! secret_file = "/etc/rcopy.d/r0.key"
//!
//! [host.alpha]
//! role = "primary"
//! data = "/dev/vda"
//! meta = "/dev/vdb"
//! address = "10.77.0.1:7788"
//!
//! [host.beta]
//! role = "secondary"
//! data = "/dev/vda"
//! meta = "/dev/vdb"
//! address = "10.77.0.2:7788"
//! ```

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use rcopy_core::table;

use crate::cli::{parse_name, DeviceArgs, LinkArgs};
use crate::error::Error;
use crate::size::{parse_size, Size};
use crate::suggest;

/// Where resource files are by default.
pub const CONFIG_DIR: &str = "/etc/rcopy.d";

/// A size: a number of bytes, or a string with a suffix (`"64K"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Num(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
    pair_id: Option<Spanned<String>>,
    track_size: Option<Spanned<SizeValue>>,
    cache_size: Option<Spanned<SizeValue>>,
    resync_rate: Option<Spanned<SizeValue>>,
    timeout_ms: Option<Spanned<u64>>,
    secret_file: Option<Spanned<String>>,
    #[serde(default)]
    host: BTreeMap<String, Spanned<RawHost>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    role: Option<Spanned<String>>,
    data: Spanned<String>,
    meta: Spanned<String>,
    address: Option<Spanned<String>>,
    #[serde(alias = "snap-store")]
    snap_store: Option<Spanned<String>>,
    #[serde(alias = "split-dev")]
    split_dev: Option<Spanned<String>>,
}

/// One host's section, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    pub role: Option<String>,
    pub data: String,
    pub meta: String,
    pub address: Option<String>,
    /// The snapshot store this host uses while it is the secondary.
    pub snap_store: Option<String>,
    /// The local split copy of this host's device (standalone or primary).
    pub split_dev: Option<String>,
}

/// A checked resource file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// The device name (`/dev/mapper/NAME`).
    pub name: String,
    /// The file it came from.
    pub path: String,
    pub mode: Option<String>,
    pub pair_id: Option<String>,
    pub track_size: Option<Size>,
    pub cache_size: Option<Size>,
    pub resync_rate: Option<Size>,
    pub timeout_ms: Option<u64>,
    pub secret_file: Option<String>,
    /// Sections by host name.
    pub hosts: BTreeMap<String, Host>,
}

/// 1-based line and column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Builds `PATH:LINE:COL: msg` errors for one file.
struct Locator<'a> {
    path: &'a str,
    text: &'a str,
}

impl Locator<'_> {
    fn at(&self, span: Range<usize>, msg: impl std::fmt::Display) -> Error {
        let (l, c) = line_col(self.text, span.start);
        Error::usage(format!("{}:{l}:{c}: {msg}", self.path))
    }

    fn file(&self, msg: impl std::fmt::Display) -> Error {
        Error::usage(format!("{}: {msg}", self.path))
    }
}

fn size(
    loc: &Locator<'_>,
    key: &str,
    v: &Option<Spanned<SizeValue>>,
) -> Result<Option<Size>, Error> {
    let Some(v) = v else { return Ok(None) };
    match v.get_ref() {
        SizeValue::Num(n) => Ok(Some(Size::bytes(*n))),
        SizeValue::Text(t) => parse_size(t)
            .map(|bytes| {
                Some(Size {
                    bytes,
                    text: t.clone(),
                })
            })
            .map_err(|e| loc.at(v.span(), format!("{key}: {e}"))),
    }
}

/// Checks a one-word value (no whitespace, backslash or control characters).
fn word(loc: &Locator<'_>, key: &str, v: &Spanned<String>) -> Result<String, Error> {
    let s = v.get_ref();
    if s.is_empty()
        || s.chars()
            .any(|c| c.is_whitespace() || c == '\\' || c.is_control())
    {
        return Err(loc.at(
            v.span(),
            format!("{key} {s:?}: must be one word (no spaces, backslashes or control characters)"),
        ));
    }
    Ok(s.clone())
}

/// Parses and checks the text of a resource file. `stem` (the file name
/// without `.toml`) is the device name unless the file sets `name`.
pub fn parse(path: &str, stem: &str, text: &str) -> Result<Resource, Error> {
    let loc = Locator { path, text };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let msg = e.message().trim_end().to_string();
        match e.span() {
            Some(span) => loc.at(span, msg),
            None => loc.file(msg),
        }
    })?;
    let name = match &raw.name {
        Some(n) => parse_name(n.get_ref()).map_err(|e| loc.at(n.span(), format!("name: {e}")))?,
        None => parse_name(stem).map_err(|e| loc.file(format!("file name: {e}")))?,
    };
    if let Some(m) = &raw.mode {
        let v = m.get_ref();
        if v != "sync" && v != "async" {
            return Err(loc.at(
                m.span(),
                format!(
                    "mode {v:?}: must be sync or async{}",
                    suggest::hint(v, &["sync", "async"])
                ),
            ));
        }
    }
    let pair_id = raw
        .pair_id
        .as_ref()
        .map(|p| word(&loc, "pair_id", p))
        .transpose()?;
    let track_size = size(&loc, "track_size", &raw.track_size)?;
    if let (Some(t), Some(sp)) = (&track_size, &raw.track_size) {
        if !table::track_size_valid(t.bytes) {
            return Err(loc.at(
                sp.span(),
                format!(
                    "track_size {:?}: must be a power of two from 4K to 16M",
                    t.text
                ),
            ));
        }
    }
    let cache_size = size(&loc, "cache_size", &raw.cache_size)?;
    let resync_rate = size(&loc, "resync_rate", &raw.resync_rate)?;
    if let Some(t) = &raw.timeout_ms {
        if !(500..=600_000).contains(t.get_ref()) {
            return Err(loc.at(
                t.span(),
                format!("timeout_ms {}: must be from 500 to 600000", t.get_ref()),
            ));
        }
    }
    if raw.host.is_empty() {
        return Err(loc.file("no [host.NAME] section: give one per host"));
    }
    let mut hosts = BTreeMap::new();
    let mut roles: Vec<(String, String, Range<usize>)> = Vec::new();
    for (hname, h) in &raw.host {
        let span = h.span();
        let h = h.get_ref();
        let role = match &h.role {
            Some(r) => {
                let v = r.get_ref();
                if v != "primary" && v != "secondary" {
                    return Err(loc.at(
                        r.span(),
                        format!(
                            "role {v:?}: must be primary or secondary{}",
                            suggest::hint(v, &["primary", "secondary"])
                        ),
                    ));
                }
                roles.push((hname.clone(), v.clone(), r.span()));
                Some(v.clone())
            }
            None => None,
        };
        let address = match &h.address {
            Some(a) => {
                if let Err(e) = crate::addr::parse("address", a.get_ref()) {
                    return Err(loc.at(a.span(), e));
                }
                Some(a.get_ref().clone())
            }
            None => None,
        };
        for (key, v) in [("data", &h.data), ("meta", &h.meta)] {
            if v.get_ref().is_empty() {
                return Err(loc.at(v.span(), format!("{key}: empty device path")));
            }
        }
        if let Some(st) = &h.snap_store {
            if st.get_ref().is_empty() {
                return Err(loc.at(st.span(), "snap_store: empty device path"));
            }
            if role.is_none() {
                return Err(loc.at(
                    st.span(),
                    format!(
                        "host {hname}: snap_store is for one side of a pair (a host with a \
                         role)"
                    ),
                ));
            }
        }
        if let Some(sd) = &h.split_dev {
            if sd.get_ref().is_empty() {
                return Err(loc.at(sd.span(), "split_dev: empty device path"));
            }
            if role.as_deref() == Some("secondary") {
                return Err(loc.at(
                    sd.span(),
                    format!(
                        "host {hname}: {} (after a switchover, move split_dev to the new \
                         primary's section)",
                        table::TableError::SplitOnSecondary.message()
                    ),
                ));
            }
        }
        if role.is_some() && address.is_none() {
            return Err(loc.at(
                span,
                format!("host {hname}: a host with a role needs an address (ADDR:PORT)"),
            ));
        }
        hosts.insert(
            hname.clone(),
            Host {
                name: hname.clone(),
                role,
                data: h.data.get_ref().clone(),
                meta: h.meta.get_ref().clone(),
                address,
                snap_store: h.snap_store.as_ref().map(|v| v.get_ref().clone()),
                split_dev: h.split_dev.as_ref().map(|v| v.get_ref().clone()),
            },
        );
    }
    if !roles.is_empty() {
        let prim = roles.iter().filter(|r| r.1 == "primary").count();
        let sec = roles.iter().filter(|r| r.1 == "secondary").count();
        if roles.len() != hosts.len() || hosts.len() != 2 || prim != 1 || sec != 1 {
            let span = roles.last().map(|r| r.2.clone()).unwrap_or(0..0);
            return Err(loc.at(
                span,
                format!(
                    "a pair needs exactly two hosts, one role = \"primary\" and one role = \
                     \"secondary\" (found {} host(s): {prim} primary, {sec} secondary)",
                    hosts.len()
                ),
            ));
        }
        if raw.secret_file.is_none() {
            return Err(loc.file(
                "a pair needs secret_file = \"PATH\" (a file whose first line is the shared secret)",
            ));
        }
    }
    Ok(Resource {
        name,
        path: path.to_string(),
        mode: raw.mode.map(Spanned::into_inner),
        pair_id,
        track_size,
        cache_size,
        resync_rate,
        timeout_ms: raw.timeout_ms.map(Spanned::into_inner),
        secret_file: raw.secret_file.map(Spanned::into_inner),
        hosts,
    })
}

/// Reads and parses `DIR/NAME.toml`.
pub fn load(dir: &str, name: &str) -> Result<Resource, Error> {
    let path = format!("{}/{name}.toml", dir.trim_end_matches('/'));
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::new(format!(
            "resource {name}: cannot read {path}: {}",
            crate::error::os_msg(&e)
        ))
    })?;
    parse(&path, name, &text)
}

/// The resource names in `dir`: its `*.toml` files, sorted.
pub fn list(dir: &str) -> Result<Vec<String>, Error> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| Error::new(format!("cannot read {dir}: {}", crate::error::os_msg(&e))))?;
    let mut names: Vec<String> = rd
        .filter_map(Result::ok)
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            n.strip_suffix(".toml").map(str::to_string)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// This machine's host name (`uname -n`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl Resource {
    /// The section for `host`: its exact name, or its first label
    /// (`alpha` for `alpha.example.org`).
    pub fn host(&self, host: &str) -> Result<&Host, Error> {
        let short = host.split('.').next().unwrap_or(host);
        self.hosts
            .get(host)
            .or_else(|| self.hosts.get(short))
            .ok_or_else(|| {
                let names: Vec<&str> = self.hosts.keys().map(String::as_str).collect();
                Error::usage(format!(
                    "{}: no [host.{short}] section for this host (sections: {}); \
                     give --host NAME",
                    self.path,
                    names.join(", ")
                ))
            })
    }

    /// The addresses of a pair for `host`: `(its own, the other host's)`
    /// (where each listens when secondary). `promote` and `demote` take the
    /// one a table lacks from here.
    pub fn addresses(&self, host: &str) -> Result<(Option<String>, Option<String>), Error> {
        let me = self.host(host)?;
        let other = self.hosts.values().find(|h| h.name != me.name);
        Ok((me.address.clone(), other.and_then(|h| h.address.clone())))
    }

    /// The `create` arguments for the device on `host`: its role, its own
    /// address as `local` (secondary) or its peer's as `peer` (primary).
    pub fn args_for(&self, host: &str) -> Result<(DeviceArgs, Option<String>, LinkArgs), Error> {
        let me = self.host(host)?;
        let dev = DeviceArgs {
            name: self.name.clone(),
            data: me.data.clone(),
            meta: me.meta.clone(),
            track_size: self.track_size.clone(),
            dry_run: false,
            show_secret: false,
            split_dev: me.split_dev.clone(),
        };
        let mut link = LinkArgs::default();
        if let Some(role) = &me.role {
            let other = self
                .hosts
                .values()
                .find(|h| h.name != me.name)
                .ok_or_else(|| Error::usage(format!("{}: a pair needs two hosts", self.path)))?;
            if role == "primary" {
                link.peer = other.address.clone();
            } else {
                link.local = me.address.clone();
            }
            link.mode = self.mode.clone();
            link.secret_file = self.secret_file.clone();
            link.pair_id = self.pair_id.clone();
            link.cache_size = self.cache_size.clone();
            link.timeout_ms = self.timeout_ms.map(|t| t.to_string());
            link.resync_rate = self.resync_rate.clone();
            link.snap_store = me.snap_store.clone();
        }
        Ok((dev, me.role.clone(), link))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
# r0: alpha replicates to beta
mode = "async"
pair_id = "r0"
track_size = "256K"
cache_size = "128M"
resync_rate = 10485760
timeout_ms = 10000
secret_file = "/etc/rcopy.d/r0.key"

[host.alpha]
role = "primary"
data = "/dev/vda"
meta = "/dev/vdb"
address = "10.77.0.1:7788"

[host.beta]
role = "secondary"
data = "/dev/vdc"
meta = "/dev/vdd"
address = "10.77.0.2:7788"
"#;

    fn err(text: &str) -> String {
        let e = parse("/etc/rcopy.d/r0.toml", "r0", text).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        e.to_string()
    }

    #[test]
    fn good_file() {
        let r = parse("r0.toml", "r0", GOOD).unwrap();
        assert_eq!(r.name, "r0");
        assert_eq!(r.mode.as_deref(), Some("async"));
        assert_eq!(r.track_size.as_ref().unwrap().bytes, 256 << 10);
        assert_eq!(r.resync_rate.as_ref().unwrap().bytes, 10 << 20);
        assert_eq!(r.hosts.len(), 2);

        let (dev, role, link) = r.args_for("alpha").unwrap();
        assert_eq!(
            (dev.name.as_str(), dev.data.as_str(), dev.meta.as_str()),
            ("r0", "/dev/vda", "/dev/vdb")
        );
        assert_eq!(role.as_deref(), Some("primary"));
        assert_eq!(link.peer.as_deref(), Some("10.77.0.2:7788"));
        assert_eq!(link.local, None);
        assert_eq!(link.secret_file.as_deref(), Some("/etc/rcopy.d/r0.key"));
        assert_eq!(link.timeout_ms.as_deref(), Some("10000"));
        assert_eq!(link.cache_size.as_ref().unwrap().text, "128M");

        // A fully qualified host name finds its short section.
        let (dev, role, link) = r.args_for("beta.example.org").unwrap();
        assert_eq!(dev.data, "/dev/vdc");
        assert_eq!(role.as_deref(), Some("secondary"));
        assert_eq!(link.local.as_deref(), Some("10.77.0.2:7788"));
        assert_eq!(link.peer, None);

        assert_eq!(
            r.addresses("beta").unwrap(),
            (
                Some("10.77.0.2:7788".to_string()),
                Some("10.77.0.1:7788".to_string())
            )
        );
        assert!(r.addresses("gamma").is_err());

        let e = r.args_for("gamma").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.to_string(),
            "r0.toml: no [host.gamma] section for this host (sections: alpha, beta); give --host NAME"
        );
    }

    #[test]
    fn snap_store_key() {
        // Per host, under either spelling; it reaches the secondary's options.
        let text = GOOD.replace(
            "meta = \"/dev/vdd\"\n",
            "meta = \"/dev/vdd\"\nsnap_store = \"/dev/vde\"\n",
        );
        let r = parse("r0.toml", "r0", &text).unwrap();
        assert_eq!(r.hosts["beta"].snap_store.as_deref(), Some("/dev/vde"));
        assert_eq!(r.hosts["alpha"].snap_store, None);
        let (_, _, link) = r.args_for("beta").unwrap();
        assert_eq!(link.snap_store.as_deref(), Some("/dev/vde"));
        let (_, _, link) = r.args_for("alpha").unwrap();
        assert_eq!(link.snap_store, None);
        let r = parse("r0.toml", "r0", &text.replace("snap_store", "snap-store")).unwrap();
        assert_eq!(r.hosts["beta"].snap_store.as_deref(), Some("/dev/vde"));
        let e = err(&text.replace("\"/dev/vde\"", "\"\""));
        assert!(e.contains("snap_store: empty device path"), "{e}");
        // Only with a role (the kernel refuses it on a standalone device).
        let e = err(
            "[host.alpha]\ndata = \"/dev/vda\"\nmeta = \"/dev/vdb\"\nsnap_store = \"/dev/vdc\"\n",
        );
        assert!(e.contains("snap_store is for one side of a pair"), "{e}");
    }

    #[test]
    fn split_dev_key() {
        // Per host, either spelling, on the primary (or a standalone host): it
        // reaches the device arguments, whatever the role.
        let text = GOOD.replace(
            "meta = \"/dev/vdb\"\n",
            "meta = \"/dev/vdb\"\nsplit_dev = \"/dev/vde\"\n",
        );
        let r = parse("r0.toml", "r0", &text).unwrap();
        assert_eq!(r.hosts["alpha"].split_dev.as_deref(), Some("/dev/vde"));
        assert_eq!(r.hosts["beta"].split_dev, None);
        let (dev, _, _) = r.args_for("alpha").unwrap();
        assert_eq!(dev.split_dev.as_deref(), Some("/dev/vde"));
        let (dev, _, _) = r.args_for("beta").unwrap();
        assert_eq!(dev.split_dev, None);
        let r = parse("r0.toml", "r0", &text.replace("split_dev", "split-dev")).unwrap();
        assert_eq!(r.hosts["alpha"].split_dev.as_deref(), Some("/dev/vde"));
        let e = err(&text.replace("\"/dev/vde\"", "\"\""));
        assert!(e.contains("split_dev: empty device path"), "{e}");
        // Not on the secondary (the kernel refuses it there).
        let e = err(&GOOD.replace(
            "meta = \"/dev/vdd\"\n",
            "meta = \"/dev/vdd\"\nsplit_dev = \"/dev/vde\"\n",
        ));
        assert!(
            e.contains(
                "host beta: split_dev is for a standalone device or a primary, not a secondary"
            ),
            "{e}"
        );
        assert!(e.starts_with("/etc/rcopy.d/r0.toml:21:13: "), "{e}");
        // A standalone host.
        let r = parse(
            "s.toml",
            "s",
            "[host.alpha]\ndata = \"/dev/vda\"\nmeta = \"/dev/vdb\"\nsplit_dev = \"/dev/vdc\"\n",
        )
        .unwrap();
        let (dev, role, link) = r.args_for("alpha").unwrap();
        assert_eq!((dev.split_dev.as_deref(), role), (Some("/dev/vdc"), None));
        assert!(!link.any());
    }

    #[test]
    fn standalone_file() {
        let r = parse(
            "s.toml",
            "s",
            "[host.alpha]\ndata = \"/dev/vda\"\nmeta = \"/dev/vdb\"\n",
        )
        .unwrap();
        let (dev, role, link) = r.args_for("alpha").unwrap();
        assert_eq!(dev.name, "s");
        assert_eq!(role, None);
        assert!(!link.any());
    }

    #[test]
    fn errors_have_line_and_column() {
        // Bad TOML syntax.
        assert_eq!(
            err("mode = \"sync\"\npair_id = r0\n"),
            "/etc/rcopy.d/r0.toml:2:11: string values must be quoted, expected literal string"
        );
        // An unknown key.
        let e = err(&GOOD.replace("timeout_ms = 10000", "timeout = 10000"));
        assert!(
            e.starts_with("/etc/rcopy.d/r0.toml:8:1: unknown field `timeout`"),
            "{e}"
        );
        // Bad values, with the position of the value and a suggestion.
        assert_eq!(
            err(&GOOD.replace("role = \"primary\"", "role = \"primry\"")),
            "/etc/rcopy.d/r0.toml:12:8: role \"primry\": must be primary or secondary; did you mean \"primary\"?"
        );
        assert_eq!(
            err(&GOOD.replace("mode = \"async\"", "mode = \"asnyc\"")),
            "/etc/rcopy.d/r0.toml:3:8: mode \"asnyc\": must be sync or async; did you mean \"async\"?"
        );
        assert_eq!(
            err(&GOOD.replace("\"256K\"", "\"1.5M\"")),
            "/etc/rcopy.d/r0.toml:5:14: track_size: invalid size \"1.5M\": fractions are not \
             accepted (expected a whole number of bytes, optionally followed by K, M, G or T, \
             e.g. 1536K for 1.5M)"
        );
        assert_eq!(
            err(&GOOD.replace("\"256K\"", "\"3000\"")),
            "/etc/rcopy.d/r0.toml:5:14: track_size \"3000\": must be a power of two from 4K to 16M"
        );
        assert_eq!(
            err(&GOOD.replace("timeout_ms = 10000", "timeout_ms = 5")),
            "/etc/rcopy.d/r0.toml:8:14: timeout_ms 5: must be from 500 to 600000"
        );
        assert_eq!(
            err(&GOOD.replace("\"10.77.0.2:7788\"", "\"beta\"")),
            "/etc/rcopy.d/r0.toml:21:11: address \"beta\": must be a.b.c.d:port, [v6]:port or \
             HOST:PORT"
        );
        assert_eq!(
            err(&GOOD.replace("\"10.77.0.2:7788\"", "\"[fe80::2%eth0]:7788\"")),
            "/etc/rcopy.d/r0.toml:21:11: address \"[fe80::2%eth0]:7788\": IPv6 zone indexes \
             (%eth0, link-local addresses) are not supported: give a global or unique local \
             address"
        );
        // IPv6 and host names are accepted (a name is resolved when the
        // device is set up).
        assert!(parse(
            "r0.toml",
            "r0",
            &GOOD.replace("\"10.77.0.2:7788\"", "\"[fd77::2]:7788\"")
        )
        .is_ok());
        assert!(parse(
            "r0.toml",
            "r0",
            &GOOD.replace("\"10.77.0.2:7788\"", "\"beta:7788\"")
        )
        .is_ok());
        assert_eq!(
            err(&GOOD.replace("pair_id = \"r0\"", "pair_id = \"r 0\"")),
            "/etc/rcopy.d/r0.toml:4:11: pair_id \"r 0\": must be one word (no spaces, \
             backslashes or control characters)"
        );
        // Missing required key.
        let e = err(&GOOD.replace("meta = \"/dev/vdd\"\n", ""));
        assert!(e.contains("missing field `meta`"), "{e}");
        assert!(e.starts_with("/etc/rcopy.d/r0.toml:1"), "{e}");
        // Pair rules.
        let e = err(&GOOD.replace("role = \"secondary\"", "role = \"primary\""));
        assert!(
            e.contains("exactly two hosts, one role = \"primary\""),
            "{e}"
        );
        assert!(
            e.contains("(found 2 host(s): 2 primary, 0 secondary)"),
            "{e}"
        );
        let e = err(&GOOD.replace("secret_file = \"/etc/rcopy.d/r0.key\"\n", ""));
        assert_eq!(
            e,
            "/etc/rcopy.d/r0.toml: a pair needs secret_file = \"PATH\" (a file whose first \
             line is the shared secret)"
        );
        assert_eq!(
            err("mode = \"sync\"\n"),
            "/etc/rcopy.d/r0.toml: no [host.NAME] section: give one per host"
        );
        // A secret may not be given in the file itself.
        let e = err(&format!("secret = \"k\"\n{GOOD}"));
        assert!(
            e.starts_with("/etc/rcopy.d/r0.toml:1:1: unknown field `secret`"),
            "{e}"
        );
    }

    #[test]
    fn positions() {
        assert_eq!(line_col("abc", 0), (1, 1));
        assert_eq!(line_col("abc\ndef", 5), (2, 2));
        assert_eq!(line_col("a\n\nb", 3), (3, 1));
    }
}
