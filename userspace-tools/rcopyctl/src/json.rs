//! Minimal JSON output (objects of strings, unsigned numbers and lists).

use std::fmt::Write;

/// A JSON string literal for `s`.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON value: a string, an unsigned number, a boolean, null or a list of values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Num(u64),
    Bool(bool),
    Null,
    List(Vec<Value>),
}

/// Appends `v` to `out`.
fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Str(s) => out.push_str(&string(s)),
        Value::Num(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Null => out.push_str("null"),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
    }
}

/// A JSON object with its keys in insertion order, on one line.
pub fn object<K: AsRef<str>>(fields: &[(K, Value)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&string(k.as_ref()));
        out.push_str(": ");
        write_value(&mut out, v);
    }
    out.push('}');
    out
}

/// A JSON array of already-encoded values, one per line.
pub fn array(items: &[String]) -> String {
    if items.is_empty() {
        return "[]".to_string();
    }
    format!("[\n  {}\n]", items.join(",\n  "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(string("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }

    #[test]
    fn objects() {
        let o = object(&[("name", Value::Str("r0".into())), ("n", Value::Num(5))]);
        assert_eq!(o, "{\"name\": \"r0\", \"n\": 5}");
        let o = object(&[
            (
                "l",
                Value::List(vec![Value::Str("a".into()), Value::Num(1)]),
            ),
            ("e", Value::List(vec![])),
            ("z", Value::Null),
            ("b", Value::Bool(false)),
        ]);
        assert_eq!(
            o,
            "{\"l\": [\"a\", 1], \"e\": [], \"z\": null, \"b\": false}"
        );
        assert_eq!(array(&[]), "[]");
        assert_eq!(array(&["1".into(), "2".into()]), "[\n  1,\n  2\n]");
    }
}
