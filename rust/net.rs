// SPDX-License-Identifier: GPL-2.0

//! Kernel TCP sockets for the replication link: connect, listen/accept, and
//! whole-buffer send and receive. Blocking calls are ended early by [`Socket::shutdown`]
//! from another thread (the link's watchdog), which is how timeouts are enforced.

use crate::dm::raw;
use crate::pagebuf::PageBuf;
use crate::rcore::addr::{Ip, SockAddr};
use core::ptr;
use kernel::bindings;
use kernel::prelude::*;

/// A kernel TCP socket, released on drop.
///
/// Invariant: `raw` is a socket from `sock_create_kern` or `kernel_accept`, owned here.
pub(crate) struct Socket {
    raw: *mut bindings::socket,
}

// SAFETY: kernel sockets serialise their own operations; sending, receiving and
// shutting down from different threads is allowed.
unsafe impl Send for Socket {}
// SAFETY: as above; every method takes `&self`.
unsafe impl Sync for Socket {}

fn check(ret: i32) -> Result<i32> {
    if ret < 0 {
        Err(Error::from_errno(ret))
    } else {
        Ok(ret)
    }
}

/// A `sockaddr_in` or `sockaddr_in6` for `a`, in storage large enough for either.
fn sockaddr(a: &SockAddr) -> (bindings::__kernel_sockaddr_storage, i32) {
    let mut st = bindings::__kernel_sockaddr_storage::default();
    let p = (&raw mut st).cast::<u8>();
    match a.ip {
        Ip::V4(ip) => {
            let sin = bindings::sockaddr_in {
                sin_family: bindings::AF_INET as u16,
                sin_port: a.port_be(),
                sin_addr: bindings::in_addr {
                    s_addr: u32::from_ne_bytes(ip),
                },
                __pad: [0; 8],
            };
            // SAFETY: the storage is larger than and aligned at least as `sockaddr_in`.
            unsafe { p.cast::<bindings::sockaddr_in>().write(sin) };
            (st, core::mem::size_of::<bindings::sockaddr_in>() as i32)
        }
        Ip::V6(ip) => {
            let mut sin6 = bindings::sockaddr_in6 {
                sin6_family: bindings::AF_INET6 as u16,
                sin6_port: a.port_be(),
                ..Default::default()
            };
            sin6.sin6_addr.in6_u.u6_addr8 = ip;
            // SAFETY: the storage is larger than and aligned at least as `sockaddr_in6`.
            unsafe { p.cast::<bindings::sockaddr_in6>().write(sin6) };
            (st, core::mem::size_of::<bindings::sockaddr_in6>() as i32)
        }
    }
}

fn family(a: &SockAddr) -> i32 {
    match a.ip {
        Ip::V4(_) => bindings::AF_INET as i32,
        Ip::V6(_) => bindings::AF_INET6 as i32,
    }
}

/// `EPOLLERR` and `EPOLLHUP` (`include/uapi/linux/eventpoll.h`).
const EPOLLERR: u32 = 0x08;
const EPOLLHUP: u32 = 0x10;

/// How a connection attempt stands ([`Socket::attempt`]).
pub(crate) enum Attempt {
    /// No answer yet.
    Waiting,
    /// Connected: the socket is ready for the handshake.
    Connected,
    /// Refused, unreachable, or timed out by TCP: the socket is closed.
    Failed,
}

/// The most parts one [`Socket::send_all`] takes.
pub(crate) const MAX_PARTS: usize = 4;

impl Socket {
    fn new(family: i32) -> Result<Socket> {
        let mut raw: *mut bindings::socket = ptr::null_mut();
        // SAFETY: `init_net` lives forever; `raw` is a valid out pointer.
        check(unsafe {
            bindings::sock_create_kern(
                &raw mut bindings::init_net,
                family,
                bindings::sock_type_SOCK_STREAM as i32,
                bindings::IPPROTO_TCP as i32,
                &mut raw,
            )
        })?;
        let s = Socket { raw };
        // SAFETY: the socket was just created, so `sk` is valid.
        unsafe {
            raw::tcp_sock_set_nodelay((*s.raw).sk);
            raw::sock_set_keepalive((*s.raw).sk);
        }
        Ok(s)
    }

