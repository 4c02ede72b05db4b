//! The Calculator example: the code generated from `schema/calculator.rpc`
//! and one implementation of its handler trait, shared by the `worker`,
//! `client` and `demo` binaries.

use rpc_runtime::{Context, HandlerError, JobError};

pub mod probe;
mod tracing_setup;

pub use self::tracing_setup::{init_tracing, Tracing, TracingArgs};

rpc_runtime::include_schema!("calculator");

pub use self::calculator::{Calculator, CalculatorClient, CalculatorServer, MathError, Tagged};

/// The broker URL: `--url`, else `REDIS_URL`, else `default`.
pub fn broker_url(flag: Option<String>, default: &str) -> String {
    flag.or_else(|| std::env::var("REDIS_URL").ok())
        .unwrap_or_else(|| default.to_owned())
}

/// The handler the example worker mounts.
#[derive(Debug, Default, Clone)]
pub struct Calc;

impl Calculator for Calc {
    async fn add(&self, _ctx: Context, a: i64, b: i64) -> Result<i64, HandlerError> {
        a.checked_add(b)
            .ok_or_else(|| HandlerError::fatal(format!("{a} + {b} overflows i64")))
    }

    async fn divide(&self, _ctx: Context, a: f64, b: f64) -> Result<f64, JobError<MathError>> {
        if b == 0.0 {
            // `?` (or `.into()`) makes the schema's error the caller's
            // `CallError::App`; `?` on any other error is a handler failure.
            Err(MathError::DivideByZero)?;
        }
        let q = a / b;
        if !q.is_finite() {
            Err(MathError::Overflow { limit: i64::MAX })?;
        }
        Ok(q)
    }

    async fn log(&self, ctx: Context, line: String) -> Result<(), HandlerError> {
        // Printed (not traced) so people and tests can watch one-way jobs land.
        println!("log [{}]: {line}", ctx.id());
        Ok(())
    }

    async fn sum(&self, _ctx: Context, values: Vec<Tagged>) -> Result<Tagged, HandlerError> {
        Ok(Tagged {
            value: values.iter().map(|t| t.value).sum(),
            label: Some("sum".to_owned()),
        })
    }
}
