//! A minimal JSON value and writer (the CLI has no serde): objects keep their key order,
//! strings are escaped as RFC 8259 requires, numbers are written as numbers.

use std::fmt::{self, Write as _};

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// Sizes and offsets: written exactly, even above 2^53 (readers may round them).
    UInt(u64),
    /// A signed number (exit codes).
    Int(i64),
    /// A string, escaped when written.
    String(String),
    /// `[...]`.
    Array(Vec<Json>),
    /// Key–value pairs in the order written.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// An object from `(key, value)` pairs.
    pub fn object<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Json)>) -> Json {
        Json::Object(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// A string value.
    pub fn str(s: impl Into<String>) -> Json {
        Json::String(s.into())
    }

    /// `value` or null.
    pub fn opt<T>(value: Option<T>, f: impl FnOnce(T) -> Json) -> Json {
        value.map_or(Json::Null, f)
    }

    /// Indented with two spaces, one member per line.
    pub fn pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, Some(0))
            .expect("writing to a String cannot fail");
        out
    }

    /// On one line, `{"a": 1, "b": [2, 3]}`.
    pub fn compact(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, None)
            .expect("writing to a String cannot fail");
        out
    }

    /// `indent`: the current depth when pretty-printing, `None` for one line.
    fn write(&self, out: &mut String, indent: Option<usize>) -> fmt::Result {
        match self {
            Json::Null => out.write_str("null"),
            Json::Bool(b) => write!(out, "{b}"),
            Json::UInt(n) => write!(out, "{n}"),
            Json::Int(n) => write!(out, "{n}"),
            Json::String(s) => write_string(out, s),
            Json::Array(items) => write_list(out, indent, ('[', ']'), items, |out, item, i| {
                item.write(out, i)
            }),
            Json::Object(members) => {
                write_list(out, indent, ('{', '}'), members, |out, (key, value), i| {
                    write_string(out, key)?;
                    out.write_str(": ")?;
                    value.write(out, i)
                })
            }
        }
    }
}

/// Writes `items` between `open` and `close`, comma-separated.
fn write_list<T>(
    out: &mut String,
    indent: Option<usize>,
    (open, close): (char, char),
    items: &[T],
    mut write_item: impl FnMut(&mut String, &T, Option<usize>) -> fmt::Result,
) -> fmt::Result {
    out.push(open);
    if items.is_empty() {
        out.push(close);
        return Ok(());
    }
    let inner = indent.map(|depth| depth + 1);
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(',');
            if indent.is_none() {
                out.push(' ');
            }
        }
        if let Some(depth) = inner {
            newline(out, depth);
        }
        write_item(out, item, inner)?;
    }
    if let Some(depth) = indent {
        newline(out, depth);
    }
    out.push(close);
    Ok(())
}

fn newline(out: &mut String, depth: usize) {
    out.push('\n');
    out.extend(std::iter::repeat_n("  ", depth));
}

/// A JSON string: quotes, backslashes and control characters escaped; everything else,
/// non-ASCII included, as is (JSON text is UTF-8).
fn write_string(out: &mut String, s: &str) -> fmt::Result {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // C0 as JSON requires; DEL, C1 and the invisible format characters too, so
            // that the raw output is harmless on a terminal (the parsed value is the same).
            c if crate::terminal::is_unsafe(c) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(out, "\\u{unit:04x}")?;
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_strings_and_keeps_numbers_exact() {
        let value = Json::object([
            ("s", Json::str("a\"b\\c\n\u{1}é")),
            ("big", Json::UInt(u64::MAX)),
            ("neg", Json::Int(-5)),
            ("list", Json::Array(vec![Json::Null, Json::Bool(true)])),
            ("empty", Json::Object(vec![])),
        ]);
        assert_eq!(
            value.compact(),
            r#"{"s": "a\"b\\c\n\u0001é", "big": 18446744073709551615, "neg": -5, "list": [null, true], "empty": {}}"#
        );
    }

    #[test]
    fn escapes_what_a_terminal_would_act_on_beyond_c0() {
        // DEL, C1 (CSI) and a right-to-left override: \uXXXX, the parsed string unchanged.
        assert_eq!(
            Json::str("a\u{7f}\u{9b}2J\u{202e}z").compact(),
            r#""a\u007f\u009b2J\u202ez""#
        );
    }

    #[test]
    fn pretty_indents_nested_values() {
        let value = Json::object([("a", Json::Array(vec![Json::UInt(1)])), ("b", Json::Null)]);
        assert_eq!(
            value.pretty(),
            "{\n  \"a\": [\n    1\n  ],\n  \"b\": null\n}"
        );
    }
}
