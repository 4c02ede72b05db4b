//! A blocking reader's own connection to a single Redis, speaking RESP2
//! directly from the task that reads.
//!
//! Why not the `redis` crate's connection here: its multiplexed connection
//! runs a driver task, so every request is handed to that task and every
//! reply handed back (two task wake-ups per round trip), and its
//! combinator-based reply parser was about 9% of a worker process's CPU in
//! the sequential bench (`perf`, see rpc-bench/RESULTS.md). A reader owns
//! its connection and waits for each answer before it sends the next
//! request, so multiplexing buys it nothing: here the reading task writes
//! the request and parses the replies itself. The `redis` crate still
//! encodes the commands, parses the URL into the connection settings, and
//! parses the (rare) error replies into its `Value::ServerError`, so the
//! rest of the backend sees the same values either way.
//!
//! Only plain TCP and Unix sockets; readers over TLS, and on a Cluster, keep
//! the `redis` crate's connections. The connection speaks RESP2 whatever the
//! URL asks for (it never sends `HELLO`); the backend parses both shapes.
//!
//! A request cut short (its future dropped mid-write or mid-read, as a
//! timeout does) leaves the connection out of step with Redis: it is then
//! poisoned, every later request fails without touching the socket, and the
//! owner opens a new connection.

use std::io;
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, RedisError, RedisResult, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How deep replies may nest (Redis's own replies nest three or four deep).
const MAX_DEPTH: usize = 32;
/// The longest bulk string accepted (Redis's default `proto-max-bulk-len`).
const MAX_BULK: usize = 512 * 1024 * 1024;
/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 16 * 1024;

enum Stream {
    Tcp(tokio::net::TcpStream),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

impl Stream {
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(bytes).await,
            #[cfg(unix)]
            Stream::Unix(s) => s.write_all(bytes).await,
        }
    }

    async fn read_buf(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read_buf(buf).await,
            #[cfg(unix)]
            Stream::Unix(s) => s.read_buf(buf).await,
        }
    }
}

/// One connection, one request at a time.
pub(super) struct RespConnection {
    stream: Stream,
    /// Bytes read and not yet parsed start at `parsed`.
    buf: Vec<u8>,
    parsed: usize,
    /// The request being written (kept to reuse its allocation).
    out: Vec<u8>,
    /// A request was cut short: the connection is out of step.
    poisoned: bool,
}

impl RespConnection {
    /// Whether `info` names a Redis this connection can reach (not TLS).
    pub(super) fn handles(info: &ConnectionInfo) -> bool {
        matches!(
            info.addr(),
            ConnectionAddr::Tcp(..) | ConnectionAddr::Unix(_)
        )
    }

