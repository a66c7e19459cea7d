//! The table the trials fill: one row per kind of trial, the way SQLite
//! and Jepsen report (trials, faults injected, detected, repaired, data
//! lost, panics), and every failed trial with what to run to replay it.

use std::fmt::Write as _;

/// One kind of trial.
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub kind: String,
    pub trials: u64,
    /// Faults that took effect (a kill that landed, a corruption written,
    /// a faulted request).
    pub injected: u64,
    /// Damage that check named (None: not a detection trial).
    pub detected: Option<u64>,
    /// Faults that hit nothing that matters (a leftover temporary file, a stale lock).
    pub harmless: Option<u64>,
    /// Repairs that brought every snapshot back, of those tried.
    pub repaired: Option<(u64, u64)>,
    /// Trials where a snapshot that should restore did not, or where
    /// something other than the source was restored without an error.
    pub lost: u64,
    pub panics: u64,
    /// Trials that broke any expectation (listed with their replay).
    pub failed: u64,
}

impl Row {
    pub fn new(kind: &str) -> Row {
        Row {
            kind: kind.to_string(),
            ..Default::default()
        }
    }
}

/// A trial that broke an expectation.
#[derive(Clone, Debug)]
pub struct Failure {
    pub kind: String,
    /// `part/number`, for IRONVAULT_TORTURE_TRIAL.
    pub trial: String,
    pub what: String,
}

/// The whole run's findings.
#[derive(Default)]
pub struct Report {
    pub seed: u64,
    pub size: String,
    pub rows: Vec<Row>,
    pub failures: Vec<Failure>,
    pub notes: Vec<String>,
}

impl Report {
    /// The row of `kind`, created (in order of first use) if new.
    pub fn row(&mut self, kind: &str) -> &mut Row {
        if let Some(i) = self.rows.iter().position(|r| r.kind == kind) {
            return &mut self.rows[i];
        }
        self.rows.push(Row::new(kind));
        self.rows.last_mut().unwrap()
    }

    /// Record a failed trial of `kind` (counted once per trial by the caller's row).
    pub fn fail(&mut self, kind: &str, trial: &str, what: impl Into<String>) {
        let what = what.into();
        eprintln!("FAILED {trial} ({kind}): {what}");
        self.failures.push(Failure {
            kind: kind.to_string(),
            trial: trial.to_string(),
            what,
        });
    }

    /// The command that replays one trial.
    pub fn replay(&self, trial: &str) -> String {
        format!(
            "IRONVAULT_TORTURE_SEED={} IRONVAULT_TORTURE_TRIAL={trial} cargo test -p ironvault --features ironvault/failpoints --test torture -- --nocapture",
            self.seed
        )
    }

    /// The table and the failures, as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "seed {} ({} sizes); replay one trial with IRONVAULT_TORTURE_SEED={} IRONVAULT_TORTURE_TRIAL=part/N\n",
            self.seed, self.size, self.seed
        );
        s.push_str("| kind | trials | faults injected | detected | harmless | repaired | data lost | panics | failed |\n");
        s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        let opt = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_else(|| "–".into());
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.kind,
                r.trials,
                r.injected,
                opt(r.detected),
                opt(r.harmless),
                r.repaired
                    .map(|(a, b)| format!("{a}/{b}"))
                    .unwrap_or_else(|| "–".into()),
                r.lost,
                r.panics,
                r.failed
            );
        }
        if !self.notes.is_empty() {
            s.push('\n');
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        if !self.failures.is_empty() {
            let _ = writeln!(s, "\n{} failed trials:\n", self.failures.len());
            for f in &self.failures {
                let _ = writeln!(s, "- `{}` ({}): {}", f.trial, f.kind, f.what);
                let _ = writeln!(s, "  replay: `{}`", self.replay(&f.trial));
            }
        }
        s
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "seed": self.seed,
            "size": self.size,
            "rows": self.rows.iter().map(|r| serde_json::json!({
                "kind": r.kind, "trials": r.trials, "faults_injected": r.injected,
                "detected": r.detected, "harmless": r.harmless,
                "repaired": r.repaired.map(|x| x.0), "repairs_tried": r.repaired.map(|x| x.1),
                "data_lost": r.lost, "panics": r.panics, "failed": r.failed,
            })).collect::<Vec<_>>(),
            "notes": self.notes,
            "failures": self.failures.iter().map(|f| serde_json::json!({
                "kind": f.kind, "trial": f.trial, "what": f.what, "replay": self.replay(&f.trial),
            })).collect::<Vec<_>>(),
        })
    }
}
