//! One run of a plan at a time, across the agent and `ironvault run`/`drill`:
//! an flock on `<state_dir>/locks/<plan>.lock`, released when its holder exits
//! (also when it is killed).

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
        let dir = state_dir.join("locks");
        crate::history::create_private_dir(&dir)?;
        let path = dir.join(format!("{plan}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
