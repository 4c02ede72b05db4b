//! The JSON Schema of every job, from the model: the one implementation.
//!
//! Every user of a job's schema reads these documents: `rpc-codegen
//! json-schema` and the AsyncAPI export (from a schema file, nothing
//! compiled), `rpc backlog-check` and the dashboard's forms (the same), and
//! the compiled service at run time, whose generated `json_schemas()`
//! returns the text `emit::schemas` embedded from here. There is no second
//! source (the generated types derive no schema of their own) to drift from.
//!
//! The documents keep the conventions of schemars 1, which produced the
//! run-time schemas before: draft 2020-12, named types under `$defs`,
//! `"$ref": "#"` for a root type that contains itself, externally tagged
//! enums as `oneOf`, `Option<T>` as a nullable type or `anyOf [T, null]`, doc
//! comments as `description`. That they describe what serde really writes
//! and accepts is tested against the generated types
//! (`build-examples/everything/tests/schemas_describe_the_wire.rs`).

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Map, Value};

use crate::model::{
    Field, ModuleId, Returns, Schema, Ty, TypeDef, TypeKind, TypeRef, VariantShape,
};

const DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";

/// Every job of the requested modules:
/// `[{service, job, request, response, error?}]`, as `json_schemas()`
/// returns them.
pub fn jobs(schema: &Schema) -> Value {
    let jobs = schema
        .roots
        .iter()
        .flat_map(|&id| module_jobs(schema, id))
        .collect();
    Value::Array(jobs)
}

/// The jobs of one module's own services, in declaration order.
pub(crate) fn module_jobs(schema: &Schema, id: ModuleId) -> Vec<Value> {
    let mut out = Vec::new();
    for service in &schema.module(id).services {
        for job in &service.jobs {
            let request_doc = vec![format!(
                " Parameters of job `{}` of service `{}`: the wire `params` object.",
                job.wire, service.wire
            )];
            let request =
                Gen::new(schema, None).root_object(job.request.unraw(), &request_doc, &job.params);
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
            // A job without an application error has no `error` (as
            // `JobSchema` serializes `None`).
            if let (Some(error), Value::Object(map)) = (error, &mut entry) {
                map.insert("error".into(), error);
            }
            out.push(entry);
        }
    }
    out
}

fn unit_root() -> Value {
    json!({ "$schema": DRAFT, "title": "null", "type": "null" })
}

/// The root schema of a type: titled by its name, its named types in `$defs`.
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

/// The title of a type used as a root (`int64`, `Array_of_Tagged`), named
/// as schemars names them.
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
            Ty::I8 => int("int8", i8::MIN.into(), i8::MAX as u64),
            Ty::I16 => int("int16", i16::MIN.into(), i16::MAX as u64),
            Ty::I32 => int("int32", i32::MIN.into(), i32::MAX as u64),
            Ty::I64 => int("int64", i64::MIN, i64::MAX as u64),
            Ty::U8 => int("uint8", 0, u8::MAX.into()),
            Ty::U16 => int("uint16", 0, u16::MAX.into()),
            Ty::U32 => int("uint32", 0, u32::MAX.into()),
            Ty::U64 => int("uint64", 0, u64::MAX),
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

/// An integer with the range its Rust type holds: serde refuses a number
/// outside it, and so must the schema. (schemars wrote the bounds of the
/// 8- and 16-bit types only, leaving the wider ones to `format`.)
fn int(format: &str, min: i64, max: u64) -> Value {
    json!({"type": "integer", "format": format, "minimum": min, "maximum": max})
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

/// Doc lines as a description: one leading space dropped per line,
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
