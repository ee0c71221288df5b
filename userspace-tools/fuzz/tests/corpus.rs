//! Replays the committed corpus and the regression inputs through the harnesses
//! (no libFuzzer needed), and checks that the seeds still decode.

use std::path::Path;

use rcopy_core::activity;
use rcopy_core::format::{Superblock, SB_BYTES};
use rcopy_core::gens::{decide, Decision};
use rcopy_core::proto::{
    Header, Hello, Mark, MarkResult, HEADER_LEN, HELLO_LEN, MARK_POINT, MARK_SNAPSHOT,
};
use rcopy_core::snapstore::{decode_records, StoreSb, BLOCK};
use rcopy_core::split::{self, SplitError};
use rcopy_fuzz::seeds;

type Harness = fn(&[u8]);

const TARGETS: [(&str, Harness); 6] = [
    ("frame", rcopy_fuzz::frame),
    ("handshake", rcopy_fuzz::handshake),
    ("superblock", rcopy_fuzz::superblock),
    ("activity", rcopy_fuzz::activity),
    ("snapstore", rcopy_fuzz::snapstore),
    ("split", rcopy_fuzz::split),
];

fn replay(dir: &Path, f: Harness) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries {
        let path = e.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        eprintln!("{}", path.display());
        f(&data);
        n += 1;
    }
    n
}

#[test]
fn corpus_replays() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, f) in TARGETS {
        let n = replay(&root.join("corpus").join(name), f);
        assert!(n > 0, "no corpus for {name}");
        replay(&root.join("regressions").join(name), f);
    }
}

#[test]
fn seeds_run_and_decode() {
    for s in seeds::all() {
        let f = TARGETS.iter().find(|(n, _)| *n == s.target).unwrap().1;
        f(&s.data);
        match s.target {
            "frame" => {
                let hdr: [u8; HEADER_LEN] = s.data[..HEADER_LEN].try_into().unwrap();
                let h = Header::decode(&hdr, u32::MAX).unwrap();
                let payload = &s.data[HEADER_LEN..];
                h.verify_crc(&hdr, payload).unwrap();
                let result = MarkResult::decode(h.b);
                match s.name.as_str() {
                    "mark-snapshot" => {
                        let m = Mark::decode(payload).unwrap();
                        assert_eq!(
                            (m.kind, m.name()),
                            (MARK_SNAPSHOT, &b"nightly-2024.01:r0@a+b_c"[..])
                        );
                    }
                    "mark-point" => {
                        let m = Mark::decode(payload).unwrap();
                        assert_eq!((m.kind, m.name()), (MARK_POINT, &b""[..]));
                    }
                    "ack-mark-taken" => assert_eq!(result, Some(MarkResult::Taken(3))),
                    "ack-mark-refused" => assert_eq!(result, Some(MarkResult::Refused(19))),
                    _ => {}
                }
            }
            "handshake" => {
                let p = Hello::decode(&s.data[..HELLO_LEN]).unwrap();
                let q = Hello::decode(&s.data[HELLO_LEN..]).unwrap();
                let want = match s.name.as_str() {
                    "blank" | "old-image" => Decision::FullCopy,
                    "bitmap" | "resolved" | "two-primaries" => Decision::Bitmap,
                    "stale-primary" => Decision::StalePrimary,
                    "split-brain" => Decision::SplitBrain,
                    "unrelated" | "primary-blank" => Decision::Unrelated,
                    other => panic!("no expected decision for {other}"),
                };
                assert_eq!(decide(&p.gens, &q.gens), want, "{}", s.name);
            }
            "superblock" => {
                let mut b = [0u8; SB_BYTES];
                b[..s.data.len()].copy_from_slice(&s.data);
                Superblock::decode(&b).unwrap();
            }
            "activity" => {
                let mut buf = vec![0u8; activity::AL_HEADER_BYTES];
                let n = s.data.len().min(32);
                buf[..n].copy_from_slice(&s.data[..n]);
                if s.data.len() >= activity::AL_HEADER_BYTES {
                    buf = s.data.clone();
                } else {
                    buf.extend_from_slice(&s.data[n..]);
                }
                activity::decode(&buf).unwrap();
            }
            "snapstore" => {
                let mut b = [0u8; BLOCK];
                b.copy_from_slice(&s.data[..BLOCK]);
                let mut sb = StoreSb::new(0, [0; 16], 0, 4096, 0);
                sb.decode_into(&b).unwrap();
                if s.data.len() > BLOCK {
                    b.copy_from_slice(&s.data[BLOCK..2 * BLOCK]);
                    let block = if s.name == "block-1" { 1 } else { 0 };
                    decode_records(&b, &sb, block, 1 << 14).unwrap();
                }
            }
            "split" => {
                let c = rcopy_fuzz::split_copies(&s.data);
                let r = split::Header::decode(&c.raw, c.data_bytes, c.track_size);
                let want = match s.name.as_str() {
                    "forming" | "refreshing" | "splitting" => Ok(()),
                    "blank" => Err(SplitError::Blank),
                    "foreign" | "version-2" => Err(SplitError::Foreign),
                    "torn" => Err(SplitError::Torn),
                    "other-size" => Err(SplitError::Geometry),
                    "bad-state" | "refresh-forming" | "refresh-past-end" | "tail-byte" => {
                        Err(SplitError::BadField)
                    }
                    other => panic!("no expected outcome for {other}"),
                };
                assert_eq!(r.map(|_| ()), want, "{}", s.name);
            }
            t => panic!("unknown target {t}"),
        }
    }
}

#[test]
fn al_crc_fixup_matches_encode() {
    let mut buf = vec![0u8; activity::copy_bytes(3)];
    activity::encode(&mut buf, 5, 22, &[1, 2, 3]);
    let good = buf.clone();
    buf[28..32].fill(0xee);
    rcopy_fuzz::fix_al_crc(&mut buf);
    assert_eq!(buf, good);
}
