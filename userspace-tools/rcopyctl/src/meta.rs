//! `rcopyctl create-md` and `rcopyctl inspect-md`: the on-disk metadata.
//!
//! The format itself (superblock encoding, checksum, bitmap layout) is
//! `rcopy_core::format`, the code the kernel runs; this module only reads
//! and writes it. See `Documentation/rcopy.rst`, *On-disk format*.
//!
//! A block device is read and written with `O_DIRECT`, so what is shown is
//! what is on the disk (the kernel's writes bypass the page cache) and what
//! is written reaches it; every write is followed by `fsync`. A regular file
//! is accepted too (an image of a metadata device, or a test's temp file) and
//! is read and written through the page cache.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};

use rcopy_core::format::{
    bitmap_blocks, pair_name_valid, MetaError, Superblock, BITMAP_BLOCK, BITMAP_OFFSET,
    META_VERSION, SB_BYTES, SB_CONSISTENT, SB_COPY_STARTED, SB_FLAGS, SB_PRIMARY, SB_SYNCED,
    TRACKS_PER_BLOCK,
};
use rcopy_core::geometry::{meta_bytes_needed, tracks};
use rcopy_core::proto::pair_id_from_name;
use rcopy_core::table::{TableError, MAX_PAIR_ID};

use crate::blockdev;
use crate::create::{check_devices, check_track_size, check_word};
use crate::error::{os_msg, Error};
use crate::json::{self, Value};
use crate::out;
use crate::signature;
use crate::size::human_bytes;
use crate::size::Size;

/// The table's `pair_id` when none is given.
pub const DEFAULT_PAIR_ID: &str = "default";

/// Alignment of I/O buffers (`O_DIRECT` needs the logical block size; 4096
/// covers every device).
const ALIGN: usize = 4096;

/// Bitmap bytes read or zeroed per I/O.
pub(crate) const CHUNK: usize = 1 << 20;

/// The names of the superblock flags, in bit order.
const FLAG_NAMES: [(u32, &str); 4] = [
    (SB_SYNCED, "synced"),
    (SB_COPY_STARTED, "copy-started"),
    (SB_CONSISTENT, "consistent"),
    (SB_PRIMARY, "primary"),
];

/// The names of the flags set in `flags`; an unknown bit shows as its hex
/// value.
pub fn flag_names(flags: u32) -> Vec<String> {
    let mut names: Vec<String> = FLAG_NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    let unknown = flags & !SB_FLAGS;
    for bit in 0..32 {
        if unknown & (1 << bit) != 0 {
            names.push(format!("{:#x}", 1u32 << bit));
        }
    }
    names
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A generation id as 16 hex digits.
pub fn gen_hex(g: u64) -> String {
    format!("{g:016x}")
}

/// A buffer whose bytes start at a multiple of [`ALIGN`], as `O_DIRECT`
/// wants.
pub(crate) struct AlignedBuf {
    raw: Vec<u8>,
    off: usize,
    len: usize,
}

impl AlignedBuf {
    pub(crate) fn zeroed(len: usize) -> AlignedBuf {
        let raw = vec![0u8; len + ALIGN];
        let off = raw.as_ptr().align_offset(ALIGN).min(ALIGN);
        AlignedBuf { raw, off, len }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.raw[self.off..self.off + self.len]
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.off..self.off + self.len]
    }
}

/// How a device is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only its size is needed (the data device of `create-md`).
    Size,
    /// Read, shared with other users (`inspect-md`).
    Read,
    /// Written: a block device is opened exclusively (`O_EXCL`), which fails
    /// while it is mounted or held (by a live rcopy target, for one); with
    /// `force` it is then opened shared instead.
    Write { force: bool },
}

/// What identifies a device or file, to tell two paths to it apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DevId {
    Block(u64),
    File(u64, u64),
}

/// An open metadata (or data) device, or a regular file standing for one.
#[derive(Debug)]
pub struct Dev {
    /// The path as given.
    pub path: String,
    file: File,
    id: DevId,
    /// Size in bytes.
    pub size: u64,
    /// Opened shared although someone holds it exclusively (`--force`).
    pub in_use: bool,
}

fn open_with(path: &str, write: bool, direct: bool, excl: bool) -> io::Result<File> {
    let mut flags = libc::O_CLOEXEC;
    if excl {
        flags |= libc::O_EXCL;
    }
    let mut o = OpenOptions::new();
    o.read(true).write(write);
    if direct {
        // Some devices refuse direct I/O: buffered I/O and fsync then.
        match o.clone().custom_flags(flags | libc::O_DIRECT).open(path) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            r => return r,
        }
    }
    o.custom_flags(flags).open(path)
}

/// The message for a device someone holds exclusively.
pub fn in_use_error(role: &str, path: &str) -> Error {
    Error::new(format!(
        "{role} {path} is in use (mounted, or held by another device such as a live rcopy target)"
    ))
}

impl Dev {
    /// Opens `path`, a block device or a regular file; `role` names it in
    /// errors ("metadata device", "data device").
    pub fn open(role: &str, path: &str, access: Access) -> Result<Dev, Error> {
        let failed = |e: &io::Error| Error::new(format!("{role} {path}: {}", os_msg(e)));
        let md = fs::metadata(path).map_err(|e| failed(&e))?;
        let ft = md.file_type();
        let block = ft.is_block_device();
        if !block && !ft.is_file() {
            return Err(Error::new(format!(
                "{role} {path}: not a block device (nor a regular file)"
            )));
        }
        let write = matches!(access, Access::Write { .. });
        let direct = block && access != Access::Size;
        let excl = block && write;
        let mut in_use = false;
        let file = match open_with(path, write, direct, excl) {
            Ok(f) => f,
            Err(e) if excl && e.raw_os_error() == Some(libc::EBUSY) => {
                if access != (Access::Write { force: true }) {
                    return Err(in_use_error(role, path));
                }
                in_use = true;
                open_with(path, write, direct, false).map_err(|e| failed(&e))?
            }
            Err(e) => return Err(failed(&e)),
        };
        let (id, size) = if block {
            let size = blockdev::size_of_file(&file).map_err(|e| {
                Error::new(format!("{role} {path}: cannot read size: {}", os_msg(&e)))
            })?;
            (DevId::Block(md.rdev()), size)
        } else {
            (DevId::File(md.dev(), md.ino()), md.len())
        };
        Ok(Dev {
            path: path.to_string(),
            file,
            id,
            size,
            in_use,
        })
    }

    /// Whether `self` and `other` are the same device (or file).
    pub fn same_as(&self, other: &Dev) -> bool {
        self.id == other.id
    }

    pub(crate) fn read_at(&self, off: u64, len: usize) -> Result<AlignedBuf, Error> {
        let mut buf = AlignedBuf::zeroed(len);
        self.file.read_exact_at(buf.bytes_mut(), off).map_err(|e| {
            Error::new(format!(
                "{}: read failed at offset {off}: {}",
                self.path,
                os_msg(&e)
            ))
        })?;
        Ok(buf)
    }

