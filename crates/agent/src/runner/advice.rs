//! Commands printed as advice (how to create a missing copy, how to mend a
//! damaged one) that an operator can paste into a shell as they are.

use crate::config::Repository;

/// The flags that open `repo` on a command line an operator can paste:
/// `--repo URL --password-file FILE` (with `prefix` "from-":
/// `--from-repo URL --from-password-file FILE`).
pub(super) fn open_flags(repo: &Repository, prefix: &str) -> String {
    let mut a = vec![format!("--{prefix}repo"), shell_word(&repo.url)];
    if let Some(f) = &repo.password_file {
        a.push(format!("--{prefix}password-file"));
        a.push(shell_word(&f.to_string_lossy()));
    }
    if let Some(c) = &repo.password_command {
        a.push(format!("--{prefix}password-command"));
        a.push(shell_word(c));
    }
    if let (Some(c), "") = (&repo.cacert, prefix) {
        a.push("--cacert".into());
        a.push(shell_word(&c.to_string_lossy()));
    }
    a.join(" ")
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
