//! `rcopyctl snapshot-verify`: sums a secondary's snapshot the way the primary
//! summed its image at the snapshot's marker (`snapshot --verify`; the sum is
//! `rcopy_core::imagesum`), and compares the two.
//!
//! The snapshot is read through a snapshot device (target `rcopy-snap`): one
//! that is active already, else a temporary one, removed afterwards whatever
//! happened. Reads bypass the page cache (`O_DIRECT`; a file that refuses it has
//! its cached pages dropped first), so what is summed is what the device holds.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::time::Duration;

use rcopy_core::imagesum::{self, TrackDigest, SUM_LEN};

use crate::blockdev::size_of_file;
use crate::cli::parse_name;
use crate::dm_ioctl::Control;
use crate::error::{os_msg, Error};
use crate::snap::{self, SNAP_TARGET};
use crate::snaplist::hex;
use crate::{commands, create, devnode, open_control, out};

/// Bytes read at a time (a track may be larger).
const CHUNK: u64 = 1 << 20;

/// Alignment of the read buffer (`O_DIRECT`).
const ALIGN: usize = 4096;

/// The image sum of the first `size` bytes of `f`, in tracks of `track_size`
/// bytes (the last one may be short): over every track `t`, SHA-256 of `t`
/// (8 bytes, little-endian) and the track's content, added modulo 2^256.
pub fn image_sum(f: &File, size: u64, track_size: u64) -> io::Result<[u8; SUM_LEN]> {
    if track_size == 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "track size 0"));
    }
    let len = CHUNK.min(track_size) as usize;
    let mut raw = vec![0u8; len + ALIGN];
    let off = raw.as_ptr().align_offset(ALIGN);
    let buf = raw
        .get_mut(off..off.saturating_add(len))
        .ok_or_else(|| io::Error::other("cannot align the read buffer"))?;
    let mut sum = [0u8; SUM_LEN];
    let (mut track, mut pos) = (0u64, 0u64);
    while pos < size {
        let end = size.min(pos.saturating_add(track_size));
        let mut d = TrackDigest::new(track);
        let mut p = pos;
        while p < end {
            let n = (end - p).min(len as u64) as usize;
            f.read_exact_at(&mut buf[..n], p)?;
            d.update(&buf[..n]);
            p += n as u64;
        }
        imagesum::add(&mut sum, &d.finish());
        track += 1;
        pos = end;
    }
    Ok(sum)
}

/// Opens `path` to read it past the page cache: with `O_DIRECT`, or, where that
/// is refused (`EINVAL`: tmpfs, some filesystems), plainly after dropping the
/// file's cached pages.
pub fn open_uncached(path: &str) -> io::Result<File> {
    let flags = libc::O_DIRECT | libc::O_CLOEXEC;
    match OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            let f = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(path)?;
            // SAFETY: an advice on an open descriptor; no memory is passed.
            let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            Ok(f)
        }
        r => r,
    }
}

/// `(major, minor)` of a device word of a table: `M:N` as the kernel shows
/// it, or the path of a block device.
pub fn dev_id(word: &str) -> Option<(u32, u32)> {
    if let Some((ma, mi)) = word.split_once(':') {
        return Some((ma.parse().ok()?, mi.parse().ok()?));
    }
    let md = std::fs::metadata(word).ok()?;
    md.file_type()
        .is_block_device()
        .then(|| (libc::major(md.rdev()), libc::minor(md.rdev())))
}

/// Whether `params` (an `rcopy-snap` table) shows snapshot `epoch` of `store`.
pub fn shows(params: &str, store: (u32, u32), epoch: u32) -> bool {
    match params
        .split_ascii_whitespace()
        .collect::<Vec<_>>()
        .as_slice()
    {
        [dev, e] => e.parse() == Ok(epoch) && dev_id(dev) == Some(store),
        _ => false,
    }
}

/// An active snapshot device showing snapshot `epoch` of `store`: its name
/// and device number.
fn find_active(
    ctl: &Control,
    store: (u32, u32),
    epoch: u32,
) -> Result<Option<(String, u64)>, Error> {
    let devices = ctl
        .list_devices()
        .map_err(|e| Error::new(format!("cannot list devices: {}", os_msg(&e))))?;
    for d in devices {
        // Removed meanwhile, or not readable: not one to use.
        let Ok(targets) = ctl.table_status(&d.name, true) else {
            continue;
        };
        if let [t] = targets.as_slice() {
            if t.target_type == SNAP_TARGET && shows(&t.text, store, epoch) {
                return Ok(Some((d.name, d.dev)));
            }
        }
    }
    Ok(None)
}

/// A snapshot device made for one verification, removed when dropped.
struct TempDevice<'a> {
    ctl: &'a Control,
    name: String,
    dev: u64,
}

