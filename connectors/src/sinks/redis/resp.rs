//! A minimal Redis client: RESP2 over one TCP (or TLS) connection, commands sent as one pipeline
//! and their replies read in order. Enough for a sink that writes batches in MULTI/EXEC.

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A byte stream: plain TCP or TLS over it.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`
    Status(String),
    /// `-ERR ...`
    Error(String),
    /// `:42`
    Int(i64),
    /// `$n` bulk string (`None`: nil).
    Bulk(Option<Vec<u8>>),
    /// `*n` array (`None`: nil, e.g. an aborted EXEC).
    Array(Option<Vec<Reply>>),
}

/// An I/O or protocol failure (the connection is no longer usable).
#[derive(Debug, thiserror::Error)]
pub enum RespError {
    /// Network.
    #[error("redis connection: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent something that is not RESP.
    #[error("redis protocol: {0}")]
    Protocol(String),
}

/// One connection.
pub struct Conn {
    stream: BufReader<Box<dyn Stream>>,
}

/// Appends one command in RESP.
pub fn encode(args: &[&[u8]], out: &mut Vec<u8>) {
    header(out, b'*', args.len());
    for a in args {
        bulk(a, out);
    }
}

/// Appends an array header `*<n>` (a command of `n` arguments follows as bulk strings).
pub fn array(n: usize, out: &mut Vec<u8>) {
    header(out, b'*', n);
}

/// Appends one bulk string (`$<len>`, the bytes).
pub fn bulk(arg: &[u8], out: &mut Vec<u8>) {
    header(out, b'$', arg.len());
    out.extend_from_slice(arg);
    out.extend_from_slice(b"\r\n");
}

/// The decimal digits of `n`, written into `buf`.
fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// `*<n>\r\n` or `$<n>\r\n`, the digits written by hand (`write!` was an eighth of the sink's CPU).
fn header(out: &mut Vec<u8>, kind: u8, n: usize) {
    let mut digits = [0u8; 20];
    out.push(kind);
    out.extend_from_slice(decimal(n, &mut digits));
    out.extend_from_slice(b"\r\n");
}

impl Conn {
    /// Connects to `host:port`; with `tls`, over TLS checked against `server_name`.
    pub async fn connect(addr: &str, tls: Option<(Arc<rustls::ClientConfig>, &str)>) -> Result<Conn, RespError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let stream: Box<dyn Stream> = match tls {
            None => Box::new(stream),
            Some((config, server_name)) => {
                let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).map_err(|e| {
                    RespError::Io(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("TLS server name {server_name:?}: {e}"),
                    ))
                })?;
                Box::new(tokio_rustls::TlsConnector::from(config).connect(name, stream).await?)
            }
        };
        Ok(Conn { stream: BufReader::new(stream) })
    }

    /// Sends pre-encoded commands and reads `n` replies.
    pub async fn pipeline(&mut self, encoded: &[u8], n: usize) -> Result<Vec<Reply>, RespError> {
        self.send(encoded).await?;
        self.replies(n).await
    }

    /// Sends pre-encoded commands without reading their replies.
    pub async fn send(&mut self, encoded: &[u8]) -> Result<(), RespError> {
        let stream = self.stream.get_mut();
        stream.write_all(encoded).await?;
        // TLS: rustls may hold written records until flushed; without this a pipeline whose
        // tail (EXEC) sat in that buffer would wait for replies forever. A no-op on plain TCP.
        Ok(stream.flush().await?)
    }

    /// Reads `n` replies.
    pub async fn replies(&mut self, n: usize) -> Result<Vec<Reply>, RespError> {
        let mut replies = Vec::with_capacity(n);
        for _ in 0..n {
            replies.push(self.read().await?);
        }
        Ok(replies)
    }

    /// Reads the next reply.
    pub async fn reply(&mut self) -> Result<Reply, RespError> {
        self.read().await
    }

    /// Reads the next reply, expected to be a status such as `+QUEUED`: `Some` with the message
    /// if it is an error. The common `+QUEUED` and `+OK` are taken straight from the buffer.
    pub async fn skip_status(&mut self) -> Result<Option<String>, RespError> {
        let buf = self.stream.fill_buf().await?;
        for status in [&b"+QUEUED\r\n"[..], b"+OK\r\n"] {
            if buf.starts_with(status) {
                self.stream.consume(status.len());
                return Ok(None);
            }
        }
        match self.read().await? {
            Reply::Error(e) => Ok(Some(e)),
            _ => Ok(None),
        }
    }

    /// One command.
    pub async fn call(&mut self, args: &[&[u8]]) -> Result<Reply, RespError> {
        let mut buf = Vec::new();
        encode(args, &mut buf);
        Ok(self.pipeline(&buf, 1).await?.remove(0))
    }

    async fn line(&mut self) -> Result<String, RespError> {
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            return Err(RespError::Protocol("the server closed the connection".into()));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    fn read(&mut self) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply, RespError>> + Send + '_>> {
        Box::pin(async move {
            let line = self.line().await?;
            let (kind, rest) = line.split_at(line.len().min(1));
            let int = |s: &str| s.parse::<i64>().map_err(|_| RespError::Protocol(format!("bad length {s:?}")));
            Ok(match kind {
                "+" => Reply::Status(rest.to_string()),
                "-" => Reply::Error(rest.to_string()),
                ":" => Reply::Int(int(rest)?),
                "$" => match int(rest)? {
                    n if n < 0 => Reply::Bulk(None),
                    n => {
                        let mut buf = vec![0; n as usize + 2];
                        self.stream.read_exact(&mut buf).await?;
                        buf.truncate(n as usize);
                        Reply::Bulk(Some(buf))
                    }
                },
                "*" => match int(rest)? {
                    n if n < 0 => Reply::Array(None),
                    n => {
                        let mut items = Vec::with_capacity(n as usize);
                        for _ in 0..n {
                            items.push(self.read().await?);
                        }
                        Reply::Array(Some(items))
                    }
                },
                _ => return Err(RespError::Protocol(format!("unexpected reply {line:?}"))),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands() {
        let mut out = Vec::new();
        encode(&[b"SET", b"k", b"v 1"], &mut out);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv 1\r\n");
        let long = vec![b'x'; 1234];
        let mut out = Vec::new();
        encode(&[&long, b""], &mut out);
        assert!(out.starts_with(b"*2\r\n$1234\r\nxx"));
        assert!(out.ends_with(b"xx\r\n$0\r\n\r\n"));
        let mut out = Vec::new();
        array(10_007, &mut out);
        bulk(b"0", &mut out);
        assert_eq!(out, b"*10007\r\n$1\r\n0\r\n");
    }
}
