//! Format compatibility: the v1 sample repository committed under
//! tests/fixtures/repo-v1 (written by ironvault 0.1.0) must stay readable by
//! every later build: same snapshot ids, check --read-data passes, and both
//! snapshots restore byte for byte. Never regenerate the fixture to make this
//! pass: a failure here means the format changed.

use crate::common::*;
use std::path::PathBuf;

const OLD: &str = "8f6cb39b7baad414ad84d006b82e0440e9c64d0c6a519360a5911dc70af9f8a7";
const NEW: &str = "9a2d0b1b47ef9f42e87397836a75ee8ced0d3989628581d148444eb528e91f83";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

#[test]
fn v1_sample_repository_still_reads() {
    // A copy: check writes a scrub record, and the committed fixture must
    // never change.
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo-v1");
    copy_tree(&fixtures().join("repo-v1"), &repo);
    let env = Env { dir, repo };
    let run = |args: &[&str]| {
        env.cmd(args)
            .env("IRONVAULT_PASSWORD", "ironvault-v1-fixture")
            .output()
            .unwrap()
    };
    let o = run(&["snapshots", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let snaps = v.as_array().unwrap();
    assert_eq!(snaps.len(), 2);
    assert_eq!(snaps[0]["id"], OLD);
    assert_eq!(snaps[1]["id"], NEW);
    assert_eq!(snaps[0]["time"], "2026-11-26T12:00:00+01:00");
    assert_eq!(snaps[0]["hostname"], "fixture");
    assert_eq!(snaps[0]["tags"], serde_json::json!(["v1"]));
    assert_eq!(snaps[1]["parent"], OLD);

    let o = run(&["check", "--read-data"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let src = fixtures().join("repo-v1-source");
    let r = env.dir.path().join("new");
    let o = run(&["restore", NEW, "--target", r.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let restored = r.join("repo-v1-source");
    for (rel, p) in walk(&src) {
        let q = restored.join(std::str::from_utf8(&rel).unwrap());
        let (mp, mq) = (
            std::fs::symlink_metadata(&p).unwrap(),
            std::fs::symlink_metadata(&q).unwrap(),
        );
        assert_eq!(mp.file_type(), mq.file_type(), "{}", q.display());
        if mp.is_file() {
            assert_eq!(
                std::fs::read(&p).unwrap(),
                std::fs::read(&q).unwrap(),
                "{}",
                q.display()
            );
        }
        if mp.file_type().is_symlink() {
            assert_eq!(
                std::fs::read_link(&p).unwrap(),
                std::fs::read_link(&q).unwrap()
            );
        }
    }
    assert_eq!(walk(&src).len(), walk(&restored).len());

    let r = env.dir.path().join("old");
    let o = run(&["restore", &OLD[..8], "--target", r.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read(r.join("repo-v1-source/docs/deep/file")).unwrap(),
        b"deep\n"
    );
}
