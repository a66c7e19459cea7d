//! Fetch and write: what the writer threads do with each regular file, and
//! the hard links made once they are done.
//!
//! A file is written into a new private (0600) temporary file in its
//! directory, from blobs read and verified one at a time (holes left
//! unallocated); its metadata is set on the descriptor, and only then is it
//! renamed over its name. So a damaged or missing blob, a full disk or a
//! crash never destroys the file already there, and no one can read a file
//! before it has its own mode. Just before the rename, the directory is
//! checked to still be where the target has it: one swapped for a symlink
//! or moved away meanwhile gets nothing.

use super::dir::{self, Dir};
use super::metadata::apply_metadata_fd;
use super::{select, verify, Ctx};
use crate::format::tree::Node;
use crate::format::BlobType;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// One regular file to write.
pub(super) struct FileJob {
    /// Its directory, as the planner opened it.
    pub dir: Arc<Dir>,
    /// That directory's path relative to the target.
    pub rel_dir: Vec<u8>,
    pub path: PathBuf,
    pub node: Node,
    /// `--overwrite if-changed`: leave the file there if it already matches.
    pub check_existing: bool,
}

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
fn fill(ctx: &Ctx<'_>, f: &File, node: &Node) -> Result<(), String> {
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

/// `--overwrite if-changed`: if the file there already has the snapshot's
/// content, set its metadata and say so.
fn keep_if_same(ctx: &Ctx<'_>, job: &FileJob) -> Result<bool, String> {
    let Some(f) = select::open_if_same(ctx.repo, &job.dir, &job.node) else {
        return Ok(false);
    };
    apply_metadata_fd(&f, &job.node, ctx.opts.owners)
        .map_err(|e| format!("cannot set metadata: {e}"))?;
    Ok(true)
}

/// Fail unless `dir` is still the directory at `rel` in the target `root`.
fn still_in_place(root: &Dir, rel: &[u8], dir: &Dir) -> Result<(), String> {
    let here = root
        .open_beneath(rel)
        .map_err(|e| format!("file not restored: its directory: {}", dir::open_error(&e)))?;
    let same = match (here.stat_self(), dir.stat_self()) {
        (Ok(a), Ok(b)) => a.id() == b.id(),
        _ => false,
    };
    if !same {
        return Err(
            "file not restored: its directory was moved or replaced during the restore".into(),
        );
    }
    Ok(())
}

/// Write one file: into a temporary file, then renamed over its name.
pub(super) fn write_file(ctx: &Ctx<'_>, root: &Dir, job: &FileJob) {
    crate::failpoint::pause("restore-file-write");
    let (dir, name, node) = (&*job.dir, job.node.name.as_slice(), &job.node);
    let result = (|| -> Result<(), String> {
        if job.check_existing && keep_if_same(ctx, job)? {
            ctx.unchanged.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let (tmp, f) = dir
            .create_temp()
            .map_err(|e| format!("cannot create a temporary file: {e}"))?;
        let written = (|| {
            fill(ctx, &f, node)?;
            crate::failpoint::pause("restore-file-written");
            // The pass after the restore reads every other file back; this
            // one it could not read once its mode is set.
            if ctx.opts.verify
                && verify::unreadable_once_restored(node)
                && !select::file_matches(ctx.repo, &f, node).unwrap_or(false)
            {
                return Err(
                    "verification failed: the file on disk differs from the snapshot after writing"
                        .to_string(),
                );
            }
            apply_metadata_fd(&f, node, ctx.opts.owners)
                .map_err(|e| format!("cannot set metadata: {e}"))?;
            still_in_place(root, &job.rel_dir, dir)?;
            dir.rename(&tmp, name)
                .map_err(|e| format!("cannot put the file in place: {e}"))
        })();
        if written.is_err() {
            let _ = dir.unlink(&tmp);
        }
        written
    })();
    match result {
        Ok(()) => {
            ctx.progress.files_written.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            let left = match dir.stat(name) {
                Ok(Some(_)) => " (what was there is left as it was)",
                _ => "",
            };
            ctx.failed_files.fetch_add(1, Ordering::Relaxed);
            ctx.fail(&job.path, format!("{e}{left}"));
        }
    }
}

/// Make the hard links `links` (name, first name; relative to the target
/// `root`) once their first names are written; returns how many were made.
pub(super) fn make_links(ctx: &Ctx<'_>, root: &Dir, links: &[(Vec<u8>, Vec<u8>)]) -> u64 {
    let mut made = 0;
    for (link, first) in links {
        let (link_path, first_path) = (ctx.shown(link), ctx.shown(first));
        let failed = ctx
            .failed
            .lock()
            .map(|f| f.contains(&first_path))
            .unwrap_or(true);
        if failed {
            ctx.fail(
                &link_path,
                format!(
                    "not restored: it is a hard link to {}, which failed",
                    first_path.display()
                ),
            );
            continue;
        }
        match link_to(root, link, first) {
            Ok(()) => made += 1,
            Err(e) => ctx.fail(&link_path, format!("cannot create hard link: {e}")),
        }
    }
    made
}

/// (directory, name) of a path relative to the target.
fn split_rel(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&[], rel),
    }
}

/// Make `link` a name of the file `first`: linked under a temporary name,
/// then renamed over whatever `link` is.
fn link_to(root: &Dir, link: &[u8], first: &[u8]) -> Result<(), String> {
    let (first_dir, first_name) = split_rel(first);
    let (link_dir, link_name) = split_rel(link);
    let open = |rel: &[u8]| {
        root.open_beneath(rel)
            .map_err(|e| format!("its directory: {}", dir::open_error(&e)))
    };
    let (from, to) = (open(first_dir)?, open(link_dir)?);
    let want = from.stat(first_name).map_err(|e| e.to_string())?;
    let have = to.stat(link_name).map_err(|e| e.to_string())?;
    if let (Some(w), Some(h)) = (want, have) {
        if w.id() == h.id() {
            return Ok(());
        }
    }
    let tmp = from.link_temp(first_name, &to).map_err(|e| e.to_string())?;
    to.rename(&tmp, link_name).map_err(|e| {
        let _ = to.unlink(&tmp);
        e.to_string()
    })
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

    #[test]
    fn relative_paths_split_at_the_last_slash() {
        assert_eq!(split_rel(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split_rel(b"c"), (&b""[..], &b"c"[..]));
    }
}
