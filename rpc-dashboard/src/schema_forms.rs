//! HTML forms built from a job's JSON Schema, and the submitted form turned
//! back into the job's `params`, with errors by field.
//!
//! Numbers, strings and booleans get typed inputs; anything structured
//! (lists, maps, the schema's own structs and enums, `Json`) is a JSON text
//! area. A submitted form is read in two steps: each input is parsed as its
//! type (`"abc"` is not an `i64`), then the whole object is checked against
//! the job's JSON Schema, and every problem is put next to the field it is
//! about. Without a schema (no `--schema`, or a job the schema does not
//! know) the form is one JSON text area for the whole `params` object.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::schema_catalog::{FieldDoc, JobSchemas};

/// Form inputs are named `p.<param>`, so no parameter can clash with the
/// form's own fields (`csrf`).
pub const PARAM_PREFIX: &str = "p.";
/// The text area holding the whole `params` object when there is no schema.
pub const RAW_PARAMS: &str = "params";

/// What kind of input a parameter gets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InputKind {
    Integer,
    Number,
    Text,
    /// A required `bool`: a checkbox.
    Checkbox,
    /// An `Option<bool>`: unset, true or false.
    OptionalBool,
    /// Anything structured: a JSON text area.
    Json,
}

/// One input of a form, with what was typed and what is wrong with it.
#[derive(Debug, Clone)]
pub struct FormField {
    pub name: String,
    /// The input's `name` attribute.
    pub input_name: String,
    pub type_label: String,
    pub description: Option<String>,
    pub required: bool,
    pub kind: InputKind,
    pub value: String,
    pub error: Option<String>,
}

impl FormField {
    pub fn checked(&self) -> bool {
        self.value == "true"
    }

    /// The input's `type` attribute, for single-line inputs.
    pub fn html_type(&self) -> &'static str {
        match self.kind {
            InputKind::Integer | InputKind::Number => "number",
            _ => "text",
        }
    }

    /// The input's `step` attribute, for number inputs.
    pub fn step(&self) -> &'static str {
        match self.kind {
            InputKind::Integer => "1",
            _ => "any",
        }
    }
}

/// A whole form: its fields, or one raw JSON area, and errors about the whole.
#[derive(Debug, Clone, Default)]
pub struct Form {
    pub fields: Vec<FormField>,
    /// Set when the form is the schema-less JSON area: its text.
    pub raw: Option<String>,
    /// Problems that belong to no one field.
    pub errors: Vec<String>,
}

impl Form {
    /// The empty form for a job, or filled with `params` (editing a dead letter).
    pub fn for_job(schema: Option<&JobSchemas>, params: Option<&Value>) -> Form {
        let Some(schema) = schema else {
            let raw = params
                .map(|p| serde_json::to_string_pretty(p).unwrap_or_default())
                .unwrap_or_else(|| "{}".to_owned());
            return Form {
                raw: Some(raw),
                ..Form::default()
            };
        };
        let fields = schema
            .fields
            .iter()
            .map(|doc| {
                let kind = input_kind(doc);
                let value = params
                    .and_then(|p| p.get(&doc.name))
                    .map(|v| display_value(kind, v))
                    .unwrap_or_default();
                FormField {
                    name: doc.name.clone(),
                    input_name: format!("{PARAM_PREFIX}{}", doc.name),
                    type_label: doc.type_label.clone(),
                    description: doc.description.clone(),
                    required: doc.required,
                    kind,
                    value,
                    error: None,
                }
            })
            .collect();
        Form {
            fields,
            ..Form::default()
        }
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty() || self.fields.iter().any(|f| f.error.is_some())
    }

    /// Reads a submitted form: the params, or the form again with its errors.
    pub fn read(
        schema: Option<&JobSchemas>,
        submitted: &HashMap<String, String>,
    ) -> Result<Value, Form> {
        let Some(schema) = schema else {
            let text = submitted.get(RAW_PARAMS).cloned().unwrap_or_default();
            let error = match serde_json::from_str::<Value>(&text) {
                Ok(v @ Value::Object(_)) => return Ok(v),
                Ok(_) => "the parameters are one JSON object, e.g. {\"a\": 1}".to_owned(),
                Err(e) => format!("not valid JSON: {e}"),
            };
            return Err(Form {
                raw: Some(text),
                errors: vec![error],
                ..Form::default()
            });
        };
        let mut form = Form::for_job(Some(schema), None);
        let mut params = Map::new();
        for field in &mut form.fields {
            let text = submitted
                .get(&field.input_name)
                .cloned()
                .unwrap_or_default();
            field.value = match field.kind {
                // An unchecked checkbox is not submitted at all.
                InputKind::Checkbox => (!text.is_empty()).to_string(),
                _ => text,
            };
            match parse_input(field) {
                Ok(Some(value)) => {
                    params.insert(field.name.clone(), value);
                }
                Ok(None) => {}
                Err(e) => field.error = Some(e),
            }
        }
        let params = Value::Object(params);
        if form.has_errors() {
            return Err(form);
        }
        let problems = schema.check_params(&params);
        if problems.is_empty() {
            return Ok(params);
        }
        for problem in problems {
            // `/values/0/label` belongs to the field `values`; a missing
            // required field is reported on the whole object, naming it.
            let top = problem
                .path
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or("");
            let field = form.fields.iter_mut().find(|f| {
                (!top.is_empty() && f.name == top)
                    || (top.is_empty() && problem.message.contains(&format!("\"{}\"", f.name)))
            });
            match field {
                Some(f) if f.error.is_none() => f.error = Some(problem.to_string()),
                Some(_) => {}
                None => form.errors.push(problem.to_string()),
            }
        }
        Err(form)
    }
}

