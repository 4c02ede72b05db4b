//! A handler must implement every job of its service.
include!("../generated/calculator.rs");

use rpc_runtime::{Context, HandlerError};

struct Handler;

impl calculator::Calculator for Handler {
    async fn add(&self, _ctx: Context, a: i64, b: i64) -> Result<i64, HandlerError> {
        Ok(a + b)
    }
}

fn main() {}
