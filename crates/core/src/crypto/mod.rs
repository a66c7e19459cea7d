//! Sealing and key derivation (format.md §3): XChaCha20-Poly1305 under the
//! master key, and the Argon2id derivation that wraps it in key files.
//! Nothing leaves this module unauthenticated: `open` fails on any changed
//! byte. It knows no stored object: the formats (`crate::format`) build on it.

pub mod kdf;

use crate::error::{Error, Result};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

/// Bytes added by sealing: 24-byte nonce plus 16-byte tag.
pub const SEAL_OVERHEAD: usize = 24 + 16;

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
}
