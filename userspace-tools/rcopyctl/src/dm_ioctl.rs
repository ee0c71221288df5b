//! The device-mapper control interface (`/dev/mapper/control`), version 4,
//! as in `include/uapi/linux/dm-ioctl.h`.
//!
//! Requests are built as byte buffers: a `struct dm_ioctl` header followed
//! by the payload at `data_start`. Fields are written and read at their
//! `offset_of!` positions in the `#[repr(C)]` mirrors below, so the only
//! `unsafe` is the `ioctl(2)` call itself.

use std::fs::{File, OpenOptions};
use std::io;
use std::mem::{offset_of, size_of};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use crate::udev;

/// Path of the control node.
pub const CONTROL_PATH: &str = "/dev/mapper/control";
/// `DM_NAME_LEN`: device names are shorter than this (NUL included).
pub const DM_NAME_LEN: usize = 128;
/// `DM_UUID_LEN`.
pub const DM_UUID_LEN: usize = 129;
/// `DM_MAX_TYPE_NAME`.
pub const DM_MAX_TYPE_NAME: usize = 16;

/// Interface version sent with every request. The kernel refuses only a
/// different major or a minor newer than its own, so 4.0.0 works everywhere;
/// the reply carries the kernel's version.
pub const DM_VERSION: [u32; 3] = [4, 0, 0];

// Flags (dm_ioctl.flags).
/// In: load the table read-only (writes to the device fail).
pub const DM_READONLY_FLAG: u32 = 1 << 0;
pub const DM_SUSPEND_FLAG: u32 = 1 << 1;
pub const DM_STATUS_TABLE_FLAG: u32 = 1 << 4;
pub const DM_BUFFER_FULL_FLAG: u32 = 1 << 8;
/// Out: the ioctl made the kernel send a uevent (udev will see it).
pub const DM_UEVENT_GENERATED_FLAG: u32 = 1 << 13;
pub const DM_SECURE_DATA_FLAG: u32 = 1 << 15;
pub const DM_DATA_OUT_FLAG: u32 = 1 << 16;

/// Command numbers (the `DM_*_CMD` enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Cmd {
    Version = 0,
    ListDevices = 2,
    DevCreate = 3,
    DevRemove = 4,
    DevSuspend = 6,
    DevStatus = 7,
    TableLoad = 9,
    TableStatus = 12,
    ListVersions = 13,
    TargetMsg = 14,
}

/// `_IOWR(DM_IOCTL, cmd, struct dm_ioctl)`.
pub const fn request(cmd: Cmd) -> u32 {
    const IOC_READ_WRITE: u32 = 3;
    const DM_IOCTL: u32 = 0xfd;
    (IOC_READ_WRITE << 30) | ((size_of::<DmIoctl>() as u32) << 16) | (DM_IOCTL << 8) | cmd as u32
}

/// `struct dm_ioctl`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DmIoctl {
    pub version: [u32; 3],
    pub data_size: u32,
    pub data_start: u32,
    pub target_count: u32,
    pub open_count: i32,
    pub flags: u32,
    pub event_nr: u32,
    pub padding: u32,
    pub dev: u64,
    pub name: [u8; DM_NAME_LEN],
    pub uuid: [u8; DM_UUID_LEN],
    pub data: [u8; 7],
}

/// `struct dm_target_spec` (the parameter string follows it).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DmTargetSpec {
    pub sector_start: u64,
    pub length: u64,
    pub status: i32,
    pub next: u32,
    pub target_type: [u8; DM_MAX_TYPE_NAME],
}

/// `struct dm_name_list` (header; `name[]` follows at `NAME_LIST_NAME`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DmNameList {
    pub dev: u64,
    pub next: u32,
}

/// Offset of `dm_name_list.name` (C places the flexible array right after
/// `next`, before the struct's tail padding).
pub const NAME_LIST_NAME: usize = offset_of!(DmNameList, next) + 4;

/// `struct dm_target_versions` (header; `name[]` follows).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DmTargetVersions {
    pub next: u32,
    pub version: [u32; 3],
}

/// `struct dm_target_msg` (header; `message[]` follows).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DmTargetMsg {
    pub sector: u64,
}

