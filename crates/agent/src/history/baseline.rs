//! A plan's usual backup signals (`backup::signals` in the engine): the
//! medians of its recent backups' changed and incompressible shares, read
//! from the `--json` summaries the history keeps. Backups judged suspect
//! are left out, so an attack does not become the plan's normal.

use super::History;
use anyhow::Result;
use ironvault_core::backup::signals::Baseline;
use ironvault_core::contract::summary::BackupSummary;

impl History {
    /// The medians of the last `n` backups of `plan` that were not judged
    /// suspect (0 when it has none yet).
    pub fn baseline(&self, plan: &str, n: u32) -> Result<Baseline> {
        let mut st = self.conn.prepare(
            "SELECT s.detail FROM steps s JOIN runs r ON r.id = s.run
             WHERE r.plan = ?1 AND s.step = 'backup' AND s.result IN ('success', 'warning')
               AND s.detail IS NOT NULL
             ORDER BY s.id DESC",
        )?;
        let rows = st.query_map([plan], |r| r.get::<_, String>(0))?;
        let (mut changed, mut incompressible) = (Vec::new(), Vec::new());
        for d in rows {
            let Ok(s) = serde_json::from_str::<BackupSummary>(&d?) else {
                continue;
            };
            if s.suspect.is_some() || s.dry_run {
                continue;
            }
            // Without a parent nothing can have changed: no sign of what
            // is usual. Too little new data says nothing about compression.
            if s.parent.is_some() {
                changed.push(s.changed_share);
            }
            if s.data_added >= ironvault_core::backup::signals::MIN_DATA {
                incompressible.push(s.incompressible_share);
            }
            if changed.len() >= n as usize && incompressible.len() >= n as usize {
                break;
            }
        }
        Ok(Baseline {
            changed: median(changed),
            incompressible: median(incompressible),
        })
    }
}

/// The median (0 for none).
fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_of_few() {
        assert_eq!(super::median(vec![]), 0.0);
        assert_eq!(super::median(vec![0.3, 0.1, 0.9]), 0.3);
        assert_eq!(super::median(vec![0.1, 0.3]), 0.2);
    }
}
