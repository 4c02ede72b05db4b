//! Data types: the schema's structs and enums, and one request struct per job
//! (the job's parameters, which travel as the wire `params` object).

use proc_macro2::TokenStream;
use quote::quote;

use super::{data_derives, deprecated, docs};
use crate::model::{
    Field, ModuleId, Returns, Schema, Service, Ty, TypeDef, TypeKind, TypeRef, VariantShape,
};

/// The Rust spelling of a type, from inside module `current`.
pub(crate) fn rust_type(schema: &Schema, current: ModuleId, ty: &Ty) -> TokenStream {
    match ty {
        Ty::Bool => quote!(bool),
        Ty::I8 => quote!(i8),
        Ty::I16 => quote!(i16),
        Ty::I32 => quote!(i32),
        Ty::I64 => quote!(i64),
        Ty::U8 => quote!(u8),
        Ty::U16 => quote!(u16),
        Ty::U32 => quote!(u32),
        Ty::U64 => quote!(u64),
        Ty::F32 => quote!(f32),
        Ty::F64 => quote!(f64),
        Ty::String => quote!(String),
        Ty::Bytes => quote!(::rpc_runtime::Bytes),
        Ty::Json => quote!(::rpc_runtime::__private::serde_json::Value),
        Ty::Vec(inner) => {
            let inner = rust_type(schema, current, inner);
            quote!(Vec<#inner>)
        }
        Ty::Option(inner) => {
            let inner = rust_type(schema, current, inner);
            quote!(Option<#inner>)
        }
        Ty::Map(inner) => {
            let inner = rust_type(schema, current, inner);
            quote!(::std::collections::BTreeMap<String, #inner>)
        }
        Ty::Boxed(inner) => {
            let inner = rust_type(schema, current, inner);
            quote!(Box<#inner>)
        }
        Ty::Named(r) => {
            let name = schema.type_def(*r).name.ident();
            if r.module == current {
                quote!(#name)
            } else {
                let module = schema.module(r.module).name.ident();
                quote!(super::#module::#name)
            }
        }
    }
}

/// Field declarations, with serde attributes where the wire differs from Rust.
fn fields(schema: &Schema, current: ModuleId, fields: &[Field], public: bool) -> TokenStream {
    let fields = fields.iter().map(|f| {
        let docs = docs(&f.docs);
        let deprecated = deprecated(&f.deprecated);
        let name = f.name.ident();
        let ty = rust_type(schema, current, &f.ty);
        let rename = if f.wire != f.name.unraw() {
            let wire = &f.wire;
            quote!(#[serde(rename = #wire)])
        } else {
            TokenStream::new()
        };
        let optional = if matches!(f.ty, Ty::Option(_)) {
            quote!(#[serde(default, skip_serializing_if = "Option::is_none")])
        } else {
            TokenStream::new()
        };
        let vis = if public {
            quote!(pub)
        } else {
            TokenStream::new()
        };
        quote! {
            #docs
            #deprecated
            #rename
            #optional
            #vis #name: #ty
        }
    });
    quote!(#(#fields,)*)
}

/// One struct or enum declared in the module.
pub(crate) fn schema_type(schema: &Schema, id: ModuleId, def: &TypeDef) -> TokenStream {
    let derives = data_derives();
    {
        let docs = docs(&def.docs);
        let deprecated = deprecated(&def.deprecated);
        let name = def.name.ident();
        match &def.kind {
            TypeKind::Struct(list) => {
                let fields = fields(schema, id, list, true);
                quote! {
                    #docs
                    #deprecated
                    #derives
                    pub struct #name { #fields }
                }
            }
            TypeKind::Enum(variants) => {
                let variants = variants.iter().map(|v| {
                    let docs = super::docs(&v.docs);
                    let deprecated = super::deprecated(&v.deprecated);
                    let name = v.name.ident();
                    let rename = if v.wire != v.name.unraw() {
                        let wire = &v.wire;
                        quote!(#[serde(rename = #wire)])
                    } else {
                        TokenStream::new()
                    };
                    let body = match &v.shape {
                        VariantShape::Unit => TokenStream::new(),
                        VariantShape::Struct(list) => {
                            let fields = fields(schema, id, list, false);
                            quote!({ #fields })
                        }
                        VariantShape::Newtype(ty) => {
                            let ty = rust_type(schema, id, ty);
                            quote!((#ty))
                        }
                    };
                    quote! {
                        #docs
                        #deprecated
                        #rename
                        #name #body
                    }
                });
                quote! {
                    #docs
                    #deprecated
                    #derives
                    pub enum #name { #(#variants,)* }
                }
            }
        }
    }
}

/// For a type some job returns as its application error (`Result<T, E>`):
/// `From<E> for JobError<E>`, so `?` in a handler turns it into the typed
/// error the caller gets (any other error becomes a handler failure).
pub(crate) fn app_error(schema: &Schema, id: ModuleId, index: usize) -> TokenStream {
    let me = TypeRef { module: id, index };
    let is_error = schema.modules.iter().any(|m| {
        m.services.iter().any(|s| {
            s.jobs
                .iter()
                .any(|j| matches!(j.returns, Returns::Result { err, .. } if err == me))
        })
    });
    if !is_error {
        return TokenStream::new();
    }
    let name = schema.type_def(me).name.ident();
    quote! {
        impl ::std::convert::From<#name> for ::rpc_runtime::JobError<#name> {
            fn from(error: #name) -> Self {
                ::rpc_runtime::JobError::App(error)
            }
        }
    }
}

/// `<Service><Job>Request` for every job of `service`.
pub(crate) fn request_structs(schema: &Schema, id: ModuleId, service: &Service) -> TokenStream {
    let derives = data_derives();
    let items = service.jobs.iter().map(|job| {
        let doc = format!(
            " Parameters of job `{}` of service `{}`: the wire `params` object.",
            job.wire, service.wire
        );
        let name = job.request.ident();
        let fields = fields(schema, id, &job.params, true);
        quote! {
            #[doc = #doc]
            #derives
            pub struct #name { #fields }
        }
    });
    quote!(#(#items)*)
}
