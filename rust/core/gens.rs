// SPDX-License-Identifier: GPL-2.0

//! Generation ids and the handshake decision: what two sides that meet do with
//! each other's data.
//!
//! A *generation* is a random, non-zero 64-bit id naming a line of a side's data.
//! A side starts a new one whenever it may write what its peer will lack: a
//! primary at every start and at every link loss, a secondary when it is promoted.
//! Each side keeps, in its superblock and in its HELLO:
//!
//! - `current`: its own generation;
//! - `peer`: the generation its peer is known to hold, from which its bitmap
//!   counts (the bitmap marks every track where this side may differ from it);
//! - `peer_prev`: the peer's generation before the one it last confirmed (an
//!   ancestor both share, for split-brain detection);
//! - `history`: its two generations before `current`, newest first.
//!
//! A secondary *adopts* the primary's `current` when a copy or resync from it
//! completes, and confirms it; only then does the primary record it as `peer`
//! (if the confirmation is lost, the secondary holds the primary's `current`,
//! which rule 3 accepts, or, if the primary moved on meanwhile, an older one,
//! which gets a full copy: never a silent trust). [`decide`] is the whole rule set; the table in
//! `Documentation/rcopy.rst` (*Generations*) is its prose form. Both sides run it
//! on the same two HELLOs, so they agree without another round trip.

/// This side never held a peer's data nor completed a copy to one (its metadata
/// is fresh): its image is nobody's.
pub const GF_BLANK: u32 = 1 << 0;
/// This side's image is a usable, crash-consistent one.
pub const GF_CONSISTENT: u32 = 1 << 1;
/// The operator resolved a refusal in favour of the primary's data: set by a
/// primary told `keep-local`, or by a secondary told `discard-local`.
pub const GF_RESOLVE: u32 = 1 << 2;
/// Every flag this version knows.
pub const GF_FLAGS: u32 = GF_BLANK | GF_CONSISTENT | GF_RESOLVE;

/// One side's generation facts, as its HELLO carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GenInfo {
    /// The side's own generation (never 0).
    pub current: u64,
    /// The generation its peer is known to hold (0: none).
    pub peer: u64,
    /// The peer's generation before the one it last confirmed (0: none).
    pub peer_prev: u64,
    /// Earlier own generations, newest first (0: none).
    pub history: [u64; 2],
    /// `GF_*` flags.
    pub flags: u32,
}

impl GenInfo {
    fn has(&self, f: u32) -> bool {
        self.flags & f != 0
    }

    /// Whether `g` (non-zero) is one of the generations this side names.
    fn names(&self, g: u64) -> bool {
        g != 0
            && (g == self.current
                || g == self.peer
                || g == self.peer_prev
                || self.history.contains(&g))
    }
}

/// What a handshake decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Replicate forwards: the secondary sends its own bitmap, the primary ORs it
    /// into its own and copies the union (nothing, if both are empty).
    Bitmap,
    /// Copy every track from the primary.
    FullCopy,
    /// Refuse: both sides wrote since they last shared data.
    SplitBrain,
    /// Refuse: the secondary went on from the primary's data (it was promoted
    /// and wrote): this primary is stale and must not overwrite it.
    StalePrimary,
    /// Refuse: the two sides share no history.
    Unrelated,
}

impl Decision {
    /// Whether the connection goes on.
    pub fn proceeds(self) -> bool {
        matches!(self, Decision::Bitmap | Decision::FullCopy)
    }

    /// The word shown in the status line (`decision=`).
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Bitmap => "bitmap",
            Decision::FullCopy => "full",
            Decision::SplitBrain => "split-brain",
            Decision::StalePrimary => "stale-primary",
            Decision::Unrelated => "unrelated",
        }
    }

    /// Every value, for parsers and tests.
    pub const ALL: &'static [Decision] = &[
        Decision::Bitmap,
        Decision::FullCopy,
        Decision::SplitBrain,
        Decision::StalePrimary,
        Decision::Unrelated,
    ];

    /// Parses a status-line word.
    pub fn parse(s: &str) -> Option<Decision> {
        Decision::ALL.iter().copied().find(|d| d.as_str() == s)
    }

    /// What the operator should do about a refusal (empty if it proceeds).
    pub fn advice(self) -> &'static str {
        match self {
            Decision::Bitmap | Decision::FullCopy => "",
            Decision::SplitBrain => {
                "both sides wrote while apart; keep one side's data with `rcopyctl resolve --keep-local` on the primary or `--discard-local` on the secondary"
            }
            Decision::StalePrimary => {
                "the secondary holds newer data than this primary; demote this side, or run `rcopyctl resolve --discard-local` on the secondary to overwrite it"
            }
            Decision::Unrelated => {
                "the two sides hold unrelated data; run `rcopyctl resolve --discard-local` on the secondary to overwrite it with a full copy"
            }
        }
    }
}

/// The handshake decision for primary `p` meeting secondary `s`. Deterministic
/// and total; the rules apply in this order:
///
/// 1. `s` blank (fresh metadata): full copy.
/// 2. `p` blank while `s` holds data: unrelated (full copy if resolved).
/// 3. `s.current` is `p`'s current generation, or the one `p` knows its peer
///    holds (`peer`): bitmap. `p`'s bitmap covers what `s` lacks,
///    and `s`'s own bitmap (non-empty only on a demoted old primary) covers what
///    it wrote and `p` never confirmed.
/// 4. `s.current` is one of `p`'s older generations: `s` holds a state of `p`'s
///    from before what the bitmap covers (an old image) and wrote nothing since:
///    full copy.
/// 5. `p.current` is a generation `s` went on from: stale primary (resolved: the
///    bitmap if `s` counts its bitmap from `p.current`, else a full copy).
/// 6. The two share an older generation: split brain (resolved: the bitmap if
///    both count their bitmaps from the same generation, else a full copy).
/// 7. Otherwise: unrelated (full copy if resolved).
pub fn decide(p: &GenInfo, s: &GenInfo) -> Decision {
    let resolved = p.has(GF_RESOLVE) || s.has(GF_RESOLVE);
    let refuse = |d: Decision, if_resolved: Decision| if resolved { if_resolved } else { d };
    if s.has(GF_BLANK) {
        return Decision::FullCopy;
    }
    if p.has(GF_BLANK) {
        return refuse(Decision::Unrelated, Decision::FullCopy);
    }
    let c = s.current;
    if c != 0 && (c == p.current || c == p.peer) {
        return Decision::Bitmap;
    }
    if c != 0 && p.history.contains(&c) {
        return Decision::FullCopy;
    }
    if p.current != 0
        && (p.current == s.peer || p.current == s.peer_prev || s.history.contains(&p.current))
    {
        let via_bitmap = s.peer == p.current;
        return refuse(
            Decision::StalePrimary,
            if via_bitmap {
                Decision::Bitmap
            } else {
                Decision::FullCopy
            },
        );
    }
    let shared = [p.peer, p.peer_prev, p.history[0], p.history[1]]
        .into_iter()
        .any(|g| s.names(g));
    if shared {
        let via_bitmap = p.peer != 0 && p.peer == s.peer;
        return refuse(
            Decision::SplitBrain,
            if via_bitmap {
                Decision::Bitmap
            } else {
                Decision::FullCopy
            },
        );
    }
    refuse(Decision::Unrelated, Decision::FullCopy)
}
