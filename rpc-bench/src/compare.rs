//! `--telemetry-compare`: what spans and metrics cost, measured with
//! telemetry off and on in alternating rounds of one process, against one
//! Redis, each figure next to the raw-Redis floor of its own round.
//!
//! Two separate runs (`rpc-bench` and `rpc-bench --telemetry`) minutes
//! apart on this shared, noisy machine differ by more than telemetry
//! costs; rounds that alternate (off, on, then on, off, ...) within one
//! process put both states under the same noise, and the per-round ratio
//! to the floor takes out what the machine did meanwhile.
//!
//! Each round of each state starts a fresh floor worker and a fresh typed
//! worker (with `--telemetry` when on), then measures the sequential p50
//! and the throughput at 64 in flight, floor and runtime alternately, as
//! the default run does. On the client side a process cannot drop its
//! `tracing` subscriber, so the one installed here records spans only
//! while the round's state is on (and turns every span away otherwise);
//! the two states use two clients, one counting its calls in a metrics
//! registry. "Off" thus costs one filter check per span more than a
//! process with no subscriber at all: nanoseconds, next to calls of
//! hundreds of microseconds.

use std::sync::atomic::{AtomicBool, Ordering};

use rpc_testkit::RedisServer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::floor::FloorCaller;
use crate::measure::{self, SequentialSamples, TypedCaller};
use crate::typed::BenchClient;
use crate::{client_builder, floor_callers, say, spawn_worker, typed_callers, Kind, Plan};

/// Whether the bench process records spans now (the round's state).
static RECORDING: AtomicBool = AtomicBool::new(false);

/// Calls in flight for the throughput figure.
const IN_FLIGHT: usize = 64;

/// One state's figures for one round: floor and runtime side by side.
struct Round {
    seq_p50: (f64, f64),
    tp64: (f64, f64),
}

/// Everything measured in one state, over all rounds.
#[derive(Default)]
struct State {
    rounds: Vec<Round>,
    /// Every sequential sample of this state (floor, runtime), pooled.
    samples: SequentialSamples,
}

/// Runs `plan.seq_rounds` rounds of both states and prints the figures.
pub async fn run(server: &RedisServer, plan: &Plan) -> Result<(), String> {
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::filter_fn(|_| {
            RECORDING.load(Ordering::Relaxed)
        }))
        .try_init();
    let url = server.url();
    // `client_builder` and `spawn_worker` follow TELEMETRY.
    crate::TELEMETRY.store(false, Ordering::Relaxed);
    let plain = connect(&url).await?;
    crate::TELEMETRY.store(true, Ordering::Relaxed);
    let observed = connect(&url).await?;

    let mut states = [State::default(), State::default()];
    let calls = (plan.seq_calls / plan.seq_rounds).max(1);
    for round in 0..plan.seq_rounds {
        // off, on, then on, off: a drift in the machine's load over the
        // run falls on both states alike.
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for on in order {
            say(&format!(
                "round {} of {}, telemetry {}",
                round + 1,
                plan.seq_rounds,
                if on { "on" } else { "off" }
            ));
            crate::TELEMETRY.store(on, Ordering::Relaxed);
            RECORDING.store(on, Ordering::Relaxed);
            let client = if on { &observed } else { &plain };
            let state = &mut states[usize::from(on)];
            let measured = one_round(server, plan, client, calls, &mut state.samples).await;
            RECORDING.store(false, Ordering::Relaxed);
            let measured = measured?;
            say(&format!(
                "  sequential p50 {:.1} vs {:.1} µs ({:.2}x), 64 in flight {:.0} vs {:.0} calls/s ({:.2}x)",
                measured.seq_p50.0,
                measured.seq_p50.1,
                measured.seq_p50.1 / measured.seq_p50.0,
                measured.tp64.0,
                measured.tp64.1,
                measured.tp64.1 / measured.tp64.0,
            ));
            state.rounds.push(measured);
        }
    }
    println!("{}", table(states, calls));
    Ok(())
}

