//! Text from the cluster or the registry is written by someone else: a status message,
//! an annotation, a tag or a file name can carry terminal escape sequences (the class of
//! CVE-2021-25743, fixed in kubectl by kubernetes/kubernetes#112553). Everything the
//! printer writes for humans passes through here first, so control characters are shown
//! visibly (`\x1b`, `\r`, `\u{202e}`) instead of being obeyed by the terminal.

use std::borrow::Cow;
use std::fmt::Write;

/// Private markers the printer uses for its own colours (Unicode noncharacters, which
/// text never carries); they are turned into SGR sequences or dropped when written.
pub(super) const TONE_BASE: char = '\u{FDD0}';
pub(super) const TONE_RESET: char = '\u{FDDF}';

/// Whether newlines and tabs are kept (a block of text) or shown escaped (one cell).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Block,
    Inline,
}

fn is_marker(c: char) -> bool {
    (TONE_BASE..=TONE_RESET).contains(&c)
}

/// Characters a terminal would act on rather than show: C0 and C1 controls, DEL, and
/// the bidirectional overrides that reorder what is displayed (Trojan Source).
fn needs_escape(c: char, layout: Layout) -> bool {
    match c {
        '\n' | '\t' => layout == Layout::Inline,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' => true,
        _ => false,
    }
}

/// The text with every control character replaced by a visible escape.
pub fn sanitize(text: &str, layout: Layout) -> Cow<'_, str> {
    if !text.chars().any(|c| needs_escape(c, layout)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !needs_escape(c, layout) {
            out.push(c);
            continue;
        }
        let _ = match c {
            '\n' => write!(out, "\\n"),
            '\t' => write!(out, "\\t"),
            '\r' => write!(out, "\\r"),
            c if (c as u32) < 0x80 => write!(out, "\\x{:02x}", c as u32),
            c => write!(out, "\\u{{{:x}}}", c as u32),
        };
    }
    Cow::Owned(out)
}

/// Text for a cell or a one-line field: also drops the printer's colour markers, so
/// data cannot pose as the printer's own colouring.
pub fn inline(text: &str) -> Cow<'_, str> {
    let escaped = sanitize(text, Layout::Inline);
    if escaped.chars().any(is_marker) {
        Cow::Owned(escaped.chars().filter(|c| !is_marker(*c)).collect())
    } else {
        escaped
    }
}

/// Bytes of a file shown on a terminal: invalid UTF-8 shown as U+FFFD, controls escaped.
pub fn bytes_for_terminal(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = sanitize(&text, Layout::Block);
    text.chars().filter(|c| !is_marker(*c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_not_obeyed() {
        let hostile = "The module not found\u{1b}]0;title\u{7}\u{1b}[2J\u{1b}[31mRED";
        let shown = sanitize(hostile, Layout::Block);
        assert!(!shown.contains('\u{1b}') && !shown.contains('\u{7}'));
        assert_eq!(
            shown,
            "The module not found\\x1b]0;title\\x07\\x1b[2J\\x1b[31mRED"
        );
    }

    #[test]
    fn layout_decides_about_newlines_and_tabs() {
        assert_eq!(sanitize("a\nb\tc", Layout::Block), "a\nb\tc");
        assert_eq!(sanitize("a\nb\tc", Layout::Inline), "a\\nb\\tc");
        assert_eq!(
            sanitize("over\rwrite\u{8}", Layout::Block),
            "over\\rwrite\\x08"
        );
    }

    #[test]
    fn c1_controls_and_bidi_overrides_are_escaped() {
        assert_eq!(sanitize("a\u{9b}31m", Layout::Block), "a\\u{9b}31m");
        assert_eq!(
            sanitize("evil\u{202e}txt", Layout::Block),
            "evil\\u{202e}txt"
        );
    }

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(
            sanitize("echo: Ready ✓", Layout::Inline),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn data_cannot_carry_colour_markers() {
        assert_eq!(inline("x\u{FDD1}y\u{FDDF}"), "xy");
        assert_eq!(bytes_for_terminal(b"a\xffb\x1b[0m"), "a\u{FFFD}b\\x1b[0m");
    }
}
