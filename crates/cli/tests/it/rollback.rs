//! Rollback and replay by someone who can write to the storage but holds no
//! key (format.md §11): the newest snapshot deleted, a forgotten or
//! rewritten (erased) snapshot put back, a superseded index file put back
//! from the middle of the chain. Each is noticed by the host's security
//! record, said on standard error, and `backup` / `restore latest` exit
//! with code 13 until the operator accepts the repository as it is.

use crate::common::s3;
use crate::common::*;
use ironvault_core::backend::s3::S3Options;
use ironvault_core::backend::{open_location, Backend};
use std::path::Path;

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Run, assert the exit code, return stderr.
fn expect_err(env: &Env, args: &[&str], code: i32) -> String {
    let o = env.run(args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "ironvault {args:?}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        stderr_of(&o)
    );
    stderr_of(&o)
}

/// The storage as its attacker sees it: objects, no key.
fn storage(env: &Env) -> Box<dyn Backend> {
    open_location(env.repo.to_str().unwrap(), &S3Options::default()).unwrap()
}

fn snapshot_object(id: &str) -> String {
    format!("snapshots/{id}")
}

/// `n` backups of `src`, its file `f` saying "version 1" to "version n".
fn backup_versions(env: &Env, src: &Path, n: u32) {
    for v in 1..=n {
        write(&src.join("f"), format!("version {v}\n").as_bytes());
        env.ok(&["backup", "-q", src.to_str().unwrap()]);
    }
}

fn restore_latest(env: &Env, what: &str, code: i32) -> (std::path::PathBuf, String) {
    let t = env.path(&format!("restore-{what}"));
    let e = expect_err(
        env,
        &["restore", "latest", "--target", t.to_str().unwrap()],
        code,
    );
    (t, e)
}

/// The newest snapshot deleted from storage: warned by every command,
/// `backup` (which still saves its snapshot) and `restore latest` exit 13
/// until `security accept`; a host that never saw it trusts what is there.
fn newest_snapshot_deleted(env: &Env) {
    let src = env.path("src");
    write(&src.join("f"), b"version 1\n");
    env.init();
    env.ok(&["backup", "-q", src.to_str().unwrap()]);
    write(&src.join("f"), b"version 2\n");
    env.ok(&["backup", "-q", src.to_str().unwrap()]);
    let ids = env.snapshot_ids();
    let b = storage(env);
    b.delete(&snapshot_object(&ids[1])).unwrap();
    let short = &ids[1][..8];

    let e = expect_err(env, &["snapshots", "-q"], 0);
    assert!(e.contains("went back in time") && e.contains(short), "{e}");
    assert_eq!(e.lines().count(), 1, "one line per problem: {e}");
    let (t, e) = restore_latest(env, "1", 13);
    assert!(e.contains("went back in time") && e.contains(short), "{e}");
    assert!(e.lines().last().unwrap().contains("security accept"), "{e}");
    assert_eq!(std::fs::read(t.join("src/f")).unwrap(), b"version 1\n");
    write(&src.join("f"), b"version 3\n");
    let e = expect_err(env, &["backup", "-q", src.to_str().unwrap()], 13);
    assert!(e.contains("went back in time"), "{e}");
    assert!(e.lines().last().unwrap().contains("saved"), "{e}");
    assert_eq!(
        env.snapshot_ids().len(),
        2,
        "the backup still saved its snapshot"
    );
    // Kept until accepted, even now that a newer snapshot is there.
    expect_err(env, &["backup", "-q", src.to_str().unwrap()], 13);
    let e = expect_err(env, &["security", "status"], 13);
    assert!(e.contains(short), "{e}");

    // Another host (its own record) never saw the deleted snapshot.
    let o = env
        .cmd(&["snapshots", "-q"])
        .env("IRONVAULT_STATE_DIR", env.path("other-host"))
        .output()
        .unwrap();
    assert!(
        o.status.success() && stderr_of(&o).is_empty(),
        "{}",
        stderr_of(&o)
    );

    let out = env.ok(&["security", "accept"]);
    assert!(out.contains("1 alarm cleared"), "{out}");
    assert!(expect_err(env, &["backup", "-q", src.to_str().unwrap()], 0).is_empty());
    let (t, e) = restore_latest(env, "2", 0);
    assert!(!e.contains("warning"), "{e}");
    assert_eq!(std::fs::read(t.join("src/f")).unwrap(), b"version 3\n");
}

#[test]
fn deleting_the_newest_snapshot_is_noticed_and_fails_backup_and_restore_latest() {
    newest_snapshot_deleted(&Env::new());
}

