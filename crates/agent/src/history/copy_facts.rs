//! What the history shows about one copy for 3-2-1-1-0 (`verdict::CopyProof`):
//! the immutability its storage reported when the plan last wrote to it (the
//! `immutability` of that step's `--json` summary), whether that write
//! failed, and the newest drill from it.

use super::{from_ms, History};
use crate::step::Step;
use crate::verdict::CopyProof;
use anyhow::Result;
use ironvault_core::contract::summary::ImmutabilityFact;
use rusqlite::{params, OptionalExtension};

impl History {
    /// The proof the history holds about `copy` of `plan`.
    pub fn copy_proof(&self, plan: &str, copy: &str) -> Result<CopyProof> {
        // The newest backup or copy step that ran its command to the end (a
        // copy with nothing to send runs none, and reports no fact).
        let written: Option<(i64, String)> = self
            .conn
            .query_row(
                "SELECT COALESCE(s.ended, s.started), s.detail FROM steps s JOIN runs r ON r.id = s.run
                 WHERE r.plan = ?1 AND s.copy = ?2 AND s.step IN ('backup', 'copy')
                   AND s.result IN ('success', 'warning') AND s.detail LIKE '%\"message_type\"%'
                 ORDER BY s.id DESC LIMIT 1",
                params![plan, copy],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let written = written.map(|(t, d)| {
            let fact = serde_json::from_str::<serde_json::Value>(&d)
                .ok()
                .and_then(|v| v.get("immutability").cloned())
                .and_then(|i| serde_json::from_value::<ImmutabilityFact>(i).ok())
                .map(|f| f.describe());
            (from_ms(t), fact)
        });
        let last_write = [Step::Backup, Step::Copy]
            .into_iter()
            .filter_map(|s| self.last_step(plan, s, Some(copy)).ok().flatten())
            .max_by_key(|s| s.started);
        let write_failed = last_write
            .filter(|s| s.result == super::Outcome::Failed)
            .map(|s| s.error.unwrap_or_else(|| "see the history".into()));
        let drill = self.last_step(plan, Step::Drill, Some(copy))?.map(|s| {
            let err = (!s.result.ok())
                .then(|| s.error.clone().unwrap_or_else(|| s.result.as_str().into()));
            (s.ended.unwrap_or(s.started), err)
        });
        Ok(CopyProof {
            name: copy.to_string(),
            written,
            write_failed,
            drill,
        })
    }
}
