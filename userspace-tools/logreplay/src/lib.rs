//! Reading and replaying dm-log-writes logs
//! (`Documentation/admin-guide/device-mapper/log-writes.rst` in the kernel).
//!
//! The log device holds a super block at byte 0, then one entry after another,
//! each a header block of `sectorsize` bytes (a `struct log_write_entry`, and for
//! a mark its name) followed by the written data (`nr_sectors` blocks of
//! `sectorsize`; none for a discard or a mark). `sector` and `nr_sectors` count
//! blocks of `sectorsize` bytes. All fields are little-endian.
//!
//! dm-log-writes logs a plain write only once a later flush covers it, and a FUA
//! write when it completes, so every entry up to the last FLUSH or FUA entry was
//! durable on the logged device. Replaying up to there onto the device's initial
//! image gives what a disk that lost its volatile cache would hold.
//!
//! The kernel rewrites the super block's entry count only on FUA entries and marks,
//! so entries logged after the last of those are past the count. [`parse`] can
//! read on past it while the headers are plausible (`scan`); that is only sound on
//! a log device that was zeroed (or fresh) when the log started.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

/// `WRITE_LOG_MAGIC` of dm-log-writes.
pub const MAGIC: u64 = 0x006a_7366_7773_6872;
/// `WRITE_LOG_VERSION` of dm-log-writes.
pub const VERSION: u64 = 1;
/// The entry is a flush (`REQ_PREFLUSH`): everything logged before it is durable.
pub const FLUSH: u64 = 1 << 0;
/// The entry is a FUA write: its own data is durable.
pub const FUA: u64 = 1 << 1;
/// The entry is a discard (no data in the log).
pub const DISCARD: u64 = 1 << 2;
/// The entry is a mark made with `dmsetup message <dev> 0 mark <name>`.
pub const MARK: u64 = 1 << 3;
/// The write was flagged as metadata (`REQ_META`).
pub const METADATA: u64 = 1 << 4;
const KNOWN_FLAGS: u64 = FLUSH | FUA | DISCARD | MARK | METADATA;
/// Size of `struct log_write_entry`.
pub const ENTRY_LEN: usize = 32;
/// Size of the fields of `struct log_write_super` (magic, version, nr_entries, sectorsize).
pub const SUPER_LEN: usize = 28;

