//! Errors about a schema, rendered the way rustc renders its own.
//!
//! A [`Diagnostic`] is data: a message, a primary label with a span, optional
//! secondary labels ("first defined here") and trailing notes
//! (`= help: ...`). Rendering happens once, at the end, against the
//! [`SourceMap`] that holds every file, so any stage of the pipeline can report
//! a problem without knowing how it will be shown:
//!
//! ```text
//! error: unknown type `Strin`
//!   --> schema/calculator.rpc:12:18
//!    |
//! 12 |     fn log(line: Strin);
//!    |                  ^^^^^ not a built-in type or a type declared in or imported by this file
//!    |
//!    = help: did you mean `String`?
//! ```

use std::fmt;
use std::sync::Arc;

use crate::source::{FileId, SourceMap, Span};

/// A span with a short text shown under it.
#[derive(Clone, Debug)]
pub struct Label {
    pub span: Span,
    pub text: String,
}

/// How bad a diagnostic is: schema errors are errors; a compatibility check
/// also reports changes that only deserve a warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    Error,
    Warning,
}

/// One problem in a schema (or with the files around it).
#[derive(Clone, Debug)]
pub struct Diagnostic {
    level: Level,
    /// Shown as `error[code]`, like rustc's error codes.
    code: Option<String>,
    message: String,
    primary: Option<Label>,
    /// A file the problem is about when there is no span (unreadable file).
    file: Option<FileId>,
    secondary: Vec<Label>,
    notes: Vec<String>,
}

impl Diagnostic {
    /// An error pointing at `span`, with `label` under the caret.
    pub(crate) fn error(message: impl Into<String>, span: Span, label: impl Into<String>) -> Self {
        Diagnostic {
            level: Level::Error,
            code: None,
            message: message.into(),
            primary: Some(Label {
                span,
                text: label.into(),
            }),
            file: Some(span.file),
            secondary: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// An error with no position (an unreadable root file, an output directory).
    pub(crate) fn bare(message: impl Into<String>) -> Self {
        Diagnostic {
            level: Level::Error,
            code: None,
            message: message.into(),
            primary: None,
            file: None,
            secondary: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The same diagnostic at another level.
    pub(crate) fn with_level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// Adds a code, shown as `error[code]: ...`.
    pub(crate) fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Adds a secondary label (`-` underline), e.g. "first defined here".
    pub(crate) fn with_label(mut self, span: Span, text: impl Into<String>) -> Self {
        self.secondary.push(Label {
            span,
            text: text.into(),
        });
        self
    }

    /// Adds `= help: ...`.
    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.notes.push(format!("help: {}", help.into()));
        self
    }

    /// Adds `= note: ...`.
    pub(crate) fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(format!("note: {}", note.into()));
        self
    }

    /// The one-line message after `error: `.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The primary span, if any.
    pub(crate) fn span(&self) -> Option<Span> {
        self.primary.as_ref().map(|l| l.span)
    }

    /// Renders the diagnostic in the rustc style.
    pub(crate) fn render(&self, sources: &SourceMap) -> String {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        let mut out = match &self.code {
            Some(code) => format!("{level}[{code}]: {}\n", self.message),
            None => format!("{level}: {}\n", self.message),
        };
        let Some(primary) = &self.primary else {
            if let Some(file) = self.file {
                out.push_str(&format!(" --> {}\n", sources.get(file).display.display()));
            }
            for note in &self.notes {
                out.push_str(&format!("  = {note}\n"));
            }
            return out;
        };

        // Labels in the primary's file are drawn together; others get a `:::` block.
        let mut here: Vec<(&Label, bool)> = vec![(primary, true)];
        let mut elsewhere: Vec<&Label> = Vec::new();
        for label in &self.secondary {
            if label.span.file == primary.span.file {
                here.push((label, false));
            } else {
                elsewhere.push(label);
            }
        }
        here.sort_by_key(|(l, _)| (l.span.start.line, l.span.start.col));
        let max_line = here
            .iter()
            .map(|(l, _)| l.span.start.line)
            .chain(elsewhere.iter().map(|l| l.span.start.line))
            .max()
            .unwrap_or(1);
        let width = max_line.to_string().len();
        let pad = " ".repeat(width);

        let file = sources.get(primary.span.file);
        out.push_str(&format!(
            "{pad}--> {}:{}:{}\n",
            file.display.display(),
            primary.span.start.line,
            primary.span.start.col + 1
        ));
        out.push_str(&format!("{pad} |\n"));
        render_labels(&mut out, sources, &here, width);

        for label in elsewhere {
            let file = sources.get(label.span.file);
            out.push_str(&format!(
                "{pad}::: {}:{}:{}\n",
                file.display.display(),
                label.span.start.line,
                label.span.start.col + 1
            ));
            out.push_str(&format!("{pad} |\n"));
            render_labels(&mut out, sources, &[(label, false)], width);
        }
        if !self.notes.is_empty() {
            out.push_str(&format!("{pad} |\n"));
            for note in &self.notes {
                out.push_str(&format!("{pad} = {note}\n"));
            }
        }
        out
    }
}

/// Draws source lines with carets (`^` primary, `-` secondary) under them.
fn render_labels(out: &mut String, sources: &SourceMap, labels: &[(&Label, bool)], width: usize) {
    let pad = " ".repeat(width);
    let mut last_line: Option<usize> = None;
    for (label, is_primary) in labels {
        let file = sources.get(label.span.file);
        let line_no = label.span.start.line;
        let line = file.line(line_no).unwrap_or("");
        if last_line != Some(line_no) {
            if let Some(last) = last_line {
                if line_no > last + 1 {
                    out.push_str("...\n");
                }
            }
            let shown: String = expand_tabs(line);
            out.push_str(format!("{line_no:>width$} | {shown}").trim_end());
            out.push('\n');
        }
        last_line = Some(line_no);

        let chars: Vec<char> = line.chars().collect();
        let start = label.span.start.col.min(chars.len());
        let end = if label.span.end.line == line_no {
            label.span.end.col.min(chars.len())
        } else {
            chars.len()
        };
        let indent: usize = chars[..start].iter().map(|c| display_width(*c)).sum();
        let len: usize = chars[start..end.max(start)]
            .iter()
            .map(|c| display_width(*c))
            .sum::<usize>()
            .max(1);
        let mark = if *is_primary { "^" } else { "-" };
        let underline = format!(
            "{pad} | {}{} {}",
            " ".repeat(indent),
            mark.repeat(len),
            label.text
        );
        out.push_str(underline.trim_end());
        out.push('\n');
    }
}

fn display_width(c: char) -> usize {
    if c == '\t' {
        4
    } else {
        1
    }
}

fn expand_tabs(line: &str) -> String {
    line.replace('\t', "    ")
}

/// Every problem found in one compilation, with the sources needed to show
/// them. `Display` renders them all, rustc style, followed by a summary line.
#[derive(Clone)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
    sources: Arc<SourceMap>,
}

impl Diagnostics {
    /// Sorts by position (errors without one first), keeping discovery order
    /// for ties, so output reads top to bottom through each file.
    pub(crate) fn new(mut items: Vec<Diagnostic>, sources: Arc<SourceMap>) -> Self {
        items.sort_by_key(|d| d.span().map(|s| (s.file, s.start)));
        Diagnostics { items, sources }
    }