    /// Connects, authenticates and selects the database `info` names.
    pub(super) async fn connect(info: &ConnectionInfo, timeout: Duration) -> RedisResult<Self> {
        let connecting = async {
            let stream = match info.addr() {
                ConnectionAddr::Tcp(host, port) => {
                    let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                    stream.set_nodelay(true)?;
                    Stream::Tcp(stream)
                }
                #[cfg(unix)]
                ConnectionAddr::Unix(path) => {
                    Stream::Unix(tokio::net::UnixStream::connect(path).await?)
                }
                _ => {
                    return Err(RedisError::from(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "a direct connection speaks neither TLS nor this address",
                    )))
                }
            };
            let mut con = RespConnection {
                stream,
                buf: Vec::with_capacity(READ_CHUNK),
                parsed: 0,
                out: Vec::with_capacity(1024),
                poisoned: false,
            };
            con.handshake(info).await?;
            Ok(con)
        };
        match tokio::time::timeout(timeout, connecting).await {
            Ok(con) => con,
            Err(_) => Err(RedisError::from(io::Error::new(
                io::ErrorKind::TimedOut,
                "connecting to Redis timed out",
            ))),
        }
    }

    /// `AUTH` and `SELECT`, as the URL asks.
    async fn handshake(&mut self, info: &ConnectionInfo) -> RedisResult<()> {
        let settings = info.redis_settings();
        let mut pipe = redis::pipe();
        if let Some(password) = settings.password() {
            let auth = pipe.cmd("AUTH");
            if let Some(user) = settings.username() {
                auth.arg(user);
            }
            auth.arg(password);
        }
        if settings.db() != 0 {
            pipe.cmd("SELECT").arg(settings.db());
        }
        if pipe.is_empty() {
            return Ok(());
        }
        for reply in self.query_pipeline(&pipe).await? {
            if let Value::ServerError(e) = reply {
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Sends one command and reads its reply; a server error is an `Err`
    /// (as with the `redis` crate's connections).
    pub(super) async fn query(&mut self, cmd: &redis::Cmd) -> RedisResult<Value> {
        self.out.clear();
        cmd.write_packed_command(&mut self.out);
        match self.request(1).await?.pop() {
            Some(Value::ServerError(e)) => Err(e.into()),
            Some(v) => Ok(v),
            None => Err(out_of_step("no reply")),
        }
    }

    /// Sends a pipeline and reads one reply per command, server errors
    /// included as values (as `ignore_errors` does). Not for transactions.
    pub(super) async fn query_pipeline(
        &mut self,
        pipe: &redis::Pipeline,
    ) -> RedisResult<Vec<Value>> {
        if pipe.is_transaction() {
            return Err(RedisError::from(io::Error::new(
                io::ErrorKind::Unsupported,
                "a reader's connection sends plain pipelines, not MULTI/EXEC",
            )));
        }
        self.out.clear();
        for cmd in pipe.cmd_iter() {
            cmd.write_packed_command(&mut self.out);
        }
        self.request(pipe.len()).await
    }

    /// Writes `self.out` and reads `replies` replies.
    async fn request(&mut self, replies: usize) -> RedisResult<Vec<Value>> {
        if self.poisoned {
            return Err(out_of_step("an earlier request on it was cut short"));
        }
        // Until this request is read to its end the connection is out of
        // step; a future dropped before then leaves it poisoned.
        self.poisoned = true;
        self.stream.write_all(&self.out).await?;
        let mut values = Vec::with_capacity(replies);
        while values.len() < replies {
            let pending = &self.buf[self.parsed..];
            match value_len(pending, 0).map_err(protocol_error)? {
                Some(len) => {
                    let (value, _) = parse(&pending[..len], 0).map_err(protocol_error)?;
                    self.parsed += len;
                    values.push(value);
                }
                None => self.fill().await?,
            }
        }
        if self.parsed == self.buf.len() {
            self.buf.clear();
            self.parsed = 0;
        }
        self.poisoned = false;
        Ok(values)
    }

    /// Writes `pipe` without reading its replies: for a subscriber
    /// connection, whose replies and pushed messages come in any order and
    /// are read one by one with [`RespConnection::next_reply`].
    pub(super) async fn send_pipeline(&mut self, pipe: &redis::Pipeline) -> RedisResult<()> {
        if self.poisoned {
            return Err(out_of_step("an earlier request on it was cut short"));
        }
        self.out.clear();
        for cmd in pipe.cmd_iter() {
            cmd.write_packed_command(&mut self.out);
        }
        // A write cut short leaves half a command on the wire.
        self.poisoned = true;
        self.stream.write_all(&self.out).await?;
        self.poisoned = false;
        Ok(())
    }

    /// The next value Redis sends: a reply or, on a subscriber connection,
    /// a pushed message. Cancel-safe: the only wait is a read into the
    /// buffer, which loses nothing when dropped, so it may be raced against
    /// a timer.
    pub(super) async fn next_reply(&mut self) -> RedisResult<Value> {
        if self.poisoned {
            return Err(out_of_step("an earlier request on it was cut short"));
        }
        loop {
            let pending = &self.buf[self.parsed..];
            if let Some(len) = value_len(pending, 0).map_err(protocol_error)? {
                let (value, _) = parse(&pending[..len], 0).map_err(protocol_error)?;
                self.parsed += len;
                if self.parsed == self.buf.len() {
                    self.buf.clear();
                    self.parsed = 0;
                }
                return Ok(value);
            }
            self.fill().await?;
        }
    }

    /// Reads more bytes, first moving what is left unparsed to the front.
    async fn fill(&mut self) -> RedisResult<()> {
        if self.parsed > 0 {
            self.buf.drain(..self.parsed);
            self.parsed = 0;
        }
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK.max(self.buf.len()));
        }
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(RedisError::from(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "Redis closed the connection",
            )));
        }
        Ok(())
    }
}

fn out_of_step(why: &str) -> RedisError {
    RedisError::from(io::Error::other(format!("connection out of step: {why}")))
}

fn protocol_error(why: String) -> RedisError {
    RedisError::from(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("not a RESP2 reply: {why}"),
    ))
}

/// The end of the line that starts at `from` (the index of its `\r`), or
/// `None` if the line is not all there yet.
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    let cr = from + buf.get(from..)?.iter().position(|&b| b == b'\r')?;
    (buf.len() > cr + 1).then_some(cr)
}

