//! Everything the tool prints goes through the [`Printer`]: tables, colours, JSON/YAML,
//! the spinner and error reports. Commands build values and hand them to render
//! functions that take a `&Printer`; the printer owns its two writers (stdout and
//! stderr for the process, buffers in tests), decides colour per stream, and makes
//! text from outside safe for a terminal ([`sanitize`]).

pub mod jsonpath;
mod sanitize;
pub mod table;

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};

use owo_colors::{OwoColorize, Style};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

pub use sanitize::{Layout, bytes_for_terminal, inline, sanitize};

use crate::error::{Error, Result};
use sanitize::{TONE_BASE, TONE_RESET};

/// The kind of emphasis a cell or line gets on a colour terminal.
/// Levels as in kubectl (`-v=N`), shared by the API and the registry request logs.
pub mod verbosity {
    /// Each request: method, URL, status, time.
    pub const REQUESTS: u8 = 6;
    /// Also the headers (credentials redacted).
    pub const REQUEST_HEADERS: u8 = 7;
}

/// `-o` for commands that print one object (create, edit): kubectl's JSON, YAML and
/// name printers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ObjectFormat {
    Json,
    Yaml,
    Name,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Good,
    Bad,
    Warn,
    Dim,
    Bold,
}

impl Tone {
    const ALL: [Tone; 6] = [
        Tone::Plain,
        Tone::Good,
        Tone::Bad,
        Tone::Warn,
        Tone::Dim,
        Tone::Bold,
    ];

    fn marker(self) -> char {
        let index = Tone::ALL.iter().position(|t| *t == self).unwrap_or(0);
        char::from_u32(TONE_BASE as u32 + index as u32).unwrap_or(TONE_BASE)
    }

    fn style(self) -> Style {
        match self {
            Tone::Plain => Style::new(),
            Tone::Good => Style::new().green(),
            Tone::Bad => Style::new().red(),
            Tone::Warn => Style::new().yellow(),
            Tone::Dim => Style::new().dimmed(),
            Tone::Bold => Style::new().bold(),
        }
    }
}

/// Which of the printer's two streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    Out,
    Err,
}

type Writer = Arc<Mutex<Box<dyn Write + Send>>>;

/// One output stream with its own colour decision.
#[derive(Clone)]
struct Stream {
    writer: Writer,
    color: bool,
    terminal: bool,
}

impl Stream {
    /// Writes `text` (block layout: newlines kept), turning the printer's colour
    /// markers into SGR sequences on a colour stream and dropping them elsewhere.
    fn write_text(&self, text: &str, newline: bool) {
        let safe = sanitize(text, Layout::Block);
        let mut rendered = String::with_capacity(safe.len() + 1);
        let mut tone = Tone::Plain;
        let mut segment = String::new();
        let flush = |segment: &mut String, tone: Tone, rendered: &mut String| {
            if segment.is_empty() {
                return;
            }
            if self.color {
                let _ = write!(rendered, "{}", segment.style(tone.style()));
            } else {
                rendered.push_str(segment);
            }
            segment.clear();
        };
        for c in safe.chars() {
            if (TONE_BASE..=TONE_RESET).contains(&c) {
                flush(&mut segment, tone, &mut rendered);
                tone = Tone::ALL
                    .get((c as u32 - TONE_BASE as u32) as usize)
                    .copied()
                    .unwrap_or(Tone::Plain);
            } else {
                segment.push(c);
            }
        }
        flush(&mut segment, tone, &mut rendered);
        if newline {
            rendered.push('\n');
        }
        self.write_bytes(rendered.as_bytes());
    }

    fn write_bytes(&self, bytes: &[u8]) {
        if let Ok(mut writer) = self.writer.lock() {
            // A closed pipe (`| head`) is not an error worth reporting.
            let _ = writer.write_all(bytes);
            let _ = writer.flush();
        }
    }
}

/// How to print: where (injected writers), colour per stream (decided once from the
/// terminal, `NO_COLOR`, `TERM=dumb` and `--no-color`) and how much detail.
#[derive(Clone)]
pub struct Printer {
    out: Stream,
    err: Stream,
    pub verbose: u8,
    stdin_terminal: bool,
}

/// What a test printer captured.
#[cfg(test)]
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

#[cfg(test)]
impl Captured {
    pub fn text(&self) -> String {
        self.0
            .lock()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }
}

