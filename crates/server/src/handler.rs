//! One HTTP request: authenticate the token, route by path, check the role
//! (access.rs), then read or write through the repository's `Backend` on a
//! blocking thread. The protocol is docs/server.md.

use crate::access::{self, Change, Target};
use crate::tokens::{Refused, Role, TokenEntry, TokenFile};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use ironvault_core::backend::rest::{valid_repo_name, MODIFIED_HEADER};
use ironvault_core::backend::s3::S3Options;
use ironvault_core::backend::{is_not_found, open_location, Backend, ObjectInfo};
use ironvault_core::format::kind::{ObjectKind, CONFIG_NAME};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// The largest object accepted in one upload.
const MAX_OBJECT: usize = 1 << 31;

type Resp = Response<Full<Bytes>>;

/// The token file's (mtime, length) when it was read.
type Stamp = Option<(SystemTime, u64)>;

/// What the server shares between requests.
pub struct State {
    root: String,
    tokens_path: PathBuf,
    /// The token file and the (mtime, length) it was read at.
    tokens: Mutex<(Stamp, Arc<TokenFile>)>,
    repos: Mutex<HashMap<String, Arc<dyn Backend>>>,
    /// Repositories known to have a `config`.
    existing: Mutex<HashSet<String>>,
    /// (repository, lock name) → the name of the token that created it.
    lock_owners: Mutex<HashMap<(String, String), String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic in another request leaves plain data behind, still valid.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    pub fn new(root: String, tokens_path: PathBuf) -> State {
        State {
            root,
            tokens_path,
            tokens: Mutex::new((None, Arc::new(TokenFile::default()))),
            repos: Mutex::default(),
            existing: Mutex::default(),
            lock_owners: Mutex::default(),
        }
    }

    /// The token file, re-read when its mtime or size changed (so a
    /// removed token stops working without a restart). An unreadable file
    /// refuses every request.
    fn token_file(&self) -> Result<Arc<TokenFile>, String> {
        let stamp = std::fs::metadata(&self.tokens_path)
            .and_then(|m| Ok((m.modified()?, m.len())))
            .map_err(|e| format!("the server cannot read its token file ({e})"))?;
        let mut t = lock(&self.tokens);
        if t.0 != Some(stamp) {
            let f = TokenFile::load(&self.tokens_path, false).map_err(|e| e.to_string())?;
            *t = (Some(stamp), Arc::new(f));
        }
        Ok(t.1.clone())
    }

    fn location(&self, repo: &str) -> String {
        format!("{}/{repo}", self.root.trim_end_matches('/'))
    }

    /// Make a local repository's directory (the local backend writes below
    /// an existing root only); only an admin's writes come here.
    fn ensure_local_dir(&self, repo: &str) -> Result<(), String> {
        if self.root.starts_with("s3:") {
            return Ok(());
        }
        let loc = self.location(repo);
        ironvault_core::backend::private::create_dir_all(std::path::Path::new(&loc))
            .map_err(|e| format!("cannot create {loc}: {e}"))
    }

    fn backend(&self, repo: &str) -> Result<Arc<dyn Backend>, String> {
        let mut repos = lock(&self.repos);
        if let Some(b) = repos.get(repo) {
            return Ok(b.clone());
        }
        let loc = self.location(repo);
        let b: Arc<dyn Backend> =
            Arc::from(open_location(&loc, &S3Options::default()).map_err(|e| e.to_string())?);
        repos.insert(repo.to_string(), b.clone());
        Ok(b)
    }
}

fn text(status: StatusCode, msg: &str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(format!("{msg}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        "text/plain; charset=utf-8"
            .parse()
            .unwrap_or_else(|_| unreachable!()),
    );
    r
}

fn with_date(mut r: Resp) -> Resp {
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    if let Ok(v) = date.parse() {
        r.headers_mut().insert("date", v);
    }
    r
}

fn ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Serve HTTP/1.1 on one accepted connection (plain or TLS).
pub async fn serve_connection<S>(state: Arc<State>, io: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(with_date(handle(state, req).await)) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
        .await;
}

/// Run a storage call on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ironvault_core::Result<T> + Send + 'static,
) -> ironvault_core::Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(ironvault_core::Error::Internal(format!(
            "storage task failed: {e}"
        ))),
    }
}

