// SPDX-License-Identifier: GPL-2.0

//! The secondary: accept the primary, apply its writes strictly in sequence order,
//! acknowledge them.
//!
//! Every write is acknowledged once applied. `ACK_DURABLE` is sent only after a flush
//! that covers everything applied so far: a write with PREFLUSH or FUA (FUA is applied
//! as PREFLUSH + FUA, so the flush covers the writes before it), or an empty flush
//! (the primary's barrier). Applying one write at a time, each completed before the
//! next starts, keeps the disk a prefix of the primary's writes.
//!
//! Markers (`WRITE_MARK`) are acted on in the same order: everything before one is
//! applied and flushed, nothing after it applied, when it takes its snapshot
//! (`snapshot.rs`). With a snapshot store, every write first lets the store copy
//! the tracks a snapshot still reads from the data device; a copy or resync is
//! preceded by a snapshot of the consistent image it is about to overwrite out
//! of order (`pre-resync`), deleted once the resync completes.
//!
//! What if the disk fails a write or flush here: the device stops claiming a
//! consistent image (sticky until a resync completes), the failure goes to the
//! primary in the ACK, which marks the tracks, and the connection is closed: nothing
//! later is applied. What if the machine loses power here: whatever the primary did
//! not see acknowledged as durable it still holds marked, and resyncs.

use crate::apply::Applier;
use crate::blk::IoBuf;
use crate::engine::{log_link_end, Pair};
use crate::kthread;
use crate::link::{now_real_ns, Link, LinkError, D};
use crate::net::Socket;
use crate::rcore::addr::SockAddr;
use crate::rcore::format;
use crate::rcore::gens::{self, Decision};
use crate::rcore::geometry;
use crate::rcore::proto::{self, Header, Kind};
use crate::rcore::status::{Conn, State};
use crate::route::CarrierWatch;
use kernel::prelude::*;
use kernel::sync::atomic::Relaxed;
use kernel::sync::Arc;

/// How often a listening secondary looks for a connection (and at the carrier).
const ACCEPT_POLL_MS: u32 = 20;

/// Listens and serves one primary at a time, until the pair stops.
///
/// Context: the pair's main thread on a secondary.
pub(crate) fn secondary_main(p: &Arc<Pair>) {
    let Some(local) = p.cfg.local else { return };
    let mut buf = match crate::blk::iobuf(proto::MAX_PAYLOAD as usize) {
        Ok(b) => b,
        Err(_) => return,
    };
    let mut quiet = false;
    // The last primary served, and the carrier on the way to it (see `route`).
    let (mut primary, mut carrier) = (None, CarrierWatch::new());
    while !p.stopping() {
        let lsock = match Socket::listen(&local)
            .and_then(|s| Arc::new(s, GFP_KERNEL).map_err(Into::into))
        {
            Ok(s) => s,
            Err(e) => {
                if !quiet {
                    pr_warn!(
                        "{}: cannot listen on {}: errno {}; retrying\n",
                        p.name(),
                        D(&local),
                        -e.to_errno()
                    );
                    quiet = true;
                }
                kthread::sleep_ms(1000);
                continue;
            }
        };
        quiet = false;
        *p.listener.lock() = Some(lsock.clone());
        if p.stopping() {
            break;
        }
        while !p.stopping() {
            let sock = match lsock.try_accept() {
                Ok(Some(s)) => s,
                Ok(None) => {
                    // Nobody yet: while waiting, ask for the last primary's address
                    // as soon as a lost carrier returns, so its next SYN is answered
                    // at once rather than after a pending neighbour probe.
                    if let Some(a) = &primary {
                        carrier.check(a);
                    }
                    kthread::nap_ms(ACCEPT_POLL_MS);
                    continue;
                }
                Err(_) => break,
            };
            let Ok(link) = Link::new(sock) else { continue };
            p.set_link(Some(link.clone()), Conn::Connecting);
            let me = p.identity();
            match link.handshake(&me, false, &mut buf) {
                Ok(hello) => {
                    let decision = gens::decide(&hello.gens, &me.gens);
                    p.set_decision(decision, &me.gens, &hello.gens);
                    if !decision.proceeds() {
                        // Nothing is applied: both images stay as they are.
                        link.kill();
                        p.set_link(None, Conn::Connecting);
                        p.publish(None);
                        continue;
                    }
                    primary = link.peer;
                    p.sh.lock().peer_mode = Some(hello.mode);
                    p.peer_gen.store(hello.gens.current, Relaxed);
                    pr_info!(
                        "{}: primary {} connected\n",
                        p.name(),
                        D(&link.peer.unwrap_or(local))
                    );
                    p.set_link(Some(link.clone()), Conn::Connected);
                    p.publish(None);
                    let r = if decision == Decision::Bitmap {
                        send_bitmap(p, &link, &mut buf)
                    } else {
                        Ok(())
                    };
                    if let Err(e) = r.and_then(|()| serve(p, &link)) {
                        if !p.stopping() {
                            log_link_end(p, "replication link down", &e);
                        }
                    }
                }
                Err(e) => {
                    let who = link.peer.unwrap_or(SockAddr::NONE);
                    log_link_end(p, "refused connection", &e);
                    pr_warn!("{}: (peer {})\n", p.name(), D(&who));
                }
            }
            link.kill();
            p.set_link(None, Conn::Connecting);
            p.publish(None);
        }
        p.listener.lock().take();
    }
}

