//! upshot's client for ClickHouse's HTTP interface, on the maintained `ureq` stack
//! (rustls for TLS, gzip): a node's URL (`http://` or `https://`), the user and password,
//! a CA of one's own, compression, timeouts, retries of requests that failed before the
//! server answered, and each node's `version()` asked once (ADR 0010).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ClickHouseError;

/// Largest answer read whole, in bytes (`execute`; streamed answers have no limit).
const ANSWER_BYTES_MAX: u64 = 256 << 20;
/// Bytes of an error answer kept for the message.
const ERROR_BYTES_MAX: u64 = 64 << 10;
/// Pause before the first retry; doubled for each further one.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Whether requests and answers are compressed (gzip over HTTP: ClickHouse's
/// `enable_http_compression` for answers, `Content-Encoding: gzip` for inserted rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Over https (a network between), not over plain http (loopback or a private
    /// network, where it costs more CPU than it saves time).
    Auto,
    Gzip,
    None,
}

impl Compression {
    pub fn parse(text: &str) -> Result<Compression, ClickHouseError> {
        match text {
            "auto" => Ok(Compression::Auto),
            "gzip" => Ok(Compression::Gzip),
            "none" => Ok(Compression::None),
            other => Err(ClickHouseError::Option(format!("compression {other:?} is not auto, gzip or none"))),
        }
    }
}

/// How a node is reached: the same for every node of a cluster (the shards' nodes that
/// `init` registered are reached with the options of the node given).
#[derive(Clone)]
pub struct ClientOptions {
    /// ClickHouse's user (`default` when none).
    pub user: Option<String>,
    pub password: Option<String>,
    /// PEM certificates trusted for https instead of the web's public roots (a
    /// cluster's own CA).
    pub ca_pem: Option<Vec<u8>>,
    pub compression: Compression,
    pub connect_timeout: Duration,
    /// The longest wait for any one read or write of a request.
    pub io_timeout: Duration,
    /// The longest wait for a streamed answer's first and each later read (`execute_reader`:
    /// a site's events sorted for a build of day partials arrive only once sorted).
    pub answer_timeout: Duration,
    /// Attempts after the first for a request that never reached the server (refused,
    /// reset, timed out connecting). A query ClickHouse answered with an error is not
    /// retried.
    pub retries: u32,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password is a secret: never in a log line.
        formatter
            .debug_struct("ClientOptions")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .field("compression", &self.compression)
            .field("connect_timeout", &self.connect_timeout)
            .field("io_timeout", &self.io_timeout)
            .field("answer_timeout", &self.answer_timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            user: None,
            password: None,
            ca_pem: None,
            compression: Compression::Auto,
            connect_timeout: Duration::from_secs(2),
            io_timeout: Duration::from_secs(60),
            answer_timeout: Duration::from_secs(1800),
            retries: 2,
        }
    }
}

/// What every node of a cluster shares: the agent (its connection pool and TLS) and
/// how requests are made.
struct Client {
    agent: ureq::Agent,
    authorization: Option<String>,
    retries: u32,
    answer_timeout: Duration,
    /// Each node's `version()` (by URL), asked once.
    versions: Mutex<HashMap<String, ServerVersion>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The authorization is a secret: never in a log line.
        formatter.debug_struct("Client").field("retries", &self.retries).finish_non_exhaustive()
    }
}

/// A ClickHouse node: `http://host:port` or `https://host:port`.
#[derive(Debug, Clone)]
pub struct Node {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    compress: bool,
    client: Arc<Client>,
}

impl PartialEq for Node {
    fn eq(&self, other: &Node) -> bool {
        self.url() == other.url()
    }
}

impl Eq for Node {}

/// A ClickHouse server's version, as `version()` says it (`18.16.1`, `26.9.2.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion {
    pub major: u32,
    pub minor: u32,
}

impl ServerVersion {
    pub fn parse(text: &str) -> Option<ServerVersion> {
        let mut parts = text.trim().trim_matches('"').split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(ServerVersion { major, minor })
    }
}

impl Node {
    /// A node reached with the default options (plain http needs no more).
    pub fn parse(url: &str) -> Result<Node, ClickHouseError> {
        Node::parse_with(url, &ClientOptions::default())
    }