fn storage_failed(e: &ironvault_core::Error) -> Resp {
    eprintln!("error: {e}");
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        &format!("storage error: {e}"),
    )
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Resp {
    let tokens = match state.token_file() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return text(StatusCode::INTERNAL_SERVER_ERROR, &e);
        }
    };
    let presented = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let token = match tokens.check(presented, chrono::Utc::now()) {
        Ok(t) => t.clone(),
        Err(Refused::Unknown) => return text(StatusCode::UNAUTHORIZED, "unknown token"),
        Err(Refused::Expired { name, at }) => {
            return text(
                StatusCode::UNAUTHORIZED,
                &format!("token '{name}' expired at {at}"),
            )
        }
    };
    let path = req.uri().path().to_string();
    let Some(path) = path.strip_prefix('/') else {
        return text(StatusCode::BAD_REQUEST, "bad path");
    };
    if let Some(repo) = path.strip_prefix("-/access/") {
        return access_answer(&state, &token, repo);
    }
    let (repo, object) = path.split_once('/').unwrap_or((path, ""));
    if !valid_repo_name(repo) {
        return text(
            StatusCode::BAD_REQUEST,
            &format!("{repo:?} is not a repository name (letters, digits, '-', '_', '.')"),
        );
    }
    if !token.opens(repo) {
        return refused(&format!(
            "token '{}' (role {}) does not open repository {repo}",
            token.name,
            token.role.as_str()
        ));
    }
    let backend = match state.backend(repo) {
        Ok(b) => b,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let method = req.method().clone();
    if object.is_empty() || object.ends_with('/') {
        if method != Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "a listing is read with GET");
        }
        return list(backend, object).await;
    }
    let object = object.to_string();
    if !access::valid_object_name(&object, false) {
        return text(
            StatusCode::BAD_REQUEST,
            &format!("{object:?} is not an object name"),
        );
    }
    match method {
        Method::HEAD => head(backend, &object).await,
        Method::GET => {
            let range = req
                .headers()
                .get("range")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            get(backend, &object, range).await
        }
        Method::POST | Method::PUT => {
            let body = match Limited::new(req.into_body(), MAX_OBJECT).collect().await {
                Ok(b) => b.to_bytes(),
                // Nothing is stored: the upload did not arrive whole.
                Err(e) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        &format!(
                            "the upload of {object} did not arrive whole ({e}); nothing was stored"
                        ),
                    )
                }
            };
            put(&state, backend, &token, repo, &object, body).await
        }
        Method::DELETE => delete(&state, backend, &token, repo, &object).await,
        _ => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET, HEAD, POST or DELETE",
        ),
    }
}

fn refused(msg: &str) -> Resp {
    eprintln!("refused: {msg}");
    text(StatusCode::FORBIDDEN, msg)
}

fn access_answer(state: &State, token: &TokenEntry, repo: &str) -> Resp {
    if !valid_repo_name(repo) || !token.opens(repo) {
        return refused(&format!(
            "token '{}' (role {}) does not open repository {repo}",
            token.name,
            token.role.as_str()
        ));
    }
    let _ = state;
    let admin = token.role == Role::Admin;
    let body = serde_json::json!({
        "repo": repo,
        "token": token.name,
        "role": token.role.as_str(),
        "create": token.role != Role::Read,
        "delete": admin,
        "overwrite": admin,
        "init": admin,
    });
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    if let Ok(v) = "application/json".parse() {
        r.headers_mut().insert("content-type", v);
    }
    r
}

async fn list(backend: Arc<dyn Backend>, prefix: &str) -> Resp {
    if !prefix.is_empty() && !access::valid_object_name(prefix.trim_end_matches('/'), false) {
        return text(
            StatusCode::BAD_REQUEST,
            &format!("{prefix:?} is not a prefix"),
        );
    }
    let p = prefix.to_string();
    let items = match blocking(move || backend.list(&p)).await {
        Ok(l) => l,
        Err(e) => return storage_failed(&e),
    };
    let out: Vec<serde_json::Value> = items
        .iter()
        .map(|o| serde_json::json!({"name": o.name, "size": o.size, "modified_ns": ns(o.modified)}))
        .collect();
    let mut r = Response::new(Full::new(Bytes::from(
        serde_json::Value::Array(out).to_string(),
    )));
    if let Ok(v) = "application/json".parse() {
        r.headers_mut().insert("content-type", v);
    }
    r
}

async fn stat(
    backend: &Arc<dyn Backend>,
    name: &str,
) -> ironvault_core::Result<Option<ObjectInfo>> {
    let (b, n) = (backend.clone(), name.to_string());
    blocking(move || b.stat(&n)).await
}

fn stat_headers(r: &mut Resp, o: &ObjectInfo) {
    let h = r.headers_mut();
    for (k, v) in [
        ("x-ironvault-size", o.size.to_string()),
        (MODIFIED_HEADER, ns(o.modified).to_string()),
    ] {
        if let Ok(v) = v.parse() {
            h.insert(k, v);
        }
    }
}

async fn head(backend: Arc<dyn Backend>, name: &str) -> Resp {
    match stat(&backend, name).await {
        Ok(Some(o)) => {
            let mut r = Response::new(Full::new(Bytes::new()));
            stat_headers(&mut r, &o);
            r
        }
        Ok(None) => text(StatusCode::NOT_FOUND, "no such object"),
        Err(e) => storage_failed(&e),
    }
}

/// `bytes=A-B` (both inclusive) as (offset, length).
fn parse_range(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.strip_prefix("bytes=")?.split_once('-')?;
    let (a, b) = (a.parse::<u64>().ok()?, b.parse::<u64>().ok()?);
    (b >= a).then(|| (a, b - a + 1))
}