/// Sends this side's own bitmap to the primary (only words with set bits, a 4 KiB
/// block at a time), then an empty BITMAP. It is non-empty on a demoted old
/// primary: what it wrote and its peer never confirmed. The bits stay until this
/// side adopts the primary's generation (COPY_DONE).
fn send_bitmap(p: &Pair, link: &Link, buf: &mut IoBuf) -> Result<(), LinkError> {
    let bm = p.bitmap();
    let words = bm.len().div_ceil(64);
    let per = format::WORDS_PER_BLOCK as u64;
    let mut w = 0u64;
    while w < words {
        let n = per.min(words - w);
        let mut any = false;
        for i in 0..n {
            let v = bm.word_at(w + i);
            any |= v != 0;
            let o = (i * 8) as usize;
            buf[o..o + 8].copy_from_slice(&v.to_le_bytes());
        }
        if any {
            link.send(&Header::bitmap(w * 64, n as u32), &buf[..(n * 8) as usize])?;
        }
        w += n;
    }
    link.send(&Header::bitmap(0, 0), &[])
}

/// Records that this side's image is not a usable prefix (FUA superblock write,
/// done before anything later is applied).
fn mark_inconsistent(p: &Pair) {
    if p.md.sb().flags & format::SB_CONSISTENT != 0 {
        let _ = p.md.update_sb(|sb| sb.flags &= !format::SB_CONSISTENT);
        p.event();
    }
}

/// Applies frames from the primary, acknowledging each write: plain writes in
/// parallel as their dependencies allow, everything else in order (`apply.rs`).
fn serve(p: &Pair, link: &Arc<Link>) -> Result<(), LinkError> {
    let ap = Applier::new(p.name(), link).map_err(LinkError::Io)?;
    let mut last_seq = 0u64;
    while !p.stopping() {
        let mut f = ap.recv()?;
        let h = f.h;
        if h.kind == Kind::Write {
            if h.flags & proto::WRITE_MARK == 0 && !h.write_fits(p.cfg.size_bytes) {
                ap.release(f);
                return Err(LinkError::Proto(proto::ProtoError::SectorOverflow));
            }
            // Writes are received in sequence order: one out of order is a protocol
            // error, never applied.
            if h.seq <= last_seq {
                ap.release(f);
                return Err(LinkError::Proto(proto::ProtoError::BadSeq));
            }
            last_seq = h.seq;
            let alone = proto::WRITE_MARK
                | proto::WRITE_PREFLUSH
                | proto::WRITE_FUA
                | proto::WRITE_DISCARD
                | proto::WRITE_ZEROES;
            if h.flags & alone == 0 && h.nr_sectors > 0 {
                if let Err(e) = ap.submit(p, f) {
                    return Err(failed_async(p, link, e));
                }
                continue;
            }
            // Alone and in order: everything before it applied first.
            if let Err(e) = ap.drain().and_then(|()| ap.admit_sync(&h)) {
                ap.release(f);
                return Err(failed_async(p, link, e));
            }
            let r = serve_alone(p, link, &h, ap.buf(&mut f));
            ap.release(f);
            r?;
            ap.applied(h.seq);
            continue;
        }
        ap.release(f);
        if h.kind != Kind::Ping {
            // A state change, COPY_DONE or BYE concerns everything before it.
            ap.drain().map_err(|e| failed_async(p, link, e))?;
        }
        match h.kind {
            Kind::Ping => link.send(&Header::pong(h.a), &[])?,
            Kind::State => {
                let st = crate::rcore::state::Pair::decode(h.a).map(|s| s.state);
                if matches!(st, Some(State::Copying | State::Resyncing)) {
                    // Tracks now arrive out of order: not a usable image until done.
                    // Keep the consistent one first, if there is a store.
                    snapshot_before_resync(p);
                    p.sh.lock().peer_state = st;
                    mark_inconsistent(p);
                } else {
                    p.sh.lock().peer_state = st;
                }
                p.publish(None);
            }
            Kind::CopyDone => {
                // Consistent only once everything copied is on stable media.
                p.data.flush().map_err(LinkError::Io)?;
                p.sh.lock().peer_state = Some(State::Duplex);
                p.apply_failed.store(0, Relaxed);
                let gen = p.peer_gen.load(Relaxed);
                match p.md.adopt(gen) {
                    // Confirmed only once on disk: the primary then records it.
                    Ok(()) => {
                        link.send(&Header::copy_done(0), &[])?;
                        if let Some(st) = &p.store {
                            // The image is consistent again: the fallback is done.
                            st.delete_before_resync(p.name());
                        }
                    }
                    Err(e) => pr_err!(
                        "{}: recording generation {:016x} failed: errno {}\n",
                        p.name(),
                        gen,
                        -e.to_errno()
                    ),
                }
                p.publish(None);
            }
            Kind::Bye => return Ok(()),
            k => return Err(LinkError::Unexpected(k)),
        }
    }
    Ok(())
}