impl<'a> TempDevice<'a> {
    /// Creates device `name` (read-only) with `target`. A device of that name
    /// is refused; one this made is removed again if its activation failed
    /// half-way (after the resume: its node could not be made).
    fn create(
        ctl: &'a Control,
        name: &str,
        target: &crate::dm_ioctl::Target,
    ) -> Result<Self, Error> {
        parse_name(name).map_err(|e| Error::new(format!("device name {name:?}: {e}")))?;
        if ctl.info(name).is_ok() {
            return Err(Error::new(format!(
                "device {name} already exists and does not show this snapshot: remove it \
                 (dmsetup remove {name})"
            )));
        }
        let made = create::activate_with(ctl, name, target, true);
        let guard = ctl.info(name).ok().map(|i| TempDevice {
            ctl,
            name: name.to_string(),
            dev: i.dev,
        });
        match (made, guard) {
            (Ok(()), Some(g)) => Ok(g),
            (Ok(()), None) => Err(Error::new(format!("device {name} vanished once made"))),
            // `guard`, if any, is dropped here: the device goes.
            (Err(e), _) => Err(e),
        }
    }
}

impl Drop for TempDevice<'_> {
    fn drop(&mut self) {
        // A short-lived opener (udev's probe) may hold it a moment: retry.
        let mut last = None;
        for _ in 0..20 {
            match self.ctl.remove(&self.name) {
                Ok(_) => {
                    devnode::remove(&self.name, self.dev);
                    return;
                }
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    last = Some(e);
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => {
                    last = Some(e);
                    break;
                }
            }
        }
        let why = last.map_or_else(String::new, |e| os_msg(&e));
        crate::err_line(&Error::new(format!(
            "warning: cannot remove the temporary snapshot device {}: {why} (remove it with \
             rcopyctl snapshot-deactivate {})",
            self.name, self.name
        )));
    }
}

/// Sums snapshot device `dev` (number `rdev`), which must be `size` bytes.
fn sum_device(dev: &str, rdev: u64, size: u64, track_size: u64) -> Result<[u8; SUM_LEN], Error> {
    let path = format!("{}/{dev}", devnode::DM_DIR);
    let f = open_uncached(&path).map_err(|e| Error::new(format!("{path}: {}", os_msg(&e))))?;
    let md = f
        .metadata()
        .map_err(|e| Error::new(format!("{path}: {}", os_msg(&e))))?;
    if !md.file_type().is_block_device() || md.rdev() != rdev {
        return Err(Error::new(format!(
            "{path} is not the node of device {dev} ({}:{})",
            libc::major(rdev),
            libc::minor(rdev)
        )));
    }
    let got = size_of_file(&f).map_err(|e| Error::new(format!("{path}: {}", os_msg(&e))))?;
    if got != size {
        return Err(Error::new(format!(
            "{path} is {got} bytes, the rcopy device {size}: not its snapshot"
        )));
    }
    image_sum(&f, size, track_size)
        .map_err(|e| Error::new(format!("cannot read {path}: {}", os_msg(&e))))
}

/// What `snapshot-verify` says: the line for equal sums (`Ok`) or a mismatch.
pub fn verdict(
    name: &str,
    label: &str,
    computed: &[u8; SUM_LEN],
    recorded: &[u8; SUM_LEN],
) -> Result<String, String> {
    if computed == recorded {
        Ok(format!("{name}: {label}: verified (sum {})", hex(computed)))
    } else {
        Err(format!(
            "{name}: {label}: MISMATCH: image sum {}, primary's sum {}",
            hex(computed),
            hex(recorded)
        ))
    }
}

/// The name of the temporary snapshot device for snapshot `epoch` of `name`.
pub fn temp_name(name: &str, epoch: u32) -> String {
    format!("{}-verify", snap::device_name(name, epoch))
}

