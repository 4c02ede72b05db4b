//! `rpc-codegen asyncapi`: the document of every schema in `schema/` is
//! valid against the official AsyncAPI 3.0.0 JSON Schema (vendored under
//! `tests/data/asyncapi/`), every reference in it resolves, and the
//! calculator's document is pinned by a snapshot.

use std::path::{Path, PathBuf};

use serde_json::Value;

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema")
}

fn document(file: &str) -> Value {
    rpc_codegen::Builder::new()
        .file(schema_dir().join(file))
        .asyncapi("1.0.0")
        .unwrap_or_else(|d| panic!("{file} compiles:\n{d}"))
}

fn asyncapi_validator() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/asyncapi/asyncapi-3.0.0.schema.json");
    let text = std::fs::read_to_string(&path).expect("the vendored AsyncAPI schema");
    let schema: Value = serde_json::from_str(&text).expect("valid JSON");
    jsonschema::draft7::new(&schema).expect("the AsyncAPI schema compiles")
}

/// The value a local `$ref` (`#/a/b`) points at, if any.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// Every `$ref` string in `value`.
fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                match (key.as_str(), item) {
                    ("$ref", Value::String(target)) => out.push(target.clone()),
                    _ => references(item, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, out)),
        _ => {}
    }
}

#[test]
fn every_schema_gives_a_valid_asyncapi_3_document() {
    // The official JSON Schema accepts the document of each file in schema/.
    let validator = asyncapi_validator();
    for file in ["calculator.rpc", "everything.rpc", "common.rpc"] {
        let doc = document(file);
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{file}: {errors:#?}");
    }
}

#[test]
fn the_validator_refuses_a_broken_document() {
    // Guards the test above: a document the spec forbids is caught.
    let validator = asyncapi_validator();
    let mut doc = document("calculator.rpc");
    doc["operations"]["Calculator.add.send"]["action"] = "publish".into();
    assert!(!validator.is_valid(&doc));
    let mut doc = document("calculator.rpc");
    doc["asyncapi"] = "2.6.0".into();
    assert!(!validator.is_valid(&doc));
}

#[test]
fn every_reference_resolves_inside_the_document() {
    // Channels, messages, operations and payload schemas point at things that exist.
    let doc = document("everything.rpc");
    let mut found = Vec::new();
    references(&doc, &mut found);
    assert!(found.len() > 50, "{}", found.len());
    for target in found {
        assert!(resolve(&doc, &target).is_some(), "dangling $ref {target}");
    }
}

#[test]
fn operations_send_and_receive_every_job_with_replies_where_jobs_answer() {
    // Clients send, workers receive; one-way jobs have no reply, the others reply to the inbox.
    let doc = document("calculator.rpc");
    let operations = doc["operations"].as_object().expect("operations");
    let mut names: Vec<&str> = operations.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "Calculator.add.receive",
            "Calculator.add.send",
            "Calculator.divide.receive",
            "Calculator.divide.send",
            "Calculator.log.receive",
            "Calculator.log.send",
            "Calculator.sum.receive",
            "Calculator.sum.send"
        ]
    );
    assert!(operations["Calculator.log.send"].get("reply").is_none());
    let reply = &operations["Calculator.divide.send"]["reply"];
    assert_eq!(reply["address"]["location"], "$message.payload#/reply_to");
    assert_eq!(reply["channel"]["$ref"], "#/channels/inbox");
    let message = resolve(&doc, "#/components/messages/Calculator.divide.reply").expect("reply");
    let error = &message["payload"]["allOf"][1]["properties"]["error"]["properties"]["data"];
    assert_eq!(error["allOf"][0]["$ref"], "#/components/schemas/MathError");
}

#[test]
fn a_job_message_payload_accepts_what_a_client_sends() {
    // The payload schema of `Calculator.add`, with its components, accepts the PROTOCOL.md example and refuses a bad one.
    let doc = document("calculator.rpc");
    let mut payload = doc["components"]["messages"]["Calculator.add"]["payload"].clone();
    payload["components"] = doc["components"].clone();
    let validator = jsonschema::draft7::new(&payload).expect("the payload is a schema");
    let good = serde_json::json!({"v": 1, "id": "3f2a", "job": "Calculator.add",
        "params": {"a": 1, "b": 2}, "reply_to": "rpc:inbox:{9c1e}", "attempt": 1});
    assert!(validator.is_valid(&good));
    for bad in [
        serde_json::json!({"v": 1, "id": "3f2a", "job": "Calculator.add", "params": {"a": 1}}),
        serde_json::json!({"v": 1, "id": "3f2a", "job": "Calculator.sum", "params": {"a": 1, "b": 2}}),
        serde_json::json!({"v": 1, "id": "3f2a", "job": "Calculator.add", "params": {"a": "1", "b": 2}}),
    ] {
        assert!(!validator.is_valid(&bad), "{bad}");
    }
}

#[test]
fn calculator_asyncapi_snapshot() {
    // Review changes to the published contract like changes to generated code.
    let text = serde_json::to_string_pretty(&document("calculator.rpc")).expect("JSON");
    insta::assert_snapshot!("asyncapi_calculator", text);
}
