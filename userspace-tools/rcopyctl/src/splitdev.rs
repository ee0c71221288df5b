//! The checks of a split copy device (`--split-dev`, `split_dev` in a resource
//! file) that the kernel makes when it loads the table, made first so that a
//! mistake is named: the device is large enough for the image and the split
//! copy's metadata (`rcopy_core::split::Layout`), and its two header copies
//! are blank (a new copy: the kernel formats it and copies everything) or hold
//! a split copy of this size and track size.

use rcopy_core::split::{pick, Header, Layout, Loaded, SplitError, BLOCK};
use rcopy_core::table::TableError;

use crate::error::Error;
use crate::meta::{Access, Dev};
use crate::size::human_bytes;

/// The layout of a split copy of `data_bytes` in `track_size` tracks.
pub fn layout(data_bytes: u64, track_size: u32) -> Result<Layout, Error> {
    Layout::new(data_bytes, track_size)
        .filter(|l| l.device_bytes().is_some())
        .ok_or_else(|| {
            Error::new(format!(
                "no split copy layout for {data_bytes} bytes in {track_size}-byte tracks"
            ))
        })
}

/// The bytes a split copy device needs for `data_bytes` in `track_size` tracks.
pub fn needed(data_bytes: u64, track_size: u32) -> Result<u64, Error> {
    let l = layout(data_bytes, track_size)?;
    Ok(l.device_bytes().unwrap_or(u64::MAX))
}

/// Checks the size of split copy device `path` (`size` bytes).
pub fn check_size(path: &str, size: u64, data_bytes: u64, track_size: u32) -> Result<(), Error> {
    let need = needed(data_bytes, track_size)?;
    if size < need {
        return Err(Error::new(format!(
            "split copy device {path} too small: {size} bytes, needs {need} bytes ({}) for {} \
             with {} tracks (the image, two 4 KiB headers and three bitmaps)",
            human_bytes(need),
            human_bytes(data_bytes),
            human_bytes(u64::from(track_size))
        )));
    }
    Ok(())
}

/// What the header area of a split copy device holds, as the kernel reads it:
/// `Ok(None)` blank (a new copy), `Ok(Some(header))`, or the refusal.
pub fn judge(
    path: &str,
    l: &Layout,
    area: &[u8],
    data_bytes: u64,
    track_size: u32,
) -> Result<Option<Header>, Error> {
    let copy = |i: usize| -> Result<Header, SplitError> {
        let b: &[u8; BLOCK] = area
            .get(i * BLOCK..(i + 1) * BLOCK)
            .and_then(|s| s.try_into().ok())
            .ok_or(SplitError::Torn)?;
        Header::decode(b, data_bytes, track_size)
    };
    let start = l.start;
    let meta_blocks = l.device_bytes().unwrap_or(start).saturating_sub(start) / BLOCK as u64;
    let why = TableError::SplitInvalid.message();
    match pick(copy(0), copy(1)) {
        Ok(Loaded::Blank) => Ok(None),
        Ok(Loaded::Header(h)) => Ok(Some(h)),
        Err(SplitError::Geometry) => Err(Error::new(format!(
            "split copy device {path} holds a split copy of another device ({why}): this one \
             is {data_bytes} bytes in {track_size}-byte tracks; to start a new copy on it, zero \
             its headers: dd if=/dev/zero of={path} bs=4096 seek={} count={meta_blocks} \
             oflag=direct",
            start / BLOCK as u64
        ))),
        Err(SplitError::Torn) => Err(Error::new(format!(
            "split copy device {path}: both header copies (at byte {start}) are damaged \
             (checksum): the kernel refuses it"
        ))),
        Err(_) => Err(Error::new(format!(
            "split copy device {path} holds something else where the split copy of this device \
             keeps its headers (byte {start}), so the kernel refuses it ({why}); if it may be \
             overwritten, zero that area first: dd if=/dev/zero of={path} bs=4096 seek={} \
             count={meta_blocks} oflag=direct",
            start / BLOCK as u64
        ))),
    }
}

