//! `ironvault man`: the manual page from the clap definitions (roff on
//! standard output, or one page per command into a directory, as the
//! package ships them).

use crate::Exit;
use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Write ironvault.1 and a page per command (ironvault-backup.1, ...)
    /// into this directory instead of printing ironvault.1.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn run(a: &Args) -> Result<Exit> {
    let cmd = crate::cli_command();
    match &a.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("cannot write the manual pages into {}", dir.display()))?;
        }
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?,
    }
    Ok(Exit::Ok)
}
