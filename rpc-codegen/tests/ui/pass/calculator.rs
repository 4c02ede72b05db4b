//! A typed handler and a typed client for `schema/calculator.rpc` build, the
//! server dispatches wire calls to the handler, and `json_schemas()` serves
//! at run time what `rpc-codegen json-schema` prints for the file.
#![deny(warnings)]

include!("../generated/calculator.rs");

use calculator::{Calculator, CalculatorClient, CalculatorServer, MathError, Tagged};
use std::future::IntoFuture;

use rpc_runtime::{Context, HandlerError, JobError, Outcome, Service};

struct Handler;

impl Calculator for Handler {
    async fn add(&self, _ctx: Context, a: i64, b: i64) -> Result<i64, HandlerError> {
        Ok(a + b)
    }

    async fn divide(&self, _ctx: Context, a: f64, b: f64) -> Result<f64, JobError<MathError>> {
        if b == 0.0 {
            // The schema's error type: `?` makes it the caller's `CallError::App`.
            Err(MathError::DivideByZero)?;
        }
        // Any other error: `?` makes it a handler failure.
        let _: i64 = "2".parse()?;
        Ok(a / b)
    }

    async fn log(&self, _ctx: Context, line: String) -> Result<(), HandlerError> {
        // `?` on any std error is a handler failure.
        let _: u8 = line.len().to_string().parse()?;
        Ok(())
    }

    async fn sum(&self, _ctx: Context, values: Vec<Tagged>) -> Result<Tagged, HandlerError> {
        Ok(Tagged {
            value: values.iter().map(|t| t.value).sum(),
            label: Some("sum".into()),
        })
    }
}

/// Type-checks every client method; never called.
#[allow(dead_code)]
async fn use_client(client: CalculatorClient) -> Result<(), Box<dyn std::error::Error>> {
    use std::time::Duration;
    // One method per job; options on the call; `.await` sends it.
    let three: i64 = client.add(1, 2).await?;
    let _ = three;
    let _: i64 = client
        .add(1, 2)
        .timeout(Duration::from_secs(1))
        .delay(Duration::from_millis(10))
        .idempotency_key("k")
        .meta("tenant", "a")
        .await?;
    // Plain and `Result` jobs fail with the same error type, matched alike.
    let plain: Result<i64, rpc_runtime::CallError> = client.add(1, 2).await;
    if let Err(rpc_runtime::CallError::Rpc(e)) = plain {
        println!("{e}");
    }
    match client.divide(1.0, 0.0).await {
        Ok(q) => println!("{q}"),
        Err(rpc_runtime::CallError::App(MathError::DivideByZero)) => {}
        Err(other) => println!("{other}"),
    }
    // String parameters take anything that converts into a String.
    let _id: rpc_runtime::JobId = client.log("hello").await?;
    let _id: rpc_runtime::JobId = client.log(String::from("hello")).await?;
    // Sent now, awaited later: the handle is itself a future.
    let pending: rpc_runtime::Pending<i64> = client.add(20, 22).send().await?;
    let again: rpc_runtime::Pending<i64> = client.client().attach(pending.id().clone());
    let _: i64 = pending.await?;
    let _: i64 = again.await?;
    let _pending: rpc_runtime::Pending<f64, MathError> = client.divide(1.0, 2.0).send().await?;
    let _sum: Tagged = client.sum(vec![Tagged { value: 1.0, label: None }]).await?;
    let _sum: Tagged = client.sum([Tagged { value: 1.0, label: None }]).await?;
    // The client is Clone and cheap; a call can move into a task.
    let spawned = tokio::spawn(client.clone().add(1, 1).into_future());
    let _ = spawned.await;
    // Many calls in one round trip: ids of one-way jobs, answers in order.
    let _ids: Vec<rpc_runtime::JobId> = client.log_many(["a", "b"]).await?;
    let sums: Vec<Result<i64, rpc_runtime::CallError>> =
        client.add_many([(1, 2), (3, 4)]).timeout(Duration::from_secs(1)).await?;
    let _ = sums;
    let _quotients: Vec<Result<f64, rpc_runtime::CallError<MathError>>> =
        client.divide_many(vec![(1.0, 2.0)]).await?;
    let _handles: Vec<rpc_runtime::Pending<i64>> = client.add_many([(1, 1)]).send().await?;
    // A batch of calls with their own options.
    let batch: rpc_runtime::Batch<i64> = [client.add(1, 2).idempotency_key("k1"), client.add(3, 4)]
        .into_iter()
        .collect();
    let _ = batch.await?;
    let mut one_way = rpc_runtime::OneWayBatch::new();
    one_way
        .push(client.log("x").delay(Duration::from_secs(5)))
        .push(client.client().send("Other.job", serde_json::json!({})));
    let _ids = one_way.await?;
    Ok(())
}

fn dispatch(server: &CalculatorServer<Handler>, job: &str, params: &str) -> Outcome {
    let params = serde_json::value::RawValue::from_string(params.to_owned()).expect("json");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(server.dispatch(Context::detached(job), job, &params))
}

fn main() {
    let server = CalculatorServer::new(Handler);
    assert_eq!(server.name(), "Calculator");
    let jobs: Vec<(&str, bool, Option<u64>)> = server
        .jobs()
        .iter()
        .map(|j| (j.name, j.one_way, j.timeout_ms))
        .collect();
    assert_eq!(
        jobs,
        [
            ("add", false, None),
            ("divide", false, Some(2000)),
            ("log", true, None),
            ("sum", false, None)
        ]
    );

    assert_eq!(dispatch(&server, "add", r#"{"a": 2, "b": 3}"#), Outcome::Ok("5".into()));
    assert_eq!(
        dispatch(&server, "divide", r#"{"a": 1, "b": 0}"#),
        Outcome::App(r#""DivideByZero""#.into())
    );
    assert_eq!(
        dispatch(&server, "sum", r#"{"values": [{"value": 1.5}, {"value": 2, "label": "x"}]}"#),
        Outcome::Ok(r#"{"value":3.5,"label":"sum"}"#.into())
    );
    assert_eq!(dispatch(&server, "log", r#"{"line": "hi"}"#), Outcome::Ok("null".into()));
    assert!(matches!(
        dispatch(&server, "add", r#"{"a": "two"}"#),
        Outcome::Failed { .. }
    ));
    assert!(matches!(dispatch(&server, "nope", "{}"), Outcome::Failed { .. }));

    let from_model: serde_json::Value =
        serde_json::from_str(include_str!("../generated/calculator.json")).expect("json");
    let served = serde_json::to_value(calculator::json_schemas()).expect("json");
    assert_eq!(served, from_model);
}
