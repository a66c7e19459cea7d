//! Prometheus text exposition of the plans' state: last success, runs and
//! failures, RPO held per copy, RTA, 3-2-1, roadmap step.

use crate::history::History;
use crate::status::PlanStatus;
use anyhow::Result;
use chrono::{DateTime, Utc};
use std::fmt::Write;

/// Escape a label value.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out {
    text: String,
    declared: Vec<&'static str>,
}

impl Out {
    fn metric(
        &mut self,
        name: &'static str,
        kind: &str,
        help: &str,
        labels: &[(&str, &str)],
        v: f64,
    ) {
        if !self.declared.contains(&name) {
            self.declared.push(name);
            let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        }
        let l: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
            .collect();
        let l = if l.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", l.join(","))
        };
        let _ = writeln!(self.text, "{name}{l} {v}");
    }
}

fn b(v: bool) -> f64 {
    if v {
        1.0
    } else {
        0.0
    }
}

/// Render every metric; ages are computed at `now` from the snapshot times.
pub fn render(
    statuses: &[PlanStatus],
    history: &History,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<String> {
    let mut o = Out {
        text: String::new(),
        declared: Vec::new(),
    };
    o.metric(
        "ironvault_agent_start_time_seconds",
        "gauge",
        "When the agent started (unix seconds).",
        &[],
        started.timestamp() as f64,
    );
    // Each family's samples stay together, as the text format requires.
    for s in statuses {
        if let Some(t) = s.last_success {
            o.metric(
                "ironvault_plan_last_success_timestamp_seconds",
                "gauge",
                "End of the newest successful run (unix seconds).",
                &[("plan", &s.plan)],
                t.timestamp() as f64,
            );
        }
    }
    for s in statuses {
        if let Some(r) = s.rpo_seconds {
            o.metric(
                "ironvault_plan_rpo_objective_seconds",
                "gauge",
                "The plan's recovery point objective.",
                &[("plan", &s.plan)],
                r as f64,
            );
        }
    }
    for s in statuses {
        if let Some(r) = s.rto_seconds {
            o.metric(
                "ironvault_plan_rto_objective_seconds",
                "gauge",
                "The plan's recovery time objective.",
                &[("plan", &s.plan)],
                r as f64,
            );
        }
    }
    for s in statuses {
        for c in &s.copies {
            let l = [("plan", s.plan.as_str()), ("copy", c.name.as_str())];
            o.metric(
                "ironvault_copy_up",
                "gauge",
                "1 if the copy's repository could be read at the last refresh.",
                &l,
                b(c.unreachable.is_none()),
            );
        }
    }
    for s in statuses {
        for c in &s.copies {
            let l = [("plan", s.plan.as_str()), ("copy", c.name.as_str())];
            if let Some(t) = c.newest_time {
                let age = (now - t).num_milliseconds().max(0) as f64 / 1000.0;
                o.metric(
                    "ironvault_copy_rpo_held_seconds",
                    "gauge",
                    "Age of the newest snapshot of the plan on this copy (the RPO held).",
                    &l,
                    age,
                );
            }
        }
    }
    for s in statuses {
        if let Some(rpo) = s.rpo_seconds {
            for c in &s.copies {
                let l = [("plan", s.plan.as_str()), ("copy", c.name.as_str())];
                let met = c.unreachable.is_none()
                    && c.newest_time
                        .is_some_and(|t| (now - t).num_seconds() <= rpo as i64);
                o.metric(
                    "ironvault_copy_rpo_met",
                    "gauge",
                    "1 if the copy holds a snapshot within the RPO.",
                    &l,
                    b(met),
                );
            }
        }
    }
    for s in statuses {
        if let Some(d) = &s.last_drill {
            if let Some(rta) = d.rta_seconds {
                let copy = d.copy.clone().unwrap_or_default();
                o.metric(
                    "ironvault_plan_rta_seconds",
                    "gauge",
                    "RTA measured by the last successful drill.",
                    &[("plan", &s.plan), ("copy", &copy)],
                    rta,
                );
            }
        }
    }
    for s in statuses {
        if s.rto_seconds.is_some() {
            let met = s.last_drill.as_ref().and_then(|d| d.rto_met) == Some(true);
            o.metric(
                "ironvault_plan_rto_met",
                "gauge",
                "1 if the last drill restored within the RTO.",
                &[("plan", &s.plan)],
                b(met),
            );
        }
    }
    for s in statuses {
        o.metric(
            "ironvault_plan_321_held",
            "gauge",
            "1 if 3-2-1 holds from device facts.",
            &[("plan", &s.plan)],
            b(s.three_two_one.held),
        );
    }
    for s in statuses {
        o.metric(
            "ironvault_plan_roadmap_step",
            "gauge",
            "Highest roadmap step reached with all below it.",
            &[("plan", &s.plan)],
            s.roadmap.highest as f64,
        );
    }
    for s in statuses {
        for (step, copy, bytes) in history.last_bytes(&s.plan)? {
            o.metric(
                "ironvault_copy_last_bytes",
                "gauge",
                "Bytes added by the last backup or copied by the last copy to this copy.",
                &[("plan", &s.plan), ("copy", &copy), ("step", &step)],
                bytes as f64,
            );
        }
    }
    for s in statuses {
        for (result, n) in history.run_counts(&s.plan)? {
            o.metric(
                "ironvault_plan_runs_total",
                "counter",
                "Runs of the plan by result.",
                &[("plan", &s.plan), ("result", &result)],
                n as f64,
            );
        }
    }
    for s in statuses {
        for (step, copy, n) in history.failures(&s.plan)? {
            o.metric(
                "ironvault_step_failures_total",
                "counter",
                "Failed steps by step and copy.",
                &[("plan", &s.plan), ("step", &step), ("copy", &copy)],
                n as f64,
            );
        }
    }
    Ok(o.text)
}
