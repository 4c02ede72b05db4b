//! The job message: what a sender puts on a service's queue, as JSON.
//!
//! A job message names the job, carries the parameters as one JSON object
//! keyed by parameter name (the old library's `data` dict), says where to
//! reply, and carries its deadline, attempt and lifecycle fields.
//! docs/PROTOCOL.md, "Job message", is the normative description.
//!
//! Decoding borrows from the received bytes (`&RawValue` for the
//! parameters) so a worker never builds an intermediate `serde_json::Value`.
//! Every field comes off the network, so decoding is strict where serde's
//! derive is lenient: [`JobMessage::decode`] accepts only the documented
//! object form (a derived `Deserialize` for a struct also takes a JSON array
//! of its fields in order), and the numeric fields must lie in their
//! documented ranges ([`crate::limits`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::limits;

/// The protocol version of a plain message (`v` in every envelope): what
/// every worker since the first speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// The version of a job message that a worker speaking only
/// [`PROTOCOL_VERSION`] would misread: one with `run_at_ms` (it would run
/// at once) or `idempotency_key` (it would run every duplicate). Such a
/// worker dead-letters it instead, to be replayed once a newer one serves.
pub const PROTOCOL_VERSION_LIFECYCLE: u32 = 2;
/// The highest `v` this crate reads.
pub const NEWEST_VERSION: u32 = PROTOCOL_VERSION_LIFECYCLE;

/// A job message as sent by a client.
#[derive(Debug, Serialize, Deserialize)]
pub struct JobMessage<'a> {
    /// Protocol version.
    pub v: u32,
    /// Unique call id (a UUID, unless the sender chose another unique string).
    #[serde(borrow)]
    pub id: std::borrow::Cow<'a, str>,
    /// Full job name: `Service.job`.
    #[serde(borrow)]
    pub job: std::borrow::Cow<'a, str>,
    /// Parameters, one JSON object keyed by parameter name.
    #[serde(borrow)]
    pub params: &'a RawValue,
    /// Where the reply goes (a list key), or absent for one-way jobs.
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub reply_to: Option<std::borrow::Cow<'a, str>>,
    /// Absolute deadline, milliseconds since the Unix epoch, on the sender's
    /// clock. Workers prefer `timeout_ms` when it is there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// Time left to the deadline when the message was added to the queue, in
    /// ms: the worker measures it from the broker's own timestamp of the
    /// entry, so the deadline does not depend on the sender's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Which attempt this message is (1 for the first send; a retry re-sends
    /// the message with `attempt + 1`).
    #[serde(default = "one")]
    pub attempt: u32,
    /// The attempt limit; past it the job is dead-lettered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// How long the worker keeps the reply under the result key, in ms (0: not kept).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub result_ttl_ms: u64,
    /// Free-form caller metadata (trace ids, tenant, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", borrow)]
    pub meta: BTreeMap<std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>>,
    /// How often workers that do not know the job handed it back for
    /// another worker (a rolling deploy); set by workers only.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub handoffs: u32,
    /// When the sender sent it, in ms since the Unix epoch on the broker's
    /// clock as the sender estimates it: `timeout_ms` counts from here (or
    /// from the queue entry's timestamp, whichever is earlier), so a call
    /// that waited in the intake before a worker moved it keeps its deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_ms: Option<u64>,
    /// A delayed call: not to run before this time (ms since the Unix
    /// epoch, broker clock). A worker that takes it earlier puts it on the
    /// schedule; `timeout_ms` counts from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at_ms: Option<u64>,
    /// Run at most once per key while the key is held: the first worker
    /// to take a call with this key claims it; later calls with the key
    /// are answered with the holder's id (`holder`) instead of running.
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub idempotency_key: Option<std::borrow::Cow<'a, str>>,
    /// How long the key is held once claimed (default 1 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_ttl_ms: Option<u64>,
    /// The call's group key (a tenant, a customer, a resource): at most the
    /// job's per-key limit of its calls with this key run at once across
    /// the fleet, and keys share the workers fairly. A worker that does not
    /// know the field runs the call without the limit.
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub group: Option<std::borrow::Cow<'a, str>>,
    /// The call's priority, 1 (taken first) to 5; absent is the default, 3
    /// ([`crate::priority`]). It names the lane a call goes back to when it
    /// leaves the schedule; the lane it was read from decides its turn. A
    /// worker that does not know the field runs the call without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// A job message as a client encodes it: the fields of [`JobMessage`], but
/// the parameters are serialized straight from the caller's value into the
/// message. Encoding a call is one pass with one buffer: no intermediate
/// string of the parameters, no re-parse to build a `RawValue`, no
/// allocated `Service.job` name.
#[derive(Debug, Serialize)]
pub struct OutgoingJob<'a, P: ?Sized> {
    pub v: u32,
    pub id: &'a str,
    pub job: JobName<'a>,
    pub params: &'a P,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    pub attempt: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(skip_serializing_if = "is_zero")]
    pub result_ttl_ms: u64,
    #[serde(skip_serializing_if = "no_meta")]
    pub meta: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_ttl_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<&'a str>,
    /// Written only when it is not the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
}

