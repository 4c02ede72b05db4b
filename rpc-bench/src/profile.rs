//! `--profile floor|typed`: one side's sequential calls alone, with the
//! pids printed for a profiler, and where each process's CPU time went per
//! call.

use super::*;

/// Sequential calls of one side alone, for a profiler attached to the
/// processes it names (`--profile floor|typed`); prints where the CPU time
/// of each process went, per call.
pub(super) async fn profile(server: &RedisServer, kind: Kind, calls: usize) -> Result<(), String> {
    let url = server.url();
    let worker = spawn_worker(&url, kind)?;
    say(&format!(
        "profiling {}: client pid {}, worker pid {}, redis pid {}",
        kind.as_arg(),
        std::process::id(),
        worker.pid(),
        server.pid()
    ));
    let procs = [std::process::id(), worker.pid(), server.pid()];
    match kind {
        Kind::Floor => {
            let caller = FloorCaller::connect(&url, 0)
                .await
                .map_err(|e| format!("floor connection: {e}"))?;
            profile_calls(caller, calls, procs).await
        }
        Kind::Blocking => {
            let caller = BlockingCaller::connect(&url, 0)
                .map_err(|e| format!("blocking floor connection: {e}"))?;
            profile_calls(caller, calls, procs).await
        }
        Kind::Scheduled => Err("--profile scheduled: that worker answers no calls".to_owned()),
        Kind::Typed => {
            let client = Client::builder(url.clone())
                .connect()
                .await
                .map_err(|e| format!("client: {e}"))?;
            profile_calls(TypedCaller(BenchClient::new(client)), calls, procs).await
        }
    }
}

async fn profile_calls<C: Caller>(
    mut caller: C,
    calls: usize,
    procs: [u32; 3],
) -> Result<(), String> {
    for n in 0..(calls / 10) as u64 {
        caller.call(n).await?;
    }
    let before = procs.map(measure::cpu_split);
    let t = Instant::now();
    for n in 0..calls as u64 {
        caller.call(n).await?;
    }
    let took = t.elapsed();
    let after = procs.map(measure::cpu_split);
    let per_call = |secs: f64| secs * 1e6 / calls.max(1) as f64;
    say(&format!(
        "{calls} calls, {:.1} µs each",
        per_call(took.as_secs_f64())
    ));
    for (i, who) in ["client", "worker", "Redis"].into_iter().enumerate() {
        say(&format!(
            "  {who}: user {:.1} µs + system {:.1} µs per call",
            per_call(after[i].0 - before[i].0),
            per_call(after[i].1 - before[i].1),
        ));
    }
    Ok(())
}
