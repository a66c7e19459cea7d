//! `ironvault dump SNAPSHOT PATH`: a file's content to standard output, or a
//! directory (or the whole snapshot with PATH `/`) as a tar stream.

use crate::Cli;
use crate::Exit;
use anyhow::{bail, Result};
use ironvault_core::browse::paths::resolve_given;
use ironvault_core::browse::{walk, FileReader};
use ironvault_core::format::tree::{Node, NodeType};
use ironvault_core::repo::Repository;
use std::io::Write;

#[derive(clap::Args)]
pub struct Args {
    /// Snapshot id (or unique prefix), or "latest".
    snapshot: String,
    /// With "latest": the newest snapshot of these hosts, tags and paths.
    #[command(flatten)]
    filter: super::SnapshotFilter,
    /// File or directory inside the snapshot, as `ls` prints it or as it was
    /// backed up (/srv/www/NAME/...); `/` for everything.
    path: std::ffi::OsString,
}

fn header(n: &Node) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(n.mode);
    h.set_uid(n.uid as u64);
    h.set_gid(n.gid as u64);
    h.set_mtime(n.mtime.0.max(0) as u64);
    if let Some(u) = &n.user {
        let _ = h.set_username(u);
    }
    if let Some(g) = &n.group {
        let _ = h.set_groupname(g);
    }
    h.set_size(0);
    h
}

fn append(
    repo: &Repository,
    tar: &mut tar::Builder<impl Write>,
    path: &[u8],
    n: &Node,
) -> Result<()> {
    // Raw bytes: tar keeps non-UTF-8 names exactly.
    use std::os::unix::ffi::OsStrExt;
    let name = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(
        path.strip_prefix(b"/").unwrap_or(path),
    ));
    let mut h = header(n);
    match n.node_type {
        NodeType::File => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(n.size);
            tar.append_data(&mut h, &name, FileReader::new(repo, n))?;
        }
        NodeType::Dir => {
            h.set_entry_type(tar::EntryType::Directory);
            tar.append_data(&mut h, &name, std::io::empty())?;
        }
        NodeType::Symlink => {
            h.set_entry_type(tar::EntryType::Symlink);
            let target =
                String::from_utf8_lossy(n.target.as_deref().unwrap_or_default()).into_owned();
            tar.append_link(&mut h, &name, target)?;
        }
        NodeType::Fifo | NodeType::Chardev | NodeType::Blockdev => {
            h.set_entry_type(match n.node_type {
                NodeType::Fifo => tar::EntryType::Fifo,
                NodeType::Chardev => tar::EntryType::Char,
                _ => tar::EntryType::Block,
            });
            let rdev = n.rdev.unwrap_or(0);
            let _ = h.set_device_major(libc::major(rdev as libc::dev_t));
            let _ = h.set_device_minor(libc::minor(rdev as libc::dev_t));
            tar.append_data(&mut h, &name, std::io::empty())?;
        }
        NodeType::Socket => {}
    }
    Ok(())
}

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    let repo = super::open_repo(cli)?;
    repo.load_index(false)?;
    let (id, snap) = super::find_snapshot(cli, &repo, &a.snapshot, &a.filter)?;
    let out = std::io::stdout().lock();
    use std::os::unix::ffi::OsStrExt;
    let shown = a.path.to_string_lossy();
    let (base, node) = resolve_given(&repo, &snap, a.path.as_bytes())
        .map_err(|e| super::after_latest(e, &a.snapshot, &id, &snap))?;
    match node {
        Some(n) if n.node_type == NodeType::File => {
            let mut out = std::io::BufWriter::new(out);
            std::io::copy(&mut FileReader::new(&repo, &n), &mut out)?;
            out.flush()?;
        }
        Some(n) if n.node_type != NodeType::Dir => bail!("{shown} is not a file or directory"),
        other => {
            if std::io::IsTerminal::is_terminal(&out) {
                bail!("{shown} is a directory: it is written as a tar stream; redirect it to a file or a pipe");
            }
            let mut tar = tar::Builder::new(std::io::BufWriter::new(out));
            let (tree, base) = match &other {
                Some(n) => {
                    append(&repo, &mut tar, &base, n)?;
                    (n.subtree.unwrap_or_default(), base)
                }
                None => (snap.tree, Vec::new()),
            };
            walk(&repo, &tree, &base, &mut |path, n| {
                append(&repo, &mut tar, path, n)
                    .map_err(|e| ironvault_core::Error::Failed(e.to_string()))?;
                Ok(true)
            })?;
            tar.into_inner()?.flush()?;
        }
    }
    Ok(Exit::Ok)
}
