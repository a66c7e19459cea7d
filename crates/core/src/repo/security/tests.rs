use super::*;
use crate::backend::Backend;
use crate::crypto::kdf::KdfParams;
use crate::format::index::IndexFile;
use std::sync::{Arc, Mutex as StdMutex};

const PW: &[u8] = b"pw";

/// A repository in a temporary directory, created by "this host".
fn setup() -> (tempfile::TempDir, Arc<dyn Backend>) {
    let d = tempfile::tempdir().unwrap();
    let b: Arc<dyn Backend> = Arc::new(crate::backend::local::LocalBackend::new(
        d.path().join("repo"),
    ));
    let kdf = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let r = Repository::init(b.clone(), PW, kdf, None).unwrap();
    r.attach_security(&d.path().join("state"), true, Box::new(|m| panic!("{m}")))
        .unwrap();
    (d, b)
}

/// Open as a command would, with the record of `state`; warnings collected.
fn open(
    d: &tempfile::TempDir,
    b: &Arc<dyn Backend>,
    state: &str,
) -> (Repository, Findings, Arc<StdMutex<Vec<String>>>) {
    let r = Repository::open(b.clone(), PW).unwrap();
    let warned = Arc::new(StdMutex::new(Vec::new()));
    let w = warned.clone();
    let f = r
        .attach_security(
            &d.path().join(state),
            false,
            Box::new(move |m| w.lock().unwrap().push(m.to_string())),
        )
        .unwrap();
    (r, f, warned)
}

fn snap(host: &str, path: &str, time: &str) -> Snapshot {
    Snapshot {
        version: 1,
        time: time.into(),
        tree: Id([9; 32]),
        paths: vec![path.into()],
        hostname: host.into(),
        username: "root".into(),
        uid: 0,
        gid: 0,
        tags: vec![],
        parent: None,
        program_version: "test".into(),
        summary: None,
    }
}

fn kinds(r: &Repository) -> Vec<AlarmKind> {
    r.security()
        .unwrap()
        .alarms()
        .iter()
        .map(|a| a.kind)
        .collect()
}

#[test]
fn the_newest_snapshot_gone_is_an_alarm_until_accepted() {
    let (d, b) = setup();
    let (r, f, _) = open(&d, &b, "state");
    assert!(!f.first_contact, "this host created it");
    let old = r
        .save_snapshot(&snap("erp01", "/srv", "2026-11-01T10:00:00+01:00"))
        .unwrap();
    let new = r
        .save_snapshot(&snap("erp01", "/srv", "2026-12-01T10:00:00+01:00"))
        .unwrap();
    let other = r
        .save_snapshot(&snap("db1", "/var/db", "2026-12-02T10:00:00Z"))
        .unwrap();
    b.delete(&format!("snapshots/{}", new.to_hex())).unwrap();

    let (r, f, _) = open(&d, &b, "state");
    assert_eq!(f.alarms.len(), 1, "{:?}", f.alarms);
    let m = &f.alarms[0];
    assert!(
        m.contains("went back in time") && m.contains(&new.short()),
        "{m}"
    );
    assert!(m.contains("2026-12-01 10:00 erp01 /srv"), "{m}");
    // Kept: every later open says it again, even after a newer backup.
    r.save_snapshot(&snap("erp01", "/srv", "2026-12-03T10:00:00+01:00"))
        .unwrap();
    let (r, f, _) = open(&d, &b, "state");
    assert_eq!(f.alarms.len(), 1);
    assert_eq!(
        r.find_snapshot("latest").unwrap().1.time,
        "2026-12-03T10:00:00+01:00"
    );
    let a = r.security().unwrap().accept(&r).unwrap();
    assert_eq!(a.alarms_cleared, 1);
    let (_, f, _) = open(&d, &b, "state");
    assert!(f.alarms.is_empty());
    // A host that never saw the deleted snapshot trusts what is there.
    let (r2, f, _) = open(&d, &b, "other-host");
    assert!(f.first_contact && f.alarms.is_empty());
    assert_eq!(r2.security().unwrap().record().seen.len(), 3);
    let _ = (old, other);
}

