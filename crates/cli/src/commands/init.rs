//! `ironvault init`: create a repository.

use crate::Cli;
use anyhow::Result;
use ironvault_core::crypto::keyfile::KdfParams;
use ironvault_core::repo::Repository;

#[derive(clap::Args)]
pub struct Args {}

pub fn run(cli: &Cli, _a: &Args) -> Result<u8> {
    let b = super::backend(cli)?;
    let pw = super::password_source(cli).get(&format!("new repository {}", b.location()), true)?;
    let repo = Repository::init(b.clone(), &pw, KdfParams::default(), None)?;
    if cli.json {
        println!(
            "{}",
            serde_json::json!({"message_type": "initialized", "id": repo.config().id.to_hex(), "repository": b.location()})
        );
    } else if !cli.quiet {
        println!(
            "created ironvault repository {} at {}",
            repo.config().id.short(),
            b.location()
        );
        println!("keep the password safe: without it the data cannot be read back");
    }
    Ok(0)
}
