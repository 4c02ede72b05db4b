//! Schema enums as a family of classes: a base class named after the enum
//! (`Shape`, with `from_json` reading any variant) and one dataclass per
//! variant (`ShapeCircle(center, radius)`, `ShapePolygon(value)`,
//! `ShapeEmpty()`), so values pattern-match with `match`. JSON is externally
//! tagged, exactly as docs/PROTOCOL.md says. An enum that is a job's error
//! type also gets `<Enum>Exception`, the `rpc_runtime.AppError` carrying it.

use super::codec::{annotation, reader, writer};
use super::names::{self, Names};
use super::types::{deprecation, field_lines, read_object, write_object};
use super::{string, Code};
use crate::model::{ModuleId, Returns, Schema, TypeDef, TypeRef, Variant, VariantShape};

pub(crate) fn schema_enum(
    code: &mut Code,
    names: &Names<'_>,
    id: ModuleId,
    def: &TypeDef,
    variants: &[Variant],
) {
    let schema = names.schema();
    let base = names::class(&def.schema_name);
    let classes: Vec<String> = variants
        .iter()
        .map(|v| names::variant_class(&def.schema_name, &v.schema_name))
        .collect();
    let mut extra = deprecation(&def.deprecated);
    extra.push(format!(
        "One of: {}.\nMatch on the variant classes. JSON: externally tagged (``\"Tag\"``\n\
         for a unit variant, ``{{\"Tag\": value}}`` otherwise).",
        classes
            .iter()
            .map(|c| format!("``{c}``"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    code.blank();
    code.blank();
    code.line(format!("class {base}:"));
    code.indented(|code| {
        code.docstring(&def.docs, &extra);
        code.blank();
        code.line("__slots__ = ()");
        code.blank();
        code.line("def to_json(self, path: str = \"\") -> typing.Any:");
        code.indented(|code| {
            code.line("\"\"\"This value as JSON (raises ``EncodeError`` naming the field).\"\"\"");
            code.line(format!(
                "raise NotImplementedError(\"{base} is abstract: use one of its variant classes\")"
            ));
        });
        code.blank();
        code.line("@classmethod");
        code.line(format!(
            "def from_json(cls, value: typing.Any, path: str = \"\") -> {base}:"
        ));
        code.indented(|code| {
            code.line("\"\"\"Reads any variant (raises ``DecodeError`` naming the field).\"\"\"");
            let tuple = |shape_is_unit: bool| {
                let tags: Vec<String> = variants
                    .iter()
                    .filter(|v| matches!(v.shape, VariantShape::Unit) == shape_is_unit)
                    .map(|v| string(&v.wire))
                    .collect();
                match tags.len() {
                    0 => "()".to_string(),
                    1 => format!("({},)", tags[0]),
                    _ => format!("({})", tags.join(", ")),
                }
            };
            code.line("tag, inner = _codec.read_variant(");
            code.indented(|code| {
                code.line(format!(
                    "value, path, {}, {}, {}",
                    string(&def.schema_name),
                    tuple(true),
                    tuple(false)
                ));
            });
            code.line(")");
            for (v, class) in variants.iter().zip(&classes) {
                let wire = string(&v.wire);
                code.line(format!("if tag == {wire}:"));
                code.indented(|code| match &v.shape {
                    VariantShape::Unit => code.line(format!("return {class}()")),
                    VariantShape::Newtype(ty) => code.line(format!(
                        "return {class}({}(inner, _codec.at(path, {wire})))",
                        reader(schema, id, ty)
                    )),
                    VariantShape::Struct(_) => code.line(format!(
                        "return {class}._from_inner(inner, _codec.at(path, {wire}))"
                    )),
                });
            }
            code.line("raise AssertionError(tag)  # read_variant knows every tag");
        });
    });
    for (v, class) in variants.iter().zip(&classes) {
        variant(code, names, id, def, &base, class, v);
    }
}

fn variant(
    code: &mut Code,
    names: &Names<'_>,
    id: ModuleId,
    def: &TypeDef,
    base: &str,
    class: &str,
    v: &Variant,
) {
    let schema = names.schema();
    let wire = string(&v.wire);
    let mut extra = deprecation(&v.deprecated);
    extra.push(match &v.shape {
        VariantShape::Unit => format!(
            "Variant `{}` of ``{base}``: JSON ``{wire}``.",
            v.schema_name
        ),
        _ => format!(
            "Variant `{}` of ``{base}``: JSON ``{{{wire}: ...}}``.",
            v.schema_name
        ),
    });
    code.blank();
    code.blank();
    match &v.shape {
        VariantShape::Unit => code.line("@dataclasses.dataclass(frozen=True, slots=True)"),
        _ => code.line("@dataclasses.dataclass(slots=True)"),
    }
    code.line(format!("class {class}({base}):"));
    code.indented(|code| {
        code.docstring(&v.docs, &extra);
        match &v.shape {
            VariantShape::Unit => {
                code.blank();
                code.line("def to_json(self, path: str = \"\") -> typing.Any:");
                code.indented(|code| code.line(format!("return {wire}")));
            }
            VariantShape::Newtype(ty) => {
                code.line(format!("value: {}", annotation(schema, id, ty)));
                code.blank();
                code.line("def to_json(self, path: str = \"\") -> typing.Any:");
                code.indented(|code| {
                    code.line(format!(
                        "return {{{wire}: {}(self.value, _codec.at(path, {wire}))}}",
                        writer(schema, id, ty)
                    ))
                });
            }
            VariantShape::Struct(fields) => {
                field_lines(code, names, id, fields);
                code.blank();
                code.line("def to_json(self, path: str = \"\") -> typing.Any:");
                code.indented(|code| {
                    code.line(format!("path = _codec.at(path, {wire})"));
                    write_object(code, names, id, fields, "inner", "self");
                    code.line(format!("return {{{wire}: inner}}"));
                });
                code.blank();
                code.line("@classmethod");
                code.line(format!(
                    "def _from_inner(cls, value: typing.Any, path: str) -> {class}:"
                ));
                code.indented(|code| {
                    read_object(
                        code,
                        names,
                        id,
                        fields,
                        &format!("variant {}::{} (an object)", def.schema_name, v.schema_name),
                    )
                });
            }
        }
    });
}

/// Whether type `r` is some job's error type in this compilation.
pub(crate) fn is_error_type(schema: &Schema, r: TypeRef) -> bool {
    schema.modules.iter().any(|m| {
        m.services.iter().any(|s| {
            s.jobs
                .iter()
                .any(|j| matches!(j.returns, Returns::Result { err, .. } if err == r))
        })
    })
}

/// `class <Enum>Exception(rpc_runtime.AppError)` when the enum at `index`
/// is a job's error type.
pub(crate) fn exception(code: &mut Code, schema: &Schema, id: ModuleId, index: usize) {
    let r = TypeRef { module: id, index };
    if !is_error_type(schema, r) {
        return;
    }
    let def = schema.type_def(r);
    let base = names::class(&def.schema_name);
    let class = format!("{base}Exception");
    code.blank();
    code.blank();
    code.line(format!("class {class}(rpc_runtime.AppError):"));
    code.indented(|code| {
        code.docstring(
            &[],
            &[format!(
                "A job's ``{base}`` error: raise it in a handler to answer ``app`` with\n\
                 it; a typed client raises it when a job answers with one."
            )],
        );
        code.blank();
        code.line(format!("def __init__(self, error: {base}) -> None:"));
        code.indented(|code| {
            code.line("self.error = error");
            code.line("super().__init__(repr(error))");
        });
        code.blank();
        code.line("def error_json(self) -> typing.Any:");
        code.indented(|code| code.line("return self.error.to_json()"));
        code.blank();
        code.line("@classmethod");
        code.line(format!(
            "def from_error_json(cls, value: typing.Any) -> {class}:"
        ));
        code.indented(|code| {
            code.line("\"\"\"Reads an ``app`` error's ``data``.\"\"\"");
            code.line(format!("return cls({base}.from_json(value))"));
        });
    });
}
