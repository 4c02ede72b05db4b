//! `json_schemas()`: the JSON Schema of every job's request, response and
//! error in the module, produced at run time by schemars from the generated
//! types themselves (so it cannot drift from what serde accepts).

use proc_macro2::TokenStream;
use quote::quote;

use super::types::rust_type;
use crate::model::{ModuleId, Returns, Schema, Ty};

pub(crate) fn json_schemas(schema: &Schema, id: ModuleId) -> TokenStream {
    let module = schema.module(id);
    let entries: Vec<TokenStream> = module
        .services
        .iter()
        .flat_map(|service| {
            service.jobs.iter().map(move |job| {
                let service_name = &service.wire;
                let job_name = &job.wire;
                let request = job.request.ident();
                let (response, error) = match &job.returns {
                    Returns::Nothing => (quote!(()), quote!(None)),
                    Returns::Value(ty) => (rust_type(schema, id, ty), quote!(None)),
                    Returns::Result { ok, err } => {
                        let err = rust_type(schema, id, &Ty::Named(*err));
                        (
                            rust_type(schema, id, ok),
                            quote!(Some(::rpc_runtime::__private::schema_of::<#err>())),
                        )
                    }
                };
                quote! {
                    ::rpc_runtime::JobSchema {
                        service: #service_name.to_owned(),
                        job: #job_name.to_owned(),
                        request: ::rpc_runtime::__private::schema_of::<#request>(),
                        response: ::rpc_runtime::__private::schema_of::<#response>(),
                        error: #error,
                    }
                }
            })
        })
        .collect();
    let body = if entries.is_empty() {
        quote!(::std::vec::Vec::new())
    } else {
        quote!(Vec::from([#(#entries),*]))
    };
    quote! {
        /// JSON Schemas of every job's request, response and error in this module.
        pub fn json_schemas() -> Vec<::rpc_runtime::JobSchema> {
            #body
        }
    }
}
