//! Key files (format.md §3.2): the master key wrapped under an Argon2id key
//! derived from a password (`crate::crypto::kdf`). Several key files may
//! wrap the same master key.

use super::kind::ad;
use crate::crypto::kdf::{derive, KdfParams};
use crate::crypto::{open, random_secret, seal};
use crate::error::{Error, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

// Limits on what a key file may ask of a reader (format.md §3.2). Key files
// are not authenticated until their password-derived key opens them, and
// anyone who can write to the storage can add one: these bound the memory
// and time that each one costs a host opening the repository. They leave
// room above what `init` writes (64 MiB, t = 3, p = 1) for stronger settings.

/// Largest Argon2id memory a reader accepts: 512 MiB.
pub const MAX_MEMORY_KIB: u32 = 512 * 1024;
/// Most Argon2id passes a reader accepts.
pub const MAX_ITERATIONS: u32 = 8;
/// Most Argon2id lanes a reader accepts.
pub const MAX_PARALLELISM: u32 = 16;
/// Largest key file a reader reads (one written by `init` is about 450 bytes).
pub const MAX_KEY_FILE_BYTES: u64 = 4096;

#[derive(Serialize, Deserialize)]
struct KdfJson {
    algorithm: String,
    version: u32,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: String,
}

/// A key file (`keys/<id>`, format.md §3.2): its JSON shape.
#[derive(Serialize, Deserialize)]
pub struct KeyFile {
    pub version: u32,
    pub created: String,
    pub hostname: String,
    pub username: String,
    kdf: KdfJson,
    wrapped_master_key: String,
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
        let salt = random_secret();
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

    /// Parse a stored key file; refuse one too large, of a newer version, or
    /// whose KDF parameters are beyond the limits.
    pub fn parse(bytes: &[u8], name: &str) -> Result<KeyFile> {
        if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
            return Err(too_large(name, bytes.len() as u64));
        }
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
        if k.kdf.memory_kib > MAX_MEMORY_KIB
            || k.kdf.iterations > MAX_ITERATIONS
            || k.kdf.parallelism > MAX_PARALLELISM
        {
            return Err(bad(format!(
                "its KDF asks for m={} KiB, t={}, p={}, beyond the limits (m at most {MAX_MEMORY_KIB} KiB, t at most {MAX_ITERATIONS}, p at most {MAX_PARALLELISM}); it was not tried",
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

/// The error for a key file `name` of `size` bytes.
pub fn too_large(name: &str, size: u64) -> Error {
    Error::damaged(
        format!("key file {name}"),
        format!("it is {size} bytes, more than a key file can be ({MAX_KEY_FILE_BYTES}); it was not read"),
    )
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
        let m = random_secret();
        let k = KeyFile::create(&m, b"pw", p, "h", "u").unwrap();
        let k = KeyFile::parse(&k.to_bytes(), "k").unwrap();
        assert_eq!(k.unwrap_master(b"pw", "k").unwrap(), Some(m));
        assert_eq!(k.unwrap_master(b"wrong", "k").unwrap(), None);
    }

    #[test]
    fn costly_or_large_key_files_are_refused_before_any_derivation() {
        let m = random_secret();
        let good = KeyFile::create(&m, b"pw", KdfParams::default(), "h", "u").unwrap();
        let text = String::from_utf8(good.to_bytes()).unwrap();
        assert!(KeyFile::parse(text.as_bytes(), "keys/k").is_ok());
        // What the old limits let through, and each limit just passed.
        for (from, to) in [
            ("\"memory_kib\": 65536", "\"memory_kib\": 4194304"),
            ("\"iterations\": 3", "\"iterations\": 64"),
            ("\"memory_kib\": 65536", "\"memory_kib\": 524289"),
            ("\"iterations\": 3", "\"iterations\": 9"),
            ("\"parallelism\": 1", "\"parallelism\": 17"),
        ] {
            assert!(text.contains(from), "{text}");
            let forged = text.replace(from, to);
            let e = KeyFile::parse(forged.as_bytes(), "keys/k").err().unwrap();
            let msg = e.to_string();
            assert!(
                msg.starts_with("key file keys/k is damaged: its KDF asks for")
                    && msg.contains("beyond the limits")
                    && !msg.contains('\n'),
                "{msg}"
            );
        }
        // The limits themselves are accepted (not derived here: too slow).
        let at_limits = text
            .replace("\"memory_kib\": 65536", "\"memory_kib\": 524288")
            .replace("\"iterations\": 3", "\"iterations\": 8")
            .replace("\"parallelism\": 1", "\"parallelism\": 16");
        assert!(KeyFile::parse(at_limits.as_bytes(), "keys/k").is_ok());
        // A key file padded past 4 KiB is not parsed at all.
        let padded = text.replacen('{', &format!("{{\"pad\": \"{}\",", "x".repeat(4096)), 1);
        let e = KeyFile::parse(padded.as_bytes(), "keys/k").err().unwrap();
        assert!(
            e.to_string().contains("more than a key file can be (4096)"),
            "{e}"
        );
    }
}
