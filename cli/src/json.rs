//! The JSON writer of the command line (the CLI has no serde): the value is the core's
//! [`Json`] (objects keep their key order); strings are escaped as RFC 8259 requires, and
//! beyond it what a terminal would act on; numbers are written as numbers, exactly.

use std::fmt::{self, Write as _};

pub use vhd_core::json::Json;

/// JSON text of a [`Json`] value (the value itself is the core's, shared with the binding).
pub trait JsonText {
    /// Indented with two spaces, one member per line.
    fn pretty(&self) -> String;
    /// On one line, `{"a": 1, "b": [2, 3]}`.
    fn compact(&self) -> String;
}

impl JsonText for Json {
    fn pretty(&self) -> String {
        let mut out = String::new();
        write(self, &mut out, Some(0)).expect("writing to a String cannot fail");
        out
    }

    fn compact(&self) -> String {
        let mut out = String::new();
        write(self, &mut out, None).expect("writing to a String cannot fail");
        out
    }
}

/// `indent`: the current depth when pretty-printing, `None` for one line.
fn write(value: &Json, out: &mut String, indent: Option<usize>) -> fmt::Result {
    match value {
        Json::Null => out.write_str("null"),
        Json::Bool(b) => write!(out, "{b}"),
        Json::UInt(n) => write!(out, "{n}"),
        Json::Int(n) => write!(out, "{n}"),
        Json::String(s) => write_string(out, s),
        Json::Array(items) => write_list(out, indent, ('[', ']'), items, |out, item, i| {
            write(item, out, i)
        }),
        Json::Object(members) => {
            write_list(out, indent, ('{', '}'), members, |out, (key, value), i| {
                write_string(out, key)?;
                out.write_str(": ")?;
                write(value, out, i)
            })
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
