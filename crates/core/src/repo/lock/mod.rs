//! The locking protocol over lock objects (`crate::format::lock`, format.md §9). A backup holds a shared lock, refreshed in the
//! background every 5 minutes and once more right before its snapshot is
//! written; a lock the storage has not seen refreshed for 30 minutes, by
//! the storage's own clock, is stale. A holder never recreates a lock that
//! was removed: it stops before writing any further index or snapshot.

mod clock;
#[cfg(test)]
pub(crate) mod tests;

pub use clock::StorageClock;

pub use crate::format::lock::LockInfo;

use crate::backend::{is_not_found, Backend};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::format::{ObjectKind, SealedObject};
use crate::repo::objects::load_all;
use crate::sync::Locked;
use clock::boottime;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How often a held lock is rewritten.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);
/// A lock whose last refresh the storage stamped longer ago than this is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// Clock skew between a host and the storage that prune tolerates
/// (format.md §9); also the margin of a holder: one whose refreshes were
/// ever further apart than `STALE_AFTER - MAX_CLOCK_SKEW` no longer trusts
/// its lock.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(10 * 60);

static COMMAND: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Name the command this process runs; its locks record it, so others
/// can say who they wait for.
pub fn set_command(name: &str) {
    let _ = COMMAND.set(name.to_string());
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

    /// This process's lock content, refreshed now.
    fn ours(exclusive: bool) -> LockInfo {
        let now = chrono::Local::now().to_rfc3339();
        LockInfo {
            exclusive,
            hostname: crate::host::hostname(),
            pid: std::process::id(),
            username: crate::host::username(),
            created: now.clone(),
            refreshed: now,
            boot_id: boot_id(),
            pid_namespace: pid_namespace(),
            start_ticks: start_ticks(std::process::id()),
            command: COMMAND.get().cloned(),
            age: None,
        }
    }

    /// Stale: the storage has not seen it refreshed for 30 minutes, or it
    /// was made on this host by a dead process.
    pub fn is_stale(&self, this_host: &str) -> bool {
        let old = match self.age {
            Some(age) => age > STALE_AFTER,
            // Not read from storage: only the holder's own clock is known.
            // A time that far in the future is as untrustworthy as one that
            // far in the past (otherwise the lock would never go stale).
            None => chrono::DateTime::parse_from_rfc3339(&self.refreshed)
                .map(|t| {
                    let apart = chrono::Utc::now().signed_duration_since(t).abs();
                    apart.to_std().map(|a| a > STALE_AFTER).unwrap_or(true)
                })
                .unwrap_or(true),
        };
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

/// Read and open every lock object: (name, content or None if unreadable),
/// with ages judged by this host's clock against the storage's stamps: for
/// readers that write nothing, whose verdicts are for messages only.
pub fn list_locks(b: &dyn Backend, key: &[u8; 32]) -> Result<Vec<(String, Option<LockInfo>)>> {
    list_locks_at(b, key, &StorageClock::local())
}

/// Read and open every lock object, its age taken from the time the
/// storage stamped it in the listing against the storage's clock `now`.
pub fn list_locks_at(
    b: &dyn Backend,
    key: &[u8; 32],
    now: &StorageClock,
) -> Result<Vec<(String, Option<LockInfo>)>> {
    // A refresh between the listing and the read only makes the lock look
    // older than it is, by the time between the two. An unreadable lock is
    // kept as `None` (`ObjectKind::Lock.on_damage()`).
    Ok(load_all::<LockInfo>(b, key)?
        .into_iter()
        .map(|l| {
            let age = now.age(l.info.modified);
            let info = l.item.ok().map(|i| LockInfo {
                age: Some(age),
                ..i
            });
            (l.info.name, info)
        })
        .collect())
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
    /// The storage's clock, read from our lock object at its last write.
    clock: Mutex<StorageClock>,
    /// What the object may hold if it is still ours: the bytes we last
    /// wrote (and, after a put that failed, the bytes it may have stored).
    /// Held while the object is written or read back, so that no check
    /// compares a read with a list that a write is changing (each such
    /// request is short, and the index writers waiting on it must know).
    written: Mutex<Vec<Vec<u8>>>,
    /// Set once the object was found removed or replaced: it is never
    /// written again.
    lost: AtomicBool,
}

impl Shared {
    fn info_host(&self) -> String {
        self.info.locked().hostname.clone()
    }

    /// Write the lock object and read the storage's clock from it.
    fn write(&self) -> Result<()> {
        let info = self.info.locked().clone();
        let sealed = info.seal(&self.key)?;
        let mut written = self.written.locked();
        let before = SystemTime::now();
        let put = self.backend.put(&self.name, &sealed);
        if put.is_ok() {
            written.clear();
        }
        written.push(sealed);
        drop(written);
        put?;
        let stamp = match self.backend.stat(&self.name)? {
            Some(o) => o.modified,
            None => return Err(self.vanished()),
        };
        *self.clock.locked() = StorageClock::from_write(stamp, before);
        Ok(())
    }

    /// The error of a holder whose lock object is gone.
    fn vanished(&self) -> Error {
        self.lost.store(true, Ordering::SeqCst);
        Error::Failed(format!(
            "our lock {} vanished (removed by 'ironvault unlock', or by a prune that took it for stale): stopping here; the packs written since the last index file stay unindexed and the next backup reuses them",
            self.name
        ))
    }

    /// Fail if our lock object was removed or replaced since we wrote it.
    /// (Another process may still remove it between this check and our
    /// next write; the check after that write then finds it ours again, so
    /// such a removal goes unnoticed only if it falls in that moment.)
    fn ensure_ours(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(self.vanished());
        }
        let written = self.written.locked();
        match self.backend.get(&self.name) {
            Ok(stored) if written.contains(&stored) => Ok(()),
            Ok(_) => Err(self.vanished()),
            Err(e) if is_not_found(&e) => Err(self.vanished()),
            Err(e) => Err(e),
        }
    }

    fn refresh(&self) -> Result<()> {
        failpoint::hit("lock-refresh");
        self.ensure_ours()?;
        self.info.locked().refreshed = chrono::Local::now().to_rfc3339();
        let started = boottime();
        self.write()?;
        {
            let mut t = self.last_refresh.locked();
            let gap = started.saturating_sub(t.0);
            *t = (started, t.1.max(gap));
        }
        Ok(())
    }

    fn clock(&self) -> StorageClock {
        self.clock.locked().to_owned()
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
        let shared = Arc::new(Shared {
            backend,
            key,
            name: ObjectKind::Lock.random_name(),
            info: Mutex::new(LockInfo::ours(exclusive)),
            last_refresh: Mutex::new((boottime(), Duration::ZERO)),
            clock: Mutex::new(StorageClock::local()),
            written: Mutex::new(Vec::new()),
            lost: AtomicBool::new(false),
        });
        // Ours first: its stamp tells the storage's time, by which the
        // others are judged. A writer that checked at the same moment sees
        // ours, so two conflicting ones may both back off, never both go on.
        failpoint::hit("lock-create");
        shared.write()?;
        let host = shared.info_host();
        let others = list_locks_at(shared.backend.as_ref(), &key, &shared.clock());
        let conflict = others.map(|l| {
            l.into_iter().find_map(|(name, info)| {
                let i = info?;
                (name != shared.name && (i.exclusive || exclusive) && !i.is_stale(&host))
                    .then(|| format!("{}; object {name}", i.describe()))
            })
        });
        match conflict {
            Ok(None) => {}
            Ok(Some(who)) => {
                let _ = shared.backend.delete(&shared.name);
                return Err(Error::Locked(who));
            }
            Err(e) => {
                let _ = shared.backend.delete(&shared.name);
                return Err(e);
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
            .map_err(|e| Error::Internal(format!("cannot start lock refresher: {e}")))?;
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

    /// The storage's clock, as read from this lock object at its last write.
    pub fn clock(&self) -> StorageClock {
        self.shared.clock()
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
        let (_, max_gap) = *self.shared.last_refresh.locked();
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
        return Err(Error::Failed(format!(
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
        self.shared.last_refresh.locked().1 = gap;
    }

    /// Fail if the lock went, or has now gone, too long without a refresh,
    /// or if its object was removed or replaced.
    pub fn check(&self) -> Result<()> {
        let (last, max_gap) = *self.shared.last_refresh.locked();
        check_gap(
            &self.shared.name,
            max_gap.max(boottime().saturating_sub(last)),
        )?;
        self.shared.ensure_ours()
    }
}

/// Read the storage's clock by writing a lock object of our own (a shared
/// lock, held for a moment) and reading the time the storage gave it.
pub fn probe_clock(b: &dyn Backend, key: &[u8; 32]) -> Result<StorageClock> {
    let name = ObjectKind::Lock.random_name();
    let before = SystemTime::now();
    b.put(&name, &LockInfo::ours(false).seal(key)?)?;
    let stat = b.stat(&name);
    let clock = stat.map(|o| o.map(|o| StorageClock::from_write(o.modified, before)));
    b.delete(&name)?;
    clock?.ok_or_else(|| {
        Error::Failed(format!(
            "{name} was gone right after it was written: another process removes lock objects; run the command again once it is done"
        ))
    })
}

/// Remove stale locks (or all with `all`); returns the names removed.
/// Staleness is judged by the storage's clock, read from an object written
/// for the purpose.
pub fn remove_locks(b: &dyn Backend, key: &[u8; 32], all: bool) -> Result<Vec<String>> {
    let host = crate::host::hostname();
    let clock = if all {
        StorageClock::local()
    } else {
        probe_clock(b, key)?
    };
    let mut removed = Vec::new();
    for (name, info) in list_locks_at(b, key, &clock)? {
        let stale = info.as_ref().map(|i| i.is_stale(&host)).unwrap_or(true);
        if all || stale {
            b.delete(&name)?;
            removed.push(name);
        }
    }
    Ok(removed)
}
