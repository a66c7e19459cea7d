//! `ironvault lock extend`: keep the objects of a repository on an S3 bucket
//! with Object Lock locked for N more days, by the server's clock. Needs only
//! the storage key (no repository password): run it from a separate host
//! whose key may extend retention, not from a backup host (docs/immutability.md).

use crate::Cli;
use crate::Exit;
use anyhow::{bail, Result};
use ironvault_core::backend::Immutability;
use std::time::{Duration, SystemTime};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Extend the retention of every object of the repository that would
    /// end sooner than N days from now (server time) to exactly that; never
    /// shortens. Lock files are left out.
    Extend {
        /// Days from now (default: the bucket's default retention).
        #[arg(long, value_name = "N")]
        days: Option<u32>,
    },
}

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    let What::Extend { days } = &a.what;
    let b = super::open_backend_with(cli, &super::location(cli)?, false)?;
    let Some(Immutability::ObjectLock { mode, retain_days }) = b.immutability()? else {
        bail!(
            "{}: the bucket reports no Object Lock default retention; see 'ironvault init --object-lock-days' and docs/immutability.md",
            b.location()
        );
    };
    let days = days.unwrap_or(retain_days);
    if days == 0 {
        bail!(ironvault_core::Error::Usage(
            "--days 0: give at least 1 day".into()
        ));
    }
    // The server's clock, from the Date of its last answer.
    let skew = b.clock_skew().unwrap_or(0);
    let now = if skew >= 0 {
        SystemTime::now() + Duration::from_secs(skew as u64)
    } else {
        SystemTime::now() - Duration::from_secs(skew.unsigned_abs())
    };
    let until = now + Duration::from_secs(u64::from(days) * 86_400);
    let (mut extended, mut already) = (0u64, 0u64);
    for o in b.list("")? {
        if o.name.starts_with("locks/") {
            continue;
        }
        let current = b.retention(&o.name)?;
        if matches!(&current, Some((_, t)) if *t >= until) {
            already += 1;
            continue;
        }
        let m = current.map(|(m, _)| m).unwrap_or_else(|| mode.clone());
        b.extend_retention(&o.name, &m, until)?;
        extended += 1;
    }
    let until_s = chrono::DateTime::<chrono::Utc>::from(until).format("%Y-%m-%dT%H:%M:%SZ");
    if cli.json {
        println!(
            "{}",
            serde_json::json!({"message_type": "summary", "extended": extended, "already": already,
                "retain_until": until_s.to_string()})
        );
    } else if !cli.quiet {
        println!(
            "extended the retention of {} to {until_s} (server time); {} already locked that long",
            crate::output::plural(extended, "object"),
            crate::output::plural(already, "object")
        );
    }
    Ok(Exit::Ok)
}
