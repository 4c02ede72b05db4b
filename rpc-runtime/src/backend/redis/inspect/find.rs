//! Finding a call by id in a stream: which entries of a service's jobs or
//! dead-letter stream carry the call, newest first.
//!
//! Redis has no index by call id, and a stream may hold 100,000 dead
//! letters of any size, so the search runs inside Redis
//! (`scripts/find_call.lua`, read-only): each step looks at no more than
//! `ENTRIES_PER_STEP` entries or `BYTES_PER_STEP` bytes of messages and
//! returns where it stopped, so Redis is never held for long and no message
//! crosses the network. The caller's deadline bounds the whole search: when
//! it passes, the answer says the search is unfinished rather than that the
//! call is not there.
//!
//! The script matches the call id as JSON writes it (`"id"`, quotes
//! included) anywhere in the message; a match is a candidate, and the
//! caller decides from the message whether its `id` field is the call.

use super::super::read_only::ReadOnlyScript;
use super::excerpts::entry_id;
use super::view::RedisView;
use crate::backend::inspection::excerpts::{call_id_needle, Found, SearchPage, Stream};
use std::time::Instant;

use redis::Value;

use crate::error::Error;

/// Entries one step of the search looks at, at most.
const ENTRIES_PER_STEP: usize = 2_000;
/// Bytes of messages one step looks at, at most (the step ends after the
/// entry that passes it): copying them into the script is most of its
/// cost, a few milliseconds per MB.
const BYTES_PER_STEP: usize = 8 * 1024 * 1024;

impl RedisView {
    /// The entries of one of `service`'s streams whose message holds
    /// `call_id`, newest first: up to `max_matches` of them, looking until
    /// `deadline` at the latest.
    pub(crate) async fn find_call(
        &self,
        service: &str,
        stream: Stream,
        call_id: &str,
        max_matches: usize,
        deadline: Instant,
    ) -> Result<Found, Error> {
        let needle = call_id_needle(call_id);
        let key = self.stream_key(service, stream);
        let mut found = Found {
            tokens: Vec::new(),
            finished: false,
        };
        let mut from = "+".to_owned();
        while found.tokens.len() < max_matches {
            if Instant::now() >= deadline {
                return Ok(found);
            }
            let step = self
                .find_step(&key, &needle, &from, max_matches - found.tokens.len())
                .await?;
            found.tokens.extend(step.tokens);
            match step.next {
                Some(next) => from = next,
                None => {
                    found.finished = true;
                    return Ok(found);
                }
            }
        }
        Ok(found)
    }

    /// A page of one of `service`'s streams, newest first, below `before`:
    /// the entries whose message holds `text` as JSON writes it, or every
    /// entry; see [`Inspection::search_stream`].
    ///
    /// [`Inspection::search_stream`]: crate::backend::Inspection::search_stream
    pub(crate) async fn search_stream(
        &self,
        service: &str,
        stream: Stream,
        text: Option<&str>,
        before: Option<&str>,
        max: usize,
        deadline: Instant,
    ) -> Result<SearchPage, Error> {
        let key = self.stream_key(service, stream);
        let needle = text.map(call_id_needle);
        let mut page = SearchPage {
            tokens: Vec::new(),
            reached: None,
        };
        let mut from = match before {
            Some(token) => entry_id(token)?.to_owned(),
            None => "+".to_owned(),
        };
        let max = max.max(1);
        loop {
            let step = self
                .search_step(&key, needle.as_deref(), &from, max - page.tokens.len())
                .await?;
            page.tokens.extend(step.tokens);
            match step.next {
                None => return Ok(page),
                Some(next) => {
                    from = next;
                    if page.tokens.len() >= max || Instant::now() >= deadline {
                        page.reached = Some(from);
                        return Ok(page);
                    }
                }
            }
        }
    }

    /// One step of the search, from the entry before `from` (`+`: the newest).
    async fn find_step(
        &self,
        key: &str,
        needle: &str,
        from: &str,
        max_matches: usize,
    ) -> Result<Step, Error> {
        self.search_step(key, Some(needle), from, max_matches).await
    }

    /// One step of a search for `needle` (every entry without one), from
    /// the entry before `from` (`+`: the newest).
    async fn search_step(
        &self,
        key: &str,
        needle: Option<&str>,
        from: &str,
        max_matches: usize,
    ) -> Result<Step, Error> {
        let entries = ENTRIES_PER_STEP.to_string();
        let bytes = BYTES_PER_STEP.to_string();
        let matches = max_matches.clamp(1, 100).to_string();
        let reply = self
            .read_only(
                ReadOnlyScript::FindCall,
                &[key],
                &[
                    needle.unwrap_or_default().as_bytes(),
                    from.as_bytes(),
                    rpc_protocol::stream::MESSAGE.as_bytes(),
                    entries.as_bytes(),
                    bytes.as_bytes(),
                    matches.as_bytes(),
                    if needle.is_some() { b"" } else { b"all" },
                ],
            )
            .await?;
        parse_step(reply).ok_or_else(|| self.unexpected("find_call.lua"))
    }
}

/// One step's answer: the matches, and where to go on from.
struct Step {
    tokens: Vec<String>,
    next: Option<String>,
}

/// `{next, id, ...}`: `next` nil at the oldest entry. Anything that is not
/// an entry id is refused, so a wrong answer cannot loop the search.
fn parse_step(reply: Value) -> Option<Step> {
    let Value::Array(items) = reply else {
        return None;
    };
    let mut items = items.into_iter();
    let text = |v: Value| match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        _ => None,
    };
    let next = match items.next()? {
        Value::Nil => None,
        other => Some(text(other).filter(|t| entry_id(t).is_ok())?),
    };
    let tokens = items
        .map(|v| text(v).filter(|t| entry_id(t).is_ok()))
        .collect::<Option<Vec<_>>>()?;
    Some(Step { tokens, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_answer_is_entry_ids_or_nothing() {
        let bulk = |t: &str| Value::BulkString(t.as_bytes().to_vec());
        let step = parse_step(Value::Array(vec![bulk("5-0"), bulk("9-1")])).expect("a step");
        assert_eq!(
            (step.next.as_deref(), step.tokens),
            (Some("5-0"), vec!["9-1".to_owned()])
        );
        let last = parse_step(Value::Array(vec![Value::Nil])).expect("the last step");
        assert!(last.next.is_none() && last.tokens.is_empty());
        assert!(parse_step(Value::Array(vec![bulk("+")])).is_none());
        assert!(parse_step(Value::Array(vec![Value::Nil, Value::Int(1)])).is_none());
        assert!(parse_step(Value::Nil).is_none());
    }
}
