//! The caller side: `<Service>Client`, one typed method per job (call and
//! wait), plus `send_<job>` (enqueue, await the result later) and
//! `pending_<job>` (re-attach by id) for jobs that answer.

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use super::server::option_tokens;
use super::types::rust_type;
use super::{deprecated, docs};
use crate::model::{Job, ModuleId, Returns, Schema, Service, Ty};

pub(crate) fn client(schema: &Schema, id: ModuleId, service: &Service) -> TokenStream {
    let client = service.client.ident();
    let doc = format!(
        " Typed client for service `{}`: one method per job.",
        service.wire
    );
    let methods = service
        .jobs
        .iter()
        .map(|job| job_methods(schema, id, service, job));
    quote! {
        #[doc = #doc]
        #[derive(Clone, Debug)]
        pub struct #client {
            client: ::rpc_runtime::Client,
            options: ::rpc_runtime::CallOptions,
        }

        impl #client {
            /// Calls the service through `client`, with default call options.
            pub fn new(client: ::rpc_runtime::Client) -> Self {
                Self {
                    client,
                    options: ::rpc_runtime::CallOptions::default(),
                }
            }

            /// Uses `options` for every call made through this client.
            pub fn with_options(mut self, options: ::rpc_runtime::CallOptions) -> Self {
                self.options = options;
                self
            }

            /// Waits at most `timeout` for each call (overrides the job's default).
            pub fn with_timeout(mut self, timeout: ::std::time::Duration) -> Self {
                self.options.timeout = Some(timeout);
                self
            }

            #(#methods)*
        }
    }
}

fn job_methods(schema: &Schema, id: ModuleId, service: &Service, job: &Job) -> TokenStream {
    let wire_service = &service.wire;
    let wire_job = &job.wire;
    let timeout = option_tokens(job.timeout_ms.map(Literal::u64_unsuffixed));
    let attempts = option_tokens(job.attempts.map(Literal::u32_unsuffixed));
    let job_ref = quote! {
        const JOB: ::rpc_runtime::JobRef = ::rpc_runtime::JobRef {
            service: #wire_service,
            job: #wire_job,
            timeout_ms: #timeout,
            max_attempts: #attempts,
        };
    };
    let request = job.request.ident();
    let names: Vec<_> = job.params.iter().map(|p| p.name.ident()).collect();
    let params = job.params.iter().map(|p| {
        let name = p.name.ident();
        let ty = rust_type(schema, id, &p.ty);
        quote!(#name: #ty)
    });
    let params = quote!(#(#params),*);
    let build_request = quote!(let request = #request { #(#names),* };);
    let user_docs = docs(&job.docs);
    let deprecated = deprecated(&job.deprecated);
    let method = job.method.ident();

    let (ok, err) = match &job.returns {
        Returns::Nothing => {
            let doc = if job.docs.is_empty() {
                docs(&[format!(
                    " Enqueues `{}` (one-way) and returns its id once it is queued.",
                    job.wire
                )])
            } else {
                user_docs
            };
            return quote! {
                #doc
                #deprecated
                pub async fn #method(&self, #params) -> Result<::rpc_runtime::JobId, ::rpc_runtime::Error> {
                    #job_ref
                    #build_request
                    self.client.send_one_way(&JOB, &request, &self.options).await
                }
            };
        }
        Returns::Value(ty) => (rust_type(schema, id, ty), None),
        Returns::Result { ok, err } => (
            rust_type(schema, id, ok),
            Some(rust_type(schema, id, &Ty::Named(*err))),
        ),
    };

    let call_doc = if job.docs.is_empty() {
        docs(&[format!(" Calls `{}` and waits for its result.", job.wire)])
    } else {
        user_docs
    };
    let send = job.send_method.ident();
    let pending = job.pending_method.ident();
    let send_doc = format!(
        " Sends `{}` without waiting; await the returned handle later.",
        job.wire
    );
    let pending_doc = format!(
        " Re-attaches, by id, to a `{}` call sent earlier (maybe by another process).",
        job.wire
    );
    let (call, pending_ty, send_call) = match &err {
        None => (
            quote! {
                pub async fn #method(&self, #params) -> Result<#ok, ::rpc_runtime::Error> {
                    #job_ref
                    #build_request
                    self.client
                        .call_typed::<_, #ok, ::rpc_runtime::Never>(&JOB, &request, &self.options)
                        .await
                        .map_err(::rpc_runtime::CallError::into_rpc)
                }
            },
            quote!(::rpc_runtime::Pending<#ok>),
            quote!(send_typed::<_, #ok, ::rpc_runtime::Never>),
        ),
        Some(err) => (
            quote! {
                pub async fn #method(&self, #params) -> Result<#ok, ::rpc_runtime::CallError<#err>> {
                    #job_ref
                    #build_request
                    self.client
                        .call_typed::<_, #ok, #err>(&JOB, &request, &self.options)
                        .await
                }
            },
            quote!(::rpc_runtime::Pending<#ok, #err>),
            quote!(send_typed::<_, #ok, #err>),
        ),
    };
    quote! {
        #call_doc
        #deprecated
        #call

        #[doc = #send_doc]
        #deprecated
        pub async fn #send(&self, #params) -> Result<#pending_ty, ::rpc_runtime::Error> {
            #job_ref
            #build_request
            self.client.#send_call(&JOB, &request, &self.options).await
        }

        #[doc = #pending_doc]
        #deprecated
        pub fn #pending(&self, id: ::rpc_runtime::JobId) -> #pending_ty {
            self.client.pending(id)
        }
    }
}
