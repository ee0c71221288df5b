//! Every bad flag value exits 2 with a message quoting what was typed: the
//! table in `bad_values/cases.rs`, one bad value for every value-taking
//! argument (a unit test in `src/cli.rs` checks that none is missing), run
//! through the binary.

use std::process::Command;

#[path = "bad_values/cases.rs"]
mod cases;

use cases::{CASES, FREE};

#[test]
fn every_bad_value_exits_2_quoting_it() {
    let mut failures = Vec::new();
    for case in CASES {
        let o = Command::new(env!("CARGO_BIN_EXE_rcopyctl"))
            .args(case.line)
            .output()
            .expect("run rcopyctl");
        let code = o.status.code().unwrap_or(-1);
        let out = String::from_utf8_lossy(&o.stdout);
        let err = String::from_utf8_lossy(&o.stderr);
        let quoted = [
            format!("{:?}", case.typed),
            format!("'{}'", case.typed),
            format!("\"{}\"", case.typed),
        ];
        let why = if code != 2 {
            Some(format!("exit {code}"))
        } else if !out.is_empty() {
            Some(format!("stdout {out:?}"))
        } else if case.secret {
            (err.contains(case.typed) || !err.contains(case.arg))
                .then(|| "the secret is shown, or the flag not named".to_string())
        } else {
            (!quoted.iter().any(|q| err.contains(q.as_str())))
                .then(|| format!("{:?} is not quoted", case.typed))
        };
        if let Some(why) = why {
            failures.push(format!(
                "{} ({}): {why}\n    {}",
                case.cmd,
                case.arg,
                err.trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn free_arguments_say_why() {
    for (cmd, arg, why) in FREE {
        assert!(!why.is_empty(), "{cmd} {arg}");
    }
}
