// SPDX-License-Identifier: GPL-2.0

//! A `core::fmt::Write` sink over a caller-provided byte buffer.
//!
//! Used to format the status and table lines into a fixed buffer (the
//! kernel's status callback gets `result`/`maxlen`) without allocating.

use core::fmt;

/// Writes formatted text into a fixed byte slice.
///
/// A write that does not fit fails with `fmt::Error` and leaves the bytes
/// that did fit in place; [`BufWriter::overflowed`] then returns `true`.
#[derive(Debug)]
pub struct BufWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
    overflow: bool,
}

impl<'a> BufWriter<'a> {
    /// Creates a writer that fills `buf` from its start.
    pub fn new(buf: &'a mut [u8]) -> Self {
        BufWriter {
            buf,
            pos: 0,
            overflow: false,
        }
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.pos).unwrap_or(&[])
    }

    /// The text written so far, up to the last whole character.
    pub fn as_str(&self) -> &str {
        let bytes = self.as_bytes();
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => bytes
                .get(..e.valid_up_to())
                .and_then(|b| core::str::from_utf8(b).ok())
                .unwrap_or(""),
        }
    }

    /// Number of bytes written so far.
    pub fn len(&self) -> usize {
        self.pos
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// Whether some write did not fit.
    pub fn overflowed(&self) -> bool {
        self.overflow
    }
}

impl fmt::Write for BufWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        let room = self.buf.len().saturating_sub(self.pos);
        let n = bytes.len().min(room);
        let end = self.pos.saturating_add(n);
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.pos..end), bytes.get(..n)) {
            dst.copy_from_slice(src);
            self.pos = end;
        }
        if n < bytes.len() {
            self.overflow = true;
            return Err(fmt::Error);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::BufWriter;
    use core::fmt::Write;

    #[test]
    fn fits() {
        let mut b = [0u8; 8];
        let mut w = BufWriter::new(&mut b);
        assert!(write!(w, "ab{}", 12).is_ok());
        assert_eq!(w.as_str(), "ab12");
        assert!(!w.overflowed());
    }

    #[test]
    fn overflow() {
        let mut b = [0u8; 3];
        let mut w = BufWriter::new(&mut b);
        assert!(w.write_str("abcd").is_err());
        assert!(w.overflowed());
        assert_eq!(w.as_bytes(), b"abc");
    }
}
