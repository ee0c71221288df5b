//! `rcopyctl split`, `rejoin` and `refresh`: the local split copy (table option
//! `split_dev`, `rcopy_core::split`).
//!
//! Each is one message to the target (`split`, `rejoin`, `refresh START NR`),
//! which returns at once; the copy work runs in the kernel, which raises a DM
//! event when it ends and shows the state in the status key `split`. With
//! `--wait` the status and the device's event counter are read every 200 ms
//! until the operation's end state is reached after it started (the counter
//! moved, or another state was seen meanwhile), then the counters are compared
//! with those read before the message.

use std::time::{Duration, Instant};

use rcopy_core::status::Status;

use crate::cli::SplitWait;
use crate::dm_ioctl::Control;
use crate::error::{os_msg, Error};
use crate::size::{human_bytes, Size};
use crate::snap::{self, human_duration};
use crate::{commands, open_control, out};

/// How often `--wait` reads the status.
pub const POLL: Duration = Duration::from_millis(200);

/// One of the three operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Freeze the copy (from forming or formed).
    Split,
    /// Join it again (from split, no refresh running); ends formed.
    Rejoin,
    /// Copy the changed tracks of `sectors` sectors from sector `start` (from
    /// split, no refresh running); ends split.
    Refresh { start: u64, sectors: u64 },
}

impl Op {
    /// The command's (and the message's) word.
    pub fn verb(self) -> &'static str {
        match self {
            Op::Split => "split",
            Op::Rejoin => "rejoin",
            Op::Refresh { .. } => "refresh",
        }
    }

    /// The message words.
    pub fn words(self) -> Vec<String> {
        let mut w = vec![self.verb().to_string()];
        if let Op::Refresh { start, sectors } = self {
            w.push(start.to_string());
            w.push(sectors.to_string());
        }
        w
    }

    /// The `split` state the operation ends in.
    pub fn goal(self) -> &'static str {
        match self {
            Op::Rejoin => "formed",
            Op::Split | Op::Refresh { .. } => "split",
        }
    }

    /// The states it may start from.
    fn from(self) -> &'static [&'static str] {
        match self {
            Op::Split => &["forming", "formed"],
            Op::Rejoin | Op::Refresh { .. } => &["split"],
        }
    }

    /// When it is allowed, in words.
    fn when(self) -> &'static str {
        match self {
            Op::Split => {
                "a split is taken while the copy is forming or formed (rejoin a split copy first)"
            }
            Op::Rejoin => "a rejoin needs the state split with no refresh running",
            Op::Refresh { .. } => {
                "a refresh needs the state split with no refresh running (split first; after a \
                 running refresh, wait for split)"
            }
        }
    }

    /// `split`, `rejoin`, `refresh of bytes A..B`.
    fn what(self) -> String {
        match self {
            Op::Refresh { start, sectors } => format!(
                "refresh of bytes {}..{}",
                start * 512,
                (start + sectors) * 512
            ),
            op => op.verb().to_string(),
        }
    }
}

/// A `--offset` or `--length` value: a whole number of 512-byte sectors.
pub fn parse_sector_bytes(s: &str) -> Result<Size, String> {
    let v = crate::size::parse_size_arg(s)?;
    if v.bytes % 512 != 0 {
        return Err(format!(
            "{s:?} is not a multiple of 512 bytes (the extent is given in whole sectors)"
        ));
    }
    Ok(v)
}

/// A `--length` value: [`parse_sector_bytes`], not 0.
pub fn parse_length(s: &str) -> Result<Size, String> {
    let v = parse_sector_bytes(s)?;
    if v.bytes == 0 {
        return Err(format!("{s:?}: the extent is empty"));
    }
    Ok(v)
}

