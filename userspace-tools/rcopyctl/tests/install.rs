//! `make install` and `make uninstall` into a staging directory (DESTDIR), with
//! the rcopyctl under test: the binary, the generated man page and bash
//! completion, the systemd unit, and the module (a real one when built, a
//! stand-in otherwise; skipped with a note when there is none).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (this crate is userspace-tools/rcopyctl).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A fresh directory under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("rcopyctl-install-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `make -C ROOT <target> VAR=VALUE...`; (exit code, stdout + stderr).
fn make(target: &str, vars: &[(&str, &str)]) -> (i32, String) {
    let mut c = Command::new("make");
    c.arg("-s").arg("-C").arg(root()).arg(target);
    for (k, v) in vars {
        c.arg(format!("{k}={v}"));
    }
    let o = c.output().expect("run make");
    (
        o.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A stand-in module: what install.sh reads of a .ko is its vermagic string.
fn fake_module(dir: &Path, release: &str) -> PathBuf {
    let p = dir.join("dm_rcopy.ko");
    let mut b = b"\x7fELF....".to_vec();
    b.extend_from_slice(b"\0license=GPL\0vermagic=");
    b.extend_from_slice(release.as_bytes());
    b.extend_from_slice(b" SMP preempt mod_unload \0name=dm_rcopy\0");
    std::fs::write(&p, b).unwrap();
    p
}

#[test]
fn make_install_and_uninstall_into_destdir() {
    if !have("make") {
        eprintln!("make not available: skipped");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_rcopyctl");
    let work = TempDir::new("work");
    let dest = TempDir::new("dest");
    let d = dest.0.to_str().unwrap();
    let module = fake_module(&work.0, "7.3.0-test");
    let (code, out) = make(
        "install",
        &[
            ("DESTDIR", d),
            ("RCOPYCTL", bin),
            ("MODULE", module.to_str().unwrap()),
        ],
    );
    assert_eq!(code, 0, "{out}");

    let usr = dest.0.join("usr/local");
    let sbin = usr.join("sbin/rcopyctl");
    let md = std::fs::metadata(&sbin).unwrap();
    assert!(
        std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o111 != 0,
        "not executable"
    );
    assert_eq!(md.len(), std::fs::metadata(bin).unwrap().len());

    // The man page and the completion: generated, non-empty, complete.
    let page = read(&usr.join("share/man/man8/rcopyctl.8"));
    assert!(page.contains(".TH RCOPYCTL 8 "), "{page}");
    for cmd in ["promote", "create-md", "switchover", "up", "status"] {
        assert!(
            page.contains(&format!(".SS \"rcopyctl {cmd}")),
            "{cmd} missing in the man page"
        );
    }
    let comp = read(&usr.join("share/bash-completion/completions/rcopyctl"));
    for w in ["promote", "demote", "--secret-file", "--config-dir"] {
        assert!(comp.contains(w), "{w} missing in the completion");
    }
    if have("bash") {
        let ok = Command::new("bash")
            .arg("-n")
            .arg(usr.join("share/bash-completion/completions/rcopyctl"))
            .status()
            .unwrap();
        assert!(ok.success(), "the completion script is not valid bash");
    }
    if have("man") {
        let o = Command::new("man")
            .arg("-l")
            .arg(usr.join("share/man/man8/rcopyctl.8"))
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("rcopyctl promote"), "{text}");
    }

    // The unit runs the installed rcopyctl.
    let unit_path = usr.join("lib/systemd/system/rcopy@.service");
    let unit = read(&unit_path);
    for line in [
        "Type=oneshot",
        "RemainAfterExit=yes",
        "ExecStart=/usr/local/sbin/rcopyctl up %i",
        "ExecStop=/usr/local/sbin/rcopyctl down %i",
        "After=network-online.target systemd-modules-load.service",
        "Wants=network-online.target",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing:\n{unit}");
    }
    if have("systemd-analyze") {
        let o = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(unit_path.parent().unwrap().join("rcopy@r0.service"))
            .env(
                "SYSTEMD_UNIT_PATH",
                format!("{}:", unit_path.parent().unwrap().display()),
            )
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stderr);
        for bad in ["nknown", "parse", "nvalid", "ignoring"] {
            assert!(!text.contains(bad), "systemd-analyze: {text}");
        }
    }

    // The module, under the kernel release it was built for.
    let ko = dest.0.join("lib/modules/7.3.0-test/extra/dm_rcopy.ko");
    assert_eq!(
        read(&ko).len(),
        std::fs::metadata(&module).unwrap().len() as usize
    );
    assert!(out.contains("kernel 7.3.0-test"), "{out}");
    assert!(out.contains("depmod -a 7.3.0-test"), "{out}");

    // Again (an upgrade): same result.
    let (code, out) = make(
        "install",
        &[
            ("DESTDIR", d),
            ("RCOPYCTL", bin),
            ("MODULE", module.to_str().unwrap()),
        ],
    );
    assert_eq!(code, 0, "{out}");

    let (code, out) = make("uninstall", &[("DESTDIR", d)]);
    assert_eq!(code, 0, "{out}");
    let left: Vec<_> = walk(&dest.0);
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn make_install_prefix_and_no_module() {
    if !have("make") {
        eprintln!("make not available: skipped");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_rcopyctl");
    let dest = TempDir::new("prefix");
    let d = dest.0.to_str().unwrap();
    let vars = [
        ("DESTDIR", d),
        ("PREFIX", "/usr"),
        ("RCOPYCTL", bin),
        ("MODULE", "/nonexistent/dm_rcopy.ko"),
    ];
    let (code, out) = make("install", &vars);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("the kernel module is not built (/nonexistent/dm_rcopy.ko): skipped it"),
        "{out}"
    );
    assert!(dest.0.join("usr/sbin/rcopyctl").exists());
    assert!(dest.0.join("usr/share/man/man8/rcopyctl.8").exists());
    let unit = read(&dest.0.join("usr/lib/systemd/system/rcopy@.service"));
    assert!(
        unit.contains("\nExecStart=/usr/sbin/rcopyctl up %i\n"),
        "{unit}"
    );
    assert!(!dest.0.join("lib").exists());
    let (code, out) = make("uninstall", &[("DESTDIR", d), ("PREFIX", "/usr")]);
    assert_eq!(code, 0, "{out}");
    assert!(walk(&dest.0).is_empty());

    // Nothing built: a clear refusal, nothing installed.
    let (code, out) = make(
        "install",
        &[("DESTDIR", d), ("RCOPYCTL", "/nonexistent/rcopyctl")],
    );
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("is not built: run 'make tools'"), "{out}");
    assert!(walk(&dest.0).is_empty());
}

/// Every file under `dir` (directories left empty do not count).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
