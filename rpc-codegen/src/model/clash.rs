//! Names that would collide: in the schema, in the generated Rust, or on the
//! wire.
//!
//! Three levels are checked for every group of sibling names (fields of a
//! struct, variants of an enum, jobs of a service, types of a file), in order,
//! and each pair is reported once at the first level where it collides:
//! 1. the same schema name twice;
//! 2. different schema names that become the same Rust name after case
//!    conversion (`fooBar`, `foo_bar`), or that collide with a name the
//!    emitter generates (`CalculatorClient`, `CalculatorAddRequest`, ...);
//! 3. the same wire name twice (after `#[rename]`).

use super::{Field, Module, Schema, Service, TypeKind, VariantShape};
use crate::diagnostic::{Diagnostic, Sink};
use crate::source::Span;

/// Names from Rust's prelude that generated code uses unqualified (or that a
/// derive's expansion may); a schema type of that name would shadow them.
const PRELUDE: &[&str] = &[
    "Box",
    "Option",
    "Vec",
    "String",
    "Result",
    "Send",
    "Sync",
    "Sized",
    "Unpin",
    "Copy",
    "Clone",
    "Drop",
    "Fn",
    "FnMut",
    "FnOnce",
    "ToOwned",
    "ToString",
    "PartialEq",
    "PartialOrd",
    "Eq",
    "Ord",
    "AsRef",
    "AsMut",
    "Into",
    "From",
    "Default",
    "Iterator",
    "Extend",
    "IntoIterator",
    "DoubleEndedIterator",
    "ExactSizeIterator",
    "TryFrom",
    "TryInto",
    "FromIterator",
];

/// Methods every generated client has.
const CLIENT_METHODS: &[&str] = &["new", "client"];

/// One name in a group of siblings.
struct Named<'a> {
    schema: &'a str,
    rust: &'a str,
    wire: &'a str,
    span: Span,
}

pub fn check(schema: &Schema, sink: &mut Sink) {
    for module in &schema.modules {
        check_module_namespace(module, sink);
        for def in &module.types {
            match &def.kind {
                TypeKind::Struct(fields) => check_fields(
                    fields,
                    "field",
                    &format!("struct `{}`", def.schema_name),
                    sink,
                ),
                TypeKind::Enum(variants) => {
                    let named: Vec<Named> = variants
                        .iter()
                        .map(|v| Named {
                            schema: &v.schema_name,
                            rust: v.name.as_str(),
                            wire: &v.wire,
                            span: v.span,
                        })
                        .collect();
                    check_group(
                        &named,
                        "variant",
                        &format!("enum `{}`", def.schema_name),
                        sink,
                    );
                    for v in variants {
                        if let VariantShape::Struct(fields) = &v.shape {
                            check_fields(
                                fields,
                                "field",
                                &format!("variant `{}::{}`", def.schema_name, v.schema_name),
                                sink,
                            );
                        }
                    }
                }
            }
        }
        for service in &module.services {
            check_service(service, sink);
        }
    }
}

fn check_fields(fields: &[Field], kind: &str, container: &str, sink: &mut Sink) {
    let named: Vec<Named> = fields
        .iter()
        .map(|f| Named {
            schema: &f.schema_name,
            rust: f.name.as_str(),
            wire: &f.wire,
            span: f.span,
        })
        .collect();
    check_group(&named, kind, container, sink);
}

/// The three-level check for one group of siblings.
/// Returns which items were reported, so later checks can skip them.
fn check_group(items: &[Named], kind: &str, container: &str, sink: &mut Sink) -> Vec<bool> {
    let mut reported = vec![false; items.len()];
    for (j, item) in items.iter().enumerate() {
        if let Some(first) = items[..j].iter().find(|i| i.schema == item.schema) {
            sink.push(
                Diagnostic::error(
                    format!(
                        "{kind} `{}` is declared more than once in {container}",
                        item.schema
                    ),
                    item.span,
                    "declared again here",
                )
                .with_label(first.span, "first declared here"),
            );
            reported[j] = true;
        }
    }
    for (j, item) in items.iter().enumerate() {
        if reported[j] {
            continue;
        }
        if let Some(first) = earlier_unreported(items, &reported, j, |n| n.rust) {
            sink.push(
                Diagnostic::error(
                    format!(
                        "{kind}s `{}` and `{}` of {container} both become `{}` in Rust",
                        first.schema, item.schema, item.rust
                    ),
                    item.span,
                    format!("becomes `{}`", item.rust),
                )
                .with_label(first.span, format!("also becomes `{}`", first.rust))
                .with_help(format!(
                    "rename one of them; `#[rename = \"{}\"]` keeps a name on the wire",
                    item.schema
                )),
            );
            reported[j] = true;
        }
    }
    for (j, item) in items.iter().enumerate() {
        if reported[j] {
            continue;
        }
        if let Some(first) = earlier_unreported(items, &reported, j, |n| n.wire) {
            sink.push(
                Diagnostic::error(
                    format!(
                        "{kind}s `{}` and `{}` of {container} both have the wire name `{}`",
                        first.schema, item.schema, item.wire
                    ),
                    item.span,
                    format!("sent as `{}`", item.wire),
                )
                .with_label(first.span, format!("also sent as `{}`", first.wire)),
            );
            reported[j] = true;
        }
    }
    reported
}

