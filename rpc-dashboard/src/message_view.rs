//! A stored job message made ready to show: decoded as the runtime decodes
//! it, pretty-printed, its parameters listed by field with the schema's
//! types and docs, and what does not fit the schema flagged with the reason.
//!
//! Pages read messages cut to a window ([`crate::bounds::PREVIEW_BYTES`]).
//! A message read whole is decoded as before; one that was cut shows the
//! envelope fields found at its start (`message_head`), its first bytes as
//! text, its full size and a link to download it. Every text goes through
//! the page's [`TextBudget`], so no message, however built, makes a page
//! large.
//!
//! Anything that is not a readable message (not UTF-8, not JSON, not a job
//! envelope) is shown as "unreadable" with its raw bytes written out
//! (`\xff`, `\n`): the templates then escape that text like any other, so a
//! message carrying `<script>` is shown, never run.

use std::time::SystemTime;

use rpc_protocol::job::JobMessage;
use rpc_protocol::time::unix_ms;
use rpc_runtime::inspect::{human_time, Excerpt};
use serde_json::Value;

use crate::bounds::{self, TextBudget, MESSAGE_TEXT_BYTES};
use crate::message_head;
use crate::schema_catalog::{Catalog, FieldDoc, Problem};

/// Schema problems listed per message, at most.
const MAX_PROBLEMS: usize = 20;
/// Bytes of one problem's text shown, at most (it may quote the value).
const PROBLEM_BYTES: usize = 512;

/// One field of a message or a reply.
pub struct ParamView {
    pub name: String,
    /// The schema's type for it, when the job's schema is known and has it.
    pub type_label: Option<String>,
    pub description: Option<String>,
    /// The value as pretty JSON (cut to the page's budget).
    pub value: String,
}

/// A job message (from a jobs or dead-letter stream, or the schedule), decoded.
pub struct MessageView {
    /// Why the message is unreadable; `None` for a readable job message.
    pub unreadable: Option<String>,
    /// The bytes written out, for unreadable messages; the start of the
    /// message as text, for messages read cut.
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
    /// The whole message as pretty JSON (readable messages read whole).
    pub pretty: String,
    /// The parameters, for the edit form (`Null` unless read whole).
    pub params_value: Value,
    pub params: Vec<ParamView>,
    /// What does not match the job's schema (empty without a schema).
    pub problems: Vec<String>,
    /// Whether the job's schema is known.
    pub has_schema: bool,
    /// The message's full size (`8.0 MiB`) when only its start was read.
    pub truncated: Option<String>,
    /// Whether some of what was read is not shown (the page's budget).
    pub cut: bool,
    /// Where the whole message can be downloaded.
    pub download: Option<String>,
}

impl MessageView {
    pub fn is_readable(&self) -> bool {
        self.unreadable.is_none()
    }

    fn unreadable(reason: String, bytes: &[u8], budget: &mut TextBudget) -> MessageView {
        let raw = budget.take(&bytes.escape_ascii().to_string(), MESSAGE_TEXT_BYTES);
        MessageView {
            unreadable: Some(reason),
            cut: raw.cut,
            raw: raw.text,
            id: String::new(),
            job: String::new(),
            attempt: 0,
            max_attempts: None,
            deadline: None,
            reply_to: None,
            result_kept: None,
            pretty: String::new(),
            params_value: Value::Null,
            params: Vec::new(),
            problems: Vec::new(),
            has_schema: false,
            truncated: None,
            download: None,
        }
    }

    /// Where the whole message can be downloaded.
    pub fn with_download(mut self, url: String) -> MessageView {
        self.download = Some(url);
        self
    }
}

