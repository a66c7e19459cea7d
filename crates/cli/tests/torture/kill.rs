//! kill -9 at random moments of backup, prune, copy, rewrite and repair, on
//! a local directory and on S3. A moment is either a time drawn uniformly
//! within the operation's expected run (learnt from runs the kill missed)
//! or a failpoint of the write order (`IRONVAULT_FAILPOINT=name@N`).
//! After each kill: `check --read-data` passes, every snapshot committed
//! before the kill restores byte for byte (and whatever the killed run
//! committed is complete), and running the operation again completes.

use crate::common::s3;
use crate::common::*;
use crate::report::Report;
use crate::rng::{trial_seed, Rng};
use crate::world::*;
use crate::Plan;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Random data added by each version of a source: enough that a backup
/// or a copy runs long enough to be killed in the middle.
const BULK: usize = 12 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Op {
    Backup,
    Prune,
    Copy,
    Rewrite,
    Repair,
}

const OPS: [Op; 5] = [Op::Backup, Op::Prune, Op::Copy, Op::Rewrite, Op::Repair];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Backup => "backup",
            Op::Prune => "prune",
            Op::Copy => "copy",
            Op::Rewrite => "rewrite",
            Op::Repair => "repair",
        }
    }

    /// Failpoints this operation passes, on local storage or on S3 (where
    /// the local backend's write-order points do not exist).
    fn failpoints(self, on_s3: bool) -> Vec<&'static str> {
        use ironvault_core::failpoint::{ALL, PRUNE, REWRITE};
        let mut v = vec!["lock-create", "lock-remove"];
        let writes: &[&str] = if on_s3 { &[] } else { &ALL[1..10] };
        match self {
            Op::Backup | Op::Copy | Op::Repair => v.extend_from_slice(writes),
            Op::Prune => {
                v.extend_from_slice(PRUNE);
                v.extend_from_slice(writes);
            }
            Op::Rewrite => {
                v.extend_from_slice(REWRITE);
                v.extend_from_slice(writes);
                v.extend_from_slice(PRUNE);
            }
        }
        v
    }
}

/// When the trial kills the operation.
#[derive(Clone, Debug)]
enum Moment {
    /// This fraction of the expected run time (the last uninterrupted run's).
    At(f64),
    Failpoint(String),
}

