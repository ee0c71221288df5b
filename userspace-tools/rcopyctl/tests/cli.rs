//! The rcopyctl binary's exit codes and messages for what needs no
//! device-mapper: usage errors exit 2 quoting what was typed, failures 1.

use std::path::PathBuf;
use std::process::Command;

fn rcopyctl(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_rcopyctl"))
        .args(args)
        .output()
        .expect("run rcopyctl");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A fresh directory under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("rcopyctl-cli-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const PAIR: [&str; 6] = [
    "pair",
    "r0",
    "--data",
    "/nonexistent/a",
    "--meta",
    "/nonexistent/b",
];

fn pair(extra: &[&str]) -> (i32, String, String) {
    let mut a: Vec<&str> = PAIR.to_vec();
    a.extend_from_slice(extra);
    rcopyctl(&a)
}

#[test]
fn bad_flag_values_exit_2_quoting_what_was_typed() {
    let prim = ["--peer", "10.77.0.2:7788", "--secret", "k"];
    let (code, _, err) = pair(&[&["--role", "primry"], &prim[..]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--role \"primry\""), "{err}");
    assert!(err.contains("did you mean \"primary\"?"), "{err}");

    let (code, _, err) = pair(&[&["--role", "primary", "--timeout-ms", "5s"], &prim[..]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--timeout-ms \"5s\""), "{err}");

    let (code, _, err) =
        pair(&[&["--role", "primary", "--track-size", "3000"], &prim[..]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--track-size \"3000\""), "{err}");

    let (code, _, err) =
        pair(&[&["--role", "primary", "--cache-size", "100G"], &prim[..]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--cache-size \"100G\""), "{err}");
    assert!(!err.contains("107374182400"), "{err}");

    let (code, _, err) =
        pair(&[&["--role", "primary", "--track-size", "1.5M"], &prim[..]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("'1.5M'"), "{err}");
    assert!(err.contains("fractions are not accepted"), "{err}");

    // A missing device is not a usage error.
    let (code, _, err) = pair(&[&["--role", "primary"], &prim[..]].concat());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/nonexistent/a"), "{err}");
}

#[test]
fn typos_get_suggestions() {
    let (code, _, err) = rcopyctl(&["status", "--jsno"]);
    assert_eq!(code, 2);
    assert!(err.contains("--json"), "{err}");
    let (code, _, err) = rcopyctl(&["stauts"]);
    assert_eq!(code, 2);
    assert!(err.contains("status"), "{err}");
    let (code, _, err) = rcopyctl(&["wait", "r0", "--state", "duplx"]);
    assert_eq!(code, 2);
    assert!(err.contains("did you mean \"duplex\"?"), "{err}");
}

#[test]
fn old_command_names_are_aliases() {
    let (code, out, _) = rcopyctl(&["disconnect", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("Stop replicating"), "{out}");
    let (code, out, _) = rcopyctl(&["suspend", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("Stop replicating"), "{out}");
    let (code, out, _) = rcopyctl(&["resume", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("Replicate again"), "{out}");
}

#[test]
fn status_json_is_always_an_array() {
    // Whatever this machine has (no device-mapper, no permission, no
    // devices), stdout is a JSON array.
    for args in [
        &["status", "--json"][..],
        &["status", "nosuchdevice", "--json"][..],
    ] {
        let (code, out, err) = rcopyctl(args);
        let v: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out:?} {err}"));
        assert!(v.is_array(), "{out}");
        if args.len() == 3 {
            assert_eq!(code, 1, "{err}");
            assert_eq!(v.as_array().unwrap().len(), 0);
        }
    }
    let (code, out, _) = rcopyctl(&["status", "nosuchdevice", "--check"]);
    assert_eq!(code, 4);
    assert_eq!(out, "");
}

#[test]
fn wait_on_a_missing_device_exits_1() {
    let (code, _, err) = rcopyctl(&[
        "wait",
        "nosuchdevice",
        "--state",
        "duplex",
        "--timeout",
        "1",
    ]);
    assert_eq!(code, 1, "{err}");
}

#[test]
fn resource_file_errors_exit_2_with_position() {
    let d = TempDir::new("res");
    std::fs::write(
        d.0.join("r0.toml"),
        "mode = \"sync\"\n[host.a]\nrole = \"primary\"\ndata = \"/dev/vda\"\nmeta = \"/dev/vdb\"\n\
         address = \"10.77.0.1:7788\"\n[host.b]\nrole = \"secondry\"\ndata = \"/dev/vda\"\n\
         meta = \"/dev/vdb\"\naddress = \"10.77.0.2:7788\"\n",
    )
    .unwrap();
    for cmd in ["up", "adjust"] {
        let (code, _, err) = rcopyctl(&[cmd, "r0", "--config-dir", d.path(), "--host", "a"]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains(&format!(
                "{}/r0.toml:8:8: role \"secondry\": must be primary or secondary; did you mean \"secondary\"?",
                d.path()
            )),
            "{err}"
        );
    }
    let (code, _, err) = rcopyctl(&["up", "r9", "--config-dir", d.path()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("r9.toml"), "{err}");
    let (code, _, err) = rcopyctl(&["up", "--config-dir", d.path()]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn create_md_refuses_an_ext4_image() {
    let d = TempDir::new("md");
    let meta = d.0.join("meta.img");
    let data = d.0.join("data.img");
    for (p, len) in [(&meta, 64u64 << 20), (&data, 256 << 20)] {
        std::fs::File::create(p).unwrap().set_len(len).unwrap();
    }
    let made = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "precious"])
        .arg(&meta)
        .status();
    if !matches!(made, Ok(s) if s.success()) {
        eprintln!("mkfs.ext4 not available: skipped");
        return;
    }
    let before = std::fs::read(&meta).unwrap();
    let (m, dd) = (meta.to_str().unwrap(), data.to_str().unwrap());
    let (code, _, err) = rcopyctl(&["create-md", m, "--data", dd]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("holds an ext4 filesystem (label \"precious\"): refusing to overwrite it (use --force to overwrite)"),
        "{err}"
    );
    assert!(
        std::fs::read(&meta).unwrap() == before,
        "the image was changed"
    );
    let (code, out, err) = rcopyctl(&["create-md", m, "--data", dd, "--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("wrote rcopy metadata"), "{out}");
}

#[test]
fn takeover_commands_on_a_missing_device_exit_1() {
    // No device-mapper, no permission or no such device: a failure, never a
    // usage error, and nothing on stdout.
    for args in [
        &["promote", "nosuchdevice"][..],
        &[
            "promote",
            "nosuchdevice",
            "--force",
            "--peer",
            "10.0.0.1:7788",
        ][..],
        &["demote", "nosuchdevice"][..],
        &[
            "demote",
            "nosuchdevice",
            "--no-handover",
            "--local",
            "10.0.0.1:7788",
        ][..],
        &["switchover", "nosuchdevice"][..],
        &["failback", "nosuchdevice"][..],
        &["resolve", "nosuchdevice", "--keep-local"][..],
        &["resolve", "nosuchdevice", "--discard-local"][..],
        &["unpair", "nosuchdevice"][..],
    ] {
        let (code, out, err) = rcopyctl(args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert_eq!(out, "", "{args:?}");
        assert!(err.starts_with("rcopyctl: "), "{args:?}: {err}");
    }
}

#[test]
fn takeover_usage_errors_exit_2() {
    for (args, quoted) in [
        (&["resolve", "r0"][..], "--keep-local|--discard-local"),
        (
            &["resolve", "r0", "--keep-local", "--discard-local"][..],
            "--discard-local",
        ),
        (&["promote", "r0", "--peer", "10.0.0.1"][..], "\"10.0.0.1\""),
        (
            &["demote", "r0", "--local", "[fe80::1%eth0]:7788"][..],
            "[fe80::1%eth0]:7788",
        ),
        (&["promte", "r0"][..], "promote"),
    ] {
        let (code, _, err) = rcopyctl(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(quoted), "{args:?}: {err}");
    }
}