    /// The individual diagnostics, in the order they were found.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    /// How many errors there are (never zero for a returned `Diagnostics`).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none (only true for an empty value built by hand).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Renders one diagnostic.
    pub fn render(&self, diagnostic: &Diagnostic) -> String {
        diagnostic.render(&self.sources)
    }

    /// `path:line:col` (column from 1) of a diagnostic's primary span.
    pub fn location(&self, diagnostic: &Diagnostic) -> Option<String> {
        let span = diagnostic.span()?;
        Some(format!(
            "{}:{}:{}",
            self.sources.get(span.file).display.display(),
            span.start.line,
            span.start.col + 1
        ))
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for diagnostic in &self.items {
            writeln!(f, "{}", diagnostic.render(&self.sources))?;
        }
        match self.items.len() {
            0 => Ok(()),
            1 => write!(f, "error: aborting due to 1 previous error"),
            n => write!(f, "error: aborting due to {n} previous errors"),
        }
    }
}

impl fmt::Debug for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Diagnostics {}

/// Collects diagnostics while a stage runs.
#[derive(Default)]
pub(crate) struct Sink {
    pub(crate) items: Vec<Diagnostic>,
}

impl Sink {
    pub(crate) fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.items.is_empty()
    }
}

/// Edit distance for "did you mean" hints.
pub(crate) fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest candidate to `name`, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = name.to_lowercase();
    let limit = (name.chars().count() / 3).max(1);
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        if candidate == name {
            continue;
        }
        let candidate_lower = candidate.to_lowercase();
        let distance = if candidate_lower == lower {
            0
        } else if name.len() >= 3
            && (candidate_lower.starts_with(&lower) || lower.starts_with(&candidate_lower))
        {
            // `timeout` for `timeout_ms`: a prefix is as good as a typo.
            1
        } else {
            levenshtein(name, candidate)
        };
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance() {
        assert_eq!(levenshtein("Strin", "String"), 1);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions() {
        let c = ["String", "Vec", "Option", "i64"];
        assert_eq!(did_you_mean("Strng", c), Some("String"));
        assert_eq!(did_you_mean("string", c), Some("String"));
        assert_eq!(did_you_mean("I64", c), Some("i64"));
        assert_eq!(did_you_mean("Banana", c), None);
        assert_eq!(
            did_you_mean("timeout", ["timeout_ms", "attempts"]),
            Some("timeout_ms")
        );
    }
}