/// Decodes a job message read as `excerpt` (from offset 0). `None` is an
/// entry without the message field.
pub fn job_message(
    excerpt: Option<&Excerpt>,
    catalog: &Catalog,
    now: SystemTime,
    budget: &mut TextBudget,
) -> MessageView {
    let Some(excerpt) = excerpt else {
        return MessageView::unreadable(
            "no message: the entry has no `m` field, or was deleted meanwhile".to_owned(),
            b"",
            budget,
        );
    };
    if !excerpt.is_whole() {
        return cut_message(excerpt, catalog, now, budget);
    }
    let bytes = excerpt.bytes.as_slice();
    let message: JobMessage = match serde_json::from_slice(bytes) {
        Ok(m) => m,
        Err(e) => return MessageView::unreadable(format!("not a job message: {e}"), bytes, budget),
    };
    let params: Value = match serde_json::from_str(message.params.get()) {
        Ok(p) => p,
        Err(e) => return MessageView::unreadable(format!("unreadable params: {e}"), bytes, budget),
    };
    let whole: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let schema = catalog.job(&message.job);
    let mut problems = Vec::new();
    if !params.is_object() {
        problems.push("params is not a JSON object".to_owned());
    }
    if let Some(schema) = schema {
        problems.extend(problem_texts(&schema.check_params(&params), budget));
    }
    let pretty = budget.pretty(&whole, MESSAGE_TEXT_BYTES);
    let mut cut = pretty.cut;
    let params_shown = field_views(
        &params,
        schema.map(|s| s.fields.as_slice()),
        "a parameter of this job",
        budget,
        &mut cut,
    );
    MessageView {
        unreadable: None,
        raw: String::new(),
        id: message.id.to_string(),
        job: message.job.to_string(),
        attempt: message.attempt,
        max_attempts: message.max_attempts,
        deadline: message
            .deadline_ms
            .map(|ms| human_time::relative_ms(ms, unix_ms(now))),
        reply_to: message.reply_to.as_deref().map(str::to_owned),
        result_kept: kept_for(message.result_ttl_ms),
        pretty: pretty.text,
        params_value: params,
        params: params_shown,
        problems,
        has_schema: schema.is_some(),
        truncated: None,
        cut,
        download: None,
    }
}

/// A message of which only the start was read: its envelope fields, its
/// start as text, and its size.
fn cut_message(
    excerpt: &Excerpt,
    catalog: &Catalog,
    now: SystemTime,
    budget: &mut TextBudget,
) -> MessageView {
    let head = message_head::read(&excerpt.bytes);
    let start = budget.take(&String::from_utf8_lossy(&excerpt.bytes), MESSAGE_TEXT_BYTES);
    let size = bounds::size(excerpt.len);
    let unreadable = match (&head.id, &head.job) {
        (Some(_), Some(_)) => None,
        _ => Some(format!(
            "the first {} of this {size} message hold no call id and job name",
            bounds::size(excerpt.bytes.len() as u64)
        )),
    };
    let job = head.job.unwrap_or_default();
    MessageView {
        unreadable,
        raw: start.text,
        cut: start.cut,
        has_schema: catalog.job(&job).is_some(),
        id: head.id.unwrap_or_default(),
        job,
        attempt: head.attempt.unwrap_or(0),
        max_attempts: head.max_attempts,
        deadline: head
            .deadline_ms
            .map(|ms| human_time::relative_ms(ms, unix_ms(now))),
        reply_to: head.reply_to,
        result_kept: head.result_ttl_ms.and_then(kept_for),
        pretty: String::new(),
        params_value: Value::Null,
        params: Vec::new(),
        problems: Vec::new(),
        truncated: Some(size),
        download: None,
    }
}

fn kept_for(ttl_ms: u64) -> Option<String> {
    (ttl_ms > 0).then(|| human_time::duration(std::time::Duration::from_millis(ttl_ms)))
}

/// Schema problems as text: the first few, each cut.
pub fn problem_texts(problems: &[Problem], budget: &mut TextBudget) -> Vec<String> {
    let mut texts: Vec<String> = problems
        .iter()
        .take(MAX_PROBLEMS)
        .map(|p| {
            let shown = budget.take(&p.to_string(), PROBLEM_BYTES);
            if shown.cut {
                format!("{}…", shown.text)
            } else {
                shown.text
            }
        })
        .collect();
    if problems.len() > MAX_PROBLEMS {
        texts.push(format!("and {} more", problems.len() - MAX_PROBLEMS));
    }
    texts
}

