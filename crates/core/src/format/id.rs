//! 32-byte identifiers (blob, pack, index, snapshot, key ids), their hex
//! form, and the keyed ids of blobs and snapshots (format.md §4, §7.2).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A 32-byte id; shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; 32]);

// Ids are uniformly distributed (keyed hashes or random): 8 bytes identify
// them well enough for hashing; equality still compares all 32.
impl std::hash::Hash for Id {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // The slice has 32 bytes.
        state.write_u64(u64::from_le_bytes(self.0[..8].try_into().expect("8 bytes")));
    }
}

impl Id {
    /// Unkeyed BLAKE3 of bytes: the name of packs, index and key files.
    pub fn hash_of(bytes: &[u8]) -> Id {
        Id(*blake3::hash(bytes).as_bytes())
    }

    /// A random id (locks, deletion lists, repository ids).
    pub fn random() -> Id {
        let mut b = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
        Id(b)
    }

    /// Full hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// First 8 hex digits, as shown to users.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// Parse a full 64-digit hex id.
    ///
    /// Only the canonical form (64 lowercase hex digits, as names are
    /// written, format.md §2): `SNAPSHOT` and `snapshot` must not both name
    /// one object, or a renamed object would list as one id and load as
    /// another. Callers lowercase what users type.
    pub fn from_hex(s: &str) -> Option<Id> {
        if s.len() != 64 || !s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b).ok()?;
        Some(Id(b))
    }

    /// Parse 32 raw bytes.
    pub fn from_slice(s: &[u8]) -> Option<Id> {
        Some(Id(s.try_into().ok()?))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

// In CBOR an id is a 32-byte byte string.
impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let b: serde_bytes::ByteBuf = Deserialize::deserialize(d)?;
        Id::from_slice(&b).ok_or_else(|| serde::de::Error::custom("id must be 32 bytes"))
    }
}

/// Hasher for maps keyed by `Id`: ids are uniformly distributed keyed
/// hashes already, so eight of their bytes are a perfect hash; SipHash over
/// 32 bytes would cost more than the lookup.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only Id is hashed with this hasher, through write_u64; anything
        // else still gets a usable (if weak) hash.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
}

/// `BuildHasher` for `IdHasher`.
pub type IdBuildHasher = std::hash::BuildHasherDefault<IdHasher>;
/// A `HashMap` keyed by ids.
pub type IdMap<V> = std::collections::HashMap<Id, V, IdBuildHasher>;
/// A `HashSet` of ids.
pub type IdSet = std::collections::HashSet<Id, IdBuildHasher>;

/// The two kinds of blobs; also the kind of a pack.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum BlobType {
    Data = 0,
    Tree = 1,
}

impl BlobType {
    /// The byte used in pack headers, index files and associated data.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Parse the byte form.
    pub fn from_u8(b: u8) -> Option<BlobType> {
        match b {
            0 => Some(BlobType::Data),
            1 => Some(BlobType::Tree),
            _ => None,
        }
    }

    /// Directory name under `packs/`.
    pub fn dir(self) -> &'static str {
        match self {
            BlobType::Data => "data",
            BlobType::Tree => "tree",
        }
    }
}

/// The secrets that make blob ids, snapshot ids and chunk boundaries (format.md §3, §4;
/// shared by related repositories).
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
        fn hex_round_trip(b in any::<[u8; 32]>()) {
            let id = Id(b);
            prop_assert_eq!(Id::from_hex(&id.to_hex()), Some(id));
            let cbor = crate::format::to_cbor(&id).unwrap();
            let back: Id = crate::format::from_cbor(&cbor, "id").unwrap();
            prop_assert_eq!(back, id);
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
