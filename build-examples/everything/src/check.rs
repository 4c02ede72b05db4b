//! What a worker serving `schema/everything.rpc` must answer: every job of
//! `Drawing`, `Admin` and `Health` called through the typed Rust clients
//! (typed errors and the other error kinds included) and through the
//! untyped client by wire name. Shared by `tests/every_job.rs` (against the
//! Rust worker) and the `everything-check` binary (against any worker, e.g.
//! the Python one), so both hold workers to the same answers.
//!
//! The worker must hold a [`Canvas`](crate::Canvas) of capacity 2 (or act
//! as one) and be the only one serving these services while this runs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rpc_runtime::{Bytes, CallError, Client, ErrorKind};
use serde_json::json;

use crate::common::{CommonError, HealthClient, Page, Point};
#[allow(deprecated)] // `paint` takes the deprecated `OldShape`.
use crate::everything::OldShape;
use crate::everything::{
    AdminClient, Containers, DrawError, Expr, HttpHeader, Keywords, Node, Scalars, Shape, Tree,
};
use crate::{Color, DrawingClient};

/// The canvas capacity the checks expect of the worker.
pub const CAPACITY: u64 = 2;

/// One `Scalars` with every field at an edge of its type.
pub fn scalars() -> Scalars {
    Scalars {
        flag: true,
        tiny: -8,
        small: -16,
        medium: -32,
        large: i64::MIN,
        byte: 255,
        word: 65535,
        dword: u32::MAX,
        qword: u64::MAX,
        single: 1.5,
        double: -2.25,
        text: "héllo".to_owned(),
        blob: Bytes(vec![0, 1, 2, 254, 255]),
        extra: json!({"any": ["json", 1, null]}),
    }
}

/// Fails the check with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn p(x: f64, y: f64) -> Point {
    Point { x, y }
}

/// A failed call's error as the check's failure, naming what was called.
fn e<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |err| format!("{what}: {err}")
}

/// The remote error kind of a failed call, or what came instead.
fn kind_of<T: std::fmt::Debug, E: std::fmt::Debug>(
    got: Result<T, CallError<E>>,
) -> Result<ErrorKind, String> {
    match got {
        Err(e) => e
            .remote_kind()
            .ok_or_else(|| format!("expected a worker's error answer, got {e}")),
        Ok(v) => Err(format!("expected an error answer, got Ok({v:?})")),
    }
}

