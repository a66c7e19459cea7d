//! `ironvault status`: RPO held from the real repositories, 3-2-1 verdicts
//! from injected device facts (IRONVAULT_FACTS_ROOT: a fake mount table and
//! sysfs), the roadmap step, and exit codes.

use crate::common::plans::*;
use crate::common::*;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// A fake /proc and /sys: disks sda and sdb with partitions, loop0; mounts added per test.
struct Facts {
    root: PathBuf,
    mountinfo: String,
}

impl Facts {
    fn new(dir: &Path) -> Facts {
        let root = dir.join("facts");
        for d in ["proc/self", "sys/dev/block", "sys/class/block"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let f = Facts {
            root,
            mountinfo: String::new(),
        };
        for (path, dev, part) in [
            ("pci0/ata1/block/sda", "8:0", false),
            ("pci0/ata1/block/sda/sda1", "8:1", true),
            ("pci0/ata1/block/sda/sda2", "8:2", true),
            ("pci0/ata2/block/sdb", "8:16", false),
            ("pci0/ata2/block/sdb/sdb1", "8:17", true),
            ("virtual/block/loop0", "7:0", false),
        ] {
            let d = f.root.join("sys/devices").join(path);
            std::fs::create_dir_all(&d).unwrap();
            if part {
                std::fs::write(d.join("partition"), "1\n").unwrap();
            }
            symlink(
                format!("../../devices/{path}"),
                f.root.join("sys/dev/block").join(dev),
            )
            .unwrap();
        }
        f
    }

    /// Mount `dir` as MAJ:MIN with this fstype; returns self for chaining.
    fn mount(&mut self, dir: &Path, dev: &str, fstype: &str, source: &str) -> &mut Facts {
        std::fs::create_dir_all(dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        let id = 20 + self.mountinfo.lines().count();
        self.mountinfo.push_str(&format!(
            "{id} 1 {dev} / {} rw,relatime - {fstype} {source} rw\n",
            dir.display()
        ));
        std::fs::write(self.root.join("proc/self/mountinfo"), &self.mountinfo).unwrap();
        self
    }
}

fn status(p: &Plans, facts: &Facts, code: i32) -> serde_json::Value {
    let o = p
        .cmd(&["status", "--json"])
        .env("IRONVAULT_FACTS_ROOT", &facts.root)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(&String::from_utf8_lossy(&o.stdout)).unwrap()
}

fn rules(v: &serde_json::Value) -> Vec<(String, bool, String)> {
    v["plans"][0]["three_two_one"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap().to_string(),
                r["held"].as_bool().unwrap(),
                r["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A plan over `src` with copies local and second, run once.
fn setup() -> (Plans, PathBuf) {
    let p = Plans::new("");
    let src = p.env.path("src");
    write(&src.join("a.txt"), b"data\n");
    p.replace("listen = \"off\"", "listen = \"off\"\nsite = \"dc1\"");
    p.add(&format!(
        "[plan.files]\npaths = [\"{}\"]\ncopies = [\"local\", \"second\"]\nrpo = \"1h\"\nrto = \"1h\"\n",
        src.display()
    ));
    p.expect(&["run", "files"], 0);
    (p, src)
}

#[test]
fn verdicts_follow_the_device_facts_two_disks_one_disk_tmpfs_and_loop() {
    let (p, src) = setup();
    let (local, second) = (p.env.repo.clone(), p.env.path("second"));

    // Source on sda, local on sdb, second on tmpfs: two media, no off-site copy.
    let mut f = Facts::new(p.env.dir.path());
    f.mount(&src, "8:1", "ext4", "/dev/sda1")
        .mount(&local, "8:17", "ext4", "/dev/sdb1")
        .mount(&second, "0:40", "tmpfs", "tmpfs");
    let v = status(&p, &f, 2);
    let r = rules(&v);
    assert!(r[0].1, "{r:?}");
    assert!(r[1].1, "{r:?}");
    assert!(r[1].2.starts_with("2 media: source on disk sda, local on disk sdb; second is on tmpfs (memory), which never counts"), "{r:?}");
    assert!(!r[2].1, "{r:?}");
    assert_eq!(v["plans"][0]["roadmap"]["next"]["step"], 3);
    assert!(v["plans"][0]["missed"][0]
        .as_str()
        .unwrap()
        .contains("3-2-1 does not hold: no copy off-site"));

    // Local on the same disk as the source (another partition), second on a loop device.
    let mut f = Facts::new(&p.env.path("f2"));
    f.mount(&src, "8:1", "ext4", "/dev/sda1")
        .mount(&local, "8:2", "ext4", "/dev/sda2")
        .mount(&second, "7:0", "ext4", "/dev/loop0");
    let r = rules(&status(&p, &f, 2));
    assert!(!r[1].1, "{r:?}");
    assert!(
        r[1].2
            .contains("local (disk sda) shares a medium with source (disk sda)"),
        "{r:?}"
    );
    assert!(r[1].2.contains("second is on loop device loop0"), "{r:?}");

    // Second on sdb and declared at another site: 3-2-1 holds, and every objective.
    p.replace(
        "[repository.second]\n",
        "[repository.second]\nsite = \"dr\"\n",
    );
    let mut f = Facts::new(&p.env.path("f3"));
    f.mount(&src, "8:1", "ext4", "/dev/sda1")
        .mount(&local, "8:1", "ext4", "/dev/sda1")
        .mount(&second, "8:17", "ext4", "/dev/sdb1");
    let v = status(&p, &f, 0);
    let r = rules(&v);
    assert!(r.iter().all(|r| r.1), "{r:?}");
    assert_eq!(r[2].2, "off-site: second");
    assert_eq!(v["objectives_held"], true);
    let reached: Vec<u64> = v["plans"][0]["roadmap"]["reached"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    // Step 7 (RPO held within 60 s) is reached too while the snapshot is that fresh.
    assert_eq!(reached[..4], [1, 2, 3, 4], "{reached:?}");
    assert!(
        !reached.contains(&5),
        "no copy immutable, none drilled: {reached:?}"
    );
    assert!(!reached.contains(&6), "no object storage copy: {reached:?}");
    assert_eq!(v["plans"][0]["roadmap"]["next"]["step"], 5);
    assert!(v["plans"][0]["notes"][0]
        .as_str()
        .unwrap()
        .contains("RTO has not been measured"));

    // The long text screen says the same.
    let o = p
        .cmd(&["status", "--long"])
        .env("IRONVAULT_FACTS_ROOT", &f.root)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("plan files (RPO 1 h, RTO 1 h): all objectives held"),
        "{out}"
    );
    assert!(out.contains("3-2-1: held"), "{out}");
    assert!(
        out.contains("roadmap: step 4 reached; next: step 5: make the copies safe from a compromised host (3-2-1-1-0): put one copy where this host cannot delete"),
        "{out}"
    );
}

#[test]
fn the_rpo_held_is_the_age_of_the_newest_snapshot_on_each_copy() {
    let (p, _src) = setup();
    let f = Facts::new(p.env.dir.path());
    let v = status(&p, &f, 2);
    let copies = v["plans"][0]["copies"].as_array().unwrap().clone();
    let local = p.snapshots("local");
    assert_eq!(copies[0]["newest_snapshot"], local[0]["id"]);
    assert!(copies[0]["age_seconds"].as_u64().unwrap() < 600);
    assert_eq!(copies[0]["rpo_met"], true);
    assert_eq!(copies[1]["rpo_met"], true);
    // A tight RPO and some waiting: missed, exit 2, said per copy.
    p.replace("rpo = \"1h\"", "rpo = \"2s\"");
    // Time passing is what is tested: the last backup grows older than the RPO.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let v = status(&p, &f, 2);
    let missed: Vec<String> = v["plans"][0]["missed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    assert!(
        missed[0].starts_with("RPO missed on local: newest snapshot"),
        "{missed:?}"
    );
    assert!(missed[1].starts_with("RPO missed on second"), "{missed:?}");
    // An unreachable copy is a miss, named.
    std::fs::rename(p.env.path("second"), p.env.path("gone")).unwrap();
    p.replace("rpo = \"2s\"", "rpo = \"1h\"");
    let v = status(&p, &f, 2);
    let c = &v["plans"][0]["copies"][1];
    assert!(
        c["unreachable"]
            .as_str()
            .unwrap()
            .contains("cannot list snapshots of second"),
        "{c}"
    );
    // Said once, with its copy; the other mentions only name it.
    assert_eq!(v["plans"][0]["missed"][0], "second is unreachable");
    let (out, _) = p.expect(&["status"], 2);
    assert_eq!(
        out.matches("cannot list snapshots of second").count(),
        1,
        "{out}"
    );
    // A broken config is an error: exit 1.
    p.replace("rpo = \"1h\"", "rpo = \"soon\"");
    let o = p.run(&["status"]);
    assert_eq!(o.status.code(), Some(1));
}

/// The rules 3-2-1-1-0 adds: (rule, held, detail, fix).
fn extra(v: &serde_json::Value) -> Vec<(String, bool, String, Option<String>)> {
    v["plans"][0]["three_two_one_one_zero"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .skip(3)
        .map(|r| {
            (
                r["rule"].as_str().unwrap().to_string(),
                r["held"].as_bool().unwrap(),
                r["detail"].as_str().unwrap().to_string(),
                r["fix"].as_str().map(String::from),
            )
        })
        .collect()
}

#[test]
fn three_two_one_one_zero_needs_an_immutable_copy_read_back_and_a_clean_drill() {
    let (p, src) = setup();
    let (local, second) = (p.env.repo.clone(), p.env.path("second"));
    p.replace(
        "[repository.second]\n",
        "[repository.second]\nsite = \"dr\"\n",
    );
    p.replace(
        "rto = \"1h\"\n",
        "rto = \"1h\"\ndrill = { copy = \"second\" }\n",
    );
    // 3-2-1 holds: source and local on sda, second on sdb at another site.
    let mut f = Facts::new(p.env.dir.path());
    f.mount(&src, "8:1", "ext4", "/dev/sda1")
        .mount(&local, "8:1", "ext4", "/dev/sda1")
        .mount(&second, "8:17", "ext4", "/dev/sdb1");
    let v = status(&p, &f, 0);
    assert_eq!(v["plans"][0]["three_two_one"]["held"], true);
    assert_eq!(v["plans"][0]["three_two_one_one_zero"]["held"], false);
    let x = extra(&v);
    assert_eq!((x[0].0.as_str(), x[0].1), ("1 immutable", false), "{x:?}");
    assert!(
        x[0].2
            .starts_with("no copy is immutable or offline: this host can delete local, second"),
        "{x:?}"
    );
    assert!(
        x[0].3
            .as_deref()
            .unwrap()
            .contains("append-only repository server"),
        "{x:?}"
    );
    assert_eq!((x[1].0.as_str(), x[1].1), ("0 errors", false), "{x:?}");
    assert!(x[1].2.starts_with("no copy has been drilled"), "{x:?}");
    assert!(
        x[1].3.as_deref().unwrap().contains("ironvault drill files"),
        "{x:?}"
    );
    let o = p
        .cmd(&["status"])
        .env("IRONVAULT_FACTS_ROOT", &f.root)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("3-2-1: held"), "{out}");
    assert!(
        out.contains(
            "3-2-1-1-0: NOT HELD (no copy immutable or offline, no clean drill, or errors)"
        ),
        "{out}"
    );

    // second's storage now answers as an append-only server (test-only
    // failpoint in the local backend): the next run's copy reads it back.
    std::fs::write(second.join("failpoint-append-only"), "append\n").unwrap();
    write(&src.join("b.txt"), b"more\n");
    p.expect(&["run", "files"], 0);
    p.expect(&["drill", "files"], 0);
    let v = status(&p, &f, 0);
    let x = extra(&v);
    assert!(x[0].1, "{x:?}");
    assert!(
        x[0].2
            .starts_with("immutable: second (append-only server (role append), read back "),
        "{x:?}"
    );
    assert!(x[1].1, "{x:?}");
    assert!(
        x[1].2.starts_with("0 errors: second drilled clean "),
        "{x:?}"
    );
    assert!(x[1].2.ends_with("; not drilled yet: local"), "{x:?}");
    assert_eq!(v["plans"][0]["three_two_one_one_zero"]["held"], true);
    let reached: Vec<u64> = v["plans"][0]["roadmap"]["reached"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert!(reached.contains(&5), "{reached:?}");
    let o = p
        .cmd(&["status", "--long"])
        .env("IRONVAULT_FACTS_ROOT", &f.root)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("  3-2-1-1-0: held\n    ok   immutable: second"),
        "{out}"
    );

    // The fact is only what was read back: once the server lets this host
    // delete again, the next write says so.
    std::fs::remove_file(second.join("failpoint-append-only")).unwrap();
    write(&src.join("c.txt"), b"more\n");
    p.expect(&["run", "files"], 0);
    let x = extra(&status(&p, &f, 0));
    assert!(!x[0].1, "{x:?}");

    // A drill that finds damage: zero errors no longer holds.
    let packs = files_under(&second.join("packs"));
    assert!(!packs.is_empty());
    for pack in packs {
        std::fs::remove_file(pack).unwrap();
    }
    p.expect(&["drill", "files"], 1);
    let v = status(&p, &f, 2);
    let x = extra(&v);
    assert!(!x[1].1, "{x:?}");
    assert!(x[1].2.starts_with("the drill from second on "), "{x:?}");
    assert!(
        x[1].3
            .as_deref()
            .unwrap()
            .contains("ironvault history files"),
        "{x:?}"
    );
}
