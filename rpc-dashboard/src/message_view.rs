//! A stored message made ready to show: job messages and replies decoded as
//! the runtime decodes them, pretty-printed, their parameters listed by
//! field with the schema's types and docs, and what does not fit the schema
//! flagged with the reason.
//!
//! Anything that is not a readable message (not UTF-8, not JSON, not a job
//! envelope) is shown as "unreadable" with its raw bytes written out
//! (`\xff`, `\n`): the templates then escape that text like any other, so a
//! message carrying `<script>` is shown, never run.

use std::time::SystemTime;

use rpc_runtime::wire::{self, JobMessage};
use serde_json::Value;

use crate::schema_catalog::{Catalog, FieldDoc, JobSchemas};
use crate::time_text;

/// One parameter of a job message.
pub struct ParamView {
    pub name: String,
    /// The schema's type for it, when the job's schema is known and has it.
    pub type_label: Option<String>,
    pub description: Option<String>,
    /// The value as pretty JSON.
    pub value: String,
}

/// A job message (from a jobs or dead-letter stream), decoded.
pub struct MessageView {
    /// Why the message is unreadable; `None` for a readable job message.
    pub unreadable: Option<String>,
    /// The bytes written out, for unreadable messages.
    pub raw: String,
    pub id: String,
    pub job: String,
    pub attempt: u32,
    pub max_attempts: Option<u32>,
    /// `in 20s` / `5s ago`, when the message has a deadline.
    pub deadline: Option<String>,
    pub reply_to: Option<String>,
    /// How long the result is kept (`5m 00s`), when it is.
    pub result_kept: Option<String>,
    /// The whole message as pretty JSON (readable messages).
    pub pretty: String,
    /// The parameters as pretty JSON (what an edit form starts from).
    pub params_json: String,
    pub params: Vec<ParamView>,
    /// What does not match the job's schema (empty without a schema).
    pub problems: Vec<String>,
    /// Whether the job's schema is known.
    pub has_schema: bool,
}

impl MessageView {
    pub fn is_readable(&self) -> bool {
        self.unreadable.is_none()
    }

    /// The parameters as JSON (`{}` for unreadable messages).
    pub fn params_value(&self) -> Value {
        serde_json::from_str(&self.params_json)
            .unwrap_or_else(|_| Value::Object(Default::default()))
    }

    fn unreadable(reason: String, bytes: &[u8]) -> MessageView {
        MessageView {
            unreadable: Some(reason),
            raw: bytes.escape_ascii().to_string(),
            id: String::new(),
            job: String::new(),
            attempt: 0,
            max_attempts: None,
            deadline: None,
            reply_to: None,
            result_kept: None,
            pretty: String::new(),
            params_json: "{}".to_owned(),
            params: Vec::new(),
            problems: Vec::new(),
            has_schema: false,
        }
    }
}

/// Decodes a job message. `None` is an entry without the message field.
pub fn job_message(payload: Option<&[u8]>, catalog: &Catalog, now: SystemTime) -> MessageView {
    let Some(bytes) = payload else {
        return MessageView::unreadable(
            "no message: the entry has no `m` field, or was deleted meanwhile".to_owned(),
            b"",
        );
    };
    let message: JobMessage = match serde_json::from_slice(bytes) {
        Ok(m) => m,
        Err(e) => return MessageView::unreadable(format!("not a job message: {e}"), bytes),
    };
    let params: Value = match serde_json::from_str(message.params.get()) {
        Ok(p) => p,
        Err(e) => return MessageView::unreadable(format!("unreadable params: {e}"), bytes),
    };
    let whole: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let schema = catalog.job(&message.job);
    let mut problems = Vec::new();
    if !params.is_object() {
        problems.push("params is not a JSON object".to_owned());
    }
    if let Some(schema) = schema {
        problems.extend(schema.check_params(&params).iter().map(|p| p.to_string()));
    }
    MessageView {
        unreadable: None,
        raw: String::new(),
        id: message.id.to_string(),
        job: message.job.to_string(),
        attempt: message.attempt,
        max_attempts: message.max_attempts,
        deadline: message
            .deadline_ms
            .map(|ms| time_text::relative(wire::from_unix_ms(ms), now)),
        reply_to: message.reply_to.as_deref().map(str::to_owned),
        result_kept: (message.result_ttl_ms > 0)
            .then(|| time_text::duration(std::time::Duration::from_millis(message.result_ttl_ms))),
        pretty: pretty(&whole),
        params_json: pretty(&params),
        params: param_views(&params, schema),
        problems,
        has_schema: schema.is_some(),
    }
}