async fn get(backend: Arc<dyn Backend>, name: &str, range: Option<String>) -> Resp {
    let n = name.to_string();
    let (status, r) = match range {
        None => (StatusCode::OK, blocking(move || backend.get(&n)).await),
        Some(r) => {
            let Some((off, len)) = parse_range(&r) else {
                return text(StatusCode::BAD_REQUEST, "Range: use bytes=FIRST-LAST");
            };
            match stat(&backend, name).await {
                Ok(None) => return text(StatusCode::NOT_FOUND, "no such object"),
                Ok(Some(o)) if off.saturating_add(len) > o.size => {
                    return text(
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        &format!("{name} has {} bytes", o.size),
                    )
                }
                Err(e) => return storage_failed(&e),
                Ok(Some(_)) => {}
            }
            (
                StatusCode::PARTIAL_CONTENT,
                blocking(move || backend.get_range(&n, off, len)).await,
            )
        }
    };
    match r {
        Ok(data) => {
            let mut resp = Response::new(Full::new(Bytes::from(data)));
            *resp.status_mut() = status;
            resp
        }
        Err(e) if is_not_found(&e) => text(StatusCode::NOT_FOUND, "no such object"),
        Err(e) => storage_failed(&e),
    }
}

async fn repo_exists(
    state: &State,
    backend: &Arc<dyn Backend>,
    repo: &str,
) -> ironvault_core::Result<bool> {
    if lock(&state.existing).contains(repo) {
        return Ok(true);
    }
    let yes = stat(backend, CONFIG_NAME).await?.is_some();
    if yes {
        lock(&state.existing).insert(repo.to_string());
    }
    Ok(yes)
}

fn is_lock(name: &str) -> bool {
    ObjectKind::of_name(name) == Some(ObjectKind::Lock)
}

async fn put(
    state: &State,
    backend: Arc<dyn Backend>,
    token: &TokenEntry,
    repo: &str,
    name: &str,
    body: Bytes,
) -> Resp {
    if token.role != Role::Admin && !access::valid_object_name(name, true) {
        return refused(&format!(
            "token '{}' (role {}) may not create {name}: not a name of an object ironvault writes; that needs a token with role admin",
            token.name,
            token.role.as_str()
        ));
    }
    let exists = match repo_exists(state, &backend, repo).await {
        Ok(e) => e,
        Err(e) => return storage_failed(&e),
    };
    let current = match stat(&backend, name).await {
        Ok(c) => c,
        Err(e) => return storage_failed(&e),
    };
    let change = match current {
        None => Change::Create,
        Some(o) if o.size == body.len() as u64 => {
            let (b, n) = (backend.clone(), name.to_string());
            match blocking(move || b.get(&n)).await {
                // An identical upload again (a retry): nothing to change.
                Ok(old) if old == body => return text(StatusCode::OK, "identical object exists"),
                Ok(_) => Change::Overwrite,
                Err(e) if is_not_found(&e) => Change::Create,
                Err(e) => return storage_failed(&e),
            }
        }
        Some(_) => Change::Overwrite,
    };
    let key = (repo.to_string(), name.to_string());
    let own_lock = lock(&state.lock_owners).get(&key) == Some(&token.name);
    let target = Target {
        repo,
        name,
        repo_exists: exists,
        own_lock,
    };
    if let Err(why) = access::allow(token, change, &target) {
        return refused(&why);
    }
    if access::content_matches(name, &body) == Some(false) {
        return text(
            StatusCode::BAD_REQUEST,
            &format!("the bytes sent do not hash to the name {name}; nothing was stored"),
        );
    }
    if !exists {
        // Only an admin gets here (access::allow).
        if let Err(e) = state.ensure_local_dir(repo) {
            return text(StatusCode::INTERNAL_SERVER_ERROR, &e);
        }
    }
    let (b, n) = (backend.clone(), name.to_string());
    if let Err(e) = blocking(move || b.put(&n, &body)).await {
        return storage_failed(&e);
    }
    if is_lock(name) && change == Change::Create {
        lock(&state.lock_owners).insert(key, token.name.clone());
    }
    if name == CONFIG_NAME {
        lock(&state.existing).insert(repo.to_string());
    }
    text(StatusCode::OK, "stored")
}

async fn delete(
    state: &State,
    backend: Arc<dyn Backend>,
    token: &TokenEntry,
    repo: &str,
    name: &str,
) -> Resp {
    let exists = match repo_exists(state, &backend, repo).await {
        Ok(e) => e,
        Err(e) => return storage_failed(&e),
    };
    match stat(&backend, name).await {
        Ok(None) => return text(StatusCode::OK, "no such object"),
        Err(e) => return storage_failed(&e),
        Ok(Some(_)) => {}
    }
    let key = (repo.to_string(), name.to_string());
    let own_lock = lock(&state.lock_owners).get(&key) == Some(&token.name);
    let target = Target {
        repo,
        name,
        repo_exists: exists,
        own_lock,
    };
    if let Err(why) = access::allow(token, Change::Delete, &target) {
        return refused(&why);
    }
    let (b, n) = (backend.clone(), name.to_string());
    if let Err(e) = blocking(move || b.delete(&n)).await {
        return storage_failed(&e);
    }
    lock(&state.lock_owners).remove(&key);
    if name == CONFIG_NAME {
        lock(&state.existing).remove(repo);
    }
    text(StatusCode::OK, "deleted")
}
