//! The reply: what a worker pushes onto the caller's inbox (and keeps under
//! the call's result key), as JSON: the job's value (`ok`), an error with
//! its kind, or the call holding the call's idempotency key (`holder`).
//! docs/PROTOCOL.md, "Reply", is the normative description; decoding takes
//! only the documented object forms.
//!
//! A keyed call's replies also carry the `fingerprint` of the call (job and
//! parameters, see [`crate::fingerprint`]): the one a worker ran with on
//! the replies it keeps, the one of the claim it matched on a holder
//! answer. Call ids are chosen by senders, so anyone may send another call
//! under a holder's id and overwrite its kept result; a caller that
//! follows a holder takes the kept result only when the two agree.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::job::{is_json_object, Refused, PROTOCOL_VERSION};

/// The kinds of failure a worker reports in a reply envelope (`error.kind` on
/// the wire; see docs/PROTOCOL.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The job returned its typed application error; `data` holds it.
    App,
    /// The handler failed and gave up (or ran out of attempts).
    Handler,
    /// No handler is mounted for this job name.
    UnknownJob,
    /// The parameters did not match the job's request type.
    BadRequest,
    /// The call's deadline passed before a worker could start it.
    DeadlineExceeded,
    /// The job ran out of attempts (crashed workers, retries) and was moved to
    /// the dead-letter stream.
    DeadLettered,
    /// The call was cancelled (by its caller or an operator) before it ran
    /// or while it ran.
    Cancelled,
    /// The call's idempotency key is held by another call with other
    /// parameters (or another job); `data` is `{"key": key}`. It did not
    /// run. The holder's id is not told: it is another caller's, maybe
    /// another tenant's, and knowing it is enough to cancel that call.
    IdempotencyConflict,
    /// A worker's middleware refused the call: it did not prove who sent
    /// it (a missing or wrong token). It did not run.
    Unauthenticated,
    /// A worker's middleware refused the call: its sender may not call
    /// this job. It did not run.
    PermissionDenied,
    /// A kind this version does not know (sent by a newer peer).
    #[serde(other)]
    Unknown,
}

impl ErrorKind {
    /// The kind as the wire spells it (`"unknown"` for one this crate
    /// does not know).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::App => "app",
            ErrorKind::Handler => "handler",
            ErrorKind::UnknownJob => "unknown_job",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::DeadlineExceeded => "deadline_exceeded",
            ErrorKind::DeadLettered => "dead_lettered",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::IdempotencyConflict => "idempotency_conflict",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error part of a reply.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReplyError<'a> {
    pub kind: ErrorKind,
    #[serde(borrow)]
    pub message: std::borrow::Cow<'a, str>,
    /// The application error value for `kind == "app"`.
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub data: Option<&'a RawValue>,
}

/// A reply as received by a client.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReplyMessage<'a> {
    pub v: u32,
    #[serde(borrow)]
    pub id: std::borrow::Cow<'a, str>,
    /// For a call with an idempotency key: the fingerprint of the call the
    /// reply answers (a holder answer: of the claim it matched). Written
    /// before `ok`, so a keyed reply never takes a reader's fast path for
    /// the plain `{"v":1,"id":..,"ok":..}`. Older readers ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub fingerprint: Option<std::borrow::Cow<'a, str>>,
    /// The job's value; `Some("null")` for `"ok":null` (a job that
    /// returns nothing), `None` only when the field is absent.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        borrow,
        deserialize_with = "present"
    )]
    pub ok: Option<&'a RawValue>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        borrow,
        deserialize_with = "object_only"
    )]
    pub error: Option<ReplyError<'a>>,
    /// The answer to a call whose idempotency key another call holds (for
    /// the same job and parameters): that call's id. The caller waits for
    /// that call's kept result instead.
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub holder: Option<std::borrow::Cow<'a, str>>,
}

impl<'a> ReplyMessage<'a> {
    /// Decodes a reply strictly: the documented object form only, for the
    /// envelope and its `error`.
    pub fn decode(body: &'a [u8]) -> Result<Self, Refused> {
        if !is_json_object(body) {
            return Err(Refused("a reply is a JSON object".to_owned()));
        }
        serde_json::from_slice(body).map_err(|e| Refused(e.to_string()))
    }

    /// Whether the reply is an answer (`ok` or `error`), as opposed to a
    /// holder answer or an envelope with neither, which answer nothing.
    pub fn is_answer(&self) -> bool {
        self.holder.is_none() && (self.ok.is_some() || self.error.is_some())
    }
}

/// Deserializes a field that is there, `null` included, as `Some`: an
/// `Option` alone reads `null` as absent, and `"ok":null` is an answer
/// while an envelope without `ok` is not.
fn present<'de, D>(d: D) -> Result<Option<&'de RawValue>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    <&'de RawValue>::deserialize(d).map(Some)
}

/// Deserializes an optional struct only from a JSON object (or `null`).
fn object_only<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    let raw: Option<&'de RawValue> = Deserialize::deserialize(d)?;
    match raw {
        None => Ok(None),
        Some(raw) if raw.get() == "null" => Ok(None),
        Some(raw) if is_json_object(raw.get().as_bytes()) => serde_json::from_str(raw.get())
            .map(Some)
            .map_err(serde::de::Error::custom),
        Some(_) => Err(serde::de::Error::custom("`error` must be a JSON object")),
    }
}

