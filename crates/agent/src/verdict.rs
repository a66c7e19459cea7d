//! The 3-2-1 verdict and the roadmap step, computed from facts about each
//! copy (where it physically is, how old its newest snapshot is), not from
//! labels. Pure functions: `status` gathers the facts, this judges them.

use crate::facts::Medium;
use serde::Serialize;
use std::time::Duration;

/// Where a copy lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Place {
    /// A directory: the disk(s) or network filesystem under it.
    Local { medium: Medium },
    /// Object storage at `host`; `on_this_host` if that host is this machine.
    Object {
        host: String,
        on_this_host: bool,
        tls: bool,
    },
    /// The output of a command (the data lives on the system it reads).
    Stream,
}

impl Place {
    /// Words for messages.
    pub fn describe(&self) -> String {
        match self {
            Place::Local { medium } => medium.describe(),
            Place::Object { host, .. } => format!("object storage {host}"),
            Place::Stream => "the system the command reads".into(),
        }
    }

    fn separate_from(&self, other: &Place) -> bool {
        match (self, other) {
            (Place::Local { medium: a }, Place::Local { medium: b }) => a.separate_from(b),
            // Where a command reads its data is not known: it may be the very
            // disk a local copy is on, so only object storage is apart from it.
            // A network filesystem is another machine's disks.
            (Place::Stream, Place::Local { medium }) | (Place::Local { medium }, Place::Stream) => {
                matches!(medium, Medium::Network { .. })
            }
            (Place::Local { medium }, _) | (_, Place::Local { medium }) => {
                !matches!(medium, Medium::NotSeparate { .. })
            }
            (Place::Object { host: a, .. }, Place::Object { host: b, .. }) => a != b,
            _ => true,
        }
    }

    fn not_separate_why(&self) -> Option<String> {
        match self {
            Place::Local {
                medium: Medium::NotSeparate { why },
            } => Some(why.clone()),
            _ => None,
        }
    }
}

/// The facts about one copy of a plan's data.
#[derive(Clone, Debug)]
pub struct CopyFacts {
    /// "source", or the repository name.
    pub name: String,
    pub place: Place,
    /// The declared site, if any.
    pub site: Option<String>,
    /// Age of the newest restorable snapshot (None: none, or unreachable).
    pub age: Option<Duration>,
    /// Why the copy could not be read, if it could not.
    pub unreachable: Option<String>,
}

/// One rule of 3-2-1.
#[derive(Clone, Debug, Serialize)]
pub struct Rule {
    pub rule: &'static str,
    pub held: bool,
    pub detail: String,
    pub fix: Option<String>,
}

impl Rule {
    /// What is missing when the rule fails, in words that do not read as counts.
    pub fn shortfall(&self) -> &'static str {
        match self.rule {
            "3 copies" => "fewer than 3 copies within the RPO",
            "2 media" => "every copy on one medium",
            "1 off-site" => "no copy off-site",
            "1 immutable" => "no copy immutable or offline",
            "0 errors" => "no clean drill, or errors",
            other => other,
        }
    }
}

/// The whole verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub held: bool,
    pub rules: Vec<Rule>,
}

