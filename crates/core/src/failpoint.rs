//! Named crash points for crash-safety tests. Built only with the
//! `failpoints` feature; `IRONVAULT_FAILPOINT=name` (or `name@N` for the N-th
//! hit, counting from 1) kills the process with SIGKILL at that point, so no
//! destructor, buffer flush or lock removal runs — as in a power cut.

/// Every failpoint name, in write order (the crash tests loop over them).
pub const ALL: &[&str] = &[
    "lock-create",
    "pack-temp-write",
    "pack-before-fsync",
    "pack-before-rename",
    "pack-after-rename",
    "pack-after-dir-fsync",
    "index-before-rename",
    "index-after-rename",
    "snapshot-before-rename",
    "snapshot-after-rename",
    "lock-refresh",
    "lock-remove",
];

/// Prune's failpoints, in order (a separate list: backups never reach them).
pub const PRUNE: &[&str] = &[
    "prune-repacked",
    "prune-deletions-written",
    "prune-index-written",
    "prune-old-index-deleted",
    "prune-pack-deleted",
    "prune-packs-deleted",
];

/// Rewrite's failpoints, in order.
pub const REWRITE: &[&str] = &[
    "rewrite-snapshot-saved",
    "rewrite-request-written",
    "rewrite-original-deleted",
];

/// Kill the process here if `IRONVAULT_FAILPOINT` names this point.
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static SPEC: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let spec = SPEC.get_or_init(|| {
        let v = std::env::var("IRONVAULT_FAILPOINT").ok()?;
        match v.split_once('@') {
            Some((n, c)) => Some((n.to_string(), c.parse().unwrap_or(1))),
            None => Some((v, 1)),
        }
    });
    if let Some((n, at)) = spec {
        if n == name && COUNT.fetch_add(1, Ordering::SeqCst) + 1 == *at {
            eprintln!("failpoint {name}: killing the process");
            // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}

/// Without the `failpoints` feature this compiles to nothing.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}

/// Hold the process here if `IRONVAULT_PAUSE=name=FILE` names this point:
/// create `FILE.reached`, then wait (at most 5 minutes) until FILE exists.
/// Tests use it to order two processes, e.g. a backup that has loaded the
/// index and a prune that marks its packs for deletion.
#[cfg(feature = "failpoints")]
pub fn pause(name: &str) {
    let Ok(v) = std::env::var("IRONVAULT_PAUSE") else {
        return;
    };
    let Some((n, file)) = v.split_once('=') else {
        return;
    };
    if n != name {
        return;
    }
    let _ = std::fs::write(format!("{file}.reached"), b"");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while !std::path::Path::new(file).exists() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Without the `failpoints` feature this compiles to nothing.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn pause(_name: &str) {}
