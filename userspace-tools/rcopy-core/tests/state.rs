//! The pair state machine: every legal transition, a sample of refused
//! ones, and random event sequences.

use proptest::prelude::*;
use rcopy_core::state::{next, Event, Pair};
use rcopy_core::status::{Conn, Role, State};

use Event::*;
use Role::*;
use State::*;

const CONNECTING: Conn = Conn::Connecting;
const LINKED: Conn = Conn::Connected;

fn p(state: State, role: Role, conn: Conn) -> Pair {
    Pair {
        state,
        role,
        conn,
        held: false,
        consistent: role == Primary || !matches!(state, Copying | Resyncing),
        took_over: state == Swapped,
    }
}

fn held(mut x: Pair) -> Pair {
    x.held = true;
    x
}

fn inconsistent(mut x: Pair) -> Pair {
    x.consistent = false;
    x
}

fn took_over(mut x: Pair) -> Pair {
    x.took_over = true;
    x
}

/// Every legal transition from a representative set of states.
fn legal() -> Vec<(Pair, Event, Pair)> {
    let sec_copy = inconsistent(p(Copying, Secondary, CONNECTING));
    let sec_copy_c = inconsistent(p(Copying, Secondary, LINKED));
    let sec_rs = inconsistent(p(Resyncing, Secondary, LINKED));
    vec![
        // Configure.
        (
            Pair::SIMPLEX,
            Configure(Primary),
            p(Copying, Primary, CONNECTING),
        ),
        (Pair::SIMPLEX, Configure(Secondary), sec_copy),
        // Link.
        (
            p(Copying, Primary, CONNECTING),
            Connected,
            p(Copying, Primary, LINKED),
        ),
        (sec_copy, Connected, sec_copy_c),
        (
            p(Suspended, Primary, CONNECTING),
            Connected,
            p(Suspended, Primary, LINKED),
        ),
        (
            held(p(Suspended, Primary, CONNECTING)),
            Connected,
            held(p(Suspended, Primary, LINKED)),
        ),
        (
            p(Swapped, Primary, CONNECTING),
            Connected,
            p(Swapped, Primary, LINKED),
        ),
        (
            p(Copying, Primary, LINKED),
            Disconnected,
            p(Suspended, Primary, CONNECTING),
        ),
        (
            sec_copy_c,
            Disconnected,
            inconsistent(p(Suspended, Secondary, CONNECTING)),
        ),
        (
            p(Duplex, Primary, LINKED),
            Disconnected,
            p(Suspended, Primary, CONNECTING),
        ),
        (
            p(Duplex, Secondary, LINKED),
            Disconnected,
            p(Suspended, Secondary, CONNECTING),
        ),
        (
            p(Resyncing, Primary, LINKED),
            Disconnected,
            p(Suspended, Primary, CONNECTING),
        ),
        (
            took_over(p(Resyncing, Primary, LINKED)),
            Disconnected,
            p(Swapped, Primary, CONNECTING),
        ),
        (
            sec_rs,
            Disconnected,
            inconsistent(p(Suspended, Secondary, CONNECTING)),
        ),
        (
            p(Suspended, Primary, LINKED),
            Disconnected,
            p(Suspended, Primary, CONNECTING),
        ),
        (
            p(Swapped, Primary, LINKED),
            Disconnected,
            p(Swapped, Primary, CONNECTING),
        ),
        // Copy.
        (
            p(Copying, Primary, LINKED),
            CopyDone,
            p(Duplex, Primary, LINKED),
        ),
        (sec_copy_c, CopyDone, p(Duplex, Secondary, LINKED)),
        // Operator suspend / resume.
        (
            p(Copying, Primary, CONNECTING),
            OperatorSuspend,
            held(p(Suspended, Primary, CONNECTING)),
        ),
        (
            p(Duplex, Primary, LINKED),
            OperatorSuspend,
            held(p(Suspended, Primary, LINKED)),
        ),
        (
            p(Duplex, Secondary, LINKED),
            OperatorSuspend,
            held(p(Suspended, Secondary, LINKED)),
        ),
        (
            p(Resyncing, Primary, LINKED),
            OperatorSuspend,
            held(p(Suspended, Primary, LINKED)),
        ),
        (
            took_over(p(Resyncing, Primary, LINKED)),
            OperatorSuspend,
            held(p(Swapped, Primary, LINKED)),
        ),
        (
            p(Suspended, Primary, CONNECTING),
            OperatorSuspend,
            held(p(Suspended, Primary, CONNECTING)),
        ),
        (
            p(Swapped, Primary, CONNECTING),
            OperatorSuspend,
            held(p(Swapped, Primary, CONNECTING)),
        ),
        (
            held(p(Suspended, Primary, LINKED)),
            OperatorResume,
            p(Suspended, Primary, LINKED),
        ),
        (
            held(p(Swapped, Primary, CONNECTING)),
            OperatorResume,
            p(Swapped, Primary, CONNECTING),
        ),
        // Overflow (primary, async cache full).
        (
            p(Duplex, Primary, LINKED),
            Overflow,
            p(Resyncing, Primary, LINKED),
        ),
        (
            p(Copying, Primary, LINKED),
            Overflow,
            p(Resyncing, Primary, LINKED),
        ),
        // Resync.
        (
            p(Suspended, Primary, LINKED),
            ResyncStart,
            p(Resyncing, Primary, LINKED),
        ),
        (
            p(Swapped, Primary, LINKED),
            ResyncStart,
            took_over(p(Resyncing, Primary, LINKED)),
        ),
        (p(Suspended, Secondary, LINKED), ResyncStart, sec_rs),
        (p(Duplex, Secondary, LINKED), ResyncStart, sec_rs),
        (sec_copy_c, ResyncStart, sec_rs),
        (
            p(Resyncing, Primary, LINKED),
            ResyncDone,
            p(Duplex, Primary, LINKED),
        ),
        (
            took_over(p(Resyncing, Primary, LINKED)),
            ResyncDone,
            p(Duplex, Primary, LINKED),
        ),
        (sec_rs, ResyncDone, p(Duplex, Secondary, LINKED)),
        // Takeover, demotion of the returning primary, failback handover.
        (
            p(Suspended, Secondary, CONNECTING),
            Promote,
            p(Swapped, Primary, CONNECTING),
        ),
        (
            held(p(Suspended, Secondary, CONNECTING)),
            Promote,
            held(p(Swapped, Primary, CONNECTING)),
        ),
        (
            p(Duplex, Secondary, LINKED),
            Promote,
            p(Duplex, Primary, LINKED),
        ),
        (
            p(Suspended, Primary, CONNECTING),
            Demote,
            p(Suspended, Secondary, CONNECTING),
        ),
        (
            p(Duplex, Primary, LINKED),
            Demote,
            p(Duplex, Secondary, LINKED),
        ),
        // Remaining link / operator combinations.
        (
            p(Suspended, Secondary, CONNECTING),
            Connected,
            p(Suspended, Secondary, LINKED),
        ),
        (
            p(Suspended, Secondary, LINKED),
            Disconnected,
            p(Suspended, Secondary, CONNECTING),
        ),
        (
            p(Copying, Primary, LINKED),
            OperatorSuspend,
            held(p(Suspended, Primary, LINKED)),
        ),
        (
            sec_copy_c,
            OperatorSuspend,
            held(inconsistent(p(Suspended, Secondary, LINKED))),
        ),
        (
            sec_copy,
            OperatorSuspend,
            held(inconsistent(p(Suspended, Secondary, CONNECTING))),
        ),
        (
            sec_rs,
            OperatorSuspend,
            held(inconsistent(p(Suspended, Secondary, LINKED))),
        ),
        (
            p(Suspended, Primary, LINKED),
            OperatorSuspend,
            held(p(Suspended, Primary, LINKED)),
        ),
        (
            p(Suspended, Secondary, LINKED),
            OperatorSuspend,
            held(p(Suspended, Secondary, LINKED)),
        ),
        (
            p(Suspended, Secondary, CONNECTING),
            OperatorSuspend,
            held(p(Suspended, Secondary, CONNECTING)),
        ),
        (
            p(Swapped, Primary, LINKED),
            OperatorSuspend,
            held(p(Swapped, Primary, LINKED)),
        ),
        (
            held(p(Suspended, Primary, CONNECTING)),
            OperatorResume,
            p(Suspended, Primary, CONNECTING),
        ),
        (
            held(p(Suspended, Secondary, LINKED)),
            OperatorResume,
            p(Suspended, Secondary, LINKED),
        ),
        (
            held(p(Suspended, Secondary, CONNECTING)),
            OperatorResume,
            p(Suspended, Secondary, CONNECTING),
        ),
        (
            held(p(Swapped, Primary, LINKED)),
            OperatorResume,
            p(Swapped, Primary, LINKED),
        ),
        // Dissolve.
        (p(Duplex, Primary, LINKED), Dissolve, Pair::SIMPLEX),
        (p(Swapped, Primary, CONNECTING), Dissolve, Pair::SIMPLEX),
        (sec_rs, Dissolve, Pair::SIMPLEX),
    ]
}

