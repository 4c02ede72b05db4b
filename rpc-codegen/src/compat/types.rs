//! Whether a reader's type reads what a writer's type wrote.
//!
//! The question is asked per flow: old writes and new reads (a new worker
//! reading an old client's parameters, a new client reading an old worker's
//! reply), or new writes and old reads. A change that is safe one way can
//! break the other: `i32 -> i64` on a parameter lets a new worker read
//! every old value, but an old worker cannot read every new one. Types are
//! matched by what the wire sees (field, variant and parameter wire names,
//! structure), so renaming a struct or enum type is invisible and safe.

use std::collections::{BTreeSet, HashSet};

use super::{Change, Direction, Findings, Rule, Severity, Spot};
use crate::model::{Field, Schema, Ty, TypeKind, TypeRef, Variant, VariantShape};
use crate::source::Span;

/// Who writes and who reads, and which directions that pair stands for.
#[derive(Clone, Debug)]
pub(crate) struct Flow {
    pub(crate) writer_is_old: bool,
    pub(crate) dirs: BTreeSet<Direction>,
}

impl Flow {
    pub(crate) fn old_writes(dirs: &[Direction]) -> Flow {
        Flow {
            writer_is_old: true,
            dirs: dirs.iter().copied().collect(),
        }
    }

    pub(crate) fn new_writes(dirs: &[Direction]) -> Flow {
        Flow {
            writer_is_old: false,
            dirs: dirs.iter().copied().collect(),
        }
    }
}

/// What is being compared (`parameter \`a\` of job \`S.add\``) and its
/// position in each schema, where a change inside its type is shown when
/// that has no position of its own.
#[derive(Clone, Debug)]
pub(crate) struct Site {
    pub(crate) subject: String,
    pub(crate) old: Span,
    pub(crate) new: Span,
}

