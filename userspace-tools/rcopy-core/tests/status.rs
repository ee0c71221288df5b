//! Status line: examples and properties.

use proptest::prelude::*;
use rcopy_core::gens::Decision;
use rcopy_core::status::{
    parse_kv, Conn, Mode, Peer, Role, State, Status, StatusError, KEYS, REQUIRED_KEYS,
};

fn status() -> impl Strategy<Value = Status> {
    let enums = (
        prop::sample::select(State::ALL.to_vec()),
        prop::sample::select(Role::ALL.to_vec()),
        prop::sample::select(Mode::ALL.to_vec()),
        prop::sample::select(Conn::ALL.to_vec()),
        prop_oneof![Just("-".to_string()), "[!-<>-~]{1,64}"],
    );
    let gens = (
        prop::option::of(prop::sample::select(Decision::ALL.to_vec())),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    );
    let split = (
        prop::sample::select(rcopy_core::status::SPLIT_WORDS.to_vec()),
        prop::array::uniform4(any::<u64>()),
    );
    (
        (enums, split),
        prop::array::uniform21(any::<u64>()),
        any::<bool>(),
        gens,
    )
        .prop_map(
            |(
                ((state, role, mode, conn, peer), (split, sn)),
                n,
                consistent,
                (decision, gen, peer_tracks, point, point_age_s),
            )| {
                Status {
                    state,
                    role,
                    mode,
                    conn,
                    peer: Peer::new(&peer).unwrap(),
                    track_size: n[0],
                    size: n[1],
                    dirty_bytes: n[2],
                    cache_used: n[3],
                    cache_max: n[4],
                    sync_done: n[5],
                    sync_total: n[6],
                    sent_bytes: n[7],
                    acked_bytes: n[8],
                    lag_ms: n[9],
                    lag_bytes: n[10],
                    reads: n[11],
                    writes: n[12],
                    flushes: n[13],
                    discards: n[14],
                    write_zeroes: n[15],
                    io_errors: n[16],
                    sync_rate: n[17],
                    eta_s: n[18],
                    consistent,
                    error: rcopy_core::status::DevError::None,
                    al_hot: n[19],
                    al_refs: n[20],
                    decision,
                    gen,
                    peer_tracks,
                    point,
                    point_age_s,
                    split,
                    split_create: sn[0],
                    split_changed: sn[1],
                    split_copied: sn[2],
                    split_cow: sn[3],
                }
            },
        )
}

fn line(s: &Status) -> String {
    let mut out = String::new();
    s.write(&mut out).unwrap();
    out
}

#[test]
fn documented_order() {
    let l = line(&Status::default());
    let keys: Vec<&str> = parse_kv(&l).map(|(k, _)| k).collect();
    assert_eq!(keys, KEYS);
    assert_eq!(
        l,
        "state=simplex role=primary mode=sync conn=standalone peer=- track_size=0 size=0 \
         dirty_bytes=0 cache_fill=0/0 sync_done=0 sync_total=0 sent_bytes=0 acked_bytes=0 \
         lag_ms=0 lag_bytes=0 reads=0 writes=0 flushes=0 discards=0 write_zeroes=0 io_errors=0 \
         sync_rate=0 eta_s=0 consistent=yes error=none al_hot=0 al_refs=0 decision=none gen=0000000000000000 peer_tracks=0 \
         point=0 point_age_s=0 split=none split_create=0 split_changed=0 split_copied=0 \
         split_cow=0"
    );
}

#[test]
fn enum_words() {
    for s in State::ALL {
        assert_eq!(State::parse(s.as_str()), Some(*s));
    }
    assert_eq!(State::ALL.len(), 6);
    assert_eq!(Conn::parse("connected"), Some(Conn::Connected));
    assert_eq!(Mode::parse("SYNC"), None);
}

#[test]
fn errors() {
    let l = line(&Status::default());
    assert_eq!(
        Status::parse(&l.replace("lag_ms=0 ", "")),
        Err(StatusError::Missing("lag_ms"))
    );
    assert_eq!(
        Status::parse(&l.replace("cache_fill=0/0", "cache_fill=0")),
        Err(StatusError::BadValue("cache_fill"))
    );
    assert_eq!(
        Status::parse(&l.replace("reads=0", "reads=-1")),
        Err(StatusError::BadValue("reads"))
    );
    assert_eq!(Status::parse(""), Err(StatusError::Missing("state")));
    // The generation keys.
    for (from, to) in [
        ("decision=none", "decision=maybe"),
        ("decision=none", "decision=Bitmap"),
        ("gen=0000000000000000", "gen=0"),
        ("gen=0000000000000000", "gen=00000000000000000"),
        ("gen=0000000000000000", "gen=000000000000000g"),
        ("peer_tracks=0", "peer_tracks=x"),
    ] {
        let key = from.split('=').next().unwrap();
        assert_eq!(
            Status::parse(&l.replace(from, to)),
            Err(StatusError::BadValue(
                KEYS.iter().find(|k| **k == key).unwrap()
            )),
            "{to}"
        );
    }
}

