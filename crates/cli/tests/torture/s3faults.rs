//! S3 faults through the fault-injecting proxy: 503 SlowDown, 500,
//! connection resets, truncated answers and uploads, stalls and slow reads,
//! one request in 2 to 8 faulted, during backup, restore, check, forget
//! with prune, and copy. Each run must finish, or fail with one error line;
//! afterwards (without faults) `check` passes, a failed backup or copy left
//! no snapshot that is not complete, and at the end every snapshot restores
//! byte for byte.

use crate::common::s3::{self, Fault, Proxy};
use crate::common::*;
use crate::report::Report;
use crate::rng::{trial_seed, Rng};
use crate::world::*;
use crate::Plan;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Random data each new version of a source adds.
const BULK: usize = 3 << 20;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Backup,
    Restore,
    Check,
    ForgetPrune,
    Copy,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Backup => "backup",
            Op::Restore => "restore",
            Op::Check => "check --read-data",
            Op::ForgetPrune => "forget --prune",
            Op::Copy => "copy",
        }
    }
}

const OPS: [(Op, u64); 5] = [
    (Op::Backup, 40),
    (Op::Restore, 15),
    (Op::Check, 10),
    (Op::ForgetPrune, 15),
    (Op::Copy, 20),
];

/// The repository, seen directly and through the proxy, and its sources.
struct World {
    proxy: Proxy,
    /// The repository without faults (setup and judging).
    direct: Env,
    /// The same repository through the proxy.
    faulty: Env,
    /// A related local repository that copies come from.
    local: Env,
    src: Source,
    local_src: Source,
    /// Snapshot id → its tree: every snapshot that must restore.
    expected: BTreeMap<String, PathBuf>,
    /// Trees of local snapshots, by id (what a copy brings).
    local_trees: BTreeMap<String, PathBuf>,
}

