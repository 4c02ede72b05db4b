//! Bounded reads for pages that must stay small whatever the queues hold:
//! messages, reasons, scheduled tokens and kept results cut to a window of
//! bytes, each with its full length, read by the read-only scripts
//! (`backend/redis/read_only.rs`) so that only the window leaves Redis.
//!
//! `XRANGE` or `HMGET` would send every value whole: ten 8 MB dead letters
//! are 80 MB over the network and in the reader's memory just to show their
//! first lines. Here a page asks for the first kilobytes of each, and a
//! download asks for one value a window at a time. Whatever Redis answers
//! is checked for shape; an entry that does not parse is left out rather
//! than failing the page.
//!
//! The schedule's excerpts are in `scheduled.rs`, beside the rest of the
//! schedule. The stream entries are read oldest first, from an id on, so that a page
//! can go on where the last one stopped (`after`); ids from the caller are
//! checked to be entry ids before they reach Redis.

use rpc_protocol::stream::GROUP;

use super::super::read_only::ReadOnlyScript;
use super::view::RedisView;
use crate::backend::inspection::excerpts::{
    DeadLetterExcerpt, Excerpt, Lease, LeasedExcerpt, MessageExcerpt, Stream, MAX_ENTRIES_PER_READ,
    MAX_WINDOW_BYTES,
};
use std::time::Duration;

use redis::streams::StreamPendingCountReply;
use redis::Value;

use crate::error::Error;

/// Bytes of values one script call reads into Lua before it stops and
/// leaves the rest to the next call: copying a value into a script costs
/// Redis a few milliseconds per MB, and no single call should hold it for
/// much more than a tenth of a second.
pub(super) const BYTES_PER_CALL: usize = 16 * 1024 * 1024;

impl RedisView {
    /// Up to `max` entries of a service's stream from `start` (an entry id,
    /// `(id` for the entries after it, or `-`), oldest first, with the
    /// fields `fields` cut to the first `window` bytes: as many script
    /// calls as the per-call byte limit takes.
    async fn entry_excerpts(
        &self,
        key: &str,
        start: &str,
        max: usize,
        fields: &[&str],
        window: usize,
    ) -> Result<Vec<(String, Vec<Option<Excerpt>>)>, Error> {
        let max = max.min(MAX_ENTRIES_PER_READ);
        let window = window.min(MAX_WINDOW_BYTES).to_string();
        let budget = BYTES_PER_CALL.to_string();
        let k = fields.len().to_string();
        let mut out: Vec<(String, Vec<Option<Excerpt>>)> = Vec::new();
        let mut start = start.to_owned();
        while out.len() < max {
            let count = (max - out.len()).to_string();
            let mut args: Vec<&[u8]> = vec![
                b"range",
                b"0",
                window.as_bytes(),
                budget.as_bytes(),
                k.as_bytes(),
            ];
            args.extend(fields.iter().map(|f| f.as_bytes()));
            args.extend([start.as_bytes(), b"+", count.as_bytes()]);
            let reply = self
                .read_only(ReadOnlyScript::ExcerptEntries, &[key], &args)
                .await?;
            let (more, entries) = more_and_items(reply);
            let before = out.len();
            out.extend(
                entries
                    .into_iter()
                    .filter_map(|entry| parse_entry(entry, fields.len())),
            );
            match out.last() {
                Some((id, _)) if more && out.len() > before => start = format!("({id}"),
                _ => break,
            }
        }
        Ok(out)
    }