/// A write handled alone, everything before it applied: a marker, a flush, a
/// PREFLUSH or FUA write (acknowledged as durable), a discard or zeroes.
fn serve_alone(p: &Pair, link: &Link, h: &Header, buf: &mut IoBuf) -> Result<(), LinkError> {
    if h.flags & proto::WRITE_MARK != 0 {
        let mark = proto::Mark::decode(&buf[..h.len as usize]).map_err(LinkError::Proto)?;
        // Everything before the marker is applied: make it durable (the snapshot
        // names it, and this ACK is a durable one).
        if let Err(e) = p.data.flush() {
            apply_failed(p, h.seq, h.a, &e);
            link.send(&Header::ack(h.seq, 0, -e.to_errno() as u64), &[])?;
            return Err(LinkError::Io(e));
        }
        let result = take_mark(p, h, &mark);
        return link.send(&Header::ack_mark(h.seq, result), &[]);
    }
    let durable = h.flags & (proto::WRITE_PREFLUSH | proto::WRITE_FUA) != 0 || h.nr_sectors == 0;
    if let Err(e) = apply(p, h, buf) {
        apply_failed(p, h.seq, h.a, &e);
        link.send(&Header::ack(h.seq, 0, -e.to_errno() as u64), &[])?;
        return Err(LinkError::Io(e));
    }
    let flags = if durable { proto::ACK_DURABLE } else { 0 };
    link.send(&Header::ack(h.seq, flags, 0), &[])
}

/// A write applied in parallel failed (or one did before this frame): the apply
/// stops, the primary hears the errno for that write, and the connection ends.
fn failed_async(p: &Pair, link: &Link, (seq, errno): (u64, i32)) -> LinkError {
    let e = Error::from_errno(errno);
    apply_failed(p, seq, 0, &e);
    let _ = link.send(&Header::ack(seq, 0, -errno as u64), &[]);
    LinkError::Io(e)
}

/// The apply failed: logged, sticky, and the image no longer claims consistency.
fn apply_failed(p: &Pair, seq: u64, sector: u64, e: &Error) {
    pr_err!(
        "{}: applying write {} (sector {}) failed: errno {}; stopping the apply\n",
        p.name(),
        seq,
        sector,
        -e.to_errno()
    );
    p.apply_failed.store(1, Relaxed);
    mark_inconsistent(p);
}

/// Whether this side's image is a prefix of the primary's writes (so a snapshot
/// of it is one the primary's disk held).
fn image_consistent(p: &Pair) -> bool {
    p.md.sb().flags & format::SB_CONSISTENT != 0
        && p.apply_failed.load(Relaxed) == 0
        && !matches!(
            p.sh.lock().peer_state,
            Some(State::Copying | State::Resyncing)
        )
}

