//! The snapshot copy-on-write map: examples, and histories of writes, opens,
//! deletes, crashes and reloads checked against a naive model (a full image per
//! snapshot and a live image), the reloads going through the on-disk format.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use rcopy_core::snapmap::*;
use rcopy_core::snapstore::{
    self, decode_records, encode_records, record_blocks, record_in, SnapInfo, StoreSb, BLOCK,
};

type Map = SnapMap<Vec<Entry>, Vec<u32>>;

fn map(slots: usize, buckets: usize, tracks: u64) -> Map {
    SnapMap::new(vec![Entry::EMPTY; slots], vec![0; buckets], tracks).unwrap()
}

/// Copies `track` for the newest snapshot if needed; returns the slot used.
fn cow(m: &mut Map, track: u64) -> Option<SlotNo> {
    if !m.needs_copy(track) {
        return None;
    }
    let s = m.reserve().expect("store full");
    m.record(track, s).unwrap();
    Some(s)
}

#[test]
fn one_copy_serves_several_snapshots() {
    let mut m = map(8, 2, 4);
    assert!(!m.needs_copy(0), "no snapshot, no copy");
    m.open(1).unwrap();
    m.open(2).unwrap();
    // The first write to track 0 after snapshot 2 serves snapshots 1 and 2.
    let s = cow(&mut m, 0).unwrap();
    assert_eq!(m.lookup(1, 0), Ok(Where::Slot(s)));
    assert_eq!(m.lookup(2, 0), Ok(Where::Slot(s)));
    assert_eq!(m.lookup(2, 1), Ok(Where::Live));
    assert!(!m.needs_copy(0), "second write to the track copies nothing");
    m.open(3).unwrap();
    let s3 = cow(&mut m, 0).unwrap();
    assert_ne!(s, s3);
    assert_eq!(m.lookup(1, 0), Ok(Where::Slot(s)));
    assert_eq!(m.lookup(3, 0), Ok(Where::Slot(s3)));
    // Deleting 3 frees its copy; deleting 1 frees nothing (2 still needs it).
    let mut freed = vec![];
    assert_eq!(m.delete(3, |s| freed.push(s)), Ok(1));
    assert_eq!(freed, vec![s3]);
    assert_eq!(m.delete(1, |_| panic!("freed a needed slot")), Ok(0));
    assert_eq!(m.lookup(2, 0), Ok(Where::Slot(s)));
    assert_eq!(m.delete(2, |_| {}), Ok(1));
    assert_eq!((m.used_slots(), m.free_slots()), (0, 8));
    assert_eq!(m.lookup(2, 0), Err(SnapError::NoSnapshot));
}

#[test]
fn records_after_deleting_the_newest_use_the_newest_live() {
    let mut m = map(8, 1, 4);
    m.open(1).unwrap();
    m.open(2).unwrap();
    m.delete(2, |_| {}).unwrap();
    let s = cow(&mut m, 3).unwrap();
    assert_eq!(m.record_at(s).map(|r| r.epoch), Some(1));
    // Epochs are never reused.
    assert_eq!(m.open(2), Err(SnapError::EpochOrder));
    m.open(5).unwrap();
    assert_eq!(m.newest(), 5);
}

#[test]
fn refusals_change_nothing() {
    assert!(matches!(
        SnapMap::new(vec![Entry::EMPTY; 2], vec![], 4),
        Err(SnapError::Storage)
    ));
    let mut m = map(2, 1, 4);
    let s = m.reserve().unwrap();
    assert_eq!(m.record(0, s), Err(SnapError::NoneLive));
    assert_eq!(m.open(1), Err(SnapError::Busy), "copy in progress");
    m.release(s).unwrap();
    assert_eq!(m.release(s), Err(SnapError::BadSlot), "released twice");
    m.open(1).unwrap();
    let s = m.reserve().unwrap();
    assert_eq!(m.record(4, s), Err(SnapError::BadTrack));
    assert_eq!(m.record(0, 9), Err(SnapError::BadSlot));
    m.record(0, s).unwrap();
    assert_eq!(m.record(1, s), Err(SnapError::BadSlot), "slot in use");
    let t = m.reserve().unwrap();
    assert_eq!(m.record(0, t), Err(SnapError::NotNeeded));
    m.release(t).unwrap();
    assert_eq!(m.lookup(1, 4), Err(SnapError::BadTrack));
    assert_eq!(m.delete(7, |_| {}), Err(SnapError::NoSnapshot));
    assert!(!m.needs_copy(99));
    for e in 2..=MAX_SNAPSHOTS as Epoch {
        m.open(e).unwrap();
    }
    assert_eq!(m.open(100), Err(SnapError::TooMany));
    assert_eq!(m.used_slots() + m.free_slots(), 2);
}

