//! The jobs the dashboard knows the schema of (`--schema FILE.rpc`), with
//! their JSON Schemas compiled for checking messages and replies.
//!
//! The schemas come from `rpc-codegen`'s model (the same documents as
//! `rpc-codegen json-schema FILE`), so the dashboard needs no compiled
//! types: it can show and check the messages of any service whose schema
//! file it is given. Field types are shown in the schema language's own
//! words (`i64`, `Vec<Tagged>`, `Option<String>`), read back from the JSON
//! Schema.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

/// What is wrong with a value, by where it is (`/a`, or empty for the whole).
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// JSON pointer into the value (`/values/0/value`), empty for the value itself.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// One parameter of a job, as its schema describes it.
#[derive(Debug, Clone)]
pub struct FieldDoc {
    pub name: String,
    /// The type in the schema language (`i64`, `Option<String>`).
    pub type_label: String,
    pub description: Option<String>,
    pub required: bool,
    /// The parameter's own JSON Schema (`$ref`s point into the request's `$defs`).
    pub schema: Value,
}

/// One job's schemas, compiled.
pub struct JobSchemas {
    pub service: String,
    pub job: String,
    pub fields: Vec<FieldDoc>,
    /// The answer's fields, when the job returns a struct.
    pub reply_fields: Vec<FieldDoc>,
    /// The type of the answer (`f64`, `nothing` for one-way jobs).
    pub returns: String,
    /// The typed application error, for `Result<T, E>` jobs.
    pub error_type: Option<String>,
    /// The job's doc comment (`///` above its `fn`).
    pub description: Option<String>,
    /// Whether the schema marks the job `#[deprecated]`.
    pub deprecated: bool,
    request: jsonschema::Validator,
    response: jsonschema::Validator,
    error: Option<jsonschema::Validator>,
}

impl JobSchemas {
    /// `Service.job`.
    pub fn name(&self) -> String {
        format!("{}.{}", self.service, self.job)
    }

    /// What in `params` does not match the job's parameters.
    pub fn check_params(&self, params: &Value) -> Vec<Problem> {
        problems(&self.request, params)
    }

    /// What in a successful answer does not match the job's return type.
    pub fn check_ok(&self, ok: &Value) -> Vec<Problem> {
        problems(&self.response, ok)
    }

    /// What in an application error does not match the job's error type.
    pub fn check_app_error(&self, data: &Value) -> Vec<Problem> {
        match &self.error {
            Some(v) => problems(v, data),
            None => vec![Problem {
                path: String::new(),
                message: "this job has no typed application error".to_owned(),
            }],
        }
    }

    /// The schema's view of a parameter, if it has one by that name.
    pub fn field(&self, name: &str) -> Option<&FieldDoc> {
        self.fields.iter().find(|f| f.name == name)
    }
}

fn problems(validator: &jsonschema::Validator, value: &Value) -> Vec<Problem> {
    validator
        .iter_errors(value)
        .map(|e| Problem {
            path: e.instance_path().to_string(),
            message: e.to_string(),
        })
        .collect()
}

/// Every job of the schema files the dashboard was given.
#[derive(Default)]
pub struct Catalog {
    jobs: BTreeMap<String, JobSchemas>,
}

impl Catalog {
    /// Loads and checks schema files; the error is rpc-codegen's diagnostics
    /// (or a schema the validator refuses), ready to print.
    pub fn load(files: &[PathBuf]) -> Result<Catalog, String> {
        let mut catalog = Catalog::default();
        for file in files {
            let value = rpc_codegen::Builder::new()
                .file(file)
                .json_schema()
                .map_err(|d| d.to_string())?;
            catalog
                .add_json_schemas(&value)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            // A job's own doc comment is not part of its JSON Schemas (those
            // describe its parameters and answer); the AsyncAPI document
            // rpc-codegen makes from the same file carries it per message.
            let api = rpc_codegen::Builder::new()
                .file(file)
                .asyncapi("1.0.0")
                .map_err(|d| d.to_string())?;
            catalog.add_job_docs(&api);
        }
        Ok(catalog)
    }

