//! A kept result made ready to show: the reply envelope decoded, its value
//! pretty-printed and checked against the job's schema, its fields listed
//! with their types when the answer is a struct the schema describes.
//!
//! The result is read cut to a window like every message
//! ([`crate::bounds::PREVIEW_BYTES`]): a reply read whole is decoded; one
//! that was cut shows its start as text, its size, and a download link.
//! Texts go through the page's [`TextBudget`].

use rpc_runtime::inspect::Excerpt;
use serde_json::Value;

use crate::bounds::{self, TextBudget, MESSAGE_TEXT_BYTES};
use crate::message_view::{field_views, problem_texts, ParamView};
use crate::schema_catalog::JobSchemas;

/// A reply (kept result), decoded.
pub struct ReplyView {
    /// Why the reply is unreadable; `None` when it reads.
    pub unreadable: Option<String>,
    /// The bytes written out (unreadable), or the start of a reply read cut.
    pub raw: String,
    /// `ok` or the error kind.
    pub outcome: String,
    pub message: Option<String>,
    /// The returned value or the error's data, as pretty JSON.
    pub value: String,
    /// The returned value's fields with their schema types, when it is a
    /// struct the job's schema describes.
    pub fields: Vec<ParamView>,
    pub problems: Vec<String>,
    /// The reply's full size when only its start was read.
    pub truncated: Option<String>,
    /// Whether some of what was read is not shown (the page's budget).
    pub cut: bool,
}

impl ReplyView {
    fn raw(outcome: &str, reason: Option<String>, raw: &str, budget: &mut TextBudget) -> ReplyView {
        let shown = budget.take(raw, MESSAGE_TEXT_BYTES);
        ReplyView {
            unreadable: reason,
            raw: shown.text,
            outcome: outcome.to_owned(),
            message: None,
            value: String::new(),
            fields: Vec::new(),
            problems: Vec::new(),
            truncated: None,
            cut: shown.cut,
        }
    }
}

/// Decodes a reply envelope read as `excerpt`, checked against the job's
/// schema when known.
pub fn reply(excerpt: &Excerpt, schema: Option<&JobSchemas>, budget: &mut TextBudget) -> ReplyView {
    if !excerpt.is_whole() {
        let start = String::from_utf8_lossy(&excerpt.bytes);
        let mut view = ReplyView::raw("not shown", None, &start, budget);
        view.truncated = Some(bounds::size(excerpt.len));
        return view;
    }
    let bytes = excerpt.bytes.as_slice();
    let whole: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            let raw = bytes.escape_ascii().to_string();
            return ReplyView::raw("unreadable", Some(format!("not JSON: {e}")), &raw, budget);
        }
    };
    let mut problems = Vec::new();
    let mut fields = Vec::new();
    let mut cut = false;
    let (outcome, message, value) = match whole.get("error") {
        Some(error) => {
            let kind = error
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            let data = error.get("data").cloned().unwrap_or(Value::Null);
            if let (Some(schema), "app") = (schema, kind) {
                problems = problem_texts(&schema.check_app_error(&data), budget);
            }
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map(|m| budget.take(m, MESSAGE_TEXT_BYTES).text);
            (bounds::name(kind), message, data)
        }
        None => {
            let ok = whole.get("ok").cloned().unwrap_or(Value::Null);
            if let Some(schema) = schema {
                problems = problem_texts(&schema.check_ok(&ok), budget);
                if !schema.reply_fields.is_empty() {
                    fields = field_views(
                        &ok,
                        Some(&schema.reply_fields),
                        "a field of the answer",
                        budget,
                        &mut cut,
                    );
                }
            }
            ("ok".to_owned(), None, ok)
        }
    };
    let value = budget.pretty(&value, MESSAGE_TEXT_BYTES);
    ReplyView {
        unreadable: None,
        raw: String::new(),
        outcome,
        message,
        cut: cut || value.cut,
        value: value.text,
        fields,
        problems,
        truncated: None,
    }
}
