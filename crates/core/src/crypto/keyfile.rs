//! Key files (format.md §3.2): the master key wrapped under an Argon2id key
//! derived from a password. Several key files may wrap the same master key.

use super::{ad, open, seal};
use crate::error::{Error, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Largest Argon2id memory a reader accepts (4 GiB).
pub const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB, t = 3, p = 1 (the floor; about 0.2 s here).
    fn default() -> Self {
        KdfParams {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct KdfJson {
    algorithm: String,
    version: u32,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: String,
}

/// The JSON shape of a key file.
#[derive(Serialize, Deserialize)]
pub struct KeyFile {
    pub version: u32,
    pub created: String,
    pub hostname: String,
    pub username: String,
    kdf: KdfJson,
    wrapped_master_key: String,
}

fn derive(password: &[u8], salt: &[u8], p: KdfParams) -> Result<[u8; 32]> {
    let params = argon2::Params::new(p.memory_kib, p.iterations, p.parallelism, Some(32))
        .map_err(|e| Error::Invalid(format!("bad KDF parameters: {e}")))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    a.hash_password_into(password, salt, &mut out)
        .map_err(|e| Error::Invalid(format!("KDF failed: {e}")))?;
    Ok(out)
}

impl KeyFile {
    /// Wrap `master` under `password`.
    pub fn create(
        master: &[u8; 32],
        password: &[u8],
        params: KdfParams,
        hostname: &str,
        username: &str,
    ) -> Result<KeyFile> {
        let salt = super::random_secret();
        let wrapping = derive(password, &salt, params)?;
        Ok(KeyFile {
            version: 1,
            created: chrono::Local::now().to_rfc3339(),
            hostname: hostname.into(),
            username: username.into(),
            kdf: KdfJson {
                algorithm: "argon2id".into(),
                version: 19,
                memory_kib: params.memory_kib,
                iterations: params.iterations,
                parallelism: params.parallelism,
                salt: B64.encode(salt),
            },
            wrapped_master_key: B64.encode(seal(&wrapping, ad::KEY, master)),
        })
    }

    /// Parse a stored key file.
    pub fn parse(bytes: &[u8], name: &str) -> Result<KeyFile> {
        let k: KeyFile = serde_json::from_slice(bytes)
            .map_err(|e| Error::damaged(format!("key file {name}"), e.to_string()))?;
        let bad = |d: String| Error::damaged(format!("key file {name}"), d);
        if k.version > 1 {
            return Err(bad(format!(
                "key file version {} is newer than this ironvault supports (1)",
                k.version
            )));
        }
        if k.kdf.algorithm != "argon2id" || k.kdf.version != 19 {
            return Err(bad(format!(
                "unsupported KDF {} v{}",
                k.kdf.algorithm, k.kdf.version
            )));
        }
        // A forged key file must not make every open allocate unbounded memory.
        if k.kdf.memory_kib > MAX_MEMORY_KIB || k.kdf.iterations > 64 || k.kdf.parallelism > 64 {
            return Err(bad(format!(
                "KDF parameters out of range (m={} KiB, t={}, p={}; at most {MAX_MEMORY_KIB} KiB, 64, 64)",
                k.kdf.memory_kib, k.kdf.iterations, k.kdf.parallelism
            )));
        }
        Ok(k)
    }

    /// Serialise for storage.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain strings and numbers to JSON cannot fail.
        serde_json::to_vec_pretty(self).expect("key file JSON")
    }

    /// Try to unwrap the master key; `Ok(None)` means the password does not match.
    pub fn unwrap_master(&self, password: &[u8], name: &str) -> Result<Option<[u8; 32]>> {
        let bad = |d: &str| Error::damaged(format!("key file {name}"), d.to_string());
        let salt = B64
            .decode(&self.kdf.salt)
            .map_err(|_| bad("salt is not base64"))?;
        let wrapped = B64
            .decode(&self.wrapped_master_key)
            .map_err(|_| bad("wrapped key is not base64"))?;
        let p = KdfParams {
            memory_kib: self.kdf.memory_kib,
            iterations: self.kdf.iterations,
            parallelism: self.kdf.parallelism,
        };
        let wrapping = derive(password, &salt, p)?;
        match open(&wrapping, ad::KEY, &wrapped, "key") {
            Ok(m) => Ok(Some(
                m.try_into()
                    .map_err(|_| bad("master key is not 32 bytes"))?,
            )),
            Err(_) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap() {
        let p = KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let m = super::super::random_secret();
        let k = KeyFile::create(&m, b"pw", p, "h", "u").unwrap();
        let k = KeyFile::parse(&k.to_bytes(), "k").unwrap();
        assert_eq!(k.unwrap_master(b"pw", "k").unwrap(), Some(m));
        assert_eq!(k.unwrap_master(b"wrong", "k").unwrap(), None);
    }
}