#[cfg(test)]
impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut bytes) = self.0.lock() {
            bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process's printer for request logs from code that has none (the registry
/// client); set once by `main`.
static TRACE: std::sync::OnceLock<Printer> = std::sync::OnceLock::new();

pub fn set_trace(printer: Printer) {
    let _ = TRACE.set(printer);
}

/// A debug line at `level` (`-v=N`) through the process's printer, if set.
pub fn trace(level: u8, text: impl AsRef<str>) {
    if let Some(printer) = TRACE.get() {
        printer.debug(level, text);
    }
}

impl Printer {
    /// The process's stdout and stderr.
    pub fn new(no_color: bool, verbose: u8) -> Self {
        let env_off = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
            || std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        let enabled = !no_color && !env_off;
        let stdout_terminal = std::io::stdout().is_terminal();
        let stderr_terminal = std::io::stderr().is_terminal();
        Self {
            out: Stream {
                writer: Arc::new(Mutex::new(Box::new(std::io::stdout()))),
                color: enabled && stdout_terminal,
                terminal: stdout_terminal,
            },
            err: Stream {
                writer: Arc::new(Mutex::new(Box::new(std::io::stderr()))),
                color: enabled && stderr_terminal,
                terminal: stderr_terminal,
            },
            verbose,
            stdin_terminal: std::io::stdin().is_terminal(),
        }
    }

    /// A printer over two buffers, for rendering tests; `color` as on a terminal.
    #[cfg(test)]
    pub fn capture(color: bool, verbose: u8) -> (Self, Captured, Captured) {
        let out = Captured::default();
        let err = Captured::default();
        let stream = |buffer: &Captured| Stream {
            writer: Arc::new(Mutex::new(Box::new(buffer.clone()))),
            color,
            terminal: false,
        };
        let printer = Self {
            out: stream(&out),
            err: stream(&err),
            verbose,
            stdin_terminal: false,
        };
        (printer, out, err)
    }

    /// Whether prompts and pickers may be shown.
    pub fn interactive(&self) -> bool {
        self.stdin_terminal && self.err.terminal
    }

    /// Asks `question` on a terminal; elsewhere nobody can answer, and the command
    /// refuses with `refusal` (a usage error that names the flag which confirms).
    pub fn ask(&self, question: &str, refusal: impl FnOnce() -> Error) -> Result<bool> {
        if !self.interactive() {
            return Err(refusal());
        }
        confirm(question)
    }

    /// A digest as a person reads it on `to`: `sha256:` and 12 hex digits on a terminal,
    /// whole where a program may read it (a pipe, a file).
    pub fn digest_on(&self, to: To, digest: &str) -> String {
        let terminal = match to {
            To::Out => self.out.terminal,
            To::Err => self.err.terminal,
        };
        if terminal {
            terminal_digest(digest)
        } else {
            digest.to_string()
        }
    }

    /// Whether stdout is a terminal (raw file contents are escaped there).
    pub fn stdout_is_terminal(&self) -> bool {
        self.out.terminal
    }

    /// `text` in a tone; the colour is applied (or not) by the stream it is written
    /// to, so the same value reads right on stdout and on stderr. Text from outside
    /// is made safe for one line here.
    pub fn paint(&self, text: &str, tone: Tone) -> String {
        let safe = inline(text);
        if tone == Tone::Plain {
            return safe.into_owned();
        }
        format!("{}{safe}{}", tone.marker(), TONE_RESET)
    }

    /// A line on stdout.
    pub fn line(&self, text: impl AsRef<str>) {
        self.out.write_text(text.as_ref(), true);
    }

    /// A line on the given stream.
    pub fn line_to(&self, to: To, text: impl AsRef<str>) {
        match to {
            To::Out => self.line(text),
            To::Err => self.note(text),
        }
    }

    /// Bytes exactly as given on stdout (completion scripts, `registry cat --raw`).
    pub fn raw(&self, bytes: &[u8]) {
        self.out.write_bytes(bytes);
    }

    /// A note on stderr (progress, warnings), never mixed into stdout data.
    pub fn note(&self, text: impl AsRef<str>) {
        self.err.write_text(text.as_ref(), true);
    }

    pub fn warn(&self, text: impl AsRef<str>) {
        let label = self.paint("warning:", Tone::Warn);
        self.note(format!("{label} {}", text.as_ref()));
    }

    /// A debug line, shown only with `-v` at `level` or above.
    pub fn debug(&self, level: u8, text: impl AsRef<str>) {
        if self.verbose >= level {
            let label = self.paint("debug:", Tone::Dim);
            self.note(format!("{label} {}", text.as_ref()));
        }
    }

    /// JSON on stdout, exact: the encoder escapes control characters itself.
    pub fn json<T: Serialize>(&self, value: &T) -> Result<()> {
        // Streamed through a buffer: a list of thousands of rows is never held twice.
        let Ok(mut writer) = self.out.writer.lock() else {
            return Ok(());
        };
        let mut buffered = std::io::BufWriter::with_capacity(64 * 1024, &mut **writer);
        match serde_json::to_writer_pretty(&mut buffered, value) {
            Ok(()) => {}
            // A closed pipe (`| head`) is not an error worth reporting.
            Err(err) if err.is_io() => return Ok(()),
            Err(err) => return Err(Error::runtime(format!("cannot render JSON: {err}"))),
        }
        let _ = buffered.write_all(b"\n");
        let _ = buffered.flush();
        Ok(())
    }

    /// YAML on stdout, exact.
    pub fn yaml<T: Serialize>(&self, value: &T) -> Result<()> {
        let mut text = serde_saphyr::to_string(value)
            .map_err(|err| Error::runtime(format!("cannot render YAML: {err}")))?;
        if !text.ends_with('\n') {
            text.push('\n');
        }
        self.raw(text.as_bytes());
        Ok(())
    }

    /// Reports an error on stderr: `error:` line, `hint:` line; with `-v` the detail
    /// and the chain of causes.
    pub fn error(&self, err: &Error) {
        // Already said (a cancelled prompt): nothing more to print.
        if err.message.is_empty() {
            return;
        }
        let label = match err.server_reason {
            Some(reason) => self.paint(&format!("Error from server ({reason}):"), Tone::Bad),
            None => self.paint("error:", Tone::Bad),
        };
        self.note(format!("{label} {}", err.message));
        if let Some(hint) = &err.hint {
            let label = self.paint("hint:", Tone::Warn);
            self.note(format!("{label} {hint}"));
        }
        if self.verbose > 0 {
            if let Some(detail) = &err.detail {
                self.note(detail);
            }
            for cause in err.causes() {
                self.note(format!("  caused by: {cause}"));
            }
        }
    }

    /// A spinner on stderr while `message` is in progress; a no-op off a terminal.
    pub fn spinner(&self, message: impl AsRef<str>) -> Spinner {
        if !self.err.terminal {
            return Spinner(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.set_message(inline(message.as_ref()).into_owned());
        bar.enable_steady_tick(Duration::from_millis(100));
        Spinner(Some(bar))
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

/// `sha256:d49c3cbdd040…`: the algorithm and 12 hex digits, marked as shortened.
pub fn terminal_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algorithm, hex)) if hex.chars().count() > 12 => {
            format!("{algorithm}:{}…", hex.chars().take(12).collect::<String>())
        }
        _ => digest.to_string(),
    }
}

/// A duration as kubectl shows an age: `45s`, `12m`, `3h`, `5d`.
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

/// A duration as users write one: `90s` → `1m30s`, `250ms`.
pub fn humanize(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs == 0 {
        return format!("{}ms", duration.as_millis());
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// A yes/no question on the terminal (default: no), answered with a line as a shell
/// prompt is: `y`/`yes` agree, anything else declines.
pub fn confirm(question: &str) -> Result<bool> {
    let answer: String = dialoguer::Input::new()
        .with_prompt(format!("{} [y/N]", inline(question)))
        .allow_empty(true)
        .interact_text()
        .map_err(|err| Error::runtime(format!("cannot read the answer: {err}")))?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
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
    fn ages_and_durations() {
        assert_eq!(age(Duration::from_secs(5)), "5s");
        assert_eq!(age(Duration::from_secs(600)), "10m");
        assert_eq!(age(Duration::from_secs(3 * 3600)), "3h");
        assert_eq!(age(Duration::from_secs(3 * 86_400)), "3d");
        assert_eq!(age_of(Some("garbage")), "<unknown>");
        assert_eq!(humanize(Duration::from_secs(90)), "1m30s");
        assert_eq!(humanize(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn colour_is_decided_by_the_stream_written_to() {
        let (printer, out, err) = Printer::capture(false, 0);
        let label = printer.paint("Ready:", Tone::Good);
        printer.line(&label);
        printer.note(&label);
        assert_eq!(out.text(), "Ready:\n");
        assert_eq!(err.text(), "Ready:\n");
        let (printer, out, _) = Printer::capture(true, 0);
        printer.line(printer.paint("Ready:", Tone::Good));
        assert_eq!(
            out.text(),
            format!("{}\n", "Ready:".style(Style::new().green()))
        );
    }

    #[test]
    fn hostile_text_never_reaches_a_stream_raw() {
        let (printer, out, err) = Printer::capture(true, 0);
        let hostile = "bad\u{1b}]0;title\u{7}\u{1b}[2J";
        printer.line(format!("message: {hostile}"));
        printer.line(printer.paint(hostile, Tone::Bad));
        printer.warn(hostile);
        let shown = out.text() + &err.text();
        assert!(
            !shown.contains("\u{1b}]") && !shown.contains('\u{7}') && !shown.contains("\u{1b}[2J")
        );
        assert!(shown.contains("bad\\x1b]0;title\\x07"));
    }

    #[test]
    fn machine_output_is_exact() {
        let (printer, out, _) = Printer::capture(true, 0);
        printer.json(&serde_json::json!({"m": "a\u{1b}b"})).unwrap();
        assert_eq!(out.text(), "{\n  \"m\": \"a\\u001bb\"\n}\n");
    }
}
