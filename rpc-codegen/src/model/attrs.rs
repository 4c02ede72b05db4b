//! The schema's attributes: which exist, where they may go, what values they
//! take.
//!
//! | attribute | on | value |
//! |---|---|---|
//! | `///`, `#[doc = "..."]` | everything | text |
//! | `#[timeout_ms = N]` | jobs | default deadline, N >= 1 |
//! | `#[attempts = N]` | jobs | max delivery attempts, N >= 1 |
//! | `#[backoff = "exponential(100ms, 30s)"]` | jobs | retry delays (see `backoff`); not with `#[attempts = 1]` |
//! | `#[group_by = "param"]` | jobs | the parameter whose value is a call's group key (a string or integer parameter) |
//! | `#[group_limit = K]` | jobs | calls of one group key running at once, 1..=10000 (default 1); needs `group_by` |
//! | `#[priority = N]` | jobs | its calls' default priority, 1 (taken first) to 5 (`rpc_protocol::priority`; default 3) |
//! | `#[shards = N]` | services | queues the service is spread over, 1..=256 (`rpc_protocol::shards`) |
//! | `#[rate = "50/s"]` | jobs, services | starts allowed across the fleet (`rpc_protocol::rate`) |
//! | `#[deprecated]`, `#[deprecated = "why"]` | types, fields, variants, jobs | |
//! | `#[rename = "wire"]` | fields, parameters, variants, jobs | name on the wire |
//!
//! Anything else is an error with a hint, never silently ignored: a typo in
//! `#[timeout_ms]` must not quietly leave a job without a timeout. So is an
//! attribute that could never act: a backoff on a job with one attempt.

use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprLit, Lit, Meta};

use super::Deprecated;
use crate::diagnostic::{did_you_mean, Diagnostic, Sink};
use crate::source::{FileId, Span};
use rpc_protocol::backoff::{self, Backoff};
use rpc_protocol::rate::{self, RateLimit};

/// What an attribute list is attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    File,
    Import,
    Struct,
    Enum,
    Field,
    Variant,
    Param,
    Job,
    Service,
}

impl Target {
    fn describe(self) -> &'static str {
        match self {
            Target::File => "a file",
            Target::Import => "an import",
            Target::Struct => "a struct",
            Target::Enum => "an enum",
            Target::Field => "a field",
            Target::Variant => "a variant",
            Target::Param => "a parameter",
            Target::Job => "a job",
            Target::Service => "a service",
        }
    }
}

/// The attributes of one item, checked.
#[derive(Default, Debug)]
pub struct Attrs {
    pub docs: Vec<String>,
    pub deprecated: Option<Deprecated>,
    /// The wire name and where it was given.
    pub rename: Option<(String, Span)>,
    pub timeout_ms: Option<u64>,
    pub attempts: Option<u32>,
    pub backoff: Option<Backoff>,
    pub shards: Option<u32>,
    pub rate: Option<RateLimit>,
    /// `#[group_by = "param"]`: the parameter's schema name, and where.
    pub group_by: Option<(String, Span)>,
    /// `#[group_limit = K]`, and where.
    pub group_limit: Option<(u32, Span)>,
    /// `#[priority = N]`, 1..=5.
    pub priority: Option<u8>,
}

impl Attrs {
    /// The name on the wire: the `#[rename]` if one was given, else the
    /// schema name.
    pub fn wire_name(&self, schema_name: &str) -> String {
        match &self.rename {
            Some((wire, _)) => wire.clone(),
            None => schema_name.to_owned(),
        }
    }
}

/// Name, where it may appear, and how its value is written (for messages).
const KNOWN: &[(&str, &[Target], &str)] = &[
    (
        "timeout_ms",
        &[Target::Job],
        "`#[timeout_ms = 2000]` (milliseconds, at least 1)",
    ),
    ("attempts", &[Target::Job], "`#[attempts = 3]` (at least 1)"),
    ("backoff", &[Target::Job], backoff::USAGE),
    ("shards", &[Target::Service], "`#[shards = 8]` (1 to 256)"),
    (
        "priority",
        &[Target::Job],
        "`#[priority = 1]` (1, taken first, to 5; default 3)",
    ),
    ("rate", &[Target::Job, Target::Service], rate::USAGE),
    (
        "group_by",
        &[Target::Job],
        "`#[group_by = \"tenant_id\"]` (a parameter of the job)",
    ),
    (
        "group_limit",
        &[Target::Job],
        "`#[group_limit = 4]` (1 to 10000)",
    ),
    (
        "deprecated",
        &[
            Target::Struct,
            Target::Enum,
            Target::Field,
            Target::Variant,
            Target::Job,
        ],
        "`#[deprecated]` or `#[deprecated = \"reason\"]`",
    ),
    (
        "rename",
        &[Target::Field, Target::Param, Target::Variant, Target::Job],
        "`#[rename = \"wireName\"]`",
    ),
];

fn span_of(file: FileId, tokens: &impl Spanned) -> Span {
    Span::from_proc_macro(file, tokens.span())
}

