//! A one-line progress display on a terminal (nothing when stderr is not a
//! terminal, or with --quiet / --json), refreshed twice a second.

use crate::output::bytes;
use std::io::{IsTerminal, Write};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running display; stops (and clears its line) when dropped.
pub struct Display {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Start showing `line(elapsed)` if appropriate.
pub fn start(enabled: bool, line: impl Fn(Duration) -> String + Send + 'static) -> Display {
    if !enabled || !std::io::stderr().is_terminal() {
        return Display {
            stop: None,
            thread: None,
        };
    }
    let (tx, rx) = channel::<()>();
    let started = Instant::now();
    let thread = std::thread::spawn(move || {
        while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_millis(500)) {
            let mut text = line(started.elapsed());
            text.truncate(160);
            eprint!("\r\x1b[2K{text}");
            let _ = std::io::stderr().flush();
        }
        eprint!("\r\x1b[2K");
    });
    Display {
        stop: Some(tx),
        thread: Some(thread),
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// "[0:12] 1234 files, 1.2 GiB, 95.0 MiB/s".
pub fn rate_line(elapsed: Duration, files: u64, what: &str, done_bytes: u64) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    format!(
        "[{}:{:02}] {files} files, {} {what}, {}/s",
        elapsed.as_secs() / 60,
        elapsed.as_secs() % 60,
        bytes(done_bytes),
        bytes((done_bytes as f64 / secs) as u64)
    )
}
