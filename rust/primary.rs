// SPDX-License-Identifier: GPL-2.0

//! The primary's link threads: connect, ship the transfer log in order, copy dirty
//! tracks, and retire entries as the peer acknowledges them.
//!
//! What if the link drops here: every entry not confirmed durable is marked
//! (`fail_inflight`) and resynced after the reconnect. What if the peer loses its
//! volatile cache: only a durable ACK (sent after a flush covering the entry) retires
//! an entry, so everything it lost is still marked on the primary when the link drops.

use crate::blk::{self, IoBuf};
use crate::connect::{self, Connector};
use crate::engine::{log_link_end, state_word, Pair};
use crate::kthread::{self, Thread};
use crate::link::{now_ns, now_real_ns, Link, LinkError, D};
use crate::rcore::gens::{self, Decision, GenInfo};
use crate::rcore::proto::{self, Header, Kind};
use crate::rcore::status::{Conn, State};
use crate::resync;
use crate::route::{Carrier, CarrierWatch};
use crate::tlog::{MarkOutcome, Shared};
use kernel::prelude::*;
use kernel::sync::atomic::Relaxed;
use kernel::sync::Arc;

/// A barrier follows unconfirmed entries once the oldest is this old.
const BARRIER_AFTER_MS: u64 = 10;

/// After a refused handshake, the primary tries again after this long.
const REFUSED_RETRY_MS: u32 = 3000;

/// While the way to the peer has no carrier, how often the primary looks again.
const CARRIER_POLL_MS: u32 = 20;

