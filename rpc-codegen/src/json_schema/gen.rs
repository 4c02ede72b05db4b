//! One type at a time, from the model to JSON Schema: the conventions
//! (see the parent module) in one place, for the job documents and for the
//! AsyncAPI export's components.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{json, Map, Value};

use super::shared::Shared;
use super::{Def, Doc, DRAFT};
use crate::model::{Field, Schema, Ty, TypeDef, TypeKind, TypeRef, VariantShape};

/// Builds one root document, collecting named types into `$defs` (or, for
/// an AsyncAPI document, into its `components/schemas`).
pub(crate) struct Gen<'a> {
    schema: &'a Schema,
    /// The type the document is the schema of, referenced as `#`.
    root: Option<TypeRef>,
    defs: BTreeMap<String, Def>,
    names: HashMap<TypeRef, String>,
    /// The values of `names`, to find a name taken at once.
    taken: HashSet<String>,
    /// Where references to named types point: `#/$defs/`.
    ref_base: &'static str,
    /// Named types' schemas built once for every document (none for the
    /// AsyncAPI components).
    shared: Option<&'a Shared>,
    /// Set while [`Shared`] builds one type's schema alone: the named types
    /// it references, recorded instead of defined.
    shallow: Option<Vec<TypeRef>>,
}

impl<'a> Gen<'a> {
    pub(super) fn new(
        schema: &'a Schema,
        shared: Option<&'a Shared>,
        root: Option<TypeRef>,
    ) -> Self {
        Gen {
            schema,
            root,
            defs: BTreeMap::new(),
            names: HashMap::new(),
            taken: HashSet::new(),
            ref_base: "#/$defs/",
            shared,
            shallow: None,
        }
    }

    /// One type's schema alone, for [`Shared`]: the body, the named types
    /// it references, and whether it uses `Bytes`. Only valid when no two
    /// types share a name (every reference is then to the type's own name).
    pub(super) fn shallow(schema: &'a Schema, r: TypeRef) -> (Value, Vec<TypeRef>, bool) {
        let mut gen = Gen {
            shallow: Some(Vec::new()),
            ..Gen::new(schema, None, None)
        };
        let body = gen.type_schema(r);
        let bytes = gen.defs.contains_key("Bytes");
        (body, gen.shallow.unwrap_or_default(), bytes)
    }

    /// A generator whose named types (and `Bytes`) are shared by every
    /// schema it builds and referenced as `#/components/schemas/Name`,
    /// as an AsyncAPI document holds them.
    pub(crate) fn for_components(schema: &'a Schema) -> Self {
        Gen {
            ref_base: "#/components/schemas/",
            ..Gen::new(schema, None, None)
        }
    }

    /// The named types collected so far, by component name.
    pub(crate) fn into_defs(self) -> BTreeMap<String, Value> {
        self.defs
            .into_iter()
            .filter_map(|(name, def)| match def {
                Def::Own(schema) => Some((name, schema)),
                // Never: these components are built without `Shared`.
                Def::Shared(_) => None,
            })
            .collect()
    }

    /// The schema of a job's parameters object (which is never referenced).
    pub(crate) fn params(&mut self, fields: &[Field]) -> Value {
        self.object(fields)
    }

    /// The schema of a type used in place.
    pub(crate) fn inline(&mut self, ty: &Ty) -> Value {
        self.ty(ty)
    }

    /// The document: `$schema`, `title`, the body, and the named types met.
    pub(super) fn finish(self, title: &str, body: Value) -> Doc {
        let mut out = Map::new();
        out.insert("$schema".into(), DRAFT.into());
        out.insert("title".into(), title.into());
        if let Value::Object(body) = body {
            out.extend(body);
        }
        Doc {
            body: out,
            defs: self.defs,
        }
    }

    /// The document for a request struct (which is never referenced).
    pub(super) fn root_object(mut self, name: &str, docs: &[String], fields: &[Field]) -> Doc {
        let mut body = self.object(fields);
        annotate(&mut body, docs, false);
        self.finish(name, body)
    }

    pub(super) fn ty(&mut self, ty: &Ty) -> Value {
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
                self.define_bytes();
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

    fn define_bytes(&mut self) {
        self.defs.entry("Bytes".into()).or_insert_with(|| {
            Def::Own(json!({
                "type": "string",
                "contentEncoding": "base64",
                "description": "Binary data, base64 (standard alphabet, padded)."
            }))
        });
    }

    /// `{"$ref": ...}` to a named type, defining it on first use.
    fn reference(&mut self, r: TypeRef) -> Value {
        if self.root == Some(r) {
            return json!({"$ref": "#"});
        }
        if let Some(referenced) = &mut self.shallow {
            if !referenced.contains(&r) {
                referenced.push(r);
            }
            let name = self.schema.type_def(r).name.unraw();
            return json!({ "$ref": format!("{}{name}", self.ref_base) });
        }
        self.define(r);
        let name = self.names.get(&r).map_or("", String::as_str);
        json!({ "$ref": format!("{}{name}", self.ref_base) })
    }

    /// Names `r` in this document and puts its schema under `$defs`, with
    /// every named type it reaches (not the root: that is `#`).
    fn define(&mut self, r: TypeRef) {
        if self.root == Some(r) || self.names.contains_key(&r) {
            return;
        }
        let def = self.schema.type_def(r);
        let mut name = def.name.unraw().to_string();
        if self.taken.contains(&name) || name == "Bytes" {
            name = format!("{}_{}", self.schema.module(r.module).out_stem, name);
        }
        self.names.insert(r, name.clone());
        self.taken.insert(name.clone());
        // Built once for all documents where it reads the same in this one;
        // the named types it reaches are defined here all the same.
        let def = match self.shared.and_then(|shared| shared.usable(r, self.root)) {
            Some(built) => {
                for &child in &built.references {
                    self.define(child);
                }
                if built.uses_bytes {
                    self.define_bytes();
                }
                Def::Shared(r)
            }
            None => Def::Own(self.type_schema(r)),
        };
        self.defs.insert(name, def);
    }

    pub(super) fn type_schema(&mut self, r: TypeRef) -> Value {
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
