//! Check: keys, index files, packs against the index, every snapshot and
//! every tree it reaches, and (with `read_data`) every byte of every pack,
//! streamed (`data`); a pack no index lists is verified as a backup would
//! before adopting it, and one that fails is damage (that nothing uses).
//! Each damaged object is named together with the snapshots and files it
//! affects. Leftovers of an interrupted write (unreferenced packs or index
//! entries, stale locks) are reported as harmless notices, not errors.

use crate::error::Result;
use crate::format::keyfile::KeyFile;
use crate::format::kind::pack_name;
use crate::format::scrub::ScrubRecord;
use crate::format::tree::NodeType;
use crate::format::ObjectKind;
use crate::format::{BlobType, Id};
use crate::repo::index::BlobLocation;
use crate::repo::{Repository, StoredPack};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

mod data;
pub mod scrub;

/// What to check.
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Read and verify every blob of every pack ...
    pub read_data: bool,
    /// ... or of these packs only (implies reading data).
    pub subset: Option<scrub::Subset>,
}

/// Findings of a check.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Damage: each line names the object and what it affects.
    pub errors: Vec<String>,
    /// Harmless findings (leftovers of interrupted runs).
    pub notices: Vec<String>,
    pub snapshots: usize,
    pub trees: usize,
    pub packs: usize,
    pub blobs: usize,
    pub bytes_read: u64,
    /// Packs whose data was read (sorted).
    pub packs_read: Vec<Id>,
    /// Packs that are both indexed and stored (what a subset is drawn from).
    pub packs_considered: usize,
    /// Errors found while reading pack data.
    pub data_errors: Vec<String>,
    /// How many of `errors` are packs no index lists that fail to verify
    /// (damage nothing uses).
    pub unindexed_damaged: usize,
    /// The scrub record written for a data-reading run.
    pub scrub_record: Option<Id>,
}

