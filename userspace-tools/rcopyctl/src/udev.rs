//! udev synchronisation of device-mapper ioctls, as libdevmapper does it (the
//! "udev cookie" protocol), so that `rcopyctl up r0 && mkfs /dev/mapper/r0`
//! never races udev.
//!
//! The ioctls that make the kernel send a uevent (resume, remove) carry a
//! value in `dm_ioctl.event_nr`: udev flags in the high 16 bits (always
//! `DM_UDEV_PRIMARY_SOURCE_FLAG`: the event comes from a tool's own
//! activation, not a spurious `change`), and in the low 16 bits the cookie,
//! the key of a System V semaphore (`0x0D4D` << 16 | a random number). The
//! kernel passes `event_nr` to udev as `DM_COOKIE`; the device-mapper rules
//! (`10-dm.rules`, `13-dm-disk.rules`) create `/dev/mapper/NAME` and the
//! `/dev/disk` links, and `95-dm-notify.rules` runs `dmsetup udevcomplete
//! $DM_COOKIE` last, which decrements the semaphore. The sequence:
//!
//! 1. create the semaphore at 1 (our own reference), add 1 for the ioctl;
//! 2. issue the ioctl; if the kernel says no uevent was sent (no
//!    `DM_UEVENT_GENERATED_FLAG` in the reply, e.g. a resume of a device that
//!    was not suspended), take the ioctl's 1 off ourselves;
//! 3. take our own 1 off and wait for zero: udev has then run every rule for
//!    the device; remove the semaphore.
//!
//! When this cannot work, `rcopyctl` does what libdevmapper's fallback does
//! and manages `/dev/mapper/NAME` itself (see `devnode`):
//!
//! - `DM_DISABLE_UDEV` is set (the test VMs set it): the event also tells the
//!   rules to leave `/dev/mapper` alone (`DM_UDEV_DISABLE_DM_RULES_FLAG`,
//!   `DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG`), as libdevmapper does;
//! - udev is not running (no `/run/udev/control`, what libudev checks);
//! - udev runs but without `95-dm-notify.rules` (no lvm2/dmsetup rules
//!   installed): nothing would ever complete the cookie; the rules are told
//!   to leave `/dev/mapper` alone, as above;
//! - the semaphore cannot be created (no System V IPC): likewise.
//!
//! The wait is bounded ([`WAIT`]); a udev that does not answer in time gets
//! a warning, and the node is then checked and made as in the fallback.

use std::ffi::c_int;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Prefix of every cookie (`DM_COOKIE_MAGIC`).
pub const DM_COOKIE_MAGIC: u32 = 0x0D4D;
/// Where the udev flags start in `event_nr`.
pub const DM_UDEV_FLAGS_SHIFT: u32 = 16;
/// The udev flag bits of `event_nr`.
pub const DM_UDEV_FLAGS_MASK: u32 = 0xFFFF_0000;
/// Tells 10-dm.rules not to create `/dev/mapper` links.
pub const DM_UDEV_DISABLE_DM_RULES_FLAG: u16 = 0x0001;
/// Tells subsystem rules (LVM, ...) to leave the device alone.
pub const DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG: u16 = 0x0002;
/// The event comes from the activation itself, not a spurious `change`.
pub const DM_UDEV_PRIMARY_SOURCE_FLAG: u16 = 0x0040;

/// How long to wait for udev to finish with one event.
pub const WAIT: Duration = Duration::from_secs(60);

/// Where udev reads rules from, in order of precedence (a file in an earlier
/// directory hides one of the same name in a later one).
pub const RULES_DIRS: [&str; 5] = [
    "/etc/udev/rules.d",
    "/run/udev/rules.d",
    "/usr/local/lib/udev/rules.d",
    "/usr/lib/udev/rules.d",
    "/lib/udev/rules.d",
];

/// The rule file that completes cookies.
pub const NOTIFY_RULES: &str = "95-dm-notify.rules";

/// `event_nr` for an ioctl with udev `flags` and `cookie` (0: none).
pub fn event_nr(flags: u16, cookie: u32) -> u32 {
    (u32::from(flags) << DM_UDEV_FLAGS_SHIFT) | (cookie & !DM_UDEV_FLAGS_MASK)
}

#[cfg(test)]
/// The semaphore key `dmsetup udevcomplete` derives from `DM_COOKIE`: the
/// flags stripped, the magic put back.
pub fn cookie_of(event_nr: u32) -> u32 {
    (event_nr & !DM_UDEV_FLAGS_MASK) | (DM_COOKIE_MAGIC << DM_UDEV_FLAGS_SHIFT)
}