/// Walks pairs of old and new types, recording what breaks.
pub(crate) struct Checker<'a> {
    pub(crate) old: &'a Schema,
    pub(crate) new: &'a Schema,
    pub(crate) findings: Findings,
    /// Named type pairs already walked for a flow (also ends recursion).
    seen: HashSet<(TypeRef, TypeRef, bool, Vec<Direction>)>,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(old: &'a Schema, new: &'a Schema) -> Self {
        Checker {
            old,
            new,
            findings: Findings::default(),
            seen: HashSet::new(),
        }
    }

    pub(crate) fn breaking(
        &mut self,
        rule: Rule,
        message: String,
        old: Spot,
        new: Spot,
        breaks: &BTreeSet<Direction>,
        hint: Option<String>,
    ) {
        self.findings.push(Change {
            rule,
            severity: Severity::Breaking,
            message,
            old,
            new,
            breaks: breaks.clone(),
            hint,
        });
    }

    /// A field or variant whose wire name changed: `sides` are the old and
    /// new wire names with their positions, `rename` the attribute that
    /// would have kept it.
    fn renamed(
        &mut self,
        rule: Rule,
        subject: String,
        ((old, old_span), (new, new_span)): ((&str, Span), (&str, Span)),
        rename: String,
        flow: &Flow,
    ) {
        self.breaking(
            rule,
            format!("{subject} is renamed to `{new}` on the wire"),
            Spot::new(old_span, format!("`{old}` on the wire")),
            Spot::new(new_span, format!("`{new}` on the wire")),
            &flow.dirs,
            Some(format!("keep the wire name: {rename}")),
        );
    }

    /// Checks that the reader's side of `old`/`new` reads the writer's.
    pub(crate) fn ty(&mut self, old: &Ty, new: &Ty, flow: &Flow, site: &Site) {
        let (old, new) = (unbox(old), unbox(new));
        let reader = if flow.writer_is_old { new } else { old };
        if *reader == Ty::Json {
            return;
        }
        match (old, new) {
            (Ty::Option(a), Ty::Option(b)) => self.ty(a, b, flow, site),
            (Ty::Option(a), _) => {
                if flow.writer_is_old {
                    let message = format!(
                        "{} became required: `{}` was `{}`",
                        site.subject,
                        ty_text(self.new, new),
                        ty_text(self.old, old)
                    );
                    self.breaking(
                        Rule::OptionalToRequired,
                        message,
                        Spot::new(site.old, "optional here"),
                        Spot::new(site.new, "required now"),
                        &flow.dirs,
                        Some(
                            "keep it `Option<..>`: old senders may leave it out or send null"
                                .into(),
                        ),
                    );
                }
                self.ty(a, new, flow, site);
            }
            (_, Ty::Option(b)) => {
                if !flow.writer_is_old {
                    let message = format!(
                        "{} became optional: `{}` is now `{}`",
                        site.subject,
                        ty_text(self.old, old),
                        ty_text(self.new, new)
                    );
                    self.breaking(
                        Rule::RequiredToOptional,
                        message,
                        Spot::new(site.old, "required here"),
                        Spot::new(site.new, "optional now: may be sent as null or left out"),
                        &flow.dirs,
                        Some("old readers refuse a missing value; keep sending it until they are gone".into()),
                    );
                }
                self.ty(old, b, flow, site);
            }
            (Ty::Vec(a), Ty::Vec(b)) | (Ty::Map(a), Ty::Map(b)) => self.ty(a, b, flow, site),
            (Ty::Named(a), Ty::Named(b)) => self.named(*a, *b, flow, site),
            _ => {
                let (writer, reader) = if flow.writer_is_old {
                    (old, new)
                } else {
                    (new, old)
                };
                if !reads(writer, reader) {
                    let message = format!(
                        "the type of {} changed from `{}` to `{}`",
                        site.subject,
                        ty_text(self.old, old),
                        ty_text(self.new, new)
                    );
                    self.breaking(
                        Rule::ChangedType,
                        message,
                        Spot::new(site.old, format!("`{}` here", ty_text(self.old, old))),
                        Spot::new(site.new, format!("`{}` now", ty_text(self.new, new))),
                        &flow.dirs,
                        Some(
                            "only widenings are safe, and only for the side that reads: \
                             add a new field or job instead"
                                .into(),
                        ),
                    );
                }
            }
        }
    }

    /// A schema struct or enum against another, by wire shape.
    pub(crate) fn named(&mut self, old: TypeRef, new: TypeRef, flow: &Flow, site: &Site) {
        let key = (
            old,
            new,
            flow.writer_is_old,
            flow.dirs.iter().copied().collect(),
        );
        if !self.seen.insert(key) {
            return;
        }
        let (old_def, new_def) = (self.old.type_def(old), self.new.type_def(new));
        let inner = Site {
            subject: format!("`{}`", new_def.schema_name),
            old: old_def.span,
            new: new_def.span,
        };
        match (&old_def.kind, &new_def.kind) {
            (TypeKind::Struct(a), TypeKind::Struct(b)) => {
                let owner = format!("struct `{}`", new_def.schema_name);
                self.fields(a, b, flow, &inner, "field", &owner);
            }
            (TypeKind::Enum(a), TypeKind::Enum(b)) => {
                let owner = new_def.schema_name.clone();
                self.variants(a, b, flow, &inner, &owner);
            }
            _ => {
                let message = format!(
                    "`{}` changed from {} to {}",
                    new_def.schema_name,
                    kind_text(&old_def.kind),
                    kind_text(&new_def.kind)
                );
                self.breaking(
                    Rule::ChangedType,
                    message,
                    Spot::new(site.old, kind_text(&old_def.kind)),
                    Spot::new(site.new, kind_text(&new_def.kind)),
                    &flow.dirs,
                    None,
                );
            }
        }
    }

    /// Struct fields, struct-variant fields or job parameters, by wire name.
    pub(crate) fn fields(
        &mut self,
        old: &[Field],
        new: &[Field],
        flow: &Flow,
        parents: &Site,
        what: &str,
        owner: &str,
    ) {
        // A removed and an added field of the same type: a rename.
        let diff = Diff::new(
            old,
            new,
            |f| &f.wire,
            |f| ty_text(self.old, &f.ty),
            |f| ty_text(self.new, &f.ty),
        );
        for (o, n) in diff.renamed {
            let subject = format!("{what} `{}` of {owner}", o.wire);
            let hint = format!("`#[rename = \"{}\"] {}: ...`", o.wire, n.schema_name);
            let sides = ((o.wire.as_str(), o.span), (n.wire.as_str(), n.span));
            self.renamed(Rule::RenamedField, subject, sides, hint, flow);
        }
        for o in diff.removed {
            if flow.writer_is_old {
                continue; // The new reader ignores a key it does not know.
            }
            let optional = matches!(o.ty, Ty::Option(_));
            self.findings.push(Change {
                rule: Rule::RemovedField,
                severity: if optional {
                    Severity::Warning
                } else {
                    Severity::Breaking
                },
                message: format!("{what} `{}` of {owner} was removed", o.wire),
                old: Spot::new(o.span, "removed"),
                new: Spot::new(parents.new, format!("no `{}` here any more", o.wire)),
                breaks: if optional {
                    BTreeSet::new()
                } else {
                    flow.dirs.clone()
                },
                hint: Some(if optional {
                    "old readers see it as absent from now on".to_string()
                } else {
                    format!(
                        "old readers require `{}`: keep it (it may be deprecated)",
                        o.wire
                    )
                }),
            });
        }
        for n in diff.added {
            if !flow.writer_is_old || matches!(n.ty, Ty::Option(_)) {
                continue; // Old readers ignore it; an optional one may be missing.
            }
            self.breaking(
                Rule::NewRequiredField,
                format!("new required {what} `{}` in {owner}", n.wire),
                Spot::new(parents.old, format!("no `{}` here", n.wire)),
                Spot::new(n.span, "required, but old senders do not send it"),
                &flow.dirs,
                Some(format!(
                    "make it optional: `{}: Option<{}>`",
                    n.schema_name,
                    ty_text(self.new, &n.ty)
                )),
            );
        }
        for o in old {
            if let Some(n) = new.iter().find(|n| n.wire == o.wire) {
                self.ty(
                    &o.ty,
                    &n.ty,
                    flow,
                    &Site {
                        subject: format!("{what} `{}` of {owner}", n.wire),
                        old: o.span,
                        new: n.span,
                    },
                );
            }
        }
    }

    fn variants(
        &mut self,
        old: &[Variant],
        new: &[Variant],
        flow: &Flow,
        parents: &Site,
        owner: &str,
    ) {
        // A removed and an added variant of the same shape: a rename.
        let diff = Diff::new(
            old,
            new,
            |v| &v.wire,
            |v| shape_text(self.old, &v.shape),
            |v| shape_text(self.new, &v.shape),
        );
        for (o, n) in diff.renamed {
            let subject = format!("variant `{}` of `{owner}`", o.wire);
            let hint = format!("`#[rename = \"{}\"] {}`", o.wire, n.schema_name);
            let sides = ((o.wire.as_str(), o.span), (n.wire.as_str(), n.span));
            self.renamed(Rule::RenamedVariant, subject, sides, hint, flow);
        }
        if flow.writer_is_old {
            for o in diff.removed {
                self.breaking(
                    Rule::RemovedVariant,
                    format!("variant `{}` of `{owner}` was removed", o.wire),
                    Spot::new(o.span, "removed"),
                    Spot::new(parents.new, format!("no `{}` here any more", o.wire)),
                    &flow.dirs,
                    Some("new readers refuse it; keep it (it may be deprecated)".into()),
                );
            }
        } else {
            for n in diff.added {
                self.breaking(
                    Rule::NewVariant,
                    format!("new variant `{}` in `{owner}`", n.wire),
                    Spot::new(parents.old, format!("old readers know no `{}`", n.wire)),
                    Spot::new(n.span, "added"),
                    &flow.dirs,
                    Some(format!(
                        "old readers refuse it: update every reader of `{owner}` before anyone sends it"
                    )),
                );
            }
        }
        for o in old {
            let Some(n) = new.iter().find(|n| n.wire == o.wire) else {
                continue;
            };
            let site = Site {
                subject: format!("variant `{owner}::{}`", n.wire),
                old: o.span,
                new: n.span,
            };
            match (&o.shape, &n.shape) {
                (VariantShape::Unit, VariantShape::Unit) => {}
                (VariantShape::Struct(a), VariantShape::Struct(b)) => {
                    let owner = site.subject.clone();
                    self.fields(a, b, flow, &site, "field", &owner);
                }
                (VariantShape::Newtype(a), VariantShape::Newtype(b)) => self.ty(a, b, flow, &site),
                _ => self.breaking(
                    Rule::ChangedType,
                    format!(
                        "variant `{}` of `{owner}` changed from {} to {}",
                        n.wire,
                        shape_kind(&o.shape),
                        shape_kind(&n.shape)
                    ),
                    Spot::new(o.span, shape_kind(&o.shape)),
                    Spot::new(n.span, shape_kind(&n.shape)),
                    &flow.dirs,
                    None,
                ),
            }
        }
    }
}

