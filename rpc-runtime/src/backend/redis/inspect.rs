//! The Redis side of the operator's view ([`Inspection`](crate::backend::Inspection)):
//! `view.rs` holds the connection and the helpers, the other files one
//! kind of question each (figures, excerpts, a search by call id, the
//! schedule, periodic jobs, priority lanes, group keys).

mod excerpts;
mod find;
mod group_keys;
mod lanes;
mod periodic;
mod scheduled;
mod stats;
pub(crate) mod view;
