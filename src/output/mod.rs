//! Everything the tool prints goes through here: tables, colours, JSON/YAML, the
//! spinner and error reports. Commands build values; this module renders them.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use owo_colors::OwoColorize;
use serde::Serialize;

use crate::error::{Error, Result};

/// How to print: colour on/off (decided once from the terminal, `NO_COLOR` and
/// `--no-color`) and how much detail.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub color: bool,
    pub stderr_color: bool,
    pub verbose: u8,
    pub stderr_terminal: bool,
    pub stdin_terminal: bool,
}

/// The kind of emphasis a cell or line gets on a colour terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Good,
    Bad,
    Warn,
    Dim,
    Bold,
}

impl Printer {
    pub fn new(no_color: bool, verbose: u8) -> Self {
        let env_off = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let enabled = !no_color && !env_off;
        Self {
            color: enabled && std::io::stdout().is_terminal(),
            stderr_color: enabled && std::io::stderr().is_terminal(),
            verbose,
            stderr_terminal: std::io::stderr().is_terminal(),
            stdin_terminal: std::io::stdin().is_terminal(),
        }
    }

    /// Whether prompts and pickers may be shown.
    pub fn interactive(&self) -> bool {
        self.stdin_terminal && self.stderr_terminal
    }

    pub fn paint(&self, text: &str, tone: Tone) -> String {
        paint(self.color, text, tone)
    }

    pub fn paint_err(&self, text: &str, tone: Tone) -> String {
        paint(self.stderr_color, text, tone)
    }

    /// A line on stdout.
    pub fn line(&self, text: impl AsRef<str>) {
        let mut out = std::io::stdout().lock();
        // A closed pipe (`| head`) is not an error worth reporting.
        let _ = writeln!(out, "{}", text.as_ref());
    }

    /// A note on stderr (progress, warnings), never mixed into stdout data.
    pub fn note(&self, text: impl AsRef<str>) {
        let _ = writeln!(std::io::stderr().lock(), "{}", text.as_ref());
    }

    pub fn warn(&self, text: impl AsRef<str>) {
        let label = self.paint_err("warning:", Tone::Warn);
        self.note(format!("{label} {}", text.as_ref()));
    }

    /// A debug line, shown only with `-v`.
    pub fn debug(&self, level: u8, text: impl AsRef<str>) {
        if self.verbose >= level {
            let label = self.paint_err("debug:", Tone::Dim);
            self.note(format!("{label} {}", text.as_ref()));
        }
    }

    pub fn json<T: Serialize>(&self, value: &T) -> Result<()> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|err| Error::runtime(format!("cannot render JSON: {err}")))?;
        self.line(text);
        Ok(())
    }

    pub fn yaml<T: Serialize>(&self, value: &T) -> Result<()> {
        let text = serde_saphyr::to_string(value)
            .map_err(|err| Error::runtime(format!("cannot render YAML: {err}")))?;
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "{text}");
        if !text.ends_with('\n') {
            let _ = writeln!(out);
        }
        Ok(())
    }

    /// Prints rows as a kubectl-style table (upper-case headers, columns separated by
    /// three spaces). Widths are measured on the plain text before colouring.
    pub fn table(&self, headers: &[&str], rows: &[Vec<(String, Tone)>]) {
        self.render_table(headers, rows, true);
    }

    /// Rows only, aligned as if under `headers` (for `--watch` updates).
    pub fn table_rows(&self, headers: &[&str], rows: &[Vec<(String, Tone)>]) {
        self.render_table(headers, rows, false);
    }

    fn render_table(&self, headers: &[&str], rows: &[Vec<(String, Tone)>], with_header: bool) {
        let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
        for row in rows {
            for (index, (cell, _)) in row.iter().enumerate() {
                if let Some(width) = widths.get_mut(index) {
                    *width = (*width).max(cell.chars().count());
                }
            }
        }
        let render = |cells: Vec<(String, Tone)>| {
            let last = cells.len().saturating_sub(1);
            let mut line = String::new();
            for (index, (cell, tone)) in cells.into_iter().enumerate() {
                let pad = widths
                    .get(index)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(cell.chars().count());
                line.push_str(&self.paint(&cell, tone));
                if index != last {
                    line.push_str(&" ".repeat(pad + 3));
                }
            }
            line
        };
        if with_header {
            self.line(render(
                headers
                    .iter()
                    .map(|h| (h.to_string(), Tone::Plain))
                    .collect(),
            ));
        }
        for row in rows {
            self.line(render(row.clone()));
        }
    }

    /// Reports an error on stderr: `error:` line, `hint:` line, detail with `-v`.
    pub fn error(&self, err: &Error) {
        let label = self.paint_err("error:", Tone::Bad);
        self.note(format!("{label} {}", err.message));
        if let Some(hint) = &err.hint {
            let label = self.paint_err("hint:", Tone::Warn);
            self.note(format!("{label} {hint}"));
        }
        if let Some(detail) = &err.detail
            && self.verbose > 0
        {
            self.note(detail);
        }
    }

    /// A spinner on stderr while `message` is in progress; a no-op off a terminal.
    pub fn spinner(&self, message: impl Into<String>) -> Spinner {
        if !self.stderr_terminal {
            return Spinner(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(100));
        Spinner(Some(bar))
    }
}

fn paint(enabled: bool, text: &str, tone: Tone) -> String {
    if !enabled {
        return text.to_string();
    }
    match tone {
        Tone::Plain => text.to_string(),
        Tone::Good => text.green().to_string(),
        Tone::Bad => text.red().to_string(),
        Tone::Warn => text.yellow().to_string(),
        Tone::Dim => text.dimmed().to_string(),
        Tone::Bold => text.bold().to_string(),
    }
}

/// Progress shown while waiting; cleared when dropped.
pub struct Spinner(Option<indicatif::ProgressBar>);

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// `sha256:0123456789ab...` → `0123456789ab` (12 hex digits, like `docker images`).
pub fn short_digest(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, hex)| hex);
    hex.chars().take(12).collect()
}

/// Age like kubectl's: `45s`, `12m`, `3h`, `5d`.
pub fn age(since: Duration) -> String {
    let secs = since.as_secs();
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        7200..=172_799 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// Age of an RFC 3339 timestamp relative to now; `<unknown>` if it does not parse.
pub fn age_of(timestamp: Option<&str>) -> String {
    let Some(parsed) = timestamp.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".to_string();
    };
    let elapsed = jiff::Timestamp::now().duration_since(parsed);
    age(Duration::from_secs(elapsed.as_secs().max(0) as u64))
}

/// A yes/no question on the terminal (default: no).
pub fn confirm(question: &str) -> Result<bool> {
    dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
        .map_err(|err| Error::runtime(format!("cannot read the answer: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_shortened() {
        assert_eq!(short_digest("sha256:0123456789abcdef0123"), "0123456789ab");
        assert_eq!(short_digest("abc"), "abc");
    }

    #[test]
    fn ages() {
        assert_eq!(age(Duration::from_secs(5)), "5s");
        assert_eq!(age(Duration::from_secs(600)), "10m");
        assert_eq!(age(Duration::from_secs(3 * 3600)), "3h");
        assert_eq!(age(Duration::from_secs(3 * 86_400)), "3d");
        assert_eq!(age_of(Some("garbage")), "<unknown>");
    }
}
