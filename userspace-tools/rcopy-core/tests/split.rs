//! The split copy's state machine against a model of the two devices: after any
//! sequence of writes, copier steps, splits, refreshes, rejoins and crashes
//! (reloads from the bitmaps as written), the copy holds exactly what each state
//! promises.

use proptest::prelude::*;
use rcopy_core::split::{self, Layout, Map, Mode, SplitState};

const TRACKS: u64 = 24;

#[derive(Debug, Clone)]
enum Op {
    Write(u64, u64),
    Copy,
    Split,
    Rejoin,
    Refresh(u64, u64),
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..TRACKS, 1..4u64).prop_map(|(t, n)| Op::Write(t, n)),
        4 => Just(Op::Copy),
        1 => Just(Op::Split),
        1 => Just(Op::Rejoin),
        1 => (0..TRACKS, 1..8u64).prop_map(|(t, n)| Op::Refresh(t, n)),
        1 => Just(Op::Crash),
    ]
}

struct Model {
    l: Layout,
    maps: Vec<u8>,
    mode: Mode,
    orig: Vec<u32>,
    copy: Vec<u32>,
    /// What the copy must hold once split (the original at the split, plus
    /// refreshed ranges as of their request).
    frozen: Vec<u32>,
    next: u32,
}

impl Model {
    fn new() -> Model {
        let l = Layout::new(TRACKS * 4096, 4096).unwrap();
        let mut maps = vec![0u8; l.maps_len() as usize];
        l.fill_create(&mut maps);
        Model {
            l,
            maps,
            mode: Mode {
                state: SplitState::Forming,
                refresh: None,
            },
            orig: vec![0; TRACKS as usize],
            copy: vec![u32::MAX; TRACKS as usize],
            frozen: vec![0; TRACKS as usize],
            next: 1,
        }
    }

    fn get(&self, m: Map, t: u64) -> bool {
        self.l.get(&self.maps, m, t)
    }

    fn step(&mut self, op: &Op) {
        let l = self.l;
        match *op {
            Op::Write(t, n) => {
                for t in t..(t + n).min(TRACKS) {
                    let w = split::write_work(&self.mode, &l, &self.maps, t);
                    if let Some(m) = w.cow_from {
                        self.copy[t as usize] = self.orig[t as usize];
                        l.put(&mut self.maps, m, t, false);
                    }
                    l.put(&mut self.maps, w.mark, t, true);
                    assert!(split::admits(&self.mode, &l, &self.maps, t));
                    self.orig[t as usize] = self.next;
                    self.next += 1;
                }
            }
            Op::Copy => match self.mode.copy_work(TRACKS) {
                None => {}
                Some((m, r)) => match l.next_set(&self.maps, m, r) {
                    Some(t) => {
                        self.copy[t as usize] = self.orig[t as usize];
                        l.put(&mut self.maps, m, t, false);
                    }
                    None => {
                        if self.mode.refresh.is_some() {
                            l.fold_update(&mut self.maps);
                        }
                        self.mode = self.mode.settled();
                    }
                },
            },
            Op::Split if self.mode.can_split() => {
                self.mode = Mode {
                    state: SplitState::Splitting,
                    refresh: None,
                };
                self.frozen = self.orig.clone();
            }
            Op::Rejoin if self.mode.can_rejoin() => {
                l.rejoin(&mut self.maps);
                self.mode = Mode {
                    state: SplitState::Forming,
                    refresh: None,
                };
            }
            Op::Refresh(t, n) if self.mode.can_rejoin() => {
                let r = t..(t + n).min(TRACKS);
                for x in r.clone() {
                    self.frozen[x as usize] = self.orig[x as usize];
                }
                self.mode.refresh = Some(r);
            }
            // The bitmaps and the header are on disk as of now (both are written
            // before they take effect); the load repair runs.
            Op::Crash
                if self.mode.refresh.is_none() && l.count_all(&self.maps, Map::Update) != 0 =>
            {
                assert_eq!(self.mode.state, SplitState::Split);
                l.fold_update(&mut self.maps);
            }
            _ => {}
        }
    }

    fn check(&self) {
        for t in 0..TRACKS {
            let i = t as usize;
            let (o, c, f) = (self.orig[i], self.copy[i], self.frozen[i]);
            match self.mode.state {
                SplitState::Forming | SplitState::Formed => {
                    if !self.get(Map::Create, t) {
                        assert_eq!(c, o, "track {t}: unmarked but differs");
                    }
                }
                SplitState::Splitting => {
                    if self.get(Map::Create, t) {
                        assert_eq!(o, f, "track {t}: still to copy but overwritten");
                    } else {
                        assert_eq!(c, f, "track {t}: copied but not the image at the split");
                    }
                }
                SplitState::Split => {
                    if self.mode.refreshing(t) && self.get(Map::Split, t) {
                        assert_eq!(o, f, "track {t}: to refresh but overwritten");
                    } else {
                        assert_eq!(c, f, "track {t}: the frozen copy changed");
                    }
                    if c != o {
                        assert!(
                            self.get(Map::Split, t) || self.get(Map::Update, t),
                            "track {t}: differs but a rejoin would not copy it"
                        );
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn copy_is_what_the_state_promises(ops in prop::collection::vec(op(), 1..120)) {
        let mut m = Model::new();
        for op in &ops {
            m.step(op);
            m.check();
        }
        // Drain: every state ends settled, and a rejoin ends with an equal copy.
        for _ in 0..4 * TRACKS {
            m.step(&Op::Copy);
            m.check();
        }
        if m.mode.can_rejoin() {
            m.step(&Op::Rejoin);
        }
        for _ in 0..4 * TRACKS {
            m.step(&Op::Copy);
        }
        // Formed: equal except where a write since set CREATE (formed copies nothing
        // until a split; such a track is copied by the split or the next forming).
        if matches!(m.mode.state, SplitState::Formed) {
            for t in 0..TRACKS {
                let i = t as usize;
                prop_assert!(
                    m.copy[i] == m.orig[i] || m.get(Map::Create, t),
                    "track {}: differs and unmarked",
                    t
                );
            }
        }
    }
}

#[test]
fn a_rejoin_copies_only_changed_tracks() {
    let mut m = Model::new();
    for _ in 0..2 * TRACKS {
        m.step(&Op::Copy);
    }
    assert_eq!(m.mode.state, SplitState::Formed);
    m.step(&Op::Split);
    m.step(&Op::Copy);
    assert_eq!(m.mode.state, SplitState::Split);
    m.step(&Op::Write(3, 2));
    m.step(&Op::Write(10, 1));
    m.step(&Op::Rejoin);
    assert_eq!(m.l.count_all(&m.maps, Map::Create), 3);
}
