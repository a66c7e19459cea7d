//! Lock objects (format.md §9). A backup holds a shared lock, refreshed in the
//! background every 5 minutes and once more right before its snapshot is
//! written; a lock not refreshed for 30 minutes is stale.

use crate::backend::Backend;
use crate::crypto::{ad, open, seal};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::format::{from_cbor, to_cbor, Id};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a held lock is rewritten.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);
/// A lock whose last refresh is older than this is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// Clock skew between hosts that the protocol tolerates (format.md §9). A
/// holder whose refreshes were ever further apart than
/// `STALE_AFTER - MAX_CLOCK_SKEW` no longer trusts its lock.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(10 * 60);

/// The content of a lock object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LockInfo {
    pub exclusive: bool,
    pub hostname: String,
    pub pid: u32,
    pub username: String,
    pub created: String,
    pub refreshed: String,
    /// Linux boot id, PID namespace and process start time (clock ticks since
    /// boot): a pid is only checked for liveness when all three match ours, so
    /// containers sharing a host name and reused pids are not mistaken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ticks: Option<u64>,
    /// The command holding it (`backup`, `prune`, ...), for messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

static COMMAND: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Name the command this process runs; its locks record it, so others
/// can say who they wait for.
pub fn set_command(name: &str) {
    let _ = COMMAND.set(name.to_string());
}

/// Time since boot, including time suspended.
fn boottime() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec for clock_gettime to fill.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

