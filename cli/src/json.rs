//! JSON output, written by serde_json: the core's [`Json`] values (objects keep their key
//! order) and the CLI's own serde types. Strings are escaped as RFC 8259 requires and,
//! beyond it, wherever a terminal would act on a character ([`Terminal`]); numbers are
//! written exactly. Two layouts: indented ([`pretty`]) and qemu-img's one-line form with
//! `", "` and `": "` separators ([`compact`]).

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::ser::{CharEscape, Formatter, PrettyFormatter};
use std::io::{self, Write};

pub use vhd_core::json::Json;

/// JSON text of a core [`Json`] value (the value itself is the core's, shared with the
/// binding).
pub trait JsonText {
    /// Indented with two spaces, one member per line.
    fn pretty(&self) -> String;
    /// On one line, `{"a": 1, "b": [2, 3]}`.
    fn compact(&self) -> String;
}

impl JsonText for Json {
    fn pretty(&self) -> String {
        pretty(&Value(self))
    }

    fn compact(&self) -> String {
        compact(&Value(self))
    }
}

/// `value` indented with two spaces, one member per line.
pub fn pretty(value: &impl Serialize) -> String {
    write_with(value, Terminal(PrettyFormatter::new()))
}

/// `value` on one line, `{"a": 1, "b": [2, 3]}`, as qemu-img writes its map entries.
pub fn compact(value: &impl Serialize) -> String {
    write_with(value, Terminal(Spaced))
}

fn write_with(value: &impl Serialize, formatter: impl Formatter) -> String {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    value
        .serialize(&mut serializer)
        .expect("a JSON value always serializes");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// A core [`Json`] value as serde sees it.
struct Value<'a>(&'a Json);

impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(b) => serializer.serialize_bool(*b),
            Json::UInt(n) => serializer.serialize_u64(*n),
            Json::Int(n) => serializer.serialize_i64(*n),
            Json::String(s) => serializer.serialize_str(s),
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Value(item))?;
                }
                seq.end()
            }
            Json::Object(members) => {
                let mut map = serializer.serialize_map(Some(members.len()))?;
                for (key, value) in members {
                    map.serialize_entry(key, &Value(value))?;
                }
                map.end()
            }
        }
    }
}

/// serde_json's compact layout with a space after each `,` and `:` (qemu-img's).
struct Spaced;

impl Formatter for Spaced {
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

/// A layout `F` whose strings also escape, as `\uXXXX`, what a terminal would act on
/// (`crate::terminal::is_unsafe`: DEL, C1 controls, invisible format characters) besides
/// the C0 controls JSON requires: the raw output is harmless on a terminal, and the parsed
/// strings are exactly the image's.
struct Terminal<F>(F);

impl<F: Formatter> Formatter for Terminal<F> {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut rest = fragment;
        while let Some(at) = rest.find(crate::terminal::is_unsafe) {
            w.write_all(&rest.as_bytes()[..at])?;
            let c = rest[at..].chars().next().expect("found at a char boundary");
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(w, "\\u{unit:04x}")?;
            }
            rest = &rest[at + c.len_utf8()..];
        }
        w.write_all(rest.as_bytes())
    }

    fn write_char_escape<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        self.0.write_char_escape(w, escape)
    }

    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }

    fn end_object_key<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_key(w)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
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
        let text = "a\u{7f}\u{9b}2J\u{202e}z";
        let written = Json::str(text).compact();
        assert_eq!(written, r#""a\u007f\u009b2J\u202ez""#);
        assert_eq!(serde_json::from_str::<String>(&written).unwrap(), text);
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
