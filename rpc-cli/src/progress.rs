//! A progress line for the long operations (`rpc replay --all`, `rpc
//! backlog-check` over a large backlog): `replaying 1200/5000` rewritten in
//! place on stderr, at most ten times a second, and erased at the end.
//!
//! Only on a terminal: stderr that goes to a file or a pipe gets no
//! carriage returns and no partial lines, and stdout (what scripts read)
//! never carries it. Hand-written in a few lines rather than a progress-bar
//! crate: one counter is all these commands show.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Redraws no more often than this.
const EVERY: Duration = Duration::from_millis(100);

/// One operation's progress line; [`finish`](Progress::finish) erases it.
pub struct Progress {
    what: &'static str,
    total: Option<usize>,
    done: usize,
    drawn_at: Option<Instant>,
    on_terminal: bool,
}

impl Progress {
    /// Progress of `what` (`replaying`, `checking`) over `total` items,
    /// when known.
    pub fn new(what: &'static str, total: Option<usize>) -> Self {
        Progress {
            what,
            total,
            done: 0,
            drawn_at: None,
            on_terminal: std::io::stderr().is_terminal(),
        }
    }

    /// `n` more items done.
    pub fn add(&mut self, n: usize) {
        self.done += n;
        if !self.on_terminal || self.drawn_at.is_some_and(|at| at.elapsed() < EVERY) {
            return;
        }
        self.drawn_at = Some(Instant::now());
        let line = match self.total {
            Some(total) => format!("{} {}/{total}", self.what, self.done),
            None => format!("{} {}", self.what, self.done),
        };
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[K{line}");
        let _ = stderr.flush();
    }

    /// Erases the line (if drawn) before a line of output, so the two do
    /// not run together on the terminal; the next [`add`](Self::add) past
    /// the redraw interval draws it again.
    pub fn clear(&mut self) {
        if self.drawn_at.is_some() {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }

    /// Erases the line, so what is printed next starts clean.
    pub fn finish(mut self) {
        self.clear();
        self.drawn_at = None;
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}