/// Connects to the peer, over and over, until the pair stops.
///
/// Context: the pair's main thread on a primary.
pub(crate) fn primary_main(p: &Arc<Pair>) {
    let Some(peer) = p.cfg.peer else { return };
    let mut buf = match blk::iobuf(proto::MAX_PAYLOAD as usize) {
        Ok(b) => b,
        Err(_) => return,
    };
    // The copy buffers: the resync reads into some while it sends another.
    let mut copy_bufs = match resync::alloc_bufs() {
        Ok(b) => b,
        Err(_) => return,
    };
    let mut quiet = false;
    let mut carrier = CarrierWatch::new();
    let mut attempts = Connector::new();
    while !p.stopping() {
        if p.held_off.load(Relaxed) != 0 {
            // Disconnected by the operator: stay away until `connect` (which wakes us).
            attempts.clear();
            let mut sh = p.sh.lock();
            if p.held_off.load(Relaxed) != 0 {
                let _ = p
                    .wake
                    .wait_interruptible_timeout(&mut sh, kthread::jiffies(500));
            }
            continue;
        }
        match carrier.check(&peer) {
            Carrier::Up => {}
            c => {
                // Nothing can leave: a SYN now would only start a neighbour
                // resolution that holds the first packets back after the carrier
                // returns (see `route`). Look again shortly; once it is back,
                // `check` asks for the next hop and the next step connects.
                attempts.clear();
                if c == Carrier::Lost {
                    pr_info!(
                        "{}: no carrier on the way to {}: connecting when it returns\n",
                        p.name(),
                        D(&peer)
                    );
                }
                kthread::nap_ms(CARRIER_POLL_MS);
                continue;
            }
        }
        let sock = match attempts.step(&peer, p.timeout_ms()) {
            Ok(Some(s)) => s,
            Ok(None) => {
                if attempts.take_unanswered() && !quiet {
                    pr_info!("{}: no answer from {}; retrying\n", p.name(), D(&peer));
                    quiet = true;
                }
                continue;
            }
            Err(e) => {
                if !quiet {
                    pr_info!(
                        "{}: cannot connect to {}: errno {}; retrying\n",
                        p.name(),
                        D(&peer),
                        -e.to_errno()
                    );
                    quiet = true;
                }
                kthread::sleep_ms(connect::EVERY_MS);
                continue;
            }
        };
        let Ok(link) = Link::new(sock) else { continue };
        p.set_link(Some(link.clone()), Conn::Connecting);
        // Drops this connection attempt, then waits `ms` before the next.
        let abandon = |ms| {
            link.kill();
            p.set_link(None, Conn::Connecting);
            kthread::sleep_ms(ms);
        };
        let me = p.identity();
        let peer_hello = match link.handshake(&me, true, &mut buf) {
            Ok(h) => h,
            Err(e) => {
                log_link_end(p, "handshake with peer failed", &e);
                abandon(1000);
                continue;
            }
        };
        quiet = false;
        let decision = gens::decide(&me.gens, &peer_hello.gens);
        p.set_decision(decision, &me.gens, &peer_hello.gens);
        if !decision.proceeds() {
            // Refused (split brain, stale primary, unrelated data): nothing is
            // overwritten. Try again later: the operator may resolve it meanwhile.
            let _ = link.send(&Header::bye(), &[]);
            abandon(REFUSED_RETRY_MS);
            continue;
        }
        pr_info!(
            "{}: connected to {} ({} mode)\n",
            p.name(),
            D(&peer),
            D(&p.cfg.mode)
        );
        if let Err(e) = join(p, &link, decision, &me.gens, &peer_hello.gens, &mut buf) {
            log_link_end(p, "joining the peer failed", &e);
            abandon(1000);
            continue;
        }
        p.set_link(Some(link.clone()), Conn::Connected);
        let gen = p.gen_settled();
        if gen != me.gens.current {
            // A write went down unshipped during the handshake and started a new
            // generation after the HELLO carried the old one: the peer must hear
            // the new one, or it would adopt a generation this side has left
            // (and a later handshake would find no common generation).
            pr_info!(
                "{}: generation {:016x} started during the handshake (it sent {:016x}): shaking hands again\n",
                p.name(),
                gen,
                me.gens.current
            );
            abandon(0);
            p.fail_inflight();
            continue;
        }
        p.publish(Some(&*link));
        let rx = Thread::spawn(
            format_args!("rcopy-rx-{}", p.name()),
            p.clone(),
            primary_rx_main,
        );
        let r = match rx {
            Ok(_) => send_loop(p, &link, &mut copy_bufs),
            Err(e) => Err(LinkError::Io(e)),
        };
        link.kill();
        drop(rx);
        if let Err(e) = r {
            if !p.stopping() {
                log_link_end(p, "replication link down", &e);
            }
        }
        p.set_link(None, Conn::Connecting);
        p.fail_inflight();
        p.publish(None);
    }
}

/// After a handshake that proceeds: fetches the peer's own bitmap (decision
/// `Bitmap`) and ORs it into this side's, or sets every bit (`FullCopy`; a copy
/// that a link loss interrupted resumes where it was: copied tracks stay clean),
/// and records the generation the peer holds.
///
/// What if the machine dies here: the peer keeps its bits until it adopts this
/// side's generation at the end of the resync, so they are fetched again; the
/// merged bits are written out before the resync clears any of them.
///
/// Context: the pair's main thread, before the receiver thread starts.
fn join(
    p: &Arc<Pair>,
    link: &Link,
    decision: Decision,
    me: &GenInfo,
    peer: &GenInfo,
    buf: &mut IoBuf,
) -> Result<(), LinkError> {
    // The generation the peer adopts at the end of this connection's copy: the one
    // sent in HELLO (a new one the metadata thread may still be writing names only
    // marked writes, which this connection's resync copies).
    p.peer_gen.store(me.current, Relaxed);
    if decision == Decision::Bitmap {
        let mut words = 0u64;
        let mut added = 0u64;
        loop {
            let h = link.recv(buf)?;
            if h.kind != Kind::Bitmap {
                return Err(LinkError::Unexpected(h.kind));
            }
            if h.len == 0 {
                break;
            }
            let first = h.a / 64;
            for (i, w) in buf[..h.len as usize].chunks_exact(8).enumerate() {
                let v = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
                words += u64::from(v.count_ones());
                added += p.merge_peer_word(first + i as u64, v);
            }
        }
        p.peer_tracks.store(words, Relaxed);
        if words > 0 {
            pr_info!(
                "{}: the peer marked {} tracks it wrote and never had confirmed ({} more to copy here): the resync rolls them back\n",
                p.name(),
                words,
                added
            );
        }
        p.md.persist().map_err(LinkError::Io)?;
        if me.peer != peer.current {
            p.md.update_sb(|sb| sb.peer_is_at(peer.current))
                .map_err(LinkError::Io)?;
        }
        let mut sh = p.sh.lock();
        sh.synced = true;
        // The peer adopts this side's generation (and is consistent) only on
        // COPY_DONE: due even if nothing is dirty.
        sh.need_done = peer.current != me.current || peer.flags & gens::GF_CONSISTENT == 0;
    } else {
        p.peer_tracks.store(0, Relaxed);
        let mut sh = p.sh.lock();
        sh.synced = false;
        sh.need_done = true;
        if !sh.copy_started {
            sh.copy_started = true;
            sh.copy_cursor = 0;
            drop(sh);
            p.mark_all();
        }
    }
    Ok(())
}