/// Runs `rcopyctl snapshot-verify` (on the secondary).
pub fn run(name: &str, which: &str, sum_only: bool) -> Result<(), Error> {
    let ctl = open_control()?;
    let (length, store) = snap::store_of(&ctl, name)?;
    let (_, s, _) = snap::resolve(&ctl, name, which)?;
    let label = snap::label(&s);
    if s.sum.is_none() && !sum_only {
        return Err(Error::new(format!(
            "{name}: {label} has no recorded sum of the primary's image: only a snapshot \
             taken with rcopyctl snapshot --verify (that answered with a sum) can be \
             verified (--sum-only prints this side's sum)"
        )));
    }
    if !s.ready {
        return Err(Error::new(format!(
            "{name}: {label} is invalid (the store ran out of slots before a track it needed \
             was copied): it cannot be read"
        )));
    }
    let st = commands::device_status(&ctl, name)?;
    if st.track_size == 0 {
        return Err(Error::new(format!(
            "{name}: its status shows no track size"
        )));
    }
    let store_id = dev_id(&store).ok_or_else(|| {
        Error::new(format!(
            "{name}: cannot tell the device of its snap_store {store:?}"
        ))
    })?;
    let computed = match find_active(&ctl, store_id, s.epoch)? {
        Some((dev, rdev)) => sum_device(&dev, rdev, st.size, st.track_size)?,
        None => {
            let target = snap::snap_target(length, &store, s.epoch);
            let tmp = TempDevice::create(&ctl, &temp_name(name, s.epoch), &target)?;
            sum_device(&tmp.name, tmp.dev, st.size, st.track_size)?
        }
    };
    let Some(recorded) = s.sum.filter(|_| !sum_only) else {
        out(&hex(&computed));
        return Ok(());
    };
    match verdict(name, &label, &computed, &recorded) {
        Ok(line) => {
            out(&line);
            Ok(())
        }
        Err(line) => {
            out(&line);
            Err(Error::reported(Error::new("")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testfile::TempFile;
    use rcopy_core::sha256::Sha256;

    /// The sum computed directly: whole tracks in memory, SHA-256 over the
    /// track number and the track, added as four 64-bit limbs.
    fn direct(image: &[u8], track: usize) -> [u8; SUM_LEN] {
        let mut acc = [0u64; 4];
        for (t, content) in image.chunks(track).enumerate() {
            let mut h = Sha256::new();
            h.update(&(t as u64).to_le_bytes());
            h.update(content);
            let d = h.finalize();
            let mut carry = false;
            for i in (0..4).rev() {
                let mut limb = [0u8; 8];
                limb.copy_from_slice(&d[8 * i..8 * i + 8]);
                let (s1, c1) = acc[i].overflowing_add(u64::from_be_bytes(limb));
                let (s2, c2) = s1.overflowing_add(u64::from(carry));
                acc[i] = s2;
                carry = c1 || c2;
            }
        }
        let mut out = [0u8; SUM_LEN];
        for (i, l) in acc.iter().enumerate() {
            out[8 * i..8 * i + 8].copy_from_slice(&l.to_be_bytes());
        }
        out
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4096) as u8).collect()
    }

    #[test]
    fn sums_a_file_as_the_direct_computation() {
        // 5 tracks of 8 KiB and a short one (1 KiB).
        let len = 5 * 8192 + 1024;
        let image = pattern(len);
        let f = TempFile::new("image", len as u64);
        f.write_at(0, &image);
        let file = open_uncached(f.path()).unwrap();
        let got = image_sum(&file, len as u64, 8192).unwrap();
        assert_eq!(got, direct(&image, 8192));
        // A fixed value (computed with Python's hashlib and integers).
        assert_eq!(hex(&got), KNOWN);
        // Tracks larger than a read chunk are fed in pieces.
        let big = 3 * CHUNK as usize / 2 + 512;
        let image = pattern(big);
        let f = TempFile::new("big", big as u64);
        f.write_at(0, &image);
        let file = open_uncached(f.path()).unwrap();
        assert_eq!(
            image_sum(&file, big as u64, 2 * CHUNK).unwrap(),
            direct(&image, 2 * CHUNK as usize)
        );
        // The track number counts: the same content elsewhere differs.
        let zeros = TempFile::new("zeros", 2 * 4096);
        let file = open_uncached(zeros.path()).unwrap();
        let two = image_sum(&file, 8192, 4096).unwrap();
        assert_eq!(two, direct(&[0u8; 8192], 4096));
        assert_ne!(image_sum(&file, 4096, 4096).unwrap(), two);
        // Empty image: zero; track size 0 and a file too short are errors.
        assert_eq!(image_sum(&file, 0, 4096).unwrap(), [0u8; SUM_LEN]);
        assert!(image_sum(&file, 8192, 0).is_err());
        assert!(image_sum(&file, 3 * 4096, 4096).is_err());
    }

    const KNOWN: &str = "572409ba18c6c117bc88c9d018ea466cda1d8189926366ac3fe5dab001ebc6f3";

    #[test]
    fn verdicts_and_names() {
        let a = [1u8; SUM_LEN];
        let b = [2u8; SUM_LEN];
        let ok = verdict("r0", "snapshot 3 (v1)", &a, &a).unwrap();
        assert_eq!(
            ok,
            format!("r0: snapshot 3 (v1): verified (sum {})", "01".repeat(32))
        );
        let bad = verdict("r0", "snapshot 3", &a, &b).unwrap_err();
        assert_eq!(
            bad,
            format!(
                "r0: snapshot 3: MISMATCH: image sum {}, primary's sum {}",
                "01".repeat(32),
                "02".repeat(32)
            )
        );
        assert_eq!(temp_name("r0", 3), "r0-snap-3-verify");
        assert_eq!(dev_id("252:32"), Some((252, 32)));
        assert_eq!(dev_id("252:x"), None);
        assert_eq!(dev_id("/dev/null"), None);
        assert!(shows("252:32 3", (252, 32), 3));
        assert!(!shows("252:32 4", (252, 32), 3));
        assert!(!shows("252:33 3", (252, 32), 3));
        assert!(!shows("252:32", (252, 32), 3));
    }
}
