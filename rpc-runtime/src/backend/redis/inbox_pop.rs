//! The commands a client's reader pops replies off its inbox with, and
//! how their answers are read (`reader.rs` sends them, alone or after a
//! push).

use std::time::Duration;

use redis::Value;

/// `BLMPOP <wait> 1 <inbox> LEFT COUNT <max>`, or `BLPOP <inbox> <wait>`
/// for a single reply, which costs Redis less (in `INFO commandstats`
/// during the bench, 2.6 µs per `BLPOP` against 4.3 µs per `BLMPOP`).
/// Built on every call's path: sized once, the wait written without
/// `format!` (growing the command argument by argument and formatting
/// the wait took about 2,400 instructions a call, callgrind).
pub(super) fn pop_cmd(inbox: &str, max: usize, wait: Duration) -> redis::Cmd {
    let mut secs = [0u8; 32];
    let secs = seconds_arg(wait, &mut secs);
    if max <= 1 {
        let mut cmd = redis::Cmd::with_capacity(3, 5 + inbox.len() + secs.len());
        cmd.arg("BLPOP").arg(inbox).arg(secs);
        return cmd;
    }
    let mut cmd = redis::Cmd::with_capacity(7, 32 + inbox.len() + secs.len());
    cmd.arg("BLMPOP")
        .arg(secs)
        .arg(1)
        .arg(inbox)
        .arg("LEFT")
        .arg("COUNT")
        .arg(max);
    cmd
}

/// `wait` as Redis's timeout argument: seconds with millisecond precision
/// (`1.500`), at least 10 ms, written into `buf`.
fn seconds_arg(wait: Duration, buf: &mut [u8; 32]) -> &[u8] {
    let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(10);
    // Written from the end: three decimals, the point, the whole seconds.
    let mut at = buf.len();
    let mut put = |digit: u64, buf: &mut [u8; 32]| {
        at -= 1;
        buf[at] = b'0' + (digit % 10) as u8;
    };
    let fraction = ms % 1000;
    put(fraction, buf);
    put(fraction / 10, buf);
    put(fraction / 100, buf);
    at -= 1;
    buf[at] = b'.';
    let mut whole = ms / 1000;
    loop {
        at -= 1;
        buf[at] = b'0' + (whole % 10) as u8;
        whole /= 10;
        if whole == 0 {
            break;
        }
    }
    &buf[at..]
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

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(wait: Duration) -> String {
        String::from_utf8(seconds_arg(wait, &mut [0; 32]).to_vec()).unwrap()
    }

    #[test]
    fn the_wait_is_seconds_with_three_decimals() {
        assert_eq!(secs(Duration::from_millis(1500)), "1.500");
        assert_eq!(secs(Duration::from_millis(1)), "0.010");
        assert_eq!(secs(Duration::from_millis(999)), "0.999");
        assert_eq!(secs(Duration::from_millis(1007)), "1.007");
        assert_eq!(secs(Duration::from_secs(86_400)), "86400.000");
        assert_eq!(
            secs(Duration::MAX),
            format!("{}.{:03}", u64::MAX / 1000, u64::MAX % 1000)
        );
    }

    #[test]
    fn one_reply_is_a_blpop_and_more_a_blmpop() {
        let packed = |cmd: redis::Cmd| String::from_utf8(cmd.get_packed_command()).unwrap();
        let one = packed(pop_cmd("my-inbox", 1, Duration::from_millis(2500)));
        assert_eq!(
            one,
            "*3\r\n$5\r\nBLPOP\r\n$8\r\nmy-inbox\r\n$5\r\n2.500\r\n"
        );
        let many = packed(pop_cmd("my-inbox", 256, Duration::from_millis(2500)));
        assert_eq!(
            many,
            "*7\r\n$6\r\nBLMPOP\r\n$5\r\n2.500\r\n$1\r\n1\r\n$8\r\nmy-inbox\r\n$4\r\nLEFT\r\n$5\r\nCOUNT\r\n$3\r\n256\r\n"
        );
    }
}