/// Encodes a successful reply around an already-serialized result.
pub fn encode_ok_reply(id: &str, ok_json: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(ok_json.len() + id.len() + 24);
    out.extend_from_slice(b"{\"v\":1,\"id\":");
    // Ids are generated by clients; escaped when they need it, as they come
    // off the network.
    crate::json_text::write_str(&mut out, id).expect("writing a str to a Vec cannot fail");
    out.extend_from_slice(b",\"ok\":");
    out.extend_from_slice(ok_json.as_bytes());
    out.push(b'}');
    out
}

/// Encodes an error reply.
pub fn encode_error_reply(
    id: &str,
    kind: ErrorKind,
    message: &str,
    data_json: Option<&str>,
) -> Vec<u8> {
    let data = data_json.and_then(|d| RawValue::from_string(d.to_owned()).ok());
    let reply = ReplyMessage {
        v: PROTOCOL_VERSION,
        id: id.into(),
        fingerprint: None,
        ok: None,
        error: Some(ReplyError {
            kind,
            message: message.into(),
            data: data.as_deref(),
        }),
        holder: None,
    };
    serde_json::to_vec(&reply).expect("a reply envelope always serializes")
}

/// Encodes the answer to a duplicate of an idempotent call: the call that
/// holds the key, whose kept result the caller waits for, and the
/// fingerprint of the claim it matched, which that kept result must carry.
pub fn encode_holder_reply(id: &str, holder: &str, fingerprint: &str) -> Vec<u8> {
    let reply = ReplyMessage {
        v: PROTOCOL_VERSION,
        id: id.into(),
        fingerprint: Some(fingerprint.into()),
        ok: None,
        error: None,
        holder: Some(holder.into()),
    };
    serde_json::to_vec(&reply).expect("a reply envelope always serializes")
}

/// `reply` (one of this module's encodings) with the call's `fingerprint`
/// added: what a worker answers and keeps for a keyed call it ran. `None`
/// when `reply` is not a reply envelope.
pub fn with_fingerprint(reply: &[u8], fingerprint: &str) -> Option<Vec<u8>> {
    let mut decoded = ReplyMessage::decode(reply).ok()?;
    decoded.fingerprint = Some(fingerprint.into());
    serde_json::to_vec(&decoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn ok_reply_round_trips() {
        let bytes = encode_ok_reply("a\"b", "{\"x\":1}");
        let reply: ReplyMessage = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(reply.id, "a\"b");
        assert_eq!(reply.ok.unwrap().get(), "{\"x\":1}");
        assert!(reply.error.is_none());
    }

    #[test]
    fn error_reply_round_trips_and_unknown_kinds_decode() {
        let bytes = encode_error_reply("id1", ErrorKind::App, "nope", Some("\"DivideByZero\""));
        let reply: ReplyMessage = serde_json::from_slice(&bytes).unwrap();
        let err = reply.error.unwrap();
        assert_eq!(err.kind, ErrorKind::App);
        assert_eq!(err.data.unwrap().get(), "\"DivideByZero\"");

        let newer = br#"{"v":1,"id":"x","error":{"kind":"from_the_future","message":"m"}}"#;
        let reply: ReplyMessage = serde_json::from_slice(newer).unwrap();
        assert_eq!(reply.error.unwrap().kind, ErrorKind::Unknown);
    }

    #[test]
    fn ok_null_is_an_answer_and_an_envelope_without_ok_or_error_is_not() {
        let unit = ReplyMessage::decode(br#"{"v":1,"id":"a","ok":null}"#).unwrap();
        assert_eq!(unit.ok.map(RawValue::get), Some("null"));
        assert!(unit.is_answer());
        assert_eq!(
            serde_json::to_string(&unit).unwrap(),
            r#"{"v":1,"id":"a","ok":null}"#
        );
        let empty = ReplyMessage::decode(br#"{"v":1,"id":"a"}"#).unwrap();
        assert!(empty.ok.is_none() && !empty.is_answer());
        let holder = encode_holder_reply("b", "a", "f00d");
        assert!(!ReplyMessage::decode(&holder).unwrap().is_answer());
    }

    #[test]
    fn a_keyed_reply_carries_its_fingerprint_before_ok_and_old_readers_skip_it() {
        let kept = with_fingerprint(&encode_ok_reply("a", "9"), "f00d").unwrap();
        assert_eq!(
            String::from_utf8(kept.clone()).unwrap(),
            r#"{"v":1,"id":"a","fingerprint":"f00d","ok":9}"#
        );
        let error = encode_error_reply("a", ErrorKind::Handler, "m", None);
        let error = with_fingerprint(&error, "f00d").unwrap();
        let error = ReplyMessage::decode(&error).unwrap();
        assert_eq!(error.fingerprint.as_deref(), Some("f00d"));
        assert_eq!(error.error.unwrap().kind, ErrorKind::Handler);
        let holder = encode_holder_reply("b", "a", "f00d");
        let holder = ReplyMessage::decode(&holder).unwrap();
        assert_eq!(
            (holder.holder.as_deref(), holder.fingerprint.as_deref()),
            (Some("a"), Some("f00d"))
        );
        // A reader that predates the field (any struct without it, as
        // serde derives it: unknown fields are skipped) reads the rest.
        #[derive(Deserialize)]
        struct Old<'a> {
            id: String,
            #[serde(borrow)]
            ok: Option<&'a RawValue>,
        }
        let old: Old = serde_json::from_slice(&kept).unwrap();
        assert_eq!(
            (old.id.as_str(), old.ok.map(RawValue::get)),
            ("a", Some("9"))
        );
    }
}
