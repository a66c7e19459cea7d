//! The torture run: the real binary under faults, measured and printed as
//! one table (docs/reliability.md explains every row and how to run it).
//!
//! * kill -9 at random moments of backup, prune, copy, rewrite and repair,
//!   on a local directory and on S3 (kill.rs);
//! * random corruptions of packs, index files, snapshots, the key file and
//!   the config (corrupt.rs);
//! * S3 faults through the fault-injecting proxy (s3faults.rs);
//! * four concurrent writers with forget and prune in a loop (concurrent.rs).
//!
//! Sizes: IRONVAULT_TORTURE=ci (default: a few minutes on 2 cores) or
//! full (the figures of docs/reliability.md); each count can be set alone
//! (IRONVAULT_TORTURE_KILLS, _CORRUPTIONS, _S3_FAULTS, _CONCURRENT_SECS).
//! IRONVAULT_TORTURE_PARTS=kill,corrupt,s3,concurrent picks parts;
//! IRONVAULT_TORTURE_SEED fixes the seed (printed either way);
//! IRONVAULT_TORTURE_TRIAL=part/N runs that one trial; IRONVAULT_TORTURE_REPORT
//! and IRONVAULT_TORTURE_JSON name files for the table as Markdown and JSON.
//! Every failed trial fails the test, after the whole table is printed.
//!
//! A test binary of its own, not a module of tests/it: scripts/torture.sh,
//! docs/reliability.md and every replay command run it by name (`--test
//! torture`, with --test-threads=1 and its own sizes), and its timed parts
//! (writers racing prune for N seconds, kills at random moments) run alone
//! instead of beside the other end-to-end tests' threads.

// The helpers of the end-to-end tests, compiled again here: this binary
// uses only some of them.
#[allow(dead_code)]
#[path = "../it/common/mod.rs"]
mod common;
mod concurrent;
mod corrupt;
mod kill;
mod report;
mod rng;
mod s3faults;
mod world;

use report::Report;

/// How much of each part to run.
pub struct Sizes {
    pub name: String,
    /// Kills that land, on each of local and S3.
    pub kills: u64,
    pub corruptions: u64,
    pub s3_faults: u64,
    pub concurrent_secs: u64,
}

impl Sizes {
    fn from_env() -> Sizes {
        let name = std::env::var("IRONVAULT_TORTURE").unwrap_or_else(|_| "ci".into());
        let mut s = match name.as_str() {
            "full" => Sizes {
                name,
                kills: 60,
                corruptions: 10_000,
                s3_faults: 1_000,
                concurrent_secs: 600,
            },
            "ci" => Sizes {
                name,
                kills: 5,
                corruptions: 40,
                s3_faults: 40,
                concurrent_secs: 30,
            },
            other => panic!("IRONVAULT_TORTURE={other}: use ci or full"),
        };
        let num = |k: &str, v: &mut u64| {
            if let Ok(x) = std::env::var(k) {
                *v = x
                    .parse()
                    .unwrap_or_else(|_| panic!("{k}={x}: not a number"));
            }
        };
        num("IRONVAULT_TORTURE_KILLS", &mut s.kills);
        num("IRONVAULT_TORTURE_CORRUPTIONS", &mut s.corruptions);
        num("IRONVAULT_TORTURE_S3_FAULTS", &mut s.s3_faults);
        num("IRONVAULT_TORTURE_CONCURRENT_SECS", &mut s.concurrent_secs);
        s
    }
}

/// What to run: the parts, and maybe a single trial.
pub struct Plan {
    pub seed: u64,
    pub sizes: Sizes,
    parts: Vec<String>,
    trial: Option<(String, u64)>,
}

impl Plan {
    fn from_env() -> Plan {
        let seed = match std::env::var("IRONVAULT_TORTURE_SEED") {
            Ok(s) => s
                .parse()
                .unwrap_or_else(|_| panic!("IRONVAULT_TORTURE_SEED={s}: not a number")),
            Err(_) => rng::mix(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    ^ std::process::id() as u64,
            ),
        };
        let trial = std::env::var("IRONVAULT_TORTURE_TRIAL").ok().map(|t| {
            let (p, n) = t
                .split_once('/')
                .unwrap_or_else(|| panic!("IRONVAULT_TORTURE_TRIAL={t}: give part/N"));
            (
                p.to_string(),
                n.parse()
                    .unwrap_or_else(|_| panic!("IRONVAULT_TORTURE_TRIAL={t}: N is not a number")),
            )
        });
        let parts = match (&trial, std::env::var("IRONVAULT_TORTURE_PARTS")) {
            // kill-local/3 and kill-s3/3 are trials of the part "kill".
            (Some((p, _)), _) => vec![p.split('-').next().unwrap().to_string()],
            (None, Ok(p)) => p.split(',').map(|s| s.trim().to_string()).collect(),
            (None, Err(_)) => ["kill", "corrupt", "s3", "concurrent"]
                .map(String::from)
                .to_vec(),
        };
        Plan {
            seed,
            sizes: Sizes::from_env(),
            parts,
            trial,
        }
    }

    fn runs(&self, part: &str) -> bool {
        self.parts.iter().any(|p| p == part)
    }

    /// Whether trial `n` of `part` runs (all of them, unless one was asked for).
    pub fn wants(&self, part: &str, n: u64) -> bool {
        match &self.trial {
            None => true,
            Some((p, k)) => p == part && *k == n,
        }
    }

    /// Only one trial is asked for.
    pub fn single(&self) -> bool {
        self.trial.is_some()
    }
}

/// One part of the run: it adds its rows and failures to the report.
type Part = fn(&Plan, &mut Report);

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature: scripts/test.sh and scripts/torture.sh run it with --features failpoints"
)]
fn torture() {
    let plan = Plan::from_env();
    let mut report = Report {
        seed: plan.seed,
        size: plan.sizes.name.clone(),
        ..Default::default()
    };
    eprintln!(
        "torture: seed {} ({} sizes); IRONVAULT_TORTURE_SEED={} replays it",
        plan.seed, plan.sizes.name, plan.seed
    );
    let started = std::time::Instant::now();
    let parts: [(&str, Part); 4] = [
        ("kill", kill::run),
        ("corrupt", corrupt::run),
        ("s3", s3faults::run),
        ("concurrent", concurrent::run),
    ];
    for (name, part) in parts {
        if !plan.runs(name) {
            continue;
        }
        // A part that cannot go on (its S3 server gone, say) is a failure
        // of its own; the others still run and the table is still printed.
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| part(&plan, &mut report)));
        if let Err(e) = outcome {
            let why = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            report.fail(
                name,
                &format!("{name}/aborted"),
                format!("the part stopped: {why}"),
            );
        }
        // So far, for whoever watches a long run.
        eprintln!("\nafter the {name} part:\n{}", report.markdown());
    }
    report
        .notes
        .push(format!("whole run: {} s", started.elapsed().as_secs()));
    let table = report.markdown();
    println!("\n{table}");
    if let Ok(p) = std::env::var("IRONVAULT_TORTURE_REPORT") {
        std::fs::write(&p, &table).unwrap_or_else(|e| panic!("{p}: {e}"));
    }
    if let Ok(p) = std::env::var("IRONVAULT_TORTURE_JSON") {
        std::fs::write(&p, serde_json::to_string_pretty(&report.json()).unwrap())
            .unwrap_or_else(|e| panic!("{p}: {e}"));
    }
    assert!(
        report.failures.is_empty(),
        "{} trials failed (the table above lists each with its replay)",
        report.failures.len()
    );
}
