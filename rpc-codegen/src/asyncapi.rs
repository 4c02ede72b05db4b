//! The wire contract as an AsyncAPI 3.0 document (`rpc-codegen asyncapi`).
//!
//! Tools outside Rust (documentation sites, code generators for other
//! languages, contract tests) read AsyncAPI, so the schema's services are
//! published as one: a channel per service's jobs stream
//! (`P:{Service}:jobs`) and one for the clients' reply inboxes
//! (`P:inbox:{client}`), a message per job (the whole job message of
//! docs/PROTOCOL.md, its `params` typed by the job's parameters) and per
//! reply, and for each job a `send` operation (clients) and a `receive`
//! operation (workers), with a reply for jobs that answer. Payload schemas
//! come from the model, like `json-schema`'s, with named types under
//! `components/schemas` so every message shares them.

use rpc_protocol::Keys;
use serde_json::{json, Map, Value};

use crate::json_schema::{description, Gen};
use crate::model::{Job, Returns, Schema, Service, Ty};

/// The AsyncAPI document of the services of the requested files.
pub fn document(schema: &Schema, api_version: &str) -> Value {
    let mut gen = Gen::for_components(schema);
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    let mut replies = Map::new();
    let mut docs = Vec::new();
    let mut title = String::new();

    for &id in &schema.roots {
        let module = schema.module(id);
        if title.is_empty() {
            title = module.out_stem.clone();
        }
        docs.extend(module.docs.iter().map(|l| l.trim().to_string()));
        for service in &module.services {
            let channel_id = format!("{}.jobs", key(&service.wire));
            let mut channel_messages = Map::new();
            for job in &service.jobs {
                let message_id = key(&format!("{}.{}", service.wire, job.wire));
                messages.insert(message_id.clone(), job_message(&mut gen, service, job));
                channel_messages.insert(
                    message_id.clone(),
                    reference("components/messages", &message_id),
                );
                let reply_id = format!("{message_id}.reply");
                let reply = reply_message(&mut gen, service, job);
                if let Some(reply) = &reply {
                    messages.insert(reply_id.clone(), reply.clone());
                    replies.insert(
                        reply_id.clone(),
                        reference("components/messages", &reply_id),
                    );
                }
                for (action, who) in [("send", "Clients send"), ("receive", "Workers receive")] {
                    let mut operation = json!({
                        "action": action,
                        "channel": reference("channels", &channel_id),
                        "title": format!("{who} `{}.{}`", service.wire, job.wire),
                        "messages": [reference(&format!("channels/{channel_id}/messages"), &message_id)],
                    });
                    if let Some(text) = description(&job.docs) {
                        operation["description"] = text.into();
                    }
                    if reply.is_some() {
                        operation["reply"] = json!({
                            "address": {
                                "location": "$message.payload#/reply_to",
                                "description": "The caller's inbox list, named by the job message's `reply_to`."
                            },
                            "channel": reference("channels", "inbox"),
                            "messages": [reference("channels/inbox/messages", &reply_id)],
                        });
                    }
                    operations.insert(format!("{message_id}.{action}"), operation);
                }
            }
            let mut channel = json!({
                // The queue parameter is the hash tag, braces included.
                "address": Keys::new("{prefix}").jobs("queue"),
                "title": format!("Jobs of service `{}`", service.wire),
                "description": format!(
                    "The Redis stream `{jobs}`, every job of service `{0}`. Each \
                     entry has one field, `{field}`, holding the job message as JSON \
                     (`XADD {jobs} * {field} <json>`); workers read it in the consumer \
                     group `{group}`.",
                    service.wire,
                    jobs = Keys::new("P").jobs(&service.wire),
                    field = rpc_protocol::stream::MESSAGE,
                    group = rpc_protocol::stream::GROUP,
                ),
                "parameters": {
                    "prefix": prefix_parameter(),
                    "queue": {
                        "description": format!(
                            "The service name in braces, a Redis Cluster hash tag: the key is \
                             literally `{}` with the default prefix.",
                            Keys::new("rpc").jobs(&service.wire)
                        ),
                        "enum": [format!("{{{}}}", service.wire)],
                        "default": format!("{{{}}}", service.wire),
                    },
                },
                "messages": channel_messages,
            });
            if let Some(text) = description(&service.docs) {
                channel["summary"] = text.into();
            }
            channels.insert(channel_id, channel);
        }
    }
    channels.insert(
        "inbox".into(),
        json!({
            "address": Keys::new("{prefix}").inbox("client"),
            "title": "A client's reply inbox",
            "description": format!("A Redis list per client process: workers `RPUSH` each reply (and \
                `PEXPIRE` the list), the client pops them with `BLMPOP`/`BLPOP` and routes \
                them to waiting calls by `id`. The job message's `reply_to` is this key. A \
                reply kept with `result_ttl_ms` is also stored as the string \
                `{}`.", Keys::new("P").result("id")),
            "parameters": {
                "prefix": prefix_parameter(),
                "client": {
                    "description": "The client's id in braces (a hash tag), e.g. `{9c1e...}`."
                },
            },
            "messages": replies,
        }),
    );

    let mut schemas = envelope_schemas();
    schemas.extend(gen.into_defs());
    let mut info = json!({ "title": title, "version": api_version });
    let mut about = docs.join("\n").trim().to_string();
    if !about.is_empty() {
        about.push_str("\n\n");
    }
    about.push_str(
        "Typed jobs over Redis queues, wire protocol version 1 (rpc-runtime's \
         docs/PROTOCOL.md): parameters travel as one JSON object keyed by name.",
    );
    info["description"] = about.into();
    json!({
        "asyncapi": "3.0.0",
        "info": info,
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": schemas,
            "messages": messages,
        },
    })
}

