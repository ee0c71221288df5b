//! `/dev/mapper/NAME` nodes when no udev creates them.
//!
//! With udev, its rules make `/dev/mapper/NAME` a symlink to `/dev/dm-N`.
//! Minimal systems (test VMs) may have no udev: there, like libdevmapper's
//! fallback, we create the block node ourselves and remove it again. A
//! symlink is always left to udev.

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

/// `/dev/mapper/<name>`.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from("/dev/mapper").join(name)
}

/// Creates `/dev/mapper/<name>` for device `dev` if nothing is there yet.
/// Best effort: failures are ignored (the device works without the node).
pub fn ensure(name: &str, dev: u64) {
    let p = path(name);
    if fs::symlink_metadata(&p).is_ok() {
        return;
    }
    let Ok(c) = CString::new(p.as_os_str().as_encoded_bytes()) else {
        return;
    };
    // SAFETY: `c` is a valid NUL-terminated path that lives across the call.
    let _ = unsafe { libc::mknod(c.as_ptr(), libc::S_IFBLK | 0o600, dev as libc::dev_t) };
}

/// Removes `/dev/mapper/<name>` if it is a block node for `dev` (one we
/// created); symlinks are udev's.
pub fn remove(name: &str, dev: u64) {
    let p = path(name);
    if let Ok(md) = fs::symlink_metadata(&p) {
        if md.file_type().is_block_device() && md.rdev() == dev {
            let _ = fs::remove_file(&p);
        }
    }
}