/// Calls every job once or more and checks each answer; the first wrong
/// answer is the error. Returns the names of the checks that passed.
pub async fn every_job(client: &Client) -> Result<Vec<&'static str>, String> {
    let drawing = DrawingClient::new(client.clone());
    let admin = AdminClient::new(client.clone());
    let health = HealthClient::new(client.clone());
    let mut passed = Vec::new();

    // Imported service, zero parameters; a fresh canvas to start from.
    let got = health.ping().await.map_err(e("Health.ping"))?;
    ensure!(got == "pong", "Health.ping: {got:?}");
    #[allow(deprecated)]
    admin.reset().await.map_err(e("Admin.reset"))?;
    let got = drawing.count().await.map_err(e("Drawing.count"))?;
    ensure!(got == 0, "Drawing.count after reset: {got}");
    passed.push("ping, reset, count");

    // Result<T, E> with E from this file; attempts and timeout attributes.
    let got = drawing
        .draw(Shape::Polygon(vec![p(0.0, 0.0)]), Color::Red)
        .await
        .map_err(e("Drawing.draw polygon"))?;
    ensure!(got == 1, "Drawing.draw polygon: {got}");
    let rect = Shape::Rectangle {
        corner: p(1.0, 1.0),
        width: 2.0,
        height: 3.0,
    };
    let got = drawing
        .draw(rect.clone(), Color::Blue)
        .await
        .map_err(e("Drawing.draw rect"))?;
    ensure!(got == 2, "Drawing.draw rect: {got}");
    match drawing.draw(rect.clone(), Color::Green).await {
        Err(CallError::App(DrawError::CanvasFull { capacity: 2 })) => {}
        other => return Err(format!("Drawing.draw on a full canvas: {other:?}")),
    }
    match drawing.draw(Shape::Empty, Color::Green).await {
        Err(CallError::App(DrawError::UnknownShape(s))) if s == "Empty" => {}
        other => return Err(format!("Drawing.draw Empty: {other:?}")),
    }
    passed.push("draw: ok, CanvasFull, UnknownShape");

    // Result<T, E> with E from the imported file.
    match drawing.find(0).await {
        Ok(Shape::Circle { center, radius }) if center == p(0.0, 0.0) && radius == 1.0 => {}
        other => return Err(format!("Drawing.find 0: {other:?}")),
    }
    match drawing.find(1).await {
        Err(CallError::App(CommonError::Forbidden)) => {}
        other => return Err(format!("Drawing.find 1: {other:?}")),
    }
    match drawing.find(9).await {
        Err(CallError::App(CommonError::NotFound { what })) if what == "shape 9" => {}
        other => return Err(format!("Drawing.find 9: {other:?}")),
    }
    passed.push("find: ok, Forbidden, NotFound (imported error)");

    // Imported types in and out, Option parameters, a handler's refusal.
    let pts = vec![p(0.0, 0.0), p(2.0, 2.0), p(4.0, 4.0)];
    let got = drawing
        .centroid(pts.clone(), None)
        .await
        .map_err(e("Drawing.centroid"))?;
    ensure!(got == p(2.0, 2.0), "Drawing.centroid: {got:?}");
    let page = Page {
        offset: 1,
        limit: 1,
    };
    let got = drawing
        .centroid(pts, Some(page))
        .await
        .map_err(e("Drawing.centroid paged"))?;
    ensure!(got == p(2.0, 2.0), "Drawing.centroid paged: {got:?}");
    let kind = kind_of(drawing.centroid(vec![], None).await)?;
    ensure!(
        kind == ErrorKind::Handler,
        "Drawing.centroid of no points: {kind:?}, expected handler"
    );
    passed.push("centroid: Option<Page>, handler error");

    // One-way jobs with and without parameters: the canvas empties.
    drawing
        .log("hello", Some(3))
        .await
        .map_err(e("Drawing.log"))?;
    drawing.clear().await.map_err(e("Drawing.clear"))?;
    let cleared = Instant::now() + Duration::from_secs(30);
    loop {
        let n = drawing.count().await.map_err(e("Drawing.count"))?;
        if n == 0 {
            break;
        }
        ensure!(Instant::now() < cleared, "Drawing.clear never ran: {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    passed.push("log, clear (one-way)");

    // Recursive types.
    let expr = Expr::Add {
        left: Box::new(Expr::Negate(Box::new(Expr::Number(2.0)))),
        right: Box::new(Expr::Call {
            name: "max".to_owned(),
            args: vec![Expr::Number(1.0), Expr::Number(10.0)],
        }),
    };
    let got = drawing
        .evaluate(expr, BTreeMap::new())
        .await
        .map_err(e("Drawing.evaluate"))?;
    ensure!(got == 8.0, "Drawing.evaluate: {got}");
    let binding = Expr::Let(Box::new(crate::everything::Binding {
        name: "x".to_owned(),
        value: Box::new(Expr::Number(1.0)),
    }));
    let got = drawing
        .evaluate(binding, BTreeMap::from([("x".to_owned(), 5.5)]))
        .await
        .map_err(e("Drawing.evaluate let"))?;
    ensure!(got == 5.5, "Drawing.evaluate let: {got}");
    let bad = Expr::Call {
        name: "sqrt".to_owned(),
        args: vec![],
    };
    match drawing.evaluate(bad, BTreeMap::new()).await {
        Err(CallError::App(DrawError::UnknownShape(s))) if s == "sqrt" => {}
        other => return Err(format!("Drawing.evaluate sqrt: {other:?}")),
    }
    let leaf = |l: &str| Tree {
        label: l.to_owned(),
        children: vec![],
        by_key: BTreeMap::new(),
    };
    let tree = Tree {
        label: "root".to_owned(),
        children: vec![leaf("a")],
        by_key: BTreeMap::from([("k".to_owned(), leaf("b"))]),
    };
    let got = drawing.walk(tree).await.map_err(e("Drawing.walk"))?;
    ensure!(got == ["root", "a", "b"], "Drawing.walk: {got:?}");
    let list = Node {
        value: 1,
        next: Some(Box::new(Node {
            value: 2,
            next: None,
        })),
    };
    let reversed = drawing.reverse(list).await.map_err(e("Drawing.reverse"))?;
    let got = (
        reversed.value,
        reversed.next.as_ref().map(|n| n.value),
        reversed.next.and_then(|n| n.next).is_none(),
    );
    ensure!(got == (2, Some(1), true), "Drawing.reverse: {got:?}");
    passed.push("evaluate, walk, reverse (recursion)");

    // Option results, mutual recursion through Option.
    let ada = drawing
        .lookup("ada".to_owned())
        .await
        .map_err(e("Drawing.lookup ada"))?;
    let pet = ada.and_then(|a| a.pet).map(|p| (p.name, p.owner.is_none()));
    ensure!(
        pet == Some(("rex".to_owned(), true)),
        "Drawing.lookup ada: {pet:?}"
    );
    let bob = drawing
        .lookup("bob".to_owned())
        .await
        .map_err(e("Drawing.lookup bob"))?;
    ensure!(bob.is_none(), "Drawing.lookup bob: {bob:?}");
    passed.push("lookup (Option result)");

    // Every built-in type, containers, Bytes, Json.
    let containers = Containers {
        numbers: vec![1, 2, 3],
        maybe: None,
        by_name: BTreeMap::from([("x".to_owned(), 1)]),
        matrix: vec![vec![1.0, 2.0], vec![]],
        groups: BTreeMap::from([("g".to_owned(), vec![p(1.0, 2.0)])]),
        maybe_list: Some(vec![Some(1), None]),
        maybe_map: Some(BTreeMap::from([("j".to_owned(), json!([1, "two"]))])),
        blobs: vec![Bytes(vec![9; 3])],
    };
    let echoed = drawing
        .echo(scalars(), containers)
        .await
        .map_err(e("Drawing.echo"))?;
    let want = Scalars {
        text: "héllo (3 numbers)".to_owned(),
        ..scalars()
    };
    ensure!(echoed == want, "Drawing.echo: {echoed:?}");
    let raw = drawing
        .raw(Bytes(vec![1, 2, 3]), json!({"k": [true]}))
        .await
        .map_err(e("Drawing.raw"))?;
    ensure!(
        raw == json!({"len": 3, "doc": {"k": [true]}}),
        "Drawing.raw: {raw}"
    );
    passed.push("echo, raw (every scalar, containers, bytes, Json)");

    // Keywords as names, renames, camelCase.
    let kw = Keywords {
        r#type: "ignored".to_owned(),
        r#match: true,
        self_: 7,
        r#async: Some(1),
    };
    let got = drawing
        .r#type("from self".to_owned(), kw)
        .await
        .map_err(e("Drawing.type"))?;
    ensure!(
        (got.r#type.as_str(), got.r#match, got.self_, got.r#async)
            == ("from self", true, 7, Some(1)),
        "Drawing.type: {got:?}"
    );
    #[allow(deprecated)] // constructing sets every field, deprecated ones too
    let header = HttpHeader {
        label_text: "Accept".to_owned(),
        value: "json".to_owned(),
        legacy: None,
        old_value: None,
    };
    let got = drawing
        .header_value(header)
        .await
        .map_err(e("Drawing.headerValue"))?;
    ensure!(got == "Accept: json", "Drawing.headerValue: {got:?}");
    let turned = drawing
        .rotate(Shape::Polygon(vec![p(1.0, 0.0)]), 90.0)
        .await
        .map_err(e("Drawing.shape.rotate"))?;
    match turned {
        Shape::Polygon(pts)
            if pts.len() == 1 && pts[0].x.abs() < 1e-9 && (pts[0].y - 1.0).abs() < 1e-9 => {}
        other => return Err(format!("Drawing.shape.rotate: {other:?}")),
    }
    #[allow(deprecated)]
    drawing
        .paint(OldShape { sides: 3 })
        .await
        .map_err(e("Drawing.paint"))?;
    passed.push("type, headerValue, shape.rotate, paint (names)");

    // A second service in the same file; a deprecated job still callable.
    ensure!(
        drawing
            .draw(Shape::Polygon(vec![]), Color::Red)
            .await
            .map_err(e("Drawing.draw"))?
            == 1,
        "Drawing.draw after clear"
    );
    let stats = admin.stats().await.map_err(e("Admin.stats"))?;
    ensure!(
        stats == BTreeMap::from([("capacity".to_owned(), CAPACITY), ("drawn".to_owned(), 1)]),
        "Admin.stats: {stats:?}"
    );
    #[allow(deprecated)]
    let was_drawn = admin.reset().await.map_err(e("Admin.reset"))?;
    ensure!(was_drawn, "Admin.reset after a draw: false");
    passed.push("stats, reset (second service)");

    // The wire names and JSON, as another language sends them.
    let r = client
        .call_and_wait(
            "Drawing.type",
            json!({"self": "s", "match": {"type": "t", "match": false, "self": 1}}),
        )
        .await
        .map_err(e("Drawing.type"))?;
    ensure!(
        r.data == json!({"type": "s", "match": false, "self": 1}),
        "Drawing.type untyped: {}",
        r.data
    );
    let r = client
        .call_and_wait(
            "Drawing.headerValue",
            json!({"header": {"labelText": "A", "Value": "b"}}),
        )
        .await
        .map_err(e("Drawing.headerValue"))?;
    ensure!(
        r.data == json!("A: b"),
        "Drawing.headerValue untyped: {}",
        r.data
    );
    let r = client
        .call_and_wait(
            "Drawing.shape.rotate",
            json!({"shape": {"rect": {"corner": {"x": 0.0, "y": 0.0}, "width": 1.0, "height": 1.0}}, "deg": 0.0}),
        )
        .await
        .map_err(e("Drawing.shape.rotate"))?;
    ensure!(
        r.data["rect"]["width"] == json!(1.0),
        "Drawing.shape.rotate untyped: {}",
        r.data
    );
    let r = client
        .call_and_wait("Drawing.raw", json!({"blob": "AQID", "doc": null}))
        .await
        .map_err(e("Drawing.raw"))?;
    ensure!(
        r.data == json!({"len": 3, "doc": null}),
        "Drawing.raw untyped: {}",
        r.data
    );
    let r = client
        .call_and_wait("Drawing.draw", json!({"shape": "Empty", "color": "Red"}))
        .await;
    match r {
        Err(err) if err.remote_kind() == Some(ErrorKind::App) => {}
        other => return Err(format!("Drawing.draw Empty untyped: {other:?}")),
    }
    passed.push("wire names untyped");

    // Parameters that do not match the job's types: bad_request, not run.
    for (job, params) in [
        ("Drawing.draw", json!({"shape": 5, "color": "Red"})),
        ("Drawing.draw", json!({"shape": "Empty", "color": "Purple"})),
        ("Drawing.find", json!({"id": -1})),
        ("Drawing.echo", json!({"scalars": {}, "containers": {}})),
        ("Drawing.raw", json!({"blob": "not base64!", "doc": null})),
    ] {
        let kind = client
            .call_and_wait(job, params.clone())
            .await
            .map(|r| r.data);
        match kind {
            Err(err) if err.remote_kind() == Some(ErrorKind::BadRequest) => {}
            other => return Err(format!("{job} {params}: {other:?}, expected bad_request")),
        }
    }
    let r = client.call_and_wait("Drawing.nope", json!({})).await;
    match r {
        Err(err) if err.remote_kind() == Some(ErrorKind::UnknownJob) => {}
        other => return Err(format!("Drawing.nope: {other:?}, expected unknown_job")),
    }
    passed.push("bad_request, unknown_job");
    Ok(passed)
}

/// `calls` calls of `Drawing.headerValue`, each with its own answer
/// (`"t{task}: {i}"`), from `tasks` tasks at once through one client, every
/// answer checked: the Rust client's throughput figure beside the Python
/// client's (python/tests/test_interop_load.py). Returns the time taken.
pub async fn load(client: &Client, calls: usize, tasks: usize) -> Result<Duration, String> {
    let drawing = DrawingClient::new(client.clone());
    let tasks = tasks.max(1);
    let started = Instant::now();
    let runs = (0..tasks).map(|t| {
        let drawing = drawing.clone();
        let each = calls / tasks + usize::from(t < calls % tasks);
        tokio::spawn(async move {
            for i in 0..each {
                #[allow(deprecated)] // constructing sets every field, deprecated ones too
                let header = HttpHeader {
                    label_text: format!("t{t}"),
                    value: i.to_string(),
                    legacy: None,
                    old_value: None,
                };
                let got = drawing
                    .header_value(header)
                    .await
                    .map_err(e("Drawing.headerValue"))?;
                ensure!(got == format!("t{t}: {i}"), "Drawing.headerValue: {got:?}");
            }
            Ok::<(), String>(())
        })
    });
    let runs: Vec<_> = runs.collect();
    for run in runs {
        run.await.map_err(|err| format!("a task failed: {err}"))??;
    }
    Ok(started.elapsed())
}
