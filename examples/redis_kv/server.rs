//! A Redis-protocol (RESP2) key-value server: the protocol, the commands
//! and the connection loop, written against tokio's io traits only, so
//! that the same code serves on any runtime whose sockets implement them
//! (wq with its `tokio-io` feature, or tokio itself). The accept loop is
//! the caller's: it hands each accepted stream to [`serve`] in a task of
//! its own, with a clone of the shared [`Db`].
//!
//! Commands: `PING [message]`, `ECHO message`, `GET key`, `SET key value`
//! (any option after the value, such as `EX` or `NX`, is answered with an
//! error naming it), `DEL key [key ...]`, `DBSIZE`, `QUIT`, and `CONFIG
//! GET`, which redis-benchmark sends on start: `save` reads `""` and
//! `appendonly` reads `no` (nothing is persisted), other parameters match
//! nothing. Any other command is answered as Redis answers an unknown one.
//!
//! Requests are RESP arrays of bulk strings, or inline commands (`PING` on
//! a line of its own, words separated by spaces; no quoting). Pipelining:
//! every complete command in the read buffer is executed and answered in
//! order, the replies gathered in a `BufWriter` flushed once per batch
//! (a batch of more than its 8 KiB of replies goes out in several
//! writes). A malformed
//! request is answered with a `Protocol error` reply, after the replies to
//! the commands before it, and the connection is closed.

use std::collections::HashMap;
use std::io::{self, Write as _};
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Buf as _, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufWriter};

/// The keys and their values, shared by every connection.
pub type Db = Arc<Mutex<HashMap<Bytes, Bytes>>>;

/// The longest inline command, and the longest `*N` or `$N` line, as
/// Redis's `PROTO_INLINE_MAX_SIZE`.
pub const MAX_INLINE: usize = 64 * 1024;
/// The most arguments one command may have.
pub const MAX_ARGS: i64 = 1024 * 1024;
/// The longest bulk string, as Redis's default `proto-max-bulk-len`.
pub const MAX_BULK: i64 = 512 * 1024 * 1024;
/// How many bytes the read buffer starts with.
const READ_BUFFER: usize = 16 * 1024;

/// A request that is not valid RESP. Its text is Redis's where Redis
/// makes the same check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl ProtocolError {
    fn new(what: &str) -> Self {
        Self(what.to_owned())
    }
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Protocol error: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// Parses the command at the start of `buf`. Returns `Ok(Some(n))` once a
/// whole command is there, its first `n` bytes, with `args` set to where
/// its arguments are in `buf` (empty for a blank inline line or `*0`,
/// which Redis skips); `Ok(None)` if more bytes are needed.
pub fn parse_command(
    buf: &[u8],
    args: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, ProtocolError> {
    args.clear();
    match buf.first() {
        None => Ok(None),
        Some(b'*') => parse_array(buf, args),
        Some(_) => parse_inline(buf, args),
    }
}

/// An inline command: words separated by spaces or tabs, up to `\n` (a
/// `\r` before it is dropped).
fn parse_inline(buf: &[u8], args: &mut Vec<Range<usize>>) -> Result<Option<usize>, ProtocolError> {
    let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > MAX_INLINE {
            Err(ProtocolError::new("too big inline request"))
        } else {
            Ok(None)
        };
    };
    if newline > MAX_INLINE {
        return Err(ProtocolError::new("too big inline request"));
    }
    let end = if newline > 0 && buf[newline - 1] == b'\r' {
        newline - 1
    } else {
        newline
    };
    let mut start = None;
    for (i, &b) in buf[..end].iter().enumerate() {
        match (b == b' ' || b == b'\t', start) {
            (true, Some(s)) => {
                args.push(s..i);
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        args.push(s..end);
    }
    Ok(Some(newline + 1))
}

/// A RESP array of bulk strings: `*N\r\n` then N times `$LEN\r\nDATA\r\n`.
fn parse_array(buf: &[u8], args: &mut Vec<Range<usize>>) -> Result<Option<usize>, ProtocolError> {
    let Some((count, mut pos)) = header(buf, 0, "too big mbulk count string")? else {
        return Ok(None);
    };
    let count = count
        .filter(|&n| n <= MAX_ARGS)
        .ok_or_else(|| ProtocolError::new("invalid multibulk length"))?;
    for _ in 0..count.max(0) {
        match buf.get(pos) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(&other) => {
                return Err(ProtocolError(format!(
                    "expected '$', got '{}'",
                    other.escape_ascii()
                )))
            }
        }
        let Some((len, data)) = header(buf, pos, "too big bulk count string")? else {
            return Ok(None);
        };
        let len = len
            .filter(|&n| (0..=MAX_BULK).contains(&n))
            .ok_or_else(|| ProtocolError::new("invalid bulk length"))? as usize;
        let end = data + len;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(ProtocolError::new("expected CRLF after bulk string"));
        }
        args.push(data..end);
        pos = end + 2;
    }
    Ok(Some(pos))
}

