//! Block device checks done before anything is sent to the kernel.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};

use crate::error::{os_msg, Error};

/// `BLKGETSIZE64` = `_IOR(0x12, 114, size_t)`.
const BLKGETSIZE64: u32 = (2 << 30) | (8 << 16) | (0x12 << 8) | 114;

/// A checked block device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDev {
    /// The path as given.
    pub path: String,
    /// Device number (`st_rdev`).
    pub rdev: u64,
    /// Size in bytes.
    pub size: u64,
}

impl BlockDev {
    /// `major:minor`, the form used in table lines.
    pub fn major_minor(&self) -> String {
        format!("{}:{}", libc::major(self.rdev), libc::minor(self.rdev))
    }
}

/// Size in bytes of an open block device.
pub fn size_of_file(f: &File) -> io::Result<u64> {
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which points
    // to a live local; the fd is open for the duration of the call.
    let rc = unsafe {
        libc::ioctl(
            f.as_raw_fd(),
            BLKGETSIZE64 as libc::Ioctl,
            &mut size as *mut u64,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(size)
}

/// Checks that `path` is a block device and reads its size; with
/// `exclusive`, also that nobody holds it exclusively (not mounted, not
/// claimed by another device). A device that a live table of ours holds is
/// checked without it (for a comparison or a reload). `role` names it in
/// errors ("data device", "metadata device").
pub fn inspect_with(role: &str, path: &str, exclusive: bool) -> Result<BlockDev, Error> {
    let md =
        fs::metadata(path).map_err(|e| Error::new(format!("{role} {path}: {}", os_msg(&e))))?;
    if !md.file_type().is_block_device() {
        return Err(Error::new(format!("{role} {path}: not a block device")));
    }
    // O_EXCL on a block device fails with EBUSY while it is mounted or
    // claimed (by a filesystem, md, another device-mapper device...).
    let excl = if exclusive { libc::O_EXCL } else { 0 };
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(excl | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::EBUSY) {
                Error::new(format!(
                    "{role} {path} is in use (mounted, or held by another device)"
                ))
            } else {
                Error::new(format!("{role} {path}: {}", os_msg(&e)))
            }
        })?;
    let size = size_of_file(&f)
        .map_err(|e| Error::new(format!("{role} {path}: cannot read size: {}", os_msg(&e))))?;
    Ok(BlockDev {
        path: path.to_string(),
        rdev: md.rdev(),
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_number() {
        assert_eq!(BLKGETSIZE64, 0x80081272);
    }

    #[test]
    fn missing_and_not_block() {
        let e = inspect_with("data device", "/dev/does-not-exist-rcopy", true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "data device /dev/does-not-exist-rcopy: No such file or directory"
        );
        let e = inspect_with("metadata device", "/dev/null", false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "metadata device /dev/null: not a block device"
        );
    }
}
