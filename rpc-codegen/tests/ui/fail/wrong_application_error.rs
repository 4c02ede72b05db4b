//! A job declared `-> Result<f64, MathError>` must fail with a `MathError`.
include!("../generated/calculator.rs");

use calculator::{MathError, Tagged};
use rpc_runtime::{Context, HandlerError, JobError};

struct Handler;

impl calculator::Calculator for Handler {
    async fn add(&self, _ctx: Context, a: i64, b: i64) -> Result<i64, HandlerError> {
        Ok(a + b)
    }
    async fn divide(&self, _ctx: Context, a: f64, b: f64) -> Result<f64, JobError<String>> {
        Ok(a / b)
    }
    async fn log(&self, _ctx: Context, _line: String) -> Result<(), HandlerError> {
        Ok(())
    }
    async fn sum(&self, _ctx: Context, _values: Vec<Tagged>) -> Result<Tagged, HandlerError> {
        Err(HandlerError::fatal("no"))
    }
}

fn main() {
    let _ = MathError::DivideByZero;
}