    pub(crate) fn write_at(&self, off: u64, buf: &AlignedBuf) -> Result<(), Error> {
        self.file.write_all_at(buf.bytes(), off).map_err(|e| {
            Error::new(format!(
                "{}: write failed at offset {off}: {}",
                self.path,
                os_msg(&e)
            ))
        })
    }

    pub(crate) fn sync(&self) -> Result<(), Error> {
        self.file
            .sync_all()
            .map_err(|e| Error::new(format!("{}: flush failed: {}", self.path, os_msg(&e))))
    }

    /// The first 4096 bytes, where the superblock lives.
    fn read_superblock_block(&self) -> Result<[u8; SB_BYTES], Error> {
        let buf = self.read_at(0, SB_BYTES)?;
        let mut b = [0u8; SB_BYTES];
        b.copy_from_slice(buf.bytes());
        Ok(b)
    }
}

/// A random, non-zero 64-bit id from `/dev/urandom`.
pub fn random_id() -> Result<u64, Error> {
    let mut f = File::open("/dev/urandom")
        .map_err(|e| Error::new(format!("/dev/urandom: {}", os_msg(&e))))?;
    loop {
        let mut b = [0u8; 8];
        f.read_exact(&mut b)
            .map_err(|e| Error::new(format!("/dev/urandom: {}", os_msg(&e))))?;
        let v = u64::from_le_bytes(b);
        if v != 0 {
            return Ok(v);
        }
    }
}

/// The pair a superblock belongs to, for messages: its name (`r0`), or for
/// metadata that holds none, the start of its pair id (`3fa2…`).
pub fn pair_label(sb: &Superblock) -> String {
    if sb.name.is_empty() {
        format!("{}…", hex(&sb.pair_id[..2]))
    } else {
        sb.name.as_str().to_string()
    }
}

/// A one-line description of a superblock: `pair r0, 256 MiB, 64 KiB
/// tracks, synced` (`pair 3fa2…` if it holds no name).
pub fn summary(sb: &Superblock) -> String {
    format!("pair {}, {}", pair_label(sb), detail(sb))
}

/// Size, track size and flags of a superblock: `256 MiB, 64 KiB tracks,
/// synced`.
fn detail(sb: &Superblock) -> String {
    let flags = flag_names(sb.flags);
    format!(
        "{}, {} tracks, {}",
        human_bytes(sb.size_bytes),
        human_bytes(u64::from(sb.track_size)),
        if flags.is_empty() {
            "no flags".to_string()
        } else {
            flags.join(",")
        }
    )
}

/// What `rcopyctl create-md` was asked for.
#[derive(Debug, Clone, Copy)]
pub struct CreateRequest<'a> {
    pub meta: &'a str,
    pub data: &'a str,
    pub track_size: Option<&'a Size>,
    pub pair_id: Option<&'a str>,
    pub force: bool,
}

/// What `create-md` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The metadata device's path.
    pub meta: String,
    /// The data device's path.
    pub data: String,
    /// The pair id word the id was hashed from.
    pub pair_name: String,
    /// The superblock written.
    pub sb: Superblock,
    /// Size of the metadata device.
    pub meta_size: u64,
    /// The valid superblock overwritten (`--force`), if any.
    pub replaced: Option<Superblock>,
    /// Things the user should know (printed to stderr).
    pub warnings: Vec<String>,
}

/// Checks a `--pair-id` word as the table would take it.
pub fn check_pair_id(word: &str) -> Result<(), Error> {
    check_word("--pair-id", "the pair id", word, true)?;
    if word.len() > MAX_PAIR_ID {
        return Err(Error::usage(format!(
            "--pair-id {word:?}: {} (got {} bytes)",
            TableError::BadPairId.message(),
            word.len()
        )));
    }
    // The superblock stores the word in clear: it takes what `check_word` takes.
    if !pair_name_valid(word.as_bytes()) {
        return Err(Error::usage(format!(
            "--pair-id {word:?}: the pair id cannot be stored in the superblock"
        )));
    }
    Ok(())
}

/// Writes fresh metadata for `req.data` to `req.meta`: a superblock with a
/// new node id and generation from `new_id`, no flags, and a zeroed bitmap.
///
/// The old superblock is zeroed first and the new one written last, each step
/// flushed, so an interrupted run leaves either the old metadata or none
/// (which the kernel formats itself), never a new superblock over a stale
/// bitmap.
pub fn create_md(
    req: &CreateRequest<'_>,
    mut new_id: impl FnMut() -> Result<u64, Error>,
) -> Result<Created, Error> {
    // Options first: a wrong flag is reported before any device is touched.
    let track_size = check_track_size(req.track_size)?;
    let pair_name = req.pair_id.unwrap_or(DEFAULT_PAIR_ID);
    check_pair_id(pair_name)?;

    let data = Dev::open("data device", req.data, Access::Size)?;
    let meta = Dev::open(
        "metadata device",
        req.meta,
        Access::Write { force: req.force },
    )?;
    // The table covers whole sectors of the data device.
    let size = check_devices(
        (&data.path, data.size),
        (&meta.path, meta.size),
        meta.same_as(&data),
        track_size,
    )?;

    let mut warnings = Vec::new();
    if meta.in_use {
        warnings.push(format!(
            "metadata device {} is in use (held exclusively by another user); \
             writing anyway (--force)",
            meta.path
        ));
    }
    let old = meta.read_superblock_block()?;
    let replaced = match Superblock::decode(&old) {
        Ok(sb) if !req.force => {
            return Err(Error::new(format!(
                "{} already holds rcopy metadata of pair {} ({}): use --force to overwrite",
                meta.path,
                pair_label(&sb),
                detail(&sb)
            )))
        }
        Ok(sb) => Some(sb),
        Err(e @ (MetaError::BadVersion | MetaError::BadChecksum | MetaError::BadField))
            if !req.force =>
        {
            return Err(Error::new(format!(
                "{} holds rcopy metadata that cannot be used ({e}): use --force to overwrite",
                meta.path
            )))
        }
        Err(_) if !req.force => {
            let mut read =
                |off: u64, len: usize| meta.read_at(off, len).ok().map(|b| b.bytes().to_vec());
            if let Some(what) = signature::detect(meta.size, &mut read) {
                return Err(Error::new(format!(
                    "{} holds {what}: refusing to overwrite it (use --force to overwrite)",
                    meta.path
                )));
            }
            None
        }
        Err(_) => None,
    };

    let sb = Superblock::for_pair(pair_name.as_bytes(), new_id()?, new_id()?, size, track_size);

    // 1. No superblock: the device reads as unformatted from here on.
    meta.write_at(0, &AlignedBuf::zeroed(SB_BYTES))?;
    meta.sync()?;
    // 2. An empty bitmap and an empty activity log (right after the bitmap): a log left
    // by an earlier use of the device would mark its extents again at the first start.
    let bitmap_len = meta_bytes_needed(size, track_size) - BITMAP_OFFSET;
    let zeroes = AlignedBuf::zeroed(CHUNK);
    let mut done = 0u64;
    while done < bitmap_len {
        let n = (bitmap_len - done).min(CHUNK as u64) as usize;
        let buf = if n == CHUNK {
            &zeroes
        } else {
            &AlignedBuf::zeroed(n)
        };
        meta.write_at(BITMAP_OFFSET + done, buf)?;
        done += n as u64;
    }
    meta.sync()?;
    // 3. The superblock.
    let mut block = AlignedBuf::zeroed(SB_BYTES);
    block.bytes_mut().copy_from_slice(&sb.encode());
    meta.write_at(0, &block)?;
    meta.sync()?;
    // Read it back, as the kernel will.
    match Superblock::decode(&meta.read_superblock_block()?) {
        Ok(back) if back == sb => {}
        Ok(_) => {
            return Err(Error::new(format!(
                "{}: the superblock read back differs from the one written",
                meta.path
            )))
        }
        Err(e) => {
            return Err(Error::new(format!(
                "{}: the superblock read back is refused: {e}",
                meta.path
            )))
        }
    }
    Ok(Created {
        meta: meta.path.clone(),
        data: data.path.clone(),
        pair_name: pair_name.to_string(),
        sb,
        meta_size: meta.size,
        replaced,
        warnings,
    })
}