    /// Starts connecting to `addr` and returns at once: the SYN is on its way (or
    /// waits for the neighbour's address). [`Socket::attempt`] says how it goes.
    /// An error here (no route, ...) ends the attempt before anything was sent.
    ///
    /// Context: process context (allocates).
    pub(crate) fn connect_start(addr: &SockAddr, user_timeout_ms: u32) -> Result<Socket> {
        let s = Socket::new(family(addr))?;
        s.set_user_timeout(user_timeout_ms);
        let (mut sa, len) = sockaddr(addr);
        // SAFETY: `sa` holds a valid socket address of length `len`; O_NONBLOCK
        // applies to this call only (the socket has no file).
        let r = unsafe {
            bindings::kernel_connect(
                s.raw,
                (&raw mut sa).cast(),
                len,
                bindings::O_NONBLOCK as i32,
            )
        };
        if r == 0 || r == -(bindings::EINPROGRESS as i32) {
            Ok(s)
        } else {
            Err(Error::from_errno(r))
        }
    }

    /// Where an attempt from [`Socket::connect_start`] stands, without waiting.
    pub(crate) fn attempt(&self) -> Attempt {
        // SAFETY: a live socket (the invariant). TCP's `poll` only reads the
        // socket's state; with no file and no poll table it registers no waiter.
        let mask = unsafe {
            match (*(*self.raw).ops).poll {
                Some(poll) => poll(ptr::null_mut(), self.raw, ptr::null_mut()),
                None => 0,
            }
        };
        // A refused or unreachable attempt is closed with an error (HUP, ERR).
        if mask & (EPOLLERR | EPOLLHUP) != 0 {
            Attempt::Failed
        } else if self.peer().is_some() {
            Attempt::Connected
        } else {
            Attempt::Waiting
        }
    }

    /// A listening socket bound to `addr`.
    pub(crate) fn listen(addr: &SockAddr) -> Result<Socket> {
        let s = Socket::new(family(addr))?;
        // SAFETY: `sk` of a live socket.
        unsafe { raw::sock_set_reuseaddr((*s.raw).sk) };
        let (mut sa, len) = sockaddr(addr);
        // SAFETY: `sa` holds a valid socket address of length `len`.
        check(unsafe { bindings::kernel_bind(s.raw, (&raw mut sa).cast(), len) })?;
        // SAFETY: a bound socket.
        check(unsafe { bindings::kernel_listen(s.raw, 4) })?;
        Ok(s)
    }

    /// A connection waiting to be accepted, if there is one; does not wait. Ends
    /// with an error once the socket is shut down.
    pub(crate) fn try_accept(&self) -> Result<Option<Socket>> {
        let mut raw: *mut bindings::socket = ptr::null_mut();
        // SAFETY: a listening socket and a valid out pointer; O_NONBLOCK applies to
        // this call only.
        let r = unsafe { bindings::kernel_accept(self.raw, &mut raw, bindings::O_NONBLOCK as i32) };
        if r == -(bindings::EAGAIN as i32) {
            return Ok(None);
        }
        check(r)?;
        let s = Socket { raw };
        // SAFETY: the accepted socket is live.
        unsafe { raw::tcp_sock_set_nodelay((*s.raw).sk) };
        Ok(Some(s))
    }

    /// Bounds how long sent data may stay unacknowledged by the peer's TCP before the
    /// connection is dropped (also bounds `connect`).
    pub(crate) fn set_user_timeout(&self, ms: u32) {
        // SAFETY: `sk` of a live socket.
        unsafe { raw::tcp_sock_set_user_timeout((*self.raw).sk, ms as i32) };
    }

