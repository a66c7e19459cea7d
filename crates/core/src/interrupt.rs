//! A process-wide "stop" request (set from a SIGINT/SIGTERM handler by the
//! CLI). Long operations poll it and stop at a safe point: a backup stops
//! before its snapshot is written, leaving only packs the next run reuses.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Ask running operations to stop. Async-signal-safe (one atomic store).
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// True once a stop was requested.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}