/// Two lists of wire-named items (fields, variants): those only in the old
/// one, those only in the new one, and the pairs taken for renames (a
/// removed and an added item with the same signature, first come first).
struct Diff<'a, T> {
    removed: Vec<&'a T>,
    added: Vec<&'a T>,
    renamed: Vec<(&'a T, &'a T)>,
}

impl<'a, T> Diff<'a, T> {
    fn new(
        old: &'a [T],
        new: &'a [T],
        wire: impl Fn(&T) -> &String,
        old_signature: impl Fn(&T) -> String,
        new_signature: impl Fn(&T) -> String,
    ) -> Self {
        let mut removed: Vec<&T> = old
            .iter()
            .filter(|o| !new.iter().any(|n| wire(n) == wire(o)))
            .collect();
        let mut added: Vec<&T> = new
            .iter()
            .filter(|n| !old.iter().any(|o| wire(o) == wire(n)))
            .collect();
        let mut renamed = Vec::new();
        removed.retain(|o| {
            let signature = old_signature(o);
            match added.iter().position(|n| new_signature(n) == signature) {
                Some(at) => {
                    renamed.push((*o, added.remove(at)));
                    false
                }
                None => true,
            }
        });
        Diff {
            removed,
            added,
            renamed,
        }
    }
}

fn unbox(ty: &Ty) -> &Ty {
    match ty {
        Ty::Boxed(inner) => unbox(inner),
        other => other,
    }
}

