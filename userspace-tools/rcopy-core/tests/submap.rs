//! The sub-track map against models: as a hash map (any sequence of notes,
//! forgets, takes and clears leaves exactly the model's entries, through
//! backward-shift deletions and a full table), and as the refinement of the
//! dirty-track bitmap (after any sequence of partial writes, whole-track marks and
//! copier steps, a resync that sends only an entry's sixteenths leaves the peer
//! equal to the primary).

use proptest::prelude::*;
use rcopy_core::submap::{self, SubMap, PARTS};
use std::collections::HashMap;

#[derive(Debug, Clone)]
enum MapOp {
    Note(u64, u16, bool),
    Forget(u64),
    Take(u64),
    Clear,
}

fn map_op(tracks: u64) -> impl Strategy<Value = MapOp> {
    prop_oneof![
        6 => (0..tracks, 1..=u16::MAX, any::<bool>()).prop_map(|(t, m, b)| MapOp::Note(t, m, b)),
        2 => (0..tracks).prop_map(MapOp::Forget),
        3 => (0..tracks).prop_map(MapOp::Take),
        1 => Just(MapOp::Clear),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn behaves_like_a_hash_map(slots_log in 1u32..7, ops in proptest::collection::vec(map_op(200), 0..300)) {
        let slots = 1usize << slots_log;
        let mut m = SubMap::new(vec![0u64; slots]);
        let mut model: HashMap<u64, u16> = HashMap::new();
        for op in ops {
            match op {
                MapOp::Note(t, mask, was) => {
                    let has = m.note(t, mask, was);
                    if let Some(v) = model.get_mut(&t) {
                        *v |= mask;
                        prop_assert!(has);
                    } else if !was && (model.len() + 1) * 4 <= slots * 3 {
                        model.insert(t, mask);
                        prop_assert!(has);
                    } else {
                        prop_assert!(!has);
                    }
                }
                MapOp::Forget(t) => {
                    m.forget(t);
                    model.remove(&t);
                }
                MapOp::Take(t) => prop_assert_eq!(m.take(t), model.remove(&t)),
                MapOp::Clear => {
                    m.clear();
                    model.clear();
                }
            }
            prop_assert_eq!(m.len(), model.len());
            for t in 0..200 {
                prop_assert_eq!(m.get(t), model.get(&t).copied(), "track {}", t);
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// A write of `n` sixteenths from sixteenth `p` (may cross tracks).
    Write(u64, u64),
    /// Marks a whole track (a failed read, the peer's bitmap).
    Whole(u64),
    /// The copier copies the first dirty track at or after this one.
    Copy(u64),
    /// The copier clears a bit and the write path widens the entry before the take.
    ClearThenWrite(u64, u64),
}

const TRACKS: u64 = 12;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..TRACKS * PARTS, 1..40u64).prop_map(|(p, n)| Op::Write(p, n)),
        1 => (0..TRACKS).prop_map(Op::Whole),
        3 => (0..TRACKS).prop_map(Op::Copy),
        1 => (0..TRACKS * PARTS, 1..20u64).prop_map(|(p, n)| Op::ClearThenWrite(p, n)),
    ]
}

struct Sys {
    primary: Vec<u32>,
    peer: Vec<u32>,
    bits: Vec<bool>,
    map: SubMap<Vec<u64>>,
    next: u32,
}

impl Sys {
    fn write(&mut self, p: u64, n: u64) {
        let part = 4096u64;
        let end = (p + n).min(TRACKS * PARTS);
        for q in p..end {
            self.next += 1;
            self.primary[q as usize] = self.next;
        }
        let (off, len) = (p * part, (end - p) * part);
        for t in p / PARTS..=(end - 1) / PARTS {
            let mask = submap::mask_of(t, off, len, part);
            let was = self.bits[t as usize];
            self.map.note(t, mask, was);
            self.bits[t as usize] = true;
        }
    }

    fn copy_track(&mut self, t: u64, mask: Option<u16>) {
        let send = mask.unwrap_or(u16::MAX);
        for i in 0..PARTS {
            if send & (1 << i) != 0 {
                let q = (t * PARTS + i) as usize;
                self.peer[q] = self.primary[q];
            }
        }
    }

    fn check(&self) -> Result<(), TestCaseError> {
        for t in 0..TRACKS {
            let mask = self.map.get(t);
            for i in 0..PARTS {
                let q = (t * PARTS + i) as usize;
                if self.peer[q] == self.primary[q] {
                    continue;
                }
                prop_assert!(
                    self.bits[t as usize],
                    "track {} differs with its bit clear",
                    t
                );
                if let Some(m) = mask {
                    prop_assert!(
                        m & (1 << i) != 0,
                        "track {} part {} differs outside its entry {:#x}",
                        t,
                        i,
                        m
                    );
                }
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn partial_resync_leaves_the_peer_equal(
        slots_log in 1u32..6,
        ops in proptest::collection::vec(op(), 0..120),
    ) {
        let n = (TRACKS * PARTS) as usize;
        let mut s = Sys {
            primary: vec![0; n],
            peer: vec![0; n],
            bits: vec![false; TRACKS as usize],
            map: SubMap::new(vec![0u64; 1 << slots_log]),
            next: 0,
        };
        for op in ops {
            match op {
                Op::Write(p, n) => s.write(p, n),
                Op::Whole(t) => {
                    s.next += 1;
                    let q = (t * PARTS + (u64::from(s.next) % PARTS)) as usize;
                    s.primary[q] = s.next;
                    s.bits[t as usize] = true;
                    s.map.forget(t);
                }
                Op::Copy(from) => {
                    if let Some(t) = (from..TRACKS).chain(0..from).find(|&t| s.bits[t as usize]) {
                        s.bits[t as usize] = false;
                        let m = s.map.take(t);
                        s.copy_track(t, m);
                    }
                }
                Op::ClearThenWrite(p, n) => {
                    let t = p / PARTS;
                    if s.bits[t as usize] {
                        // The copier clears the bit; a write lands (and notes) before
                        // it takes the entry and reads: the read sees the write.
                        s.bits[t as usize] = false;
                        s.write(p, n);
                        let m = s.map.take(t);
                        s.copy_track(t, m);
                    }
                }
            }
            s.check()?;
        }
        // Drain: copy everything dirty.
        while let Some(t) = (0..TRACKS).find(|&t| s.bits[t as usize]) {
            s.bits[t as usize] = false;
            let m = s.map.take(t);
            s.copy_track(t, m);
        }
        prop_assert_eq!(&s.peer, &s.primary);
    }
}

#[test]
fn masks_and_runs() {
    let part = 4096;
    assert_eq!(submap::part_bytes(65536), Some(4096));
    assert_eq!(submap::part_bytes(4096), None);
    assert_eq!(submap::mask_of(0, 0, 4096, part), 1);
    assert_eq!(submap::mask_of(0, 512, 512, part), 1);
    assert_eq!(submap::mask_of(0, 4095, 2, part), 0b11);
    assert_eq!(submap::mask_of(1, 0, 65536 + 4096, part), 1);
    assert_eq!(submap::mask_of(1, 0, 65536, part), 0);
    assert_eq!(submap::mask_of(0, 0, 1 << 20, part), u16::MAX);
    let mut got = vec![];
    let n = submap::runs(0b1000_0000_0110_0001, 2, part, u64::MAX, |o, l| {
        got.push((o, l))
    });
    assert_eq!(n, 3);
    assert_eq!(
        got,
        vec![
            (131072, 4096),
            (131072 + 5 * 4096, 8192),
            (131072 + 15 * 4096, 4096)
        ]
    );
    // Clipped at the end of the device.
    got.clear();
    submap::runs(u16::MAX, 0, part, 10000, |o, l| got.push((o, l)));
    assert_eq!(got, vec![(0, 10000)]);
    assert_eq!(submap::slots_for(1), 16);
    assert_eq!(submap::slots_for(4096), 8192);
    assert_eq!(submap::slots_for(1 << 24), submap::MAX_SLOTS);
}