#[test]
fn s3_deleting_the_newest_snapshot_is_noticed_and_fails_backup_and_restore_latest() {
    newest_snapshot_deleted(&Env::with_repo(&s3::unique_location("rollback")));
}

#[test]
fn a_forgotten_snapshot_put_back_is_reported_and_never_latest() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"old\n");
    env.init();
    env.ok(&["backup", "-q", src.to_str().unwrap()]);
    write(&src.join("f"), b"bad backup\n");
    env.ok(&["backup", "-q", src.to_str().unwrap()]);
    let ids = env.snapshot_ids();
    let b = storage(&env);
    let saved = b.get(&snapshot_object(&ids[1])).unwrap();
    env.ok(&["forget", "-q", &ids[1]]);
    // Forgotten here: no alarm.
    let e = expect_err(&env, &["snapshots", "-q"], 0);
    assert!(e.is_empty(), "{e}");

    b.put(&snapshot_object(&ids[1]), &saved).unwrap();
    let e = expect_err(&env, &["snapshots", "-q"], 0);
    assert!(
        e.contains(&format!("snapshot {}", &ids[1][..8]))
            && e.contains("was forgotten on this host")
            && e.contains("is back"),
        "{e}"
    );
    let (t, e) = restore_latest(&env, "1", 13);
    assert!(e.contains("is back"), "{e}");
    assert_eq!(
        std::fs::read(t.join("src/f")).unwrap(),
        b"old\n",
        "latest is never the snapshot put back"
    );
    // The operator removes it again: all is well.
    env.ok(&["forget", "-q", &ids[1]]);
    env.ok(&["security", "accept"]);
    restore_latest(&env, "2", 0);
}

#[test]
fn a_rewritten_original_put_back_is_reported_and_never_restored_as_latest() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("keep.txt"), b"keep\n");
    write(&src.join("secret.txt"), b"personal data\n");
    env.init();
    env.ok(&["backup", "-q", src.to_str().unwrap()]);
    let original = env.snapshot_ids()[0].clone();
    let b = storage(&env);
    let saved = b.get(&snapshot_object(&original)).unwrap();
    env.ok(&["rewrite", "-q", "--all", "--exclude", "secret.txt"]);
    assert_ne!(env.snapshot_ids(), vec![original.clone()]);

    // Put back before any prune: its data is still stored.
    b.put(&snapshot_object(&original), &saved).unwrap();
    let (t, e) = restore_latest(&env, "1", 13);
    assert!(
        e.contains(&original[..8]) && e.contains("rewritten") && e.contains("is back"),
        "{e}"
    );
    assert!(t.join("src/keep.txt").exists());
    assert!(
        !t.join("src/secret.txt").exists(),
        "the erased file is not restored"
    );
    // Also not the parent of the next backup, and the warning stays.
    let e = expect_err(&env, &["backup", "-q", src.to_str().unwrap()], 13);
    assert!(e.contains("is back"), "{e}");
}