/// An error reading or replaying a log.
#[derive(Debug)]
pub enum Error {
    /// Reading or writing failed.
    Io(io::Error),
    /// The log is not a dm-log-writes log, or is damaged.
    Format(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::Format(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

fn format_err<T>(s: String) -> Result<T, Error> {
    Err(Error::Format(s))
}

/// Positioned reads (a file, a block device, or bytes in memory for tests).
pub trait ReadAt {
    /// Fills `buf` from byte `off`; an error if there are not enough bytes.
    fn read_exact_at_(&self, buf: &mut [u8], off: u64) -> io::Result<()>;
    /// The size in bytes.
    fn size(&self) -> io::Result<u64>;
}

/// Positioned writes.
pub trait WriteAt {
    /// Writes all of `buf` at byte `off`.
    fn write_all_at_(&mut self, buf: &[u8], off: u64) -> io::Result<()>;
}

impl ReadAt for File {
    fn read_exact_at_(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        self.read_exact_at(buf, off)
    }
    fn size(&self) -> io::Result<u64> {
        // metadata().len() is 0 for a block device; the end offset is not
        let mut f: &File = self;
        f.seek(SeekFrom::End(0))
    }
}

impl WriteAt for File {
    fn write_all_at_(&mut self, buf: &[u8], off: u64) -> io::Result<()> {
        self.write_all_at(buf, off)
    }
}

impl ReadAt for [u8] {
    fn read_exact_at_(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        let start = usize::try_from(off).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at_(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        self.as_slice().read_exact_at_(buf, off)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

impl WriteAt for Vec<u8> {
    /// Grows the vector as needed (like a sparse file).
    fn write_all_at_(&mut self, buf: &[u8], off: u64) -> io::Result<()> {
        let start = usize::try_from(off).map_err(|_| io::ErrorKind::InvalidInput)?;
        let end = start + buf.len();
        if self.len() < end {
            self.resize(end, 0);
        }
        self[start..end].copy_from_slice(buf);
        Ok(())
    }
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position in the log, from 0.
    pub index: u64,
    /// First block written (in `sectorsize` units).
    pub sector: u64,
    /// Blocks written (in `sectorsize` units).
    pub nr_sectors: u64,
    /// `FLUSH`, `FUA`, `DISCARD`, `MARK`, `METADATA`.
    pub flags: u64,
    /// Length of a mark's name.
    pub data_len: u64,
    /// Byte offset of the entry's header block in the log.
    pub offset: u64,
    /// A mark's name.
    pub mark: Option<String>,
}

impl Entry {
    /// True for a flush or a FUA write: a point up to which the device was durable.
    pub fn is_durable_point(&self) -> bool {
        self.flags & (FLUSH | FUA) != 0
    }

    /// True if data for this entry follows its header in the log.
    pub fn has_data(&self) -> bool {
        self.flags & (DISCARD | MARK) == 0 && self.nr_sectors > 0
    }

    /// The flags as a word such as `FLUSH|FUA`, or `-`.
    pub fn flag_names(&self) -> String {
        let names = [
            (FLUSH, "FLUSH"),
            (FUA, "FUA"),
            (DISCARD, "DISCARD"),
            (MARK, "MARK"),
            (METADATA, "METADATA"),
        ];
        let v: Vec<&str> = names
            .iter()
            .filter(|(f, _)| self.flags & f != 0)
            .map(|(_, n)| *n)
            .collect();
        if v.is_empty() {
            "-".into()
        } else {
            v.join("|")
        }
    }
}

/// A parsed log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// The block size of the logged device (`sectorsize` of the super block).
    pub sector_size: u64,
    /// The entry count of the super block.
    pub super_entries: u64,
    /// The entries, in log order (those found past the super block's count too).
    pub entries: Vec<Entry>,
}

impl Log {
    /// Entries read past the super block's count.
    pub fn past_super(&self) -> u64 {
        (self.entries.len() as u64).saturating_sub(self.super_entries)
    }
}

/// Reads the super block and the entry headers.
///
/// With `scan`, reading goes on past the super block's entry count for as long as
/// the headers are plausible (known flags, not all zero, data within the log).
/// An implausible header within the count is an error.
pub fn parse<R: ReadAt + ?Sized>(log: &R, scan: bool) -> Result<Log, Error> {
    let len = log.size()?;
    if len < SUPER_LEN as u64 {
        return format_err(format!("log of {len} bytes is too small for a super block"));
    }
    let mut sb = [0u8; SUPER_LEN];
    log.read_exact_at_(&mut sb, 0)?;
    let magic = le64(&sb, 0);
    if magic != MAGIC {
        return format_err(format!(
            "not a dm-log-writes log: magic {magic:#x}, expected {MAGIC:#x}"
        ));
    }
    let version = le64(&sb, 8);
    if version != VERSION {
        return format_err(format!(
            "log version {version} not supported (only {VERSION})"
        ));
    }
    let super_entries = le64(&sb, 16);
    let ss = u64::from(le32(&sb, 24));
    if !ss.is_power_of_two() || !(512..=65536).contains(&ss) {
        return format_err(format!("bad sector size {ss} in the super block"));
    }
    let mut entries = Vec::new();
    let mut hdr = vec![0u8; ss as usize];
    let mut offset = ss;
    let mut index = 0u64;
    loop {
        let within = index < super_entries;
        if !within && !scan {
            break;
        }
        if offset + ss > len {
            if within {
                return format_err(format!(
                    "log ends at entry {index} of {super_entries} (byte {offset})"
                ));
            }
            break;
        }
        log.read_exact_at_(&mut hdr, offset)?;
        let e = Entry {
            index,
            sector: le64(&hdr, 0),
            nr_sectors: le64(&hdr, 8),
            flags: le64(&hdr, 16),
            data_len: le64(&hdr, 24),
            offset,
            mark: None,
        };
        match check_entry(&e, ss, len) {
            Ok(next) => {
                let mut e = e;
                if e.flags & MARK != 0 {
                    let name = &hdr[ENTRY_LEN..ENTRY_LEN + e.data_len as usize];
                    let name = name.split(|&b| b == 0).next().unwrap_or(&[]);
                    e.mark = Some(String::from_utf8_lossy(name).into_owned());
                }
                entries.push(e);
                offset = next;
                index += 1;
            }
            Err(why) if within => {
                return format_err(format!("entry {index} at byte {offset}: {why}"));
            }
            Err(_) => break,
        }
    }
    Ok(Log {
        sector_size: ss,
        super_entries,
        entries,
    })
}

/// Checks one header; returns the offset of the next entry.
fn check_entry(e: &Entry, ss: u64, log_len: u64) -> Result<u64, String> {
    if e.flags & !KNOWN_FLAGS != 0 {
        return Err(format!("unknown flags {:#x}", e.flags));
    }
    if e.flags == 0 && e.nr_sectors == 0 {
        return Err("empty entry".into());
    }
    if e.flags & MARK != 0 && (e.nr_sectors != 0 || e.data_len > ss - ENTRY_LEN as u64) {
        return Err(format!(
            "bad mark ({} sectors, {} bytes)",
            e.nr_sectors, e.data_len
        ));
    }
    let data = if e.has_data() {
        e.nr_sectors
            .checked_mul(ss)
            .ok_or_else(|| format!("{} sectors overflow", e.nr_sectors))?
    } else {
        0
    };
    if e.sector.checked_add(e.nr_sectors).is_none() {
        return Err("sector range overflows".into());
    }
    let next = e
        .offset
        .checked_add(ss)
        .and_then(|x| x.checked_add(data))
        .ok_or("offset overflows")?;
    if next > log_len {
        return Err(format!(
            "data runs past the end of the log ({next} > {log_len})"
        ));
    }
    Ok(next)
}

/// Where a replay stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// After the last FLUSH or FUA entry: what a disk that lost its volatile cache
    /// would hold. The data of that entry itself is skipped if it is a flush
    /// without FUA (a pre-flush covers only what came before it).
    LastDurable,
    /// After the entry with this index.
    Entry(u64),
    /// After the last mark with this name.
    Mark(String),
    /// After every entry.
    All,
}

/// The index of the last entry to replay, or `None` to replay nothing.
pub fn end_index(log: &Log, end: &End) -> Result<Option<usize>, Error> {
    match end {
        End::All => Ok(log.entries.len().checked_sub(1)),
        End::LastDurable => Ok(log.entries.iter().rposition(Entry::is_durable_point)),
        End::Entry(n) => {
            if *n >= log.entries.len() as u64 {
                return format_err(format!(
                    "entry {n} not in the log ({} entries)",
                    log.entries.len()
                ));
            }
            Ok(Some(*n as usize))
        }
        End::Mark(name) => match log
            .entries
            .iter()
            .rposition(|e| e.mark.as_deref() == Some(name.as_str()))
        {
            Some(i) => Ok(Some(i)),
            None => format_err(format!("no mark named '{name}' in the log")),
        },
    }
}

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Entries gone through (marks and flushes included).
    pub entries: u64,
    /// Writes copied to the device.
    pub writes: u64,
    /// Discards, replayed as zeroes.
    pub discards: u64,
    /// Bytes written to the device (zeroes of discards included).
    pub bytes: u64,
    /// Flushes and FUA writes gone through.
    pub durable_points: u64,
}

const CHUNK: u64 = 1 << 20;

/// Replays `log` (read from `src`) onto `dev`, from the first entry up to `end`.
/// `dev_len`, if known, bounds the writes: an entry past it is an error.
pub fn replay<R, W>(
    log: &Log,
    src: &R,
    dev: &mut W,
    dev_len: Option<u64>,
    end: &End,
) -> Result<Stats, Error>
where
    R: ReadAt + ?Sized,
    W: WriteAt + ?Sized,
{
    let mut st = Stats::default();
    let Some(last) = end_index(log, end)? else {
        return Ok(st);
    };
    let ss = log.sector_size;
    let mut buf = vec![0u8; CHUNK as usize];
    let zeroes = vec![0u8; CHUNK as usize];
    for e in &log.entries[..=last] {
        st.entries += 1;
        if e.is_durable_point() {
            st.durable_points += 1;
        }
        if e.flags & MARK != 0 || e.nr_sectors == 0 {
            continue;
        }
        let at = e.sector * ss;
        let n = e.nr_sectors * ss;
        if let Some(l) = dev_len {
            if at + n > l {
                return format_err(format!(
                    "entry {} writes bytes {at}..{} past the device's {l}",
                    e.index,
                    at + n
                ));
            }
        }
        if e.flags & DISCARD != 0 {
            let mut done = 0;
            while done < n {
                let k = (n - done).min(CHUNK);
                dev.write_all_at_(&zeroes[..k as usize], at + done)?;
                done += k;
            }
            st.discards += 1;
            st.bytes += n;
            continue;
        }
        if *end == End::LastDurable && e.index == last as u64 && e.flags & FUA == 0 {
            // the final pre-flush made what came before durable, not this data
            continue;
        }
        let from = e.offset + ss;
        let mut done = 0;
        while done < n {
            let k = (n - done).min(CHUNK) as usize;
            src.read_exact_at_(&mut buf[..k], from + done)?;
            dev.write_all_at_(&buf[..k], at + done)?;
            done += k as u64;
        }
        st.writes += 1;
        st.bytes += n;
    }
    Ok(st)
}

/// Builds logs in memory, as dm-log-writes lays them out (for tests).
pub mod build {
    use super::{ENTRY_LEN, MAGIC, MARK, VERSION};

    /// A log being built.
    pub struct LogBuilder {
        /// The bytes so far.
        pub bytes: Vec<u8>,
        ss: usize,
        count: u64,
    }

    impl LogBuilder {
        /// An empty log with this sector size.
        pub fn new(ss: usize) -> Self {
            let mut b = LogBuilder {
                bytes: vec![0; ss],
                ss,
                count: 0,
            };
            b.set_super_count(0);
            b
        }

        /// Entries added so far.
        pub fn count(&self) -> u64 {
            self.count
        }

        /// Rewrites the super block with this entry count.
        pub fn set_super_count(&mut self, n: u64) {
            self.bytes[0..8].copy_from_slice(&MAGIC.to_le_bytes());
            self.bytes[8..16].copy_from_slice(&VERSION.to_le_bytes());
            self.bytes[16..24].copy_from_slice(&n.to_le_bytes());
            self.bytes[24..28].copy_from_slice(&(self.ss as u32).to_le_bytes());
        }

        fn header(&mut self, sector: u64, nr: u64, flags: u64, name: &[u8]) {
            let mut h = vec![0u8; self.ss];
            h[0..8].copy_from_slice(&sector.to_le_bytes());
            h[8..16].copy_from_slice(&nr.to_le_bytes());
            h[16..24].copy_from_slice(&flags.to_le_bytes());
            h[24..32].copy_from_slice(&(name.len() as u64).to_le_bytes());
            h[ENTRY_LEN..ENTRY_LEN + name.len()].copy_from_slice(name);
            self.bytes.extend_from_slice(&h);
            self.count += 1;
        }

        /// A write of `data` (a multiple of the sector size) at block `sector`.
        pub fn write(&mut self, sector: u64, data: &[u8], flags: u64) -> &mut Self {
            assert_eq!(data.len() % self.ss, 0);
            self.header(sector, (data.len() / self.ss) as u64, flags, b"");
            self.bytes.extend_from_slice(data);
            self
        }

        /// An entry without data (a flush, or a discard with `DISCARD`).
        pub fn bare(&mut self, sector: u64, nr: u64, flags: u64) -> &mut Self {
            self.header(sector, nr, flags, b"");
            self
        }

        /// A mark; like the kernel, it updates the super block's count.
        pub fn mark(&mut self, name: &str) -> &mut Self {
            self.header(0, 0, MARK, name.as_bytes());
            self.set_super_count(self.count);
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::build::LogBuilder;
    use super::*;

    const SS: usize = 4096;

    fn block(byte: u8, n: usize) -> Vec<u8> {
        vec![byte; SS * n]
    }

    fn blk_of(dev: &[u8], k: usize) -> &[u8] {
        &dev[k * SS..(k + 1) * SS]
    }

    fn sample() -> LogBuilder {
        let mut b = LogBuilder::new(SS);
        b.write(1, &block(1, 1), 0)
            .write(2, &block(2, 2), 0)
            .bare(0, 0, FLUSH) // #2: 1 and 2 durable
            .write(5, &block(5, 1), FUA) // #3: durable by itself
            .write(6, &block(6, 1), 0) // #4: no flush covers it
            .write(7, &block(7, 1), 0); // #5
        b.set_super_count(4); // as after the FUA entry
        b
    }

    #[test]
    fn parses_super_and_entries_past_the_count() {
        let b = sample();
        let log = parse(&b.bytes, true).unwrap();
        assert_eq!(log.sector_size, SS as u64);
        assert_eq!(log.super_entries, 4);
        assert_eq!(log.entries.len(), 6);
        assert_eq!(log.past_super(), 2);
        let e = &log.entries[1];
        assert_eq!((e.sector, e.nr_sectors, e.flags), (2, 2, 0));
        // header block of #0, its data, then #1's header
        assert_eq!(e.offset, (SS + SS + SS) as u64);
        assert_eq!(log.entries[2].flag_names(), "FLUSH");
        let strict = parse(&b.bytes, false).unwrap();
        assert_eq!(strict.entries.len(), 4);
    }

    #[test]
    fn replays_up_to_the_last_flush_or_fua() {
        let b = sample();
        let log = parse(&b.bytes, true).unwrap();
        let mut dev = vec![0u8; 16 * SS];
        let st = replay(
            &log,
            &b.bytes,
            &mut dev,
            Some(16 * SS as u64),
            &End::LastDurable,
        )
        .unwrap();
        assert_eq!(st.entries, 4);
        assert_eq!(st.writes, 3);
        assert_eq!(st.durable_points, 2);
        assert_eq!(blk_of(&dev, 1), &block(1, 1)[..]);
        assert_eq!(blk_of(&dev, 2), &block(2, 1)[..]);
        assert_eq!(blk_of(&dev, 3), &block(2, 1)[..]);
        assert_eq!(blk_of(&dev, 5), &block(5, 1)[..]);
        // lost with the volatile cache
        assert_eq!(blk_of(&dev, 6), &block(0, 1)[..]);
        assert_eq!(blk_of(&dev, 7), &block(0, 1)[..]);
        let mut all = vec![0u8; 16 * SS];
        replay(&log, &b.bytes, &mut all, None, &End::All).unwrap();
        assert_eq!(blk_of(&all, 7), &block(7, 1)[..]);
    }

    #[test]
    fn marks_entries_and_discards() {
        let mut b = LogBuilder::new(SS);
        b.write(0, &block(9, 4), 0)
            .bare(0, 0, FLUSH)
            .mark("before-discard")
            .bare(1, 2, DISCARD)
            .write(3, &block(4, 1), 0)
            .bare(0, 0, FLUSH)
            .mark("end");
        let log = parse(&b.bytes, false).unwrap();
        assert_eq!(log.entries.len(), 7);
        assert_eq!(log.entries[2].mark.as_deref(), Some("before-discard"));
        assert_eq!(log.entries[3].flag_names(), "DISCARD");
        // a discard carries no data in the log
        assert_eq!(log.entries[4].offset, log.entries[3].offset + SS as u64);

        let mut dev = Vec::new();
        let end = End::Mark("before-discard".into());
        replay(&log, &b.bytes, &mut dev, None, &end).unwrap();
        assert_eq!(dev, block(9, 4));

        let mut dev = Vec::new();
        let st = replay(&log, &b.bytes, &mut dev, None, &End::LastDurable).unwrap();
        assert_eq!(st.discards, 1);
        assert_eq!(blk_of(&dev, 0), &block(9, 1)[..]);
        assert_eq!(blk_of(&dev, 1), &block(0, 1)[..]);
        assert_eq!(blk_of(&dev, 2), &block(0, 1)[..]);
        assert_eq!(blk_of(&dev, 3), &block(4, 1)[..]);

        let mut dev = Vec::new();
        replay(&log, &b.bytes, &mut dev, None, &End::Entry(0)).unwrap();
        assert_eq!(dev, block(9, 4));
        assert!(replay(&log, &b.bytes, &mut dev, None, &End::Entry(7)).is_err());
        assert!(replay(&log, &b.bytes, &mut dev, None, &End::Mark("nope".into())).is_err());
    }

    #[test]
    fn a_final_preflush_write_is_not_durable_itself() {
        let mut b = LogBuilder::new(SS);
        b.write(0, &block(1, 1), 0).write(1, &block(2, 1), FLUSH);
        let log = parse(&b.bytes, true).unwrap();
        let mut dev = vec![0u8; 2 * SS];
        replay(&log, &b.bytes, &mut dev, None, &End::LastDurable).unwrap();
        assert_eq!(blk_of(&dev, 0), &block(1, 1)[..]);
        assert_eq!(blk_of(&dev, 1), &block(0, 1)[..]);
        // with FUA too it is
        let mut b = LogBuilder::new(SS);
        b.write(0, &block(1, 1), 0)
            .write(1, &block(2, 1), FLUSH | FUA);
        let log = parse(&b.bytes, true).unwrap();
        replay(&log, &b.bytes, &mut dev, None, &End::LastDurable).unwrap();
        assert_eq!(blk_of(&dev, 1), &block(2, 1)[..]);
    }

    #[test]
    fn nothing_durable_replays_nothing() {
        let mut b = LogBuilder::new(512);
        b.write(0, &[7u8; 1024], 0);
        let log = parse(&b.bytes, true).unwrap();
        assert_eq!(log.sector_size, 512);
        let mut dev = Vec::new();
        let st = replay(&log, &b.bytes, &mut dev, None, &End::LastDurable).unwrap();
        assert_eq!(st, Stats::default());
        assert!(dev.is_empty());
    }

    #[test]
    fn scanning_stops_at_garbage_and_at_the_end() {
        let mut b = sample();
        // a zeroed block after the last entry, then junk
        b.bytes.extend_from_slice(&block(0, 1));
        b.bytes.extend_from_slice(&block(0xff, 1));
        assert_eq!(parse(&b.bytes, true).unwrap().entries.len(), 6);
        // a header whose data would run past the end of the log
        let mut b = sample();
        let mut h = vec![0u8; SS];
        h[8..16].copy_from_slice(&100u64.to_le_bytes());
        b.bytes.extend_from_slice(&h);
        assert_eq!(parse(&b.bytes, true).unwrap().entries.len(), 6);
        // unknown flags
        let mut b = sample();
        let mut h = vec![0u8; SS];
        h[16..24].copy_from_slice(&0x100u64.to_le_bytes());
        b.bytes.extend_from_slice(&h);
        assert_eq!(parse(&b.bytes, true).unwrap().entries.len(), 6);
    }

    #[test]
    fn damage_within_the_count_is_an_error() {
        let mut b = sample();
        b.set_super_count(6);
        b.bytes.truncate(b.bytes.len() - SS); // #5's data gone
        let e = parse(&b.bytes, true).unwrap_err().to_string();
        assert!(e.contains("entry 5"), "{e}");
        let mut b = sample();
        // corrupt #1's flags
        let off = 3 * SS + 16;
        b.bytes[off..off + 8].copy_from_slice(&0xdeadu64.to_le_bytes());
        let e = parse(&b.bytes, true).unwrap_err().to_string();
        assert!(e.contains("unknown flags"), "{e}");
    }

    #[test]
    fn refuses_what_is_not_a_log() {
        let e = parse(&vec![0u8; 8192], true).unwrap_err().to_string();
        assert!(e.contains("not a dm-log-writes log"), "{e}");
        let mut b = LogBuilder::new(SS);
        b.bytes[8] = 2;
        assert!(parse(&b.bytes, true).is_err());
        let mut b = LogBuilder::new(SS);
        b.bytes[24..28].copy_from_slice(&1000u32.to_le_bytes());
        assert!(parse(&b.bytes, true).is_err());
        assert!(parse(&vec![0u8; 4], true).is_err());
    }

    #[test]
    fn a_write_past_the_device_is_an_error() {
        let mut b = LogBuilder::new(SS);
        b.write(10, &block(1, 1), FUA);
        let log = parse(&b.bytes, true).unwrap();
        let mut dev = vec![0u8; 4 * SS];
        let e = replay(&log, &b.bytes, &mut dev, Some(4 * SS as u64), &End::All).unwrap_err();
        assert!(e.to_string().contains("past the device"), "{e}");
    }

    #[test]
    fn files_work_like_memory() {
        let b = sample();
        let dir = std::env::temp_dir();
        let lp = dir.join(format!("logreplay-test-{}.log", std::process::id()));
        let dp = dir.join(format!("logreplay-test-{}.img", std::process::id()));
        std::fs::write(&lp, &b.bytes).unwrap();
        std::fs::write(&dp, vec![0u8; 16 * SS]).unwrap();
        let lf = File::open(&lp).unwrap();
        let mut df = std::fs::OpenOptions::new().write(true).open(&dp).unwrap();
        let log = parse(&lf, true).unwrap();
        assert_eq!(lf.size().unwrap(), b.bytes.len() as u64);
        replay(&log, &lf, &mut df, Some(16 * SS as u64), &End::LastDurable).unwrap();
        drop(df);
        let img = std::fs::read(&dp).unwrap();
        assert_eq!(blk_of(&img, 5), &block(5, 1)[..]);
        assert_eq!(blk_of(&img, 6), &block(0, 1)[..]);
        let _ = std::fs::remove_file(&lp);
        let _ = std::fs::remove_file(&dp);
    }
}
