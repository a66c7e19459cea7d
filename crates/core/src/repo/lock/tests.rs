//! Lock tests; `storage_time_rules` also runs on S3 (backend/s3/tests.rs).

use super::*;
use std::path::Path;

/// A lock of another process, as its host would write it.
fn foreign(
    exclusive: bool,
    hostname: &str,
    refreshed: chrono::DateTime<chrono::Local>,
) -> LockInfo {
    LockInfo {
        exclusive,
        hostname: hostname.into(),
        pid: u32::MAX - 1,
        username: "ghost".into(),
        created: refreshed.to_rfc3339(),
        refreshed: refreshed.to_rfc3339(),
        boot_id: boot_id(),
        pid_namespace: pid_namespace(),
        start_ticks: None,
        command: Some("backup".into()),
        age: None,
    }
}

fn put_lock(b: &dyn Backend, key: &[u8; 32], name: &str, info: &LockInfo) {
    b.put(name, &info.seal(key).unwrap()).unwrap();
}

/// Make the storage stamp of a local object `ago` old, as if the storage
/// had not seen it written since.
fn age_object(root: &Path, name: &str, ago: Duration) {
    std::fs::File::options()
        .write(true)
        .open(root.join(name))
        .unwrap()
        .set_modified(SystemTime::now() - ago)
        .unwrap();
}

fn minutes(m: i64) -> chrono::Duration {
    chrono::Duration::minutes(m)
}

#[test]
fn exclusive_and_shared_locks_conflict_and_stale_ones_do_not() {
    let (d, repo) = crate::repo::test_repo();
    let b = repo.backend().clone();
    let key = *repo.master_key();
    // shared locks coexist
    let s1 = Lock::acquire(b.clone(), key, false).unwrap();
    let s2 = Lock::acquire(b.clone(), key, false).unwrap();
    // an exclusive lock waits for them
    assert!(matches!(
        Lock::acquire(b.clone(), key, true),
        Err(Error::Locked(_))
    ));
    s1.release().unwrap();
    s2.release().unwrap();
    assert!(list_locks(b.as_ref(), &key).unwrap().is_empty());
    // and then blocks shared ones
    let x = Lock::acquire(b.clone(), key, true).unwrap();
    assert!(matches!(
        Lock::acquire(b.clone(), key, false),
        Err(Error::Locked(_))
    ));
    // a refused attempt leaves no lock object behind
    assert_eq!(list_locks(b.as_ref(), &key).unwrap().len(), 1);
    drop(x);
    // an exclusive lock of a dead process on this host is stale: it blocks nobody
    let now = chrono::Local::now();
    let mut info = foreign(true, &crate::host::hostname(), now);
    put_lock(b.as_ref(), &key, "locks/ghost", &info);
    assert!(Lock::acquire(b.clone(), key, false).is_ok());
    // ... but the same lock from another host is live until the storage has
    // not seen it written for 30 minutes, whatever its own clock said
    info.hostname = "elsewhere".into();
    info.refreshed = (now - minutes(31)).to_rfc3339();
    put_lock(b.as_ref(), &key, "locks/ghost", &info);
    assert!(matches!(
        Lock::acquire(b.clone(), key, false),
        Err(Error::Locked(_))
    ));
    age_object(
        &d.path().join("repo"),
        "locks/ghost",
        Duration::from_secs(31 * 60),
    );
    assert!(Lock::acquire(b.clone(), key, false).is_ok());
    assert_eq!(
        remove_locks(b.as_ref(), &key, false).unwrap(),
        vec!["locks/ghost".to_string()]
    );
}

