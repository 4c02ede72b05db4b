//! How big a page can get, decided in one place: how much of each value is
//! read from Redis, how many rows a list shows, and how much message text
//! one page may show in all.
//!
//! Everything a page shows comes from Redis, and anyone who may add a job
//! decides how big it is: ten 8 MB dead letters once made one service page
//! 168 MB. So values are read cut to a window inside Redis
//! (`rpc_runtime::inspect` excerpts, only the window crosses the network),
//! each text is cut again when it is rendered (pretty-printing can make a
//! small JSON value large: deep nesting indents every line), and a page
//! shares one [`TextBudget`] among all its messages. Whatever is cut says
//! so, and the whole value is one click away as a download, streamed a
//! window at a time ([`DOWNLOAD_CHUNK_BYTES`]).
//!
//! A page's size is then bounded by the markup of at most [`MAX_ROWS`]
//! rows per list (each with a reason of at most [`REASON_BYTES`] and names
//! of at most [`NAME_BYTES`]) plus [`PAGE_TEXT_BYTES`] of message text, at
//! most six times that once HTML-escaped (`"` is `&#34;`): a few MB at the
//! very worst, a few hundred KB with ten 8 MB dead letters.

use std::io::Write;

use serde::Serialize;

/// Bytes of each message read for a list row or a call's page.
pub const PREVIEW_BYTES: usize = 16 * 1024;
/// Bytes of a dead letter's reason read and shown.
pub const REASON_BYTES: usize = 2 * 1024;
/// Text one message shows at most: its pretty JSON, its parameters and
/// their values together.
pub const MESSAGE_TEXT_BYTES: usize = 32 * 1024;
/// Message text one page shows at most, across all its messages.
pub const PAGE_TEXT_BYTES: usize = 1024 * 1024;
/// Rows of one list on a page, at most (`?max=` is clamped to it).
pub const MAX_ROWS: usize = 200;
/// Services a page lists or a lookup looks in, at most.
pub const MAX_SERVICES: usize = 500;
/// Worker rows the workers page shows, at most.
pub const MAX_WORKERS: usize = 1000;
/// Names from Redis (consumers) are shown cut to this many bytes.
pub const NAME_BYTES: usize = 200;
/// A service name longer than this is no service: keys that long are left
/// out of the listings (a service's name is in every link to its pages).
pub const MAX_SERVICE_NAME_BYTES: usize = 256;
/// The largest message the edit form is built for (it holds the message's
/// parameters whole, and the form post may be 4 MiB).
pub const EDIT_MAX_BYTES: u64 = 1024 * 1024;
/// The largest message the dashboard replays: the size workers refuse past
/// by default (`WorkerBuilder::max_message_bytes`).
pub const REPLAY_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Bytes read from Redis per step of a download.
pub const DOWNLOAD_CHUNK_BYTES: usize = 256 * 1024;

/// The message text a page may still show. Each text takes what it needs
/// up to its own limit and what is left; once it is spent, texts are empty
/// and say so.
#[derive(Debug)]
pub struct TextBudget {
    left: usize,
}

impl Default for TextBudget {
    fn default() -> Self {
        TextBudget {
            left: PAGE_TEXT_BYTES,
        }
    }
}

/// A text cut to fit, and whether anything was cut.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Shown {
    pub text: String,
    pub cut: bool,
}

impl TextBudget {
    /// A budget of `bytes`.
    pub fn of(bytes: usize) -> TextBudget {
        TextBudget { left: bytes }
    }

    /// What is left.
    pub fn left(&self) -> usize {
        self.left
    }

    /// `text` cut to `limit` bytes and what is left, taken from the budget.
    pub fn take(&mut self, text: &str, limit: usize) -> Shown {
        let allowed = limit.min(self.left);
        let kept = cut_str(text, allowed);
        self.left -= kept.len();
        Shown {
            cut: kept.len() < text.len(),
            text: kept.to_owned(),
        }
    }

    /// `value` as pretty JSON, cut to `limit` bytes and what is left; the
    /// pretty text is never built whole.
    pub fn pretty(&mut self, value: &serde_json::Value, limit: usize) -> Shown {
        let allowed = limit.min(self.left);
        let mut out = Capped {
            bytes: Vec::new(),
            cap: allowed,
            overflowed: false,
        };
        // Stops with an error once the cap is reached: that is the point.
        let _ = serde_json::to_writer_pretty(&mut out, value);
        // The cap may fall inside a character: keep the whole ones.
        let valid = match std::str::from_utf8(&out.bytes) {
            Ok(_) => out.bytes.len(),
            Err(e) => e.valid_up_to(),
        };
        let text = String::from_utf8_lossy(&out.bytes[..valid]).into_owned();
        self.left -= text.len();
        Shown {
            cut: out.overflowed,
            text,
        }
    }
}

/// A writer that keeps `cap` bytes and then refuses, so serializing a huge
/// value costs no more than the cap.
struct Capped {
    bytes: Vec<u8>,
    cap: usize,
    overflowed: bool,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = self.cap - self.bytes.len();
        if buf.len() > room {
            self.bytes.extend_from_slice(&buf[..room]);
            self.overflowed = true;
            return Err(std::io::Error::other("the text is longer than its cap"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary.
pub fn cut_str(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A name from Redis for display: cut to [`NAME_BYTES`], with `…` when cut.
pub fn name(text: &str) -> String {
    let kept = cut_str(text, NAME_BYTES);
    if kept.len() < text.len() {
        format!("{kept}…")
    } else {
        kept.to_owned()
    }
}

/// A byte count for people: `812 B`, `16.0 KiB`, `8.0 MiB`.
pub fn size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if bytes < 1024 {
        format!("{bytes} B")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else if b < KIB * KIB * KIB {
        format!("{:.1} MiB", b / (KIB * KIB))
    } else {
        format!("{:.1} GiB", b / (KIB * KIB * KIB))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_deeply_nested_value_is_cut_while_it_is_printed() {
        // 100 levels of arrays around 10,000 zeros pretty-print to megabytes
        // (every zero indented 200 spaces); the cap stops it at 1 KiB.
        let mut value = json!(vec![0; 10_000]);
        for _ in 0..100 {
            value = json!([value]);
        }
        let mut budget = TextBudget::of(10_000);
        let shown = budget.pretty(&value, 1024);
        assert!(shown.cut);
        assert_eq!(shown.text.len(), 1024);
        assert_eq!(budget.left(), 10_000 - 1024);
    }

    #[test]
    fn a_page_budget_runs_out_and_says_so() {
        let mut budget = TextBudget::of(10);
        assert_eq!(budget.take("abcdef", 100).text, "abcdef");
        let second = budget.take("ghijkl", 100);
        assert_eq!((second.text.as_str(), second.cut), ("ghij", true));
        assert_eq!(
            budget.take("more", 100),
            Shown {
                text: String::new(),
                cut: true
            }
        );
        assert_eq!(budget.take("", 100), Shown::default());
    }

    #[test]
    fn text_is_cut_on_a_character_boundary() {
        assert_eq!(cut_str("ééé", 3), "é");
        assert_eq!(name(&"x".repeat(300)).len(), NAME_BYTES + "…".len());
        assert_eq!(size(8 * 1024 * 1024), "8.0 MiB");
        assert_eq!(size(16 * 1024), "16.0 KiB");
        assert_eq!(size(5), "5 B");
    }
}