/// The job message of one job: the envelope, its `job` and its `params`.
fn job_message(gen: &mut Gen, service: &Service, job: &Job) -> Value {
    let name = format!("{}.{}", service.wire, job.wire);
    let mut message = json!({
        "name": name,
        "title": format!("Job `{name}`"),
        "contentType": "application/json",
        "payload": {
            "allOf": [
                reference("components/schemas", "rpc.JobMessage"),
                {
                    "type": "object",
                    "required": ["job", "params"],
                    "properties": {
                        "job": {"const": name},
                        "params": gen.params(&job.params),
                    },
                },
            ],
        },
    });
    if let Some(text) = description(&job.docs) {
        message["description"] = text.into();
    }
    if job.deprecated.is_some() {
        message["deprecated"] = true.into();
    }
    message
}

/// The reply of a job that answers: `ok` typed by its result, `error.data`
/// by its application error. `None` for a one-way job.
fn reply_message(gen: &mut Gen, service: &Service, job: &Job) -> Option<Value> {
    let (ok, error): (&Ty, _) = match &job.returns {
        Returns::Nothing => return None,
        Returns::Value(ty) => (ty, None),
        Returns::Result { ok, err } => (ok, Some(*err)),
    };
    let mut properties = Map::new();
    properties.insert("ok".into(), gen.inline(ok));
    if let Some(err) = error {
        properties.insert(
            "error".into(),
            json!({
                "type": "object",
                "properties": {
                    "data": {
                        "description": "For `kind = \"app\"`: the job's application error.",
                        "allOf": [gen.inline(&Ty::Named(err))],
                    },
                },
            }),
        );
    }
    let name = format!("{}.{}", service.wire, job.wire);
    Some(json!({
        "name": format!("{name}.reply"),
        "title": format!("Reply to `{name}`"),
        "contentType": "application/json",
        "payload": {
            "allOf": [
                reference("components/schemas", "rpc.Reply"),
                {"type": "object", "properties": properties},
            ],
        },
    }))
}