/// Names and contents of the index files.
fn index_files(repo: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(repo.join("index"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_superseded_index_put_back_from_the_middle_of_the_chain_stays_superseded() {
    let env = Env::new();
    env.init();
    let dirs: Vec<_> = (0..3)
        .map(|i| {
            let d = env.path(&format!("src{i}"));
            write(&d.join("data"), &random_bytes(300_000, 40 + i));
            d
        })
        .collect();
    env.ok(&["backup", "-q", dirs[0].to_str().unwrap()]);
    let first = index_files(&env.repo);
    env.ok(&["backup", "-q", dirs[1].to_str().unwrap()]);
    let ids = env.snapshot_ids();
    // Prune 1 replaces both backups' index files and deletes the packs of
    // the first backup; prune 2 replaces its file in turn.
    env.ok(&["forget", "-q", "--prune", &ids[0]]);
    env.ok(&["backup", "-q", dirs[2].to_str().unwrap()]);
    env.ok(&["forget", "-q", "--prune", &ids[1]]);
    let now = index_files(&env.repo);
    assert_eq!(now.len(), 1, "{now:?}");
    assert!(first.iter().all(|f| !now.contains(f)));

    // The first backup's index file comes back: it lists packs that are gone.
    for (name, bytes) in &first {
        std::fs::write(env.repo.join("index").join(name), bytes).unwrap();
    }
    for state in ["state", "fresh-host"] {
        // With this host's record, and with none (the chain alone).
        let o = env
            .cmd(&["check", "--read-data"])
            .env("IRONVAULT_STATE_DIR", env.path(state))
            .output()
            .unwrap();
        assert!(o.status.success(), "{state}: {}", stderr_of(&o));
        assert!(!stderr_of(&o).contains("warning"), "{}", stderr_of(&o));
    }
    // Prune finds nothing missing, and its new index brings nothing back.
    env.ok(&["prune", "-q"]);
    env.check_ok();
    let (t, _) = restore_latest(&env, "1", 0);
    assert_same_tree(&dirs[2], &t.join("src2"));
}

/// Every removal by a host with the key stores a forget record first
/// (format.md §9.3). Another host's forget, even of a group's newest
/// snapshot, is therefore quiet here; a snapshot deleted from storage
/// without one, even an old one, fails `check` (exit 13) and `backup`.
fn deletion_without_a_forget_record(env: &Env) {
    let src = env.path("src");
    env.init();
    backup_versions(env, &src, 4);
    let ids = env.snapshot_ids();
    env.ok(&["check", "-q"]); // this host has seen all four
    let other = |args: &[&str]| {
        env.cmd(args)
            .env("IRONVAULT_STATE_DIR", env.path("other-host"))
            .output()
            .unwrap()
    };
    // Another host forgets the newest and the oldest by id.
    let o = other(&["forget", &ids[3], &ids[0]]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let forgotten = storage(env).list("forgotten/").unwrap();
    assert_eq!(forgotten.len(), 1, "one forget record per run");
    let e = expect_err(env, &["check", "-q"], 0);
    assert!(
        !e.contains("warning"),
        "a forget elsewhere is no alarm: {e}"
    );

    // Someone with only storage access deletes one that is not the newest.
    storage(env).delete(&snapshot_object(&ids[1])).unwrap();
    let short = &ids[1][..8];
    let e = expect_err(env, &["check"], 13);
    assert!(
        e.contains(short) && e.contains("without a forget record"),
        "{e}"
    );
    assert!(e.lines().last().unwrap().contains("security accept"), "{e}");
    let e = expect_err(env, &["backup", "-q", src.to_str().unwrap()], 13);
    assert!(e.contains(short), "{e}");

    // The snapshots the other host forgot are not among the alarms.
    let e = expect_err(env, &["security", "status"], 13);
    assert!(
        !e.contains(&ids[0][..8]) && !e.contains(&ids[3][..8]),
        "{e}"
    );

    // A damaged forget record is an error of check.
    let b = storage(env);
    let name = &forgotten[0].name;
    let mut bytes = b.get(name).unwrap();
    bytes[30] ^= 1;
    b.put(name, &bytes).unwrap();
    let e = expect_err(env, &["check", "-q"], 1);
    assert!(e.contains(name.as_str()), "{e}");
}

#[test]
fn a_snapshot_deleted_without_a_forget_record_fails_check() {
    deletion_without_a_forget_record(&Env::new());
}

#[test]
fn s3_a_snapshot_deleted_without_a_forget_record_fails_check() {
    deletion_without_a_forget_record(&Env::with_repo(&s3::unique_location("forgetrec")));
}

/// The newest snapshot damaged (or replaced by another object's bytes):
/// `latest` skips it, so the repository looks older; a host that saw it
/// says so and `restore latest` and `backup` exit 13.
#[test]
fn a_damaged_newest_snapshot_is_a_rollback_too() {
    let env = Env::new();
    let src = env.path("src");
    env.init();
    backup_versions(&env, &src, 2);
    let ids = env.snapshot_ids();
    let b = storage(&env);
    let name = snapshot_object(&ids[1]);
    let mut bytes = b.get(&name).unwrap();
    bytes[40] ^= 1;
    b.put(&name, &bytes).unwrap();
    let (t, e) = restore_latest(&env, "1", 13);
    assert!(
        e.contains("cannot be read any more") && e.contains(&ids[1][..8]),
        "{e}"
    );
    assert_eq!(std::fs::read(t.join("src/f")).unwrap(), b"version 1\n");
    let e = expect_err(&env, &["backup", "-q", src.to_str().unwrap()], 13);
    assert!(e.contains(&ids[1][..8]), "{e}");
    // A host that never saw it cannot tell; check names the damage either way.
    expect_err(&env, &["check", "-q"], 1);
}

/// While alarms are kept, prune (alone, or after forget or rewrite) deletes
/// nothing: the packs of snapshots someone deleted may be what the operator
/// needs to recover. A dry run still reports.
#[test]
fn prune_refuses_while_alarms_are_kept() {
    let env = Env::new();
    let src = env.path("src");
    env.init();
    backup_versions(&env, &src, 2);
    let ids = env.snapshot_ids();
    storage(&env).delete(&snapshot_object(&ids[1])).unwrap();
    let packs_before = files_under(&env.repo.join("packs")).len();
    let e = expect_err(&env, &["prune", "--max-unused", "0%"], 13);
    assert!(e.lines().last().unwrap().contains("prune refused"), "{e}");
    let e = expect_err(&env, &["forget", "--keep-last", "1", "--prune"], 13);
    assert!(e.contains("prune refused"), "{e}");
    assert_eq!(files_under(&env.repo.join("packs")).len(), packs_before);
    expect_err(&env, &["prune", "--dry-run"], 0);
    env.ok(&["security", "accept"]);
    env.ok(&["prune", "--max-unused", "0%"]);
    assert!(files_under(&env.repo.join("packs")).len() < packs_before);
}

/// A forgotten snapshot put back does not count toward a --keep policy, so
/// it cannot push out a legitimate snapshot; its forget record names it, so
/// the policy removes it again. On a host that never saw it removed too.
#[test]
fn a_replayed_snapshot_does_not_count_toward_the_policy() {
    let env = Env::new();
    let src = env.path("src");
    env.init();
    backup_versions(&env, &src, 3);
    let ids = env.snapshot_ids();
    let b = storage(&env);
    let saved = b.get(&snapshot_object(&ids[2])).unwrap();
    env.ok(&["forget", "-q", &ids[2]]);
    b.put(&snapshot_object(&ids[2]), &saved).unwrap();
    write(&src.join("f"), b"version 4\n");
    expect_err(&env, &["backup", "-q", src.to_str().unwrap()], 13);
    // A host that never saw the removal (its first contact is now).
    let o = env
        .cmd(&["forget", "--keep-last", "2", "--dry-run"])
        .env("IRONVAULT_STATE_DIR", env.path("other-host"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(
        out.contains(&format!(
            "remove {}  named by a forget record",
            &ids[2][..8]
        )),
        "{out}"
    );
    let out = env.ok(&["forget", "--keep-last", "2"]);
    assert!(out.contains("named by a forget record"), "{out}");
    let left = env.snapshot_ids();
    assert!(
        left.contains(&ids[1]),
        "the legitimate second snapshot is kept"
    );
    assert!(!left.contains(&ids[2]), "the replayed one is removed again");
    assert!(!left.contains(&ids[0]));
    assert_eq!(left.len(), 2);
}

/// Prune's new index file supersedes the old ones: this host remembers that
/// as soon as it is stored, so the old files put back (and the new one
/// deleted) are noticed even if no command loaded the index in between.
#[test]
fn prune_remembers_what_its_index_superseded() {
    let env = Env::new();
    let src = env.path("src");
    env.init();
    backup_versions(&env, &src, 3);
    let old = index_files(&env.repo);
    let ids = env.snapshot_ids();
    env.ok(&["forget", "-q", &ids[0], "--prune", "--max-unused", "0%"]);
    let new = index_files(&env.repo);
    for (n, _) in &new {
        std::fs::remove_file(env.repo.join("index").join(n)).unwrap();
    }
    for (n, bytes) in &old {
        write(&env.repo.join("index").join(n), bytes);
    }
    let o = env.run(&["check", "-q"]);
    let e = stderr_of(&o);
    assert_ne!(o.status.code(), Some(0), "{e}");
    assert!(
        e.contains("is back although an index file that superseded it was seen"),
        "{e}"
    );
}

/// Making the forget records unreadable (a file where their directory is)
/// does not hide a deletion: they are judged as if there were none.
/// Renaming a snapshot to upper-case hex does not either: only the
/// canonical lower-case name is an object.
#[test]
fn unreadable_forget_records_and_renamed_snapshots_hide_nothing() {
    let env = Env::new();
    let src = env.path("src");
    env.init();
    backup_versions(&env, &src, 3);
    let ids = env.snapshot_ids();
    env.ok(&["forget", "-q", &ids[0]]);
    std::fs::remove_dir_all(env.repo.join("forgotten")).unwrap();
    write(&env.repo.join("forgotten"), b"x");
    std::fs::remove_file(env.repo.join("snapshots").join(&ids[2])).unwrap();
    let (_, e) = restore_latest(&env, "1", 13);
    assert!(e.contains(&ids[2][..8]), "{e}");
    expect_err(&env, &["prune"], 13);

    let env = Env::new();
    env.init();
    backup_versions(&env, &src, 2);
    let ids = env.snapshot_ids();
    let dir = env.repo.join("snapshots");
    std::fs::rename(dir.join(&ids[1]), dir.join(ids[1].to_uppercase())).unwrap();
    let (_, e) = restore_latest(&env, "2", 13);
    assert!(
        e.contains(&ids[1][..8]) && e.contains("went back in time"),
        "{e}"
    );
}
