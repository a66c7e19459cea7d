//! `ironvault completions SHELL`: a completion script from the clap
//! definitions, so it never drifts from the flags.

use crate::Exit;
use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// The shell to complete for (bash, zsh, fish, elvish, powershell).
    shell: clap_complete::Shell,
}

pub fn run(a: &Args) -> Result<Exit> {
    let mut cmd = crate::cli_command();
    clap_complete::generate(a.shell, &mut cmd, "ironvault", &mut std::io::stdout());
    Ok(Exit::Ok)
}