    /// A node reached with `options`; a user and password in the URL
    /// (`https://user:password@host:8443`) take the place of the options' ones.
    pub fn parse_with(url: &str, options: &ClientOptions) -> Result<Node, ClickHouseError> {
        let address = Address::parse(url)?;
        let mut options = options.clone();
        if let Some((user, password)) = address.credentials {
            options.user = Some(user);
            if !password.is_empty() {
                options.password = Some(password);
            }
        }
        let client = Arc::new(Client::new(&options)?);
        let compress = match options.compression {
            Compression::Auto => address.tls,
            Compression::Gzip => true,
            Compression::None => false,
        };
        Ok(Node { tls: address.tls, host: address.host, port: address.port, compress, client })
    }

    /// Another node of the same cluster (a registered shard node's URL), reached the way
    /// this one is, with its agent and credentials: refused when the URL holds
    /// credentials of its own or would take this node's credentials from https to plain
    /// http.
    pub fn sibling(&self, url: &str) -> Result<Node, ClickHouseError> {
        let address = Address::parse(url)?;
        if address.credentials.is_some() || (self.tls && !address.tls) {
            return Err(ClickHouseError::Url(redact(url)));
        }
        Ok(Node {
            tls: address.tls,
            host: address.host,
            port: address.port,
            compress: self.compress,
            client: self.client.clone(),
        })
    }

    /// The node's URL, without credentials.
    pub fn url(&self) -> String {
        format!("{}://{}:{}", if self.tls { "https" } else { "http" }, self.host, self.port)
    }

    /// The server's version, asked once per node (and remembered for every node of the
    /// cluster by URL); an error is not kept (asked again next time).
    pub fn server_version(&self) -> Result<ServerVersion, ClickHouseError> {
        let known = self.client.versions.lock().expect("no thread panics while holding it").get(&self.url()).copied();
        if let Some(version) = known {
            return Ok(version);
        }
        let answer = self.execute("SELECT version() FORMAT TSV", b"")?;
        let text = String::from_utf8_lossy(&answer);
        let version = ServerVersion::parse(&text).ok_or_else(|| ClickHouseError::BadRow {
            node: self.url(),
            reason: format!("version() answered {:?}", text.trim()),
        })?;
        self.client.versions.lock().expect("no thread panics while holding it").insert(self.url(), version);
        Ok(version)
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
        let mut answer = Vec::new();
        self.send(query, settings, body)?
            .take(ANSWER_BYTES_MAX)
            .read_to_end(&mut answer)
            .map_err(|error| self.unreachable(error.to_string()))?;
        Ok(answer)
    }

