//! The caller side: `<Service>Client`, one method per job returning a
//! [`Call`](https://docs.rs/rpc-runtime) that options are set on and that
//! `.await` sends (the answer, or a one-way job's id), and beside it
//! `<job>_many`, the same calls as one [`Batch`](https://docs.rs/rpc-runtime)
//! sent in one round trip. String, byte, JSON, list and map parameters
//! take what converts into them.

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use super::server::option_tokens;
use super::types::rust_type;
use super::{deprecated, docs};
use crate::model::{Job, ModuleId, Returns, Schema, Service, Ty};

pub(crate) fn client(schema: &Schema, id: ModuleId, service: &Service) -> TokenStream {
    let client = service.client.ident();
    let doc = format!(
        " Typed client for service `{}`: one method per job. Cheap to clone \
         (clones share the connection).",
        service.wire
    );
    let methods = service
        .jobs
        .iter()
        .map(|job| job_method(schema, id, service, job));
    let bulk_methods = service
        .jobs
        .iter()
        .filter(|job| has_bulk_method(service, job))
        .map(|job| bulk_method(schema, id, job));
    quote! {
        #[doc = #doc]
        #[derive(Clone, Debug)]
        pub struct #client {
            client: ::rpc_runtime::Client,
        }

        impl #client {
            /// Calls the service through `client`.
            pub fn new(client: ::rpc_runtime::Client) -> Self {
                Self { client }
            }

            /// The untyped client underneath (to re-attach to a call by id,
            /// cancel one, or call by name).
            pub fn client(&self) -> &::rpc_runtime::Client {
                &self.client
            }

            #(#methods)*

            #(#bulk_methods)*
        }
    }
}

