//! Calls the Calculator service over Redis.
//!
//! `client add 2 3`, `client divide 1 0`, `client log "hello"`,
//! `client sum 1.5 2.5`, or `client` alone for a short tour. Built with
//! `--features otlp`, `--otlp-endpoint http://127.0.0.1:4318` sends its
//! spans (one trace per run) to an OpenTelemetry collector.
//!
//! Exit status: 0 done; 1 a call failed (`client divide 1 0`: the error on
//! stderr); 2 could not run (bad arguments, the broker unreachable).

use std::error::Error;
use std::process::ExitCode;
use std::time::Duration;

use calculator::{broker_url, CalculatorClient, MathError, Tagged, TracingArgs};
use clap::{Parser, Subcommand};
use rpc_runtime::CallError;
use tracing::{info_span, Instrument};

#[derive(Parser, Debug)]
#[command(name = "client", version, about = "Call the Calculator service")]
struct Args {
    /// Broker URL (redis://, rediss://, memory://); default: $REDIS_URL or redis://127.0.0.1:6379/
    #[arg(long)]
    url: Option<String>,
    /// Key prefix shared with workers.
    #[arg(long, default_value = "rpc")]
    prefix: String,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    #[command(flatten)]
    tracing: TracingArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// a + b
    Add { a: i64, b: i64 },
    /// a / b, or the reason it cannot be done
    Divide { a: f64, b: f64 },
    /// Send a line to the worker's log (one-way)
    Log { line: String },
    /// Sum of the values
    Sum { values: Vec<f64> },
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // Held to the end: dropping it sends the last spans.
    let _tracing = match args.tracing.init("warn", "calculator-client") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let url = broker_url(args.url, "redis://127.0.0.1:6379/");
    let client = match rpc_runtime::Client::builder(&url)
        .prefix(args.prefix)
        .connect()
        .await
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let calc = CalculatorClient::new(client);
    let timeout = Duration::from_secs_f64(args.timeout);
    // One trace for the run: every call's span is a child of this one.
    let result = match args.command {
        Some(command) => {
            run(&calc, command, timeout)
                .instrument(info_span!("client"))
                .await
        }
        None => {
            tour(&calc, timeout)
                .instrument(info_span!("client tour"))
                .await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    calc: &CalculatorClient,
    command: Command,
    timeout: Duration,
) -> Result<(), Box<dyn Error>> {
    match command {
        Command::Add { a, b } => println!("{}", calc.add(a, b).timeout(timeout).await?),
        Command::Divide { a, b } => match calc.divide(a, b).timeout(timeout).await {
            Ok(q) => println!("{q}"),
            // The job's answer is an error: said on stderr, exit 1.
            Err(CallError::App(e)) => return Err(format!("math error: {e:?}").into()),
            Err(CallError::Rpc(e)) => return Err(e.into()),
        },
        Command::Log { line } => println!("sent {}", calc.log(line).timeout(timeout).await?),
        Command::Sum { values } => {
            let values: Vec<Tagged> = values
                .into_iter()
                .map(|value| Tagged { value, label: None })
                .collect();
            println!("{}", calc.sum(values).timeout(timeout).await?.value);
        }
    }
    Ok(())
}

async fn tour(calc: &CalculatorClient, timeout: Duration) -> Result<(), Box<dyn Error>> {
    println!("add(2, 3) = {}", calc.add(2, 3).timeout(timeout).await?);
    match calc.divide(1.0, 0.0).timeout(timeout).await {
        Err(CallError::App(MathError::DivideByZero)) => {
            println!("divide(1, 0) = DivideByZero (typed error)")
        }
        other => println!("divide(1, 0) = {other:?}"),
    }
    println!(
        "divide(7, 2) = {}",
        calc.divide(7.0, 2.0).timeout(timeout).await?
    );
    let id = calc.log("hello from the client").await?;
    println!("log(..) sent as {id}");
    let pending = calc.add(20, 22).timeout(timeout).send().await?;
    let id = pending.id().clone();
    println!(
        "add(20, 22).send() -> id {id}; awaited later: {}",
        pending.await?
    );
    Ok(())
}
