// SPDX-License-Identifier: GPL-2.0

//! The replication link's wire format, version 1.
//!
//! Every frame is a fixed 48-byte little-endian [`Header`] followed by
//! `len` payload bytes. The header's CRC-32C covers the header (with the
//! `crc` field zeroed) and then the payload. See
//! `Documentation/rcopy-protocol.rst` for the layout, each kind's fields, the
//! handshake and the error handling.
//!
//! Receiving a frame:
//!
//! 1. read [`HEADER_LEN`] bytes; [`Header::decode`] (checks everything that
//!    can be checked without the payload, including `len <= MAX_PAYLOAD`);
//! 2. read exactly `len` payload bytes;
//! 3. [`Header::verify_crc`] (or [`Header::crc_state`] + continue over
//!    scattered pages + [`Header::check_crc`]);
//! 4. only then act on the frame. Any error: log [`ProtoError::message`]
//!    and disconnect.
//!
//! Sending: build a header with a constructor, then [`Header::encode`]
//! (or [`Header::crc_state_for_send`] + payload pages +
//! [`Header::encode_with_crc`]).

use core::fmt;

use super::crc32c::Crc32c;
use super::gens::{GenInfo, GF_FLAGS};
use super::hmac::{ct_eq, HmacSha256, MAC_LEN};
use super::le::{get, put, u16_at, u32_at, u64_at};
use super::status::{Mode, Role};
use super::table::{MAX_TRACK_SIZE, MIN_TRACK_SIZE};

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 48;
/// Largest payload of any frame, in bytes (1 MiB). A WRITE carries at most
/// `MAX_PAYLOAD / 512` sectors of data.
pub const MAX_PAYLOAD: u32 = 1 << 20;
/// `"RCPY"` as little-endian bytes.
pub const MAGIC: u32 = 0x5950_4352;
/// The header format version this code speaks.
pub const VERSION: u8 = 1;
/// The protocol version this code speaks (HELLO `proto_version`).
pub const PROTO_VERSION: u32 = 2;
/// Markers in the stream ([`WRITE_MARK`]): remote snapshots and consistency
/// points. A primary sends them only when both sides speak it.
pub const FEATURE_MARKS: u32 = 1 << 0;
/// Feature bits this code speaks. The features in use are the intersection of
/// both sides' HELLO `features`.
pub const FEATURES: u32 = FEATURE_MARKS;
/// Bytes in a sector.
pub const SECTOR_BYTES: u32 = 512;
/// Bytes of a HELLO payload.
pub const HELLO_LEN: usize = 128;
/// Bytes of an AUTH payload (an HMAC-SHA256 tag).
pub const AUTH_LEN: usize = MAC_LEN;
/// Bytes of a handshake nonce.
pub const NONCE_LEN: usize = 32;
/// Bytes of a pair id.
pub const PAIR_ID_LEN: usize = 16;
/// Longest REJECT text, in bytes.
pub const MAX_REJECT_TEXT: u32 = 256;
/// Largest errno an ACK may carry (the kernel's `MAX_ERRNO`).
pub const MAX_ERRNO: u64 = 4095;
/// Label that starts every authenticated message.
pub const AUTH_LABEL: &[u8] = b"rcopy-auth-v1";

/// WRITE flag: the write is FUA (durable on the secondary before its ACK).
pub const WRITE_FUA: u16 = 1 << 0;
/// WRITE flag: flush the secondary's disk cache before applying.
pub const WRITE_PREFLUSH: u16 = 1 << 1;
/// WRITE flag: discard `nr_sectors` (no payload).
pub const WRITE_DISCARD: u16 = 1 << 2;
/// WRITE flag: write zeroes over `nr_sectors` (no payload).
pub const WRITE_ZEROES: u16 = 1 << 3;
/// WRITE flag: initial-copy or resync data, not a host write.
pub const WRITE_COPY: u16 = 1 << 4;
/// Every WRITE flag.
/// WRITE: not a write but a marker in the ordered stream (a remote snapshot or a
/// consistency point), always with [`WRITE_PREFLUSH`] and no sectors. `a` is the
/// primary's ticket for it (non-zero), the payload a [`Mark`]. The secondary
/// acts on it once everything before it is applied and flushed, before anything
/// after it, and answers with [`ACK_MARK`]. Sent only with [`FEATURE_MARKS`].
pub const WRITE_MARK: u16 = 1 << 5;
pub const WRITE_FLAGS: u16 =
    WRITE_FUA | WRITE_PREFLUSH | WRITE_DISCARD | WRITE_ZEROES | WRITE_COPY | WRITE_MARK;

/// ACK `a` bit: the write is on stable storage (it was FUA, or a flush
/// completed after it).
pub const ACK_DURABLE: u64 = 1 << 0;
/// Every ACK `a` bit.
/// ACK of a [`WRITE_MARK`]: `b` is a [`MarkResult`] (what the secondary did),
/// not an errno.
pub const ACK_MARK: u64 = 1 << 1;
pub const ACK_FLAGS: u64 = ACK_DURABLE | ACK_MARK;

/// [`Mark::kind`]: take a snapshot of the secondary's image at the marker.
pub const MARK_SNAPSHOT: u8 = 1;
/// [`Mark::kind`]: a consistency point ends here.
pub const MARK_POINT: u8 = 2;
/// [`Mark::kind`]: the primary's image sum at snapshot [`Mark::id`]'s marker
/// (`snapshot --verify`); the 32 bytes of [`Mark::name`] are the sum.
pub const MARK_SUM: u8 = 3;
/// Bytes of a [`Mark`] payload.
pub const MARK_LEN: usize = 40;
/// Bytes of a mark's name.
pub const MARK_NAME_LEN: usize = 32;

