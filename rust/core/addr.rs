// SPDX-License-Identifier: GPL-2.0

//! Socket addresses as written in table lines and status: `a.b.c.d:port` for
//! IPv4, `[v6]:port` for IPv6 (RFC 4291 text; shown in RFC 5952 form).

use core::fmt;

/// An IP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ip {
    /// IPv4 octets, most significant first.
    V4([u8; 4]),
    /// IPv6 octets, most significant first.
    V6([u8; 16]),
}

/// An IP address and TCP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockAddr {
    /// The address.
    pub ip: Ip,
    /// TCP port.
    pub port: u16,
}

impl SockAddr {
    /// The unspecified IPv4 address, port 0.
    pub const NONE: SockAddr = SockAddr {
        ip: Ip::V4([0; 4]),
        port: 0,
    };

    /// Parses `a.b.c.d:port` or `[v6]:port` (decimal port 1..=65535, no `+`; no
    /// zone index).
    pub fn parse(s: &[u8]) -> Option<SockAddr> {
        let (ip, port) = if s.first() == Some(&b'[') {
            let close = s.iter().position(|&c| c == b']')?;
            if s.get(close + 1) != Some(&b':') {
                return None;
            }
            (Ip::V6(parse_v6(s.get(1..close)?)?), s.get(close + 2..)?)
        } else {
            let colon = s.iter().position(|&c| c == b':')?;
            (Ip::V4(parse_v4(s.get(..colon)?)?), s.get(colon + 1..)?)
        };
        let port = parse_dec(port, 65535)?;
        if port == 0 {
            return None;
        }
        Some(SockAddr {
            ip,
            port: u16::try_from(port).ok()?,
        })
    }

    /// The port in network byte order, as `sin_port` holds it.
    pub fn port_be(&self) -> u16 {
        self.port.to_be()
    }
}

