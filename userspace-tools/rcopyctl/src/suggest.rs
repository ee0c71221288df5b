//! "Did you mean ...?" for mistyped words.

/// Edit distance (insertions, deletions, substitutions, adjacent swaps).
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, v) in d[0].iter_mut().enumerate() {
        *v = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `typed`, if it is close enough to be a typo:
/// at most 2 edits (1 for words of up to 4 letters), or `typed` is a prefix
/// of exactly one candidate.
pub fn closest<'a>(typed: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let t = typed.to_ascii_lowercase();
    let limit = if t.chars().count() <= 4 { 1 } else { 2 };
    let best = candidates
        .iter()
        .map(|c| (distance(&t, c), *c))
        .min_by_key(|(d, _)| *d);
    if let Some((d, c)) = best {
        if d <= limit {
            return Some(c);
        }
    }
    let prefixed: Vec<&str> = candidates
        .iter()
        .copied()
        .filter(|c| !t.is_empty() && c.starts_with(t.as_str()))
        .collect();
    match prefixed.as_slice() {
        [one] => Some(one),
        _ => None,
    }
}

/// `: did you mean "x"?` or nothing.
pub fn hint(typed: &str, candidates: &[&str]) -> String {
    match closest(typed, candidates) {
        Some(c) if c != typed => format!("; did you mean {c:?}?"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("primry", "primary"), 1);
        assert_eq!(distance("jsno", "json"), 1);
        assert_eq!(distance("abc", "xyz"), 3);
    }

    #[test]
    fn suggestions() {
        let roles = ["primary", "secondary"];
        assert_eq!(closest("primry", &roles), Some("primary"));
        assert_eq!(closest("Secondray", &roles), Some("secondary"));
        assert_eq!(closest("sec", &roles), Some("secondary"));
        assert_eq!(closest("leader", &roles), None);
        assert_eq!(closest("asnc", &["sync", "async"]), Some("async"));
        assert_eq!(hint("primry", &roles), "; did you mean \"primary\"?");
        assert_eq!(hint("zzz", &roles), "");
    }
}
