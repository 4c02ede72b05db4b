//! The listings' tables (`rpc stats`, `rpc scheduled`, `rpc periodic`): one
//! printer, so every listing lines up by the same rules.
//!
//! * Columns are as wide as their widest cell (in characters) and two spaces
//!   apart; the header is the first line.
//! * Text (names, ids, schedules, relative times) is left-aligned; counts
//!   and durations are right-aligned, so their units line up.
//! * No line ends in spaces: the last column is not padded.
//! * A row may carry notes: lines under it, indented two spaces, outside the
//!   columns (the workers under their service, why a value is unreadable).
//! * Cells come from Redis, which is hostile: control characters (a newline,
//!   a terminal escape) are printed escaped (`\n`, `\u{1b}`), so a value can
//!   neither break the table nor drive the terminal.
//!
//! `rpc top` draws on a full-screen terminal with ratatui's table widget and
//! does not print through this.

use std::fmt;

/// How a column's cells sit in its width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text: names, ids, schedules, relative times.
    Left,
    /// Counts and durations.
    Right,
}

/// A table being filled; print it with `{}`.
#[derive(Debug)]
pub struct Table {
    header: Vec<(&'static str, Align)>,
    rows: Vec<Row>,
}

#[derive(Debug)]
struct Row {
    cells: Vec<String>,
    notes: Vec<String>,
}

impl Table {
    /// A table with these columns, named and aligned.
    pub fn new(header: &[(&'static str, Align)]) -> Self {
        Table {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are empty, cells past the header dropped.
    pub fn row<I: IntoIterator<Item = String>>(&mut self, cells: I) {
        let mut cells: Vec<String> = cells
            .into_iter()
            .take(self.header.len())
            .map(|c| printable(&c))
            .collect();
        cells.resize(self.header.len(), String::new());
        self.rows.push(Row {
            cells,
            notes: Vec::new(),
        });
    }

    /// Adds a line under the last row (ignored before the first row).
    pub fn note(&mut self, line: &str) {
        if let Some(row) = self.rows.last_mut() {
            row.notes.push(printable(line));
        }
    }

    fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.header.iter().map(|(h, _)| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(&row.cells) {
                *w = (*w).max(width(cell));
            }
        }
        widths
    }

    fn line(&self, f: &mut fmt::Formatter<'_>, widths: &[usize], cells: &[&str]) -> fmt::Result {
        let mut text = String::new();
        for (i, ((cell, width), (_, align))) in
            cells.iter().zip(widths).zip(&self.header).enumerate()
        {
            if i > 0 {
                text.push_str("  ");
            }
            let pad = " ".repeat(width.saturating_sub(self::width(cell)));
            match align {
                Align::Left => {
                    text.push_str(cell);
                    text.push_str(&pad);
                }
                Align::Right => {
                    text.push_str(&pad);
                    text.push_str(cell);
                }
            }
        }
        writeln!(f, "{}", text.trim_end())
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let widths = self.widths();
        let header: Vec<&str> = self.header.iter().map(|(h, _)| *h).collect();
        self.line(f, &widths, &header)?;
        for row in &self.rows {
            let cells: Vec<&str> = row.cells.iter().map(String::as_str).collect();
            self.line(f, &widths, &cells)?;
            for note in &row.notes {
                writeln!(f, "  {note}")?;
            }
        }
        Ok(())
    }
}

fn width(text: &str) -> usize {
    text.chars().count()
}

/// `text` with its control characters escaped, everything else as it is.
fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table::new(&[
            ("NAME", Align::Left),
            ("COUNT", Align::Right),
            ("WHEN", Align::Left),
        ])
    }

    #[test]
    fn text_is_left_aligned_and_figures_right_aligned_two_spaces_apart() {
        let mut t = table();
        t.row(["Calculator".into(), "2".into(), "in 3m".into()]);
        t.row(["Mail".into(), "1250".into(), "never".into()]);
        assert_eq!(
            t.to_string(),
            "NAME        COUNT  WHEN\n\
             Calculator      2  in 3m\n\
             Mail         1250  never\n"
        );
    }

    #[test]
    fn no_line_ends_in_spaces_and_notes_sit_under_their_row() {
        let mut t = table();
        t.note("before any row: dropped");
        t.row(["a".into(), "1".into(), String::new()]);
        t.note("worker w1: 1 leased");
        t.row(["long name".into()]);
        assert_eq!(
            t.to_string(),
            "NAME       COUNT  WHEN\n\
             a              1\n  worker w1: 1 leased\n\
             long name\n"
        );
    }

    /// Widths count characters, not bytes: `é` is one column.
    #[test]
    fn widths_count_characters() {
        let mut t = table();
        t.row(["héllo".into(), "1".into(), "x".into()]);
        assert_eq!(t.to_string(), "NAME   COUNT  WHEN\nhéllo      1  x\n");
    }

    /// Reproduces a job name from Redis holding a newline and a terminal
    /// escape: it stays on its line and prints as text.
    #[test]
    fn control_characters_from_redis_are_escaped() {
        let mut t = table();
        t.row(["evil\n\u{1b}[2J".into(), "1".into(), "x".into()]);
        t.note("why\r\nnot");
        let text = t.to_string();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("evil\\n\\u{1b}[2J"), "{text}");
        assert!(text.contains("  why\\r\\nnot"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
    }
}
