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
