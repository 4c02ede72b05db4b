//! Just enough of the Redis protocol (RESP) to ask a plain-TCP server
//! whether it is up.
//!
//! Readiness is polled every few milliseconds while a server starts; forking
//! `redis-cli` for each poll would cost more than the server's own start-up.
//! Only the first line of each reply is read, which is all `AUTH` and `PING`
//! need.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Encodes one command as a RESP array of bulk strings.
fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Sends `AUTH` (when credentials are given) and `PING`; returns the first
/// line of the last reply, e.g. `+PONG`, `-LOADING ...` or `-NOAUTH ...`.
pub(crate) fn ping(port: u16, auth: Option<(&str, &str)>, timeout: Duration) -> io::Result<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;

    if let Some((user, password)) = auth {
        writer.write_all(&encode(&["AUTH", user, password]))?;
        let reply = read_line(&mut reader)?;
        if reply.starts_with('-') {
            return Ok(reply);
        }
    }
    writer.write_all(&encode(&["PING"]))?;
    read_line(&mut reader)
}

fn read_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a reply",
        ));
    }
    Ok(line.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn encodes_bulk_string_array() {
        assert_eq!(encode(&["PING"]), b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(
            encode(&["AUTH", "u", "pw"]),
            b"*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$2\r\npw\r\n"
        );
    }
}