pub fn run(plan: &Plan, report: &mut Report) {
    let proxy = Proxy::start(&s3::endpoint());
    let real = s3::unique_location("torture-faults");
    let direct = Env::with_repo(&real);
    let faulty = Env::with_repo(&proxy.via(&real));
    // One host reaching the repository two ways: one security record
    // (format.md §11.1), as a real host keeps; with two, the judge would be
    // another host that sees copies bring back what the faulted runs forgot.
    std::fs::create_dir_all(direct.path("state")).unwrap();
    std::os::unix::fs::symlink(direct.path("state"), faulty.path("state")).unwrap();
    init(&direct, None);
    let local = Env::new();
    init(&local, Some(&direct));
    let mut rng = Rng::new(trial_seed(plan.seed, "s3-setup", 0));
    let src = Source::new(&direct, "src", BULK, &mut rng);
    let local_src = Source::small(&local, "local", BULK, &mut rng);
    let mut w = World {
        proxy,
        direct,
        faulty,
        local,
        src,
        local_src,
        expected: BTreeMap::new(),
        local_trees: BTreeMap::new(),
    };
    let r = exec(
        &w.direct,
        &["backup", "--json", w.src.dir.to_str().unwrap()],
    );
    assert!(r.ok(), "setup backup: {}", r.describe());
    w.expected.insert(snapshot_id_of(&r).unwrap(), w.src.keep());

    let mut injected = 0;
    let mut by_fault: BTreeMap<&'static str, u64> = BTreeMap::new();
    let cap = plan.sizes.s3_faults * 2 + 10;
    let mut n = 0;
    while n < cap && (injected < plan.sizes.s3_faults || plan.single()) {
        if plan.wants("s3", n) {
            let faults = trial(report, &mut w, n, trial_seed(plan.seed, "s3", n));
            for (k, v) in &faults {
                *by_fault.entry(k).or_default() += v;
                injected += v;
            }
            if plan.single() {
                break;
            }
        }
        n += 1;
    }
    // Everything that must be there restores, byte for byte.
    let kind = "S3 faults: final check and restores";
    let c = exec(&w.direct, &["check", "--read-data"]);
    let problems: Vec<String> = (!c.ok())
        .then(|| format!("check --read-data: {}", c.describe()))
        .into_iter()
        .chain(restore_all(&w.direct, &w.expected, true))
        .collect();
    let row = report.row(kind);
    row.trials += 1;
    row.lost += !problems.is_empty() as u64;
    if !problems.is_empty() {
        row.failed += 1;
        report.fail(kind, "s3/final", problems.join("; "));
    }
    wipe(&w.direct);
    report.notes.push(format!(
        "S3 faults by kind: {}",
        by_fault
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
}

/// One run under faults; returns the faults injected, by kind.
fn trial(report: &mut Report, w: &mut World, n: u64, seed: u64) -> BTreeMap<&'static str, u64> {
    let mut rng = Rng::new(seed);
    let total: u64 = OPS.iter().map(|o| o.1).sum();
    let mut x = rng.below(total);
    let op = OPS
        .iter()
        .find(|(_, wt)| {
            let hit = x < *wt;
            x = x.saturating_sub(*wt);
            hit
        })
        .unwrap()
        .0;
    let id = format!("s3/{n}");
    let kind = format!("S3 faults: {}", op.name());
    let before: BTreeSet<String> = snapshots(&w.direct).into_iter().map(|s| s.0).collect();
    // Mostly patient; sometimes quick to give up, so runs also fail.
    let retry = [
        "--s3-retry-timeout",
        if rng.chance(0.3) { "3" } else { "30" },
    ];
    let mut new_tree = None;
    let restore_pick = w
        .expected
        .iter()
        .nth(rng.below(w.expected.len() as u64) as usize)
        .map(|(i, t)| (i.clone(), t.clone()));
    let local_repo = w.local.repo.to_str().unwrap().to_string();
    let args: Vec<String> = match op {
        Op::Backup => {
            w.src.grow(BULK, &mut rng);
            new_tree = Some(w.src.keep());
            vec![
                "backup".into(),
                "--json".into(),
                w.src.dir.to_str().unwrap().into(),
            ]
        }
        Op::Copy => {
            w.local_src.grow(BULK, &mut rng);
            let r = exec(
                &w.local,
                &["backup", "--json", w.local_src.dir.to_str().unwrap()],
            );
            assert!(r.ok(), "local backup: {}", r.describe());
            w.local_trees
                .insert(snapshot_id_of(&r).unwrap(), w.local_src.keep());
            ["copy", "--all", "--from-repo", &local_repo]
                .map(String::from)
                .to_vec()
        }
        Op::Check => ["check", "--read-data"].map(String::from).to_vec(),
        Op::ForgetPrune => ["forget", "--keep-last", "4", "--prune"]
            .map(String::from)
            .to_vec(),
        Op::Restore => Vec::new(),
    };
    take_injected(&w.proxy);
    w.proxy.set_fault(Fault::Random {
        seed,
        one_in: rng.range(2, 8),
    });
    let mut problems = Vec::new();
    let mut lost = false;
    let (r, restored) = if op == Op::Restore {
        let (sid, tree) = restore_pick.expect("a snapshot to restore");
        let res = restore_and_compare(&w.faulty, &sid, &tree, "faulty");
        if !res.silent.is_empty() {
            lost = true;
            problems.push(format!(
                "restore under faults differs without saying so: {}",
                res.silent.join("; ")
            ));
        }
        (None, Some(res))
    } else {
        let mut all: Vec<&str> = retry.to_vec();
        all.extend(args.iter().map(String::as_str));
        (Some(exec_with(&w.faulty, &all, &from_vars())), None)
    };
    w.proxy.set_fault(Fault::None);
    let faults = take_injected(&w.proxy);
    let count: u64 = faults.values().sum();
    let (ok, panicked, account, errors) = match (&r, &restored) {
        (Some(r), _) => (r.ok(), r.panicked(), r.describe(), r.error_lines()),
        (None, Some(res)) => (
            !res.failed,
            res.panicked,
            res.account.clone(),
            res.errors.clone(),
        ),
        (None, None) => unreachable!(),
    };
    if panicked {
        problems.push(format!("panicked: {account}"));
    }
    if !ok && errors.len() != 1 {
        problems.push(format!(
            "failed with {} error lines, not one: {account}",
            errors.len()
        ));
    }
    // Without faults: the repository is sound, and no snapshot is half there.
    let c = exec(&w.direct, &["check"]);
    if !c.ok() {
        problems.push(format!("check afterwards: {}", c.describe()));
    }
    let after: BTreeSet<String> = snapshots(&w.direct).into_iter().map(|s| s.0).collect();
    for sid in after.difference(&before) {
        let tree = match op {
            Op::Backup => new_tree.clone(),
            Op::Copy => w.local_trees.get(sid).cloned(),
            _ => None,
        };
        match tree {
            Some(t) => {
                let res = restore_and_compare(&w.direct, sid, &t, "new");
                if !res.identical() {
                    lost = true;
                    problems.push(format!(
                        "new snapshot {} is not its source: {}",
                        &sid[..8],
                        res.account
                    ));
                }
                w.expected.insert(sid.clone(), t);
            }
            None => problems.push(format!("unexpected new snapshot {}", &sid[..8])),
        }
    }
    for sid in before.difference(&after) {
        if op == Op::ForgetPrune {
            w.expected.remove(sid);
        } else {
            lost = true;
            problems.push(format!("snapshot {} vanished", &sid[..8]));
        }
    }
    if op == Op::Backup && ok && after.len() == before.len() {
        problems.push("backup succeeded, yet no new snapshot".into());
    }
    eprintln!(
        "{id} {} with {count} faults {faults:?}: {}",
        op.name(),
        if ok { "finished" } else { "failed" }
    );
    let row = report.row(&kind);
    row.trials += 1;
    row.injected += count;
    *row.detected.get_or_insert(0) += (!ok && errors.len() == 1) as u64;
    *row.harmless.get_or_insert(0) += ok as u64;
    row.lost += lost as u64;
    row.panics += panicked as u64;
    if !problems.is_empty() {
        row.failed += 1;
        report.fail(&kind, &id, problems.join("; "));
    }
    faults
}

/// Faults the proxy injected so far, by kind; clears the count.
fn take_injected(proxy: &Proxy) -> BTreeMap<&'static str, u64> {
    std::mem::take(&mut *proxy.injected.lock().unwrap())
}
