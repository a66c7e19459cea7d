//! The contract between the `ironvault` binary and whatever reads it (the
//! agent, scripts, a scheduler): the exit codes (`exit`) and the JSON
//! summaries that `--json` prints (`summary`) and their one time format
//! (`time`). The binary serialises these
//! types and the agent deserialises the same types, so a field renamed on
//! one side cannot silently turn into a missing value on the other.

pub mod exit;
pub mod summary;
pub mod time;

pub use exit::Exit;