/// Reads the line at `buf[at..]` that starts with a type byte (`*` or
/// `$`) and ends in `\r\n`: its number (`None` if it is not one) and
/// where the next line starts; `Ok(None)` if the line is not complete.
fn header(
    buf: &[u8],
    at: usize,
    too_big: &'static str,
) -> Result<Option<(Option<i64>, usize)>, ProtocolError> {
    let line = &buf[at..];
    let Some(cr) = line.iter().position(|&b| b == b'\r') else {
        return if line.len() > MAX_INLINE {
            Err(ProtocolError::new(too_big))
        } else {
            Ok(None)
        };
    };
    if cr + 1 >= line.len() {
        return Ok(None);
    }
    Ok(Some((integer(&line[1..cr]), at + cr + 2)))
}

/// `-?[0-9]+` as an `i64`, nothing else.
fn integer(text: &[u8]) -> Option<i64> {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// A reply, as it goes out in RESP2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`, `+PONG`.
    Simple(&'static str),
    /// `-ERR ...`: the text after the `-`. Line breaks in it are sent as
    /// spaces.
    Error(String),
    /// `:N`.
    Integer(i64),
    /// `$LEN` and the bytes.
    Bulk(Bytes),
    /// `$-1`, the nil bulk string.
    Nil,
    /// `*N` and the elements.
    Array(Vec<Reply>),
}

impl Reply {
    /// Writes the reply to `out` (buffered: nothing may reach the socket
    /// before `out` is flushed).
    pub async fn write_to<W: AsyncWrite + Unpin>(&self, out: &mut W) -> io::Result<()> {
        // Iterative over nested arrays, to keep the future small.
        let mut stack = vec![std::slice::from_ref(self).iter()];
        while let Some(top) = stack.last_mut() {
            let Some(reply) = top.next() else {
                stack.pop();
                continue;
            };
            match reply {
                Reply::Simple(text) => {
                    out.write_all(b"+").await?;
                    out.write_all(text.as_bytes()).await?;
                    out.write_all(b"\r\n").await?;
                }
                Reply::Error(text) => {
                    let text: Vec<u8> = text
                        .bytes()
                        .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b })
                        .collect();
                    out.write_all(b"-").await?;
                    out.write_all(&text).await?;
                    out.write_all(b"\r\n").await?;
                }
                Reply::Integer(n) => write_header(out, b':', *n).await?,
                Reply::Bulk(data) => {
                    write_header(out, b'$', data.len() as i64).await?;
                    out.write_all(data).await?;
                    out.write_all(b"\r\n").await?;
                }
                Reply::Nil => out.write_all(b"$-1\r\n").await?,
                Reply::Array(items) => {
                    write_header(out, b'*', items.len() as i64).await?;
                    stack.push(items.iter());
                }
            }
        }
        Ok(())
    }
}

/// Writes `:N\r\n`, `$N\r\n` or `*N\r\n`.
async fn write_header<W: AsyncWrite + Unpin>(out: &mut W, kind: u8, n: i64) -> io::Result<()> {
    let mut line = [0u8; 24];
    line[0] = kind;
    let mut rest = &mut line[1..];
    write!(rest, "{n}\r\n")?;
    let len = 24 - rest.len();
    out.write_all(&line[..len]).await
}

