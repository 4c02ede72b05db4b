//! The taker: the loop that leases new jobs with one blocking read, and
//! starts each job inline up to its first wait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::completion::{complete_later, complete_now, finish_job, Finished};
use super::failures;
use super::job::run_job;
use super::lane_take;
use super::shared::Shared;

use crate::backend::{Completion, Delivery, Failure};
use crate::sync::lock;

/// How long the taker's read blocks when it carries completions: their
/// answer (and so the end of their leases) comes only when the read does,
/// and a stopping worker waits for it.
const COMPLETING_READ_WAIT: Duration = Duration::from_millis(250);

pub(super) async fn take_loop(
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut reader = None;
    let mut picker = lane_take::LanePicker::default();
    let mut backoff = Duration::from_millis(50);
    let mut finished: Finished = Vec::new();
    // The allocation of the last job's run, when it finished inline.
    let mut spare = no_spare(job_run);
    // The reader was lost (so the next one opened is a reconnect).
    let mut lost = false;
    loop {
        shared.health.loop_turned();
        if *stop.borrow() {
            complete_now(&shared, std::mem::take(&mut finished)).await;
            settle(&mut reader).await;
            return;
        }
        // Wait for at least one free slot, then lease as many jobs as there are slots.
        let first = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => return },
            _ = stop.changed() => {
                complete_now(&shared, finished).await;
                settle(&mut reader).await;
                return;
            }
        };
        let free = slots.available_permits() + 1;
        if reader.is_none() {
            match shared.backend.open_reader().await {
                Ok(r) => {
                    if std::mem::take(&mut lost) {
                        if let Some(metrics) = &shared.metrics {
                            metrics.reconnected();
                        }
                    }
                    reader = Some(r);
                }
                Err(e) => {
                    shared.broker_error();
                    shared.health.take_failed(&e);
                    lost = true;
                    tracing::warn!(error = %e, "worker cannot reach the broker; retrying");
                    let pending = std::mem::take(&mut finished);
                    let shared = shared.clone();
                    let guard = shared.outstanding.enter();
                    tokio::spawn(async move {
                        complete_now(&shared, pending).await;
                        drop(guard);
                    });
                    drop(first);
                    sleep_or_stop(&mut stop, backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            }
        }
        let Some(r) = reader.as_mut() else { continue };
        let consumer = &shared.settings.consumer;
        // Paused services are not read (`None`: none is paused).
        let all = shared.served.names();
        let active = shared.paused.active(&all);
        let queues = active.as_deref().unwrap_or(&all);
        if queues.is_empty() {
            // Every service is paused: finish what is done, look again soon.
            complete_now(&shared, std::mem::take(&mut finished)).await;
            drop(first);
            sleep_or_stop(&mut stop, super::lifecycle::POLL_EVERY).await;
            continue;
        }
        // `COUNT` applies to each stream of a read: every queue gets an
        // equal share of the free slots (the shards of a service are served
        // alike), at least one each.
        let per_queue = free.div_ceil(queues.len());
        let taken = if shared.lanes.any() {
            // Some queue has priority lanes: taken by weight, lane by lane
            // (`lane_take.rs`); the completions go first, on their own.
            complete_now(&shared, std::mem::take(&mut finished)).await;
            let lanes = shared.lanes.by_lane(queues);
            let taken = tokio::select! {
                taken = lane_take::take(&mut **r, &mut picker, &lanes, consumer, free, Duration::from_secs(1)) => Some(taken),
                _ = stop.changed() => None,
            };
            let Some(taken) = taken else {
                settle(&mut reader).await;
                return;
            };
            taken
        } else if finished.is_empty() {
            let taken = tokio::select! {
                taken = r.take_jobs(queues, consumer, per_queue, Duration::from_secs(1)) => Some(taken),
                _ = stop.changed() => None,
            };
            let Some(taken) = taken else {
                settle(&mut reader).await;
                return;
            };
            taken
        } else {
            // Not cancelled on stop: the completions are in this round trip.
            let done = std::mem::take(&mut finished);
            let finished_count = done.len();
            let out = r
                .complete_and_take(&done, queues, consumer, per_queue, COMPLETING_READ_WAIT)
                .await;
            let mut failed = Vec::new();
            let mut not_completed = out.not_completed.into_iter().peekable();
            for (i, (delivery, completion)) in done.into_iter().enumerate() {
                match not_completed.next_if(|(j, _)| *j == i) {
                    Some((_, error)) => failed.push((delivery, completion, error)),
                    None => shared.forget_lease(&delivery),
                }
            }
            if failed.len() < finished_count {
                shared.health.completed();
            }
            complete_later(&shared, failed);
            out.taken
        };
        // A queue the broker refused to read, left out while the others
        // are read (logged where it is set aside): a broker error each.
        for _ in 0..r.queues_set_aside() {
            shared.broker_error();
        }
        match taken {
            Ok(deliveries) => {
                shared.health.took();
                backoff = Duration::from_millis(50);
                let mut first = Some(first);
                // A read of several queues may bring a few more jobs than
                // slots were free (one per queue at least): their leases
                // are renewed from now, and each waits for a slot.
                if deliveries.len() > free {
                    let mut running = lock(&shared.running);
                    for d in &deliveries {
                        super::leases::hold(&mut running, d);
                    }
                }
                for delivery in deliveries {
                    let permit = match first.take() {
                        Some(p) => p,
                        None => match slots.clone().try_acquire_owned() {
                            Ok(p) => p,
                            Err(_) => match slots.clone().acquire_owned().await {
                                Ok(p) => p,
                                Err(_) => return,
                            },
                        },
                    };
                    let run = reuse_or_box(&mut spare, || job_run(shared.clone(), delivery));
                    spare = start(run, permit, Some(&mut finished)).await;
                }
                // No yield here: jobs that finished inline go out with the
                // next read, and yielding first costs a wake-up of another
                // runtime thread per read (measured: worker CPU per
                // sequential call 1.6x the floor's with it, 1.1-1.2x without).
            }
            Err(e) => {
                if shared.lanes.any() && e.to_string().contains("WRONGTYPE") {
                    // A lane read turned into garbage: read none until the
                    // polls say again which lanes are streams (`lanes.rs`).
                    tracing::warn!(error = %e, "a priority lane is no stream; reading the lanes again from the next polls");
                    shared.lanes.forget_all();
                }
                tracing::warn!(error = %e, "taking jobs failed; reconnecting");
                shared.broker_error();
                shared.health.take_failed(&e);
                lost = true;
                settle(&mut reader).await;
                reader = None;
                drop(first);
                sleep_or_stop(&mut stop, backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// How long a reader may take to settle before it is dropped all the same
/// (a broker that does not answer must not hold up a stop or a reconnect;
/// what it owed is then left to the workers' sweep).
const SETTLE_BOUND: Duration = Duration::from_secs(2);

/// Lets the reader send what it still owes the broker (the deletions of
/// acked entries a trim left, `Reader::settle`) before it is dropped.
async fn settle(reader: &mut Option<Box<dyn crate::backend::Reader>>) {
    if let Some(r) = reader.as_mut() {
        if tokio::time::timeout(SETTLE_BOUND, r.settle())
            .await
            .is_err()
        {
            tracing::debug!("the reader did not settle in time");
        }
    }
}

pub(super) async fn sleep_or_stop(stop: &mut tokio::sync::watch::Receiver<bool>, t: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(t) => {}
        _ = stop.changed() => {}
    }
}

/// Starts a job: runs it right here up to its first wait, then hands the
/// rest to a task of its own.
///
/// Most handlers finish without waiting, so the first poll runs the handler
/// to its end. Doing that inline instead of in a freshly spawned task saves
/// a task hand-off (a thread wake-up) on the path of every reply. A job that
/// finished so is pushed onto `finished` when the caller (the taker) sends
/// the completions with its next read; otherwise its completion is queued on
/// the shared connection right away. A handler that does wait is spawned at
/// its first wait and runs concurrently as usual.
pub(super) async fn start_job(
    shared: Arc<Shared>,
    delivery: Delivery,
    permit: tokio::sync::OwnedSemaphorePermit,
    finished: Option<&mut Finished>,
) {
    start(Box::pin(job_run(shared, delivery)), permit, finished).await;
}

/// What a job's run ends with: how to complete it, and the failed attempt
/// to record, if any.
type Ended = (Arc<Shared>, Delivery, Completion, Option<Box<Failure>>);

/// A job's run, from its delivery to how to complete it, its lease held
/// from now on.
fn job_run(shared: Arc<Shared>, delivery: Delivery) -> impl Future<Output = Ended> + Send {
    shared.hold_lease(&delivery);
    shared.note_taken(&delivery.queue);
    async move {
        let (completion, failure) = run_job(&shared, &delivery).await;
        (shared, delivery, completion, failure)
    }
}

/// The taker's spare allocation for a job's run (see [`start`]), empty.
/// `job_run` is passed only to name the run's type, which Rust cannot spell.
fn no_spare<F>(_: fn(Arc<Shared>, Delivery) -> F) -> Option<Pin<Box<F>>> {
    None
}

/// The allocation for the taker's next job run: `spare`'s, when the last
/// run finished inline, with `run`'s made in it. A job's run is over a
/// kilobyte, too big for the allocator's per-thread cache: allocating and
/// freeing one per job cost about a thousand instructions each time
/// (callgrind). `run` is made here, not passed in, so that the run is not
/// moved (copied) once more on its way into the allocation.
fn reuse_or_box<F: Future>(
    spare: &mut Option<Pin<Box<F>>>,
    run: impl FnOnce() -> F,
) -> Pin<Box<F>> {
    match spare.take() {
        Some(mut boxed) => {
            // The spare's run is over: replacing it drops nothing but its
            // spent state.
            boxed.set(run());
            boxed
        }
        None => Box::pin(run()),
    }
}

/// Polls a job's run once, here; hands it to a task of its own if it
/// waits. Returns the run's allocation when the run is over (for reuse).
async fn start<F>(
    mut run: Pin<Box<F>>,
    permit: tokio::sync::OwnedSemaphorePermit,
    finished: Option<&mut Finished>,
) -> Option<Pin<Box<F>>>
where
    F: Future<Output = Ended> + Send + 'static,
{
    match (poll_once(&mut run).await, finished) {
        // The handler is done, so is its slot; the lease stays in `running`
        // (renewed) until the completion is through.
        (Poll::Ready((shared, delivery, completion, failure)), Some(finished)) => {
            drop(permit);
            // Sent with the taker's next read; the record goes apart.
            if let Some(failure) = failure {
                let queue = delivery.queue.clone();
                tokio::spawn(async move { failures::record(&shared, &queue, *failure).await });
            }
            finished.push((delivery, completion));
            Some(run)
        }
        (Poll::Ready((shared, delivery, completion, failure)), None) => {
            let mut done = Box::pin(async move {
                finish_job(&shared, &delivery, completion, Some(permit)).await;
                if let Some(failure) = failure {
                    failures::record(&shared, &delivery.queue, *failure).await;
                }
            });
            if poll_once(&mut done).await.is_pending() {
                tokio::spawn(done);
            }
            Some(run)
        }
        (Poll::Pending, _) => {
            tokio::spawn(async move {
                let (shared, delivery, completion, failure) = run.await;
                finish_job(&shared, &delivery, completion, Some(permit)).await;
                if let Some(failure) = failure {
                    failures::record(&shared, &delivery.queue, *failure).await;
                }
            });
            None
        }
    }
}

/// Polls `fut` once, here, without waiting: its output if that finished it.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut *fut).poll(cx))).await
}
