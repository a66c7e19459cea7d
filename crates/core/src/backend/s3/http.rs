//! The HTTP layer under object_store: request and byte counters, the first-retry notice,
//! the server's clock (each response's `Date`), rate limits, and a resolver
//! that knows RFC 6761 `*.localhost` names.

use super::{chain_text, root_cause, RetryNotice};
use crate::sync::Locked;
use async_trait::async_trait;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpService,
    ReqwestConnector,
};
use object_store::ClientOptions;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Spaces requests so that bytes move at no more than a set rate on average.
#[derive(Debug)]
pub(super) struct RateLimit {
    bytes_per_sec: f64,
    next_free: Mutex<Instant>,
}

impl RateLimit {
    pub(super) fn new(kib_per_sec: Option<u64>) -> Option<RateLimit> {
        kib_per_sec.filter(|&k| k > 0).map(|k| RateLimit {
            bytes_per_sec: k as f64 * 1024.0,
            next_free: Mutex::new(Instant::now()),
        })
    }

    /// How long to wait before moving `bytes`: reserve their share of time
    /// after whatever was reserved before.
    pub(super) fn reserve(&self, bytes: u64, now: Instant) -> Duration {
        let cost = Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec);
        let mut next = self.next_free.locked();
        let start = (*next).max(now);
        *next = start + cost;
        (start + cost).saturating_duration_since(now)
    }
}

/// The system resolver, except that every name under `localhost` is the
/// loopback address, as RFC 6761 asks (glibc resolves only `localhost`
/// itself; virtual-host addressing of a local server needs BUCKET.localhost).
#[derive(Debug)]
pub(super) struct LocalhostAwareResolver;

impl object_store::client::DnsResolver for LocalhostAwareResolver {
    fn resolve(&self, host: &str) -> object_store::client::DnsFuture {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        Box::pin(async move {
            if host == "localhost" || host.ends_with(".localhost") {
                return Ok(vec![
                    std::net::IpAddr::from([127, 0, 0, 1]),
                    std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
                ]);
            }
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// Wraps the HTTP client: counts requests and bytes, reports the first retry.
struct MeteredService {
    inner: HttpClient,
    stats: Arc<Counters>,
    on_retry: Option<RetryNotice>,
    told: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for MeteredService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MeteredService")
    }
}

impl MeteredService {
    fn tell(&self, what: &str) {
        if let Some(cb) = &self.on_retry {
            if !self.told.swap(true, Ordering::Relaxed) {
                cb(what);
            }
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) requests: AtomicU64,
    pub(super) puts: AtomicU64,
    pub(super) gets: AtomicU64,
    pub(super) lists: AtomicU64,
    pub(super) deletes: AtomicU64,
    pub(super) other: AtomicU64,
    pub(super) bytes_sent: AtomicU64,
    pub(super) bytes_received: AtomicU64,
    /// The server's clock minus ours, in whole seconds, from the `Date` of
    /// the last response that had one; `NO_SKEW` until then.
    pub(super) skew: AtomicI64,
}

/// `Counters::skew` before any response gave a `Date`.
pub(super) const NO_SKEW: i64 = i64::MIN;

/// The server's clock minus ours, in whole seconds, from an HTTP `Date`
/// header (RFC 9110 IMF-fixdate, which RFC 2822 parsing accepts).
pub(super) fn skew_from_date(date: &str, now: chrono::DateTime<chrono::Utc>) -> Option<i64> {
    let server = chrono::DateTime::parse_from_rfc2822(date.trim()).ok()?;
    Some(server.timestamp() - now.timestamp())
}

#[async_trait]
impl HttpService for MeteredService {
    async fn call(&self, req: HttpRequest) -> std::result::Result<HttpResponse, HttpError> {
        let c = &self.stats;
        c.requests.fetch_add(1, Ordering::Relaxed);
        let method = req.method().clone();
        let query = req.uri().query().unwrap_or("").to_string();
        let counter = match method.as_str() {
            "POST" if query.starts_with("delete") => &c.deletes,
            "PUT" | "POST" => &c.puts,
            "GET" if query.contains("list-type") || query.contains("prefix=") => &c.lists,
            "GET" => &c.gets,
            "DELETE" => &c.deletes,
            _ => &c.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let sent = req.body().content_length() as u64;
        c.bytes_sent.fetch_add(sent, Ordering::Relaxed);
        let resp = match self.inner.execute(req).await {
            // An untrusted certificate will not become trusted by retrying:
            // fail at once (object_store retries connection errors).
            Err(e) if chain_text(&e).to_ascii_lowercase().contains("certificate") => {
                return Err(HttpError::new(HttpErrorKind::Unknown, e));
            }
            Err(e) => {
                self.tell(&root_cause(&e));
                return Err(e);
            }
            Ok(r) => r,
        };
        if resp.status().is_server_error() || resp.status().as_u16() == 429 {
            self.tell(&format!("the server answered {}", resp.status()));
        }
        let received = if method == http::Method::HEAD {
            0
        } else {
            resp.headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        c.bytes_received.fetch_add(received, Ordering::Relaxed);
        if let Some(skew) = resp
            .headers()
            .get(http::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|d| skew_from_date(d, chrono::Utc::now()))
        {
            c.skew.store(skew, Ordering::Relaxed);
        }
        Ok(resp)
    }
}

/// Builds the metered client for object_store.
pub(super) struct MeteredConnector {
    pub(super) stats: Arc<Counters>,
    pub(super) on_retry: Option<RetryNotice>,
}

impl std::fmt::Debug for MeteredConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MeteredConnector")
    }
}

impl HttpConnector for MeteredConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(MeteredService {
            inner,
            stats: self.stats.clone(),
            on_retry: self.on_retry.clone(),
            told: Default::default(),
        }))
    }
}

/// Wait for the rate limit's share of time for `bytes` (no limit: no wait).
pub(super) fn pace(limit: &Option<RateLimit>, bytes: usize) {
    if let Some(l) = limit {
        std::thread::sleep(l.reserve(bytes as u64, Instant::now()));
    }
}
