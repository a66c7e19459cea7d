//! The /metrics exposition of the plans' state: last success, runs and
//! failures, RPO held per copy, RTA, 3-2-1, roadmap step. Written by the
//! `prometheus-client` crate in the OpenMetrics text format (escaping, HELP
//! and TYPE lines, a counter's `_total` samples, the closing `# EOF`).
//!
//! The values are read afresh from the plans' status and the history at
//! each scrape, so they are handed to the crate as one collector of
//! constant samples, in our order, rather than kept in live metric objects.
//! Build cost: three small crates (prometheus-client, its derive macro,
//! dtoa); parking_lot and the macro's syn were in the tree already.

use crate::history::History;
use crate::status::PlanStatus;
use anyhow::Result;
use chrono::{DateTime, Utc};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A sample's value. Flags, counts and times in whole seconds are printed
/// as integers, measured durations as decimals.
#[derive(Clone, Copy, Debug)]
enum Value {
    Gauge(i64),
    Measured(f64),
    /// A counter: its samples are named `NAME_total`.
    Counter(u64),
}

type Labels = Vec<(&'static str, String)>;

/// One metric family and its samples, kept together as the format requires.
#[derive(Debug)]
struct Family {
    /// Without `_total` for a counter: the crate adds it to the samples.
    name: &'static str,
    help: &'static str,
    samples: Vec<(Labels, Value)>,
}

/// Every family of one scrape.
#[derive(Debug, Default)]
struct Out {
    families: Vec<Family>,
}

impl Out {
    fn metric(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        v: Value,
    ) {
        let labels = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        match self.families.iter_mut().find(|f| f.name == name) {
            Some(f) => f.samples.push((labels, v)),
            None => self.families.push(Family {
                name,
                help,
                samples: vec![(labels, v)],
            }),
        }
    }
}

impl Collector for Out {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        for f in &self.families {
            let kind = match f.samples.first() {
                Some((_, Value::Counter(_))) => MetricType::Counter,
                Some(_) => MetricType::Gauge,
                None => continue,
            };
            let mut family = encoder.encode_descriptor(f.name, f.help, None, kind)?;
            for (labels, v) in &f.samples {
                let sample = family.encode_family(labels)?;
                match *v {
                    Value::Gauge(i) => ConstGauge::new(i).encode(sample)?,
                    Value::Measured(x) => ConstGauge::new(x).encode(sample)?,
                    Value::Counter(n) => ConstCounter::new(n).encode(sample)?,
                }
            }
        }
        Ok(())
    }
}

fn b(v: bool) -> Value {
    Value::Gauge(v.into())
}

/// Render every metric; ages are computed at `now` from the snapshot times.
pub fn render(
    statuses: &[PlanStatus],
    history: &History,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<String> {
    let mut o = Out::default();
    o.metric(
        "ironvault_agent_start_time_seconds",
        "When the agent started (unix seconds).",
        &[],
        Value::Gauge(started.timestamp()),
    );
    // Each family's samples stay together, as the text format requires.
    for s in statuses {
        if let Some(t) = s.last_success {
            o.metric(
                "ironvault_plan_last_success_timestamp_seconds",
                "End of the newest successful run (unix seconds).",
                &[("plan", &s.plan)],
                Value::Gauge(t.timestamp()),
            );
        }
    }
    for s in statuses {
        if let Some(r) = s.rpo_seconds {
            o.metric(
                "ironvault_plan_rpo_objective_seconds",
                "The plan's recovery point objective.",
                &[("plan", &s.plan)],
                Value::Gauge(r as i64),
            );
        }
    }
    for s in statuses {
        if let Some(r) = s.rto_seconds {
            o.metric(
                "ironvault_plan_rto_objective_seconds",
                "The plan's recovery time objective.",
                &[("plan", &s.plan)],
                Value::Gauge(r as i64),
            );
        }
    }
    for s in statuses {
        for c in &s.copies {
            let l = [("plan", s.plan.as_str()), ("copy", c.name.as_str())];
            o.metric(
                "ironvault_copy_up",
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
                    "Age of the newest snapshot of the plan on this copy (the RPO held).",
                    &l,
                    Value::Measured(age),
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
                    "RTA measured by the last successful drill.",
                    &[("plan", &s.plan), ("copy", &copy)],
                    Value::Measured(rta),
                );
            }
        }
    }
    for s in statuses {
        if s.rto_seconds.is_some() {
            let met = s.last_drill.as_ref().and_then(|d| d.rto_met) == Some(true);
            o.metric(
                "ironvault_plan_rto_met",
                "1 if the last drill restored within the RTO.",
                &[("plan", &s.plan)],
                b(met),
            );
        }
    }
    for s in statuses {
        o.metric(
            "ironvault_plan_321_held",
            "1 if 3-2-1 holds from device facts.",
            &[("plan", &s.plan)],
            b(s.three_two_one.held),
        );
    }
    for s in statuses {
        o.metric(
            "ironvault_plan_roadmap_step",
            "Highest roadmap step reached with all below it.",
            &[("plan", &s.plan)],
            Value::Gauge(s.roadmap.highest as i64),
        );
    }
    for s in statuses {
        for (step, copy, bytes) in history.last_bytes(&s.plan)? {
            o.metric(
                "ironvault_copy_last_bytes",
                "Bytes added by the last backup or copied by the last copy to this copy.",
                &[("plan", &s.plan), ("copy", &copy), ("step", &step)],
                Value::Gauge(bytes as i64),
            );
        }
    }
    for s in statuses {
        for (result, n) in history.run_counts(&s.plan)? {
            o.metric(
                "ironvault_plan_runs",
                "Runs of the plan by result.",
                &[("plan", &s.plan), ("result", &result)],
                Value::Counter(n),
            );
        }
    }
    for s in statuses {
        for (step, copy, n) in history.failures(&s.plan)? {
            o.metric(
                "ironvault_step_failures",
                "Failed steps by step and copy.",
                &[("plan", &s.plan), ("step", &step), ("copy", &copy)],
                Value::Counter(n),
            );
        }
    }
    let mut registry = Registry::default();
    registry.register_collector(Box::new(o));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_print_in_order_with_escaped_labels_and_counter_totals() {
        let mut o = Out::default();
        o.metric("x_up", "1 if up.", &[("plan", "a\"b\\c\nd")], b(true));
        o.metric(
            "x_runs",
            "Runs.",
            &[("plan", "p"), ("result", "ok")],
            Value::Counter(409),
        );
        o.metric("x_up", "1 if up.", &[("plan", "q")], b(false));
        o.metric("x_age_seconds", "Age.", &[], Value::Measured(372.412));
        let mut registry = Registry::default();
        registry.register_collector(Box::new(o));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert_eq!(
            text,
            "# HELP x_up 1 if up.\n# TYPE x_up gauge\n\
             x_up{plan=\"a\\\"b\\\\c\\nd\"} 1\nx_up{plan=\"q\"} 0\n\
             # HELP x_runs Runs.\n# TYPE x_runs counter\n\
             x_runs_total{plan=\"p\",result=\"ok\"} 409\n\
             # HELP x_age_seconds Age.\n# TYPE x_age_seconds gauge\n\
             x_age_seconds 372.412\n# EOF\n"
        );
    }
}