/// A full job name, `Service.job`, written without allocating.
#[derive(Debug, Clone, Copy)]
pub struct JobName<'a> {
    pub service: &'a str,
    pub job: &'a str,
}

impl std::fmt::Display for JobName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.service, self.job)
    }
}

impl Serialize for JobName<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn no_meta(meta: &&BTreeMap<String, String>) -> bool {
    meta.is_empty()
}

fn one() -> u32 {
    1
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Why a message was refused: the text goes into the dead letter's reason
/// and the `bad_request` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `bytes` hold a JSON object: the first byte that is not JSON white
/// space is `{`. (serde's derive would also read a struct from an array.)
pub fn is_json_object(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|&b| b == b'{')
}

impl<'a> JobMessage<'a> {
    /// Decodes a job message strictly: the documented object form only, and
    /// every numeric field within [`limits`]. (`params` is checked by the
    /// job: a typed job takes an object, an untyped one any JSON value.)
    pub fn decode(payload: &'a [u8]) -> Result<Self, Refused> {
        if !is_json_object(payload) {
            return Err(Refused(
                "a job message is a JSON object (arrays and other values are refused)".to_owned(),
            ));
        }
        let msg: JobMessage =
            serde_json::from_slice(payload).map_err(|e| Refused(e.to_string()))?;
        msg.check()?;
        Ok(msg)
    }

    fn check(&self) -> Result<(), Refused> {
        use limits::*;
        let refuse = |what: String| Err(Refused(what));
        if self.id.is_empty() || self.id.len() > MAX_ID_BYTES {
            return refuse(format!("`id` must be 1 to {MAX_ID_BYTES} bytes"));
        }
        if !(1..=MAX_ATTEMPTS).contains(&self.attempt) {
            return refuse(format!(
                "`attempt` {} is outside 1..={MAX_ATTEMPTS}",
                self.attempt
            ));
        }
        if let Some(max) = self
            .max_attempts
            .filter(|m| !(1..=MAX_ATTEMPTS).contains(m))
        {
            return refuse(format!(
                "`max_attempts` {max} is outside 1..={MAX_ATTEMPTS}"
            ));
        }
        if self.result_ttl_ms > MAX_TTL_MS {
            return refuse(format!(
                "`result_ttl_ms` {} is over the limit of {MAX_TTL_MS} (366 days)",
                self.result_ttl_ms
            ));
        }
        if let Some(t) = self.timeout_ms.filter(|t| *t > MAX_TTL_MS) {
            return refuse(format!(
                "`timeout_ms` {t} is over the limit of {MAX_TTL_MS} (366 days)"
            ));
        }
        if self.handoffs > MAX_HANDOFFS {
            return refuse(format!(
                "`handoffs` {} is over {MAX_HANDOFFS}",
                self.handoffs
            ));
        }
        if let Some(d) = self.deadline_ms.filter(|d| *d > MAX_DEADLINE_MS) {
            return refuse(format!("`deadline_ms` {d} is past the year 9999"));
        }
        for (name, value) in [("sent_ms", self.sent_ms), ("run_at_ms", self.run_at_ms)] {
            if let Some(t) = value.filter(|t| *t > MAX_DEADLINE_MS) {
                return refuse(format!("`{name}` {t} is past the year 9999"));
            }
        }
        if let Some(key) = self
            .idempotency_key
            .as_deref()
            .filter(|k| !is_idempotency_key(k))
        {
            return refuse(format!(
                "`idempotency_key` must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} bytes without control characters or braces ({} bytes given)",
                key.len()
            ));
        }
        if let Some(t) = self
            .idempotency_ttl_ms
            .filter(|t| !(1..=MAX_TTL_MS).contains(t))
        {
            return refuse(format!(
                "`idempotency_ttl_ms` {t} is outside 1..={MAX_TTL_MS} (366 days)"
            ));
        }
        if let Some(group) = self.group.as_deref().filter(|g| !is_group_key(g)) {
            return refuse(format!(
                "`group` must be 1 to {MAX_GROUP_KEY_BYTES} bytes without control characters or braces ({} bytes given)",
                group.len()
            ));
        }
        if let Some(p) = self
            .priority
            .filter(|p| !u8::try_from(*p).is_ok_and(crate::priority::is_priority))
        {
            return refuse(crate::priority::out_of_range(p));
        }
        Ok(())
    }

    /// The call's priority: its `priority` field, or the default.
    pub fn priority(&self) -> u8 {
        self.priority
            .and_then(|p| u8::try_from(p).ok())
            .filter(|p| crate::priority::is_priority(*p))
            .unwrap_or(crate::priority::DEFAULT)
    }
}

/// A dead letter made ready to run again ([`for_replay`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// The call id.
    pub id: String,
    /// The message to queue.
    pub message: Vec<u8>,
    /// Its priority: the lane it goes back onto ([`crate::priority`]).
    pub priority: u8,
}

