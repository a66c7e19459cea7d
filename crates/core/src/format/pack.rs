//! Pack layout (format.md §5): stored blobs, then a sealed binary header,
//! then the header length and the magic `IVP1`.

use super::kind::ad;
use super::{BlobType, Id, Reader};
use crate::crypto::{open, seal, SEAL_OVERHEAD};
use crate::error::{Error, Result};

/// Pack trailer magic.
pub const MAGIC: &[u8; 4] = b"IVP1";
/// Bytes after the sealed header: u32 length + magic.
pub const TRAILER_LEN: usize = 8;
/// Bytes per header entry.
pub const ENTRY_LEN: usize = 49;

/// Where one blob lives inside a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackEntry {
    pub id: Id,
    pub offset: u64,
    pub stored_len: u32,
    pub raw_len: u32,
}

/// Encode and seal a pack header; returns the bytes to append (header + trailer).
pub fn write_header(key: &[u8; 32], t: BlobType, entries: &[PackEntry]) -> Vec<u8> {
    let mut h = Vec::with_capacity(6 + entries.len() * ENTRY_LEN);
    h.push(1);
    h.push(t.as_u8());
    h.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        h.extend_from_slice(&e.id.0);
        h.extend_from_slice(&e.offset.to_le_bytes());
        h.extend_from_slice(&e.stored_len.to_le_bytes());
        h.extend_from_slice(&e.raw_len.to_le_bytes());
        h.push(0);
    }
    let mut out = seal(key, ad::PACK_HEADER, &h);
    let len = out.len() as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(MAGIC);
    out
}

/// Parse the trailer (last 8 bytes of a pack): the sealed header's length.
pub fn parse_trailer(trailer: &[u8], what: &str) -> Result<u32> {
    if trailer.len() != TRAILER_LEN || &trailer[4..] != MAGIC {
        return Err(Error::damaged(
            what,
            "no pack trailer (truncated or not a pack)",
        ));
    }
    // Length checked above.
    Ok(u32::from_le_bytes(
        trailer[..4].try_into().expect("4 bytes"),
    ))
}

/// Open and parse a sealed header; checks that entries lie inside `pack_len - header`.
pub fn read_header(
    key: &[u8; 32],
    sealed: &[u8],
    pack_len: u64,
    what: &str,
) -> Result<(BlobType, Vec<PackEntry>)> {
    let h = open(key, ad::PACK_HEADER, sealed, what)?;
    let mut r = Reader::new(&h, what);
    if r.u8()? != 1 {
        return Err(Error::damaged(what, "unknown pack header version"));
    }
    let t = BlobType::from_u8(r.u8()?).ok_or_else(|| Error::damaged(what, "unknown blob type"))?;
    let n = r.u32()? as usize;
    let data_end = pack_len.saturating_sub((sealed.len() + TRAILER_LEN) as u64);
    let mut entries = Vec::with_capacity(n.min(r.remaining() / ENTRY_LEN));
    for _ in 0..n {
        let id = r.id()?;
        let offset = r.u64()?;
        let stored_len = r.u32()?;
        let raw_len = r.u32()?;
        let _flags = r.u8()?;
        let end = offset.checked_add(stored_len as u64);
        if end.is_none_or(|e| e > data_end) || (stored_len as usize) < SEAL_OVERHEAD + 1 {
            return Err(Error::damaged(what, "header entry points outside the pack"));
        }
        entries.push(PackEntry {
            id,
            offset,
            stored_len,
            raw_len,
        });
    }
    Ok((t, entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn header_round_trip(lens in proptest::collection::vec(41u32..5000, 0..50), tree in any::<bool>()) {
            let key = crate::crypto::random_secret();
            let t = if tree { BlobType::Tree } else { BlobType::Data };
            let mut off = 0u64;
            let entries: Vec<_> = lens.iter().map(|&l| {
                let e = PackEntry { id: Id::random(), offset: off, stored_len: l, raw_len: l * 2 };
                off += l as u64;
                e
            }).collect();
            let hdr = write_header(&key, t, &entries);
            let pack_len = off + hdr.len() as u64;
            let hl = parse_trailer(&hdr[hdr.len() - 8..], "p").unwrap() as usize;
            prop_assert_eq!(hl + 8, hdr.len());
            let (t2, e2) = read_header(&key, &hdr[..hl], pack_len, "p").unwrap();
            prop_assert_eq!(t2, t);
            prop_assert_eq!(e2, entries);
        }
    }
}
