//! What the new schema would do with one message of the backlog: the rules
//! of `rpc backlog-check`, apart from Redis and from printing.
//!
//! A message is rejected when it is
//!
//! * **unreadable**: not a job message a worker can decode
//!   ([`JobMessage::decode`] fails, or its protocol version is not spoken);
//! * an **unknown job**: its service is in the new schema but the job is not
//!   (or it names another service than the queue it is on);
//! * **invalid params**: its parameters do not validate against the new
//!   schema's request JSON Schema for the job, with the validator's reasons.
//!
//! The request schemas come from `rpc-codegen` (the same documents as
//! `rpc-codegen json-schema`). They are checked with a draft 7 validator,
//! which, unlike 2020-12, checks `contentEncoding: base64` (a `Bytes`
//! parameter). Integers are checked as serde reads them on the worker:
//! within their type's range (the schema's `minimum` and `maximum`), and
//! written without a fraction or exponent (`2.0` is an integer to JSON
//! Schema, but not to an `i64` field).

use std::collections::BTreeMap;
use std::path::Path;

use rpc_protocol::job::JobMessage;
use rpc_protocol::job::{NEWEST_VERSION, PROTOCOL_VERSION};
use serde::Serialize;
use serde_json::Value;

/// The new schema's jobs, per service, with a validator for each request.
pub struct NewSchema {
    services: BTreeMap<String, BTreeMap<String, jsonschema::Validator>>,
}

/// Why a message would be rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    Unreadable,
    UnknownJob,
    InvalidParams,
}

impl Rule {
    pub fn label(self) -> &'static str {
        match self {
            Rule::Unreadable => "unreadable",
            Rule::UnknownJob => "unknown job",
            Rule::InvalidParams => "invalid params",
        }
    }
}

/// One reason: where in the parameters (a JSON pointer, empty for the whole
/// message or the whole parameters object) and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub path: String,
    pub message: String,
}

/// The verdict on one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The job it names (`Service.job`); `None` when unreadable.
    pub job: Option<String>,
    /// Its call id; `None` when unreadable.
    pub call_id: Option<String>,
    /// Why it would be rejected; `None` if the new schema takes it.
    pub rejected: Option<(Rule, Vec<Reason>)>,
}

impl NewSchema {
    /// Loads a schema file and its imports, validated as `rpc-codegen check`
    /// does; on error, the diagnostics as text.
    pub fn load(path: &Path) -> Result<NewSchema, String> {
        let jobs = rpc_codegen::Builder::new()
            .file(path)
            .json_schema()
            .map_err(|diagnostics| diagnostics.to_string())?;
        NewSchema::from_jobs(&jobs)
    }

    /// From `rpc-codegen`'s list of `{service, job, request, ...}`.
    fn from_jobs(jobs: &Value) -> Result<NewSchema, String> {
        let mut services: BTreeMap<String, BTreeMap<String, jsonschema::Validator>> =
            BTreeMap::new();
        for entry in jobs.as_array().into_iter().flatten() {
            let (Some(service), Some(job), Some(request)) = (
                entry["service"].as_str(),
                entry["job"].as_str(),
                entry.get("request"),
            ) else {
                return Err(format!(
                    "rpc-codegen gave a job entry without its names: {entry}"
                ));
            };
            let validator = jsonschema::draft7::options()
                .with_keyword(SERDE_INTEGER, |_, _, _| Ok(Box::new(SerdeInteger)))
                .build(&for_the_worker(request.clone()))
                .map_err(|e| {
                    format!("the request schema of {service}.{job} does not compile: {e}")
                })?;
            services
                .entry(service.to_owned())
                .or_default()
                .insert(job.to_owned(), validator);
        }
        Ok(NewSchema { services })
    }

    /// The schema's services, by wire name, sorted.
    pub fn services(&self) -> impl Iterator<Item = &str> {
        self.services.keys().map(String::as_str)
    }

    /// What the new schema's workers of `service` would do with `payload`,
    /// a message found on that service's queue or dead-letter stream.
    pub fn judge(&self, service: &str, payload: &[u8]) -> Verdict {
        let reject =
            |job: Option<String>, call_id: Option<String>, rule, message: String| Verdict {
                job,
                call_id,
                rejected: Some((
                    rule,
                    vec![Reason {
                        path: String::new(),
                        message,
                    }],
                )),
            };
        let msg = match JobMessage::decode(payload) {
            Ok(msg) => msg,
            Err(refused) => return reject(None, None, Rule::Unreadable, refused.0),
        };
        let job = Some(msg.job.to_string());
        let call_id = Some(msg.id.to_string());
        // The versions a worker speaks: 2 is a call with lifecycle fields
        // (a delay, an idempotency key), as `rpc call --delay` sends.
        if !(PROTOCOL_VERSION..=NEWEST_VERSION).contains(&msg.v) {
            return reject(
                job,
                call_id,
                Rule::Unreadable,
                format!(
                    "protocol version {} is not spoken here (workers speak {PROTOCOL_VERSION} to {NEWEST_VERSION})",
                    msg.v
                ),
            );
        }
        let (named_service, name) = msg.job.split_once('.').unwrap_or(("", &msg.job));
        if named_service != service {
            let message =
                format!("it names service `{named_service}` but is on the queue of `{service}`");
            return reject(job, call_id, Rule::UnknownJob, message);
        }
        let Some(validator) = self.services.get(service).and_then(|jobs| jobs.get(name)) else {
            let message = format!("the new schema has no job `{name}` in service `{service}`");
            return reject(job, call_id, Rule::UnknownJob, message);
        };
        let params: Value = match serde_json::from_str(msg.params.get()) {
            Ok(params) => params,
            Err(e) => return reject(job, call_id, Rule::InvalidParams, e.to_string()),
        };
        let reasons: Vec<Reason> = validator
            .iter_errors(&params)
            .map(|error| Reason {
                path: error.instance_path().to_string(),
                message: error.to_string(),
            })
            .collect();
        Verdict {
            job,
            call_id,
            rejected: (!reasons.is_empty()).then_some((Rule::InvalidParams, reasons)),
        }
    }
}

