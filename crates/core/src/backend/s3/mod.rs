//! S3-compatible object storage (AWS, Ceph RGW, MinIO, Garage, IBM Cloud
//! Object Storage) through the `object_store` crate, which brings request
//! signing, retries with backoff on 5xx/429/timeouts, paged listings and
//! multipart uploads. This module adds what a backup needs on top: the
//! `s3:` location syntax, credentials from the environment or a profile file,
//! a private CA, bounded parallel requests, upload/download rate limits,
//! request and byte counters, and error messages that say what to do.
//!
//! The engine is synchronous; each backend owns a small tokio runtime and
//! blocks on it per call, so any number of engine threads may call at once.

mod credentials;
mod http;
mod lock;
mod sigv4;
#[cfg(test)]
mod tests;

use super::{Backend, ObjectInfo, TransferStats};
use crate::error::{Error, Result};
use credentials::find_credentials;
use futures_util::TryStreamExt;
use http::{pace, Counters, LocalhostAwareResolver, MeteredConnector, RateLimit, NO_SKEW};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::client::{Certificate, HttpConnector};
use object_store::limit::LimitStore;
use object_store::path::Path as OsPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Objects larger than this are uploaded in parts.
pub const MULTIPART_THRESHOLD: usize = 24 << 20;
/// Size of each part of a multipart upload (S3 requires at least 5 MiB).
pub const PART_SIZE: usize = 8 << 20;

/// Called with the cause when a request failed and will be retried.
pub type RetryNotice = Arc<dyn Fn(&str) + Send + Sync>;

/// How to reach S3, beyond what the location says.
#[derive(Clone)]
pub struct S3Options {
    /// PEM file with extra CA certificates to trust (a private CA).
    pub cacert: Option<PathBuf>,
    /// Upload limit in KiB/s.
    pub limit_upload: Option<u64>,
    /// Download limit in KiB/s.
    pub limit_download: Option<u64>,
    /// Requests in flight at most.
    pub connections: usize,
    /// Address the bucket as BUCKET.HOST (virtual-host style) instead of HOST/BUCKET.
    pub virtual_host: bool,
    /// Give up on a request after this many retries ...
    pub max_retries: usize,
    /// ... or after this long.
    pub retry_timeout: Duration,
    /// Objects larger than this are uploaded in parts of `part_size`.
    pub multipart_threshold: usize,
    pub part_size: usize,
    /// Keep a local metadata cache under this directory (see cache.rs).
    pub cache: Option<PathBuf>,
    /// Told (once per backend) when a request failed and is being retried,
    /// so a user waiting for the retry timeout knows why.
    pub on_retry: Option<RetryNotice>,
    /// The bearer token for a `rest:` location (an `ironvault serve`
    /// server); None reads `IRONVAULT_TOKEN`.
    pub token: Option<String>,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("cacert", &self.cacert)
            .field("connections", &self.connections)
            .field("virtual_host", &self.virtual_host)
            .field("retry_timeout", &self.retry_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            cacert: None,
            limit_upload: None,
            limit_download: None,
            connections: 8,
            virtual_host: false,
            max_retries: 1000,
            retry_timeout: Duration::from_secs(180),
            multipart_threshold: MULTIPART_THRESHOLD,
            part_size: PART_SIZE,
            cache: None,
            on_retry: None,
            token: None,
        }
    }
}

/// A parsed `s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]` location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    /// scheme://host[:port]
    pub endpoint: String,
    pub bucket: String,
    /// Key prefix without leading or trailing slashes ("" for none).
    pub prefix: String,
}

impl S3Location {
    pub fn parse(location: &str) -> Result<S3Location> {
        let usage = || {
            Error::Usage(format!(
                "S3 location {location}: expected s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]"
            ))
        };
        let rest = location.strip_prefix("s3:").ok_or_else(usage)?;
        let (scheme, after) = rest.split_once("://").ok_or_else(usage)?;
        if scheme != "http" && scheme != "https" {
            return Err(usage());
        }
        let (host, path) = after.split_once('/').ok_or_else(usage)?;
        let mut parts = path.trim_matches('/').splitn(2, '/');
        let bucket = parts.next().unwrap_or("").to_string();
        let prefix = parts.next().unwrap_or("").trim_matches('/').to_string();
        if host.is_empty() || bucket.is_empty() {
            return Err(usage());
        }
        // Keys must be stored exactly as format.md names them: refuse what an
        // S3 client would have to escape.
        let plain = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        if !bucket.chars().all(plain)
            || !prefix
                .split('/')
                .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && seg.chars().all(plain))
                && !prefix.is_empty()
        {
            return Err(Error::Usage(format!(
                "S3 location {location}: bucket and prefix may use only letters, digits, '-', '_', '.' and '/' between parts"
            )));
        }
        Ok(S3Location {
            endpoint: format!("{scheme}://{host}"),
            bucket,
            prefix,
        })
    }
}

