//! Write ordering: the window against a set model, and simulated primary
//! histories applied on a simulated secondary, checking that the secondary
//! always holds a crash image of the primary.

use std::collections::BTreeSet;

use proptest::prelude::*;
use rcopy_core::order::{ApplyGate, IssueTracker, OrderError, SeqWindow};

/// Small deterministic generator, seeded by proptest.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next() % den < num
    }
}

#[derive(Debug, Clone, Copy)]
struct Write {
    seq: u64,
    dep: u64,
    issued_at: u64,
    completed_at: u64,
}

/// A primary history: writes in seq order (index = seq - 1).
fn primary_history<const W: usize>(rng: &mut Rng, qd: usize, n: usize) -> Vec<Write> {
    let mut t = IssueTracker::<W>::new();
    let mut writes: Vec<Write> = Vec::new();
    let mut in_flight: Vec<u64> = Vec::new();
    let mut now = 0u64;
    while writes.len() < n || !in_flight.is_empty() {
        now += 1;
        let can_issue = writes.len() < n && in_flight.len() < qd && t.can_issue();
        if can_issue && (in_flight.is_empty() || rng.chance(1, 2)) {
            let (seq, dep) = t.issue().expect("can_issue");
            assert_eq!(seq, writes.len() as u64 + 1);
            assert!(dep < seq);
            assert_eq!(dep, t.max_completed());
            writes.push(Write {
                seq,
                dep,
                issued_at: now,
                completed_at: u64::MAX,
            });
            in_flight.push(seq);
        } else {
            assert!(!in_flight.is_empty(), "primary stuck");
            let seq = in_flight.swap_remove(rng.below(in_flight.len()));
            t.complete(seq).unwrap();
            writes[(seq - 1) as usize].completed_at = now;
        }
    }
    assert_eq!(t.prefix(), n as u64);
    writes
}

/// `m` happens before `n`: `m` completed before `n` was issued.
fn hb(m: &Write, n: &Write) -> bool {
    m.completed_at < n.issued_at
}

/// The applied set is downward closed under happens-before.
fn check_crash_image(writes: &[Write], applied: &[bool]) -> Result<(), String> {
    for n in writes.iter().filter(|w| applied[(w.seq - 1) as usize]) {
        for m in writes.iter().take_while(|m| m.seq < n.seq) {
            if hb(m, n) && !applied[(m.seq - 1) as usize] {
                return Err(format!(
                    "write {} applied but {} (which happened before it) is not",
                    n.seq, m.seq
                ));
            }
        }
    }
    Ok(())
}

/// Ships the history in seq order to a simulated secondary that applies
/// with random concurrency under the gate. Returns the number of checks.
fn secondary_apply<const W: usize>(
    rng: &mut Rng,
    writes: &[Write],
    qd1: bool,
) -> Result<usize, String> {
    let mut gate = ApplyGate::<W>::new();
    let mut applied = vec![false; writes.len()];
    let mut waiting: Vec<usize> = Vec::new(); // received, not submitted
    let mut submitted: Vec<usize> = Vec::new(); // on the way to disk
    let mut next = 0usize;
    let mut checks = 0;
    let mut done = 0;
    while done < writes.len() {
        let eligible: Vec<usize> = (0..waiting.len())
            .filter(|&i| gate.may_submit(writes[waiting[i]].dep))
            .collect();
        let mut actions = Vec::new();
        if next < writes.len() && gate.has_room() {
            actions.push(0);
        }
        if !eligible.is_empty() {
            actions.push(1);
        }
        if !submitted.is_empty() {
            actions.push(2);
        }
        if actions.is_empty() {
            return Err(format!("secondary deadlocked at {done} applied"));
        }
        match actions[rng.below(actions.len())] {
            0 => {
                let w = &writes[next];
                gate.receive(w.seq, w.dep).map_err(|e| e.to_string())?;
                waiting.push(next);
                next += 1;
            }
            1 => {
                let i = eligible[rng.below(eligible.len())];
                submitted.push(waiting.swap_remove(i));
            }
            _ => {
                let i = submitted.swap_remove(rng.below(submitted.len()));
                gate.applied(writes[i].seq).map_err(|e| e.to_string())?;
                applied[i] = true;
                done += 1;
            }
        }
        if rng.chance(1, 4) {
            check_crash_image(writes, &applied)?;
            checks += 1;
            if qd1 {
                let k = applied.iter().take_while(|&&a| a).count();
                if applied[k..].iter().any(|&a| a) {
                    return Err("QD1 history: applied set is not a prefix".into());
                }
            }
        }
    }
    check_crash_image(writes, &applied)?;
    if gate.prefix() != writes.len() as u64 {
        return Err("prefix not at the end after applying everything".into());
    }
    Ok(checks)
}

