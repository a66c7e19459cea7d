//! Reading a whole pack to verify it: for `check --read-data`, before a
//! pack no index lists is adopted, and before prune deletes a pack holding
//! a second copy of a blob it keeps. A pack is sound when its bytes hash to
//! its name and every blob it is said to hold opens and matches its keyed
//! id (format.md §4, §5).
//!
//! The pack is streamed in windows of at most `READ_WINDOW` bytes and never
//! read past the size the caller expects, so memory stays bounded by a
//! window plus the largest blob, whatever storage holds under the name.

use super::{Repository, StoredPack};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::format::index::{IndexBlob, IndexPack};
use crate::format::kind::pack_name;
use crate::format::pack::{parse_trailer, read_header, TRAILER_LEN};
use crate::format::{BlobType, Id};

/// Bytes asked for per request when a pack is read whole (half a default pack).
pub const READ_WINDOW: u64 = 8 << 20;

/// Read `size` bytes of `name` front to back in windows, hashing all of
/// them, and hand each region `(offset, len)` of `regions` to `each` whole,
/// in offset order. Regions that do not lie within `size` are never handed
/// over (the caller reports them). Returns the BLAKE3 of the bytes read.
pub fn stream_object(
    b: &dyn Backend,
    name: &str,
    size: u64,
    regions: &[(u64, u64)],
    each: &mut dyn FnMut(usize, &[u8]),
) -> Result<Id> {
    let mut order: Vec<usize> = (0..regions.len())
        .filter(|&i| region_end(regions[i]).is_some_and(|e| e <= size))
        .collect();
    order.sort_by_key(|&i| regions[i].0);
    let mut hasher = blake3::Hasher::new();
    // `buf` holds the bytes [buf_start, pos) that a pending region may still need.
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start = 0u64;
    let mut pos = 0u64;
    let mut next = 0usize;
    while pos < size {
        let len = READ_WINDOW.min(size - pos);
        let w = b.get_range(name, pos, len)?;
        hasher.update(&w);
        if buf.is_empty() {
            buf_start = pos;
        }
        buf.extend_from_slice(&w);
        pos += len;
        while let Some(&i) = order.get(next) {
            let (o, l) = regions[i];
            if o + l > pos {
                break;
            }
            // Regions are taken in offset order and nothing at or after the
            // next one's offset is dropped, so the region is in `buf`.
            let s = (o - buf_start) as usize;
            each(i, &buf[s..s + l as usize]);
            next += 1;
        }
        let keep_from = order.get(next).map_or(pos, |&i| regions[i].0.min(pos));
        if keep_from > buf_start {
            buf.drain(..(keep_from - buf_start) as usize);
            buf_start = keep_from;
        }
    }
    // Zero-length regions at the very end.
    for &i in &order[next..] {
        each(i, &[]);
    }
    Ok(Id(*hasher.finalize().as_bytes()))
}

fn region_end((o, l): (u64, u64)) -> Option<u64> {
    o.checked_add(l)
}

/// What reading a pack whole found.
#[derive(Debug, Default)]
pub struct PackScan {
    /// The bytes read hash to the pack's name.
    pub hash_matches: bool,
    /// What is wrong with the header, when it was read and is damaged.
    pub header_problem: Option<String>,
    /// Blobs that did not open or verify, each with what went wrong.
    pub bad_blobs: Vec<(Id, Error)>,
    pub bytes_read: u64,
}

impl PackScan {
    /// The first thing wrong with the pack, in words; None when it is sound.
    pub fn problem(&self) -> Option<String> {
        if !self.hash_matches {
            return Some("content does not match its name".into());
        }
        if let Some(h) = &self.header_problem {
            return Some(format!("header: {h}"));
        }
        self.bad_blobs.first().map(|(id, e)| {
            let more = self.bad_blobs.len() - 1;
            if more == 0 {
                format!("blob {}: {e}", id.short())
            } else {
                format!("blob {}: {e} (and {more} more blobs)", id.short())
            }
        })
    }
}

impl Repository {
    /// Read a pack of `size` bytes whole: hash it, open every blob of
    /// `blobs` where they are said to be and, with `header`, its header too.
    /// Damage is in the result; an error means storage could not be read.
    pub fn scan_pack(
        &self,
        t: BlobType,
        id: &Id,
        size: u64,
        blobs: &[IndexBlob],
        header: bool,
    ) -> Result<PackScan> {
        let name = pack_name(t, id);
        let mut scan = PackScan::default();
        let mut regions: Vec<(u64, u64)> = blobs
            .iter()
            .map(|b| (b.offset, b.stored_len as u64))
            .collect();
        for (b, r) in blobs.iter().zip(&regions) {
            if region_end(*r).is_none_or(|e| e > size) {
                scan.bad_blobs.push((
                    b.id,
                    Error::damaged(&name, "blob beyond the end of the pack"),
                ));
            }
        }
        if header {
            match self.header_region(&name, size) {
                Ok(r) => regions.push(r),
                Err(e @ Error::Damaged { .. }) => scan.header_problem = Some(e.to_string()),
                Err(e) => return Err(e),
            }
        }
        let mut each = |i: usize, bytes: &[u8]| {
            if let Some(b) = blobs.get(i) {
                if let Err(e) = self.open_blob(t, &b.id, bytes, b.raw_len, &name) {
                    scan.bad_blobs.push((b.id, e));
                }
            } else if let Err(e) = read_header(self.master_key(), bytes, size, &name) {
                scan.header_problem = Some(e.to_string());
            }
        };
        let hash = stream_object(self.backend().as_ref(), &name, size, &regions, &mut each)?;
        scan.hash_matches = hash == *id;
        scan.bytes_read = size;
        Ok(scan)
    }