/// The rules of storage time that hold on every backend: a lock the
/// storage has just stamped is live whatever its writer's clock said, and
/// the storage's clock agrees with this host's.
pub(crate) fn storage_time_rules(b: Arc<dyn Backend>) {
    let key = [7u8; 32];
    let now = chrono::Local::now();
    // A writer whose clock is 25 minutes slow (and one whose clock is two
    // hours slow), just refreshed: live, so an exclusive lock waits.
    for behind in [25, 120] {
        put_lock(
            b.as_ref(),
            &key,
            "locks/slow",
            &foreign(false, "elsewhere", now - minutes(behind)),
        );
        assert!(
            matches!(Lock::acquire(b.clone(), key, true), Err(Error::Locked(_))),
            "a lock {behind} minutes slow was taken for stale"
        );
        assert!(remove_locks(b.as_ref(), &key, false).unwrap().is_empty());
    }
    // A writer whose clock runs two hours fast: live while it refreshes.
    put_lock(
        b.as_ref(),
        &key,
        "locks/slow",
        &foreign(true, "elsewhere", now + minutes(120)),
    );
    assert!(matches!(
        Lock::acquire(b.clone(), key, false),
        Err(Error::Locked(_))
    ));
    let listed = list_locks_at(b.as_ref(), &key, &probe_clock(b.as_ref(), &key).unwrap()).unwrap();
    assert_eq!(listed.len(), 1, "the probe leaves nothing behind");
    let age = listed[0].1.as_ref().unwrap().age.unwrap();
    assert!(age < Duration::from_secs(120), "{age:?}");
    // This host and the storage agree (the test storage runs here).
    assert!(probe_clock(b.as_ref(), &key)
        .unwrap()
        .check_skew("prune deletes data")
        .is_ok());
    assert_eq!(
        remove_locks(b.as_ref(), &key, true).unwrap(),
        vec!["locks/slow".to_string()]
    );
    // A holder whose lock is removed stops, and never writes it again.
    let l = Lock::acquire(b.clone(), key, false).unwrap();
    l.guard().check().unwrap();
    assert_eq!(
        remove_locks(b.as_ref(), &key, true).unwrap(),
        vec![l.name().to_string()]
    );
    let e = l.guard().check().unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("our lock {} vanished", l.name())),
        "{e}"
    );
    assert!(l.confirm().unwrap_err().to_string().contains("vanished"));
    assert!(l.shared.refresh().is_err());
    assert!(
        list_locks(b.as_ref(), &key).unwrap().is_empty(),
        "recreated"
    );
    l.release().unwrap();
}

#[test]
fn local_lock_ages_follow_the_storage_clock() {
    let d = tempfile::tempdir().unwrap();
    storage_time_rules(Arc::new(crate::backend::local::LocalBackend::new(d.path())));
}

#[test]
fn a_lock_refreshed_in_the_future_still_goes_stale() {
    let (d, repo) = crate::repo::test_repo();
    let b = repo.backend().clone();
    let key = *repo.master_key();
    // A host whose clock ran two hours fast left an exclusive lock and died.
    let info = foreign(true, "elsewhere", chrono::Local::now() + minutes(120));
    put_lock(b.as_ref(), &key, "locks/future", &info);
    assert!(matches!(
        Lock::acquire(b.clone(), key, false),
        Err(Error::Locked(_))
    ));
    // 31 minutes later by the storage's clock it is stale, though its
    // `refreshed` still lies 89 minutes ahead.
    age_object(
        &d.path().join("repo"),
        "locks/future",
        Duration::from_secs(31 * 60),
    );
    assert!(list_locks(b.as_ref(), &key).unwrap()[0]
        .1
        .as_ref()
        .unwrap()
        .is_stale("here"));
    Lock::acquire(b.clone(), key, false)
        .unwrap()
        .release()
        .unwrap();
    assert_eq!(
        remove_locks(b.as_ref(), &key, false).unwrap(),
        vec!["locks/future".to_string()]
    );
    // Read without a storage time, only its own clock is known: two hours
    // ahead is as far off as two hours behind.
    assert!(info.is_stale("here"));
    assert!(!foreign(true, "elsewhere", chrono::Local::now() + minutes(5)).is_stale("here"));
}

#[test]
fn a_replaced_lock_is_not_ours() {
    let (_d, repo) = crate::repo::test_repo();
    let b = repo.backend().clone();
    let key = *repo.master_key();
    let l = Lock::acquire(b.clone(), key, false).unwrap();
    // Someone puts back an older copy of our own lock (a replay).
    let old = b.get(l.name()).unwrap();
    l.confirm().unwrap();
    l.guard().check().unwrap();
    b.put(l.name(), &old).unwrap();
    assert!(l
        .guard()
        .check()
        .unwrap_err()
        .to_string()
        .contains("vanished"));
    // It is left as it is, not overwritten.
    assert!(l.confirm().is_err());
    assert_eq!(b.get(l.name()).unwrap(), old);
}