#[test]
fn store_full_names_the_snapshots_to_invalidate() {
    let mut m = map(1, 1, 4);
    m.open(1).unwrap();
    cow(&mut m, 0).unwrap();
    m.open(2).unwrap();
    m.open(3).unwrap();
    assert!(m.needs_copy(1));
    assert_eq!(m.reserve(), None);
    let mut out = [0; MAX_SNAPSHOTS];
    let n = m.needing(1, &mut out);
    assert_eq!(&out[..n], &[1, 2, 3]);
    let n = m.needing(0, &mut out);
    assert_eq!(&out[..n], &[2, 3], "snapshot 1 has its copy of track 0");
}

#[test]
fn loader_refuses_impossible_records() {
    let load = |live: &[Epoch]| SnapMap::load(vec![Entry::EMPTY; 4], vec![0; 2], 8, 3, live);
    assert!(matches!(load(&[4]), Err(SnapError::Corrupt)));
    assert!(matches!(load(&[2, 2]), Err(SnapError::Corrupt)));
    assert!(matches!(load(&[0]), Err(SnapError::Corrupt)));
    let mut l = load(&[3, 1]).unwrap();
    let r = |track, slot, epoch| Record { track, slot, epoch };
    l.add(r(1, 0, 1)).unwrap();
    assert_eq!(l.add(r(2, 0, 1)), Err(SnapError::Corrupt), "slot twice");
    assert_eq!(l.add(r(1, 1, 1)), Err(SnapError::Corrupt), "track twice");
    assert_eq!(
        l.add(r(1, 1, 4)),
        Err(SnapError::Corrupt),
        "epoch above newest"
    );
    assert_eq!(l.add(r(8, 1, 1)), Err(SnapError::BadTrack));
    assert_eq!(l.add(r(1, 4, 2)), Err(SnapError::BadSlot));
    l.add(r(1, 1, 2)).unwrap(); // serves nothing: snapshot 2 was deleted
    l.add(r(1, 2, 3)).unwrap();
    let mut dropped = vec![];
    let m = l.finish(|r| dropped.push(r));
    assert_eq!(dropped, vec![r(1, 1, 2)]);
    assert_eq!(m.live(), &[1, 3]);
    assert_eq!(m.lookup(1, 1), Ok(Where::Slot(0)));
    assert_eq!(m.lookup(3, 1), Ok(Where::Slot(2)));
    assert_eq!((m.used_slots(), m.free_slots()), (2, 2));
}

/// One step of a history.
#[derive(Debug, Clone)]
enum Op {
    /// A write to a track (copy first if needed).
    Write(u64),
    /// The marker of a new snapshot.
    Open,
    /// Delete the `i % live`-th live snapshot.
    Delete(usize),
    /// Restart: rebuild the map from the disk.
    Reload,
    /// A crash in the middle of a copy of a track: after the slot's data
    /// (`false`) or after the record block (`true`), before the overwrite.
    Crash(u64, bool),
}

fn op(tracks: u64) -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..tracks).prop_map(Op::Write),
        2 => Just(Op::Open),
        1 => any::<usize>().prop_map(Op::Delete),
        1 => Just(Op::Reload),
        1 => ((0..tracks), any::<bool>()).prop_map(|(t, r)| Op::Crash(t, r)),
    ]
}

