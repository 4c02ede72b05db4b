//! Client interceptors and worker middleware, end to end over a private
//! redis-server: a worker middleware refuses calls without a valid token,
//! a client interceptor adds it. Callers without it get a clear
//! `unauthenticated` error at once (never a hang until their timeout) and
//! the handler never runs for them; an interceptor that refuses a call
//! sends nothing; middleware wraps the handler in the order it was added.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rpc_runtime::{
    BoxFuture, CallError, Client, Context, DynamicService, Error, ErrorKind, Inspector, Middleware,
    Next, Outcome, Outgoing, Worker,
};
use rpc_testkit::RedisServer;
use serde_json::json;

const TOKEN: &str = "s3cret-token";

/// Refuses every call whose `authorization` metadata is not the token.
struct RequireToken;

impl Middleware for RequireToken {
    fn handle<'a>(&'a self, ctx: Context, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match ctx.metadata().get("authorization").map(String::as_str) {
                Some(TOKEN) => next.run(ctx).await,
                Some(_) => Outcome::unauthenticated("the token is not valid"),
                None => Outcome::unauthenticated("no token"),
            }
        })
    }
}

/// Records when it runs, around the rest of the chain.
struct Trace(&'static str, Arc<Mutex<Vec<String>>>);

impl Middleware for Trace {
    fn handle<'a>(&'a self, ctx: Context, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let log = |what: &str| self.1.lock().unwrap().push(format!("{} {what}", self.0));
            log(&format!("before {}.{}", next.service(), next.job()));
            let outcome = next.run(ctx).await;
            log("after");
            outcome
        })
    }
}

fn with_token(call: &mut Outgoing<'_>) -> Result<(), String> {
    call.insert_meta("authorization", TOKEN);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_middleware_refuses_calls_without_the_token_an_interceptor_adds() {
    let redis = RedisServer::start().expect("start redis-server");
    let url = redis.url();
    let opened = Arc::new(AtomicU32::new(0));
    let order = Arc::new(Mutex::new(Vec::new()));
    let counted = opened.clone();
    let traced = order.clone();
    let service = DynamicService::new("Vault").job("open", move |req| {
        let (opened, order) = (counted.clone(), traced.clone());
        async move {
            opened.fetch_add(1, Ordering::SeqCst);
            order.lock().unwrap().push("handler".to_owned());
            req.respond(json!({"tenant": req.context.metadata().get("tenant")}))
        }
    });
    let worker = Worker::builder(&url)
        .mount(service)
        .middleware(Trace("outer", order.clone()))
        .middleware(RequireToken)
        .middleware(Trace("inner", order.clone()))
        .build()
        .await
        .expect("worker connects");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async {
        let _ = stopped.await;
    }));

    // With the interceptor: answered, and the handler sees the metadata
    // the interceptor and the call both set.
    let trusted = Client::builder(&url)
        .interceptor(with_token)
        .default_timeout(Duration::from_secs(20))
        .connect()
        .await
        .unwrap();
    let answer = trusted
        .call("Vault.open", json!({}))
        .meta("tenant", "a")
        .await
        .expect("a call with the token is answered");
    assert_eq!(answer, json!({"tenant": "a"}));
    assert_eq!(
        *order.lock().unwrap(),
        [
            "outer before Vault.open",
            "inner before Vault.open",
            "handler",
            "inner after",
            "outer after"
        ]
    );

    // Without it, or with a wrong one: refused at once, typed.
    let anonymous = Client::builder(&url)
        .default_timeout(Duration::from_secs(20))
        .connect()
        .await
        .unwrap();
    let forger = Client::builder(&url)
        .interceptor(|call: &mut Outgoing<'_>| {
            call.insert_meta("authorization", "guess");
            Ok(())
        })
        .default_timeout(Duration::from_secs(20))
        .connect()
        .await
        .unwrap();
    for (who, client) in [("no token", &anonymous), ("a wrong token", &forger)] {
        let started = Instant::now();
        let refused = client.call("Vault.open", json!({})).await;
        match &refused {
            Err(CallError::Rpc(Error::Remote { kind, .. })) => {
                assert_eq!(*kind, ErrorKind::Unauthenticated, "{who}")
            }
            other => panic!("{who}: expected unauthenticated, got {other:?}"),
        }
        assert_eq!(
            refused.unwrap_err().remote_kind(),
            Some(ErrorKind::Unauthenticated)
        );
        // Answered by the worker, not left to the 20 s timeout.
        assert!(started.elapsed() < Duration::from_secs(10), "{who}");
    }
    // One-way sends are refused too (nobody hears it), and never run.
    anonymous
        .send("Vault.open", json!({}))
        .await
        .expect("queued");
    // The token's holder still gets through after them: the worker is fine.
    trusted.call("Vault.open", json!({})).await.unwrap();
    assert_eq!(opened.load(Ordering::SeqCst), 2, "only trusted calls ran");

    // An interceptor that refuses sends nothing.
    let inspector = Inspector::connect(&url, "rpc").await.unwrap();
    let added = |stats: Option<rpc_runtime::inspect::ServiceStats>| {
        stats.and_then(|s| s.entries_added).unwrap_or(0)
    };
    let before = added(inspector.service_stats("Vault").await.unwrap());
    let careful = Client::builder(&url)
        .interceptor(|call: &mut Outgoing<'_>| {
            if call.job() == "open" && !call.metadata().contains_key("tenant") {
                return Err("every call needs a tenant".to_owned());
            }
            Ok(())
        })
        .connect()
        .await
        .unwrap();
    match careful.call("Vault.open", json!({})).await {
        Err(CallError::Rpc(Error::Refused { job, reason })) => {
            assert_eq!(job, "Vault.open");
            assert_eq!(reason, "every call needs a tenant");
        }
        other => panic!("expected the interceptor's refusal, got {other:?}"),
    }
    assert!(matches!(
        careful.send("Vault.open", json!({})).await,
        Err(Error::Refused { .. })
    ));
    assert_eq!(
        added(inspector.service_stats("Vault").await.unwrap()),
        before,
        "a refused call puts nothing on the queue"
    );

    let _ = stop.send(());
    let stats = running.await.unwrap().unwrap();
    assert_eq!(opened.load(Ordering::SeqCst), 2);
    assert!(stats.failed >= 3, "{stats:?}");
}
