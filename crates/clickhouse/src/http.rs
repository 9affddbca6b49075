//! A plain HTTP/1.1 client for ClickHouse's HTTP interface, just what upshot needs:
//! one request per connection, a query in the URL, a body, a bounded answer. No
//! `compress=1` (ClickHouse 18.16 answers it with empty bodies), no TLS (put a proxy in
//! front on a real cluster, see docs/deploy-clickhouse.md).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::ClickHouseError;

/// Largest answer read, in bytes.
const ANSWER_BYTES_MAX: usize = 256 << 20;

/// A ClickHouse node: `http://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub host: String,
    pub port: u16,
    pub connect_timeout: Duration,
    pub io_timeout: Duration,
}

impl Node {
    pub fn parse(url: &str) -> Result<Node, ClickHouseError> {
        let bad = || ClickHouseError::Url(url.to_string());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?.trim_end_matches('/');
        let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let port = port.parse().map_err(|_| bad())?;
        if host.is_empty() || host.contains('/') {
            return Err(bad());
        }
        Ok(Node {
            host: host.to_string(),
            port,
            connect_timeout: Duration::from_secs(2),
            io_timeout: Duration::from_secs(60),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    /// Runs `query` with `body` appended (the data of an INSERT, or nothing) and
    /// returns the answer's body.
    pub fn execute(&self, query: &str, body: &[u8]) -> Result<Vec<u8>, ClickHouseError> {
        self.execute_with(query, &[], body)
    }

    /// `execute` with query-level settings (`insert_distributed_sync=1`, ...).
    pub fn execute_with(
        &self,
        query: &str,
        settings: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<u8>, ClickHouseError> {
        let (status, mut reader) = self.send(query, settings, body)?;
        let mut answer = Vec::new();
        reader
            .by_ref()
            .take(ANSWER_BYTES_MAX as u64)
            .read_to_end(&mut answer)
            .map_err(|error| self.unreachable(error))?;
        if status != 200 {
            return Err(self.query_error(status, &answer));
        }
        Ok(answer)
    }

    /// Runs a query whose answer is lines (`FORMAT JSONEachRow`, `TSV`) and hands each
    /// line to `visit` as it arrives: no limit on the answer's size, bounded memory.
    pub fn execute_lines(&self, query: &str, mut visit: impl FnMut(&[u8])) -> Result<(), ClickHouseError> {
        let (status, mut reader) = self.send(query, &[], b"")?;
        if status != 200 {
            let mut answer = Vec::new();
            let _ = reader.by_ref().take(64 << 10).read_to_end(&mut answer);
            return Err(self.query_error(status, &answer));
        }
        let mut reader = BufReader::with_capacity(1 << 20, reader);
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = reader.read_until(b'\n', &mut line).map_err(|error| self.unreachable(error))?;
            if read == 0 {
                return Ok(());
            }
            let trimmed = line.strip_suffix(b"\n").unwrap_or(&line);
            if !trimmed.is_empty() {
                visit(trimmed);
            }
        }
    }

    /// Runs a query and returns a reader of its answer as it arrives (for binary
    /// formats: `FORMAT RowBinary`).
    pub fn execute_reader(&self, query: &str) -> Result<Box<dyn Read>, ClickHouseError> {
        let (status, mut reader) = self.send(query, &[], b"")?;
        if status != 200 {
            let mut answer = Vec::new();
            let _ = reader.by_ref().take(64 << 10).read_to_end(&mut answer);
            return Err(self.query_error(status, &answer));
        }
        Ok(Box::new(BufReader::with_capacity(1 << 20, reader)))
    }

    fn unreachable(&self, error: std::io::Error) -> ClickHouseError {
        ClickHouseError::Unreachable { node: self.url(), reason: error.to_string() }
    }

    fn query_error(&self, status: u16, answer: &[u8]) -> ClickHouseError {
        let message = String::from_utf8_lossy(answer).trim().chars().take(2000).collect();
        ClickHouseError::Query { node: self.url(), status, message }
    }

    /// Sends the request; returns the status and a reader of the answer's body (chunked
    /// transfer decoded).
    fn send(
        &self,
        query: &str,
        settings: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(u16, Box<dyn Read>), ClickHouseError> {
        let address = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|error| self.unreachable(error))?
            .next()
            .ok_or_else(|| ClickHouseError::Unreachable { node: self.url(), reason: "no address".into() })?;
        let mut stream =
            TcpStream::connect_timeout(&address, self.connect_timeout).map_err(|error| self.unreachable(error))?;
        stream.set_read_timeout(Some(self.io_timeout)).map_err(|error| self.unreachable(error))?;
        stream.set_write_timeout(Some(self.io_timeout)).map_err(|error| self.unreachable(error))?;
        // A query without data goes in the body: generated report queries are longer
        // than a URL may be. With data (inserts), the query goes in the URL.
        let (mut path, body) = if body.is_empty() {
            ("/?".to_string(), query.as_bytes())
        } else {
            (format!("/?query={}&", encode(query)), body)
        };
        for (name, value) in settings {
            path.push_str(&format!("{}={}&", encode(name), encode(value)));
        }
        let path = path.trim_end_matches(['&', '?']);
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            self.host,
            self.port,
            body.len()
        );
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body))
            .map_err(|error| self.unreachable(error))?;
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).map_err(|error| self.unreachable(error))?;
        let status: u16 = status_line.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
        let (mut length, mut chunked) = (None, false);
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).map_err(|error| self.unreachable(error))?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = value.trim().parse::<u64>().ok();
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let body: Box<dyn Read> = if chunked {
            Box::new(Chunked { inner: reader, left: 0, done: false })
        } else {
            Box::new(reader.take(length.unwrap_or(u64::MAX)))
        };
        Ok((status, body))
    }
}

/// The body of a chunked answer, as a plain reader.
struct Chunked<R> {
    inner: R,
    /// Bytes left in the current chunk.
    left: usize,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buffer.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            self.inner.read_line(&mut line)?;
            if line == "\r\n" {
                line.clear();
                self.inner.read_line(&mut line)?;
            }
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "a bad chunk size"))?;
            if size == 0 {
                self.done = true;
                return Ok(0);
            }
            self.left = size;
        }
        let wanted = buffer.len().min(self.left);
        let read = self.inner.read(&mut buffer[..wanted])?;
        if read == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the answer was cut off"));
        }
        self.left -= read;
        Ok(read)
    }
}

use upshot_model::site::percent_encode as encode;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_urls_parse_or_are_refused() {
        let node = Node::parse("http://127.0.0.1:8123/").expect("valid");
        assert_eq!((node.host.as_str(), node.port), ("127.0.0.1", 8123));
        assert!(Node::parse("https://x:1").is_err());
        assert!(Node::parse("http://x").is_err());
        assert!(Node::parse("http://:80").is_err());
    }

    #[test]
    fn chunked_answers_are_joined() {
        let input: &[u8] = b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let mut out = Vec::new();
        Chunked { inner: input, left: 0, done: false }.read_to_end(&mut out).expect("valid");
        assert_eq!(out, b"abcde");
    }
}