/// Acts on a marker, everything before it applied and flushed.
fn take_mark(p: &Pair, h: &Header, mark: &proto::Mark) -> proto::MarkResult {
    let refused = |e: Error| proto::MarkResult::Refused((-e.to_errno()) as u16);
    let point = mark.kind == proto::MARK_POINT;
    if mark.kind == proto::MARK_SUM {
        // The primary's image sum at snapshot `id`'s marker (`snapshot --verify`).
        let Some(st) = &p.store else {
            return refused(ENODEV);
        };
        return match st.set_sum(mark.id, &mark.name) {
            Ok(()) => {
                pr_info!(
                    "{}: snapshot {}: the primary's image sum recorded\n",
                    p.name(),
                    mark.id
                );
                p.event();
                proto::MarkResult::Taken(mark.id)
            }
            Err(e) => refused(e),
        };
    }
    let Some(st) = &p.store else {
        pr_warn!(
            "{}: snapshot or point requested, but no snap_store is configured\n",
            p.name()
        );
        return refused(ENODEV);
    };
    if !image_consistent(p) {
        if !point {
            pr_warn!(
                "{}: snapshot refused: this image is not consistent\n",
                p.name()
            );
        }
        return refused(EAGAIN);
    }
    // A consistency point is a snapshot too: the image the secondary returns to
    // from now on.
    let (what, name, flags) = if point {
        ("point", &b"point"[..], crate::rcore::snapstore::SNAP_POINT)
    } else {
        ("snapshot", mark.name(), 0)
    };
    match st.open(name, h.seq, p.peer_gen.load(Relaxed), flags) {
        Ok(epoch) => {
            pr_info!(
                "{}: {} {} taken at stream position {}\n",
                p.name(),
                what,
                epoch,
                h.seq
            );
            if point {
                p.set_point(u64::from(epoch), now_real_ns());
                st.delete_points_before(epoch, p.name());
            }
            p.event();
            proto::MarkResult::Taken(epoch)
        }
        Err(e) => {
            pr_warn!(
                "{}: {} not taken: errno {}\n",
                p.name(),
                what,
                -e.to_errno()
            );
            refused(e)
        }
    }
}

/// A copy or resync is about to write tracks out of order: with a store, and an
/// image worth keeping (consistent, and once in sync with a primary), take a
/// snapshot of it first, so that a disaster during the resync still leaves one
/// to promote (`snapshot-rollback`).
fn snapshot_before_resync(p: &Pair) {
    let Some(st) = &p.store else { return };
    if p.md.sb().flags & format::SB_SYNCED == 0 || !image_consistent(p) {
        return;
    }
    if let Err(e) = p.data.flush() {
        pr_warn!(
            "{}: no snapshot before the resync: flush failed: errno {}\n",
            p.name(),
            -e.to_errno()
        );
        return;
    }
    let gen = p.md.sb().gen_current;
    match st.open(
        b"pre-resync",
        0,
        gen,
        crate::rcore::snapstore::SNAP_BEFORE_RESYNC,
    ) {
        Ok(epoch) => pr_info!(
            "{}: snapshot {} (pre-resync) keeps the consistent image during the resync\n",
            p.name(),
            epoch
        ),
        Err(e) => pr_warn!(
            "{}: no snapshot before the resync: errno {}\n",
            p.name(),
            -e.to_errno()
        ),
    }
}

/// Applies one write frame to the data device. FUA is applied with a preceding
/// flush, so its durable ACK covers every write before it.
fn apply(p: &Pair, h: &Header, buf: &mut IoBuf) -> Result {
    let nr = u64::from(h.nr_sectors);
    if let Some(st) = &p.store {
        let tracks = geometry::track_range(h.a << 9, nr << 9, p.cfg.track_size);
        st.before_write(tracks, p.name());
    }
    let f = h.flags;
    let fua = f & proto::WRITE_FUA != 0;
    let preflush = f & proto::WRITE_PREFLUSH != 0 || fua;
    if f & (proto::WRITE_DISCARD | proto::WRITE_ZEROES) != 0 && preflush {
        p.data.flush()?;
    }
    if f & proto::WRITE_DISCARD != 0 {
        p.data.discard(h.a, nr)?;
    } else if f & proto::WRITE_ZEROES != 0 {
        p.data.zeroout(h.a, nr)?;
    } else if nr == 0 {
        return p.data.flush();
    } else {
        return p.data.write(h.a, buf, h.len as usize, fua, preflush);
    }
    if fua {
        p.data.flush()?;
    }
    Ok(())
}
