//! Writing an outgoing job message in one pass, the keys as literals.
//!
//! A client writes a job message per call, and through serde's derive
//! that costs more than everything else it does with the message:
//! serde_json escapes every key and every string of the envelope byte by
//! byte (sixteen strings a call), although the keys are constants and the
//! values (ids, job names, inbox keys) almost never hold a byte that needs
//! escaping. [`OutgoingJob::write_json`] writes the keys as they are,
//! copies a value that needs no escaping, and leaves everything else (the
//! parameters, the metadata, any value that does need escaping) to
//! serde_json. Its output is byte for byte the derive's, which stays the
//! reference: the tests below check the two agree on any message.
//!
//! The parameters are written by [`WriteParams`], which any `Serialize`
//! value is: a sender that erases their type (a call built now, sent
//! later) keeps them as `Box<dyn WriteParams>` and serializes them once,
//! straight into the message.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::job::OutgoingJob;
use crate::json_text::{needs_no_escape, write_str};

/// A job's parameters, which write themselves into a message as JSON.
pub trait WriteParams {
    /// Appends the parameters as JSON to `out`.
    fn write_params(&self, out: &mut Vec<u8>) -> serde_json::Result<()>;
}

impl<T: Serialize> WriteParams for T {
    fn write_params(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(out, self)
    }
}

impl WriteParams for RawValue {
    fn write_params(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(self.get().as_bytes());
        Ok(())
    }
}

impl<P: WriteParams + ?Sized> OutgoingJob<'_, P> {
    /// Appends the message as JSON to `out`: the same bytes as
    /// `serde_json::to_writer(out, self)`, written faster. Fails only
    /// when the parameters fail to serialize.
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"v\":");
        write_u64(out, self.v.into());
        out.extend_from_slice(b",\"id\":");
        write_str(out, self.id)?;
        out.extend_from_slice(b",\"job\":");
        if needs_no_escape(self.job.service) && needs_no_escape(self.job.job) {
            out.push(b'"');
            out.extend_from_slice(self.job.service.as_bytes());
            out.push(b'.');
            out.extend_from_slice(self.job.job.as_bytes());
            out.push(b'"');
        } else {
            serde_json::to_writer(&mut *out, &self.job)?;
        }
        out.extend_from_slice(b",\"params\":");
        self.params.write_params(out)?;
        if let Some(reply_to) = self.reply_to {
            out.extend_from_slice(b",\"reply_to\":");
            write_str(out, reply_to)?;
        }
        optional_u64(out, b",\"deadline_ms\":", self.deadline_ms);
        optional_u64(out, b",\"timeout_ms\":", self.timeout_ms);
        out.extend_from_slice(b",\"attempt\":");
        write_u64(out, self.attempt.into());
        optional_u64(out, b",\"max_attempts\":", self.max_attempts.map(u64::from));
        if self.result_ttl_ms != 0 {
            out.extend_from_slice(b",\"result_ttl_ms\":");
            write_u64(out, self.result_ttl_ms);
        }
        if !self.meta.is_empty() {
            out.extend_from_slice(b",\"meta\":");
            serde_json::to_writer(&mut *out, self.meta)?;
        }
        optional_u64(out, b",\"sent_ms\":", self.sent_ms);
        optional_u64(out, b",\"run_at_ms\":", self.run_at_ms);
        if let Some(key) = self.idempotency_key {
            out.extend_from_slice(b",\"idempotency_key\":");
            write_str(out, key)?;
        }
        optional_u64(out, b",\"idempotency_ttl_ms\":", self.idempotency_ttl_ms);
        if let Some(group) = self.group {
            out.extend_from_slice(b",\"group\":");
            write_str(out, group)?;
        }
        optional_u64(
            out,
            b",\"priority\":",
            self.priority
                .filter(|p| *p != crate::priority::DEFAULT)
                .map(u64::from),
        );
        out.push(b'}');
        Ok(())
    }
}