fn parse_v4(host: &[u8]) -> Option<[u8; 4]> {
    let mut ip = [0u8; 4];
    let mut parts = host.split(|&c| c == b'.');
    for octet in ip.iter_mut() {
        *octet = u8::try_from(parse_dec(parts.next()?, 255)?).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(ip)
}

/// RFC 4291 section 2.2 text: eight groups of 1-4 hex digits, one `::` standing
/// for one or more zero groups (the dotted-quad tail form is not accepted).
fn parse_v6(s: &[u8]) -> Option<[u8; 16]> {
    let mut head = [0u16; 8];
    let mut tail = [0u16; 8];
    let (mut nh, mut nt) = (0usize, 0usize);
    let (before, after) = match s.windows(2).position(|w| w == b"::") {
        Some(i) => (s.get(..i)?, Some(s.get(i + 2..)?)),
        None => (s, None),
    };
    let groups = |part: &[u8], out: &mut [u16; 8], n: &mut usize| -> Option<()> {
        if part.is_empty() {
            return Some(());
        }
        for g in part.split(|&c| c == b':') {
            if g.is_empty() || g.len() > 4 || *n >= 8 {
                return None;
            }
            let mut v = 0u16;
            for &c in g {
                v = v << 4 | u16::from(char::from(c).to_digit(16)? as u8);
            }
            *out.get_mut(*n)? = v;
            *n += 1;
        }
        Some(())
    };
    groups(before, &mut head, &mut nh)?;
    match after {
        None if nh != 8 => return None,
        None => {}
        Some(a) => {
            groups(a, &mut tail, &mut nt)?;
            // `::` stands for at least one group.
            if nh + nt > 7 {
                return None;
            }
        }
    }
    let mut w = [0u16; 8];
    w.get_mut(..nh)?.copy_from_slice(head.get(..nh)?);
    w.get_mut(8 - nt..)?.copy_from_slice(tail.get(..nt)?);
    let mut ip = [0u8; 16];
    for (i, g) in w.iter().enumerate() {
        ip.get_mut(2 * i..2 * i + 2)?
            .copy_from_slice(&g.to_be_bytes());
    }
    Some(ip)
}

/// Decimal with 1..=5 digits, at most `max`.
fn parse_dec(s: &[u8], max: u32) -> Option<u32> {
    if s.is_empty() || s.len() > 5 {
        return None;
    }
    let mut v = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    (v <= max).then_some(v)
}

/// RFC 5952: lowercase, no leading zeros, the longest run of two or more zero
/// groups (the first if tied) as `::`.
fn fmt_v6(ip: &[u8; 16], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut w = [0u16; 8];
    for (i, g) in w.iter_mut().enumerate() {
        *g = u16::from_be_bytes([ip[2 * i], ip[2 * i + 1]]);
    }
    let (mut best, mut best_len) = (8usize, 0usize);
    let mut i = 0;
    while i < 8 {
        if w[i] == 0 {
            let start = i;
            while i < 8 && w[i] == 0 {
                i += 1;
            }
            if i - start > best_len && i - start >= 2 {
                best = start;
                best_len = i - start;
            }
        } else {
            i += 1;
        }
    }
    let mut i = 0;
    while i < 8 {
        if i == best {
            f.write_str("::")?;
            i += best_len;
            continue;
        }
        if i > 0 && i != best + best_len {
            f.write_str(":")?;
        }
        write!(f, "{:x}", w[i])?;
        i += 1;
    }
    Ok(())
}

impl fmt::Display for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.ip {
            Ip::V4([a, b, c, d]) => write!(f, "{a}.{b}.{c}.{d}:{}", self.port),
            Ip::V6(ip) => {
                f.write_str("[")?;
                fmt_v6(ip, f)?;
                write!(f, "]:{}", self.port)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_show() {
        let a = SockAddr::parse(b"10.77.0.2:7788").unwrap();
        assert_eq!(a.ip, Ip::V4([10, 77, 0, 2]));
        assert_eq!(a.port, 7788);
        for bad in [
            &b""[..],
            b"10.77.0.2",
            b"10.77.0.2:",
            b"10.77.0.2:0",
            b"10.77.0.2:65536",
            b"10.77.0:1",
            b"10.77.0.2.1:1",
            b"256.1.1.1:1",
            b"a.b.c.d:1",
            b"1.1.1.1:+1",
            b":1",
        ] {
            assert_eq!(SockAddr::parse(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn ipv6() {
        extern crate std;
        use std::string::ToString;
        for (text, shown) in [
            ("[::1]:7788", "[::1]:7788"),
            ("[fd77:0:0:0:0:0:0:1]:1", "[fd77::1]:1"),
            ("[FD77::0:1]:2", "[fd77::1]:2"),
            ("[1:0:0:2:0:0:0:3]:3", "[1:0:0:2::3]:3"),
            ("[1:2:3:4:5:6:7:8]:4", "[1:2:3:4:5:6:7:8]:4"),
            ("[::]:5", "[::]:5"),
            ("[1::]:6", "[1::]:6"),
            ("[1:0:2:3:4:5:6:7]:7", "[1:0:2:3:4:5:6:7]:7"),
        ] {
            let a = SockAddr::parse(text.as_bytes()).expect(text);
            assert_eq!(a.to_string(), shown);
            assert_eq!(SockAddr::parse(shown.as_bytes()), Some(a));
        }
        for bad in [
            &b"[::1]"[..],
            b"[::1]7788",
            b"::1:7788",
            b"[1:2:3:4:5:6:7:8:9]:1",
            b"[1::2::3]:1",
            b"[12345::]:1",
            b"[1:2:3:4:5:6:7]:1",
            b"[1:2:3:4::5:6:7:8]:1",
            b"[fe80::1%eth0]:1",
            b"[:1]:1",
            b"[::1]:0",
        ] {
            assert_eq!(SockAddr::parse(bad), None, "{:?}", bad);
        }
    }
}