    /// Runs a query whose answer is lines (`FORMAT JSONEachRow`, `TSV`) and hands each
    /// line to `visit` as it arrives: no limit on the answer's size, bounded memory.
    pub fn execute_lines(&self, query: &str, mut visit: impl FnMut(&[u8])) -> Result<(), ClickHouseError> {
        let mut reader = BufReader::with_capacity(1 << 20, self.send(query, &[], b"")?);
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = reader.read_until(b'\n', &mut line).map_err(|error| self.unreachable(error.to_string()))?;
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
    pub fn execute_reader(&self, query: &str) -> Result<Box<dyn Read + Send>, ClickHouseError> {
        Ok(Box::new(BufReader::with_capacity(1 << 20, self.send_waiting(query, &[], b"", true)?)))
    }

    fn unreachable(&self, reason: String) -> ClickHouseError {
        ClickHouseError::Unreachable { node: self.url(), reason }
    }

    /// Sends the request (again, after a pause, when it never reached the server) and
    /// returns a reader of a successful answer's body; an error status is read into
    /// `ClickHouseError::Query`.
    fn send(
        &self,
        query: &str,
        settings: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Box<dyn Read + Send>, ClickHouseError> {
        self.send_waiting(query, settings, body, false)
    }

    /// `send`, waiting up to the answer timeout for each read when `long_answer`.
    fn send_waiting(
        &self,
        query: &str,
        settings: &[(&str, &str)],
        body: &[u8],
        long_answer: bool,
    ) -> Result<Box<dyn Read + Send>, ClickHouseError> {
        // A query without data goes in the body: generated report queries are longer
        // than a URL may be. With data (inserts), the query goes in the URL.
        let (mut parameters, payload): (Vec<(&str, &str)>, &[u8]) =
            if body.is_empty() { (Vec::new(), query.as_bytes()) } else { (vec![("query", query)], body) };
        parameters.extend_from_slice(settings);
        if self.compress {
            parameters.push(("enable_http_compression", "1"));
        }
        let compressed = if self.compress { Some(gzip(payload)) } else { None };
        let payload = compressed.as_deref().unwrap_or(payload);
        let mut attempt = 0;
        loop {
            let mut request = self.client.agent.post(format!("{}/", self.url()));
            for (name, value) in &parameters {
                request = request.query(*name, *value);
            }
            if let Some(authorization) = &self.client.authorization {
                request = request.header("Authorization", authorization);
            }
            if compressed.is_some() {
                request = request.header("Content-Encoding", "gzip");
            }
            if long_answer {
                request = request.config().timeout_per_read(Some(self.client.answer_timeout)).build();
            }
            match request.send(payload) {
                Ok(response) => return self.answer(response),
                Err(error) if attempt < self.client.retries && never_reached(&error) => {
                    tracing::debug!(node = %self.url(), %error, attempt, "a ClickHouse request is sent again");
                    std::thread::sleep(RETRY_PAUSE * 2u32.pow(attempt));
                    attempt += 1;
                }
                Err(error) if attempt > 0 => {
                    return Err(self.unreachable(format!("{error} (after {} attempts)", attempt + 1)));
                }
                Err(error) => return Err(self.unreachable(error.to_string())),
            }
        }
    }

    fn answer(&self, response: ureq::http::Response<ureq::Body>) -> Result<Box<dyn Read + Send>, ClickHouseError> {
        let status = response.status().as_u16();
        let reader = response.into_body().into_with_config().limit(u64::MAX).reader();
        if status == 200 {
            return Ok(Box::new(reader));
        }
        let mut answer = Vec::new();
        let _ = reader.take(ERROR_BYTES_MAX).read_to_end(&mut answer);
        let message = String::from_utf8_lossy(&answer).trim().chars().take(2000).collect();
        Err(ClickHouseError::Query { node: self.url(), status, message })
    }
}

impl Client {
    fn new(options: &ClientOptions) -> Result<Client, ClickHouseError> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(pem) = &options.ca_pem {
            let certificates = ureq::tls::parse_pem(pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(certificate)) => Some(Ok(certificate)),
                    Ok(_) => None,
                    Err(error) => Some(Err(error)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| {
                    ClickHouseError::Option(format!(
                        "the CA file (--clickhouse-ca-file) does not read as PEM ({error}); give the CA's certificate file"
                    ))
                })?;
            if certificates.is_empty() {
                return Err(ClickHouseError::Option(
                    "the CA file (--clickhouse-ca-file) holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the \
                     CA's certificate file"
                        .into(),
                ));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certificates));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls.build())
            .timeout_connect(Some(options.connect_timeout))
            .timeout_resolve(Some(options.connect_timeout))
            .timeout_per_read(Some(options.io_timeout))
            .timeout_per_write(Some(options.io_timeout))
            .max_redirects(0)
            .user_agent(concat!("upshot/", env!("CARGO_PKG_VERSION")))
            .build();
        // A password without a user is the `default` user's.
        let user = options.user.clone().or_else(|| options.password.as_ref().map(|_| "default".to_string()));
        let authorization = user.map(|user| {
            use base64::Engine;
            let credentials = format!("{user}:{}", options.password.as_deref().unwrap_or(""));
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials))
        });
        Ok(Client {
            agent: ureq::Agent::new_with_config(config),
            authorization,
            retries: options.retries,
            answer_timeout: options.answer_timeout,
            versions: Mutex::new(HashMap::new()),
        })
    }
}

