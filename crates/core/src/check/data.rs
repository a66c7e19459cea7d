//! Reading pack data for `check --read-data` (and subsets): each pack is
//! streamed (`Repository::scan_pack`), so memory stays bounded whatever
//! storage holds. A pack whose stored size differs from the index is
//! already reported as damaged and is not read: reading it would only
//! confirm that, and an object planted under a pack name may be huge.

use super::{bad_copy, CheckOptions, CheckReport, ProgressFn};
use crate::format::index::IndexBlob;
use crate::format::kind::pack_name;
use crate::format::{BlobType, Id};
use crate::repo::index::BlobLocation;
use crate::repo::{Repository, StoredPack};
use std::collections::HashMap;

/// Read the indexed packs the options select and verify every blob in them.
pub(super) fn read_indexed(
    repo: &Repository,
    opts: &CheckOptions,
    stored: &HashMap<Id, (BlobType, u64)>,
    pack_blobs: &HashMap<Id, Vec<(Id, BlobLocation)>>,
    bad_copies: &mut HashMap<Id, Vec<String>>,
    r: &mut CheckReport,
    progress: ProgressFn<'_>,
) {
    let idx = repo.index();
    let mut ids: Vec<_> = idx
        .packs()
        .iter()
        .filter(|(p, _)| stored.contains_key(p))
        .collect();
    ids.sort();
    r.packs_considered = ids.len();
    if let Some(sub) = &opts.subset {
        let all: Vec<Id> = ids.iter().map(|(p, _)| **p).collect();
        let chosen: std::collections::HashSet<Id> = sub.select(&all).into_iter().collect();
        ids.retain(|(p, _)| chosen.contains(p));
    }
    // Reported above as missing, mistyped or resized: not read.
    ids.retain(|(p, v)| stored.get(p) == Some(v));
    let total: u64 = ids.iter().map(|(_, v)| v.1).sum();
    let mut done = 0u64;
    for (pid, (t, size)) in ids {
        let name = pack_name(*t, pid);
        progress("read data", done, total);
        done += size;
        let locs = pack_blobs.get(pid).map(Vec::as_slice).unwrap_or_default();
        let blobs: Vec<IndexBlob> = locs
            .iter()
            .map(|(id, l)| IndexBlob {
                id: *id,
                offset: l.offset,
                stored_len: l.stored_len,
                raw_len: l.raw_len,
            })
            .collect();
        let scan = match repo.scan_pack(*t, pid, *size, &blobs, true) {
            Ok(s) => s,
            Err(e) => {
                r.errors.push(format!("pack {name}: {e}"));
                continue;
            }
        };
        r.bytes_read += scan.bytes_read;
        r.packs_read.push(*pid);
        if !scan.hash_matches {
            r.errors.push(format!(
                "pack {name}: content does not match its name (damaged)"
            ));
        }
        if let Some(h) = &scan.header_problem {
            r.errors.push(format!("pack {name}: header: {h}"));
        }
        for (bid, err) in &scan.bad_blobs {
            r.errors.push(err.to_string());
            bad_copy(bad_copies, bid, err.to_string());
        }
    }
    progress("read data", total, total);
}

/// Verify every pack no index lists as a writer would before adopting it;
/// returns one error line per pack that fails (nothing uses those: they are
/// damaged leftovers, or objects planted in storage).
pub(super) fn read_unindexed(
    repo: &Repository,
    packs: &[StoredPack],
    r: &mut CheckReport,
) -> Vec<String> {
    let mut sorted: Vec<&StoredPack> = packs.iter().collect();
    sorted.sort_by_key(|p| p.id);
    let mut damage = Vec::new();
    for p in sorted {
        match repo.verify_unindexed_pack(p) {
            Ok(Ok(_)) => {
                r.bytes_read += p.size;
            }
            Ok(Err(why)) => damage.push(format!(
                "pack {} (in no index): {why}; nothing uses it and backups do not reuse it: delete it, or 'ironvault prune' does",
                p.name
            )),
            // Gone since the listing (a prune deleted it).
            Err(e) if crate::backend::is_not_found(&e) => {}
            Err(e) => r.errors.push(format!("pack {} (in no index): {e}", p.name)),
        }
    }
    damage
}
