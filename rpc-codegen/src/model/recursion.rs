//! Recursive types: which can never be built, and where Rust needs a `Box`.
//!
//! A value of a struct needs a value of every field type; an enum needs one of
//! its variants. `Option`, `Vec` and `Map` can be empty, so they end the
//! chain. A type none of whose values can be finite (`struct A { b: B }
//! struct B { a: A }`) is reported: no JSON document could ever match it.
//!
//! The types that *can* be built may still be infinitely sized in Rust when
//! they contain themselves by value (`struct Node { next: Option<Node> }`).
//! Within one strongly connected component of the "contains by value" graph
//! (edges through fields and `Option`, not through `Vec` or `Map`, which
//! already allocate), every such edge gets a `Box`. Imports cannot form cycles,
//! so components never span files.

use std::collections::HashMap;

use super::{Field, Schema, Ty, TypeKind, TypeRef, VariantShape};
use crate::diagnostic::{Diagnostic, Sink};
use crate::source::Span;

/// All type references in `ty` that a value needs (not behind Option/Vec/Map).
fn required(ty: &Ty, out: &mut Vec<TypeRef>) {
    match ty {
        Ty::Named(r) => out.push(*r),
        Ty::Boxed(inner) => required(inner, out),
        _ => {}
    }
}

/// All type references stored inline in `ty` (through `Option` and `Box`).
fn inline(ty: &Ty, out: &mut Vec<TypeRef>) {
    match ty {
        Ty::Named(r) => out.push(*r),
        Ty::Option(inner) | Ty::Boxed(inner) => inline(inner, out),
        _ => {}
    }
}

fn all_types(schema: &Schema) -> Vec<TypeRef> {
    schema
        .modules
        .iter()
        .enumerate()
        .flat_map(|(m, module)| {
            (0..module.types.len()).map(move |index| TypeRef {
                module: super::ModuleId(m),
                index,
            })
        })
        .collect()
}

/// Reports every cycle of types that no finite value can satisfy.
pub fn check_buildable(schema: &Schema, sink: &mut Sink) {
    let types = all_types(schema);
    let mut buildable: HashMap<TypeRef, bool> = types.iter().map(|r| (*r, false)).collect();
    let is_buildable = |ty: &Ty, buildable: &HashMap<TypeRef, bool>| {
        let mut refs = Vec::new();
        required(ty, &mut refs);
        refs.iter()
            .all(|r| buildable.get(r).copied().unwrap_or(true))
    };
    let fields_ok = |fields: &[Field], buildable: &HashMap<TypeRef, bool>| {
        fields.iter().all(|f| is_buildable(&f.ty, buildable))
    };
    loop {
        let mut changed = false;
        for r in &types {
            if buildable[r] {
                continue;
            }
            let ok = match &schema.type_def(*r).kind {
                TypeKind::Struct(fields) => fields_ok(fields, &buildable),
                TypeKind::Enum(variants) => variants.iter().any(|v| match &v.shape {
                    VariantShape::Unit => true,
                    VariantShape::Struct(fields) => fields_ok(fields, &buildable),
                    VariantShape::Newtype(ty) => is_buildable(ty, &buildable),
                }),
            };
            if ok {
                buildable.insert(*r, true);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }

    // For each unbuildable type, the field (or newtype variant) that blocks
    // it: the first one whose type is unbuildable. It explains the cycle.
    let blocked = |ty: &Ty| {
        let mut refs = Vec::new();
        required(ty, &mut refs);
        refs.into_iter().find(|t| !buildable[t])
    };
    let blocker = |r: TypeRef| -> Option<(TypeRef, Span)> {
        let in_fields = |fields: &[Field]| {
            fields
                .iter()
                .find_map(|f| blocked(&f.ty).map(|t| (t, f.span)))
        };
        match &schema.type_def(r).kind {
            TypeKind::Struct(fields) => in_fields(fields),
            TypeKind::Enum(variants) => variants.iter().find_map(|v| match &v.shape {
                VariantShape::Struct(fields) => in_fields(fields),
                VariantShape::Newtype(ty) => blocked(ty).map(|t| (t, v.span)),
                VariantShape::Unit => None,
            }),
        }
    };

    let mut reported: HashMap<TypeRef, bool> = HashMap::new();
    for r in &types {
        if buildable[r] || reported.contains_key(r) {
            continue;
        }
        let def = schema.type_def(*r);
        // Empty enums and enums of unbuildable newtypes have no blocking field.
        if let TypeKind::Enum(variants) = &def.kind {
            if variants.is_empty() {
                sink.push(
                    Diagnostic::error(
                        format!(
                            "enum `{}` has no variants, so it can never be built",
                            def.schema_name
                        ),
                        def.span,
                        "no value of this enum can exist",
                    )
                    .with_help("add a variant"),
                );
                reported.insert(*r, true);
                continue;
            }
        }
        // Follow blockers until a type repeats: that is the cycle.
        let mut path: Vec<(TypeRef, Option<Span>)> = vec![(*r, None)];
        let mut current = *r;
        let cycle_start = loop {
            let Some((next, span)) = blocker(current) else {
                break None;
            };
            if let Some(last) = path.last_mut() {
                last.1 = Some(span);
            }
            if let Some(pos) = path.iter().position(|(t, _)| *t == next) {
                break Some(pos);
            }
            if reported.contains_key(&next) {
                break None;
            }
            path.push((next, None));
            current = next;
        };
        for (t, _) in &path {
            reported.insert(*t, true);
        }
        let Some(start) = cycle_start else {
            // Blocked by a cycle reported elsewhere (or by an unbuildable
            // newtype chain); the root cause has its own diagnostic.
            if blocker(*r).is_none() {
                sink.push(Diagnostic::error(
                    format!("enum `{}` can never be built", def.schema_name),
                    def.span,
                    "every variant needs a value that can never be built",
                ));
            }
            continue;
        };
        let cycle = &path[start..];
        let (head, _) = cycle[0];
        let head_def = schema.type_def(head);
        let mut names: Vec<&str> = cycle
            .iter()
            .map(|(t, _)| schema.type_def(*t).schema_name.as_str())
            .collect();
        names.push(&head_def.schema_name);
        let mut diagnostic = Diagnostic::error(
            format!(
                "type `{}` can never be built: it contains itself with no way to stop ({})",
                head_def.schema_name,
                names.join(" -> ")
            ),
            head_def.span,
            "every value of this type would be infinitely large",
        );
        for (k, (_, span)) in cycle.iter().enumerate() {
            let next = cycle.get(k + 1).map(|(t, _)| *t).unwrap_or(head);
            if let Some(span) = span {
                let next = &schema.type_def(next).schema_name;
                diagnostic = diagnostic.with_label(*span, format!("needs `{next}`"));
            }
        }
        sink.push(diagnostic.with_help(
            "make one of these fields an `Option<...>`, a `Vec<...>` or a `Map<String, ...>`",
        ));
    }
}

/// Wraps by-value references inside a recursive component in `Box`.
pub fn insert_boxes(schema: &mut Schema) {
    let types = all_types(schema);
    let index: HashMap<TypeRef, usize> = types.iter().enumerate().map(|(i, r)| (*r, i)).collect();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); types.len()];
    for (i, r) in types.iter().enumerate() {
        let mut refs = Vec::new();
        for_each_ty(&schema.type_def(*r).kind, |ty| inline(ty, &mut refs));
        edges[i] = refs.iter().filter_map(|t| index.get(t).copied()).collect();
    }
    let component = components(&edges);
    for (i, r) in types.iter().enumerate() {
        let recursive = |t: &TypeRef| index.get(t).is_some_and(|&j| component[j] == component[i]);
        let def = &mut schema.modules[r.module.0].types[r.index];
        match &mut def.kind {
            TypeKind::Struct(fields) => {
                for f in fields {
                    box_ty(&mut f.ty, &recursive);
                }
            }
            TypeKind::Enum(variants) => {
                for v in variants {
                    match &mut v.shape {
                        VariantShape::Unit => {}
                        VariantShape::Struct(fields) => {
                            for f in fields {
                                box_ty(&mut f.ty, &recursive);
                            }
                        }
                        VariantShape::Newtype(ty) => box_ty(ty, &recursive),
                    }
                }
            }
        }
    }
}