#[test]
fn window_basics() {
    let mut w = SeqWindow::<1>::new();
    assert_eq!(SeqWindow::<1>::CAPACITY, 64);
    assert_eq!(SeqWindow::<4>::CAPACITY, 256);
    assert!(!w.has_room(0));
    assert!(w.has_room(1) && w.has_room(64) && !w.has_room(65));
    assert_eq!(w.complete(65), Err(OrderError::OutOfWindow));
    assert_eq!(w.complete(0), Err(OrderError::Duplicate));
    w.complete(3).unwrap();
    assert_eq!((w.prefix(), w.max_completed()), (0, 3));
    assert_eq!(w.complete(3), Err(OrderError::Duplicate));
    w.complete(1).unwrap();
    assert_eq!(w.prefix(), 1);
    w.complete(2).unwrap();
    assert_eq!(w.prefix(), 3);
    assert!(w.has_room(67) && !w.has_room(68));
    // Wrap around the ring several times.
    for s in 4..=1000 {
        w.complete(s).unwrap();
    }
    assert_eq!((w.prefix(), w.max_completed()), (1000, 1000));
    let z = SeqWindow::<0>::new();
    assert!(!z.has_room(1));
    let mut b = SeqWindow::<2>::with_base(u64::MAX - 10);
    b.complete(u64::MAX).unwrap();
    assert_eq!(b.max_completed(), u64::MAX);
}

#[test]
fn tracker_window_full() {
    let mut t = IssueTracker::<1>::new();
    for s in 1..=64 {
        assert_eq!(t.issue(), Some((s, 0)));
    }
    assert!(!t.can_issue());
    assert_eq!(t.issue(), None);
    t.complete(2).unwrap();
    assert_eq!(t.issue(), None, "seq 1 still holds the window");
    t.complete(1).unwrap();
    assert_eq!(t.issue(), Some((65, 2)));
    assert_eq!(t.complete(66), Err(OrderError::NotIssued));
    assert_eq!(t.complete(1), Err(OrderError::Duplicate));
    assert_eq!(t.issued(), 65);
}

#[test]
fn gate_rules() {
    let mut g = ApplyGate::<1>::new();
    assert_eq!(g.receive(2, 0), Err(OrderError::OutOfOrder));
    assert_eq!(g.receive(1, 1), Err(OrderError::BadDependency));
    g.receive(1, 0).unwrap();
    g.receive(2, 0).unwrap();
    g.receive(3, 2).unwrap();
    assert!(g.may_submit(0));
    assert!(!g.may_submit(2));
    assert_eq!(g.applied(4), Err(OrderError::NotIssued));
    g.applied(2).unwrap();
    assert!(!g.may_submit(2), "write 1 is not applied yet");
    g.applied(1).unwrap();
    assert!(g.may_submit(2));
    assert_eq!(g.prefix(), 2);
    assert_eq!(g.applied(1), Err(OrderError::Duplicate));
    // Window: 64 received, none applied.
    let mut g = ApplyGate::<1>::new();
    for s in 1..=64 {
        g.receive(s, 0).unwrap();
    }
    assert!(!g.has_room());
    assert_eq!(g.receive(65, 0), Err(OrderError::OutOfWindow));
    assert_eq!(g.received(), 64);
}

