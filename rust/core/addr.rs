// SPDX-License-Identifier: GPL-2.0

//! IPv4 socket addresses as written in table lines and status: `a.b.c.d:port`.

use core::fmt;

/// An IPv4 address and TCP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockAddr {
    /// Address octets, most significant first.
    pub ip: [u8; 4],
    /// TCP port.
    pub port: u16,
}

impl SockAddr {
    /// Parses `a.b.c.d:port` (decimal, no leading `+`, port 1..=65535).
    pub fn parse(s: &[u8]) -> Option<SockAddr> {
        let colon = s.iter().position(|&c| c == b':')?;
        let (host, port) = (s.get(..colon)?, s.get(colon + 1..)?);
        let port = parse_dec(port, 65535)?;
        if port == 0 {
            return None;
        }
        let mut ip = [0u8; 4];
        let mut parts = host.split(|&c| c == b'.');
        for octet in ip.iter_mut() {
            *octet = u8::try_from(parse_dec(parts.next()?, 255)?).ok()?;
        }
        if parts.next().is_some() {
            return None;
        }
        Some(SockAddr {
            ip,
            port: u16::try_from(port).ok()?,
        })
    }

    /// The address in network byte order, as `sin_addr.s_addr` holds it.
    pub fn ip_be(&self) -> u32 {
        u32::from_ne_bytes(self.ip)
    }

    /// The port in network byte order, as `sin_port` holds it.
    pub fn port_be(&self) -> u16 {
        self.port.to_be()
    }
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

impl fmt::Display for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.ip;
        write!(f, "{a}.{b}.{c}.{d}:{}", self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_show() {
        let a = SockAddr::parse(b"10.77.0.2:7788").unwrap();
        assert_eq!(a.ip, [10, 77, 0, 2]);
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
}
