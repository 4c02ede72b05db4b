//! The memory figures: the runtime's resident memory before, halfway and
//! after many calls at 64 in flight, so a one-time step and a leak look
//! different.

use super::*;

pub(super) async fn memory(
    server: &RedisServer,
    plan: &Plan,
    typed: &BenchClient,
    worker_pid: u32,
    report: &mut Report,
) -> Result<(), String> {
    say(&format!(
        "memory: {} warm-up calls, then {} calls at 64 in flight",
        plan.mem_warmup, plan.mem_calls
    ));
    measure::fixed_count(typed_callers(typed, 64), plan.mem_warmup).await?;
    let sample = || {
        (
            measure::rss_kib(std::process::id()).unwrap_or(0) as f64,
            measure::rss_kib(worker_pid).unwrap_or(0) as f64,
            server.used_memory() as f64 / 1024.0,
            server
                .cli(["DBSIZE"])
                .trim()
                .parse::<f64>()
                .unwrap_or(f64::NAN),
        )
    };
    let before = sample();
    let half = plan.mem_calls / 2;
    let (took, _) = measure::fixed_count(typed_callers(typed, 64), half).await?;
    let halfway = sample();
    let (rest, _) = measure::fixed_count(typed_callers(typed, 64), plan.mem_calls - half).await?;
    let took = took + rest;
    let after = sample();
    say(&format!(
        "memory: {} calls in {:.1} s",
        plan.mem_calls,
        took.as_secs_f64()
    ));
    let rows = [
        ("client RSS", "KiB", before.0, halfway.0, after.0),
        ("worker RSS", "KiB", before.1, halfway.1, after.1),
        ("Redis used_memory", "KiB", before.2, halfway.2, after.2),
        ("Redis keys", "count", before.3, halfway.3, after.3),
    ];
    for (metric, unit, b, h, a) in rows {
        report.memory.push(MemRow {
            metric: metric.to_owned(),
            unit,
            before: b,
            halfway: h,
            after: a,
        });
    }
    // Flat: no more than 10% growth plus 1 MiB of allocator slack.
    let flat = |b: f64, a: f64| a <= b * 1.10 + 1024.0;
    let pass = flat(before.0, after.0) && flat(before.1, after.1) && flat(before.2, after.2);
    report.targets.push(Target {
        what: format!(
            "memory flat across {} calls (client, worker RSS and Redis used_memory grow < 10% + 1 MiB)",
            plan.mem_calls
        ),
        measured: format!(
            "client {:+.0} KiB, worker {:+.0} KiB, Redis {:+.0} KiB",
            after.0 - before.0,
            after.1 - before.1,
            after.2 - before.2
        ),
        pass,
    });
    Ok(())
}
