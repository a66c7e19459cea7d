//! SIGINT/SIGTERM: ask the engine to stop at a safe point. A second signal
//! ends the process at once (the repository stays consistent either way).

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static SEEN: AtomicBool = AtomicBool::new(false);
/// The command writes snapshots (backup, copy): say that none will be written.
static WRITES_SNAPSHOTS: AtomicBool = AtomicBool::new(false);
/// A command's process group whose output is being backed up: it is ended on
/// the first signal, so a backup blocked reading from it sees the end at once.
static CHILD_GROUP: AtomicI32 = AtomicI32::new(0);
/// The command logs its own stop message (the agent, with a timestamp).
static LOGS_ITS_STOP: AtomicBool = AtomicBool::new(false);

/// Register the process group of the command `backup --stdin-from-command` reads.
pub fn set_child_group(pgid: i32) {
    CHILD_GROUP.store(pgid, Ordering::SeqCst);
}

/// Write a message to stderr from a signal handler (write(2) is async-signal-safe).
fn say(msg: &[u8]) {
    // SAFETY: write(2) on fd 2 with a valid buffer; async-signal-safe.
    unsafe {
        libc::write(2, msg.as_ptr() as *const libc::c_void, msg.len());
    }
}

/// End the registered command's process group, if any.
fn end_child_group() {
    let group = CHILD_GROUP.load(Ordering::SeqCst);
    if group > 0 {
        // SAFETY: kill(2) is async-signal-safe; the group is the command's own.
        unsafe { libc::kill(-group, libc::SIGTERM) };
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    // First, before any message: a message to a closed or stuck stderr
    // (our reader died) must not keep the command from being ended.
    end_child_group();
    if SEEN.swap(true, Ordering::SeqCst) {
        if LOGS_ITS_STOP.load(Ordering::SeqCst) {
            // The agent: its steps, in sessions of their own, get their
            // parent-death signal (SIGTERM) and stop at a safe point.
            say(b"stopped at once: running steps are told to stop (SIGTERM); after hooks do not run\n");
        } else {
            say(b"\nstopped at once; the repository is consistent, and the next run reuses what was stored\n");
        }
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + sig) };
    }
    if LOGS_ITS_STOP.load(Ordering::SeqCst) {
        // Nothing to say here.
    } else if WRITES_SNAPSHOTS.load(Ordering::SeqCst) {
        say(b"\nstopping at the next safe point (no snapshot will be written); signal again to stop at once\n");
    } else {
        say(b"\nstopping at the next safe point; signal again to stop at once\n");
    }
    ironvault_core::interrupt::request();
}

/// Install the handlers; `writes_snapshots` for backup and copy;
/// `logs_its_stop` for a command that says itself that it is stopping.
pub fn install(writes_snapshots: bool, logs_its_stop: bool) {
    WRITES_SNAPSHOTS.store(writes_snapshots, Ordering::SeqCst);
    LOGS_ITS_STOP.store(logs_its_stop, Ordering::SeqCst);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: on_signal only touches atomics and calls _exit, both async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}