/// The refresh of `length` bytes at `offset` on a device of `size` bytes.
pub fn refresh_op(offset: &Size, length: &Size, size: u64) -> Result<Op, Error> {
    let end = offset.bytes.checked_add(length.bytes);
    if !end.is_some_and(|e| e <= size) {
        return Err(Error::usage(format!(
            "--offset {:?} --length {:?}: the extent ends past the device's end ({} bytes, {})",
            offset.text,
            length.text,
            size,
            human_bytes(size)
        )));
    }
    Ok(Op::Refresh {
        start: offset.bytes / 512,
        sectors: length.bytes / 512,
    })
}

/// The refusal of `op` on `name`, whose split copy is in `state`.
fn refused(name: &str, op: Op, state: &str) -> Error {
    Error::new(format!(
        "cannot {} {name}: its split copy is {state}: {}",
        op.verb(),
        op.when()
    ))
}

/// Checks, before sending, that `name` (status `s`) has a split copy in a state
/// that allows `op`.
pub fn check(name: &str, op: Op, s: &Status) -> Result<(), Error> {
    if s.split == "none" {
        return Err(Error::new(format!(
            "cannot {} {name}: it has no split copy (no split_dev in its table; give one with \
             rcopyctl create --split-dev DEV, or split_dev in its resource file)",
            op.verb()
        )));
    }
    if !op.from().contains(&s.split) {
        return Err(refused(name, op, s.split));
    }
    Ok(())
}

/// The error for a refused message: EBUSY says the state forbids it (`state`:
/// the state read after the refusal).
pub fn send_error(name: &str, op: Op, errno: Option<i32>, why: &str, state: &str) -> Error {
    if errno == Some(libc::EBUSY) {
        let e = refused(name, op, state);
        return Error::new(format!("{e} (the kernel: {why})"));
    }
    Error::new(format!("cannot {} {name}: {why}", op.verb()))
}

/// What one read of the device gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The DM event counter.
    pub event_nr: u32,
    pub status: Status,
}

/// Calls `poll` every `every` until the split state is `goal` and the operation
/// is known to have run: the event counter moved past `event0` (the kernel
/// raises an event when the work ends), or another state was seen on the way.
/// After `timeout`, a timeout error (exit 3). Reads at least once, and once
/// more at the deadline.
pub fn wait_done(
    name: &str,
    goal: &str,
    event0: u32,
    timeout: Option<Duration>,
    every: Duration,
    mut poll: impl FnMut() -> Result<Seen, Error>,
) -> Result<Status, Error> {
    let start = Instant::now();
    let mut moved = false;
    loop {
        let s = poll()?;
        if s.status.split == "none" {
            return Err(Error::new(format!(
                "{name}: its split copy is gone (a table without split_dev was loaded)"
            )));
        }
        moved |= s.event_nr != event0 || s.status.split != goal;
        if moved && s.status.split == goal {
            return Ok(s.status);
        }
        let nap = match timeout {
            Some(t) => {
                let left = t.saturating_sub(start.elapsed());
                if left.is_zero() {
                    return Err(Error::timeout(format!(
                        "{name}: the split copy is still {} after {} (rcopyctl status {name} \
                         shows when it is {goal})",
                        s.status.split,
                        human_duration(t)
                    )));
                }
                every.min(left)
            }
            None => every,
        };
        std::thread::sleep(nap);
    }
}

/// `1 track`, `2 tracks`.
fn tracks(n: u64) -> String {
    format!("{n} track{}", if n == 1 { "" } else { "s" })
}

/// The line `--wait` prints: what the operation copied (the counters after
/// minus those before).
pub fn summary(name: &str, op: Op, before: &Status, after: &Status, took: Duration) -> String {
    let copied = after.split_copied.saturating_sub(before.split_copied);
    let cow = after.split_cow.saturating_sub(before.split_cow);
    let took = human_duration(took);
    match op {
        Op::Split => format!(
            "{name}: split in {took}: the copy holds the image of the split ({} copied, {cow} \
             of them before an overwrite; {} written since)",
            tracks(copied),
            tracks(after.split_changed)
        ),
        Op::Rejoin => format!(
            "{name}: rejoined in {took}: the copy is formed again ({} copied)",
            tracks(copied)
        ),
        Op::Refresh { .. } => format!(
            "{name}: {} done in {took}: {} copied; {} written since the split still differ",
            op.what(),
            tracks(copied),
            tracks(after.split_changed)
        ),
    }
}

