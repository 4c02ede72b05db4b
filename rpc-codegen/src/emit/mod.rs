//! Rust code from the model: one formatted `pub mod` per schema file.
//!
//! Split like tonic-build, by what is emitted: `types` (schema structs and
//! enums, per-job request structs), `server` (handler trait, server struct,
//! dispatch), `client` (typed client) and `schemas` (`json_schemas()`). The
//! exact shape is pinned by `docs/GENERATED-API.md`. Emission does not
//! validate: the model guarantees every name is a valid, unique identifier and
//! every type resolves, so the generated code compiles.

mod client;
mod schemas;
mod server;
mod types;

use proc_macro2::TokenStream;
use quote::quote;

use crate::model::{Deprecated, ModuleId, Schema};
use crate::source::SourceMap;

/// Lints generated code allows: user doc text it cannot control, job and type
/// names it keeps as written, and items a crate may leave unused.
fn module_allows() -> TokenStream {
    quote! {
        #![allow(
            unknown_lints,
            dead_code,
            deprecated,
            missing_docs,
            unused_qualifications,
            clippy::too_many_arguments,
            clippy::large_enum_variant,
            clippy::enum_variant_names,
            clippy::upper_case_acronyms,
            clippy::should_implement_trait,
            clippy::wrong_self_convention,
            clippy::len_without_is_empty,
            clippy::empty_docs,
            clippy::doc_lazy_continuation,
            clippy::doc_overindented_list_items,
            clippy::tabs_in_doc_comments,
            clippy::derive_partial_eq_without_eq
        )]
    }
}

