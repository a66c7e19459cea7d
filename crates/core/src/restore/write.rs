//! Write: the writer threads, which put in place each regular file the
//! planner hands them, and the hard links made once they are done.
//!
//! A file is written into a new private (0600) temporary file in its
//! directory (its bytes fetched by `fetch.rs`); its metadata is set on the
//! descriptor, and only then is it renamed over its name. So a damaged or
//! missing blob, a full disk or a crash never destroys the file already
//! there, and no one can read a file before it has its own mode. Just before
//! the rename, the directory is checked to still be where the target has
//! it: one swapped for a symlink or moved away meanwhile gets nothing.

use super::dir::{self, Dir};
use super::metadata::apply_metadata_fd;
use super::{fetch, select, verify, Ctx};
use crate::format::tree::Node;
use crate::sync::Locked;
use crossbeam_channel::{bounded, Sender};
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

/// Run `plan` with `threads` writers taking the files it sends, and return
/// what it returns once every file is written (`plan` drops its sender when
/// it is done, which ends the writers). Bound: a few jobs per writer keeps
/// them busy and bounds the nodes (with their blob id lists) in memory.
pub(super) fn with_writers<R>(
    ctx: &Ctx<'_>,
    root: &Dir,
    threads: usize,
    plan: impl FnOnce(Sender<FileJob>) -> R,
) -> R {
    std::thread::scope(|s| {
        let (tx, rx) = bounded(threads * 16);
        for _ in 0..threads {
            let rx = rx.clone();
            s.spawn(move || {
                for job in rx {
                    if !crate::interrupt::requested() {
                        write_file(ctx, root, &job);
                    }
                }
            });
        }
        plan(tx)
    })
}

/// Write one file: into a temporary file, then renamed over its name.
fn write_file(ctx: &Ctx<'_>, root: &Dir, job: &FileJob) {
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
            fetch::fill(ctx, &f, node)?;
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
        let failed = ctx.failed.locked().contains(&first_path);
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
    fn relative_paths_split_at_the_last_slash() {
        assert_eq!(split_rel(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split_rel(b"c"), (&b""[..], &b"c"[..]));
    }
}
