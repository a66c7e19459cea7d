//! `ironvault ls SNAPSHOT [PATH]`: list what a snapshot holds.

use crate::output::{escape, escape_str};
use crate::Cli;
use crate::Exit;
use anyhow::Result;
use ironvault_core::browse::paths::resolve_given;
use ironvault_core::browse::walk;
use ironvault_core::format::tree::{Node, NodeType};

#[derive(clap::Args)]
pub struct Args {
    /// Snapshot id (or unique prefix), or "latest".
    snapshot: String,
    /// With "latest": the newest snapshot of these hosts, tags and paths.
    #[command(flatten)]
    filter: super::SnapshotFilter,
    /// Directory or file inside the snapshot: as `ls` prints paths (/NAME/...)
    /// or as it was backed up (/srv/www/NAME/...). Default: everything.
    path: Option<std::ffi::OsString>,
    /// Show type, mode, owner, size and modification time.
    #[arg(short, long)]
    long: bool,
    /// With PATH, also list the contents of subdirectories (without PATH everything is listed).
    #[arg(long)]
    recursive: bool,
}

/// `drwxr-xr-x`-style mode string.
pub fn mode_string(n: &Node) -> String {
    let t = match n.node_type {
        NodeType::Dir => 'd',
        NodeType::Symlink => 'l',
        NodeType::Fifo => 'p',
        NodeType::Chardev => 'c',
        NodeType::Blockdev => 'b',
        NodeType::Socket => 's',
        NodeType::File => '-',
    };
    let m = n.mode;
    let mut s = String::from(t);
    for (shift, special, ch) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (m >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let x = bits & 1 != 0;
        s.push(match (m & special != 0, x) {
            (true, true) => ch,
            (true, false) => ch.to_ascii_uppercase(),
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

fn time_string(t: ironvault_core::format::tree::Time) -> String {
    chrono::DateTime::from_timestamp(t.0, t.1)
        .map(|d| {
            d.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| t.0.to_string())
}

fn rfc3339(t: ironvault_core::format::tree::Time) -> String {
    chrono::DateTime::from_timestamp(t.0, t.1)
        .map(|d| d.with_timezone(&chrono::Local).to_rfc3339())
        .unwrap_or_default()
}

fn print_node(cli: &Cli, long: bool, path: &[u8], n: &Node) {
    if cli.json {
        println!(
            "{}",
            serde_json::json!({
                "name": String::from_utf8_lossy(&n.name), "type": format!("{:?}", n.node_type).to_lowercase(),
                "path": String::from_utf8_lossy(path), "uid": n.uid, "gid": n.gid, "user": n.user, "group": n.group, "size": n.size,
                "mode": n.mode, "permissions": mode_string(n), "mtime": rfc3339(n.mtime), "ctime": rfc3339(n.ctime),
                "inode": n.inode, "links": n.links, "struct_type": "node", "message_type": "node",
            })
        );
        return;
    }
    let p = escape(path);
    if long {
        let owner = n
            .user
            .as_deref()
            .map(escape_str)
            .unwrap_or_else(|| n.uid.to_string());
        let group = n
            .group
            .as_deref()
            .map(escape_str)
            .unwrap_or_else(|| n.gid.to_string());
        let mut line = format!(
            "{} {:<8} {:<8} {:>12} {} {p}",
            mode_string(n),
            owner,
            group,
            n.size,
            time_string(n.mtime)
        );
        if let Some(t) = &n.target {
            line.push_str(&format!(" -> {}", escape(t)));
        }
        println!("{line}");
    } else {
        println!("{p}");
    }
}

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    let repo = super::open_repo(cli)?;
    repo.load_index(false)?;
    let (id, snap) = super::find_snapshot(cli, &repo, &a.snapshot, &a.filter)?;
    if cli.json {
        println!(
            "{}",
            serde_json::json!({"message_type": "snapshot", "struct_type": "snapshot", "id": id.to_hex(),
                "short_id": id.short(), "time": ironvault_core::contract::time::normalise(&snap.time), "hostname": snap.hostname, "paths": snap.paths, "tags": snap.tags})
        );
    } else if !cli.quiet && a.snapshot != "latest" {
        // (`latest` was already named by `find_snapshot`.)
        eprintln!(
            "snapshot {} of {} at {}:",
            id.short(),
            escape_str(&snap.paths.join(", ")),
            escape_str(&snap.time)
        );
    }
    let (start_tree, base, recursive) = match &a.path {
        None => (snap.tree, Vec::new(), true),
        Some(p) => {
            use std::os::unix::ffi::OsStrExt;
            let (base, node) = resolve_given(&repo, &snap, p.as_bytes())
                .map_err(|e| super::after_latest(e, &a.snapshot, &id, &snap))?;
            match node {
                None => (snap.tree, Vec::new(), a.recursive),
                Some(n) if n.node_type == NodeType::Dir => {
                    print_node(cli, a.long, &base, &n);
                    (n.subtree.unwrap_or_default(), base, a.recursive)
                }
                Some(n) => {
                    print_node(cli, a.long, &base, &n);
                    return Ok(Exit::Ok);
                }
            }
        }
    };
    walk(&repo, &start_tree, &base, &mut |path, n| {
        print_node(cli, a.long, path, n);
        Ok(recursive)
    })?;
    Ok(Exit::Ok)
}
