//! Schema types as Python: the annotation of each type, and the expression
//! of its reader and writer (composed from `rpc_runtime.codec`).

use std::collections::BTreeSet;

use super::names;
use crate::model::{ModuleId, Returns, Schema, Ty, TypeKind, TypeRef, VariantShape};

/// The modules whose types module `id` uses, in order (each becomes
/// `from . import <module>`).
pub(crate) fn imports(schema: &Schema, id: ModuleId) -> BTreeSet<ModuleId> {
    let mut used = BTreeSet::new();
    let module = schema.module(id);
    for def in &module.types {
        match &def.kind {
            TypeKind::Struct(fields) => fields.iter().for_each(|f| refs(&f.ty, &mut used)),
            TypeKind::Enum(variants) => {
                for v in variants {
                    match &v.shape {
                        VariantShape::Unit => {}
                        VariantShape::Newtype(ty) => refs(ty, &mut used),
                        VariantShape::Struct(fields) => {
                            fields.iter().for_each(|f| refs(&f.ty, &mut used))
                        }
                    }
                }
            }
        }
    }
    for service in &module.services {
        for job in &service.jobs {
            job.params.iter().for_each(|p| refs(&p.ty, &mut used));
            match &job.returns {
                Returns::Nothing => {}
                Returns::Value(ty) => refs(ty, &mut used),
                Returns::Result { ok, err } => {
                    refs(ok, &mut used);
                    refs(&Ty::Named(*err), &mut used);
                }
            }
        }
    }
    used.remove(&id);
    used
}

fn refs(ty: &Ty, used: &mut BTreeSet<ModuleId>) {
    match ty {
        Ty::Vec(inner) | Ty::Option(inner) | Ty::Map(inner) | Ty::Boxed(inner) => refs(inner, used),
        Ty::Named(r) => {
            used.insert(r.module);
        }
        _ => {}
    }
}

/// A schema type's class as named from module `id`: `Point` or `common.Point`.
pub(crate) fn class_ref(schema: &Schema, id: ModuleId, r: TypeRef) -> String {
    let name = names::class(&schema.type_def(r).schema_name);
    if r.module == id {
        name
    } else {
        format!("{}.{name}", schema.module(r.module).out_stem)
    }
}

/// The Python annotation of a type.
pub(crate) fn annotation(schema: &Schema, id: ModuleId, ty: &Ty) -> String {
    match ty {
        Ty::Bool => "bool".into(),
        Ty::I8 | Ty::I16 | Ty::I32 | Ty::I64 | Ty::U8 | Ty::U16 | Ty::U32 | Ty::U64 => "int".into(),
        Ty::F32 | Ty::F64 => "float".into(),
        Ty::String => "str".into(),
        Ty::Bytes => "bytes".into(),
        Ty::Json => "typing.Any".into(),
        Ty::Vec(inner) => format!("list[{}]", annotation(schema, id, inner)),
        Ty::Option(inner) => format!("{} | None", annotation(schema, id, inner)),
        Ty::Map(inner) => format!("dict[str, {}]", annotation(schema, id, inner)),
        Ty::Named(r) => class_ref(schema, id, *r),
        Ty::Boxed(inner) => annotation(schema, id, inner),
    }
}

/// The scalar types' helper suffix in `rpc_runtime.codec` (`i64`, `str`).
fn scalar(ty: &Ty) -> Option<&'static str> {
    Some(match ty {
        Ty::Bool => "bool",
        Ty::I8 => "i8",
        Ty::I16 => "i16",
        Ty::I32 => "i32",
        Ty::I64 => "i64",
        Ty::U8 => "u8",
        Ty::U16 => "u16",
        Ty::U32 => "u32",
        Ty::U64 => "u64",
        Ty::F32 => "f32",
        Ty::F64 => "f64",
        Ty::String => "str",
        Ty::Bytes => "bytes",
        Ty::Json => "json",
        _ => return None,
    })
}

/// An expression of type `Reader[T]`: `(value, path) -> T`.
pub(crate) fn reader(schema: &Schema, id: ModuleId, ty: &Ty) -> String {
    if let Some(s) = scalar(ty) {
        return format!("_codec.read_{s}");
    }
    match ty {
        Ty::Vec(inner) => format!("_codec.list_reader({})", reader(schema, id, inner)),
        Ty::Option(inner) => format!("_codec.optional_reader({})", reader(schema, id, inner)),
        Ty::Map(inner) => format!("_codec.map_reader({})", reader(schema, id, inner)),
        Ty::Named(r) => format!("{}.from_json", class_ref(schema, id, *r)),
        Ty::Boxed(inner) => reader(schema, id, inner),
        _ => unreachable!("scalars are handled above"),
    }
}

/// An expression of type `Writer[T]`: `(value, path) -> JSON`.
pub(crate) fn writer(schema: &Schema, id: ModuleId, ty: &Ty) -> String {
    if let Some(s) = scalar(ty) {
        return format!("_codec.write_{s}");
    }
    match ty {
        Ty::Vec(inner) => format!("_codec.list_writer({})", writer(schema, id, inner)),
        Ty::Option(inner) => format!("_codec.optional_writer({})", writer(schema, id, inner)),
        Ty::Map(inner) => format!("_codec.map_writer({})", writer(schema, id, inner)),
        Ty::Named(r) => format!("_codec.object_writer({})", class_ref(schema, id, *r)),
        Ty::Boxed(inner) => writer(schema, id, inner),
        _ => unreachable!("scalars are handled above"),
    }
}

/// `Option<T>` (through a box) -> `Some(T)`.
pub(crate) fn optional_inner(ty: &Ty) -> Option<&Ty> {
    match ty {
        Ty::Option(inner) => Some(inner),
        Ty::Boxed(inner) => optional_inner(inner),
        _ => None,
    }
}

/// Whether a type is `Json` (through a box).
pub(crate) fn is_json(ty: &Ty) -> bool {
    match ty {
        Ty::Json => true,
        Ty::Boxed(inner) => is_json(inner),
        _ => false,
    }
}