/// Rows `label: value`, aligned, after a heading line.
pub(crate) fn rows(heading: &str, rows: &[(&str, String)]) -> String {
    let mut s = format!("{heading}\n");
    for (label, value) in rows {
        s.push_str(&format!("  {:<15}{value}\n", format!("{label}:")));
    }
    s
}

/// What `create-md` prints.
pub fn created_text(c: &Created) -> String {
    let sb = &c.sb;
    let n = tracks(sb.size_bytes, sb.track_size);
    let bitmap = bitmap_blocks(n) * BITMAP_BLOCK as u64;
    let heading = match &c.replaced {
        Some(old) => format!(
            "{}: wrote rcopy metadata (replacing {})",
            c.meta,
            summary(old)
        ),
        None => format!("{}: wrote rcopy metadata", c.meta),
    };
    rows(
        &heading,
        &[
            (
                "pair id",
                format!("{} (--pair-id {})", hex(&sb.pair_id), c.pair_name),
            ),
            ("node id", gen_hex(sb.node_id)),
            (
                "size",
                format!(
                    "{} ({} bytes, data device {})",
                    human_bytes(sb.size_bytes),
                    sb.size_bytes,
                    c.data
                ),
            ),
            (
                "track size",
                format!("{} ({n} tracks)", human_bytes(u64::from(sb.track_size))),
            ),
            ("generation", gen_hex(sb.gen_current)),
            (
                "bitmap",
                format!("{} at offset {BITMAP_OFFSET}, zeroed", human_bytes(bitmap)),
            ),
            (
                "metadata",
                format!(
                    "{} used of {}",
                    human_bytes(meta_bytes_needed(sb.size_bytes, sb.track_size)),
                    human_bytes(c.meta_size)
                ),
            ),
        ],
    )
}

/// Runs `rcopyctl create-md`.
pub fn run_create(req: &CreateRequest<'_>) -> Result<(), Error> {
    let c = create_md(req, random_id)?;
    for w in &c.warnings {
        eprintln!("rcopyctl: warning: {w}");
    }
    out(created_text(&c).trim_end());
    Ok(())
}

/// Counts the set bits of bitmap bytes whose first bit is track `first` (a
/// multiple of 64): `(bits of tracks below tracks, bits past the last track)`.
pub fn count_bits(bytes: &[u8], first: u64, tracks: u64) -> (u64, u64) {
    let (mut valid, mut stray) = (0u64, 0u64);
    for (i, w) in bytes.chunks_exact(8).enumerate() {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        let word = u64::from_le_bytes(a);
        let base = first.saturating_add(i as u64 * 64);
        let mask = match tracks.saturating_sub(base) {
            0 => 0,
            n if n >= 64 => u64::MAX,
            n => (1u64 << n) - 1,
        };
        valid += u64::from((word & mask).count_ones());
        stray += u64::from((word & !mask).count_ones());
    }
    (valid, stray)
}

/// What `inspect-md` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The metadata device's path.
    pub path: String,
    /// Its size.
    pub meta_size: u64,
    /// The superblock.
    pub sb: Superblock,
    /// Tracks of the volume.
    pub tracks: u64,
    /// Set bits of the bitmap (tracks to copy).
    pub dirty_tracks: u64,
    /// Set bits past the last track (should be none).
    pub stray_bits: u64,
}

impl Inspection {
    /// Bytes of the dirty tracks (whole tracks, as the status line counts).
    pub fn dirty_bytes(&self) -> u64 {
        self.dirty_tracks
            .saturating_mul(u64::from(self.sb.track_size))
    }

    /// Bytes of the metadata device in use: superblock, bitmap and
    /// activity log.
    pub fn meta_used(&self) -> u64 {
        meta_bytes_needed(self.sb.size_bytes, self.sb.track_size)
    }
}

/// Reads the superblock and the bitmap of the metadata at `path`.
pub fn inspect_md(path: &str) -> Result<Inspection, Error> {
    let dev = Dev::open("metadata device", path, Access::Read)?;
    if dev.size < SB_BYTES as u64 {
        return Err(Error::new(format!(
            "{path} is too small to hold rcopy metadata ({} bytes)",
            dev.size
        )));
    }
    let sb = match Superblock::decode(&dev.read_superblock_block()?) {
        Ok(sb) => sb,
        Err(MetaError::NotFormatted) => {
            return Err(Error::new(format!("{path} holds no rcopy metadata")))
        }
        Err(e) => return Err(Error::new(format!("{path}: {e}"))),
    };
    let n = tracks(sb.size_bytes, sb.track_size);
    let need = meta_bytes_needed(sb.size_bytes, sb.track_size);
    if dev.size < need {
        return Err(Error::new(format!(
            "{path}: metadata device too small for the bitmap its superblock describes: \
             {} bytes, needs {need} bytes ({} with {} tracks)",
            dev.size,
            human_bytes(sb.size_bytes),
            human_bytes(u64::from(sb.track_size))
        )));
    }
    let bitmap_len = bitmap_blocks(n) * BITMAP_BLOCK as u64;
    let (mut dirty, mut stray) = (0u64, 0u64);
    let mut done = 0u64;
    while done < bitmap_len {
        let len = (bitmap_len - done).min(CHUNK as u64) as usize;
        let buf = dev.read_at(BITMAP_OFFSET + done, len)?;
        // `done` is a multiple of the block size: 8 tracks a byte.
        let (v, s) = count_bits(buf.bytes(), done * 8, n);
        dirty += v;
        stray += s;
        done += len as u64;
    }
    debug_assert_eq!(TRACKS_PER_BLOCK, BITMAP_BLOCK as u64 * 8);
    Ok(Inspection {
        path: path.to_string(),
        meta_size: dev.size,
        sb,
        tracks: n,
        dirty_tracks: dirty,
        stray_bits: stray,
    })
}

