//! Reading Redis replies: popped lists, stream entries, field maps.

use redis::Value;

use crate::backend::Delivery;
use rpc_protocol::stream::{CANCELLED as CANCELLED_FIELD, MESSAGE as FIELD};

/// Parses an `XREADGROUP` reply, `nil` or
/// `[[key, [[id, [field, value, ...]], ...]], ...]`, into deliveries.
pub(super) fn collect_deliveries(
    v: &Value,
    keys: &[String],
    queues: &[String],
    out: &mut Vec<Delivery>,
) {
    let streams: Vec<(&Value, &Value)> = match v {
        Value::Array(streams) => streams
            .iter()
            .filter_map(|s| match s {
                Value::Array(parts) => Some((parts.first()?, parts.get(1)?)),
                _ => None,
            })
            .collect(),
        // RESP3 answers with a map of key -> entries.
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (k, v)).collect(),
        _ => Vec::new(),
    };
    for (key, entries) in streams {
        let Some(key) = as_string(key) else { continue };
        let Some(idx) = keys.iter().position(|k| *k == key) else {
            continue;
        };
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

/// Parses `[[id, [field, value, ...]] | [id, nil], ...]` into entries.
pub(super) fn parse_entries(v: &Value) -> Vec<Entry> {
    let mut out = Vec::new();
    let Value::Array(entries) = v else {
        return out;
    };
    for entry in entries {
        let Value::Array(parts) = entry else { continue };
        let Some(id) = parts.first().and_then(as_string) else {
            continue;
        };
        match parts.get(1) {
            Some(Value::Array(fields)) => {
                let mut payload = Vec::new();
                let mut cancelled = false;
                for pair in fields.chunks(2) {
                    if let (Some(Value::BulkString(name)), Some(Value::BulkString(value))) =
                        (pair.first(), pair.get(1))
                    {
                        if name == FIELD.as_bytes() {
                            payload = value.clone();
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
