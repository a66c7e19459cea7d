//! A repository on an `ironvault serve` server (docs/server.md): the
//! location `rest:http(s)://HOST[:PORT]/NAME`, one HTTP request per storage
//! call, a bearer token from `IRONVAULT_TOKEN` or `--token-file`. The server
//! stores through its own backend and enforces the token's role; this
//! client turns its refusals (403) and token errors (401) into one-line
//! errors that name the object and say what to do.
//!
//! Like the S3 backend, the engine is synchronous: the backend owns a small
//! tokio runtime and blocks on it per call.

use super::{Backend, Immutability, ObjectInfo, TransferStats};
use crate::error::{Error, Result};
use serde::Deserialize;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The header carrying an object's modification time in nanoseconds since
/// the Unix epoch, by the server's storage clock (docs/server.md).
pub const MODIFIED_HEADER: &str = "x-ironvault-modified";

/// `clock_skew` before any response gave a `Date`.
const NO_SKEW: i64 = i64::MIN;

/// How to reach a repository server, beyond what the location says.
#[derive(Clone, Debug, Default)]
pub struct RestOptions {
    /// PEM file with extra CA certificates to trust (the server's private CA).
    pub cacert: Option<PathBuf>,
    /// The bearer token; None reads `IRONVAULT_TOKEN`.
    pub token: Option<String>,
}

/// A parsed `rest:http(s)://HOST[:PORT]/NAME` location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestLocation {
    /// scheme://host[:port]
    pub server: String,
    /// The repository's name on the server.
    pub name: String,
}

impl RestLocation {
    pub fn parse(location: &str) -> Result<RestLocation> {
        let usage = || {
            Error::Usage(format!(
                "repository location {location}: expected rest:https://HOST[:PORT]/NAME (NAME: letters, digits, '-', '_', '.')"
            ))
        };
        let rest = location.strip_prefix("rest:").ok_or_else(usage)?;
        let (scheme, after) = rest.split_once("://").ok_or_else(usage)?;
        if scheme != "http" && scheme != "https" {
            return Err(usage());
        }
        let (host, name) = after.split_once('/').ok_or_else(usage)?;
        let name = name.trim_end_matches('/');
        if host.is_empty() || !valid_repo_name(name) {
            return Err(usage());
        }
        Ok(RestLocation {
            server: format!("{scheme}://{host}"),
            name: name.to_string(),
        })
    }
}

/// A repository name as the server accepts it: 1 to 64 of letters, digits,
/// '-', '_', '.', not starting with '.' or '-'.
pub fn valid_repo_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// One entry of a listing, as the server sends it.
#[derive(Deserialize)]
struct ListEntry {
    name: String,
    size: u64,
    modified_ns: u64,
}

/// The server's answer to `GET /-/access/NAME`.
#[derive(Deserialize)]
struct Access {
    role: String,
    delete: bool,
    overwrite: bool,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    puts: AtomicU64,
    gets: AtomicU64,
    lists: AtomicU64,
    deletes: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
}

/// A repository served by `ironvault serve`.
pub struct RestBackend {
    location: String,
    loc: RestLocation,
    client: reqwest::Client,
    token: String,
    rt: tokio::runtime::Runtime,
    stats: Counters,
    skew: AtomicI64,
}

