//! The `config` object (format.md §3.3): a clear JSON envelope with the
//! format version, and a sealed CBOR body with the id key and chunker secret.

use super::kind::ad;
use super::{from_cbor, to_cbor, Id, FORMAT_VERSION};
use crate::crypto::{open, seal};
use crate::error::{Error, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Chunker parameters (FastCDC 2020).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChunkerParams {
    pub algorithm: String,
    pub min: u32,
    pub avg: u32,
    pub max: u32,
    pub normalization: u8,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            algorithm: "fastcdc-2020".into(),
            min: 512 * 1024,
            avg: 1024 * 1024,
            max: 8 * 1024 * 1024,
            normalization: 1,
        }
    }
}

/// Compression defaults for writers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CompressionParams {
    pub algorithm: String,
    pub level: i32,
}

/// The sealed body of `config`.
#[derive(Clone, Serialize, Deserialize)]
pub struct Config {
    pub version: u32,
    pub id: Id,
    #[serde(with = "serde_bytes")]
    pub id_key: [u8; 32],
    #[serde(with = "serde_bytes")]
    pub chunker_secret: [u8; 32],
    pub chunker: ChunkerParams,
    pub compression: CompressionParams,
    pub pack_size: u64,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related_to: Option<Id>,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    format: String,
    version: u32,
    id: String,
    sealed: String,
}

impl Config {
    /// A new configuration with fresh secrets, or secrets copied from `related`.
    pub fn new(related: Option<&Config>) -> Config {
        let (id_key, chunker_secret, chunker, related_to) = match related {
            Some(r) => (r.id_key, r.chunker_secret, r.chunker.clone(), Some(r.id)),
            None => (
                crate::crypto::random_secret(),
                crate::crypto::random_secret(),
                ChunkerParams::default(),
                None,
            ),
        };
        Config {
            version: FORMAT_VERSION,
            id: Id::random(),
            id_key,
            chunker_secret,
            chunker,
            compression: CompressionParams {
                algorithm: "zstd".into(),
                level: 3,
            },
            pack_size: 16 * 1024 * 1024,
            created: chrono::Local::now().to_rfc3339(),
            related_to,
        }
    }

    /// Serialise into the stored form.
    pub fn seal(&self, master: &[u8; 32]) -> Result<Vec<u8>> {
        let env = Envelope {
            format: "ironvault-repository".into(),
            version: self.version,
            id: self.id.to_hex(),
            sealed: B64.encode(seal(master, ad::CONFIG, &to_cbor(self)?)),
        };
        serde_json::to_vec_pretty(&env).map_err(|e| Error::Internal(e.to_string()))
    }

    /// Read the clear envelope's version and refuse a newer format (before any password is asked).
    pub fn check_envelope(bytes: &[u8]) -> Result<u32> {
        let env: Envelope = serde_json::from_slice(bytes)
            .map_err(|e| Error::damaged("config", format!("not a repository config: {e}")))?;
        if env.format != "ironvault-repository" {
            return Err(Error::damaged(
                "config",
                format!("unknown format {:?}", env.format),
            ));
        }
        if env.version > FORMAT_VERSION {
            return Err(Error::NewerFormat {
                found: env.version,
                supported: FORMAT_VERSION,
            });
        }
        Ok(env.version)
    }

    /// Open the stored form with the master key.
    pub fn open(bytes: &[u8], master: &[u8; 32]) -> Result<Config> {
        Config::check_envelope(bytes)?;
        // check_envelope parsed it already.
        let env: Envelope = serde_json::from_slice(bytes).expect("parsed above");
        let sealed = B64
            .decode(&env.sealed)
            .map_err(|_| Error::damaged("config", "sealed body is not base64"))?;
        let cfg: Config = from_cbor(&open(master, ad::CONFIG, &sealed, "config")?, "config")?;
        if cfg.version != env.version || cfg.id.to_hex() != env.id {
            return Err(Error::damaged(
                "config",
                "envelope does not match the sealed body",
            ));
        }
        let c = &cfg.chunker;
        // fastcdc 3.2 asserts these bounds; a config outside them is refused, not a panic.
        let sizes_ok = (64..=1 << 20).contains(&c.min)
            && (256..=4 << 20).contains(&c.avg)
            && (1024..=16 << 20).contains(&c.max)
            && c.min <= c.avg
            && c.avg <= c.max;
        if c.algorithm != "fastcdc-2020" || c.normalization != 1 || !sizes_ok {
            return Err(Error::damaged(
                "config",
                format!(
                    "unsupported chunker {} (normalization {}, sizes {}/{}/{})",
                    c.algorithm, c.normalization, c.min, c.avg, c.max
                ),
            ));
        }
        Ok(cfg)
    }
}
