//! `rcopyctl create`: checks, table line, and the DM calls.

use rcopy_core::geometry::{meta_bytes_needed, SECTOR_SIZE};
use rcopy_core::table::{self, TableError, DEFAULT_TRACK_SIZE};

use crate::blockdev::{self, BlockDev};
use crate::dm_ioctl::{Control, Target};
use crate::error::{os_msg, Error};
use crate::kmsg::KmsgWatch;
use crate::size::human_bytes;
use crate::{devnode, open_control, out};

/// Name of the kernel target type.
pub const TARGET_TYPE: &str = "rcopy";

/// Checks the track size and returns it as the table takes it.
pub fn check_track_size(bytes: Option<u64>) -> Result<u32, Error> {
    let Some(b) = bytes else {
        return Ok(DEFAULT_TRACK_SIZE);
    };
    if !table::track_size_valid(b) {
        return Err(Error::new(format!(
            "{} (got {b})",
            TableError::BadTrackSize.message()
        )));
    }
    u32::try_from(b).map_err(|_| Error::new(TableError::BadTrackSize.message()))
}

/// Builds the single rcopy target covering the whole data device, after the
/// checks the kernel would make: distinct devices, a non-empty volume, a
/// metadata device large enough. Devices go in as `major:minor`.
pub fn plan(data: &BlockDev, meta: &BlockDev, track_size: u32) -> Result<Target, Error> {
    if data.rdev == meta.rdev {
        return Err(Error::new(format!(
            "{} ({} and {} are the same device)",
            TableError::SameDevice.message(),
            data.path,
            meta.path
        )));
    }
    let sectors = data.size / SECTOR_SIZE;
    if sectors == 0 {
        return Err(Error::new(format!(
            "data device {} is smaller than one sector",
            data.path
        )));
    }
    let len = sectors * SECTOR_SIZE;
    let need = meta_bytes_needed(len, track_size);
    if meta.size < need {
        return Err(Error::new(format!(
            "metadata device {} too small: {} bytes, needs {} bytes ({}) for {} with {} tracks",
            meta.path,
            meta.size,
            need,
            human_bytes(need),
            human_bytes(len),
            human_bytes(u64::from(track_size))
        )));
    }
    let mut params = String::new();
    let mut args = table::TableArgs::new(b"", b"");
    args.track_size = track_size;
    table::format_table(&mut params, &data.major_minor(), &meta.major_minor(), &args)
        .map_err(|_| Error::new("cannot format the table line"))?;
    Ok(Target {
        start: 0,
        length: sectors,
        target_type: TARGET_TYPE.to_string(),
        params,
    })
}

/// The table line as `dmsetup table` shows it.
pub fn table_line(t: &Target) -> String {
    format!("{} {} {} {}", t.start, t.length, t.target_type, t.params)
}

