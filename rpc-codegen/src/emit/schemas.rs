//! `json_schemas()`: the JSON Schema of every job's request, response and
//! error in the module, embedded as the JSON [`crate::json_schema`] computes
//! from the model: the same documents `rpc-codegen json-schema` prints, the
//! backlog check and the dashboard read, so the compiled service and the
//! tools cannot disagree.
//!
//! Each document is whole (its named types under `$defs`), so a type used by
//! many jobs is in many documents: written out as they are, 200 jobs over
//! a chain of 200 types made a generated file of two million lines. The
//! embedded text is therefore packed: every distinct `$defs` entry once, in
//! `defs`, and each document's `$defs` the list of its entries' positions
//! there. `rpc_runtime::__private::job_schemas` unpacks it, mechanically
//! (it knows nothing of JSON Schema), into exactly the documents above.
//!
//! One entry or job a line, in a raw string literal: the generated file
//! stays readable, and a changed type is a changed line in its snapshot.

use std::collections::HashMap;

use proc_macro2::{Literal, TokenStream};
use quote::quote;
use serde_json::{Map, Value};

use crate::json_schema::{module_docs, Def, Doc, JobDocs, Shared};
use crate::model::{ModuleId, Schema, TypeRef};

pub(crate) fn json_schemas(schema: &Schema, id: ModuleId) -> TokenStream {
    let shared = Shared::new(schema);
    let literal = raw_string(&packed(&module_docs(schema, &shared, id), &shared));
    quote! {
        /// JSON Schemas of every job's request, response and error in this module.
        pub fn json_schemas() -> Vec<::rpc_runtime::JobSchema> {
            ::rpc_runtime::__private::job_schemas(#literal)
        }
    }
}

/// The documents of `jobs` as `{"defs": [[name, schema], ...], "jobs":
/// [...]}`, each document's `$defs` the positions of its entries in `defs`.
fn packed(jobs: &[JobDocs], shared: &Shared) -> String {
    let mut defs = Defs::default();
    let jobs: Vec<Value> = jobs
        .iter()
        .map(|job| {
            let mut entry = Map::new();
            entry.insert("service".into(), job.service.clone().into());
            entry.insert("job".into(), job.job.clone().into());
            entry.insert("request".into(), defs.pack(&job.request, shared));
            entry.insert("response".into(), defs.pack(&job.response, shared));
            if let Some(error) = &job.error {
                entry.insert("error".into(), defs.pack(error, shared));
            }
            Value::Object(entry)
        })
        .collect();
    let mut text = String::from("{\n\"defs\": [");
    lines(
        &mut text,
        defs.entries
            .into_iter()
            .map(|(name, schema)| Value::Array(vec![Value::String(name), schema])),
    );
    text.push_str("\n],\n\"jobs\": [");
    lines(&mut text, jobs.into_iter());
    text.push_str("\n]\n}");
    text
}

/// Each value on a line of its own, comma-separated.
fn lines(text: &mut String, values: impl Iterator<Item = Value>) {
    for (i, value) in values.enumerate() {
        text.push_str(if i == 0 { "\n" } else { ",\n" });
        text.push_str(&value.to_string());
    }
}

/// The distinct `$defs` entries met so far, in order of first use.
#[derive(Default)]
struct Defs {
    entries: Vec<(String, Value)>,
    index: HashMap<Key, usize>,
}

/// What makes two entries one: a schema [`Shared`] built is one by its
/// type; a document's own, by its text.
#[derive(PartialEq, Eq, Hash)]
enum Key {
    Shared(String, TypeRef),
    Own(String, String),
}

impl Defs {
    /// `document` with its `$defs` as positions in the table.
    fn pack(&mut self, document: &Doc, shared: &Shared) -> Value {
        let mut out = document.body.clone();
        if !document.defs.is_empty() {
            let positions = document
                .defs
                .iter()
                .map(|(name, def)| {
                    let key = match def {
                        Def::Shared(r) => Key::Shared(name.clone(), *r),
                        Def::Own(schema) => Key::Own(name.clone(), schema.to_string()),
                    };
                    let next = self.entries.len();
                    let position = *self.index.entry(key).or_insert(next);
                    if position == next {
                        self.entries
                            .push((name.clone(), def.schema(shared).clone()));
                    }
                    Value::from(position)
                })
                .collect();
            out.insert("$defs".into(), Value::Array(positions));
        }
        Value::Object(out)
    }
}

/// `text` as a raw string literal, with as many `#` as it needs to hold any
/// `"#...` inside it (`"$ref": "#"` is common); an escaped string literal if
/// the raw one does not lex (it always does: JSON text has no bare `\r`).
fn raw_string(text: &str) -> Literal {
    let hashes = "#".repeat(longest_hash_run_after_quote(text) + 1);
    format!("r{hashes}\"{text}\"{hashes}")
        .parse()
        .unwrap_or_else(|_| Literal::string(text))
}

/// The longest run of `#` right after a `"` in `text` (0 if none).
fn longest_hash_run_after_quote(text: &str) -> usize {
    text.split('"')
        .skip(1)
        .map(|after| after.bytes().take_while(|&b| b == b'#').count())
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reproduces a generated file of two million lines: 200 jobs over a
    /// chain of types wrote each type into every job's documents. A type
    /// now appears once, however many jobs use it.
    #[test]
    fn a_type_many_jobs_use_is_embedded_once() {
        let mut text = String::from(
            "struct Deep { note: String }\nstruct Shared { deep: Deep }\nservice S {\n",
        );
        for i in 0..50 {
            text.push_str(&format!("    fn job{i}(a: Shared) -> Shared;\n"));
        }
        text.push_str("}\n");
        let files = crate::Builder::new()
            .source("many.rpc", text)
            .generate()
            .expect("a valid schema");
        let code = &files[0].code;
        assert_eq!(code.matches(r#"["Deep","#).count(), 1, "{code}");
        assert_eq!(code.matches(r#"["Shared","#).count(), 1, "{code}");
        // One line per job and per distinct entry, and seven more.
        let embedded = code
            .split("job_schemas(")
            .nth(1)
            .and_then(|rest| rest.split("\"##").next())
            .expect("the embedded text");
        let starting = |prefix| embedded.lines().filter(|l| l.starts_with(prefix)).count();
        assert_eq!(starting("[\""), 2, "{embedded}");
        assert_eq!(starting("{\"job\""), 50, "{embedded}");
        assert_eq!(embedded.lines().count(), 50 + 2 + 7, "{embedded}");
    }

    /// A raw string must end at its own closing delimiter, not at a `"#`
    /// inside the JSON it holds.
    #[test]
    fn raw_strings_hold_quotes_followed_by_hashes() {
        for text in ["", "plain", r##"{"$ref": "#"}"##, r###"a "## b "# c"###] {
            let literal = raw_string(text).to_string();
            let parsed: syn::LitStr = syn::parse_str(&literal).expect("a string literal");
            assert_eq!(parsed.value(), text, "{literal}");
            assert!(literal.starts_with('r'), "{literal}");
        }
    }
}