#[test]
fn every_legal_transition() {
    for (from, ev, to) in legal() {
        assert!(from.is_valid(), "{from:?}");
        assert!(to.is_valid(), "{to:?}");
        assert_eq!(next(from, ev), Ok(to), "{from:?} --{ev:?}-->");
    }
}

#[test]
fn illegal_transitions() {
    let cases: Vec<(Pair, Event, &str)> = vec![
        (Pair::SIMPLEX, Connected, "no pair configured"),
        (Pair::SIMPLEX, Promote, "no pair configured"),
        (Pair::SIMPLEX, Dissolve, "no pair configured"),
        (
            p(Duplex, Primary, LINKED),
            Configure(Secondary),
            "a pair is already configured",
        ),
        (p(Duplex, Primary, LINKED), Connected, "already connected"),
        (
            p(Suspended, Primary, CONNECTING),
            Disconnected,
            "not connected",
        ),
        (p(Copying, Primary, CONNECTING), CopyDone, "not connected"),
        (
            p(Duplex, Primary, LINKED),
            CopyDone,
            "no initial copy running",
        ),
        (
            held(p(Suspended, Primary, LINKED)),
            OperatorSuspend,
            "already suspended",
        ),
        (p(Duplex, Primary, LINKED), OperatorResume, "not suspended"),
        (
            p(Duplex, Secondary, LINKED),
            Overflow,
            "only a primary caches writes",
        ),
        (
            p(Suspended, Primary, LINKED),
            Overflow,
            "not shipping writes",
        ),
        (
            p(Resyncing, Primary, LINKED),
            Overflow,
            "not shipping writes",
        ),
        (
            p(Suspended, Primary, CONNECTING),
            ResyncStart,
            "not connected",
        ),
        (
            held(p(Suspended, Primary, LINKED)),
            ResyncStart,
            "suspended by the operator",
        ),
        (
            p(Duplex, Primary, LINKED),
            ResyncStart,
            "nothing to resync from this state",
        ),
        (
            p(Copying, Primary, LINKED),
            ResyncStart,
            "nothing to resync from this state",
        ),
        (p(Duplex, Primary, LINKED), ResyncDone, "no resync running"),
        (p(Duplex, Primary, LINKED), Promote, "already primary"),
        (
            inconsistent(p(Suspended, Secondary, CONNECTING)),
            Promote,
            "data is not consistent",
        ),
        (
            inconsistent(p(Copying, Secondary, CONNECTING)),
            Promote,
            "data is not consistent",
        ),
        (
            p(Suspended, Secondary, LINKED),
            Promote,
            "peer still connected",
        ),
        (p(Duplex, Secondary, LINKED), Demote, "already secondary"),
        (
            p(Swapped, Primary, CONNECTING),
            Demote,
            "writes not yet copied back",
        ),
        (p(Suspended, Primary, LINKED), Demote, "peer connected"),
        (
            p(Copying, Primary, LINKED),
            Demote,
            "cannot demote in this state",
        ),
        (
            p(Resyncing, Primary, LINKED),
            Demote,
            "cannot demote in this state",
        ),
    ];
    for (from, ev, why) in cases {
        assert!(from.is_valid(), "{from:?}");
        let err = next(from, ev).expect_err(&format!("{from:?} --{ev:?}--> should be refused"));
        assert_eq!(err.message(), why, "{from:?} --{ev:?}-->");
        assert_eq!((err.from, err.event), (from, ev));
        assert!(!err.to_string().is_empty());
    }
}

