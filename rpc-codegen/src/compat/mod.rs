//! Wire compatibility between two versions of a schema (`rpc-codegen breaking`).
//!
//! Messages outlive deploys, so a change is judged in three directions, each
//! a pair of writer and reader that can meet on the wire:
//!
//! - **old client -> new worker**: a new worker reads an old client's
//!   parameters; the old client reads the new worker's replies;
//! - **new client -> old worker**: an old worker (not yet redeployed) reads
//!   a new client's parameters; the new client reads its replies;
//! - **queued before the deploy**: messages written by old clients are read
//!   by new workers, and replies (or kept results) written by old workers are
//!   read by new clients.
//!
//! Everything here works on the validated model (wire names, resolved
//! types), never on syntax: `rules` walks services and jobs, `types` decides
//! whether a reader's type can read what a writer's type wrote, `report`
//! renders the findings rustc-style (both files, both positions) or as JSON.

mod report;
mod rules;
mod types;

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::model::Schema;
use crate::source::{SourceMap, Span};

/// Where two schema versions' peers meet on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// An old client calls a new worker.
    OldClientNewWorker,
    /// A new client calls an old worker.
    NewClientOldWorker,
    /// Jobs and replies written before the deploy, read after it.
    QueuedBeforeDeploy,
}

impl Direction {
    /// The code used in JSON output.
    pub fn code(self) -> &'static str {
        match self {
            Direction::OldClientNewWorker => "old-client-new-worker",
            Direction::NewClientOldWorker => "new-client-old-worker",
            Direction::QueuedBeforeDeploy => "queued-before-deploy",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Direction::OldClientNewWorker => "old client -> new worker",
            Direction::NewClientOldWorker => "new client -> old worker",
            Direction::QueuedBeforeDeploy => "messages queued before the deploy",
        }
    }
}

/// Whether a change stops messages from being read, or only deserves care.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Breaking,
    Warning,
}

/// The rule a change falls under (the `rule` column of the README's table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    RemovedService,
    RenamedService,
    RemovedJob,
    RenamedJob,
    NewJob,
    RemovedField,
    RenamedField,
    NewRequiredField,
    OptionalToRequired,
    RequiredToOptional,
    ChangedType,
    NewVariant,
    RemovedVariant,
    RenamedVariant,
    ReplyToOneWay,
    OneWayToReply,
    ChangedErrorType,
    ChangedTimeout,
    ChangedAttempts,
}

impl Rule {
    /// The rule's name, shown as `error[name]` and in JSON.
    pub fn code(self) -> &'static str {
        match self {
            Rule::RemovedService => "removed-service",
            Rule::RenamedService => "renamed-service",
            Rule::RemovedJob => "removed-job",
            Rule::RenamedJob => "renamed-job",
            Rule::NewJob => "new-job",
            Rule::RemovedField => "removed-field",
            Rule::RenamedField => "renamed-field",
            Rule::NewRequiredField => "new-required-field",
            Rule::OptionalToRequired => "optional-to-required",
            Rule::RequiredToOptional => "required-to-optional",
            Rule::ChangedType => "changed-type",
            Rule::NewVariant => "new-variant",
            Rule::RemovedVariant => "removed-variant",
            Rule::RenamedVariant => "renamed-variant",
            Rule::ReplyToOneWay => "reply-to-one-way",
            Rule::OneWayToReply => "one-way-to-reply",
            Rule::ChangedErrorType => "changed-error-type",
            Rule::ChangedTimeout => "changed-timeout",
            Rule::ChangedAttempts => "changed-attempts",
        }
    }
}

/// A position in one of the two schemas, with the text shown under it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Spot {
    pub(crate) span: Span,
    pub(crate) label: String,
}

impl Spot {
    pub(crate) fn new(span: Span, label: impl Into<String>) -> Self {
        Spot {
            span,
            label: label.into(),
        }
    }
}

/// One change between the schemas that matters on the wire.
#[derive(Clone, Debug)]
pub struct Change {
    pub(crate) rule: Rule,
    pub(crate) severity: Severity,
    pub(crate) message: String,
    pub(crate) old: Spot,
    pub(crate) new: Spot,
    /// Where it breaks (empty for a warning that breaks nothing).
    pub(crate) breaks: BTreeSet<Direction>,
    pub(crate) hint: Option<String>,
}

impl Change {
    pub fn rule(&self) -> Rule {
        self.rule
    }

    pub fn severity(&self) -> Severity {
        self.severity
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The directions in which this change stops messages from being read.
    pub fn breaks(&self) -> impl Iterator<Item = Direction> + '_ {
        self.breaks.iter().copied()
    }
}

/// The changes from one schema version to the next, with both versions'
/// sources for rendering.
pub struct CompatReport {
    changes: Vec<Change>,
    sources: Arc<SourceMap>,
}

impl CompatReport {
    pub(crate) fn compare(old: &Schema, new: &Schema, sources: Arc<SourceMap>) -> Self {
        let changes = rules::compare(old, new);
        CompatReport { changes, sources }
    }

    /// Every change found, breaking ones first, then by position.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// Whether any change breaks a direction (the CLI then exits with 1).
    pub fn is_breaking(&self) -> bool {
        self.changes
            .iter()
            .any(|c| c.severity == Severity::Breaking)
    }
}

/// Collects changes, merging one found several times (a type used by
/// several jobs, or read in several directions) into one with every
/// direction it breaks.
#[derive(Default)]
pub(crate) struct Findings {
    changes: Vec<Change>,
}

impl Findings {
    pub(crate) fn push(&mut self, change: Change) {
        let same = self.changes.iter_mut().find(|c| {
            c.rule == change.rule
                && c.message == change.message
                && c.old.span == change.old.span
                && c.new.span == change.new.span
        });
        match same {
            Some(existing) => {
                existing.breaks.extend(change.breaks);
                if change.severity < existing.severity {
                    existing.severity = change.severity;
                }
            }
            None => self.changes.push(change),
        }
    }

    pub(crate) fn into_sorted(mut self) -> Vec<Change> {
        self.changes.sort_by_key(|c| {
            (
                c.severity,
                c.new.span.file,
                c.new.span.start,
                c.old.span.start,
            )
        });
        self.changes
    }
}
