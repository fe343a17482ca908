//! kubectl-style tables: upper-case headers, columns separated by three spaces,
//! widths measured on the text as shown (escaped, before colouring).

use super::{Printer, Tone, inline};

/// One cell: its text (from anywhere; escaped here) and its emphasis.
pub type Cell = (String, Tone);

impl Printer {
    /// Prints rows under `headers` on stdout.
    pub fn table(&self, headers: &[&str], rows: &[Vec<Cell>]) {
        self.render_table(headers, rows, true);
    }

    /// Rows only, aligned as if under `headers` (`--no-headers`).
    pub fn table_rows(&self, headers: &[&str], rows: &[Vec<Cell>]) {
        self.render_table(headers, rows, false);
    }

    fn render_table(&self, headers: &[&str], rows: &[Vec<Cell>], with_header: bool) {
        let rows: Vec<Vec<(String, Tone)>> = rows
            .iter()
            .map(|row| {
                row.iter()
                    .map(|(text, tone)| (inline(text).into_owned(), *tone))
                    .collect()
            })
            .collect();
        let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (index, (cell, _)) in row.iter().enumerate() {
                if let Some(width) = widths.get_mut(index) {
                    *width = (*width).max(cell.chars().count());
                }
            }
        }
        let render = |cells: &[(String, Tone)]| {
            let last = cells.len().saturating_sub(1);
            let mut line = String::new();
            for (index, (cell, tone)) in cells.iter().enumerate() {
                line.push_str(&self.paint(cell, *tone));
                if index != last {
                    let pad = widths
                        .get(index)
                        .copied()
                        .unwrap_or(0)
                        .saturating_sub(cell.chars().count());
                    line.push_str(&" ".repeat(pad + 3));
                }
            }
            line
        };
        if with_header {
            let header: Vec<(String, Tone)> = headers
                .iter()
                .map(|h| (h.to_string(), Tone::Plain))
                .collect();
            self.line(render(&header));
        }
        for row in &rows {
            self.line(render(row));
        }
    }
}

/// Shortens `text` to `width` characters keeping both ends, where messages carry
/// their most telling parts ("Download error: … : not found").
pub fn truncate_middle(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count <= width || width < 5 {
        return text.to_string();
    }
    let head = (width - 1) / 2;
    let tail = width - 1 - head;
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(count - tail).collect();
    format!("{start}…{end}")
}

/// Shortens `text` to `width` characters keeping a short head and a long tail: a
/// controller message names the kind of failure first and its reason last
/// ("Download error: … 401 Unauthorized"), and the reason tells failures apart.
pub fn truncate_keeping_end(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count <= width || width < 5 {
        return text.to_string();
    }
    let head = (width - 1) / 3;
    let tail = width - 1 - head;
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(count - tail).collect();
    format!("{start}…{end}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_escaped_text() {
        let (printer, out, _) = Printer::capture(false, 0);
        printer.table(
            &["NAME", "MESSAGE"],
            &[
                vec![("a\u{1b}".into(), Tone::Bold), ("x".into(), Tone::Plain)],
                vec![("bbbbbbb".into(), Tone::Bold), ("y".into(), Tone::Plain)],
            ],
        );
        assert_eq!(out.text(), "NAME      MESSAGE\na\\x1b     x\nbbbbbbb   y\n");
    }

    #[test]
    fn truncation_keeps_both_ends() {
        assert_eq!(truncate_middle("abcdefghij", 7), "abc…hij");
        assert_eq!(truncate_middle("short", 7), "short");
        assert_eq!(truncate_keeping_end("abcdefghij", 7), "ab…ghij");
    }
}