/// An object's fields, each with its type and docs from `fields` when the
/// schema is known (and a note on any the schema does not have), values
/// cut to the page's budget (`cut` set when one was).
pub fn field_views(
    object: &Value,
    fields: Option<&[FieldDoc]>,
    what: &str,
    budget: &mut TextBudget,
    cut: &mut bool,
) -> Vec<ParamView> {
    let Some(map) = object.as_object() else {
        return Vec::new();
    };
    let mut views = Vec::new();
    for (name, value) in map {
        if budget.left() == 0 {
            *cut = true;
            break;
        }
        let field = fields.and_then(|fs| fs.iter().find(|f| &f.name == name));
        let shown = budget.pretty(value, MESSAGE_TEXT_BYTES);
        *cut |= shown.cut;
        views.push(ParamView {
            name: bounds::name(name),
            type_label: field.map(|f| f.type_label.clone()),
            description: match (fields, field) {
                (Some(_), None) => Some(format!("not {what}")),
                (_, Some(f)) => f.description.clone(),
                _ => None,
            },
            value: shown.text,
        });
    }
    views
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(bytes: &[u8]) -> Excerpt {
        Excerpt {
            bytes: bytes.to_vec(),
            len: bytes.len() as u64,
        }
    }

    #[test]
    fn garbage_is_unreadable_and_written_out_byte_by_byte() {
        // A stream entry of raw bytes must show as text, not break the page.
        let view = job_message(
            Some(&whole(b"\xff<script>x</script>\n")),
            &Catalog::default(),
            SystemTime::now(),
            &mut TextBudget::default(),
        );
        assert!(view.unreadable.is_some());
        assert_eq!(view.raw, "\\xff<script>x</script>\\n");
    }

    #[test]
    fn a_job_message_lists_its_params_by_field() {
        let bytes =
            br#"{"v":1,"id":"c1","job":"Calculator.add","params":{"a":1,"b":2},"attempt":2}"#;
        let view = job_message(
            Some(&whole(bytes)),
            &Catalog::default(),
            SystemTime::now(),
            &mut TextBudget::default(),
        );
        assert!(view.is_readable());
        assert_eq!(
            (view.id.as_str(), view.job.as_str(), view.attempt),
            ("c1", "Calculator.add", 2)
        );
        let names: Vec<&str> = view.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn a_message_read_cut_shows_its_start_its_size_and_its_call() {
        // 16 KiB of an 8 MiB message: the call id and job from its start.
        let mut start = br#"{"v":1,"id":"big-1","job":"Big.run","params":{"blob":""#.to_vec();
        start.resize(16 * 1024, b'x');
        let excerpt = Excerpt {
            bytes: start,
            len: 8 * 1024 * 1024,
        };
        let view = job_message(
            Some(&excerpt),
            &Catalog::default(),
            SystemTime::now(),
            &mut TextBudget::default(),
        );
        assert!(view.is_readable());
        assert_eq!((view.id.as_str(), view.job.as_str()), ("big-1", "Big.run"));
        assert_eq!(view.truncated.as_deref(), Some("8.0 MiB"));
        assert_eq!(view.raw.len(), 16 * 1024);
    }

    #[test]
    fn many_messages_share_one_page_budget() {
        // 100 messages of 20 KiB of params on a page with a 64 KiB budget:
        // the texts shown add up to the budget, not to 2 MB.
        let params = serde_json::json!({ "blob": "y".repeat(20 * 1024) });
        let bytes = serde_json::to_vec(&serde_json::json!({
            "v": 1, "id": "c", "job": "X.y", "params": params,
        }))
        .expect("JSON");
        let mut budget = TextBudget::of(64 * 1024);
        let mut shown = 0;
        for _ in 0..100 {
            let view = job_message(
                Some(&whole(&bytes)),
                &Catalog::default(),
                SystemTime::now(),
                &mut budget,
            );
            shown += view.pretty.len() + view.params.iter().map(|p| p.value.len()).sum::<usize>();
        }
        assert_eq!(shown, 64 * 1024);
        assert_eq!(budget.left(), 0);
    }
}
