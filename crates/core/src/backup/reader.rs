//! File readers: open, read (holes synthesised as zeros without reading),
//! chunk, hash and dedup one file; new chunks go to the sealers. A file that
//! changes while it is read is stored as read and flagged.

use super::walk::FileJob;
use super::Shared;
use crate::format::tree::{Node, Time, FLAG_CHANGED};
use crate::format::{BlobType, Id};
use crate::sync::Locked;
use crossbeam_channel::{Receiver, Sender};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::sync::atomic::Ordering;

/// Bytes asked of the kernel per read.
const READ_SIZE: usize = 1 << 20;

pub(super) fn run_reader(sh: &Shared<'_>, jobs: Receiver<FileJob>, seal: Sender<(Id, Vec<u8>)>) {
    let mut buf = Vec::new();
    let mut zero_ids: HashMap<usize, Id> = HashMap::new();
    for job in jobs {
        let result = if sh.abort.load(Ordering::Relaxed) {
            None
        } else {
            read_file(sh, &job, &seal, &mut buf, &mut zero_ids)
        };
        // Counted once read: a skipped file is an error, not a new file.
        if let Some(n) = &result {
            sh.progress
                .bytes_processed
                .fetch_add(n.size, Ordering::Relaxed);
            let counter = if job.in_parent {
                &sh.progress.files_changed
            } else {
                &sh.progress.files_new
            };
            counter.fetch_add(1, Ordering::Relaxed);
            if sh.progress.log_files.load(Ordering::Relaxed) {
                sh.progress
                    .files_log
                    .locked()
                    .push((job.in_parent, job.path.clone()));
            }
        }
        let _ = job.done.send(result);
    }
}

/// Open a file that the walker saw as a regular file. O_NOFOLLOW and
/// O_NONBLOCK: if it was replaced by a symlink or a fifo since, the open fails
/// or returns at once instead of following the link or blocking forever.
fn open_source(path: &std::path::Path) -> std::io::Result<File> {
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK;
    // O_NOATIME keeps backups from touching atime; only the owner or root may use it.
    OpenOptions::new()
        .read(true)
        .custom_flags(flags | libc::O_NOATIME)
        .open(path)
        .or_else(|_| OpenOptions::new().read(true).custom_flags(flags).open(path))
}

fn is_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