/// One prepared trial: the repository, the operation, and what must hold.
struct Setup {
    env: Env,
    /// Repositories and scratch areas that must outlive the trial.
    _aux: Vec<Env>,
    args: Vec<String>,
    vars: Vec<(&'static str, String)>,
    /// Snapshots that must survive, with their trees.
    keep: BTreeMap<String, PathBuf>,
    /// Snapshots the operation may remove (forget, rewrite), with their trees.
    may_go: BTreeMap<String, PathBuf>,
    /// Trees of snapshots the operation may write: by id (copy) ...
    new_by_id: BTreeMap<String, PathBuf>,
    /// ... by snapshot time (rewrite's replacements) ...
    new_by_time: BTreeMap<String, PathBuf>,
    /// ... or any new snapshot (backup).
    new_any: Option<PathBuf>,
    /// Times of the snapshots rewrite replaces.
    original_times: BTreeMap<String, String>,
    /// Check only after the rerun (repair packs starts from a damaged repository).
    check_after_kill: bool,
    /// After the rerun, the snapshots that may_go names must be gone (rewrite).
    originals_replaced: bool,
}

/// Kill trials on local storage, then on S3.
pub fn run(plan: &Plan, report: &mut Report) {
    let mut est: HashMap<(Op, bool), f64> = HashMap::new();
    for on_s3 in [false, true] {
        let part = if on_s3 { "kill-s3" } else { "kill-local" };
        let mut landed = 0;
        let mut n = 0u64;
        let cap = plan.sizes.kills * 4 + 5;
        while n < cap && (landed < plan.sizes.kills || (plan.single() && plan.wants(part, n))) {
            if plan.single() && !plan.wants(part, n) {
                n += 1;
                if n > 100_000 {
                    break;
                }
                continue;
            }
            let op = OPS[(n % 5) as usize];
            let seed = trial_seed(plan.seed, part, n);
            if trial(report, part, n, op, on_s3, seed, &mut est) {
                landed += 1;
            }
            n += 1;
            if plan.single() {
                break;
            }
        }
    }
}

/// One trial; returns whether the kill landed.
fn trial(
    report: &mut Report,
    part: &str,
    n: u64,
    op: Op,
    on_s3: bool,
    seed: u64,
    est: &mut HashMap<(Op, bool), f64>,
) -> bool {
    let mut rng = Rng::new(seed);
    let kind = format!(
        "kill -9 {} ({})",
        op.name(),
        if on_s3 { "S3" } else { "local" }
    );
    let id = format!("{part}/{n}");
    let s = setup(op, on_s3, &mut rng);
    let moment = if rng.chance(0.5) {
        Moment::At(rng.unit())
    } else {
        let fps = op.failpoints(on_s3);
        Moment::Failpoint(format!(
            "{}@{}",
            rng.pick(&fps),
            if rng.chance(0.25) { 2 } else { 1 }
        ))
    };
    let guess = *est.entry((op, on_s3)).or_insert(match op {
        Op::Backup | Op::Copy => 1.5,
        _ => 1.0,
    });
    let args: Vec<&str> = s.args.iter().map(String::as_str).collect();
    let mut vars: Vec<(&str, &str)> = s.vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let t0 = Instant::now();
    let killed = match &moment {
        Moment::At(f) => kill_after(&s.env, &args, &vars, Duration::from_secs_f64(f * guess)),
        Moment::Failpoint(fp) => {
            vars.push(("IRONVAULT_FAILPOINT", fp));
            exec_with(&s.env, &args, &vars)
        }
    };
    let elapsed = t0.elapsed().as_secs_f64();
    let landed = killed.killed();
    if !landed {
        // It ran to its end: that is how long it takes, so later kills land inside it.
        est.insert((op, on_s3), elapsed);
    }
    eprintln!(
        "{id} {kind} at {moment:?} (of ~{guess:.1} s): {}",
        if landed { "killed" } else { "finished first" }
    );
    let mut problems = Vec::new();
    let mut lost = false;
    if killed.panicked() {
        problems.push(format!("the operation panicked: {}", killed.describe()));
    }
    if !landed && !killed.ok() {
        problems.push(format!(
            "the operation failed without a kill: {}",
            killed.describe()
        ));
    }
    judge(&s, false, &mut problems, &mut lost);
    // Running it again completes, and everything still holds.
    let rerun_args: Vec<&str> = s.args.iter().map(String::as_str).collect();
    let rerun_vars: Vec<(&str, &str)> = s.vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let again = exec_with(&s.env, &rerun_args, &rerun_vars);
    if !again.ok() {
        problems.push(format!("the rerun failed: {}", again.describe()));
    }
    let mut s = s;
    if let (Some(tree), Some(new)) = (&s.new_any, snapshot_id_of(&again)) {
        s.keep.insert(new, tree.clone());
    }
    judge(&s, true, &mut problems, &mut lost);
    wipe(&s.env);
    s._aux.iter().for_each(wipe);

    let row = report.row(&kind);
    row.trials += 1;
    row.injected += landed as u64;
    row.lost += lost as u64;
    row.panics += killed.panicked() as u64;
    if !problems.is_empty() {
        row.failed += 1;
        report.fail(
            &kind,
            &id,
            format!("killed at {moment:?}: {}", problems.join("; ")),
        );
    }
    landed
}

/// Run `args`, kill it with SIGKILL after `after` unless it ended first.
fn kill_after(env: &Env, args: &[&str], vars: &[(&str, &str)], after: Duration) -> Run {
    let out = env.path("killed.out");
    let err = env.path("killed.err");
    let mut c = env.cmd(args);
    for (k, v) in vars {
        c.env(k, v);
    }
    let mut child = c
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + after;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    Run {
        out: std::process::Output {
            status,
            stdout: std::fs::read(&out).unwrap_or_default(),
            stderr: std::fs::read(&err).unwrap_or_default(),
        },
    }
}

/// What must hold after the kill (`rerun` false) or after the rerun.
fn judge(s: &Setup, rerun: bool, problems: &mut Vec<String>, lost: &mut bool) {
    let when = if rerun {
        "after the rerun"
    } else {
        "after the kill"
    };
    if rerun || s.check_after_kill {
        let c = exec(&s.env, &["check", "--read-data"]);
        if !c.ok() {
            problems.push(format!("check --read-data {when}: {}", c.describe()));
        }
    }
    let present: BTreeMap<String, String> = snapshots(&s.env).into_iter().collect();
    let mut expected: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (id, tree) in &s.keep {
        if present.contains_key(id) {
            expected.insert(id.clone(), tree.clone());
        } else {
            *lost = true;
            problems.push(format!("snapshot {} is gone {when}", &id[..8]));
        }
    }
    for (id, time) in &present {
        if s.keep.contains_key(id) {
            continue;
        }
        let tree = if let Some(t) = s.may_go.get(id) {
            if rerun && s.originals_replaced {
                problems.push(format!(
                    "snapshot {} is still there {when}, not rewritten",
                    &id[..8]
                ));
            }
            Some(t)
        } else if let Some(t) = s.new_by_id.get(id) {
            Some(t)
        } else if let Some(t) = s.new_by_time.get(time) {
            Some(t)
        } else {
            s.new_any.as_ref()
        };
        match tree {
            Some(t) => {
                expected.insert(id.clone(), t.clone());
            }
            None => problems.push(format!("unexpected snapshot {} {when}", &id[..8])),
        }
    }
    // An original the operation removed must have left its replacement.
    let times: std::collections::BTreeSet<&String> = present.values().collect();
    for (id, time) in &s.original_times {
        if !present.contains_key(id) && !times.contains(time) {
            *lost = true;
            problems.push(format!(
                "snapshot {} is gone {when} and nothing replaced it",
                &id[..8]
            ));
        }
    }
    // Before the rerun of a repair the damage it heals is still there:
    // then only nothing may be restored wrong without an error.
    let restore_problems = restore_all(&s.env, &expected, rerun || s.check_after_kill);
    if !restore_problems.is_empty() {
        *lost = true;
        problems.extend(restore_problems.into_iter().map(|p| format!("{p} {when}")));
    }
}

/// A fresh repository on local storage or S3.
fn fresh(on_s3: bool) -> Env {
    let env = if on_s3 {
        Env::with_repo(&s3::unique_location("torture-kill"))
    } else {
        Env::new()
    };
    init(&env, None);
    env
}

/// Back up `src` (which must succeed) and keep its tree.
fn commit(env: &Env, src: &Source) -> (String, PathBuf) {
    let r = exec(env, &["backup", "--json", src.dir.to_str().unwrap()]);
    assert!(r.ok(), "backup during setup: {}", r.describe());
    (snapshot_id_of(&r).unwrap(), src.keep())
}

impl Setup {
    fn new(env: Env) -> Setup {
        Setup {
            env,
            _aux: Vec::new(),
            args: Vec::new(),
            vars: Vec::new(),
            keep: BTreeMap::new(),
            may_go: BTreeMap::new(),
            new_by_id: BTreeMap::new(),
            new_by_time: BTreeMap::new(),
            original_times: BTreeMap::new(),
            new_any: None,
            check_after_kill: true,
            originals_replaced: false,
        }
    }