/// `inspect-md`'s `pair:` for metadata that holds no name.
pub const NO_NAME: &str = "- (none recorded: the metadata predates pair names)";

/// `inspect-md`'s text.
pub fn inspection_text(i: &Inspection) -> String {
    let sb = &i.sb;
    let flags = flag_names(sb.flags);
    let mut pair = hex(&sb.pair_id);
    if sb.pair_id == pair_id_from_name(DEFAULT_PAIR_ID.as_bytes()) {
        pair.push_str(" (pair_id default)");
    }
    let gen_or_none = |g: u64| {
        if g == 0 {
            "- (none)".to_string()
        } else {
            gen_hex(g)
        }
    };
    let name = if sb.name.is_empty() {
        NO_NAME.to_string()
    } else {
        sb.name.as_str().to_string()
    };
    let mut r: Vec<(&str, String)> = vec![
        ("version", META_VERSION.to_string()),
        ("pair", name),
        ("pair id", pair),
        ("node id", gen_hex(sb.node_id)),
        (
            "size",
            format!("{} ({} bytes)", human_bytes(sb.size_bytes), sb.size_bytes),
        ),
        (
            "track size",
            format!(
                "{} ({} tracks)",
                human_bytes(u64::from(sb.track_size)),
                i.tracks
            ),
        ),
        (
            "flags",
            format!(
                "{} ({:#x})",
                if flags.is_empty() {
                    "none".to_string()
                } else {
                    flags.join(", ")
                },
                sb.flags
            ),
        ),
        ("gen current", gen_hex(sb.gen_current)),
        ("gen bitmap", gen_or_none(sb.gen_bitmap)),
        ("gen peer prev", gen_or_none(sb.gen_peer_prev)),
        (
            "gen history",
            format!(
                "{}, {}",
                gen_or_none(sb.gen_history[0]),
                gen_or_none(sb.gen_history[1])
            ),
        ),
        (
            "dirty tracks",
            format!(
                "{} (the superblock records {})",
                i.dirty_tracks, sb.dirty_tracks
            ),
        ),
        (
            "dirty bytes",
            format!(
                "{} ({} bytes)",
                human_bytes(i.dirty_bytes()),
                i.dirty_bytes()
            ),
        ),
    ];
    if i.stray_bits != 0 {
        r.push((
            "stray bits",
            format!("{} set past the last track", i.stray_bits),
        ));
    }
    r.push((
        "metadata",
        format!(
            "{} used of {}",
            human_bytes(i.meta_used()),
            human_bytes(i.meta_size)
        ),
    ));
    rows(&format!("{}: rcopy metadata", i.path), &r)
}

/// `inspect-md --json`: one object. Ids and generations are hex strings
/// (16 digits; 0 means none), flags a list of names, `pair` the pair's name
/// (`null` if the metadata holds none).
pub fn inspection_json(i: &Inspection) -> String {
    let sb = &i.sb;
    let hexv = |g: u64| Value::Str(gen_hex(g));
    json::object(&[
        ("path", Value::Str(i.path.clone())),
        ("version", Value::Num(u64::from(META_VERSION))),
        (
            "pair",
            if sb.name.is_empty() {
                Value::Null
            } else {
                Value::Str(sb.name.as_str().to_string())
            },
        ),
        ("pair_id", Value::Str(hex(&sb.pair_id))),
        ("node_id", hexv(sb.node_id)),
        ("size", Value::Num(sb.size_bytes)),
        ("track_size", Value::Num(u64::from(sb.track_size))),
        ("tracks", Value::Num(i.tracks)),
        (
            "flags",
            Value::List(flag_names(sb.flags).into_iter().map(Value::Str).collect()),
        ),
        ("flags_raw", Value::Num(u64::from(sb.flags))),
        ("gen_current", hexv(sb.gen_current)),
        ("gen_bitmap", hexv(sb.gen_bitmap)),
        ("gen_peer_prev", hexv(sb.gen_peer_prev)),
        (
            "gen_history",
            Value::List(sb.gen_history.iter().map(|&g| hexv(g)).collect()),
        ),
        ("dirty_tracks", Value::Num(i.dirty_tracks)),
        ("dirty_bytes", Value::Num(i.dirty_bytes())),
        ("sb_dirty_tracks", Value::Num(sb.dirty_tracks)),
        ("stray_bits", Value::Num(i.stray_bits)),
        ("meta_size", Value::Num(i.meta_size)),
        ("meta_used", Value::Num(i.meta_used())),
    ])
}

/// What [`mark_unpaired`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpaired {
    /// The superblock written.
    pub sb: Superblock,
    /// Tracks of the volume: every one is now marked.
    pub tracks: u64,
}

/// The bitmap bytes of blocks holding `tracks` tracks with every track
/// marked (track `t` is bit `t % 8` of byte `t / 8`, the little-endian
/// words' layout) and no bit past the last track.
pub fn full_bitmap(tracks: u64) -> Vec<u8> {
    let len = (bitmap_blocks(tracks) * BITMAP_BLOCK as u64) as usize;
    let mut b = vec![0u8; len];
    let full = (tracks / 8) as usize;
    b[..full].fill(0xff);
    let rest = tracks % 8;
    if rest != 0 {
        b[full] = (1u8 << rest) - 1;
    }
    b
}

