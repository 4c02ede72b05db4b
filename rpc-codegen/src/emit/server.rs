//! The worker side: the handler trait a worker implements, and the
//! `<Service>Server` that decodes a call's params, invokes the handler and
//! turns its result into an `rpc_runtime::Outcome`.

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use super::types::rust_type;
use super::{deprecated, docs};
use crate::model::{Backoff, Job, ModuleId, RateLimit, Returns, Schema, Service};

/// `Result<T, HandlerError>` or `Result<T, JobError<E>>` for a handler method.
fn handler_output(schema: &Schema, id: ModuleId, job: &Job) -> TokenStream {
    match &job.returns {
        Returns::Nothing => quote!(Result<(), ::rpc_runtime::HandlerError>),
        Returns::Value(ty) => {
            let ty = rust_type(schema, id, ty);
            quote!(Result<#ty, ::rpc_runtime::HandlerError>)
        }
        Returns::Result { ok, err } => {
            let ok = rust_type(schema, id, ok);
            let err = rust_type(schema, id, &crate::model::Ty::Named(*err));
            quote!(Result<#ok, ::rpc_runtime::JobError<#err>>)
        }
    }
}

pub(crate) fn service(schema: &Schema, id: ModuleId, service: &Service) -> TokenStream {
    let trait_name = service.name.ident();
    let server = service.server.ident();
    let wire_service = &service.wire;
    // Unsharded services keep the trait's default.
    let shards_fn = (service.shards > 1).then(|| {
        let n = Literal::u32_unsuffixed(service.shards);
        quote! {
            fn shards(&self) -> u32 {
                #n
            }
        }
    });
    let rate_fn = service.rate.map(|limit| {
        let limit = rate_tokens(limit);
        quote! {
            fn rate(&self) -> ::std::option::Option<::rpc_runtime::RateLimit> {
                ::std::option::Option::Some(#limit)
            }
        }
    });
    let trait_docs = if service.docs.is_empty() {
        docs(&[format!(
            " Handler for service `{}`: implement it and mount [`{}`] on a worker.",
            service.wire, service.server
        )])
    } else {
        docs(&service.docs)
    };

    let methods = service.jobs.iter().map(|job| {
        let docs = docs(&job.docs);
        let deprecated = deprecated(&job.deprecated);
        let method = job.method.ident();
        let ctx = job.ctx_name.ident();
        let params = job.params.iter().map(|p| {
            let name = p.name.ident();
            let ty = rust_type(schema, id, &p.ty);
            quote!(#name: #ty)
        });
        let output = handler_output(schema, id, job);
        quote! {
            #docs
            #deprecated
            fn #method(&self, #ctx: ::rpc_runtime::Context, #(#params),*)
                -> impl ::std::future::Future<Output = #output> + Send;
        }
    });

    let infos = service.jobs.iter().map(|job| {
        let wire = &job.wire;
        let one_way = matches!(job.returns, Returns::Nothing);
        let timeout = option_tokens(job.timeout_ms.map(Literal::u64_unsuffixed));
        let attempts = option_tokens(job.attempts.map(Literal::u32_unsuffixed));
        let is_deprecated = job.deprecated.is_some();
        let backoff = match job.backoff {
            Some(policy) => {
                let policy = backoff_tokens(policy);
                quote!(Some(#policy))
            }
            None => quote!(None),
        };
        let rate = match job.rate {
            Some(limit) => {
                let limit = rate_tokens(limit);
                quote!(Some(#limit))
            }
            None => quote!(None),
        };
        let group_limit = option_tokens(job.group_limit.map(Literal::u32_unsuffixed));
        let priority = option_tokens(job.priority.map(Literal::u8_unsuffixed));
        quote! {
            ::rpc_runtime::JobInfo {
                name: #wire,
                one_way: #one_way,
                timeout_ms: #timeout,
                max_attempts: #attempts,
                deprecated: #is_deprecated,
                backoff: #backoff,
                rate: #rate,
                group_limit: #group_limit,
                priority: #priority,
            }
        }
    });

    let dispatch_body = if service.jobs.is_empty() {
        quote! {
            let _ = (ctx, params);
            ::std::boxed::Box::pin(async move { ::rpc_runtime::Outcome::unknown_job(job) })
        }
    } else {
        let arms = service.jobs.iter().map(|job| {
            let wire = &job.wire;
            let request = job.request.ident();
            let method = job.method.ident();
            let finish = match job.returns {
                Returns::Result { .. } => quote!(::rpc_runtime::__private::finish_app),
                _ => quote!(::rpc_runtime::__private::finish),
            };
            if job.params.is_empty() {
                quote! {
                    #wire => {
                        if let Err(outcome) = ::rpc_runtime::__private::decode::<#request>(params) {
                            return outcome;
                        }
                        #finish(self.handler.#method(ctx).await)
                    }
                }
            } else {
                let args = job.params.iter().map(|p| {
                    let name = p.name.ident();
                    quote!(request.#name)
                });
                quote! {
                    #wire => {
                        let request = match ::rpc_runtime::__private::decode::<#request>(params) {
                            Ok(request) => request,
                            Err(outcome) => return outcome,
                        };
                        #finish(self.handler.#method(ctx, #(#args),*).await)
                    }
                }
            }
        });
        quote! {
            ::std::boxed::Box::pin(async move {
                match job {
                    #(#arms)*
                    _ => ::rpc_runtime::Outcome::unknown_job(job),
                }
            })
        }
    };

    let server_doc = format!(
        " Serves service `{}` with a [`{}`] handler; mount it on a worker.",
        service.wire, service.name
    );
    quote! {
        #trait_docs
        pub trait #trait_name: Send + Sync + 'static {
            #(#methods)*
        }

        #[doc = #server_doc]
        pub struct #server<H> {
            handler: H,
        }

        impl<H: #trait_name> #server<H> {
            /// Wraps a handler.
            pub fn new(handler: H) -> Self {
                Self { handler }
            }
        }

        impl<H: #trait_name> ::rpc_runtime::Service for #server<H> {
            fn name(&self) -> &'static str {
                #wire_service
            }

            fn jobs(&self) -> &'static [::rpc_runtime::JobInfo] {
                const JOBS: &[::rpc_runtime::JobInfo] = &[#(#infos),*];
                JOBS
            }
            #shards_fn
            #rate_fn

            fn dispatch<'a>(
                &'a self,
                ctx: ::rpc_runtime::Context,
                job: &'a str,
                params: &'a ::rpc_runtime::__private::RawValue,
            ) -> ::rpc_runtime::__private::BoxFuture<'a, ::rpc_runtime::Outcome> {
                #dispatch_body
            }
        }
    }
}

