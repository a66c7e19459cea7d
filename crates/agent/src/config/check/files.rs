//! The files the config is or names, and who may change them. The config
//! makes the agent run commands (hooks, password commands, stream sources)
//! as its user, usually root, and the password and token files hold its
//! secrets: a file that another user can change is refused, not warned of.
//! Also the `listen` address and its token: a non-loopback address is
//! refused without `listen_token_file`.

use super::{Checker, ConfigError};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Why someone other than this user (or root) could change `path`: the file
/// or one of its directories is writable by its group or by others (a
/// sticky directory such as /tmp excepted: there only owners replace their
/// files), or is owned by another user. For a symlink, the directories of
/// the link count as well as those of its target. None if only we can.
pub fn changeable_by_others(path: &Path) -> Option<String> {
    let real = std::fs::canonicalize(path).ok()?;
    let link_dir = std::path::absolute(path)
        .ok()
        .and_then(|p| p.parent().and_then(|d| std::fs::canonicalize(d).ok()));
    chain_changeable(&real, true).or_else(|| {
        link_dir
            .filter(|d| Some(d.as_path()) != real.parent())
            .and_then(|d| chain_changeable(&d, false))
    })
}

/// `changeable_by_others` for `start` (a file if `is_file`) and every
/// directory above it.
fn chain_changeable(start: &Path, mut is_file: bool) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let mut at: Option<&Path> = Some(start);
    while let Some(p) = at {
        let Ok(m) = std::fs::metadata(p) else {
            return None;
        };
        let mode = m.permissions().mode();
        let what = if is_file {
            String::new()
        } else {
            format!(" (its directory {})", p.display())
        };
        if m.uid() != 0 && m.uid() != me {
            return Some(format!(
                "is owned by uid {}{what}, not by root or the user running ironvault",
                m.uid()
            ));
        }
        let sticky = !is_file && mode & 0o1000 != 0;
        if mode & 0o022 != 0 && !sticky {
            return Some(format!(
                "can be changed by other users{what} (mode {:04o})",
                mode & 0o7777
            ));
        }
        at = p.parent();
        is_file = false;
    }
    None
}

/// The error (and fix) for a file that others can change.
fn changeable_error(what: &str, path: &Path, why: &str) -> String {
    format!(
        "{what} {} {why}; it must be changeable only by its owner: chmod go-w and chown root (or the agent's user) the file and its directories",
        path.display()
    )
}

/// The config file itself: an error if others can change it.
pub fn check_config_file(file: &Path) -> Result<(), ConfigError> {
    match changeable_by_others(file) {
        None => Ok(()),
        Some(why) => Err(ConfigError {
            file: file.to_path_buf(),
            line: 0,
            msg: changeable_error("the config", file, &why),
        }),
    }
}

/// What a secret's file is called in messages: "repository erp: " "password
/// file", holding a "password".
struct Secret<'a> {
    prefix: &'a str,
    noun: &'a str,
    secret: &'a str,
}

/// A secret's file (password, token) must exist, be readable and hold a
/// first line, and be changeable only by its owner; one that others can
/// read is a warning.
fn check_secret_file(c: &mut Checker, s: Secret, f: &Spanned<PathBuf>) {
    use std::io::BufRead;
    let Secret {
        prefix,
        noun,
        secret,
    } = s;
    let path = f.get_ref();
    let shown = path.display();
    match std::fs::File::open(path) {
        Err(e) => c.err(f.span(), format!("{prefix}cannot read {noun} {shown} ({e}); create it (one line, mode 0600) or fix the path")),
        Ok(file) => {
            let mut first = String::new();
            if let Err(e) = std::io::BufReader::new(&file).read_line(&mut first) {
                c.err(f.span(), format!("{prefix}cannot read {noun} {shown} ({e}); it must be a file whose first line is the {secret}"));
            } else if first.trim_end_matches(['\n', '\r']).is_empty() {
                c.err(f.span(), format!("{prefix}{noun} {shown} is empty (its first line is the {secret})"));
            }
            if let Some(why) = changeable_by_others(path) {
                c.err(f.span(), changeable_error(&format!("{prefix}{noun}"), path, &why));
            } else if let Ok(m) = file.metadata() {
                if m.permissions().mode() & 0o004 != 0 {
                    c.warn(f.span(), format!("{prefix}{noun} {shown} can be read by every user of this host; chmod 600 {shown}"));
                }
            }
        }
    }
}

/// A repository's password file.
pub fn check_password_file(c: &mut Checker, name: &str, f: &Spanned<PathBuf>) {
    let prefix = format!("repository {name}: ");
    let s = Secret {
        prefix: &prefix,
        noun: "password file",
        secret: "password",
    };
    check_secret_file(c, s, f);
}

/// `listen` and `listen_token_file`: the address (None for "off") and the
/// token file. A non-loopback address needs a token.
pub fn check_listen(
    c: &mut Checker,
    listen: Option<&Spanned<String>>,
    token_file: Option<&Spanned<PathBuf>>,
) -> (Option<String>, Option<PathBuf>) {
    if let Some(t) = token_file {
        let s = Secret {
            prefix: "listen_token_file: ",
            noun: "token file",
            secret: "token",
        };
        check_secret_file(c, s, t);
    }
    let token = token_file.map(|t| t.get_ref().clone());
    let addr = match listen {
        None => return (Some("127.0.0.1:9478".to_string()), token),
        Some(l) if l.get_ref() == "off" || l.get_ref().is_empty() => return (None, token),
        Some(l) => l,
    };
    match addr.get_ref().parse::<std::net::SocketAddr>() {
        Err(_) => c.err(
            addr.span(),
            format!(
                "listen {:?} is not ADDRESS:PORT (e.g. \"127.0.0.1:9478\"), or \"off\"",
                addr.get_ref()
            ),
        ),
        Ok(a) if !a.ip().is_loopback() && token.is_none() => c.err(
            addr.span(),
            format!(
                "listen {:?} is not a loopback address, so other hosts could read /status and /metrics: set listen_token_file = \"/etc/ironvault/listen.token\" (clients then send 'Authorization: Bearer' and its first line), or listen on 127.0.0.1",
                addr.get_ref()
            ),
        ),
        Ok(_) => {}
    }
    (Some(addr.get_ref().clone()), token)
}

/// The token in `file` (its first line), for the agent's HTTP server.
pub fn read_token(file: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(file)?;
    let first = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if first.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "its first line is empty",
        ));
    }
    Ok(first.to_string())
}