#[test]
fn an_older_snapshot_gone_is_a_forget_elsewhere_and_its_return_a_replay() {
    let (d, b) = setup();
    let (r, _, _) = open(&d, &b, "state");
    let old = r
        .save_snapshot(&snap("erp01", "/srv", "2026-11-01T10:00:00Z"))
        .unwrap();
    r.save_snapshot(&snap("erp01", "/srv", "2026-12-01T10:00:00Z"))
        .unwrap();
    let name = format!("snapshots/{}", old.to_hex());
    let saved = b.get(&name).unwrap();
    b.delete(&name).unwrap(); // another host's `forget --keep-last 1`
    let (r, f, _) = open(&d, &b, "state");
    assert!(f.alarms.is_empty(), "{:?}", f.alarms);
    assert_eq!(
        r.security().unwrap().record().removal(&old).unwrap().how,
        How::Gone
    );
    b.put(&name, &saved).unwrap();
    let (r, f, _) = open(&d, &b, "state");
    assert_eq!(kinds(&r), vec![AlarmKind::Back]);
    assert!(
        f.alarms[0].contains("is back") && f.alarms[0].contains(&old.short()),
        "{:?}",
        f.alarms
    );
}

#[test]
fn removed_snapshots_that_come_back_are_never_latest() {
    let (d, b) = setup();
    let (r, _, _) = open(&d, &b, "state");
    r.save_snapshot(&snap("erp01", "/srv", "2026-11-01T10:00:00Z"))
        .unwrap();
    let newest = r
        .save_snapshot(&snap("erp01", "/srv", "2026-12-01T10:00:00Z"))
        .unwrap();
    let name = format!("snapshots/{}", newest.to_hex());
    let saved = b.get(&name).unwrap();
    r.remove_snapshots(&[newest], How::Forget, &mut |_| {})
        .unwrap();
    let (r, f, _) = open(&d, &b, "state");
    assert!(f.alarms.is_empty(), "removed by this host: {:?}", f.alarms);
    b.put(&name, &saved).unwrap();
    let (r2, f, _) = open(&d, &b, "state");
    assert_eq!(f.alarms.len(), 1);
    assert!(
        f.alarms[0].contains("forgotten on this host"),
        "{:?}",
        f.alarms
    );
    let (latest, s) = r2.find_snapshot("latest").unwrap();
    assert_ne!(latest, newest);
    assert_eq!(s.time, "2026-11-01T10:00:00Z");
    drop(r);
}

#[test]
fn an_interrupted_removal_is_not_taken_for_a_replay() {
    let (d, b) = setup();
    let (r, _, _) = open(&d, &b, "state");
    let id = r
        .save_snapshot(&snap("erp01", "/srv", "2026-11-01T10:00:00Z"))
        .unwrap();
    // Killed after announcing the removal, before deleting.
    r.security().unwrap().removing(&[id], How::Forget);
    let (r, f, _) = open(&d, &b, "state");
    assert!(f.alarms.is_empty());
    assert!(r.security().unwrap().record().removal(&id).is_none());
    // Killed after deleting, before saying so: a removal, not a rollback.
    r.security().unwrap().removing(&[id], How::Forget);
    b.delete(&format!("snapshots/{}", id.to_hex())).unwrap();
    let (r, f, _) = open(&d, &b, "state");
    assert!(f.alarms.is_empty(), "{:?}", f.alarms);
    assert!(!r.security().unwrap().record().removal(&id).unwrap().pending);
}

#[test]
fn a_swapped_config_is_an_alarm() {
    let (d, b) = setup();
    let cfg = b.get("config").unwrap();
    let mut env: serde_json::Value = serde_json::from_slice(&cfg).unwrap();
    // The same envelope, re-encoded: other bytes, same meaning.
    env["format"] = serde_json::Value::String("ironvault-repository".into());
    let re = serde_json::to_vec_pretty(&env).unwrap();
    assert_ne!(re, cfg);
    b.put("config", &re).unwrap();
    let (r, _, _) = open(&d, &b, "state");
    assert_eq!(kinds(&r), vec![AlarmKind::Config]);
}