fn read_file(
    sh: &Shared<'_>,
    job: &FileJob,
    seal: &Sender<(Id, Vec<u8>)>,
    buf: &mut Vec<u8>,
    zero_ids: &mut HashMap<usize, Id>,
) -> Option<Node> {
    let path = &job.path;
    let mut node = job.node.clone();
    sh.progress.current.locked().clone_from(path);
    let f = match open_source(path) {
        Ok(f) => f,
        Err(e) => {
            sh.skip(path, "cannot open", e);
            return None;
        }
    };
    let before = match f.metadata() {
        Ok(m) => m,
        Err(e) => {
            sh.skip(path, "cannot stat", e);
            return None;
        }
    };
    if !before.is_file() || before.ino() != node.inode || before.dev() != node.device_id {
        sh.skip(
            path,
            "cannot back up",
            "replaced by another file while the backup ran",
        );
        return None;
    }
    let size = before.size();
    node.size = size;
    node.holes = if before.blocks() * 512 < size {
        super::meta::find_holes(&f, size)
    } else {
        Vec::new()
    };
    let repo = sh.sink.repo();
    let chunker = repo.chunker();
    let keys = repo.id_keys();
    let max = chunker.max_size();
    let mut content = Vec::new();
    buf.clear();
    // Room for `max` bytes ahead plus one read, allocated once per reader.
    // (More room would move the consumed front less often, at 4 MiB of
    // memory per reader; measured, the moves cost about 2% of a backup.)
    buf.reserve_exact((max + READ_SIZE).saturating_sub(buf.capacity()));
    let mut start = 0usize; // first unchunked byte in buf
    let mut pos: u64 = 0; // file offset of buf's end
    let mut eof = false;
    let mut hole_i = 0;
    loop {
        // Keep at least `max` bytes ahead of `start`, so every cut is final.
        while !eof && buf.len() - start < max {
            if start > 0 && buf.len() + READ_SIZE > buf.capacity() {
                buf.drain(..start);
                start = 0;
            }
            while hole_i < node.holes.len() && node.holes[hole_i].0 + node.holes[hole_i].1 <= pos {
                hole_i += 1;
            }
            let in_hole = node.holes.get(hole_i).filter(|h| h.0 <= pos);
            let want = if let Some(h) = in_hole {
                (h.0 + h.1 - pos).min(READ_SIZE as u64) as usize
            } else {
                let next_hole = node.holes.get(hole_i).map(|h| h.0).unwrap_or(u64::MAX);
                // Ask for what the file should still hold (at least a page, to
                // notice growth): the buffer is zero-filled before each read,
                // and zeroing a whole READ_SIZE for every small file would
                // cost more than reading it.
                let expected = size.saturating_sub(pos).max(4096);
                (next_hole - pos).min(expected).min(READ_SIZE as u64) as usize
            };
            let old = buf.len();
            buf.resize(old + want, 0);
            if in_hole.is_some() {
                pos += want as u64;
                if pos >= size {
                    eof = true;
                }
                continue;
            }
            match f.read_at(&mut buf[old..], pos) {
                Ok(0) => {
                    buf.truncate(old);
                    eof = true;
                }
                Ok(n) => {
                    buf.truncate(old + n);
                    pos += n as u64;
                    sh.progress
                        .bytes_read
                        .fetch_add(n as u64, Ordering::Relaxed);
                    sh.progress
                        .bytes_done
                        .fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => buf.truncate(old),
                Err(e) => {
                    sh.skip(path, "read error", e);
                    return None;
                }
            }
        }
        if crate::interrupt::requested() {
            sh.fail(crate::error::Error::Interrupted);
        }
        if sh.abort.load(Ordering::Relaxed) {
            return None;
        }
        let Some(cut) = chunker.next_cut(&buf[start..], eof) else {
            break;
        };
        let chunk = &buf[start..start + cut];
        let id = if is_zero(chunk) {
            *zero_ids
                .entry(cut)
                .or_insert_with(|| keys.blob_id(BlobType::Data, chunk))
        } else {
            keys.blob_id(BlobType::Data, chunk)
        };
        if sh.sink.claim(&id) && seal.send((id, chunk.to_vec())).is_err() {
            return None;
        }
        content.push(id);
        start += cut;
    }
    node.content = Some(content);
    let changed = match f.metadata() {
        Ok(after) => {
            pos != after.size()
                || Time(after.mtime(), after.mtime_nsec() as u32) != node.mtime
                || Time(after.ctime(), after.ctime_nsec() as u32) != node.ctime
        }
        Err(_) => true,
    };
    if changed {
        node.size = pos;
        node.flags.push(FLAG_CHANGED.to_string());
        sh.progress.changed.fetch_add(1, Ordering::Relaxed);
        (sh.warn)(&format!(
            "{}: changed while it was read; stored as read and flagged",
            path.display()
        ));
    }
    Some(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::meta::node_from_metadata;
    use crate::repo::packer::BlobSink;

    /// A file replaced by a fifo or a symlink between the walk and the read
    /// is skipped at once: no hang on the fifo, no following the link.
    #[test]
    fn replaced_file_is_skipped_not_followed_or_waited_on() {
        let (d, repo) = crate::repo::test_repo();
        let warnings = std::sync::Mutex::new(Vec::new());
        let warn = |m: &str| warnings.lock().unwrap().push(m.to_string());
        let sh = Shared::new(BlobSink::new(repo, 3), &warn, Default::default());
        let (seal_tx, _seal_rx) = crossbeam_channel::unbounded();
        let secret = d.path().join("secret");
        std::fs::write(&secret, b"not yours").unwrap();
        for replace_with_fifo in [true, false] {
            let p = d.path().join("victim");
            std::fs::write(&p, b"data").unwrap();
            let node = node_from_metadata(b"victim", &std::fs::symlink_metadata(&p).unwrap());
            std::fs::remove_file(&p).unwrap();
            if replace_with_fifo {
                let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
                // SAFETY: valid path.
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
            } else {
                std::os::unix::fs::symlink(&secret, &p).unwrap();
            }
            let (done, _) = crossbeam_channel::bounded(1);
            let job = FileJob {
                path: p.clone(),
                node,
                in_parent: false,
                done,
            };
            let t0 = std::time::Instant::now();
            let r = read_file(&sh, &job, &seal_tx, &mut Vec::new(), &mut HashMap::new());
            assert!(r.is_none());
            assert!(t0.elapsed().as_secs() < 5);
            std::fs::remove_file(&p).unwrap();
        }
        assert_eq!(sh.progress.errors.load(Ordering::Relaxed), 2);
        assert_eq!(warnings.lock().unwrap().len(), 2);
    }
}
