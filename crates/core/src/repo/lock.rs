//! Lock objects (format.md §9). A backup holds a shared lock, refreshed in the
//! background every 5 minutes and once more right before its snapshot is
//! written; a lock not refreshed for 30 minutes is stale.

use crate::backend::Backend;
use crate::crypto::{ad, open, seal};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::format::{from_cbor, to_cbor, Id};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a held lock is rewritten.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);
/// A lock whose last refresh is older than this is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);

/// The content of a lock object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LockInfo {
    pub exclusive: bool,
    pub hostname: String,
    pub pid: u32,
    pub username: String,
    pub created: String,
    pub refreshed: String,
}

impl LockInfo {
    /// Stale: not refreshed for 30 minutes, or made on this host by a dead process.
    pub fn is_stale(&self, this_host: &str) -> bool {
        let old = chrono::DateTime::parse_from_rfc3339(&self.refreshed)
            .map(|t| {
                let age = chrono::Utc::now().signed_duration_since(t);
                age.to_std().map(|a| a > STALE_AFTER).unwrap_or(false)
            })
            .unwrap_or(true);
        old || (self.hostname == this_host && !pid_alive(self.pid))
    }
}

fn pid_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Read and open every lock object: (name, content or None if unreadable).
pub fn list_locks(b: &dyn Backend, key: &[u8; 32]) -> Result<Vec<(String, Option<LockInfo>)>> {
    let mut out = Vec::new();
    for o in b.list("locks/")? {
        let info = match b.get(&o.name) {
            Ok(bytes) => open(key, ad::LOCK, &bytes, &o.name)
                .and_then(|p| from_cbor::<LockInfo>(&p, &o.name))
                .ok(),
            Err(e) if crate::backend::is_not_found(&e) => continue,
            Err(e) => return Err(e),
        };
        out.push((o.name, info));
    }
    Ok(out)
}

struct Shared {
    backend: Arc<dyn Backend>,
    key: [u8; 32],
    name: String,
    info: Mutex<LockInfo>,
    last_refresh: Mutex<Instant>,
    stop: AtomicBool,
}

impl Shared {
    fn write(&self) -> Result<()> {
        let info = self
            .info
            .lock()
            .map_err(|_| Error::Invalid("lock poisoned".into()))?
            .clone();
        self.backend
            .put(&self.name, &seal(&self.key, ad::LOCK, &to_cbor(&info)?))
    }

    fn refresh(&self) -> Result<()> {
        failpoint::hit("lock-refresh");
        if let Ok(mut i) = self.info.lock() {
            i.refreshed = chrono::Local::now().to_rfc3339();
        }
        let started = Instant::now();
        self.write()?;
        if let Ok(mut t) = self.last_refresh.lock() {
            *t = started;
        }
        Ok(())
    }
}

/// A lock this process holds; removed on `release` or drop.
pub struct Lock {
    shared: Arc<Shared>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

impl Lock {
    /// Take a lock. A shared lock fails only if a live exclusive lock exists;
    /// an exclusive lock fails if any live lock exists.
    pub fn acquire(backend: Arc<dyn Backend>, key: [u8; 32], exclusive: bool) -> Result<Lock> {
        let host = crate::repo::hostname();
        for (name, info) in list_locks(backend.as_ref(), &key)? {
            if let Some(i) = info {
                if (i.exclusive || exclusive) && !i.is_stale(&host) {
                    return Err(Error::Locked(format!(
                        "{} (pid {} on {}, since {}; object {name})",
                        i.username, i.pid, i.hostname, i.created
                    )));
                }
            }
        }
        let now = chrono::Local::now().to_rfc3339();
        let shared = Arc::new(Shared {
            backend,
            key,
            name: format!("locks/{}", Id::random().to_hex()),
            info: Mutex::new(LockInfo {
                exclusive,
                hostname: host,
                pid: std::process::id(),
                username: crate::repo::username(),
                created: now.clone(),
                refreshed: now,
            }),
            last_refresh: Mutex::new(Instant::now()),
            stop: AtomicBool::new(false),
        });
        failpoint::hit("lock-create");
        shared.write()?;
        let s2 = shared.clone();
        let refresher = std::thread::Builder::new()
            .name("lock-refresh".into())
            .spawn(move || {
                let mut waited = Duration::ZERO;
                while !s2.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    waited += Duration::from_millis(200);
                    if waited >= REFRESH_EVERY {
                        waited = Duration::ZERO;
                        let _ = s2.refresh();
                    }
                }
            })
            .map_err(|e| Error::Invalid(format!("cannot start lock refresher: {e}")))?;
        Ok(Lock {
            shared,
            refresher: Some(refresher),
        })
    }

    /// Refresh now and confirm the lock never went stale (called before a
    /// snapshot is written: a stale lock means prune may have deleted packs).
    pub fn confirm(&self) -> Result<()> {
        let last = *self
            .shared
            .last_refresh
            .lock()
            .map_err(|_| Error::Invalid("lock poisoned".into()))?;
        if last.elapsed() > STALE_AFTER {
            return Err(Error::Invalid(format!(
                "lock {} was not refreshed for {} s and may have been treated as stale; run the backup again",
                self.shared.name,
                last.elapsed().as_secs()
            )));
        }
        self.shared.refresh()
    }

    /// Stop refreshing and remove the lock object.
    pub fn release(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.refresher.take() {
            let _ = h.join();
            failpoint::hit("lock-remove");
            return self.shared.backend.delete(&self.shared.name);
        }
        Ok(())
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Remove stale locks (or all with `all`); returns the names removed.
pub fn remove_locks(b: &dyn Backend, key: &[u8; 32], all: bool) -> Result<Vec<String>> {
    let host = crate::repo::hostname();
    let mut removed = Vec::new();
    for (name, info) in list_locks(b, key)? {
        let stale = info.as_ref().map(|i| i.is_stale(&host)).unwrap_or(true);
        if all || stale {
            b.delete(&name)?;
            removed.push(name);
        }
    }
    Ok(removed)
}
