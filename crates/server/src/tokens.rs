//! The token file (docs/server.md §Tokens): who may do what on which
//! repository. Tokens are 256 random bits shown once when made; the file
//! keeps only their BLAKE3 hash, with a name, a role, the repositories the
//! token opens and an optional expiry. The file is written whole to a
//! temporary name and renamed, mode 0600.

use ironvault_core::backend::private::write_replace;
use ironvault_core::{Error, Result};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a token may do (docs/server.md §Roles).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read; create objects that do not exist yet (packs, index files,
    /// snapshots); create locks and refresh or remove its own. Never delete
    /// or overwrite anything else.
    Append,
    /// Read; create locks and refresh or remove its own.
    Read,
    /// Everything, including creating a repository.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Append => "append",
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Role> {
        match s {
            "append" => Ok(Role::Append),
            "read" => Ok(Role::Read),
            "admin" => Ok(Role::Admin),
            _ => Err(Error::Usage(format!(
                "role {s:?}: use append, read or admin"
            ))),
        }
    }
}

/// One token as the file keeps it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenEntry {
    pub name: String,
    /// BLAKE3 of the token's text, 64 lowercase hex digits.
    pub hash: String,
    pub role: Role,
    /// The repositories it opens; `["*"]` for all.
    pub repos: Vec<String>,
    /// RFC 3339; the token is refused from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    pub created: String,
}

impl TokenEntry {
    /// Whether this token opens repository `name`.
    pub fn opens(&self, name: &str) -> bool {
        self.repos.iter().any(|r| r == "*" || r == name)
    }

    fn expired_at(&self, now: chrono::DateTime<chrono::Utc>) -> Option<String> {
        let e = self.expires.as_ref()?;
        match chrono::DateTime::parse_from_rfc3339(e) {
            Ok(t) if t > now => None,
            // An unreadable expiry counts as expired: refuse rather than guess.
            _ => Some(e.clone()),
        }
    }
}

/// The whole token file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TokenFile {
    pub version: u32,
    pub tokens: Vec<TokenEntry>,
}

/// Why a presented token is not accepted (HTTP 401).
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Unknown,
    Expired { name: String, at: String },
}

/// The hash the file keeps of a token's text.
pub fn hash_token(token: &str) -> String {
    blake3::hash(token.trim().as_bytes()).to_hex().to_string()
}

impl TokenFile {
    /// Read `path`; a missing file is an empty one when `missing_ok`.
    pub fn load(path: &Path, missing_ok: bool) -> Result<TokenFile> {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if missing_ok && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(TokenFile {
                    version: 1,
                    tokens: Vec::new(),
                })
            }
            Err(e) => {
                return Err(Error::Io {
                    path: path.to_path_buf(),
                    source: e,
                })
            }
        };
        let f: TokenFile = serde_json::from_slice(&data).map_err(|e| {
            Error::Failed(format!(
                "{}: not an ironvault token file ({e}); fix it or start a new one with 'ironvault serve token add'",
                path.display()
            ))
        })?;
        if f.version != 1 {
            return Err(Error::Failed(format!(
                "{}: token file version {} is not known to this ironvault (it reads version 1); upgrade ironvault",
                path.display(),
                f.version
            )));
        }
        Ok(f)
    }

    /// Write the file atomically (temporary name, then rename), mode 0600.
    pub fn save(&self, path: &Path) -> Result<()> {
        let data = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Internal(format!("token file: {e}")))?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let fname = path
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_else(|| "tokens".into());
        let tmp: PathBuf = dir.join(format!(
            ".{fname}.tmp-{}",
            &ironvault_core::format::id::Id::random().to_hex()[..16]
        ));
        write_replace(path, &tmp, &data).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })
    }

    /// Add a token named `name`; returns its text (shown once).
    pub fn add(
        &mut self,
        name: &str,
        role: Role,
        repos: Vec<String>,
        expires: Option<String>,
    ) -> Result<String> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
        {
            return Err(Error::Usage(format!(
                "token name {name:?}: use letters, digits, '-', '_', '.', '@'"
            )));
        }
        if self.tokens.iter().any(|t| t.name == name) {
            return Err(Error::Usage(format!(
                "a token named {name} already exists; remove it first ('ironvault serve token remove {name}') or choose another name"
            )));
        }
        if let Some(e) = &expires {
            chrono::DateTime::parse_from_rfc3339(e).map_err(|_| {
                Error::Usage(format!(
                    "--expires {e}: use an RFC 3339 time such as 2027-01-31T00:00:00Z, or a number of days such as 90d"
                ))
            })?;
        }
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let token = format!("ivt_{}", hex::encode(raw));
        self.tokens.push(TokenEntry {
            name: name.to_string(),
            hash: hash_token(&token),
            role,
            repos: if repos.is_empty() {
                vec!["*".into()]
            } else {
                repos
            },
            expires,
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        Ok(token)
    }

    /// Remove the token named `name`.
    pub fn remove(&mut self, name: &str) -> Result<()> {
        let before = self.tokens.len();
        self.tokens.retain(|t| t.name != name);
        if self.tokens.len() == before {
            return Err(Error::NotFound {
                what: "token",
                name: name.to_string(),
                hint: "'ironvault serve token list' shows the names".into(),
            });
        }
        Ok(())
    }

    /// The entry a presented token's text matches, if it is valid now.
    pub fn check(
        &self,
        token: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> std::result::Result<&TokenEntry, Refused> {
        let h = hash_token(token);
        let t = self
            .tokens
            .iter()
            .find(|t| t.hash == h)
            .ok_or(Refused::Unknown)?;
        match t.expired_at(now) {
            Some(at) => Err(Refused::Expired {
                name: t.name.clone(),
                at,
            }),
            None => Ok(t),
        }
    }
}

/// `--expires` as given: RFC 3339, or `Nd` days from now.
pub fn parse_expiry(s: &str) -> Result<String> {
    if let Some(days) = s.strip_suffix('d').and_then(|d| d.parse::<i64>().ok()) {
        let t = chrono::Utc::now() + chrono::Duration::days(days);
        return Ok(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_hashed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let mut f = TokenFile::load(&path, true).unwrap();
        let t = f.add("host1", Role::Append, vec![], None).unwrap();
        let old = f
            .add(
                "old",
                Role::Admin,
                vec!["a".into()],
                Some("2000-01-01T00:00:00Z".into()),
            )
            .unwrap();
        f.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&t[4..]), "the token itself is not stored");
        let f = TokenFile::load(&path, false).unwrap();
        let now = chrono::Utc::now();
        assert_eq!(f.check(&t, now).unwrap().name, "host1");
        assert!(f.check(&t, now).unwrap().opens("anything"));
        assert_eq!(f.check("ivt_nope", now).unwrap_err(), Refused::Unknown);
        assert!(matches!(
            f.check(&old, now).unwrap_err(),
            Refused::Expired { .. }
        ));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
