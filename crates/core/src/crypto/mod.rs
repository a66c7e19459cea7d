//! Keys and sealing (format.md §3): XChaCha20-Poly1305 under the master key,
//! keyed BLAKE3 ids, and Argon2id-wrapped key files. Nothing leaves this
//! module unauthenticated: `open` fails on any changed byte.

pub mod keyfile;

use crate::error::{Error, Result};
use crate::format::{BlobType, Id};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

/// Bytes added by sealing: 24-byte nonce plus 16-byte tag.
pub const SEAL_OVERHEAD: usize = 24 + 16;

/// Associated-data prefixes (format.md §3.1).
pub mod ad {
    pub const BLOB: &[u8] = b"ironvault/blob/v1";
    pub const PACK_HEADER: &[u8] = b"ironvault/pack-header/v1";
    pub const INDEX: &[u8] = b"ironvault/index/v1";
    pub const SNAPSHOT: &[u8] = b"ironvault/snapshot/v1";
    pub const CONFIG: &[u8] = b"ironvault/config/v1";
    pub const LOCK: &[u8] = b"ironvault/lock/v1";
    pub const DELETIONS: &[u8] = b"ironvault/deletions/v1";
    pub const KEY: &[u8] = b"ironvault/key/v1";
    pub const SCRUB: &[u8] = b"ironvault/scrub/v1";
    pub const ERASURE: &[u8] = b"ironvault/erasure/v1";
    pub const FORGOTTEN: &[u8] = b"ironvault/forgotten/v1";
}

/// 32 random bytes.
pub fn random_secret() -> [u8; 32] {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// Seal `plain` under `key` with associated data `ad`: nonce ‖ ciphertext ‖ tag.
pub fn seal(key: &[u8; 32], ad: &[u8], plain: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let mut nonce = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: ad,
            },
        )
        // Encryption only fails for messages beyond 256 GiB; callers seal at most a pack header.
        .expect("XChaCha20-Poly1305 encrypt cannot fail below 256 GiB");
    let mut out = Vec::with_capacity(24 + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Seal in place: `buf` holds 24 placeholder bytes followed by the plaintext;
/// the nonce is written over the placeholder, the plaintext encrypted where
/// it lies and the tag appended. Saves a copy of large blobs.
pub fn seal_in_place(key: &[u8; 32], ad: &[u8], buf: &mut Vec<u8>) {
    use chacha20poly1305::aead::AeadInPlace;
    let cipher = XChaCha20Poly1305::new(key.into());
    let mut nonce = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    buf[..24].copy_from_slice(&nonce);
    let tag = cipher
        .encrypt_in_place_detached(XNonce::from_slice(&nonce), ad, &mut buf[24..])
        // As in seal(): fails only beyond 256 GiB.
        .expect("XChaCha20-Poly1305 encrypt cannot fail below 256 GiB");
    buf.extend_from_slice(&tag);
}

/// Open a sealed value; `what` names the object in the error.
pub fn open(key: &[u8; 32], ad: &[u8], sealed: &[u8], what: &str) -> Result<Vec<u8>> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(Error::damaged(what, "too short to be sealed data"));
    }
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .decrypt(
            XNonce::from_slice(&sealed[..24]),
            Payload {
                msg: &sealed[24..],
                aad: ad,
            },
        )
        .map_err(|_| Error::damaged(what, "authentication failed (changed bytes or wrong key)"))
}

/// AD for a blob: prefix ‖ type byte ‖ id.
pub fn blob_ad(t: BlobType, id: &Id) -> Vec<u8> {
    let mut v = Vec::with_capacity(ad::BLOB.len() + 33);
    v.extend_from_slice(ad::BLOB);
    v.push(t.as_u8());
    v.extend_from_slice(&id.0);
    v
}

/// The secrets that make blob ids and chunk boundaries (shared by related repositories).
#[derive(Clone)]
pub struct IdKeys {
    data: [u8; 32],
    tree: [u8; 32],
    snapshot: [u8; 32],
    /// Seed mixed into the chunker's gear table.
    pub chunker_seed: u64,
}

impl IdKeys {
    /// Derive the id keys from `K_id` and the chunker seed from `K_cdc` (format.md §3).
    pub fn derive(id_key: &[u8; 32], chunker_secret: &[u8; 32]) -> IdKeys {
        let seed = blake3::derive_key("ironvault 2026-11 chunker seed v1", chunker_secret);
        IdKeys {
            data: blake3::derive_key("ironvault 2026-11 data blob id v1", id_key),
            tree: blake3::derive_key("ironvault 2026-11 tree blob id v1", id_key),
            snapshot: blake3::derive_key("ironvault 2026-11 snapshot id v1", id_key),
            // 8 of the 32 derived bytes.
            chunker_seed: u64::from_le_bytes(seed[..8].try_into().expect("8 bytes")),
        }
    }

    /// The keyed id of a blob's plaintext.
    pub fn blob_id(&self, t: BlobType, plain: &[u8]) -> Id {
        let key = match t {
            BlobType::Data => &self.data,
            BlobType::Tree => &self.tree,
        };
        Id(*blake3::keyed_hash(key, plain).as_bytes())
    }

    /// The keyed id of a snapshot's plaintext CBOR.
    pub fn snapshot_id(&self, plain: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.snapshot, plain).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn seal_open_round_trip(plain in proptest::collection::vec(any::<u8>(), 0..2000), flip in any::<usize>()) {
            let key = random_secret();
            let s = seal(&key, b"ad", &plain);
            prop_assert_eq!(s.len(), plain.len() + SEAL_OVERHEAD);
            prop_assert_eq!(&open(&key, b"ad", &s, "t").unwrap(), &plain);
            // any flipped byte, other AD or other key fails
            let mut bad = s.clone();
            let i = flip % bad.len();
            bad[i] ^= 1;
            prop_assert!(open(&key, b"ad", &bad, "t").is_err());
            prop_assert!(open(&key, b"other", &s, "t").is_err());
            prop_assert!(open(&random_secret(), b"ad", &s, "t").is_err());
            let mut inplace = vec![0u8; 24];
            inplace.extend_from_slice(&plain);
            seal_in_place(&key, b"ad", &mut inplace);
            prop_assert_eq!(open(&key, b"ad", &inplace, "t").unwrap(), plain);
        }
    }

    #[test]
    fn id_keys_separate_types() {
        let k = IdKeys::derive(&[1; 32], &[2; 32]);
        assert_ne!(
            k.blob_id(BlobType::Data, b"x"),
            k.blob_id(BlobType::Tree, b"x")
        );
        let k2 = IdKeys::derive(&[1; 32], &[3; 32]);
        assert_eq!(
            k.blob_id(BlobType::Data, b"x"),
            k2.blob_id(BlobType::Data, b"x")
        );
        assert_ne!(k.chunker_seed, k2.chunker_seed);
    }
}
