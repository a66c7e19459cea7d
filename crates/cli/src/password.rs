//! Where passwords come from: `IRONVAULT_PASSWORD`, `--password-file`,
//! `--password-command`, or a prompt on the terminal (asked twice on init).

use anyhow::{anyhow, bail, Context, Result};
use std::io::IsTerminal;

/// The password sources a command was given.
#[derive(Clone, Debug, Default)]
pub struct PasswordSource {
    pub env_var: &'static str,
    pub file: Option<std::path::PathBuf>,
    pub command: Option<String>,
}

fn first_line(b: &[u8]) -> Vec<u8> {
    let end = b.iter().position(|&c| c == b'\n').unwrap_or(b.len());
    let mut l = b[..end].to_vec();
    if l.last() == Some(&b'\r') {
        l.pop();
    }
    l
}

impl PasswordSource {
    /// Get the password; `confirm` asks twice when prompting.
    pub fn get(&self, what: &str, confirm: bool) -> Result<Vec<u8>> {
        if let Some(f) = &self.file {
            let b = std::fs::read(f)
                .with_context(|| format!("cannot read password file {}", f.display()))?;
            return non_empty(first_line(&b), &format!("password file {}", f.display()));
        }
        if let Some(c) = &self.command {
            // Messages name the option, never the command: it may hold a
            // secret, and errors reach logs, the agent's history and alerts.
            let which = self.command_option();
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(c)
                .stderr(std::process::Stdio::inherit())
                .output()
                .with_context(|| format!("cannot run the password command ({which})"))?;
            if !out.status.success() {
                bail!("the password command ({which}) failed ({})", out.status);
            }
            return non_empty(
                first_line(&out.stdout),
                &format!("the password command ({which})"),
            );
        }
        if let Ok(p) = std::env::var(self.env_var) {
            return non_empty(p.into_bytes(), self.env_var);
        }
        if !std::io::stdin().is_terminal() {
            // IRONVAULT_FROM_PASSWORD goes with --from-password-file, and so on.
            let flag = self
                .env_var
                .strip_prefix("IRONVAULT_")
                .unwrap_or(self.env_var)
                .to_ascii_lowercase()
                .replace('_', "-");
            let or_command = if self.env_var == "IRONVAULT_NEW_PASSWORD" {
                String::new()
            } else {
                format!(" or --{flag}-command")
            };
            bail!(
                "no password given for {what}: set {}, or use --{flag}-file{or_command}",
                self.env_var
            );
        }
        let p = rpassword::prompt_password(format!("enter password for {what}: "))?;
        if confirm {
            let again = rpassword::prompt_password("enter the password again: ")?;
            if again != p {
                bail!("the passwords do not match; nothing was created");
            }
        }
        non_empty(p.into_bytes(), "the prompt")
    }
}

impl PasswordSource {
    /// The option and variable that gave the password command.
    fn command_option(&self) -> String {
        let var = format!("{}_COMMAND", self.env_var);
        let flag = var
            .strip_prefix("IRONVAULT_")
            .unwrap_or(&var)
            .to_ascii_lowercase()
            .replace('_', "-");
        format!("--{flag} or {var}")
    }
}

fn non_empty(p: Vec<u8>, from: &str) -> Result<Vec<u8>> {
    if p.is_empty() {
        return Err(anyhow!(
            "empty password from {from}; an empty password is not allowed"
        ));
    }
    Ok(p)
}
