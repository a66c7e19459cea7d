//! Typed errors of the engine. Each variant carries the object or path it is
//! about, so the CLI can print one line saying what happened and what to do.

use std::path::PathBuf;

/// Result alias used across the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("repository {0} does not exist (no config object); create it with 'ironvault init'")]
    RepoMissing(String),
    #[error("a repository already exists at {0}")]
    RepoExists(String),
    /// The repository's location, and how many key files were damaged
    /// (not tried: the password may belong to one of them).
    #[error("wrong password for repository {0} (no key file matched{note})", note = damaged_note(*.1))]
    WrongPassword(String, usize),
    #[error("repository {repo} has no key files; it cannot be opened")]
    NoKeys { repo: String },
    #[error("repository format version {found} is newer than this ironvault supports ({supported}); upgrade ironvault")]
    NewerFormat { found: u32, supported: u32 },
    #[error("{what} is damaged: {detail}")]
    Damaged { what: String, detail: String },
    #[error("blob {0} is not in the index")]
    BlobMissing(String),
    #[error("no snapshot {0} in this repository; 'ironvault snapshots' lists them")]
    SnapshotNotFound(String),
    #[error("the repository has no snapshots yet")]
    NoSnapshots,
    #[error("snapshot id prefix {0} is ambiguous (matches {1}); give more characters")]
    SnapshotAmbiguous(String, String),
    #[error("the repository is locked exclusively by {0}")]
    Locked(String),
    #[error("storage {op} {name}: {source}")]
    Storage {
        op: &'static str,
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("interrupted")]
    Interrupted,
    /// Wrong usage: an argument, option, location or pattern that cannot be
    /// used as given. The binary exits 2, as for its own argument errors.
    #[error("{0}")]
    Usage(String),
    /// Something the user named is not there: `what` says what kind of
    /// thing (a path in a snapshot, a key), `name` is what they gave, `hint`
    /// where to look.
    #[error("{what} {name} {hint}")]
    NotFound {
        what: &'static str,
        name: String,
        hint: String,
    },
    /// The operation cannot go on in the repository's present state (or the
    /// program it depends on failed); the message says why and what to do.
    /// Nothing was lost: each place that returns it stops before deleting.
    #[error("{0}")]
    Failed(String),
    /// A state that should not happen: a worker thread that panicked, an
    /// encoding of our own values that failed, a thread the system would not
    /// start. The binary says so, so that it is reported.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// Shorthand for a damaged object.
    pub fn damaged(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Damaged {
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// Shorthand for an I/O error on a source or target path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// True if the storage is out of space (ENOSPC or EDQUOT) somewhere in the chain.
    pub fn is_no_space(&self) -> bool {
        let code = match self {
            Error::Storage { source, .. } | Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        };
        matches!(code, Some(libc::ENOSPC) | Some(libc::EDQUOT))
    }
}

/// For the wrong-password message: the damaged key files not tried.
pub fn damaged_note(damaged: usize) -> String {
    match damaged {
        0 => String::new(),
        1 => "; 1 damaged key file, named above, was not tried: if the password is right, its key file may be that one".into(),
        n => format!("; {n} damaged key files, named above, were not tried: if the password is right, its key file may be one of them"),
    }
}
