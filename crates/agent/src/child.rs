//! Running one step as a child process: the `ironvault` binary itself (backup,
//! copy, forget, restore, snapshots) or an operator's hook. Children run in
//! their own process group at the plan's nice/ionice, die with the agent
//! (SIGTERM, which they treat as "stop at a safe point"), and are asked to stop
//! with SIGINT when the agent or `run` is stopped.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What a finished child left.
#[derive(Debug, Default)]
pub struct Finished {
    /// Exit code; None if a signal ended it.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// The child's own one-line error ("error: ..."), else its last stderr line.
    pub error: Option<String>,
    /// We asked it to stop.
    pub stopped: bool,
    /// `error` says in words what the exit code meant (a missing
    /// repository, a wrong password): the code adds nothing for a reader.
    pub explained: bool,
    pub seconds: f64,
}

impl Finished {
    /// The last JSON line of stdout with "message_type": "summary" (or the
    /// only JSON document, for commands that print one).
    pub fn summary(&self) -> Option<serde_json::Value> {
        let mut found = None;
        for l in self.stdout.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(l) {
                if v.get("message_type").and_then(|m| m.as_str()) == Some("summary")
                    || !v.is_object()
                    || v.get("message_type").is_none()
                {
                    found = Some(v);
                }
            }
        }
        found
    }

    /// A one-line description of how it failed.
    pub fn failure(&self) -> String {
        let why = self.error.clone().unwrap_or_default();
        match (self.code, why.is_empty()) {
            (Some(c), true) => format!("exit code {c}"),
            (Some(_), false) if self.explained => why,
            (Some(c), false) => format!("{why} (exit code {c})"),
            (None, _) if self.stopped => "stopped".into(),
            (None, true) => "killed by a signal".into(),
            (None, false) => format!("{why} (killed by a signal)"),
        }
    }
}

/// How a child runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    pub nice: Option<i32>,
    /// (class, level) for ioprio_set: 1 realtime, 2 best-effort, 3 idle.
    pub ionice: Option<(i32, i32)>,
}

/// Prepare `cmd` to run as our child: a session of its own (its own process
/// group, no controlling terminal, so a prompt fails instead of stopping it),
/// dies with us, lowered priority.
fn prepare(cmd: &mut Command, limits: Limits) {
    // SAFETY: the closure only makes async-signal-safe system calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            if let Some(n) = limits.nice {
                libc::setpriority(libc::PRIO_PROCESS, 0, n);
            }
            if let Some((class, level)) = limits.ionice {
                // IOPRIO_WHO_PROCESS = 1; the priority is class << 13 | level.
                libc::syscall(libc::SYS_ioprio_set, 1, 0, (class << 13) | level);
            }
            Ok(())
        });
    }
}

/// Read `fd` until its end, or until `done` is set and nothing more is
/// ready: a process that outlives the step and keeps the pipe open (a
/// daemon a hook started) must not hold the step forever.
fn drain(fd: &impl AsRawFd, done: &AtomicBool, mut on_chunk: impl FnMut(&[u8])) {
    let mut buf = [0u8; 8192];
    loop {
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, 100) };
        if r > 0 {
            // SAFETY: reading into our buffer from a descriptor we own.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                on_chunk(&buf[..n as usize]);
                continue;
            }
            if n == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return;
            }
        } else if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
        {
            return;
        }
        if done.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// Run `cmd` to the end; `stop()` asks it to stop (SIGINT to its group, then