/// The first item before `items[j]` with the same `key`, among those not
/// reported yet.
fn earlier_unreported<'a>(
    items: &'a [Named<'a>],
    reported: &[bool],
    j: usize,
    key: impl Fn(&Named<'a>) -> &'a str,
) -> Option<&'a Named<'a>> {
    let wanted = key(&items[j]);
    items[..j]
        .iter()
        .enumerate()
        .find(|(i, other)| !reported[*i] && key(other) == wanted)
        .map(|(_, first)| first)
}

/// A generated Rust name and what produced it.
struct Generated {
    rust: String,
    span: Span,
    /// The schema-level name, when this entry is a declaration.
    declared: Option<String>,
    origin: String,
}

fn check_module_namespace(module: &Module, sink: &mut Sink) {
    let mut entries: Vec<Generated> = Vec::new();
    for def in &module.types {
        let kind = match def.kind {
            TypeKind::Struct(_) => "struct",
            TypeKind::Enum(_) => "enum",
        };
        entries.push(Generated {
            rust: def.name.as_str().to_string(),
            span: def.span,
            declared: Some(def.schema_name.clone()),
            origin: format!("{kind} `{}`", def.schema_name),
        });
    }
    for service in &module.services {
        entries.push(Generated {
            rust: service.name.as_str().to_string(),
            span: service.span,
            declared: Some(service.schema_name.clone()),
            origin: format!("service `{}` (its handler trait)", service.schema_name),
        });
        entries.push(Generated {
            rust: service.client.as_str().to_string(),
            span: service.span,
            declared: None,
            origin: format!("the client of service `{}`", service.schema_name),
        });
        entries.push(Generated {
            rust: service.server.as_str().to_string(),
            span: service.span,
            declared: None,
            origin: format!("the server of service `{}`", service.schema_name),
        });
        for (i, job) in service.jobs.iter().enumerate() {
            // Jobs that clash by name are reported with the service's jobs.
            let clashing = service.jobs[..i]
                .iter()
                .any(|j| j.schema_name == job.schema_name || j.method == job.method);
            if clashing {
                continue;
            }
            entries.push(Generated {
                rust: job.request.as_str().to_string(),
                span: job.span,
                declared: None,
                origin: format!(
                    "the request struct of job `{}.{}`",
                    service.schema_name, job.schema_name
                ),
            });
        }
    }
    // Keep source order so "first" really is first.
    entries.sort_by_key(|e| (e.span.start, e.declared.is_none()));

    let mut reported = vec![false; entries.len()];
    for (j, entry) in entries.iter().enumerate() {
        let Some(name) = &entry.declared else {
            continue;
        };
        let first = entries[..j]
            .iter()
            .find(|e| e.declared.as_deref() == Some(name.as_str()));
        if let Some(first) = first {
            sink.push(
                Diagnostic::error(
                    format!("the name `{name}` is defined more than once"),
                    entry.span,
                    format!("`{name}` defined again here"),
                )
                .with_label(first.span, format!("first definition of `{name}`")),
            );
            reported[j] = true;
        }
    }
    for (j, entry) in entries.iter().enumerate() {
        if reported[j] {
            continue;
        }
        let builtin = entry
            .declared
            .as_deref()
            .is_some_and(|name| super::lower::BUILTINS.contains(&name));
        if builtin {
            continue; // reported by lowering: a built-in cannot be redefined
        }
        if PRELUDE.contains(&entry.rust.as_str()) {
            sink.push(
                Diagnostic::error(
                    format!(
                        "`{}` would shadow the Rust prelude's `{}`, which generated code uses",
                        entry.rust, entry.rust
                    ),
                    entry.span,
                    format!("{} becomes `{}`", entry.origin, entry.rust),
                )
                .with_help("choose another name"),
            );
            reported[j] = true;
            continue;
        }
        let clash = entries[..j]
            .iter()
            .enumerate()
            .find(|(i, e)| !reported[*i] && e.rust == entry.rust);
        if let Some((_, first)) = clash {
            sink.push(
                Diagnostic::error(
                    format!(
                        "`{}` would be defined twice in the generated Rust",
                        entry.rust
                    ),
                    entry.span,
                    format!("{} becomes `{}`", entry.origin, entry.rust),
                )
                .with_label(
                    first.span,
                    format!("{} is also `{}`", first.origin, first.rust),
                )
                .with_help("rename one of them"),
            );
            reported[j] = true;
        }
    }
}

fn check_service(service: &Service, sink: &mut Sink) {
    let container = format!("service `{}`", service.schema_name);
    let named: Vec<Named> = service
        .jobs
        .iter()
        .map(|j| Named {
            schema: &j.schema_name,
            rust: j.method.as_str(),
            wire: &j.wire,
            span: j.span,
        })
        .collect();
    let jobs_reported = check_group(&named, "job", &container, sink);

    // Client methods: every job's method (jobs clashing among themselves
    // are reported above), beside the constructor and the accessor.
    for (job, reported) in service.jobs.iter().zip(&jobs_reported) {
        let name = job.method.as_str();
        if *reported || !CLIENT_METHODS.contains(&name) {
            continue;
        }
        sink.push(
            Diagnostic::error(
                format!(
                    "job `{}` would generate the client method `{name}`, which `{}` already has",
                    job.schema_name, service.client
                ),
                job.span,
                format!("generates `{name}`"),
            )
            .with_help(format!(
                "give the job another name; `#[rename = \"{name}\"]` keeps `{name}` on the wire"
            )),
        );
    }

    for job in &service.jobs {
        check_fields(
            &job.params,
            "parameter",
            &format!("job `{}.{}`", service.schema_name, job.schema_name),
            sink,
        );
    }
}