    /// The peer's address, if connected.
    pub(crate) fn peer(&self) -> Option<SockAddr> {
        let mut st = bindings::__kernel_sockaddr_storage::default();
        // SAFETY: `st` is a `sockaddr_storage`, as `getname` expects.
        let r = unsafe { bindings::kernel_getpeername(self.raw, (&raw mut st).cast()) };
        if r < 0 {
            return None;
        }
        let p = (&raw const st).cast::<u8>();
        // SAFETY: every socket address starts with its family.
        let fam = unsafe { p.cast::<u16>().read() };
        if fam == bindings::AF_INET6 as u16 {
            // SAFETY: the family says the storage holds a `sockaddr_in6`.
            let sin6 = unsafe { p.cast::<bindings::sockaddr_in6>().read() };
            // SAFETY: every bit pattern is a valid byte array.
            let ip = unsafe { sin6.sin6_addr.in6_u.u6_addr8 };
            Some(SockAddr {
                ip: Ip::V6(ip),
                port: u16::from_be(sin6.sin6_port),
            })
        } else {
            // SAFETY: the family says the storage holds a `sockaddr_in`.
            let sin = unsafe { p.cast::<bindings::sockaddr_in>().read() };
            Some(SockAddr {
                ip: Ip::V4(sin.sin_addr.s_addr.to_ne_bytes()),
                port: u16::from_be(sin.sin_port),
            })
        }
    }

    /// Sends every byte of `parts` (at most [`MAX_PARTS`] of them), in order, in as
    /// few calls as the socket takes: a frame's header and payload leave in one
    /// `sendmsg`, so with `TCP_NODELAY` a small frame is one segment, not a header
    /// segment and then its payload (each segment costs the guest a notification
    /// under QEMU).
    ///
    /// `more`: another send follows at once (`MSG_MORE`): TCP may hold a partial
    /// segment for it, so small frames queued together share segments.
    pub(crate) fn send_all(&self, parts: &[&[u8]], more: bool) -> Result {
        if parts.len() > MAX_PARTS {
            return Err(EINVAL);
        }
        // The next byte to send: `parts[i][off]`.
        let (mut i, mut off) = (0usize, 0usize);
        loop {
            while i < parts.len() && off >= parts[i].len() {
                (i, off) = (i + 1, 0);
            }
            if i == parts.len() {
                return Ok(());
            }
            let empty = bindings::kvec {
                iov_base: ptr::null_mut(),
                iov_len: 0,
            };
            let mut iov = [empty; MAX_PARTS];
            let (mut nr, mut total) = (0usize, 0usize);
            for (k, part) in parts[i..].iter().enumerate() {
                let rest = if k == 0 { &part[off..] } else { part };
                if rest.is_empty() {
                    continue;
                }
                iov[nr] = bindings::kvec {
                    iov_base: rest.as_ptr().cast_mut().cast(),
                    iov_len: rest.len(),
                };
                nr += 1;
                total += rest.len();
            }
            // SAFETY: an all-zero `msghdr` is a valid empty message header.
            let mut msg: bindings::msghdr = unsafe { core::mem::zeroed() };
            msg.msg_flags = bindings::MSG_NOSIGNAL | if more { bindings::MSG_MORE } else { 0 };
            // SAFETY: `iov[..nr]` describe parts of `parts`, which outlive the call;
            // the kernel only reads from them.
            let n = check(unsafe {
                bindings::kernel_sendmsg(self.raw, &mut msg, iov.as_mut_ptr(), nr, total)
            })?;
            if n == 0 {
                return Err(EPIPE);
            }
            // Skip the `n` bytes sent (empty parts on the way are skipped above).
            let mut n = n as usize;
            while n > 0 && i < parts.len() {
                let left = parts[i].len() - off;
                if n >= left {
                    n -= left;
                    (i, off) = (i + 1, 0);
                } else {
                    off += n;
                    n = 0;
                }
            }
        }
    }