/// A repository in an S3 bucket (under an optional key prefix).
pub struct S3Backend {
    location: String,
    loc: S3Location,
    store: LimitStore<AmazonS3>,
    rt: tokio::runtime::Runtime,
    stats: Arc<Counters>,
    opts: S3Options,
    /// Rate limits, applied before a request is made (so it is signed only
    /// when it may go) and after a download completes (so waiting never
    /// counts against the request timeout).
    up: Option<RateLimit>,
    down: Option<RateLimit>,
    /// Object Lock and version requests object_store does not make.
    lock: lock::LockApi,
}

impl S3Backend {
    /// Open `location` (`s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]`).
    pub fn open(location: &str, opts: &S3Options) -> Result<S3Backend> {
        Self::open_with_env(location, opts, &|k| std::env::var(k).ok())
    }

    fn open_with_env(
        location: &str,
        opts: &S3Options,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<S3Backend> {
        let loc = S3Location::parse(location)?;
        let creds = find_credentials(env)?;
        // Virtual-host style puts the bucket in the host name: BUCKET.HOST.
        let endpoint = if opts.virtual_host {
            let (scheme, host) = loc.endpoint.split_once("://").unwrap_or(("https", ""));
            format!("{scheme}://{}.{host}", loc.bucket)
        } else {
            loc.endpoint.clone()
        };
        let mut client = ClientOptions::new()
            .with_dns_resolver(Arc::new(LocalhostAwareResolver))
            .with_allow_http(loc.endpoint.starts_with("http://"))
            .with_connect_timeout(Duration::from_secs(10))
            .with_timeout(Duration::from_secs(120));
        if let Some(ca) = &opts.cacert {
            let pem = std::fs::read(ca).map_err(|e| Error::Io {
                path: ca.clone(),
                source: e,
            })?;
            let certs = Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::Usage(format!(
                    "--cacert {}: not a PEM certificate file ({e})",
                    ca.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(Error::Usage(format!(
                    "--cacert {}: not a PEM certificate file (no certificate in it)",
                    ca.display()
                )));
            }
            for c in certs {
                client = client.with_root_certificate(c);
            }
        }
        let stats = Arc::new(Counters {
            skew: NO_SKEW.into(),
            ..Counters::default()
        });
        let lock = lock::LockApi {
            client: MeteredConnector {
                stats: stats.clone(),
                on_retry: None,
            }
            .connect(&client)
            .map_err(|e| Error::Usage(format!("S3 location {location}: {e}")))?,
            endpoint: loc.endpoint.clone(),
            bucket: loc.bucket.clone(),
            virtual_host: opts.virtual_host,
            key_id: creds.key_id.clone(),
            secret: creds.secret.clone(),
            token: creds.token.clone(),
            region: creds.region.clone().unwrap_or_else(|| "us-east-1".into()),
        };
        let mut b = AmazonS3Builder::new()
            .with_endpoint(&endpoint)
            .with_bucket_name(&loc.bucket)
            .with_region(creds.region.as_deref().unwrap_or("us-east-1"))
            .with_access_key_id(&creds.key_id)
            .with_secret_access_key(&creds.secret)
            .with_virtual_hosted_style_request(opts.virtual_host)
            .with_client_options(client)
            .with_retry(RetryConfig {
                backoff: Default::default(),
                // Bounded by time (retry_timeout), not by count.
                max_retries: opts.max_retries,
                retry_timeout: opts.retry_timeout,
            })
            .with_http_connector(MeteredConnector {
                stats: stats.clone(),
                on_retry: opts.on_retry.clone(),
            });
        if let Some(t) = &creds.token {
            b = b.with_token(t);
        }
        let s3 = b
            .build()
            .map_err(|e| Error::Usage(format!("S3 location {location}: {e}")))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ironvault-s3")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the S3 client runtime: {e}")))?;
        Ok(S3Backend {
            location: location.to_string(),
            loc,
            store: LimitStore::new(s3, opts.connections.max(1)),
            rt,
            stats,
            opts: opts.clone(),
            up: RateLimit::new(opts.limit_upload),
            down: RateLimit::new(opts.limit_download),
            lock,
        })
    }

    fn path(&self, name: &str) -> OsPath {
        if self.loc.prefix.is_empty() {
            OsPath::from(name)
        } else {
            OsPath::from(format!("{}/{name}", self.loc.prefix))
        }
    }

    /// Turn an object_store error into an engine error with a useful message.
    fn err(&self, op: &'static str, name: &str, e: object_store::Error) -> Error {
        let kind = match &e {
            object_store::Error::NotFound { .. } => ErrorKind::NotFound,
            _ => ErrorKind::Other,
        };
        // The whole chain: the cause (a TLS or DNS error) is often deep inside.
        let text = chain_text(&e);
        let lower = text.to_ascii_lowercase();
        let hint = if lower.contains("certificate") {
            format!(
                "the TLS certificate of {} is not trusted ({}); if the server uses a private CA, pass it with --cacert FILE.pem",
                self.loc.endpoint,
                cert_reason(&text)
            )
        } else if lower.contains("nosuchbucket") {
            format!(
                "bucket {} does not exist at {}; create it first (aws s3 mb, garage bucket create, ...)",
                self.loc.bucket, self.loc.endpoint
            )
        } else if lower.contains("accessdenied")
            || lower.contains("invalidaccesskeyid")
            || lower.contains("signaturedoesnotmatch")
            || lower.contains("403")
        {
            format!(
                "access denied by {}; check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the profile) and the key's permissions on bucket {}",
                self.loc.endpoint, self.loc.bucket
            )
        } else if lower.contains("connection refused")
            || lower.contains("error sending request")
            || lower.contains("dns error")
            || lower.contains("timed out")
        {
            let cause = root_cause(&e);
            let tls_hint =
                if cause.contains("InvalidContentType") || lower.contains("corrupt message") {
                    "; it does not answer TLS: if it is a plain-http server, use s3:http://"
                } else {
                    ""
                };
            format!(
                "cannot reach the S3 server {} ({cause}{tls_hint}); gave up after retrying for up to {} s (--s3-retry-timeout); check the URL and that the server is up, then run the command again",
                self.loc.endpoint,
                self.opts.retry_timeout.as_secs()
            )
        } else {
            first_line(&text)
        };
        Error::Storage {
            op,
            name: name.to_string(),
            source: std::io::Error::new(kind, hint),
        }
    }

    /// Run `f` again (up to 3 more times, within the retry timeout) when it
    /// fails in a way a new attempt may fix. object_store already retries
    /// most requests; this covers the ones it does not repeat because plain
    /// HTTP would not allow it (a POST cut off mid-answer: bulk delete,
    /// multipart completion), which are safe here because every write in
    /// the format is idempotent (format.md §1).
    fn retrying<T>(
        &self,
        op: &'static str,
        name: &str,
        f: impl Fn() -> object_store::Result<T>,
    ) -> Result<T> {
        let start = Instant::now();
        let mut attempt = 0u32;
        loop {
            match f() {
                Ok(v) => return Ok(v),
                Err(e @ object_store::Error::Generic { .. })
                    if attempt < 3
                        && start.elapsed() < self.opts.retry_timeout
                        && is_transient(&e.to_string()) =>
                {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(100 << attempt));
                }
                Err(e) => return Err(self.err(op, name, e)),
            }
        }
    }

    async fn put_async(&self, path: &OsPath, data: &[u8]) -> object_store::Result<()> {
        if data.len() <= self.opts.multipart_threshold {
            let payload = PutPayload::from(bytes::Bytes::copy_from_slice(data));
            self.store.put(path, payload).await?;
            return Ok(());
        }
        let mut upload = self.store.put_multipart(path).await?;
        let parts: Vec<_> = data
            .chunks(self.opts.part_size.max(5 << 20))
            .map(|c| upload.put_part(PutPayload::from(bytes::Bytes::copy_from_slice(c))))
            .collect();
        let result = async {
            futures_util::future::try_join_all(parts).await?;
            upload.complete().await
        }
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                // Leave no parts behind to be billed; the object never appeared.
                let _ = upload.abort().await;
                Err(e)
            }
        }
    }
}

