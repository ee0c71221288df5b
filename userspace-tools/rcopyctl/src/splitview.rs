//! The split copy in `rcopyctl status`: the words of the one-line view and the
//! rows of the verbose one, when the device has a split copy (`split` not
//! `none`). `--json` has the status keys themselves.

use rcopy_core::status::Status;

/// Whether the device has a split copy.
pub fn has(s: &Status) -> bool {
    s.split != "none"
}

/// `split:STATE split_create:N split_changed:N`, or nothing.
pub fn compact_words(s: &Status) -> Vec<String> {
    if !has(s) {
        return Vec::new();
    }
    vec![
        format!("split:{}", s.split),
        format!("split_create:{}", s.split_create),
        format!("split_changed:{}", s.split_changed),
    ]
}

fn tracks(n: u64) -> String {
    format!("{n} track{}", if n == 1 { "" } else { "s" })
}

/// What the state means, with the counts that go with it.
pub fn state_text(s: &Status) -> String {
    let (create, changed) = (tracks(s.split_create), tracks(s.split_changed));
    let what = match s.split {
        "forming" => format!("the copy is being filled: {create} left to copy"),
        "formed" => format!(
            "the copy equals the original but for {create} written since; a split copies them"
        ),
        "splitting" => format!(
            "being frozen: {create} left to copy as they were at the split; {changed} written \
             since"
        ),
        "split" => format!(
            "frozen at the split; {changed} written since, which a refresh or a rejoin copies"
        ),
        "refreshing" => format!("frozen, an extent is being refreshed; {changed} written since"),
        _ => return "-".to_string(),
    };
    format!("{} ({what})", s.split)
}

/// The rows of the verbose view (none without a split copy).
pub fn human_rows(s: &Status) -> Vec<(&'static str, String)> {
    if !has(s) {
        return Vec::new();
    }
    vec![
        ("split copy", state_text(s)),
        (
            "split I/O",
            format!(
                "{} copied since the table was loaded, {} of them before an overwrite",
                tracks(s.split_copied),
                s.split_cow
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_rows() {
        let mut s = Status::default();
        assert!(compact_words(&s).is_empty());
        assert!(human_rows(&s).is_empty());
        s.split = "formed";
        s.split_create = 1024;
        assert_eq!(
            compact_words(&s).join(" "),
            "split:formed split_create:1024 split_changed:0"
        );
        assert_eq!(
            state_text(&s),
            "formed (the copy equals the original but for 1024 tracks written since; a split \
             copies them)"
        );
        s.split = "split";
        s.split_changed = 1;
        s.split_copied = 1024;
        s.split_cow = 37;
        let rows = human_rows(&s);
        assert_eq!(
            rows[0].1,
            "split (frozen at the split; 1 track written since, which a refresh or a rejoin \
             copies)"
        );
        assert_eq!(
            rows[1].1,
            "1024 tracks copied since the table was loaded, 37 of them before an overwrite"
        );
        for w in ["forming", "splitting", "refreshing"] {
            s.split = w;
            assert!(state_text(&s).starts_with(&format!("{w} (")), "{w}");
        }
    }
}
