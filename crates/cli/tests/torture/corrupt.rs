//! Random corruptions of a repository, one per trial, each on a fresh copy
//! of one template: bit flips, truncations, deletions, swapped objects and
//! planted damaged copies of packs, in packs, index files, snapshots, the
//! key file, the config, and in leftovers that do not matter (a temporary
//! file, a stale lock). In some trials (all with a planted copy) a backup
//! and a prune run before anyone checks, as routine work would.
//!
//! Each trial: `check --read-data` must exit non-zero naming the damaged
//! object, or the damage must be harmless (a leftover, or healed by the
//! routine work: check passes and everything restores); every snapshot is
//! restored and each file is either the source byte for byte or named in
//! the restore's errors (after a planted copy, everything must restore:
//! the good copy was there); damage to packs and index files is then healed
//! with `repair packs --from-repo` (after `repair index` when the tools say
//! so) from a related healthy copy, after which check passes and every
//! snapshot restores byte for byte.

use crate::common::*;
use crate::report::Report;
use crate::rng::{trial_seed, Rng};
use crate::world::*;
use crate::Plan;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a trial damages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    DataPack,
    TreePack,
    Index,
    Snapshot,
    Key,
    Config,
    /// The forget record of a snapshot the template's host forgot.
    ForgetRecord,
    /// A leftover temporary file or a stale lock: damage there is harmless.
    Leftover,
}

const CLASSES: [(Class, u64); 8] = [
    (Class::DataPack, 25),
    (Class::TreePack, 15),
    (Class::Index, 15),
    (Class::Snapshot, 15),
    (Class::Key, 10),
    (Class::Config, 10),
    (Class::ForgetRecord, 5),
    (Class::Leftover, 5),
];

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::DataPack => "data pack",
            Class::TreePack => "tree pack",
            Class::Index => "index file",
            Class::Snapshot => "snapshot",
            Class::Key => "key file",
            Class::Config => "config",
            Class::ForgetRecord => "forget record",
            Class::Leftover => "leftover (.tmp file, stale lock)",
        }
    }

    fn of(rel: &str) -> Class {
        if rel.contains(".tmp-") || rel.starts_with("locks/") {
            Class::Leftover
        } else if rel.starts_with("packs/data/") {
            Class::DataPack
        } else if rel.starts_with("packs/tree/") {
            Class::TreePack
        } else if rel.starts_with("index/") {
            Class::Index
        } else if rel.starts_with("snapshots/") {
            Class::Snapshot
        } else if rel.starts_with("keys/") {
            Class::Key
        } else if rel.starts_with("forgotten/") {
            Class::ForgetRecord
        } else {
            Class::Config
        }
    }

    /// `repair packs --from-repo` is the cure (after `repair index` for an index).
    fn repairable(self) -> bool {
        matches!(self, Class::DataPack | Class::TreePack | Class::Index)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Flip,
    Truncate,
    Delete,
    Swap,
    /// A copy of a pack with one byte flipped, planted under a name that
    /// sorts first and no index lists (then backup and prune run).
    Plant,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Flip => "bit flip",
            Kind::Truncate => "truncation",
            Kind::Delete => "deletion",
            Kind::Swap => "swap",
            Kind::Plant => "planted damaged copy",
        }
    }
}

/// The repository every trial starts from, and what it must restore.
struct Template {
    env: Env,
    /// A related repository holding every snapshot, healthy.
    healthy: Env,
    /// Snapshot id → source tree.
    snapshots: BTreeMap<String, PathBuf>,
    /// The source as it is now (what a trial's backup saves), and its copy.
    src: PathBuf,
    latest: PathBuf,
    /// Object names (relative to the repository) by class, in the order they were written.
    objects: BTreeMap<Class, Vec<String>>,
}