/// Header size, also where our payloads start (already 8-aligned).
pub const HEADER_SIZE: usize = size_of::<DmIoctl>();
const SPEC_SIZE: usize = size_of::<DmTargetSpec>();

fn align8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}
fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}
fn get_u32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn get_u64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(off..off + 8)?.try_into().ok()?))
}
/// The NUL-terminated string at `off` (lossy UTF-8), or `None` if no NUL.
fn get_cstr(b: &[u8], off: usize) -> Option<String> {
    let s = b.get(off..)?;
    let end = s.iter().position(|&c| c == 0)?;
    Some(String::from_utf8_lossy(&s[..end]).into_owned())
}
fn put_cstr(b: &mut [u8], off: usize, cap: usize, s: &str) -> io::Result<()> {
    let bytes = s.as_bytes();
    if bytes.len() >= cap || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("name too long or invalid: {s:?}"),
        ));
    }
    b[off..off + bytes.len()].copy_from_slice(bytes);
    Ok(())
}

impl DmIoctl {
    fn encode(&self, buf: &mut [u8]) {
        for (i, v) in self.version.iter().enumerate() {
            put_u32(buf, offset_of!(DmIoctl, version) + 4 * i, *v);
        }
        put_u32(buf, offset_of!(DmIoctl, data_size), self.data_size);
        put_u32(buf, offset_of!(DmIoctl, data_start), self.data_start);
        put_u32(buf, offset_of!(DmIoctl, target_count), self.target_count);
        put_u32(buf, offset_of!(DmIoctl, open_count), self.open_count as u32);
        put_u32(buf, offset_of!(DmIoctl, flags), self.flags);
        put_u32(buf, offset_of!(DmIoctl, event_nr), self.event_nr);
        put_u64(buf, offset_of!(DmIoctl, dev), self.dev);
        let n = offset_of!(DmIoctl, name);
        buf[n..n + DM_NAME_LEN].copy_from_slice(&self.name);
        let u = offset_of!(DmIoctl, uuid);
        buf[u..u + DM_UUID_LEN].copy_from_slice(&self.uuid);
    }

    fn decode(buf: &[u8]) -> Option<DmIoctl> {
        let mut h = DmIoctl::zeroed();
        for (i, v) in h.version.iter_mut().enumerate() {
            *v = get_u32(buf, offset_of!(DmIoctl, version) + 4 * i)?;
        }
        h.data_size = get_u32(buf, offset_of!(DmIoctl, data_size))?;
        h.data_start = get_u32(buf, offset_of!(DmIoctl, data_start))?;
        h.target_count = get_u32(buf, offset_of!(DmIoctl, target_count))?;
        h.open_count = get_u32(buf, offset_of!(DmIoctl, open_count))? as i32;
        h.flags = get_u32(buf, offset_of!(DmIoctl, flags))?;
        h.event_nr = get_u32(buf, offset_of!(DmIoctl, event_nr))?;
        h.dev = get_u64(buf, offset_of!(DmIoctl, dev))?;
        let n = offset_of!(DmIoctl, name);
        h.name.copy_from_slice(buf.get(n..n + DM_NAME_LEN)?);
        let u = offset_of!(DmIoctl, uuid);
        h.uuid.copy_from_slice(buf.get(u..u + DM_UUID_LEN)?);
        Some(h)
    }

    /// An all-zero header.
    pub fn zeroed() -> DmIoctl {
        DmIoctl {
            version: [0; 3],
            data_size: 0,
            data_start: 0,
            target_count: 0,
            open_count: 0,
            flags: 0,
            event_nr: 0,
            padding: 0,
            dev: 0,
            name: [0; DM_NAME_LEN],
            uuid: [0; DM_UUID_LEN],
            data: [0; 7],
        }
    }

    /// The `name` field as text.
    pub fn name_str(&self) -> String {
        get_cstr(&self.name, 0).unwrap_or_default()
    }
}

/// One target of a table to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub start: u64,
    pub length: u64,
    pub target_type: String,
    pub params: String,
}

