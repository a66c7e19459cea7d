//! One module per subcommand.

pub mod backup;
pub mod check;
pub mod init;
pub mod key;
pub mod repair;
pub mod restore;
pub mod snapshots;
pub mod unlock;

use crate::password::PasswordSource;
use crate::Cli;
use anyhow::{anyhow, Result};
use ironvault_core::backend::{open_location, Backend};
use ironvault_core::repo::Repository;
use std::sync::Arc;

/// The repository location from `--repo` / `IRONVAULT_REPO`.
pub fn location(cli: &Cli) -> Result<String> {
    cli.repo
        .clone()
        .ok_or_else(|| anyhow!("no repository given: use --repo PATH or set IRONVAULT_REPO"))
}

/// The backend for the repository location.
pub fn backend(cli: &Cli) -> Result<Arc<dyn Backend>> {
    Ok(Arc::from(open_location(&location(cli)?)?))
}

/// Password sources from the global flags.
pub fn password_source(cli: &Cli) -> PasswordSource {
    PasswordSource {
        env_var: "IRONVAULT_PASSWORD",
        file: cli.password_file.clone(),
        command: cli.password_command.clone(),
    }
}

/// Open the repository: check it exists (before asking a password), then unlock a key.
pub fn open_repo(cli: &Cli) -> Result<Arc<Repository>> {
    let b = backend(cli)?;
    Repository::probe(b.as_ref())?;
    let pw = password_source(cli).get(&format!("repository {}", b.location()), false)?;
    Ok(Arc::new(Repository::open(b, &pw)?))
}
