//! The world the trials act on: repositories made quickly, source trees
//! kept version by version, and the two judgements every trial makes:
//! what a command's run says (exit, error lines, panics) and whether a
//! restored snapshot is the source byte for byte or names what it missed.

use crate::common::*;
use crate::rng::Rng;
use ironvault_core::backend::s3::S3Options;
use ironvault_core::backend::{open_location, Backend};
use ironvault_core::crypto::kdf::KdfParams;
use ironvault_core::repo::Repository;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

/// Key derivation parameters for the trials' repositories. Each run of the
/// binary derives the key once; at the default (64 MiB, t = 3) that is most
/// of a small command's time, and the trials run tens of thousands of
/// commands. The KDF is not under test here: the same code reads any
/// parameters a key file names (format.md §3.2).
pub const FAST_KDF: KdfParams = KdfParams {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

/// The storage behind a location (a directory or an s3: URL).
pub fn backend(location: &str) -> Arc<dyn Backend> {
    Arc::from(open_location(location, &S3Options::default()).unwrap())
}

/// Create the repository of `env` (with FAST_KDF), related to `other` if given.
pub fn init(env: &Env, other: Option<&Env>) {
    let other = other
        .map(|o| Repository::open(backend(o.repo.to_str().unwrap()), PASSWORD.as_bytes()).unwrap());
    Repository::init(
        backend(env.repo.to_str().unwrap()),
        PASSWORD.as_bytes(),
        FAST_KDF,
        other.as_ref(),
    )
    .unwrap();
}

/// Delete every object of an S3 repository (trials leave nothing behind
/// in the shared bucket); local ones go with their scratch directory.
pub fn wipe(env: &Env) {
    if !on_s3(env) {
        return;
    }
    let b = backend(env.repo.to_str().unwrap());
    for o in b.list("").unwrap_or_default() {
        let _ = b.delete(&o.name);
    }
}

/// True for an S3 repository.
pub fn on_s3(env: &Env) -> bool {
    env.repo.to_str().unwrap().starts_with("s3:")
}

/// One run of the binary, judged.
pub struct Run {
    pub out: Output,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.out.status.code()
    }
    pub fn ok(&self) -> bool {
        self.out.status.success()
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    /// Lines of standard error that start with "error:".
    pub fn error_lines(&self) -> Vec<String> {
        self.stderr()
            .lines()
            .filter(|l| l.starts_with("error:"))
            .map(str::to_string)
            .collect()
    }
    /// A panic, or death by a signal the trial did not send.
    pub fn panicked(&self) -> bool {
        self.code() == Some(101)
            || self.stderr().contains("panicked at")
            || matches!(self.out.status.signal(), Some(s) if s != libc::SIGKILL)
    }
    /// Killed by SIGKILL (a failpoint, or the trial).
    pub fn killed(&self) -> bool {
        self.out.status.signal() == Some(libc::SIGKILL)
    }
    /// A short account for failure reports.
    pub fn describe(&self) -> String {
        let err = self.stderr();
        let lines: Vec<&str> = err.lines().collect();
        let tail = &lines[lines.len().saturating_sub(6)..];
        format!("exit {:?}; stderr: {}", self.out.status, tail.join(" | "))
    }
}

/// Run `args` in `env` and capture everything.
pub fn exec(env: &Env, args: &[&str]) -> Run {
    Run { out: env.run(args) }
}

/// Run `args` with extra environment variables.
pub fn exec_with(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> Run {
    let mut c = env.cmd(args);
    for (k, v) in vars {
        c.env(k, v);
    }
    Run {
        out: c.output().unwrap(),
    }
}

/// `--from-repo OTHER` arguments' password, for copy and repair.
pub fn from_vars() -> [(&'static str, &'static str); 1] {
    [("IRONVAULT_FROM_PASSWORD", PASSWORD)]
}

/// The snapshot id a `backup --json` run printed.
pub fn snapshot_id_of(r: &Run) -> Option<String> {
    let out = r.stdout();
    let v: serde_json::Value = serde_json::from_str(out.lines().last()?).ok()?;
    v["snapshot_id"].as_str().map(str::to_string)
}

/// Snapshots as `snapshots --json` lists them: id and time.
pub fn snapshots(env: &Env) -> Vec<(String, String)> {
    let r = exec(env, &["snapshots", "--json"]);
    assert!(r.ok(), "snapshots: {}", r.describe());
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["time"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// A source tree that changes between backups, with a copy of each version
/// (`versions/<n>/<name>`, as restore writes it under its target).
pub struct Source {
    pub dir: PathBuf,
    pub name: String,
    versions: PathBuf,
    count: usize,
}

impl Source {
    /// The first version: every file type ironvault keeps (make_rich_tree)
    /// plus `bulk` bytes of random data and a `secrets/` directory (what
    /// the rewrite trials erase).
    pub fn new(env: &Env, name: &str, bulk: usize, rng: &mut Rng) -> Source {
        make_rich_tree(&env.path(name), false);
        Source::grown(env, name, bulk, rng)
    }

    /// A small source for many quick versions: a few files, no special ones.
    pub fn small(env: &Env, name: &str, bulk: usize, rng: &mut Rng) -> Source {
        write(&env.path(name).join("readme.txt"), b"a small tree\n");
        Source::grown(env, name, bulk, rng)
    }

    /// The source at `env.path(name)` as it is, grown once by `bulk` bytes.
    fn grown(env: &Env, name: &str, bulk: usize, rng: &mut Rng) -> Source {
        let mut s = Source {
            dir: env.path(name),
            name: name.to_string(),
            versions: env.path(&format!("versions-{name}")),
            count: 0,
        };
        s.grow(bulk, rng);
        s
    }

    /// Change the tree: a new bulk file, one changed and one removed file,
    /// a new secret.
    pub fn grow(&mut self, bulk: usize, rng: &mut Rng) {
        let n = self.count;
        let seed = rng.next();
        write(
            &self.dir.join(format!("bulk/b{n}.bin")),
            &random_bytes(bulk, seed),
        );
        write(
            &self.dir.join(format!("notes/n{}.txt", n % 3)),
            format!("version {n} {seed}\n").repeat(50 + n).as_bytes(),
        );
        if n >= 2 {
            let _ = std::fs::remove_file(self.dir.join(format!("bulk/b{}.bin", n - 2)));
        }
        write(
            &self.dir.join(format!("secrets/s{n}.secret")),
            format!("secret {seed}\n").as_bytes(),
        );
        self.count += 1;
    }

    /// Keep a copy of the tree as it is now; returns where.
    pub fn keep(&self) -> PathBuf {
        let at = self.versions.join(format!("{}", self.count));
        std::fs::create_dir_all(&at).unwrap();
        let to = at.join(&self.name);
        if !to.exists() {
            copy_tree(&self.dir, &to);
        }
        to
    }
}

/// A copy of `tree` without its `secrets/` directory (what `rewrite
/// --exclude secrets` leaves); the root keeps its times.
pub fn without_secrets(tree: &Path) -> PathBuf {
    let out = tree
        .parent()
        .unwrap()
        .join(format!(
            "{}-erased",
            tree.file_name().unwrap().to_str().unwrap()
        ))
        .join(tree.file_name().unwrap());
    if out.exists() {
        return out;
    }
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    copy_tree(tree, &out);
    std::fs::remove_dir_all(out.join("secrets")).unwrap();
    let m = std::fs::symlink_metadata(tree).unwrap();
    set_times(&out, m.mtime(), m.mtime_nsec());
    out
}

/// How a restore of one snapshot turned out.
#[derive(Debug, Default)]
pub struct Restored {
    /// Differences from the source that the restore did not report (garbage or silent loss).
    pub silent: Vec<String>,
    /// Differences it reported itself.
    pub reported: usize,
    pub panicked: bool,
    /// The whole restore failed (exit 1) or was partial (exit 3).
    pub failed: bool,
    /// The restore's error lines.
    pub errors: Vec<String>,
    pub account: String,
}

impl Restored {
    /// Restored byte for byte.
    pub fn identical(&self) -> bool {
        self.silent.is_empty() && self.reported == 0 && !self.failed && !self.panicked
    }
}

/// Restore snapshot `id` of `env` and compare it with `expected` (a
/// directory whose name is the backed-up directory's). Each difference
/// must be one the restore named in an error line (the file or a directory
/// above it), or the restore as a whole failed; anything else is silent.
pub fn restore_and_compare(env: &Env, id: &str, expected: &Path, label: &str) -> Restored {
    let target = env.path(&format!("restore-{label}"));
    let _ = std::fs::remove_dir_all(&target);
    let r = exec(env, &["restore", id, "--target", target.to_str().unwrap()]);
    let mut res = Restored {
        panicked: r.panicked(),
        account: r.describe(),
        ..Default::default()
    };
    let name = expected.file_name().unwrap();
    let got = target.join(name);
    let whole_failure = !r.ok() && r.code() != Some(3);
    res.failed = !r.ok();
    res.errors = r.error_lines();
    if !got.exists() {
        if r.ok() {
            res.silent
                .push(format!("{}: not restored at all", got.display()));
        } else {
            res.reported += 1;
        }
        return res;
    }
    let errors = r.error_lines();
    res.errors = errors.clone();
    let named = |rel: &str| -> bool {
        // The path or any directory above it, as the restore names it.
        let mut p = got.clone();
        let mut cands = vec![format!("{}:", p.display())];
        for part in rel.split('/').filter(|s| !s.is_empty()) {
            p.push(part);
            cands.push(format!("{}:", p.display()));
        }
        errors.iter().any(|l| cands.iter().any(|c| l.contains(c)))
    };
    for d in diff_trees(expected, &got) {
        let rel = diff_subject(&d);
        match rel {
            Some(rel) if whole_failure || named(&rel) => res.reported += 1,
            None if whole_failure || !errors.is_empty() => res.reported += 1,
            _ => res.silent.push(d),
        }
    }
    let _ = std::fs::remove_dir_all(&target);
    res
}

/// The path a diff_trees line is about (None: hard-link groups).
fn diff_subject(d: &str) -> Option<String> {
    if let Some(p) = d.strip_prefix("missing in restore: ") {
        return Some(p.to_string());
    }
    if let Some(p) = d.strip_prefix("extra in restore: ") {
        return Some(p.to_string());
    }
    if d.starts_with("hard-link groups differ") {
        return None;
    }
    d.split_once(": ").map(|(p, _)| p.to_string())
}

/// Restore every snapshot in `expected` (id → tree) and return the
/// problems: silent differences, panics, and (with `must_be_identical`)
/// any snapshot that is not restored byte for byte.
pub fn restore_all(
    env: &Env,
    expected: &BTreeMap<String, PathBuf>,
    must_be_identical: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, (id, tree)) in expected.iter().enumerate() {
        let r = restore_and_compare(env, id, tree, &format!("all-{i}"));
        let short = &id[..8];
        if r.panicked {
            problems.push(format!("restore {short} panicked: {}", r.account));
        }
        if !r.silent.is_empty() {
            problems.push(format!(
                "restore {short} differs without saying so: {} ({})",
                r.silent.join("; "),
                r.account
            ));
        } else if must_be_identical && !r.identical() {
            problems.push(format!(
                "restore {short} is not the source ({} differences reported): {}",
                r.reported, r.account
            ));
        }
    }
    problems
}
