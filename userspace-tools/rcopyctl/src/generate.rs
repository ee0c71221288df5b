//! Build-time outputs generated from the command-line definition itself, so
//! they can never drift from it: shell completion scripts (clap_complete) and
//! the `rcopyctl(8)` man page (clap_mangen).
//!
//! They are reached through `rcopyctl completions SHELL` and `rcopyctl man`,
//! which are not part of [`Cli`] (so neither the completions nor the man page
//! offer them): `main` routes them here before parsing the real command line.
//! `make install` runs them on the built binary.

use std::io::Write;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use clap_mangen::roff::{bold, italic, roman, Roff};
use clap_mangen::Man;

use crate::cli::Cli;
use crate::error::Error;

/// The generator commands.
#[derive(Debug, Parser)]
#[command(name = "rcopyctl", disable_help_subcommand = true)]
pub struct GenCli {
    #[command(subcommand)]
    pub command: GenCommand,
}

#[derive(Debug, Subcommand)]
pub enum GenCommand {
    /// Print a completion script for SHELL (bash, zsh, fish, elvish,
    /// powershell).
    Completions {
        #[arg(value_name = "SHELL")]
        shell: Shell,
    },
    /// Print the rcopyctl(8) man page (roff).
    Man,
}

/// Words that select a generator command as the first argument.
pub const WORDS: [&str; 2] = ["completions", "man"];

/// Whether the command line asks for a generator.
pub fn wanted(args: &[std::ffi::OsString]) -> bool {
    args.get(1)
        .and_then(|a| a.to_str())
        .is_some_and(|a| WORDS.contains(&a))
}

/// Runs a generator command, writing to stdout.
pub fn run(cmd: GenCommand) -> Result<(), Error> {
    let text = match cmd {
        GenCommand::Completions { shell } => completions(shell),
        GenCommand::Man => man_page(),
    };
    let mut o = std::io::stdout().lock();
    o.write_all(&text)
        .and_then(|()| o.flush())
        .map_err(|e| Error::new(format!("cannot write: {}", crate::error::os_msg(&e))))
}

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "rcopyctl", &mut out);
    out
}

