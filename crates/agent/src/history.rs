//! The run history: every run and drill, each step with its result, bytes,
//! snapshot and error, and (in `incidents`) the open incidents that alerts
//! were sent for. A SQLite file (WAL, synchronous=FULL): a step is committed
//! when it ends, so a killed agent loses nothing it finished. docs/agent.md
//! describes the tables.

use crate::step::Step;
use anyhow::{Context, Result};
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::time::Duration;

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    plan TEXT NOT NULL,
    kind TEXT NOT NULL,            -- 'run' or 'drill'
    trigger TEXT NOT NULL,         -- 'schedule', 'catch-up' or 'manual'
    scheduled_for INTEGER,         -- the schedule time it serves (unix ms)
    started INTEGER NOT NULL,      -- unix ms
    ended INTEGER,
    result TEXT NOT NULL,          -- running, success, warning, failed, abandoned
    pid INTEGER NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS runs_plan ON runs (plan, kind, started);
CREATE TABLE IF NOT EXISTS steps (
    id INTEGER PRIMARY KEY,
    run INTEGER NOT NULL REFERENCES runs (id),
    step TEXT NOT NULL,            -- before, backup, copy, retention, drill, after
    copy TEXT,                     -- repository name
    started INTEGER NOT NULL,
    ended INTEGER,
    result TEXT NOT NULL,
    bytes INTEGER,
    snapshot TEXT,
    seconds REAL,
    error TEXT,
    detail TEXT                    -- JSON: the command's own summary
);
CREATE INDEX IF NOT EXISTS steps_run ON steps (run);
CREATE TABLE IF NOT EXISTS incidents (
    plan TEXT NOT NULL,
    copy TEXT NOT NULL,            -- '' when the incident is the plan's
    kind TEXT NOT NULL,
    opened INTEGER NOT NULL,
    message TEXT NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0, -- 1 once its alert reached every channel
    sent TEXT NOT NULL DEFAULT '',  -- the channels that took it so far: 'command', 'webhook' ('*': all, before this was recorded)
    attempts INTEGER NOT NULL DEFAULT 0, -- deliveries of its opening tried
    next_try INTEGER NOT NULL DEFAULT 0, -- unix ms: no retry before
    PRIMARY KEY (plan, copy, kind)
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    plan TEXT NOT NULL,
    copy TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,           -- 'open' or 'resolved'
    message TEXT NOT NULL,
    delivery TEXT NOT NULL         -- what happened to the command and webhook
);
";

/// How a run or step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Running,
    Success,
    /// Done, with files that could not be read (the snapshot was still written).
    Warning,
    Failed,
    /// Stopped on purpose (SIGTERM) or by a death of the process running it.
    Abandoned,
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Success => "success",
            Outcome::Warning => "warning",
            Outcome::Failed => "failed",
            Outcome::Abandoned => "abandoned",
            Outcome::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> Outcome {
        match s {
            "running" => Outcome::Running,
            "success" => Outcome::Success,
            "warning" => Outcome::Warning,
            "abandoned" => Outcome::Abandoned,
            "skipped" => Outcome::Skipped,
            _ => Outcome::Failed,
        }
    }

    /// Success or warning: the step did its job.
    pub fn ok(self) -> bool {
        matches!(self, Outcome::Success | Outcome::Warning)
    }
}

/// What a finished step reports.
#[derive(Clone, Debug, Default)]
pub struct StepEnd {
    pub bytes: Option<u64>,
    pub snapshot: Option<String>,
    pub seconds: Option<f64>,
    pub error: Option<String>,
    pub detail: Option<serde_json::Value>,
}

impl StepEnd {
    /// The step's result as the log, `run` and `history` print it:
    /// "success, snapshot 3f9a1c27, added 182.4 MiB, 41.3 s" (a drill's
    /// time is its RTA).
    pub fn describe(&self, step: &str, outcome: Outcome) -> String {
        let step = Step::parse(step);
        let mut parts = vec![outcome.as_str().to_string()];
        if let Some(id) = &self.snapshot {
            parts.push(format!("snapshot {}", &id[..id.len().min(8)]));
        }
        if let Some(b) = self.bytes {
            let what = step.map_or("restored", Step::bytes_verb);
            parts.push(format!("{what} {}", ironvault_core::human::bytes(b)));
        }
        if let Some(secs) = self.seconds {
            let label = if step == Some(Step::Drill) {
                "RTA "
            } else {
                ""
            };
            parts.push(format!("{label}{}", crate::duration::human_secs(secs)));
        }
        parts.join(", ")
    }
}

