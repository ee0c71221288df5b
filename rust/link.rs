// SPDX-License-Identifier: GPL-2.0

//! One replication connection: checked frames over a [`Socket`], the authenticated
//! handshake, and the liveness state the watchdog reads.
//!
//! Every received frame is validated ([`Header::decode`]) and its CRC-32C checked
//! before any of it is used; any error ends the connection.

use crate::net::Socket;
use crate::pagebuf::PageBuf;
use crate::rcore::addr::SockAddr;
use crate::rcore::gens::GenInfo;
use crate::rcore::proto::{self, Header, Hello, Kind, ProtoError, RejectReason, HEADER_LEN};
use crate::rcore::status::{Mode, Role};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::prelude::*;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::sync::{Arc, Mutex};

/// The raw CRC-32C update of `rcore::crc32c` done by the kernel's `crc32c()`, which
/// uses the CPU's CRC instruction where there is one. Any context.
fn kernel_crc32c(state: u32, data: &[u8]) -> u32 {
    // SAFETY: `data` is a valid slice of `data.len()` bytes; `crc32c` only reads it.
    unsafe { crate::dm::raw::crc32c(state, data.as_ptr().cast(), data.len()) }
}

/// Which implementation computes frame CRCs: set at module load and at each table
/// load by [`choose_crc32c`] (the faster on this CPU; before that, and if timing
/// fails, the kernel's). Both compute the same CRC ([`check_crc32c`]), so a peer
/// never sees which.
static TABLE_CRC: AtomicBool = AtomicBool::new(false);

/// The raw CRC-32C update used for every frame's payload, on both sides: the payload
/// CRC is the largest CPU cost per replicated byte. Any context.
fn frame_crc32c(state: u32, data: &[u8]) -> u32 {
    if TABLE_CRC.load(Ordering::Relaxed) {
        crate::rcore::crc32c::Crc32c::raw_update(state, data)
    } else {
        kernel_crc32c(state, data)
    }
}

/// At module load: the kernel's `crc32c()` computes the protocol's CRC (the core's
/// definition, which the userspace tools and `Documentation/rcopy-protocol.rst`
/// use), on lengths that exercise its short and long paths. Refuses to load if not.
pub(crate) fn check_crc32c() -> Result {
    let mut buf = [0u8; 1031];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i * 131 + 7) as u8;
    }
    for len in [0, 1, 7, 8, 63, 64, 255, 1031] {
        let data = &buf[..len];
        let mut a = crate::rcore::crc32c::Crc32c::new();
        let mut b = a;
        if a.update(data).finish() != b.update_with(data, kernel_crc32c).finish() {
            pr_err!("rcopy: the kernel's crc32c() does not compute CRC-32C as the protocol defines it\n");
            return Err(EINVAL);
        }
    }
    Ok(())
}

/// At module load and at each `rcopy` table load: times, per MiB on this CPU, the
/// work rcopy does per replicated byte (the kernel's `crc32c()`, the core's
/// table-driven CRC-32C, a memory copy), picks the faster CRC for frames (like the
/// kernel's RAID6 and XOR routines, which are chosen by timing them at boot) and logs
/// the figures, so a benchmark can set rcopy's CPU per MiB against them. The choice
/// matters under emulation: a TCG guest emulates the CRC instruction bit by bit
/// (there the table is about 3 times faster), while on hardware the instruction wins
/// by far. A failed allocation keeps the current choice.
///
/// The passes of the three take turns, and each keeps its best: a busy moment of
/// the machine (at boot, the other VM booting on the same host cores) slows the
/// passes it falls on, not all of one candidate's. Before, each candidate's passes
/// ran back to back, and three boots of fifteen (the test and bench VMs' logs on
/// one host) measured the table about as slow as `crc32c()` (6.5 to 7.3 ms a MiB
/// against 1.7 to 2.6 in the others); one of them used `crc32c()` for its whole
/// run. Timing again at each table load gives a later, quieter chance; both
/// compute the same CRC ([`check_crc32c`]), so the switch may happen while frames
/// are being checked.
///
/// Context: thread context; about 18 MiB of work (a few ms on hardware, about
/// 60 ms under TCG).
pub(crate) fn choose_crc32c() {
    const MIB: usize = 1 << 20;
    let (Ok(src), Ok(mut dst)) = (
        KVVec::from_elem(0x5au8, MIB, GFP_KERNEL),
        KVVec::from_elem(0u8, MIB, GFP_KERNEL),
    ) else {
        return;
    };
    // ns per MiB, the best of six passes of each (the first warms caches).
    let time = |f: &mut dyn FnMut() -> u32| {
        let t = now_ns();
        core::hint::black_box(f());
        now_ns().saturating_sub(t)
    };
    let (mut kcrc, mut tcrc, mut copy) = (u64::MAX, u64::MAX, u64::MAX);
    for _ in 0..6 {
        kcrc = kcrc.min(time(&mut || kernel_crc32c(!0, &src)));
        tcrc = tcrc.min(time(&mut || {
            crate::rcore::crc32c::Crc32c::raw_update(!0, &src)
        }));
        copy = copy.min(time(&mut || {
            dst.copy_from_slice(core::hint::black_box(&src));
            u32::from(dst[MIB - 1])
        }));
    }
    let (kcrc, tcrc, copy) = (kcrc / 1000, tcrc / 1000, copy / 1000);
    let table = tcrc < kcrc;
    TABLE_CRC.store(table, Ordering::Relaxed);
    pr_info!(
        "rcopy: cost per MiB on this CPU: crc32c() {kcrc} us, table CRC-32C {tcrc} us, memcpy {copy} us; frames use {}\n",
        if table { "the table" } else { "crc32c()" }
    );
}

