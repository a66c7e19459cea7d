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

/// Where progress goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Nothing.
    Off,
    /// One line on stderr, redrawn, if stderr is a terminal.
    Terminal,
    /// One JSON status object per second on stdout (restic's `status` messages).
    JsonLines,
}

impl Mode {
    /// Terminal output unless --quiet; JSON status lines with --json.
    pub fn for_cli(quiet: bool, json: bool) -> Mode {
        match (quiet, json) {
            (true, _) => Mode::Off,
            (false, true) => Mode::JsonLines,
            (false, false) => Mode::Terminal,
        }
    }
}

/// Start showing `line(elapsed)` as `mode` says.
pub fn start(mode: Mode, line: impl Fn(Duration) -> String + Send + 'static) -> Display {
    let mode = match mode {
        Mode::Terminal if !std::io::stderr().is_terminal() => Mode::Off,
        m => m,
    };
    if mode == Mode::Off {
        return Display {
            stop: None,
            thread: None,
        };
    }
    let (tx, rx) = channel::<()>();
    let started = Instant::now();
    let every = Duration::from_millis(if mode == Mode::JsonLines { 1000 } else { 500 });
    let thread = std::thread::spawn(move || {
        while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
            let text = line(started.elapsed());
            if mode == Mode::JsonLines {
                println!("{text}");
                continue;
            }
            let width = std::cmp::max(20, terminal_width().saturating_sub(1));
            let text: String = text.chars().take(width).collect();
            eprint!("\r\x1b[2K{text}");
            let _ = std::io::stderr().flush();
        }
        if mode == Mode::Terminal {
            eprint!("\r\x1b[2K");
        }
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

fn terminal_width() -> usize {
    // SAFETY: winsize is plain data; TIOCGWINSZ fills it for a terminal fd.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(2, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0 {
            return ws.ws_col as usize;
        }
    }
    100
}

/// Totals of what a backup will go through, counted by a scanner thread
/// running beside it (for percent done and ETA).
#[derive(Default)]
pub struct Totals {
    pub files: std::sync::atomic::AtomicU64,
    pub bytes: std::sync::atomic::AtomicU64,
    pub done: std::sync::atomic::AtomicBool,
}

/// Count files and bytes under `paths` in the background (lstat only).
pub fn scan(paths: Vec<std::path::PathBuf>) -> std::sync::Arc<Totals> {
    use std::sync::atomic::Ordering::Relaxed;
    let t = std::sync::Arc::new(Totals::default());
    let t2 = t.clone();
    std::thread::spawn(move || {
        let mut stack = paths;
        while let Some(p) = stack.pop() {
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if md.is_dir() {
                if let Ok(rd) = std::fs::read_dir(&p) {
                    stack.extend(rd.filter_map(|e| e.ok()).map(|e| e.path()));
                }
            } else if md.is_file() {
                t2.files.fetch_add(1, Relaxed);
                t2.bytes.fetch_add(md.len(), Relaxed);
            }
        }
        t2.done.store(true, Relaxed);
    });
    t
}

/// "1:05" from seconds.
pub fn clock(secs: u64) -> String {
    format!("{}:{:02}", secs / 60, secs % 60)
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
