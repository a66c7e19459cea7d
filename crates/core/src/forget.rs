//! Retention: which snapshots a keep policy keeps. The algorithm is
//! restic's, so policies mean the same in both tools:
//!
//! * Snapshots are grouped (by host and paths unless told otherwise) and
//!   each group is walked newest first.
//! * `last N` keeps the N newest.
//! * `hourly/daily/weekly/monthly/yearly N` keep the newest snapshot of each
//!   of the N newest hours/days/ISO weeks/months/years that have one. The
//!   period is taken in the snapshot's own recorded UTC offset.
//! * `within D` keeps everything up to D older than the group's newest
//!   snapshot; `within-daily D` (etc.) keeps one per day (etc.) in that span.
//! * `tag T` keeps every snapshot with all the tags of one tag list.
//!
//! A count of -1 means "no limit". A snapshot is removed only if no rule
//! keeps it; each decision carries the rules that kept it.

use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::format::Id;
use chrono::{DateTime, Datelike, FixedOffset, Months, Timelike};

/// A duration in calendar units, as `--keep-within 1y2m3d4h` gives it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CalDuration {
    pub years: u32,
    pub months: u32,
    pub days: u32,
    pub hours: u32,
}

impl CalDuration {
    /// Parse `1y2m3d4h` (any of the parts, in any order, each at most once).
    pub fn parse(s: &str) -> Result<CalDuration> {
        let bad = || {
            Error::Usage(format!(
                "{s:?} is not a duration: use a number and a unit, y m d h (e.g. 7d, 1y6m, 36h)"
            ))
        };
        let mut d = CalDuration::default();
        let mut num = String::new();
        let mut seen = String::new();
        for c in s.trim().chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            if num.is_empty() || seen.contains(c) {
                return Err(bad());
            }
            let n: u32 = num.parse().map_err(|_| bad())?;
            match c {
                'y' => d.years = n,
                'm' => d.months = n,
                'd' => d.days = n,
                'h' => d.hours = n,
                _ => return Err(bad()),
            }
            seen.push(c);
            num.clear();
        }
        if !num.is_empty() || seen.is_empty() {
            return Err(bad());
        }
        // Beyond any real retention, and beyond calendar arithmetic.
        if d.years > 10_000 || d.months > 120_000 || d.days > 3_650_000 || d.hours > 87_600_000 {
            return Err(Error::Usage(format!(
                "{s:?} is longer than 10,000 years; use -1 counts (--keep-daily -1) to keep everything"
            )));
        }
        Ok(d)
    }

    fn is_zero(&self) -> bool {
        *self == CalDuration::default()
    }

    /// `t` minus this duration (years and months as calendar months, like Go's AddDate).
    fn before(&self, t: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
        let months = self.years * 12 + self.months;
        // Go's AddDate normalises (Mar 31 - 1 month = Mar 3); chrono clamps
        // (Feb 28/29). Count back in days from the same day number instead.
        let shifted = add_months_normalised(t, -(months as i64));
        shifted
            - chrono::Duration::days(self.days as i64)
            - chrono::Duration::hours(self.hours as i64)
    }
}

/// Add `months` to `t` the way Go's time.AddDate does: the day of month is
/// kept and overflow rolls into the next month (Jan 31 + 1 month = Mar 3).
fn add_months_normalised(t: DateTime<FixedOffset>, months: i64) -> DateTime<FixedOffset> {
    let total = t.year() as i64 * 12 + t.month0() as i64 + months;
    let (y, m0) = (total.div_euclid(12), total.rem_euclid(12));
    let first = t
        .with_day(1)
        .and_then(|f| {
            let base = f.with_month(1)?.with_year(y as i32)?;
            base.checked_add_months(Months::new(m0 as u32))
        })
        .unwrap_or(t);
    first + chrono::Duration::days(t.day() as i64 - 1)
}

/// How many of one period to keep: None = rule unused, Some(-1) = all.
pub type Count = Option<i64>;

/// A keep policy.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub last: Count,
    pub hourly: Count,
    pub daily: Count,
    pub weekly: Count,
    pub monthly: Count,
    pub yearly: Count,
    pub within: Option<CalDuration>,
    pub within_hourly: Option<CalDuration>,
    pub within_daily: Option<CalDuration>,
    pub within_weekly: Option<CalDuration>,
    pub within_monthly: Option<CalDuration>,
    pub within_yearly: Option<CalDuration>,
    /// Tag lists: a snapshot with every tag of one list is kept.
    pub tags: Vec<Vec<String>>,
}