    /// Where the sealed header of a pack of `size` bytes is, from its trailer.
    fn header_region(&self, name: &str, size: u64) -> Result<(u64, u64)> {
        let tl = TRAILER_LEN as u64;
        if size < tl {
            return Err(Error::damaged(name, "too short to be a pack"));
        }
        let trailer = self.backend().get_range(name, size - tl, tl)?;
        let hl = parse_trailer(&trailer, name)? as u64;
        if hl + tl > size {
            return Err(Error::damaged(name, "header length beyond the pack"));
        }
        Ok((size - tl - hl, hl))
    }

    /// Verify an indexed pack of `size` bytes (the index's size) whole
    /// against its own header: what is wrong with it, or None when it is
    /// sound. An error means storage could not be read.
    pub fn verify_pack(&self, t: BlobType, id: &Id, size: u64) -> Result<Option<String>> {
        let header = match self.read_pack_header(t, id, size) {
            Ok(h) => h,
            Err(e @ Error::Damaged { .. }) => return Ok(Some(e.to_string())),
            Err(e) => return Err(e),
        };
        Ok(self.scan_pack(t, id, size, &header.blobs, false)?.problem())
    }

    /// Verify a pack no index lists before anything relies on it: its header
    /// opens, its blobs fill the space before the header exactly (so nothing
    /// beyond what a writer produces is read), its bytes hash to its name and
    /// every blob opens and matches its id. Returns its index entry, or what
    /// is wrong with it; an error means storage could not be read.
    pub fn verify_unindexed_pack(&self, p: &StoredPack) -> Result<Result<IndexPack, String>> {
        let header = match self.read_pack_header(p.t, &p.id, p.size) {
            Ok(h) => h,
            Err(e @ Error::Damaged { .. }) => return Ok(Err(e.to_string())),
            Err(e) => return Err(e),
        };
        if let Some(why) = gap_in(&header) {
            return Ok(Err(why));
        }
        let scan = self.scan_pack(p.t, &p.id, p.size, &header.blobs, false)?;
        Ok(match scan.problem() {
            Some(why) => Err(why),
            None => Ok(header),
        })
    }
}

/// Why the blobs of a pack do not fill the bytes before its header exactly
/// (a writer appends them one after another from offset 0), if they do not.
fn gap_in(p: &IndexPack) -> Option<String> {
    let mut spans: Vec<(u64, u64)> = p
        .blobs
        .iter()
        .map(|b| (b.offset, b.stored_len as u64))
        .collect();
    spans.sort_unstable();
    let mut end = 0u64;
    for (o, l) in spans {
        if o != end {
            return Some(format!(
                "its blobs do not fill it (a gap or overlap at offset {end})"
            ));
        }
        end = o + l;
    }
    // The header was read from the end of `p.size` bytes; what is between
    // the last blob and the header belongs to nothing.
    let header_and_trailer = p.size - end;
    let expected = header_len(p.blobs.len()) + TRAILER_LEN as u64;
    (header_and_trailer != expected).then(|| {
        format!(
            "its blobs do not fill it ({} bytes before the header belong to no blob)",
            header_and_trailer.saturating_sub(expected)
        )
    })
}

/// Length of a sealed pack header listing `n` blobs (format.md §5).
fn header_len(n: usize) -> u64 {
    (crate::crypto::SEAL_OVERHEAD + 6 + n * crate::format::pack::ENTRY_LEN) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::local::LocalBackend;

    fn backend_with(data: &[u8]) -> (tempfile::TempDir, LocalBackend) {
        let d = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(d.path());
        b.put("packs/data/00/x", data).unwrap();
        (d, b)
    }

    #[test]
    fn regions_across_windows_arrive_whole_and_in_order() {
        let w = READ_WINDOW as usize;
        let data: Vec<u8> = (0..(2 * w + 1000)).map(|i| (i % 251) as u8).collect();
        let (_d, b) = backend_with(&data);
        // One inside the first window, one across both boundaries, one
        // nested in it, one empty, one past the end (never handed over).
        let regions = [
            (10, 100),
            (w as u64 - 5, w as u64 + 10),
            (w as u64, 20),
            (7, 0),
            (2 * w as u64, 2000),
        ];
        let mut got = Vec::new();
        let h = stream_object(
            &b,
            "packs/data/00/x",
            data.len() as u64,
            &regions,
            &mut |i, bytes| got.push((i, bytes.to_vec())),
        )
        .unwrap();
        assert_eq!(h, Id::hash_of(&data));
        let order: Vec<usize> = got.iter().map(|g| g.0).collect();
        assert_eq!(order, vec![3, 0, 1, 2]);
        for (i, bytes) in got {
            let (o, l) = regions[i];
            assert_eq!(bytes, &data[o as usize..(o + l) as usize], "region {i}");
        }
    }

    #[test]
    fn an_object_longer_than_expected_is_read_only_as_far_as_expected() {
        let data = vec![7u8; 3000];
        let (_d, b) = backend_with(&data);
        let h = stream_object(&b, "packs/data/00/x", 1000, &[], &mut |_, _| {}).unwrap();
        assert_eq!(h, Id::hash_of(&data[..1000]));
        // Shorter than expected: storage says so.
        assert!(stream_object(&b, "packs/data/00/x", 4000, &[], &mut |_, _| {}).is_err());
    }
}