/// Checks split copy device `path` (`size` bytes) for an rcopy device of
/// `data_bytes` in `track_size` tracks: its size, then its headers (read with
/// `O_DIRECT`). Returns the header it holds (`None`: blank, a new copy).
pub fn check(
    path: &str,
    size: u64,
    data_bytes: u64,
    track_size: u32,
) -> Result<Option<Header>, Error> {
    check_size(path, size, data_bytes, track_size)?;
    let l = layout(data_bytes, track_size)?;
    let dev = Dev::open("split copy device", path, Access::Read)?;
    let area = dev.read_at(l.start, 2 * BLOCK)?;
    judge(path, &l, area.bytes(), data_bytes, track_size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testfile::TempFile;
    use rcopy_core::split::{Mode, SplitState};

    const MIB64: u64 = 64 << 20;

    #[test]
    fn sizes() {
        // 64 MiB in 64 KiB tracks: the image, 2 headers, 3 one-block bitmaps.
        assert_eq!(needed(MIB64, 65536).unwrap(), MIB64 + 5 * 4096);
        // An image that is not a whole number of blocks is rounded up first.
        assert_eq!(needed(MIB64 + 512, 65536).unwrap(), MIB64 + 4096 + 5 * 4096);
        assert!(check_size("/dev/vdc", MIB64 + 5 * 4096, MIB64, 65536).is_ok());
        let e = check_size("/dev/vdc", MIB64, MIB64, 65536).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert_eq!(
            e.to_string(),
            "split copy device /dev/vdc too small: 67108864 bytes, needs 67129344 bytes \
             (64.0 MiB) for 64 MiB with 64 KiB tracks (the image, two 4 KiB headers and three \
             bitmaps)"
        );
        // 1 TiB in 4 KiB tracks: 2^28 tracks, 32 MiB per bitmap.
        assert_eq!(
            needed(1 << 40, 4096).unwrap(),
            (1 << 40) + 2 * 4096 + 3 * (32 << 20)
        );
        assert!(needed(MIB64, 0).is_err());
    }

    fn header_area(h: &Header) -> Vec<u8> {
        let mut b = [0u8; BLOCK];
        h.encode_into(&mut b);
        let mut v = b.to_vec();
        v.extend_from_slice(&[0u8; BLOCK]);
        v
    }

    #[test]
    fn headers() {
        let l = layout(MIB64, 65536).unwrap();
        let blank = vec![0u8; 2 * BLOCK];
        assert_eq!(judge("/d", &l, &blank, MIB64, 65536).unwrap(), None);
        let mut h = Header::new(MIB64, 65536);
        h.mode = Mode {
            state: SplitState::Split,
            refresh: None,
        };
        // One copy written, the other still blank: that one.
        let got = judge("/d", &l, &header_area(&h), MIB64, 65536).unwrap();
        assert_eq!(got.map(|h| h.mode.state), Some(SplitState::Split));
        // Another size or track size.
        let e = judge("/d", &l, &header_area(&h), MIB64, 131072).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("split copy device /d holds a split copy of another device"),
            "{e}"
        );
        assert!(
            e.to_string()
                .ends_with("bs=4096 seek=16384 count=5 oflag=direct"),
            "{e}"
        );
        // Something else (data, not a header).
        let junk = vec![0x5au8; 2 * BLOCK];
        let e = judge("/d", &l, &junk, MIB64, 65536).unwrap_err();
        assert!(e.to_string().contains("holds something else"), "{e}");
        assert!(e.to_string().contains("(byte 67108864)"), "{e}");
        // A torn copy next to a good one: the good one.
        let mut two = header_area(&h);
        two[BLOCK..].copy_from_slice(&header_area(&h)[..BLOCK]);
        two[BLOCK + 20] ^= 1;
        assert!(judge("/d", &l, &two, MIB64, 65536).unwrap().is_some());
        // Both torn.
        two[20] ^= 1;
        let e = judge("/d", &l, &two, MIB64, 65536).unwrap_err();
        assert!(e.to_string().contains("both header copies"), "{e}");
    }

    #[test]
    fn reads_the_device() {
        let f = TempFile::new("split", MIB64 + 5 * 4096);
        assert_eq!(
            check(f.path(), MIB64 + 5 * 4096, MIB64, 65536).unwrap(),
            None
        );
        let h = Header::new(MIB64, 65536);
        f.write_at(MIB64, &header_area(&h));
        let got = check(f.path(), MIB64 + 5 * 4096, MIB64, 65536).unwrap();
        assert_eq!(got.map(|h| h.mode.state), Some(SplitState::Forming));
        // Read where the layout puts the headers: a smaller device's copy is
        // not seen there.
        assert!(check(f.path(), MIB64 + 5 * 4096, MIB64 - 65536, 65536)
            .unwrap()
            .is_none());
        assert!(check(f.path(), MIB64, MIB64, 65536).is_err());
    }
}