impl Policy {
    /// Counts must be -1 (all) or positive.
    pub fn validate(&self) -> Result<()> {
        let counts = [
            ("keep-last", self.last),
            ("keep-hourly", self.hourly),
            ("keep-daily", self.daily),
            ("keep-weekly", self.weekly),
            ("keep-monthly", self.monthly),
            ("keep-yearly", self.yearly),
        ];
        for (name, c) in counts {
            if let Some(n) = c {
                if n < -1 {
                    return Err(Error::Usage(format!(
                        "--{name} {n}: use a count of 0 or more, or -1 for all"
                    )));
                }
            }
        }
        Ok(())
    }

    /// True if the policy keeps nothing at all (refused: it would remove every snapshot).
    pub fn is_empty(&self) -> bool {
        let counts = [
            self.last,
            self.hourly,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ];
        let withins = [
            self.within,
            self.within_hourly,
            self.within_daily,
            self.within_weekly,
            self.within_monthly,
            self.within_yearly,
        ];
        counts.iter().all(|c| c.unwrap_or(0) == 0)
            && withins
                .iter()
                .all(|w| w.map(|d| d.is_zero()).unwrap_or(true))
            && self.tags.iter().all(|t| t.is_empty())
    }
}

/// The period a time falls in, per rule.
fn bucket(kind: usize, t: &DateTime<FixedOffset>) -> i64 {
    let (y, m, d, h) = (
        t.year() as i64,
        t.month() as i64,
        t.day() as i64,
        t.hour() as i64,
    );
    match kind {
        0 => ((y * 100 + m) * 100 + d) * 100 + h,
        1 => (y * 100 + m) * 100 + d,
        2 => {
            let w = t.iso_week();
            w.year() as i64 * 100 + w.week() as i64
        }
        3 => y * 100 + m,
        _ => y,
    }
}

const PERIODS: [&str; 5] = ["hourly", "daily", "weekly", "monthly", "yearly"];

/// What the policy decided for one snapshot.
#[derive(Clone, Debug)]
pub struct Decision {
    pub id: Id,
    pub keep: bool,
    /// The rules that kept it ("last snapshot", "daily snapshot", "within 7d", "tag daily").
    pub reasons: Vec<String>,
}

/// Apply `p` to one group of snapshots. Returns decisions newest first.
/// Snapshots whose time cannot be parsed are kept (and say so).
pub fn apply(p: &Policy, group: &[(Id, Snapshot)]) -> Vec<Decision> {
    let mut list: Vec<(Id, &Snapshot, Option<DateTime<FixedOffset>>)> = group
        .iter()
        .map(|(i, s)| (*i, s, s.parsed_time()))
        .collect();
    // Newest first; equal times by id for a stable order.
    list.sort_by(|a, b| b.2.cmp(&a.2).then(b.0.cmp(&a.0)));
    // The newest snapshot not dated in the future (a host with a wrong
    // clock must not make every real snapshot "too old", as in restic).
    let now = chrono::Utc::now();
    let latest = list.iter().filter_map(|x| x.2).find(|t| *t <= now);
    let counts = [p.hourly, p.daily, p.weekly, p.monthly, p.yearly];
    let withins = [
        p.within_hourly,
        p.within_daily,
        p.within_weekly,
        p.within_monthly,
        p.within_yearly,
    ];
    let mut left: Vec<i64> = counts.iter().map(|c| c.unwrap_or(0)).collect();
    let mut last_bucket: [Option<i64>; 5] = [None; 5];
    let mut last_within_bucket: [Option<i64>; 5] = [None; 5];
    let mut out = Vec::new();
    for (nr, (id, snap, time)) in list.iter().enumerate() {
        let mut reasons = Vec::new();
        let Some(t) = time else {
            out.push(Decision {
                id: *id,
                keep: true,
                reasons: vec!["time unreadable".into()],
            });
            continue;
        };
        if let Some(tl) = p
            .tags
            .iter()
            .find(|tl| !tl.is_empty() && tl.iter().all(|tag| snap.tags.contains(tag)))
        {
            reasons.push(format!("tag {}", tl.join(",")));
        }
        if let Some(n) = p.last {
            if n == -1 || (nr as i64) < n {
                reasons.push("last snapshot".into());
            }
        }
        for k in 0..5 {
            if left[k] > 0 || left[k] == -1 {
                let b = bucket(k, t);
                if last_bucket[k] != Some(b) {
                    last_bucket[k] = Some(b);
                    if left[k] > 0 {
                        left[k] -= 1;
                    }
                    reasons.push(format!("{} snapshot", PERIODS[k]));
                }
            }
        }
        if let (Some(w), Some(l)) = (p.within, latest) {
            if !w.is_zero() && *t > w.before(l) {
                reasons.push(format!("within {}", show(&w)));
            }
        }
        for k in 0..5 {
            if let (Some(w), Some(l)) = (withins[k], latest) {
                if !w.is_zero() && *t > w.before(l) {
                    let b = bucket(k, t);
                    if last_within_bucket[k] != Some(b) {
                        last_within_bucket[k] = Some(b);
                        reasons.push(format!("{} within {}", PERIODS[k], show(&w)));
                    }
                }
            }
        }
        out.push(Decision {
            id: *id,
            keep: !reasons.is_empty(),
            reasons,
        });
    }
    out
}

