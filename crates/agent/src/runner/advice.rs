//! Commands printed as advice (how to create a missing copy, how to mend a
//! damaged one) that an operator can paste into a shell as they are, and
//! what keeps a password_command out of everything a step reports.

use crate::config::{Config, Repository};
use std::path::Path;

/// The flags that open `repo` on a command line an operator can paste:
/// `--repo URL --password-file FILE` (with `prefix` "from-":
/// `--from-repo URL --from-password-file FILE`). A `password_command` is
/// never written out: advice reaches the history, /status and alerts, and
/// the command may hold a secret (`password_command_note` says how to give it).
pub(super) fn open_flags(repo: &Repository, prefix: &str) -> String {
    let mut a = vec![format!("--{prefix}repo"), shell_word(&repo.url)];
    if let Some(f) = &repo.password_file {
        a.push(format!("--{prefix}password-file"));
        a.push(shell_word(&f.to_string_lossy()));
    }
    if let (Some(c), "") = (&repo.cacert, prefix) {
        a.push("--cacert".into());
        a.push(shell_word(&c.to_string_lossy()));
    }
    a.join(" ")
}

/// For advice on repositories opened with a password_command (`repos`: each
/// with the prefix of its flags): which variable to set to it, naming the
/// config rather than the command. Empty if none has one.
pub(super) fn password_command_note(repos: &[(&Repository, &str)], config: &Path) -> String {
    let vars: Vec<String> = repos
        .iter()
        .filter(|(r, _)| r.password_command.is_some())
        .map(|(r, prefix)| {
            format!(
                "IRONVAULT_{}PASSWORD_COMMAND set to the password_command of repository {}",
                prefix.to_ascii_uppercase().replace('-', "_"),
                r.name
            )
        })
        .collect();
    if vars.is_empty() {
        String::new()
    } else {
        format!(" (with {} in {})", vars.join(" and "), config.display())
    }
}

/// `text` with every repository's password_command replaced by its name:
/// what a step's command says goes to the log, the history, /status and
/// alerts, and a password command may hold a secret.
pub(super) fn hide_password_commands(cfg: &Config, text: &str) -> String {
    let mut out = text.to_string();
    for r in cfg.repositories.values() {
        if let Some(pc) = r.password_command.as_deref().map(str::trim) {
            if !pc.is_empty() && out.contains(pc) {
                out = out.replace(pc, &format!("(password_command of repository {})", r.name));
            }
        }
    }
    out
}

/// A word as a POSIX shell reads it back unchanged.
fn shell_word(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._:=@%+,-".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!(
            "\"{}\"",
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('$', "\\$")
                .replace('`', "\\`")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_commands_never_appear_in_advice_or_reports() {
        let d = tempfile::tempdir().unwrap();
        let text = format!(
            "state_dir = \"{d}\"\n[repository.vault]\nurl = \"/backup/v\"\n\
             password_command = \"vault read -field=pw secret/ironvault # token s3cret\"\n\
             [repository.plain]\nurl = \"/backup/p\"\npassword_command = \"pass show ironvault\"\n",
            d = d.path().display()
        );
        let cfg = crate::config::parse(Path::new("/etc/ironvault/ironvault.toml"), &text).unwrap();
        let vault = &cfg.repositories["vault"];
        let flags = open_flags(vault, "");
        assert_eq!(flags, "--repo /backup/v");
        assert_eq!(open_flags(vault, "from-"), "--from-repo /backup/v");
        assert_eq!(
            password_command_note(&[(vault, ""), (&cfg.repositories["plain"], "from-")], &cfg.file),
            " (with IRONVAULT_PASSWORD_COMMAND set to the password_command of repository vault and \
             IRONVAULT_FROM_PASSWORD_COMMAND set to the password_command of repository plain in \
             /etc/ironvault/ironvault.toml)"
        );
        let (args, env) = crate::runner::repo_args(vault);
        let all = format!("{args:?} {env:?}");
        assert!(
            !all.contains("s3cret") && !all.contains("vault read"),
            "{all}"
        );
        assert_eq!(
            hide_password_commands(
                &cfg,
                "sh: vault read -field=pw secret/ironvault # token s3cret: not found"
            ),
            "sh: (password_command of repository vault): not found"
        );
    }

    #[test]
    fn advice_words_survive_a_shell() {
        assert_eq!(shell_word("/backup/ironvault"), "/backup/ironvault");
        assert_eq!(
            shell_word("s3:https://s3.example.net/b/p"),
            "s3:https://s3.example.net/b/p"
        );
        assert_eq!(
            shell_word("pass show \"a\" $X"),
            "\"pass show \\\"a\\\" \\$X\""
        );
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("printf %s {}", shell_word("a b\\c\"d$e`f'g")))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b\\c\"d$e`f'g");
    }
}
