//! How schema names become Python names (PEP 8), and the check that the
//! names one module defines do not collide.
//!
//! Classes are CapWords, attributes, parameters, methods and functions
//! snake_case, job constants UPPER_SNAKE. A name that is a Python keyword or
//! soft keyword (`type`, `match`), or one generated code needs unshadowed in
//! a class body (`int`, `list`, `typing`, an imported module's name), gets a
//! trailing underscore: `type_`, `self_`. The wire keeps the schema's spelling.

use std::collections::BTreeMap;

use crate::diagnostic::Diagnostic;
use crate::model::{Field, ModuleId, Returns, Schema, TypeKind, VariantShape};
use crate::naming::{snake_case, upper_camel};
use crate::source::Span;

const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield", // soft keywords
    "match", "case", "type", "_",
];

/// Names generated code uses in class bodies and signatures: a field, a
/// parameter or a method with one of these names would shadow it.
const RESERVED: &[&str] = &[
    "self",
    "cls",
    "bool",
    "int",
    "float",
    "str",
    "bytes",
    "list",
    "dict",
    "object",
    "typing",
    "abc",
    "dataclasses",
    "datetime",
    "warnings",
    "rpc_runtime",
];

/// The Python names of one module's items, computed once.
pub(crate) struct Names<'a> {
    /// Imported modules' names (`common`), also reserved.
    imported: Vec<String>,
    schema: &'a Schema,
}

impl<'a> Names<'a> {
    pub(crate) fn new(schema: &'a Schema, id: ModuleId) -> Names<'a> {
        let imported = super::codec::imports(schema, id)
            .into_iter()
            .map(|m| schema.module(m).out_stem.clone())
            .collect();
        Names { imported, schema }
    }

    /// A field, parameter, method or function name.
    pub(crate) fn value(&self, schema_name: &str) -> String {
        let mut name = snake_case(schema_name);
        while KEYWORDS.contains(&name.as_str())
            || RESERVED.contains(&name.as_str())
            || self.imported.contains(&name)
        {
            name.push('_');
        }
        name
    }

    pub(crate) fn schema(&self) -> &'a Schema {
        self.schema
    }
}

/// A class name (CapWords).
pub(crate) fn class(schema_name: &str) -> String {
    let mut name = upper_camel(schema_name);
    if KEYWORDS.contains(&name.as_str()) {
        name.push('_');
    }
    name
}

/// The class of an enum's variant: `Shape` + `Circle` -> `ShapeCircle`.
pub(crate) fn variant_class(enum_name: &str, variant: &str) -> String {
    format!("{}{}", class(enum_name), class(variant))
}

/// `UPPER_SNAKE` for a job's `JobSpec` constant: `DRAWING_HEADER_VALUE`.
pub(crate) fn constant(service: &str, job: &str) -> String {
    format!("{}_{}", snake_case(service), snake_case(job))
        .trim_start_matches('_')
        .to_uppercase()
}

/// The names a service's jobs get in its client classes (`add`, `add_send`).
pub(crate) fn client_methods(names: &Names<'_>, job: &crate::model::Job) -> (String, String) {
    let method = names.value(&job.schema_name);
    let method = if method == "with_options" {
        format!("{method}_")
    } else {
        method
    };
    let send = format!("{method}_send");
    (method, send)
}