/// `1y2m` back as text.
pub fn show(d: &CalDuration) -> String {
    let mut s = String::new();
    for (n, u) in [
        (d.years, 'y'),
        (d.months, 'm'),
        (d.days, 'd'),
        (d.hours, 'h'),
    ] {
        if n > 0 {
            s.push_str(&format!("{n}{u}"));
        }
    }
    s
}

/// The key a snapshot is grouped by: any of host, paths, tags.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    pub host: Option<String>,
    pub paths: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
}

/// Parse `--group-by host,paths,tags` ("" for one group).
pub fn parse_group_by(s: &str) -> Result<(bool, bool, bool)> {
    let (mut h, mut p, mut t) = (false, false, false);
    for part in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        match part {
            "host" | "hosts" => h = true,
            "path" | "paths" => p = true,
            "tag" | "tags" => t = true,
            _ => {
                return Err(Error::Usage(format!(
                    "--group-by {s:?}: use host, paths and tags, comma-separated (or \"\" for one group)"
                )))
            }
        }
    }
    Ok((h, p, t))
}

/// Split snapshots into groups, in a stable order.
pub fn group(
    snaps: Vec<(Id, Snapshot)>,
    by: (bool, bool, bool),
) -> Vec<(GroupKey, Vec<(Id, Snapshot)>)> {
    let mut groups: std::collections::BTreeMap<GroupKey, Vec<(Id, Snapshot)>> = Default::default();
    for (id, s) in snaps {
        let key = GroupKey {
            host: by.0.then(|| s.hostname.clone()),
            paths: by.1.then(|| {
                let mut p = s.paths.clone();
                p.sort();
                p
            }),
            tags: by.2.then(|| {
                let mut t = s.tags.clone();
                t.sort();
                t
            }),
        };
        groups.entry(key).or_default().push((id, s));
    }
    groups.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(time: &str, tags: &[&str]) -> (Id, Snapshot) {
        let s = Snapshot {
            version: 1,
            time: time.into(),
            tree: Id::random(),
            paths: vec!["/data".into()],
            hostname: "h".into(),
            username: "u".into(),
            uid: 0,
            gid: 0,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            parent: None,
            program_version: "test".into(),
            summary: None,
        };
        (Id::random(), s)
    }

    /// The times kept, newest first.
    fn kept(p: &Policy, times: &[&str]) -> Vec<String> {
        let group: Vec<_> = times.iter().map(|t| snap(t, &[])).collect();
        let by_id: std::collections::HashMap<Id, String> =
            group.iter().map(|(i, s)| (*i, s.time.clone())).collect();
        apply(p, &group)
            .into_iter()
            .filter(|d| d.keep)
            .map(|d| by_id[&d.id].clone())
            .collect()
    }

    #[test]
    fn durations_parse() {
        assert_eq!(
            CalDuration::parse("1y2m3d4h").unwrap(),
            CalDuration {
                years: 1,
                months: 2,
                days: 3,
                hours: 4
            }
        );
        assert_eq!(CalDuration::parse("36h").unwrap().hours, 36);
        for bad in ["", "7", "d", "1w", "1d1d", "-1d", "1.5d"] {
            assert!(CalDuration::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn go_style_month_arithmetic() {
        let t = DateTime::parse_from_rfc3339("2024-03-31T12:00:00+00:00").unwrap();
        // Mar 31 - 1 month = "Feb 31" = Mar 2 (2024 is a leap year).
        assert_eq!(
            add_months_normalised(t, -1).to_rfc3339(),
            "2024-03-02T12:00:00+00:00"
        );
        let t = DateTime::parse_from_rfc3339("2025-01-31T00:00:00-03:00").unwrap();
        assert_eq!(
            add_months_normalised(t, 1).to_rfc3339(),
            "2025-03-03T00:00:00-03:00"
        );
        assert_eq!(
            add_months_normalised(t, -13).to_rfc3339(),
            "2023-12-31T00:00:00-03:00"
        );
    }

    #[test]
    fn table_of_policies_over_awkward_dates() {
        let daily = Policy {
            daily: Some(3),
            ..Default::default()
        };
        // Two on one day: the newer one is the day's snapshot.
        assert_eq!(
            kept(
                &daily,
                &[
                    "2024-02-28T23:00:00+00:00",
                    "2024-02-29T08:00:00+00:00",
                    "2024-02-29T20:00:00+00:00",
                    "2024-03-01T00:30:00+00:00",
                    "2024-03-02T00:30:00+00:00",
                ]
            ),
            vec![
                "2024-03-02T00:30:00+00:00",
                "2024-03-01T00:30:00+00:00",
                "2024-02-29T20:00:00+00:00"
            ]
        );
        // Days are taken in each snapshot's own offset: 23:30 at -03:00 is
        // the 31st there even though it is Jan 1 in UTC.
        let k = kept(
            &daily,
            &["2024-12-31T23:30:00-03:00", "2024-12-31T10:00:00-03:00"],
        );
        assert_eq!(k, vec!["2024-12-31T23:30:00-03:00"]);
        // ISO weeks: Sun 2024-12-29 is week 52 of 2024; Mon 2024-12-30 is week 1 of 2025.
        let weekly = Policy {
            weekly: Some(5),
            ..Default::default()
        };
        let k = kept(
            &weekly,
            &[
                "2024-12-29T12:00:00+00:00",
                "2024-12-30T12:00:00+00:00",
                "2025-01-05T12:00:00+00:00",
            ],
        );
        assert_eq!(
            k,
            vec!["2025-01-05T12:00:00+00:00", "2024-12-29T12:00:00+00:00"]
        );
        // Monthly and yearly over month ends.
        let p = Policy {
            monthly: Some(2),
            yearly: Some(-1),
            ..Default::default()
        };
        let k = kept(
            &p,
            &[
                "2023-12-31T23:59:59+00:00",
                "2024-01-31T00:00:00+00:00",
                "2024-02-29T00:00:00+00:00",
                "2024-02-01T00:00:00+00:00",
            ],
        );
        assert_eq!(
            k,
            vec![
                "2024-02-29T00:00:00+00:00",
                "2024-01-31T00:00:00+00:00",
                "2023-12-31T23:59:59+00:00"
            ]
        );
        // Last and within, relative to the newest snapshot (not now).
        let p = Policy {
            last: Some(1),
            within: Some(CalDuration::parse("2d").unwrap()),
            ..Default::default()
        };
        let k = kept(
            &p,
            &[
                "2020-01-10T00:00:00+00:00",
                "2020-01-08T00:00:01+00:00",
                "2020-01-08T00:00:00+00:00",
                "2019-01-01T00:00:00+00:00",
            ],
        );
        assert_eq!(
            k,
            vec!["2020-01-10T00:00:00+00:00", "2020-01-08T00:00:01+00:00"]
        );
        // A snapshot from a host whose clock is far ahead does not decide "within".
        let p = Policy {
            within: Some(CalDuration::parse("30d").unwrap()),
            ..Default::default()
        };
        let k = kept(
            &p,
            &[
                "2099-01-01T00:00:00+00:00",
                "2024-01-10T00:00:00+00:00",
                "2024-01-01T00:00:00+00:00",
            ],
        );
        assert_eq!(k.len(), 3, "{k:?}");
        assert!(Policy {
            daily: Some(-2),
            ..Default::default()
        }
        .validate()
        .is_err());
        assert!(CalDuration::parse("999999y").is_err());
        assert!(Policy::default().is_empty());
        assert!(Policy {
            daily: Some(0),
            ..Default::default()
        }
        .is_empty());
        assert!(!Policy {
            daily: Some(-1),
            ..Default::default()
        }
        .is_empty());
    }

    #[test]
    fn tags_keep_and_reasons_are_given() {
        let p = Policy {
            last: Some(1),
            tags: vec![vec!["keep".into()]],
            ..Default::default()
        };
        let group = vec![
            snap("2024-01-01T00:00:00+00:00", &["keep"]),
            snap("2024-01-02T00:00:00+00:00", &[]),
            snap("2024-01-03T00:00:00+00:00", &[]),
        ];
        let d = apply(&p, &group);
        let reasons: Vec<_> = d.iter().map(|x| x.reasons.join(", ")).collect();
        assert_eq!(reasons, vec!["last snapshot", "", "tag keep"]);
        assert_eq!(d.iter().filter(|x| x.keep).count(), 2);
    }
}