/// A RESP integer (`-?[0-9]+`, in `i64`), read from the bytes as they are:
/// replies carry a few on every call (lengths, counts), and going through
/// `str` checked each one's UTF-8 first (callgrind).
fn parse_int(digits: &[u8]) -> Result<i64, String> {
    let bad = || format!("bad number {:?}", String::from_utf8_lossy(digits));
    let (negative, body) = match digits {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, digits),
    };
    if body.is_empty() {
        return Err(bad());
    }
    let mut n: i64 = 0;
    for &d in body {
        if !d.is_ascii_digit() {
            return Err(bad());
        }
        let d = i64::from(d - b'0');
        n = n
            .checked_mul(10)
            .and_then(|n| {
                if negative {
                    n.checked_sub(d)
                } else {
                    n.checked_add(d)
                }
            })
            .ok_or_else(bad)?;
    }
    Ok(n)
}

/// Where a bulk string of `len` bytes starting at `start` ends, or an error
/// for a length over Redis's own limit (`proto-max-bulk-len`, 512 MiB by
/// default): waiting for such a reply would only grow the buffer.
fn bulk_end(start: usize, len: i64) -> Result<usize, String> {
    match usize::try_from(len) {
        Ok(len) if len <= MAX_BULK => Ok(start + len),
        _ => Err(format!("bulk string length {len} out of range")),
    }
}

/// The length of the complete value at the start of `buf`, or `None` while
/// it is not all there. Bulk strings are skipped by their length, so the
/// cost follows the number of values, not of bytes: a large reply that
/// arrives in many reads is not rescanned byte by byte each time.
fn value_len(buf: &[u8], depth: usize) -> Result<Option<usize>, String> {
    if depth > MAX_DEPTH {
        return Err("nested too deep".to_owned());
    }
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    let Some(end) = line_end(buf, 1) else {
        return Ok(None);
    };
    let after_line = end + 2;
    match kind {
        b'+' | b'-' | b':' => Ok(Some(after_line)),
        b'$' => {
            let n = parse_int(&buf[1..end])?;
            if n < 0 {
                return Ok(Some(after_line));
            }
            let total = bulk_end(after_line, n)? + 2;
            Ok((buf.len() >= total).then_some(total))
        }
        b'*' => {
            let n = parse_int(&buf[1..end])?;
            let mut at = after_line;
            for _ in 0..n.max(0) {
                match value_len(&buf[at..], depth + 1)? {
                    Some(len) => at += len,
                    None => return Ok(None),
                }
            }
            Ok(Some(at))
        }
        other => Err(format!("unexpected type byte {other:#04x}")),
    }
}