/// The payload of a [`WRITE_MARK`]: `kind` (byte 0), 3 zero bytes, the id
/// (bytes 4..8, little-endian: zero but for [`MARK_SUM`]), then the name (32
/// bytes, `[A-Za-z0-9._:+@-]`, NUL-padded, possibly empty; for [`MARK_SUM`] the
/// sum, any bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// [`MARK_SNAPSHOT`], [`MARK_POINT`] or [`MARK_SUM`].
    pub kind: u8,
    /// The snapshot a [`MARK_SUM`] is for (non-zero); 0 for the others.
    pub id: u32,
    /// The name, NUL-padded (the sum for [`MARK_SUM`]).
    pub name: [u8; MARK_NAME_LEN],
}

/// Whether `c` may appear in a mark's name.
pub fn mark_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"._:+@-".contains(&c)
}

impl Mark {
    /// A mark of `kind` named `name`; `None` for an unknown kind, or a name too
    /// long or holding a character outside `[A-Za-z0-9._:+@-]`.
    pub fn new(kind: u8, name: &[u8]) -> Option<Mark> {
        if !matches!(kind, MARK_SNAPSHOT | MARK_POINT)
            || name.len() > MARK_NAME_LEN
            || !name.iter().all(|&c| mark_name_char(c))
        {
            return None;
        }
        let mut n = [0u8; MARK_NAME_LEN];
        n[..name.len()].copy_from_slice(name);
        Some(Mark {
            kind,
            id: 0,
            name: n,
        })
    }

    /// The sum `sum` of the primary's image at snapshot `id`'s marker; `None` for
    /// id 0.
    pub fn sum(id: u32, sum: [u8; MARK_NAME_LEN]) -> Option<Mark> {
        (id != 0).then_some(Mark {
            kind: MARK_SUM,
            id,
            name: sum,
        })
    }

    /// The name without its padding.
    pub fn name(&self) -> &[u8] {
        let end = self
            .name
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(MARK_NAME_LEN);
        &self.name[..end]
    }

    /// The wire form.
    pub fn encode(&self) -> [u8; MARK_LEN] {
        let mut b = [0u8; MARK_LEN];
        b[0] = self.kind;
        b[4..8].copy_from_slice(&self.id.to_le_bytes());
        b[8..].copy_from_slice(&self.name);
        b
    }

    /// Parses and checks a payload: a known kind, zero reserved bytes, a valid
    /// NUL-padded name.
    pub fn decode(b: &[u8]) -> Result<Mark, ProtoError> {
        if b.len() != MARK_LEN {
            return Err(ProtoError::BadLength);
        }
        if !matches!(b[0], MARK_SNAPSHOT | MARK_POINT | MARK_SUM) || b[1..4].iter().any(|&c| c != 0)
        {
            return Err(ProtoError::BadMark);
        }
        let id = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let name = &b[8..];
        if b[0] == MARK_SUM {
            let mut n = [0u8; MARK_NAME_LEN];
            n.copy_from_slice(name);
            return Mark::sum(id, n).ok_or(ProtoError::BadMark);
        }
        if id != 0 {
            return Err(ProtoError::BadMark);
        }
        let end = name.iter().position(|&c| c == 0).unwrap_or(MARK_NAME_LEN);
        if !name[..end].iter().all(|&c| mark_name_char(c)) || name[end..].iter().any(|&c| c != 0) {
            return Err(ProtoError::BadMark);
        }
        let mut n = [0u8; MARK_NAME_LEN];
        n.copy_from_slice(name);
        Ok(Mark {
            kind: b[0],
            id: 0,
            name: n,
        })
    }
}

/// What the secondary did with a marker (the `b` of an [`ACK_MARK`]): the id it
/// gave the snapshot or point (low 32 bits, non-zero), or why it took none
/// (an errno in bits 32..48). Exactly one of the two is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkResult {
    /// Taken, with this id.
    Taken(u32),
    /// Not taken: this errno (for example `ENODEV`: no snapshot store).
    Refused(u16),
}

impl MarkResult {
    /// The wire form.
    pub fn encode(self) -> u64 {
        match self {
            MarkResult::Taken(id) => u64::from(id),
            MarkResult::Refused(e) => u64::from(e) << 32,
        }
    }

    /// Parses the wire form.
    pub fn decode(b: u64) -> Option<MarkResult> {
        let id = b as u32;
        let errno = (b >> 32) as u16;
        match (b >> 48, id, errno) {
            (0, 0, e) if e != 0 && u64::from(e) <= MAX_ERRNO => Some(MarkResult::Refused(e)),
            (0, id, 0) if id != 0 => Some(MarkResult::Taken(id)),
            _ => None,
        }
    }
}

