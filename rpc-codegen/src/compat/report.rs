//! Showing a compatibility report: rustc-style text for people (the new
//! schema's position first, the old one's under `:::`, the directions it
//! breaks, a hint), and JSON for CI.

use serde_json::{json, Value};

use super::{Change, CompatReport, Severity};
use crate::diagnostic::{Diagnostic, Level};
use crate::source::{SourceMap, Span};

impl CompatReport {
    /// Every change rendered rustc-style, then a summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for change in &self.changes {
            out.push_str(&diagnostic(change).render(&self.sources));
            out.push('\n');
        }
        let breaking = self
            .changes
            .iter()
            .filter(|c| c.severity == Severity::Breaking)
            .count();
        let warnings = self.changes.len() - breaking;
        let warnings = match warnings {
            0 => String::new(),
            1 => " (1 warning)".to_string(),
            n => format!(" ({n} warnings)"),
        };
        match breaking {
            0 => out.push_str(&format!("no breaking changes{warnings}\n")),
            1 => out.push_str(&format!("error: 1 breaking change{warnings}\n")),
            n => out.push_str(&format!("error: {n} breaking changes{warnings}\n")),
        }
        out
    }

    /// `{"breaking": bool, "changes": [...]}`, each change with its rule,
    /// severity, message, both positions, the directions it breaks and a hint.
    pub fn to_json(&self) -> Value {
        let changes: Vec<Value> = self
            .changes
            .iter()
            .map(|change| {
                json!({
                    "rule": change.rule.code(),
                    "severity": match change.severity {
                        Severity::Breaking => "breaking",
                        Severity::Warning => "warning",
                    },
                    "message": change.message,
                    "old": location(&self.sources, change.old.span),
                    "new": location(&self.sources, change.new.span),
                    "breaks": change.breaks.iter().map(|d| d.code()).collect::<Vec<_>>(),
                    "hint": change.hint,
                })
            })
            .collect();
        json!({ "breaking": self.is_breaking(), "changes": changes })
    }
}

fn diagnostic(change: &Change) -> Diagnostic {
    let level = match change.severity {
        Severity::Breaking => Level::Error,
        Severity::Warning => Level::Warning,
    };
    let mut diagnostic = Diagnostic::error(&change.message, change.new.span, &change.new.label)
        .with_level(level)
        .with_code(change.rule.code())
        .with_label(change.old.span, &change.old.label);
    if !change.breaks.is_empty() {
        let directions: Vec<&str> = change.breaks.iter().map(|d| d.describe()).collect();
        diagnostic = diagnostic.with_note(format!("breaks {}", directions.join("; ")));
    }
    if let Some(hint) = &change.hint {
        diagnostic = diagnostic.with_help(hint);
    }
    diagnostic
}

fn location(sources: &SourceMap, span: Span) -> Value {
    json!({
        "file": sources.get(span.file).display.display().to_string(),
        "line": span.start.line,
        "column": span.start.col + 1,
    })
}
