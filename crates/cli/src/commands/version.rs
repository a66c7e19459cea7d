//! `ironvault version`: what a bug report needs: the release, the newest
//! repository format this binary reads and writes, and the build target.

use crate::{Cli, Exit};
use anyhow::Result;
use ironvault_core::format::FORMAT_VERSION;

/// The target triple the binary was built for (set by build.rs).
pub const TARGET: &str = env!("IRONVAULT_BUILD_TARGET");

#[derive(clap::Args)]
pub struct Args {}

pub fn run(cli: &Cli, _a: &Args) -> Result<Exit> {
    let version = env!("CARGO_PKG_VERSION");
    if cli.json {
        println!(
            "{}",
            serde_json::json!({"version": version, "format_version": FORMAT_VERSION, "target": TARGET})
        );
    } else {
        println!("ironvault {version}");
        println!("repository format version {FORMAT_VERSION}");
        println!("target {TARGET}");
    }
    Ok(Exit::Ok)
}