impl S3Backend {
    /// The bucket's Object Lock configuration, as the server reports it.
    pub fn lock_config(&self) -> Result<lock::LockConfig> {
        self.rt
            .block_on(self.lock.lock_config())
            .map_err(|e| self.lock_err(e))
    }

    fn lock_err(&self, e: String) -> Error {
        let hint = if e.contains("AccessDenied") || e.contains(" 403") {
            format!(
                "{e}; check the key's permissions on bucket {} (s3:GetBucketObjectLockConfiguration, s3:PutBucketObjectLockConfiguration)",
                self.loc.bucket
            )
        } else {
            e
        };
        Error::Storage {
            op: "object lock",
            name: self.loc.bucket.clone(),
            source: std::io::Error::other(hint),
        }
    }
}

/// An error and all its sources on one line.
fn chain_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        src = s.source();
    }
    text.replace('\n', " ")
}

/// The innermost cause of an error (e.g. "Connection refused (os error 111)").
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(s) = cur.source() {
        cur = s;
    }
    cur.to_string().replace('\n', " ")
}

/// The certificate part of a TLS error message.
fn cert_reason(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let at = lower
        .find("invalid peer certificate")
        .or_else(|| lower.find("certificate"));
    text[at.unwrap_or(0)..].chars().take(120).collect()
}