/// A request schema as the draft 7 validator should read it: without the
/// 2020-12 `$schema` (which would override the draft), and with the one
/// integer rule of serde's that JSON Schema cannot say, [`SERDE_INTEGER`],
/// on every integer. (Each integer's range is in the schema itself.)
fn for_the_worker(mut schema: Value) -> Value {
    if let Value::Object(map) = &mut schema {
        map.remove("$schema");
    }
    mark_integers(&mut schema);
    schema
}

fn mark_integers(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("integer")
                || map
                    .get("type")
                    .and_then(Value::as_array)
                    .is_some_and(|types| types.iter().any(|t| t == "integer"))
            {
                map.insert(SERDE_INTEGER.to_owned(), Value::Bool(true));
            }
            map.values_mut().for_each(mark_integers);
        }
        Value::Array(items) => items.iter_mut().for_each(mark_integers),
        _ => {}
    }
}

/// Our keyword on integer schemas: a number must be written as an integer.
const SERDE_INTEGER: &str = "x-serde-integer";

/// [`SERDE_INTEGER`]: serde_json reads `2.0` or `1e3` as a float, which an
/// integer field refuses, though JSON Schema's `integer` takes them.
struct SerdeInteger;

impl<'i> jsonschema::Keyword<'i> for SerdeInteger {
    fn validate(&self, instance: &'i Value) -> Result<(), jsonschema::ValidationError<'i>> {
        if self.is_valid(instance) {
            return Ok(());
        }
        Err(jsonschema::ValidationError::custom(format!(
            "{instance} is not written as an integer (no fraction, no exponent), \
             as the worker's integer field requires"
        )))
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        instance.as_number().is_none_or(|n| !n.is_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(text: &str) -> NewSchema {
        let jobs = rpc_codegen::Builder::new()
            .source("new.rpc", text)
            .json_schema()
            .unwrap_or_else(|d| panic!("{d}"));
        NewSchema::from_jobs(&jobs).expect("compiles")
    }

    fn message(job: &str, params: Value) -> Vec<u8> {
        json!({"v": 1, "id": "c1", "job": job, "params": params})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn a_valid_message_is_taken() {
        let s = schema("service S { fn add(a: i64, b: i64) -> i64; }");
        let v = s.judge("S", &message("S.add", json!({"a": 1, "b": 2})));
        assert_eq!(v.rejected, None);
        assert_eq!(v.job.as_deref(), Some("S.add"));
        assert_eq!(v.call_id.as_deref(), Some("c1"));
    }

    #[test]
    fn each_rule_rejects_with_its_reason() {
        let s = schema("service S { fn add(a: i32, b: i64, c: Option<Bytes>) -> i64; }");
        let rule = |payload: &[u8]| s.judge("S", payload).rejected.expect("rejected");

        let (r, why) = rule(b"[1, 2]");
        assert_eq!(r, Rule::Unreadable);
        assert!(why[0].message.contains("JSON object"), "{why:?}");
        // A version no worker speaks is unreadable; 2 (a delayed or keyed
        // call) is spoken, and judged by its params.
        let (r, why) = rule(br#"{"v": 3, "id": "x", "job": "S.add", "params": {}}"#);
        assert_eq!(r, Rule::Unreadable);
        assert!(why[0].message.contains("version 3"), "{why:?}");
        let (r, _) = rule(br#"{"v": 2, "id": "x", "job": "S.add", "params": {}}"#);
        assert_eq!(r, Rule::InvalidParams);

        let (r, why) = rule(&message("S.sub", json!({})));
        assert_eq!(r, Rule::UnknownJob);
        assert!(why[0].message.contains("no job `sub`"), "{why:?}");
        let (r, _) = rule(&message("T.add", json!({"a": 1, "b": 2})));
        assert_eq!(r, Rule::UnknownJob);

        // A float where an integer is wanted, even one JSON Schema calls integral.
        let (r, why) = rule(&message("S.add", json!({"a": 2.0, "b": 1e3})));
        assert_eq!(r, Rule::InvalidParams);
        let paths: Vec<&str> = why.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(paths, ["/a", "/b"], "{why:?}");
        assert!(
            why[0].message.contains("2.0 is not written as an integer"),
            "{why:?}"
        );

        // Missing `b`, `a` past i32, `c` not base64: one reason each.
        let (r, why) = rule(&message("S.add", json!({"a": 1u64 << 40, "c": "%%"})));
        assert_eq!(r, Rule::InvalidParams);
        let mut paths: Vec<&str> = why.iter().map(|w| w.path.as_str()).collect();
        paths.sort();
        assert_eq!(paths, ["", "/a", "/c"], "{why:?}");
        assert!(
            why.iter()
                .any(|w| w.message.contains("\"b\" is a required")),
            "{why:?}"
        );
    }
}
