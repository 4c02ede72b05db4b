//! Reading a reply envelope: the fast path for the usual `ok` reply, the
//! full parse for everything else, and the job label errors name.

use std::time::Duration;

use rpc_protocol::job::JobName;
use rpc_protocol::reply::ReplyMessage;
use serde::de::DeserializeOwned;

use crate::call::{JobId, JobRef};
use crate::error::{CallError, Error, ErrorKind};

/// The error of a call that got no answer by its deadline.
pub(super) fn timed_out(job: JobLabel, id: &JobId, after: Duration) -> Error {
    Error::Timeout {
        job: job.to_string(),
        id: id.to_string(),
        after,
        diagnosis: None,
    }
}

pub(super) fn label(job: &JobRef) -> JobLabel {
    JobLabel(Some(JobName {
        service: job.service,
        job: job.job,
    }))
}

/// The job a call is for, for error messages: kept as two static names and
/// formatted only when a message is actually made.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct JobLabel(Option<JobName<'static>>);

impl JobLabel {
    /// The service, when known.
    pub(super) fn service(&self) -> Option<&'static str> {
        self.0.map(|name| name.service)
    }
}

impl std::fmt::Display for JobLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(name) => name.fmt(f),
            // A call attached to by id: its reply does not name its job.
            None => f.write_str("(job not known: attached by id)"),
        }
    }
}

/// The result of a reply in exactly the shape [`rpc_protocol::reply::encode_ok_reply`]
/// writes, `{"v":1,"id":"<id without escapes>","ok":<result>}`, sliced out
/// without parsing the envelope; `None` for any other shape.
pub(super) fn ok_result(body: &[u8]) -> Option<&[u8]> {
    let rest = body.strip_prefix(b"{\"v\":1,\"id\":\"")?;
    let end = rest.iter().position(|&b| b == b'"')?;
    if rest[..end].contains(&b'\\') {
        return None;
    }
    rest[end + 1..]
        .strip_prefix(b",\"ok\":")?
        .strip_suffix(b"}")
}