impl CheckReport {
    /// True if nothing is damaged.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Progress callback: (what, done, total).
pub type ProgressFn<'a> = &'a (dyn Fn(&str, u64, u64) + Sync);

/// Check the repository.
pub fn check(
    repo: &Repository,
    opts: &CheckOptions,
    progress: ProgressFn<'_>,
) -> Result<CheckReport> {
    let mut r = CheckReport::default();
    let b = repo.backend().clone();
    let started = chrono::Local::now();

    for k in b.list(ObjectKind::Key.dir())? {
        let bytes = b.get(&k.name)?;
        let named = ObjectKind::Key.parse_name(&k.name);
        if named != Some(Id::hash_of(&bytes)) {
            r.errors.push(format!(
                "{}: content does not match its name (damaged key file)",
                k.name
            ));
        } else if let Err(e) = KeyFile::parse(&bytes, &k.name) {
            r.errors.push(e.to_string());
        }
    }

    // Forget records (format.md §9.3): damaged ones cannot vouch for the
    // removals they name.
    for e in repo.forget_records()?.1 {
        r.errors.push(format!(
            "{e}; other hosts may take the snapshots it named for deleted by someone without the key"
        ));
    }

    for e in repo.load_index(false)? {
        r.errors.push(format!(
            "{e}; the blobs it lists are unreachable until the index is rebuilt ('ironvault repair index')"
        ));
    }
    let idx = repo.index();
    r.blobs = idx.len();

    // Packs in storage against packs in the index.
    let mut stored: HashMap<Id, (BlobType, u64)> = HashMap::new();
    for t in [BlobType::Data, BlobType::Tree] {
        let kind = ObjectKind::Pack(t);
        for o in b.list(kind.dir())? {
            match kind.parse_name(&o.name) {
                Some(id) => {
                    stored.insert(id, (t, o.size));
                }
                None => r
                    .notices
                    .push(format!("{}: not a pack name; ignored", o.name)),
            }
        }
    }
    r.packs = stored.len();
    let mut bad_copies: HashMap<Id, Vec<String>> = HashMap::new();
    let mut pack_blobs: HashMap<Id, Vec<(Id, BlobLocation)>> = HashMap::new();
    for (id, loc) in idx.iter_all() {
        pack_blobs.entry(loc.pack).or_default().push((*id, *loc));
    }
    for (pid, (t, size)) in idx.packs() {
        let name = pack_name(*t, pid);
        let problem = match stored.get(pid) {
            None => Some("is missing".to_string()),
            Some((st, _)) if st != t => Some("is stored under the wrong type".to_string()),
            Some((_, ss)) if ss != size => Some(format!(
                "has {ss} bytes, the index says {size} (truncated or changed)"
            )),
            _ => None,
        };
        if let Some(p) = problem {
            r.errors.push(format!("pack {name} {p}"));
            for (bid, _) in pack_blobs.get(pid).into_iter().flatten() {
                bad_copy(&mut bad_copies, bid, format!("pack {} {p}", pid.short()));
            }
        }
    }
    let unindexed: Vec<StoredPack> = stored
        .iter()
        .filter(|(p, _)| !idx.packs().contains_key(*p))
        .map(|(p, (t, size))| StoredPack {
            t: *t,
            id: *p,
            size: *size,
            name: pack_name(*t, p),
        })
        .collect();
    let mut unindexed_damage = Vec::new();
    if opts.read_data || opts.subset.is_some() {
        let errors_before = r.errors.len();
        data::read_indexed(
            repo,
            opts,
            &stored,
            &pack_blobs,
            &mut bad_copies,
            &mut r,
            progress,
        );
        // Every byte of every pack: the unindexed ones too (not for a
        // subset, which is drawn from the indexed packs).
        if opts.read_data {
            unindexed_damage = data::read_unindexed(repo, &unindexed, &mut r);
        }
        r.data_errors = r.errors[errors_before..].to_vec();
        r.data_errors.extend(unindexed_damage.iter().cloned());
    }

    // A blob is damaged (and its files affected) once every indexed copy is.
    let bad_blobs: HashMap<Id, String> = bad_copies
        .into_iter()
        .filter(|(id, v)| v.len() >= idx.locations(id).len())
        .map(|(id, v)| (id, v.join("; ")))
        .collect();

    // Snapshots and their trees.
    let mut walker = TreeWalker {
        repo,
        bad_blobs: &bad_blobs,
        memo: HashMap::new(),
        data: HashSet::new(),
    };
    let ids = repo.snapshot_ids()?;
    for (i, sid) in ids.iter().enumerate() {
        progress("snapshots", i as u64, ids.len() as u64);
        let snap = match repo.load_snapshot(sid) {
            Ok(s) => s,
            Err(e) => {
                r.errors.push(format!("snapshot {}: {e}", sid.short()));
                continue;
            }
        };
        r.snapshots += 1;
        let problems = walker.walk(&snap.tree);
        for (path, p) in problems.iter() {
            let shown = if path.is_empty() {
                "/".to_string()
            } else {
                format!("/{}", String::from_utf8_lossy(path))
            };
            r.errors
                .push(format!("snapshot {}: {shown}: {p}", sid.short()));
        }
    }
    r.trees = walker.memo.len();
    if unindexed.len() > unindexed_damage.len() {
        let n = unindexed.len() - unindexed_damage.len();
        let bytes: u64 = unindexed.iter().map(|p| p.size).sum();
        let index_damaged = !r.errors.is_empty();
        r.notices.push(if index_damaged {
            format!(
                "{} ({}) in no index; they may hold what a damaged index file listed: 'ironvault repair index' indexes them again (do not delete them)",
                crate::human::plural(n as u64, "pack"),
                crate::human::bytes(bytes)
            )
        } else {
            format!(
                "{} ({}) in no index yet (written by a backup running now, or left by an interrupted backup or prune: the next backup reuses those that verify, or the next prune deletes them)",
                crate::human::plural(n as u64, "pack"),
                crate::human::bytes(bytes)
            )
        });
    }

    // Damage in packs nothing uses, after the notice about the others
    // (it says nothing about the index).
    r.unindexed_damaged = unindexed_damage.len();
    r.errors.extend(unindexed_damage);

    let unreferenced = idx
        .iter()
        .filter(|(id, l)| match l.blob_type {
            BlobType::Tree => !walker.memo.contains_key(*id),
            BlobType::Data => !walker.data.contains(*id),
        })
        .count();
    if unreferenced > 0 && r.errors.is_empty() {
        r.notices.push(format!(
            "{} not referenced by any snapshot (after a forget, a repair or an interrupted backup; or kept by prune in packs where little is unused: harmless, they only use space; 'ironvault prune --max-unused 0%' removes them all)",
            crate::human::count(unreferenced as u64, "blob is", "blobs are")
        ));
    }

    for (name, info) in crate::repo::lock::list_locks(b.as_ref(), repo.master_key())? {
        match info {
            Some(i) if i.is_stale(&crate::host::hostname()) => r.notices.push(format!(
                "{name}: stale lock of pid {} on {} (harmless; 'ironvault unlock' removes it)",
                i.pid, i.hostname
            )),
            Some(_) => {}
            None => r.notices.push(format!(
                "{name}: unreadable lock (harmless; 'ironvault unlock' removes it)"
            )),
        }
    }
    match repo.deletion_lists() {
        Ok(lists) if !lists.is_empty() => {
            let packs: usize = lists.iter().map(|(_, d)| d.packs.len()).sum();
            r.notices.push(format!(
                "{} {}: a prune is running or was interrupted (harmless: backups store those blobs again; the next 'ironvault prune' finishes the job)",
                if lists.len() == 1 { "a prune deletion list names".to_string() } else { format!("{} prune deletion lists name", lists.len()) },
                crate::human::plural(packs as u64, "pack"),
            ));
        }
        Ok(_) => {}
        Err(e) => r.errors.push(format!("deletion list: {e}")),
    }
    match repo.erasure_requests() {
        Ok(q) if !q.is_empty() => r.notices.push(format!(
            "{} from 'ironvault rewrite' {} open: 'ironvault prune' removes the erased data from storage, and says which kept files still hold any of it",
            crate::human::plural(q.len() as u64, "erasure request"),
            if q.len() == 1 { "is" } else { "are" }
        )),
        Ok(_) => {}
        Err(e) => r.errors.push(format!("erasure request: {e}")),
    }
    if opts.read_data || opts.subset.is_some() {
        // What was read and found, for whoever asks later which packs were
        // verified when (a failed write only costs the record).
        let rec = ScrubRecord {
            time: started.with_timezone(&chrono::Utc).to_rfc3339(),
            hostname: crate::host::hostname(),
            selection: opts
                .subset
                .map(|s| s.describe())
                .unwrap_or_else(|| "all".into()),
            packs: r.packs_read.clone(),
            bytes_read: r.bytes_read,
            errors: r.data_errors.clone(),
        };
        match repo.save_scrub_record(&rec) {
            Ok(id) => r.scrub_record = Some(id),
            Err(e) => r
                .notices
                .push(format!("could not write the scrub record: {e}")),
        }
    }
    Ok(r)
}

/// Record one damaged copy of a blob.
fn bad_copy(bad: &mut HashMap<Id, Vec<String>>, id: &Id, why: String) {
    bad.entry(*id).or_default().push(why);
}

type Problems = Arc<Vec<(Vec<u8>, String)>>;

/// Walks trees once each (memoised by tree id) and lists, per subtree, the
/// relative paths whose data is missing or damaged.
struct TreeWalker<'a> {
    repo: &'a Repository,
    bad_blobs: &'a HashMap<Id, String>,
    memo: HashMap<Id, Problems>,
    /// Every data blob a walked tree references.
    data: HashSet<Id>,
}

