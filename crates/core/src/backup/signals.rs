//! Signs of a mass encryption that a backup sees anyway (format.md §7.2,
//! `Signals`): files changed or gone against the parent, new data that did
//! not compress, extensions renamed, ransom-note-like names. The walker
//! counts the names per directory ([`count_directory`]); the packer counts
//! incompressible bytes; [`judge`] compares them with thresholds and with
//! the plan's usual values (its baseline, which the agent keeps), so the
//! snapshot is written already tagged `suspect`: nothing has to be rewritten
//! or deleted afterwards, which a copy behind an append-only server forbids.

use crate::error::{Error, Result};
use crate::format::snapshot::{Signals, Summary};
use crate::format::tree::{NodeType, Tree};
use std::collections::HashSet;

/// The tag a snapshot judged suspect carries.
pub const SUSPECT_TAG: &str = "suspect";

/// Words that make a new file's name look like a ransom note (lower case,
/// matched anywhere in the name), for notes such as `HOW_TO_DECRYPT.txt`,
/// `README_RESTORE_FILES.html` or `!!!RANSOM_NOTE!!!.txt`.
pub const RANSOM_NOTE_WORDS: &[&str] = &[
    "decrypt",
    "ransom",
    "restore_files",
    "restore-files",
    "recover_files",
    "recover-files",
    "files_encrypted",
    "your_files",
    "how_to_recover",
    "how-to-recover",
];

/// True for a file name that looks like a ransom note.
pub fn is_ransom_note(name: &[u8]) -> bool {
    let lower = String::from_utf8_lossy(name).to_lowercase();
    RANSOM_NOTE_WORDS.iter().any(|w| lower.contains(w))
}

/// A name up to its first dot after the first byte (`report.docx.locked`
/// → `report`; a dot file keeps its leading dot).
fn stem(name: &[u8]) -> &[u8] {
    match name.iter().skip(1).position(|&b| b == b'.') {
        Some(i) => &name[..i + 1],
        None => name,
    }
}

/// What one directory adds to the signals: (files deleted, extensions
/// renamed, ransom notes), from its entries now (`present`: name and
/// whether it is a directory) and the parent snapshot's tree of it.
/// `skipped` says whether a gone name is left out on purpose (excluded).
pub(crate) fn count_directory(
    present: &[(&[u8], bool)],
    parent: Option<&Tree>,
    skipped: impl Fn(&[u8]) -> bool,
) -> (u64, u64, u64) {
    let before: HashSet<&[u8]> = parent
        .map(|t| t.nodes.iter().map(|n| n.name.as_slice()).collect())
        .unwrap_or_default();
    let now: HashSet<&[u8]> = present.iter().map(|(n, _)| *n).collect();
    let gone: Vec<&[u8]> = parent
        .map(|t| {
            t.nodes
                .iter()
                .filter(|n| n.node_type != NodeType::Dir && !now.contains(n.name.as_slice()))
                .map(|n| n.name.as_slice())
                .filter(|n| !skipped(n))
                .collect()
        })
        .unwrap_or_default();
    let gone_stems: HashSet<&[u8]> = gone.iter().map(|n| stem(n)).collect();
    let (mut renamed, mut notes) = (0, 0);
    for (name, is_dir) in present {
        if *is_dir || before.contains(name) {
            continue;
        }
        if parent.is_some() && gone_stems.contains(stem(name)) {
            renamed += 1;
        }
        if is_ransom_note(name) {
            notes += 1;
        }
    }
    (gone.len() as u64, renamed, notes)
}

/// Fewer files in the parent than this, and a backup is not judged: in a
/// tiny tree one edited file is already a large share.
pub const MIN_FILES: u64 = 10;

/// Less new data than this (plain bytes) says nothing about compression.
pub const MIN_DATA: u64 = 64 * 1024;

/// Above which share a signal counts (`backup --suspect-if`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Share of the parent's files changed or gone.
    pub changed: f64,
    /// Share of the new data that did not compress.
    pub incompressible: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            changed: 0.5,
            incompressible: 0.95,
        }
    }
}

/// The plan's usual shares (`backup --suspect-baseline`): medians of its
/// recent backups, as the agent keeps them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Baseline {
    pub changed: f64,
    pub incompressible: f64,
}

/// Parse `changed=X,incompressible=Y` (either may be left out: it keeps
/// `default`'s value); each X and Y a share from 0 to 1.
pub fn parse_shares(flag: &str, text: &str, default: (f64, f64)) -> Result<(f64, f64)> {
    let (mut changed, mut incompressible) = default;
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        let bad = || {
            Error::Usage(format!(
                "{flag}: {part:?} is not KEY=SHARE; expected e.g. changed=0.5,incompressible=0.95 (shares from 0 to 1)"
            ))
        };
        let (k, v) = part.split_once('=').ok_or_else(bad)?;
        let v: f64 = v.trim().parse().map_err(|_| bad())?;
        if !(0.0..=1.0).contains(&v) {
            return Err(bad());
        }
        match k.trim() {
            "changed" => changed = v,
            "incompressible" => incompressible = v,
            _ => return Err(bad()),
        }
    }
    Ok((changed, incompressible))
}

/// Share of the parent's files changed or gone (0 without a parent).
pub fn changed_share(s: &Summary) -> f64 {
    let deleted = s.signals.as_ref().map_or(0, |g| g.files_deleted);
    let before = s.files_changed + s.files_unmodified + deleted;
    if before == 0 {
        return 0.0;
    }
    (s.files_changed + deleted) as f64 / before as f64
}

