//! Go's `%q` (`strconv.Quote`), so that messages embedding a value match the
//! reference byte for byte: host and guests share this one copy.

use std::fmt::Write as _;

/// Quotes `s` as Go's `strconv.Quote` does: double quotes, the short escapes
/// (`\a \b \f \n \r \t \v \\ \"`), `\xNN` for other ASCII controls, and `\uNNNN`
/// or `\UNNNNNNNN` for every other rune Go does not consider printable (controls,
/// format characters, private use, and spaces other than ' '). Go also escapes
/// unassigned code points, which std cannot tell apart; those are printed as
/// they are.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if !is_go_printable(c) => {
                if (c as u32) < 0x1_0000 {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub fn go_quote_list<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s.as_ref())).collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `unicode.IsPrint` for assigned code points: letters, marks, numbers,
/// punctuation, symbols and the ASCII space; not controls (Cc), format
/// characters (Cf), private use (Co), surrogates, or other spaces (Zs, Zl, Zp).
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let n = c as u32;
    let format = matches!(
        n,
        0xad | 0x600..=0x605
            | 0x61c
            | 0x6dd
            | 0x70f
            | 0x890..=0x891
            | 0x8e2
            | 0x180e
            | 0x200b..=0x200f
            | 0x202a..=0x202e
            | 0x2060..=0x2064
            | 0x2066..=0x206f
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0x110bd
            | 0x110cd
            | 0x13430..=0x1343f
            | 0x1bca0..=0x1bca3
            | 0x1d173..=0x1d17a
            | 0xe0001
            | 0xe0020..=0xe007f
    );
    let private_use = matches!(n, 0xe000..=0xf8ff | 0xf0000..=0xffffd | 0x100000..=0x10fffd);
    // U+00A0 and the like are whitespace for Rust as well; U+180E is neither.
    !(format || private_use || n == 0x85 || n == 0xa0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("a"), "\"a\"");
        assert_eq!(go_quote("a\"b\\c\n\t\u{1}"), "\"a\\\"b\\\\c\\n\\t\\x01\"");
        assert_eq!(go_quote_list(&["0.1.0", "0.2.0"]), "[\"0.1.0\" \"0.2.0\"]");
        assert_eq!(go_quote_list::<&str>(&[]), "[]");
    }

    /// Outputs of Go 1.22's `strconv.Quote` for the same inputs.
    #[test]
    fn matches_go() {
        for (input, go) in [
            ("eth0", r#""eth0""#),
            ("a\"b\\c", r#""a\"b\\c""#),
            ("\u{7}\u{8}\u{c}\n\r\t\u{b}", r#""\a\b\f\n\r\t\v""#),
            ("\u{0}\u{1f}\u{7f}", r#""\x00\x1f\x7f""#),
            ("é ü 日本 🙂", "\"é ü 日本 🙂\""),
            (
                "\u{85}\u{a0}\u{2028}\u{3000}",
                r#""\u0085\u00a0\u2028\u3000""#,
            ),
            ("\u{200b}\u{feff}\u{ad}", r#""\u200b\ufeff\u00ad""#),
            ("\u{e000}\u{e0001}", r#""\ue000\U000e0001""#),
        ] {
            assert_eq!(go_quote(input), go, "{input:?}");
        }
        assert_eq!(go_quote_list(&["a=1", "b"]), r#"["a=1" "b"]"#);
        assert_eq!(go_quote_list::<&str>(&[]), "[]");
    }
}