/// Ships log entries in order; copies dirty tracks when the log is idle (the next
/// runs' reads in flight while one is sent, `resync.rs`); adds barriers so the peer
/// confirms what it holds as durable.
///
/// Context: the pair's main thread, while connected.
fn send_loop(p: &Arc<Pair>, link: &Link, copy_bufs: &mut [IoBuf]) -> Result<(), LinkError> {
    let ping_ns = u64::from(p.ping_ms()) * 1_000_000;
    let mut last_tx = now_ns();
    // A copy or resync runs (its counters are set).
    let mut copying = false;
    let mut bufs = resync::Bufs::new(copy_bufs);
    // Claimed runs whose reads are in flight: their frames go out, oldest first,
    // before anything queued after their claims. (Dropping them on an error waits
    // for the reads.)
    let mut pending = resync::Queue::new();
    {
        // Copies of an earlier connection are confirmed or marked again; still, the
        // first claim of this one depends on everything before it.
        let mut sh = p.sh.lock();
        sh.copy_floor = sh.next_seq - 1;
    }
    while !p.stopping() && !link.is_dead() {
        if let Some(cur) = pending.pop() {
            // Read ahead: claim the next runs and start their reads before sending
            // this one, while a buffer is free, nothing else is queued (`claim`
            // checks) and the copy may go on.
            while copy_allowed(p, copying) {
                let from = p.sh.lock().copy_cursor;
                match resync::claim_and_start(p, &mut bufs, from)? {
                    Some(next) => pending.push(next),
                    None => break,
                }
            }
            bufs.put(resync::finish(p, link, cur)?);
            last_tx = now_ns();
            continue;
        }
        let mut sh = p.sh.lock();
        // 0. the peer must hear it is no longer a prefix before anything later
        if sh.gap {
            sh.gap = false;
            drop(sh);
            pr_warn!(
                "{}: a write was marked instead of shipped: the peer is not consistent until the resync ends\n",
                p.name()
            );
            link.send(&Header::state(state_word(State::Resyncing)), &[])?;
            p.publish(Some(link));
            continue;
        }
        // 1. the next unsent entry; a barrier first when the log is half full of
        //    unconfirmed entries
        if sh.unsent < sh.tail {
            if (sh.applied - sh.head) * 2 >= sh.ring.len() as u64 {
                sh.push_barrier();
            }
            let pos = sh.unsent;
            sh.unsent += 1;
            // More entries queued: this frame's tail may share a segment with the
            // next (the last one is sent without `MSG_MORE`, so nothing waits).
            let more = sh.unsent < sh.tail;
            let next = sh.slot(pos).and_then(|s| s.as_mut()).map(|e| match e.mark {
                Some(m) => (Header::mark(e.seq, e.dep, e.sector), None, Some(m.encode())),
                None => (
                    Header::write(e.seq, e.dep, e.sector, e.nr_sectors, e.flags),
                    e.data.take(),
                    None,
                ),
            });
            drop(sh);
            if let Some((h, data, mark)) = next {
                // A write's pages go to TCP without a copy; `data` (our reference on
                // them) is dropped after the send, TCP keeps its own until it is done.
                let sent = match (&mark, &data) {
                    (Some(m), _) => link.send_then(&h, &m[..], more).map(|()| m.len()),
                    (None, Some(d)) => link.send_pages(&h, d, more).map(|()| d.len()),
                    (None, None) => link.send_then(&h, &[], more).map(|()| 0),
                }?;
                p.sent_bytes.fetch_add(sent as u64, Relaxed);
                last_tx = now_ns();
            }
            continue;
        }
        // 2. copy a dirty track while the log has room (and `resync_rate` allows:
        //    the sender never sleeps for it, so host writes are never held back)
        let dirty = p.bitmap().count() > 0;
        let throttled_ms = if copying { throttle_ms(p) } else { 0 };
        if dirty && room_to_copy(p, &sh) && throttled_ms == 0 {
            let from = sh.copy_cursor;
            if !copying {
                // The peer is told the copy is done when it ends.
                sh.need_done = true;
            }
            drop(sh);
            if !copying {
                copying = true;
                p.copy_t0.store(now_ns(), Relaxed);
                p.sync_total
                    .store(p.bitmap().count() * u64::from(p.cfg.track_size), Relaxed);
                p.sync_done.store(0, Relaxed);
                p.publish(Some(link));
            }
            if let Some(c) = resync::claim_and_start(p, &mut bufs, from)? {
                pending.push(c);
            } else {
                // Nothing copyable now (writes in flight on it, or no room left by
                // unconfirmed entries): ask the peer to confirm, then wait a little.
                let mut sh = p.sh.lock();
                sh.push_barrier();
                if sh.unsent == sh.tail {
                    let _ = p.wake.wait_interruptible_timeout(&mut sh, 1);
                }
            }
            last_tx = now_ns();
            continue;
        }
        // 3. the copy finished once everything sent is confirmed durable
        if !dirty && sh.need_done && sh.head == sh.tail {
            copying = false;
            sh.need_done = false;
            sh.copy_started = false;
            sh.synced = true;
            sh.peer_inconsistent = false;
            drop(sh);
            // The last track may be short of a whole track: report the copy complete.
            p.sync_done.store(p.sync_total.load(Relaxed), Relaxed);
            if let Err(e) = p.md.clear_synced() {
                pr_err!(
                    "{}: updating the metadata failed: errno {}\n",
                    p.name(),
                    -e.to_errno()
                );
            }
            p.sh.lock().await_adopt = true;
            link.send(&Header::copy_done(p.sync_done.load(Relaxed)), &[])?;
            pr_info!("{}: peer is in sync\n", p.name());
            p.publish(Some(link));
            continue;
        }
        // 4. unconfirmed entries: a barrier once the oldest entry the last barrier
        //    does not cover has waited a little (or at once when a copy waits to
        //    finish)
        //    (every entry goes through `Shared::push`, which sets `uncovered_ns`, so
        //    it is set whenever an entry follows the last barrier)
        if sh.head < sh.tail && sh.barrier_seq + 1 != sh.next_seq {
            let age_ms = now_ns().saturating_sub(sh.uncovered_ns) / 1_000_000;
            if age_ms >= BARRIER_AFTER_MS || (sh.need_done && !dirty) {
                sh.push_barrier();
                continue;
            }
            let _ = p
                .wake
                .wait_interruptible_timeout(&mut sh, kthread::jiffies(BARRIER_AFTER_MS as u32));
            continue;
        }
        // 5. idle: heartbeat, then wait for work (or for the rate limit)
        if now_ns().saturating_sub(last_tx) >= ping_ns {
            drop(sh);
            link.send(&Header::ping(now_ns()), &[])?;
            last_tx = now_ns();
            continue;
        }
        let wait_ms = if dirty && throttled_ms > 0 {
            throttled_ms.min(p.ping_ms())
        } else {
            p.ping_ms()
        };
        let _ = p
            .wake
            .wait_interruptible_timeout(&mut sh, kthread::jiffies(wait_ms));
    }
    if link.is_dead() {
        Err(LinkError::Io(ECONNRESET))
    } else {
        Ok(())
    }
}

