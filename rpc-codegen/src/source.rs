//! Schema source files and positions inside them.
//!
//! Every file the compiler reads (the ones it was asked for and everything
//! they import) is kept here whole, so a diagnostic can quote the line it
//! points at long after parsing is over. Positions are our own small [`Span`]
//! rather than `proc_macro2::Span`: they name their file, they are plain data,
//! and they survive the trip from parser to model to diagnostic.

use std::path::PathBuf;

/// Index of a file in a [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub(crate) usize);

/// A line and column in a file: line counts from 1, column from 0 in
/// characters (as `proc_macro2` reports them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// A range of source text in one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub file: FileId,
    pub start: Pos,
    pub end: Pos,
}

impl Span {
    /// Converts a span produced by the `proc_macro2` lexer for `file`.
    pub(crate) fn from_proc_macro(file: FileId, span: proc_macro2::Span) -> Span {
        let start = span.start();
        let end = span.end();
        Span {
            file,
            start: Pos {
                line: start.line,
                col: start.column,
            },
            end: Pos {
                line: end.line,
                col: end.column,
            },
        }
    }

    /// A span covering `self` through `other` (same file assumed).
    pub(crate) fn to(self, other: Span) -> Span {
        if other.file != self.file || other.end < self.start {
            return self;
        }
        Span {
            file: self.file,
            start: self.start,
            end: other.end,
        }
    }
}

/// One schema file as read from disk (or handed in as a string).
#[derive(Debug)]
pub struct SourceFile {
    /// The path as the user spelled it (imports: joined to the importing
    /// file's directory), for messages.
    pub display: PathBuf,
    pub text: String,
}

impl SourceFile {
    /// The text of line `line` (1-based), without its line break.
    pub fn line(&self, line: usize) -> Option<&str> {
        let text = self.text.strip_prefix('\u{feff}').unwrap_or(&self.text);
        text.split('\n')
            .nth(line.checked_sub(1)?)
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
    }
}

/// All files of one compilation.
#[derive(Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub(crate) fn add(&mut self, display: PathBuf, text: String) -> FileId {
        self.files.push(SourceFile { display, text });
        FileId(self.files.len() - 1)
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0]
    }
}
