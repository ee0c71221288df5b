//! Known on-disk signatures, so that `create-md` does not overwrite a
//! filesystem, a volume or swap by mistake (as drbdmeta and mkfs refuse).

/// Reads `len` bytes at `off` (both multiples of 4096); `None` past the end
/// or on an error.
pub type ReadAt<'a> = dyn FnMut(u64, usize) -> Option<Vec<u8>> + 'a;

const BLOCK: usize = 4096;

fn le16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn at(b: &[u8], off: usize, magic: &[u8]) -> bool {
    b.get(off..off + magic.len()) == Some(magic)
}

/// A NUL-padded label as text, or `None` if empty.
fn label(b: &[u8], off: usize, len: usize) -> Option<String> {
    let raw = b.get(off..off + len)?;
    let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
    let s = String::from_utf8_lossy(&raw[..end]).trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn with_label(what: &str, l: Option<String>) -> String {
    match l {
        Some(l) => format!("{what} (label {l:?})"),
        None => what.to_string(),
    }
}

const MD_MAGIC: u32 = 0xa92b_4efc;

/// What the first 4 KiB say, if anything.
fn in_first_block(b: &[u8]) -> Option<String> {
    // ext2/3/4: superblock at 1024, s_magic at +56.
    if le16(b, 1024 + 56) == Some(0xef53) {
        let compat = le32(b, 1024 + 0x5c)?;
        let incompat = le32(b, 1024 + 0x60)?;
        // extents, 64bit, flex_bg: ext4; a journal: ext3.
        let kind = if incompat & (0x40 | 0x80 | 0x200) != 0 {
            "ext4"
        } else if compat & 0x4 != 0 {
            "ext3"
        } else {
            "ext2"
        };
        return Some(with_label(
            &format!("an {kind} filesystem"),
            label(b, 1024 + 0x78, 16),
        ));
    }
    if at(b, 0, b"XFSB") {
        return Some(with_label("an xfs filesystem", label(b, 108, 12)));
    }
    if at(b, 0, b"LUKS\xba\xbe") {
        return Some("a LUKS encrypted volume".to_string());
    }
    for sector in 0..4 {
        let o = sector * 512;
        if at(b, o, b"LABELONE") && at(b, o + 24, b"LVM2 001") {
            return Some("an LVM2 physical volume".to_string());
        }
    }
    if le32(b, 0) == Some(MD_MAGIC) {
        return Some("an md RAID member (metadata 1.1)".to_string());
    }
    if at(b, BLOCK - 10, b"SWAPSPACE2") || at(b, BLOCK - 10, b"SWAP-SPACE") {
        return Some(with_label("swap space", label(b, 1024 + 28, 16)));
    }
    if le16(b, 510) == Some(0xaa55) && (at(b, 82, b"FAT32   ") || at(b, 54, b"FAT1")) {
        return Some("a FAT filesystem".to_string());
    }
    None
}

/// Describes the first known signature on a device of `size` bytes, e.g.
/// `an ext4 filesystem (label "home")`; `None` if there is none.
pub fn detect(size: u64, read: &mut ReadAt<'_>) -> Option<String> {
    let first = read(0, BLOCK)?;
    if let Some(s) = in_first_block(&first) {
        return Some(s);
    }
    if let Some(b) = read(4096, BLOCK) {
        if le32(&b, 0) == Some(MD_MAGIC) {
            return Some("an md RAID member (metadata 1.2)".to_string());
        }
    }
    if let Some(b) = read(65536, BLOCK) {
        if at(&b, 0x40, b"_BHRfS_M") {
            return Some(with_label("a btrfs filesystem", label(&b, 0x12b, 256)));
        }
    }
    // md 1.0: 8 KiB from the end, 4 KiB aligned; md 0.90: the last 64 KiB
    // aligned block but one.
    let tails = [
        (size / 512).checked_sub(16).map(|s| (s & !7) * 512),
        (size & !0xffff).checked_sub(0x10000),
    ];
    for (i, off) in tails.into_iter().enumerate() {
        let Some(off) = off.filter(|&o| o >= 8192) else {
            continue;
        };
        if let Some(b) = read(off, BLOCK) {
            if le32(&b, 0) == Some(MD_MAGIC) {
                let v = if i == 0 { "1.0" } else { "0.90" };
                return Some(format!("an md RAID member (metadata {v})"));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `detect` over an in-memory image.
    fn scan(img: &[u8]) -> Option<String> {
        let mut read = |off: u64, len: usize| {
            let o = usize::try_from(off).ok()?;
            img.get(o..o + len).map(<[u8]>::to_vec)
        };
        detect(img.len() as u64, &mut read)
    }

    fn image(len: usize) -> Vec<u8> {
        vec![0u8; len]
    }

    fn put(img: &mut [u8], off: usize, b: &[u8]) {
        img[off..off + b.len()].copy_from_slice(b);
    }

    #[test]
    fn blank_and_random_are_not_signatures() {
        assert_eq!(scan(&image(1 << 20)), None);
        let mut x = 0x1234_5678u32;
        let noise: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert_eq!(scan(&noise), None);
        // A tiny device is read as far as it goes.
        assert_eq!(scan(&image(4096)), None);
    }

    #[test]
    fn ext_family() {
        let mut img = image(1 << 20);
        put(&mut img, 1024 + 56, &0xef53u16.to_le_bytes());
        assert_eq!(scan(&img).unwrap(), "an ext2 filesystem");
        put(&mut img, 1024 + 0x5c, &4u32.to_le_bytes());
        assert_eq!(scan(&img).unwrap(), "an ext3 filesystem");
        put(&mut img, 1024 + 0x60, &0x2c2u32.to_le_bytes());
        put(&mut img, 1024 + 0x78, b"data\0");
        assert_eq!(scan(&img).unwrap(), "an ext4 filesystem (label \"data\")");
    }

    #[test]
    fn others() {
        let mut img = image(1 << 20);
        put(&mut img, 0, b"XFSB");
        assert_eq!(scan(&img).unwrap(), "an xfs filesystem");

        let mut img = image(1 << 20);
        put(&mut img, 512, b"LABELONE");
        put(&mut img, 512 + 24, b"LVM2 001");
        assert_eq!(scan(&img).unwrap(), "an LVM2 physical volume");

        let mut img = image(1 << 20);
        put(&mut img, 4086, b"SWAPSPACE2");
        put(&mut img, 1024 + 28, b"swp");
        assert_eq!(scan(&img).unwrap(), "swap space (label \"swp\")");

        let mut img = image(1 << 20);
        put(&mut img, 4096, &MD_MAGIC.to_le_bytes());
        assert_eq!(scan(&img).unwrap(), "an md RAID member (metadata 1.2)");

        let mut img = image(1 << 20);
        let len = img.len();
        put(&mut img, len - 8192, &MD_MAGIC.to_le_bytes());
        assert_eq!(scan(&img).unwrap(), "an md RAID member (metadata 1.0)");

        let mut img = image(1 << 20);
        let len = img.len();
        put(&mut img, len - 65536, &MD_MAGIC.to_le_bytes());
        assert_eq!(scan(&img).unwrap(), "an md RAID member (metadata 0.90)");

        let mut img = image(1 << 20);
        put(&mut img, 0x10040, b"_BHRfS_M");
        assert_eq!(scan(&img).unwrap(), "a btrfs filesystem");

        let mut img = image(1 << 20);
        put(&mut img, 0, b"LUKS\xba\xbe");
        assert_eq!(scan(&img).unwrap(), "a LUKS encrypted volume");
    }

    /// Real images from mkfs/mkswap/pvcreate, when those tools are installed.
    #[test]
    fn made_by_the_real_tools() {
        let dir = std::env::temp_dir().join(format!("rcopyctl-sig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases: [(&str, &[&str], &str); 4] = [
            ("mkfs.ext4", &["-q", "-F"], "an ext4 filesystem"),
            ("mkfs.xfs", &["-q", "-f"], "an xfs filesystem"),
            ("mkswap", &[], "swap space"),
            ("mkfs.ext3", &["-q", "-F"], "an ext3 filesystem"),
        ];
        let mut ran = 0;
        for (tool, args, want) in cases {
            let img = dir.join(tool);
            let f = std::fs::File::create(&img).unwrap();
            f.set_len(300 << 20).unwrap();
            drop(f);
            let made = std::process::Command::new(tool)
                .args(args)
                .arg(&img)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
            if !matches!(made, Ok(s) if s.success()) {
                eprintln!("skipping {tool}: not installed or failed");
                let _ = std::fs::remove_file(&img);
                continue;
            }
            let f = std::fs::File::open(&img).unwrap();
            let mut read = |off: u64, len: usize| {
                use std::os::unix::fs::FileExt;
                let mut b = vec![0u8; len];
                f.read_exact_at(&mut b, off).ok().map(|_| b)
            };
            let got = detect(300 << 20, &mut read).unwrap_or_default();
            assert!(got.starts_with(want), "{tool}: {got:?}");
            ran += 1;
            let _ = std::fs::remove_file(&img);
        }
        let _ = std::fs::remove_dir(&dir);
        eprintln!("{ran} real images checked");
    }
}