fn param_views(params: &Value, schema: Option<&JobSchemas>) -> Vec<ParamView> {
    field_views(
        params,
        schema.map(|s| s.fields.as_slice()),
        "a parameter of this job",
    )
}

/// An object's fields, each with its type and docs from `fields` when the
/// schema is known (and a note on any the schema does not have).
fn field_views(object: &Value, fields: Option<&[FieldDoc]>, what: &str) -> Vec<ParamView> {
    let Some(map) = object.as_object() else {
        return Vec::new();
    };
    map.iter()
        .map(|(name, value)| {
            let field = fields.and_then(|fs| fs.iter().find(|f| &f.name == name));
            ParamView {
                name: name.clone(),
                type_label: field.map(|f| f.type_label.clone()),
                description: match (fields, field) {
                    (Some(_), None) => Some(format!("not {what}")),
                    (_, Some(f)) => f.description.clone(),
                    _ => None,
                },
                value: pretty(value),
            }
        })
        .collect()
}

/// A reply (kept result), decoded.
pub struct ReplyView {
    /// Why the reply is unreadable; `None` when it reads.
    pub unreadable: Option<String>,
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
}

/// Decodes a reply envelope, checked against the job's schema when known.
pub fn reply(bytes: &[u8], schema: Option<&JobSchemas>) -> ReplyView {
    let whole: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            return ReplyView {
                unreadable: Some(format!("not JSON: {e}")),
                raw: bytes.escape_ascii().to_string(),
                outcome: "unreadable".to_owned(),
                message: None,
                value: String::new(),
                fields: Vec::new(),
                problems: Vec::new(),
            }
        }
    };
    let mut problems = Vec::new();
    let mut fields = Vec::new();
    let (outcome, message, value) = match whole.get("error") {
        Some(error) => {
            let kind = error
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            let data = error.get("data").cloned().unwrap_or(Value::Null);
            if let (Some(schema), "app") = (schema, kind) {
                problems.extend(schema.check_app_error(&data).iter().map(|p| p.to_string()));
            }
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned);
            (kind.to_owned(), message, data)
        }
        None => {
            let ok = whole.get("ok").cloned().unwrap_or(Value::Null);
            if let Some(schema) = schema {
                problems.extend(schema.check_ok(&ok).iter().map(|p| p.to_string()));
                if !schema.reply_fields.is_empty() {
                    fields = field_views(&ok, Some(&schema.reply_fields), "a field of the answer");
                }
            }
            ("ok".to_owned(), None, ok)
        }
    };
    ReplyView {
        unreadable: None,
        raw: String::new(),
        outcome,
        message,
        value: pretty(&value),
        fields,
        problems,
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_unreadable_and_written_out_byte_by_byte() {
        // A stream entry of raw bytes must show as text, not break the page.
        let view = job_message(
            Some(b"\xff<script>x</script>\n"),
            &Catalog::default(),
            SystemTime::now(),
        );
        assert!(view.unreadable.is_some());
        assert_eq!(view.raw, "\\xff<script>x</script>\\n");
    }

    #[test]
    fn a_job_message_lists_its_params_by_field() {
        let bytes =
            br#"{"v":1,"id":"c1","job":"Calculator.add","params":{"a":1,"b":2},"attempt":2}"#;
        let view = job_message(Some(bytes), &Catalog::default(), SystemTime::now());
        assert!(view.is_readable());
        assert_eq!(
            (view.id.as_str(), view.job.as_str(), view.attempt),
            ("c1", "Calculator.add", 2)
        );
        let names: Vec<&str> = view.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }
}
