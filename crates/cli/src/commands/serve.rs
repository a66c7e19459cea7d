//! `ironvault serve`: serve the repositories under a root over HTTPS
//! (docs/server.md), and `serve token add|list|remove` to manage who may do
//! what. The server itself is the `ironvault-server` crate.

use crate::Cli;
use crate::Exit;
use anyhow::{anyhow, Result};
use ironvault_server::tokens::{parse_expiry, Role, TokenFile};
use ironvault_server::ServeOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    cmd: Option<ServeCmd>,
    /// Where the repositories live: a directory, or s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]; repository NAME is ROOT/NAME.
    #[arg(long, value_name = "DIR|s3:...")]
    root: Option<String>,
    /// Address and port to listen on.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// PEM certificate chain of the server.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of the server.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP instead of HTTPS (only on a loopback address).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    plain_http: bool,
    /// The token file ('ironvault serve token add' makes it).
    #[arg(long, value_name = "FILE")]
    tokens: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum ServeCmd {
    /// Manage the tokens clients present (stored hashed in the token file).
    #[command(subcommand)]
    Token(TokenCmd),
}

#[derive(clap::Subcommand)]
enum TokenCmd {
    /// Make a new token; it is printed once, as the last line of output.
    Add {
        #[arg(long, value_name = "FILE")]
        tokens: PathBuf,
        /// A name for the token (the host or person it is for).
        name: String,
        /// append: back up, never delete or overwrite; read: restore and check; admin: everything.
        #[arg(long, value_parser = ["append", "read", "admin"])]
        role: String,
        /// A repository the token opens (repeat; default: all).
        #[arg(long = "repository", value_name = "NAME")]
        repos: Vec<String>,
        /// When the token stops working: an RFC 3339 time, or a number of days such as 90d.
        #[arg(long, value_name = "TIME|DAYSd")]
        expires: Option<String>,
    },
    /// List the tokens (names, roles, repositories, expiry; never the tokens).
    List {
        #[arg(long, value_name = "FILE")]
        tokens: PathBuf,
    },
    /// Remove a token: the server refuses it from its next request on.
    Remove {
        #[arg(long, value_name = "FILE")]
        tokens: PathBuf,
        name: String,
    },
}

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    match &a.cmd {
        Some(ServeCmd::Token(t)) => token(cli, t),
        None => serve(cli, a),
    }
}

fn serve(cli: &Cli, a: &Args) -> Result<Exit> {
    let missing = |flag: &str| anyhow!("serve needs {flag}");
    let root = a.root.clone().ok_or_else(|| missing("--root DIR|s3:..."))?;
    let listen = a.listen.ok_or_else(|| missing("--listen ADDR:PORT"))?;
    let tokens = a.tokens.clone().ok_or_else(|| missing("--tokens FILE"))?;
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        _ if a.plain_http => None,
        _ => {
            return Err(anyhow!(
                "serve needs --tls-cert FILE and --tls-key FILE (or --plain-http on a loopback address)"
            ))
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let opts = ServeOptions {
        root: root.clone(),
        listen,
        tls,
        tokens,
    };
    let quiet = cli.quiet;
    ironvault_server::serve(&opts, |addr| {
        if !quiet {
            println!("serving the repositories under {root} on {scheme}://{addr}/NAME");
            let _ = std::io::stdout().flush();
        }
    })?;
    Ok(Exit::Ok)
}

fn token(cli: &Cli, t: &TokenCmd) -> Result<Exit> {
    match t {
        TokenCmd::Add {
            tokens,
            name,
            role,
            repos,
            expires,
        } => {
            let mut f = TokenFile::load(tokens, true)?;
            let expires = expires.as_deref().map(parse_expiry).transpose()?;
            let secret = f.add(name, Role::parse(role)?, repos.clone(), expires)?;
            f.save(tokens)?;
            if !cli.quiet {
                println!(
                    "added token '{name}' (role {role}) to {}; it is shown only now, on the next line:",
                    tokens.display()
                );
            }
            println!("{secret}");
        }
        TokenCmd::List { tokens } => {
            let f = TokenFile::load(tokens, false)?;
            if cli.json {
                let v: Vec<_> = f
                    .tokens
                    .iter()
                    .map(|t| {
                        serde_json::json!({"name": t.name, "role": t.role.as_str(), "repositories": t.repos, "expires": t.expires, "created": t.created})
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                for t in &f.tokens {
                    println!(
                        "{}\t{}\t{}\t{}",
                        t.name,
                        t.role.as_str(),
                        t.repos.join(","),
                        t.expires.as_deref().unwrap_or("never expires")
                    );
                }
            }
        }
        TokenCmd::Remove { tokens, name } => {
            let mut f = TokenFile::load(tokens, false)?;
            f.remove(name)?;
            f.save(tokens)?;
            if !cli.quiet {
                println!("removed token '{name}' from {}", tokens.display());
            }
        }
    }
    Ok(Exit::Ok)
}
