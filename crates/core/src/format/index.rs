//! Index files (format.md §6): which blob lives in which pack, sealed and
//! zstd-compressed binary.

use super::kind::ad;
use super::{BlobType, Id, Reader};
use crate::crypto::{open, seal};
use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"IVI1";
/// Encoded bytes of a pack entry before its blobs: id, type, size, blob count.
const PACK_LEN: usize = 32 + 1 + 8 + 4;
/// Encoded bytes of a blob entry: id, offset, stored and raw length.
const BLOB_LEN: usize = 32 + 8 + 4 + 4;

/// Superseded ids an index file names at most besides the files its writer
/// read (2 MiB): the ids inherited from the files it replaces (format.md §6).
pub const MAX_INHERITED_SUPERSEDED: usize = 65_536;

/// One blob as listed in an index file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexBlob {
    pub id: Id,
    pub offset: u64,
    pub stored_len: u32,
    pub raw_len: u32,
}

/// One pack as listed in an index file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexPack {
    pub id: Id,
    pub blob_type: BlobType,
    pub size: u64,
    pub blobs: Vec<IndexBlob>,
}

impl IndexPack {
    /// The index entry of a pack from its header entries.
    pub fn from_entries(
        id: Id,
        blob_type: BlobType,
        size: u64,
        entries: &[crate::format::pack::PackEntry],
    ) -> IndexPack {
        IndexPack {
            id,
            blob_type,
            size,
            blobs: entries
                .iter()
                .map(|e| IndexBlob {
                    id: e.id,
                    offset: e.offset,
                    stored_len: e.stored_len,
                    raw_len: e.raw_len,
                })
                .collect(),
        }
    }
}

/// The content of one index file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexFile {
    pub packs: Vec<IndexPack>,
    pub supersedes: Vec<Id>,
}

impl IndexFile {
    /// Encode, compress and seal.
    pub fn seal(&self, key: &[u8; 32]) -> Result<Vec<u8>> {
        let mut b = Vec::new();
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for p in &self.packs {
            b.extend_from_slice(&p.id.0);
            b.push(p.blob_type.as_u8());
            b.extend_from_slice(&p.size.to_le_bytes());
            b.extend_from_slice(&(p.blobs.len() as u32).to_le_bytes());
            for e in &p.blobs {
                b.extend_from_slice(&e.id.0);
                b.extend_from_slice(&e.offset.to_le_bytes());
                b.extend_from_slice(&e.stored_len.to_le_bytes());
                b.extend_from_slice(&e.raw_len.to_le_bytes());
            }
        }
        b.extend_from_slice(&(self.supersedes.len() as u32).to_le_bytes());
        for s in &self.supersedes {
            b.extend_from_slice(&s.0);
        }
        let z = zstd::bulk::compress(&b, 3).map_err(|e| Error::Internal(format!("zstd: {e}")))?;
        Ok(seal(key, ad::INDEX, &z))
    }

    /// Open, decompress and parse.
    pub fn open(key: &[u8; 32], sealed: &[u8], what: &str) -> Result<IndexFile> {
        let z = open(key, ad::INDEX, sealed, what)?;
        let b = zstd::stream::decode_all(&z[..])
            .map_err(|e| Error::damaged(what, format!("decompress: {e}")))?;
        let mut r = Reader::new(&b, what);
        if r.take(4)? != MAGIC {
            return Err(Error::damaged(what, "bad index magic"));
        }
        let np = r.u32()?;
        let mut packs = Vec::with_capacity((np as usize).min(r.remaining() / PACK_LEN));
        for _ in 0..np {
            let id = r.id()?;
            let blob_type = BlobType::from_u8(r.u8()?)
                .ok_or_else(|| Error::damaged(what, "unknown blob type"))?;
            let size = r.u64()?;
            let nb = r.u32()?;
            let mut blobs = Vec::with_capacity((nb as usize).min(r.remaining() / BLOB_LEN));
            for _ in 0..nb {
                blobs.push(IndexBlob {
                    id: r.id()?,
                    offset: r.u64()?,
                    stored_len: r.u32()?,
                    raw_len: r.u32()?,
                });
            }
            packs.push(IndexPack {
                id,
                blob_type,
                size,
                blobs,
            });
        }
        let ns = r.u32()?;
        let mut supersedes = Vec::new();
        for _ in 0..ns {
            supersedes.push(r.id()?);
        }
        if !r.is_empty() {
            return Err(Error::damaged(what, "trailing bytes after index"));
        }
        Ok(IndexFile { packs, supersedes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_pack() -> impl Strategy<Value = IndexPack> {
        (
            any::<[u8; 32]>(),
            any::<bool>(),
            any::<u64>(),
            proptest::collection::vec(
                (any::<[u8; 32]>(), any::<u64>(), any::<u32>(), any::<u32>()),
                0..20,
            ),
        )
            .prop_map(|(id, tree, size, blobs)| IndexPack {
                id: Id(id),
                blob_type: if tree { BlobType::Tree } else { BlobType::Data },
                size,
                blobs: blobs
                    .into_iter()
                    .map(|(i, o, s, r)| IndexBlob {
                        id: Id(i),
                        offset: o,
                        stored_len: s,
                        raw_len: r,
                    })
                    .collect(),
            })
    }

    proptest! {
        #[test]
        fn index_round_trip(packs in proptest::collection::vec(arb_pack(), 0..10),
                            sup in proptest::collection::vec(any::<[u8; 32]>(), 0..3)) {
            let key = crate::crypto::random_secret();
            let f = IndexFile { packs, supersedes: sup.into_iter().map(Id).collect() };
            let s = f.seal(&key).unwrap();
            prop_assert_eq!(IndexFile::open(&key, &s, "i").unwrap(), f);
            prop_assert!(IndexFile::open(&key, &s[..s.len() - 1], "i").is_err());
        }
    }
}
