//! The steps of a plan's run (hooks, backup, copies, retention) and of a
//! drill. The history stores a step by its name (`Step::as_str`), which is
//! also what `run`, `history`, the log and /metrics show.

use serde::{Deserialize, Serialize};

/// One step of a run or a drill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// The plan's `before` hook.
    Before,
    /// Back up the source to the plan's first copy.
    Backup,
    /// Copy new snapshots from the first copy to another.
    Copy,
    /// Forget by the copy's keep policy, then prune if anything went.
    Retention,
    /// The plan's `after` hook.
    After,
    /// Restore the newest snapshot of a copy into a sandbox and verify it.
    Drill,
}

impl Step {
    /// Every step, in the order a run takes them (a drill last).
    pub const ALL: [Step; 6] = [
        Step::Before,
        Step::Backup,
        Step::Copy,
        Step::Retention,
        Step::After,
        Step::Drill,
    ];

    /// The name the history records and the output shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Before => "before",
            Step::Backup => "backup",
            Step::Copy => "copy",
            Step::Retention => "retention",
            Step::After => "after",
            Step::Drill => "drill",
        }
    }

    /// The step of a recorded name.
    pub fn parse(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// What the step's bytes are: "added" for a backup, "freed" by retention...
    pub fn bytes_verb(self) -> &'static str {
        match self {
            Step::Backup => "added",
            Step::Copy => "copied",
            Step::Retention => "freed",
            Step::Before | Step::After | Step::Drill => "restored",
        }
    }

    /// A hook step (`before`, `after`): a shell command of the operator's.
    pub fn is_hook(self) -> bool {
        matches!(self, Step::Before | Step::After)
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so that `{:<9}` lines up columns as a string would.
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Step;

    #[test]
    fn names_read_back() {
        for s in Step::ALL {
            assert_eq!(Step::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).ok(), Some(s.as_str().into()));
        }
        assert_eq!(Step::parse("forget"), None);
        assert_eq!(format!("[{:<9}]", Step::Copy), "[copy     ]");
    }
}