async fn connect(url: &str) -> Result<BenchClient, String> {
    let client = client_builder(url)
        .connect()
        .await
        .map_err(|e| format!("client: {e}"))?;
    Ok(BenchClient::new(client))
}

/// One round of one state, with worker processes of its own.
async fn one_round(
    server: &RedisServer,
    plan: &Plan,
    client: &BenchClient,
    calls: usize,
    samples: &mut SequentialSamples,
) -> Result<Round, String> {
    let url = server.url();
    let floor_worker = spawn_worker(&url, Kind::Floor)?;
    let typed_worker = spawn_worker(&url, Kind::Typed)?;
    let me = std::process::id();
    let procs = [
        [me, floor_worker.pid(), server.pid()],
        [me, typed_worker.pid(), server.pid()],
    ];
    let mut fc = FloorCaller::connect(&url, 0)
        .await
        .map_err(|e| format!("floor connection: {e}"))?;
    let mut tc = TypedCaller(client.clone());
    let from = samples.count();
    measure::sequential_pair(
        &mut fc,
        &mut tc,
        plan.seq_warmup,
        calls,
        250,
        procs,
        samples,
    )
    .await?;
    let seq_p50 = samples.p50_since(from);
    let tp64 = measure::throughput_pair(
        floor_callers(&url, IN_FLIGHT).await?,
        typed_callers(client, IN_FLIGHT),
        plan.tp_warmup,
        plan.tp_measure,
        3,
    )
    .await?;
    Ok(Round { seq_p50, tp64 })
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The report: every round, then the medians of the ratios to the floor,
/// and the runtime's CPU time per sequential call, off against on.
fn table([off, on]: [State; 2], calls: usize) -> String {
    let mut out = String::from(
        "| telemetry | round | sequential p50 floor / rpc-runtime (µs) | ratio | 64 in flight floor / rpc-runtime (calls/s) | ratio |\n\
         |---|---|---|---|---|---|\n",
    );
    for (name, state) in [("off", &off), ("on", &on)] {
        for (i, r) in state.rounds.iter().enumerate() {
            out += &format!(
                "| {name} | {} | {:.1} / {:.1} | {:.2}x | {:.0} / {:.0} | {:.2}x |\n",
                i + 1,
                r.seq_p50.0,
                r.seq_p50.1,
                r.seq_p50.1 / r.seq_p50.0,
                r.tp64.0,
                r.tp64.1,
                r.tp64.1 / r.tp64.0,
            );
        }
    }
    let seq = |s: &State| median(s.rounds.iter().map(|r| r.seq_p50.1 / r.seq_p50.0).collect());
    let tp = |s: &State| median(s.rounds.iter().map(|r| r.tp64.1 / r.tp64.0).collect());
    out += &format!(
        "\nMedians over {} rounds ({calls} sequential calls per round and state):\n\n\
         | figure | off | on | on / off |\n|---|---|---|---|\n\
         | sequential p50, ratio to the floor | {:.2}x | {:.2}x | {:.3} |\n\
         | throughput at 64 in flight, ratio to the floor | {:.2}x | {:.2}x | {:.3} |\n",
        off.rounds.len(),
        seq(&off),
        seq(&on),
        seq(&on) / seq(&off),
        tp(&off),
        tp(&on),
        tp(&on) / tp(&off),
    );
    let (_, off_rpc) = off.samples.latencies();
    let (_, on_rpc) = on.samples.latencies();
    for (i, who) in ["client", "worker"].into_iter().enumerate() {
        out += &format!(
            "| rpc-runtime {who} CPU per sequential call (µs, pooled) | {:.1} | {:.1} | {:.3} |\n",
            off_rpc.cpu_us[i],
            on_rpc.cpu_us[i],
            on_rpc.cpu_us[i] / off_rpc.cpu_us[i],
        );
    }
    out
}