pub(super) fn decode_reply<T: DeserializeOwned, E: DeserializeOwned>(
    job: JobLabel,
    body: &[u8],
) -> Result<T, CallError<E>> {
    // Fast path for the usual reply. Anything it cannot read (another
    // shape, more fields after `ok`, a result of the wrong type) goes
    // through the full parse below, which also makes the error message.
    if let Some(Ok(value)) = ok_result(body).map(serde_json::from_slice::<T>) {
        return Ok(value);
    }
    let reply =
        ReplyMessage::decode(body).map_err(|e| Error::codec("decode a reply envelope", e))?;
    if let Some(holder) = &reply.holder {
        // Never read as a result (it has none): only `holder_of` and
        // `vouched` may turn one into the holder's answer.
        return Err(Error::codec(
            format!("read the answer of `{job}`"),
            format!(
                "the reply names call {holder} as holding its idempotency key; it is no answer"
            ),
        )
        .into());
    }
    if let Some(ok) = reply.ok {
        return serde_json::from_str(ok.get())
            .map_err(|e| Error::codec(format!("decode the result of `{job}`"), e).into());
    }
    let Some(err) = reply.error else {
        // `"ok": null` is a result (`Some("null")`); no `ok` at all is not.
        return Err(Error::codec(
            format!("read the answer of `{job}`"),
            "the reply has neither `ok` nor `error`",
        )
        .into());
    };
    if err.kind == ErrorKind::App {
        if let Some(data) = err.data {
            return match serde_json::from_str::<E>(data.get()) {
                Ok(app) => Err(CallError::App(app)),
                Err(e) => {
                    Err(Error::codec(format!("decode the application error of `{job}`"), e).into())
                }
            };
        }
    }
    if err.kind == ErrorKind::IdempotencyConflict {
        // `{"key"}`; older workers also named the holder, which is not
        // passed on.
        #[derive(serde::Deserialize)]
        struct Held {
            key: String,
        }
        if let Some(held) = err
            .data
            .and_then(|d| serde_json::from_str::<Held>(d.get()).ok())
        {
            return Err(Error::IdempotencyConflict {
                job: job.to_string(),
                key: held.key,
            }
            .into());
        }
    }
    Err(Error::Remote {
        job: job.to_string(),
        kind: err.kind,
        message: err.message.into_owned(),
        data: err.data.and_then(|d| serde_json::from_str(d.get()).ok()),
    }
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::routing::reply_id;
    use crate::error::Never;

    #[test]
    fn an_error_of_a_call_attached_by_id_says_its_job_is_not_known() {
        let e = decode_reply::<(), Never>(
            JobLabel::default(),
            br#"{"v":1,"id":"c1","error":{"kind":"cancelled","message":"the call was cancelled before it ran"}}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "`(job not known: attached by id)` failed (cancelled): the call was cancelled before it ran"
        );
    }

    #[test]
    pub(super) fn reply_id_fast_path_and_fallback() {
        let ok = rpc_protocol::reply::encode_ok_reply("abc123", "5");
        assert!(matches!(
            reply_id(&ok),
            Some(std::borrow::Cow::Borrowed("abc123"))
        ));
        let escaped = rpc_protocol::reply::encode_ok_reply("a\"b", "5");
        assert_eq!(reply_id(&escaped).as_deref(), Some("a\"b"));
        let err = rpc_protocol::reply::encode_error_reply("e1", ErrorKind::Handler, "m", None);
        assert_eq!(reply_id(&err).as_deref(), Some("e1"));
        let reordered = br#"{"id":"x9","v":1,"ok":1}"#;
        assert_eq!(ok_result(&ok), Some(&b"5"[..]));
        assert_eq!(ok_result(&escaped), None);
        assert_eq!(ok_result(&err), None);
        assert_eq!(ok_result(reordered), None);
        assert_eq!(reply_id(reordered).as_deref(), Some("x9"));
        assert!(reply_id(b"garbage").is_none());
    }

    #[test]
    pub(super) fn replies_decode_by_the_fast_path_or_the_full_parse() {
        let decode = |body: &[u8]| decode_reply::<i64, Never>(JobLabel::default(), body);
        assert_eq!(
            decode(&rpc_protocol::reply::encode_ok_reply("a", "5")).ok(),
            Some(5)
        );
        // More fields after `ok`: not the fast path's shape; still read.
        assert_eq!(decode(br#"{"v":1,"id":"a","ok":5,"x":1}"#).ok(), Some(5));
        assert_eq!(decode(br#"{"ok":7,"id":"a","v":1}"#).ok(), Some(7));
        // A result of the wrong type is a codec error, whichever path.
        let wrong = decode(&rpc_protocol::reply::encode_ok_reply("a", "\"five\""));
        assert!(
            matches!(wrong, Err(CallError::Rpc(Error::Codec { .. }))),
            "{wrong:?}"
        );
    }

    #[test]
    fn a_holder_answer_or_an_envelope_without_an_answer_is_never_a_null_result() {
        let decode =
            |body: &[u8]| decode_reply::<serde_json::Value, Never>(JobLabel::default(), body);
        assert_eq!(
            decode(br#"{"v":1,"id":"a","ok":null}"#).ok(),
            Some(serde_json::Value::Null)
        );
        for nothing in [
            &br#"{"v":1,"id":"a"}"#[..],
            br#"{"v":1,"id":"a","fingerprint":"f"}"#,
            br#"{"v":1,"id":"a","holder":"b"}"#,
            br#"{"v":1,"id":"a","holder":"b","fingerprint":"f"}"#,
        ] {
            let read = decode(nothing);
            assert!(
                matches!(read, Err(CallError::Rpc(Error::Codec { .. }))),
                "{}: {read:?}",
                String::from_utf8_lossy(nothing)
            );
        }
        // A conflict names the key only (older workers also sent the holder,
        // which is not passed on).
        let conflict = br#"{"v":1,"id":"a","error":{"kind":"idempotency_conflict","message":"m","data":{"holder":"h","key":"k"}}}"#;
        let read = decode(conflict);
        assert!(
            matches!(&read, Err(CallError::Rpc(Error::IdempotencyConflict { key, .. })) if key == "k"),
            "{read:?}"
        );
        assert!(!format!("{read:?}").contains("\"h\""), "{read:?}");
    }
}
