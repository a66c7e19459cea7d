//! `ironvault init`: create a repository, optionally related to another one.

use crate::Cli;
use crate::Exit;
use anyhow::Result;
use ironvault_core::crypto::kdf::KdfParams;
use ironvault_core::repo::Repository;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Make a related repository: share OTHER's chunker and id secrets (so
    /// copies between them deduplicate) but get a fresh master key and password.
    #[arg(long, value_name = "OTHER")]
    from_repo: Option<String>,
    /// Password file of the --from-repo repository.
    #[arg(long, env = "IRONVAULT_FROM_PASSWORD_FILE")]
    from_password_file: Option<PathBuf>,
    /// Command printing the password of the --from-repo repository.
    #[arg(long, env = "IRONVAULT_FROM_PASSWORD_COMMAND")]
    from_password_command: Option<String>,
    /// S3 Object Lock: make the bucket keep every object written from now on
    /// (by any host) for N days from its writing, by the server's clock
    /// (the bucket's default retention; see docs/immutability.md).
    #[arg(long, value_name = "N")]
    object_lock_days: Option<u32>,
    /// Retention mode with --object-lock-days: compliance (nobody can delete
    /// or shorten it, not even the bucket owner) or governance.
    #[arg(long, value_name = "MODE", default_value = "compliance", requires = "object_lock_days",
          value_parser = ["compliance", "governance"])]
    object_lock_mode: String,
}

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    let b = super::backend(cli)?;
    let related = match &a.from_repo {
        Some(other) => Some(super::open_other(
            cli,
            other,
            a.from_password_file.clone(),
            a.from_password_command.clone(),
        )?),
        None => None,
    };
    // Before the first object: the config and key are locked as well.
    if let Some(days) = a.object_lock_days {
        b.set_object_lock(&a.object_lock_mode, days)?;
    }
    let pw = super::password_source(cli).get(&format!("new repository {}", b.location()), true)?;
    let repo = Repository::init(b.clone(), &pw, KdfParams::default(), related.as_deref())?;
    super::attach_security(cli, &repo, super::Contact::Created);
    if cli.json {
        println!(
            "{}",
            serde_json::json!({"message_type": "initialized", "id": repo.config().id.to_hex(), "repository": b.location(),
                "related_to": repo.config().related_to.map(|i| i.to_hex())})
        );
    } else if !cli.quiet {
        println!(
            "created ironvault repository {} at {}",
            repo.config().id.short(),
            b.location()
        );
        if let (Some(other), Some(r)) = (&a.from_repo, &related) {
            println!(
                "related to {} ({}): same chunker and id secrets, its own master key",
                other,
                r.config().id.short()
            );
        }
        if let Some(days) = a.object_lock_days {
            println!(
                "Object Lock: the bucket keeps every object written from now on for {days} days ({}), by the server's clock",
                a.object_lock_mode.to_ascii_uppercase()
            );
        }
        println!("keep the password safe: without it the data cannot be read back");
    }
    Ok(Exit::Ok)
}
