//! Backing up a stream (standard input, or a command's output such as an
//! IBM i save file or an AIX mksysb image) as one file in a new snapshot.
//! The stream is chunked and hashed here; new chunks are sealed by a pool.

use super::{commit_snapshot, BackupOptions, BackupResult, WarnFn};
use crate::error::{Error, Result};
use crate::format::snapshot::Summary;
use crate::format::tree::{Node, NodeType, Time, Tree};
use crate::format::{to_cbor, BlobType, Id};
use crate::repo::lock::Lock;
use crate::repo::packer::BlobSink;
use crate::repo::Repository;
use crate::sync::Locked;
use crossbeam_channel::bounded;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Back up everything `input` yields as the file `name`. `finish` runs after
/// the stream ended and before anything is committed: an error from it (the
/// producing command failed) fails the backup, and no snapshot is written.
pub fn backup_stream(
    repo: Arc<Repository>,
    opts: &BackupOptions,
    name: &str,
    input: &mut dyn Read,
    finish: &mut dyn FnMut() -> Result<()>,
    warn: WarnFn<'_>,
) -> Result<BackupResult> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Error::Usage(format!(
            "--stdin-filename {name:?} must be a plain file name"
        )));
    }
    let started = chrono::Local::now();
    let lock = Lock::acquire(repo.backend().clone(), *repo.master_key(), false)?;
    repo.load_index(true)?;
    // Lost packs count as absent, and packs an interrupted run left are reused.
    let adoption = repo.adopt_unindexed_packs()?;
    for line in &adoption.refused {
        warn(line);
    }
    let level = opts.compression.unwrap_or(repo.config().compression.level);
    let sink = BlobSink::new(repo.clone(), level);
    sink.guard_with(&lock);
    let reused_packs = (
        adoption.packs.len() as u64,
        adoption.packs.iter().map(|p| p.size).sum::<u64>(),
    );
    sink.adopt(adoption.packs)?;
    sink.set_dry_run(opts.dry_run);
    let progress = opts.progress.clone().unwrap_or_default();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let fatal: Mutex<Option<Error>> = Mutex::new(None);
    let mut content = Vec::new();
    let mut total = 0u64;
    std::thread::scope(|s| -> Result<()> {
        // Bound: a few chunks (≤ 8 MiB each) queued per sealer.
        let (tx, rx) = bounded::<(Id, Vec<u8>)>(threads);
        for _ in 0..threads {
            let rx = rx.clone();
            let (sink, fatal) = (&sink, &fatal);
            s.spawn(move || {
                for (id, data) in rx {
                    if let Err(e) = sink.store(BlobType::Data, id, &data) {
                        fatal.locked().get_or_insert(e);
                    }
                }
            });
        }
        let chunker = repo.chunker();
        let max = chunker.max_size();
        let mut buf: Vec<u8> = Vec::with_capacity(max + (1 << 20));
        let mut start = 0;
        let mut eof = false;
        loop {
            while !eof && buf.len() - start < max {
                if start > 0 {
                    buf.drain(..start);
                    start = 0;
                }
                let old = buf.len();
                buf.resize(old + (1 << 20), 0);
                match input.read(&mut buf[old..]) {
                    Ok(0) => {
                        buf.truncate(old);
                        eof = true;
                    }
                    Ok(n) => {
                        buf.truncate(old + n);
                        progress.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                        progress.bytes_done.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => buf.truncate(old),
                    Err(e) => return Err(Error::io(name, e)),
                }
                if crate::interrupt::requested() {
                    return Err(Error::Interrupted);
                }
            }
            let Some(cut) = chunker.next_cut(&buf[start..], eof) else {
                break;
            };
            let chunk = &buf[start..start + cut];
            let id = repo.id_keys().blob_id(BlobType::Data, chunk);
            if sink.claim(&id) && tx.send((id, chunk.to_vec())).is_err() {
                break;
            }
            content.push(id);
            total += cut as u64;
            start += cut;
        }
        Ok(())
    })?;
    if let Some(e) = fatal.locked().take() {
        return Err(e);
    }
    finish()?;
    let now = chrono::Local::now();
    let t = Time(now.timestamp(), now.timestamp_subsec_nanos());
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let node = Node {
        name: name.as_bytes().to_vec(),
        node_type: NodeType::File,
        mode: 0o600,
        uid,
        gid,
        user: crate::host::user_name(uid),
        group: crate::host::group_name(gid),
        size: total,
        mtime: t,
        ctime: t,
        atime: Some(t),
        inode: 0,
        device_id: 0,
        links: 1,
        rdev: None,
        target: None,
        content: Some(content),
        holes: vec![],
        subtree: None,
        xattrs: vec![],
        flags: vec![],
    };
    let (root, _) = sink.add(BlobType::Tree, &to_cbor(&Tree { nodes: vec![node] })?)?;
    sink.finish()?;
    progress.files_new.fetch_add(1, Ordering::Relaxed);
    progress.bytes_processed.fetch_add(total, Ordering::Relaxed);
    let summary = Summary {
        files_new: 1,
        bytes_read: total,
        bytes_added: sink.stats.bytes_added_stored.load(Ordering::Relaxed),
        started: started.to_rfc3339(),
        finished: chrono::Local::now().to_rfc3339(),
        ..Default::default()
    };
    let mut r = commit_snapshot(
        &repo,
        lock,
        &sink,
        opts,
        root,
        vec![format!("/{name}")],
        None,
        summary,
        &progress,
        warn,
    )?;
    r.reused_packs = reused_packs;
    Ok(r)
}