/// Checks and collects `attrs`; problems go to `sink`.
pub fn lower(attrs: &[Attribute], target: Target, file: FileId, sink: &mut Sink) -> Attrs {
    let mut out = Attrs::default();
    let mut seen: Vec<(String, Span)> = Vec::new();
    for attr in attrs {
        let path_span = span_of(file, attr.path());
        let name = match attr.path().get_ident() {
            Some(ident) => ident.to_string(),
            None => {
                let text = quote::ToTokens::to_token_stream(attr.path())
                    .to_string()
                    .replace(' ', "");
                sink.push(unknown(&text, path_span, target));
                continue;
            }
        };

        if name == "doc" {
            match doc_text(attr) {
                Some(text) => out.docs.push(text),
                None => sink.push(Diagnostic::error(
                    "malformed doc attribute",
                    span_of(file, attr),
                    "expected `#[doc = \"text\"]` or a `///` comment",
                )),
            }
            continue;
        }

        let Some((_, targets, usage)) = KNOWN.iter().find(|(known, _, _)| *known == name) else {
            sink.push(unknown(&name, path_span, target));
            continue;
        };
        if !targets.contains(&target) {
            let allowed: Vec<&str> = targets.iter().map(|t| t.describe()).collect();
            sink.push(
                Diagnostic::error(
                    format!("attribute `{name}` is not allowed on {}", target.describe()),
                    path_span,
                    "not allowed here",
                )
                .with_help(format!("`{name}` goes on {}", join_or(&allowed))),
            );
            continue;
        }
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
            sink.push(
                Diagnostic::error(
                    format!("attribute `{name}` is given more than once"),
                    path_span,
                    "given again here",
                )
                .with_label(*first, "first given here"),
            );
            continue;
        }
        seen.push((name.clone(), path_span));

        let bad_value = |label: &str, span: Span| {
            Diagnostic::error(format!("bad value for attribute `{name}`"), span, label)
                .with_help(format!("write it as {usage}"))
        };
        match name.as_str() {
            "timeout_ms" => match int_value(attr, file) {
                Ok((value, span)) => match value.base10_parse::<u64>() {
                    Ok(0) => sink.push(bad_value("a timeout must be at least 1 ms", span)),
                    Ok(n) if value.suffix().is_empty() => out.timeout_ms = Some(n),
                    Ok(_) => sink.push(bad_value("write the number without a suffix", span)),
                    Err(_) => sink.push(bad_value("too large for a u64", span)),
                },
                Err(span) => sink.push(bad_value("expected a whole number of milliseconds", span)),
            },
            "attempts" => match int_value(attr, file) {
                Ok((value, span)) => match value.base10_parse::<u32>() {
                    Ok(0) => sink.push(bad_value("at least one attempt is needed", span)),
                    Ok(n) if value.suffix().is_empty() => out.attempts = Some(n),
                    Ok(_) => sink.push(bad_value("write the number without a suffix", span)),
                    Err(_) => sink.push(bad_value("too large for a u32", span)),
                },
                Err(span) => sink.push(bad_value("expected a whole number", span)),
            },
            "shards" => match int_value(attr, file) {
                Ok((value, span)) => match value.base10_parse::<u32>() {
                    Ok(n) if !rpc_protocol::shards::is_count(n) => sink.push(bad_value(
                        &format!(
                            "a service has 1 to {} shards",
                            rpc_protocol::shards::MAX_SHARDS
                        ),
                        span,
                    )),
                    Ok(n) if value.suffix().is_empty() => out.shards = Some(n),
                    Ok(_) => sink.push(bad_value("write the number without a suffix", span)),
                    Err(_) => sink.push(bad_value("too large for a u32", span)),
                },
                Err(span) => sink.push(bad_value("expected a whole number", span)),
            },
            "priority" => match int_value(attr, file) {
                Ok((value, span)) => match value.base10_parse::<u8>() {
                    Ok(n) if !rpc_protocol::priority::is_priority(n) => sink.push(bad_value(
                        "a priority is 1 (taken first) to 5 (last); 3 is the default",
                        span,
                    )),
                    Ok(n) if value.suffix().is_empty() => out.priority = Some(n),
                    Ok(_) => sink.push(bad_value("write the number without a suffix", span)),
                    Err(_) => sink.push(bad_value(
                        "a priority is 1 (taken first) to 5 (last); 3 is the default",
                        span,
                    )),
                },
                Err(span) => sink.push(bad_value("expected a whole number", span)),
            },
            "group_by" => match str_value(attr, file) {
                Ok((text, span)) if text.is_empty() => {
                    sink.push(bad_value("name a parameter of the job", span))
                }
                Ok((text, span)) => out.group_by = Some((text, span)),
                Err(span) => sink.push(bad_value("expected a string", span)),
            },
            "group_limit" => match int_value(attr, file) {
                Ok((value, span)) => match value.base10_parse::<u32>() {
                    Ok(n) if !(1..=rpc_protocol::limits::MAX_GROUP_LIMIT).contains(&n) => sink
                        .push(bad_value(
                            &format!(
                                "a per-key limit is 1 to {}",
                                rpc_protocol::limits::MAX_GROUP_LIMIT
                            ),
                            span,
                        )),
                    Ok(n) if value.suffix().is_empty() => out.group_limit = Some((n, span)),
                    Ok(_) => sink.push(bad_value("write the number without a suffix", span)),
                    Err(_) => sink.push(bad_value("too large for a u32", span)),
                },
                Err(span) => sink.push(bad_value("expected a whole number", span)),
            },
            "backoff" => match str_value(attr, file) {
                Ok((text, span)) => match text.parse::<Backoff>().map_err(|e| e.to_string()) {
                    Ok(policy) => out.backoff = Some(policy),
                    Err(expected) => sink.push(bad_value(&expected, span)),
                },
                Err(span) => sink.push(bad_value("expected a string", span)),
            },
            "rate" => match str_value(attr, file) {
                Ok((text, span)) => match text.parse::<RateLimit>() {
                    Ok(limit) => out.rate = Some(limit),
                    Err(e) => sink.push(bad_value(&e.reason(), span)),
                },
                Err(span) => sink.push(bad_value("expected a string", span)),
            },
            "deprecated" => match &attr.meta {
                Meta::Path(_) => out.deprecated = Some(Deprecated { note: None }),
                _ => match str_value(attr, file) {
                    Ok((text, _)) => out.deprecated = Some(Deprecated { note: Some(text) }),
                    Err(span) => sink.push(bad_value("expected a string", span)),
                },
            },
            "rename" => match str_value(attr, file) {
                Ok((text, span)) if text.is_empty() => {
                    sink.push(bad_value("the wire name cannot be empty", span))
                }
                Ok((text, span)) => out.rename = Some((text, span)),
                Err(span) => sink.push(bad_value("expected a string", span)),
            },
            _ => {}
        }
    }
    if let (Some(1), Some(_)) = (out.attempts, out.backoff) {
        if let Some(diagnostic) = backoff_without_retries(&seen) {
            sink.push(diagnostic);
        }
    }
    out
}