/// Frame kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Parameters and nonce; the first frame each side sends.
    Hello = 1,
    /// MAC over the peer's nonce.
    Auth = 2,
    /// The peer's AUTH verified.
    AuthOk = 3,
    /// Connection refused (`a` = [`RejectReason`] code), then close.
    Reject = 4,
    /// A replicated write.
    Write = 5,
    /// Acknowledges a WRITE.
    Ack = 6,
    /// Heartbeat request.
    Ping = 7,
    /// Heartbeat answer.
    Pong = 8,
    /// The initial copy or resync finished.
    CopyDone = 9,
    /// The sender's pair state (see [`super::state::Pair::encode`]).
    State = 10,
    /// Orderly close.
    Bye = 11,
    /// Secondary to primary, right after a handshake that decided
    /// [`super::gens::Decision::Bitmap`]: 64-bit little-endian words of the
    /// secondary's bitmap, the first holding tracks `a .. a + 64` (`a` a
    /// multiple of 64). Only words with set bits need be sent; an empty BITMAP
    /// ends the list.
    Bitmap = 12,
}

impl Kind {
    /// Every kind.
    pub const ALL: &'static [Kind] = &[
        Kind::Hello,
        Kind::Auth,
        Kind::AuthOk,
        Kind::Reject,
        Kind::Write,
        Kind::Ack,
        Kind::Ping,
        Kind::Pong,
        Kind::CopyDone,
        Kind::State,
        Kind::Bye,
        Kind::Bitmap,
    ];

    /// The wire code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The kind for a wire code.
    pub fn from_code(c: u8) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.code() == c)
    }

    /// Upper-case name as in the documentation.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hello => "HELLO",
            Kind::Auth => "AUTH",
            Kind::AuthOk => "AUTH_OK",
            Kind::Reject => "REJECT",
            Kind::Write => "WRITE",
            Kind::Ack => "ACK",
            Kind::Ping => "PING",
            Kind::Pong => "PONG",
            Kind::CopyDone => "COPY_DONE",
            Kind::State => "STATE",
            Kind::Bye => "BYE",
            Kind::Bitmap => "BITMAP",
        }
    }

    /// Whether the kind may be received before the peer has authenticated.
    /// Any other kind before that is a protocol error.
    pub fn allowed_before_auth(self) -> bool {
        matches!(
            self,
            Kind::Hello | Kind::Auth | Kind::AuthOk | Kind::Reject | Kind::Bye
        )
    }

    /// Header `flags` bits valid for this kind.
    pub fn valid_flags(self) -> u16 {
        match self {
            Kind::Write => WRITE_FLAGS,
            _ => 0,
        }
    }
}

/// Why a frame was refused. Every error means: log the message, close the
/// connection, apply nothing from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtoError {
    /// The magic is not `RCPY`.
    BadMagic,
    /// The header version is not [`VERSION`].
    BadVersion,
    /// Unknown kind code.
    UnknownKind,
    /// The reserved field is not zero.
    ReservedNotZero,
    /// A flag not valid for the kind is set.
    BadFlags,
    /// `len` exceeds the payload limit.
    TooLong,
    /// `len` is wrong for the kind (or for a WRITE's `nr_sectors`).
    BadLength,
    /// A field the kind does not use is not zero.
    UnusedNotZero,
    /// A WRITE or ACK with seq 0.
    BadSeq,
    /// A WRITE whose dependency is not below its seq.
    BadDependency,
    /// `sector + nr_sectors` overflows.
    SectorOverflow,
    /// A WRITE combines flags that exclude each other, or has no sectors.
    BadWriteFlags,
    /// Unknown ACK flag.
    BadAckFlags,
    /// ACK status is not an errno.
    BadErrno,
    /// STATE value does not decode.
    BadState,
    /// The payload is not `len` bytes.
    PayloadLength,
    /// Checksum mismatch.
    BadCrc,
    /// HELLO payload: reserved bytes not zero.
    HelloReserved,
    /// A BITMAP frame's first track is not a multiple of 64.
    BadBitmap,
    /// Unknown generation flags in a HELLO.
    HelloGenFlags,
    /// HELLO payload: protocol version 0.
    HelloVersion,
    /// HELLO payload: unknown role code.
    HelloRole,
    /// HELLO payload: unknown mode code.
    HelloMode,
    /// HELLO payload: track size not a power of two in range.
    HelloTrackSize,
    /// HELLO payload: device size not a whole number of sectors.
    HelloDeviceSize,
    /// REJECT text not UTF-8 or too long.
    BadText,
    /// A MARK payload, ticket or ACK_MARK result that does not decode.
    BadMark,
}

