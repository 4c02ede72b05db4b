//! Reading Redis replies: popped lists, stream entries, field maps.

use redis::Value;

use crate::backend::Delivery;
use rpc_protocol::stream::{CANCELLED as CANCELLED_FIELD, MESSAGE as FIELD};

/// Parses an `XREADGROUP` reply, `nil` or
/// `[[key, [[id, [field, value, ...]], ...]], ...]`, into deliveries.
pub(super) fn collect_deliveries(
    v: Value,
    keys: &[String],
    queues: &[String],
    out: &mut Vec<Delivery>,
) {
    // Taken by value: each id and payload is moved out of the answer, not
    // copied (a drained job's payload and id were two copies).
    let streams: Vec<(Value, Value)> = match v {
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|s| match s {
                Value::Array(parts) => {
                    let mut parts = parts.into_iter();
                    Some((parts.next()?, parts.next()?))
                }
                _ => None,
            })
            .collect(),
        // RESP3 answers with a map of key -> entries.
        Value::Map(pairs) => pairs,
        _ => Vec::new(),
    };
    for (key, entries) in streams {
        let idx = match &key {
            Value::BulkString(b) => keys.iter().position(|k| k.as_bytes() == b.as_slice()),
            Value::SimpleString(s) => keys.iter().position(|k| k == s),
            _ => None,
        };
        let Some(idx) = idx else { continue };
        for entry in parse_entries(entries) {
            out.push(Delivery {
                queue: queues[idx].clone(),
                enqueued_ms: entry_time_ms(&entry.id),
                token: entry.id,
                // An entry without our field is still a delivery: the
                // worker dead-letters it as unreadable.
                payload: entry.payload.unwrap_or_default(),
                deliveries: 1,
                cancelled: entry.cancelled,
            });
        }
    }
}

/// One stream entry of a jobs stream.
pub(super) struct Entry {
    pub(super) id: String,
    /// The message (`m`); `None` when the entry's fields are nil (deleted),
    /// empty when it has no `m`.
    pub(super) payload: Option<Vec<u8>>,
    /// The entry has the field `c` = `1`: cancelled while it was scheduled.
    pub(super) cancelled: bool,
}

/// Parses `[[id, [field, value, ...]] | [id, nil], ...]` into entries,
/// moving each id and message out of the answer.
pub(super) fn parse_entries(v: Value) -> Vec<Entry> {
    let Value::Array(entries) = v else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Array(parts) = entry else { continue };
        let mut parts = parts.into_iter();
        let Some(id) = parts.next().and_then(into_string) else {
            continue;
        };
        match parts.next() {
            Some(Value::Array(fields)) => {
                let mut payload = Vec::new();
                let mut cancelled = false;
                let mut fields = fields.into_iter();
                while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
                    if let (Value::BulkString(name), Value::BulkString(value)) = (name, value) {
                        if name == FIELD.as_bytes() {
                            payload = value;
                        } else if name == CANCELLED_FIELD.as_bytes() {
                            cancelled = value == b"1";
                        }
                    }
                }
                out.push(Entry {
                    id,
                    payload: Some(payload),
                    cancelled,
                });
            }
            _ => out.push(Entry {
                id,
                payload: None,
                cancelled: false,
            }),
        }
    }
    out
}

/// A string answer, moved out (`None` for anything else, or bytes that are
/// not UTF-8).
fn into_string(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

/// A RESP2 flat `[k, v, k, v]` array or a RESP3 map, as (key, value) pairs.
pub(super) fn as_fields(v: &Value) -> Vec<(String, Value)> {
    match v {
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|pair| Some((as_string(pair.first()?)?, pair.get(1)?.clone())))
            .collect(),
        Value::Map(pairs) => pairs
            .iter()
            .filter_map(|(k, v)| Some((as_string(k)?, v.clone())))
            .collect(),
        _ => Vec::new(),
    }
}

pub(super) fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

pub(super) fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// The time part of a stream entry id (`<ms>-<seq>`): when Redis added the
/// entry, in ms since the Unix epoch on Redis's clock.
pub(super) fn entry_time_ms(id: &str) -> Option<u64> {
    id.split_once('-')?.0.parse().ok()
}
