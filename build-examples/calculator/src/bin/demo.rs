//! A worker and a client in one process: the whole path in one command.
//!
//! Runs on the in-memory broker by default; give it a Redis URL
//! (`--url redis://127.0.0.1:6379/` or `REDIS_URL`) to go through Redis.

use std::process::ExitCode;
use std::time::Duration;

use calculator::{init_tracing, Calc, CalculatorClient, CalculatorServer, MathError, Tagged};
use clap::Parser;
use rpc_runtime::{CallError, Client, Worker};

#[derive(Parser, Debug)]
#[command(
    name = "demo",
    version,
    about = "Run a Calculator worker and client in one process"
)]
struct Args {
    /// Broker URL; default: $REDIS_URL, else memory://demo
    #[arg(long)]
    url: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing("warn");
    let args = Args::parse();
    let url = calculator::broker_url(args.url, "memory://demo");
    match demo(&url).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn demo(url: &str) -> Result<(), rpc_runtime::Error> {
    println!("broker: {url}");
    let worker = Worker::builder(url)
        .mount(CalculatorServer::new(Calc))
        .build()
        .await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async {
        let _ = stopped.await;
    }));

    let calc = CalculatorClient::new(Client::connect(url).await?);
    println!("add(2, 3) = {}", calc.add(2, 3).await?);
    match calc.divide(10.0, 4.0).await {
        Ok(q) => println!("divide(10, 4) = {q}"),
        Err(e) => println!("divide(10, 4) failed: {e}"),
    }
    match calc.divide(1.0, 0.0).await {
        Err(CallError::App(MathError::DivideByZero)) => {
            println!("divide(1, 0) = Err(MathError::DivideByZero)")
        }
        other => println!("divide(1, 0) = {other:?}"),
    }
    let total = calc
        .sum(vec![
            Tagged {
                value: 1.5,
                label: Some("a".into()),
            },
            Tagged {
                value: 2.5,
                label: Some("b".into()),
            },
        ])
        .await?;
    println!("sum([1.5 a, 2.5 b]) = {} {:?}", total.value, total.label);
    calc.log("one-way: nothing comes back").await?;
    let pending = calc
        .add(40, 2)
        .timeout(Duration::from_secs(10))
        .send()
        .await?;
    let id = pending.id().clone();
    println!("add(40, 2).send(): id {id} ... {}", pending.await?);

    // Let the one-way job land before stopping.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = stop.send(());
    let stats = running
        .await
        .map_err(|e| rpc_runtime::Error::Broker(e.to_string()))??;
    println!(
        "worker: {} succeeded, {} failed",
        stats.succeeded, stats.failed
    );
    Ok(())
}
