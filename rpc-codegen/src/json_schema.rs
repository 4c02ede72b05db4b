//! JSON Schema straight from the model, for tools that cannot compile Rust.
//!
//! At run time the generated `json_schemas()` asks schemars; the CLI's
//! `json-schema` command has no compiled types, so this module builds the same
//! documents from the model. It follows schemars 1's conventions (draft
//! 2020-12, named types under `$defs`, `"$ref": "#"` for a root type that
//! contains itself, externally tagged enums as `oneOf`, `Option<T>` as a
//! nullable type or `anyOf [T, null]`, doc comments as `description`) so the
//! two agree; `tests/json_schema.rs` checks them against each other.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Map, Value};

use crate::model::{Field, Returns, Schema, Ty, TypeDef, TypeKind, TypeRef, VariantShape};

const DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";

/// Every job of the requested modules:
/// `[{service, job, request, response, error?}]`, like `json_schemas()`
/// serialized.
pub fn jobs(schema: &Schema) -> Value {
    let mut out = Vec::new();
    for &id in &schema.roots {
        for service in &schema.module(id).services {
            for job in &service.jobs {
                let request_doc = vec![format!(
                    " Parameters of job `{}` of service `{}`: the wire `params` object.",
                    job.wire, service.wire
                )];
                let request = Gen::new(schema, None).root_object(
                    job.request.unraw(),
                    &request_doc,
                    &job.params,
                );
                let (response, error) = match &job.returns {
                    Returns::Nothing => (unit_root(), None),
                    Returns::Value(ty) => (root_of(schema, ty), None),
                    Returns::Result { ok, err } => {
                        (root_of(schema, ok), Some(root_of(schema, &Ty::Named(*err))))
                    }
                };
                let mut entry = json!({
                    "service": service.wire,
                    "job": job.wire,
                    "request": request,
                    "response": response,
                });
                // Like the runtime's `JobSchema`, which skips a missing error.
                if let (Some(error), Value::Object(map)) = (error, &mut entry) {
                    map.insert("error".into(), error);
                }
                out.push(entry);
            }
        }
    }
    Value::Array(out)
}

fn unit_root() -> Value {
    json!({ "$schema": DRAFT, "title": "null", "type": "null" })
}

/// The root schema of a type, as `schemars::schema_for!` would give it.
fn root_of(schema: &Schema, ty: &Ty) -> Value {
    let root = match strip_box(ty) {
        Ty::Named(r) => Some(*r),
        _ => None,
    };
    let mut gen = Gen::new(schema, root);
    let body = match root {
        Some(r) => gen.type_schema(r),
        None => gen.ty(ty),
    };
    gen.finish(&title(schema, ty), body)
}

fn strip_box(ty: &Ty) -> &Ty {
    match ty {
        Ty::Boxed(inner) => strip_box(inner),
        other => other,
    }
}

/// schemars' name for a type used as a root (`int64`, `Array_of_Tagged`).
fn title(schema: &Schema, ty: &Ty) -> String {
    match ty {
        Ty::Bool => "boolean".into(),
        Ty::I8 => "int8".into(),
        Ty::I16 => "int16".into(),
        Ty::I32 => "int32".into(),
        Ty::I64 => "int64".into(),
        Ty::U8 => "uint8".into(),
        Ty::U16 => "uint16".into(),
        Ty::U32 => "uint32".into(),
        Ty::U64 => "uint64".into(),
        Ty::F32 => "float".into(),
        Ty::F64 => "double".into(),
        Ty::String => "string".into(),
        Ty::Bytes => "Bytes".into(),
        Ty::Json => "AnyValue".into(),
        Ty::Vec(inner) => format!("Array_of_{}", title(schema, inner)),
        Ty::Option(inner) => format!("Nullable_{}", title(schema, inner)),
        Ty::Map(inner) => format!("Map_of_{}", title(schema, inner)),
        Ty::Boxed(inner) => title(schema, inner),
        Ty::Named(r) => schema.type_def(*r).name.unraw().to_string(),
    }
}

/// Builds one root document, collecting named types into `$defs` (or, for
/// an AsyncAPI document, into its `components/schemas`).
pub(crate) struct Gen<'a> {
    schema: &'a Schema,
    root: Option<TypeRef>,
    defs: BTreeMap<String, Value>,
    names: HashMap<TypeRef, String>,
    /// Where references to named types point: `#/$defs/`.
    ref_base: &'static str,
}