#[test]
fn generation_keys() {
    let s = Status {
        decision: Some(Decision::SplitBrain),
        gen: 0x0123_4567_89ab_cdef,
        peer_tracks: 42,
        ..Status::default()
    };
    let l = line(&s);
    assert!(l.contains(" decision=split-brain gen=0123456789abcdef peer_tracks=42 "));
    assert_eq!(Status::parse(&l), Ok(s));
    // Consistency points: the last one and its age.
    let p = Status {
        point: 7,
        point_age_s: 12,
        ..Status::default()
    };
    let pl = line(&p);
    assert!(pl.contains(" point=7 point_age_s=12 "), "{pl}");
    assert_eq!(Status::parse(&pl), Ok(p));
    // The split copy: its state word and counters; a line without them (an
    // older module) parses with none.
    let sp = Status {
        split: "refreshing",
        split_create: 1,
        split_changed: 2,
        split_copied: 3,
        split_cow: 4,
        ..Status::default()
    };
    let spl = line(&sp);
    assert!(
        spl.ends_with(
            " split=refreshing split_create=1 split_changed=2 split_copied=3 split_cow=4"
        ),
        "{spl}"
    );
    assert_eq!(Status::parse(&spl), Ok(sp));
    let old = spl.split(" split=").next().unwrap().to_string();
    assert_eq!(Status::parse(&old).map(|s| s.split), Ok("none"));
    assert_eq!(
        Status::parse(&spl.replace("split=refreshing", "split=halfway")),
        Err(StatusError::BadValue("split"))
    );
    // Every decision word round-trips.
    for d in Decision::ALL {
        let s = Status {
            decision: Some(*d),
            ..Status::default()
        };
        assert_eq!(Status::parse(&line(&s)), Ok(s));
    }
    // Upper-case hex is accepted.
    let up = l.replace("gen=0123456789abcdef", "gen=0123456789ABCDEF");
    assert_eq!(Status::parse(&up), Ok(s));
    // An older module's line, without the new keys, still parses with the
    // defaults: they are not among the required ones.
    assert!(KEYS[..REQUIRED_KEYS]
        .iter()
        .all(|k| !["decision", "gen", "peer_tracks"].contains(k)));
    let old = l.split(" decision=").next().unwrap();
    assert_eq!(
        Status::parse(old),
        Ok(Status {
            decision: None,
            gen: 0,
            peer_tracks: 0,
            ..s
        })
    );
}

proptest! {
    #[test]
    fn write_parse_round_trip(s in status()) {
        let l = line(&s);
        prop_assert!(!l.contains("  ") && !l.ends_with(' ') && !l.contains('\n'));
        prop_assert_eq!(Status::parse(&l), Ok(s));
    }

    #[test]
    fn unknown_keys_and_order_are_ignored(
        s in status(),
        extra in prop::collection::vec(("[a-z_]{1,12}", "[!-~]{0,12}"), 0..6),
        seed in any::<u64>(),
    ) {
        let l = line(&s);
        let mut words: Vec<String> = l.split(' ').map(str::to_string).collect();
        for (k, v) in extra {
            if KEYS.contains(&k.as_str()) || k == "cache_fill" {
                continue;
            }
            words.push(format!("{k}={v}"));
        }
        // Deterministic shuffle from the seed.
        let mut x = seed | 1;
        for i in (1..words.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            words.swap(i, (x % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(Status::parse(&words.join(" ")), Ok(s));
    }

    #[test]
    fn parse_never_panics(line in "\\PC{0,300}") {
        let _ = Status::parse(&line);
        let _ = parse_kv(&line).count();
    }

    #[test]
    fn peer_round_trip(p in "[!-<>-~]{1,64}") {
        let peer = Peer::new(&p).unwrap();
        if p == "-" {
            prop_assert!(peer.is_none());
        } else {
            prop_assert_eq!(peer.as_str(), p.as_str());
        }
    }
}