/// The line printed without `--wait`; `state` is read just after the message
/// (the kernel may not have started yet: the work runs in its own thread).
pub fn requested(name: &str, op: Op, state: &str) -> String {
    let (what, goal) = (op.what(), op.goal());
    if state == goal && op.from().contains(&state) {
        // A refresh: started or not, done or not, it says split.
        format!(
            "{name}: {what} requested (rcopyctl status {name} shows refreshing while it runs, \
             then split)"
        )
    } else if op.from().contains(&state) {
        format!(
            "{name}: {what} requested, not started yet (the split copy is still {state}; \
             rcopyctl status {name} shows {goal} when it is done)"
        )
    } else if state == goal {
        format!("{name}: {what} requested; the split copy is {goal}")
    } else {
        format!(
            "{name}: {what} requested; the split copy is {state} (rcopyctl status {name} shows \
             {goal} when it is done)"
        )
    }
}

/// Reads the status and the event counter of `name`.
fn read(ctl: &Control, name: &str) -> Result<Seen, Error> {
    let event_nr = ctl
        .info(name)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => Error::new(format!("device {name} does not exist")),
            _ => Error::new(format!("cannot read {name}: {}", os_msg(&e))),
        })?
        .event_nr;
    Ok(Seen {
        event_nr,
        status: commands::device_status(ctl, name)?,
    })
}

/// What `refresh` was asked for: the extent in bytes, as typed.
#[derive(Debug, Clone, Copy)]
pub enum Ask<'a> {
    Split,
    Rejoin,
    Refresh { offset: &'a Size, length: &'a Size },
}

