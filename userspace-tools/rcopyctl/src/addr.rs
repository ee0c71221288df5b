//! Peer and listening addresses as typed (`--peer`, `--local`, a resource
//! file's `address`): `a.b.c.d:port`, `[v6]:port` or `HOST:PORT`.
//!
//! The table holds an IP address, written as the kernel writes it back
//! (`rcopy_core::addr`: dotted IPv4, RFC 5952 IPv6), so that `adjust`
//! compares like with like. A host name is resolved when the table is built:
//! to its first IPv4 address, else its first IPv6 address; rcopyctl says
//! which address it used (on stderr, once per address).
//!
//! A bad address is a usage error quoting what was typed; a name that does
//! not resolve is a failure (exit 1): the name may be right and DNS down.

use std::collections::HashSet;
use std::net::{Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::Mutex;

use rcopy_core::addr::{Ip, SockAddr};

use crate::error::{os_msg, Error};

/// The forms an address may take, for messages.
pub const FORMS: &str = "a.b.c.d:port, [v6]:port or HOST:PORT";

/// An address as typed, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// An IP address, in the form the table takes and shows.
    Literal(String),
    /// A host name and port, to resolve.
    Host(String, u16),
}

/// A port: decimal digits only, 1 to 65535.
fn port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|&p| p > 0)
}

/// A DNS host name: dot-separated labels of letters, digits and `-` (not
/// at either end of a label), 1 to 63 bytes each, 253 in all; one trailing
/// dot allowed.
fn host_name_ok(h: &str) -> bool {
    let h = h.strip_suffix('.').unwrap_or(h);
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Checks an address; `label` names where it came from (`--peer`,
/// `address`...). Every refusal is a usage error quoting what was typed.
pub fn parse(label: &str, addr: &str) -> Result<Addr, Error> {
    let bad = |why: String| Error::usage(format!("{label} {addr:?}: {why}"));
    let bad_port = |p: &str| {
        bad(format!(
            "the port {p:?} must be a number from 1 to 65535 ({FORMS})"
        ))
    };
    if let Some(rest) = addr.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Err(bad(
                "an IPv6 address needs its closing ']': [v6]:port".into()
            ));
        };
        if inside.contains('%') {
            return Err(bad(
                "IPv6 zone indexes (%eth0, link-local addresses) are not supported: give a \
                 global or unique local address"
                    .into(),
            ));
        }
        let ip: Ipv6Addr = inside
            .parse()
            .map_err(|_| bad(format!("{inside:?} is not an IPv6 address")))?;
        let Some(p) = after.strip_prefix(':') else {
            return Err(bad("the port goes after the brackets: [v6]:port".into()));
        };
        let p = port(p).ok_or_else(|| bad_port(p))?;
        let sa = SockAddr {
            ip: Ip::V6(ip.octets()),
            port: p,
        };
        return Ok(Addr::Literal(sa.to_string()));
    }
    let Some((host, p)) = addr.rsplit_once(':') else {
        return Err(bad(format!("must be {FORMS}")));
    };
    if host.contains(':') {
        return Err(bad(
            "an IPv6 address goes in brackets, the port after them: [v6]:port".into(),
        ));
    }
    if host.is_empty() {
        return Err(bad(format!("no host before the port ({FORMS})")));
    }
    let p = port(p).ok_or_else(|| bad_port(p))?;
    // Digits and dots only: meant as IPv4 (no top-level domain is numeric),
    // never handed to the resolver, which would read "10.0.0" as 10.0.0.0.
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return match SockAddr::parse(addr.as_bytes()) {
            Some(sa) => Ok(Addr::Literal(sa.to_string())),
            None => Err(bad(format!(
                "{host:?} is not an IPv4 address (a.b.c.d, each 0 to 255)"
            ))),
        };
    }
    if !host_name_ok(host) {
        return Err(bad(format!(
            "{host:?} is not a valid host name (letters, digits, '-' and '.') ({FORMS})"
        )));
    }
    Ok(Addr::Host(host.to_string(), p))
}

/// The address to use among a name's: the first IPv4 one, else the first
/// IPv6 one without a zone.
pub fn pick(found: &[SocketAddr]) -> Option<SockAddr> {
    let to = |a: &SocketAddr| match a {
        SocketAddr::V4(v4) => SockAddr {
            ip: Ip::V4(v4.ip().octets()),
            port: v4.port(),
        },
        SocketAddr::V6(v6) => SockAddr {
            ip: Ip::V6(v6.ip().octets()),
            port: v6.port(),
        },
    };
    found
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| {
            found
                .iter()
                .find(|a| matches!(a, SocketAddr::V6(v6) if v6.scope_id() == 0))
        })
        .map(to)
}

/// Prints `msg` on stderr, once per run (a command may resolve the same
/// address more than once).
fn note_once(msg: String) {
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut g = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if g.get_or_insert_with(HashSet::new).insert(msg.clone()) {
        crate::err_line(&Error::new(msg));
    }
}

/// `addr` as the table takes it: a literal in the kernel's form, a host
/// name resolved (saying which address was used, on stderr).
pub fn resolve(label: &str, addr: &str) -> Result<String, Error> {
    let (used, note) = resolve_noted(label, addr)?;
    if let Some(n) = note {
        note_once(n);
    }
    Ok(used)
}

