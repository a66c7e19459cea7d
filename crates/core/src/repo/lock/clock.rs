//! The storage's clock (format.md §9). Lock ages are judged by the times the
//! storage gives objects when they are written, never by the clock of the
//! host that wrote them. A process reads the storage's time from an object
//! it has just written (its own lock) and carries it forward on
//! CLOCK_BOOTTIME, which counts on while the machine sleeps and which no
//! change of the wall clock moves.

use super::MAX_CLOCK_SKEW;
use crate::error::{Error, Result};
use std::time::{Duration, SystemTime};

/// Time since boot, including time suspended.
pub(super) fn boottime() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec for clock_gettime to fill.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The storage's time, as far as this process knows it.
#[derive(Clone, Copy, Debug)]
pub struct StorageClock {
    /// A time the storage gave an object ...
    stamp: SystemTime,
    /// ... and our CLOCK_BOOTTIME at a moment after it did: `now` never runs
    /// ahead of the storage, so no lock is judged older than it is.
    seen: Duration,
    /// Storage time minus this host's wall clock, in whole seconds, when it
    /// was measured (None for `local`).
    skew: Option<i64>,
}

/// `a - b` in whole seconds, negative when `a` is earlier.
fn secs_between(a: SystemTime, b: SystemTime) -> i64 {
    match a.duration_since(b) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

impl StorageClock {
    /// This host's wall clock standing in for the storage's, for readers
    /// that write nothing (`check`, dry runs): what they judge is for
    /// messages only.
    pub fn local() -> StorageClock {
        StorageClock {
            stamp: SystemTime::now(),
            seen: boottime(),
            skew: None,
        }
    }

    /// The clock read from an object this process wrote: `stamp` is the
    /// storage's time of the write, `before` our wall clock just before it;
    /// call this right after reading `stamp`.
    pub fn from_write(stamp: SystemTime, before: SystemTime) -> StorageClock {
        let after = SystemTime::now();
        let seen = boottime();
        // The storage stamped the object between `before` and `after` by our
        // clock: the skew is the part of the difference outside that window.
        let (low, high) = (secs_between(stamp, after), secs_between(stamp, before));
        let skew = if low > 0 {
            low
        } else if high < 0 {
            high
        } else {
            0
        };
        StorageClock {
            stamp,
            seen,
            skew: Some(skew),
        }
    }

    /// The storage's time now.
    pub fn now(&self) -> SystemTime {
        self.stamp + boottime().saturating_sub(self.seen)
    }

    /// How long ago, by the storage's clock, an object stamped `modified`
    /// was written (zero for one stamped after our reading).
    pub fn age(&self, modified: SystemTime) -> Duration {
        self.now()
            .duration_since(modified)
            .unwrap_or(Duration::ZERO)
    }

    /// Storage time minus this host's wall clock, in seconds, if measured.
    pub fn skew(&self) -> Option<i64> {
        self.skew
    }

    /// Refuse when this host's clock and the storage's were found to differ
    /// by more than `MAX_CLOCK_SKEW`; `what` says what is refused
    /// ("prune deletes data").
    pub fn check_skew(&self, what: &str) -> Result<()> {
        let Some(s) = self.skew else {
            return Ok(());
        };
        if s.unsigned_abs() <= MAX_CLOCK_SKEW.as_secs() {
            return Ok(());
        }
        Err(Error::Failed(format!(
            "this host's clock is {} {} the storage's (by the time the storage gave the lock object just written); {what} only while the two agree within {} minutes: set the clock right (NTP on this host, or on the storage server), then run it again",
            span(s.unsigned_abs()),
            if s > 0 { "behind" } else { "ahead of" },
            MAX_CLOCK_SKEW.as_secs() / 60
        )))
    }
}

/// "25 min 3 s", "2 h 5 min".
fn span(secs: u64) -> String {
    if secs >= 3600 {
        format!("{} h {} min", secs / 3600, secs % 3600 / 60)
    } else {
        format!("{} min {} s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_is_what_lies_outside_the_time_of_the_write() {
        let now = SystemTime::now();
        let minutes = |m: u64| Duration::from_secs(m * 60);
        // Written just now by both clocks: no skew.
        assert_eq!(StorageClock::from_write(now, now).skew(), Some(0));
        // The storage stamped it 25 minutes after our clock said we began:
        // our clock is 25 minutes behind.
        let c = StorageClock::from_write(now + minutes(25), now);
        assert!(c.skew().unwrap() >= 25 * 60 - 1, "{c:?}");
        let e = c.check_skew("prune deletes data").unwrap_err().to_string();
        assert!(e.starts_with("this host's clock is 2"), "{e}");
        assert!(e.contains("behind the storage's"), "{e}");
        assert!(e.contains("NTP"), "{e}");
        // 15 minutes before we began: our clock is ahead.
        let c = StorageClock::from_write(now - minutes(15), now);
        assert!(c.skew().unwrap() <= -15 * 60, "{c:?}");
        assert!(c
            .check_skew("x")
            .unwrap_err()
            .to_string()
            .contains("15 min 0 s ahead of"));
        // Within the bound: accepted.
        let c = StorageClock::from_write(now - minutes(9), now);
        c.check_skew("x").unwrap();
        // The storage's time carries on from its stamp, not from ours.
        let age = c.age(now - minutes(9) - minutes(31));
        assert!(age >= minutes(31) && age < minutes(32), "{age:?}");
        assert_eq!(c.age(now), Duration::ZERO, "stamped after the reading");
        // Our own clock measures nothing.
        assert_eq!(StorageClock::local().skew(), None);
        StorageClock::local().check_skew("x").unwrap();
    }
}