    /// Takes the jobs' doc comments and deprecations from an AsyncAPI
    /// document of rpc-codegen's (`components.messages.*`, each with the
    /// job's full `name`).
    pub fn add_job_docs(&mut self, api: &Value) {
        let Some(messages) = api
            .pointer("/components/messages")
            .and_then(Value::as_object)
        else {
            return;
        };
        for message in messages.values() {
            let Some(job) = message
                .get("name")
                .and_then(Value::as_str)
                .and_then(|name| self.jobs.get_mut(name))
            else {
                continue;
            };
            job.description = message
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned);
            job.deprecated = message.get("deprecated") == Some(&Value::Bool(true));
        }
    }

    /// Adds the jobs of one `rpc-codegen json-schema` document
    /// (`[{service, job, request, response, error?}]`).
    pub fn add_json_schemas(&mut self, document: &Value) -> Result<(), String> {
        let entries = document
            .as_array()
            .ok_or("expected a list of jobs from rpc-codegen")?;
        for entry in entries {
            let text = |k: &str| entry.get(k).and_then(Value::as_str).map(str::to_owned);
            let (Some(service), Some(job)) = (text("service"), text("job")) else {
                return Err("a job entry without service or job".to_owned());
            };
            let compile = |what: &str, schema: &Value| {
                jsonschema::validator_for(schema)
                    .map_err(|e| format!("the {what} schema of {service}.{job}: {e}"))
            };
            let request_schema = entry.get("request").cloned().unwrap_or(Value::Bool(true));
            let response_schema = entry.get("response").cloned().unwrap_or(Value::Bool(true));
            let error_schema = entry.get("error").cloned();
            let schemas = JobSchemas {
                fields: fields_of(&request_schema),
                reply_fields: fields_of(&response_schema),
                returns: match response_schema.get("type").and_then(Value::as_str) {
                    Some("null") => "nothing".to_owned(),
                    _ => type_label(&response_schema, &response_schema),
                },
                error_type: error_schema.as_ref().map(|e| type_label(e, e)),
                description: None,
                deprecated: false,
                request: compile("request", &request_schema)?,
                response: compile("response", &response_schema)?,
                error: error_schema
                    .as_ref()
                    .map(|e| compile("error", e))
                    .transpose()?,
                service,
                job,
            };
            self.jobs.insert(schemas.name(), schemas);
        }
        Ok(())
    }

    /// A job by its full name (`Service.job`).
    pub fn job(&self, name: &str) -> Option<&JobSchemas> {
        self.jobs.get(name)
    }

    /// The jobs of one service, by name.
    pub fn jobs_of<'a>(&'a self, service: &'a str) -> impl Iterator<Item = &'a JobSchemas> + 'a {
        self.jobs.values().filter(move |j| j.service == service)
    }

    /// The services the schemas define.
    pub fn services(&self) -> BTreeSet<String> {
        self.jobs.values().map(|j| j.service.clone()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

/// The fields of an object schema, by name (JSON objects keep no order here).
fn fields_of(request: &Value) -> Vec<FieldDoc> {
    let required: BTreeSet<&str> = request
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = request.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, schema)| FieldDoc {
            name: name.clone(),
            type_label: type_label(schema, request),
            description: schema
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            required: required.contains(name.as_str()),
            schema: schema.clone(),
        })
        .collect()
}

