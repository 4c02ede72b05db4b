//! From syntax trees to the model: name resolution, attributes, Rust names.
//!
//! Each file sees its own types and the types of the files it imports
//! directly. Built-in type names (`String`, `Vec`, ...) always mean the
//! built-in. Lowering goes on after an error so that one run reports as many
//! problems as it can; the placeholders it leaves behind are never emitted
//! because `model::build` stops when the sink holds any error.

use super::attrs::{self, Target};
use super::{
    Field, Job, Module, ModuleId, Returns, Schema, Service, Ty, TypeDef, TypeKind, TypeRef,
    Variant, VariantShape,
};
use crate::diagnostic::{did_you_mean, Diagnostic, Sink};
use crate::load::Loaded;
use crate::naming::{self, RustName};
use crate::parse::{self, TypeExpr};
use crate::source::{FileId, SourceMap, Span};

/// Type names that need no declaration.
pub const BUILTINS: &[&str] = &[
    "bool", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f32", "f64", "String", "Bytes",
    "Json", "Vec", "Option", "Map", "Result",
];

/// Hints for names people reach for from Rust or other schema languages.
const FAMILIAR: &[(&str, &str)] = &[
    (
        "usize",
        "use `u64`: sizes differ between machines, the wire has none",
    ),
    (
        "isize",
        "use `i64`: sizes differ between machines, the wire has none",
    ),
    (
        "u128",
        "JSON numbers carry at most 64 bits here; use `u64` or `String`",
    ),
    (
        "i128",
        "JSON numbers carry at most 64 bits here; use `i64` or `String`",
    ),
    ("str", "use `String`"),
    ("char", "use `String`"),
    ("HashMap", "use `Map<String, T>`"),
    ("BTreeMap", "use `Map<String, T>`"),
    ("Value", "use `Json` for any JSON value"),
    (
        "Box",
        "write the type itself; recursive types are boxed automatically",
    ),
    ("f16", "use `f32`"),
];

struct Lowerer<'a> {
    loaded: &'a Loaded,
    sources: &'a SourceMap,
    sink: &'a mut Sink,
    /// Declared type names per module, in declaration order, with kind.
    declared: Vec<Vec<Declared>>,
    placeholders: usize,
}

#[derive(Clone)]
struct Declared {
    name: String,
    is_enum: bool,
}

/// Where a type expression appears, which decides whether `Result` is allowed.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    Data,
    Return,
}

pub fn lower(loaded: &Loaded, sources: &SourceMap, sink: &mut Sink) -> Option<Schema> {
    let declared = loaded
        .files
        .iter()
        .map(|file| {
            file.ast
                .items
                .iter()
                .filter_map(|item| match item {
                    parse::Item::Struct(s) => Some(Declared {
                        name: naming_unraw(&s.name),
                        is_enum: false,
                    }),
                    parse::Item::Enum(e) => Some(Declared {
                        name: naming_unraw(&e.name),
                        is_enum: true,
                    }),
                    _ => None,
                })
                .collect()
        })
        .collect();
    let mut lowerer = Lowerer {
        loaded,
        sources,
        sink,
        declared,
        placeholders: 0,
    };
    let modules = (0..loaded.files.len()).map(|i| lowerer.module(i)).collect();
    Some(Schema {
        modules,
        roots: loaded.roots.iter().map(|&i| ModuleId(i)).collect(),
    })
}