/// The values an integer type holds.
fn int_range(ty: &Ty) -> Option<(i128, i128)> {
    Some(match ty {
        Ty::I8 => (i8::MIN.into(), i8::MAX.into()),
        Ty::I16 => (i16::MIN.into(), i16::MAX.into()),
        Ty::I32 => (i32::MIN.into(), i32::MAX.into()),
        Ty::I64 => (i64::MIN.into(), i64::MAX.into()),
        Ty::U8 => (0, u8::MAX.into()),
        Ty::U16 => (0, u16::MAX.into()),
        Ty::U32 => (0, u32::MAX.into()),
        Ty::U64 => (0, u64::MAX.into()),
        _ => return None,
    })
}

/// Whether every value of scalar `writer` reads as `reader`, exactly.
fn reads(writer: &Ty, reader: &Ty) -> bool {
    if writer == reader || *reader == Ty::Json {
        return true;
    }
    match (int_range(writer), int_range(reader)) {
        (Some((wmin, wmax)), Some((rmin, rmax))) => return rmin <= wmin && wmax <= rmax,
        (Some((wmin, wmax)), None) => {
            // A float reads a whole number; exactly only within its mantissa.
            let exact = match reader {
                Ty::F64 => 1i128 << 53,
                Ty::F32 => 1i128 << 24,
                _ => return false,
            };
            return -exact <= wmin && wmax <= exact;
        }
        _ => {}
    }
    matches!((writer, reader), (Ty::F32, Ty::F64))
}

/// A type as the schema spells it.
pub(crate) fn ty_text(schema: &Schema, ty: &Ty) -> String {
    match ty {
        Ty::Bool => "bool".into(),
        Ty::I8 => "i8".into(),
        Ty::I16 => "i16".into(),
        Ty::I32 => "i32".into(),
        Ty::I64 => "i64".into(),
        Ty::U8 => "u8".into(),
        Ty::U16 => "u16".into(),
        Ty::U32 => "u32".into(),
        Ty::U64 => "u64".into(),
        Ty::F32 => "f32".into(),
        Ty::F64 => "f64".into(),
        Ty::String => "String".into(),
        Ty::Bytes => "Bytes".into(),
        Ty::Json => "Json".into(),
        Ty::Vec(inner) => format!("Vec<{}>", ty_text(schema, inner)),
        Ty::Option(inner) => format!("Option<{}>", ty_text(schema, inner)),
        Ty::Map(inner) => format!("Map<String, {}>", ty_text(schema, inner)),
        Ty::Boxed(inner) => ty_text(schema, inner),
        Ty::Named(r) => schema.type_def(*r).schema_name.clone(),
    }
}

fn kind_text(kind: &TypeKind) -> &'static str {
    match kind {
        TypeKind::Struct(_) => "a struct",
        TypeKind::Enum(_) => "an enum",
    }
}

fn shape_kind(shape: &VariantShape) -> &'static str {
    match shape {
        VariantShape::Unit => "a unit variant",
        VariantShape::Struct(_) => "a struct variant",
        VariantShape::Newtype(_) => "a newtype variant",
    }
}

/// A variant's payload as text, to recognise a renamed variant.
fn shape_text(schema: &Schema, shape: &VariantShape) -> String {
    match shape {
        VariantShape::Unit => String::new(),
        VariantShape::Newtype(ty) => format!("({})", ty_text(schema, ty)),
        VariantShape::Struct(fields) => {
            let fields: Vec<String> = fields
                .iter()
                .map(|f| format!("{}: {}", f.wire, ty_text(schema, &f.ty)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}