fn for_each_ty(kind: &TypeKind, mut f: impl FnMut(&Ty)) {
    match kind {
        TypeKind::Struct(fields) => fields.iter().for_each(|x| f(&x.ty)),
        TypeKind::Enum(variants) => {
            for v in variants {
                match &v.shape {
                    VariantShape::Unit => {}
                    VariantShape::Struct(fields) => fields.iter().for_each(|x| f(&x.ty)),
                    VariantShape::Newtype(ty) => f(ty),
                }
            }
        }
    }
}

fn box_ty(ty: &mut Ty, recursive: &impl Fn(&TypeRef) -> bool) {
    match ty {
        Ty::Named(r) if recursive(r) => {
            let inner = std::mem::replace(ty, Ty::Bool);
            *ty = Ty::Boxed(Box::new(inner));
        }
        Ty::Option(inner) => box_ty(inner, recursive),
        _ => {}
    }
}

/// Strongly connected components (Kosaraju, iterative). Returns a component
/// number per node.
fn components(edges: &[Vec<usize>]) -> Vec<usize> {
    let n = edges.len();
    let mut order = Vec::with_capacity(n);
    let mut visited = vec![false; n];
    for start in 0..n {
        if visited[start] {
            continue;
        }
        visited[start] = true;
        let mut stack = vec![(start, 0usize)];
        while let Some((node, next)) = stack.pop() {
            if let Some(&to) = edges[node].get(next) {
                stack.push((node, next + 1));
                if !visited[to] {
                    visited[to] = true;
                    stack.push((to, 0));
                }
            } else {
                order.push(node);
            }
        }
    }
    let mut reverse: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (from, tos) in edges.iter().enumerate() {
        for &to in tos {
            reverse[to].push(from);
        }
    }
    let mut component = vec![usize::MAX; n];
    let mut count = 0;
    for &start in order.iter().rev() {
        if component[start] != usize::MAX {
            continue;
        }
        component[start] = count;
        let mut stack = vec![start];
        while let Some(node) = stack.pop() {
            for &from in &reverse[node] {
                if component[from] == usize::MAX {
                    component[from] = count;
                    stack.push(from);
                }
            }
        }
        count += 1;
    }
    component
}

#[cfg(test)]
mod tests {
    use super::components;

    #[test]
    fn scc() {
        // 0 <-> 1, 2 -> 0, 3 self loop
        let c = components(&[vec![1], vec![0], vec![0], vec![3]]);
        assert_eq!(c[0], c[1]);
        assert_ne!(c[0], c[2]);
        assert_ne!(c[3], c[0]);
    }
}
