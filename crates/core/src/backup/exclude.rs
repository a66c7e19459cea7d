//! What a backup leaves out: glob patterns (restic's rules: a pattern that
//! starts with `/` matches the whole path, any other matches a trailing part
//! of it, `*` stays within one path component, `**` spans several), marker
//! files (`--exclude-if-present`, CACHEDIR.TAG) and other file systems.

use crate::error::{Error, Result};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::path::Path;

/// The signature a CACHEDIR.TAG file starts with (bford.info/cachedir).
pub const CACHEDIR_TAG_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// Exclusion rules for one backup.
#[derive(Clone, Debug, Default)]
pub struct Excludes {
    set: Option<GlobSet>,
    /// Directories holding one of these file names are left out.
    pub if_present: Vec<String>,
    /// Leave out directories with a valid CACHEDIR.TAG.
    pub caches: bool,
    /// Do not cross into other file systems (mount points are kept, empty).
    pub one_file_system: bool,
    count: usize,
    /// The patterns as given (case-sensitive ones first), in glob order.
    sources: Vec<String>,
}

impl Excludes {
    /// Rules from patterns (`insensitive` ones match without regard to case).
    pub fn new(patterns: &[String], insensitive: &[String]) -> Result<Excludes> {
        let mut b = GlobSetBuilder::new();
        let mut count = 0;
        let mut sources = Vec::new();
        for (list, ci) in [(patterns, false), (insensitive, true)] {
            // Taken literally: a name may start with '#' or end with a
            // space. Exclude files drop comments and blanks as they are read.
            for p in list {
                let p = p.as_str();
                let trimmed = &clean(p)?;
                let g = if trimmed.starts_with('/') {
                    trimmed.to_string()
                } else {
                    format!("**/{trimmed}")
                };
                let glob = GlobBuilder::new(&g)
                    .literal_separator(true)
                    .case_insensitive(ci)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| Error::Usage(format!("exclude pattern {p:?}: {}", e.kind())))?;
                b.add(glob);
                count += 1;
                sources.push(p.to_string());
            }
        }
        let set = b
            .build()
            .map_err(|e| Error::Usage(format!("exclude patterns: {e}")))?;
        Ok(Excludes {
            set: (count > 0).then_some(set),
            count,
            sources,
            ..Default::default()
        })
    }

    /// Read patterns from a file (one per line; blank lines and `#` comments ignored).
    pub fn read_pattern_file(path: &Path) -> Result<Vec<String>> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect())
    }

    /// Number of patterns.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True if there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// True if `path` (absolute) matches a pattern.
    pub fn excludes_path(&self, path: &Path) -> bool {
        self.set.as_ref().is_some_and(|s| s.is_match(path))
    }

    /// True if the snapshot entry at `snap` (`/data/app`), backed up from
    /// `orig` (`/srv/www/data/app`), matches: either path does, or, for a
    /// backed-up path itself (a top-level entry), a directory above `orig`
    /// does (`/srv`, `www`), as it would in a tree that held those
    /// directories.
    pub fn matches_entry(&self, snap: &Path, orig: &Path) -> bool {
        let Some(set) = &self.set else {
            return false;
        };
        set.is_match(snap)
            || set.is_match(orig)
            || (is_top(snap) && orig.ancestors().skip(1).any(|a| set.is_match(a)))
    }

    /// The patterns (as given) that match the entry, as `matches_entry`
    /// judges it.
    pub fn matching_entry(&self, snap: &Path, orig: &Path) -> Vec<&str> {
        let Some(set) = &self.set else {
            return Vec::new();
        };
        let mut hits = set.matches(snap);
        hits.extend(set.matches(orig));
        if is_top(snap) {
            for a in orig.ancestors().skip(1) {
                hits.extend(set.matches(a));
            }
        }
        hits.sort_unstable();
        hits.dedup();
        hits.into_iter().map(|i| self.sources[i].as_str()).collect()
    }

    /// The patterns as given, case-sensitive ones first.
    pub fn patterns(&self) -> &[String] {
        &self.sources
    }

    /// True if the directory `dir`, holding `names`, is to be left out for a marker file.
    pub fn excludes_dir(&self, dir: &Path, names: &[Vec<u8>]) -> bool {
        let has = |n: &str| names.iter().any(|x| x == n.as_bytes());
        if self.if_present.iter().any(|n| has(n)) {
            return true;
        }
        if self.caches && has("CACHEDIR.TAG") {
            let mut head = [0u8; 43];
            if let Ok(mut f) = std::fs::File::open(dir.join("CACHEDIR.TAG")) {
                use std::io::Read;
                return f.read_exact(&mut head).is_ok() && head == CACHEDIR_TAG_SIGNATURE;
            }
        }
        false
    }
}