#[test]
fn an_index_file_only_the_record_knows_superseded_stays_out_of_force() {
    let (d, b) = setup();
    let (r, _, _) = open(&d, &b, "state");
    let key = *r.master_key();
    let pack = |n: u8| crate::format::index::IndexPack {
        id: Id([n; 32]),
        blob_type: crate::format::BlobType::Data,
        size: 100,
        blobs: vec![crate::format::index::IndexBlob {
            id: Id([n + 100; 32]),
            offset: 0,
            stored_len: 10,
            raw_len: 10,
        }],
    };
    let put = |f: &IndexFile| {
        let bytes = f.seal(&key).unwrap();
        let id = Id::hash_of(&bytes);
        b.put(&format!("index/{}", id.to_hex()), &bytes).unwrap();
        (id, bytes)
    };
    let (a, a_bytes) = put(&IndexFile {
        packs: vec![pack(1)],
        supersedes: vec![],
    });
    let (i1, _) = put(&IndexFile {
        packs: vec![pack(2)],
        supersedes: vec![a],
    });
    r.load_index(false).unwrap();
    assert!(!r.index().packs().contains_key(&Id([1; 32])));
    // Someone deletes both and puts back the old one.
    b.delete(&format!("index/{}", i1.to_hex())).unwrap();
    b.delete(&format!("index/{}", a.to_hex())).unwrap();
    b.put(&format!("index/{}", a.to_hex()), &a_bytes).unwrap();
    let (r, _, warned) = open(&d, &b, "state");
    r.load_index(false).unwrap();
    assert!(
        !r.index().packs().contains_key(&Id([1; 32])),
        "not back in force"
    );
    assert_eq!(kinds(&r), vec![AlarmKind::Index]);
    assert!(warned.lock().unwrap()[0].contains("stays ignored"));
    // A host without the record has nothing to go by.
    let (r2, _, _) = open(&d, &b, "fresh");
    r2.load_index(false).unwrap();
    assert!(r2.index().packs().contains_key(&Id([1; 32])));
    // Accepting the repository as it is takes the file back.
    r.security().unwrap().accept(&r).unwrap();
    let (r, f, _) = open(&d, &b, "state");
    r.load_index(false).unwrap();
    assert!(f.alarms.is_empty() && r.index().packs().contains_key(&Id([1; 32])));
}

#[test]
fn supersedes_lists_inherit_the_chain_newest_first_and_bounded() {
    let (d, b) = setup();
    let (r, _, _) = open(&d, &b, "state");
    let id = |n: u32| {
        let mut x = [0u8; 32];
        x[..4].copy_from_slice(&n.to_le_bytes());
        Id(x)
    };
    let files = vec![
        (
            id(1),
            IndexFile {
                packs: vec![],
                supersedes: vec![id(10), id(11)],
            },
        ),
        (id(2), IndexFile::default()),
    ];
    r.security()
        .unwrap()
        .learn_superseded(vec![id(20), id(21), id(11)]);
    let l = r.supersedes_list(&[id(1), id(2)], &files);
    assert_eq!(l, vec![id(1), id(2), id(10), id(11), id(21), id(20)]);
    let long: Vec<Id> = (100..100 + crate::format::index::MAX_INHERITED_SUPERSEDED as u32 + 50)
        .map(id)
        .collect();
    let files = vec![(
        id(1),
        IndexFile {
            packs: vec![],
            supersedes: long.clone(),
        },
    )];
    let l = r.supersedes_list(&[id(1)], &files);
    assert_eq!(l.len(), 1 + crate::format::index::MAX_INHERITED_SUPERSEDED);
    assert_eq!(l[1], long[0], "the newest inherited ids are kept");
}

/// The facts a command gathers: the record as loaded (`before`), then the listing.
fn facts_of(before: &Record, listing: &[Id]) -> Facts {
    Facts {
        listing: listing.iter().copied().collect(),
        loaded: IdMap::default(),
        seen_before: before.seen.keys().map(|h| h.0).collect(),
        removed_before: before.removed.iter().map(|x| (x.id.0, x.pending)).collect(),
        gone_alarms_before: before
            .alarms
            .iter()
            .filter(|a| matches!(a.kind, AlarmKind::Gone | AlarmKind::Deleted))
            .filter_map(|a| a.id.map(|h| h.0))
            .collect(),
        erased: IdSet::default(),
        forgotten: IdSet::default(),
        forget_records_exist: false,
        config: Id([1; 32]),
        location: "/repo".into(),
        created: false,
    }
}