/// The takeover, reverse resync and failback of the failover design, end to
/// end on both sides.
#[test]
fn failover_and_failback() {
    let run = |mut x: Pair, evs: &[Event]| {
        for &e in evs {
            x = next(x, e).unwrap_or_else(|e| panic!("{e}"));
        }
        x
    };
    let a = run(Pair::SIMPLEX, &[Configure(Primary), Connected, CopyDone]);
    let b = run(Pair::SIMPLEX, &[Configure(Secondary), Connected, CopyDone]);
    assert_eq!((a.state, b.state), (Duplex, Duplex));
    // A dies; B takes over.
    let b = run(b, &[Disconnected, Promote]);
    assert_eq!((b.state, b.role), (Swapped, Primary));
    assert!(b.marks_writes() && b.accepts_writes());
    // A comes back after a crash, is demoted, reconnects; reverse resync.
    let a = run(a.after_restart(), &[Demote, Connected, ResyncStart]);
    let b = run(b, &[Connected, ResyncStart]);
    assert_eq!(
        (a.state, a.role, a.consistent),
        (Resyncing, Secondary, false)
    );
    // The link drops mid-resync: B goes back to swapped, A stays unusable.
    let b2 = run(b, &[Disconnected]);
    assert_eq!(b2.state, Swapped);
    assert!(next(run(a, &[Disconnected]), Promote).is_err());
    let a = run(a, &[ResyncDone]);
    let b = run(b, &[ResyncDone]);
    assert_eq!((b.state, b.role, b.took_over), (Duplex, Primary, false));
    // Failback: B demotes, A promotes, replication forwards again.
    let b = run(b, &[Demote]);
    let a = run(a, &[Promote]);
    assert_eq!((a.state, a.role, b.role), (Duplex, Primary, Secondary));
    assert!(a.ships_writes() && !b.accepts_writes());
}

