//! One bad value for every value-taking argument of every command: each
//! must exit 2 with a message quoting what was typed (`"value"` or
//! `'value'`). Shared by the `bad_values` integration test (which runs the
//! binary) and a unit test in `src/cli.rs` (which checks that no argument
//! of the command-line definition is missing here).

/// A bad value for one argument.
pub struct Case {
    /// The command (first word).
    pub cmd: &'static str,
    /// The argument: `--long`, or `<id>` for a positional.
    pub arg: &'static str,
    /// The whole command line after `rcopyctl`.
    pub line: &'static [&'static str],
    /// The bad value as typed, quoted in the message (for a secret: never
    /// shown; the flag is named instead).
    pub typed: &'static str,
    /// The value is a secret: the message must not show it.
    pub secret: bool,
}

const fn c(
    cmd: &'static str,
    arg: &'static str,
    line: &'static [&'static str],
    typed: &'static str,
) -> Case {
    Case {
        cmd,
        arg,
        line,
        typed,
        secret: false,
    }
}

/// Devices that do not exist: every check of a flag comes before any device
/// is opened, so a case that reaches them has been let through.
macro_rules! create {
    ($cmd:literal, $($w:literal),*) => {
        &[$cmd, "r0", "--data", "/nonexistent/a", "--meta", "/nonexistent/b", $($w),*]
    };
}

macro_rules! pair {
    ($cmd:literal, $($w:literal),*) => {
        create!($cmd, "--role", "primary", "--peer", "10.77.0.2:7788", "--secret", "k", $($w),*)
    };
}