/// The arguments of one command, borrowed from the read buffer.
struct Args<'a> {
    buf: &'a [u8],
    ranges: &'a [Range<usize>],
}

impl<'a> Args<'a> {
    fn len(&self) -> usize {
        self.ranges.len()
    }

    fn get(&self, i: usize) -> &'a [u8] {
        &self.buf[self.ranges[i].clone()]
    }
}

/// What the connection does after a command.
enum Next {
    /// Sends the reply and goes on.
    Reply(Reply),
    /// Sends `+OK` and closes (`QUIT`).
    Quit,
}

/// `ERR wrong number of arguments for 'NAME' command`.
fn arity(name: &str) -> Reply {
    Reply::Error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// `text` for an error reply: lossy UTF-8, at most 128 bytes as Redis
/// cuts it.
fn quoted(text: &[u8]) -> String {
    String::from_utf8_lossy(&text[..text.len().min(128)]).into_owned()
}

/// Runs one command (`args` not empty) against `db`.
fn execute(args: &Args<'_>, db: &Db) -> Next {
    let name = args.get(0);
    let is = |command: &str| name.eq_ignore_ascii_case(command.as_bytes());
    let n = args.len();
    let reply = if is("get") {
        if n != 2 {
            return Next::Reply(arity("get"));
        }
        let value = lock(db).get(args.get(1)).cloned();
        value.map_or(Reply::Nil, Reply::Bulk)
    } else if is("set") {
        if n < 3 {
            return Next::Reply(arity("set"));
        }
        if n > 3 {
            return Next::Reply(Reply::Error(format!(
                "ERR SET option '{}' is not supported by this server",
                quoted(args.get(3))
            )));
        }
        let key = Bytes::copy_from_slice(args.get(1));
        let value = Bytes::copy_from_slice(args.get(2));
        lock(db).insert(key, value);
        Reply::Simple("OK")
    } else if is("del") {
        if n < 2 {
            return Next::Reply(arity("del"));
        }
        let mut db = lock(db);
        let removed = (1..n).filter(|&i| db.remove(args.get(i)).is_some()).count();
        Reply::Integer(removed as i64)
    } else if is("ping") {
        match n {
            1 => Reply::Simple("PONG"),
            2 => Reply::Bulk(Bytes::copy_from_slice(args.get(1))),
            _ => arity("ping"),
        }
    } else if is("echo") {
        if n != 2 {
            return Next::Reply(arity("echo"));
        }
        Reply::Bulk(Bytes::copy_from_slice(args.get(1)))
    } else if is("dbsize") {
        if n != 1 {
            return Next::Reply(arity("dbsize"));
        }
        Reply::Integer(lock(db).len() as i64)
    } else if is("quit") {
        return Next::Quit;
    } else if is("config") && n == 3 && args.get(1).eq_ignore_ascii_case(b"get") {
        config_get(args.get(2))
    } else {
        let mut beginning = String::new();
        for i in 1..n {
            if beginning.len() >= 128 {
                break;
            }
            beginning.push_str(&format!("'{}' ", quoted(args.get(i))));
        }
        Reply::Error(format!(
            "ERR unknown command '{}', with args beginning with: {beginning}",
            quoted(name)
        ))
    };
    Next::Reply(reply)
}

/// `CONFIG GET parameter`: `save` and `appendonly` (what redis-benchmark
/// asks for) as a server that persists nothing has them; other parameters
/// match nothing, as Redis answers an unknown one.
fn config_get(parameter: &[u8]) -> Reply {
    let value: &'static [u8] = if parameter.eq_ignore_ascii_case(b"save") {
        b""
    } else if parameter.eq_ignore_ascii_case(b"appendonly") {
        b"no"
    } else {
        return Reply::Array(Vec::new());
    };
    let name = Bytes::copy_from_slice(&parameter.to_ascii_lowercase());
    Reply::Array(vec![
        Reply::Bulk(name),
        Reply::Bulk(Bytes::from_static(value)),
    ])
}

