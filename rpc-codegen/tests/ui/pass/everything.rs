//! `schema/everything.rpc` (and the `common.rpc` it imports) generate code
//! that builds under `#![deny(warnings)]`, handlers for all three services
//! can be written, names survive the trip (keywords escaped in Rust, kept on
//! the wire; renames applied), and each module's `json_schemas()` serves
//! what `rpc-codegen json-schema` prints for its file.
#![deny(warnings)]

include!("../generated/common.rs");
include!("../generated/everything.rs");

use std::collections::BTreeMap;

use common::{CommonError, Page, Point};
use everything::*;
use rpc_runtime::{Context, HandlerError, JobError, Outcome, Service};

struct Handler;

type Plain<T> = Result<T, HandlerError>;

impl Drawing for Handler {
    async fn count(&self, _ctx: Context) -> Plain<u64> {
        Ok(7)
    }
    async fn clear(&self, _ctx: Context) -> Plain<()> {
        Ok(())
    }
    async fn draw(&self, _ctx: Context, _shape: Shape, _color: Color) -> Result<u64, JobError<DrawError>> {
        Err(JobError::App(DrawError::CanvasFull { capacity: 3 }))
    }
    async fn find(&self, _ctx: Context, id: u64) -> Result<Shape, JobError<CommonError>> {
        Err(JobError::App(CommonError::NotFound { what: format!("shape {id}") }))
    }
    async fn centroid(&self, _ctx: Context, points: Vec<Point>, _page: Option<Page>) -> Plain<Point> {
        let n = points.len().max(1) as f64;
        Ok(Point {
            x: points.iter().map(|p| p.x).sum::<f64>() / n,
            y: points.iter().map(|p| p.y).sum::<f64>() / n,
        })
    }
    async fn log(&self, _ctx: Context, _line: String, _level: Option<u8>) -> Plain<()> {
        Ok(())
    }
    async fn evaluate(&self, _ctx: Context, expr: Expr, env: BTreeMap<String, f64>) -> Result<f64, JobError<DrawError>> {
        fn eval(e: &Expr, env: &BTreeMap<String, f64>) -> f64 {
            match e {
                Expr::Number(n) => *n,
                Expr::Negate(inner) => -eval(inner, env),
                Expr::Add { left, right } => eval(left, env) + eval(right, env),
                Expr::Call { name, args } => env.get(name).copied().unwrap_or(0.0) + args.iter().map(|a| eval(a, env)).sum::<f64>(),
                Expr::Let(binding) => eval(&binding.value, env),
            }
        }
        Ok(eval(&expr, &env))
    }
    async fn walk(&self, _ctx: Context, tree: Tree) -> Plain<Vec<String>> {
        let mut out = vec![tree.label];
        out.extend(tree.children.into_iter().map(|c| c.label));
        Ok(out)
    }
    async fn reverse(&self, _ctx: Context, list: Node) -> Plain<Node> {
        let mut reversed: Option<Box<Node>> = None;
        let mut current = Some(Box::new(list));
        while let Some(mut node) = current {
            current = node.next.take();
            node.next = reversed;
            reversed = Some(node);
        }
        reversed.map(|n| *n).ok_or_else(|| HandlerError::fatal("empty"))
    }
    async fn lookup(&self, _ctx: Context, name: String) -> Plain<Option<Person>> {
        Ok(Some(Person {
            name,
            pet: Some(Box::new(Pet { name: "Rex".into(), owner: None })),
        }))
    }
    async fn echo(&self, _ctx: Context, scalars: Scalars, _containers: Containers) -> Plain<Scalars> {
        Ok(scalars)
    }
    async fn raw(&self, _ctx: Context, _blob: rpc_runtime::Bytes, doc: serde_json::Value) -> Plain<serde_json::Value> {
        Ok(doc)
    }
    async fn r#type(&self, _ctx: Context, self_: String, r#match: Keywords) -> Plain<Keywords> {
        Ok(Keywords { r#type: self_, ..r#match })
    }
    async fn header_value(&self, _ctx: Context, header: HttpHeader) -> Plain<String> {
        Ok(format!("{}: {}", header.label_text, header.value))
    }
    async fn rotate(&self, _ctx: Context, shape: Shape, _degrees: f64) -> Plain<Shape> {
        Ok(shape)
    }
    #[allow(deprecated)]
    async fn paint(&self, _ctx: Context, _shape: OldShape) -> Plain<()> {
        Ok(())
    }
}

impl Admin for Handler {
    async fn reset(&self, _ctx: Context) -> Plain<bool> {
        Ok(true)
    }
    async fn stats(&self, _ctx: Context) -> Plain<BTreeMap<String, u64>> {
        Ok(BTreeMap::from([("calls".to_string(), 1)]))
    }
}

impl common::Health for Handler {
    async fn ping(&self, _ctx: Context) -> Plain<String> {
        Ok("pong".into())
    }
}

/// Type-checks a few client methods; never called.
#[allow(dead_code)]
async fn use_clients(client: rpc_runtime::Client) -> Result<(), Box<dyn std::error::Error>> {
    let drawing = DrawingClient::new(client.clone());
    let _: u64 = drawing.count().await?;
    let _: rpc_runtime::JobId = drawing.clear().await?;
    match drawing.draw(Shape::Empty, Color::Red).await {
        Err(rpc_runtime::CallError::App(DrawError::CanvasFull { capacity })) => println!("{capacity}"),
        _ => {}
    }
    let _: Result<Shape, rpc_runtime::CallError<CommonError>> = drawing.find(1).await;
    let _: Keywords = drawing.r#type("x", Keywords { r#type: "t".into(), r#match: true, self_: 1, r#async: None }).await?;
    let _: rpc_runtime::Pending<Shape> = drawing.rotate(Shape::Empty, 90.0).send().await?;
    let admin = AdminClient::new(client.clone());
    let _: BTreeMap<String, u64> = admin.stats().await?;
    let _: String = common::HealthClient::new(client).ping().await?;
    Ok(())
}

fn dispatch(service: &dyn Service, job: &str, params: &str) -> Outcome {
    let params = serde_json::value::RawValue::from_string(params.to_owned()).expect("json");
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    runtime.block_on(service.dispatch(Context::detached(job), job, &params))
}

fn ok(outcome: Outcome) -> serde_json::Value {
    match outcome {
        Outcome::Ok(json) => serde_json::from_str(&json).expect("json"),
        other => panic!("not ok: {other:?}"),
    }
}

fn main() {
    let drawing = DrawingServer::new(Handler);
    assert_eq!(drawing.name(), "Drawing");
    let names: Vec<&str> = drawing.jobs().iter().map(|j| j.name).collect();
    assert_eq!(
        names,
        [
            "count", "clear", "draw", "find", "centroid", "log", "evaluate", "walk", "reverse",
            "lookup", "echo", "raw", "type", "headerValue", "shape.rotate", "paint"
        ]
    );
    let draw = &drawing.jobs()[2];
    assert_eq!((draw.timeout_ms, draw.max_attempts), (Some(5000), Some(3)));
    assert_eq!(draw.backoff, Some(rpc_runtime::Backoff::DEFAULT));
    assert_eq!(drawing.jobs()[5].backoff, Some(rpc_runtime::Backoff::Fixed { delay_ms: 2000 }));
    assert_eq!(drawing.jobs()[0].backoff, None);
    assert_eq!(
        drawing.jobs()[5].rate.map(|r| r.to_string()).as_deref(),
        Some("100/s burst 10")
    );
    assert_eq!(drawing.jobs()[0].rate, None);
    assert_eq!(drawing.rate(), None);
    assert!(drawing.jobs()[15].deprecated);
    assert!(drawing.jobs()[1].one_way);

    assert_eq!(ok(dispatch(&drawing, "count", "{}")), serde_json::json!(7));
    assert_eq!(
        dispatch(&drawing, "draw", r#"{"shape": "Empty", "color": "Red"}"#),
        Outcome::App(r#"{"CanvasFull":{"capacity":3}}"#.into())
    );
    // Keywords keep their names on the wire.
    assert_eq!(
        ok(dispatch(
            &drawing,
            "type",
            r#"{"self": "s", "match": {"type": "t", "match": true, "self": 1}}"#
        )),
        serde_json::json!({"type": "s", "match": true, "self": 1})
    );
    // Renamed job, renamed parameter, renamed variant.
    assert_eq!(
        ok(dispatch(
            &drawing,
            "shape.rotate",
            r#"{"shape": {"rect": {"corner": {"x": 0, "y": 0}, "width": 1, "height": 2}}, "deg": 90}"#
        )),
        serde_json::json!({"rect": {"corner": {"x": 0.0, "y": 0.0}, "width": 1.0, "height": 2.0}})
    );
    // camelCase on the wire, snake_case in Rust.
    assert_eq!(
        ok(dispatch(&drawing, "headerValue", r#"{"header": {"labelText": "a", "Value": "b"}}"#)),
        serde_json::json!("a: b")
    );
    // Recursive types, boxed in Rust, plain JSON on the wire.
    assert_eq!(
        ok(dispatch(
            &drawing,
            "evaluate",
            r#"{"expr": {"Add": {"left": {"Number": 1}, "right": {"Negate": {"Number": 3}}}}, "env": {}}"#
        )),
        serde_json::json!(-2.0)
    );
    assert_eq!(
        ok(dispatch(&drawing, "reverse", r#"{"list": {"value": 1, "next": {"value": 2}}}"#)),
        serde_json::json!({"value": 2, "next": {"value": 1}})
    );
    assert!(matches!(dispatch(&drawing, "reverse", r#"{"list": 5}"#), Outcome::Failed { .. }));

    let admin = AdminServer::new(Handler);
    assert_eq!(ok(dispatch(&admin, "stats", "{}")), serde_json::json!({"calls": 1}));
    assert_eq!(admin.rate().map(|r| r.to_string()).as_deref(), Some("1000/m"));
    let health = common::HealthServer::new(Handler);
    assert_eq!(ok(dispatch(&health, "ping", "{}")), serde_json::json!("pong"));

    for (generated, expected) in [
        (everything::json_schemas(), include_str!("../generated/everything.json")),
        (common::json_schemas(), include_str!("../generated/common.json")),
    ] {
        let from_model: serde_json::Value = serde_json::from_str(expected).expect("json");
        let served = serde_json::to_value(generated).expect("json");
        assert_eq!(served, from_model);
    }
}