/// Whether the log has room for a copy run: free slots, and the cache below its
/// size. Context: `sh` held.
fn room_to_copy(p: &Pair, sh: &Shared) -> bool {
    (sh.ring.len() as u64) - (sh.tail - sh.head) >= 16 && sh.cache_bytes < p.cfg.cache_size
}

/// Whether the copy may claim another run now: tracks are dirty, the log has room,
/// and `resync_rate` allows (`copying`: a copy runs, its counters are set).
/// Context: the pair's main thread; takes `sh`.
fn copy_allowed(p: &Pair, copying: bool) -> bool {
    copying && p.bitmap().count() > 0 && throttle_ms(p) == 0 && room_to_copy(p, &p.sh.lock())
}

/// Milliseconds until the copy may go on at `resync_rate` bytes per second (0: now).
fn throttle_ms(p: &Pair) -> u32 {
    let rate = p.resync_rate();
    if rate == 0 {
        return 0;
    }
    let done = p.sync_done.load(Relaxed);
    let due_ns = done.saturating_mul(1_000_000_000) / rate;
    let spent = now_ns().saturating_sub(p.copy_t0.load(Relaxed));
    if due_ns > spent {
        ((due_ns - spent) / 1_000_000).min(1000) as u32 + 1
    } else {
        0
    }
}

