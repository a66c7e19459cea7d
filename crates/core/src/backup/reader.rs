//! File readers: open, read (holes synthesised as zeros without reading),
//! chunk, hash and dedup one file; new chunks go to the sealers. A file that
//! changes while it is read is stored as read and flagged.

use super::{FileJob, Shared};
use crate::format::tree::{Node, Time, FLAG_CHANGED};
use crate::format::{BlobType, Id};
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
        if result.is_some() {
            let counter = if job.in_parent {
                &sh.files_changed
            } else {
                &sh.files_new
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let _ = job.done.send(result);
    }
}

fn open_noatime(path: &std::path::Path) -> std::io::Result<File> {
    // O_NOATIME keeps backups from touching atime; only the owner or root may use it.
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path)
        .or_else(|_| File::open(path))
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
    let f = match open_noatime(path) {
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
    let mut start = 0usize; // first unchunked byte in buf
    let mut pos: u64 = 0; // file offset of buf's end
    let mut eof = false;
    let mut hole_i = 0;
    let mut read_bytes = 0u64;
    loop {
        // Keep at least `max` bytes ahead of `start`, so every cut is final.
        while !eof && buf.len() - start < max {
            if start > 0 && start >= buf.len() / 2 {
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
                (next_hole - pos).min(READ_SIZE as u64) as usize
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
                    read_bytes += n as u64;
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
    sh.bytes_read.fetch_add(read_bytes, Ordering::Relaxed);
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
        sh.changed.fetch_add(1, Ordering::Relaxed);
        (sh.warn)(&format!(
            "{}: changed while it was read; stored as read and flagged",
            path.display()
        ));
    }
    Some(node)
}