fn record_with(seen: &[(Id, &str)]) -> Record {
    let mut r = Record::new(Id([7; 32]), &Id([1; 32]), "/repo");
    for (id, time) in seen {
        r.note_seen(*id, time, group_of(&snap("erp01", "/srv", time)));
    }
    r
}

#[test]
fn a_removal_recorded_after_the_listing_is_not_a_replay() {
    // A backup loads the record and lists the snapshots (X is there); a
    // forget of this host then deletes X and records it, before the backup
    // updates the record with its (now stale) listing.
    let x = Id([2; 32]);
    let newer = Id([3; 32]);
    let before = record_with(&[(x, "2026-12-01T10:00:00Z"), (newer, "2026-12-02T10:00:00Z")]);
    let facts = facts_of(&before, &[x, newer]);
    for how in [How::Forget, How::Gone] {
        let mut now = before.clone();
        now.note_removed(x, how, false);
        now.seen.remove(&HexId(x));
        compare(&mut now, &facts);
        assert!(now.alarms.is_empty(), "{how:?}: {:?}", now.alarms);
        assert!(now.removal(&x).is_some(), "{how:?}: the removal is kept");
    }
    // Announced (pending) after the listing: neither a replay nor dropped.
    let mut now = before.clone();
    now.note_removed(x, How::Forget, true);
    compare(&mut now, &facts);
    assert!(now.alarms.is_empty(), "{:?}", now.alarms);
    assert!(now.removal(&x).unwrap().pending, "left to the forget");
    // Known removed before the listing, and listed: still a replay.
    let mut before2 = before.clone();
    before2.note_removed(x, How::Forget, false);
    before2.seen.remove(&HexId(x));
    let mut now = before2.clone();
    compare(&mut now, &facts_of(&before2, &[x, newer]));
    assert_eq!(
        now.alarms.iter().map(|a| a.kind).collect::<Vec<_>>(),
        vec![AlarmKind::Back]
    );
}

#[test]
fn a_stale_listing_does_not_clear_a_newer_alarm() {
    // Another command of this host saw the newest snapshot gone after our
    // listing (which still shows it) was taken: the alarm stays.
    let x = Id([2; 32]);
    let before = record_with(&[(x, "2026-12-01T10:00:00Z")]);
    let facts = facts_of(&before, &[x]);
    let mut now = before.clone();
    now.seen.remove(&HexId(x));
    now.raise(Alarm {
        kind: AlarmKind::Gone,
        id: Some(HexId(x)),
        snapshot: None,
        how: None,
        removed: None,
        noticed: "2026-12-03T10:00:00Z".into(),
    });
    compare(&mut now, &facts);
    assert_eq!(now.alarms.len(), 1, "{:?}", now.alarms);
    // Raised before the listing, and the snapshot is back: nothing is lost.
    let mut now2 = now.clone();
    compare(&mut now2, &facts_of(&now, &[x]));
    assert!(now2.alarms.is_empty(), "{:?}", now2.alarms);
}

#[test]
fn a_snapshot_written_again_is_no_replay_even_if_the_write_was_not_confirmed() {
    // This host forgot a snapshot, then writes the same snapshot again (a
    // copy from a related repository); the put lands but the answer is lost.
    let (d, b) = setup();
    let (r, _, _) = open(&d, &b, "state");
    let s = snap("erp01", "/srv", "2026-11-01T10:00:00Z");
    let id = r.save_snapshot(&s).unwrap();
    let name = format!("snapshots/{}", id.to_hex());
    let stored = b.get(&name).unwrap();
    r.remove_snapshots(&[id], How::Forget, &mut |_| {}).unwrap();
    r.security().unwrap().writing(&id);
    b.put(&name, &stored).unwrap();
    let (_, f, _) = open(&d, &b, "state");
    assert!(f.alarms.is_empty(), "{:?}", f.alarms);
}