    /// The entries of a stream with these ids (each `None` when there is no
    /// such entry), with the fields `fields` cut to a window of `window`
    /// bytes from `offset`: as many script calls as the per-call byte limit
    /// takes.
    async fn entries_by_id(
        &self,
        key: &str,
        tokens: &[&str],
        fields: &[&str],
        offset: u64,
        window: usize,
    ) -> Result<Vec<Option<Vec<Option<Excerpt>>>>, Error> {
        let offset = offset.to_string();
        let window = window.min(MAX_WINDOW_BYTES).to_string();
        let budget = BYTES_PER_CALL.to_string();
        let k = fields.len().to_string();
        let mut out = Vec::with_capacity(tokens.len());
        while out.len() < tokens.len() {
            let rest = &tokens[out.len()..];
            let chunk = &rest[..rest.len().min(MAX_ENTRIES_PER_READ)];
            let mut args: Vec<&[u8]> = vec![
                b"ids",
                offset.as_bytes(),
                window.as_bytes(),
                budget.as_bytes(),
                k.as_bytes(),
            ];
            args.extend(fields.iter().map(|f| f.as_bytes()));
            args.extend(chunk.iter().map(|t| t.as_bytes()));
            let reply = self
                .read_only(ReadOnlyScript::ExcerptEntries, &[key], &args)
                .await?;
            let (_, entries) = more_and_items(reply);
            // The n-th answer is the n-th id's; ids past the last answer are
            // asked again. No answer at all would loop: that is no answer of ours.
            if entries.is_empty() {
                return Err(self.unexpected("excerpt_entries.lua"));
            }
            for entry in entries.into_iter().take(chunk.len()) {
                out.push(parse_entry(entry, fields.len()).map(|(_, fields)| fields));
            }
        }
        Ok(out)
    }

