//! Schema compiler for typed RPC over Redis queues.
//!
//! `.rpc` files describe data types and services; this crate turns each file
//! into one Rust module of plain data types, a handler trait per service, a
//! typed client and JSON Schemas, for use with `rpc-runtime`. Run it from a
//! build script with [`Builder`], or from the command line (`rpc-codegen
//! check|gen|json-schema|asyncapi|breaking`).
//!
//! The pipeline, shaped like syn/serde_derive:
//!
//! ```text
//! load (files, imports) -> parse (syntax) -> model (resolved, validated IR)
//!                                            -> emit (quote + prettyplease)
//!                                            -> json_schema (the CLI, and
//!                                               embedded by emit)
//! ```
//!
//! Every stage reports problems as [`Diagnostic`]s with spans; nothing panics
//! on bad input, and generated code always compiles.
//!
//! ```
//! let files = rpc_codegen::Builder::new()
//!     .source(
//!         "greeter.rpc",
//!         "service Greeter { fn hello(name: String) -> String; }",
//!     )
//!     .generate()
//!     .expect("a valid schema");
//! assert_eq!(files[0].file_name, "greeter.rs");
//! assert!(files[0].code.contains("pub trait Greeter"));
//!
//! let errors = rpc_codegen::Builder::new()
//!     .source("typo.rpc", "struct A { name: Strng }")
//!     .check()
//!     .unwrap_err();
//! assert!(errors.to_string().contains("did you mean `String`?"));
//! ```
//!
//! The schema language and its attributes are described in the crate's
//! README; what generated code looks like is pinned by
//! `docs/GENERATED-API.md`.

mod asyncapi;
mod builder;
mod compat;
mod diagnostic;
mod emit;
mod emit_python;
mod git;
mod json_schema;
mod load;
mod model;
mod naming;
mod parse;
mod python;
mod source;

pub use builder::{Builder, GeneratedFile};
pub use compat::{Change, CompatReport, Direction, Rule, Severity};
pub use diagnostic::{Diagnostic, Diagnostics};
pub use python::PYTHON_INIT;
