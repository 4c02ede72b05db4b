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
    /// The call's state as the reply says it ended: `done`, `failed`,
    /// `dead` or `cancelled` (see [`ended_state`]).
    pub state: &'static str,
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
            // Nothing can be told from a reply that cannot be read.
            state: "failed",
            message: None,
            value: String::new(),
            fields: Vec::new(),
            problems: Vec::new(),
            truncated: None,
            cut: shown.cut,
        }
    }
}

/// The state a call ended in, from its reply's outcome (`ok` or the
/// error's `kind`): only a value is `done`; a call dead-lettered is `dead`
/// and one cancelled is `cancelled`, as the badges of the calls still in a
/// queue say; every other error (the job's own, a handler's, a refusal) is
/// `failed`.
pub fn ended_state(outcome: &str) -> &'static str {
    match outcome {
        "ok" => "done",
        "dead_lettered" => "dead",
        "cancelled" => "cancelled",
        _ => "failed",
    }
}

/// The state of a reply read cut: the envelope writes `v`, `id` and maybe
/// `fingerprint` before its `"ok":` or `"error":{"kind":"..."`, so the
/// start of a large reply tells which (inside a JSON string a quote is
/// escaped, so neither can be matched there). A start that shows neither
/// is taken for a value.
fn cut_state(start: &[u8]) -> &'static str {
    let text = String::from_utf8_lossy(start);
    let ok = text.find("\"ok\":").unwrap_or(usize::MAX);
    let Some(error) = text.find("\"error\":").filter(|&e| e < ok) else {
        return "done";
    };
    let rest = &text[error..];
    match rest.find("\"kind\":\"") {
        Some(k) => ended_state(rest[k + 8..].split('"').next().unwrap_or("")),
        None => "failed",
    }
}

/// Decodes a reply envelope read as `excerpt`, checked against the job's
/// schema when known.
pub fn reply(excerpt: &Excerpt, schema: Option<&JobSchemas>, budget: &mut TextBudget) -> ReplyView {
    if !excerpt.is_whole() {
        let start = String::from_utf8_lossy(&excerpt.bytes);
        let mut view = ReplyView::raw("not shown", None, &start, budget);
        view.truncated = Some(bounds::size(excerpt.len));
        view.state = cut_state(&excerpt.bytes);
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
        state: ended_state(&outcome),
        outcome,
        message,
        cut: cut || value.cut,
        value: value.text,
        fields,
        problems,
        truncated: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_value_is_done_and_a_dead_or_cancelled_call_says_so() {
        assert_eq!(ended_state("ok"), "done");
        assert_eq!(ended_state("dead_lettered"), "dead");
        assert_eq!(ended_state("cancelled"), "cancelled");
        assert_eq!(ended_state("app"), "failed");
        assert_eq!(ended_state("handler"), "failed");
        let mut budget = TextBudget::default();
        for (reply, state) in [
            (r#"{"v":1,"id":"a","ok":3}"#, "done"),
            (
                r#"{"v":1,"id":"a","error":{"kind":"dead_lettered","message":"m"}}"#,
                "dead",
            ),
            (
                r#"{"v":1,"id":"a","error":{"kind":"cancelled","message":"m"}}"#,
                "cancelled",
            ),
            (
                r#"{"v":1,"id":"a","error":{"kind":"app","message":"m","data":1}}"#,
                "failed",
            ),
        ] {
            let excerpt = Excerpt {
                bytes: reply.as_bytes().to_vec(),
                len: reply.len() as u64,
            };
            assert_eq!(reply_view_state(&excerpt, &mut budget), state, "{reply}");
            // Read cut, the start says the same.
            let cut = Excerpt {
                bytes: reply.as_bytes()[..reply.len() - 2].to_vec(),
                len: reply.len() as u64 + 1000,
            };
            assert_eq!(reply_view_state(&cut, &mut budget), state, "cut: {reply}");
        }
        // A value that holds the word `error` is still a value.
        assert_eq!(
            cut_state(br#"{"v":1,"id":"a","ok":{"error":{"kind":"app""#),
            "done"
        );
    }

    fn reply_view_state(excerpt: &Excerpt, budget: &mut TextBudget) -> &'static str {
        reply(excerpt, None, budget).state
    }
}