impl TreeWalker<'_> {
    fn walk(&mut self, id: &Id) -> Problems {
        if let Some(p) = self.memo.get(id) {
            return p.clone();
        }
        let mut out = Vec::new();
        let idx = self.repo.index();
        match self.repo.read_tree(id) {
            Err(e) => out.push((Vec::new(), format!("directory contents unreadable: {e}"))),
            Ok(tree) => {
                for n in &tree.nodes {
                    match n.node_type {
                        NodeType::Dir => match n.subtree {
                            Some(sub) => {
                                for (p, msg) in self.walk(&sub).iter() {
                                    let mut full = n.name.clone();
                                    if !p.is_empty() {
                                        full.push(b'/');
                                        full.extend_from_slice(p);
                                    }
                                    out.push((full, msg.clone()));
                                }
                            }
                            None => {
                                out.push((n.name.clone(), "directory without a subtree".into()))
                            }
                        },
                        NodeType::File => {
                            let mut sum = 0u64;
                            let mut damaged = false;
                            for bid in n.content.as_deref().unwrap_or(&[]) {
                                self.data.insert(*bid);
                                if let Some(why) = self.bad_blobs.get(bid) {
                                    out.push((
                                        n.name.clone(),
                                        format!("data blob {} damaged: {why}", bid.short()),
                                    ));
                                    damaged = true;
                                    break;
                                }
                                match idx.get(bid) {
                                    Some(l) => sum += l.raw_len as u64,
                                    None => {
                                        out.push((
                                            n.name.clone(),
                                            format!(
                                                "data blob {} is not in any index",
                                                bid.short()
                                            ),
                                        ));
                                        damaged = true;
                                        break;
                                    }
                                }
                            }
                            if !damaged && sum != n.size {
                                out.push((
                                    n.name.clone(),
                                    format!("content is {sum} bytes, the tree says {}", n.size),
                                ));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        let p = Arc::new(out);
        self.memo.insert(*id, p.clone());
        p
    }
}
