//! `logreplay`: replay a dm-log-writes log onto a device or image, by default up
//! to the last flush or FUA entry: what a disk that loses everything no flush
//! covered would hold after a power loss.

use std::fs::{File, OpenOptions};
use std::process::ExitCode;

use logreplay::{end_index, parse, replay, End, ReadAt};

const USAGE: &str =
    "usage: logreplay [--list] [--end-entry N | --end-mark NAME | --all] [--no-scan] LOG [DEV]

Replays the dm-log-writes log LOG (a file or device) onto DEV, which should hold
the logged device's image from when the log started (e.g. zeroes).

  (default)        replay up to the last FLUSH or FUA entry: everything a disk
                   that loses its volatile cache is sure to hold
  --end-entry N    replay entries 0..=N
  --end-mark NAME  replay up to the last mark NAME (dmsetup message DEV 0 mark NAME)
  --all            replay every entry
  --list           print the entries (and replay only if DEV is given)
  --no-scan        stop at the super block's entry count (by default valid entries
                   past it are read too: the kernel updates the count only on FUA
                   entries and marks; scanning needs a log device zeroed at start)";

struct Args {
    list: bool,
    scan: bool,
    end: End,
    log: String,
    dev: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        list: false,
        scan: true,
        end: End::LastDurable,
        log: String::new(),
        dev: None,
    };
    let mut pos = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(s) = it.next() {
        match s.as_str() {
            "--list" => a.list = true,
            "--no-scan" => a.scan = false,
            "--all" => a.end = End::All,
            "--end-entry" => {
                let n = it.next().ok_or("--end-entry needs a number")?;
                a.end = End::Entry(n.parse().map_err(|_| format!("bad entry number '{n}'"))?);
            }
            "--end-mark" => a.end = End::Mark(it.next().ok_or("--end-mark needs a name")?),
            "-h" | "--help" => return Err(String::new()),
            o if o.starts_with('-') && o.len() > 1 => return Err(format!("unknown option '{o}'")),
            _ => pos.push(s),
        }
    }
    match pos.len() {
        1 if a.list => a.log = pos.remove(0),
        2 => {
            a.dev = Some(pos.remove(1));
            a.log = pos.remove(0);
        }
        _ => return Err("need LOG and DEV (or --list LOG)".into()),
    }
    Ok(a)
}

fn run(a: &Args) -> Result<(), String> {
    let lf = File::open(&a.log).map_err(|e| format!("{}: {e}", a.log))?;
    let log = parse(&lf, a.scan).map_err(|e| format!("{}: {e}", a.log))?;
    println!(
        "log: {} entries ({} past the super block's count of {}), sector size {}",
        log.entries.len(),
        log.past_super(),
        log.super_entries,
        log.sector_size
    );
    if a.list {
        for e in &log.entries {
            match &e.mark {
                Some(m) => println!("{:8} MARK {m}", e.index),
                None => println!(
                    "{:8} {:<14} sector {} +{}",
                    e.index,
                    e.flag_names(),
                    e.sector,
                    e.nr_sectors
                ),
            }
        }
    }
    let Some(dev) = &a.dev else { return Ok(()) };
    let mut df = OpenOptions::new()
        .write(true)
        .open(dev)
        .map_err(|e| format!("{dev}: {e}"))?;
    let len = df.size().map_err(|e| format!("{dev}: {e}"))?;
    let last = end_index(&log, &a.end).map_err(|e| e.to_string())?;
    let st = replay(&log, &lf, &mut df, Some(len), &a.end).map_err(|e| format!("replay: {e}"))?;
    df.sync_all().map_err(|e| format!("{dev}: {e}"))?;
    match last {
        Some(i) => println!(
            "replayed {} entries (up to #{i} {}): {} writes, {} discards, {} bytes, {} flush/FUA",
            st.entries,
            log.entries[i].flag_names(),
            st.writes,
            st.discards,
            st.bytes,
            st.durable_points
        ),
        None => println!("replayed nothing: no entry to stop at"),
    }
    Ok(())
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("logreplay: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("logreplay: {e}");
            ExitCode::FAILURE
        }
    }
}
