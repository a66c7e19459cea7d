//! Paths as the user gives them, mapped to paths as the snapshot stores them.
//!
//! A snapshot stores each backed-up path under its last component (`/data`
//! for `/srv/www/data`; `data-1` for a second path with the same last
//! component), and records the original paths (`Snapshot::paths`). As in
//! restic, both forms are accepted: a stored path (`/data/app`) and an
//! original absolute path under one of the recorded paths
//! (`/srv/www/data/app`). When a path reads as both and both exist with
//! different meanings, it is refused as ambiguous rather than guessed.

use super::{components, normalize, resolve};
use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::Node;
use crate::repo::Repository;

/// The top-level entries of one snapshot: what was backed up and the name it
/// is stored under.
#[derive(Debug, Clone)]
pub struct Roots {
    /// (original path's components, stored name), for each recorded path
    /// whose stored name the root tree has.
    backed_up: Vec<(Vec<Vec<u8>>, Vec<u8>)>,
    /// The names of the root tree's nodes.
    names: Vec<Vec<u8>>,
}

fn join(comps: &[&[u8]]) -> Vec<u8> {
    comps.iter().flat_map(|c| [&b"/"[..], c].concat()).collect()
}

fn text(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

impl Roots {
    /// The roots of `snap` (reads its root tree).
    pub fn new(repo: &Repository, snap: &Snapshot) -> Result<Roots> {
        let names: Vec<Vec<u8>> = repo
            .read_tree(&snap.tree)?
            .nodes
            .into_iter()
            .map(|n| n.name)
            .collect();
        Ok(Roots::from_parts(&snap.paths, names))
    }

    /// The roots from recorded `paths` (sorted, as a backup records them)
    /// and the root tree's node `names`.
    pub fn from_parts(paths: &[String], names: Vec<Vec<u8>>) -> Roots {
        let abs: Vec<std::path::PathBuf> = paths.iter().map(std::path::PathBuf::from).collect();
        let stored = crate::backup::root_names(&abs);
        let backed_up = paths
            .iter()
            .zip(stored)
            // A backup of "/" keeps its content at the stored paths already.
            .filter(|(_, name)| name.as_slice() != b"/" && names.contains(name))
            .map(|(p, name)| {
                let comps = components(p.as_bytes())
                    .into_iter()
                    .map(<[u8]>::to_vec)
                    .collect();
                (comps, name)
            })
            .collect();
        Roots { backed_up, names }
    }

    /// The stored form of `path` read as an original path: the longest
    /// recorded path it is under, replaced by its stored name.
    fn as_original(&self, comps: &[&[u8]]) -> Option<Vec<u8>> {
        self.backed_up
            .iter()
            .filter(|(orig, _)| {
                orig.len() <= comps.len() && orig.iter().zip(comps).all(|(a, b)| a == b)
            })
            .max_by_key(|(orig, _)| orig.len())
            .map(|(orig, name)| {
                let mut out = b"/".to_vec();
                out.extend_from_slice(name);
                out.extend_from_slice(&join(&comps[orig.len()..]));
                out
            })
    }

    /// The original path of the stored path `comps`, if its top-level name
    /// is one the snapshot records.
    fn original_of(&self, comps: &[&[u8]]) -> Option<Vec<u8>> {
        let first = comps.first()?;
        let (orig, _) = self.backed_up.iter().find(|(_, n)| n == first)?;
        let orig: Vec<&[u8]> = orig.iter().map(Vec::as_slice).collect();
        Some([join(&orig), join(&comps[1..])].concat())
    }

    /// True if `comps` starts with a top-level name of the snapshot (any
    /// name, in a snapshot of "/": its content keeps its own paths).
    fn is_stored(&self, comps: &[&[u8]]) -> bool {
        comps
            .first()
            .is_some_and(|c| self.names.iter().any(|n| n == c || n.as_slice() == b"/"))
    }

    /// What the snapshot holds, for messages: `/data (backed up from /srv/www/data)`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .backed_up
            .iter()
            .map(|(orig, name)| {
                let orig: Vec<&[u8]> = orig.iter().map(Vec::as_slice).collect();
                format!("/{} (backed up from {})", text(name), text(&join(&orig)))
            })
            .collect();
        if parts.is_empty() {
            parts = self
                .names
                .iter()
                .map(|n| match n.as_slice() {
                    b"/" => "/ (backed up from /)".to_string(),
                    n => format!("/{}", text(n)),
                })
                .collect();
        }
        parts.join(", ")
    }

    /// The path `stored` (a snapshot path, `/data-2/app/conf`) was backed
    /// up from (`/srv/www/data/app/conf`), if its top-level name is one the
    /// snapshot records. Include and exclude patterns are matched against
    /// both, as rewrite does, so a pattern written either way selects the
    /// same files, with globs and case-insensitive matching anywhere in it.
    pub fn original_path(&self, stored: &[u8]) -> Option<Vec<u8>> {
        self.original_of(&components(stored))
    }

    /// Refuse an include or exclude pattern that reads two ways with
    /// different results: a stored path of one backed-up path and, read as
    /// an original path, a stored path of another.
    pub fn check_pattern(&self, pattern: &str) -> Result<()> {
        let trimmed = pattern;
        if !trimmed.starts_with('/') {
            return Ok(());
        }
        let comps = components(trimmed.as_bytes());
        let Some(mapped) = self.as_original(&comps) else {
            return Ok(());
        };
        if self.is_stored(&comps) && mapped != normalize(trimmed.as_bytes()) {
            return Err(self.ambiguous(trimmed.as_bytes(), &comps, &mapped));
        }
        Ok(())
    }

    fn ambiguous(&self, given: &[u8], comps: &[&[u8]], mapped: &[u8]) -> Error {
        let orig = self.original_of(comps).unwrap_or_else(|| given.to_vec());
        Error::Usage(format!(
            "{} names two things in this snapshot: the stored path {} (backed up as {}) and the original path of {}; \
             two backed-up paths share names, so write {} for the first or {} for the second",
            text(given),
            text(&normalize(given)),
            text(&orig),
            text(mapped),
            text(&orig),
            text(mapped)
        ))
    }

    /// A stored path that exists and that the user probably meant by
    /// `comps`: the longest tail of it that starts with a top-level name.
    pub fn suggest(
        &self,
        repo: &Repository,
        root: &crate::format::Id,
        comps: &[&[u8]],
    ) -> Option<Vec<u8>> {
        (0..comps.len())
            .filter(|&i| self.is_stored(&comps[i..]))
            .map(|i| join(&comps[i..]))
            .find(|p| matches!(resolve(repo, root, p), Ok(Some(_))))
    }

    /// The error for a path that is not in the snapshot, with a stored path
    /// it probably meant, or else what the snapshot holds.
    fn not_found(
        &self,
        repo: &Repository,
        root: &crate::format::Id,
        given: &[u8],
        comps: &[&[u8]],
    ) -> Error {
        let hint = match self.suggest(repo, root, comps) {
            Some(p) => format!(
                "is not in the snapshot; did you mean {}? (stored paths start at the last component of each backed-up path: {})",
                text(&p),
                self.describe()
            ),
            None => format!(
                "is not in the snapshot, which holds {}; 'ironvault ls' shows what is there",
                self.describe()
            ),
        };
        Error::NotFound {
            what: "path",
            name: text(given),
            hint,
        }
    }
}