impl ProtoError {
    /// Static text for a kernel log line.
    pub fn message(self) -> &'static str {
        match self {
            ProtoError::BadMagic => "bad magic",
            ProtoError::BadVersion => "unsupported header version",
            ProtoError::UnknownKind => "unknown frame kind",
            ProtoError::ReservedNotZero => "reserved header field not zero",
            ProtoError::BadFlags => "flags not valid for the frame kind",
            ProtoError::TooLong => "payload too long",
            ProtoError::BadLength => "payload length wrong for the frame kind",
            ProtoError::UnusedNotZero => "unused header field not zero",
            ProtoError::BadSeq => "sequence number zero",
            ProtoError::BadDependency => "write dependency not below its sequence number",
            ProtoError::SectorOverflow => "sector range overflows",
            ProtoError::BadWriteFlags => "inconsistent write flags",
            ProtoError::BadAckFlags => "unknown ack flags",
            ProtoError::BadErrno => "ack status not an errno",
            ProtoError::BadState => "bad pair state",
            ProtoError::PayloadLength => "payload length does not match header",
            ProtoError::BadCrc => "checksum mismatch",
            ProtoError::HelloReserved => "hello reserved bytes not zero",
            ProtoError::BadBitmap => "bitmap frame not aligned to 64 tracks",
            ProtoError::HelloGenFlags => "hello generation flags unknown",
            ProtoError::BadMark => "bad marker or marker ack",
            ProtoError::HelloVersion => "hello protocol version zero",
            ProtoError::HelloRole => "hello role unknown",
            ProtoError::HelloMode => "hello mode unknown",
            ProtoError::HelloTrackSize => "hello track size invalid",
            ProtoError::HelloDeviceSize => "hello device size not a multiple of 512",
            ProtoError::BadText => "reject text invalid",
        }
    }
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// A frame header. `crc` is filled by [`Header::encode`] and read by
/// [`Header::decode`]; constructors leave it 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Frame kind.
    pub kind: Kind,
    /// Kind-specific flags ([`Kind::valid_flags`]).
    pub flags: u16,
    /// Payload bytes that follow the header.
    pub len: u32,
    /// WRITE: sectors covered.
    pub nr_sectors: u32,
    /// WRITE: sequence number; ACK: the acknowledged seq.
    pub seq: u64,
    /// Kind-specific (WRITE: sector; ACK: flags; REJECT: reason; PING/PONG:
    /// timestamp; COPY_DONE: bytes; STATE: encoded pair).
    pub a: u64,
    /// Kind-specific (WRITE: dependency seq; ACK: errno).
    pub b: u64,
    /// CRC-32C of the header (this field zeroed) and the payload.
    pub crc: u32,
}

// Field offsets.
const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 4;
const OFF_KIND: usize = 5;
const OFF_FLAGS: usize = 6;
const OFF_LEN: usize = 8;
const OFF_NR: usize = 12;
const OFF_SEQ: usize = 16;
const OFF_A: usize = 24;
const OFF_B: usize = 32;
const OFF_CRC: usize = 40;
const OFF_RESERVED: usize = 44;

impl Header {
    /// A header of `kind` with every field zero.
    pub fn new(kind: Kind) -> Header {
        Header {
            kind,
            flags: 0,
            len: 0,
            nr_sectors: 0,
            seq: 0,
            a: 0,
            b: 0,
            crc: 0,
        }
    }

    /// HELLO; the payload is [`Hello::encode`].
    pub fn hello() -> Header {
        Header {
            len: HELLO_LEN as u32,
            ..Header::new(Kind::Hello)
        }
    }

    /// AUTH; the payload is the MAC from [`auth_mac`].
    pub fn auth() -> Header {
        Header {
            len: AUTH_LEN as u32,
            ..Header::new(Kind::Auth)
        }
    }

    /// AUTH_OK.
    pub fn auth_ok() -> Header {
        Header::new(Kind::AuthOk)
    }

    /// REJECT with `reason` and `text_len` bytes of UTF-8 text (at most
    /// [`MAX_REJECT_TEXT`]).
    pub fn reject(reason: RejectReason, text_len: u32) -> Header {
        Header {
            a: reason.code(),
            len: text_len,
            ..Header::new(Kind::Reject)
        }
    }

    /// WRITE of `nr_sectors` at `sector`, sequence `seq`, dependency `dep`.
    /// The payload length follows from the flags: none for
    /// discard/write-zeroes/pure flush, else `nr_sectors * 512` bytes.
    pub fn write(seq: u64, dep: u64, sector: u64, nr_sectors: u32, flags: u16) -> Header {
        let len = if flags & (WRITE_DISCARD | WRITE_ZEROES) != 0 {
            0
        } else {
            nr_sectors.saturating_mul(SECTOR_BYTES)
        };
        Header {
            flags,
            len,
            nr_sectors,
            seq,
            a: sector,
            b: dep,
            ..Header::new(Kind::Write)
        }
    }

    /// MARK (a [`WRITE_MARK`] WRITE) with sequence `seq`, dependency `dep` and
    /// the primary's `ticket`; the payload is a [`Mark`].
    pub fn mark(seq: u64, dep: u64, ticket: u64) -> Header {
        Header {
            flags: WRITE_MARK | WRITE_PREFLUSH,
            len: MARK_LEN as u32,
            seq,
            a: ticket,
            b: dep,
            ..Header::new(Kind::Write)
        }
    }

    /// ACK of a MARK `seq`: durable (the marker's flush covers everything before
    /// it) and what the secondary did.
    pub fn ack_mark(seq: u64, result: MarkResult) -> Header {
        Header {
            seq,
            a: ACK_DURABLE | ACK_MARK,
            b: result.encode(),
            ..Header::new(Kind::Ack)
        }
    }

    /// ACK of write `seq` with [`ACK_DURABLE`]-style flags and an errno
    /// (0 = success).
    pub fn ack(seq: u64, flags: u64, errno: u64) -> Header {
        Header {
            seq,
            a: flags,
            b: errno,
            ..Header::new(Kind::Ack)
        }
    }

    /// PING carrying the sender's timestamp.
    pub fn ping(timestamp_ns: u64) -> Header {
        Header {
            a: timestamp_ns,
            ..Header::new(Kind::Ping)
        }
    }

    /// PONG echoing a PING's timestamp.
    pub fn pong(timestamp_ns: u64) -> Header {
        Header {
            a: timestamp_ns,
            ..Header::new(Kind::Pong)
        }
    }

    /// COPY_DONE after copying `bytes`.
    pub fn copy_done(bytes: u64) -> Header {
        Header {
            a: bytes,
            ..Header::new(Kind::CopyDone)
        }
    }