/// True for a top-level snapshot path (`/data`): a backed-up path.
fn is_top(snap: &Path) -> bool {
    snap.components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .count()
        == 1
}

/// `p` without `.` components, repeated or trailing slashes. Paths are
/// matched as the walker and the snapshot spell them, which have no `.` or
/// `..`: a `..` component would match nothing and leave out nothing without
/// a word, so it is refused.
fn clean(p: &str) -> Result<String> {
    if p.is_empty() {
        return Err(Error::Usage(
            "an empty pattern matches nothing (an unset variable?); give a name or a path".into(),
        ));
    }
    let comps: Vec<&str> = p
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if comps.contains(&"..") {
        return Err(Error::Usage(format!(
            "pattern {p:?} has a '..' component, which never matches (paths are matched as stored, without '..'); write the path it means"
        )));
    }
    if comps.is_empty() && !p.starts_with('/') {
        return Err(Error::Usage(format!(
            "pattern {p:?} names no file; give a name or a path"
        )));
    }
    let lead = if p.starts_with('/') { "/" } else { "" };
    Ok(format!("{lead}{}", comps.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(p: &[&str]) -> Excludes {
        Excludes::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &[]).unwrap()
    }

    #[test]
    fn restic_like_matching() {
        let e = ex(&["*.tmp", "/data/cache", "node_modules", "logs/*.log"]);
        assert!(e.excludes_path(Path::new("/a/b/x.tmp")));
        assert!(!e.excludes_path(Path::new("/a/b/x.tmp.keep")));
        assert!(e.excludes_path(Path::new("/data/cache")));
        assert!(!e.excludes_path(Path::new("/other/data/cache")));
        assert!(e.excludes_path(Path::new("/srv/app/node_modules")));
        assert!(e.excludes_path(Path::new("/var/logs/a.log")));
        assert!(!e.excludes_path(Path::new("/var/logs/sub/a.log")));
        let ci = Excludes::new(&[], &["*.JPG".into()]).unwrap();
        assert!(ci.excludes_path(Path::new("/p/holiday.jpg")));
        assert!(Excludes::new(&["a[".into()], &[]).is_err());
        // "." and repeated slashes are spelling; ".." is refused, not ignored.
        let e = ex(&["/data/./cache//", "./x.tmp"]);
        assert!(e.excludes_path(Path::new("/data/cache")));
        assert!(e.excludes_path(Path::new("/a/x.tmp")));
        let err = Excludes::new(&["/srv/www/../www/data".into()], &[]).unwrap_err();
        assert!(err.to_string().contains("'..'"), "{err}");
        assert!(Excludes::new(&[], &["a/../b".into()]).is_err());
        // Literal: '#' starts a name, spaces belong to it, empty is refused.
        let e = ex(&["#secret", "secret "]);
        assert!(e.excludes_path(Path::new("/d/#secret")));
        assert!(e.excludes_path(Path::new("/d/secret ")));
        assert!(!e.excludes_path(Path::new("/d/secret")));
        assert!(Excludes::new(&["".into()], &[]).is_err());
    }
}