/// The map, the disks, and the naive model side by side.
struct Sim {
    map: Map,
    tracks: u64,
    buckets: usize,
    /// The data device: a version number per track.
    live: Vec<u64>,
    /// The store's slot data.
    store: Vec<u64>,
    /// What the store's record blocks say, per slot: (track, epoch).
    disk: Vec<Option<(u64, Epoch)>>,
    /// The model: each live snapshot's full image.
    snaps: BTreeMap<Epoch, Vec<u64>>,
    /// Slots holding needed records, by the model's bookkeeping.
    used: BTreeSet<SlotNo>,
    next_val: u64,
    reloads: u64,
}

impl Sim {
    fn new(tracks: u64, slots: usize, buckets: usize) -> Sim {
        Sim {
            map: map(slots, buckets, tracks),
            tracks,
            buckets,
            live: (0..tracks).collect(),
            store: vec![u64::MAX; slots],
            disk: vec![None; slots],
            snaps: BTreeMap::new(),
            used: BTreeSet::new(),
            next_val: 1000,
            reloads: 0,
        }
    }

    fn write(&mut self, t: u64) {
        if self.map.needs_copy(t) {
            match self.map.reserve() {
                Some(s) => {
                    assert!(!self.used.contains(&s), "slot {s} handed out twice");
                    self.store[s as usize] = self.live[t as usize];
                    self.disk[s as usize] = Some((t, self.map.newest_live().unwrap()));
                    self.map.record(t, s).unwrap();
                    self.used.insert(s);
                }
                None => {
                    // Store full: invalidate what needs the old track.
                    let mut out = [0; MAX_SNAPSHOTS];
                    let n = self.map.needing(t, &mut out);
                    assert!(n > 0);
                    for &k in &out[..n] {
                        self.delete_epoch(k);
                    }
                    assert!(!self.map.needs_copy(t));
                }
            }
        }
        self.live[t as usize] = self.next_val;
        self.next_val += 1;
    }

    fn delete_epoch(&mut self, k: Epoch) {
        self.snaps.remove(&k).unwrap();
        let used = &mut self.used;
        let n = self
            .map
            .delete(k, |s| assert!(used.remove(&s), "freed slot {s} not in use"))
            .unwrap();
        let _ = n;
    }

    fn open(&mut self) {
        let e = self.map.newest() + 1;
        if self.snaps.len() == MAX_SNAPSHOTS {
            assert_eq!(self.map.open(e), Err(SnapError::TooMany));
            return;
        }
        self.map.open(e).unwrap();
        self.snaps.insert(e, self.live.clone());
    }

    /// Rebuilds the map from the superblock and record blocks, encoded and
    /// decoded through the on-disk format.
    fn reload(&mut self) {
        self.reloads += 1;
        let slots = self.disk.len() as u32;
        let mut sb = StoreSb::new(0x5eed, [1; 16], self.tracks * 4096, 4096, slots);
        sb.newest_epoch = self.map.newest();
        for (i, &k) in self.snaps.keys().enumerate() {
            sb.snaps[i] = SnapInfo {
                epoch: k,
                ..SnapInfo::NONE
            };
        }
        let mut b = [0u8; BLOCK];
        sb.encode_into(&mut b);
        let mut back = StoreSb::new(0, [0; 16], 0, 4096, 0);
        back.decode_into(&b).unwrap();
        assert_eq!(back, sb);
        let mut live = [0; MAX_SNAPSHOTS];
        let n = back.live(&mut live);
        let entries = vec![Entry::EMPTY; slots as usize];
        let heads = vec![0; self.buckets];
        let mut l =
            SnapMap::load(entries, heads, self.tracks, back.newest_epoch, &live[..n]).unwrap();
        let mut recs = vec![];
        for blk in 0..record_blocks(slots) {
            let disk = &self.disk;
            encode_records(&mut b, back.store_id, blk, 7, |s| {
                disk.get(s as usize)
                    .copied()
                    .flatten()
                    .map(|(track, epoch)| Record {
                        track,
                        slot: s,
                        epoch,
                    })
            });
            let h = decode_records(&b, &back, blk, self.tracks).unwrap();
            let before = recs.len();
            recs.extend((0..snapstore::RECORDS_PER_BLOCK).filter_map(|j| record_in(&b, j)));
            assert_eq!(h.count as usize, recs.len() - before);
        }
        // The order records are read in does not matter.
        if self.reloads % 2 == 0 {
            recs.reverse();
        }
        for r in recs {
            l.add(r).unwrap();
        }
        let used = &self.used;
        self.map =
            l.finish(|r| assert!(!used.contains(&r.slot), "load dropped needed record {r:?}"));
    }

