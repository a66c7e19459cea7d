//! Scrubbing: which packs a `check` run reads, and the record it leaves.
//!
//! * `N/M` reads the packs whose id (first 8 bytes, big-endian) mod M is N-1,
//!   so M runs with N = 1..M read every pack exactly once.
//! * `P%` reads a random P percent of the packs (at least one).
//! * A scrub cycle of D days reads, on UTC day `day` (days since 1970-01-01),
//!   the packs whose id mod D equals `day` mod D: daily runs on any host cover
//!   every pack once per cycle, with no state shared between runs.
//!
//! Each run writes an encrypted record (`crate::format::scrub`, format.md §9.1).

use crate::error::{Error, Result};
use crate::format::Id;

/// Which packs to read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Subset {
    /// Part `n` (1-based) of `m`.
    Part { n: u64, m: u64 },
    /// A random share, in percent (0 < p <= 100).
    Percent(f64),
    /// The packs due on UTC day `day` of a `days`-day cycle.
    Cycle { days: u64, day: u64 },
}

impl Subset {
    /// Parse `N/M` or `P%`.
    pub fn parse(s: &str) -> Result<Subset> {
        let bad = || {
            Error::Usage(format!(
                "--read-data-subset {s:?}: use N/M (1 <= N <= M, e.g. 2/7) or a percentage (e.g. 10%)"
            ))
        };
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(bad());
            }
            return Ok(Subset::Percent(p));
        }
        let (n, m) = s.split_once('/').ok_or_else(bad)?;
        let (n, m): (u64, u64) = (
            n.trim().parse().map_err(|_| bad())?,
            m.trim().parse().map_err(|_| bad())?,
        );
        if n == 0 || m == 0 || n > m {
            return Err(bad());
        }
        Ok(Subset::Part { n, m })
    }

    /// The cycle position for today (UTC).
    pub fn cycle_today(days: u64) -> Result<Subset> {
        if days == 0 {
            return Err(Error::Usage("--scrub-cycle must be at least 1 day".into()));
        }
        let day = chrono::Utc::now().timestamp().div_euclid(86_400) as u64;
        Ok(Subset::Cycle { days, day })
    }

    /// Choose the packs to read from `all` (sorted ids).
    pub fn select(&self, all: &[Id]) -> Vec<Id> {
        let key = |id: &Id| u64::from_be_bytes(id.0[..8].try_into().expect("8 bytes"));
        match *self {
            Subset::Part { n, m } => all
                .iter()
                .filter(|i| key(i) % m == n - 1)
                .copied()
                .collect(),
            Subset::Cycle { days, day } => all
                .iter()
                .filter(|i| key(i) % days == day % days)
                .copied()
                .collect(),
            Subset::Percent(p) => {
                use rand::seq::SliceRandom;
                let want = ((all.len() as f64 * p / 100.0).ceil() as usize).min(all.len());
                let mut v: Vec<Id> = all
                    .choose_multiple(&mut rand::thread_rng(), want)
                    .copied()
                    .collect();
                v.sort();
                v
            }
        }
    }

    /// How the selection is described in output and records.
    pub fn describe(&self) -> String {
        match self {
            Subset::Part { n, m } => format!("subset {n}/{m}"),
            Subset::Percent(p) => format!("subset {p}%"),
            Subset::Cycle { days, day } => {
                format!(
                    "scrub cycle of {days} days, day {} of the cycle",
                    day % days + 1
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_and_cycles_cover_every_pack_once() {
        let all: Vec<Id> = {
            let mut v: Vec<Id> = (0..500).map(|_| Id::random()).collect();
            v.sort();
            v
        };
        for m in [1u64, 3, 7] {
            let mut seen = Vec::new();
            for n in 1..=m {
                seen.extend(Subset::Part { n, m }.select(&all));
            }
            seen.sort();
            assert_eq!(seen, all, "parts of {m}");
        }
        let mut seen = Vec::new();
        for day in 20_000..20_030u64 {
            seen.extend(Subset::Cycle { days: 30, day }.select(&all));
        }
        seen.sort();
        assert_eq!(seen, all, "a 30-day cycle from any start day");
        assert_eq!(Subset::Percent(10.0).select(&all).len(), 50);
        assert_eq!(Subset::Percent(0.1).select(&all).len(), 1);
    }

    #[test]
    fn subsets_parse() {
        assert_eq!(Subset::parse("2/7").unwrap(), Subset::Part { n: 2, m: 7 });
        assert_eq!(Subset::parse("12.5%").unwrap(), Subset::Percent(12.5));
        for bad in ["0/3", "4/3", "1/0", "x", "0%", "101%", "1/2/3"] {
            assert!(Subset::parse(bad).is_err(), "{bad}");
        }
    }
}