fn write_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn optional_u64(out: &mut Vec<u8>, key: &[u8], n: Option<u64>) {
    if let Some(n) = n {
        out.extend_from_slice(key);
        write_u64(out, n);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use crate::job::{JobName, OutgoingJob};

    /// Strings that need escaping as often as strings that do not.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9:{}._-]{0,40}",
            "[a-z\"\\\\\u{0}-\u{1f}\u{7f}é☃{}]{0,12}",
            any::<String>(),
        ]
    }

    #[allow(clippy::type_complexity)]
    fn message() -> impl Strategy<
        Value = (
            u32,
            [String; 4],
            Option<String>,
            [Option<u64>; 5],
            (u32, Option<u32>, u64),
            BTreeMap<String, String>,
            Option<String>,
        ),
    > {
        (
            any::<u32>(),
            [text(), text(), text(), text()],
            proptest::option::of(text()),
            [
                proptest::option::of(any::<u64>()),
                proptest::option::of(any::<u64>()),
                proptest::option::of(any::<u64>()),
                proptest::option::of(any::<u64>()),
                proptest::option::of(any::<u64>()),
            ],
            (
                any::<u32>(),
                proptest::option::of(any::<u32>()),
                prop_oneof![Just(0u64), any::<u64>()],
            ),
            proptest::collection::btree_map(text(), text(), 0..3),
            proptest::option::of(text()),
        )
    }

    proptest! {
        #[test]
        fn writes_what_the_derive_writes(
            (v, [id, service, job, param], reply_to, times, (attempt, max_attempts, ttl), meta, key)
                in message()
        ) {
            let params = serde_json::json!({ "a": param, "n": v });
            let raw = serde_json::value::to_raw_value(&params).unwrap();
            let [deadline_ms, timeout_ms, sent_ms, run_at_ms, idempotency_ttl_ms] = times;
            let message = OutgoingJob {
                v,
                id: &id,
                job: JobName { service: &service, job: &job },
                params: &*raw,
                reply_to: reply_to.as_deref(),
                deadline_ms,
                timeout_ms,
                attempt,
                max_attempts,
                result_ttl_ms: ttl,
                meta: &meta,
                sent_ms,
                run_at_ms,
                idempotency_key: key.as_deref(),
                idempotency_ttl_ms,
                group: key.as_deref(),
                priority: None,
            };
            let mut written = Vec::new();
            message.write_json(&mut written).unwrap();
            prop_assert_eq!(
                String::from_utf8(written).unwrap(),
                serde_json::to_string(&message).unwrap()
            );
        }
    }

    /// A message with `params` and nothing optional set.
    fn bare<'a, P: ?Sized>(
        params: &'a P,
        meta: &'a BTreeMap<String, String>,
    ) -> OutgoingJob<'a, P> {
        OutgoingJob {
            v: 1,
            id: "x",
            job: JobName {
                service: "S",
                job: "j",
            },
            params,
            reply_to: None,
            deadline_ms: None,
            timeout_ms: None,
            attempt: 1,
            max_attempts: None,
            result_ttl_ms: 0,
            meta,
            sent_ms: None,
            run_at_ms: None,
            idempotency_key: None,
            idempotency_ttl_ms: None,
            group: None,
            priority: None,
        }
    }

    #[test]
    fn parameters_that_fail_to_serialize_fail_the_write() {
        let meta = BTreeMap::new();
        // A map with non-string keys cannot be a JSON object.
        let params = BTreeMap::from([((1, 2), 3)]);
        let message = bare(&params, &meta);
        assert!(message.write_json(&mut Vec::new()).is_err());
    }

    #[test]
    fn erased_parameters_write_what_their_value_serializes_to() {
        use crate::WriteParams;
        let meta = BTreeMap::new();
        let value = serde_json::json!({"a": "x\"y", "b": [1, 2.5, null]});
        let erased: Box<dyn WriteParams + Send + Sync> = Box::new(value.clone());
        let message = |params: &dyn WriteParams| {
            let mut out = Vec::new();
            bare(params, &meta).write_json(&mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        let expected = format!(r#"{{"v":1,"id":"x","job":"S.j","params":{value},"attempt":1}}"#);
        assert_eq!(message(&*erased), expected);
        let raw = serde_json::value::to_raw_value(&value).unwrap();
        assert_eq!(message(&raw), expected);
    }
}