/// Parses the value at `at` in `buf`, which [`value_len`] found complete;
/// returns it and where the next one starts.
fn parse(buf: &[u8], at: usize) -> Result<(Value, usize), String> {
    let end = line_end(buf, at + 1).ok_or("truncated line")?;
    let line = &buf[at + 1..end];
    let next = end + 2;
    let value = match buf[at] {
        b'+' if line == b"OK" => Value::Okay,
        b'+' => Value::SimpleString(String::from_utf8_lossy(line).into_owned()),
        // Errors are rare: the `redis` crate's parser makes them into its
        // own error values (codes, kinds), which nothing else can build.
        b'-' => redis::parse_redis_value(&buf[at..next]).map_err(|e| e.to_string())?,
        b':' => Value::Int(parse_int(line)?),
        b'$' => {
            let n = parse_int(line)?;
            if n < 0 {
                return Ok((Value::Nil, next));
            }
            let body_end = bulk_end(next, n)?;
            if buf.get(body_end..body_end + 2) != Some(b"\r\n") {
                return Err("a bulk string does not end where its length says".to_owned());
            }
            return Ok((
                Value::BulkString(buf[next..body_end].to_vec()),
                body_end + 2,
            ));
        }
        b'*' => {
            let n = parse_int(line)?;
            if n < 0 {
                return Ok((Value::Nil, next));
            }
            let mut items = Vec::with_capacity(n as usize);
            let mut at = next;
            for _ in 0..n {
                let (item, after) = parse(buf, at)?;
                items.push(item);
                at = after;
            }
            return Ok((Value::Array(items), at));
        }
        other => return Err(format!("unexpected type byte {other:#04x}")),
    };
    Ok((value, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RESP2 encodings of a few values, and what the `redis` crate parses
    /// them into: ours must agree.
    const SAMPLES: &[&[u8]] = &[
        b"+OK\r\n",
        b"+QUEUED\r\n",
        b"-NOGROUP No such key 'rpc:{S}:jobs' or consumer group 'workers'\r\n",
        b"-ERR\r\n",
        b":0\r\n",
        b":-42\r\n",
        b"$-1\r\n",
        b"*-1\r\n",
        b"$0\r\n\r\n",
        b"$5\r\nhe\r\no\r\n",
        b"*0\r\n",
        b"*2\r\n$15\r\n1700000000000-0\r\n*2\r\n$1\r\nm\r\n$7\r\n{\"v\":1}\r\n",
        b"*1\r\n*2\r\n$12\r\nrpc:{B}:jobs\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*-1\r\n",
        b"*3\r\n:1\r\n-WRONGTYPE Operation against a key\r\n$2\r\nab\r\n",
    ];

    #[test]
    fn parses_as_the_redis_crate_does() {
        for sample in SAMPLES {
            let len = value_len(sample, 0).unwrap();
            assert_eq!(len, Some(sample.len()), "{sample:?}");
            let (ours, next) = parse(sample, 0).unwrap();
            assert_eq!(next, sample.len());
            let theirs = redis::parse_redis_value(sample).unwrap();
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(sample));
        }
    }

    #[test]
    fn every_prefix_is_incomplete() {
        for sample in SAMPLES {
            for cut in 0..sample.len() {
                assert_eq!(
                    value_len(&sample[..cut], 0).unwrap(),
                    None,
                    "{} cut at {cut}",
                    String::from_utf8_lossy(sample)
                );
            }
        }
    }

    #[test]
    fn values_back_to_back_are_told_apart() {
        let both = b"$3\r\nabc\r\n:7\r\n";
        assert_eq!(value_len(both, 0).unwrap(), Some(9));
        assert_eq!(value_len(&both[9..], 0).unwrap(), Some(4));
    }

    /// RESP2 values, as Redis sends them.
    fn arb_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Nil),
            Just(Value::Okay),
            any::<i64>().prop_map(Value::Int),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::BulkString),
            "[a-zA-Z0-9 :{}-]{0,20}".prop_map(Value::SimpleString),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            proptest::collection::vec(inner, 0..8).prop_map(Value::Array)
        })
    }

    fn encode(v: &Value, out: &mut Vec<u8>) {
        match v {
            Value::Nil => out.extend_from_slice(b"$-1\r\n"),
            Value::Okay => out.extend_from_slice(b"+OK\r\n"),
            Value::Int(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
            Value::SimpleString(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
            Value::BulkString(b) => {
                out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Value::Array(items) => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                for item in items {
                    encode(item, out);
                }
            }
            other => unreachable!("not generated: {other:?}"),
        }
    }

    proptest::proptest! {
        /// Whatever the value, and wherever the bytes are cut: no complete
        /// value is seen before the last byte, and then exactly the one the
        /// `redis` crate's parser sees.
        #[test]
        fn any_value_cut_anywhere(v in arb_value(), cut in 0usize..1000) {
            let mut bytes = Vec::new();
            encode(&v, &mut bytes);
            // "+OK" and "+" strings are one value to both parsers; compare
            // with what the redis crate makes of the same bytes.
            let theirs = redis::parse_redis_value(&bytes).unwrap();
            let cut = cut % bytes.len();
            proptest::prop_assert_eq!(value_len(&bytes[..cut], 0).unwrap(), None);
            proptest::prop_assert_eq!(value_len(&bytes, 0).unwrap(), Some(bytes.len()));
            let (ours, next) = parse(&bytes, 0).unwrap();
            proptest::prop_assert_eq!(next, bytes.len());
            proptest::prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b"?x\r\n"[..],
            b"$abc\r\n",
            b"*2\r\n:1\r\n!x\r\n",
            b"$2\r\nabcd\r\n",
        ] {
            let scanned = value_len(bad, 0);
            let parsed = parse(bad, 0);
            assert!(scanned.is_err() || parsed.is_err(), "{bad:?}");
        }
        let huge = format!("${}\r\n", i64::MAX);
        assert!(value_len(huge.as_bytes(), 0).is_err());
        let deep = "*1\r\n".repeat(MAX_DEPTH + 2);
        assert!(value_len(deep.as_bytes(), 0).is_err());
    }

    #[test]
    fn integers_read_as_str_parse_reads_them() {
        for text in [
            "0",
            "7",
            "-1",
            "+12",
            "1000",
            "-0",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "-9223372036854775809",
            "99999999999999999999",
            "",
            "-",
            "+",
            "1a",
            " 1",
            "1 ",
            "--1",
            "0x10",
            "١",
        ] {
            assert_eq!(
                parse_int(text.as_bytes()).ok(),
                text.parse::<i64>().ok(),
                "{text:?}"
            );
        }
    }
}
