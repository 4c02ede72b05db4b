//! What `rpc` prints on stdout goes through here, so that a reader that
//! stops early (`rpc scheduled --format json | head -1`) ends the command
//! quietly with status 0, as `cat` or `ls` would, instead of `println!`'s
//! panic and backtrace on the closed pipe (Rust ignores SIGPIPE, so the
//! write fails with `EPIPE`). Any other write error is a command that could
//! not run: status 2.
//!
//! [`out!`](crate::out) and [`outln!`](crate::outln) are `print!` and
//! `println!` with that rule.

use std::fmt;
use std::io::{ErrorKind, Write};

/// Writes `args` to stdout; ends the process on a closed pipe (0) or any
/// other write error (2).
pub fn write(args: fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if e.kind() == ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: could not write to stdout: {e}");
        std::process::exit(2);
    }
}

/// `print!` that ends quietly on a closed pipe.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::stdout::write(format_args!($($arg)*)) };
}

/// `println!` that ends quietly on a closed pipe.
#[macro_export]
macro_rules! outln {
    () => { $crate::stdout::write(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::stdout::write(format_args!("{}\n", format_args!($($arg)*))) };
}