/// Encodes the table-load payload: one `dm_target_spec` + NUL-terminated
/// parameters per target, each record 8-aligned; `next` is relative to the
/// current spec.
pub fn encode_targets(targets: &[Target]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    for t in targets {
        let rec = align8(SPEC_SIZE + t.params.len() + 1);
        let base = out.len();
        out.resize(base + rec, 0);
        let b = &mut out[base..];
        put_u64(b, offset_of!(DmTargetSpec, sector_start), t.start);
        put_u64(b, offset_of!(DmTargetSpec, length), t.length);
        put_u32(b, offset_of!(DmTargetSpec, next), rec as u32);
        put_cstr(
            b,
            offset_of!(DmTargetSpec, target_type),
            DM_MAX_TYPE_NAME,
            &t.target_type,
        )?;
        if t.params.as_bytes().contains(&0) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "NUL in table"));
        }
        b[SPEC_SIZE..SPEC_SIZE + t.params.len()].copy_from_slice(t.params.as_bytes());
    }
    Ok(out)
}

/// One target as reported by DM_TABLE_STATUS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetStatus {
    pub start: u64,
    pub length: u64,
    pub target_type: String,
    /// The status line (or table parameters with `DM_STATUS_TABLE_FLAG`).
    pub text: String,
}

/// Decodes a DM_TABLE_STATUS payload (`data` starts at `data_start`; each
/// `next` is relative to the start of `data`).
pub fn decode_target_status(data: &[u8], count: u32) -> Vec<TargetStatus> {
    let mut out = Vec::new();
    let mut off = 0usize;
    for _ in 0..count {
        let (Some(start), Some(length), Some(next)) = (
            get_u64(data, off + offset_of!(DmTargetSpec, sector_start)),
            get_u64(data, off + offset_of!(DmTargetSpec, length)),
            get_u32(data, off + offset_of!(DmTargetSpec, next)),
        ) else {
            break;
        };
        let tt = data
            .get(off + offset_of!(DmTargetSpec, target_type)..off + SPEC_SIZE)
            .and_then(|b| get_cstr(b, 0).or_else(|| Some(String::from_utf8_lossy(b).into())))
            .unwrap_or_default();
        let text = get_cstr(data, off + SPEC_SIZE).unwrap_or_default();
        out.push(TargetStatus {
            start,
            length,
            target_type: tt,
            text,
        });
        if (next as usize) <= off {
            break;
        }
        off = next as usize;
    }
    out
}

/// A device from DM_LIST_DEVICES.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameEntry {
    pub name: String,
    /// Kernel-encoded dev_t (same encoding as glibc's for usual numbers).
    pub dev: u64,
}

/// Decodes a DM_LIST_DEVICES payload (`next` relative to each record).
pub fn decode_name_list(data: &[u8]) -> Vec<NameEntry> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while let Some(dev) = get_u64(data, off + offset_of!(DmNameList, dev)) {
        if dev == 0 {
            break; // "flags no data" (or end)
        }
        let Some(next) = get_u32(data, off + offset_of!(DmNameList, next)) else {
            break;
        };
        let Some(name) = get_cstr(data, off + NAME_LIST_NAME) else {
            break;
        };
        out.push(NameEntry { name, dev });
        if next == 0 {
            break;
        }
        off += next as usize;
    }
    out
}

/// A registered target type from DM_LIST_VERSIONS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetVersion {
    pub name: String,
    pub version: [u32; 3],
}

/// Decodes a DM_LIST_VERSIONS payload (`next` relative to each record).
pub fn decode_versions(data: &[u8]) -> Vec<TargetVersion> {
    let name_off = size_of::<DmTargetVersions>();
    let mut out = Vec::new();
    let mut off = 0usize;
    while let Some(next) = get_u32(data, off + offset_of!(DmTargetVersions, next)) {
        let v = offset_of!(DmTargetVersions, version);
        let (Some(a), Some(b), Some(c)) = (
            get_u32(data, off + v),
            get_u32(data, off + v + 4),
            get_u32(data, off + v + 8),
        ) else {
            break;
        };
        let Some(name) = get_cstr(data, off + name_off) else {
            break;
        };
        if name.is_empty() {
            break;
        }
        out.push(TargetVersion {
            name,
            version: [a, b, c],
        });
        if next == 0 {
            break;
        }
        off += next as usize;
    }
    out
}

