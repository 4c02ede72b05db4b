//! The fire-and-forget figure of the default run: one sender's awaited
//! one-way sends, the floor's `LPUSH` against the runtime's one-way `XADD`,
//! each with its worker draining what was sent.

use super::*;

/// Rounds of the fire-and-forget figure, floor and runtime alternating.
const FF_ROUNDS: u64 = 5;

/// One sender's awaited one-way sends, floor (`LPUSH`) and runtime in
/// [`FF_ROUNDS`] alternating rounds, each followed by its worker draining
/// what was sent; the rates pooled over the rounds. Measured once each,
/// back to back, the row moved from 0.26x to 1.78x between runs of one
/// build: a few seconds of a loaded machine's swings landed on one side.
pub(super) async fn run(
    url: &str,
    plan: &Plan,
    typed: &BenchClient,
    report: &mut Report,
) -> Result<(), String> {
    say("fire-and-forget send rate");
    let mut fc = FloorCaller::connect(url, 0)
        .await
        .map_err(|e| format!("floor connection: {e}"))?;
    let per_round = (plan.ff_sends / FF_ROUNDS).max(1);
    let (mut floor_time, mut typed_time) = (Duration::ZERO, Duration::ZERO);
    for round in 0..FF_ROUNDS {
        let first = (round * per_round) as i64;
        let t = Instant::now();
        for i in 0..per_round {
            fc.note(first + i as i64).await?;
        }
        floor_time += t.elapsed();
        drain(url, floor::NOTES, false).await?;
        let t = Instant::now();
        for i in 0..per_round {
            typed
                .note(round * per_round + i)
                .await
                .map_err(|e| e.to_string())?;
        }
        typed_time += t.elapsed();
        drain(url, &typed::jobs_key(), true).await?;
    }
    let sends = (per_round * FF_ROUNDS) as f64;
    report.row(
        format!(
            "fire-and-forget sends, one sender, {} sends in {FF_ROUNDS} rounds",
            per_round * FF_ROUNDS
        ),
        "sends/s",
        sends / floor_time.as_secs_f64(),
        sends / typed_time.as_secs_f64(),
        Better::Higher,
    );
    Ok(())
}

/// Waits until a queue (list or stream) is empty, so a backlog left by the
/// fire-and-forget figure does not slow the next one.
async fn drain(url: &str, key: &str, stream: bool) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let len: u64 = redis::cmd(if stream { "XLEN" } else { "LLEN" })
            .arg(key)
            .query_async(&mut con)
            .await
            .map_err(|e| e.to_string())?;
        if len == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{key} still holds {len} messages after 2 minutes"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