/// What the machine offers, as far as udev synchronisation goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// `DM_DISABLE_UDEV` is set.
    pub disabled_env: bool,
    /// `/run/udev/control` exists.
    pub udev_running: bool,
    /// The file `95-dm-notify.rules` that udev uses runs `udevcomplete`.
    pub notify_rules: bool,
}

impl Probe {
    /// Looks at this machine.
    pub fn system() -> Probe {
        Probe {
            disabled_env: std::env::var_os("DM_DISABLE_UDEV").is_some(),
            udev_running: Path::new("/run/udev/control").exists(),
            notify_rules: notify_rules_in(&RULES_DIRS.map(PathBuf::from)),
        }
    }
}

/// Whether the `95-dm-notify.rules` udev would use (the first found in
/// `dirs`) completes cookies. A file masked by an empty one (or a link to
/// /dev/null) in an earlier directory does not count.
pub fn notify_rules_in(dirs: &[PathBuf]) -> bool {
    for d in dirs {
        let p = d.join(NOTIFY_RULES);
        if p.symlink_metadata().is_ok() {
            return std::fs::read_to_string(&p).is_ok_and(|t| t.contains("udevcomplete"));
        }
    }
    false
}

/// How an ioctl that raises a uevent is synchronised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Wait on a cookie for udev and its device-mapper rules.
    Sync,
    /// No waiting: rcopyctl makes and removes `/dev/mapper/NAME` itself.
    Fallback {
        /// Why (for messages and tests).
        why: &'static str,
        /// Whether udev is told to keep its device-mapper and subsystem
        /// rules off the device (so that it never races our node).
        rules_off: bool,
    },
}

impl Mode {
    /// The udev flags of the ioctl's `event_nr`.
    pub fn flags(&self) -> u16 {
        match self {
            Mode::Sync
            | Mode::Fallback {
                rules_off: false, ..
            } => DM_UDEV_PRIMARY_SOURCE_FLAG,
            Mode::Fallback {
                rules_off: true, ..
            } => {
                DM_UDEV_PRIMARY_SOURCE_FLAG
                    | DM_UDEV_DISABLE_DM_RULES_FLAG
                    | DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG
            }
        }
    }
}

/// The mode for what `p` found (before trying to create a semaphore).
pub fn decide(p: &Probe) -> Mode {
    if p.disabled_env {
        Mode::Fallback {
            why: "DM_DISABLE_UDEV is set",
            rules_off: true,
        }
    } else if !p.udev_running {
        Mode::Fallback {
            why: "udev is not running",
            rules_off: false,
        }
    } else if !p.notify_rules {
        Mode::Fallback {
            why: "udev has no device-mapper rules (95-dm-notify.rules)",
            rules_off: true,
        }
    } else {
        Mode::Sync
    }
}

/// A notification semaphore, removed on drop.
#[derive(Debug)]
pub struct Cookie {
    semid: c_int,
    value: u32,
}