    /// STATE carrying [`super::state::Pair::encode`].
    pub fn state(encoded: u64) -> Header {
        Header {
            a: encoded,
            ..Header::new(Kind::State)
        }
    }

    /// BITMAP: `words` 64-bit words of the bitmap from track `first_track`
    /// (a multiple of 64); 0 words ends the list.
    pub fn bitmap(first_track: u64, words: u32) -> Header {
        Header {
            a: first_track,
            len: words.saturating_mul(8),
            ..Header::new(Kind::Bitmap)
        }
    }

    /// BYE.
    pub fn bye() -> Header {
        Header::new(Kind::Bye)
    }

    /// The header bytes with `crc` set to the given value.
    pub fn encode_with_crc(&self, crc: u32) -> [u8; HEADER_LEN] {
        let mut buf = [0u8; HEADER_LEN];
        put(&mut buf, OFF_MAGIC, &MAGIC.to_le_bytes());
        put(&mut buf, OFF_VERSION, &[VERSION]);
        put(&mut buf, OFF_KIND, &[self.kind.code()]);
        put(&mut buf, OFF_FLAGS, &self.flags.to_le_bytes());
        put(&mut buf, OFF_LEN, &self.len.to_le_bytes());
        put(&mut buf, OFF_NR, &self.nr_sectors.to_le_bytes());
        put(&mut buf, OFF_SEQ, &self.seq.to_le_bytes());
        put(&mut buf, OFF_A, &self.a.to_le_bytes());
        put(&mut buf, OFF_B, &self.b.to_le_bytes());
        put(&mut buf, OFF_CRC, &crc.to_le_bytes());
        buf
    }

    /// The CRC state after this header's bytes (crc zeroed), to be continued
    /// over the payload parts before [`Header::encode_with_crc`].
    pub fn crc_state_for_send(&self) -> Crc32c {
        let mut c = Crc32c::new();
        c.update(&self.encode_with_crc(0));
        c
    }

    /// The header bytes with the CRC over the header and `payload`.
    /// `payload.len()` must equal `self.len`.
    pub fn encode(&self, payload: &[u8]) -> [u8; HEADER_LEN] {
        let crc = self.crc_state_for_send().update(payload).finish();
        self.encode_with_crc(crc)
    }

    /// Parses and checks a received header: magic, version, kind, reserved
    /// zero, flags valid for the kind, `len <= min(max_payload,
    /// MAX_PAYLOAD)`, and each kind's field rules (see
    /// `Documentation/rcopy-protocol.rst`). The CRC is checked later, with
    /// the payload.
    pub fn decode(buf: &[u8; HEADER_LEN], max_payload: u32) -> Result<Header, ProtoError> {
        if u32_at(buf, OFF_MAGIC) != MAGIC {
            return Err(ProtoError::BadMagic);
        }
        let [version] = get::<1>(buf, OFF_VERSION);
        let [kind] = get::<1>(buf, OFF_KIND);
        if version != VERSION {
            return Err(ProtoError::BadVersion);
        }
        let kind = Kind::from_code(kind).ok_or(ProtoError::UnknownKind)?;
        if u32_at(buf, OFF_RESERVED) != 0 {
            return Err(ProtoError::ReservedNotZero);
        }
        let h = Header {
            kind,
            flags: u16_at(buf, OFF_FLAGS),
            len: u32_at(buf, OFF_LEN),
            nr_sectors: u32_at(buf, OFF_NR),
            seq: u64_at(buf, OFF_SEQ),
            a: u64_at(buf, OFF_A),
            b: u64_at(buf, OFF_B),
            crc: u32_at(buf, OFF_CRC),
        };
        h.validate(max_payload)?;
        Ok(h)
    }

    /// The checks of [`Header::decode`] after the fixed fields. A sender may
    /// use it to check a header it built.
    pub fn validate(&self, max_payload: u32) -> Result<(), ProtoError> {
        if self.flags & !self.kind.valid_flags() != 0 {
            return Err(ProtoError::BadFlags);
        }
        if self.len > max_payload.min(MAX_PAYLOAD) {
            return Err(ProtoError::TooLong);
        }
        let unused = |nr: bool, seq: bool, a: bool, b: bool| {
            if (nr && self.nr_sectors != 0)
                || (seq && self.seq != 0)
                || (a && self.a != 0)
                || (b && self.b != 0)
            {
                Err(ProtoError::UnusedNotZero)
            } else {
                Ok(())
            }
        };
        let exact_len = |n: usize| {
            if usize::try_from(self.len).ok() == Some(n) {
                Ok(())
            } else {
                Err(ProtoError::BadLength)
            }
        };
        match self.kind {
            Kind::Hello => {
                exact_len(HELLO_LEN)?;
                unused(true, true, true, true)
            }
            Kind::Auth => {
                exact_len(AUTH_LEN)?;
                unused(true, true, true, true)
            }
            Kind::AuthOk | Kind::Bye => {
                exact_len(0)?;
                unused(true, true, true, true)
            }
            Kind::Reject => {
                if self.len > MAX_REJECT_TEXT {
                    return Err(ProtoError::BadLength);
                }
                unused(true, true, false, true)
            }
            Kind::Ping | Kind::Pong | Kind::CopyDone => {
                exact_len(0)?;
                unused(true, true, false, true)
            }
            Kind::State => {
                exact_len(0)?;
                unused(true, true, false, true)?;
                match super::state::Pair::decode(self.a) {
                    Some(_) => Ok(()),
                    None => Err(ProtoError::BadState),
                }
            }
            Kind::Ack => {
                exact_len(0)?;
                unused(true, false, false, false)?;
                if self.seq == 0 {
                    return Err(ProtoError::BadSeq);
                }
                if self.a & !ACK_FLAGS != 0 {
                    return Err(ProtoError::BadAckFlags);
                }
                if self.a & ACK_MARK != 0 {
                    if MarkResult::decode(self.b).is_none() {
                        return Err(ProtoError::BadMark);
                    }
                } else if self.b > MAX_ERRNO {
                    return Err(ProtoError::BadErrno);
                }
                Ok(())
            }
            Kind::Bitmap => {
                if self.len % 8 != 0 {
                    return Err(ProtoError::BadLength);
                }
                if self.a % 64 != 0 {
                    return Err(ProtoError::BadBitmap);
                }
                unused(true, true, false, true)
            }
            Kind::Write => self.validate_write(),
        }
    }