fn template(seed: u64) -> Template {
    let mut rng = Rng::new(trial_seed(seed, "corrupt-template", 0));
    let env = Env::new();
    init(&env, None);
    let mut src = Source::new(&env, "src", 1 << 20, &mut rng);
    let mut snapshots = BTreeMap::new();
    for _ in 0..3 {
        let r = exec(&env, &["backup", "--json", src.dir.to_str().unwrap()]);
        assert!(r.ok(), "template backup: {}", r.describe());
        snapshots.insert(snapshot_id_of(&r).unwrap(), src.keep());
        src.grow(1 << 20, &mut rng);
    }
    // A fourth snapshot, forgotten: the repository holds a forget record,
    // so a snapshot deleted without one is noticed (format.md §9.3).
    let r = exec(&env, &["backup", "--json", src.dir.to_str().unwrap()]);
    assert!(r.ok(), "template backup: {}", r.describe());
    let fourth = snapshot_id_of(&r).unwrap();
    let r = exec(&env, &["forget", &fourth, "--prune"]);
    assert!(r.ok(), "template forget: {}", r.describe());
    // The judge sees garbage: one snapshot against another's tree differs silently.
    let mut it = snapshots.iter();
    let ((first, _), (_, second_tree)) = (it.next().unwrap(), it.next().unwrap());
    let r = restore_and_compare(&env, first, second_tree, "judge");
    assert!(
        !r.silent.is_empty(),
        "the restore judge missed a wrong tree: {r:?}"
    );
    let healthy = Env::new();
    init(&healthy, Some(&env));
    let from = env.repo.to_str().unwrap();
    let r = exec_with(
        &healthy,
        &["copy", "--all", "--from-repo", from],
        &from_vars(),
    );
    assert!(r.ok(), "template copy: {}", r.describe());
    // A backup killed while renaming its pack: a .tmp file and a stale lock.
    let r = exec_with(
        &env,
        &["backup", src.dir.to_str().unwrap()],
        &[("IRONVAULT_FAILPOINT", "pack-before-rename")],
    );
    assert!(
        r.killed(),
        "the leftover backup was not killed: {}",
        r.describe()
    );
    let r = exec(&env, &["check", "--read-data"]);
    assert!(r.ok(), "template check: {}", r.describe());
    let mut files: Vec<(std::time::SystemTime, String)> = walk(&env.repo)
        .into_iter()
        .filter(|(_, p)| p.is_file())
        .map(|(rel, p)| {
            (
                std::fs::metadata(&p).unwrap().modified().unwrap(),
                String::from_utf8(rel).unwrap(),
            )
        })
        .filter(|(_, rel)| !rel.starts_with("scrubs/"))
        .collect();
    files.sort();
    let mut objects: BTreeMap<Class, Vec<String>> = BTreeMap::new();
    for (_, rel) in files {
        objects.entry(Class::of(&rel)).or_default().push(rel);
    }
    for (c, _) in CLASSES {
        assert!(
            objects.get(&c).is_some_and(|v| !v.is_empty()),
            "the template has no {}",
            c.name()
        );
    }
    Template {
        latest: src.keep(),
        src: src.dir.clone(),
        env,
        healthy,
        snapshots,
        objects,
    }
}

/// How one trial ended.
struct Outcome {
    n: u64,
    class: Class,
    kind: Kind,
    what: String,
    detected: bool,
    harmless: bool,
    /// Some(healed) when a repair was tried.
    repaired: Option<bool>,
    lost: bool,
    panics: u64,
    problems: Vec<String>,
}

