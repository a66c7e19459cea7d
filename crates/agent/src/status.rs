//! `status`: per plan and copy, the RPO held (age of the newest snapshot on
//! each copy), the last drill's RTA against the RTO, the 3-2-1 verdict from
//! device facts, and the roadmap step. Gathered from the repositories
//! themselves (each listed by a child `ironvault snapshots`) and the history.

use crate::config::{Config, Plan, Repository, Source};
use crate::facts::{DeviceFacts, Medium};
use crate::history::History;
use crate::runner::Runner;
use crate::verdict::{self, CopyFacts, Place, Roadmap, Verdict};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::net::ToSocketAddrs;
use std::path::Path;
use std::time::Duration;

/// One copy as status shows it.
#[derive(Clone, Debug, Serialize)]
pub struct CopyStatus {
    pub name: String,
    pub url: String,
    pub place: Place,
    pub site: Option<String>,
    pub newest_snapshot: Option<String>,
    #[serde(serialize_with = "ironvault_core::contract::time::serialize_opt")]
    pub newest_time: Option<DateTime<Utc>>,
    /// The RPO held: age of the newest snapshot, in seconds.
    pub age_seconds: Option<u64>,
    /// Within the plan's RPO (None when the plan declares none).
    pub rpo_met: Option<bool>,
    pub unreachable: Option<String>,
    /// What to do about it being unreachable (not in `--json`, whose
    /// shape is a contract: its `unreachable` says what failed).
    #[serde(skip)]
    pub advice: Vec<String>,
}

/// The last drill.
#[derive(Clone, Debug, Serialize)]
pub struct DrillStatus {
    pub copy: Option<String>,
    #[serde(serialize_with = "ironvault_core::contract::time::serialize")]
    pub time: DateTime<Utc>,
    pub result: String,
    pub rta_seconds: Option<f64>,
    pub rto_met: Option<bool>,
    pub error: Option<String>,
}

/// The last run.
#[derive(Clone, Debug, Serialize)]
pub struct RunStatus {
    #[serde(serialize_with = "ironvault_core::contract::time::serialize")]
    pub started: DateTime<Utc>,
    #[serde(serialize_with = "ironvault_core::contract::time::serialize_opt")]
    pub ended: Option<DateTime<Utc>>,
    pub result: String,
    pub error: Option<String>,
}

/// One plan as status shows it.
#[derive(Clone, Debug, Serialize)]
pub struct PlanStatus {
    pub plan: String,
    pub rpo_seconds: Option<u64>,
    pub rto_seconds: Option<u64>,
    pub source: Place,
    pub copies: Vec<CopyStatus>,
    pub last_run: Option<RunStatus>,
    #[serde(serialize_with = "ironvault_core::contract::time::serialize_opt")]
    pub last_success: Option<DateTime<Utc>>,
    pub last_drill: Option<DrillStatus>,
    pub three_two_one: Verdict,
    /// 3-2-1 plus one copy immutable or offline and zero errors (its rules
    /// are 3-2-1's, then `1 immutable` and `0 errors`). Not an objective:
    /// it does not count as missed, it is roadmap step 5.
    pub three_two_one_one_zero: Verdict,
    pub roadmap: Roadmap,
    /// Objectives missed, each in words; empty when all hold.
    pub missed: Vec<String>,
    /// Things worth knowing that are not misses.
    pub notes: Vec<String>,
}

/// The host of an s3: URL, and whether it is this machine.
pub fn object_place(url: &str) -> Place {
    let rest = url.strip_prefix("s3:").unwrap_or(url);
    let tls = rest.starts_with("https://");
    let after = rest.split_once("://").map(|(_, r)| r).unwrap_or(rest);
    let hostport = after.split('/').next().unwrap_or_default();
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
            (h.to_string(), p.parse().unwrap_or(443))
        }
        _ => (hostport.to_string(), if tls { 443 } else { 80 }),
    };
    Place::Object {
        on_this_host: is_this_host(&host, port),
        host,
        tls,
    }
}

/// True if `host` resolves to a loopback address or one of this machine's addresses.
fn is_this_host(host: &str, port: u16) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost") || bare == ironvault_core::host::hostname() {
        return true;
    }
    let Ok(addrs) = (bare, port).to_socket_addrs() else {
        return false;
    };
    let mine = local_addresses();
    addrs
        .map(|a| a.ip())
        .any(|ip| ip.is_loopback() || ip.is_unspecified() || mine.contains(&ip))
}