    fn validate_write(&self) -> Result<(), ProtoError> {
        if self.seq == 0 {
            return Err(ProtoError::BadSeq);
        }
        if self.b >= self.seq {
            return Err(ProtoError::BadDependency);
        }
        if self.a.checked_add(u64::from(self.nr_sectors)).is_none() {
            return Err(ProtoError::SectorOverflow);
        }
        let f = self.flags;
        if f & WRITE_MARK != 0 {
            // A marker: PREFLUSH with it, no sectors, a ticket, a MARK payload.
            if f != WRITE_MARK | WRITE_PREFLUSH || self.nr_sectors != 0 {
                return Err(ProtoError::BadWriteFlags);
            }
            if self.len as usize != MARK_LEN {
                return Err(ProtoError::BadLength);
            }
            if self.a == 0 {
                return Err(ProtoError::BadMark);
            }
            return Ok(());
        }
        let no_data = f & (WRITE_DISCARD | WRITE_ZEROES);
        if no_data == WRITE_DISCARD | WRITE_ZEROES
            || (f & WRITE_DISCARD != 0 && f & WRITE_COPY != 0)
        {
            return Err(ProtoError::BadWriteFlags);
        }
        if self.nr_sectors == 0 {
            // A pure flush: PREFLUSH alone, no payload.
            if f != WRITE_PREFLUSH {
                return Err(ProtoError::BadWriteFlags);
            }
            if self.len != 0 {
                return Err(ProtoError::BadLength);
            }
            if self.a != 0 {
                return Err(ProtoError::UnusedNotZero);
            }
            return Ok(());
        }
        let want = if no_data != 0 {
            0
        } else {
            u64::from(self.nr_sectors).saturating_mul(u64::from(SECTOR_BYTES))
        };
        if u64::from(self.len) != want {
            return Err(ProtoError::BadLength);
        }
        Ok(())
    }

    /// Whether a WRITE's sectors lie within a device of `device_bytes`.
    /// Check it before applying: the header checks cannot know the size.
    pub fn write_fits(&self, device_bytes: u64) -> bool {
        let sectors = device_bytes / u64::from(SECTOR_BYTES);
        self.a
            .checked_add(u64::from(self.nr_sectors))
            .is_some_and(|end| end <= sectors)
    }

    /// The CRC state after the received header bytes with the crc field
    /// zeroed, to be continued over the payload and passed to
    /// [`Header::check_crc`].
    pub fn crc_state(hdr_bytes: &[u8; HEADER_LEN]) -> Crc32c {
        let mut b = *hdr_bytes;
        put(&mut b, OFF_CRC, &[0; 4]);
        let mut c = Crc32c::new();
        c.update(&b);
        c
    }

    /// Compares a computed CRC with the header's.
    pub fn check_crc(&self, computed: u32) -> Result<(), ProtoError> {
        if computed == self.crc {
            Ok(())
        } else {
            Err(ProtoError::BadCrc)
        }
    }

    /// Checks the payload length and the CRC over `hdr_bytes` (the bytes
    /// this header was decoded from) and `payload`.
    pub fn verify_crc(
        &self,
        hdr_bytes: &[u8; HEADER_LEN],
        payload: &[u8],
    ) -> Result<(), ProtoError> {
        if usize::try_from(self.len).ok() != Some(payload.len()) {
            return Err(ProtoError::PayloadLength);
        }
        self.check_crc(Self::crc_state(hdr_bytes).update(payload).finish())
    }
}

/// Why a side refuses a connection (REJECT `a`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// No common protocol version.
    Version,
    /// The peer belongs to another pair.
    PairId,
    /// Device sizes differ.
    DeviceSize,
    /// Track sizes differ.
    TrackSize,
    /// Both sides are primary (or the roles otherwise conflict).
    Role,
    /// The peer's AUTH did not verify.
    Auth,
    /// The peer is this node (same node id or nonce).
    SameNode,
    /// A connection for this pair is already up.
    Busy,
    /// A malformed frame or a frame out of order.
    Protocol,
    /// Both sides were written while apart; the operator must choose.
    SplitBrain,
    /// A code this side does not know.
    Other(u64),
}

impl RejectReason {
    /// The wire code.
    pub fn code(self) -> u64 {
        match self {
            RejectReason::Version => 1,
            RejectReason::PairId => 2,
            RejectReason::DeviceSize => 3,
            RejectReason::TrackSize => 4,
            RejectReason::Role => 5,
            RejectReason::Auth => 6,
            RejectReason::SameNode => 7,
            RejectReason::Busy => 8,
            RejectReason::Protocol => 9,
            RejectReason::SplitBrain => 10,
            RejectReason::Other(c) => c,
        }
    }

