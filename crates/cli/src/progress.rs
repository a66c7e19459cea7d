//! Progress while a command runs: one line on a terminal (nothing when
//! stderr is not a terminal, or with --quiet), or with --json one restic-style
//! JSON status object per second on stdout.
//!
//! The terminal line is drawn by `indicatif`, not by hand: it fits the line
//! to the terminal's width, redraws and clears it, and draws nothing on a
//! stderr that is not a terminal (or is TERM=dumb). Its cost, measured: four
//! small crates (indicatif, console, portable-atomic, unit-prefix; default
//! features off), about 7 s of CPU once in a clean build, nothing after. We
//! still decide "not a terminal" ourselves first, so that then no bar and no
//! thread exist at all and stderr gets nothing but what the command says.
//! The JSON lines are ours: their shape is an interface (restic's `status`).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::output::bytes;

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

/// Start showing `line(elapsed)` as `mode` says: on a terminal twice a
/// second, as JSON once a second.
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
    let thread = if mode == Mode::JsonLines {
        std::thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(1)) {
                println!("{}", line(started.elapsed()));
            }
        })
    } else {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        // A fixed template with one known placeholder: it always parses.
        let style = ProgressStyle::with_template("{wide_msg}").expect("a valid template");
        bar.set_style(style);
        std::thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_millis(500)) {
                bar.set_message(line(started.elapsed()));
            }
            bar.finish_and_clear();
        })
    };
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
        "[{}:{:02}] {}, {} {what}, {}/s",
        elapsed.as_secs() / 60,
        elapsed.as_secs() % 60,
        crate::output::plural(files, "file"),
        bytes(done_bytes),
        bytes((done_bytes as f64 / secs) as u64)
    )
}
