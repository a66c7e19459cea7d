//! Incidents: what is wrong with a plan's copy (a missed RPO, a failed
//! step, an unreachable repository...), open until it is right again, and
//! the alerts sent for them. An incident is alerted once when it opens and
//! once when it resolves; its delivery is retried until every channel had it.

use super::{from_ms, ms, History};
use anyhow::Result;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

/// The kind of the incident a backup judged a likely mass encryption opens
/// (on the plan, copy ''). Unlike the others it is not resolved by a later
/// good status: it stays open, and the plan's retention paused, until an
/// operator clears it (`ironvault incident clear PLAN`).
pub const SUSPECT: &str = "suspect";

/// An open incident.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incident {
    pub plan: String,
    pub copy: String,
    pub kind: String,
    pub opened: DateTime<Utc>,
    pub message: String,
    /// Its alert reached every channel.
    pub delivered: bool,
    /// The channels its opening reached so far.
    pub sent: Vec<String>,
    /// Deliveries of its opening tried so far.
    pub attempts: u32,
    /// No retry of its opening before this.
    pub next_try: DateTime<Utc>,
}

fn split_sent(s: String) -> Vec<String> {
    s.split(',')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// The columns `Incident::from_row` reads, in its order.
const COLUMNS: &str = "plan, copy, kind, opened, message, delivered, sent, attempts, next_try";

impl Incident {
    fn from_row(r: &rusqlite::Row) -> rusqlite::Result<Incident> {
        Ok(Incident {
            plan: r.get(0)?,
            copy: r.get(1)?,
            kind: r.get(2)?,
            opened: from_ms(r.get(3)?),
            message: r.get(4)?,
            delivered: r.get(5)?,
            sent: split_sent(r.get(6)?),
            attempts: r.get(7)?,
            next_try: from_ms(r.get(8)?),
        })
    }
}

impl History {
    /// Open an incident; true if it was not open already (alert then). An
    /// incident open already takes the newer message (what is wrong now),
    /// without a new alert.
    pub fn open_incident(&self, plan: &str, copy: &str, kind: &str, message: &str) -> Result<bool> {
        let tx = self.immediate()?;
        let updated = tx.execute(
            "UPDATE incidents SET message = ?4 WHERE plan = ?1 AND copy = ?2 AND kind = ?3",
            params![plan, copy, kind, message],
        )?;
        if updated == 0 {
            tx.execute(
                "INSERT INTO incidents (plan, copy, kind, opened, message) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![plan, copy, kind, ms(Utc::now()), message],
            )?;
        }
        tx.commit()?;
        Ok(updated == 0)
    }

    /// Close an incident; the incident if it was open (alert its recovery then).
    pub fn resolve_incident(&self, plan: &str, copy: &str, kind: &str) -> Result<Option<Incident>> {
        let tx = self.immediate()?;
        let inc = tx
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM incidents WHERE plan = ?1 AND copy = ?2 AND kind = ?3"
                ),
                params![plan, copy, kind],
                Incident::from_row,
            )
            .optional()?;
        if inc.is_some() {
            tx.execute(
                "DELETE FROM incidents WHERE plan = ?1 AND copy = ?2 AND kind = ?3",
                params![plan, copy, kind],
            )?;
        }
        tx.commit()?;
        Ok(inc)
    }

    /// Record a delivery attempt of an open incident's alert: the channels
    /// it reached so far, whether that is every channel, and when to retry.
    pub fn mark_attempt(
        &self,
        inc: &Incident,
        sent: &[String],
        all: bool,
        next_try: DateTime<Utc>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE incidents SET sent = ?4, delivered = ?5, attempts = attempts + 1, next_try = ?6
             WHERE plan = ?1 AND copy = ?2 AND kind = ?3",
            params![
                inc.plan,
                inc.copy,
                inc.kind,
                sent.join(","),
                all,
                ms(next_try)
            ],
        )?;
        Ok(())
    }

    /// The plan's open suspect-backup incident, if any.
    pub fn suspect_incident(&self, plan: &str) -> Result<Option<Incident>> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM incidents WHERE plan = ?1 AND copy = '' AND kind = ?2"
                ),
                params![plan, SUSPECT],
                Incident::from_row,
            )
            .optional()?)
    }

    /// Every open incident.
    pub fn incidents(&self) -> Result<Vec<Incident>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM incidents ORDER BY plan, copy, kind"
        ))?;
        let rows = st.query_map([], Incident::from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Log an alert and what became of it.
    pub fn log_alert(&self, inc: &Incident, state: &str, delivery: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO alerts (time, plan, copy, kind, state, message, delivery) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![ms(Utc::now()), inc.plan, inc.copy, inc.kind, state, inc.message, delivery],
        )?;
        Ok(())
    }
}