/// Marks the metadata at `path` so that a later re-pairing never trusts this
/// side silently (`rcopyctl unpair`): every track is set in the bitmap (a
/// standalone device tracks no writes, so the first resync copies every
/// track) and a new generation `gen` starts. `size` and `track_size` are
/// the live table's: the superblock must describe them.
///
/// The device is expected to be held by a suspended rcopy target (opened
/// shared). The bitmap is written and flushed before the superblock, so an
/// interrupted run leaves the old generation with more tracks marked, never
/// a new generation over a partial bitmap.
pub fn mark_unpaired(path: &str, size: u64, track_size: u32, gen: u64) -> Result<Unpaired, Error> {
    let dev = Dev::open("metadata device", path, Access::Write { force: true })?;
    if dev.size < SB_BYTES as u64 {
        return Err(Error::new(format!(
            "{path} is too small to hold rcopy metadata ({} bytes)",
            dev.size
        )));
    }
    let mut sb = match Superblock::decode(&dev.read_superblock_block()?) {
        Ok(sb) => sb,
        Err(MetaError::NotFormatted) => {
            return Err(Error::new(format!("{path} holds no rcopy metadata")))
        }
        Err(e) => return Err(Error::new(format!("{path}: {e}"))),
    };
    if sb.size_bytes != size || sb.track_size != track_size {
        return Err(Error::new(format!(
            "{path}: the metadata describes {} in {} tracks, the table {} in {} tracks",
            human_bytes(sb.size_bytes),
            human_bytes(u64::from(sb.track_size)),
            human_bytes(size),
            human_bytes(u64::from(track_size))
        )));
    }
    let n = tracks(sb.size_bytes, sb.track_size);
    let need = meta_bytes_needed(sb.size_bytes, sb.track_size);
    if dev.size < need {
        return Err(Error::new(format!(
            "{path}: metadata device too small for its bitmap: {} bytes, needs {need} bytes",
            dev.size
        )));
    }
    // 1. Every track marked.
    let bits = full_bitmap(n);
    for (i, chunk) in bits.chunks(CHUNK).enumerate() {
        let mut buf = AlignedBuf::zeroed(chunk.len());
        buf.bytes_mut().copy_from_slice(chunk);
        dev.write_at(BITMAP_OFFSET + (i * CHUNK) as u64, &buf)?;
    }
    dev.sync()?;
    // 2. The new generation.
    sb.new_generation(gen);
    sb.dirty_tracks = n;
    let mut block = AlignedBuf::zeroed(SB_BYTES);
    block.bytes_mut().copy_from_slice(&sb.encode());
    dev.write_at(0, &block)?;
    dev.sync()?;
    match Superblock::decode(&dev.read_superblock_block()?) {
        Ok(back) if back == sb => Ok(Unpaired { sb, tracks: n }),
        _ => Err(Error::new(format!(
            "{path}: the superblock read back differs from the one written"
        ))),
    }
}