/// [`resolve`], returning the note about a resolved name instead of
/// printing it.
pub fn resolve_noted(label: &str, addr: &str) -> Result<(String, Option<String>), Error> {
    let (host, p) = match parse(label, addr)? {
        Addr::Literal(s) => return Ok((s, None)),
        Addr::Host(h, p) => (h, p),
    };
    let found: Vec<SocketAddr> = (host.as_str(), p)
        .to_socket_addrs()
        .map_err(|e| {
            Error::new(format!(
                "{label} {addr:?}: cannot resolve the host name {host:?}: {}",
                os_msg(&e)
            ))
        })?
        .collect();
    let sa = pick(&found).ok_or_else(|| {
        Error::new(format!(
            "{label} {addr:?}: the host name {host:?} has no usable address (IPv4, or IPv6 \
             without a zone index)"
        ))
    })?;
    let used = sa.to_string();
    let family = match sa.ip {
        Ip::V4(_) => "IPv4",
        Ip::V6(_) => "IPv6",
    };
    let note = format!(
        "{label} {addr:?}: {host} resolved to {used} ({family}): the table uses that address"
    );
    Ok((used, Some(note)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> String {
        match parse("--peer", s).unwrap() {
            Addr::Literal(l) => l,
            other => panic!("{other:?}"),
        }
    }

    fn usage(s: &str) -> String {
        let e = parse("--peer", s).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{s}: {e}");
        let m = e.to_string();
        assert!(
            m.starts_with(&format!("--peer {s:?}: ")),
            "what was typed is quoted: {m}"
        );
        m
    }

    #[test]
    fn literals_in_the_kernels_form() {
        assert_eq!(lit("10.77.0.2:7788"), "10.77.0.2:7788");
        assert_eq!(lit("[::1]:7788"), "[::1]:7788");
        assert_eq!(lit("[FD77:0:0::0002]:7788"), "[fd77::2]:7788");
        assert_eq!(lit("[2001:db8:0:0:1:0:0:1]:1"), "[2001:db8::1:0:0:1]:1");
        // The dotted tail, which the kernel does not read, is rewritten.
        assert_eq!(lit("[::ffff:10.0.0.1]:7788"), "[::ffff:a00:1]:7788");
        // What the kernel itself reads back.
        for s in ["[fd77::2]:7788", "[::ffff:a00:1]:7788", "10.77.0.2:7788"] {
            let sa = SockAddr::parse(lit(s).as_bytes()).unwrap();
            assert_eq!(sa.to_string(), s);
        }
    }

    #[test]
    fn host_names() {
        assert_eq!(
            parse("--peer", "beta:7788").unwrap(),
            Addr::Host("beta".into(), 7788)
        );
        assert_eq!(
            parse("address", "beta.example.org.:1").unwrap(),
            Addr::Host("beta.example.org.".into(), 1)
        );
        assert_eq!(
            parse("--local", "node-2:65535").unwrap(),
            Addr::Host("node-2".into(), 65535)
        );
    }

    #[test]
    fn refusals_quote_what_was_typed() {
        assert!(usage("beta").ends_with(&format!("must be {FORMS}")));
        for p in ["beta:", "beta:0", "beta:99999", "beta:+1", "beta:77x"] {
            assert!(usage(p).contains("must be a number from 1 to 65535"), "{p}");
        }
        assert!(usage(":7788").contains("no host before the port"));
        assert!(usage("be ta:1").contains("is not a valid host name"));
        assert!(usage("-beta:1").contains("is not a valid host name"));
        assert!(usage("10.0.0:7788").contains("\"10.0.0\" is not an IPv4 address"));
        assert!(usage("10.0.0.256:7788").contains("is not an IPv4 address"));
        assert!(usage("::1:7788").contains("goes in brackets"));
        assert!(usage("[::1:7788").contains("closing ']'"));
        assert!(usage("[::1]7788").contains("the port goes after the brackets"));
        assert!(usage("[::1]:").contains("must be a number from 1 to 65535"));
        assert!(usage("[::g]:1").contains("\"::g\" is not an IPv6 address"));
        assert!(usage("[fe80::1%eth0]:7788").contains("zone indexes"));
    }

    #[test]
    fn picks_ipv4_first() {
        let v6: SocketAddr = "[fd77::2]:7788".parse().unwrap();
        let v4: SocketAddr = "10.77.0.2:7788".parse().unwrap();
        let ll = SocketAddr::V6(std::net::SocketAddrV6::new(
            "fe80::1".parse().unwrap(),
            7788,
            0,
            2,
        ));
        assert_eq!(pick(&[v6, v4]).unwrap().to_string(), "10.77.0.2:7788");
        assert_eq!(pick(&[ll, v6]).unwrap().to_string(), "[fd77::2]:7788");
        assert_eq!(pick(&[ll]), None);
        assert_eq!(pick(&[]), None);
    }

    #[test]
    fn resolution() {
        assert_eq!(resolve("--peer", "10.0.0.2:7788").unwrap(), "10.0.0.2:7788");
        assert_eq!(resolve("--peer", "[::1]:7788").unwrap(), "[::1]:7788");
        // localhost: 127.0.0.1 wherever /etc/hosts is usual; ::1 on a v6-only one.
        let (l, note) = resolve_noted("--peer", "localhost:7788").unwrap();
        assert!(l == "127.0.0.1:7788" || l == "[::1]:7788", "{l}");
        let note = note.unwrap();
        assert!(
            note.starts_with(&format!(
                "--peer \"localhost:7788\": localhost resolved to {l} (IPv"
            )),
            "{note}"
        );
        assert!(note.ends_with("): the table uses that address"), "{note}");
        assert_eq!(resolve_noted("--peer", "10.0.0.2:1").unwrap().1, None);
        // A name that does not resolve is a failure, not a usage error.
        let e = resolve("--peer", "no-such-host.invalid:7788").unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(
            e.to_string().starts_with(
                "--peer \"no-such-host.invalid:7788\": cannot resolve the host name \
                 \"no-such-host.invalid\": "
            ),
            "{e}"
        );
    }
}