/// A retry policy as a const expression of `rpc_runtime::Backoff`.
fn backoff_tokens(policy: Backoff) -> TokenStream {
    match policy {
        Backoff::None => quote!(::rpc_runtime::Backoff::None),
        Backoff::Fixed { delay_ms } => {
            let delay_ms = Literal::u64_unsuffixed(delay_ms);
            quote!(::rpc_runtime::Backoff::Fixed { delay_ms: #delay_ms })
        }
        Backoff::Exponential { base_ms, max_ms } => {
            let (base_ms, max_ms) = (
                Literal::u64_unsuffixed(base_ms),
                Literal::u64_unsuffixed(max_ms),
            );
            quote!(::rpc_runtime::Backoff::Exponential { base_ms: #base_ms, max_ms: #max_ms })
        }
    }
}

/// A rate limit as a struct literal (checked when the schema was read).
fn rate_tokens(limit: RateLimit) -> TokenStream {
    let (count, per_ms, burst) = (
        Literal::u32_unsuffixed(limit.count),
        Literal::u64_unsuffixed(limit.per_ms),
        Literal::u32_unsuffixed(limit.burst),
    );
    quote!(::rpc_runtime::RateLimit { count: #count, per_ms: #per_ms, burst: #burst })
}

/// `Some(x)` or `None` as tokens.
pub(crate) fn option_tokens(value: Option<Literal>) -> TokenStream {
    match value {
        Some(v) => quote!(Some(#v)),
        None => quote!(None),
    }
}