/// `#[doc = ...]` lines.
pub(crate) fn docs(lines: &[String]) -> TokenStream {
    quote! { #( #[doc = #lines] )* }
}

pub(crate) fn deprecated(d: &Option<Deprecated>) -> TokenStream {
    match d {
        None => TokenStream::new(),
        Some(Deprecated { note: None }) => quote!(#[deprecated]),
        Some(Deprecated { note: Some(note) }) => quote!(#[deprecated(note = #note)]),
    }
}

/// The derives and crate paths every generated data type carries.
pub(crate) fn data_derives() -> TokenStream {
    quote! {
        #[derive(
            Debug,
            Clone,
            PartialEq,
            ::rpc_runtime::__private::serde::Serialize,
            ::rpc_runtime::__private::serde::Deserialize
        )]
        #[serde(crate = "::rpc_runtime::__private::serde")]
    }
}

/// A piece of a module that is emitted, parsed and formatted as a unit.
#[derive(Clone, Copy)]
enum Part {
    /// One schema type (index into the module's types).
    Type(usize),
    /// Everything generated for one service (index into its services).
    Service(usize),
    /// `json_schemas()`.
    Schemas,
}

impl Part {
    /// Rough size, for splitting work evenly.
    fn weight(self, schema: &Schema, id: ModuleId) -> usize {
        match self {
            Part::Type(_) => 1,
            Part::Service(i) => 1 + 6 * schema.module(id).services[i].jobs.len(),
            Part::Schemas => 1,
        }
    }

    fn tokens(self, schema: &Schema, id: ModuleId) -> TokenStream {
        match self {
            Part::Type(i) => {
                let def = types::schema_type(schema, id, &schema.module(id).types[i]);
                let app_error = types::app_error(schema, id, i);
                quote! { #def #app_error }
            }
            Part::Service(i) => {
                let service = &schema.module(id).services[i];
                let requests = types::request_structs(schema, id, service);
                let server = server::service(schema, id, service);
                let client = client::client(schema, id, service);
                quote! { #requests #server #client }
            }
            Part::Schemas => schemas::json_schemas(schema, id),
        }
    }
}

/// Below this weight a module is formatted on the calling thread alone.
const PARALLEL_THRESHOLD: usize = 200;

/// The generated file for one module: a header comment and the formatted
/// module. `Err` only on an emitter bug (tokens that are not valid Rust).
///
/// Big modules are split in two halves formatted on two threads: parsing the
/// emitted tokens back into a `syn::File` for prettyplease is the slowest step
/// of the whole pipeline. prettyplease formats each item on its own, so the
/// halves joined are exactly the text of the whole module formatted at once
/// (`tests/snapshots.rs` checks that).
pub fn module_file(schema: &Schema, sources: &SourceMap, id: ModuleId) -> Result<String, String> {
    let total: usize = parts(schema, id).iter().map(|p| p.weight(schema, id)).sum();
    let threads = if total >= PARALLEL_THRESHOLD { 2 } else { 1 };
    module_file_split(schema, sources, id, threads)
}

fn parts(schema: &Schema, id: ModuleId) -> Vec<Part> {
    let module = schema.module(id);
    (0..module.types.len())
        .map(Part::Type)
        .chain((0..module.services.len()).map(Part::Service))
        .chain([Part::Schemas])
        .collect()
}

/// [`module_file`] with the module split into `chunks` pieces of similar
/// weight, each formatted on its own thread.
pub(crate) fn module_file_split(
    schema: &Schema,
    sources: &SourceMap,
    id: ModuleId,
    chunks: usize,
) -> Result<String, String> {
    let module = schema.module(id);
    let parts = parts(schema, id);
    let total: usize = parts.iter().map(|p| p.weight(schema, id)).sum();
    let per_chunk = total.div_ceil(chunks.max(1)).max(1);
    let mut groups: Vec<Vec<Part>> = vec![Vec::new()];
    let mut weight = 0;
    for part in parts {
        if weight >= per_chunk {
            groups.push(Vec::new());
            weight = 0;
        }
        weight += part.weight(schema, id);
        if let Some(group) = groups.last_mut() {
            group.push(part);
        }
    }

    let file_name = file_name(sources, schema, id);
    let format_group = |index: usize, group: &[Part]| -> Result<String, String> {
        let items = group.iter().map(|p| p.tokens(schema, id));
        let tokens = if index == 0 {
            let name = module.name.ident();
            let module_docs: Vec<String> = if module.docs.is_empty() {
                vec![format!(" Generated from `{file_name}`.")]
            } else {
                module.docs.clone()
            };
            let allows = module_allows();
            quote! {
                pub mod #name {
                    #( #![doc = #module_docs] )*
                    #allows
                    #(#items)*
                }
            }
        } else {
            quote! { mod chunk { #(#items)* } }
        };
        let file: syn::File = syn::parse2(tokens)
            .map_err(|e| format!("internal error: generated code does not parse: {e}"))?;
        let text = prettyplease::unparse(&file);
        // Keep the inside of the module: drop the closing brace, and for
        // later chunks the opening line too.
        let body = text.trim_end().strip_suffix('}').unwrap_or(&text);
        Ok(if index == 0 {
            body.to_string()
        } else {
            body.split_once('\n')
                .map(|(_, rest)| rest)
                .unwrap_or("")
                .to_string()
        })
    };

    let formatted: Vec<Result<String, String>> = if groups.len() == 1 {
        vec![format_group(0, &groups[0])]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = groups
                .iter()
                .enumerate()
                .map(|(index, group)| scope.spawn(move || format_group(index, group)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("internal error: the formatter panicked".into()))
                })
                .collect()
        })
    };
    let mut out =
        format!("// @generated by rpc-codegen from `{file_name}`. Do not edit: edit the schema.\n");
    for chunk in formatted {
        out.push_str(&chunk?);
    }
    out.push_str("}\n");
    Ok(out)
}

fn file_name(sources: &SourceMap, schema: &Schema, id: ModuleId) -> String {
    let file = sources.get(schema.module(id).file);
    file.display
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splitting the work across threads must not change a single byte.
    #[test]
    fn split_formatting_matches_whole_module() {
        for file in ["calculator.rpc", "everything.rpc"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../schema")
                .join(file);
            let compiled = crate::Builder::new()
                .file(path)
                .compiled()
                .unwrap_or_else(|d| panic!("{d}"));
            for (index, _) in compiled.schema.modules.iter().enumerate() {
                let id = ModuleId(index);
                let whole = module_file_split(&compiled.schema, &compiled.sources, id, 1);
                for chunks in 2..5 {
                    let split = module_file_split(&compiled.schema, &compiled.sources, id, chunks);
                    assert_eq!(whole, split, "{file} in {chunks} chunks");
                }
            }
        }
    }
}
