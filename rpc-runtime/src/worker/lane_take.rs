//! Taking by priority: how a worker that reads several lanes shares its
//! free slots between them (docs/PROTOCOL.md, "Priorities").
//!
//! Each free slot goes to a lane by smooth weighted round robin over the
//! lanes read, weights [`rpc_protocol::priority::weight`] (256, 64, 16, 4,
//! 1): lane `p` gets `weight(p)` of every `sum of weights` slots, evenly
//! spread, so a less urgent lane is delayed by the more urgent ones but
//! never starved. The lanes are then read without waiting, most urgent
//! first, each for its share; slots a lane could not fill go to the others,
//! most urgent first. Only when every lane is empty does the worker wait,
//! on all of them at once. Strict FIFO holds within a lane.

use std::time::Duration;

use rpc_protocol::priority::{weight, LANES};

use crate::backend::{Delivery, Reader};
use crate::error::Error;

/// The weighted round robin's memory between takes.
#[derive(Default)]
pub(super) struct LanePicker {
    credit: [i64; 5],
}

impl LanePicker {
    /// How many of `free` slots each lane gets (index 0 is priority 1),
    /// among the lanes `read`.
    pub(super) fn share(&mut self, read: [bool; 5], free: usize) -> [usize; 5] {
        let weights = LANES.map(|p| i64::from(weight(p)));
        let total: i64 = (0..5).filter(|&i| read[i]).map(|i| weights[i]).sum();
        let mut out = [0; 5];
        if total == 0 {
            return out;
        }
        for _ in 0..free {
            let mut best = None;
            for i in (0..5).filter(|&i| read[i]) {
                self.credit[i] += weights[i];
                if best.is_none_or(|b: usize| self.credit[i] > self.credit[b]) {
                    best = Some(i);
                }
            }
            if let Some(b) = best {
                self.credit[b] -= total;
                out[b] += 1;
            }
        }
        out
    }
}

/// Leases up to about `free` jobs of `lanes` (the lane queues read, by
/// priority) by weight, waiting up to `wait` when all are empty.
pub(super) async fn take(
    reader: &mut dyn Reader,
    picker: &mut LanePicker,
    lanes: &[Vec<String>; 5],
    consumer: &str,
    free: usize,
    wait: Duration,
) -> Result<Vec<Delivery>, Error> {
    let read = [0, 1, 2, 3, 4].map(|i| !lanes[i].is_empty());
    let share = picker.share(read, free);
    let mut out = Vec::new();
    // Lanes that gave all they were asked for may hold more.
    let mut more = [false; 5];
    for i in 0..5 {
        if share[i] == 0 {
            continue;
        }
        let got = look(reader, &lanes[i], consumer, share[i], &mut out).await?;
        more[i] = got >= share[i];
    }
    for i in 0..5 {
        let left = free.saturating_sub(out.len());
        if left == 0 {
            break;
        }
        if read[i] && (more[i] || share[i] == 0) {
            look(reader, &lanes[i], consumer, left, &mut out).await?;
        }
    }
    if out.is_empty() {
        let all: Vec<String> = lanes.iter().flatten().cloned().collect();
        out = reader.take_jobs(&all, consumer, 1, wait).await?;
    }
    Ok(out)
}

/// Leases up to `want` jobs of one lane's queues without waiting; returns
/// how many.
async fn look(
    reader: &mut dyn Reader,
    queues: &[String],
    consumer: &str,
    want: usize,
    out: &mut Vec<Delivery>,
) -> Result<usize, Error> {
    let per_queue = want.div_ceil(queues.len());
    let got = reader
        .take_jobs(queues, consumer, per_queue, Duration::ZERO)
        .await?;
    let n = got.len();
    out.extend(got);
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lane_gets_its_weight_evenly_spread() {
        let mut picker = LanePicker::default();
        let read = [true, false, false, false, true];
        let mut got = [0; 5];
        for _ in 0..257 {
            let one = picker.share(read, 1);
            for i in 0..5 {
                got[i] += one[i];
            }
        }
        assert_eq!(got, [256, 0, 0, 0, 1]);
        let all = picker.share([true; 5], 341);
        assert_eq!(all, [256, 64, 16, 4, 1]);
    }

    #[test]
    fn the_least_urgent_lane_is_never_starved() {
        let mut picker = LanePicker::default();
        let mut low = 0;
        for _ in 0..10 * 341 {
            low += picker.share([true; 5], 1)[4];
        }
        assert_eq!(low, 10);
    }

    #[test]
    fn nothing_read_gets_nothing() {
        assert_eq!(LanePicker::default().share([false; 5], 8), [0; 5]);
    }
}