impl<'a> Gen<'a> {
    fn new(schema: &'a Schema, root: Option<TypeRef>) -> Self {
        Gen {
            schema,
            root,
            defs: BTreeMap::new(),
            names: HashMap::new(),
            ref_base: "#/$defs/",
        }
    }

    /// A generator whose named types (and `Bytes`) are shared by every
    /// schema it builds and referenced as `#/components/schemas/Name`,
    /// as an AsyncAPI document holds them.
    pub(crate) fn for_components(schema: &'a Schema) -> Self {
        Gen {
            ref_base: "#/components/schemas/",
            ..Gen::new(schema, None)
        }
    }

    /// The named types collected so far, by component name.
    pub(crate) fn into_defs(self) -> BTreeMap<String, Value> {
        self.defs
    }

    /// The schema of a job's parameters object (which is never referenced).
    pub(crate) fn params(&mut self, fields: &[Field]) -> Value {
        self.object(fields)
    }

    /// The schema of a type used in place.
    pub(crate) fn inline(&mut self, ty: &Ty) -> Value {
        self.ty(ty)
    }

    fn finish(self, title: &str, body: Value) -> Value {
        let mut out = Map::new();
        out.insert("$schema".into(), DRAFT.into());
        out.insert("title".into(), title.into());
        if let Value::Object(body) = body {
            out.extend(body);
        }
        if !self.defs.is_empty() {
            out.insert(
                "$defs".into(),
                Value::Object(self.defs.into_iter().collect()),
            );
        }
        Value::Object(out)
    }

    /// The document for a request struct (which is never referenced).
    fn root_object(mut self, name: &str, docs: &[String], fields: &[Field]) -> Value {
        let mut body = self.object(fields);
        annotate(&mut body, docs, false);
        self.finish(name, body)
    }

    fn ty(&mut self, ty: &Ty) -> Value {
        match ty {
            Ty::Bool => json!({"type": "boolean"}),
            Ty::I8 => int("int8", Some(i8::MIN as i64), Some(i8::MAX as u64)),
            Ty::I16 => int("int16", Some(i16::MIN as i64), Some(i16::MAX as u64)),
            Ty::I32 => int("int32", None, None),
            Ty::I64 => int("int64", None, None),
            Ty::U8 => int("uint8", Some(0), Some(u8::MAX as u64)),
            Ty::U16 => int("uint16", Some(0), Some(u16::MAX as u64)),
            Ty::U32 => int("uint32", Some(0), None),
            Ty::U64 => int("uint64", Some(0), None),
            Ty::F32 => json!({"type": "number", "format": "float"}),
            Ty::F64 => json!({"type": "number", "format": "double"}),
            Ty::String => json!({"type": "string"}),
            Ty::Bytes => {
                self.defs.entry("Bytes".into()).or_insert_with(|| {
                    json!({
                        "type": "string",
                        "contentEncoding": "base64",
                        "description": "Binary data, base64 (standard alphabet, padded)."
                    })
                });
                json!({ "$ref": format!("{}Bytes", self.ref_base) })
            }
            Ty::Json => Value::Bool(true),
            Ty::Vec(inner) => json!({"type": "array", "items": self.ty(inner)}),
            Ty::Map(inner) => json!({"type": "object", "additionalProperties": self.ty(inner)}),
            Ty::Option(inner) => nullable(self.ty(inner)),
            Ty::Boxed(inner) => self.ty(inner),
            Ty::Named(r) => self.reference(*r),
        }
    }

    /// `{"$ref": ...}` to a named type, defining it on first use.
    fn reference(&mut self, r: TypeRef) -> Value {
        if self.root == Some(r) {
            return json!({"$ref": "#"});
        }
        if let Some(name) = self.names.get(&r) {
            return json!({ "$ref": format!("{}{name}", self.ref_base) });
        }
        let def = self.schema.type_def(r);
        let mut name = def.name.unraw().to_string();
        if self.names.values().any(|n| *n == name) || name == "Bytes" {
            name = format!("{}_{}", self.schema.module(r.module).out_stem, name);
        }
        self.names.insert(r, name.clone());
        let body = self.type_schema(r);
        self.defs.insert(name.clone(), body);
        json!({ "$ref": format!("{}{name}", self.ref_base) })
    }