/// The parts of every job message and reply, shared by all jobs. Their
/// names hold a dot, which no schema type name can, so they never clash.
fn envelope_schemas() -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(
        "rpc.JobMessage".into(),
        json!({
            "type": "object",
            "description": "A job message (client to worker). Unknown fields are ignored.",
            "required": ["v", "id", "job", "params"],
            "properties": {
                "v": {"enum": [1, 2], "description": "Protocol version: 2 for a message with `run_at_ms` or `idempotency_key` (older workers refuse it rather than run it early or twice)."},
                "id": {"type": "string", "minLength": 1, "description": "Unique call id (1 to 256 bytes); replies carry it back."},
                "job": {"type": "string", "description": "`Service.job`."},
                "params": {"type": "object", "description": "The parameters, keyed by name."},
                "reply_to": {"type": "string", "description": "The caller's inbox key; absent for one-way calls."},
                "deadline_ms": {"type": "integer", "minimum": 0, "description": "Absolute deadline, ms since the Unix epoch."},
                "attempt": {"type": "integer", "minimum": 1, "default": 1},
                "max_attempts": {"type": "integer", "minimum": 1},
                "result_ttl_ms": {"type": "integer", "minimum": 0, "default": 0, "description": format!("Keep the reply under `{}` this long.", Keys::new("P").result("id"))},
                "meta": {"type": "object", "additionalProperties": {"type": "string"}},
                "timeout_ms": {"type": "integer", "minimum": 0, "description": "Time left to the deadline when sent, measured on Redis's clock."},
                "sent_ms": {"type": "integer", "minimum": 0, "description": "When it was sent, ms since the Unix epoch on Redis's clock as the sender estimates it."},
                "run_at_ms": {"type": "integer", "minimum": 0, "description": "A delayed call: not to run before this time, ms since the Unix epoch on Redis's clock."},
                "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 200, "description": "Run at most once per key while the key is held."},
                "idempotency_ttl_ms": {"type": "integer", "minimum": 1, "description": "How long the key is held once claimed (default 1 h)."},
                "group": {"type": "string", "minLength": 1, "maxLength": 128, "description": "The call's group key (a tenant): at most the job's per-key limit of its calls with this key run at once, and keys take turns; older workers run it without the limit."},
            },
        }),
    );
    out.insert(
        "rpc.Reply".into(),
        json!({
            "type": "object",
            "description": "A reply (worker to client): exactly one of `ok`, `error` and `holder`.",
            "required": ["v", "id"],
            "properties": {
                "v": {"const": 1},
                "id": {"type": "string", "description": "The call id of the job message."},
                "fingerprint": {"type": "string", "description": "For a call with an idempotency key: the fingerprint of its job and parameters (on a holder answer: of the claim it matched). A caller that follows a holder takes the holder's kept result only when it carries the same fingerprint."},
                "ok": {"description": "The job's return value."},
                "error": reference("components/schemas", "rpc.Error"),
                "holder": {"type": "string", "description": "The call holding this call's idempotency key (same job and parameters): this call did not run; its answer is that call's kept result, when that carries this reply's fingerprint."},
            },
        }),
    );
    out.insert(
        "rpc.Error".into(),
        json!({
            "type": "object",
            "required": ["kind", "message"],
            "properties": {
                "kind": {
                    "type": "string",
                    "description": "Readers map kinds they do not know to \"unknown\".",
                    "examples": ["app", "handler", "unknown_job", "bad_request", "deadline_exceeded", "dead_lettered", "cancelled", "idempotency_conflict"],
                },
                "message": {"type": "string"},
                "data": {"description": "For `kind = \"app\"`: the application error; for `idempotency_conflict`: `{\"key\"}`."},
            },
        }),
    );
    out
}

fn prefix_parameter() -> Value {
    json!({
        "description": "The key prefix shared by an application's clients and workers.",
        "default": "rpc",
    })
}

/// `{"$ref": "#/<base>/<name>"}`.
fn reference(base: &str, name: &str) -> Value {
    json!({ "$ref": format!("#/{base}/{name}") })
}

/// A wire name made safe as an AsyncAPI key and JSON pointer segment.
fn key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}