/// Errors of the connection rather than of the request: worth another try.
fn is_transient(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "error sending request",
        "connection",
        "reset",
        "broken pipe",
        "timed out",
        "incomplete",
        "body",
    ]
    .iter()
    .any(|k| t.contains(k))
        && !t.contains("403")
        && !t.contains("certificate")
        && !t.contains("nosuchbucket")
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn put(&self, name: &str, data: &[u8]) -> Result<()> {
        let path = self.path(name);
        pace(&self.up, data.len());
        self.retrying("put", name, || {
            self.rt.block_on(self.put_async(&path, data))
        })
    }

    fn get(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.path(name);
        let b = self.retrying("get", name, || {
            self.rt
                .block_on(async { self.store.get(&path).await?.bytes().await })
        })?;
        pace(&self.down, b.len());
        Ok(b.to_vec())
    }

    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let path = self.path(name);
        let got = self.retrying("read", name, || {
            self.rt
                .block_on(self.store.get_range(&path, offset..offset + len))
        })?;
        pace(&self.down, got.len());
        if got.len() as u64 != len {
            return Err(Error::Storage {
                op: "read",
                name: name.to_string(),
                source: std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!("asked {len} bytes at {offset}, got {}", got.len()),
                ),
            });
        }
        Ok(got.to_vec())
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        // Listings are by directory; a partial last component filters after.
        let (dir, rest) = match prefix.rfind('/') {
            Some(i) => (&prefix[..i], &prefix[i + 1..]),
            None => ("", prefix),
        };
        let base = if self.loc.prefix.is_empty() {
            dir.to_string()
        } else if dir.is_empty() {
            self.loc.prefix.clone()
        } else {
            format!("{}/{dir}", self.loc.prefix)
        };
        let strip = if self.loc.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.loc.prefix)
        };
        let list_path = (!base.is_empty()).then(|| OsPath::from(base.as_str()));
        let metas: Vec<_> = self.retrying("list", prefix, || {
            self.rt
                .block_on(self.store.list(list_path.as_ref()).try_collect::<Vec<_>>())
        })?;
        let mut out: Vec<ObjectInfo> = metas
            .into_iter()
            .filter_map(|m| {
                let full = m.location.to_string();
                let name = full.strip_prefix(&strip)?.to_string();
                let after_dir = if dir.is_empty() {
                    name.as_str()
                } else {
                    name.strip_prefix(dir)?.strip_prefix('/')?
                };
                if !after_dir.starts_with(rest) || name.contains(".tmp-") {
                    return None;
                }
                Some(ObjectInfo {
                    name,
                    size: m.size,
                    modified: m.last_modified.into(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn delete(&self, name: &str) -> Result<()> {
        let path = self.path(name);
        let r = self.retrying("delete", name, || {
            match self.rt.block_on(self.store.delete(&path)) {
                Err(object_store::Error::NotFound { .. }) => Ok(()),
                r => r,
            }
        });
        r
    }

    fn stat(&self, name: &str) -> Result<Option<ObjectInfo>> {
        let path = self.path(name);
        match self.rt.block_on(self.store.head(&path)) {
            // Last-Modified: the server's clock, not ours.
            Ok(m) => Ok(Some(ObjectInfo {
                name: name.to_string(),
                size: m.size,
                modified: m.last_modified.into(),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("stat", name, e)),
        }
    }

    fn prefers_large_reads(&self) -> bool {
        true
    }

    fn immutability(&self) -> Result<Option<super::Immutability>> {
        let c = self.lock_config()?;
        Ok(match (c.enabled, c.default_retention) {
            (true, Some((mode, retain_days))) => {
                Some(super::Immutability::ObjectLock { mode, retain_days })
            }
            _ => None,
        })
    }

    fn retention(&self, name: &str) -> Result<Option<(String, std::time::SystemTime)>> {
        let key = self.path(name).to_string();
        let got = self
            .rt
            .block_on(self.lock.retention(&key))
            .map_err(|e| self.lock_err(e))?;
        let Some((mode, until)) = got else {
            return Ok(None);
        };
        let until = chrono::DateTime::parse_from_rfc3339(until.trim()).map_err(|e| {
            self.lock_err(format!(
                "{name}: retain-until date {until:?} the server sent: {e}"
            ))
        })?;
        Ok(Some((mode, until.with_timezone(&chrono::Utc).into())))
    }

    fn extend_retention(&self, name: &str, mode: &str, until: std::time::SystemTime) -> Result<()> {
        let key = self.path(name).to_string();
        let until = chrono::DateTime::<chrono::Utc>::from(until)
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        self.rt
            .block_on(self.lock.set_retention(&key, mode, &until))
            .map_err(|e| self.lock_err(e))
    }

    fn hidden_objects(&self) -> Result<Vec<super::HiddenObject>> {
        let strip = if self.loc.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.loc.prefix)
        };
        let versions = self
            .rt
            .block_on(self.lock.list_versions(&strip))
            .map_err(|e| self.lock_err(e))?;
        Ok(lock::hidden(versions)
            .into_iter()
            .filter_map(|(key, markers)| {
                let name = key.strip_prefix(&strip)?.to_string();
                (!name.starts_with("locks/") && !name.contains(".tmp-"))
                    .then_some(super::HiddenObject { name, markers })
            })
            .collect())
    }

    fn unhide(&self, hidden: &super::HiddenObject) -> Result<()> {
        let key = self.path(&hidden.name).to_string();
        for m in &hidden.markers {
            self.rt
                .block_on(self.lock.delete_version(&key, m))
                .map_err(|e| self.lock_err(e))?;
        }
        Ok(())
    }

    fn set_object_lock(&self, mode: &str, days: u32) -> Result<()> {
        let mode = mode.to_ascii_uppercase();
        if mode != "COMPLIANCE" && mode != "GOVERNANCE" {
            return Err(Error::Usage(format!(
                "--object-lock-mode {mode}: expected compliance or governance"
            )));
        }
        if days == 0 {
            return Err(Error::Usage(
                "--object-lock-days 0: give the number of days (at least 1) objects are kept"
                    .into(),
            ));
        }
        if !self.lock_config()?.enabled {
            return Err(Error::Usage(format!(
                "bucket {} at {} does not have Object Lock enabled; it can only be enabled when the bucket is created (aws s3api create-bucket --object-lock-enabled-for-bucket ...): create a new bucket with it",
                self.loc.bucket, self.loc.endpoint
            )));
        }
        self.rt
            .block_on(self.lock.set_default_retention(&mode, days))
            .map_err(|e| self.lock_err(e))?;
        // Believe the server, not the request.
        let back = self.lock_config()?;
        if back.default_retention != Some((mode.clone(), days)) {
            return Err(Error::Failed(format!(
                "bucket {} at {} did not keep the default retention {mode} {days} days (it reports {:?}); this server may not enforce Object Lock",
                self.loc.bucket, self.loc.endpoint, back.default_retention
            )));
        }
        Ok(())
    }

    fn clock_skew(&self) -> Option<i64> {
        Some(self.stats.skew.load(Ordering::Relaxed)).filter(|&s| s != NO_SKEW)
    }

    fn transfer_stats(&self) -> Option<TransferStats> {
        let c = &self.stats;
        Some(TransferStats {
            requests: c.requests.load(Ordering::Relaxed),
            puts: c.puts.load(Ordering::Relaxed),
            gets: c.gets.load(Ordering::Relaxed),
            lists: c.lists.load(Ordering::Relaxed),
            deletes: c.deletes.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
            bytes_received: c.bytes_received.load(Ordering::Relaxed),
        })
    }
}
