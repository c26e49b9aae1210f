//! Text that came from a file (paths, parent locator platform codes and paths, the creator
//! field, messages that quote them), made harmless to print on a terminal.
//!
//! An image is untrusted: a locator path holding `ESC [ 2 J` would clear the screen of
//! whoever runs `vhd info`, and a right-to-left override would make a path read backwards.
//! The one rule ([`is_unsafe`]) is applied where the command line prints text ([`safe`])
//! and where it writes JSON strings (`crate::json`, as `\uXXXX` escapes: the parsed value
//! stays exactly the bytes of the image).

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal as it is: a control character (C0, DEL, C1), or
/// an invisible format character that changes how the text around it reads (bidirectional
/// embeddings, overrides, isolates and marks, zero-width characters, line and paragraph
/// separators, the byte order mark, interlinear annotations).
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

/// `text` with every [`is_unsafe`] character written as an escape, as Rust writes them:
/// `\n`, `\r`, `\t`, otherwise `\u{1b}` (hexadecimal code point). Text without any is
/// returned as it is. A backslash is left alone (Windows paths are full of them), so the
/// escaped form can be ambiguous to a reader, never to the terminal.
pub fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_format_characters_and_nothing_else() {
        assert_eq!(
            safe("a\u{1b}[2J\u{7}\u{7f}\u{85}\u{9b}b\n\t\u{202e}gpj.exe\u{2066}"),
            "a\\u{1b}[2J\\u{7}\\u{7f}\\u{85}\\u{9b}b\\n\\t\\u{202e}gpj.exe\\u{2066}"
        );
        let plain = "C:\\disks\\Base é 日本.vhd";
        assert!(matches!(safe(plain), Cow::Borrowed(p) if p == plain));
    }
}
