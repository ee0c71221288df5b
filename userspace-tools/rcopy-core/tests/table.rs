//! Table-line parsing: examples and properties.

use proptest::prelude::*;
use rcopy_core::table::{
    format_table, parse, parse_u64, track_size_valid, TableError, DEFAULT_TRACK_SIZE,
    MAX_TRACK_SIZE, MIN_TRACK_SIZE,
};

fn parse_line(line: &str) -> Result<(Vec<u8>, Vec<u8>, u32), TableError> {
    let words: Vec<&[u8]> = line.split_ascii_whitespace().map(str::as_bytes).collect();
    parse(&words).map(|a| (a.data_dev.to_vec(), a.meta_dev.to_vec(), a.track_size))
}

fn valid_track_size() -> impl Strategy<Value = u32> {
    (0u32..=12).prop_map(|k| MIN_TRACK_SIZE << k)
}

#[test]
fn documented_examples() {
    assert_eq!(
        parse_line("/dev/vdb /dev/vdc 2 track_size 1048576"),
        Ok((b"/dev/vdb".to_vec(), b"/dev/vdc".to_vec(), 1 << 20))
    );
    assert_eq!(
        parse_line("253:1 253:2"),
        Ok((b"253:1".to_vec(), b"253:2".to_vec(), DEFAULT_TRACK_SIZE))
    );
    assert_eq!(parse_line("a b 0").map(|a| a.2), Ok(DEFAULT_TRACK_SIZE));
    assert_eq!(parse_line("a"), Err(TableError::ArgCount));
    assert_eq!(parse_line("a b 2 track_size"), Err(TableError::OptArgCount));
    assert_eq!(
        parse_line("a b 1 track_size"),
        Err(TableError::MissingValue)
    );
    assert_eq!(parse_line("a b 2 cache 5"), Err(TableError::UnknownOption));
    assert_eq!(
        parse_line("a b 2 track_size 65537"),
        Err(TableError::BadTrackSize)
    );
    assert_eq!(parse_line("a b 0 c"), Err(TableError::ArgCount));
}

#[test]
fn non_utf8_words() {
    let words: [&[u8]; 2] = [b"\xff\xfe", b"\x80"];
    let a = parse(&words).unwrap();
    assert_eq!(a.data_dev, b"\xff\xfe");
}

#[test]
fn every_message_is_a_sentence() {
    use TableError::*;
    for e in [
        ArgCount,
        OptArgCount,
        UnknownOption,
        MissingValue,
        BadTrackSize,
        DataLookup,
        MetaLookup,
        SameDevice,
        LengthExceedsData,
        MetaTooSmall,
        DeviceInUse,
    ] {
        let m = e.message();
        assert!(m.chars().next().unwrap().is_ascii_uppercase(), "{m}");
        assert!(!m.ends_with('.'), "{m}");
        assert_eq!(e.to_string(), m);
    }
}

proptest! {
    #[test]
    fn parse_never_panics(words in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 0..10)) {
        let refs: Vec<&[u8]> = words.iter().map(Vec::as_slice).collect();
        if let Ok(a) = parse(&refs) {
            prop_assert!(track_size_valid(u64::from(a.track_size)));
            prop_assert_eq!(a.data_dev, refs[0]);
            prop_assert_eq!(a.meta_dev, refs[1]);
        }
    }

    #[test]
    fn parse_never_panics_on_near_misses(
        words in prop::collection::vec(
            prop::sample::select(vec!["track_size", "4096", "65536", "16777216", "0", "1", "2", "3",
                                      "4", "foo", "", "-1", "18446744073709551616", "8192"]),
            0..8)
    ) {
        let mut all: Vec<&[u8]> = vec![b"d", b"m"];
        all.extend(words.iter().map(|w| w.as_bytes()));
        let _ = parse(&all);
    }

    #[test]
    fn round_trip(data in "[!-~]{1,24}", meta in "[!-~]{1,24}", ts in valid_track_size()) {
        let mut line = String::new();
        let mut args = rcopy_core::table::TableArgs::new(b"", b"");
        args.track_size = ts;
        format_table(&mut line, &data, &meta, &args).unwrap();
        prop_assert_eq!(parse_line(&line), Ok((data.into_bytes(), meta.into_bytes(), ts)));
        prop_assert_eq!(ts == DEFAULT_TRACK_SIZE, !line.contains("track_size"));
    }

    #[test]
    fn track_size_rule(v in any::<u64>()) {
        let expected = v.is_power_of_two()
            && v >= u64::from(MIN_TRACK_SIZE)
            && v <= u64::from(MAX_TRACK_SIZE);
        prop_assert_eq!(track_size_valid(v), expected);
        let s = v.to_string();
        let words: [&[u8]; 5] = [b"a", b"b", b"2", b"track_size", s.as_bytes()];
        let r = parse(&words);
        if expected {
            prop_assert_eq!(r.map(|a| u64::from(a.track_size)), Ok(v));
        } else {
            prop_assert_eq!(r, Err(TableError::BadTrackSize));
        }
    }

    #[test]
    fn parse_u64_matches_std(s in "[0-9]{0,24}|[ +-]?[0-9a-f]{0,5}") {
        prop_assert_eq!(parse_u64(s.as_bytes()), s.parse::<u64>().ok().filter(|_| !s.starts_with('+')));
    }
}
