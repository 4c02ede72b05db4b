//! What the start of a message says about it when only its start was read.
//!
//! A message longer than the window a page reads cannot be parsed as JSON,
//! but its envelope fields usually come before its parameters (rpc-runtime
//! writes `v`, `id`, `job` first, and a sorted writer puts `attempt`, `id`,
//! `job` before `params`), so the call id and job name are in the first
//! bytes. The start is read as a JSON object field by field until the text
//! runs out; every field read whole before that is kept, anything else is
//! skipped, and nothing here can fail: a start that is no JSON object gives
//! an empty head.

use std::borrow::Cow;
use std::fmt;

use rpc_protocol::limits::MAX_ID_BYTES;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserializer;

/// The longest job name (`Service.job`) kept from a message's start.
const MAX_JOB_BYTES: usize = 512;

/// The envelope fields found at the start of a message.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Head {
    pub id: Option<String>,
    pub job: Option<String>,
    pub attempt: Option<u32>,
    pub max_attempts: Option<u32>,
    pub deadline_ms: Option<u64>,
    pub reply_to: Option<String>,
    pub result_ttl_ms: Option<u64>,
}

/// Reads the envelope fields from the start of a message.
pub fn read(start: &[u8]) -> Head {
    let mut head = Head::default();
    let mut reader = serde_json::Deserializer::from_slice(start);
    // The text ends mid-value: that error is expected, and what was read
    // before it is in `head`.
    let _ = HeadSeed(&mut head).deserialize(&mut reader);
    head
}

struct HeadSeed<'a>(&'a mut Head);

impl<'de> DeserializeSeed<'de> for HeadSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for HeadSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a job message")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let head = self.0;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "id" => {
                    let id: String = map.next_value()?;
                    head.id = (!id.is_empty() && id.len() <= MAX_ID_BYTES).then_some(id);
                }
                "job" => {
                    let job: String = map.next_value()?;
                    head.job = (job.len() <= MAX_JOB_BYTES).then_some(job);
                }
                "reply_to" => {
                    let to: String = map.next_value()?;
                    head.reply_to = (to.len() <= MAX_JOB_BYTES).then_some(to);
                }
                "attempt" => head.attempt = Some(map.next_value()?),
                "max_attempts" => head.max_attempts = Some(map.next_value()?),
                "deadline_ms" => head.deadline_ms = Some(map.next_value()?),
                "result_ttl_ms" => head.result_ttl_ms = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_before_the_cut_are_read() {
        // The first 60 bytes of a large message: id and job, then the
        // parameters run past the end.
        let head = read(br#"{"v":1,"id":"c-1","job":"Big.run","params":{"blob":"xxxxxxxx"#);
        assert_eq!(head.id.as_deref(), Some("c-1"));
        assert_eq!(head.job.as_deref(), Some("Big.run"));
        assert_eq!(head.attempt, None);
        let sorted =
            read(br#"{"attempt":3,"id":"c-2","job":"Big.run","max_attempts":3,"params":{"#);
        assert_eq!((sorted.attempt, sorted.max_attempts), (Some(3), Some(3)));
        assert_eq!(sorted.id.as_deref(), Some("c-2"));
    }

    #[test]
    fn a_start_that_is_no_job_message_gives_an_empty_head() {
        for start in [
            &b""[..],
            b"\xff\xfe",
            b"[1,2,3",
            b"\"id\"",
            b"{\"id\":5,\"job\":\"x\"",
        ] {
            let head = read(start);
            assert_eq!(head.id, None, "{start:?}");
        }
        // A value cut in the middle is not kept.
        assert_eq!(read(br#"{"id":"abc"#).id, None);
    }
}
