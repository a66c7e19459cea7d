//! The protection-plan config (`/etc/ironvault/ironvault.toml`): repositories,
//! plans, objectives, drills, alerts. Every error names the file, the line and
//! what to change (docs/config.md describes each key).

use crate::duration;
use crate::schedule::{Schedule, Window};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Where the config is looked for when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/ironvault/ironvault.toml";

/// One problem in a config file, at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub msg: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.msg)
    }
}

/// Every problem found in a config file (at least one).
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<String> = self.0.iter().map(|e| e.to_string()).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}

/// What a repository is stored on, as declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MediumKind {
    Disk,
    Object,
}

/// A repository that receives copies.
#[derive(Clone, Debug)]
pub struct Repository {
    pub name: String,
    pub url: String,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    pub medium: MediumKind,
    pub site: Option<String>,
    pub cacert: Option<PathBuf>,
    /// Extra environment for commands on this repository (AWS_PROFILE, ...).
    pub env: BTreeMap<String, String>,
}

impl Repository {
    /// True for S3 repositories and those on a repository server (`rest:`):
    /// storage reached over the network, not a path on this host.
    pub fn is_object(&self) -> bool {
        self.url.starts_with("s3:") || self.url.starts_with("rest:")
    }
}

/// A keep policy, as `forget --keep-*` takes it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Keep {
    pub last: Option<u32>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
    pub within: Option<String>,
}

impl Keep {
    /// The `forget` flags for this policy.
    pub fn args(&self) -> Vec<String> {
        let mut out = Vec::new();
        let n = [
            ("last", self.last),
            ("hourly", self.hourly),
            ("daily", self.daily),
            ("weekly", self.weekly),
            ("monthly", self.monthly),
            ("yearly", self.yearly),
        ];
        for (k, v) in n {
            if let Some(v) = v {
                out.push(format!("--keep-{k}"));
                out.push(v.to_string());
            }
        }
        if let Some(w) = &self.within {
            out.push("--keep-within".into());
            out.push(w.clone());
        }
        out
    }

    fn is_empty(&self) -> bool {
        self.args().is_empty()
    }
}

/// What a plan backs up.
#[derive(Clone, Debug)]
pub enum Source {
    Paths(Vec<String>),
    /// A command whose standard output is stored as one file named `filename`.
    Command {
        command: String,
        filename: String,
    },
}

/// A recovery drill: when, from which copy, into which sandbox.
#[derive(Clone, Debug)]
pub struct Drill {
    pub schedule: Option<Schedule>,
    pub copy: String,
    pub sandbox: Option<PathBuf>,
}

/// A protection plan.
#[derive(Clone, Debug)]
pub struct Plan {
    pub name: String,
    pub source: Source,
    pub exclude: Vec<String>,
    pub iexclude: Vec<String>,
    pub one_file_system: bool,
    pub tags: Vec<String>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub schedule: Option<Schedule>,
    /// Repository names: the backup goes to the first, copies to the rest.
    pub copies: Vec<String>,
    /// Retention per copy (a copy not named keeps everything).
    pub keep: BTreeMap<String, Keep>,
    pub prune: bool,
    pub rpo: Option<Duration>,
    pub rto: Option<Duration>,
    pub drill: Option<Drill>,
    pub nice: Option<i32>,
    pub ionice: Option<(i32, i32)>,
    pub window: Option<Window>,
    /// When a backup is judged a likely mass encryption.
    pub suspect: Suspect,
}

/// When a plan's backup is judged a likely mass encryption (`[plan.NAME.suspect]`,
/// docs/config.md): the shares past which a signal counts, and how many
/// recent backups the plan's baseline is the median of.
#[derive(Clone, Debug, PartialEq)]
pub struct Suspect {
    pub enabled: bool,
    /// Share of the parent's files changed or gone.
    pub changed: f64,
    /// Share of the new data that did not compress.
    pub incompressible: f64,
    pub history: u32,
}

impl Default for Suspect {
    fn default() -> Self {
        let t = ironvault_core::backup::signals::Thresholds::default();
        Suspect {
            enabled: true,
            changed: t.changed,
            incompressible: t.incompressible,
            history: 10,
        }
    }
}

impl Plan {
    /// The tag every snapshot of this plan carries.
    pub fn tag(&self) -> String {
        format!("plan:{}", self.name)
    }
}

/// Where alerts go.
#[derive(Clone, Debug, Default)]
pub struct Alerts {
    pub command: Option<String>,
    pub webhook: Option<String>,
}

/// A whole, checked config.
#[derive(Clone, Debug)]
pub struct Config {
    pub file: PathBuf,
    pub site: Option<String>,
    pub hostname: String,
    pub state_dir: PathBuf,
    /// Address of the agent's metrics and status server; None turns it off.
    pub listen: Option<String>,
    /// The file whose first line HTTP clients must send as a bearer token.
    pub listen_token_file: Option<PathBuf>,
    /// How often the agent refreshes every plan's status (and alerts).
    pub refresh: Duration,
    pub alerts: Alerts,
    pub repositories: BTreeMap<String, Repository>,
    pub plans: BTreeMap<String, Plan>,
    /// What works but should be fixed (`config check` and the agent print them).
    pub warnings: Vec<ConfigError>,
}

impl Config {
    /// The history database.
    pub fn history_path(&self) -> PathBuf {
        self.state_dir.join("history.sqlite")
    }

    /// A plan by name, or an error listing the plans there are.
    pub fn plan(&self, name: &str) -> Result<&Plan, String> {
        self.plans.get(name).ok_or_else(|| {
            let names: Vec<&str> = self.plans.keys().map(|s| s.as_str()).collect();
            format!(
                "no plan {name:?} in {}; plans: {}",
                self.file.display(),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )
        })
    }
}

mod check;
pub use check::{changeable_by_others, load, parse, read_token};

#[cfg(test)]
mod tests;
