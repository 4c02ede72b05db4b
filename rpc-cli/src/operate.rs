//! The operator's subcommands: `ping`, `stats`, `top`, `periodic` and `scheduled`. They only read
//! (through [`rpc_runtime::Inspector`]) and need no client, so they are
//! dispatched here, before `main` connects one for the other subcommands.

use clap::Subcommand;

use crate::failure::Failure;
use crate::{periodic, ping, scheduled, stats, top};

#[derive(Subcommand, Debug)]
pub enum Operate {
    /// Check that the broker answers: PING, round trip, server version.
    Ping,
    /// Queued, leased and dead-lettered jobs and the workers, per service.
    Stats(stats::StatsArgs),
    /// The stats refreshed every second, with jobs/s in and out (`q` quits).
    Top(top::TopArgs),
    /// The periodic jobs per service: schedule, job, last and next run.
    Periodic(periodic::PeriodicArgs),
    /// Delayed jobs and retries waiting on a service's schedule, with due times.
    Scheduled(scheduled::ScheduledArgs),
}

impl Operate {
    pub async fn run(self, url: &str, prefix: &str) -> Result<(), Failure> {
        match self {
            Operate::Ping => ping::run(url, prefix).await,
            Operate::Stats(args) => stats::run(url, prefix, args).await,
            Operate::Top(args) => top::run(url, prefix, args).await,
            Operate::Periodic(args) => periodic::run(url, prefix, args).await,
            Operate::Scheduled(args) => scheduled::run(url, prefix, args).await,
        }
    }
}