fn time_of_ns(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

fn storage_err(op: &'static str, name: &str, kind: ErrorKind, msg: String) -> Error {
    Error::Storage {
        op,
        name: name.to_string(),
        source: std::io::Error::new(kind, msg),
    }
}

impl RestBackend {
    /// Open `location` (`rest:http(s)://HOST[:PORT]/NAME`).
    pub fn open(location: &str, opts: &RestOptions) -> Result<RestBackend> {
        let loc = RestLocation::parse(location)?;
        let token = match &opts.token {
            Some(t) => t.trim().to_string(),
            None => std::env::var("IRONVAULT_TOKEN")
                .unwrap_or_default()
                .trim()
                .to_string(),
        };
        if token.is_empty() {
            return Err(Error::Usage(format!(
                "{location} needs a token: set IRONVAULT_TOKEN or pass --token-file FILE (the server's admin creates one with 'ironvault serve token add')"
            )));
        }
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(16);
        if let Some(ca) = &opts.cacert {
            let pem = std::fs::read(ca).map_err(|e| Error::Io {
                path: ca.clone(),
                source: e,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "--cacert {}: not a PEM certificate file",
                        ca.display()
                    ))
                })?;
            b = b.tls_certs_merge(certs);
        }
        let client = b.build().map_err(|e| {
            Error::Internal(format!("cannot start the HTTP client for {location}: {e}"))
        })?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ironvault-rest")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the HTTP client runtime: {e}")))?;
        Ok(RestBackend {
            location: location.to_string(),
            loc,
            client,
            token,
            rt,
            stats: Counters::default(),
            skew: NO_SKEW.into(),
        })
    }

    fn url(&self, name: &str) -> String {
        format!("{}/{}/{name}", self.loc.server, self.loc.name)
    }

    /// Send a request, retrying connection failures and busy answers for up
    /// to a minute (every request is idempotent: format.md §1), and turn the
    /// final answer into bytes or a one-line error.
    fn call(
        &self,
        op: &'static str,
        name: &str,
        method: reqwest::Method,
        url: &str,
        range: Option<(u64, u64)>,
        body: Option<&[u8]>,
    ) -> Result<Option<(reqwest::header::HeaderMap, Vec<u8>)>> {
        let start = std::time::Instant::now();
        let mut wait = Duration::from_millis(100);
        loop {
            let r = self.rt.block_on(self.once(&method, url, range, body));
            let retry = match &r {
                Err(e) => !chain_text(e).contains("certificate") && !e.is_builder(),
                // Overloaded or restarting, not a storage error (500).
                Ok((status, _, _)) => matches!(status.as_u16(), 429 | 502 | 503 | 504),
            };
            if retry && start.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(5));
                continue;
            }
            return self.answer(op, name, r);
        }
    }

    async fn once(
        &self,
        method: &reqwest::Method,
        url: &str,
        range: Option<(u64, u64)>,
        body: Option<&[u8]>,
    ) -> reqwest::Result<(reqwest::StatusCode, reqwest::header::HeaderMap, Vec<u8>)> {
        let s = &self.stats;
        s.requests.fetch_add(1, Ordering::Relaxed);
        let mut req = self
            .client
            .request(method.clone(), url)
            .bearer_auth(&self.token);
        if let Some((off, len)) = range {
            req = req.header(
                reqwest::header::RANGE,
                format!("bytes={off}-{}", off + len - 1),
            );
        }
        if let Some(b) = body {
            s.bytes_sent.fetch_add(b.len() as u64, Ordering::Relaxed);
            req = req.body(b.to_vec());
        }
        let resp = req.send().await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        if let Some(skew) = headers
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|d| chrono::DateTime::parse_from_rfc2822(d.trim()).ok())
        {
            self.skew.store(
                skew.timestamp() - chrono::Utc::now().timestamp(),
                Ordering::Relaxed,
            );
        }
        let bytes = resp.bytes().await?.to_vec();
        s.bytes_received
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok((status, headers, bytes))
    }

    fn answer(
        &self,
        op: &'static str,
        name: &str,
        r: reqwest::Result<(reqwest::StatusCode, reqwest::header::HeaderMap, Vec<u8>)>,
    ) -> Result<Option<(reqwest::header::HeaderMap, Vec<u8>)>> {
        let (status, headers, body) = match r {
            Ok(x) => x,
            Err(e) => {
                let text = chain_text(&e);
                let hint = if text.to_ascii_lowercase().contains("certificate") {
                    format!(
                        "the TLS certificate of {} is not trusted; if the server uses a private CA, pass it with --cacert FILE.pem",
                        self.loc.server
                    )
                } else {
                    format!(
                        "cannot reach the repository server {} ({text}); check the URL and that 'ironvault serve' is running, then run the command again",
                        self.loc.server
                    )
                };
                return Err(storage_err(op, name, ErrorKind::Other, hint));
            }
        };
        let reason = || {
            String::from_utf8_lossy(&body)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        };
        match status.as_u16() {
            200..=299 => Ok(Some((headers, body))),
            404 => Ok(None),
            401 => Err(Error::Usage(format!(
                "{}: the server does not accept this token ({}); set IRONVAULT_TOKEN or --token-file to a valid token (an admin creates one with 'ironvault serve token add')",
                self.location,
                reason()
            ))),
            403 => Err(storage_err(
                op,
                name,
                ErrorKind::PermissionDenied,
                format!("refused by {}: {}", self.loc.server, reason()),
            )),
            416 => Err(storage_err(
                op,
                name,
                ErrorKind::UnexpectedEof,
                format!("range beyond the end of the object ({})", reason()),
            )),
            _ => Err(storage_err(
                op,
                name,
                ErrorKind::Other,
                format!("the server answered {status}: {}", reason()),
            )),
        }
    }

    fn not_found(op: &'static str, name: &str) -> Error {
        storage_err(op, name, ErrorKind::NotFound, "no such object".into())
    }
}

fn chain_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}