#[test]
fn after_restart() {
    assert_eq!(Pair::SIMPLEX.after_restart(), Pair::SIMPLEX);
    assert_eq!(
        p(Duplex, Primary, LINKED).after_restart(),
        p(Suspended, Primary, CONNECTING)
    );
    assert_eq!(
        took_over(p(Resyncing, Primary, LINKED)).after_restart(),
        p(Swapped, Primary, CONNECTING)
    );
    assert_eq!(
        inconsistent(p(Copying, Secondary, LINKED)).after_restart(),
        inconsistent(p(Suspended, Secondary, CONNECTING))
    );
}

#[test]
fn write_policy() {
    assert!(!Pair::SIMPLEX.marks_writes() && !Pair::SIMPLEX.ships_writes());
    assert!(Pair::SIMPLEX.accepts_writes());
    assert!(p(Duplex, Primary, LINKED).ships_writes());
    assert!(p(Copying, Primary, LINKED).ships_writes());
    assert!(!p(Copying, Primary, CONNECTING).ships_writes());
    for s in [Suspended, Resyncing, Swapped] {
        let x = if s == Resyncing {
            p(s, Primary, LINKED)
        } else {
            p(s, Primary, CONNECTING)
        };
        assert!(x.marks_writes() && !x.ships_writes(), "{s:?}");
    }
    assert!(!p(Duplex, Secondary, LINKED).accepts_writes());
}

fn any_pair() -> impl Strategy<Value = Pair> {
    (
        prop::sample::select(State::ALL),
        prop::sample::select(Role::ALL),
        prop::sample::select(Conn::ALL),
        any::<[bool; 3]>(),
    )
        .prop_map(|(state, role, conn, [held, consistent, took_over])| Pair {
            state,
            role,
            conn,
            held,
            consistent,
            took_over,
        })
}

proptest! {
    #[test]
    fn event_sequences_keep_invariants(
        start in any_pair(),
        evs in prop::collection::vec(prop::sample::select(Event::ALL), 0..200),
    ) {
        // Valid or not, nothing panics; from a valid pair every accepted
        // transition gives a valid pair, and a refusal changes nothing.
        let mut x = if start.is_valid() { start } else { Pair::SIMPLEX };
        let _ = next(start, Event::Connected);
        for e in evs {
            match next(x, e) {
                Ok(n) => {
                    prop_assert!(n.is_valid(), "{:?} --{:?}--> {:?}", x, e, n);
                    prop_assert_eq!(Pair::decode(n.encode()), Some(n));
                    prop_assert!(n.after_restart().is_valid());
                    x = n;
                }
                Err(err) => {
                    prop_assert_eq!(err.from, x);
                    prop_assert!(!err.message().is_empty());
                }
            }
        }
    }

    #[test]
    fn state_encoding(v in any::<u64>(), x in any_pair()) {
        if let Some(d) = Pair::decode(v) {
            prop_assert!(d.is_valid());
            prop_assert_eq!(d.encode(), v);
        }
        prop_assert_eq!(Pair::decode(x.encode()).is_some(), x.is_valid());
    }
}

fn all_valid_pairs() -> Vec<Pair> {
    let mut v = Vec::new();
    for &state in State::ALL {
        for &role in Role::ALL {
            for &conn in Conn::ALL {
                for bits in 0..8 {
                    let x = Pair {
                        state,
                        role,
                        conn,
                        held: bits & 1 != 0,
                        consistent: bits & 2 != 0,
                        took_over: bits & 4 != 0,
                    };
                    if x.is_valid() {
                        v.push(x);
                    }
                }
            }
        }
    }
    v
}

/// Every accepted (state, role, conn, event) combination of the whole state
/// space appears in the table of [`legal`], so the table is complete.
#[test]
fn legal_table_is_complete() {
    let table = legal();
    let mut accepted = 0;
    let mut missing = Vec::new();
    for x in all_valid_pairs() {
        for &e in Event::ALL {
            if e == Dissolve {
                // Every configured state dissolves to simplex.
                assert_eq!(
                    next(x, e).ok(),
                    (x.state != Simplex).then_some(Pair::SIMPLEX)
                );
                continue;
            }
            if next(x, e).is_ok() {
                accepted += 1;
                if !table.iter().any(|(f, te, _)| {
                    *te == e && (f.state, f.role, f.conn) == (x.state, x.role, x.conn)
                }) {
                    missing.push(format!("{:?} {:?} {:?} {:?}", x.state, x.role, x.conn, e));
                }
            }
        }
    }
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "untested transitions:\n{}",
        missing.join("\n")
    );
    assert!(accepted > table.len());
}
