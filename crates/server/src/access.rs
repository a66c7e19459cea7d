//! What each role may do to each kind of object (docs/server.md §Roles).
//! This is the whole of the append-only promise: a compromised backup host
//! holding an `append` token and the repository password may add objects
//! but can neither delete nor replace any it did not just make, nor plant
//! the objects that tell a later admin run to delete or hide data
//! (deletion lists, erasure requests, forget records) or that unlock the
//! repository (key files).

use crate::tokens::{Role, TokenEntry};
use ironvault_core::format::kind::{NameRule, ObjectKind, CONFIG_NAME};

/// A request to change the storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Store an object that does not exist yet.
    Create,
    /// Store an object under a name that exists, with different bytes.
    Overwrite,
    /// Delete an object.
    Delete,
}

/// The facts about the object the decision needs.
pub struct Target<'a> {
    pub repo: &'a str,
    pub name: &'a str,
    /// The repository has a `config` object.
    pub repo_exists: bool,
    /// For a lock: whether this token created it (as the server remembers).
    pub own_lock: bool,
}

/// Whether `token` may make `change` to `target`; Err is the one-line reason.
pub fn allow(token: &TokenEntry, change: Change, t: &Target) -> Result<(), String> {
    let refuse = |needed: Role, why: &str| {
        Err(format!(
            "token '{}' (role {}) may not {} {}{why}; that needs a token with role {}",
            token.name,
            token.role.as_str(),
            verb(change),
            t.name,
            needed.as_str()
        ))
    };
    if token.role == Role::Admin {
        return Ok(());
    }
    if !t.repo_exists {
        return refuse(
            Role::Admin,
            &format!(" (repository {} does not exist yet: creating it)", t.repo),
        );
    }
    let kind = if t.name == CONFIG_NAME {
        None
    } else {
        ObjectKind::of_name(t.name)
    };
    match kind {
        Some(ObjectKind::Lock) => match change {
            Change::Create => Ok(()),
            _ if t.own_lock => Ok(()),
            _ => refuse(Role::Admin, " (a lock this token did not create)"),
        },
        Some(ObjectKind::Pack(_) | ObjectKind::Index | ObjectKind::Snapshot)
            if change == Change::Create =>
        {
            if token.role == Role::Append {
                Ok(())
            } else {
                refuse(Role::Append, "")
            }
        }
        _ => refuse(Role::Admin, ""),
    }
}

fn verb(c: Change) -> &'static str {
    match c {
        Change::Create => "create",
        Change::Overwrite => "overwrite",
        Change::Delete => "delete",
    }
}

/// An object name the server accepts: `config`, or slash-separated parts of
/// letters, digits, '-', '_', '.', none empty, `.` or `..`, none holding
/// `.tmp-` (the local backend's temporary files). With `strict`, it must
/// also be a well-formed name of a kind of format.md §2 (ids in 64
/// lowercase hex digits, packs under their fan-out directory): the only
/// names a non-admin token may create.
pub fn valid_object_name(name: &str, strict: bool) -> bool {
    let syntax = !name.is_empty()
        && name.len() <= 512
        && !name.contains(".tmp-")
        && name.split('/').all(|p| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && !p.starts_with('.')
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        });
    if !syntax || !strict || name == CONFIG_NAME {
        return syntax;
    }
    match ObjectKind::of_name(name) {
        Some(k @ ObjectKind::Pack(_)) => k.parse_name(name).is_some_and(|id| k.name(&id) == name),
        Some(k) => k.parse_name(name).is_some(),
        None => false,
    }
}

/// For kinds named by the BLAKE3 of their bytes: whether `body` matches the
/// name (None when the kind is not named so or the name carries no id).
pub fn content_matches(name: &str, body: &[u8]) -> Option<bool> {
    let k = ObjectKind::of_name(name)?;
    if !matches!(k.name_rule(), NameRule::ContentHash { .. }) {
        return None;
    }
    let id = k.parse_name(name)?;
    Some(blake3::hash(body).as_bytes() == &id.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(role: Role) -> TokenEntry {
        TokenEntry {
            name: "host1".into(),
            hash: String::new(),
            role,
            repos: vec!["*".into()],
            expires: None,
            created: String::new(),
        }
    }

    fn target(name: &str, own_lock: bool) -> Target<'_> {
        Target {
            repo: "r",
            name,
            repo_exists: true,
            own_lock,
        }
    }

    #[test]
    fn append_creates_but_never_deletes_or_replaces() {
        let a = token(Role::Append);
        let pack = format!("packs/data/ab/ab{}", "0".repeat(62));
        let snap = format!("snapshots/{}", "1".repeat(64));
        let lock = format!("locks/{}", "2".repeat(64));
        for n in [&pack, &snap, &format!("index/{}", "3".repeat(64))] {
            assert!(allow(&a, Change::Create, &target(n, false)).is_ok(), "{n}");
            assert!(allow(&a, Change::Overwrite, &target(n, false)).is_err());
            assert!(allow(&a, Change::Delete, &target(n, false)).is_err());
        }
        for n in [
            "config",
            "keys/x",
            "deletions/x",
            "erasures/x",
            "forgotten/x",
            "scrubs/x",
        ] {
            let e = allow(&a, Change::Create, &target(n, false)).unwrap_err();
            assert!(e.contains("role admin"), "{e}");
        }
        assert!(allow(&a, Change::Create, &target(&lock, false)).is_ok());
        assert!(allow(&a, Change::Delete, &target(&lock, true)).is_ok());
        assert!(allow(&a, Change::Overwrite, &target(&lock, true)).is_ok());
        let e = allow(&a, Change::Delete, &target(&lock, false)).unwrap_err();
        assert_eq!(
            e,
            format!("token 'host1' (role append) may not delete {lock} (a lock this token did not create); that needs a token with role admin")
        );
        let r = token(Role::Read);
        assert!(allow(&r, Change::Create, &target(&pack, false))
            .unwrap_err()
            .contains("role append"));
        let mut t = target(&pack, false);
        t.repo_exists = false;
        assert!(allow(&a, Change::Create, &t).is_err());
        assert!(allow(&token(Role::Admin), Change::Delete, &t).is_ok());
    }

    #[test]
    fn names() {
        let id = "a".repeat(64);
        assert!(valid_object_name(&format!("packs/data/aa/{id}"), true));
        assert!(!valid_object_name(&format!("packs/data/ab/{id}"), true));
        assert!(valid_object_name(&format!("index/{id}"), true));
        assert!(!valid_object_name("index/aa", true));
        assert!(valid_object_name("index/aa", false));
        for bad in [
            "../x",
            "index/../config",
            "index//a",
            "index/.x",
            "a.tmp-1",
            "",
        ] {
            assert!(!valid_object_name(bad, false), "{bad}");
        }
        let body = b"hello";
        let name = format!("index/{}", blake3::hash(body).to_hex());
        assert_eq!(content_matches(&name, body), Some(true));
        assert_eq!(content_matches(&name, b"other"), Some(false));
        assert_eq!(content_matches(&format!("snapshots/{id}"), body), None);
    }
}