/// True if the copy holds a snapshot within the RPO (any snapshot, without one).
fn current(c: &CopyFacts, rpo: Option<Duration>) -> bool {
    match (c.age, rpo) {
        (Some(a), Some(r)) => a <= r,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

fn why_not_current(c: &CopyFacts, rpo: Option<Duration>) -> String {
    use crate::duration::human;
    match (&c.unreachable, c.age, rpo) {
        (Some(_), _, _) => format!("{} is unreachable", c.name),
        (None, None, _) => format!("{} holds no snapshot of the plan", c.name),
        (None, Some(a), Some(r)) => format!(
            "{}'s newest snapshot is {} old, beyond the RPO of {}",
            c.name,
            human(a),
            human(r)
        ),
        (None, Some(_), None) => String::new(),
    }
}

/// Judge 3-2-1 for `source` plus `copies` (the plan's repositories, in order).
pub fn three_two_one(
    source: &CopyFacts,
    copies: &[CopyFacts],
    host_site: Option<&str>,
    rpo: Option<Duration>,
) -> Verdict {
    let counted: Vec<&CopyFacts> = copies.iter().filter(|c| current(c, rpo)).collect();
    let stale: Vec<String> = copies
        .iter()
        .filter(|c| !current(c, rpo))
        .map(|c| why_not_current(c, rpo))
        .collect();
    let names = |v: &[&CopyFacts]| {
        std::iter::once("source")
            .chain(v.iter().map(|c| c.name.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // 3 copies, the source included.
    let n = 1 + counted.len();
    let three = Rule {
        rule: "3 copies",
        held: n >= 3,
        detail: if stale.is_empty() && n >= 3 {
            format!("{n} copies: {}", names(&counted))
        } else if stale.is_empty() {
            format!("{n} of 3 copies: {}", names(&counted))
        } else {
            format!("{n} of 3 copies: {}; {}", names(&counted), stale.join("; "))
        },
        fix: (n < 3).then(|| {
            if copies.len() + 1 >= 3 {
                "run the plan (ironvault run PLAN) and make sure every copy step succeeds, so each copy holds a snapshot within the RPO".to_string()
            } else {
                format!(
                    "add {} more repositor{} to the plan's copies (e.g. an object-storage bucket)",
                    3 - (copies.len() + 1),
                    if 3 - (copies.len() + 1) == 1 { "y" } else { "ies" }
                )
            }
        }),
    };
    // 2 different media: the source is one; a copy adds one if separate from all so far.
    let mut media: Vec<&CopyFacts> = vec![source];
    let mut same: Vec<String> = Vec::new();
    for c in &counted {
        if let Some(why) = c.place.not_separate_why() {
            same.push(format!(
                "{} is on {why}, which never counts as a separate medium",
                c.name
            ));
        } else if let Some(m) = media.iter().find(|m| !m.place.separate_from(&c.place)) {
            same.push(format!(
                "{} ({}) shares a medium with {} ({})",
                c.name,
                c.place.describe(),
                m.name,
                m.place.describe()
            ));
        } else {
            media.push(c);
        }
    }
    let listing = media
        .iter()
        .map(|m| format!("{} on {}", m.name, m.place.describe()))
        .collect::<Vec<_>>()
        .join(", ");
    let two = Rule {
        rule: "2 media",
        held: media.len() >= 2,
        detail: {
            let noun = if media.len() == 1 { "medium" } else { "media" };
            if same.is_empty() {
                format!("{} {noun}: {listing}", media.len())
            } else {
                format!("{} {noun}: {listing}; {}", media.len(), same.join("; "))
            }
        },
        fix: (media.len() < 2).then(|| {
            "keep a copy on a different disk than the source (a repository on another physical disk or a network filesystem), or add an object-storage copy".to_string()
        }),
    };
    // 1 off-site.
    let mut offsite = Vec::new();
    let mut notes = Vec::new();
    for c in &counted {
        let declared_away = matches!((host_site, c.site.as_deref()), (Some(h), Some(s)) if h != s);
        match &c.place {
            Place::Object {
                on_this_host: false,
                ..
            } => offsite.push(c.name.clone()),
            Place::Object {
                on_this_host: true,
                host,
                ..
            } => notes.push(format!(
                "{} is object storage on this host ({host}){}",
                c.name,
                if declared_away {
                    ", whatever its declared site says"
                } else {
                    ""
                }
            )),
            // A declared site is believed only for a copy on a medium apart
            // from the source: a disk the source sits on is where the source is.
            _ if declared_away && !source.place.separate_from(&c.place) => notes.push(format!(
                "{} ({}) declares site {:?} but shares a medium with the source ({})",
                c.name,
                c.place.describe(),
                c.site.as_deref().unwrap_or_default(),
                source.place.describe()
            )),
            _ if declared_away => offsite.push(c.name.clone()),
            _ if host_site.is_none() && c.site.is_some() => notes.push(format!(
                "{} declares site {:?} but this host declares none",
                c.name,
                c.site.as_deref().unwrap_or_default()
            )),
            _ => notes.push(format!("{} is at this host's site", c.name)),
        }
    }
    let one = Rule {
        rule: "1 off-site",
        held: !offsite.is_empty(),
        detail: if offsite.is_empty() {
            if notes.is_empty() {
                "no copy within the RPO is off-site".to_string()
            } else {
                format!("no copy off-site: {}", notes.join("; "))
            }
        } else {
            format!("off-site: {}", offsite.join(", "))
        },
        fix: offsite.is_empty().then(|| {
            if host_site.is_none() {
                "declare this host's site (site = \"...\" at the top of the config) and keep a copy at another site, or add object storage hosted elsewhere".to_string()
            } else {
                "add a copy at another site: object storage hosted elsewhere, or a repository whose declared site differs from this host's".to_string()
            }
        }),
    };
    Verdict {
        held: three.held && two.held && one.held,
        rules: vec![three, two, one],
    }
}

/// Where a plan stands on the nine-step roadmap.
#[derive(Clone, Debug, Serialize)]
pub struct Roadmap {
    /// Steps reached, of 1..=9.
    pub reached: Vec<u8>,
    /// The highest step reached with every step below it reached.
    pub highest: u8,
    /// The lowest step not reached, and what to do for it.
    pub next: Option<NextStep>,
}

/// The next step on the roadmap.
#[derive(Clone, Debug, Serialize)]
pub struct NextStep {
    pub step: u8,
    pub what: String,
}

/// The facts the roadmap needs beyond 3-2-1.
pub struct RoadmapFacts<'a> {
    pub copies: &'a [CopyFacts],
    pub rpo: Option<Duration>,
    pub rto: Option<Duration>,
    pub verdict: &'a Verdict,
    /// Every repository is encrypted (ironvault repositories always are).
    pub all_encrypted: bool,
    /// 3-2-1-1-0 (`three_two_one_one_zero`): its last two rules are part of
    /// step 5, copies safe from a compromised host.
    pub extended: &'a Verdict,
}

/// Steps: 1 a copy holds a snapshot; 2 objectives declared (RPO and RTO);
/// 3 3-2-1 holds; 4 a disk copy within the RPO; 5 every copy encrypted,
/// every remote one reached over TLS, one immutable and zero errors
/// (3-2-1-1-0); 6 an object-storage copy within the
/// RPO; 7 RPO held ≤ 60 s; 8 a standby's failover drill met the RTO (no
/// standby yet); 9 not assessed.
pub fn roadmap(f: &RoadmapFacts) -> Roadmap {
    let within = |c: &CopyFacts| current(c, f.rpo);
    let any_snapshot = f.copies.iter().any(|c| c.age.is_some());
    let disk_current = f
        .copies
        .iter()
        .any(|c| matches!(c.place, Place::Local { .. }) && within(c));
    let object_current = f
        .copies
        .iter()
        .any(|c| matches!(c.place, Place::Object { .. }) && within(c));
    let plain: Vec<&str> = f
        .copies
        .iter()
        .filter(|c| match &c.place {
            Place::Object {
                tls, on_this_host, ..
            } => !tls && !on_this_host,
            Place::Local {
                medium: Medium::Network { .. },
            } => true,
            _ => false,
        })
        .map(|c| c.name.as_str())
        .collect();
    let best = f.copies.iter().filter_map(|c| c.age).min();
    // Step 5: copies a compromised host can neither read in transit nor
    // delete, and shown to restore (3-2-1-1-0's last two rules).
    let extra: Vec<&Rule> = f
        .extended
        .rules
        .iter()
        .filter(|r| r.rule == "1 immutable" || r.rule == "0 errors")
        .collect();
    let hardened = extra.iter().all(|r| r.held);
    let mut fixes: Vec<String> = Vec::new();
    if !plain.is_empty() {
        fixes.push(format!(
            "reach every remote copy over TLS: {} (use s3:https://...)",
            plain.join(", ")
        ));
    }
    fixes.extend(
        extra
            .iter()
            .filter(|r| !r.held)
            .filter_map(|r| r.fix.clone()),
    );
    let safe_fix = format!(
        "make the copies safe from a compromised host (3-2-1-1-0): {}",
        fixes.join("; ")
    );
    let steps: [(bool, String); 9] = [
        (any_snapshot, "run the plan once so a copy holds a snapshot (ironvault run PLAN)".into()),
        (f.rpo.is_some() && f.rto.is_some(), "declare the objectives the business signed up for: rpo = \"...\" and rto = \"...\" in the plan".into()),
        (f.verdict.held, format!("make 3-2-1 hold: {}", f.verdict.rules.iter().filter(|r| !r.held).filter_map(|r| r.fix.clone()).collect::<Vec<_>>().join("; "))),
        (disk_current, "keep a disk copy (a local repository) within the RPO for fast restores".into()),
        (f.all_encrypted && plain.is_empty() && hardened, safe_fix),
        (object_current, "add an object-storage copy (s3:https://...) and keep it within the RPO".into()),
        (best.is_some_and(|b| b <= Duration::from_secs(60)), "ship changes continuously so the RPO held is 60 s or less (a schedule with seconds, e.g. \"*/30 * * * * *\", for small change sets)".into()),
        (false, "keep a standby ready and run a failover drill within the RTO (standby and failover are not in this version)".into()),
        (false, "run unchanged on cloud VMs with object storage (not assessed by status)".into()),
    ];
    let reached: Vec<u8> = (1..=9u8).filter(|&i| steps[i as usize - 1].0).collect();
    let next = (1..=9u8)
        .find(|&i| !steps[i as usize - 1].0)
        .map(|i| NextStep {
            step: i,
            what: steps[i as usize - 1].1.clone(),
        });
    let highest = (1..=9u8)
        .take_while(|s| reached.contains(s))
        .last()
        .unwrap_or(0);
    Roadmap {
        reached,
        highest,
        next,
    }
}

mod immutable;
pub use immutable::{three_two_one_one_zero, CopyProof};

#[cfg(test)]
mod tests;