    /// A crash in a copy of `t`: the slot's data is written; with `recorded`, the
    /// record block too. The overwrite never happened.
    fn crash(&mut self, t: u64, recorded: bool) {
        if self.map.needs_copy(t) {
            if let Some(s) = self.map.reserve() {
                assert!(!self.used.contains(&s));
                self.store[s as usize] = self.live[t as usize];
                if recorded {
                    self.disk[s as usize] = Some((t, self.map.newest_live().unwrap()));
                    self.used.insert(s);
                }
            }
        }
        self.reload();
    }

    fn check(&mut self) {
        let m = &self.map;
        let live: Vec<Epoch> = self.snaps.keys().copied().collect();
        assert_eq!(m.live(), &live[..]);
        assert_eq!(m.reserved_slots(), 0);
        assert_eq!(m.used_slots() as usize, self.used.len());
        assert_eq!(m.used_slots() + m.free_slots(), m.slots());
        let mut referenced = BTreeSet::new();
        for t in 0..self.tracks {
            let mut reads_live = false;
            for (&k, img) in &self.snaps {
                let got = match m.lookup(k, t).unwrap() {
                    Where::Live => {
                        reads_live = true;
                        self.live[t as usize]
                    }
                    Where::Slot(s) => {
                        assert!(self.used.contains(&s), "snapshot {k} reads free slot {s}");
                        referenced.insert(s);
                        self.store[s as usize]
                    }
                };
                assert_eq!(got, img[t as usize], "snapshot {k} track {t}");
            }
            assert_eq!(m.needs_copy(t), reads_live, "needs_copy({t})");
        }
        // No leak: every record in use is read by some snapshot.
        assert_eq!(referenced, self.used, "slots held that no snapshot reads");
        let held: BTreeSet<SlotNo> = (0..m.slots())
            .filter(|&s| m.record_at(s).is_some())
            .collect();
        assert_eq!(held, self.used);
    }

    /// Every free slot comes out of `reserve` exactly once, none in use.
    fn drain_free_list(&mut self) {
        let mut got = BTreeSet::new();
        while let Some(s) = self.map.reserve() {
            assert!(!self.used.contains(&s), "free list holds used slot {s}");
            assert!(got.insert(s), "free list holds slot {s} twice");
        }
        assert_eq!(got.len() + self.used.len(), self.map.slots() as usize);
        for s in got {
            self.map.release(s).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    /// Any history gives, after every step, lookups equal to the model's images,
    /// exactly the needed slots held, and a sound free list.
    #[test]
    fn history_matches_model(
        tracks in 1u64..20,
        slots in 0usize..40,
        buckets in 1usize..9,
        ops in prop::collection::vec(op(20), 1..150),
    ) {
        let mut sim = Sim::new(tracks, slots, buckets);
        for (i, o) in ops.iter().enumerate() {
            match *o {
                Op::Write(t) => sim.write(t % tracks),
                Op::Open => sim.open(),
                Op::Delete(i) => {
                    if !sim.snaps.is_empty() {
                        let k = *sim.snaps.keys().nth(i % sim.snaps.len()).unwrap();
                        sim.delete_epoch(k);
                    }
                }
                Op::Reload => sim.reload(),
                Op::Crash(t, r) => sim.crash(t % tracks, r),
            }
            sim.check();
            if i % 16 == 0 {
                sim.drain_free_list();
            }
        }
        sim.drain_free_list();
        // Deleting everything frees everything.
        let all: Vec<Epoch> = sim.snaps.keys().copied().collect();
        for k in all {
            sim.delete_epoch(k);
        }
        prop_assert_eq!(sim.map.used_slots(), 0);
        prop_assert_eq!(sim.map.free_slots() as usize, slots);
    }
}