    fn type_schema(&mut self, r: TypeRef) -> Value {
        let def: &TypeDef = self.schema.type_def(r);
        let mut body = match &def.kind {
            TypeKind::Struct(fields) => self.object(fields),
            TypeKind::Enum(variants) => {
                let mut names = Vec::new();
                let mut others = Vec::new();
                for v in variants {
                    let plain = v.docs.is_empty() && v.deprecated.is_none();
                    let mut schema = match &v.shape {
                        VariantShape::Unit if plain => {
                            names.push(Value::String(v.wire.clone()));
                            continue;
                        }
                        VariantShape::Unit => json!({"type": "string", "const": v.wire}),
                        VariantShape::Struct(fields) => tagged(&v.wire, self.object(fields)),
                        VariantShape::Newtype(ty) => {
                            let inner = self.ty(ty);
                            tagged(&v.wire, inner)
                        }
                    };
                    annotate(&mut schema, &v.docs, v.deprecated.is_some());
                    others.push(schema);
                }
                let group = json!({"type": "string", "enum": names});
                if others.is_empty() {
                    group
                } else {
                    let mut one_of = Vec::new();
                    if !names.is_empty() {
                        one_of.push(group);
                    }
                    one_of.extend(others);
                    json!({ "oneOf": one_of })
                }
            }
        };
        annotate(&mut body, &def.docs, def.deprecated.is_some());
        body
    }

    fn object(&mut self, fields: &[Field]) -> Value {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for f in fields {
            let mut schema = self.ty(&f.ty);
            annotate(&mut schema, &f.docs, f.deprecated.is_some());
            properties.insert(f.wire.clone(), schema);
            if !matches!(f.ty, Ty::Option(_)) {
                required.push(Value::String(f.wire.clone()));
            }
        }
        let mut out = Map::new();
        out.insert("type".into(), "object".into());
        if !properties.is_empty() {
            out.insert("properties".into(), Value::Object(properties));
        }
        if !required.is_empty() {
            out.insert("required".into(), Value::Array(required));
        }
        Value::Object(out)
    }
}

fn int(format: &str, min: Option<i64>, max: Option<u64>) -> Value {
    let mut out = json!({"type": "integer", "format": format});
    if let Value::Object(map) = &mut out {
        if let Some(min) = min {
            map.insert("minimum".into(), min.into());
        }
        if let Some(max) = max {
            map.insert("maximum".into(), max.into());
        }
    }
    out
}

/// An externally tagged variant: `{"Tag": inner}`.
fn tagged(tag: &str, inner: Value) -> Value {
    let mut properties = Map::new();
    properties.insert(tag.to_string(), inner);
    json!({
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
        "required": [tag],
    })
}

/// `T` or null: widen a plain `type`, else `anyOf`.
fn nullable(schema: Value) -> Value {
    match schema {
        Value::Bool(true) => Value::Bool(true),
        Value::Object(mut map)
            if map.get("type").is_some_and(Value::is_string)
                && !map.contains_key("$ref")
                && !map.contains_key("oneOf")
                && !map.contains_key("enum")
                && !map.contains_key("const") =>
        {
            if let Some(t) = map.remove("type") {
                map.insert("type".into(), json!([t, "null"]));
            }
            Value::Object(map)
        }
        other => json!({"anyOf": [other, {"type": "null"}]}),
    }
}

/// Adds `description` (from doc lines) and `deprecated`.
fn annotate(schema: &mut Value, docs: &[String], deprecated: bool) {
    let description = description(docs);
    if description.is_none() && !deprecated {
        return;
    }
    if let Value::Bool(true) = schema {
        *schema = Value::Object(Map::new());
    }
    if let Value::Object(map) = schema {
        if let Some(text) = description {
            map.insert("description".into(), text.into());
        }
        if deprecated {
            map.insert("deprecated".into(), true.into());
        }
    }
}

/// Doc lines as schemars joins them: one leading space dropped per line,
/// lines joined with `\n`, surrounding blank lines trimmed.
pub(crate) fn description(docs: &[String]) -> Option<String> {
    let text = docs
        .iter()
        .map(|line| line.strip_prefix(' ').unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n");
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}