    fn args(&mut self, args: &[&str]) {
        self.args = args.iter().map(|x| x.to_string()).collect();
    }

    /// The operation reads a related repository (copy, repair packs).
    fn from(&mut self, other: &Env) -> String {
        self.vars
            .push(("IRONVAULT_FROM_PASSWORD", PASSWORD.to_string()));
        other.repo.to_str().unwrap().to_string()
    }
}

/// `n` snapshots of a growing source in `env`, oldest first.
fn history(env: &Env, n: usize, bulk: usize, rng: &mut Rng) -> Vec<(String, PathBuf)> {
    let mut src = Source::new(env, "src", bulk, rng);
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(commit(env, &src));
        src.grow(bulk, rng);
    }
    out
}

/// A related copy of `of` holding the snapshots `ids` (all: None).
fn related_copy(on_s3: bool, of: &Env, ids: Option<&[&str]>) -> Env {
    let dest = if on_s3 {
        Env::with_repo(&s3::unique_location("torture-kill-copy"))
    } else {
        Env::new()
    };
    init(&dest, Some(of));
    let from = of.repo.to_str().unwrap();
    let mut args = vec!["copy", "--from-repo", from];
    match ids {
        Some(ids) => args.extend_from_slice(ids),
        None => args.push("--all"),
    }
    let r = exec_with(&dest, &args, &from_vars());
    assert!(r.ok(), "copy during setup: {}", r.describe());
    dest
}

