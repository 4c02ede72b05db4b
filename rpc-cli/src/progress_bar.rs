//! `rpc call --progress` and `rpc fetch ID --wait D --progress`: a call's
//! progress on stderr while the command waits for its answer. On
//! a terminal, a bar redrawn in place (`[#######.............]  35%  7/20
//! copying`) and erased when the answer comes; anywhere else (a file, a
//! pipe, a test), one plain line per new value (`progress 7/20 35%
//! copying`), so a script or a log sees each one. stdout carries only the
//! answer either way.
//!
//! The message is the handler's text: control characters are dropped
//! before it reaches the terminal, so a job cannot move the cursor or
//! retitle the window.

use std::io::{IsTerminal, Write};

use rpc_runtime::{Progress, ProgressUpdate};

/// The bar's width in characters.
const WIDTH: usize = 20;

/// Where the progress goes.
pub struct ProgressBar {
    on_terminal: bool,
    drawn: bool,
    /// The last warning printed: the same one again (a broker that
    /// refuses every read) is not repeated every 200 ms.
    warned: Option<String>,
}

impl ProgressBar {
    pub fn new() -> Self {
        ProgressBar {
            on_terminal: std::io::stderr().is_terminal(),
            drawn: false,
            warned: None,
        }
    }

    /// Shows a new value.
    pub fn show(&mut self, update: &ProgressUpdate) {
        let mut stderr = std::io::stderr().lock();
        if self.on_terminal {
            let _ = write!(stderr, "\r\x1b[K{}", bar_line(update));
            self.drawn = true;
        } else {
            let _ = writeln!(stderr, "{}", plain_line(update));
        }
        let _ = stderr.flush();
    }

    /// Says that a progress value could not be read (the call goes on),
    /// once for the same error.
    pub fn warn(&mut self, error: &rpc_runtime::Error) {
        let text = error.to_string();
        if self.warned.as_ref() == Some(&text) {
            return;
        }
        self.clear();
        eprintln!("rpc: progress: {text}");
        self.warned = Some(text);
    }

    /// Erases the bar, so the answer starts clean.
    pub fn clear(&mut self) {
        if self.drawn {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
            self.drawn = false;
        }
    }
}

/// `7/20` for steps, nothing for a fraction.
fn steps(update: &ProgressUpdate) -> String {
    match update.progress {
        Progress::Steps { done, total } => format!(" {done}/{total}"),
        Progress::Fraction(_) => String::new(),
    }
}

fn percent(update: &ProgressUpdate) -> u32 {
    (update.fraction.clamp(0.0, 1.0) * 100.0).floor() as u32
}

/// The handler's message without control characters.
fn message(update: &ProgressUpdate) -> String {
    let text: String = update.message.chars().filter(|c| !c.is_control()).collect();
    if text.is_empty() {
        text
    } else {
        format!(" {text}")
    }
}

fn bar_line(update: &ProgressUpdate) -> String {
    let filled = ((update.fraction.clamp(0.0, 1.0) * WIDTH as f64).round() as usize).min(WIDTH);
    format!(
        "[{}{}] {:>3}%{}{}",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled),
        percent(update),
        steps(update),
        message(update)
    )
}

fn plain_line(update: &ProgressUpdate) -> String {
    format!(
        "progress{} {}%{}",
        steps(update),
        percent(update),
        message(update)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(progress: Progress, fraction: f64, message: &str) -> ProgressUpdate {
        ProgressUpdate {
            seq: 1,
            attempt: 1,
            at_ms: 0,
            progress,
            fraction,
            message: message.to_owned(),
        }
    }

    #[test]
    fn lines_show_steps_percent_and_a_clean_message() {
        let steps = update(Progress::Steps { done: 7, total: 20 }, 0.35, "copying");
        assert_eq!(plain_line(&steps), "progress 7/20 35% copying");
        assert_eq!(bar_line(&steps), "[#######.............]  35% 7/20 copying");
        let sneaky = update(Progress::Fraction(1.0), 1.0, "done\x1b]0;owned\x07\r\n");
        assert_eq!(plain_line(&sneaky), "progress 100% done]0;owned");
        assert_eq!(
            plain_line(&update(Progress::Fraction(0.0), 0.0, "")),
            "progress 0%"
        );
    }
}