    /// Up to `max` dead letters of `service`, oldest first, after the entry
    /// `after` (from the oldest without one), reasons and messages cut to
    /// their first `window` bytes.
    pub(crate) async fn dead_letter_excerpts(
        &self,
        service: &str,
        after: Option<&str>,
        max: usize,
        window: usize,
    ) -> Result<Vec<DeadLetterExcerpt>, Error> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let start = match after {
            Some(token) => format!("({}", entry_id(token)?),
            None => "-".to_owned(),
        };
        let key = self.keys.dead(service);
        let entries = self
            .entry_excerpts(
                &key,
                &start,
                max,
                &[rpc_protocol::stream::REASON, FIELD],
                window,
            )
            .await?;
        Ok(entries
            .into_iter()
            .map(|(token, mut fields)| {
                let message = fields.pop().flatten();
                let reason = fields.pop().flatten();
                DeadLetterExcerpt {
                    token,
                    reason,
                    message,
                }
            })
            .collect())
    }

    /// Dead letters of `service` by token, reasons and messages cut to
    /// their first `window` bytes (`None` for a token with no entry).
    pub(crate) async fn dead_letters_by_token(
        &self,
        service: &str,
        tokens: &[&str],
        window: usize,
    ) -> Result<Vec<Option<DeadLetterExcerpt>>, Error> {
        for token in tokens {
            entry_id(token)?;
        }
        let key = self.keys.dead(service);
        let entries = self
            .entries_by_id(
                &key,
                tokens,
                &[rpc_protocol::stream::REASON, FIELD],
                0,
                window,
            )
            .await?;
        Ok(tokens
            .iter()
            .zip(entries)
            .map(|(token, fields)| {
                fields.map(|mut f| {
                    let message = f.pop().flatten();
                    DeadLetterExcerpt {
                        token: (*token).to_owned(),
                        reason: f.pop().flatten(),
                        message,
                    }
                })
            })
            .collect())
    }

    /// How many dead letters `service` has (`XLEN`).
    pub(crate) async fn dead_letter_count(&self, service: &str) -> Result<u64, Error> {
        self.query(redis::cmd("XLEN").arg(self.keys.dead(service)))
            .await
    }

    /// Up to `max` queued jobs of `service`, oldest first, messages cut to
    /// their first `window` bytes; `Ok(None)` for an unknown service.
    pub(crate) async fn queued_excerpts(
        &self,
        service: &str,
        after: Option<&str>,
        max: usize,
        window: usize,
    ) -> Result<Option<Vec<MessageExcerpt>>, Error> {
        let jobs = self.keys.jobs(service);
        if !self.exists(&jobs).await? {
            return Ok(None);
        }
        if max == 0 {
            return Ok(Some(Vec::new()));
        }
        // After the last entry delivered to a worker (what is before it is
        // leased or done), and after `after` when that is further on.
        let delivered = self.group(&jobs).await?.map(|g| g.last_delivered_id);
        let after = after.map(entry_id).transpose()?;
        let order = |id: &str| {
            id.split_once('-')
                .and_then(|(ms, seq)| Some((ms.parse::<u64>().ok()?, seq.parse::<u64>().ok()?)))
                .unwrap_or((0, 0))
        };
        let from = match (delivered.as_deref(), after) {
            (Some(d), Some(a)) => Some(if order(a) > order(d) { a } else { d }),
            (d, a) => a.or(d),
        };
        let start = match from {
            Some(id) => format!("({id}"),
            None => "-".to_owned(),
        };
        let entries = self
            .entry_excerpts(&jobs, &start, max, &[FIELD], window)
            .await?;
        Ok(Some(
            entries
                .into_iter()
                .map(|(token, mut fields)| MessageExcerpt {
                    token,
                    message: fields.pop().flatten(),
                })
                .collect(),
        ))
    }

    /// Up to `max` leased jobs of `service`, oldest lease first, messages
    /// cut to their first `window` bytes; `Ok(None)` for an unknown service.
    pub(crate) async fn leased_excerpts(
        &self,
        service: &str,
        max: usize,
        window: usize,
    ) -> Result<Option<Vec<LeasedExcerpt>>, Error> {
        let Some((jobs, pending)) = self
            .oldest_leases(service, max.min(MAX_ENTRIES_PER_READ))
            .await?
        else {
            return Ok(None);
        };
        let tokens: Vec<&str> = pending.iter().map(|row| row.id.as_str()).collect();
        let messages = self
            .entries_by_id(&jobs, &tokens, &[FIELD], 0, window)
            .await?;
        Ok(Some(
            pending
                .iter()
                .zip(messages)
                .map(|(row, fields)| LeasedExcerpt {
                    token: row.id.clone(),
                    lease: Lease {
                        consumer: row.consumer.clone(),
                        idle: Duration::from_millis(row.last_delivered_ms as u64),
                        deliveries: row.times_delivered as u64,
                    },
                    message: fields.and_then(|mut f| f.pop().flatten()),
                })
                .collect(),
        ))
    }

    /// Who holds the entry `token` of `service`'s jobs stream, if a worker
    /// does (`XPENDING key workers token token 1`).
    pub(crate) async fn lease(&self, service: &str, token: &str) -> Result<Option<Lease>, Error> {
        let token = entry_id(token)?;
        let jobs = self.keys.jobs(service);
        if self.group(&jobs).await?.is_none() {
            return Ok(None);
        }
        let pending: StreamPendingCountReply = self
            .query(
                redis::cmd("XPENDING")
                    .arg(&jobs)
                    .arg(GROUP)
                    .arg(token)
                    .arg(token)
                    .arg(1),
            )
            .await?;
        Ok(pending.ids.into_iter().next().map(|row| Lease {
            consumer: row.consumer,
            idle: Duration::from_millis(row.last_delivered_ms as u64),
            deliveries: row.times_delivered as u64,
        }))
    }

    /// Entries of one of `service`'s streams by token, messages cut to their
    /// first `window` bytes (`None` for a token with no entry).
    pub(crate) async fn message_excerpts(
        &self,
        service: &str,
        stream: Stream,
        tokens: &[&str],
        window: usize,
    ) -> Result<Vec<Option<MessageExcerpt>>, Error> {
        for token in tokens {
            entry_id(token)?;
        }
        let key = self.stream_key(service, stream);
        let entries = self
            .entries_by_id(&key, tokens, &[FIELD], 0, window)
            .await?;
        Ok(tokens
            .iter()
            .zip(entries)
            .map(|(token, fields)| {
                fields.map(|mut f| MessageExcerpt {
                    token: (*token).to_owned(),
                    message: f.pop().flatten(),
                })
            })
            .collect())
    }

    /// A window of one field of one stream entry: `len` bytes from
    /// `offset` (what a download reads a chunk at a time). `None` when the
    /// entry or the field is not there.
    pub(crate) async fn entry_window(
        &self,
        service: &str,
        stream: Stream,
        token: &str,
        field: &str,
        offset: u64,
        len: usize,
    ) -> Result<Option<Excerpt>, Error> {
        let token = entry_id(token)?;
        let key = self.stream_key(service, stream);
        let mut entries = self
            .entries_by_id(&key, &[token], &[field], offset, len)
            .await?;
        Ok(entries
            .pop()
            .flatten()
            .and_then(|mut fields| fields.pop().flatten()))
    }

    /// A window of a kept result (`P:result:{call}`): `len` bytes from
    /// `offset`; `None` when there is none (never kept, or expired).
    pub(crate) async fn kept_result_window(
        &self,
        call_id: &str,
        offset: u64,
        len: usize,
    ) -> Result<Option<Excerpt>, Error> {
        let key = self.keys.result(call_id);
        let offset = offset.to_string();
        let len = len.min(MAX_WINDOW_BYTES).to_string();
        let reply = self
            .read_only(
                ReadOnlyScript::ExcerptValue,
                &[&key],
                &[offset.as_bytes(), len.as_bytes()],
            )
            .await?;
        let mut parts = array(reply).into_iter();
        Ok(excerpt(parts.next(), parts.next()))
    }
}

