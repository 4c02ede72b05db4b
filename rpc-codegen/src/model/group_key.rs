//! A job's group key in the schema: `#[group_by = "param"]` names the
//! parameter whose value is the key, `#[group_limit = K]` how many calls of
//! one key run at once (docs/PROTOCOL.md, "Per-key concurrency"). Checked
//! here against the job's parameters, apart from the attributes' own
//! syntax (`attrs.rs`).

use super::attrs::Attrs;
use super::{Field, Ty};
use crate::diagnostic::{did_you_mean, Diagnostic, Sink};

/// The index of the job's group-key parameter, if `#[group_by]` names one
/// that can be a key; problems (a limit without a key among them) go to
/// `sink`.
pub(super) fn lower(a: &Attrs, params: &[Field], sink: &mut Sink) -> Option<usize> {
    if let (None, Some((_, span))) = (&a.group_by, a.group_limit) {
        sink.push(
            Diagnostic::error(
                "attribute `group_limit` without `group_by`",
                span,
                "limits calls per group key, but the job's calls have none",
            )
            .with_help("name the parameter that holds the key: `#[group_by = \"tenant_id\"]`"),
        );
    }
    group_by(a, params, sink)
}

/// The index of the parameter `#[group_by]` names, checked: it exists
/// and holds a string or an integer (a value with a plain text form
/// that can be a key).
fn group_by(a: &Attrs, params: &[Field], sink: &mut Sink) -> Option<usize> {
    let (name, span) = a.group_by.as_ref()?;
    let Some(at) = params.iter().position(|p| p.schema_name == *name) else {
        let mut diagnostic = Diagnostic::error(
            format!("`group_by` names no parameter of the job: `{name}`"),
            *span,
            "no such parameter",
        );
        if let Some(suggestion) = did_you_mean(name, params.iter().map(|p| p.schema_name.as_str()))
        {
            diagnostic = diagnostic.with_help(format!("did you mean `{suggestion}`?"));
        } else if !params.is_empty() {
            let names: Vec<String> = params
                .iter()
                .map(|p| format!("`{}`", p.schema_name))
                .collect();
            diagnostic =
                diagnostic.with_note(format!("the job's parameters: {}", names.join(", ")));
        }
        sink.push(diagnostic);
        return None;
    };
    let keyable = matches!(
        params[at].ty,
        Ty::String | Ty::I8 | Ty::I16 | Ty::I32 | Ty::I64 | Ty::U8 | Ty::U16 | Ty::U32 | Ty::U64
    );
    if !keyable {
        sink.push(
            Diagnostic::error(
                format!("`group_by` parameter `{name}` is not a string or an integer"),
                *span,
                "a group key is the parameter's value as text",
            )
            .with_label(params[at].span, "declared here")
            .with_help("group by a `String` or integer parameter (a tenant id, say)"),
        );
        return None;
    }
    Some(at)
}
