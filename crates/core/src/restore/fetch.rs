//! Fetch: the bytes of one regular file, from the repository into the
//! temporary file a writer made for it. Each blob is read, decrypted and
//! checked against its id by the repository before a byte of it is written;
//! only the parts that are not holes are written, so holes stay unallocated.
//!
//! Invariants: a file whose blobs are missing, damaged or do not add up to
//! the snapshot's size is an error here, and the writer then never renames
//! the temporary file over the name (what was there stays). Fetching runs on
//! the writer threads, one blob in memory per thread: it is a step of each
//! writer, not a stage with its own queue.

use super::Ctx;
use crate::format::tree::Node;
use crate::format::BlobType;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;

/// The parts of [off, off+len) that are not holes.
fn data_ranges(holes: &[(u64, u64)], off: u64, len: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut cur = off;
    let end = off.saturating_add(len);
    for &(h, hl) in holes {
        let he = h.saturating_add(hl);
        if he <= cur || h >= end {
            continue;
        }
        if h > cur {
            out.push((cur, h - cur));
        }
        cur = cur.max(he);
    }
    if cur < end {
        out.push((cur, end - cur));
    }
    out
}

/// Write the content `node` describes into `f` (empty, open for writing).
pub(super) fn fill(ctx: &Ctx<'_>, f: &File, node: &Node) -> Result<(), String> {
    f.set_len(node.size)
        .map_err(|e| format!("cannot size file: {e}"))?;
    let idx = ctx.repo.index();
    let mut off = 0u64;
    for id in node.content.as_deref().unwrap_or(&[]) {
        let len = idx.get(id).map(|l| l.raw_len as u64).ok_or_else(|| {
            format!(
                "data blob {} is missing from the repository; file not restored",
                id.short()
            )
        })?;
        let ranges = data_ranges(&node.holes, off, len);
        if !ranges.is_empty() {
            let data = ctx
                .repo
                .read_blob(BlobType::Data, id)
                .map_err(|e| format!("{e}; file not restored"))?;
            for (r, rl) in ranges {
                let s = (r - off) as usize;
                f.write_all_at(&data[s..s + rl as usize], r)
                    .map_err(|e| format!("write failed: {e}"))?;
                ctx.progress.bytes_written.fetch_add(rl, Ordering::Relaxed);
            }
        }
        off += len;
    }
    if off != node.size {
        return Err(format!(
            "content is {off} bytes but the snapshot says {}; file not restored",
            node.size
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_skip_holes() {
        assert_eq!(data_ranges(&[], 0, 10), vec![(0, 10)]);
        assert_eq!(data_ranges(&[(0, 10)], 0, 10), vec![]);
        assert_eq!(data_ranges(&[(2, 3)], 0, 10), vec![(0, 2), (5, 5)]);
        assert_eq!(data_ranges(&[(0, 4), (8, 100)], 2, 10), vec![(4, 4)]);
        assert_eq!(data_ranges(&[(20, 5)], 0, 10), vec![(0, 10)]);
    }
}