use rpc_protocol::stream::MESSAGE as FIELD;

/// Checks that `token` is a stream entry id before it reaches Redis.
pub(super) fn entry_id(token: &str) -> Result<&str, Error> {
    let digits = |p: &str| !p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit());
    match token.split_once('-') {
        Some((ms, seq)) if digits(ms) && digits(seq) => Ok(token),
        _ => Err(Error::config(format_args!(
            "`{}` is not a stream entry id",
            token.escape_debug()
        ))),
    }
}

/// A `{more, item, ...}` answer: whether the script stopped early, and the items.
pub(super) fn more_and_items(reply: Value) -> (bool, Vec<Value>) {
    let mut items = array(reply);
    if items.is_empty() {
        return (false, items);
    }
    let more = matches!(items.remove(0), Value::Int(1));
    (more, items)
}

pub(super) fn array(reply: Value) -> Vec<Value> {
    match reply {
        Value::Array(items) => items,
        _ => Vec::new(),
    }
}

pub(super) fn bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.into_bytes()),
        _ => None,
    }
}

fn number(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// A `len, window` pair from a script: `None` for a missing value (-1 or nil).
pub(super) fn excerpt(len: Option<Value>, window: Option<Value>) -> Option<Excerpt> {
    let len = u64::try_from(number(&len?)?).ok()?;
    let bytes = bytes(window?)?;
    // A window longer than the value is no answer of ours.
    (bytes.len() as u64 <= len).then_some(Excerpt { bytes, len })
}

/// `{id, {len_1, window_1, ...}}` into the id and `k` excerpts.
fn parse_entry(entry: Value, k: usize) -> Option<(String, Vec<Option<Excerpt>>)> {
    let mut parts = array(entry).into_iter();
    let id = String::from_utf8(bytes(parts.next()?)?).ok()?;
    let mut fields = array(parts.next()?).into_iter();
    let excerpts = (0..k)
        .map(|_| excerpt(fields.next(), fields.next()))
        .collect();
    Some((id, excerpts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn script_answers_of_the_wrong_shape_are_left_out() {
        // A field missing (-1, nil), a window longer than its length, and
        // garbage where an entry should be: none of them is an excerpt.
        let entry = Value::Array(vec![
            bulk("1-0"),
            Value::Array(vec![Value::Int(-1), Value::Nil, Value::Int(2), bulk("abc")]),
        ]);
        assert_eq!(
            parse_entry(entry, 2),
            Some(("1-0".to_owned(), vec![None, None]))
        );
        assert_eq!(parse_entry(Value::Int(3), 1), None);
        let ok = Value::Array(vec![
            bulk("2-0"),
            Value::Array(vec![Value::Int(10), bulk("abc")]),
        ]);
        let (_, fields) = parse_entry(ok, 1).expect("an entry");
        assert_eq!(
            fields[0],
            Some(Excerpt {
                bytes: b"abc".to_vec(),
                len: 10
            })
        );
        assert!(!fields[0].as_ref().is_some_and(Excerpt::is_whole));
    }

    #[test]
    fn only_entry_ids_reach_redis() {
        assert!(entry_id("1700000000000-0").is_ok());
        for bad in [
            "",
            "-",
            "+",
            "1",
            "1-",
            "x-1",
            "(1-0",
            "1-0 1-1",
            "123456789012345678901-0",
        ] {
            assert!(entry_id(bad).is_err(), "{bad:?}");
        }
    }
}
