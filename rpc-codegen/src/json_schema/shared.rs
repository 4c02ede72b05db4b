//! Named types' schemas built once, for every document of a run.
//!
//! Each job's document holds the schemas of every named type it reaches, so
//! a type used by a hundred jobs is in a hundred documents. Built afresh for
//! each, 200 jobs over a chain of 200 types took seconds; built once here,
//! a document only names which of them it holds ([`Def::Shared`]), which is
//! also how `emit::schemas` embeds each just once.
//!
//! A type's schema reads the same in every document but in two cases, and
//! then the document builds its own: when two types share a name (one of
//! them is renamed, in order of first use in each document; then nothing is
//! shared), and when the type refers to the document's root type directly
//! (that reference is `#` there).
//!
//! [`Def::Shared`]: super::Def::Shared

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::gen::Gen;
use crate::model::{ModuleId, Schema, TypeRef};

/// The named types' schemas, each built alone.
pub(crate) struct Shared {
    built: HashMap<TypeRef, Built>,
}

/// One named type's schema.
pub(crate) struct Built {
    pub(crate) schema: Value,
    /// The named types its schema refers to, each once.
    pub(crate) references: Vec<TypeRef>,
    /// Whether it refers to `Bytes` (defined beside it).
    pub(crate) uses_bytes: bool,
}

impl Shared {
    /// Every type of `schema` built once, or none when two share a name.
    pub(crate) fn new(schema: &Schema) -> Shared {
        let types: Vec<TypeRef> = (0..schema.modules.len())
            .flat_map(|m| {
                (0..schema.modules[m].types.len()).map(move |index| TypeRef {
                    module: ModuleId(m),
                    index,
                })
            })
            .collect();
        let mut names = HashSet::new();
        let clash = types.iter().any(|&r| {
            let name = schema.type_def(r).name.unraw();
            name == "Bytes" || !names.insert(name)
        });
        let built = if clash {
            HashMap::new()
        } else {
            types
                .into_iter()
                .map(|r| {
                    let (schema, references, uses_bytes) = Gen::shallow(schema, r);
                    let built = Built {
                        schema,
                        references,
                        uses_bytes,
                    };
                    (r, built)
                })
                .collect()
        };
        Shared { built }
    }

    /// Nothing built: every document builds its own (to compare with).
    #[cfg(test)]
    pub(crate) fn none() -> Shared {
        Shared {
            built: HashMap::new(),
        }
    }

    /// `r`'s schema, if it reads the same in a document whose root is `root`.
    pub(crate) fn usable(&self, r: TypeRef, root: Option<TypeRef>) -> Option<&Built> {
        let built = self.built.get(&r)?;
        match root {
            Some(root) if built.references.contains(&root) => None,
            _ => Some(built),
        }
    }

    /// `r`'s schema, for a document that named it.
    pub(crate) fn schema(&self, r: TypeRef) -> Option<&Value> {
        self.built.get(&r).map(|built| &built.schema)
    }
}
