//! Four writers back up into one repository at once while a fifth runs
//! `forget --keep-last 2 --prune` in a loop. Each writer changes its own
//! tree between backups, and restores every snapshot it was told was saved
//! right after (it is the newest of its group, so forget keeps it). At the
//! end `check --read-data` passes and every snapshot reported saved and not
//! forgotten restores byte for byte.

use crate::common::*;
use crate::report::Report;
use crate::rng::{trial_seed, Rng};
use crate::world::*;
use crate::Plan;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WRITERS: u64 = 4;
const BULK: usize = 1 << 20;

/// What the threads found, gathered under one lock.
#[derive(Default)]
struct Found {
    /// Snapshots reported saved: id → tree.
    saved: BTreeMap<String, PathBuf>,
    /// Snapshots forget reported removed.
    removed: BTreeSet<String>,
    prunes: u64,
    problems: Vec<String>,
    lost: u64,
    panics: u64,
    /// Restores that failed once and worked when repeated ...
    retried: u64,
    /// ... and what the first such restore said.
    retried_example: Option<String>,
}

pub fn run(plan: &Plan, report: &mut Report) {
    let env = Env::new();
    init(&env, None);
    let kind = "concurrent: 4 writers + forget --prune (local)";
    let found = Mutex::new(Found::default());
    let deadline = Instant::now() + Duration::from_secs(plan.sizes.concurrent_secs);
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (env, found) = (&env, &found);
            let mut rng = Rng::new(trial_seed(plan.seed, "concurrent", w));
            s.spawn(move || writer(env, found, w, &mut rng, deadline));
        }
        let (env, found) = (&env, &found);
        let mut rng = Rng::new(trial_seed(plan.seed, "concurrent", WRITERS));
        s.spawn(move || pruner(env, found, &mut rng, deadline));
    });
    let mut f = found.into_inner().unwrap();
    let c = exec(&env, &["check", "--read-data"]);
    if !c.ok() {
        f.problems
            .push(format!("check --read-data at the end: {}", c.describe()));
    }
    let present: BTreeSet<String> = snapshots(&env).into_iter().map(|s| s.0).collect();
    let mut expected = BTreeMap::new();
    for (id, tree) in &f.saved {
        if f.removed.contains(id) {
            continue;
        }
        if present.contains(id) {
            expected.insert(id.clone(), tree.clone());
        } else {
            f.lost += 1;
            f.problems.push(format!(
                "snapshot {} was saved, never forgotten, and is gone",
                &id[..8]
            ));
        }
    }
    for id in present.iter().filter(|i| !f.saved.contains_key(*i)) {
        f.problems
            .push(format!("snapshot {} was never reported saved", &id[..8]));
    }
    let restored = restore_all(&env, &expected, true);
    f.lost += restored.len() as u64;
    f.problems.extend(restored);
    report.notes.push(format!(
        "concurrent writers: {} s, {} backups saved, {} forget --prune runs, {} snapshots forgotten, {} restores worked only when repeated",
        plan.sizes.concurrent_secs,
        f.saved.len(),
        f.prunes,
        f.removed.len(),
        f.retried
    ));
    if let Some(e) = &f.retried_example {
        report.notes.push(format!(
            "a restore that ran while prune did failed first with: {e}"
        ));
    }
    let row = report.row(kind);
    row.trials += f.saved.len() as u64;
    row.injected += f.prunes;
    row.lost += f.lost;
    row.panics += f.panics;
    if !f.problems.is_empty() {
        row.failed += 1;
        report.fail(kind, "concurrent/0", f.problems.join("; "));
    }
}

fn writer(env: &Env, found: &Mutex<Found>, w: u64, rng: &mut Rng, deadline: Instant) {
    let mut src = Source::small(env, &format!("w{w}"), BULK, rng);
    let mut k = 0;
    while Instant::now() < deadline {
        src.grow(BULK, rng);
        let tree = src.keep();
        let r = exec(env, &["backup", "--json", src.dir.to_str().unwrap()]);
        let mut f = found.lock().unwrap();
        f.panics += r.panicked() as u64;
        let id = match snapshot_id_of(&r) {
            Some(id) if r.ok() => id,
            _ => {
                f.problems
                    .push(format!("writer {w}: backup failed: {}", r.describe()));
                continue;
            }
        };
        f.saved.insert(id.clone(), tree.clone());
        drop(f);
        // Restore it at once, while the others write and prune.
        let label = format!("w{w}-{k}");
        k += 1;
        let first = restore_and_compare(env, &id, &tree, &label);
        if first.identical() {
            continue;
        }
        // A failure may be passing (a listing that raced a deletion):
        // try a few more times before calling it a failure. Only silent
        // differences, or a snapshot gone at the end, are data lost.
        let mut tries = vec![first];
        while tries.len() < 5 && !tries.last().unwrap().identical() {
            std::thread::sleep(Duration::from_millis(200));
            tries.push(restore_and_compare(env, &id, &tree, &label));
        }
        let mut f = found.lock().unwrap();
        f.panics += tries.iter().filter(|t| t.panicked).count() as u64;
        let silent: Vec<&String> = tries.iter().flat_map(|t| t.silent.iter()).collect();
        if !silent.is_empty() {
            f.lost += 1;
            f.problems.push(format!(
                "writer {w}: snapshot {} restored different without saying so: {silent:?}",
                &id[..8]
            ));
        } else if tries.last().unwrap().identical() {
            f.retried += 1;
            f.retried_example.get_or_insert(tries[0].account.clone());
        } else {
            f.problems.push(format!(
                "writer {w}: snapshot {} did not restore in {} tries: {}",
                &id[..8],
                tries.len(),
                tries
                    .iter()
                    .map(|t| t.account.as_str())
                    .collect::<Vec<_>>()
                    .join(" / ")
            ));
        }
    }
}

fn pruner(env: &Env, found: &Mutex<Found>, rng: &mut Rng, deadline: Instant) {
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(rng.range(200, 1500)));
        let r = exec(env, &["forget", "--keep-last", "2", "--prune", "--json"]);
        let mut f = found.lock().unwrap();
        f.prunes += 1;
        f.panics += r.panicked() as u64;
        if !r.ok() {
            f.problems
                .push(format!("forget --prune failed: {}", r.describe()));
            continue;
        }
        let out = r.stdout();
        let v: serde_json::Value = out
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_default();
        for id in v["removed"].as_array().into_iter().flatten() {
            if let Some(id) = id.as_str() {
                f.removed.insert(id.to_string());
                // Its tree is needed no more: keep the disk use bounded.
                if let Some(tree) = f.saved.get(id) {
                    let _ = std::fs::remove_dir_all(tree.parent().unwrap());
                }
            }
        }
    }
}