/// A parameter's type as the client method takes it, and how the request
/// field is made from it: `impl Into<String>` for strings, and the like for
/// bytes, JSON, lists and maps; other types as they are.
fn param_type(schema: &Schema, id: ModuleId, ty: &Ty) -> (TokenStream, bool) {
    let rust = rust_type(schema, id, ty);
    match ty {
        Ty::String | Ty::Bytes | Ty::Json | Ty::Vec(_) | Ty::Map(_) => {
            (quote!(impl ::std::convert::Into<#rust>), true)
        }
        _ => (rust, false),
    }
}

/// The name of a job's bulk method: `<method>_many`.
fn bulk_name(job: &Job) -> String {
    format!("{}_many", job.method.unraw())
}

/// Whether a job gets its `<method>_many`: not when another job's method
/// has that name (that job's method wins; the calls can still be batched
/// with `Batch::from_iter`).
fn has_bulk_method(service: &Service, job: &Job) -> bool {
    let name = bulk_name(job);
    !service
        .jobs
        .iter()
        .any(|other| other.method.unraw() == name)
}

/// `<method>_many(calls)`: one call of the job per item (its parameters,
/// a tuple when there are several), as a batch sent in one round trip.
fn bulk_method(schema: &Schema, id: ModuleId, job: &Job) -> TokenStream {
    let method = job.method.ident();
    let bulk = proc_macro2::Ident::new(&bulk_name(job), proc_macro2::Span::call_site());
    let names: Vec<_> = job.params.iter().map(|p| p.name.ident()).collect();
    let types: Vec<_> = job
        .params
        .iter()
        .map(|p| param_type(schema, id, &p.ty).0)
        .collect();
    let (item, pattern) = match (&names[..], &types[..]) {
        ([name], [ty]) => (quote!(#ty), quote!(#name)),
        _ => (quote!((#(#types,)*)), quote!((#(#names,)*))),
    };
    let ret = match &job.returns {
        Returns::Nothing => quote!(::rpc_runtime::OneWayBatch),
        Returns::Value(ty) => {
            let ok = rust_type(schema, id, ty);
            quote!(::rpc_runtime::Batch<#ok>)
        }
        Returns::Result { ok, err } => {
            let ok = rust_type(schema, id, ok);
            let err = rust_type(schema, id, &Ty::Named(*err));
            quote!(::rpc_runtime::Batch<#ok, #err>)
        }
    };
    let what = match &job.returns {
        Returns::Nothing => "their ids, in order, once all are queued",
        _ => "every answer in order, each a `Result`; `.send()` a handle per call",
    };
    let items = match job.params.len() {
        0 => "one `()` per call".to_owned(),
        1 => "one parameter per call".to_owned(),
        _ => "one tuple of parameters per call".to_owned(),
    };
    let doc = docs(&[format!(
        " `{}` for each item of `calls` ({items}), sent as one batch in one \
         round trip: `.await` gives {what}. Options for every call go on the \
         batch.",
        job.wire
    )]);
    let deprecated = deprecated(&job.deprecated);
    quote! {
        #doc
        #deprecated
        pub fn #bulk(
            &self,
            calls: impl ::std::iter::IntoIterator<Item = #item>,
        ) -> #ret {
            calls
                .into_iter()
                .map(|#pattern| self.#method(#(#names),*))
                .collect()
        }
    }
}

fn job_method(schema: &Schema, id: ModuleId, service: &Service, job: &Job) -> TokenStream {
    let wire_service = &service.wire;
    let wire_job = &job.wire;
    let timeout = option_tokens(job.timeout_ms.map(Literal::u64_unsuffixed));
    let attempts = option_tokens(job.attempts.map(Literal::u32_unsuffixed));
    let shards = Literal::u32_unsuffixed(service.shards);
    let priority = option_tokens(job.priority.map(Literal::u8_unsuffixed));
    let request = job.request.ident();
    let mut params = Vec::new();
    let mut fields = Vec::new();
    // `#[group_by]`: the parameter's value, as text, is the call's group
    // key (a string parameter converted first, then its text copied).
    let mut group = None;
    for (at, p) in job.params.iter().enumerate() {
        let name = p.name.ident();
        let (ty, converts) = param_type(schema, id, &p.ty);
        params.push(quote!(#name: #ty));
        if job.group_by == Some(at) {
            let rust = rust_type(schema, id, &p.ty);
            let convert = converts.then(|| quote!(let #name: #rust = #name.into();));
            group = Some(quote! {
                #convert
                let group = ::std::string::ToString::to_string(&#name);
            });
            fields.push(quote!(#name));
            continue;
        }
        fields.push(if converts {
            quote!(#name: #name.into())
        } else {
            quote!(#name)
        });
    }
    let (group_setup, with_group) = match group {
        Some(setup) => (setup, quote!(.group(group))),
        None => (quote!(), quote!()),
    };
    let method = job.method.ident();
    let deprecated = deprecated(&job.deprecated);
    let (ret, constructor, default_doc) = match &job.returns {
        Returns::Nothing => (
            quote!(::rpc_runtime::OneWayCall),
            quote!(one_way),
            format!(
                " Sends `{}` (one-way): `.await` returns its id once it is queued.",
                job.wire
            ),
        ),
        Returns::Value(ty) => {
            let ok = rust_type(schema, id, ty);
            (
                quote!(::rpc_runtime::Call<#ok>),
                quote!(call),
                format!(
                    " Calls `{}`: `.await` waits for its result, `.send()` returns a handle.",
                    job.wire
                ),
            )
        }
        Returns::Result { ok, err } => {
            let ok = rust_type(schema, id, ok);
            let err = rust_type(schema, id, &Ty::Named(*err));
            (
                quote!(::rpc_runtime::Call<#ok, #err>),
                quote!(call),
                format!(
                    " Calls `{}`: `.await` waits for its result or its error, `.send()` \
                     returns a handle.",
                    job.wire
                ),
            )
        }
    };
    let doc = if job.docs.is_empty() {
        docs(&[default_doc])
    } else {
        docs(&job.docs)
    };
    quote! {
        #doc
        #deprecated
        pub fn #method(&self, #(#params),*) -> #ret {
            const JOB: ::rpc_runtime::JobRef = ::rpc_runtime::JobRef {
                service: #wire_service,
                job: #wire_job,
                timeout_ms: #timeout,
                max_attempts: #attempts,
                shards: #shards,
                priority: #priority,
            };
            #group_setup
            ::rpc_runtime::__private::#constructor(
                &self.client,
                JOB,
                #request { #(#fields),* },
            )
            #with_group
        }
    }
}
