// SPDX-License-Identifier: GPL-2.0

//! Write ordering for a crash-consistent secondary.
//!
//! Every replicated write gets a sequence number `seq` (1, 2, 3, ... within a
//! session) and a *dependency* `dep < seq` when the primary issues it:
//!
//! - **Happens-before.** Write `m` happens before write `n` when `m`
//!   completed on the primary (the host could see it) before `n` was
//!   issued. A crash image of the primary is any set of writes that is
//!   *downward closed* under happens-before: if it holds `n`, it holds every
//!   `m` that happened before `n`. Concurrent writes may be in it in any
//!   combination.
//! - **Primary** ([`IssueTracker`]): `dep(n)` is the highest seq completed
//!   when `n` is issued. Every write that happened before `n` has a seq
//!   `<= dep(n)`. This is conservative (it also orders `n` after writes that
//!   were merely concurrent with it but had a higher seq than some
//!   predecessor), and therefore safe.
//! - **Secondary** ([`ApplyGate`]): writes arrive in seq order. Write `n` may
//!   be submitted to the disk once every write `<= dep(n)` has been applied
//!   (completed on the secondary's disk). Writes whose dependencies are met
//!   are submitted concurrently, so the secondary keeps the primary's
//!   queue depth.
//!
//! **Invariant.** At any instant the set of writes applied on the secondary
//! is downward closed under happens-before, so it is a crash image the
//! primary could have had. With one write in flight at a time it is exactly a
//! prefix `1..=k` of the stream.
//!
//! **Overlapping writes.** The block layer does not order concurrent writes to
//! the same sectors, so the two disks could end up with different data. The
//! primary must therefore hold a write that overlaps a write still in flight
//! until that one completes, and call [`IssueTracker::issue`] only then: the
//! overlap becomes a happens-before edge and the secondary applies the two in
//! the same order.
//!
//! **Windows.** Both sides track completions in a [`SeqWindow`] of
//! `64 * WORDS` sequence numbers past the completed prefix. When it is full
//! the primary cannot issue (it waits, or falls back to marking the bitmap)
//! and the secondary stops reading the socket until an apply completes.
//!
//! `WORDS` is the number of 64-bit words of the window (stable Rust cannot
//! size an array by `N / 64`); the window covers `64 * WORDS` sequence
//! numbers.

use core::fmt;

/// Why a sequence number was refused. Each is a bug in the caller or a
/// protocol violation by the peer; nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderError {
    /// The seq is past the end of the window.
    OutOfWindow,
    /// The seq was already completed.
    Duplicate,
    /// The seq was never issued (primary) or received (secondary).
    NotIssued,
    /// A received seq is not the one after the previous.
    OutOfOrder,
    /// A dependency is not lower than its seq.
    BadDependency,
}

impl OrderError {
    /// Static text for a log line.
    pub fn message(self) -> &'static str {
        match self {
            OrderError::OutOfWindow => "sequence number outside the window",
            OrderError::Duplicate => "sequence number completed twice",
            OrderError::NotIssued => "sequence number not issued",
            OrderError::OutOfOrder => "sequence number out of order",
            OrderError::BadDependency => "dependency not below its sequence number",
        }
    }
}

impl fmt::Display for OrderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// Completion tracking for the sequence numbers `prefix()+1 ..=
/// prefix()+64*WORDS`: a ring of `64 * WORDS` bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqWindow<const WORDS: usize> {
    /// Every seq `<= base` is complete.
    base: u64,
    /// Highest completed seq (`>= base`).
    max: u64,
    /// Bit `(s - 1) % CAP` is set when `s` in the window is complete.
    bits: [u64; WORDS],
}

impl<const WORDS: usize> Default for SeqWindow<WORDS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const WORDS: usize> SeqWindow<WORDS> {
    /// Sequence numbers the window covers past the prefix.
    pub const CAPACITY: u64 = (WORDS as u64).saturating_mul(64);

    /// A window where nothing is complete: the first seq is 1.
    pub const fn new() -> Self {
        Self::with_base(0)
    }

    /// A window where every seq `<= base` is complete.
    pub const fn with_base(base: u64) -> Self {
        SeqWindow {
            base,
            max: base,
            bits: [0; WORDS],
        }
    }

    /// Highest seq such that it and every lower seq are complete.
    pub fn prefix(&self) -> u64 {
        self.base
    }

    /// Highest completed seq (the prefix if none beyond it).
    pub fn max_completed(&self) -> u64 {
        self.max
    }

    /// Whether `seq` lies in the window (and so can be completed now).
    pub fn has_room(&self, seq: u64) -> bool {
        seq > self.base && seq - self.base <= Self::CAPACITY
    }

    /// Whether `seq` is complete.
    pub fn is_complete(&self, seq: u64) -> bool {
        if seq <= self.base {
            return true;
        }
        if !self.has_room(seq) {
            return false;
        }
        let (w, b) = Self::slot(seq);
        self.bits.get(w).is_some_and(|word| word & (1 << b) != 0)
    }

    /// Word and bit of `seq` (which must be `>= 1`).
    fn slot(seq: u64) -> (usize, u32) {
        let pos = seq.wrapping_sub(1).checked_rem(Self::CAPACITY).unwrap_or(0);
        // `pos < CAPACITY = 64 * WORDS`, so `pos / 64 < WORDS` fits a usize.
        let w = usize::try_from(pos / 64).unwrap_or(usize::MAX);
        (w, (pos % 64) as u32)
    }

