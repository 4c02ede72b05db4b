//! What a command of `rpc` fails with: an error of the runtime it called,
//! or a refusal of its own (a usage mistake, a service or result that is
//! not there, a terminal that cannot be drawn on). The runtime's codec
//! error means a value that could not be encoded or decoded, and is not
//! borrowed for the rest.

use rpc_runtime::Error;

/// Why a command of `rpc` failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The broker, a call or a value failed, as the runtime says.
    #[error(transparent)]
    Runtime(#[from] Error),

    /// The command could not do what was asked, for this reason.
    #[error("could not {what}: {reason}")]
    Cannot { what: String, reason: String },
}

impl Failure {
    /// The command could not do `what`, for `reason`.
    pub fn cannot(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Failure::Cannot {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    /// Whether Redis refused the command to this user (`NOPERM`).
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, Failure::Runtime(e) if e.is_permission_denied())
    }
}