/// Joins kernel reasons, or falls back to the errno text.
pub fn reason(reasons: &[String], e: &std::io::Error) -> String {
    if reasons.is_empty() {
        return os_msg(e);
    }
    reasons
        .iter()
        .map(|r| {
            if r == "unknown target type" {
                "the kernel has no rcopy target (is dm_rcopy loaded?)".to_string()
            } else {
                r.clone()
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Runs `rcopyctl create`.
pub fn run(
    name: &str,
    data: &str,
    meta: &str,
    track_size: Option<u64>,
    dry_run: bool,
) -> Result<(), Error> {
    let ts = check_track_size(track_size)?;
    let data_dev = blockdev::inspect("data device", data)?;
    let meta_dev = blockdev::inspect("metadata device", meta)?;
    let target = plan(&data_dev, &meta_dev, ts)?;
    if dry_run {
        out(&table_line(&target));
        return Ok(());
    }

    let ctl = open_control()?;
    let created = ctl.create(name).map_err(|e| match e.raw_os_error() {
        Some(libc::EBUSY) | Some(libc::EEXIST) => {
            Error::new(format!("device {name} already exists"))
        }
        _ => Error::new(format!("cannot create {name}: {}", os_msg(&e))),
    })?;
    let dev = created.dev;
    let dev_mm = format!("{}:{}", libc::major(dev), libc::minor(dev));

    let mut watch = KmsgWatch::start();
    if let Err(e) = ctl.load_table(name, std::slice::from_ref(&target)) {
        let why = reason(&watch.dm_reasons(Some(&dev_mm)), &e);
        return Err(undo(
            &ctl,
            name,
            dev,
            format!("cannot create {name}: {why}"),
        ));
    }
    if let Err(e) = ctl.resume(name) {
        let why = reason(&watch.dm_reasons(Some(&dev_mm)), &e);
        return Err(undo(
            &ctl,
            name,
            dev,
            format!("cannot create {name}: activating the table failed: {why}"),
        ));
    }
    devnode::ensure(name, dev);
    Ok(())
}

/// Removes a half-created device and returns `err`, noting a failed removal.
fn undo(ctl: &Control, name: &str, dev: u64, err: String) -> Error {
    match ctl.remove(name) {
        Ok(()) => {
            devnode::remove(name, dev);
            Error::new(err)
        }
        Err(e) => Error::new(format!(
            "{err} (removing the half-created device failed too: {})",
            os_msg(&e)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(path: &str, major: u32, minor: u32, size: u64) -> BlockDev {
        BlockDev {
            path: path.into(),
            rdev: libc::makedev(major, minor),
            size,
        }
    }

    #[test]
    fn table_default_and_custom() {
        let d = dev("/dev/vdb", 254, 16, 1 << 30);
        let m = dev("/dev/vdc", 254, 32, 1 << 20);
        let t = plan(&d, &m, DEFAULT_TRACK_SIZE).unwrap();
        assert_eq!(table_line(&t), "0 2097152 rcopy 254:16 254:32");
        let t = plan(&d, &m, 1 << 20).unwrap();
        assert_eq!(
            table_line(&t),
            "0 2097152 rcopy 254:16 254:32 2 track_size 1048576"
        );
    }

    #[test]
    fn odd_size_rounds_down_to_sectors() {
        let d = dev("/dev/vdb", 8, 16, 1000);
        let m = dev("/dev/vdc", 8, 32, 8192);
        assert_eq!(plan(&d, &m, 4096).unwrap().length, 1);
        let tiny = dev("/dev/vdb", 8, 16, 511);
        assert!(plan(&tiny, &m, 4096).is_err());
    }

    #[test]
    fn refusals() {
        let d = dev("/dev/vdb", 254, 16, 1 << 40);
        let same = dev("/dev/disk/by-id/x", 254, 16, 1 << 40);
        let e = plan(&d, &same, DEFAULT_TRACK_SIZE).unwrap_err().to_string();
        assert!(
            e.starts_with("Data and metadata devices must differ"),
            "{e}"
        );
        // 1 TiB at 64 KiB needs 2 MiB + 4 KiB.
        let small = dev("/dev/vdc", 254, 32, 2 << 20);
        let e = plan(&d, &small, DEFAULT_TRACK_SIZE)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "metadata device /dev/vdc too small: 2097152 bytes, needs 2101248 bytes \
             (2.0 MiB) for 1 TiB with 64 KiB tracks"
        );
        let enough = dev("/dev/vdc", 254, 32, (2 << 20) + 4096);
        assert!(plan(&d, &enough, DEFAULT_TRACK_SIZE).is_ok());
    }

    #[test]
    fn reasons() {
        let e = std::io::Error::from_raw_os_error(libc::EINVAL);
        assert_eq!(reason(&[], &e), "Invalid argument");
        assert_eq!(
            reason(&["unknown target type".into()], &e),
            "the kernel has no rcopy target (is dm_rcopy loaded?)"
        );
        assert_eq!(reason(&["a".into(), "b".into()], &e), "a; b");
    }

    #[test]
    fn track_sizes() {
        assert_eq!(check_track_size(None).unwrap(), 65536);
        assert_eq!(check_track_size(Some(4096)).unwrap(), 4096);
        assert_eq!(check_track_size(Some(16 << 20)).unwrap(), 16 << 20);
        let e = check_track_size(Some(3000)).unwrap_err().to_string();
        assert_eq!(
            e,
            "Invalid track_size: must be a power of two from 4096 to 16777216 (got 3000)"
        );
        assert!(check_track_size(Some(32 << 20)).is_err());
        assert!(check_track_size(Some(1 << 40)).is_err());
    }
}