/// Encodes a target message payload: `dm_target_msg` + the message, with
/// the words joined by spaces and spaces/backslashes inside a word escaped
/// (the kernel splits with `dm_split_args`).
pub fn encode_message(sector: u64, words: &[String]) -> Vec<u8> {
    let mut text = String::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            text.push(' ');
        }
        for ch in w.chars() {
            if ch.is_ascii_whitespace() || ch == '\\' {
                text.push('\\');
            }
            text.push(ch);
        }
    }
    let msg_off = size_of::<DmTargetMsg>();
    let mut out = vec![0u8; align8(msg_off + text.len() + 1)];
    put_u64(&mut out, offset_of!(DmTargetMsg, sector), sector);
    out[msg_off..msg_off + text.len()].copy_from_slice(text.as_bytes());
    out
}

/// A reply: the returned header and the payload bytes
/// (`data_start..data_size`).
#[derive(Debug, Clone)]
pub struct Reply {
    pub header: DmIoctl,
    pub data: Vec<u8>,
}

/// One request: command, target device and payload.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub cmd: Cmd,
    /// Device name (`dm_ioctl.name`), if the command takes one.
    pub name: Option<&'a str>,
    /// DM UUID (`dm_ioctl.uuid`), for DM_DEV_CREATE.
    pub uuid: Option<&'a str>,
    pub flags: u32,
    /// `dm_ioctl.event_nr`: udev flags and cookie for the ioctls that raise
    /// a uevent (see `udev`).
    pub event_nr: u32,
    pub target_count: u32,
    /// Bytes placed at `data_start`.
    pub payload: &'a [u8],
    /// Payload space to provide for the reply.
    pub out_room: usize,
    /// Repeat with a bigger buffer on DM_BUFFER_FULL_FLAG. Only for
    /// commands that change nothing.
    pub retry: bool,
}

impl<'a> Request<'a> {
    /// A request with no name, flags or payload.
    pub fn new(cmd: Cmd) -> Request<'a> {
        Request {
            cmd,
            name: None,
            uuid: None,
            flags: 0,
            event_nr: 0,
            target_count: 0,
            payload: &[],
            out_room: 0,
            retry: false,
        }
    }

    /// For device `name`.
    pub fn name(mut self, name: &'a str) -> Self {
        self.name = Some(name);
        self
    }

    /// With these flags.
    pub fn flags(mut self, flags: u32) -> Self {
        self.flags = flags;
        self
    }

    /// Expecting a reply of up to `room` bytes, retried bigger if needed.
    pub fn reply_room(mut self, room: usize) -> Self {
        self.out_room = room;
        self.retry = true;
        self
    }
}

/// What a resume returns.
#[derive(Debug, Clone)]
pub struct Resumed {
    /// The device number.
    pub dev: u64,
    /// When the resume ioctl returned (I/O flows again), before any wait
    /// for udev.
    pub at: std::time::Instant,
    /// How the resume's uevent was synchronised with udev.
    pub udev: udev::Outcome,
}

/// An open `/dev/mapper/control`.
pub struct Control {
    file: File,
}

