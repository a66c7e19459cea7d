//! One run of a plan at a time, across the agent and `ironvault run`/`drill`:
//! an flock on `<state_dir>/locks/<plan>.lock`, released when its holder exits
//! (also when it is killed). Retention on one repository, one plan at a time
//! on this host: `<state_dir>/locks/retention-<hash of the URL>.lock`, so two
//! plans sharing a repository do not prune it at once. The agent itself:
//! `<state_dir>/agent.pid`, holding its pid, locked while it runs, so
//! `status` can tell whether an agent runs (a pid alone could be reused).

use anyhow::{Context, Result};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// A held plan lock.
pub struct PlanLock {
    _file: File,
}

impl PlanLock {
    /// Take the plan's lock, or None if another process holds it.
    pub fn try_acquire(state_dir: &Path, plan: &str) -> Result<Option<PlanLock>> {
        Self::try_file(state_dir, &format!("{plan}.lock"))
    }

    /// Take the retention lock of the repository at `url`, waiting while
    /// another plan holds it; None if `stop` says to give up.
    pub fn retention(
        state_dir: &Path,
        url: &str,
        stop: &dyn Fn() -> bool,
        mut waiting: impl FnMut(),
    ) -> Result<Option<PlanLock>> {
        // One repository spelt two ways ("/r/x" and "/r/x/") is one lock.
        let url = url.trim().trim_end_matches('/');
        let hash = ironvault_core::format::Id::hash_of(url.as_bytes()).to_hex();
        let file = format!("retention-{}.lock", &hash[..16]);
        let mut told = false;
        loop {
            if let Some(l) = Self::try_file(state_dir, &file)? {
                return Ok(Some(l));
            }
            if stop() {
                return Ok(None);
            }
            if !told {
                waiting();
                told = true;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    fn try_file(state_dir: &Path, file: &str) -> Result<Option<PlanLock>> {
        let dir = state_dir.join("locks");
        crate::history::create_private_dir(&dir)?;
        let path = dir.join(file);
        let file = open_state_file(&path, true)?;
        // SAFETY: flock on a file descriptor we own.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Ok(None);
            }
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
        Ok(Some(PlanLock { _file: file }))
    }
}

/// The running agent's lock on `<state_dir>/agent.pid`.
pub struct AgentLock {
    _file: File,
}

/// Whether an agent runs with a state dir, as `status` tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentState {
    NotRunning,
    /// Its pid (None while it is starting and has not written it yet).
    Running(Option<u32>),
}

impl AgentLock {
    /// Lock `<state_dir>/agent.pid` and write our pid in it; None (with
    /// the other's pid) if another agent holds it.
    pub fn acquire(state_dir: &Path) -> Result<std::result::Result<AgentLock, Option<u32>>> {
        use std::io::Write;
        crate::history::create_private_dir(state_dir)?;
        let path = state_dir.join("agent.pid");
        let mut file = open_state_file(&path, true)?;
        // `status` holds a shared lock for a moment when it looks: try a
        // few times before taking it as another agent's.
        let mut tries = 0;
        loop {
            if flock(&file, libc::LOCK_EX | libc::LOCK_NB)
                .with_context(|| format!("cannot lock {}", path.display()))?
            {
                break;
            }
            tries += 1;
            if tries == 20 {
                return Ok(Err(read_pid(&file)));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        file.set_len(0)
            .and_then(|_| file.write_all(format!("{}\n", std::process::id()).as_bytes()))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Ok(AgentLock { _file: file }))
    }

    /// Whether an agent holds `<state_dir>/agent.pid` now. Only looks: a
    /// state dir that is missing or unreadable means no agent we can see.
    pub fn state(state_dir: &Path) -> AgentState {
        let path = state_dir.join("agent.pid");
        let Ok(file) = open_state_file(&path, false) else {
            return AgentState::NotRunning;
        };
        match flock(&file, libc::LOCK_SH | libc::LOCK_NB) {
            // Free: no agent (closing the file releases our lock).
            Ok(true) => AgentState::NotRunning,
            Ok(false) => AgentState::Running(read_pid(&file)),
            Err(_) => AgentState::NotRunning,
        }
    }
}

fn read_pid(file: &File) -> Option<u32> {
    use std::io::Read;
    let mut text = String::new();
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// Open a file of the state dir without following a symlink planted in
/// its place (the agent runs as root; a writable state dir must not let
/// anyone point it at another file), and only if it is a regular file (a
/// FIFO there must not make `status` hang). `create`: create it if
/// missing, for writing; else open it for reading only.
fn open_state_file(path: &Path, create: bool) -> Result<File> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .create(create)
        .truncate(false)
        .read(true)
        .write(create)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .with_context(|| {
            format!(
                "cannot open {} (a symlink there is refused)",
                path.display()
            )
        })?;
    let kind = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?
        .file_type();
    if !kind.is_file() || kind.is_fifo() {
        anyhow::bail!(
            "{} is not a regular file; remove it (the agent recreates it)",
            path.display()
        );
    }
    Ok(file)
}

/// flock without blocking: true if taken, false if someone else holds it.
fn flock(file: &File, how: i32) -> std::io::Result<bool> {
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), how) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_sees_the_agent_by_its_lock() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(AgentLock::state(d.path()), AgentState::NotRunning);
        let a = AgentLock::acquire(d.path()).unwrap().ok().unwrap();
        let me = Some(std::process::id());
        assert_eq!(AgentLock::state(d.path()), AgentState::Running(me));
        assert_eq!(AgentLock::acquire(d.path()).unwrap().err(), Some(me));
        drop(a);
        // The file stays, the lock does not: not running.
        assert_eq!(AgentLock::state(d.path()), AgentState::NotRunning);
    }

    #[test]
    fn a_symlink_or_fifo_planted_in_the_state_dir_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"keep me").unwrap();
        let state = d.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::os::unix::fs::symlink(&victim, state.join("agent.pid")).unwrap();
        let e = AgentLock::acquire(&state)
            .err()
            .expect("a symlink must be refused");
        assert!(format!("{e:#}").contains("agent.pid"), "{e:#}");
        assert_eq!(AgentLock::state(&state), AgentState::NotRunning);
        std::fs::create_dir(state.join("locks")).unwrap();
        let absent = d.path().join("created-by-a-link");
        std::os::unix::fs::symlink(&absent, state.join("locks").join("erp.lock")).unwrap();
        std::os::unix::fs::symlink(&victim, state.join("locks").join("other.lock")).unwrap();
        assert!(PlanLock::try_acquire(&state, "erp").is_err());
        assert!(PlanLock::try_acquire(&state, "other").is_err());
        assert!(!absent.exists(), "a lock followed a planted symlink");
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        // A FIFO in place of agent.pid: status answers at once.
        std::fs::remove_file(state.join("agent.pid")).unwrap();
        let fifo = std::ffi::CString::new(state.join("agent.pid").to_str().unwrap()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert_eq!(AgentLock::state(&state), AgentState::NotRunning);
        assert!(AgentLock::acquire(&state).is_err());
    }

    #[test]
    fn one_holder_at_a_time() {
        let d = tempfile::tempdir().unwrap();
        let a = PlanLock::try_acquire(d.path(), "erp").unwrap();
        assert!(a.is_some());
        assert!(PlanLock::try_acquire(d.path(), "erp").unwrap().is_none());
        assert!(PlanLock::try_acquire(d.path(), "other").unwrap().is_some());
        drop(a);
        assert!(PlanLock::try_acquire(d.path(), "erp").unwrap().is_some());
    }

    #[test]
    fn retention_waits_for_the_other_plan_on_the_same_repository() {
        let d = tempfile::tempdir().unwrap();
        let never = || false;
        let a = PlanLock::retention(d.path(), "/r/one", &never, || {}).unwrap();
        assert!(a.is_some());
        // The same repository spelt with a trailing slash is the same lock.
        let t = std::time::Instant::now();
        let soon = || t.elapsed() > std::time::Duration::from_millis(300);
        assert!(PlanLock::retention(d.path(), "/r/one/", &soon, || {})
            .unwrap()
            .is_none());
        // Another repository is free.
        assert!(PlanLock::retention(d.path(), "/r/two", &never, || {})
            .unwrap()
            .is_some());
        // The same one: waits (says so once), and gives up when told to stop.
        let mut waited = 0;
        let t = std::time::Instant::now();
        let stop = || t.elapsed() > std::time::Duration::from_millis(500);
        let b = PlanLock::retention(d.path(), "/r/one", &stop, || waited += 1).unwrap();
        assert!(b.is_none());
        assert_eq!(waited, 1);
        // Released by a thread while the second waits: the second gets it.
        let dir = d.path().to_path_buf();
        let h = std::thread::spawn(move || {
            PlanLock::retention(&dir, "/r/one", &|| false, || {})
                .unwrap()
                .is_some()
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(a);
        assert!(h.join().unwrap());
    }
}