    /// Sends `hdr` (copied, as [`Socket::send_all`]), then the pages of `buf` without
    /// copying them (`MSG_SPLICE_PAGES`: TCP takes a reference on each page and
    /// reads it when it builds segments; see `pagebuf.rs` for why that is safe).
    /// `more` as for [`Socket::send_all`]. Calling context: process context, the
    /// link's send lock held (frames must not interleave).
    pub(crate) fn send_pages(&self, hdr: &[u8], buf: &PageBuf, more: bool) -> Result {
        const BATCH: usize = 16;
        self.send_all(&[hdr], true)?;
        let mut segs = buf.segments().peekable();
        // The unsent tail of the current page: `skip` bytes of it are sent.
        let mut skip = 0usize;
        while segs.peek().is_some() {
            let empty = bindings::bio_vec {
                bv_page: ptr::null_mut(),
                bv_len: 0,
                bv_offset: 0,
            };
            let mut bv = [empty; BATCH];
            let (mut nr, mut total) = (0usize, 0usize);
            for (k, (page, n)) in segs.clone().take(BATCH).enumerate() {
                let from = if k == 0 { skip } else { 0 };
                bv[nr] = bindings::bio_vec {
                    bv_page: page,
                    bv_len: (n - from) as u32,
                    bv_offset: from as u32,
                };
                nr += 1;
                total += n - from;
            }
            let last = segs.clone().nth(nr).is_none();
            // SAFETY: an all-zero `msghdr` is a valid empty message header.
            let mut msg: bindings::msghdr = unsafe { core::mem::zeroed() };
            msg.msg_flags = bindings::MSG_SPLICE_PAGES
                | bindings::MSG_NOSIGNAL
                | if more || !last { bindings::MSG_MORE } else { 0 };
            // SAFETY: `bv[..nr]` describes `total` bytes of pages `buf` holds a
            // reference on (alive for the call); TCP takes its own references on the
            // pages it keeps.
            let n = check(unsafe {
                bindings::iov_iter_bvec(
                    &mut msg.msg_iter,
                    bindings::ITER_SOURCE,
                    bv.as_ptr(),
                    nr,
                    total,
                );
                bindings::sock_sendmsg(self.raw, &mut msg)
            })?;
            if n == 0 {
                return Err(EPIPE);
            }
            // Skip the `n` bytes sent.
            let mut n = n as usize;
            while n > 0 {
                let Some(&(_, plen)) = segs.peek() else {
                    return Err(EINVAL);
                };
                let left = plen - skip;
                if n >= left {
                    n -= left;
                    skip = 0;
                    segs.next();
                } else {
                    skip += n;
                    n = 0;
                }
            }
        }
        Ok(())
    }

    /// Fills `buf` completely. A closed connection is `ECONNRESET`.
    pub(crate) fn recv_exact(&self, buf: &mut [u8]) -> Result {
        let mut off = 0;
        while off < buf.len() {
            let rest = &mut buf[off..];
            let mut iov = bindings::kvec {
                iov_base: rest.as_mut_ptr().cast(),
                iov_len: rest.len(),
            };
            // SAFETY: an all-zero `msghdr` is a valid empty message header.
            let mut msg: bindings::msghdr = unsafe { core::mem::zeroed() };
            // SAFETY: `iov` describes `rest`, writable and alive for the call.
            let n = check(unsafe {
                bindings::kernel_recvmsg(
                    self.raw,
                    &mut msg,
                    &mut iov,
                    1,
                    rest.len(),
                    bindings::MSG_WAITALL as i32,
                )
            })?;
            if n == 0 {
                return Err(ECONNRESET);
            }
            off += n as usize;
        }
        Ok(())
    }

    /// Ends the connection both ways; blocked calls on it return an error.
    pub(crate) fn shutdown(&self) {
        // SAFETY: a live socket; shutting down twice is harmless.
        unsafe { bindings::kernel_sock_shutdown(self.raw, bindings::sock_shutdown_cmd_SHUT_RDWR) };
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: we own the socket (type invariant) and nobody uses it any more.
        unsafe { bindings::sock_release(self.raw) };
    }
}
