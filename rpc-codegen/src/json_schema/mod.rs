//! The JSON Schema of every job, from the model: the one implementation.
//!
//! Every user of a job's schema reads these documents: `rpc-codegen
//! json-schema` and the AsyncAPI export (from a schema file, nothing
//! compiled), `rpc backlog-check` and the dashboard's forms (the same), and
//! the compiled service at run time, whose generated `json_schemas()`
//! returns what `emit::schemas` embedded from here. There is no second
//! source (the generated types derive no schema of their own) to drift from.
//!
//! The documents keep the conventions of schemars 1, which produced the
//! run-time schemas before: draft 2020-12, named types under `$defs`,
//! `"$ref": "#"` for a root type that contains itself, externally tagged
//! enums as `oneOf`, `Option<T>` as a nullable type or `anyOf [T, null]`, doc
//! comments as `description`; and each integer carries its type's range.
//! That they describe what serde really writes and accepts is tested
//! against the generated types
//! (`build-examples/everything/tests/schemas_describe_the_wire.rs`).
//!
//! `gen` turns one type into its schema; `shared` builds named types' schemas
//! once for all the documents of a run.

mod gen;
mod shared;

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

pub(crate) use gen::{description, Gen};
pub(crate) use shared::Shared;

use crate::model::{ModuleId, Returns, Schema, Ty, TypeRef};

const DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";

/// One job's documents.
pub(crate) struct JobDocs {
    pub(crate) service: String,
    pub(crate) job: String,
    pub(crate) request: Doc,
    pub(crate) response: Doc,
    /// Only for a job that returns `Result<T, E>`.
    pub(crate) error: Option<Doc>,
}

/// One document: its own keywords, and the named types under its `$defs`.
pub(crate) struct Doc {
    pub(crate) body: Map<String, Value>,
    pub(crate) defs: BTreeMap<String, Def>,
}

/// A named type's schema in one document.
pub(crate) enum Def {
    /// The schema [`Shared`] built for every document.
    Shared(TypeRef),
    /// This document's own (it reads differently here).
    Own(Value),
}

impl Doc {
    /// The whole document, `$defs` written out.
    pub(crate) fn to_value(&self, shared: &Shared) -> Value {
        let mut out = self.body.clone();
        if !self.defs.is_empty() {
            let defs = self
                .defs
                .iter()
                .map(|(name, def)| (name.clone(), def.schema(shared).clone()))
                .collect();
            out.insert("$defs".into(), Value::Object(defs));
        }
        Value::Object(out)
    }
}

impl Def {
    pub(crate) fn schema<'s>(&'s self, shared: &'s Shared) -> &'s Value {
        static NOTHING: Value = Value::Null;
        match self {
            Def::Own(schema) => schema,
            // A document names only what `shared` built.
            Def::Shared(r) => shared.schema(*r).unwrap_or(&NOTHING),
        }
    }
}

impl JobDocs {
    /// `{service, job, request, response, error?}`, as `json_schemas()`
    /// returns it.
    pub(crate) fn to_value(&self, shared: &Shared) -> Value {
        let mut entry = json!({
            "service": self.service,
            "job": self.job,
            "request": self.request.to_value(shared),
            "response": self.response.to_value(shared),
        });
        // A job without an application error has no `error` (as
        // `JobSchema` serializes `None`).
        if let (Some(error), Value::Object(map)) = (&self.error, &mut entry) {
            map.insert("error".into(), error.to_value(shared));
        }
        entry
    }
}

/// Every job of the requested modules:
/// `[{service, job, request, response, error?}]`, as `json_schemas()`
/// returns them.
pub fn jobs(schema: &Schema) -> Value {
    let shared = Shared::new(schema);
    let jobs = schema
        .roots
        .iter()
        .flat_map(|&id| module_docs(schema, &shared, id))
        .map(|job| job.to_value(&shared))
        .collect();
    Value::Array(jobs)
}

/// The jobs of one module's own services, in declaration order.
pub(crate) fn module_docs(schema: &Schema, shared: &Shared, id: ModuleId) -> Vec<JobDocs> {
    let mut out = Vec::new();
    for service in &schema.module(id).services {
        for job in &service.jobs {
            let request_doc = vec![format!(
                " Parameters of job `{}` of service `{}`: the wire `params` object.",
                job.wire, service.wire
            )];
            let request = Gen::new(schema, Some(shared), None).root_object(
                job.request.unraw(),
                &request_doc,
                &job.params,
            );
            let root = |ty: &Ty| root_of(schema, shared, ty);
            let (response, error) = match &job.returns {
                Returns::Nothing => (unit_root(), None),
                Returns::Value(ty) => (root(ty), None),
                Returns::Result { ok, err } => (root(ok), Some(root(&Ty::Named(*err)))),
            };
            out.push(JobDocs {
                service: service.wire.clone(),
                job: job.wire.clone(),
                request,
                response,
                error,
            });
        }
    }
    out
}

fn unit_root() -> Doc {
    let mut body = Map::new();
    body.insert("$schema".into(), DRAFT.into());
    body.insert("title".into(), "null".into());
    body.insert("type".into(), "null".into());
    Doc {
        body,
        defs: BTreeMap::new(),
    }
}

/// The root schema of a type: titled by its name, its named types in `$defs`.
fn root_of(schema: &Schema, shared: &Shared, ty: &Ty) -> Doc {
    let root = match strip_box(ty) {
        Ty::Named(r) => Some(*r),
        _ => None,
    };
    let mut gen = Gen::new(schema, Some(shared), root);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn documents(builder: crate::Builder, shared: fn(&Schema) -> Shared) -> Value {
        let compiled = builder.compiled().unwrap_or_else(|d| panic!("{d}"));
        let schema = &compiled.schema;
        let shared = shared(schema);
        (0..schema.modules.len())
            .flat_map(|m| module_docs(schema, &shared, ModuleId(m)))
            .map(|job| job.to_value(&shared))
            .collect()
    }

    /// Building named types once must not change a byte of any document:
    /// every schema of the repository (and roots that contain themselves,
    /// directly and through another type) reads the same as when each
    /// document builds its own.
    #[test]
    fn shared_schemas_change_no_document() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<_> = ["../schema", "tests/data/breaking"]
            .iter()
            .flat_map(|dir| std::fs::read_dir(root.join(dir)).expect("a directory"))
            .map(|entry| entry.expect("an entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "rpc"))
            .collect();
        files.sort();
        assert!(files.len() > 30, "{files:?}");
        let recursive = "struct Person { name: String, pet: Option<Pet>, photo: Bytes }\n\
             struct Pet { owner: Option<Person> }\n\
             struct Node { next: Option<Node>, person: Person }\n\
             service S {\n\
                 fn who(p: Person) -> Person;\n\
                 fn pet(p: Pet) -> Result<Pet, E>;\n\
                 fn walk(n: Node) -> Vec<Node>;\n\
                 fn node(n: Node) -> Node;\n\
             }\n\
             enum E { Lost(Pet), Gone }\n";
        let builders = files
            .iter()
            .map(|path| (path.display().to_string(), crate::Builder::new().file(path)))
            .chain([(
                "recursive".to_owned(),
                crate::Builder::new().source("recursive.rpc", recursive),
            )]);
        for (name, builder) in builders {
            let shared = documents(builder.clone(), Shared::new);
            let alone = documents(builder, |_| Shared::none());
            assert_eq!(shared, alone, "{name}");
        }
    }
}