/// `#[backoff]` next to `#[attempts = 1]`: the job is never retried, so the
/// policy would never be used; likely a mistake in one of the two.
/// (`None` only if either attribute was not seen, which the caller rules out.)
fn backoff_without_retries(seen: &[(String, Span)]) -> Option<Diagnostic> {
    let span = |name: &str| seen.iter().find(|(n, _)| n == name).map(|(_, span)| *span);
    Some(
        Diagnostic::error(
            "attribute `backoff` on a job that is never retried",
            span("backoff")?,
            "this policy would never be used",
        )
        .with_label(span("attempts")?, "one attempt only")
        .with_help("allow retries with `#[attempts = N]` (N > 1), or remove `#[backoff]`"),
    )
}

fn unknown(name: &str, span: Span, target: Target) -> Diagnostic {
    let mut diagnostic = Diagnostic::error(
        format!("unknown attribute `{name}`"),
        span,
        "not an attribute of the schema language",
    );
    let allowed: Vec<&str> = KNOWN
        .iter()
        .filter(|(_, targets, _)| targets.contains(&target))
        .map(|(n, _, _)| *n)
        .collect();
    if let Some(suggestion) = did_you_mean(name, KNOWN.iter().map(|(n, _, _)| *n)) {
        diagnostic = diagnostic.with_help(format!("did you mean `{suggestion}`?"));
    } else if allowed.is_empty() {
        diagnostic = diagnostic.with_note(format!(
            "only doc comments are allowed on {}",
            target.describe()
        ));
    } else {
        let list: Vec<String> = allowed.iter().map(|n| format!("`{n}`")).collect();
        diagnostic = diagnostic.with_note(format!(
            "attributes allowed on {}: {}",
            target.describe(),
            list.join(", ")
        ));
    }
    diagnostic
}

fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn doc_text(attr: &Attribute) -> Option<String> {
    match &attr.meta {
        Meta::NameValue(nv) => match &nv.value {
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    }
}

/// The `N` of `#[name = N]`, or the span to blame.
fn int_value(attr: &Attribute, file: FileId) -> Result<(syn::LitInt, Span), Span> {
    match &attr.meta {
        Meta::NameValue(nv) => match &nv.value {
            Expr::Lit(ExprLit {
                lit: Lit::Int(i), ..
            }) => Ok((i.clone(), span_of(file, i))),
            other => Err(span_of(file, other)),
        },
        other => Err(span_of(file, other)),
    }
}

/// The `"text"` of `#[name = "text"]`, or the span to blame.
fn str_value(attr: &Attribute, file: FileId) -> Result<(String, Span), Span> {
    match &attr.meta {
        Meta::NameValue(nv) => match &nv.value {
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) => Ok((s.value(), span_of(file, s))),
            other => Err(span_of(file, other)),
        },
        other => Err(span_of(file, other)),
    }
}
