//! What a command of `rpc` fails with, and the exit status that says so.
//!
//! One rule for every command (README, "Exit status"; `rpc --help`):
//!
//! * 0: done.
//! * 1: it ran, and the answer is "no": the call failed or timed out, the
//!   result or the call to cancel is not there, something would be
//!   rejected, a dead letter could not be replayed.
//! * 2: it could not run: bad arguments (clap's usage errors included), an
//!   unknown service, an unreachable or refusing Redis, a schema that does
//!   not load, stdout that cannot be written.
//!
//! The runtime's errors are sorted by [`Failure::exit_code`]: what a worker
//! or a deadline answered is a "no", anything about reaching the broker or
//! the arguments is a "could not run".

use std::process::ExitCode;

use rpc_runtime::Error;

/// The exit status of a command that ran and whose answer is "no".
pub const ANSWER_NO: u8 = 1;
/// The exit status of a command that could not run.
pub const COULD_NOT_RUN: u8 = 2;

/// The exit-status rule, as `rpc --help` and the README print it.
pub const EXIT_STATUS_HELP: &str = "\
Exit status (every command):
  0  done
  1  the answer is \"no\": the call failed or timed out, the result or call is
     not there (fetch, cancel), backlog-check found messages the new schema
     would reject, a dead letter could not be replayed
  2  could not run: bad arguments, an unknown service, Redis unreachable or
     refusing, a schema that does not load";

/// Why a command of `rpc` failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The broker, a call or a value failed, as the runtime says.
    #[error(transparent)]
    Runtime(#[from] Error),

    /// The command could not do what was asked, for this reason (exit 2).
    #[error("could not {what}: {reason}")]
    Cannot { what: String, reason: String },

    /// The command ran and the answer is no (exit 1).
    #[error("{what}: {reason}")]
    No { what: String, reason: String },
}

impl Failure {
    /// The command could not do `what`, for `reason` (exit 2).
    pub fn cannot(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Failure::Cannot {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    /// The command ran; the answer to `what` is no, because `reason` (exit 1).
    pub fn no(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Failure::No {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    /// Whether Redis refused the command to this user (`NOPERM`).
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, Failure::Runtime(e) if e.is_permission_denied())
    }

    /// The status the process exits with, by the rule above.
    pub fn exit_status(&self) -> u8 {
        match self {
            Failure::No { .. } => ANSWER_NO,
            Failure::Cannot { .. } => COULD_NOT_RUN,
            Failure::Runtime(e) => match e {
                // The call went out and this is its answer.
                Error::Remote { .. }
                | Error::Timeout { .. }
                | Error::IdempotencyConflict { .. }
                | Error::HolderResultRefused { .. } => ANSWER_NO,
                // The URL, the broker, the arguments or this process.
                _ => COULD_NOT_RUN,
            },
        }
    }

    /// [`exit_status`](Self::exit_status) as the process's exit code.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit_status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_call_is_a_no_and_an_unreachable_broker_could_not_run() {
        let remote = Failure::from(Error::Remote {
            job: "S.j".to_owned(),
            kind: rpc_runtime::ErrorKind::App,
            message: "no".to_owned(),
            data: None,
        });
        assert_eq!(remote.exit_status(), 1);
        let timeout = Failure::from(Error::Timeout {
            job: "S.j".to_owned(),
            id: "x".to_owned(),
            after: std::time::Duration::from_secs(1),
            diagnosis: None,
        });
        assert_eq!(timeout.exit_status(), 1);
        assert_eq!(
            Failure::from(Error::Broker("down".to_owned())).exit_status(),
            2
        );
        let url = Error::InvalidUrl {
            url: "x".to_owned(),
            reason: "bad".to_owned(),
        };
        assert_eq!(Failure::from(url).exit_status(), 2);
        assert_eq!(Failure::cannot("read", "bad JSON").exit_status(), 2);
        assert_eq!(Failure::no("cancel call x", "not there").exit_status(), 1);
    }
}