/// Whether a request failed before the server could have acted on it, so that sending
/// it again cannot do anything twice that the first did once.
fn never_reached(error: &ureq::Error) -> bool {
    match error {
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => true,
        ureq::Error::Timeout(timeout) => {
            matches!(timeout, ureq::Timeout::Connect | ureq::Timeout::Resolve)
        }
        ureq::Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound | std::io::ErrorKind::AddrNotAvailable
        ),
        _ => false,
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 4), flate2::Compression::fast());
    encoder.write_all(bytes).expect("writing to memory does not fail");
    encoder.finish().expect("writing to memory does not fail")
}

/// A URL for messages: what precedes an `@` (credentials) and any query (which may
/// hold `password=`) are left out.
fn redact(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    match url.rfind('@') {
        Some(at) => {
            let scheme_end = url.find("//").map_or(0, |slash| slash + 2);
            format!("{}***{}", &url[..scheme_end.min(at)], &url[at..])
        }
        None => url.to_string(),
    }
}

/// A node's URL taken apart.
struct Address {
    tls: bool,
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
}

impl Address {
    fn parse(url: &str) -> Result<Address, ClickHouseError> {
        let bad = || ClickHouseError::Url(redact(url));
        let (tls, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => return Err(bad()),
        };
        let rest = rest.trim_end_matches('/');
        let (credentials, address) = match rest.rsplit_once('@') {
            Some((credentials, address)) => {
                let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
                (Some((user.to_string(), password.to_string())), address)
            }
            None => (None, rest),
        };
        let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
        let port = port.parse().map_err(|_| bad())?;
        if host.is_empty() || host.contains(['/', '?', '#']) {
            return Err(bad());
        }
        Ok(Address { tls, host: host.to_string(), port, credentials })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_urls_parse_or_are_refused() {
        let node = Node::parse("http://127.0.0.1:8123/").expect("valid");
        assert_eq!((node.host.as_str(), node.port, node.tls), ("127.0.0.1", 8123, false));
        let secure = Node::parse("https://reader:s3cret@ch.example:8443").expect("valid");
        assert_eq!(secure.url(), "https://ch.example:8443");
        assert!(secure.compress, "compression is on by default over https");
        assert!(!node.compress, "and off over plain http");
        assert!(Node::parse("ftp://x:1").is_err());
        assert!(Node::parse("http://x").is_err());
        assert!(Node::parse("http://:80").is_err());
    }

    #[test]
    fn a_password_never_shows_in_a_message() {
        let error = Node::parse("https://reader:s3cret@ch.example").expect_err("no port");
        assert!(!error.to_string().contains("s3cret"), "{error}");
        assert!(!format!("{:?}", Node::parse("https://reader:s3cret@h:1").expect("valid")).contains("s3cret"));
    }

    #[test]
    fn urls_in_messages_lose_credentials_and_queries() {
        assert_eq!(redact("https://u:p@h:1"), "https://***@h:1");
        assert_eq!(redact("https//u:p@h:1"), "https//***@h:1");
        assert_eq!(redact("http://h:8123/?password=x"), "http://h:8123/");
        assert_eq!(redact("u:p@h"), "***@h");
    }

    #[test]
    fn a_sibling_keeps_the_scheme_and_takes_no_credentials_of_its_own() {
        let node = Node::parse("https://reader:s3cret@h:8443").expect("valid");
        assert!(node.sibling("https://other:8443").is_ok());
        assert!(node.sibling("http://other:8123").is_err(), "https credentials never go over http");
        assert!(node.sibling("https://x:y@other:8443").is_err());
    }

    #[test]
    fn versions_read_as_clickhouse_writes_them() {
        assert_eq!(ServerVersion::parse("18.16.1\n"), Some(ServerVersion { major: 18, minor: 16 }));
        assert_eq!(ServerVersion::parse("26.9.2.1"), Some(ServerVersion { major: 26, minor: 9 }));
        assert_eq!(ServerVersion::parse("unknown"), None);
    }

    #[test]
    fn a_missing_ca_file_content_is_refused_with_the_reason() {
        let options = ClientOptions { ca_pem: Some(b"not a certificate".to_vec()), ..ClientOptions::default() };
        let error = Node::parse_with("https://h:1", &options).expect_err("no certificate");
        assert!(error.to_string().contains("CA file"), "{error}");
    }
}
