//! The one list of words for how a call or a job ended: the `outcome`
//! label of the worker's and the client's metrics and the `rpc.outcome`
//! attribute of their spans, so that `sum by (outcome)` means the same on
//! both sides. README ("Metrics") documents the list.

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

/// How a job (on a worker) or a call (on a client) ended.
///
/// | outcome | worker | client |
/// |---|---|---|
/// | `succeeded` | completed with a result | answered with a result |
/// | `failed` | answered with an error (application error, handler failure, bad request, idempotency conflict) | the same, as received |
/// | `retried` | put back for another attempt | never (a caller sees only the last attempt) |
/// | `dead` | moved to the dead-letter stream | told its job was dead-lettered |
/// | `timeout` | its deadline passed before or while it ran | no answer within the deadline |
/// | `cancelled` | cancelled before or while it ran | told its call was cancelled |
/// | `unknown_job` | no mounted service has the job | told so by a worker |
/// | `error` | never | the call could not be made or its answer read (broker, encoding, limits) |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
#[non_exhaustive]
pub enum JobOutcome {
    /// Completed with a result.
    succeeded,
    /// Answered with an error (application error, handler failure, bad request).
    failed,
    /// Put back for another attempt (worker only).
    retried,
    /// Moved to the dead-letter stream.
    dead,
    /// Its deadline passed (a worker skipped or stopped it; a caller got no answer in time).
    timeout,
    /// Cancelled by its caller or an operator, before or while it ran.
    cancelled,
    /// No mounted service has the job (answered `unknown_job` or handed back).
    unknown_job,
    /// The call could not be made or its answer read (client only).
    error,
}

impl JobOutcome {
    /// Every outcome, in the documented order.
    pub const ALL: [JobOutcome; 8] = [
        JobOutcome::succeeded,
        JobOutcome::failed,
        JobOutcome::retried,
        JobOutcome::dead,
        JobOutcome::timeout,
        JobOutcome::cancelled,
        JobOutcome::unknown_job,
        JobOutcome::error,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::succeeded => "succeeded",
            JobOutcome::failed => "failed",
            JobOutcome::retried => "retried",
            JobOutcome::dead => "dead",
            JobOutcome::timeout => "timeout",
            JobOutcome::cancelled => "cancelled",
            JobOutcome::unknown_job => "unknown_job",
            JobOutcome::error => "error",
        }
    }

    /// Whether the outcome is a success (spans are marked as errors otherwise).
    pub fn is_success(self) -> bool {
        self == JobOutcome::succeeded
    }
}

impl std::fmt::Display for JobOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl EncodeLabelValue for JobOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(self.as_str())
    }
}