/// SIGTERM after `grace`, SIGKILL 10 s later); `on_line` sees each stderr
/// line as it comes.
pub fn run(
    mut cmd: Command,
    limits: Limits,
    stop: &dyn Fn() -> bool,
    grace: Duration,
    on_line: &(dyn Fn(&str) + Sync),
) -> std::io::Result<Finished> {
    prepare(&mut cmd, limits);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;
    let out = child.stdout.take();
    let err = child.stderr.take();
    let done = AtomicBool::new(false);
    let mut fin = Finished::default();
    let (stdout, last_err) = std::thread::scope(|s| {
        let done = &done;
        let o = s.spawn(move || {
            let mut buf = Vec::new();
            if let Some(o) = out {
                drain(&o, done, |c| buf.extend_from_slice(c));
            }
            String::from_utf8_lossy(&buf).into_owned()
        });
        let e = s.spawn(move || {
            let (mut error, mut last) = (None, None);
            let mut pending = Vec::new();
            let mut line = |l: &[u8]| {
                let l = String::from_utf8_lossy(l);
                let l = l.trim_end_matches('\r');
                if !l.trim().is_empty() {
                    on_line(l);
                }
                if let Some(m) = l.strip_prefix("error: ") {
                    error = Some(m.to_string());
                } else if !l.trim().is_empty() {
                    last = Some(l.trim().to_string());
                }
            };
            if let Some(e) = err {
                drain(&e, done, |c| {
                    pending.extend_from_slice(c);
                    while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                        let rest = pending.split_off(i + 1);
                        line(&pending[..i]);
                        pending = rest;
                    }
                });
            }
            if !pending.is_empty() {
                line(&pending);
            }
            error.or(last)
        });
        let mut asked: Option<Instant> = None;
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) => {}
                Err(_) => break None,
            }
            if asked.is_none() && stop() {
                // SAFETY: signalling the child's own process group.
                unsafe { libc::kill(-pid, libc::SIGINT) };
                asked = Some(Instant::now());
            }
            if let Some(t) = asked {
                let sig = if t.elapsed() > grace + Duration::from_secs(10) {
                    libc::SIGKILL
                } else if t.elapsed() > grace {
                    libc::SIGTERM
                } else {
                    0
                };
                if sig != 0 {
                    // SAFETY: as above.
                    unsafe { libc::kill(-pid, sig) };
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        fin.stopped = asked.is_some();
        fin.code = status.and_then(|s| s.code());
        // Something the child started may still hold its output open: give it
        // a moment, then stop reading and end what is left of its group.
        let t = Instant::now();
        while !(o.is_finished() && e.is_finished()) && t.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !(o.is_finished() && e.is_finished()) {
            done.store(true, Ordering::SeqCst);
            // SAFETY: signalling the step's own process group.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        (o.join().unwrap_or_default(), e.join().unwrap_or_default())
    });
    fin.stdout = stdout;
    fin.error = last_err;
    fin.seconds = started.elapsed().as_secs_f64();
    Ok(fin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(script);
        c
    }

    #[test]
    fn output_errors_and_limits_reach_us() {
        let f = run(
            sh("echo '{\"message_type\":\"status\"}'; echo '{\"message_type\":\"summary\",\"n\":1}'; echo 'error: it broke' >&2; exit 3"),
            Limits::default(),
            &|| false,
            Duration::from_secs(5),
            &|_| {},
        )
        .unwrap();
        assert_eq!(f.code, Some(3));
        assert_eq!(f.summary().unwrap()["n"], 1);
        assert_eq!(f.failure(), "it broke (exit code 3)");
        let f = run(
            sh("cat /proc/self/stat | cut -d' ' -f19; ionice -p $$ 2>/dev/null || echo none"),
            Limits {
                nice: Some(7),
                ionice: Some((3, 0)),
            },
            &|| false,
            Duration::from_secs(5),
            &|_| {},
        )
        .unwrap();
        let mut lines = f.stdout.lines();
        assert_eq!(lines.next(), Some("7"), "nice value: {}", f.stdout);
        let io = lines.next().unwrap_or("");
        assert!(io == "idle" || io == "none", "ionice: {io}");
    }

    #[test]
    fn a_daemon_holding_the_output_does_not_hold_the_step() {
        let t = Instant::now();
        let f = run(
            sh("echo started; setsid sleep 30 & echo done >&2"),
            Limits::default(),
            &|| false,
            Duration::from_secs(5),
            &|_| {},
        )
        .unwrap();
        assert_eq!(f.code, Some(0));
        assert_eq!(f.stdout, "started\n");
        assert_eq!(f.error.as_deref(), Some("done"));
        assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    }

    #[test]
    fn a_child_that_ignores_signals_is_killed() {
        let t = Instant::now();
        let f = run(
            sh("trap '' INT TERM; echo ready >&2; sleep 60"),
            Limits::default(),
            &|| t.elapsed() > Duration::from_millis(500),
            Duration::from_millis(200),
            &|_| {},
        )
        .unwrap();
        assert!(f.stopped);
        assert_eq!(f.error.as_deref(), Some("ready"), "the trap was set");
        assert_eq!(f.code, None, "ended by SIGKILL");
        assert!(
            t.elapsed() >= Duration::from_secs(10),
            "SIGINT and SIGTERM were ignored first"
        );
    }

    #[test]
    fn a_stop_request_interrupts_the_child() {
        let asked = AtomicBool::new(false);
        let t = Instant::now();
        let f = std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(300));
                asked.store(true, Ordering::SeqCst);
            });
            run(
                sh("trap 'echo caught >&2; exit 130' INT; sleep 30; sleep 30"),
                Limits::default(),
                &|| asked.load(Ordering::SeqCst),
                Duration::from_secs(10),
                &|_| {},
            )
            .unwrap()
        });
        assert!(f.stopped);
        assert_eq!(f.code, Some(130));
        assert_eq!(f.error.as_deref(), Some("caught"));
        assert!(t.elapsed() < Duration::from_secs(20));
    }
}