/// Find the node at `path` in `snap`, a stored path or an original one.
/// Returns the stored path (normalized, as `ls` prints it; empty for the
/// root) and the node (None for the root).
pub fn resolve_given(
    repo: &Repository,
    snap: &Snapshot,
    path: &[u8],
) -> Result<(Vec<u8>, Option<Node>)> {
    let comps = components(path);
    if comps.is_empty() {
        return Ok((Vec::new(), None));
    }
    let roots = Roots::new(repo, snap)?;
    let stored = roots.is_stored(&comps).then(|| normalize(path));
    let original = roots
        .as_original(&comps)
        .filter(|m| Some(m) != stored.as_ref());
    // Not there (or through a file) in one reading: try the other first.
    let look = |p: &[u8]| match resolve(repo, &snap.tree, p) {
        Ok(n) => Ok(n),
        Err(Error::NotFound { .. } | Error::Usage(_)) => Ok(None),
        Err(e) => Err(e),
    };
    let found_stored = match &stored {
        Some(p) => look(p)?,
        None => None,
    };
    let found_original = match &original {
        Some(p) => look(p)?,
        None => None,
    };
    match (found_stored, found_original) {
        (Some(_), Some(_)) => {
            Err(roots.ambiguous(path, &comps, original.as_deref().unwrap_or_default()))
        }
        (Some(n), None) => Ok((stored.unwrap_or_default(), Some(n))),
        (None, Some(n)) => Ok((original.unwrap_or_default(), Some(n))),
        (None, None) => {
            // A path through a file is a usage error: report it as resolve does.
            for p in [&stored, &original].into_iter().flatten() {
                if let Err(e @ Error::Usage(_)) = resolve(repo, &snap.tree, p) {
                    return Err(e);
                }
            }
            Err(roots.not_found(repo, &snap.tree, path, &comps))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(paths: &[&str], names: &[&str]) -> Roots {
        Roots::from_parts(
            &paths.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            names.iter().map(|n| n.as_bytes().to_vec()).collect(),
        )
    }

    #[test]
    fn original_paths_map_to_stored_ones() {
        let r = roots(
            &["/a/data", "/b/data", "/srv/www/data"],
            &["data", "data-1", "data-2"],
        );
        let m = |p: &str| r.as_original(&components(p.as_bytes())).map(|v| text(&v));
        assert_eq!(
            m("/srv/www/data/app/conf").as_deref(),
            Some("/data-2/app/conf")
        );
        assert_eq!(m("/b/data").as_deref(), Some("/data-1"));
        assert_eq!(m("/a/data/x").as_deref(), Some("/data/x"));
        assert_eq!(m("/srv/www"), None);
        let o = |p: &str| r.original_path(p.as_bytes()).map(|v| text(&v));
        assert_eq!(o("/data-2/app").as_deref(), Some("/srv/www/data/app"));
        assert_eq!(o("/data-1").as_deref(), Some("/b/data"));
        assert_eq!(o("/data/x/y").as_deref(), Some("/a/data/x/y"));
        assert_eq!(o("/other/x"), None);
        assert!(r.check_pattern("/srv/www/data/*/conf").is_ok());
        assert!(r.check_pattern("*.conf").is_ok());
        assert!(r.check_pattern("/data-1/x").is_ok());
    }

    #[test]
    fn a_path_that_reads_both_ways_is_refused() {
        // /srv/data is stored as /data, and /data/app as /app: "/data/app/x"
        // is the stored path of /srv/data/app/x and the original of /app/x.
        let r = roots(&["/data/app", "/srv/data"], &["app", "data"]);
        let e = r.check_pattern("/data/app/x").unwrap_err().to_string();
        assert!(e.contains("/srv/data/app/x") && e.contains("/app/x"), "{e}");
        // The same path in both readings is no ambiguity.
        let r = roots(&["/data"], &["data"]);
        assert!(r.check_pattern("/data/x").is_ok());
    }
}