    /// The reason for a wire code (unknown codes are [`RejectReason::Other`]).
    pub fn from_code(c: u64) -> RejectReason {
        match c {
            1 => RejectReason::Version,
            2 => RejectReason::PairId,
            3 => RejectReason::DeviceSize,
            4 => RejectReason::TrackSize,
            5 => RejectReason::Role,
            6 => RejectReason::Auth,
            7 => RejectReason::SameNode,
            8 => RejectReason::Busy,
            9 => RejectReason::Protocol,
            10 => RejectReason::SplitBrain,
            c => RejectReason::Other(c),
        }
    }

    /// Static text for a log line.
    pub fn message(self) -> &'static str {
        match self {
            RejectReason::Version => "no common protocol version",
            RejectReason::PairId => "pair id mismatch",
            RejectReason::DeviceSize => "device size mismatch",
            RejectReason::TrackSize => "track size mismatch",
            RejectReason::Role => "role conflict",
            RejectReason::Auth => "authentication failed",
            RejectReason::SameNode => "connected to itself",
            RejectReason::Busy => "already connected",
            RejectReason::Protocol => "protocol error",
            RejectReason::SplitBrain => "split brain",
            RejectReason::Other(_) => "unknown reason",
        }
    }
}

/// The text of a REJECT payload: UTF-8 of at most [`MAX_REJECT_TEXT`] bytes.
pub fn reject_text(payload: &[u8]) -> Result<&str, ProtoError> {
    if payload.len() > MAX_REJECT_TEXT as usize {
        return Err(ProtoError::BadText);
    }
    core::str::from_utf8(payload).map_err(|_| ProtoError::BadText)
}

/// The HELLO payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// Highest protocol version the sender speaks (>= 1).
    pub proto_version: u32,
    /// Feature bits the sender speaks; unknown bits are ignored.
    pub features: u32,
    /// The pair's id, the same on both sides.
    pub pair_id: [u8; PAIR_ID_LEN],
    /// Size of the sender's device in bytes (a multiple of 512).
    pub device_bytes: u64,
    /// The pair's track size (a power of two, 4 KiB to 16 MiB).
    pub track_size: u32,
    /// The sender's role.
    pub role: Role,
    /// The sender's configured mode.
    pub mode: Mode,
    /// The sender's node id (differs between the two sides).
    pub node_id: u64,
    /// Fresh random bytes from the sender's CSPRNG, new for every
    /// connection.
    pub nonce: [u8; NONCE_LEN],
    /// The sender's generation ids and flags (protocol 2).
    pub gens: GenInfo,
}

const H_VERSION: usize = 0;
const H_FEATURES: usize = 4;
const H_PAIR_ID: usize = 8;
const H_DEVICE: usize = 24;
const H_TRACK: usize = 32;
const H_ROLE: usize = 36;
const H_MODE: usize = 37;
const H_RESERVED: usize = 38;
const H_NODE: usize = 40;
const H_NONCE: usize = 48;
const H_GEN_CURRENT: usize = 80;
const H_GEN_PEER: usize = 88;
const H_GEN_PEER_PREV: usize = 96;
const H_GEN_HISTORY: usize = 104;
const H_GEN_FLAGS: usize = 120;
const H_RESERVED2: usize = 124;