/// Runs `rcopyctl inspect-md`.
pub fn run_inspect(path: &str, as_json: bool) -> Result<(), Error> {
    let i = inspect_md(path)?;
    if as_json {
        out(&inspection_json(&i));
    } else {
        out(inspection_text(&i).trim_end());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcopy_core::format::{block_of_track, block_offset};

    use crate::testfile::TempFile;

    /// A typed track size that lives for the test.
    fn ts(n: u64) -> &'static Size {
        Box::leak(Box::new(Size::bytes(n)))
    }

    /// Ids 1, 2, 3...
    fn counter() -> impl FnMut() -> Result<u64, Error> {
        let mut n = 0;
        move || {
            n += 1;
            Ok(n)
        }
    }

    fn req<'a>(meta: &'a TempFile, data: &'a TempFile) -> CreateRequest<'a> {
        CreateRequest {
            meta: meta.path(),
            data: data.path(),
            track_size: None,
            pair_id: None,
            force: false,
        }
    }

    #[test]
    fn flags_and_hex() {
        assert!(flag_names(0).is_empty());
        assert_eq!(
            flag_names(SB_SYNCED | SB_CONSISTENT | SB_PRIMARY),
            ["synced", "consistent", "primary"]
        );
        assert_eq!(
            flag_names(SB_COPY_STARTED | 0x100),
            ["copy-started", "0x100"]
        );
        assert_eq!(hex(&[0x3f, 0xa2, 0]), "3fa200");
        assert_eq!(gen_hex(0xabc), "0000000000000abc");
    }

    #[test]
    fn aligned_buffers() {
        for len in [4096, 8192, CHUNK] {
            let b = AlignedBuf::zeroed(len);
            assert_eq!(b.bytes().len(), len);
            assert_eq!(b.bytes().as_ptr() as usize % ALIGN, 0);
            assert!(b.bytes().iter().all(|&c| c == 0));
        }
    }

    #[test]
    fn counting_bits() {
        // 100 tracks: words 0 and 1, bits 36.. of word 1 are past the end.
        let mut b = vec![0u8; 4096];
        b[0] = 0b1000_0001; // tracks 0, 7
        b[8 + 4] = 0b0001_0000; // track 64 + 36 = 100: stray
        b[8 + 4 - 1] = 0b1000_0000; // track 64 + 31 = 95
        assert_eq!(count_bits(&b, 0, 100), (3, 1));
        assert_eq!(count_bits(&b, 0, 101), (4, 0));
        assert_eq!(count_bits(&b, 0, 0), (0, 4));
        let full = vec![0xffu8; 4096];
        assert_eq!(count_bits(&full, 0, 1 << 20), (32768, 0));
        assert_eq!(count_bits(&full, 32768, 32768 + 10), (10, 32758));
        assert_eq!(count_bits(&full, 32768, 0), (0, 32768));
    }

    #[test]
    fn create_then_inspect() {
        let data = TempFile::new("data", (1 << 30) + 500);
        let meta = TempFile::new("meta", 1 << 20);
        // Junk where the bitmap and the activity log go, and past them: create-md
        // zeroes the first two.
        let used = meta_bytes_needed(1 << 30, 65536);
        meta.write_at(
            BITMAP_OFFSET,
            &vec![0xff; (used + 4096 - BITMAP_OFFSET) as usize],
        );
        let c = create_md(&req(&meta, &data), counter()).unwrap();
        assert!(c.warnings.is_empty());
        assert_eq!(c.replaced, None);
        let want = Superblock::for_pair(b"default", 1, 2, 1 << 30, 65536);
        assert_eq!(want.name.as_str(), "default");
        assert_eq!(want.flags, 0);
        assert_eq!(c.sb, want);
        assert_eq!(
            Superblock::decode(meta.read_at(0, 4096).as_slice().try_into().unwrap()),
            Ok(want)
        );
        // 16384 tracks: one bitmap block and the activity log, zeroed; the block
        // after them untouched.
        assert!(meta
            .read_at(BITMAP_OFFSET, (used - BITMAP_OFFSET) as usize)
            .iter()
            .all(|&b| b == 0));
        assert!(meta.read_at(used, 4096).iter().all(|&b| b == 0xff));
        let t = created_text(&c);
        assert!(
            t.starts_with(&format!("{}: wrote rcopy metadata\n", meta.path())),
            "{t}"
        );
        assert!(
            t.contains(&format!(
                "  pair id:       {} (--pair-id default)\n",
                hex(&want.pair_id)
            )),
            "{t}"
        );
        assert!(t.contains("  node id:       0000000000000001\n"), "{t}");
        assert!(
            t.contains("  track size:    64 KiB (16384 tracks)\n"),
            "{t}"
        );
        assert!(t.contains("  generation:    0000000000000002\n"), "{t}");
        assert!(
            t.contains("  bitmap:        4 KiB at offset 4096, zeroed\n"),
            "{t}"
        );
        assert!(
            t.contains(&format!(
                "  metadata:      {} used of 1 MiB\n",
                human_bytes(used)
            )),
            "{t}"
        );

        let i = inspect_md(meta.path()).unwrap();
        assert_eq!(i.sb, want);
        assert_eq!((i.tracks, i.dirty_tracks, i.stray_bits), (16384, 0, 0));
        let t = inspection_text(&i);
        assert!(
            t.contains(&format!("  version:       {META_VERSION}\n")),
            "{t}"
        );
        assert!(t.contains(" (pair_id default)\n"), "{t}");
        assert!(t.contains("  pair:          default\n"), "{t}");
        assert!(
            t.contains("  size:          1 GiB (1073741824 bytes)\n"),
            "{t}"
        );
        assert!(t.contains("  flags:         none (0x0)\n"), "{t}");
        assert!(t.contains("  gen current:   0000000000000002\n"), "{t}");
        assert!(t.contains("  gen bitmap:    - (none)\n"), "{t}");
        assert!(t.contains("  gen peer prev: - (none)\n"), "{t}");
        assert!(t.contains("  gen history:   - (none), - (none)\n"), "{t}");
        assert!(
            t.contains("  dirty tracks:  0 (the superblock records 0)\n"),
            "{t}"
        );
        assert!(!t.contains("stray"), "{t}");
    }

    #[test]
    fn inspect_counts_the_bitmap() {
        // 10 GiB at 64 KiB: 163840 tracks, 5 bitmap blocks.
        let data = TempFile::new("data", 10 << 30);
        let meta = TempFile::new("meta", 1 << 20);
        let mut r = req(&meta, &data);
        r.pair_id = Some("p1");
        create_md(&r, counter()).unwrap();
        // Dirty the tracks 0, 63, 64, 32768 and the last one, as the kernel
        // lays them out.
        let last = 163840 - 1;
        for t in [0u64, 63, 64, 32768, last] {
            let off = block_offset(block_of_track(t)) + (t % 32768) / 64 * 8;
            let mut w = u64::from_le_bytes(meta.read_at(off, 8).try_into().unwrap());
            w |= 1 << (t % 64);
            meta.write_at(off, &w.to_le_bytes());
        }
        // A superblock with flags and generations, as the kernel would write.
        let mut sb = inspect_md(meta.path()).unwrap().sb;
        sb.flags = SB_SYNCED | SB_PRIMARY;
        // The peer was at 5, then caught up with this side's 2; then a new
        // generation started.
        sb.peer_is_at(5);
        let gen = sb.gen_current;
        sb.peer_caught_up(gen);
        sb.new_generation(0x77);
        sb.dirty_tracks = 4;
        meta.write_at(0, &sb.encode());

        let i = inspect_md(meta.path()).unwrap();
        assert_eq!((i.tracks, i.dirty_tracks, i.stray_bits), (163840, 5, 0));
        assert_eq!(i.dirty_bytes(), 5 * 65536);
        assert_eq!(i.meta_used(), meta_bytes_needed(10 << 30, 65536));
        let t = inspection_text(&i);
        assert!(!t.contains("(pair_id default)"), "{t}");
        assert!(
            t.contains(&format!(
                "  version:       {META_VERSION}\n  pair:          p1\n  pair id:       {}\n",
                hex(&pair_id_from_name(b"p1"))
            )),
            "{t}"
        );
        assert!(
            t.contains("  flags:         synced, primary (0x9)\n"),
            "{t}"
        );
        assert!(t.contains("  gen current:   0000000000000077\n"), "{t}");
        assert!(t.contains("  gen bitmap:    0000000000000002\n"), "{t}");
        assert!(t.contains("  gen peer prev: 0000000000000005\n"), "{t}");
        assert!(
            t.contains("  gen history:   0000000000000002, - (none)\n"),
            "{t}"
        );
        assert!(
            t.contains("  dirty tracks:  5 (the superblock records 4)\n"),
            "{t}"
        );
        assert!(
            t.contains("  dirty bytes:   320 KiB (327680 bytes)\n"),
            "{t}"
        );
        let j = inspection_json(&i);
        assert!(
            j.starts_with(&format!(
                "{{\"path\": \"{}\", \"version\": {META_VERSION}, ",
                meta.path()
            )),
            "{j}"
        );
        assert!(
            j.contains(&format!(
                "\"pair\": \"p1\", \"pair_id\": \"{}\"",
                hex(&pair_id_from_name(b"p1"))
            )),
            "{j}"
        );
        assert!(j.contains("\"node_id\": \"0000000000000001\""), "{j}");
        assert!(
            j.contains("\"size\": 10737418240, \"track_size\": 65536, \"tracks\": 163840"),
            "{j}"
        );
        assert!(
            j.contains("\"flags\": [\"synced\", \"primary\"], \"flags_raw\": 9"),
            "{j}"
        );
        assert!(
            j.contains(
                "\"gen_bitmap\": \"0000000000000002\", \"gen_peer_prev\": \"0000000000000005\""
            ),
            "{j}"
        );
        assert!(
            j.contains("\"gen_history\": [\"0000000000000002\", \"0000000000000000\"]"),
            "{j}"
        );
        assert!(
            j.contains("\"dirty_tracks\": 5, \"dirty_bytes\": 327680, \"sb_dirty_tracks\": 4"),
            "{j}"
        );
        assert!(
            j.ends_with(&format!(
                "\"meta_size\": 1048576, \"meta_used\": {}}}",
                meta_bytes_needed(10 << 30, 65536)
            )),
            "{j}"
        );
    }

    #[test]
    fn inspect_metadata_without_a_name() {
        // What rcopyctl wrote before superblocks held names: zeroes there.
        let data = TempFile::new("data", 256 << 20);
        let meta = TempFile::new("meta", 128 << 10);
        let old = Superblock::new(pair_id_from_name(b"r0"), 1, 2, 256 << 20, 65536);
        meta.write_at(0, &old.encode());
        assert!(meta.read_at(104, 64).iter().all(|&c| c == 0));
        let i = inspect_md(meta.path()).unwrap();
        assert_eq!(i.sb, old);
        let t = inspection_text(&i);
        assert!(t.contains(&format!("  pair:          {NO_NAME}\n")), "{t}");
        let j = inspection_json(&i);
        assert!(j.contains("\"pair\": null, \"pair_id\": "), "{j}");
        drop(data);
    }

    #[test]
    fn stray_bits_are_reported() {
        // 1 MiB at 64 KiB: 16 tracks; bits 16.. of the block are slack.
        let data = TempFile::new("data", 1 << 20);
        let meta = TempFile::new("meta", 128 << 10);
        create_md(&req(&meta, &data), counter()).unwrap();
        meta.write_at(BITMAP_OFFSET, &((1u64 << 15) | (1 << 16)).to_le_bytes());
        meta.write_at(BITMAP_OFFSET + 4088, &[0x80]);
        let i = inspect_md(meta.path()).unwrap();
        assert_eq!((i.tracks, i.dirty_tracks, i.stray_bits), (16, 1, 2));
        let t = inspection_text(&i);
        assert!(
            t.contains("  stray bits:    2 set past the last track\n"),
            "{t}"
        );
        assert!(inspection_json(&i).contains("\"stray_bits\": 2"));
    }

    #[test]
    fn refuses_to_overwrite_without_force() {
        let data = TempFile::new("data", 256 << 20);
        let meta = TempFile::new("meta", 128 << 10);
        create_md(&req(&meta, &data), counter()).unwrap();
        let mut sb = inspect_md(meta.path()).unwrap().sb;
        sb.flags = SB_SYNCED;
        meta.write_at(0, &sb.encode());
        let before = meta.read_at(0, 8192);
        let e = create_md(&req(&meta, &data), counter())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "{} already holds rcopy metadata of pair default (256 MiB, 64 KiB tracks, \
                 synced): use --force to overwrite",
                meta.path()
            )
        );
        assert_eq!(meta.read_at(0, 8192), before, "nothing written");
        // Another pair's: named, whatever --pair-id this run was given.
        let mut r = req(&meta, &data);
        r.pair_id = Some("r1");
        r.force = true;
        create_md(&r, counter()).unwrap();
        let mut r = req(&meta, &data);
        r.pair_id = Some("r0");
        let e = create_md(&r, counter()).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{} already holds rcopy metadata of pair r1 (256 MiB, ",
                meta.path()
            )),
            "{e}"
        );
        // Metadata from before names: the start of its pair id.
        let old = Superblock::new(pair_id_from_name(b"r1"), 1, 2, 256 << 20, 65536);
        meta.write_at(0, &old.encode());
        let e = create_md(&r, counter()).unwrap_err().to_string();
        let prefix = hex(&pair_id_from_name(b"r1")[..2]);
        assert!(
            e.starts_with(&format!(
                "{} already holds rcopy metadata of pair {prefix}… (256 MiB, ",
                meta.path()
            )),
            "{e}"
        );
        meta.write_at(0, &before[..4096]);

        // --force replaces it, with new ids.
        let mut r = req(&meta, &data);
        r.force = true;
        r.track_size = Some(ts(4096));
        let mut ids = [9u64, 10].into_iter();
        let c = create_md(&r, || Ok(ids.next().unwrap())).unwrap();
        assert_eq!(c.replaced, Some(sb));
        assert_eq!(
            (c.sb.node_id, c.sb.gen_current, c.sb.track_size),
            (9, 10, 4096)
        );
        assert_eq!(c.sb.flags, 0);
        assert!(created_text(&c).contains(
            ": wrote rcopy metadata (replacing pair default, 256 MiB, 64 KiB tracks, synced)\n"
        ));
        assert_eq!(inspect_md(meta.path()).unwrap().sb, c.sb);

        // Damaged rcopy metadata needs --force too; other contents do not.
        let mut bad = meta.read_at(0, 4096);
        bad[40] ^= 1;
        meta.write_at(0, &bad);
        let e = create_md(&req(&meta, &data), counter())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "{} holds rcopy metadata that cannot be used (Metadata superblock is corrupt \
                 (bad checksum)): use --force to overwrite",
                meta.path()
            )
        );
        meta.write_at(0, b"not rcopy at all");
        assert!(create_md(&req(&meta, &data), counter()).is_ok());
    }

    #[test]
    fn refuses_known_signatures_without_force() {
        let data = TempFile::new("data", 256 << 20);
        let meta = TempFile::new("meta", 16 << 20);
        // An ext4 superblock, as mkfs.ext4 writes it (magic, extents, label).
        let mut sb = vec![0u8; 1024];
        sb[56..58].copy_from_slice(&0xef53u16.to_le_bytes());
        sb[0x60..0x64].copy_from_slice(&0x40u32.to_le_bytes());
        sb[0x78..0x7c].copy_from_slice(b"home");
        meta.write_at(1024, &sb);
        let e = create_md(&req(&meta, &data), counter()).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert_eq!(
            e.to_string(),
            format!(
                "{} holds an ext4 filesystem (label \"home\"): refusing to overwrite it \
                 (use --force to overwrite)",
                meta.path()
            )
        );
        // Untouched.
        assert_eq!(meta.read_at(1024, 1024), sb);
        // --force writes over it.
        let mut r = req(&meta, &data);
        r.force = true;
        create_md(&r, counter()).unwrap();
        assert!(inspect_md(meta.path()).is_ok());
        // Swap, from the first page.
        let meta = TempFile::new("swap", 16 << 20);
        meta.write_at(4086, b"SWAPSPACE2");
        let e = create_md(&req(&meta, &data), counter())
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds swap space: refusing"), "{e}");
    }

    #[test]
    fn inspect_errors() {
        let data = TempFile::new("data", 1 << 30);
        let meta = TempFile::new("meta", 1 << 20);
        let e = inspect_md(meta.path()).unwrap_err().to_string();
        assert_eq!(e, format!("{} holds no rcopy metadata", meta.path()));
        meta.write_at(0, b"something else");
        let e = inspect_md(meta.path()).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: Metadata device holds something else (bad magic)",
                meta.path()
            )
        );
        create_md(&req(&meta, &data), counter()).unwrap();
        let good = meta.read_at(0, 4096);
        for (off, why) in [
            (12, "Metadata superblock is corrupt (bad checksum)"),
            (60, "Metadata superblock is corrupt (bad checksum)"),
            (4095, "Metadata superblock is corrupt (bad checksum)"),
            (8, "Metadata format version not supported"),
        ] {
            let mut b = good.clone();
            b[off] ^= 0x10;
            meta.write_at(0, &b);
            let e = inspect_md(meta.path()).unwrap_err().to_string();
            assert_eq!(e, format!("{}: {why}", meta.path()), "byte {off}");
        }
        // A superblock whose bitmap does not fit the device.
        let mut sb = Superblock::decode(good.as_slice().try_into().unwrap()).unwrap();
        sb.size_bytes = 1 << 40;
        sb.track_size = 4096;
        meta.write_at(0, &sb.encode());
        let e = inspect_md(meta.path()).unwrap_err().to_string();
        assert!(
            e.ends_with(&format!(
                "metadata device too small for the bitmap its superblock describes: \
                 1048576 bytes, needs {} bytes (1 TiB with 4 KiB tracks)",
                meta_bytes_needed(1 << 40, 4096)
            )),
            "{e}"
        );
        let tiny = TempFile::new("tiny", 100);
        let e = inspect_md(tiny.path()).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{} is too small to hold rcopy metadata (100 bytes)",
                tiny.path()
            )
        );
        let e = inspect_md("/nonexistent/rcopy-meta")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "metadata device /nonexistent/rcopy-meta: No such file or directory"
        );
        let e = inspect_md("/dev/null").unwrap_err().to_string();
        assert_eq!(
            e,
            "metadata device /dev/null: not a block device (nor a regular file)"
        );
    }

    #[test]
    fn create_refusals() {
        let data = TempFile::new("data", 1 << 40);
        let meta = TempFile::new("meta", 2 << 20);
        // 1 TiB at 64 KiB needs more than 2 MiB (bitmap, superblock, activity log).
        let need = meta_bytes_needed(1 << 40, 65536);
        let e = create_md(&req(&meta, &data), counter())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "metadata device {} too small: 2097152 bytes, needs {need} bytes ({}) \
                 for 1 TiB with 64 KiB tracks",
                meta.path(),
                human_bytes(need)
            )
        );
        // 1 MiB tracks fit.
        let mut r = req(&meta, &data);
        r.track_size = Some(ts(1 << 20));
        let c = create_md(&r, counter()).unwrap();
        assert_eq!((c.sb.size_bytes, c.sb.track_size), (1 << 40, 1 << 20));

        let e = create_md(
            &CreateRequest {
                data: meta.path(),
                ..req(&meta, &data)
            },
            counter(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("Data and metadata devices must differ ("),
            "{e}"
        );

        let mut r = req(&meta, &data);
        r.track_size = Some(ts(3000));
        let e = create_md(&r, counter()).unwrap_err().to_string();
        assert!(
            e.starts_with("--track-size \"3000\": Invalid track_size"),
            "{e}"
        );
        for (bad, why) in [
            ("a b", "--pair-id \"a b\": the pair id contains whitespace"),
            ("", "--pair-id \"\": the pair id is empty"),
        ] {
            let mut r = req(&meta, &data);
            r.pair_id = Some(bad);
            let e = create_md(&r, counter()).unwrap_err().to_string();
            assert!(e.starts_with(why), "{e}");
        }
        let long = "p".repeat(65);
        let mut r = req(&meta, &data);
        r.pair_id = Some(&long);
        let e = create_md(&r, counter()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.to_string(),
            format!("--pair-id {long:?}: Invalid pair_id: 1 to 64 bytes (got 65 bytes)")
        );
        assert!(check_pair_id(&"p".repeat(64)).is_ok());

        let tiny = TempFile::new("tiny", 511);
        let e = create_md(
            &CreateRequest {
                data: tiny.path(),
                ..req(&meta, &data)
            },
            counter(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            format!("data device {} is smaller than one sector", tiny.path())
        );
        let e = create_md(
            &CreateRequest {
                data: "/nonexistent/d",
                ..req(&meta, &data)
            },
            counter(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "data device /nonexistent/d: No such file or directory");
        // An id source failure writes nothing.
        let fresh = TempFile::new("fresh", 1 << 20);
        let small = TempFile::new("small", 1 << 20);
        let e = create_md(&req(&fresh, &small), || Err(Error::new("no entropy")))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "no entropy");
        assert!(fresh.read_at(0, 8192).iter().all(|&b| b == 0));
    }

    #[test]
    fn size_is_whole_sectors() {
        let data = TempFile::new("data", 1000 * 512 + 300);
        let meta = TempFile::new("meta", 128 << 10);
        let mut r = req(&meta, &data);
        r.track_size = Some(ts(4096));
        let c = create_md(&r, counter()).unwrap();
        assert_eq!(c.sb.size_bytes, 1000 * 512);
        let i = inspect_md(meta.path()).unwrap();
        // 512000 bytes in 4 KiB tracks: 125 tracks, the last one full.
        assert_eq!(i.tracks, 125);
    }

    #[test]
    fn unpair_marks_every_track() {
        assert_eq!(full_bitmap(0).len(), 0);
        let b = full_bitmap(13);
        assert_eq!(b.len(), 4096);
        assert_eq!(&b[..3], &[0xff, 0x1f, 0]);
        assert_eq!(count_bits(&b, 0, 13), (13, 0));
        let b = full_bitmap(32768 + 64);
        assert_eq!(b.len(), 8192);
        assert_eq!(count_bits(&b, 0, 32768 + 64), (32768 + 64, 0));

        // 1 GiB + 64 KiB at 64 KiB: 16385 tracks.
        let size = (1 << 30) + 65536;
        let data = TempFile::new("data", size);
        let meta = TempFile::new("meta", 1 << 20);
        let c = create_md(&req(&meta, &data), counter()).unwrap();
        let before = inspect_md(meta.path()).unwrap();
        // Past the bitmap: untouched.
        let used = meta_bytes_needed(size, 65536);
        meta.write_at(used, &[0xab; 16]);
        let u = mark_unpaired(meta.path(), size, 65536, 0x99).unwrap();
        assert_eq!(u.tracks, 16385);
        assert_eq!(u.sb.gen_current, 0x99);
        assert_eq!(u.sb.gen_history, [c.sb.gen_current, 0]);
        assert_eq!(u.sb.gen_bitmap, before.sb.gen_bitmap);
        assert_eq!(u.sb.dirty_tracks, 16385);
        assert_eq!(u.sb.pair_id, c.sb.pair_id);
        let i = inspect_md(meta.path()).unwrap();
        assert_eq!(i.sb, u.sb);
        assert_eq!((i.dirty_tracks, i.stray_bits), (16385, 0));
        assert_eq!(meta.read_at(used, 16), vec![0xab; 16]);

        // The table must match the metadata.
        let e = mark_unpaired(meta.path(), size, 4096, 0x9a)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "{}: the metadata describes 1 GiB in 64 KiB tracks, the table 1 GiB in 4 KiB \
                 tracks",
                meta.path()
            )
            .replace("1 GiB in", &format!("{} in", human_bytes(size)))
        );
        assert_eq!(inspect_md(meta.path()).unwrap().sb, u.sb, "nothing written");
        let blank = TempFile::new("blank", 1 << 20);
        let e = mark_unpaired(blank.path(), size, 65536, 1)
            .unwrap_err()
            .to_string();
        assert_eq!(e, format!("{} holds no rcopy metadata", blank.path()));
    }

    #[test]
    fn random_ids() {
        let a = random_id().unwrap();
        let b = random_id().unwrap();
        assert_ne!(a, 0);
        assert_ne!(a, b);
    }

    #[test]
    fn messages() {
        let e = in_use_error("metadata device", "/dev/vdb").to_string();
        assert_eq!(
            e,
            "metadata device /dev/vdb is in use (mounted, or held by another device such as a \
             live rcopy target)"
        );
        let mut sb = Superblock::new([0x3f; 16], 1, 1, 256 << 20, 65536);
        assert_eq!(summary(&sb), "pair 3f3f…, 256 MiB, 64 KiB tracks, no flags");
        sb.flags = SB_SYNCED | SB_CONSISTENT;
        assert_eq!(
            summary(&sb),
            "pair 3f3f…, 256 MiB, 64 KiB tracks, synced,consistent"
        );
        let sb = Superblock::for_pair(b"r0", 1, 1, 256 << 20, 65536);
        assert_eq!(summary(&sb), "pair r0, 256 MiB, 64 KiB tracks, no flags");
    }
}