/// A schema's type in the schema language's words. `root` is the document
/// whose `$defs` the `$ref`s point into.
pub fn type_label(schema: &Value, root: &Value) -> String {
    let Some(map) = schema.as_object() else {
        return "Json".to_owned();
    };
    if let Some(target) = map.get("$ref").and_then(Value::as_str) {
        return match target.strip_prefix("#/$defs/") {
            Some(name) => name.to_owned(),
            None => root
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or("Json")
                .to_owned(),
        };
    }
    if let Some(any_of) = map.get("anyOf").and_then(Value::as_array) {
        let not_null: Vec<&Value> = any_of
            .iter()
            .filter(|s| s.get("type").and_then(Value::as_str) != Some("null"))
            .collect();
        if let [only] = not_null.as_slice() {
            return format!("Option<{}>", type_label(only, root));
        }
    }
    if map.contains_key("oneOf") || map.contains_key("enum") {
        return map
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or("enum")
            .to_owned();
    }
    let format = map.get("format").and_then(Value::as_str);
    let base = |t: &str| -> String {
        match (t, format) {
            ("integer", Some(f)) => int_label(f).to_owned(),
            ("integer", None) => "i64".to_owned(),
            ("number", Some("float")) => "f32".to_owned(),
            ("number", _) => "f64".to_owned(),
            ("string", _) => "String".to_owned(),
            ("boolean", _) => "bool".to_owned(),
            ("array", _) => format!(
                "Vec<{}>",
                type_label(map.get("items").unwrap_or(&Value::Bool(true)), root)
            ),
            ("object", _) => match map.get("additionalProperties") {
                Some(inner) if inner.is_object() || inner == &Value::Bool(true) => {
                    format!("Map<String, {}>", type_label(inner, root))
                }
                _ => map
                    .get("title")
                    .and_then(Value::as_str)
                    .unwrap_or("object")
                    .to_owned(),
            },
            (other, _) => other.to_owned(),
        }
    };
    match map.get("type") {
        Some(Value::String(t)) => base(t),
        Some(Value::Array(types)) => {
            let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
            match names.as_slice() {
                [t, "null"] | ["null", t] => format!("Option<{}>", base(t)),
                _ => names.join(" | "),
            }
        }
        _ => "Json".to_owned(),
    }
}

fn int_label(format: &str) -> &str {
    match format {
        "int8" => "i8",
        "int16" => "i16",
        "int32" => "i32",
        "uint8" => "u8",
        "uint16" => "u16",
        "uint32" => "u32",
        "uint64" => "u64",
        _ => "i64",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calculator() -> Catalog {
        let path = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../schema/calculator.rpc"
        ));
        Catalog::load(&[path]).expect("the calculator schema loads")
    }

    #[test]
    fn fields_are_named_in_the_schema_languages_types() {
        // The overview of a job shows `a: i64`, `values: Vec<Tagged>`, not JSON Schema.
        let catalog = calculator();
        let add = catalog.job("Calculator.add").expect("add");
        let labels: Vec<(String, String)> = add
            .fields
            .iter()
            .map(|f| (f.name.clone(), f.type_label.clone()))
            .collect();
        assert_eq!(
            labels,
            [("a".into(), "i64".into()), ("b".into(), "i64".into())]
        );
        assert_eq!(add.returns, "i64");
        let sum = catalog.job("Calculator.sum").expect("sum");
        assert_eq!(sum.fields[0].type_label, "Vec<Tagged>");
        assert_eq!(sum.returns, "Tagged");
        let reply: Vec<&str> = sum
            .reply_fields
            .iter()
            .map(|f| f.type_label.as_str())
            .collect();
        assert_eq!(reply, ["Option<String>", "f64"], "label, value: by name");
        let divide = catalog.job("Calculator.divide").expect("divide");
        assert_eq!(divide.error_type.as_deref(), Some("MathError"));
        assert_eq!(
            catalog.job("Calculator.log").expect("log").returns,
            "nothing"
        );
    }

    #[test]
    fn params_that_do_not_match_the_job_are_flagged_by_field() {
        // A message with a string where an integer belongs is shown with the reason.
        let catalog = calculator();
        let add = catalog.job("Calculator.add").expect("add");
        assert!(add
            .check_params(&serde_json::json!({"a": 1, "b": 2}))
            .is_empty());
        let problems = add.check_params(&serde_json::json!({"a": "one", "b": 2}));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "/a");
        let missing = add.check_params(&serde_json::json!({"a": 1}));
        assert!(missing[0].message.contains("\"b\""), "{missing:?}");
    }
}