/// Every module-level and class-level name this module's Python would
/// define twice, as errors: such a schema is valid for Rust but not here.
pub(crate) fn check(schema: &Schema, id: ModuleId) -> Vec<Diagnostic> {
    let module = schema.module(id);
    let names = Names::new(schema, id);
    let mut errors = Vec::new();
    let mut top: BTreeMap<String, (Span, String)> = BTreeMap::new();
    let mut define = |name: String, span: Span, what: String, errors: &mut Vec<Diagnostic>| {
        if let Some((first, first_what)) = top.get(&name) {
            errors.push(
                Diagnostic::error(
                    format!("{what} and {first_what} are both `{name}` in Python"),
                    span,
                    "generated Python would define this name twice",
                )
                .with_label(*first, format!("{first_what} is here"))
                .with_help("rename one of them in the schema"),
            );
        } else {
            top.insert(name, (span, what));
        }
    };
    for def in &module.types {
        match &def.kind {
            TypeKind::Struct(fields) => check_fields(
                &names,
                fields,
                &format!("struct `{}`", def.schema_name),
                &mut errors,
            ),
            TypeKind::Enum(variants) => {
                for v in variants {
                    if let VariantShape::Struct(fields) = &v.shape {
                        let what = format!("variant `{}::{}`", def.schema_name, v.schema_name);
                        check_fields(&names, fields, &what, &mut errors);
                    }
                }
            }
        }
        let class_name = class(&def.schema_name);
        define(
            class_name.clone(),
            def.span,
            format!("type `{}`", def.schema_name),
            &mut errors,
        );
        if let TypeKind::Enum(variants) = &def.kind {
            for v in variants {
                define(
                    variant_class(&def.schema_name, &v.schema_name),
                    v.span,
                    format!("variant `{}::{}`", def.schema_name, v.schema_name),
                    &mut errors,
                );
            }
            define(
                format!("{class_name}Exception"),
                def.span,
                format!("the exception of enum `{}`", def.schema_name),
                &mut errors,
            );
        }
    }
    for service in &module.services {
        let class_name = class(&service.schema_name);
        let what = |role: &str| format!("the {role} of service `{}`", service.schema_name);
        for (name, role) in [
            (class_name.clone(), "handler class"),
            (format!("Async{class_name}"), "async handler class"),
            (format!("{class_name}Client"), "client class"),
            (format!("Async{class_name}Client"), "async client class"),
            (
                format!("{}_service", names.value(&service.schema_name)),
                "service function",
            ),
        ] {
            define(name, service.span, what(role), &mut errors);
        }
        let mut methods: BTreeMap<String, (Span, String)> = BTreeMap::new();
        for job in &service.jobs {
            let what = format!("job `{}.{}`", service.schema_name, job.schema_name);
            check_fields(&names, &job.params, &what, &mut errors);
            define(
                constant(&service.schema_name, &job.schema_name),
                job.span,
                format!(
                    "the JobSpec of job `{}.{}`",
                    service.schema_name, job.schema_name
                ),
                &mut errors,
            );
            let (method, send) = client_methods(&names, job);
            let mut list = vec![method];
            if !matches!(job.returns, Returns::Nothing) {
                list.push(send);
            }
            for m in list {
                let what = format!("a client method of job `{}`", job.schema_name);
                if let Some((first, first_what)) = methods.get(&m) {
                    errors.push(
                        Diagnostic::error(
                            format!("{what} and {first_what} are both `{m}` in Python"),
                            job.span,
                            "generated Python would define this method twice",
                        )
                        .with_label(*first, format!("{first_what} is here"))
                        .with_help("rename one of the jobs in the schema"),
                    );
                } else {
                    methods.insert(m, (job.span, what));
                }
            }
        }
    }
    errors
}

/// Two fields (or parameters) of one container with one Python name
/// (`type` is escaped to `type_`, which may also be a field).
fn check_fields(
    names: &Names<'_>,
    fields: &[Field],
    container: &str,
    errors: &mut Vec<Diagnostic>,
) {
    let mut seen: BTreeMap<String, &Field> = BTreeMap::new();
    for f in fields {
        let name = names.value(&f.schema_name);
        if let Some(first) = seen.get(&name) {
            errors.push(
                Diagnostic::error(
                    format!(
                        "`{}` and `{}` of {container} are both `{name}` in Python",
                        first.schema_name, f.schema_name
                    ),
                    f.span,
                    "generated Python would define this name twice",
                )
                .with_label(first.span, "the first is here")
                .with_help("rename one of them in the schema (`#[rename]` keeps the wire name)"),
            );
        } else {
            seen.insert(name, f);
        }
    }
}