fn input_kind(doc: &FieldDoc) -> InputKind {
    match doc.type_label.as_str() {
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" => InputKind::Integer,
        "f32" | "f64" => InputKind::Number,
        "String" => InputKind::Text,
        "bool" => InputKind::Checkbox,
        "Option<bool>" => InputKind::OptionalBool,
        _ => InputKind::Json,
    }
}

/// How a value is written into its input.
fn display_value(kind: InputKind, value: &Value) -> String {
    match (kind, value) {
        (InputKind::Text, Value::String(s)) => s.clone(),
        (InputKind::Json, v) => serde_json::to_string_pretty(v).unwrap_or_default(),
        (_, Value::Null) => String::new(),
        (_, v) => v.to_string(),
    }
}

/// One input parsed as its type; `None` for an optional field left empty.
fn parse_input(field: &FormField) -> Result<Option<Value>, String> {
    let text = field.value.trim();
    if text.is_empty() && !matches!(field.kind, InputKind::Checkbox | InputKind::Text) {
        return if field.required {
            Err("required".to_owned())
        } else {
            Ok(None)
        };
    }
    match field.kind {
        InputKind::Integer => {
            if let Ok(n) = text.parse::<i64>() {
                Ok(Some(n.into()))
            } else if let Ok(n) = text.parse::<u64>() {
                Ok(Some(n.into()))
            } else {
                Err(format!(
                    "`{text}` is not a whole number ({})",
                    field.type_label
                ))
            }
        }
        InputKind::Number => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(|n| Some(Value::Number(n)))
            .ok_or_else(|| format!("`{text}` is not a number ({})", field.type_label)),
        InputKind::Text => Ok(Some(Value::String(field.value.clone()))),
        InputKind::Checkbox => Ok(Some(Value::Bool(text == "true"))),
        InputKind::OptionalBool => match text {
            "true" => Ok(Some(Value::Bool(true))),
            "false" => Ok(Some(Value::Bool(false))),
            other => Err(format!("`{other}` is not true or false")),
        },
        InputKind::Json => serde_json::from_str(text)
            .map(Some)
            .map_err(|e| format!("not valid JSON for {}: {e}", field.type_label)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema_catalog::Catalog;

    fn catalog() -> Catalog {
        let path = std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../schema/calculator.rpc"
        ));
        Catalog::load(&[path]).expect("the calculator schema loads")
    }

    fn submit(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_typed_form_gives_typed_params() {
        let catalog = catalog();
        let add = catalog.job("Calculator.add");
        let params = Form::read(add, &submit(&[("p.a", "2"), ("p.b", "-3")])).expect("valid");
        assert_eq!(params, serde_json::json!({"a": 2, "b": -3}));
        let sum = catalog.job("Calculator.sum");
        let params =
            Form::read(sum, &submit(&[("p.values", r#"[{"value": 1.5}]"#)])).expect("valid");
        assert_eq!(params["values"][0]["value"], 1.5);
    }

    #[test]
    fn an_invalid_form_puts_each_error_next_to_its_field() {
        // What the browser shows: `a` is not a number, `values` misses a field.
        let catalog = catalog();
        let form = Form::read(
            catalog.job("Calculator.add"),
            &submit(&[("p.a", "abc"), ("p.b", "1")]),
        )
        .expect_err("abc is not an i64");
        let a = form.fields.iter().find(|f| f.name == "a").expect("a");
        assert!(
            a.error
                .as_deref()
                .unwrap_or("")
                .contains("not a whole number"),
            "{a:?}"
        );
        assert_eq!(a.value, "abc", "what was typed stays in the input");
        let form = Form::read(
            catalog.job("Calculator.sum"),
            &submit(&[("p.values", r#"[{"label": "x"}]"#)]),
        )
        .expect_err("value is required");
        let values = form
            .fields
            .iter()
            .find(|f| f.name == "values")
            .expect("values");
        assert!(
            values.error.as_deref().unwrap_or("").contains("value"),
            "{values:?}"
        );
    }

    #[test]
    fn without_a_schema_the_params_are_one_json_object() {
        let form = Form::read(None, &submit(&[("params", "[1]")])).expect_err("not an object");
        assert_eq!(form.errors.len(), 1);
        assert_eq!(
            Form::read(None, &submit(&[("params", "{\"x\":1}")])).ok(),
            Some(serde_json::json!({"x": 1}))
        );
    }
}