/// Runs `rcopyctl split`, `rejoin` or `refresh`.
pub fn run(name: &str, ask: Ask<'_>, w: SplitWait) -> Result<(), Error> {
    let ctl = open_control()?;
    let before = read(&ctl, name)?;
    let op = match ask {
        Ask::Split => Op::Split,
        Ask::Rejoin => Op::Rejoin,
        Ask::Refresh { offset, length } => refresh_op(offset, length, before.status.size)?,
    };
    check(name, op, &before.status)?;
    let t0 = Instant::now();
    if let Err(r) = snap::send(&ctl, name, &op.words()) {
        let state = read(&ctl, name).map_or("unknown", |s| s.status.split);
        return Err(send_error(name, op, r.errno, &r.why, state));
    }
    if !w.wait {
        out(&requested(name, op, read(&ctl, name)?.status.split));
        return Ok(());
    }
    let after = wait_done(name, op.goal(), before.event_nr, w.timeout, POLL, || {
        read(&ctl, name)
    })?;
    out(&summary(name, op, &before.status, &after, t0.elapsed()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(split: &'static str) -> Status {
        Status {
            split,
            ..Status::default()
        }
    }

    #[test]
    fn messages() {
        assert_eq!(Op::Split.words(), vec!["split"]);
        assert_eq!(Op::Rejoin.words(), vec!["rejoin"]);
        let sz = |b: u64| Size::bytes(b);
        let op = refresh_op(&sz(40 << 20), &sz(1 << 20), 64 << 20).unwrap();
        assert_eq!(
            op,
            Op::Refresh {
                start: 81920,
                sectors: 2048
            }
        );
        assert_eq!(op.words(), vec!["refresh", "81920", "2048"]);
        assert_eq!(op.goal(), "split");
        assert_eq!(Op::Rejoin.goal(), "formed");
        // Up to the end, not past it.
        assert!(refresh_op(&sz(63 << 20), &sz(1 << 20), 64 << 20).is_ok());
        let e = refresh_op(&sz(63 << 20), &sz(2 << 20), 64 << 20).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("past the device's end"), "{e}");
        assert!(refresh_op(&sz(u64::MAX - 511), &sz(1024), 64 << 20).is_err());
    }

    #[test]
    fn extent_values() {
        assert_eq!(parse_sector_bytes("40M").unwrap().bytes, 40 << 20);
        assert_eq!(parse_sector_bytes("0").unwrap().bytes, 0);
        assert_eq!(parse_sector_bytes("1536").unwrap().bytes, 1536);
        let e = parse_sector_bytes("1000").unwrap_err();
        assert!(e.contains("\"1000\" is not a multiple of 512"), "{e}");
        assert!(parse_sector_bytes("1.5M").is_err());
        assert!(parse_length("0").unwrap_err().contains("empty"));
        assert!(parse_length("4K").is_ok());
    }

    #[test]
    fn states_allow_what_the_kernel_allows() {
        for s in ["forming", "formed"] {
            assert!(check("r0", Op::Split, &st(s)).is_ok(), "{s}");
            assert!(check("r0", Op::Rejoin, &st(s)).is_err(), "{s}");
        }
        let refresh = Op::Refresh {
            start: 0,
            sectors: 8,
        };
        assert!(check("r0", Op::Rejoin, &st("split")).is_ok());
        assert!(check("r0", refresh, &st("split")).is_ok());
        for s in ["splitting", "split", "refreshing"] {
            let e = check("r0", Op::Split, &st(s)).unwrap_err();
            assert_eq!(e.exit_code(), 1);
            assert_eq!(
                e.to_string(),
                format!(
                    "cannot split r0: its split copy is {s}: a split is taken while the copy is \
                     forming or formed (rejoin a split copy first)"
                )
            );
        }
        let e = check("r0", refresh, &st("refreshing")).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "cannot refresh r0: its split copy is refreshing: a refresh needs the state split"
            ),
            "{e}"
        );
        let e = check("r0", Op::Rejoin, &st("splitting")).unwrap_err();
        assert!(
            e.to_string().contains("a rejoin needs the state split"),
            "{e}"
        );
        // No split_dev (or a module without split copies: the key is absent).
        let e = check("r0", Op::Split, &Status::default()).unwrap_err();
        assert!(
            e.to_string().contains("it has no split copy (no split_dev"),
            "{e}"
        );
        // The kernel's EBUSY, in words; other errors as the kernel gave them.
        let e = send_error("r0", Op::Split, Some(libc::EBUSY), "split: busy", "split");
        assert!(
            e.to_string()
                .starts_with("cannot split r0: its split copy is split: "),
            "{e}"
        );
        assert!(e.to_string().ends_with("(the kernel: split: busy)"), "{e}");
        let e = send_error(
            "r0",
            Op::Rejoin,
            Some(libc::EINVAL),
            "unknown message: rejoin",
            "none",
        );
        assert_eq!(e.to_string(), "cannot rejoin r0: unknown message: rejoin");
    }

    /// A poll that answers `states` in turn (the last one for ever), with the
    /// event counter `events`.
    fn script(
        states: &'static [(&'static str, u32)],
    ) -> (
        impl FnMut() -> Result<Seen, Error>,
        std::rc::Rc<std::cell::Cell<usize>>,
    ) {
        let n = std::rc::Rc::new(std::cell::Cell::new(0));
        let c = n.clone();
        let f = move || {
            let i = c.get();
            c.set(i + 1);
            let (s, e) = states[i.min(states.len() - 1)];
            Ok(Seen {
                event_nr: e,
                status: st(s),
            })
        };
        (f, n)
    }

    #[test]
    fn waits_for_the_end_state_after_the_start() {
        let ms = Duration::from_millis(1);
        // splitting, then split.
        let (f, n) = script(&[("splitting", 4), ("splitting", 4), ("split", 5)]);
        let s = wait_done("r0", "split", 4, None, ms, f).unwrap();
        assert_eq!((s.split, n.get()), ("split", 3));
        // Done before the first read: the event counter says it ran.
        let (f, n) = script(&[("split", 5)]);
        wait_done("r0", "split", 4, None, ms, f).unwrap();
        assert_eq!(n.get(), 1);
        // A refresh not started yet (still split, no event): wait on.
        let (f, n) = script(&[("split", 4), ("refreshing", 4), ("split", 4)]);
        wait_done("r0", "split", 4, None, ms, f).unwrap();
        assert_eq!(n.get(), 3);
        // A rejoin: forming, then formed with its event.
        let (f, _) = script(&[("forming", 7), ("formed", 8)]);
        assert_eq!(
            wait_done("r0", "formed", 7, None, ms, f).unwrap().split,
            "formed"
        );
    }

    #[test]
    fn wait_times_out_or_fails() {
        let (f, n) = script(&[("split", 4)]);
        let e = wait_done(
            "r0",
            "split",
            4,
            Some(Duration::ZERO),
            Duration::from_millis(1),
            f,
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert_eq!(
            e.to_string(),
            "r0: the split copy is still split after 0 ms (rcopyctl status r0 shows when it is split)"
        );
        assert_eq!(n.get(), 1);
        let t0 = Instant::now();
        let (f, _) = script(&[("splitting", 1)]);
        let e = wait_done(
            "r0",
            "split",
            1,
            Some(Duration::from_millis(150)),
            Duration::from_millis(50),
            f,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("still splitting after 150 ms"),
            "{e}"
        );
        assert!(t0.elapsed() >= Duration::from_millis(150));
        let (f, _) = script(&[("splitting", 1), ("none", 2)]);
        let e = wait_done("r0", "split", 1, None, Duration::from_millis(1), f).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(e.to_string().contains("split copy is gone"), "{e}");
        let e = wait_done("r0", "split", 1, None, Duration::from_millis(1), || {
            Err(Error::new("device r0 does not exist"))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "device r0 does not exist");
    }

    #[test]
    fn summaries() {
        let mut b = st("formed");
        b.split_copied = 10;
        b.split_cow = 1;
        let mut a = st("split");
        a.split_copied = 1034;
        a.split_cow = 38;
        a.split_changed = 1;
        let t = Duration::from_millis(3200);
        assert_eq!(
            summary("r0", Op::Split, &b, &a, t),
            "r0: split in 3.200 s: the copy holds the image of the split (1024 tracks copied, \
             37 of them before an overwrite; 1 track written since)"
        );
        assert_eq!(
            summary("r0", Op::Rejoin, &b, &a, t),
            "r0: rejoined in 3.200 s: the copy is formed again (1024 tracks copied)"
        );
        let op = Op::Refresh {
            start: 81920,
            sectors: 2048,
        };
        assert_eq!(
            summary("r0", op, &b, &a, t),
            "r0: refresh of bytes 41943040..42991616 done in 3.200 s: 1024 tracks copied; \
             1 track written since the split still differ"
        );
        // Counters reset by a reload meanwhile: never negative.
        assert!(summary("r0", Op::Split, &a, &b, t).contains("(0 tracks copied, 0 of them"));
        assert_eq!(
            requested("r0", Op::Split, "splitting"),
            "r0: split requested; the split copy is splitting (rcopyctl status r0 shows split \
             when it is done)"
        );
        assert_eq!(
            requested("r0", Op::Rejoin, "formed"),
            "r0: rejoin requested; the split copy is formed"
        );
        assert_eq!(
            requested("r0", Op::Split, "formed"),
            "r0: split requested, not started yet (the split copy is still formed; rcopyctl \
             status r0 shows split when it is done)"
        );
        let op = Op::Refresh {
            start: 0,
            sectors: 8,
        };
        assert_eq!(
            requested("r0", op, "split"),
            "r0: refresh of bytes 0..4096 requested (rcopyctl status r0 shows refreshing while \
             it runs, then split)"
        );
        assert!(requested("r0", op, "refreshing").contains("the split copy is refreshing"));
    }
}