pub fn run(plan: &Plan, report: &mut Report) {
    let t = template(plan.seed);
    let wanted: Vec<u64> = (0..plan.sizes.corruptions.max(1))
        .filter(|n| plan.wants("corrupt", *n))
        .collect();
    // Trials are independent (each on its own copy): IRONVAULT_TORTURE_JOBS run at once.
    let jobs: usize = std::env::var("IRONVAULT_TORTURE_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or(1)
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let outcomes = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&n) = wanted.get(i) else { break };
                let o = trial(&t, n, trial_seed(plan.seed, "corrupt", n));
                outcomes.lock().unwrap().push(o);
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap();
    outcomes.sort_by_key(|o| o.n);
    let mut by_kind: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for o in outcomes {
        let e = by_kind.entry(o.kind.name()).or_default();
        e.0 += 1;
        e.1 += (o.detected || o.harmless) as u64;
        record(report, o);
    }
    report.notes.push(format!(
        "corruptions by kind (injected/detected or harmless): {}",
        by_kind
            .iter()
            .map(|(k, (i, d))| format!("{k} {d}/{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
}

fn record(report: &mut Report, o: Outcome) {
    let row_kind = format!("corrupt: {}", o.class.name());
    let row = report.row(&row_kind);
    row.trials += 1;
    row.injected += 1;
    *row.detected.get_or_insert(0) += o.detected as u64;
    *row.harmless.get_or_insert(0) += o.harmless as u64;
    if o.class.repairable() {
        let r = row.repaired.get_or_insert((0, 0));
        if let Some(ok) = o.repaired {
            r.0 += ok as u64;
            r.1 += 1;
        }
    }
    row.lost += o.lost as u64;
    row.panics += o.panics;
    if !o.problems.is_empty() {
        row.failed += 1;
        report.fail(
            &row_kind,
            &format!("corrupt/{}", o.n),
            format!("{}: {}", o.what, o.problems.join("; ")),
        );
    }
}

/// What names an object in check's output: its id (whole or short), or "config".
fn tokens(rel: &str) -> Vec<String> {
    let last = rel.rsplit('/').next().unwrap();
    if rel == "config" {
        return vec!["config".into()];
    }
    let hex = last.split(".tmp-").next().unwrap();
    vec![
        rel.to_string(),
        hex.to_string(),
        hex[..8.min(hex.len())].to_string(),
    ]
}

/// One trial.
fn trial(t: &Template, n: u64, seed: u64) -> Outcome {
    let mut rng = Rng::new(seed);
    let weights: u64 = CLASSES.iter().map(|c| c.1).sum();
    let mut w = rng.below(weights);
    let class = CLASSES
        .iter()
        .find(|(_, cw)| {
            let hit = w < *cw;
            w = w.saturating_sub(*cw);
            hit
        })
        .unwrap()
        .0;
    let mut kind = *rng.pick(&[
        Kind::Flip,
        Kind::Flip,
        Kind::Truncate,
        Kind::Truncate,
        Kind::Delete,
        Kind::Swap,
        Kind::Plant,
    ]);
    if kind == Kind::Plant && !matches!(class, Class::DataPack | Class::TreePack) {
        kind = Kind::Flip;
    }
    let target = rng.pick(&t.objects[&class]).clone();
    let env = Env::new();
    copy_tree(&t.env.repo, &env.repo);
    // The host that made the backups checks: its security record knows
    // which snapshots were there (format.md §11.1).
    copy_tree(&t.env.path("state"), &env.path("state"));
    let (mut what, other) = corrupt(&env.repo, &target, kind, t, &mut rng);
    let trial_id = format!("corrupt/{n}");
    let mut problems = Vec::new();
    let mut lost = false;
    let mut panics = 0;
    let mut expected = t.snapshots.clone();

    // Sometimes (always for a planted pack) routine work runs before anyone
    // checks: it must not spread the damage or drop good copies for bad.
    let routine = kind == Kind::Plant || rng.chance(0.3);
    if routine {
        what.push_str("; then backup and prune --max-unused 0%");
        let b = exec(&env, &["backup", "--json", t.src.to_str().unwrap()]);
        let p = exec(&env, &["prune", "--max-unused", "0%"]);
        for r in [&b, &p] {
            if r.panicked() {
                panics += 1;
                problems.push(format!("backup or prune panicked: {}", r.describe()));
            }
        }
        if let Some(id) = snapshot_id_of(&b).filter(|_| b.ok()) {
            expected.insert(id, t.latest.clone());
        }
    }

    let c = exec(&env, &["check", "--read-data"]);
    panics += c.panicked() as u64;
    let said = format!("{}\n{}", c.stdout(), c.stderr());
    let mut names = tokens(&target);
    // Naming either of two swapped objects, or the planted one, will do.
    names.extend(other.iter().flat_map(|p| tokens(p)));
    // A deleted object has no content to blame: its name may be unknown.
    if class == Class::Index && kind == Kind::Delete {
        // Check names what it held and says to rebuild the index.
        names.push("repair index".into());
    }
    if class == Class::Key && kind == Kind::Delete {
        names.push("no key file".into());
    }
    let named = names.iter().any(|tok| said.contains(tok.as_str()));
    // A planted copy is garbage no snapshot needs: everything must still
    // restore byte for byte, whatever backup and prune made of it.
    let restored = restore_all(&env, &expected, kind == Kind::Plant);
    if !restored.is_empty() {
        lost = true;
        problems.extend(restored);
    }
    let mut detected = false;
    let mut harmless = false;
    if c.panicked() {
        problems.push(format!("check panicked: {}", c.describe()));
    } else if !c.ok() {
        detected = named;
        if !named {
            problems.push(format!(
                "check failed without naming {target}: {}",
                c.describe()
            ));
        }
    } else {
        let exact = restore_all(&env, &expected, true);
        // A deleted forget record: this host knows its snapshot was
        // forgotten, and nothing else depends on it.
        let forgotten_record = class == Class::ForgetRecord && kind == Kind::Delete;
        if (class == Class::Leftover || forgotten_record || routine) && exact.is_empty() {
            // Damage that does not matter, or that the routine work healed
            // (a backup indexes again the packs of a deleted index file).
            harmless = true;
        } else {
            problems.push(format!(
                "check --read-data passed: {}{}",
                c.describe(),
                exact.iter().map(|p| format!("; {p}")).collect::<String>()
            ));
        }
    }
    let mut repaired = None;
    // A swap with a snapshot, key file or config damaged that object too,
    // and those have no repair from a copy (like their own column).
    let repairable = class.repairable() && other.iter().all(|o| Class::of(o).repairable());
    if repairable && !c.ok() {
        let ok = repair(
            &env,
            t,
            &expected,
            said.contains("repair index"),
            &mut problems,
        );
        repaired = Some(ok);
        if !ok {
            lost = true;
        }
    }

    eprintln!(
        "{trial_id} {what}: {}",
        if detected {
            "detected"
        } else if harmless {
            "harmless"
        } else {
            "NOT detected"
        }
    );
    Outcome {
        n,
        class,
        kind,
        what,
        detected,
        harmless,
        repaired,
        lost,
        panics,
        problems,
    }
}

/// Damage `rel` in the repository at `repo`; returns what was done, and
/// the name of the other object damaged (the swapped or planted one).
fn corrupt(
    repo: &Path,
    rel: &str,
    kind: Kind,
    t: &Template,
    rng: &mut Rng,
) -> (String, Option<String>) {
    let p = repo.join(rel);
    let mut bytes = std::fs::read(&p).unwrap();
    let len = bytes.len() as u64;
    match kind {
        Kind::Flip if len > 0 => {
            let at = rng.below(len) as usize;
            let bit = rng.below(8);
            bytes[at] ^= 1 << bit;
            std::fs::write(&p, &bytes).unwrap();
            (
                format!("bit {bit} of byte {at} of {len} flipped in {rel}"),
                None,
            )
        }
        Kind::Truncate if len > 0 => {
            let to = rng.below(len);
            std::fs::write(&p, &bytes[..to as usize]).unwrap();
            (format!("{rel} truncated from {len} to {to} bytes"), None)
        }
        Kind::Swap => {
            // With another object of its class, or of any other class if it is alone.
            let class = Class::of(rel);
            let same: Vec<&String> = t.objects[&class].iter().filter(|o| *o != rel).collect();
            let others: Vec<&String> = t
                .objects
                .iter()
                .filter(|(c, _)| **c != class && **c != Class::Leftover)
                .flat_map(|(_, v)| v.iter())
                .collect();
            let other = if same.is_empty() {
                *rng.pick(&others)
            } else {
                *rng.pick(&same)
            };
            let q = repo.join(other);
            let theirs = std::fs::read(&q).unwrap();
            std::fs::write(&p, &theirs).unwrap();
            std::fs::write(&q, &bytes).unwrap();
            (format!("{rel} swapped with {other}"), Some(other.clone()))
        }
        Kind::Plant => {
            // Inside a blob (the header and trailer are at the end).
            let at = rng.below(len / 2) as usize;
            bytes[at] ^= 0x10;
            let (dir, hex) = rel.rsplit_once('/').unwrap();
            let (kind_dir, _) = dir.rsplit_once('/').unwrap();
            let name = format!("0000{}", &hex[4..]);
            let planted = format!("{kind_dir}/00/{name}");
            write(&repo.join(&planted), &bytes);
            (
                format!("{planted}: a copy of {rel} with byte {at} changed, planted"),
                Some(planted),
            )
        }
        _ => {
            std::fs::remove_file(&p).unwrap();
            (format!("{rel} deleted"), None)
        }
    }
}

/// Heal from the healthy copy as the tools advise (`repair index` first
/// when check said so, as the user guide says for a damaged or deleted
/// index file, or when repair packs asks for it); true if afterwards check
/// passes and every snapshot restores byte for byte.
fn repair(
    env: &Env,
    t: &Template,
    expected: &BTreeMap<String, PathBuf>,
    index_first: bool,
    problems: &mut Vec<String>,
) -> bool {
    let from = t.healthy.repo.to_str().unwrap();
    let packs = |env: &Env| exec_with(env, &["repair", "packs", "--from-repo", from], &from_vars());
    // A repair index that could not read some packs says so and points to
    // repair packs, which comes next either way.
    let index = |problems: &mut Vec<String>| {
        let i = exec(env, &["repair", "index"]);
        let ok = i.ok() || (!i.panicked() && i.stderr().contains("repair packs --from-repo"));
        if !ok {
            problems.push(format!("repair index failed: {}", i.describe()));
        }
        ok
    };
    if index_first && !index(problems) {
        return false;
    }
    let mut r = packs(env);
    if !r.ok() && r.stderr().contains("repair index") {
        if !index(problems) {
            return false;
        }
        r = packs(env);
    }
    if r.panicked() || !r.ok() {
        problems.push(format!("repair packs failed: {}", r.describe()));
        return false;
    }
    let c = exec(env, &["check", "--read-data"]);
    if !c.ok() {
        problems.push(format!("check after repair: {}", c.describe()));
        return false;
    }
    let restored = restore_all(env, expected, true);
    if !restored.is_empty() {
        problems.extend(restored.into_iter().map(|p| format!("after repair: {p}")));
        return false;
    }
    true
}