/// Renders one piece of a page with clap_mangen, without its `.SH` heading
/// (the subcommands go in `.SS` subsections of COMMANDS).
fn body(render: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut v = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = render(&mut v);
    String::from_utf8_lossy(&v)
        .lines()
        .filter(|l| !l.starts_with(".SH "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Roff for a run of plain paragraphs (blank lines separate them).
fn paragraphs(roff: &mut Roff, text: &str) {
    for para in text.split("\n\n") {
        roff.control("PP", []);
        roff.text([roman(para.split_whitespace().collect::<Vec<_>>().join(" "))]);
    }
}

/// A tagged paragraph: `tag` in bold, then `text`.
fn item(roff: &mut Roff, tag: &str, text: &str) {
    roff.control("TP", []);
    roff.text([bold(tag)]);
    roff.text([roman(text.split_whitespace().collect::<Vec<_>>().join(" "))]);
}

/// The `rcopyctl(8)` man page: the synopsis and description of the tool, a
/// subsection per command (its synopsis, description, options and examples,
/// all from the clap definition), then exit status, files, environment.
pub fn man_page() -> Vec<u8> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let version = cmd.get_version().unwrap_or_default().to_string();
    let man = Man::new(cmd.clone())
        .title("RCOPYCTL")
        .section("8")
        .date(page_date())
        .source(format!("rcopyctl {version}"))
        .manual("System Administration");
    let mut out = Vec::new();
    let _ = man.render_title(&mut out);
    let _ = man.render_name_section(&mut out);
    let _ = man.render_synopsis_section(&mut out);

    let mut r = Roff::default();
    r.control("SH", ["DESCRIPTION"]);
    paragraphs(
        &mut r,
        "rcopyctl sets up, runs and watches rcopy devices: device-mapper devices \
         (target rcopy, module dm_rcopy) that replicate a block device to the same \
         target on a peer host over TCP, synchronously or asynchronously, with a \
         dirty-track bitmap on a metadata device for resync, takeover and failback.\n\n\
         A pair is described by one resource file per device, the same on both \
         hosts (/etc/rcopy.d/NAME.toml, with a [host.NAME] section per host); \
         rcopyctl up, down and adjust act on it. rcopyctl create and pair set a \
         device up from flags instead.\n\n\
         Devices rcopyctl creates get the DM UUID RCOPY-NAME. When udev runs (with \
         the device-mapper rules), rcopyctl waits for it to finish with each device \
         it creates, reloads or removes (udev cookie synchronisation, as \
         libdevmapper does), so /dev/mapper/NAME is ready when it returns; without \
         udev it creates /dev/mapper/NAME itself.\n\n\
         Addresses are a.b.c.d:port, [v6]:port or HOST:PORT; a host name is \
         resolved when the table is built, to its first IPv4 address, else its \
         first IPv6 address, and rcopyctl says which address it used.",
    );
    let _ = r.to_writer(&mut out);
    let _ = man.render_options_section(&mut out);

    let mut r = Roff::default();
    r.control("SH", ["COMMANDS"]);
    let _ = r.to_writer(&mut out);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let mut r = Roff::default();
        let aliases: Vec<&str> = sub.get_visible_aliases().chain(sub.get_aliases()).collect();
        let mut title = format!("rcopyctl {}", sub.get_name());
        if !aliases.is_empty() {
            title.push_str(&format!(" (alias {})", aliases.join(", ")));
        }
        r.control("SS", [title.as_str()]);
        let _ = r.to_writer(&mut out);
        let m = Man::new(sub.clone());
        let mut text = body(|w| m.render_synopsis_section(w));
        text.push_str(".PP\n");
        text.push_str(&body(|w| m.render_description_section(w)));
        if sub.get_arguments().any(|a| !a.is_hide_set()) {
            text.push_str(&body(|w| m.render_options_section(w)));
        }
        if sub.get_after_help().is_some() || sub.get_after_long_help().is_some() {
            text.push_str(".PP\n");
            text.push_str(&body(|w| m.render_extra_section(w)));
        }
        out.extend_from_slice(text.as_bytes());
    }

    let mut r = Roff::default();
    r.control("SH", ["EXIT STATUS"]);
    item(&mut r, "0", "Success.");
    item(
        &mut r,
        "1",
        "The operation failed: a device is missing or in use, the kernel refused the \
         table, a file cannot be read, a host name does not resolve, create-md found a \
         signature it will not overwrite.",
    );
    item(
        &mut r,
        "2",
        "Usage error: an unknown command or flag, a bad flag value (a bad address too), or \
         a bad resource file. The message quotes what was typed.",
    );
    item(
        &mut r,
        "3",
        "wait: the --timeout passed before the state was reached.",
    );
    r.text([roman(
        "status --check has its own codes: 0 healthy, 1 degraded, 2 inconsistent or \
         failed, 4 the status cannot be read.",
    )]);
    r.control("SH", ["FILES"]);
    item(
        &mut r,
        "/etc/rcopy.d/NAME.toml",
        "The resource file of device NAME (see --config-dir).",
    );
    item(&mut r, "/dev/mapper/NAME", "The device.");
    item(
        &mut r,
        "rcopy@NAME.service",
        "The systemd unit that runs rcopyctl up NAME at boot and rcopyctl down NAME \
         at shutdown (systemctl enable rcopy@NAME).",
    );
    r.control("SH", ["ENVIRONMENT"]);
    item(
        &mut r,
        "DM_DISABLE_UDEV",
        "When set, rcopyctl does not synchronise with udev: it tells the udev \
         device-mapper rules to leave the device alone and manages /dev/mapper/NAME \
         itself, as libdevmapper does.",
    );
    r.control("SH", ["SEE ALSO"]);
    r.text([
        bold("dmsetup"),
        roman("(8), "),
        bold("udev"),
        roman("(7), "),
        bold("systemd.unit"),
        roman("(5); "),
        italic("Documentation/rcopyctl.rst"),
        roman(" and "),
        italic("Documentation/rcopy.rst"),
        roman(" in the rcopy sources."),
    ]);
    let _ = r.to_writer(&mut out);
    dedup_preamble(&String::from_utf8_lossy(&out)).into_bytes()
}

/// Each piece rendered by roff starts with the same two-line preamble
/// (defining the `Aq` string): keep its first copy only.
fn dedup_preamble(page: &str) -> String {
    let mut seen = std::collections::HashSet::new();
    page.lines()
        .filter(|l| !(l.starts_with(".ie \\n(.g") || l.starts_with(".el .ds")) || seen.insert(*l))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The page's date (YYYY-MM-DD): that of `SOURCE_DATE_EPOCH` when set (for
/// reproducible builds; `make install` sets it to the last commit's), else
/// today's (UTC).
pub fn page_date() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// The proleptic Gregorian date of day `z` after 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_valid() {
        GenCli::command().debug_assert();
    }

    #[test]
    fn routing() {
        let args = |v: &[&str]| {
            v.iter()
                .map(Into::into)
                .collect::<Vec<std::ffi::OsString>>()
        };
        assert!(wanted(&args(&["rcopyctl", "man"])));
        assert!(wanted(&args(&["rcopyctl", "completions", "bash"])));
        assert!(!wanted(&args(&["rcopyctl", "status", "man"])));
        assert!(!wanted(&args(&["rcopyctl"])));
        // The generators are not part of the public command line.
        let c = Cli::command();
        for w in WORDS {
            assert!(c.find_subcommand(w).is_none(), "{w}");
        }
    }

    #[test]
    fn man_page_has_every_command() {
        let page = String::from_utf8(man_page()).unwrap();
        assert!(page.contains("\n.TH RCOPYCTL 8 "), "{page}");
        for sub in Cli::command().get_subcommands() {
            let ss = format!(".SS \"rcopyctl {}", sub.get_name());
            assert!(page.contains(&ss), "{ss} missing");
        }
        for s in [
            ".SH \"EXIT STATUS\"",
            ".SH FILES",
            ".SH ENVIRONMENT",
            ".SH \"SEE ALSO\"",
        ] {
            assert!(page.contains(s), "{s} missing");
        }
        assert_eq!(page.matches(".el .ds Aq").count(), 1);
        assert!(page.contains("alias failback"), "aliases are listed");
        assert!(!page.contains("rcopyctl completions"));
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_787), (2026, 11, 30));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn bash_completion_knows_the_commands() {
        let s = String::from_utf8(completions(Shell::Bash)).unwrap();
        assert!(s.contains("complete -F _rcopyctl"), "{s}");
        for w in ["promote", "create-md", "--secret-file", "--config-dir"] {
            assert!(s.contains(w), "{w} missing");
        }
        assert!(!s.contains("completions"));
    }
}
