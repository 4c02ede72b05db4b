//! The commands a client's reader pops replies off its inbox with, and
//! how their answers are read (`reader.rs` sends them, alone or after a
//! push).

use std::time::Duration;

use redis::Value;

/// `BLMPOP <wait> 1 <inbox> LEFT COUNT <max>`, or `BLPOP <inbox> <wait>`
/// for a single reply, which costs Redis less (in `INFO commandstats`
/// during the bench, 2.6 µs per `BLPOP` against 4.3 µs per `BLMPOP`).
pub(super) fn pop_cmd(inbox: &str, max: usize, wait: Duration) -> redis::Cmd {
    // Seconds with millisecond precision, written without float formatting
    // (this is on every call's path).
    let ms = wait.as_millis().max(10);
    let secs = format!("{}.{:03}", ms / 1000, ms % 1000);
    if max <= 1 {
        let mut cmd = redis::cmd("BLPOP");
        cmd.arg(inbox).arg(secs);
        return cmd;
    }
    let mut cmd = redis::cmd("BLMPOP");
    cmd.arg(secs)
        .arg(1)
        .arg(inbox)
        .arg("LEFT")
        .arg("COUNT")
        .arg(max);
    cmd
}

/// Parses a `BLMPOP` reply, nil or `[key, [element, ...]]`, or a `BLPOP`
/// reply, nil or `[key, element]`.
pub(super) fn parse_popped(v: Value) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if let Value::Array(parts) = v {
        match parts.into_iter().nth(1) {
            Some(Value::Array(items)) => {
                for item in items {
                    if let Value::BulkString(b) = item {
                        out.push(b);
                    }
                }
            }
            Some(Value::BulkString(b)) => out.push(b),
            _ => {}
        }
    }
    out
}