/// Receives ACKs and PONGs on the primary.
///
/// Context: its own thread, for one connection.
fn primary_rx_main(p: &Arc<Pair>) {
    let Some(link) = p.sh.lock().link.clone() else {
        return;
    };
    let mut buf = [0u8; 512];
    while !p.stopping() && !link.is_dead() {
        let h = match link.recv(&mut buf) {
            Ok(h) => h,
            Err(e) => {
                if !p.stopping() && !link.is_dead() {
                    log_link_end(p, "receive failed", &e);
                }
                link.kill();
                break;
            }
        };
        match h.kind {
            Kind::Ack if h.a & proto::ACK_MARK != 0 => {
                marked(p, h.seq, h.b);
                ack(p, h.seq, h.a, 0)
            }
            Kind::Ack => ack(p, h.seq, h.a, h.b),
            Kind::CopyDone => adopted(p),
            Kind::Pong | Kind::Ping => {}
            Kind::Bye => link.kill(),
            k => {
                log_link_end(p, "disconnecting", &LinkError::Unexpected(k));
                link.kill();
            }
        }
    }
    p.wake.notify_all();
}

/// The peer confirmed it adopted the generation this side sent in HELLO (it holds
/// this side's data up to the COPY_DONE, flushed): recorded as the peer's.
///
/// What if the machine dies here: before the superblock write, the peer's
/// generation is this side's current one (or, if this side moved on since, an
/// older one of its own, which gets a full copy): never trusted wrongly.
fn adopted(p: &Pair) {
    let gen = p.peer_gen.load(Relaxed);
    if let Err(e) = p.md.update_sb(|sb| sb.peer_caught_up(gen)) {
        pr_err!(
            "{}: recording the peer's generation failed: errno {}\n",
            p.name(),
            -e.to_errno()
        );
    }
    p.sh.lock().await_adopt = false;
    p.wake.notify_all();
}