/// This machine's interface addresses.
fn local_addresses() -> Vec<std::net::IpAddr> {
    let mut out = Vec::new();
    let mut ifa: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we free with freeifaddrs below.
    if unsafe { libc::getifaddrs(&mut ifa) } != 0 {
        return out;
    }
    let mut cur = ifa;
    while !cur.is_null() {
        // SAFETY: cur points into the list getifaddrs returned.
        let a = unsafe { (*cur).ifa_addr };
        if !a.is_null() {
            // SAFETY: the address family says which sockaddr type it is.
            unsafe {
                match (*a).sa_family as i32 {
                    libc::AF_INET => {
                        let s = &*(a as *const libc::sockaddr_in);
                        out.push(std::net::IpAddr::from(
                            u32::from_be(s.sin_addr.s_addr).to_be_bytes(),
                        ));
                    }
                    libc::AF_INET6 => {
                        let s = &*(a as *const libc::sockaddr_in6);
                        out.push(std::net::IpAddr::from(s.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
        }
        // SAFETY: as above.
        cur = unsafe { (*cur).ifa_next };
    }
    // SAFETY: ifa came from getifaddrs.
    unsafe { libc::freeifaddrs(ifa) };
    out
}

/// Where a repository lives.
pub fn repo_place(repo: &Repository, facts: &DeviceFacts) -> Place {
    if repo.is_object() {
        object_place(&repo.url)
    } else {
        Place::Local {
            medium: facts.medium_of(Path::new(&repo.url)),
        }
    }
}

/// Where the plan's source data lives (the disks of all its paths).
pub fn source_place(plan: &Plan, facts: &DeviceFacts) -> Place {
    let Source::Paths(paths) = &plan.source else {
        return Place::Stream;
    };
    let media: Vec<Medium> = paths
        .iter()
        .map(|p| facts.medium_of(Path::new(p)))
        .collect();
    let mut disks = std::collections::BTreeSet::new();
    for m in &media {
        match m {
            Medium::Disk { disks: d } => disks.extend(d.iter().cloned()),
            other => {
                return Place::Local {
                    medium: other.clone(),
                }
            }
        }
    }
    Place::Local {
        medium: Medium::Disk { disks },
    }
}

/// Gather one plan's status now.
pub fn plan_status(
    cfg: &Config,
    runner: &Runner,
    history: &History,
    facts: &DeviceFacts,
    plan: &Plan,
) -> PlanStatus {
    let now = Utc::now();
    let mut copies = Vec::new();
    let mut facts_list = Vec::new();
    for name in &plan.copies {
        let Some(repo) = cfg.repositories.get(name) else {
            continue;
        };
        let place = repo_place(repo, facts);
        let (newest, unreachable) = match runner.snapshots(plan, repo) {
            Ok(s) => (s.last().cloned(), None),
            Err(e) => (None, Some(format!("{e:#}"))),
        };
        let advice = runner.take_advice();
        let future = newest
            .as_ref()
            .is_some_and(|s| s.time > now + chrono::Duration::minutes(1));
        // A snapshot from the future proves nothing about the RPO: treat the
        // copy as holding none, and say why.
        let age = newest
            .as_ref()
            .filter(|_| !future)
            .map(|s| (now - s.time).to_std().unwrap_or_default());
        let unreachable = if future {
            Some(format!(
                "its newest snapshot is dated {} in the future; check the clocks of this host and the host that wrote it",
                newest.as_ref().map(|s| s.time.to_rfc3339()).unwrap_or_default()
            ))
        } else {
            unreachable
        };
        copies.push(CopyStatus {
            name: name.clone(),
            url: repo.url.clone(),
            place: place.clone(),
            site: repo.site.clone(),
            newest_snapshot: newest.as_ref().map(|s| s.id.clone()),
            newest_time: newest.as_ref().map(|s| s.time),
            age_seconds: age.map(|a| a.as_secs()),
            rpo_met: plan.rpo.map(|r| age.is_some_and(|a| a <= r)),
            unreachable: unreachable.clone(),
            advice,
        });
        facts_list.push(CopyFacts {
            name: name.clone(),
            place,
            site: repo.site.clone(),
            age,
            unreachable,
        });
    }
    let source = CopyFacts {
        name: "source".into(),
        place: source_place(plan, facts),
        site: cfg.site.clone(),
        age: None,
        unreachable: None,
    };
    let mut v = verdict::three_two_one(&source, &facts_list, cfg.site.as_deref(), plan.rpo);
    let proofs: Vec<verdict::CopyProof> = plan
        .copies
        .iter()
        .map(|c| {
            history
                .copy_proof(&plan.name, c)
                .unwrap_or_else(|_| verdict::CopyProof {
                    name: c.clone(),
                    ..Default::default()
                })
        })
        .collect();
    let mut extended = verdict::three_two_one_one_zero(&v, &proofs);
    let mut roadmap = verdict::roadmap(&verdict::RoadmapFacts {
        copies: &facts_list,
        rpo: plan.rpo,
        rto: plan.rto,
        verdict: &v,
        all_encrypted: true,
        extended: &extended,
    });
    // The verdict's advice names no plan; here it is known, and a command
    // to paste names it.
    for fix in v
        .rules
        .iter_mut()
        .chain(extended.rules.iter_mut())
        .filter_map(|r| r.fix.as_mut())
    {
        *fix = name_plan(fix, &plan.name);
    }
    if let Some(n) = roadmap.next.as_mut() {
        n.what = name_plan(&n.what, &plan.name);
    }
    let last_drill = history
        .last_step(&plan.name, crate::step::Step::Drill, None)
        .ok()
        .flatten()
        .map(|s| DrillStatus {
            copy: s.copy.clone(),
            time: s.ended.unwrap_or(s.started),
            result: s.result.as_str().into(),
            rta_seconds: s.result.ok().then_some(s.seconds).flatten(),
            rto_met: match (plan.rto, s.result.ok(), s.seconds) {
                (Some(rto), true, Some(secs)) => Some(secs <= rto.as_secs_f64()),
                (Some(_), false, _) => Some(false),
                _ => None,
            },
            error: s.error.clone(),
        });
    let last_run = history
        .last_finished_run(&plan.name)
        .ok()
        .flatten()
        .map(|r| RunStatus {
            started: r.started,
            ended: r.ended,
            result: r.result.as_str().into(),
            error: r.error,
        });
    let mut missed = Vec::new();
    let mut notes = Vec::new();
    for c in &copies {
        if c.unreachable.is_some() {
            missed.push(format!("{} is unreachable", c.name));
        } else if c.rpo_met == Some(false) {
            missed.push(match c.age_seconds {
                None => format!("{} holds no snapshot of the plan (RPO not held)", c.name),
                Some(a) => format!(
                    "RPO missed on {}: newest snapshot {} old, objective {}",
                    c.name,
                    crate::duration::human(Duration::from_secs(a)),
                    crate::duration::human(plan.rpo.unwrap_or_default())
                ),
            });
        }
    }
    match (&last_drill, plan.rto) {
        (Some(d), Some(rto)) if d.rto_met == Some(false) => missed.push(match d.rta_seconds {
            Some(s) => format!(
                "RTA {} in the last drill ({}), above the RTO of {}",
                crate::duration::human(Duration::from_secs_f64(s)),
                d.copy.as_deref().unwrap_or("?"),
                crate::duration::human(rto)
            ),
            None => format!(
                "the last drill ({}) failed, so the RTO is not shown to hold: {}",
                d.copy.as_deref().unwrap_or("?"),
                d.error.as_deref().unwrap_or("see the history")
            ),
        }),
        (None, Some(_)) => notes.push(match plan.drill.as_ref().and_then(|d| d.schedule.as_ref()) {
            // A drill schedule is configured: say when it measures, not to add one.
            Some(when) => format!(
                "the RTO has not been measured yet: the plan's drill schedule ({}) measures it, or now: 'ironvault drill {}'",
                when.text(),
                plan.name
            ),
            None => format!(
                "the RTO has not been measured yet: run 'ironvault drill {}' (or give the plan a drill schedule)",
                plan.name
            ),
        }),
        _ => {}
    }
    if let Ok(Some(inc)) = history.suspect_incident(&plan.name) {
        // First: the compact screen's "next:" is the first note.
        notes.insert(
            0,
            format!(
                "retention is paused since {}: {}",
                inc.opened
                    .with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M"),
                inc.message
            ),
        );
    }
    if !v.held {
        let broken: Vec<&str> = v
            .rules
            .iter()
            .filter(|r| !r.held)
            .map(|r| r.shortfall())
            .collect();
        missed.push(format!("3-2-1 does not hold: {}", broken.join("; ")));
    }
    PlanStatus {
        plan: plan.name.clone(),
        rpo_seconds: plan.rpo.map(|d| d.as_secs()),
        rto_seconds: plan.rto.map(|d| d.as_secs()),
        source: source.place,
        copies,
        last_run,
        last_success: history.last_success(&plan.name).ok().flatten(),
        last_drill,
        three_two_one: v,
        three_two_one_one_zero: extended,
        roadmap,
        missed,
        notes,
    }
}

/// `text` with the placeholder of a command's plan (`ironvault run PLAN`)
/// filled in.
fn name_plan(text: &str, plan: &str) -> String {
    text.replace("ironvault run PLAN", &format!("ironvault run {plan}"))
        .replace("ironvault drill PLAN", &format!("ironvault drill {plan}"))
        .replace(
            "ironvault history PLAN",
            &format!("ironvault history {plan}"),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_hosts_on_this_machine_are_recognised() {
        match object_place("s3:http://127.0.0.1:3900/bucket/prefix") {
            Place::Object {
                host,
                on_this_host,
                tls,
            } => {
                assert_eq!(
                    (host.as_str(), on_this_host, tls),
                    ("127.0.0.1", true, false)
                )
            }
            p => panic!("{p:?}"),
        }
        match object_place("s3:https://localhost/b") {
            Place::Object {
                on_this_host, tls, ..
            } => assert!(on_this_host && tls),
            p => panic!("{p:?}"),
        }
        // A name that does not resolve here is taken as elsewhere.
        match object_place("s3:https://s3.example.invalid/b") {
            Place::Object {
                host, on_this_host, ..
            } => {
                assert_eq!((host.as_str(), on_this_host), ("s3.example.invalid", false))
            }
            p => panic!("{p:?}"),
        }
        assert!(!local_addresses().is_empty());
    }
}
