//! `/dev/mapper/NAME` after a device is activated or removed.
//!
//! With udev synchronisation (see `udev`), udev's rules have made
//! `/dev/mapper/NAME` (a symlink to `/dev/dm-N`) before the resume returns;
//! this only checks it. Without udev (the test VMs, `DM_DISABLE_UDEV`), like
//! libdevmapper's fallback, we create the block node ourselves (mode 0600),
//! replace a stale one that names another device, and remove ours again on
//! removal. A symlink to the right device is always left alone.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::error::{os_msg, Error};
use crate::udev::Outcome;

/// Where device-mapper nodes are.
pub const DM_DIR: &str = "/dev/mapper";

/// `dev` as `major:minor`.
fn mm(dev: u64) -> String {
    format!("{}:{}", libc::major(dev), libc::minor(dev))
}

/// What is at a node's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Nothing.
    Missing,
    /// A block device (or a link to one) for the right device.
    Right,
    /// A block node, or a symlink (dangling or to another block device),
    /// for another device: stale, replaced.
    Stale,
    /// Something that is not a block device (a file, a directory...).
    Foreign,
}

/// Looks at `p` for device `dev`.
pub fn inspect(p: &Path, dev: u64) -> Found {
    let Ok(lmd) = fs::symlink_metadata(p) else {
        return Found::Missing;
    };
    match fs::metadata(p) {
        Ok(md) if md.file_type().is_block_device() => {
            if md.rdev() == dev {
                Found::Right
            } else {
                Found::Stale
            }
        }
        // A dangling symlink.
        Err(_) if lmd.file_type().is_symlink() => Found::Stale,
        _ => Found::Foreign,
    }
}