pub const CASES: &[Case] = &[
    // create and pair (the same flags).
    c(
        "create",
        "<name>",
        &["create", "a/b", "--data", "x", "--meta", "y"],
        "a/b",
    ),
    c(
        "create",
        "--data",
        &["create", "r0", "--data", "", "--meta", "y"],
        "",
    ),
    c(
        "create",
        "--meta",
        &["create", "r0", "--data", "x", "--meta", ""],
        "",
    ),
    c(
        "create",
        "--track-size",
        create!("create", "--track-size", "3000"),
        "3000",
    ),
    c(
        "create",
        "--track-size",
        create!("create", "--track-size", "1.5M"),
        "1.5M",
    ),
    c(
        "create",
        "--role",
        create!("create", "--role", "primry"),
        "primry",
    ),
    c(
        "create",
        "--peer",
        create!(
            "create",
            "--role",
            "primary",
            "--secret",
            "k",
            "--peer",
            "10.0.0:7788"
        ),
        "10.0.0:7788",
    ),
    c(
        "create",
        "--local",
        create!(
            "create",
            "--role",
            "secondary",
            "--secret",
            "k",
            "--local",
            "beta"
        ),
        "beta",
    ),
    c(
        "create",
        "--mode",
        pair!("create", "--mode", "semi"),
        "semi",
    ),
    c(
        "create",
        "--secret-file",
        create!(
            "create",
            "--role",
            "primary",
            "--peer",
            "10.77.0.2:7788",
            "--secret-file",
            ""
        ),
        "",
    ),
    Case {
        cmd: "create",
        arg: "--secret",
        line: create!(
            "create",
            "--role",
            "primary",
            "--peer",
            "10.77.0.2:7788",
            "--secret",
            "two words"
        ),
        typed: "two words",
        secret: true,
    },
    c(
        "create",
        "--pair-id",
        pair!("create", "--pair-id", "a b"),
        "a b",
    ),
    c(
        "create",
        "--cache-size",
        pair!("create", "--cache-size", "100G"),
        "100G",
    ),
    c(
        "create",
        "--cache-size",
        pair!("create", "--cache-size", "lots"),
        "lots",
    ),
    c(
        "create",
        "--timeout-ms",
        pair!("create", "--timeout-ms", "5s"),
        "5s",
    ),
    c(
        "create",
        "--resync-rate",
        pair!("create", "--resync-rate", "fast"),
        "fast",
    ),
    c(
        "pair",
        "<name>",
        &[
            "pair", "", "--data", "x", "--meta", "y", "--role", "primary",
        ],
        "",
    ),
    c(
        "pair",
        "--data",
        &[
            "pair", "r0", "--data", "", "--meta", "y", "--role", "primary",
        ],
        "",
    ),
    c(
        "pair",
        "--meta",
        &[
            "pair", "r0", "--data", "x", "--meta", "", "--role", "primary",
        ],
        "",
    ),
    c(
        "pair",
        "--track-size",
        pair!("pair", "--track-size", "64k5"),
        "64k5",
    ),
    c(
        "pair",
        "--role",
        create!(
            "pair",
            "--role",
            "master",
            "--peer",
            "10.77.0.2:7788",
            "--secret",
            "k"
        ),
        "master",
    ),
    c(
        "pair",
        "--peer",
        create!(
            "pair",
            "--role",
            "primary",
            "--secret",
            "k",
            "--peer",
            "[::1]7788"
        ),
        "[::1]7788",
    ),
    c(
        "pair",
        "--peer",
        create!(
            "pair",
            "--role",
            "primary",
            "--secret",
            "k",
            "--peer",
            "[fe80::1%eth0]:7788"
        ),
        "[fe80::1%eth0]:7788",
    ),
    c(
        "pair",
        "--local",
        create!(
            "pair",
            "--role",
            "secondary",
            "--secret",
            "k",
            "--local",
            "10.77.0.2:0"
        ),
        "10.77.0.2:0",
    ),
    c("pair", "--mode", pair!("pair", "--mode", "asnyc"), "asnyc"),
    c(
        "pair",
        "--secret-file",
        create!(
            "pair",
            "--role",
            "primary",
            "--peer",
            "10.77.0.2:7788",
            "--secret-file",
            ""
        ),
        "",
    ),
    Case {
        cmd: "pair",
        arg: "--secret",
        line: create!(
            "pair",
            "--role",
            "primary",
            "--peer",
            "10.77.0.2:7788",
            "--secret",
            "back\\slash"
        ),
        typed: "back\\slash",
        secret: true,
    },
    c("pair", "--pair-id", pair!("pair", "--pair-id", ""), ""),
    c(
        "pair",
        "--cache-size",
        pair!("pair", "--cache-size", "512K"),
        "512K",
    ),
    c(
        "pair",
        "--timeout-ms",
        pair!("pair", "--timeout-ms", "499"),
        "499",
    ),
    c(
        "pair",
        "--resync-rate",
        pair!("pair", "--resync-rate", "-1"),
        "-1",
    ),
    // Metadata.
    c(
        "create-md",
        "<meta>",
        &["create-md", "", "--data", "/nonexistent/d"],
        "",
    ),
    c(
        "create-md",
        "--data",
        &["create-md", "/nonexistent/m", "--data", ""],
        "",
    ),
    c(
        "create-md",
        "--track-size",
        &[
            "create-md",
            "/nonexistent/m",
            "--data",
            "/nonexistent/d",
            "--track-size",
            "3000",
        ],
        "3000",
    ),
    c(
        "create-md",
        "--pair-id",
        &[
            "create-md",
            "/nonexistent/m",
            "--data",
            "/nonexistent/d",
            "--pair-id",
            "a b",
        ],
        "a b",
    ),
    c("inspect-md", "<meta>", &["inspect-md", ""], ""),
    // The split copy.
    c(
        "create",
        "--split-dev",
        create!("create", "--split-dev", ""),
        "",
    ),
    c(
        "create",
        "--split-dev",
        create!("create", "--split-dev", "/dev/a b"),
        "/dev/a b",
    ),
    c(
        "pair",
        "--split-dev",
        pair!("pair", "--split-dev", "/dev/a\\b"),
        "/dev/a\\b",
    ),
    c("split", "<name>", &["split", "a/b"], "a/b"),
    c(
        "split",
        "--timeout",
        &["split", "r0", "--wait", "--timeout", "1.5s"],
        "1.5s",
    ),
    c("rejoin", "<name>", &["rejoin", ""], ""),
    c(
        "rejoin",
        "--timeout",
        &["rejoin", "r0", "--wait", "--timeout", "soon"],
        "soon",
    ),
    c(
        "refresh",
        "<name>",
        &["refresh", "control", "--offset", "0", "--length", "4K"],
        "control",
    ),
    c(
        "refresh",
        "--offset",
        &["refresh", "r0", "--offset", "1000", "--length", "4K"],
        "1000",
    ),
    c(
        "refresh",
        "--length",
        &["refresh", "r0", "--offset", "0", "--length", "0"],
        "0",
    ),
    c(
        "refresh",
        "--length",
        &["refresh", "r0", "--offset", "0", "--length", "1.5M"],
        "1.5M",
    ),
    c(
        "refresh",
        "--timeout",
        &[
            "refresh",
            "r0",
            "--offset",
            "0",
            "--length",
            "4K",
            "--wait",
            "--timeout",
            "-3",
        ],
        "-3",
    ),
    // Snapshots.
    c(
        "create",
        "--snap-store",
        create!("create", "--snap-store", ""),
        "",
    ),
    c(
        "pair",
        "--snap-store",
        pair!("pair", "--snap-store", ""),
        "",
    ),
    c(
        "pair",
        "--snap-store",
        pair!("pair", "--snap-store", "/dev/a b"),
        "/dev/a b",
    ),
    c("snapshot", "<name>", &["snapshot", "a/b"], "a/b"),
    c(
        "snapshot",
        "<snapname>",
        &["snapshot", "r0", "night ly"],
        "night ly",
    ),
    c("snapshot", "<snapname>", &["snapshot", "r0", "a/b"], "a/b"),
    c("snapshot", "<snapname>", &["snapshot", "r0", ""], ""),
    c(
        "snapshot",
        "--timeout",
        &["snapshot", "r0", "--timeout", "1.5s"],
        "1.5s",
    ),
    c(
        "snapshot",
        "--timeout",
        &["snapshot", "r0", "--timeout", "10x"],
        "10x",
    ),
    c("mark", "<name>", &["mark", "a/b"], "a/b"),
    c(
        "mark",
        "--timeout",
        &["mark", "r0", "--timeout", "1.5s"],
        "1.5s",
    ),
    c("snapshots", "<name>", &["snapshots", ""], ""),
    c(
        "snapshot-delete",
        "<name>",
        &["snapshot-delete", "a/b", "1"],
        "a/b",
    ),
    c(
        "snapshot-delete",
        "<snapshot>",
        &["snapshot-delete", "r0", "x y"],
        "x y",
    ),
    c(
        "snapshot-activate",
        "<name>",
        &["snapshot-activate", "", "1"],
        "",
    ),
    c(
        "snapshot-activate",
        "<snapshot>",
        &["snapshot-activate", "r0", "a/b"],
        "a/b",
    ),
    c(
        "snapshot-activate",
        "--name",
        &["snapshot-activate", "r0", "1", "--name", "x/y"],
        "x/y",
    ),
    c(
        "snapshot-deactivate",
        "<device>",
        &["snapshot-deactivate", "control"],
        "control",
    ),
    c(
        "snapshot-verify",
        "<name>",
        &["snapshot-verify", "a/b", "1"],
        "a/b",
    ),
    c(
        "snapshot-verify",
        "<snapshot>",
        &["snapshot-verify", "r0", "x y"],
        "x y",
    ),
    c(
        "snapshot-rollback",
        "<name>",
        &["snapshot-rollback", "a/b", "1"],
        "a/b",
    ),
    c(
        "snapshot-rollback",
        "<snapshot>",
        &["snapshot-rollback", "r0", "ab,c"],
        "ab,c",
    ),
    c(
        "promote",
        "--rollback",
        &["promote", "r0", "--rollback", "pre resync"],
        "pre resync",
    ),
    c(
        "promote",
        "--rollback",
        &["promote", "r0", "--rollback=a/b"],
        "a/b",
    ),
    // Snapshot stores.
    c(
        "create-store",
        "<store>",
        &["create-store", "", "--data", "/nonexistent/d"],
        "",
    ),
    c(
        "create-store",
        "--data",
        &["create-store", "/nonexistent/s", "--data", ""],
        "",
    ),
    c(
        "create-store",
        "--size",
        &["create-store", "/nonexistent/s", "--size", "1.5G"],
        "1.5G",
    ),
    c(
        "create-store",
        "--size",
        &["create-store", "/nonexistent/s", "--size", "1000"],
        "1000",
    ),
    c(
        "create-store",
        "--size",
        &["create-store", "/nonexistent/s", "--size", "0"],
        "0",
    ),
    c(
        "create-store",
        "--track-size",
        &[
            "create-store",
            "/nonexistent/s",
            "--data",
            "/nonexistent/d",
            "--track-size",
            "3000",
        ],
        "3000",
    ),
    c(
        "create-store",
        "--pair-id",
        &[
            "create-store",
            "/nonexistent/s",
            "--size",
            "1G",
            "--pair-id",
            "a b",
        ],
        "a b",
    ),
    c("inspect-store", "<store>", &["inspect-store", ""], ""),
    // Devices.
    c("remove", "<name>", &["remove", "control"], "control"),
    c("status", "<name>", &["status", "a/b"], "a/b"),
    c("metrics", "<name>", &["metrics", ""], ""),
    c("events", "<name>", &["events", ".."], ".."),
    c(
        "wait",
        "<name>",
        &["wait", "a/b", "--state", "duplex"],
        "a/b",
    ),
    c(
        "wait",
        "--state",
        &["wait", "r0", "--state", "synced"],
        "synced",
    ),
    c(
        "wait",
        "--timeout",
        &["wait", "r0", "--state", "duplex", "--timeout", "5s"],
        "5s",
    ),
    c("disconnect", "<name>", &["disconnect", "a/b"], "a/b"),
    c("connect", "<name>", &["connect", "a/b"], "a/b"),
    c("message", "<name>", &["message", "a/b", "version"], "a/b"),
    // Resources.
    c("up", "<names>", &["up", "a/b"], "a/b"),
    c("up", "--config-dir", &["up", "r0", "--config-dir", ""], ""),
    c("up", "--host", &["up", "r0", "--host", ""], ""),
    c("down", "<names>", &["down", "r0", ""], ""),
    c(
        "down",
        "--config-dir",
        &["down", "--all", "--config-dir", ""],
        "",
    ),
    c(
        "down",
        "--host",
        &["down", "r0", "--host", "al pha"],
        "al pha",
    ),
    c("adjust", "<names>", &["adjust", "x/y"], "x/y"),
    c(
        "adjust",
        "--config-dir",
        &["adjust", "r0", "--config-dir", ""],
        "",
    ),
    c(
        "adjust",
        "--host",
        &["adjust", "r0", "--host", "a/b"],
        "a/b",
    ),
    // Takeover.
    c("promote", "<name>", &["promote", "a/b"], "a/b"),
    c(
        "promote",
        "--peer",
        &["promote", "r0", "--peer", "10.0.0.1"],
        "10.0.0.1",
    ),
    c(
        "promote",
        "--config-dir",
        &["promote", "r0", "--config-dir", ""],
        "",
    ),
    c("promote", "--host", &["promote", "r0", "--host", ""], ""),
    c("demote", "<name>", &["demote", ""], ""),
    c(
        "demote",
        "--local",
        &["demote", "r0", "--local", "::1:7788"],
        "::1:7788",
    ),
    c(
        "demote",
        "--config-dir",
        &["demote", "r0", "--config-dir", ""],
        "",
    ),
    c("demote", "--host", &["demote", "r0", "--host", ""], ""),
    c("switchover", "<name>", &["switchover", "a/b"], "a/b"),
    c(
        "switchover",
        "--local",
        &["switchover", "r0", "--local", "[::1]"],
        "[::1]",
    ),
    c(
        "switchover",
        "--config-dir",
        &["switchover", "r0", "--config-dir", ""],
        "",
    ),
    c(
        "switchover",
        "--host",
        &["switchover", "r0", "--host", ""],
        "",
    ),
    c(
        "resolve",
        "<name>",
        &["resolve", "a/b", "--keep-local"],
        "a/b",
    ),
    c("unpair", "<name>", &["unpair", "a/b"], "a/b"),
    // Build-time generators.
    c("completions", "<shell>", &["completions", "tcsh"], "tcsh"),
];

/// Value-taking arguments with no bad value: any word is taken.
pub const FREE: &[(&str, &str, &str)] = &[(
    "message",
    "<words>",
    "the message words go to the kernel target, which judges them",
)];
