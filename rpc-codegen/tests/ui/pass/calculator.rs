//! A typed handler and a typed client for `schema/calculator.rpc` build, the
//! server dispatches wire calls to the handler, and `json_schemas()` serves
//! at run time what `rpc-codegen json-schema` prints for the file.
#![deny(warnings)]

include!("../generated/calculator.rs");

use calculator::{Calculator, CalculatorClient, CalculatorServer, MathError, Tagged};
use rpc_runtime::{Context, HandlerError, JobError, Outcome, Service};

struct Handler;

impl Calculator for Handler {
    async fn add(&self, _ctx: Context, a: i64, b: i64) -> Result<i64, HandlerError> {
        Ok(a + b)
    }

    async fn divide(&self, _ctx: Context, a: f64, b: f64) -> Result<f64, JobError<MathError>> {
        if b == 0.0 {
            return Err(JobError::App(MathError::DivideByZero));
        }
        Ok(a / b)
    }

    async fn log(&self, _ctx: Context, _line: String) -> Result<(), HandlerError> {
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
    let client = client.with_timeout(std::time::Duration::from_secs(1));
    let three: i64 = client.add(1, 2).await?;
    let _ = three;
    match client.divide(1.0, 0.0).await {
        Ok(q) => println!("{q}"),
        Err(rpc_runtime::CallError::App(MathError::DivideByZero)) => {}
        Err(other) => println!("{other}"),
    }
    let _id: rpc_runtime::JobId = client.log("hello".into()).await?;
    let pending: rpc_runtime::Pending<i64> = client.send_add(20, 22).await?;
    let _again: rpc_runtime::Pending<i64> = client.pending_add(pending.id().clone());
    let _pending: rpc_runtime::Pending<f64, MathError> = client.send_divide(1.0, 2.0).await?;
    let _sum: Tagged = client.sum(vec![Tagged { value: 1.0, label: None }]).await?;
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
