//! The resolved, validated schema that code is generated from.
//!
//! Lowering (`lower`) turns syntax trees into this IR: names are resolved to
//! types, attributes to typed settings, schema names to the Rust names that
//! will be emitted (with clashes found), and recursive fields are marked with
//! [`Ty::Boxed`] where Rust needs indirection (`recursion`). Everything the
//! emitters need is decided here, and everything here is valid: emission never
//! re-checks and never fails on a well-formed `Schema`. Spans are kept on every
//! named thing so later diagnostics could still point at the source.

mod attrs;
mod clash;
mod group_key;
mod lower;
mod recursion;

pub use rpc_protocol::rate::RateLimit;
pub use rpc_protocol::Backoff;

use crate::diagnostic::Sink;
use crate::load::Loaded;
use crate::naming::RustName;
use crate::source::{FileId, SourceMap, Span};

/// Every module of one compilation, dependencies before dependents.
#[derive(Debug)]
pub struct Schema {
    pub modules: Vec<Module>,
    /// The modules that were asked for (the others were only imported).
    pub roots: Vec<ModuleId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleId(pub usize);

/// One schema file; becomes one `pub mod` of generated Rust.
#[derive(Debug)]
pub struct Module {
    pub file: FileId,
    /// The module's Rust name (the snake_case file stem).
    pub name: RustName,
    /// The output file is `<out_stem>.rs`.
    pub out_stem: String,
    pub docs: Vec<String>,
    pub types: Vec<TypeDef>,
    pub services: Vec<Service>,
}

/// A reference to a schema struct or enum, possibly in another module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeRef {
    pub module: ModuleId,
    pub index: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deprecated {
    pub note: Option<String>,
}

#[derive(Debug)]
pub struct TypeDef {
    pub name: RustName,
    /// The name as written in the schema.
    pub schema_name: String,
    pub span: Span,
    pub docs: Vec<String>,
    pub deprecated: Option<Deprecated>,
    pub kind: TypeKind,
}

#[derive(Debug)]
pub enum TypeKind {
    Struct(Vec<Field>),
    Enum(Vec<Variant>),
}

/// A struct field, a struct variant's field or a job parameter.
#[derive(Debug)]
pub struct Field {
    pub name: RustName,
    pub schema_name: String,
    /// The JSON key.
    pub wire: String,
    pub span: Span,
    pub docs: Vec<String>,
    pub deprecated: Option<Deprecated>,
    pub ty: Ty,
}

#[derive(Debug)]
pub struct Variant {
    pub name: RustName,
    pub schema_name: String,
    /// The JSON tag.
    pub wire: String,
    pub span: Span,
    pub docs: Vec<String>,
    pub deprecated: Option<Deprecated>,
    pub shape: VariantShape,
}

#[derive(Debug)]
pub enum VariantShape {
    Unit,
    Struct(Vec<Field>),
    Newtype(Ty),
}

/// A resolved type.
#[derive(Clone, Debug, PartialEq)]
pub enum Ty {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
    String,
    /// Binary data, base64 in JSON.
    Bytes,
    /// Any JSON value.
    Json,
    Vec(Box<Ty>),
    Option(Box<Ty>),
    /// `Map<String, T>`.
    Map(Box<Ty>),
    Named(TypeRef),
    /// `Box<T>` in Rust, invisible on the wire: breaks a recursive type's
    /// infinite size.
    Boxed(Box<Ty>),
}

#[derive(Debug)]
pub struct Service {
    /// The handler trait.
    pub name: RustName,
    pub schema_name: String,
    /// The service name on the wire.
    pub wire: String,
    pub client: RustName,
    pub server: RustName,
    pub span: Span,
    pub docs: Vec<String>,
    pub jobs: Vec<Job>,
    /// `#[shards = N]` (1 when not given).
    pub shards: u32,
    /// `#[rate = "..."]` on the service: every job's starts count.
    pub rate: Option<RateLimit>,
}

#[derive(Debug)]
pub struct Job {
    pub schema_name: String,
    /// The job name on the wire.
    pub wire: String,
    /// Handler-trait method and client method.
    pub method: RustName,
    /// The request struct.
    pub request: RustName,
    /// Name of the handler's context parameter, distinct from every parameter.
    pub ctx_name: RustName,
    pub span: Span,
    pub docs: Vec<String>,
    pub deprecated: Option<Deprecated>,
    pub timeout_ms: Option<u64>,
    pub attempts: Option<u32>,
    /// The retry policy from `#[backoff = "..."]` (`None`: the worker's).
    pub backoff: Option<Backoff>,
    /// `#[rate = "..."]` on the job.
    pub rate: Option<RateLimit>,
    pub params: Vec<Field>,
    pub returns: Returns,
    /// `#[group_by]`: the index in `params` of the parameter whose value
    /// is a call's group key (a string or integer parameter).
    pub group_by: Option<usize>,
    /// `#[group_limit = K]` (`None`: the worker's, 1 unless configured).
    pub group_limit: Option<u32>,
    /// `#[priority = N]`: its calls' default priority (`None`: 3).
    pub priority: Option<u8>,
}

#[derive(Debug)]
pub enum Returns {
    /// One-way: nothing comes back.
    Nothing,
    Value(Ty),
    /// `Result<T, E>` with `E` a schema enum.
    Result {
        ok: Ty,
        err: TypeRef,
    },
}

impl Schema {
    pub fn module(&self, id: ModuleId) -> &Module {
        &self.modules[id.0]
    }

    pub fn type_def(&self, r: TypeRef) -> &TypeDef {
        &self.modules[r.module.0].types[r.index]
    }
}

/// Lowers and validates loaded files. Returns `None` when any diagnostic was
/// reported (they are in `sink`).
pub fn build(loaded: &Loaded, sources: &SourceMap, sink: &mut Sink) -> Option<Schema> {
    let mut schema = lower::lower(loaded, sources, sink)?;
    clash::check(&schema, sink);
    recursion::check_buildable(&schema, sink);
    if sink.has_errors() {
        return None;
    }
    recursion::insert_boxes(&mut schema);
    Some(schema)
}
