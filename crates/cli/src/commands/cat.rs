//! `ironvault cat config|snapshot|tree|index|key|pack ID`: decrypted objects
//! as JSON, for debugging. Secrets (id key, chunker secret, wrapped keys)
//! are never printed.

use crate::Cli;
use crate::Exit;
use anyhow::{anyhow, bail, Result};
use ironvault_core::format::index::IndexFile;
use ironvault_core::format::{BlobType, Id, ObjectKind};
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// config, snapshot, tree, index, key or pack.
    kind: String,
    /// Object id (full, or a unique prefix for snapshots); not for config.
    id: Option<String>,
}

fn full_id(kind: &str, prefix: &str, names: Vec<String>) -> Result<Id> {
    let m: Vec<&String> = names.iter().filter(|n| n.starts_with(prefix)).collect();
    match m.as_slice() {
        [one] => {
            Id::from_hex(&one.to_ascii_lowercase()).ok_or_else(|| anyhow!("bad {kind} id {one}"))
        }
        [] => bail!("no {kind} {prefix} in this repository"),
        _ => bail!("{kind} id prefix {prefix} is ambiguous; give more characters"),
    }
}

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    let repo = super::open_repo(cli)?;
    let need_id = || {
        a.id.clone()
            .ok_or_else(|| anyhow!("'cat {}' needs an id", a.kind))
    };
    let names = |prefix: &str| -> Result<Vec<String>> {
        Ok(repo
            .backend()
            .list(prefix)?
            .into_iter()
            .filter_map(|o| o.name.rsplit('/').next().map(String::from))
            .collect())
    };
    let v = match a.kind.as_str() {
        "config" => {
            let c = repo.config();
            json!({"version": c.version, "id": c.id.to_hex(), "chunker": c.chunker, "compression": c.compression,
                "pack_size": c.pack_size, "created": c.created, "related_to": c.related_to.map(|i| i.to_hex()),
                "id_key": "(secret, not shown)", "chunker_secret": "(secret, not shown)"})
        }
        "snapshot" => {
            let spec = need_id()?;
            let (id, s) = repo.find_snapshot(&spec)?;
            super::announce_latest(cli, &spec, &id, &s);
            let mut v = serde_json::to_value(&s)?;
            v["id"] = json!(id.to_hex());
            v["tree"] = json!(s.tree.to_hex());
            v["parent"] = json!(s.parent.map(|p| p.to_hex()));
            v
        }
        "tree" => {
            repo.load_index(false)?;
            let id = Id::from_hex(&need_id()?.to_ascii_lowercase())
                .ok_or_else(|| anyhow!("a tree id has 64 hex digits"))?;
            let t = repo.read_tree(&id)?;
            let nodes: Vec<_> = t
                .nodes
                .iter()
                .map(|n| {
                    let mut v = serde_json::to_value(n).unwrap_or_default();
                    v["name"] = json!(String::from_utf8_lossy(&n.name));
                    v["content"] = json!(n
                        .content
                        .as_ref()
                        .map(|c| c.iter().map(|i| i.to_hex()).collect::<Vec<_>>()));
                    v["subtree"] = json!(n.subtree.map(|i| i.to_hex()));
                    v["target"] = json!(n
                        .target
                        .as_ref()
                        .map(|t| String::from_utf8_lossy(t).into_owned()));
                    v["xattrs"] = json!(n
                        .xattrs
                        .iter()
                        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                        .collect::<Vec<_>>());
                    v
                })
                .collect();
            json!({"id": id.to_hex(), "nodes": nodes})
        }
        "index" => {
            let id = full_id("index", &need_id()?, names(ObjectKind::Index.dir())?)?;
            let f = IndexFile::open(
                repo.master_key(),
                &repo.backend().get(&ObjectKind::Index.name(&id))?,
                "index",
            )?;
            json!({"id": id.to_hex(), "supersedes": f.supersedes.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
                "packs": f.packs.iter().map(|p| json!({"id": p.id.to_hex(), "type": p.blob_type.dir(), "size": p.size,
                    "blobs": p.blobs.iter().map(|b| json!({"id": b.id.to_hex(), "offset": b.offset, "length": b.stored_len,
                        "uncompressed_length": b.raw_len})).collect::<Vec<_>>()})).collect::<Vec<_>>()})
        }
        "key" => {
            let id = full_id("key", &need_id()?, names(ObjectKind::Key.dir())?)?;
            let kf = ironvault_core::format::keyfile::KeyFile::parse(
                &repo.backend().get(&ObjectKind::Key.name(&id))?,
                "key",
            )?;
            json!({"id": id.to_hex(), "version": kf.version, "created": kf.created, "hostname": kf.hostname,
                "username": kf.username, "wrapped_master_key": "(not shown)"})
        }
        "pack" => {
            let prefix = need_id()?;
            let mut m = Vec::new();
            for t in [BlobType::Data, BlobType::Tree] {
                let kind = ObjectKind::Pack(t);
                for o in repo.backend().list(kind.dir())? {
                    if o.name
                        .rsplit('/')
                        .next()
                        .is_some_and(|n| n.starts_with(&prefix))
                    {
                        m.push((kind, t, o));
                    }
                }
            }
            let [(kind, t, o)] = m.as_slice() else {
                bail!("no single pack matches {prefix}")
            };
            let t = *t;
            let id = kind
                .parse_name(&o.name)
                .ok_or_else(|| anyhow!("bad pack name"))?;
            let p = repo.read_pack_header(t, &id, o.size)?;
            json!({"id": id.to_hex(), "type": t.dir(), "size": p.size, "blobs": p.blobs.iter().map(|b| json!({"id": b.id.to_hex(),
                "offset": b.offset, "length": b.stored_len, "uncompressed_length": b.raw_len})).collect::<Vec<_>>()})
        }
        other => bail!("cannot cat {other:?}: use config, snapshot, tree, index, key or pack"),
    };
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(Exit::Ok)
}
