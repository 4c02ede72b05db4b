//! Serves `Drawing`, `Admin` and `Health` (`schema/everything.rpc` and the
//! `common.rpc` it imports) with the `Canvas` and `Healthy` handlers until
//! SIGTERM or ctrl-c: the Rust worker the Python client's interop tests call.
//!
//! `everything-worker --url redis://127.0.0.1:6379/ [--prefix rpc]` prints
//! `worker ready` once it serves.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use everything::common::HealthServer;
use everything::everything::AdminServer;
use everything::{Canvas, DrawingServer, Healthy};

#[derive(Parser, Debug)]
#[command(
    name = "everything-worker",
    version,
    about = "Serve Drawing, Admin and Health"
)]
struct Args {
    /// Broker URL; default: $REDIS_URL or redis://127.0.0.1:6379/
    #[arg(long)]
    url: Option<String>,
    /// Key prefix shared with clients.
    #[arg(long, default_value = "rpc")]
    prefix: String,
    /// Jobs run at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds a job's lease may go unrenewed before another worker takes it over.
    #[arg(long, default_value_t = 30.0)]
    visibility_timeout: f64,
    /// Shapes the canvas holds before `draw` answers `CanvasFull`.
    #[arg(long, default_value_t = everything::check::CAPACITY)]
    capacity: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let url = args
        .url
        .or_else(|| std::env::var("REDIS_URL").ok())
        .unwrap_or_else(|| "redis://127.0.0.1:6379/".to_owned());
    let canvas = Canvas::with_capacity(args.capacity);
    let worker = rpc_runtime::Worker::builder(&url)
        .prefix(args.prefix)
        .concurrency(args.concurrency)
        .visibility_timeout(Duration::from_secs_f64(args.visibility_timeout))
        .version(concat!("everything ", env!("CARGO_PKG_VERSION")))
        .mount(DrawingServer::new(canvas.clone()))
        .mount(AdminServer::new(canvas))
        .mount(HealthServer::new(Healthy))
        .build()
        .await;
    let worker = match worker {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("worker ready");
    match worker.run().await {
        Ok(stats) => {
            println!("worker stopped: {stats:?}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