/// Fully concurrent writes (no completions between issues) carry dep 0 and
/// may all be in flight on the secondary at once.
#[test]
fn concurrent_writes_stay_concurrent() {
    let mut t = IssueTracker::<1>::new();
    let mut g = ApplyGate::<1>::new();
    for _ in 0..32 {
        let (s, d) = t.issue().unwrap();
        assert_eq!(d, 0);
        g.receive(s, d).unwrap();
        assert!(g.may_submit(d));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn window_matches_set_model(base in 0u64..1_000_000, ops in prop::collection::vec(0u64..200, 0..400)) {
        let mut w = SeqWindow::<2>::with_base(base);
        let mut done: BTreeSet<u64> = BTreeSet::new();
        let mut max = base;
        for off in ops {
            let seq = base + off;
            let prefix = base + (1..).take_while(|i| done.contains(&(base + i))).count() as u64;
            prop_assert_eq!(w.prefix(), prefix);
            let want = if seq <= prefix || done.contains(&seq) {
                Err(OrderError::Duplicate)
            } else if seq > prefix + 128 {
                Err(OrderError::OutOfWindow)
            } else {
                Ok(())
            };
            prop_assert_eq!(w.complete(seq), want);
            if want.is_ok() {
                done.insert(seq);
                max = max.max(seq);
            }
            prop_assert_eq!(w.max_completed(), max);
            prop_assert!(w.is_complete(seq) == (seq <= base || done.contains(&seq)));
        }
    }

    #[test]
    fn secondary_is_always_a_crash_image(seed in any::<u64>(), qd in 1usize..=32, n in 1usize..160) {
        let mut rng = Rng(seed | 1);
        let writes = primary_history::<1>(&mut rng, qd, n);
        // Every happens-before predecessor is covered by the dependency.
        for w in &writes {
            for m in writes.iter().filter(|m| hb(m, w)) {
                prop_assert!(m.seq <= w.dep, "{} happened before {} but dep is {}", m.seq, w.seq, w.dep);
            }
        }
        let r = secondary_apply::<1>(&mut rng, &writes, qd == 1);
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
        let r = secondary_apply::<4>(&mut rng, &writes, qd == 1);
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }

    #[test]
    fn qd1_is_an_exact_prefix(seed in any::<u64>(), n in 1usize..100) {
        let mut rng = Rng(seed | 1);
        let writes = primary_history::<2>(&mut rng, 1, n);
        for (i, w) in writes.iter().enumerate() {
            prop_assert_eq!(w.dep, i as u64, "QD1: each write depends on the one before");
        }
        let r = secondary_apply::<2>(&mut rng, &writes, true);
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }

    /// Without the gate a secondary can break the invariant, so the
    /// simulation is able to see a violation.
    #[test]
    fn ungated_apply_can_break_it(seed in any::<u64>()) {
        let mut rng = Rng(seed | 1);
        let writes = primary_history::<1>(&mut rng, 1, 2);
        // Apply write 2 alone: write 1 happened before it.
        prop_assert!(check_crash_image(&writes, &[false, true]).is_err());
    }
}

// ---------------------------------------------------------------------------
// Resync copies among host writes (resync.rs `claim`, engine.rs `ship`).
//
// A model of one connected resync over a few blocks: host writes take a seq and
// `dep = max_completed` (the highest seq completed locally, or claimed by a copy),
// wait while an overlapping write is in flight, and complete locally later; a host
// write may also be marked instead of shipped (it changes the primary's block and
// sets its bit again, as a write that overflows the async cache does). The copier
// walks the bits with a cursor that wraps; it claims a block with no write in flight
// (seq `c`, `dep = max(max_written, floor)`: the host writes completed, and the
// copies claimed before its last wrap), reads it some time later, and its frame goes
// on the wire in seq order. The secondary applies through the real `ApplyGate`,
// writes completing in any order. Both disks must end equal.
//
// The rules under test: a claim raises `max_completed` to the copy's seq, so a write
// issued after it depends on the copy (without it, a write issued between the claim
// and the read, still in flight during the read, can be applied before the copy,
// which then overwrites it with older data); and a wrap raises the floor, so a second
// copy of a block depends on the first (without it, the first, older copy can be
// applied last).

#[derive(Debug, Clone, Copy)]
struct Frame {
    seq: u64,
    dep: u64,
    block: usize,
    /// `None` until the copier has read it (a copy frame only).
    value: Option<u64>,
}

/// Runs one random history; returns the two disks at the end. `rule`: a claim
/// raises `max_completed`; `floor`: a wrap makes later copies depend on earlier ones.
fn resync_history(seed: u64, rule: bool, floor: bool) -> Result<(Vec<u64>, Vec<u64>), String> {
    const BLOCKS: usize = 3;
    let mut rng = Rng(seed | 1);
    let mut a = vec![0u64; BLOCKS];
    let mut b = vec![0u64; BLOCKS];
    for (i, v) in a.iter_mut().enumerate() {
        *v = 1000 + i as u64; // the secondary lacks all of it: every block to copy
    }
    let mut to_copy: Vec<usize> = (0..BLOCKS).collect();
    let mut frames: Vec<Frame> = Vec::new(); // index = seq - 1
    let mut max_completed = 0u64;
    let mut max_written = 0u64;
    let (mut cursor, mut copy_floor) = (0usize, 0u64);
    let mut marks_left = 3;
    let mut next_value = 1u64;
    // primary: host writes in flight (frame index), copies claimed but not read
    let mut local: Vec<usize> = Vec::new();
    let mut unread: Vec<usize> = Vec::new();
    // secondary
    let mut gate = ApplyGate::<1>::new();
    let (mut received, mut waiting, mut disk_q) =
        (0usize, Vec::<usize>::new(), Vec::<usize>::new());
    let mut writes_left = 12;
    loop {
        let busy = |blk: usize, local: &Vec<usize>, frames: &Vec<Frame>| {
            local.iter().any(|&i| frames[i].block == blk)
        };
        let mut acts: Vec<u8> = Vec::new();
        if writes_left > 0 && frames.len() < 60 {
            acts.push(0); // issue a host write
        }
        if !local.is_empty() {
            acts.push(1); // a host write completes locally
        }
        if !to_copy.is_empty() && unread.is_empty() {
            acts.push(2); // the copier claims a block
        }
        if marks_left > 0 {
            acts.push(7); // a host write marked instead of shipped
        }
        if !unread.is_empty() {
            acts.push(3); // the copier reads it
        }
        // the wire: the next frame, once its data exists
        if received < frames.len() && frames[received].value.is_some() && gate.has_room() {
            acts.push(4);
        }
        if waiting.iter().any(|&i| gate.may_submit(frames[i].dep)) {
            acts.push(5);
        }
        if !disk_q.is_empty() {
            acts.push(6);
        }
        if acts.is_empty() {
            break;
        }
        match acts[rng.below(acts.len())] {
            0 => {
                writes_left -= 1;
                let blk = rng.below(BLOCKS);
                if busy(blk, &local, &frames) {
                    continue; // held until the overlapping one completes
                }
                let seq = frames.len() as u64 + 1;
                let v = next_value;
                next_value += 1;
                frames.push(Frame {
                    seq,
                    dep: max_completed.min(seq - 1),
                    block: blk,
                    value: Some(v),
                });
                local.push(frames.len() - 1);
            }
            1 => {
                let i = local.swap_remove(rng.below(local.len()));
                a[frames[i].block] = frames[i].value.unwrap_or(0);
                max_completed = max_completed.max(frames[i].seq);
                max_written = max_written.max(frames[i].seq);
            }
            2 => {
                // the next set bit at or after the cursor, wrapping
                let next = |from: usize| to_copy.iter().copied().filter(|&b| b >= from).min();
                let blk = match next(cursor) {
                    Some(b) => b,
                    None => {
                        if floor {
                            copy_floor = frames.len() as u64;
                        }
                        next(0).unwrap_or(0)
                    }
                };
                cursor = blk + 1;
                if busy(blk, &local, &frames) {
                    continue; // a write in flight there: skipped for now
                }
                to_copy.retain(|&b| b != blk);
                let seq = frames.len() as u64 + 1;
                frames.push(Frame {
                    seq,
                    dep: max_written.max(copy_floor).min(seq - 1),
                    block: blk,
                    value: None,
                });
                if rule {
                    max_completed = max_completed.max(seq);
                }
                unread.push(frames.len() - 1);
            }
            3 => {
                let i = unread.swap_remove(0);
                frames[i].value = Some(a[frames[i].block]);
            }
            4 => {
                let f = frames[received];
                gate.receive(f.seq, f.dep).map_err(|e| e.to_string())?;
                waiting.push(received);
                received += 1;
            }
            5 => {
                let ok: Vec<usize> = (0..waiting.len())
                    .filter(|&k| gate.may_submit(frames[waiting[k]].dep))
                    .collect();
                let k = ok[rng.below(ok.len())];
                disk_q.push(waiting.swap_remove(k));
            }
            6 => {
                let i = disk_q.swap_remove(rng.below(disk_q.len()));
                b[frames[i].block] = frames[i].value.unwrap_or(0);
                gate.applied(frames[i].seq).map_err(|e| e.to_string())?;
            }
            7 => {
                marks_left -= 1;
                let blk = rng.below(BLOCKS);
                a[blk] = next_value;
                next_value += 1;
                if !to_copy.contains(&blk) {
                    to_copy.push(blk);
                }
            }
            _ => unreachable!(),
        }
    }
    if received != frames.len() {
        return Err(format!(
            "secondary stuck: {received} of {} frames received",
            frames.len()
        ));
    }
    Ok((a, b))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// With the rule, every history ends with equal disks.
    #[test]
    fn resync_copies_converge_with_concurrent_writes(seed in any::<u64>()) {
        let (a, b) = resync_history(seed, true, true).map_err(TestCaseError::fail)?;
        prop_assert_eq!(a, b);
    }
}

/// Whether some seed below 20000 gives a history whose disks end different.
fn some_history_diverges(rule: bool, floor: bool) -> bool {
    (1..20_000u64).any(|seed| resync_history(seed, rule, floor).is_ok_and(|(a, b)| a != b))
}

/// Without the rule (the copy's seq not raising `max_completed`) some history
/// leaves the secondary with the copy's older data: the model can see the defect.
#[test]
fn resync_without_the_rule_can_diverge() {
    assert!(
        some_history_diverges(false, true),
        "no history without the rule diverged: the model is too weak"
    );
}

/// Without the floor (a second copy of a block not depending on the first) some
/// history leaves the secondary with the first copy's older data.
#[test]
fn resync_without_the_floor_can_diverge() {
    assert!(
        some_history_diverges(true, false),
        "no history without the floor diverged: the model is too weak"
    );
}
