//! ironvault-core: the repository engine. No terminal code lives here.
//!
//! The data path, as the modules are laid out: `backup` walks the source and
//! hands chunks (`chunker`) to the `repo` packer, which seals them (`crypto`)
//! into packs and index files (`format`) on a `backend`; `restore` and
//! `check` read them back, verifying every blob against its keyed id.

pub mod backend;
pub mod backup;
pub mod browse;
pub mod check;
pub mod chunker;
pub mod contract;
pub mod copy;
pub mod crypto;
pub mod error;
pub mod failpoint;
pub mod forget;
pub mod format;
pub(crate) mod fsdir;
pub mod host;
pub mod human;
pub mod interrupt;
pub mod prune;
pub mod repair;
pub mod repo;
pub mod restore;
pub mod rewrite;
pub(crate) mod sync;
pub mod usage;

pub use error::{Error, Result};