/// A dead-lettered job message made ready to run again: attempts start over
/// at 1 and the old deadline (long past) is dropped. `None` when the
/// message is not a readable job message (garbage cannot be replayed).
pub fn for_replay(payload: &[u8]) -> Option<Replay> {
    let mut msg = JobMessage::decode(payload).ok()?;
    msg.attempt = 1;
    msg.deadline_ms = None;
    msg.timeout_ms = None;
    msg.handoffs = 0;
    // Its time starts again: a replay runs now, not at its old start.
    msg.sent_ms = None;
    msg.run_at_ms = None;
    Some(Replay {
        id: msg.id.to_string(),
        message: serde_json::to_vec(&msg).ok()?,
        priority: msg.priority(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::ReplyMessage;
    #[test]
    fn outgoing_job_decodes_as_a_job_message() {
        let meta = BTreeMap::from([("trace".to_owned(), "t1".to_owned())]);
        let out = OutgoingJob {
            v: PROTOCOL_VERSION,
            id: "id\"1",
            job: JobName {
                service: "Calculator",
                job: "add",
            },
            params: &serde_json::json!({"a": 1, "b": 2}),
            reply_to: Some("rpc:inbox:{c}"),
            deadline_ms: Some(42),
            timeout_ms: Some(7),
            attempt: 1,
            max_attempts: None,
            result_ttl_ms: 0,
            meta: &meta,
            sent_ms: Some(9),
            run_at_ms: None,
            idempotency_key: Some("k"),
            idempotency_ttl_ms: None,
            group: Some("tenant"),
            priority: None,
        };
        let bytes = serde_json::to_vec(&out).unwrap();
        let msg: JobMessage = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(msg.id, "id\"1");
        assert_eq!(msg.job, "Calculator.add");
        assert_eq!(msg.params.get(), "{\"a\":1,\"b\":2}");
        assert_eq!(msg.reply_to.as_deref(), Some("rpc:inbox:{c}"));
        assert_eq!(msg.deadline_ms, Some(42));
        assert_eq!(msg.meta.get("trace").map(|v| v.as_ref()), Some("t1"));
        assert_eq!(msg.sent_ms, Some(9));
        assert_eq!(msg.idempotency_key.as_deref(), Some("k"));
        assert_eq!(msg.group.as_deref(), Some("tenant"));
        let empty = BTreeMap::new();
        let bare = serde_json::to_string(&OutgoingJob {
            meta: &empty,
            reply_to: None,
            ..out
        })
        .unwrap();
        assert!(
            !bare.contains("meta") && !bare.contains("reply_to"),
            "{bare}"
        );
    }

    #[test]
    fn only_the_object_forms_decode() {
        // serde's derive reads a struct from an array of its fields; the
        // protocol says "object", so arrays are refused, nested ones too.
        let array = br#"[1,"id","Calculator.add",{"a":1},"rpc:inbox:{x}"]"#;
        assert!(JobMessage::decode(array).is_err());
        assert!(ReplyMessage::decode(br#"[1,"id",3]"#).is_err());
        assert!(ReplyMessage::decode(br#"{"v":1,"id":"x","error":["app","m"]}"#).is_err());
        let ok = br#" {"v":1,"id":"x","error":{"kind":"app","message":"m"}}"#;
        assert!(ReplyMessage::decode(ok).is_ok());
        assert!(ReplyMessage::decode(br#"{"v":1,"id":"x","ok":null,"error":null}"#).is_ok());
    }

    #[test]
    fn numeric_fields_out_of_range_are_refused() {
        let with =
            |field: &str| format!(r#"{{"v":1,"id":"1","job":"C.add","params":{{}},{field}}}"#);
        for bad in [
            r#""result_ttl_ms":18446744073709551615"#,
            r#""attempt":0"#,
            r#""attempt":4294967295"#,
            r#""max_attempts":0"#,
            r#""max_attempts":100000"#,
            r#""deadline_ms":18446744073709551615"#,
            r#""timeout_ms":18446744073709551615"#,
            r#""attempt":-1"#,
            r#""run_at_ms":253402300800000"#,
            r#""sent_ms":1e300"#,
            r#""idempotency_key":"""#,
            r#""idempotency_key":"a\u0000b""#,
            r#""idempotency_key":"x}:intake""#,
            r#""idempotency_ttl_ms":0"#,
            r#""group":"""#,
            r#""group":"a\u0001b""#,
            r#""group":"x}:intake""#,
            r#""group":7"#,
        ] {
            let text = with(bad);
            assert!(JobMessage::decode(text.as_bytes()).is_err(), "{text}");
        }
        let fine = with(r#""result_ttl_ms":300000,"attempt":2,"max_attempts":5"#);
        assert!(JobMessage::decode(fine.as_bytes()).is_ok());
    }

    #[test]
    fn job_message_defaults() {
        let raw = br#"{"v":1,"id":"1","job":"Calculator.add","params":{"a":1,"b":2}}"#;
        let msg: JobMessage = serde_json::from_slice(raw).unwrap();
        assert_eq!(msg.attempt, 1);
        assert!(msg.reply_to.is_none());
        assert_eq!(msg.params.get(), "{\"a\":1,\"b\":2}");
    }
}