    /// Marks `seq` complete and advances the prefix over every complete seq.
    pub fn complete(&mut self, seq: u64) -> Result<(), OrderError> {
        if seq <= self.base {
            return Err(OrderError::Duplicate);
        }
        if !self.has_room(seq) {
            return Err(OrderError::OutOfWindow);
        }
        let (w, b) = Self::slot(seq);
        let word = self.bits.get_mut(w).ok_or(OrderError::OutOfWindow)?;
        if *word & (1 << b) != 0 {
            return Err(OrderError::Duplicate);
        }
        *word |= 1 << b;
        self.max = self.max.max(seq);
        self.advance();
        Ok(())
    }

    /// Moves `base` over the run of complete seqs after it, clearing their
    /// bits, a word at a time.
    fn advance(&mut self) {
        loop {
            let (w, b) = Self::slot(self.base.wrapping_add(1));
            let Some(word) = self.bits.get_mut(w) else {
                return;
            };
            let run = (*word >> b).trailing_ones().min(64 - b);
            if run == 0 {
                return;
            }
            let mask = if run == 64 {
                !0
            } else {
                ((1u64 << run) - 1) << b
            };
            *word &= !mask;
            self.base = self.base.saturating_add(u64::from(run));
        }
    }
}

/// The primary's side: assigns sequence numbers and dependencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueTracker<const WORDS: usize> {
    issued: u64,
    done: SeqWindow<WORDS>,
}

impl<const WORDS: usize> Default for IssueTracker<WORDS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const WORDS: usize> IssueTracker<WORDS> {
    /// A tracker for a new session: the first write gets seq 1.
    pub const fn new() -> Self {
        Self::with_base(0)
    }

    /// A tracker whose next write gets seq `base + 1`.
    pub const fn with_base(base: u64) -> Self {
        IssueTracker {
            issued: base,
            done: SeqWindow::with_base(base),
        }
    }

    /// Assigns the next write its `(seq, dep)`, with `dep` the highest seq
    /// completed so far. `None` when the window is full (a write
    /// `64 * WORDS` seqs back has not completed): wait, or mark instead.
    ///
    /// Call it when the write is submitted, after any overlapping write in
    /// flight has completed (see the module documentation).
    pub fn issue(&mut self) -> Option<(u64, u64)> {
        let seq = self.issued.checked_add(1)?;
        if !self.done.has_room(seq) {
            return None;
        }
        self.issued = seq;
        Some((seq, self.done.max_completed()))
    }

    /// Records that write `seq` completed. Call it no later than the host
    /// can see the completion (earlier only adds dependencies).
    pub fn complete(&mut self, seq: u64) -> Result<(), OrderError> {
        if seq > self.issued {
            return Err(OrderError::NotIssued);
        }
        self.done.complete(seq)
    }

    /// The last seq issued.
    pub fn issued(&self) -> u64 {
        self.issued
    }

    /// Every write `<=` this has completed.
    pub fn prefix(&self) -> u64 {
        self.done.prefix()
    }

    /// The highest seq completed.
    pub fn max_completed(&self) -> u64 {
        self.done.max_completed()
    }

    /// Whether [`IssueTracker::issue`] would succeed.
    pub fn can_issue(&self) -> bool {
        self.issued
            .checked_add(1)
            .is_some_and(|s| self.done.has_room(s))
    }
}

/// The secondary's side: decides when a received write may be submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyGate<const WORDS: usize> {
    received: u64,
    applied: SeqWindow<WORDS>,
}

impl<const WORDS: usize> Default for ApplyGate<WORDS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const WORDS: usize> ApplyGate<WORDS> {
    /// A gate for a new session: the first write is seq 1.
    pub const fn new() -> Self {
        Self::with_base(0)
    }

    /// A gate whose first write is seq `base + 1`.
    pub const fn with_base(base: u64) -> Self {
        ApplyGate {
            received: base,
            applied: SeqWindow::with_base(base),
        }
    }

    /// Whether the next write (seq `received() + 1`) can be accepted now.
    /// When not, stop reading the socket until an apply completes.
    pub fn has_room(&self) -> bool {
        self.received
            .checked_add(1)
            .is_some_and(|s| self.applied.has_room(s))
    }

    /// Accepts the WRITE with `seq` and `dep` from the stream. It must be
    /// the next seq, `dep < seq`, and within the window.
    pub fn receive(&mut self, seq: u64, dep: u64) -> Result<(), OrderError> {
        if Some(seq) != self.received.checked_add(1) {
            return Err(OrderError::OutOfOrder);
        }
        if dep >= seq {
            return Err(OrderError::BadDependency);
        }
        if !self.applied.has_room(seq) {
            return Err(OrderError::OutOfWindow);
        }
        self.received = seq;
        Ok(())
    }

    /// Whether a received write with dependency `dep` may be submitted:
    /// every write `<= dep` has been applied.
    pub fn may_submit(&self, dep: u64) -> bool {
        self.applied.prefix() >= dep
    }

    /// Records that write `seq` is on the secondary's disk.
    pub fn applied(&mut self, seq: u64) -> Result<(), OrderError> {
        if seq > self.received {
            return Err(OrderError::NotIssued);
        }
        self.applied.complete(seq)
    }

    /// The last seq received.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Every write `<=` this is applied: the secondary's image is at least
    /// the primary's image after these writes (the seq to acknowledge as
    /// consistent, e.g. for a takeover).
    pub fn prefix(&self) -> u64 {
        self.applied.prefix()
    }
}
