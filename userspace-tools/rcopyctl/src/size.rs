//! Byte sizes: parsing `65536`, `64K`, `1M`, `1MiB` and printing `1.5 GiB`.

use std::fmt;

/// A size given by the user: its value in bytes and the text typed, so that
/// messages can quote what was typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Size {
    pub bytes: u64,
    pub text: String,
}

impl Size {
    /// A size typed as a plain number of bytes.
    pub fn bytes(n: u64) -> Size {
        Size {
            bytes: n,
            text: n.to_string(),
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// [`parse_size`] keeping the text (a clap value parser).
pub fn parse_size_arg(s: &str) -> Result<Size, String> {
    Ok(Size {
        bytes: parse_size(s)?,
        text: s.to_string(),
    })
}

const EXPECTED: &str = "expected a whole number of bytes, optionally followed by K, M, G or T";

/// Parses a byte count: a decimal number with an optional binary suffix
/// `K`, `M`, `G` or `T` (case-insensitive, optionally followed by `iB` or
/// `B`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (num, suffix) = t.split_at(digits);
    if suffix.starts_with(['.', ',']) && digits > 0 {
        return Err(format!(
            "invalid size {s:?}: fractions are not accepted ({EXPECTED}, e.g. 1536K for 1.5M)"
        ));
    }
    let n = rcopy_core::table::parse_u64(num.as_bytes())
        .ok_or_else(|| format!("invalid size {s:?}: {EXPECTED}"))?;
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "invalid size {s:?}: unknown suffix {suffix:?} ({EXPECTED})"
            ))
        }
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))
}

/// Formats a byte count for people: `512 B`, `64 KiB`, `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut unit = 0;
    let mut div: u64 = 1024;
    while unit + 1 < UNITS.len() && n / div >= 1024 {
        div <<= 10;
        unit += 1;
    }
    if n % div == 0 {
        format!("{} {}", n / div, UNITS[unit])
    } else {
        format!("{:.1} {}", n as f64 / div as f64, UNITS[unit])
    }
}

/// Formats seconds for people: `45s`, `3m05s`, `2h01m`.
pub fn human_secs(s: u64) -> String {
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert!(parse_size("").is_err());
        assert!(parse_size("K").is_err());
        assert!(parse_size("-4K").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert_eq!(
            parse_size("4X").unwrap_err(),
            "invalid size \"4X\": unknown suffix \"X\" (expected a whole number of bytes, \
             optionally followed by K, M, G or T)"
        );
        assert_eq!(
            parse_size("1.5M").unwrap_err(),
            "invalid size \"1.5M\": fractions are not accepted (expected a whole number of \
             bytes, optionally followed by K, M, G or T, e.g. 1536K for 1.5M)"
        );
        let s = parse_size_arg("100G").unwrap();
        assert_eq!((s.bytes, s.text.as_str()), (100 << 30, "100G"));
        assert_eq!(Size::bytes(7).to_string(), "7");
    }

    #[test]
    fn human() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(65536), "64 KiB");
        assert_eq!(human_bytes(1536 << 20), "1.5 GiB");
        assert_eq!(human_bytes(1 << 40), "1 TiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
        assert_eq!(human_secs(5), "5s");
        assert_eq!(human_secs(185), "3m05s");
        assert_eq!(human_secs(7260), "2h01m");
    }
}