fn setup(op: Op, on_s3: bool, rng: &mut Rng) -> Setup {
    match op {
        Op::Backup => {
            let mut s = Setup::new(fresh(on_s3));
            let mut src = Source::new(&s.env, "src", BULK, rng);
            let (id, tree) = commit(&s.env, &src);
            s.keep.insert(id, tree);
            src.grow(BULK, rng);
            s.new_any = Some(src.keep());
            s.args(&["backup", "--json", src.dir.to_str().unwrap()]);
            s
        }
        Op::Prune => {
            let mut s = Setup::new(fresh(on_s3));
            let ids = history(&s.env, 3, BULK / 2, rng);
            s.keep.extend(ids[1..].iter().cloned());
            if rng.chance(0.5) {
                let r = exec(&s.env, &["forget", &ids[0].0]);
                assert!(r.ok(), "forget during setup: {}", r.describe());
                s.args(&["prune", "--max-unused", "0%"]);
            } else {
                s.may_go.insert(ids[0].0.clone(), ids[0].1.clone());
                s.args(&[
                    "forget",
                    "--keep-last",
                    "2",
                    "--prune",
                    "--max-unused",
                    "0%",
                ]);
            }
            s
        }
        Op::Copy => {
            // From a local repository into a related one that holds the first snapshot.
            let source = fresh(false);
            let ids = history(&source, 3, BULK, rng);
            let mut s = Setup::new(related_copy(on_s3, &source, Some(&[&ids[0].0])));
            s.keep.insert(ids[0].0.clone(), ids[0].1.clone());
            s.new_by_id.extend(ids[1..].iter().cloned());
            let from = s.from(&source);
            s.args(&["copy", "--all", "--from-repo", &from]);
            s._aux.push(source);
            s
        }
        Op::Rewrite => {
            let mut s = Setup::new(fresh(on_s3));
            s.may_go.extend(history(&s.env, 2, BULK / 2, rng));
            let times: BTreeMap<String, String> = snapshots(&s.env).into_iter().collect();
            for (id, tree) in &s.may_go {
                s.new_by_time
                    .insert(times[id].clone(), without_secrets(tree));
                s.original_times.insert(id.clone(), times[id].clone());
            }
            s.originals_replaced = true;
            s.args(&["rewrite", "--all", "--exclude", "secrets"]);
            if rng.chance(0.5) {
                s.args.push("--prune".into());
            }
            s
        }
        Op::Repair => {
            let mut s = Setup::new(fresh(on_s3));
            s.keep.extend(history(&s.env, 2, BULK / 2, rng));
            if rng.chance(0.7) {
                // One damaged data pack, and a related healthy copy to heal it from.
                let healthy = related_copy(false, &s.env, None);
                damage_a_data_pack(&s.env, rng);
                let from = s.from(&healthy);
                s.args(&["repair", "packs", "--from-repo", &from]);
                s.check_after_kill = false;
                s._aux.push(healthy);
            } else {
                s.args(&["repair", "index"]);
            }
            s
        }
    }
}

/// Flip one byte in the middle of one data pack.
fn damage_a_data_pack(env: &Env, rng: &mut Rng) {
    let b = backend(env.repo.to_str().unwrap());
    let packs = b.list("packs/data/").unwrap();
    let p = rng.pick(&packs);
    let mut bytes = b.get(&p.name).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    if on_s3(env) {
        b.put(&p.name, &bytes).unwrap();
    } else {
        // In place, as bit rot would.
        std::fs::write(env.repo.join(&p.name), &bytes).unwrap();
    }
}