/// The peer answered the marker `seq` with `result` (an ACK_MARK): recorded for
/// its ticket, for `snapshot-result`.
fn marked(p: &Pair, seq: u64, result: u64) {
    let outcome = match proto::MarkResult::decode(result) {
        Some(proto::MarkResult::Taken(id)) => MarkOutcome::Taken(id),
        Some(proto::MarkResult::Refused(e)) => MarkOutcome::Refused(e),
        None => MarkOutcome::Lost,
    };
    let mut sh = p.sh.lock();
    let (applied, unsent) = (sh.applied, sh.unsent);
    for pos in applied..unsent {
        let Some(e) = sh.slot(pos).and_then(|s| s.as_ref()) else {
            continue;
        };
        if e.seq > seq {
            break;
        }
        if e.seq == seq && e.mark.is_some() {
            let ticket = e.sector;
            let point = e.mark.is_some_and(|m| m.kind == proto::MARK_POINT);
            let sum = e.mark.is_some_and(|m| m.kind == proto::MARK_SUM);
            sh.mark_done(ticket, outcome);
            drop(sh);
            let what = match (point, sum) {
                (true, _) => "point",
                (_, true) => "image sum",
                _ => "snapshot",
            };
            match outcome {
                MarkOutcome::Taken(id) if point => p.set_point(u64::from(id), now_real_ns()),
                MarkOutcome::Taken(id) if sum => pr_info!(
                    "{}: the peer recorded the image sum of snapshot {} (ticket {})\n",
                    p.name(),
                    id,
                    ticket
                ),
                MarkOutcome::Taken(id) => pr_info!(
                    "{}: the peer took snapshot {} (ticket {})\n",
                    p.name(),
                    id,
                    ticket
                ),
                MarkOutcome::Refused(e) => pr_warn!(
                    "{}: the peer refused the {} (ticket {}): errno {}\n",
                    p.name(),
                    what,
                    ticket,
                    e
                ),
                MarkOutcome::Lost | MarkOutcome::Summed(..) | MarkOutcome::SumLost(_) => {}
            }
            p.event();
            return;
        }
    }
}

/// The peer applied every entry up to `seq` (completing sync-mode writes); with
/// `ACK_DURABLE`, they are also durable there, so they leave the log.
///
/// Wakes the sender only when something it may be waiting for changed: entries left
/// the log (room for a copy run, the copy's end, the next barrier), the cache fell
/// below its size (room for a copy run), or a failed write's tracks were marked. A
/// plain ACK in sync mode changes none of these: waking the sender for it would cost
/// a pair of context switches per replicated write for nothing.
fn ack(p: &Pair, seq: u64, flags: u64, errno: u64) {
    let mut wake = errno != 0;
    if errno != 0 {
        pr_err!(
            "{}: peer failed to apply write {}: errno {}; its tracks are marked\n",
            p.name(),
            seq,
            errno
        );
        p.event();
    }
    loop {
        let mut sh = p.sh.lock();
        if sh.applied >= sh.unsent {
            break;
        }
        let pos = sh.applied;
        let Some(e) = sh.slot(pos).and_then(|s| s.as_mut()) else {
            sh.applied += 1;
            continue;
        };
        if e.seq > seq {
            break;
        }
        let len = u64::from(e.len);
        let bio = e.bio.take();
        let failed = (errno != 0 && e.seq == seq).then(|| e.tracks.clone());
        sh.applied += 1;
        let was_full = sh.cache_bytes >= p.cfg.cache_size;
        sh.cache_bytes = sh.cache_bytes.saturating_sub(len);
        wake |= was_full && sh.cache_bytes < p.cfg.cache_size;
        drop(sh);
        p.acked_bytes.fetch_add(len, Relaxed);
        if let Some(t) = failed {
            p.mark_whole(t);
        }
        if let Some(b) = bio {
            p.complete_remote(b);
        }
    }
    if flags & proto::ACK_DURABLE != 0 {
        loop {
            let mut sh = p.sh.lock();
            let limit = sh.applied;
            let Some(e) = sh.pop_head(limit, seq) else {
                break;
            };
            drop(sh);
            wake = true;
            p.al.release(e.al);
        }
        if p.held.load(Relaxed) != 0 {
            p.wake_md();
        }
    }
    if wake {
        p.wake.notify_one();
    }
}