fn pid_namespace() -> Option<String> {
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Field 22 of /proc/PID/stat: the process start time in clock ticks.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it follow ") ".
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

impl LockInfo {
    /// "'backup' run by alice (pid 12 on host, since ...)".
    pub fn describe(&self) -> String {
        format!(
            "{}{} (pid {} on {}, since {})",
            self.command
                .as_deref()
                .map(|c| format!("'{c}' run by "))
                .unwrap_or_default(),
            self.username,
            self.pid,
            self.hostname,
            self.created
        )
    }

    /// Stale: not refreshed for 30 minutes, or made on this host by a dead process.
    pub fn is_stale(&self, this_host: &str) -> bool {
        let old = chrono::DateTime::parse_from_rfc3339(&self.refreshed)
            .map(|t| {
                let age = chrono::Utc::now().signed_duration_since(t);
                age.to_std().map(|a| a > STALE_AFTER).unwrap_or(false)
            })
            .unwrap_or(true);
        old || (self.hostname == this_host
            && self.same_kernel_and_namespace()
            && !self.process_alive())
    }

    fn same_kernel_and_namespace(&self) -> bool {
        self.boot_id.is_some() && self.boot_id == boot_id() && self.pid_namespace == pid_namespace()
    }

    fn process_alive(&self) -> bool {
        pid_alive(self.pid)
            && (self.start_ticks.is_none() || start_ticks(self.pid) == self.start_ticks)
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
    /// Time of the last successful write, and the longest gap between two,
    /// on CLOCK_BOOTTIME: unlike Instant it keeps counting while the machine
    /// is suspended, when other hosts may see the lock go stale.
    last_refresh: Mutex<(Duration, Duration)>,
}

impl Shared {
    fn info_host(&self) -> String {
        self.info
            .lock()
            .map(|i| i.hostname.clone())
            .unwrap_or_default()
    }

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
        let started = boottime();
        self.write()?;
        if let Ok(mut t) = self.last_refresh.lock() {
            let gap = started.saturating_sub(t.0);
            *t = (started, t.1.max(gap));
        }
        Ok(())
    }
}

/// A lock this process holds; removed on `release` or drop.
pub struct Lock {
    shared: Arc<Shared>,
    refresher: Option<std::thread::JoinHandle<()>>,
    stop_tx: Option<std::sync::mpsc::Sender<()>>,
}

impl Lock {
    /// Take a lock. A shared lock fails only if a live exclusive lock exists;
    /// an exclusive lock fails if any live lock exists.
    pub fn acquire(backend: Arc<dyn Backend>, key: [u8; 32], exclusive: bool) -> Result<Lock> {
        let host = crate::repo::hostname();
        for (name, info) in list_locks(backend.as_ref(), &key)? {
            if let Some(i) = info {
                if (i.exclusive || exclusive) && !i.is_stale(&host) {
                    return Err(Error::Locked(format!("{}; object {name}", i.describe())));
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
                boot_id: boot_id(),
                pid_namespace: pid_namespace(),
                start_ticks: start_ticks(std::process::id()),
                command: COMMAND.get().cloned(),
            }),
            last_refresh: Mutex::new((boottime(), Duration::ZERO)),
        });
        failpoint::hit("lock-create");
        shared.write()?;
        // Two writers may have checked at the same moment: look again now that
        // ours is visible, and back off if a conflicting live lock appeared.
        for (name, info) in list_locks(shared.backend.as_ref(), &key)? {
            if let Some(i) = info {
                if name != shared.name
                    && (i.exclusive || exclusive)
                    && !i.is_stale(&shared.info_host())
                {
                    let _ = shared.backend.delete(&shared.name);
                    return Err(Error::Locked(format!("{}; object {name}", i.describe())));
                }
            }
        }
        let s2 = shared.clone();
        // Dropping the sender wakes the refresher at once (no polling delay on release).
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let refresher = std::thread::Builder::new()
            .name("lock-refresh".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stop_rx.recv_timeout(REFRESH_EVERY)
                {
                    // A failed refresh shows up as a gap that confirm() refuses.
                    let _ = s2.refresh();
                }
            })
            .map_err(|e| Error::Invalid(format!("cannot start lock refresher: {e}")))?;
        Ok(Lock {
            shared,
            refresher: Some(refresher),
            stop_tx: Some(stop_tx),
        })
    }

    /// A lock, or none for a dry run (which writes nothing and so needs none).
    pub fn unless_dry_run(
        dry_run: bool,
        backend: Arc<dyn Backend>,
        key: [u8; 32],
        exclusive: bool,
    ) -> Result<Option<Lock>> {
        if dry_run {
            return Ok(None);
        }
        Lock::acquire(backend, key, exclusive).map(Some)
    }

    /// The lock object's name (`locks/<id>`).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// A handle that checks, without refreshing, that this lock is still
    /// trusted (for writers that must not write an index file after it may
    /// have gone stale: a prune may have deleted the packs it lists).
    pub fn guard(&self) -> LockGuard {
        LockGuard {
            shared: self.shared.clone(),
        }
    }

    /// Refresh now and confirm the lock never went stale (called before a
    /// snapshot is written: a stale lock means prune may have deleted packs).
    pub fn confirm(&self) -> Result<()> {
        self.shared.refresh()?;
        let (_, max_gap) = *self
            .shared
            .last_refresh
            .lock()
            .map_err(|_| Error::Invalid("lock poisoned".into()))?;
        check_gap(&self.shared.name, max_gap)
    }

    /// Stop refreshing and remove the lock object.
    pub fn release(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        self.stop_tx.take();
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

fn check_gap(name: &str, gap: Duration) -> Result<()> {
    if gap > STALE_AFTER - MAX_CLOCK_SKEW {
        return Err(Error::Invalid(format!(
            "lock {name} went {} s without a refresh (was the machine asleep?), so another process may have treated it as stale; nothing more was written: run the command again",
            gap.as_secs()
        )));
    }
    Ok(())
}

/// See `Lock::guard`.
#[derive(Clone)]
pub struct LockGuard {
    shared: Arc<Shared>,
}

impl LockGuard {
    /// Make the lock look as if it had gone `gap` without a refresh.
    #[cfg(test)]
    pub(crate) fn pretend_gap(&self, gap: Duration) {
        if let Ok(mut t) = self.shared.last_refresh.lock() {
            t.1 = gap;
        }
    }

    /// Fail if the lock went, or has now gone, too long without a refresh.
    pub fn check(&self) -> Result<()> {
        let (last, max_gap) = *self
            .shared
            .last_refresh
            .lock()
            .map_err(|_| Error::Invalid("lock poisoned".into()))?;
        check_gap(
            &self.shared.name,
            max_gap.max(boottime().saturating_sub(last)),
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_and_shared_locks_conflict_and_stale_ones_do_not() {
        let (_d, repo) = crate::repo::test_repo();
        let b = repo.backend().clone();
        let key = *repo.master_key();
        // shared locks coexist
        let s1 = Lock::acquire(b.clone(), key, false).unwrap();
        let s2 = Lock::acquire(b.clone(), key, false).unwrap();
        // an exclusive lock waits for them
        assert!(matches!(
            Lock::acquire(b.clone(), key, true),
            Err(Error::Locked(_))
        ));
        s1.release().unwrap();
        s2.release().unwrap();
        assert!(list_locks(b.as_ref(), &key).unwrap().is_empty());
        // and then blocks shared ones
        let x = Lock::acquire(b.clone(), key, true).unwrap();
        assert!(matches!(
            Lock::acquire(b.clone(), key, false),
            Err(Error::Locked(_))
        ));
        // a refused attempt leaves no lock object behind
        assert_eq!(list_locks(b.as_ref(), &key).unwrap().len(), 1);
        drop(x);
        // an exclusive lock of a dead process on this host is stale: it blocks nobody
        let mut info = LockInfo {
            exclusive: true,
            hostname: crate::repo::hostname(),
            pid: u32::MAX - 1,
            username: "ghost".into(),
            created: chrono::Local::now().to_rfc3339(),
            refreshed: chrono::Local::now().to_rfc3339(),
            boot_id: boot_id(),
            pid_namespace: pid_namespace(),
            start_ticks: None,
            command: Some("backup".into()),
        };
        b.put(
            "locks/ghost",
            &seal(&key, ad::LOCK, &to_cbor(&info).unwrap()),
        )
        .unwrap();
        assert!(Lock::acquire(b.clone(), key, false).is_ok());
        // ... but the same lock from another host is live until it is 30 minutes old
        info.hostname = "elsewhere".into();
        b.put(
            "locks/ghost",
            &seal(&key, ad::LOCK, &to_cbor(&info).unwrap()),
        )
        .unwrap();
        assert!(matches!(
            Lock::acquire(b.clone(), key, false),
            Err(Error::Locked(_))
        ));
        info.refreshed = (chrono::Local::now() - chrono::Duration::minutes(31)).to_rfc3339();
        b.put(
            "locks/ghost",
            &seal(&key, ad::LOCK, &to_cbor(&info).unwrap()),
        )
        .unwrap();
        assert!(Lock::acquire(b.clone(), key, false).is_ok());
        assert_eq!(
            remove_locks(b.as_ref(), &key, false).unwrap(),
            vec!["locks/ghost".to_string()]
        );
    }
}
