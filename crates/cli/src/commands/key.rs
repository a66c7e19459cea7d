//! `ironvault key list|add|remove|passwd`: the key files of a repository.

use crate::output::escape_str;
use crate::password::PasswordSource;
use crate::Cli;
use crate::Exit;
use anyhow::Result;
use ironvault_core::crypto::kdf::KdfParams;
use ironvault_core::format::kind::key_id_text;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Args)]
struct NewPassword {
    /// Read the new password from the first line of this file (else IRONVAULT_NEW_PASSWORD or a prompt).
    #[arg(long, env = "IRONVAULT_NEW_PASSWORD_FILE")]
    new_password_file: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum What {
    /// List key files (the one in use is marked with *).
    List,
    /// Add a key file: another password for the same repository (one per person or host).
    Add(NewPassword),
    /// Remove a key file by id (not the last one, nor the one in use).
    Remove {
        /// Key id or unique prefix, as `key list` shows it.
        id: String,
    },
    /// Change the password of the key in use (adds a new key, then removes the old one).
    Passwd(NewPassword),
}

fn new_password(n: &NewPassword) -> Result<Vec<u8>> {
    PasswordSource {
        env_var: "IRONVAULT_NEW_PASSWORD",
        file: n.new_password_file.clone(),
        command: None,
    }
    .get("the new key", true)
}

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    let repo = super::open_repo(cli)?;
    match &a.what {
        What::List => {
            let keys = repo.list_keys()?;
            let current = key_id_text(repo.key_name()).to_string();
            if cli.json {
                let v: Vec<_> = keys
                    .iter()
                    .map(|(id, k)| match k {
                        Ok(k) => {
                            serde_json::json!({"id": id.to_hex(), "current": id.to_hex() == current,
                            "userName": k.username, "hostName": k.hostname, "created": ironvault_core::contract::time::normalise(&k.created)})
                        }
                        Err(e) => serde_json::json!({"id": id.to_hex(), "error": e.to_string()}),
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                println!(" {:<10} {:<16} {:<24} created", "ID", "user", "host");
                for (id, k) in &keys {
                    let mark = if id.to_hex() == current { "*" } else { " " };
                    match k {
                        // Key files are not authenticated: anyone who can
                        // write to the storage chooses these names.
                        Ok(k) => println!(
                            "{mark}{:<10} {:<16} {:<24} {}",
                            id.short(),
                            escape_str(&k.username),
                            escape_str(&k.hostname),
                            escape_str(&k.created)
                        ),
                        Err(e) => println!("{mark}{:<10} unreadable: {e}", id.short()),
                    }
                }
            }
            Ok(Exit::Ok)
        }
        What::Add(n) => {
            let pw = new_password(n)?;
            let name = repo.add_key(&pw, KdfParams::default())?;
            let id = key_id_text(&name);
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"message_type": "key_added", "id": id})
                );
            } else if !cli.quiet {
                println!("added key {}", &id[..8]);
            }
            Ok(Exit::Ok)
        }
        What::Remove { id } => {
            let removed = repo.remove_key(id)?;
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"message_type": "key_removed", "id": removed.to_hex()})
                );
            } else if !cli.quiet {
                println!("removed key {}", removed.short());
            }
            Ok(Exit::Ok)
        }
        What::Passwd(n) => {
            let pw = new_password(n)?;
            let old = repo.key_name().to_string();
            let name = repo.add_key(&pw, KdfParams::default())?;
            // The new key is durable before the old one goes.
            repo.backend().delete(&old)?;
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"message_type": "password_changed", "id": key_id_text(&name),
                        "replaced": key_id_text(&old)})
                );
            } else if !cli.quiet {
                println!(
                    "password changed: key {} replaces {}",
                    &key_id_text(&name)[..8],
                    &key_id_text(&old)[..8]
                );
            }
            Ok(Exit::Ok)
        }
    }
}
