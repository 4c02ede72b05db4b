//! The job schemas a generated module embeds, unpacked.
//!
//! rpc-codegen computes every job's JSON Schemas from the schema file (the
//! documents `rpc-codegen json-schema` prints) and embeds them in the
//! generated `json_schemas()` packed: each distinct `$defs` entry once, in
//! `defs`, and each document's `$defs` a list of positions in it (whole
//! documents repeat every shared type once per job). This puts the entries
//! back, and nothing else: it knows nothing of JSON Schema, so the documents
//! served at run time are exactly the ones the tools read.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::call::JobSchema;

/// `{"defs": [[name, schema], ...], "jobs": [JobSchema, ...]}`.
#[derive(Deserialize)]
struct Packed {
    defs: Vec<(String, Value)>,
    jobs: Vec<JobSchema>,
}

/// The documents of the packed `text`. The text is rpc-codegen's, compiled
/// into the program, never read from a peer: text that does not unpack is
/// a codegen bug, and panics saying so.
pub(crate) fn unpack(text: &str) -> Vec<JobSchema> {
    let Packed { defs, mut jobs } = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("rpc-codegen embedded job schemas that do not read: {e}"));
    for job in &mut jobs {
        let documents = [&mut job.request, &mut job.response]
            .into_iter()
            .chain(job.error.as_mut());
        for document in documents {
            put_back_defs(document, &defs);
        }
    }
    jobs
}

fn put_back_defs(document: &mut Value, defs: &[(String, Value)]) {
    let Some(Value::Array(positions)) = document.get("$defs") else {
        return;
    };
    let entries: Map<String, Value> = positions
        .iter()
        .map(|position| {
            position
                .as_u64()
                .and_then(|p| defs.get(usize::try_from(p).ok()?))
                .cloned()
                .unwrap_or_else(|| {
                    panic!(
                        "rpc-codegen embedded a $defs position {position} past its {} entries",
                        defs.len()
                    )
                })
        })
        .collect();
    document["$defs"] = Value::Object(entries);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shared_entries_are_put_back_into_every_document_that_names_them() {
        let text = r##"{
"defs": [
["Point", {"type": "object"}],
["Bytes", {"type": "string"}]
],
"jobs": [
{"service": "S", "job": "a", "request": {"title": "A", "$defs": [0, 1]}, "response": {"type": "null"}},
{"service": "S", "job": "b", "request": {"title": "B"}, "response": {"$ref": "#/$defs/Point", "$defs": [0]}, "error": {"$defs": []}}
]
}"##;
        let jobs = unpack(text);
        assert_eq!(
            jobs[0].request,
            json!({"title": "A", "$defs": {"Point": {"type": "object"}, "Bytes": {"type": "string"}}})
        );
        assert_eq!(jobs[0].response, json!({"type": "null"}));
        assert_eq!(jobs[0].error, None);
        assert_eq!(jobs[1].request, json!({"title": "B"}));
        assert_eq!(
            jobs[1].response,
            json!({"$ref": "#/$defs/Point", "$defs": {"Point": {"type": "object"}}})
        );
        assert_eq!(jobs[1].error, Some(json!({"$defs": {}})));
    }

    #[test]
    #[should_panic(expected = "rpc-codegen embedded a $defs position 2 past its 1 entries")]
    fn a_position_past_the_table_is_a_codegen_bug() {
        unpack(
            r#"{"defs": [["A", true]], "jobs": [{"service": "S", "job": "a", "request": {"$defs": [2]}, "response": true}]}"#,
        );
    }
}
