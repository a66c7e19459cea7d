//! The end-to-end tests of the `ironvault` binary, as one test binary (as
//! ripgrep does): the shared helpers in `common` are compiled and linked
//! once, not once per file. Each module is one area of the command line;
//! run one with `cargo test -p ironvault --test it -- roundtrip::`.
//!
//! The tests share this process, so none may change process-wide state
//! (environment, current directory, umask, signal dispositions): what a
//! command needs is set on its `Command` (or in `pre_exec`, in the child).
//! The torture run is a binary of its own (tests/torture/main.rs).

mod common;

mod agent;
mod backup_options;
mod browse;
mod cli_basics;
mod compat;
mod crash;
mod doctor;
mod faults;
mod forget;
mod help;
mod hostile_store;
mod keys;
mod locks;
mod messages;
mod object_lock;
mod paths;
mod permissions;
mod plans;
mod plans_s3;
mod plans_secrets;
mod prune;
mod repair_packs;
mod restic_shapes;
mod restore_escape;
mod restore_options;
mod rewrite;
mod rollback;
mod roundtrip;
mod s3;
mod scrub;
mod serve;
mod status;
mod suspect;