fn mknod(p: &Path, dev: u64) -> io::Result<()> {
    let c = CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: `c` is a valid NUL-terminated path that lives across the call.
    if unsafe { libc::mknod(c.as_ptr(), libc::S_IFBLK | 0o600, dev as libc::dev_t) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes `dir/name` a block node for `dev` unless it is one already (or a
/// link to one). Returns whether it made one.
pub fn ensure_at(dir: &Path, name: &str, dev: u64) -> Result<bool, Error> {
    let p = dir.join(name);
    let fail = |what: &str, e: &io::Error| {
        Error::new(format!(
            "cannot {what} {} (device {}): {}",
            p.display(),
            mm(dev),
            os_msg(e)
        ))
    };
    match inspect(&p, dev) {
        Found::Right => return Ok(false),
        Found::Foreign => {
            return Err(Error::new(format!(
                "{} exists and is not a block device: not replacing it (the device is {})",
                p.display(),
                mm(dev)
            )))
        }
        Found::Stale => fs::remove_file(&p).map_err(|e| fail("replace the stale", &e))?,
        Found::Missing => {}
    }
    fs::create_dir_all(dir).map_err(|e| fail("create the directory for", &e))?;
    match mknod(&p, dev) {
        Ok(()) => Ok(true),
        // Made at the same moment (udev after all): fine if right.
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) && inspect(&p, dev) == Found::Right => {
            Ok(false)
        }
        Err(e) => Err(fail("create", &e)),
    }
}

/// After `name` (device `dev`) was activated: `/dev/mapper/NAME` exists and
/// names it when this returns Ok. `udev` says how the resume was
/// synchronised; a udev that was expected but left no node, or was late,
/// gets a warning on stderr (then the node is made as without udev).
pub fn settle(name: &str, dev: u64, udev: &Outcome) -> Result<(), Error> {
    settle_at(Path::new(DM_DIR), name, dev, udev, &mut |w| {
        crate::err_line(&Error::new(format!("warning: {w}")))
    })
}

/// [`settle`] in `dir`, with warnings to `warn`.
pub fn settle_at(
    dir: &Path,
    name: &str,
    dev: u64,
    udev: &Outcome,
    warn: &mut dyn FnMut(String),
) -> Result<(), Error> {
    if let Outcome::Late(why) = udev {
        warn(format!("{name}: {why}"));
    }
    let made = ensure_at(dir, name, dev).map_err(|e| {
        Error::new(format!(
            "{name} is up, but {e}; it is also /dev/dm-{}",
            libc::minor(dev)
        ))
    })?;
    if made && *udev == Outcome::Synced {
        warn(format!(
            "{}: not set up by udev: created it (check the device-mapper udev rules)",
            dir.join(name).display()
        ));
    }
    Ok(())
}

/// After `name` (device `dev`) was removed: removes `/dev/mapper/NAME` if it
/// is a block node for `dev` (one made without udev). Symlinks are udev's.
pub fn remove(name: &str, dev: u64) {
    remove_at(Path::new(DM_DIR), name, dev);
}

/// [`remove`] in `dir`.
pub fn remove_at(dir: &Path, name: &str, dev: u64) {
    let p = dir.join(name);
    if let Ok(md) = fs::symlink_metadata(&p) {
        if md.file_type().is_block_device() && md.rdev() == dev {
            let _ = fs::remove_file(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let p =
                std::env::temp_dir().join(format!("rcopyctl-devnode-{}-{tag}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Whether block nodes can be made here (root, no seccomp filter).
    fn can_mknod(dir: &Path) -> bool {
        let p = dir.join("probe");
        let ok = mknod(&p, libc::makedev(7, 250)).is_ok();
        let _ = fs::remove_file(&p);
        if !ok {
            eprintln!("cannot mknod here: skipped");
        }
        ok
    }

    #[test]
    fn without_udev_the_node_is_made_and_removed() {
        let t = TempDir::new("make");
        if !can_mknod(&t.0) {
            return;
        }
        let dir = t.0.join("mapper");
        let dev = libc::makedev(253, 7);
        let mut warnings = Vec::new();
        let fallback = Outcome::Unmanaged("udev is not running");
        settle_at(&dir, "r0", dev, &fallback, &mut |w| warnings.push(w)).unwrap();
        let md = fs::symlink_metadata(dir.join("r0")).unwrap();
        assert!(md.file_type().is_block_device());
        assert_eq!(md.rdev(), dev);
        assert_eq!(md.mode() & 0o777, 0o600);
        assert!(warnings.is_empty(), "{warnings:?}");
        // Again: nothing to do.
        assert!(!ensure_at(&dir, "r0", dev).unwrap());
        // A stale node of an older device is replaced.
        let newer = libc::makedev(253, 9);
        assert_eq!(inspect(&dir.join("r0"), newer), Found::Stale);
        assert!(ensure_at(&dir, "r0", newer).unwrap());
        assert_eq!(fs::metadata(dir.join("r0")).unwrap().rdev(), newer);
        // Removal takes only our node for that device.
        remove_at(&dir, "r0", dev);
        assert!(dir.join("r0").exists());
        remove_at(&dir, "r0", newer);
        assert_eq!(inspect(&dir.join("r0"), newer), Found::Missing);
    }

    #[test]
    fn udev_links_are_kept_and_checked() {
        let t = TempDir::new("links");
        if !can_mknod(&t.0) {
            return;
        }
        let dev = libc::makedev(253, 3);
        // udev's layout: /dev/dm-3 and /dev/mapper/r0 -> ../dm-3.
        mknod(&t.0.join("dm-3"), dev).unwrap();
        let dir = t.0.join("mapper");
        fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink("../dm-3", dir.join("r0")).unwrap();
        let mut warnings = Vec::new();
        settle_at(&dir, "r0", dev, &Outcome::Synced, &mut |w| warnings.push(w)).unwrap();
        assert!(fs::symlink_metadata(dir.join("r0"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(warnings.is_empty());
        remove_at(&dir, "r0", dev);
        assert!(
            fs::symlink_metadata(dir.join("r0")).is_ok(),
            "a link is udev's"
        );

        // A dangling link is stale.
        std::os::unix::fs::symlink("../dm-9", dir.join("r1")).unwrap();
        assert_eq!(inspect(&dir.join("r1"), dev), Found::Stale);
        // udev was expected but made nothing: warned, then made.
        settle_at(&dir, "r2", dev, &Outcome::Synced, &mut |w| warnings.push(w)).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].ends_with(
                "r2: not set up by udev: created it (check the device-mapper udev rules)"
            ),
            "{warnings:?}"
        );
        // Late udev: warned.
        let late = Outcome::Late("udev did not finish with the device within 60 s".into());
        settle_at(&dir, "r2", dev, &late, &mut |w| warnings.push(w)).unwrap();
        assert_eq!(
            warnings[1],
            "r2: udev did not finish with the device within 60 s"
        );
    }

    #[test]
    fn foreign_files_are_not_replaced() {
        let t = TempDir::new("foreign");
        fs::write(t.0.join("r0"), b"x").unwrap();
        let dev = libc::makedev(253, 1);
        assert_eq!(inspect(&t.0.join("r0"), dev), Found::Foreign);
        let e = settle_at(&t.0, "r0", dev, &Outcome::Unmanaged("x"), &mut |_| {}).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(
            e.to_string().starts_with("r0 is up, but ")
                && e.to_string().contains("exists and is not a block device")
                && e.to_string().ends_with("; it is also /dev/dm-1"),
            "{e}"
        );
    }
}