impl Lowerer<'_> {
    fn placeholder(&mut self, prefix: &str) -> RustName {
        self.placeholders += 1;
        // Only used after an error has been reported; never emitted.
        RustName::placeholder(prefix, self.placeholders)
    }

    fn rust_type_name(&mut self, schema: &str, span: Span, what: &str) -> RustName {
        match naming::type_name(schema) {
            Some(name) => name,
            None => {
                self.sink.push(Diagnostic::error(
                    format!("the {what} name `{schema}` cannot become a Rust name"),
                    span,
                    "needs at least one letter",
                ));
                self.placeholder("Invalid")
            }
        }
    }

    fn rust_value_name(&mut self, schema: &str, span: Span, what: &str) -> RustName {
        match naming::value_name(schema) {
            Some(name) => name,
            None => {
                self.sink.push(Diagnostic::error(
                    format!("the {what} name `{schema}` cannot become a Rust name"),
                    span,
                    "needs at least one letter",
                ));
                self.placeholder("invalid")
            }
        }
    }

    fn module(&mut self, index: usize) -> Module {
        let file = &self.loaded.files[index];
        let id = file.id;
        let module_attrs = attrs::lower(&file.ast.inner_attrs, Target::File, id, self.sink);
        let mut types = Vec::new();
        let mut services = Vec::new();
        for item in &file.ast.items {
            match item {
                parse::Item::Import(import) => {
                    attrs::lower(&import.attrs, Target::Import, id, self.sink);
                }
                parse::Item::Struct(def) => {
                    let a = attrs::lower(&def.attrs, Target::Struct, id, self.sink);
                    let (schema_name, span, name) = self.type_header(&def.name, id, "struct");
                    let fields = self.fields(&def.fields, index, Target::Field);
                    types.push(TypeDef {
                        name,
                        schema_name,
                        span,
                        docs: a.docs,
                        deprecated: a.deprecated,
                        kind: TypeKind::Struct(fields),
                    });
                }
                parse::Item::Enum(def) => {
                    let a = attrs::lower(&def.attrs, Target::Enum, id, self.sink);
                    let (schema_name, span, name) = self.type_header(&def.name, id, "enum");
                    let variants = def
                        .variants
                        .iter()
                        .map(|v| self.variant(v, index))
                        .collect();
                    types.push(TypeDef {
                        name,
                        schema_name,
                        span,
                        docs: a.docs,
                        deprecated: a.deprecated,
                        kind: TypeKind::Enum(variants),
                    });
                }
                parse::Item::Service(def) => services.push(self.service(def, index)),
            }
        }
        Module {
            file: id,
            name: file.module.clone(),
            out_stem: file.out_stem.clone(),
            docs: module_attrs.docs,
            types,
            services,
        }
    }

    fn type_header(
        &mut self,
        ident: &syn::Ident,
        file: FileId,
        what: &str,
    ) -> (String, Span, RustName) {
        let schema_name = naming_unraw(ident);
        let span = Span::from_proc_macro(file, ident.span());
        if BUILTINS.contains(&schema_name.as_str()) {
            self.sink.push(
                Diagnostic::error(
                    format!("`{schema_name}` is a built-in type and cannot be redefined"),
                    span,
                    format!("this {what} would hide the built-in `{schema_name}`"),
                )
                .with_help("choose another name"),
            );
        }
        let name = self.rust_type_name(&schema_name, span, what);
        (schema_name, span, name)
    }

    fn fields(&mut self, defs: &[parse::FieldDef], module: usize, target: Target) -> Vec<Field> {
        defs.iter().map(|f| self.field(f, module, target)).collect()
    }

    fn field(&mut self, def: &parse::FieldDef, module: usize, target: Target) -> Field {
        let file = self.loaded.files[module].id;
        let a = attrs::lower(&def.attrs, target, file, self.sink);
        let schema_name = naming_unraw(&def.name);
        let span = Span::from_proc_macro(file, def.name.span());
        let what = if target == Target::Param {
            "parameter"
        } else {
            "field"
        };
        let name = self.rust_value_name(&schema_name, span, what);
        let ty = self.ty(&def.ty, module, Place::Data, 0).unwrap_or(Ty::Json);
        Field {
            name,
            wire: a.wire_name(&schema_name),
            schema_name,
            span,
            docs: a.docs,
            deprecated: a.deprecated,
            ty,
        }
    }

    fn variant(&mut self, def: &parse::VariantDef, module: usize) -> Variant {
        let file = self.loaded.files[module].id;
        let a = attrs::lower(&def.attrs, Target::Variant, file, self.sink);
        let schema_name = naming_unraw(&def.name);
        let span = Span::from_proc_macro(file, def.name.span());
        let name = self.rust_type_name(&schema_name, span, "variant");
        let shape = match &def.shape {
            parse::VariantShape::Unit => VariantShape::Unit,
            parse::VariantShape::Struct(fields) => {
                VariantShape::Struct(self.fields(fields, module, Target::Field))
            }
            parse::VariantShape::Newtype(ty) => {
                VariantShape::Newtype(self.ty(ty, module, Place::Data, 0).unwrap_or(Ty::Json))
            }
        };
        Variant {
            name,
            wire: a.wire_name(&schema_name),
            schema_name,
            span,
            docs: a.docs,
            deprecated: a.deprecated,
            shape,
        }
    }

    fn service(&mut self, def: &parse::ServiceDef, module: usize) -> Service {
        let file = self.loaded.files[module].id;
        let a = attrs::lower(&def.attrs, Target::Service, file, self.sink);
        let schema_name = naming_unraw(&def.name);
        let span = Span::from_proc_macro(file, def.name.span());
        if BUILTINS.contains(&schema_name.as_str()) {
            self.sink.push(Diagnostic::error(
                format!("`{schema_name}` is a built-in type name and cannot name a service"),
                span,
                "choose another name",
            ));
        }
        let name = self.rust_type_name(&schema_name, span, "service");
        let client = RustName::derived(&format!("{}Client", name.unraw()))
            .unwrap_or_else(|| self.placeholder("Client"));
        let server = RustName::derived(&format!("{}Server", name.unraw()))
            .unwrap_or_else(|| self.placeholder("Server"));
        let jobs = def
            .jobs
            .iter()
            .map(|job| self.job(job, &name, module))
            .collect();
        Service {
            name,
            wire: schema_name.clone(),
            schema_name,
            client,
            server,
            span,
            docs: a.docs,
            jobs,
            shards: a.shards.unwrap_or(1),
            rate: a.rate,
        }
    }

    fn job(&mut self, def: &parse::JobDef, service: &RustName, module: usize) -> Job {
        let file = self.loaded.files[module].id;
        let a = attrs::lower(&def.attrs, Target::Job, file, self.sink);
        let schema_name = naming_unraw(&def.name);
        let span = Span::from_proc_macro(file, def.name.span());
        let method = self.rust_value_name(&schema_name, span, "job");
        let request = RustName::derived(&format!(
            "{}{}Request",
            service.unraw(),
            naming::upper_camel(method.unraw().trim_start_matches('_'))
        ))
        .unwrap_or_else(|| self.placeholder("Request"));
        let params = self.fields(&def.params, module, Target::Param);
        let mut ctx = String::from("ctx");
        while params.iter().any(|p| p.name.as_str() == ctx) {
            ctx.push('_');
        }
        let ctx_name = RustName::derived(&ctx).unwrap_or_else(|| self.placeholder("ctx"));
        let returns = match &def.returns {
            None => Returns::Nothing,
            Some(expr) => self.returns(expr, module),
        };
        let group_by = super::group_key::lower(&a, &params, self.sink);
        Job {
            wire: a.wire_name(&schema_name),
            schema_name,
            method,
            request,
            ctx_name,
            span,
            docs: a.docs,
            deprecated: a.deprecated,
            timeout_ms: a.timeout_ms,
            attempts: a.attempts,
            backoff: a.backoff,
            rate: a.rate,
            params,
            returns,
            group_by,
            group_limit: a.group_limit.map(|(k, _)| k),
            priority: a.priority,
        }
    }

    fn returns(&mut self, expr: &TypeExpr, module: usize) -> Returns {
        let file = self.loaded.files[module].id;
        if expr.name != "Result" {
            return Returns::Value(self.ty(expr, module, Place::Return, 0).unwrap_or(Ty::Json));
        }
        if expr.args.len() != 2 {
            self.sink.push(Diagnostic::error(
                "`Result` takes two type arguments: `Result<T, E>`",
                expr.span(file),
                format!("{} given", expr.args.len()),
            ));
            return Returns::Value(Ty::Json);
        }
        let ok = self
            .ty(&expr.args[0], module, Place::Data, 1)
            .unwrap_or(Ty::Json);
        let err_expr = &expr.args[1];
        let err = match self.ty(err_expr, module, Place::Data, 1) {
            Some(Ty::Named(r)) if self.declared[r.module.0][r.index].is_enum => Some(r),
            Some(other) => {
                let what = match other {
                    Ty::Named(_) => format!("`{}` is a struct", err_expr.name),
                    _ => format!("`{}` is not a schema enum", err_expr.name),
                };
                self.sink.push(
                    Diagnostic::error(
                        "the error type of `Result` must be an enum declared in a schema",
                        err_expr.span(file),
                        what,
                    )
                    .with_help(
                        "declare `enum SomethingError { ... }` listing what can go wrong, and use it here",
                    ),
                );
                None
            }
            None => None,
        };
        match err {
            Some(err) => Returns::Result { ok, err },
            None => Returns::Value(Ty::Json),
        }
    }

    /// Resolves a type expression, reporting problems. `None` after an error.
    fn ty(&mut self, expr: &TypeExpr, module: usize, place: Place, depth: usize) -> Option<Ty> {
        let file = self.loaded.files[module].id;
        let name = naming_unraw(&expr.name);
        let name_span = Span::from_proc_macro(file, expr.name.span());
        let span = expr.span(file);
        let builtin = BUILTINS.contains(&name.as_str());

        if builtin {
            let arity = match name.as_str() {
                "Vec" | "Option" => 1,
                "Map" | "Result" => 2,
                _ => 0,
            };
            if name == "Result" {
                let label = if place == Place::Return && depth > 0 {
                    "`Result` cannot be nested inside another type"
                } else {
                    "only allowed as a job's return type"
                };
                self.sink.push(
                    Diagnostic::error(
                        "`Result` is only allowed as the return type of a job",
                        span,
                        label,
                    )
                    .with_help("fields carry plain data; a job can return `Result<T, E>`"),
                );
                return None;
            }
            if expr.args.len() != arity {
                let (message, label) = match arity {
                    0 => (
                        format!("`{name}` takes no type arguments"),
                        "remove the `<...>`".to_string(),
                    ),
                    1 => (
                        format!("`{name}` takes one type argument: `{name}<T>`"),
                        format!("{} given", expr.args.len()),
                    ),
                    _ => (
                        "`Map` takes two type arguments: `Map<String, T>`".to_string(),
                        format!("{} given", expr.args.len()),
                    ),
                };
                self.sink.push(Diagnostic::error(message, span, label));
                return None;
            }
            let ty = match name.as_str() {
                "bool" => Ty::Bool,
                "i8" => Ty::I8,
                "i16" => Ty::I16,
                "i32" => Ty::I32,
                "i64" => Ty::I64,
                "u8" => Ty::U8,
                "u16" => Ty::U16,
                "u32" => Ty::U32,
                "u64" => Ty::U64,
                "f32" => Ty::F32,
                "f64" => Ty::F64,
                "String" => Ty::String,
                "Bytes" => Ty::Bytes,
                "Json" => Ty::Json,
                "Vec" => Ty::Vec(Box::new(self.ty(
                    &expr.args[0],
                    module,
                    place,
                    depth + 1,
                )?)),
                "Option" => {
                    let inner = self.ty(&expr.args[0], module, place, depth + 1)?;
                    if matches!(inner, Ty::Option(_)) {
                        self.sink.push(
                            Diagnostic::error(
                                "`Option<Option<T>>` cannot be told apart from `Option<T>` on the wire",
                                span,
                                "both `None` and `Some(None)` are sent as a missing value",
                            )
                            .with_help("use a single `Option`, or an enum that names each case"),
                        );
                        return None;
                    }
                    Ty::Option(Box::new(inner))
                }
                "Map" => {
                    let key = &expr.args[0];
                    let key_ok = key.name == "String" && key.args.is_empty();
                    let value = self.ty(&expr.args[1], module, place, depth + 1);
                    if !key_ok {
                        self.sink.push(
                            Diagnostic::error(
                                "map keys must be `String`",
                                key.span(file),
                                "JSON object keys are strings",
                            )
                            .with_help(
                                "use `Map<String, T>`, or a `Vec` of key-value structs for other keys",
                            ),
                        );
                        return None;
                    }
                    Ty::Map(Box::new(value?))
                }
                _ => return None,
            };
            return Some(ty);
        }

        let found = self.resolve(&name, module);
        match found.as_slice() {
            [one] => {
                if !expr.args.is_empty() {
                    self.sink.push(Diagnostic::error(
                        format!("`{name}` takes no type arguments"),
                        span,
                        "schema structs and enums are not generic",
                    ));
                    return None;
                }
                Some(Ty::Named(*one))
            }
            [] => {
                self.sink.push(self.unknown_type(&name, name_span, module));
                None
            }
            many => {
                let files: Vec<String> = many
                    .iter()
                    .map(|r| {
                        let f = self.loaded.files[r.module.0].id;
                        format!("`{}`", self.sources.get(f).display.display())
                    })
                    .collect();
                self.sink.push(
                    Diagnostic::error(
                        format!("`{name}` is ambiguous"),
                        name_span,
                        "more than one imported file declares this name",
                    )
                    .with_note(format!("declared in {}", files.join(" and "))),
                );
                None
            }
        }
    }

    /// Candidates for a type name: the first local declaration wins;
    /// otherwise every imported declaration.
    fn resolve(&self, name: &str, module: usize) -> Vec<TypeRef> {
        if let Some(index) = self.declared[module].iter().position(|d| d.name == name) {
            return vec![TypeRef {
                module: ModuleId(module),
                index,
            }];
        }
        let mut found = Vec::new();
        for &import in &self.loaded.files[module].imports {
            if let Some(index) = self.declared[import].iter().position(|d| d.name == name) {
                let r = TypeRef {
                    module: ModuleId(import),
                    index,
                };
                if !found.contains(&r) {
                    found.push(r);
                }
            }
        }
        found
    }

    fn unknown_type(&self, name: &str, span: Span, module: usize) -> Diagnostic {
        let mut candidates: Vec<&str> = BUILTINS
            .iter()
            .copied()
            .filter(|b| *b != "Result")
            .collect();
        for d in &self.declared[module] {
            candidates.push(&d.name);
        }
        for &import in &self.loaded.files[module].imports {
            for d in &self.declared[import] {
                candidates.push(&d.name);
            }
        }
        let diagnostic = Diagnostic::error(
            format!("unknown type `{name}`"),
            span,
            "not a built-in type or a type declared in or imported by this file",
        );
        if let Some((_, hint)) = FAMILIAR.iter().find(|(n, _)| *n == name) {
            return diagnostic.with_help(*hint);
        }
        if let Some(suggestion) = did_you_mean(name, candidates) {
            return diagnostic.with_help(format!("did you mean `{suggestion}`?"));
        }
        // Declared in a loaded file this one does not import?
        for (other, declared) in self.declared.iter().enumerate() {
            if other != module && declared.iter().any(|d| d.name == name) {
                let path = &self.sources.get(self.loaded.files[other].id).display;
                return diagnostic.with_help(format!(
                    "`{name}` is declared in `{}`; import that file",
                    path.display()
                ));
            }
        }
        diagnostic
    }
}

fn naming_unraw(ident: &syn::Ident) -> String {
    use syn::ext::IdentExt;
    ident.unraw().to_string()
}