/// Monotonic time in nanoseconds.
pub(crate) fn now_ns() -> u64 {
    // SAFETY: reading the monotonic clock has no preconditions.
    unsafe { kernel::bindings::ktime_get() as u64 }
}

/// The wall clock, in ns since the epoch (for times shown to operators, such as
/// a snapshot's creation; never for intervals).
pub(crate) fn now_real_ns() -> u64 {
    // SAFETY: reading the wall clock has no preconditions.
    unsafe { kernel::bindings::ktime_get_real() as u64 }
}

/// Shows a value through its `core::fmt::Display` in kernel log macros.
pub(crate) struct D<'a, T: ?Sized>(pub(crate) &'a T);

impl<T: core::fmt::Display + ?Sized> kernel::fmt::Display for D<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self.0, f)
    }
}

/// Why a connection ended.
#[derive(Clone, Copy)]
pub(crate) enum LinkError {
    /// Socket error or closed connection (errno).
    Io(Error),
    /// The peer sent a malformed frame.
    Proto(ProtoError),
    /// The peer refused us, or we refused it.
    Rejected(RejectReason),
    /// A frame that is valid but not expected here.
    Unexpected(Kind),
}

impl From<Error> for LinkError {
    fn from(e: Error) -> Self {
        LinkError::Io(e)
    }
}

impl core::fmt::Display for LinkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LinkError::Io(e) => write!(f, "connection lost (errno {})", -e.to_errno()),
            LinkError::Proto(p) => write!(f, "malformed frame: {}", p.message()),
            LinkError::Rejected(r) => write!(f, "{}", r.message()),
            LinkError::Unexpected(k) => write!(f, "unexpected {} frame", k.name()),
        }
    }
}

/// A live connection.
#[pin_data]
pub(crate) struct Link {
    sock: Socket,
    /// When a frame last arrived (or the connection was made), in ns.
    pub(crate) last_rx: Atomic<u64>,
    dead: Atomic<u32>,
    /// The features both sides speak (`proto::FEATURE_*`), once the handshake
    /// checked the peer's HELLO.
    features: Atomic<u32>,
    /// Serialises senders (the sender thread and the receiver's replies).
    #[pin]
    send_lock: Mutex<()>,
    pub(crate) peer: Option<SockAddr>,
}

/// What this side says about itself in HELLO.
pub(crate) struct Identity<'a> {
    pub(crate) secret: &'a [u8],
    pub(crate) pair_id: [u8; proto::PAIR_ID_LEN],
    pub(crate) device_bytes: u64,
    pub(crate) track_size: u32,
    pub(crate) role: Role,
    pub(crate) mode: Mode,
    pub(crate) node_id: u64,
    pub(crate) gens: GenInfo,
}

impl Link {
    pub(crate) fn new(sock: Socket) -> Result<Arc<Link>> {
        let peer = sock.peer();
        Arc::pin_init(
            pin_init!(Link {
                sock,
                last_rx: Atomic::new(now_ns()),
                dead: Atomic::new(0),
                features: Atomic::new(0),
                send_lock <- kernel::new_mutex!(()),
                peer,
            }),
            GFP_KERNEL,
        )
    }

