//! Schema structs as dataclasses, and each job's parameters as a private
//! dataclass of the same shape (what a client writes and a handler reads).

use super::codec::{annotation, is_json, optional_inner, reader, writer};
use super::names::{self, Names};
use super::{string, Code};
use crate::model::{Deprecated, Field, Job, ModuleId, Service, TypeDef};

/// A deprecation note for a docstring.
pub(crate) fn deprecation(d: &Option<Deprecated>) -> Vec<String> {
    match d {
        None => Vec::new(),
        Some(Deprecated { note: None }) => vec!["Deprecated.".to_string()],
        Some(Deprecated { note: Some(note) }) => vec![format!("Deprecated: {note}")],
    }
}

/// `@dataclass class Point` with `to_json` and `from_json`.
pub(crate) fn schema_struct(
    code: &mut Code,
    names: &Names<'_>,
    id: ModuleId,
    def: &TypeDef,
    fields: &[Field],
) {
    let class = names::class(&def.schema_name);
    let mut extra = deprecation(&def.deprecated);
    extra.push(format!(
        "JSON: an object keyed by the schema's field names (struct `{}`).",
        def.schema_name
    ));
    dataclass(
        code,
        names,
        id,
        &class,
        &def.docs,
        &extra,
        fields,
        &format!("struct {} (an object)", def.schema_name),
    );
}

/// `_<Service><Job>Params`: the job's `params` object.
pub(crate) fn params_class(
    code: &mut Code,
    names: &Names<'_>,
    id: ModuleId,
    service: &Service,
    job: &Job,
) {
    let class = params_class_name(service, job);
    let extra = [format!(
        "The parameters of job `{}.{}`: the message's `params` object.",
        service.wire, job.wire
    )];
    dataclass(
        code,
        names,
        id,
        &class,
        &[],
        &extra,
        &job.params,
        &format!(
            "the parameters of {}.{} (an object)",
            service.wire, job.wire
        ),
    );
}

pub(crate) fn params_class_name(service: &Service, job: &Job) -> String {
    format!(
        "_{}{}Params",
        names::class(&service.schema_name),
        names::class(&job.schema_name)
    )
}

#[allow(clippy::too_many_arguments)]
fn dataclass(
    code: &mut Code,
    names: &Names<'_>,
    id: ModuleId,
    class: &str,
    docs: &[String],
    extra: &[String],
    fields: &[Field],
    what: &str,
) {
    code.blank();
    code.blank();
    code.line("@dataclasses.dataclass(slots=True)");
    code.line(format!("class {class}:"));
    code.indented(|code| {
        code.docstring(docs, extra);
        field_lines(code, names, id, fields);
        code.blank();
        code.line("def to_json(self, path: str = \"\") -> dict[str, typing.Any]:");
        code.indented(|code| {
            code.line("\"\"\"This value as JSON (raises ``EncodeError`` naming the field).\"\"\"");
            write_object(code, names, id, fields, "out", "self");
            code.line("return out");
        });
        code.blank();
        code.line("@classmethod");
        code.line(format!(
            "def from_json(cls, value: typing.Any, path: str = \"\") -> {class}:"
        ));
        code.indented(|code| {
            code.line("\"\"\"Reads JSON (raises ``DecodeError`` naming the field).\"\"\"");
            read_object(code, names, id, fields, what);
        });
    });
}

/// The field declarations of a dataclass: required fields positional, in
/// schema order; then `Option` fields, keyword-only, defaulting to None.
pub(crate) fn field_lines(code: &mut Code, names: &Names<'_>, id: ModuleId, fields: &[Field]) {
    let schema = names.schema();
    let (optional, required): (Vec<&Field>, Vec<&Field>) =
        fields.iter().partition(|f| optional_inner(&f.ty).is_some());
    if !fields.is_empty() {
        code.blank();
    }
    let declare = |code: &mut Code, f: &Field, default: &str| {
        let name = names.value(&f.schema_name);
        let ty = annotation(schema, id, &f.ty);
        code.line(format!("{name}: {ty}{default}"));
        let mut extra = deprecation(&f.deprecated);
        if f.wire != name {
            extra.push(format!("``{}`` on the wire.", f.wire));
        }
        code.docstring(&f.docs, &extra);
    };
    for f in required {
        declare(code, f, "");
    }
    if !optional.is_empty() {
        code.line("_: dataclasses.KW_ONLY");
    }
    for f in optional {
        declare(code, f, " = None");
    }
}

/// Statements building the object `var` from `owner.<field>`s; `path` is
/// the path of the object.
pub(crate) fn write_object(
    code: &mut Code,
    names: &Names<'_>,
    id: ModuleId,
    fields: &[Field],
    var: &str,
    owner: &str,
) {
    let schema = names.schema();
    let required: Vec<&Field> = fields
        .iter()
        .filter(|f| optional_inner(&f.ty).is_none())
        .collect();
    if required.is_empty() {
        code.line(format!("{var}: dict[str, typing.Any] = {{}}"));
    } else {
        code.line(format!("{var}: dict[str, typing.Any] = {{"));
        code.indented(|code| {
            for f in &required {
                let name = names.value(&f.schema_name);
                let wire = string(&f.wire);
                code.line(format!(
                    "{wire}: {}({owner}.{name}, _codec.at(path, {wire})),",
                    writer(schema, id, &f.ty)
                ));
            }
        });
        code.line("}");
    }
    for f in fields {
        if let Some(inner) = optional_inner(&f.ty) {
            let name = names.value(&f.schema_name);
            let wire = string(&f.wire);
            code.line(format!("if {owner}.{name} is not None:"));
            code.indented(|code| {
                code.line(format!(
                    "{var}[{wire}] = {}({owner}.{name}, _codec.at(path, {wire}))",
                    writer(schema, id, inner)
                ));
            });
        }
    }
}

/// Statements reading `value` (at `path`) as an object of `fields` and
/// returning `cls(...)`.
pub(crate) fn read_object(
    code: &mut Code,
    names: &Names<'_>,
    id: ModuleId,
    fields: &[Field],
    what: &str,
) {
    let schema = names.schema();
    if fields.is_empty() {
        code.line(format!("_codec.read_object(value, path, {})", string(what)));
        code.line("return cls()");
        return;
    }
    code.line(format!(
        "obj = _codec.read_object(value, path, {})",
        string(what)
    ));
    code.line("return cls(");
    code.indented(|code| {
        for f in fields {
            let name = names.value(&f.schema_name);
            let wire = string(&f.wire);
            let expr = if let Some(inner) = optional_inner(&f.ty) {
                format!(
                    "_codec.optional_field(obj, {wire}, path, {})",
                    reader(schema, id, inner)
                )
            } else if is_json(&f.ty) {
                format!("_codec.json_field(obj, {wire}, path)")
            } else {
                format!(
                    "_codec.field(obj, {wire}, path, {})",
                    reader(schema, id, &f.ty)
                )
            };
            code.line(format!("{name}={expr},"));
        }
    });
    code.line(")");
}
