//! A temporary file for unit tests (`#[cfg(test)]` only).

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A temporary file of `len` bytes (sparse), removed on drop.
pub struct TempFile(std::path::PathBuf);

impl TempFile {
    /// A new file named after the test process, a counter and `tag`.
    pub fn new(tag: &str, len: u64) -> TempFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "rcopyctl-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let f = File::create(&p).unwrap();
        f.set_len(len).unwrap();
        TempFile(p)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }

    pub fn write_at(&self, off: u64, b: &[u8]) {
        let f = OpenOptions::new().write(true).open(&self.0).unwrap();
        f.write_all_at(b, off).unwrap();
    }

    pub fn read_at(&self, off: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0; len];
        File::open(&self.0)
            .unwrap()
            .read_exact_at(&mut b, off)
            .unwrap();
        b
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}
