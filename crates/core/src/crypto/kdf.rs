//! Key derivation (format.md §3.2): Argon2id from a password to the key
//! that wraps the master key in a key file (`crate::format::keyfile`).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Argon2id cost parameters (stored in key files, format.md §3.2).
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

/// The 32-byte key Argon2id derives from `password` and `salt`.
pub fn derive(password: &[u8], salt: &[u8], p: KdfParams) -> Result<[u8; 32]> {
    let params = argon2::Params::new(p.memory_kib, p.iterations, p.parallelism, Some(32))
        .map_err(|e| Error::Failed(format!("bad KDF parameters: {e}")))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    a.hash_password_into(password, salt, &mut out)
        .map_err(|e| Error::Failed(format!("KDF failed: {e}")))?;
    Ok(out)
}