impl Hello {
    /// The payload bytes.
    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        let role = match self.role {
            Role::Primary => 0,
            Role::Secondary => 1,
        };
        let mode = match self.mode {
            Mode::Sync => 0,
            Mode::Async => 1,
        };
        put(&mut b, H_VERSION, &self.proto_version.to_le_bytes());
        put(&mut b, H_FEATURES, &self.features.to_le_bytes());
        put(&mut b, H_PAIR_ID, &self.pair_id);
        put(&mut b, H_DEVICE, &self.device_bytes.to_le_bytes());
        put(&mut b, H_TRACK, &self.track_size.to_le_bytes());
        put(&mut b, H_ROLE, &[role]);
        put(&mut b, H_MODE, &[mode]);
        put(&mut b, H_NODE, &self.node_id.to_le_bytes());
        put(&mut b, H_NONCE, &self.nonce);
        put(&mut b, H_GEN_CURRENT, &self.gens.current.to_le_bytes());
        put(&mut b, H_GEN_PEER, &self.gens.peer.to_le_bytes());
        put(&mut b, H_GEN_PEER_PREV, &self.gens.peer_prev.to_le_bytes());
        put(&mut b, H_GEN_HISTORY, &self.gens.history[0].to_le_bytes());
        put(
            &mut b,
            H_GEN_HISTORY + 8,
            &self.gens.history[1].to_le_bytes(),
        );
        put(&mut b, H_GEN_FLAGS, &self.gens.flags.to_le_bytes());
        b
    }

    /// Parses and checks a HELLO payload (exactly [`HELLO_LEN`] bytes).
    pub fn decode(p: &[u8]) -> Result<Hello, ProtoError> {
        if p.len() != HELLO_LEN {
            return Err(ProtoError::BadLength);
        }
        if u16_at(p, H_RESERVED) != 0 || u32_at(p, H_RESERVED2) != 0 {
            return Err(ProtoError::HelloReserved);
        }
        let [role] = get::<1>(p, H_ROLE);
        let [mode] = get::<1>(p, H_MODE);
        let h = Hello {
            proto_version: u32_at(p, H_VERSION),
            features: u32_at(p, H_FEATURES),
            pair_id: get(p, H_PAIR_ID),
            device_bytes: u64_at(p, H_DEVICE),
            track_size: u32_at(p, H_TRACK),
            role: match role {
                0 => Role::Primary,
                1 => Role::Secondary,
                _ => return Err(ProtoError::HelloRole),
            },
            mode: match mode {
                0 => Mode::Sync,
                1 => Mode::Async,
                _ => return Err(ProtoError::HelloMode),
            },
            node_id: u64_at(p, H_NODE),
            nonce: get(p, H_NONCE),
            gens: GenInfo {
                current: u64_at(p, H_GEN_CURRENT),
                peer: u64_at(p, H_GEN_PEER),
                peer_prev: u64_at(p, H_GEN_PEER_PREV),
                history: [u64_at(p, H_GEN_HISTORY), u64_at(p, H_GEN_HISTORY + 8)],
                flags: u32_at(p, H_GEN_FLAGS),
            },
        };
        if h.gens.flags & !GF_FLAGS != 0 {
            return Err(ProtoError::HelloGenFlags);
        }
        if h.proto_version == 0 {
            return Err(ProtoError::HelloVersion);
        }
        if !h.track_size.is_power_of_two()
            || h.track_size < MIN_TRACK_SIZE
            || h.track_size > MAX_TRACK_SIZE
        {
            return Err(ProtoError::HelloTrackSize);
        }
        if h.device_bytes % u64::from(SECTOR_BYTES) != 0 {
            return Err(ProtoError::HelloDeviceSize);
        }
        Ok(h)
    }

    /// The protocol version both sides use: the lower of the two.
    pub fn negotiated_version(&self, peer: &Hello) -> u32 {
        self.proto_version.min(peer.proto_version)
    }

    /// The features both sides use.
    pub fn negotiated_features(&self, peer: &Hello) -> u32 {
        self.features & peer.features
    }

    /// Checks the peer's HELLO against ours (`self`): common version, same
    /// pair id, device size and track size, not both primary, not ourselves
    /// (node id or nonce equal, which also catches a reflected HELLO).
    pub fn check_peer(&self, peer: &Hello) -> Result<(), RejectReason> {
        if self.negotiated_version(peer) < 1 || self.negotiated_version(peer) > PROTO_VERSION {
            return Err(RejectReason::Version);
        }
        if self.node_id == peer.node_id || ct_eq(&self.nonce, &peer.nonce) {
            return Err(RejectReason::SameNode);
        }
        if self.pair_id != peer.pair_id {
            return Err(RejectReason::PairId);
        }
        if self.device_bytes != peer.device_bytes {
            return Err(RejectReason::DeviceSize);
        }
        if self.track_size != peer.track_size {
            return Err(RejectReason::TrackSize);
        }
        if self.role == Role::Primary && peer.role == Role::Primary {
            return Err(RejectReason::Role);
        }
        Ok(())
    }
}

/// The 16-byte wire pair id for a pair name (the table's `pair_id` word, any
/// length): the first 16 bytes of `SHA-256("rcopy-pair-id-v1" || name)`.
pub fn pair_id_from_name(name: &[u8]) -> [u8; PAIR_ID_LEN] {
    let mut h = super::sha256::Sha256::new();
    h.update(b"rcopy-pair-id-v1").update(name);
    let d = h.finalize();
    let mut id = [0u8; PAIR_ID_LEN];
    if let Some(src) = d.get(..PAIR_ID_LEN) {
        id.copy_from_slice(src);
    }
    id
}

/// The MAC this side sends in its AUTH frame:
///
/// `HMAC-SHA256(secret, "rcopy-auth-v1" || dir || pair_id || peer_nonce ||
/// my_nonce)`, where `dir` is `b'I'` if this side opened the TCP connection
/// (`initiator`) and `b'R'` otherwise.
///
/// The verifier's nonce comes first, the prover's second. The direction
/// byte stops a reflected MAC (the peer's own MAC sent back to it), and the
/// fresh nonces stop a replay from an earlier connection.
pub fn auth_mac(
    secret: &[u8],
    pair_id: &[u8; PAIR_ID_LEN],
    my_nonce: &[u8; NONCE_LEN],
    peer_nonce: &[u8; NONCE_LEN],
    initiator: bool,
) -> [u8; AUTH_LEN] {
    let mut m = HmacSha256::new(secret);
    m.update(AUTH_LABEL)
        .update(&[if initiator { b'I' } else { b'R' }])
        .update(pair_id)
        .update(peer_nonce)
        .update(my_nonce);
    m.finalize()
}

/// Checks, in constant time, the MAC the peer sent in its AUTH frame.
/// Arguments are from this side's point of view (as for [`auth_mac`]);
/// `initiator` is whether this side opened the connection.
pub fn auth_verify(
    secret: &[u8],
    pair_id: &[u8; PAIR_ID_LEN],
    my_nonce: &[u8; NONCE_LEN],
    peer_nonce: &[u8; NONCE_LEN],
    initiator: bool,
    peer_mac: &[u8],
) -> bool {
    let expected = auth_mac(secret, pair_id, peer_nonce, my_nonce, !initiator);
    ct_eq(&expected, peer_mac)
}