    /// Ends the connection; blocked sends and receives on it return errors.
    pub(crate) fn kill(&self) {
        self.dead.store(1, Relaxed);
        self.sock.shutdown();
    }

    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Relaxed) != 0
    }

    /// Sends one frame.
    pub(crate) fn send(&self, h: &Header, payload: &[u8]) -> Result<(), LinkError> {
        self.send_then(h, payload, false)
    }

    /// Like [`Link::send`]; `more`: the caller sends another frame at once, so TCP
    /// may hold a partial segment for it (`MSG_MORE`). The last frame of a batch must
    /// be sent without it, or its tail could wait for the cork timer.
    pub(crate) fn send_then(
        &self,
        h: &Header,
        payload: &[u8],
        more: bool,
    ) -> Result<(), LinkError> {
        let hdr = h.encode_with_crc(
            h.crc_state_for_send()
                .update_with(payload, frame_crc32c)
                .finish(),
        );
        let _g = self.send_lock.lock();
        self.sock
            .send_all(&[&hdr, payload], more)
            .map_err(|e| self.send_failed(e))
    }

    /// Like [`Link::send_then`] with a write's payload in a [`PageBuf`]: a small one
    /// is copied in the same `sendmsg` as the header ([`Link::send_then`]), a large
    /// one handed to TCP without copying ([`Socket::send_pages`]). The CRC is
    /// computed first, over the pages as they are and stay (`pagebuf.rs`).
    pub(crate) fn send_pages(
        &self,
        h: &Header,
        buf: &PageBuf,
        more: bool,
    ) -> Result<(), LinkError> {
        if let Some(b) = buf.bytes() {
            return self.send_then(h, b, more);
        }
        let mut crc = h.crc_state_for_send();
        buf.for_each_chunk(|c| {
            crc.update_with(c, frame_crc32c);
        });
        let hdr = h.encode_with_crc(crc.finish());
        let _g = self.send_lock.lock();
        self.sock
            .send_pages(&hdr, buf, more)
            .map_err(|e| self.send_failed(e))
    }

    /// A send failed: part of a frame may be on the wire, so the connection is over.
    fn send_failed(&self, e: Error) -> LinkError {
        self.kill();
        LinkError::Io(e)
    }

    /// Receives one frame into `buf` (which must hold [`proto::MAX_PAYLOAD`] bytes);
    /// returns its header. The payload is `buf[..h.len]`.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> Result<Header, LinkError> {
        let r = self.recv_inner(buf);
        if r.is_err() {
            self.kill();
        }
        r
    }

    fn recv_inner(&self, buf: &mut [u8]) -> Result<Header, LinkError> {
        let mut hb = [0u8; HEADER_LEN];
        self.sock.recv_exact(&mut hb)?;
        let h = Header::decode(&hb, proto::MAX_PAYLOAD).map_err(LinkError::Proto)?;
        let len = h.len as usize;
        let payload = buf
            .get_mut(..len)
            .ok_or(LinkError::Proto(ProtoError::TooLong))?;
        self.sock.recv_exact(payload)?;
        h.check_crc(
            Header::crc_state(&hb)
                .update_with(payload, frame_crc32c)
                .finish(),
        )
        .map_err(LinkError::Proto)?;
        self.last_rx.store(now_ns(), Relaxed);
        Ok(h)
    }

    fn reject(&self, why: RejectReason) -> LinkError {
        let _ = self.send(&Header::reject(why, 0), &[]);
        LinkError::Rejected(why)
    }

    /// Runs the handshake: HELLO both ways, checks, mutual challenge-response, AUTH_OK
    /// both ways. `initiator` is the side that connected. Returns the peer's HELLO.
    pub(crate) fn handshake(
        &self,
        me: &Identity<'_>,
        initiator: bool,
        buf: &mut [u8],
    ) -> Result<Hello, LinkError> {
        let mut nonce = [0u8; proto::NONCE_LEN];
        // SAFETY: `nonce` is a writable buffer of the given length.
        unsafe { kernel::bindings::get_random_bytes(nonce.as_mut_ptr().cast(), nonce.len()) };
        let hello = Hello {
            proto_version: proto::PROTO_VERSION,
            features: proto::FEATURES,
            pair_id: me.pair_id,
            device_bytes: me.device_bytes,
            track_size: me.track_size,
            role: me.role,
            mode: me.mode,
            node_id: me.node_id,
            nonce,
            gens: me.gens,
        };
        let payload = hello.encode();
        self.send(&Header::hello(), &payload)?;
        let len = self.expect(buf, Kind::Hello)?;
        let peer = Hello::decode(&buf[..len]).map_err(LinkError::Proto)?;
        hello.check_peer(&peer).map_err(|why| self.reject(why))?;
        if peer.role == me.role {
            return Err(self.reject(RejectReason::Role));
        }
        self.features
            .store(hello.negotiated_features(&peer), Relaxed);
        let mac = proto::auth_mac(me.secret, &me.pair_id, &nonce, &peer.nonce, initiator);
        self.send(&Header::auth(), &mac)?;
        let len = self.expect(buf, Kind::Auth)?;
        if !proto::auth_verify(
            me.secret,
            &me.pair_id,
            &nonce,
            &peer.nonce,
            initiator,
            &buf[..len],
        ) {
            return Err(self.reject(RejectReason::Auth));
        }
        self.send(&Header::auth_ok(), &[])?;
        self.expect(buf, Kind::AuthOk)?;
        Ok(peer)
    }

    /// Whether both sides speak `feature` (a `proto::FEATURE_*` bit).
    pub(crate) fn speaks(&self, feature: u32) -> bool {
        self.features.load(Relaxed) & feature != 0
    }

    /// Receives a frame that must be of `kind` (a REJECT ends the handshake with its
    /// reason); returns its payload length.
    fn expect(&self, buf: &mut [u8], kind: Kind) -> Result<usize, LinkError> {
        let h = self.recv(buf)?;
        if h.kind == Kind::Reject {
            self.kill();
            return Err(LinkError::Rejected(RejectReason::from_code(h.a)));
        }
        if h.kind != kind {
            return Err(self.reject(RejectReason::Protocol));
        }
        Ok(h.len as usize)
    }
}