impl Control {
    /// Opens the control node read-write.
    pub fn open() -> io::Result<Control> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(CONTROL_PATH)?;
        Ok(Control { file })
    }

    /// Issues one ioctl and returns the reply header and payload.
    pub fn call(&self, req: &Request<'_>) -> io::Result<Reply> {
        let mut room = req.out_room.max(req.payload.len());
        loop {
            let size = HEADER_SIZE + align8(room);
            let size32 = u32::try_from(size)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "request too large"))?;
            let mut buf = vec![0u8; size];
            let mut h = DmIoctl::zeroed();
            h.version = DM_VERSION;
            h.data_size = size32;
            h.data_start = HEADER_SIZE as u32;
            h.target_count = req.target_count;
            h.flags = req.flags;
            h.event_nr = req.event_nr;
            if let Some(n) = req.name {
                put_cstr(&mut h.name, 0, DM_NAME_LEN, n)?;
            }
            if let Some(u) = req.uuid {
                put_cstr(&mut h.uuid, 0, DM_UUID_LEN, u)?;
            }
            h.encode(&mut buf);
            buf[HEADER_SIZE..HEADER_SIZE + req.payload.len()].copy_from_slice(req.payload);

            // SAFETY: `buf` is a live, writable allocation of `size` bytes and
            // the header in it says `data_size = size`, so the kernel reads and
            // writes only inside it; the fd is an open control node.
            let rc = unsafe {
                libc::ioctl(
                    self.file.as_raw_fd(),
                    request(req.cmd) as libc::Ioctl,
                    buf.as_mut_ptr(),
                )
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
            let header = DmIoctl::decode(&buf)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short reply"))?;
            if header.flags & DM_BUFFER_FULL_FLAG != 0 && req.retry && room < (64 << 20) {
                room *= 4;
                continue;
            }
            let start = (header.data_start as usize).min(size);
            let end = (header.data_size as usize).clamp(start, size);
            return Ok(Reply {
                data: buf[start..end].to_vec(),
                header,
            });
        }
    }

    /// DM_VERSION: the kernel's interface version.
    pub fn version(&self) -> io::Result<[u32; 3]> {
        Ok(self.call(&Request::new(Cmd::Version))?.header.version)
    }

    /// DM_DEV_CREATE: a device with no table. Returns its header (`dev`).
    pub fn create(&self, name: &str) -> io::Result<DmIoctl> {
        Ok(self.call(&Request::new(Cmd::DevCreate).name(name))?.header)
    }

    /// DM_DEV_CREATE with a DM UUID.
    pub fn create_with_uuid(&self, name: &str, uuid: &str) -> io::Result<DmIoctl> {
        let mut req = Request::new(Cmd::DevCreate).name(name);
        req.uuid = Some(uuid);
        Ok(self.call(&req)?.header)
    }

    /// An ioctl that makes the kernel send a uevent (resume, remove), with
    /// udev synchronisation: returns once udev has run its rules for it (or
    /// at once without udev; see `udev`).
    fn call_with_uevent(
        &self,
        mut req: Request<'_>,
    ) -> io::Result<(Reply, std::time::Instant, udev::Outcome)> {
        let task = udev::Task::start();
        req.event_nr = task.event_nr();
        // On an error the task is dropped: its semaphore goes with it.
        let reply = self.call(&req)?;
        let at = std::time::Instant::now();
        let generated = reply.header.flags & DM_UEVENT_GENERATED_FLAG != 0;
        let outcome = task.finish(generated, udev::WAIT);
        Ok((reply, at, outcome))
    }

    /// DM_DEV_REMOVE, synchronised with udev. Returns how.
    pub fn remove(&self, name: &str) -> io::Result<udev::Outcome> {
        self.call_with_uevent(Request::new(Cmd::DevRemove).name(name))
            .map(|(_, _, o)| o)
    }

    /// DM_DEV_STATUS: the device's header (dev, flags, open_count...).
    pub fn info(&self, name: &str) -> io::Result<DmIoctl> {
        Ok(self.call(&Request::new(Cmd::DevStatus).name(name))?.header)
    }

    /// DM_TABLE_LOAD into the inactive slot. Sent with DM_SECURE_DATA_FLAG
    /// so the kernel wipes its copy (tables may carry secrets).
    pub fn load_table(&self, name: &str, targets: &[Target]) -> io::Result<()> {
        self.load_table_with(name, targets, 0)
    }

    /// [`Control::load_table`] with more flags (`DM_READONLY_FLAG`).
    pub fn load_table_with(&self, name: &str, targets: &[Target], flags: u32) -> io::Result<()> {
        let payload = encode_targets(targets)?;
        let mut req = Request::new(Cmd::TableLoad)
            .name(name)
            .flags(DM_SECURE_DATA_FLAG | flags);
        req.target_count = u32::try_from(targets.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many targets"))?;
        req.payload = &payload;
        self.call(&req).map(|_| ())
    }

    /// DM_DEV_SUSPEND without DM_SUSPEND_FLAG: resume, activating a loaded
    /// inactive table; synchronised with udev. Returns the device number and
    /// how udev was synchronised.
    pub fn resume(&self, name: &str) -> io::Result<Resumed> {
        let (r, at, udev) = self.call_with_uevent(Request::new(Cmd::DevSuspend).name(name))?;
        Ok(Resumed {
            dev: r.header.dev,
            at,
            udev,
        })
    }

    /// DM_DEV_SUSPEND with DM_SUSPEND_FLAG.
    pub fn suspend(&self, name: &str) -> io::Result<()> {
        let req = Request::new(Cmd::DevSuspend)
            .name(name)
            .flags(DM_SUSPEND_FLAG);
        self.call(&req).map(|_| ())
    }

    /// DM_LIST_DEVICES.
    pub fn list_devices(&self) -> io::Result<Vec<NameEntry>> {
        let r = self.call(&Request::new(Cmd::ListDevices).reply_room(16 << 10))?;
        Ok(decode_name_list(&r.data))
    }

    /// DM_TABLE_STATUS of the live table: status lines, or the table
    /// parameters when `table` is set.
    pub fn table_status(&self, name: &str, table: bool) -> io::Result<Vec<TargetStatus>> {
        let flags = if table { DM_STATUS_TABLE_FLAG } else { 0 };
        let req = Request::new(Cmd::TableStatus)
            .name(name)
            .flags(flags)
            .reply_room(16 << 10);
        let r = self.call(&req)?;
        Ok(decode_target_status(&r.data, r.header.target_count))
    }

    /// DM_LIST_VERSIONS: registered target types.
    pub fn list_versions(&self) -> io::Result<Vec<TargetVersion>> {
        let r = self.call(&Request::new(Cmd::ListVersions).reply_room(16 << 10))?;
        Ok(decode_versions(&r.data))
    }

    /// DM_TARGET_MSG to the target at `sector`. Returns the target's output
    /// when it sent some (DM_DATA_OUT_FLAG). Never retried: a message may
    /// change state, so the output buffer is made large up front.
    pub fn message(&self, name: &str, sector: u64, words: &[String]) -> io::Result<Option<String>> {
        let payload = encode_message(sector, words);
        let mut req = Request::new(Cmd::TargetMsg)
            .name(name)
            .flags(DM_SECURE_DATA_FLAG);
        req.payload = &payload;
        req.out_room = 256 << 10;
        let r = self.call(&req)?;
        if r.header.flags & DM_DATA_OUT_FLAG == 0 {
            return Ok(None);
        }
        if r.header.flags & DM_BUFFER_FULL_FLAG != 0 {
            return Err(io::Error::other("message output too large"));
        }
        Ok(Some(get_cstr(&r.data, 0).unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_uapi() {
        assert_eq!(size_of::<DmIoctl>(), 312);
        assert_eq!(size_of::<DmTargetSpec>(), 40);
        assert_eq!(offset_of!(DmIoctl, data_size), 12);
        assert_eq!(offset_of!(DmIoctl, flags), 28);
        assert_eq!(offset_of!(DmIoctl, dev), 40);
        assert_eq!(offset_of!(DmIoctl, name), 48);
        assert_eq!(offset_of!(DmIoctl, uuid), 176);
        assert_eq!(offset_of!(DmIoctl, data), 305);
        assert_eq!(offset_of!(DmTargetSpec, status), 16);
        assert_eq!(offset_of!(DmTargetSpec, next), 20);
        assert_eq!(offset_of!(DmTargetSpec, target_type), 24);
        assert_eq!(NAME_LIST_NAME, 12);
        assert_eq!(size_of::<DmTargetVersions>(), 16);
        assert_eq!(size_of::<DmTargetMsg>(), 8);
    }

    #[test]
    fn request_numbers() {
        // Values from the C macros (_IOWR(0xfd, n, struct dm_ioctl)).
        assert_eq!(request(Cmd::Version), 0xc138fd00);
        assert_eq!(request(Cmd::DevCreate), 0xc138fd03);
        assert_eq!(request(Cmd::TableLoad), 0xc138fd09);
        assert_eq!(request(Cmd::TargetMsg), 0xc138fd0e);
    }

    #[test]
    fn header_round_trip() {
        let mut h = DmIoctl::zeroed();
        h.version = [4, 50, 0];
        h.data_size = 1000;
        h.flags = DM_BUFFER_FULL_FLAG;
        h.open_count = -1;
        h.dev = 0xfd00;
        put_cstr(&mut h.name, 0, DM_NAME_LEN, "r0").unwrap();
        let mut b = vec![0u8; HEADER_SIZE];
        h.encode(&mut b);
        let d = DmIoctl::decode(&b).unwrap();
        assert_eq!(d.version, [4, 50, 0]);
        assert_eq!(d.open_count, -1);
        assert_eq!(d.dev, 0xfd00);
        assert_eq!(d.name_str(), "r0");
        assert!(put_cstr(&mut h.name, 0, DM_NAME_LEN, &"x".repeat(128)).is_err());
    }

    #[test]
    fn targets_encode() {
        let t = Target {
            start: 0,
            length: 2048,
            target_type: "rcopy".into(),
            params: "253:1 253:2".into(),
        };
        let b = encode_targets(std::slice::from_ref(&t)).unwrap();
        assert_eq!(b.len(), 56); // 40 + 12 -> 56
        assert_eq!(get_u64(&b, 8), Some(2048));
        assert_eq!(get_u32(&b, 20), Some(56));
        assert_eq!(get_cstr(&b, 24).unwrap(), "rcopy");
        assert_eq!(get_cstr(&b, 40).unwrap(), "253:1 253:2");
    }

    #[test]
    fn status_decode() {
        // Two targets as the kernel lays them out (next relative to data).
        let mut d = vec![0u8; 128];
        put_u64(&mut d, 0, 0);
        put_u64(&mut d, 8, 100);
        put_u32(&mut d, 20, 48);
        d[24..29].copy_from_slice(b"rcopy");
        d[40..43].copy_from_slice(b"a=1");
        put_u64(&mut d, 48, 100);
        put_u64(&mut d, 56, 5);
        put_u32(&mut d, 68, 96);
        d[72..78].copy_from_slice(b"linear");
        let s = decode_target_status(&d, 2);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].target_type, "rcopy");
        assert_eq!(s[0].text, "a=1");
        assert_eq!(s[1].start, 100);
        assert_eq!(s[1].target_type, "linear");
        assert_eq!(s[1].text, "");
    }

    #[test]
    fn names_decode() {
        let mut d = vec![0u8; 64];
        put_u64(&mut d, 0, 0xfd00);
        put_u32(&mut d, 8, 24);
        d[12..14].copy_from_slice(b"r0");
        put_u64(&mut d, 24, 0xfd01);
        put_u32(&mut d, 32, 0);
        d[36..38].copy_from_slice(b"r1");
        let l = decode_name_list(&d);
        assert_eq!(
            l,
            vec![
                NameEntry {
                    name: "r0".into(),
                    dev: 0xfd00
                },
                NameEntry {
                    name: "r1".into(),
                    dev: 0xfd01
                }
            ]
        );
        assert!(decode_name_list(&[0u8; 16]).is_empty());
        assert!(decode_name_list(&[]).is_empty());
    }

    #[test]
    fn versions_decode() {
        let mut d = vec![0u8; 64];
        put_u32(&mut d, 0, 24);
        put_u32(&mut d, 4, 1);
        put_u32(&mut d, 8, 5);
        put_u32(&mut d, 12, 0);
        d[16..22].copy_from_slice(b"linear");
        put_u32(&mut d, 24, 0);
        put_u32(&mut d, 28, 0);
        put_u32(&mut d, 32, 1);
        put_u32(&mut d, 36, 2);
        d[40..45].copy_from_slice(b"rcopy");
        let v = decode_versions(&d);
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].name, "rcopy");
        assert_eq!(v[1].version, [0, 1, 2]);
    }

    #[test]
    fn message_encode() {
        let b = encode_message(0, &["stats_reset".into()]);
        assert_eq!(get_cstr(&b, 8).unwrap(), "stats_reset");
        assert_eq!(b.len() % 8, 0);
        let b = encode_message(7, &["a b".into(), "c\\".into()]);
        assert_eq!(get_u64(&b, 0), Some(7));
        assert_eq!(get_cstr(&b, 8).unwrap(), "a\\ b c\\\\");
    }
}