/// Share of the new data that did not compress (0 when nothing was added).
pub fn incompressible_share(g: &Signals) -> f64 {
    if g.data_added_raw == 0 {
        return 0.0;
    }
    g.data_added_incompressible as f64 / g.data_added_raw as f64
}

/// Why a backup looks like a mass encryption, or None. Suspect when the
/// share of files changed reaches its threshold, something in it is unusual
/// for the plan (the changed share, or the incompressible share, is past
/// its threshold while the plan's baseline is below it), and there is a
/// sign of encryption: new data that did not compress, renamed extensions
/// or a ransom note. A plan whose data never compresses relies on the other
/// two; one that changes most files every day on the incompressible share.
/// A parent of fewer than [`MIN_FILES`] files is not judged, and new data
/// under [`MIN_DATA`] is no sign either way.
pub fn judge(s: &Summary, t: &Thresholds, base: &Baseline) -> Option<String> {
    let g = s.signals.as_ref()?;
    let changed = changed_share(s);
    let incompressible = incompressible_share(g);
    let parent_files = s.files_changed + s.files_unmodified + g.files_deleted;
    if changed < t.changed || parent_files < MIN_FILES {
        return None;
    }
    let enc = incompressible >= t.incompressible && g.data_added_raw >= MIN_DATA;
    let unusual = base.changed < t.changed || (enc && base.incompressible < t.incompressible);
    if !unusual || !(enc || g.extensions_renamed > 0 || g.ransom_notes > 0) {
        return None;
    }
    let mut why = format!(
        "possible mass encryption: {}% of files changed",
        (changed * 100.0).floor()
    );
    if enc {
        why += ", new data incompressible";
    }
    let s = |n: u64| if n == 1 { "" } else { "s" };
    if g.extensions_renamed > 0 {
        let n = g.extensions_renamed;
        why += &format!(", {n} file extension{} renamed", s(n));
    }
    if g.ransom_notes > 0 {
        let n = g.ransom_notes;
        why += &format!(", {n} ransom-note-like file{}", s(n));
    }
    Some(why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tree::test_node;

    fn tree(names: &[&str]) -> Tree {
        Tree {
            nodes: names
                .iter()
                .map(|n| test_node(n.as_bytes(), NodeType::File))
                .collect(),
        }
    }

    #[test]
    fn renamed_extensions_and_notes_are_counted() {
        let parent = tree(&["a.docx", "b.txt", "c.txt", ".profile"]);
        let now: Vec<(&[u8], bool)> = vec![
            (b"a.docx.locked", false),
            (b"b.enc", false),
            (b"c.txt", false),
            (b"HOW_TO_DECRYPT.txt", false),
            (b"new.txt", false),
        ];
        let (gone, renamed, notes) = count_directory(&now, Some(&parent), |_| false);
        assert_eq!((gone, renamed, notes), (3, 2, 1));
        // Without a parent nothing is renamed or gone.
        assert_eq!(count_directory(&now, None, |_| false), (0, 0, 1));
        // An excluded name is not gone.
        let (gone, _, _) = count_directory(&now, Some(&parent), |n| n == b".profile");
        assert_eq!(gone, 2);
    }

    fn summary(changed: u64, unmodified: u64, raw: u64, incompressible: u64) -> Summary {
        Summary {
            files_changed: changed,
            files_unmodified: unmodified,
            signals: Some(Signals {
                data_added_raw: raw,
                data_added_incompressible: incompressible,
                ..Signals::default()
            }),
            ..Summary::default()
        }
    }

    #[test]
    fn judged_against_thresholds_and_baseline() {
        let t = Thresholds::default();
        let quiet = Baseline {
            changed: 0.02,
            incompressible: 0.1,
        };
        let attack = summary(83, 17, 1 << 20, 1 << 20);
        assert_eq!(
            judge(&attack, &t, &quiet).as_deref(),
            Some("possible mass encryption: 83% of files changed, new data incompressible")
        );
        // A normal day: few files changed.
        assert_eq!(judge(&summary(3, 97, 1 << 20, 1 << 20), &t, &quiet), None);
        // Many files changed, but the new data compresses and nothing was renamed.
        assert_eq!(judge(&summary(90, 10, 1 << 20, 1 << 16), &t, &quiet), None);
        // A plan that changes most files daily with compressible data: an
        // incompressible day is unusual.
        let busy = Baseline {
            changed: 0.9,
            incompressible: 0.1,
        };
        assert!(judge(&attack, &t, &busy).is_some());
        // ... and one whose data never compresses is not flagged on that alone.
        let media = Baseline {
            changed: 0.9,
            incompressible: 0.99,
        };
        assert_eq!(judge(&attack, &t, &media), None);
        // Too few files, or too little new data to tell.
        assert_eq!(judge(&summary(1, 1, 1 << 20, 1 << 20), &t, &quiet), None);
        assert_eq!(judge(&summary(83, 17, 15, 15), &t, &quiet), None);
    }

    #[test]
    fn shares_parse() {
        assert_eq!(
            parse_shares("--x", "changed=0.3", (0.5, 0.95)).unwrap(),
            (0.3, 0.95)
        );
        assert!(parse_shares("--x", "changed=3", (0.5, 0.95)).is_err());
        assert!(parse_shares("--x", "other=0.1", (0.5, 0.95)).is_err());
    }
}
