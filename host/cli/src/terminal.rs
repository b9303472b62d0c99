//! What a function wrote, made safe to print on a terminal.
//!
//! A function's result, error message and log are the plugin author's
//! bytes. Written raw to a terminal, escape sequences in them can move the
//! cursor, rewrite lines already printed (a carriage return), retitle the
//! window or, on some terminals, answer back as if typed. When the output
//! is a terminal, [`for_terminal`] shows every control character but the
//! line feed and the tab as a visible escape (`\x1b`, `\r`, `\u{9b}`);
//! piped output is left byte for byte as the function wrote it.

use std::borrow::Cow;
use std::io::IsTerminal as _;

/// `text` as it should be printed on standard output: escaped when that is a
/// terminal, as is otherwise.
pub(crate) fn for_stdout(text: &str) -> Cow<'_, str> {
    if std::io::stdout().is_terminal() {
        for_terminal(text)
    } else {
        Cow::Borrowed(text)
    }
}

/// `text` as it should be printed on standard error (see [`for_stdout`]).
pub(crate) fn for_stderr(text: &str) -> Cow<'_, str> {
    if std::io::stderr().is_terminal() {
        for_terminal(text)
    } else {
        Cow::Borrowed(text)
    }
}

/// JSON text as it should be printed on standard output: on a terminal,
/// the characters serde_json leaves raw that a terminal may act on (DEL,
/// the C1 controls, U+2028 and U+2029) written as `\uXXXX` escapes, which
/// keeps the JSON the same value; as is otherwise.
pub(crate) fn json_for_stdout(json: &str) -> Cow<'_, str> {
    if !std::io::stdout().is_terminal() {
        return Cow::Borrowed(json);
    }
    json_escaped(json)
}

fn json_escaped(json: &str) -> Cow<'_, str> {
    let risky = |c: char| matches!(c, '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}');
    if !json.chars().any(risky) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if risky(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` with every control character (C0 but line feed and tab, DEL, C1)
/// written as a visible escape.
pub(crate) fn for_terminal(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\r' => out.push_str("\\r"),
            c if unsafe_char(c) && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_its_value_without_raw_c1_controls() {
        let value = serde_json::json!({"result": "a\u{9b}31m\u{85}\u{2028}\u{7f}é"});
        let text = value.to_string();
        let escaped = json_escaped(&text);
        assert!(!escaped
            .chars()
            .any(|c| ('\u{7f}'..='\u{9f}').contains(&c) || c == '\u{2028}'));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&escaped).unwrap(),
            value
        );
    }

    #[test]
    fn control_characters_become_visible_and_text_stays() {
        assert!(matches!(
            for_terminal("plain\ttext\nlines é"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            for_terminal("ok\rFAKE \x1b]0;title\x07 \x1b[2J \u{9b}31m \x7f"),
            "ok\\rFAKE \\x1b]0;title\\x07 \\x1b[2J \\u{9b}31m \\x7f"
        );
    }
}