/// One run as recorded.
#[derive(Clone, Debug)]
pub struct RunRow {
    pub id: i64,
    pub plan: String,
    pub kind: String,
    pub trigger: String,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub started: DateTime<Utc>,
    pub ended: Option<DateTime<Utc>>,
    pub result: Outcome,
    pub error: Option<String>,
}

/// One step as recorded.
#[derive(Clone, Debug)]
pub struct StepRow {
    pub run: i64,
    pub step: String,
    pub copy: Option<String>,
    pub started: DateTime<Utc>,
    pub ended: Option<DateTime<Utc>>,
    pub result: Outcome,
    pub bytes: Option<u64>,
    pub snapshot: Option<String>,
    pub seconds: Option<f64>,
    pub error: Option<String>,
}

/// Create a directory (and its parents) readable by the owner only: the
/// state directory holds the history and drill sandboxes.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the state directory {}", dir.display()))
}

/// SQLite said another connection holds the lock.
fn is_busy(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<rusqlite::Error>(),
            Some(rusqlite::Error::SqliteFailure(f, _))
                if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    })
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

/// The history database.
pub struct History {
    conn: Connection,
}

impl History {
    /// Open (and create) the history at `path`. Two processes opening a
    /// new file at once (the agent and `ironvault run`) take turns: setting
    /// up the schema is retried while the other holds the database.
    pub fn open(path: &Path) -> Result<History> {
        if let Some(dir) = path.parent() {
            create_private_dir(dir)?;
        }
        let name = path.display();
        if !path.exists() {
            // Owner-only from the start, even in an existing directory.
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot create the history database {name}"))?;
        }
        let conn = Connection::open(path)
            .with_context(|| format!("cannot open the history database {name}"))?;
        conn.busy_timeout(Duration::from_secs(30))?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match Self::set_up(&conn, path) {
                Ok(()) => break,
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) if is_busy(&e) => anyhow::bail!(
                    "the history database {name} stayed locked by another process for 30 s; \
                     check that no stuck ironvault process holds it (fuser {name})"
                ),
                Err(e) => return Err(e),
            }
        }
        Ok(History { conn })
    }

    fn set_up(conn: &Connection, path: &Path) -> Result<()> {
        let name = path.display();
        conn.pragma_update(None, "journal_mode", "WAL")
            .with_context(|| format!("cannot set up the history database {name}"))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let tx =
            rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
                .with_context(|| format!("cannot set up the history database {name}"))?;
        tx.execute_batch(SCHEMA)
            .with_context(|| format!("cannot set up the history database {name}"))?;
        // Columns added after the first schema, for databases made before.
        for (column, ddl) in [
            (
                "delivered",
                "ALTER TABLE incidents ADD COLUMN delivered INTEGER NOT NULL DEFAULT 1",
            ),
            (
                "sent",
                // Incidents alerted before channels were recorded: '*', all
                // the channels there were.
                "ALTER TABLE incidents ADD COLUMN sent TEXT NOT NULL DEFAULT '';
                 UPDATE incidents SET sent = '*' WHERE delivered = 1",
            ),
            (
                "attempts",
                "ALTER TABLE incidents ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
            ),
            (
                "next_try",
                "ALTER TABLE incidents ADD COLUMN next_try INTEGER NOT NULL DEFAULT 0",
            ),
        ] {
            let has: bool = tx
                .prepare("SELECT 1 FROM pragma_table_info('incidents') WHERE name = ?1")?
                .exists([column])?;
            if !has {
                tx.execute_batch(ddl)?;
            }
        }
        let version: Option<String> = tx
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .optional()?;
        match version.map(|v| v.parse::<i64>().unwrap_or(i64::MAX)) {
            None => {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', ?1)",
                    [SCHEMA_VERSION.to_string()],
                )?;
            }
            Some(v) if v > SCHEMA_VERSION => anyhow::bail!(
                "the history database {name} was written by a newer ironvault (schema {v}); upgrade this one"
            ),
            Some(_) => {}
        }
        tx.commit()?;
        Ok(())
    }

    /// A write transaction taken at once (BEGIN IMMEDIATE), so another
    /// writer makes it wait (busy timeout) instead of failing at its first write.
    fn immediate(&self) -> Result<rusqlite::Transaction<'_>> {
        Ok(rusqlite::Transaction::new_unchecked(
            &self.conn,
            rusqlite::TransactionBehavior::Immediate,
        )?)
    }

    /// Record a run as started; returns its id.
    pub fn start_run(
        &self,
        plan: &str,
        kind: &str,
        trigger: &str,
        scheduled_for: Option<DateTime<Utc>>,
    ) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO runs (plan, kind, trigger, scheduled_for, started, result, pid)
             VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6)",
            params![
                plan,
                kind,
                trigger,
                scheduled_for.map(ms),
                ms(Utc::now()),
                std::process::id()
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Record how a run ended.
    pub fn end_run(&self, run: i64, result: Outcome, error: Option<&str>) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET ended = ?2, result = ?3, error = ?4 WHERE id = ?1",
            params![run, ms(Utc::now()), result.as_str(), error],
        )?;
        Ok(())
    }

    /// Record a step as started; returns its id.
    pub fn start_step(&self, run: i64, step: Step, copy: Option<&str>) -> Result<i64> {
        let step = step.as_str();
        self.conn.execute(
            "INSERT INTO steps (run, step, copy, started, result) VALUES (?1, ?2, ?3, ?4, 'running')",
            params![run, step, copy, ms(Utc::now())],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Record how a step ended.
    pub fn end_step(&self, step: i64, result: Outcome, end: &StepEnd) -> Result<()> {
        self.conn.execute(
            "UPDATE steps SET ended = ?2, result = ?3, bytes = ?4, snapshot = ?5, seconds = ?6,
             error = ?7, detail = ?8 WHERE id = ?1",
            params![
                step,
                ms(Utc::now()),
                result.as_str(),
                end.bytes.map(|b| b as i64),
                end.snapshot,
                end.seconds,
                end.error,
                end.detail.as_ref().map(|d| d.to_string())
            ],
        )?;
        Ok(())
    }

    /// Mark the plan's runs still 'running' as abandoned: call this holding the
    /// plan's lock, when no process can be running them any more.
    pub fn abandon_unfinished(&self, plan: &str) -> Result<usize> {
        let why = "the process running it ended before recording a result (killed or crashed)";
        let now = ms(Utc::now());
        let tx = self.immediate()?;
        tx.execute(
            "UPDATE steps SET result = 'abandoned', ended = ?2, error = ?3
             WHERE result = 'running' AND run IN (SELECT id FROM runs WHERE plan = ?1 AND result = 'running')",
            params![plan, now, why],
        )?;
        let n = tx.execute(
            "UPDATE runs SET result = 'abandoned', ended = ?2, error = ?3 WHERE plan = ?1 AND result = 'running'",
            params![plan, now, why],
        )?;
        tx.commit()?;
        Ok(n)
    }

    fn run_row(r: &rusqlite::Row) -> rusqlite::Result<RunRow> {
        Ok(RunRow {
            id: r.get(0)?,
            plan: r.get(1)?,
            kind: r.get(2)?,
            trigger: r.get(3)?,
            scheduled_for: r.get::<_, Option<i64>>(4)?.map(from_ms),
            started: from_ms(r.get(5)?),
            ended: r.get::<_, Option<i64>>(6)?.map(from_ms),
            result: Outcome::parse(&r.get::<_, String>(7)?),
            error: r.get(8)?,
        })
    }

    /// The newest runs, newest first (of one plan, or all).
    pub fn runs(&self, plan: Option<&str>, limit: usize) -> Result<Vec<RunRow>> {
        let mut st = self.conn.prepare(
            "SELECT id, plan, kind, trigger, scheduled_for, started, ended, result, error FROM runs
             WHERE ?1 IS NULL OR plan = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = st.query_map(params![plan, limit as i64], Self::run_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The steps of a run, in order.
    pub fn steps(&self, run: i64) -> Result<Vec<StepRow>> {
        let mut st = self.conn.prepare(
            "SELECT run, step, copy, started, ended, result, bytes, snapshot, seconds, error
             FROM steps WHERE run = ?1 ORDER BY id",
        )?;
        let rows = st.query_map([run], Self::step_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn step_row(r: &rusqlite::Row) -> rusqlite::Result<StepRow> {
        Ok(StepRow {
            run: r.get(0)?,
            step: r.get(1)?,
            copy: r.get(2)?,
            started: from_ms(r.get(3)?),
            ended: r.get::<_, Option<i64>>(4)?.map(from_ms),
            result: Outcome::parse(&r.get::<_, String>(5)?),
            bytes: r.get::<_, Option<i64>>(6)?.map(|b| b as u64),
            snapshot: r.get(7)?,
            seconds: r.get(8)?,
            error: r.get(9)?,
        })
    }

    /// The latest schedule time a run (or drill) of the plan served; a run
    /// stopped or killed before its end did not serve it.
    pub fn last_scheduled(&self, plan: &str, kind: &str) -> Result<Option<DateTime<Utc>>> {
        let v: Option<i64> = self.conn.query_row(
            "SELECT MAX(scheduled_for) FROM runs WHERE plan = ?1 AND kind = ?2
             AND result NOT IN ('running', 'abandoned')",
            params![plan, kind],
            |r| r.get(0),
        )?;
        Ok(v.map(from_ms))
    }

    /// The newest step of this kind (and copy) for the plan that ran to its
    /// end (not stopped or killed).
    pub fn last_step(&self, plan: &str, step: Step, copy: Option<&str>) -> Result<Option<StepRow>> {
        let step = step.as_str();
        Ok(self
            .conn
            .query_row(
                "SELECT s.run, s.step, s.copy, s.started, s.ended, s.result, s.bytes, s.snapshot, s.seconds, s.error
                 FROM steps s JOIN runs r ON r.id = s.run
                 WHERE r.plan = ?1 AND s.step = ?2 AND (?3 IS NULL OR s.copy = ?3) AND s.result NOT IN ('running', 'abandoned')
                 ORDER BY s.id DESC LIMIT 1",
                params![plan, step, copy],
                Self::step_row,
            )
            .optional()?)
    }

    /// The newest run of the plan (not a drill) that ran to its end.
    pub fn last_finished_run(&self, plan: &str) -> Result<Option<RunRow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, plan, kind, trigger, scheduled_for, started, ended, result, error FROM runs
                 WHERE plan = ?1 AND kind = 'run' AND result NOT IN ('running', 'abandoned')
                 ORDER BY id DESC LIMIT 1",
                [plan],
                Self::run_row,
            )
            .optional()?)
    }

    /// The end of the newest successful run of the plan.
    pub fn last_success(&self, plan: &str) -> Result<Option<DateTime<Utc>>> {
        let v: Option<i64> = self.conn.query_row(
            "SELECT MAX(ended) FROM runs WHERE plan = ?1 AND kind = 'run' AND result IN ('success', 'warning')",
            [plan],
            |r| r.get(0),
        )?;
        Ok(v.map(from_ms))
    }

    /// Failed steps per (step, copy) of the plan, over its whole history.
    pub fn failures(&self, plan: &str) -> Result<Vec<(String, String, u64)>> {
        let mut st = self.conn.prepare(
            "SELECT s.step, COALESCE(s.copy, ''), COUNT(*) FROM steps s JOIN runs r ON r.id = s.run
             WHERE r.plan = ?1 AND s.result = 'failed' GROUP BY 1, 2 ORDER BY 1, 2",
        )?;
        let rows = st.query_map([plan], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Runs of the plan per result.
    pub fn run_counts(&self, plan: &str) -> Result<Vec<(String, u64)>> {
        let mut st = self.conn.prepare(
            "SELECT result, COUNT(*) FROM runs WHERE plan = ?1 AND kind = 'run' AND result != 'running'
             GROUP BY 1 ORDER BY 1",
        )?;
        let rows = st.query_map([plan], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Bytes of the newest successful backup and copy step per copy: (step, copy, bytes).
    pub fn last_bytes(&self, plan: &str) -> Result<Vec<(String, String, u64)>> {
        let mut st = self.conn.prepare(
            "SELECT s.step, s.copy, s.bytes FROM steps s JOIN runs r ON r.id = s.run
             WHERE s.id IN (SELECT MAX(s2.id) FROM steps s2 JOIN runs r2 ON r2.id = s2.run
                            WHERE r2.plan = ?1 AND s2.step IN ('backup', 'copy')
                              AND s2.result IN ('success', 'warning') AND s2.bytes IS NOT NULL
                            GROUP BY s2.step, s2.copy)
             ORDER BY 1, 2",
        )?;
        let rows = st.query_map([plan], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

mod baseline;
mod copy_facts;
mod incidents;
pub use incidents::{Incident, SUSPECT};

#[cfg(test)]
mod tests;