impl Backend for RestBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn put(&self, name: &str, data: &[u8]) -> Result<()> {
        self.stats.puts.fetch_add(1, Ordering::Relaxed);
        let url = self.url(name);
        self.call("put", name, reqwest::Method::POST, &url, None, Some(data))?
            .map(|_| ())
            .ok_or_else(|| {
                storage_err(
                    "put",
                    name,
                    ErrorKind::NotFound,
                    format!(
                        "repository {} does not exist on {}; an admin token may create it with 'ironvault init'",
                        self.loc.name, self.loc.server
                    ),
                )
            })
    }

    fn get(&self, name: &str) -> Result<Vec<u8>> {
        self.stats.gets.fetch_add(1, Ordering::Relaxed);
        let url = self.url(name);
        match self.call("get", name, reqwest::Method::GET, &url, None, None)? {
            Some((_, body)) => Ok(body),
            None => Err(Self::not_found("get", name)),
        }
    }

    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        self.stats.gets.fetch_add(1, Ordering::Relaxed);
        let url = self.url(name);
        let r = self.call(
            "get",
            name,
            reqwest::Method::GET,
            &url,
            Some((offset, len)),
            None,
        )?;
        match r {
            Some((_, body)) if body.len() as u64 == len => Ok(body),
            Some((_, body)) => Err(storage_err(
                "get",
                name,
                ErrorKind::UnexpectedEof,
                format!(
                    "asked {len} bytes at {offset}, the server sent {}",
                    body.len()
                ),
            )),
            None => Err(Self::not_found("get", name)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.stats.lists.fetch_add(1, Ordering::Relaxed);
        // A listing is a GET of the prefix's directory, with a trailing '/'.
        let dir = match prefix.rsplit_once('/') {
            Some((d, _)) => format!("{d}/"),
            None => String::new(),
        };
        let url = self.url(&dir);
        let Some((_, body)) = self.call("list", prefix, reqwest::Method::GET, &url, None, None)?
        else {
            return Ok(Vec::new());
        };
        let entries: Vec<ListEntry> = serde_json::from_slice(&body).map_err(|e| {
            storage_err(
                "list",
                prefix,
                ErrorKind::InvalidData,
                format!("the server sent a listing that is not JSON ({e})"),
            )
        })?;
        Ok(entries
            .into_iter()
            .filter(|e| e.name.starts_with(prefix))
            .map(|e| ObjectInfo {
                name: e.name,
                size: e.size,
                modified: time_of_ns(e.modified_ns),
            })
            .collect())
    }

    fn delete(&self, name: &str) -> Result<()> {
        self.stats.deletes.fetch_add(1, Ordering::Relaxed);
        let url = self.url(name);
        self.call("delete", name, reqwest::Method::DELETE, &url, None, None)?;
        Ok(())
    }

    fn stat(&self, name: &str) -> Result<Option<ObjectInfo>> {
        self.stats.gets.fetch_add(1, Ordering::Relaxed);
        let url = self.url(name);
        let Some((h, _)) = self.call("stat", name, reqwest::Method::HEAD, &url, None, None)? else {
            return Ok(None);
        };
        let num = |k: &str| {
            h.get(k)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
        let (Some(size), Some(ns)) = (num("x-ironvault-size"), num(MODIFIED_HEADER)) else {
            return Err(storage_err(
                "stat",
                name,
                ErrorKind::InvalidData,
                format!(
                    "{} did not send x-ironvault-size and {MODIFIED_HEADER}: is it an ironvault server?",
                    self.loc.server
                ),
            ));
        };
        Ok(Some(ObjectInfo {
            name: name.to_string(),
            size,
            modified: time_of_ns(ns),
        }))
    }

    fn prefers_large_reads(&self) -> bool {
        true
    }

    fn clock_skew(&self) -> Option<i64> {
        Some(self.skew.load(Ordering::Relaxed)).filter(|&s| s != NO_SKEW)
    }

    fn transfer_stats(&self) -> Option<TransferStats> {
        let s = &self.stats;
        Some(TransferStats {
            requests: s.requests.load(Ordering::Relaxed),
            puts: s.puts.load(Ordering::Relaxed),
            gets: s.gets.load(Ordering::Relaxed),
            lists: s.lists.load(Ordering::Relaxed),
            deletes: s.deletes.load(Ordering::Relaxed),
            bytes_sent: s.bytes_sent.load(Ordering::Relaxed),
            bytes_received: s.bytes_received.load(Ordering::Relaxed),
        })
    }

    fn immutability(&self) -> Result<Option<Immutability>> {
        let url = format!("{}/-/access/{}", self.loc.server, self.loc.name);
        let Some((_, body)) = self.call("access", "", reqwest::Method::GET, &url, None, None)?
        else {
            return Ok(None);
        };
        let a: Access = serde_json::from_slice(&body).map_err(|e| {
            storage_err(
                "access",
                "",
                ErrorKind::InvalidData,
                format!("the server's access answer is not JSON ({e})"),
            )
        })?;
        Ok((!a.delete && !a.overwrite).then_some(Immutability::AppendOnly { role: a.role }))
    }
}