/// The map, even if a thread panicked while holding the lock (nothing here
/// can leave it half-changed).
fn lock(db: &Db) -> std::sync::MutexGuard<'_, HashMap<Bytes, Bytes>> {
    db.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Serves one connection until the client closes it or sends `QUIT`.
///
/// Reads into a buffer, executes every complete command in it in order,
/// writes the replies into a `BufWriter` and flushes once the buffer holds
/// no complete command (once per batch of pipelined commands). A malformed
/// request gets a `Protocol error` reply, after the replies to the
/// commands before it; the connection is then closed and the error
/// returned, with kind `InvalidData`.
pub async fn serve<S>(stream: S, db: Db) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut stream = BufWriter::new(stream);
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    let mut ranges = Vec::new();
    loop {
        let mut replied = false;
        loop {
            let consumed = match parse_command(&buf, &mut ranges) {
                Ok(Some(consumed)) => consumed,
                Ok(None) => break,
                Err(err) => {
                    Reply::Error(format!("ERR {err}"))
                        .write_to(&mut stream)
                        .await?;
                    stream.flush().await?;
                    let _ = stream.shutdown().await;
                    return Err(io::Error::new(io::ErrorKind::InvalidData, err));
                }
            };
            let next = if ranges.is_empty() {
                None
            } else {
                let args = Args {
                    buf: &buf,
                    ranges: &ranges,
                };
                Some(execute(&args, &db))
            };
            buf.advance(consumed);
            match next {
                None => {}
                Some(Next::Reply(reply)) => {
                    reply.write_to(&mut stream).await?;
                    replied = true;
                }
                Some(Next::Quit) => {
                    Reply::Simple("OK").write_to(&mut stream).await?;
                    stream.flush().await?;
                    let _ = stream.shutdown().await;
                    return Ok(());
                }
            }
        }
        if replied {
            stream.flush().await?;
        }
        if stream.read_buf(&mut buf).await? == 0 {
            // The client closed its side, perhaps in the middle of a
            // command, which is dropped: nothing to answer.
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes consumed and the arguments, once a command is complete.
    type Parsed<'a> = Option<(usize, Vec<&'a [u8]>)>;

    fn parse(buf: &[u8]) -> Result<Parsed<'_>, ProtocolError> {
        let mut ranges = Vec::new();
        Ok(parse_command(buf, &mut ranges)?
            .map(|n| (n, ranges.iter().map(|r| &buf[r.clone()]).collect())))
    }

    #[test]
    fn parses_arrays_and_inline_commands() {
        let set = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\r\n\r\n";
        assert_eq!(
            parse(set),
            Ok(Some((set.len(), vec![&b"SET"[..], b"k", b"\r\n"])))
        );
        for cut in 0..set.len() {
            assert_eq!(parse(&set[..cut]), Ok(None), "{cut} bytes");
        }
        assert_eq!(parse(b"PING\r\n"), Ok(Some((6, vec![&b"PING"[..]]))));
        assert_eq!(
            parse(b"  SET  a\tb \nGET"),
            Ok(Some((12, vec![&b"SET"[..], b"a", b"b"])))
        );
        assert_eq!(parse(b"\r\n"), Ok(Some((2, vec![]))));
        assert_eq!(parse(b"*0\r\n"), Ok(Some((4, vec![]))));
        assert_eq!(parse(b"PING"), Ok(None));
    }

    #[test]
    fn refuses_malformed_requests() {
        let err = |buf: &[u8]| parse(buf).unwrap_err().to_string();
        assert_eq!(err(b"*x\r\n"), "Protocol error: invalid multibulk length");
        assert_eq!(
            err(b"*1\r\n:1\r\n"),
            "Protocol error: expected '$', got ':'"
        );
        assert_eq!(err(b"*1\r\n$-2\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(
            err(b"*1\r\n$1\r\nab\r\n"),
            "Protocol error: expected CRLF after bulk string"
        );
        assert_eq!(
            err(&vec![b'a'; MAX_INLINE + 1]),
            "Protocol error: too big inline request"
        );
        assert_eq!(
            err(b"*2000000\r\n"),
            "Protocol error: invalid multibulk length"
        );
    }
}