fn sem_op(semid: c_int, op: i16, flags: c_int) -> io::Result<()> {
    let mut sb = libc::sembuf {
        sem_num: 0,
        sem_op: op,
        sem_flg: flags as i16,
    };
    // SAFETY: `sb` is one valid sembuf that lives across the call.
    if unsafe { libc::semop(semid, &mut sb, 1) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Cookie {
    /// Creates a semaphore under a fresh random cookie, set to 1 (the
    /// waiter's own reference).
    pub fn create() -> io::Result<Cookie> {
        let mut rnd = std::fs::File::open("/dev/urandom")?;
        for _ in 0..64 {
            let mut b = [0u8; 2];
            rnd.read_exact(&mut b)?;
            let base = u32::from(u16::from_ne_bytes(b));
            if base == 0 {
                continue;
            }
            let value = (DM_COOKIE_MAGIC << DM_UDEV_FLAGS_SHIFT) | base;
            // SAFETY: plain system call with integer arguments.
            let semid = unsafe {
                libc::semget(
                    value as libc::key_t,
                    1,
                    0o600 | libc::IPC_CREAT | libc::IPC_EXCL,
                )
            };
            if semid < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EEXIST) {
                    continue;
                }
                return Err(e);
            }
            let c = Cookie { semid, value };
            // SAFETY: SETVAL takes the value as the variadic `union semun`,
            // whose `int val` is its first member.
            if unsafe { libc::semctl(semid, 0, libc::SETVAL, 1 as c_int) } < 0 {
                return Err(io::Error::last_os_error());
            }
            return Ok(c);
        }
        Err(io::Error::other("no free cookie value"))
    }

    /// The cookie (the semaphore's key).
    pub fn value(&self) -> u32 {
        self.value
    }

    /// The semaphore's value.
    #[cfg(test)]
    pub fn count(&self) -> io::Result<i32> {
        // SAFETY: GETVAL takes no further argument.
        let v = unsafe { libc::semctl(self.semid, 0, libc::GETVAL) };
        if v < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(v)
    }

    /// Adds one for an ioctl that is about to be issued.
    pub fn arm(&self) -> io::Result<()> {
        sem_op(self.semid, 1, 0)
    }

    /// Takes one off (what udev does through `dmsetup udevcomplete`).
    pub fn complete(&self) -> io::Result<()> {
        sem_op(self.semid, -1, libc::IPC_NOWAIT)
    }

    /// Takes the waiter's own reference off, then waits until udev has
    /// completed every ioctl armed: `true` if it did within `timeout`.
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        self.complete()?;
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            match sem_op(self.semid, 0, libc::IPC_NOWAIT) {
                Ok(()) => return Ok(true),
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                // Removed under us: nothing left to wait for.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EIDRM | libc::EINVAL)) => {
                    return Ok(true)
                }
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

impl Drop for Cookie {
    fn drop(&mut self) {
        // SAFETY: IPC_RMID takes no further argument.
        unsafe { libc::semctl(self.semid, 0, libc::IPC_RMID) };
    }
}

/// What came of the synchronisation of one ioctl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// udev ran its rules for the event (or there was no event).
    Synced,
    /// udev did not finish within [`WAIT`] (or the wait failed): the message.
    Late(String),
    /// No synchronisation: rcopyctl manages the node; why.
    Unmanaged(&'static str),
}

/// One ioctl that raises a uevent: the cookie armed for it, if any.
#[derive(Debug)]
pub struct Task {
    mode: Mode,
    cookie: Option<Cookie>,
}

impl Task {
    /// Prepares an ioctl for this machine.
    pub fn start() -> Task {
        Task::start_with(decide(&Probe::system()))
    }

    /// Prepares an ioctl in `mode` (a semaphore that cannot be made turns
    /// it into the fallback).
    pub fn start_with(mode: Mode) -> Task {
        if mode != Mode::Sync {
            return Task { mode, cookie: None };
        }
        match Cookie::create().and_then(|c| c.arm().map(|()| c)) {
            Ok(c) => Task {
                mode,
                cookie: Some(c),
            },
            Err(_) => Task {
                mode: Mode::Fallback {
                    why: "no System V semaphore for the udev cookie",
                    rules_off: true,
                },
                cookie: None,
            },
        }
    }

    /// The `event_nr` to send with the ioctl.
    pub fn event_nr(&self) -> u32 {
        event_nr(
            self.mode.flags(),
            self.cookie.as_ref().map_or(0, Cookie::value),
        )
    }

    /// After a successful ioctl: `generated` is whether the kernel sent a
    /// uevent (`DM_UEVENT_GENERATED_FLAG`). Waits for udev, up to `timeout`.
    pub fn finish(self, generated: bool, timeout: Duration) -> Outcome {
        let Some(c) = self.cookie else {
            return match self.mode {
                Mode::Fallback { why, .. } => Outcome::Unmanaged(why),
                Mode::Sync => Outcome::Synced,
            };
        };
        if !generated {
            // No event: udev will not complete the ioctl's part.
            let _ = c.complete();
        }
        match c.wait(timeout) {
            Ok(true) => Outcome::Synced,
            Ok(false) => Outcome::Late(format!(
                "udev did not finish with the device within {} s (cookie {:#x})",
                timeout.as_secs_f64(),
                c.value()
            )),
            Err(e) => Outcome::Late(format!(
                "waiting for udev (cookie {:#x}) failed: {}",
                c.value(),
                crate::error::os_msg(&e)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding() {
        // As libdevmapper: flags high, the cookie's low half low.
        assert_eq!(
            event_nr(DM_UDEV_PRIMARY_SOURCE_FLAG, 0x0D4D_1234),
            0x0040_1234
        );
        assert_eq!(event_nr(DM_UDEV_PRIMARY_SOURCE_FLAG, 0), 0x0040_0000);
        assert_eq!(
            event_nr(
                DM_UDEV_PRIMARY_SOURCE_FLAG
                    | DM_UDEV_DISABLE_DM_RULES_FLAG
                    | DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG,
                0
            ),
            0x0043_0000
        );
        // What dmsetup udevcomplete makes of DM_COOKIE=<event_nr>.
        assert_eq!(cookie_of(0x0040_1234), 0x0D4D_1234);
        assert_eq!(cookie_of(event_nr(0x0043, 0x0D4D_FFFF)), 0x0D4D_FFFF);
    }

    #[test]
    fn modes() {
        let p = |disabled_env, udev_running, notify_rules| Probe {
            disabled_env,
            udev_running,
            notify_rules,
        };
        assert_eq!(decide(&p(false, true, true)), Mode::Sync);
        assert_eq!(Mode::Sync.flags(), DM_UDEV_PRIMARY_SOURCE_FLAG);
        // The test VMs: DM_DISABLE_UDEV, no udev.
        let m = decide(&p(true, false, false));
        assert!(
            matches!(m, Mode::Fallback { rules_off: true, why } if why.contains("DM_DISABLE_UDEV"))
        );
        assert_eq!(m.flags(), 0x0043);
        assert_eq!(decide(&p(true, true, true)).flags(), 0x0043);
        let m = decide(&p(false, false, true));
        assert!(
            matches!(m, Mode::Fallback { rules_off: false, why } if why == "udev is not running")
        );
        assert_eq!(m.flags(), 0x0040);
        let m = decide(&p(false, true, false));
        assert!(
            matches!(m, Mode::Fallback { rules_off: true, why } if why.contains("95-dm-notify"))
        );
        // Without sync there is no cookie in event_nr.
        assert_eq!(Task::start_with(m).event_nr(), 0x0043_0000);
    }

    #[test]
    fn rule_files() {
        let base = std::env::temp_dir().join(format!("rcopyctl-udev-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (etc, lib) = (base.join("etc"), base.join("lib"));
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::create_dir_all(&lib).unwrap();
        let dirs = [etc.clone(), lib.clone()];
        assert!(!notify_rules_in(&dirs));
        std::fs::write(
            lib.join(NOTIFY_RULES),
            "ENV{DM_COOKIE}==\"?*\", RUN+=\"/sbin/dmsetup udevcomplete $env{DM_COOKIE}\"\n",
        )
        .unwrap();
        assert!(notify_rules_in(&dirs));
        // Masked by an empty file of the same name earlier in the path.
        std::fs::write(etc.join(NOTIFY_RULES), "").unwrap();
        assert!(!notify_rules_in(&dirs));
        let _ = std::fs::remove_dir_all(&base);
    }

    /// A Task in sync mode, or `None` where System V semaphores are not
    /// available to this test.
    fn synced_task() -> Option<Task> {
        let t = Task::start_with(Mode::Sync);
        if t.cookie.is_none() {
            eprintln!("no System V semaphores here: skipped");
            return None;
        }
        Some(t)
    }

    #[test]
    fn cookie_protocol_with_a_udev_stand_in() {
        let Some(t) = synced_task() else { return };
        let ev = t.event_nr();
        assert_eq!(
            ev >> DM_UDEV_FLAGS_SHIFT,
            u32::from(DM_UDEV_PRIMARY_SOURCE_FLAG)
        );
        let c = t.cookie.as_ref().unwrap();
        assert_eq!(cookie_of(ev), c.value());
        // Our reference and the ioctl's.
        assert_eq!(c.count().unwrap(), 2);
        // udev: `dmsetup udevcomplete $DM_COOKIE` a little later, on the
        // semaphore found from the event's value alone.
        let udev = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            // SAFETY: plain system call.
            let semid = unsafe { libc::semget(cookie_of(ev) as libc::key_t, 1, 0) };
            assert!(semid >= 0, "{}", io::Error::last_os_error());
            sem_op(semid, -1, libc::IPC_NOWAIT).unwrap();
        });
        let t0 = Instant::now();
        assert_eq!(t.finish(true, Duration::from_secs(10)), Outcome::Synced);
        assert!(t0.elapsed() >= Duration::from_millis(90), "did not wait");
        udev.join().unwrap();
        // The semaphore is gone.
        // SAFETY: plain system call.
        assert!(unsafe { libc::semget(cookie_of(ev) as libc::key_t, 1, 0) } < 0);
    }

    #[test]
    fn no_uevent_means_no_wait() {
        let Some(t) = synced_task() else { return };
        let t0 = Instant::now();
        assert_eq!(t.finish(false, Duration::from_secs(10)), Outcome::Synced);
        assert!(t0.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_silent_udev_times_out() {
        let Some(t) = synced_task() else { return };
        let ev = t.event_nr();
        match t.finish(true, Duration::from_millis(50)) {
            Outcome::Late(m) => {
                assert!(
                    m.starts_with("udev did not finish with the device within 0.05 s"),
                    "{m}"
                )
            }
            o => panic!("{o:?}"),
        }
        // SAFETY: plain system call.
        assert!(unsafe { libc::semget(cookie_of(ev) as libc::key_t, 1, 0) } < 0);
    }

    #[test]
    fn fallback_tasks_do_not_wait() {
        let t = Task::start_with(Mode::Fallback {
            why: "udev is not running",
            rules_off: false,
        });
        assert_eq!(t.event_nr(), 0x0040_0000);
        assert_eq!(
            t.finish(true, WAIT),
            Outcome::Unmanaged("udev is not running")
        );
    }
}
