// SPDX-License-Identifier: GPL-2.0

//! The metadata thread: makes bitmap bits and activity-log extents durable, then
//! releases the bios that waited for them.
//!
//! Ordering (no window): the thread first takes the whole list of waiting bios, then
//! writes the bitmap and the activity log, then releases exactly the bios it took.
//! A bio deferred after the take set its bits after it too, so it waits for the next
//! round; every bio released had its bits set before the write began.

use crate::dm::{Bio, BioList};
use crate::engine::{
    random_gen, Decision, Pair, PerBio, GEN_BUMP_NEEDED, GEN_BUMP_NONE, GEN_BUMP_WRITING,
    PB_DEFER_ENDIO, PB_DEFER_SUBMIT, PB_HELD,
};
use crate::kthread;
use crate::rcore::status::Role;
use core::sync::atomic::Ordering;
use kernel::prelude::*;
use kernel::sync::atomic::Relaxed;
use kernel::sync::Arc;

/// Context: the pair's metadata thread, from `preresume` to `postsuspend`.
pub(crate) fn md_main(p: &Arc<Pair>) {
    while !p.stopping() {
        if p.deferred.is_empty() {
            kthread::nap_ms(100);
            continue;
        }
        if !md_round(p) {
            // Only held bios that cannot go yet: sleep until a write completes or
            // the peer confirms some (both wake us), or a little while.
            kthread::nap_ms(20);
        }
    }
    // DM completed every bio before `postsuspend` stops us; this is for the bits of
    // the last ones.
    md_round(p);
}

/// One round; returns whether any bio moved on.
fn md_round(p: &Pair) -> bool {
    let batch = BioList::new();
    p.deferred.drain(|bio| batch.push(&bio));
    // Only a write waiting here can need it: the last round at a stop (the link
    // just went down, nothing waits) must not start a generation nobody wrote in.
    if !batch.is_empty() {
        new_generation_if_needed(p);
    }
    // Plan the extents of held bios (only this thread plans). `Busy` leaves a bio
    // held for the next round; `TooLarge` cannot happen: `ship` marks a write that
    // spans more than half the log instead of holding it.
    batch.for_each(|bio| {
        let pb = crate::dm::per_bio::<PerBio>(bio);
        if pb.flags.load(Ordering::Acquire) & PB_HELD != 0 {
            let _ = p.al.plan(p.al.extents(pb.sector(), pb.nr()));
        }
    });
    // The activity log writes the bitmap first; without a transaction, the bitmap
    // alone.
    let r = if p.md.failed() {
        Ok(())
    } else {
        p.al.commit(&p.md).and_then(|()| p.md.persist())
    };
    if let Err(e) = r {
        pr_err!(
            "{}: writing the metadata failed: errno {}; the device no longer holds writes back for it (see the status line)\n",
            p.name(),
            -e.to_errno()
        );
        p.md.set_failed();
        p.event();
    }
    let mut moved = false;
    batch.drain(|bio| {
        let pb = crate::dm::per_bio::<PerBio>(&bio);
        let f = pb.flags.fetch_and(
            !(PB_DEFER_SUBMIT | PB_DEFER_ENDIO | PB_HELD),
            Ordering::AcqRel,
        );
        if f & PB_HELD != 0 {
            p.held.fetch_sub(1, Relaxed);
            moved |= release_held(p, bio);
        } else if f & PB_DEFER_SUBMIT != 0 {
            moved = true;
            bio.submit_remapped();
        } else {
            moved = true;
            bio.endio();
        }
    });
    moved
}

/// A primary that is about to let a write down that the peer will not get starts a
/// new generation first (see `Pair::gen_bump`), so that a peer promoted meanwhile
/// and this side can never both claim the same generation with different data: a
/// later handshake sees split brain instead of silently discarding this write.
///
/// What if the machine dies here: the writes that needed it are still held, so
/// either the superblock has the new generation, or none of them reached the disk.
fn new_generation_if_needed(p: &Pair) {
    if p.cfg.role != Role::Primary
        || p.gen_bump
            .cmpxchg(GEN_BUMP_NEEDED, GEN_BUMP_WRITING, Relaxed)
            .is_err()
    {
        return;
    }
    let old = p.md.sb().gen_current;
    let gen = random_gen();
    if let Err(e) = p.md.update_sb(|sb| sb.new_generation(gen)) {
        // The metadata device failed (sticky, shown in the status line): nothing
        // more can be recorded; the writes go on without.
        pr_err!(
            "{}: recording a new generation failed: errno {}\n",
            p.name(),
            -e.to_errno()
        );
        p.event();
    } else {
        pr_info!(
            "{}: writing without the peer: generation {:016x} follows {:016x}\n",
            p.name(),
            gen,
            old
        );
    }
    // A link loss meanwhile asked for another one: leave it asked.
    let _ = p.gen_bump.cmpxchg(GEN_BUMP_WRITING, GEN_BUMP_NONE, Relaxed);
}

/// Decides again for a bio `map` held back: ship (its extents may be hot now) or
/// mark; it may be held again.
pub(crate) fn release_held(p: &Pair, bio: Bio<'static>) -> bool {
    let pb = crate::dm::per_bio_ptr::<PerBio>(&bio);
    // SAFETY: the bio is held by the target, so its per-bio data (initialised by
    // `map`) is ours; no other thread touches it until the bio is submitted.
    let pb = unsafe { &mut *pb };
    match p.ship(&bio, pb) {
        Decision::Go => {
            bio.submit_remapped();
            true
        }
        // Held again, or waiting for its bits: the next round handles it.
        Decision::Defer => false,
        // `ship` kills nothing (only a secondary's `map` does): pass it down.
        Decision::Kill => {
            bio.submit_remapped();
            true
        }
    }
}
