use super::*;

fn disk(names: &[&str]) -> Place {
    Place::Local {
        medium: Medium::Disk {
            disks: names.iter().map(|s| s.to_string()).collect(),
        },
    }
}

fn not_separate(why: &str) -> Place {
    Place::Local {
        medium: Medium::NotSeparate { why: why.into() },
    }
}

fn object(host: &str, here: bool) -> Place {
    Place::Object {
        host: host.into(),
        on_this_host: here,
        tls: true,
    }
}

fn copy(name: &str, place: Place, site: Option<&str>, age_s: Option<u64>) -> CopyFacts {
    CopyFacts {
        name: name.into(),
        place,
        site: site.map(String::from),
        age: age_s.map(Duration::from_secs),
        unreachable: None,
    }
}

const RPO: Option<Duration> = Some(Duration::from_secs(900));

fn failed(v: &Verdict) -> Vec<&str> {
    v.rules.iter().filter(|r| !r.held).map(|r| r.rule).collect()
}

#[test]
fn two_disks_and_a_remote_bucket_hold_3_2_1() {
    let src = copy("source", disk(&["sda"]), None, None);
    let copies = [
        copy("local", disk(&["sdb"]), Some("dc-houston"), Some(60)),
        copy(
            "cloud",
            object("s3.example.net", false),
            Some("cloud-us-east"),
            Some(300),
        ),
    ];
    let v = three_two_one(&src, &copies, Some("dc-houston"), RPO);
    assert!(v.held, "{v:#?}");
    assert_eq!(v.rules[0].detail, "3 copies: source, local, cloud");
    assert_eq!(
        v.rules[1].detail,
        "3 media: source on disk sda, local on disk sdb, cloud on object storage s3.example.net"
    );
    assert_eq!(v.rules[2].detail, "off-site: cloud");
}

#[test]
fn one_disk_tmpfs_and_loop_are_one_medium() {
    let src = copy("source", disk(&["sda"]), None, None);
    for (place, says) in [
        (
            disk(&["sda"]),
            "local (disk sda) shares a medium with source (disk sda)",
        ),
        (
            not_separate("tmpfs (memory)"),
            "local is on tmpfs (memory), which never counts as a separate medium",
        ),
        (
            not_separate("loop device loop0"),
            "local is on loop device loop0, which never counts",
        ),
    ] {
        let copies = [
            copy("local", place, Some("dc"), Some(10)),
            copy("far", disk(&["sda"]), Some("dr-site"), Some(10)),
        ];
        let v = three_two_one(&src, &copies, Some("dc"), RPO);
        assert_eq!(failed(&v), ["2 media", "1 off-site"], "{v:#?}");
        assert!(v.rules[1].detail.contains(says), "{}", v.rules[1].detail);
        assert!(
            v.rules[1]
                .detail
                .starts_with("1 medium: source on disk sda"),
            "{}",
            v.rules[1].detail
        );
        assert!(v.rules[1].fix.as_ref().unwrap().contains("different disk"));
        assert!(
            v.rules[2].detail.contains(
                "far (disk sda) declares site \"dr-site\" but shares a medium with the source (disk sda)"
            ),
            "a label does not move a disk the source sits on: {}",
            v.rules[2].detail
        );
    }
    // On a disk of its own, a declared other site counts (a SAN volume at the DR site).
    let copies = [
        copy("local", disk(&["sdb"]), Some("dc"), Some(10)),
        copy("far", disk(&["sdc"]), Some("dr-site"), Some(10)),
    ];
    let v = three_two_one(&src, &copies, Some("dc"), RPO);
    assert!(v.held, "{v:#?}");
    assert_eq!(v.rules[2].detail, "off-site: far");
    // LVM over sda+sdb is not separate from sda.
    let copies = [
        copy("lvm", disk(&["sda", "sdb"]), None, Some(1)),
        copy("b", object("s3.example.net", false), None, Some(1)),
    ];
    let v = three_two_one(&src, &copies, None, RPO);
    assert!(
        v.rules[1]
            .detail
            .contains("lvm (disks sda+sdb) shares a medium with source"),
        "{v:#?}"
    );
    assert!(v.rules[1].held, "the bucket is the second medium");
}

#[test]
fn stale_and_unreachable_copies_do_not_count() {
    let src = copy("source", disk(&["sda"]), None, None);
    let mut cloud = copy("cloud", object("s3.example.net", false), None, None);
    cloud.unreachable = Some("connection refused".into());
    let copies = [copy("local", disk(&["sdb"]), None, Some(3600)), cloud];
    let v = three_two_one(&src, &copies, Some("dc"), RPO);
    assert_eq!(failed(&v), ["3 copies", "2 media", "1 off-site"]);
    assert_eq!(
        v.rules[0].detail,
        "1 of 3 copies: source; local's newest snapshot is 1 h old, beyond the RPO of 15 min; cloud is unreachable"
    );
    assert!(v.rules[0].fix.as_ref().unwrap().starts_with("run the plan"));
    // Too few repositories: the fix says to add one.
    let v = three_two_one(
        &src,
        &[copy("local", disk(&["sdb"]), None, Some(1))],
        None,
        RPO,
    );
    assert_eq!(
        v.rules[0].fix.as_deref(),
        Some("add 1 more repository to the plan's copies (e.g. an object-storage bucket)")
    );
}

#[test]
fn object_storage_on_this_host_is_not_off_site_whatever_its_label() {
    let src = copy("source", disk(&["sda"]), None, None);
    let copies = [
        copy("local", disk(&["sdb"]), Some("dc"), Some(1)),
        copy(
            "minio",
            object("127.0.0.1", true),
            Some("cloud-us-east"),
            Some(1),
        ),
    ];
    let v = three_two_one(&src, &copies, Some("dc"), RPO);
    assert_eq!(failed(&v), ["1 off-site"]);
    assert!(
        v.rules[2].detail.contains(
            "minio is object storage on this host (127.0.0.1), whatever its declared site says"
        ),
        "{}",
        v.rules[2].detail
    );
    let v = three_two_one(&src, &copies, None, RPO);
    assert!(v.rules[2]
        .fix
        .as_ref()
        .unwrap()
        .starts_with("declare this host's site"));
}

#[test]
fn the_roadmap_names_the_lowest_step_not_reached() {
    let src = copy("source", disk(&["sda"]), None, None);
    let good = [
        copy("local", disk(&["sdb"]), Some("dc"), Some(30)),
        copy(
            "cloud",
            object("s3.example.net", false),
            Some("cloud"),
            Some(600),
        ),
    ];
    let v = three_two_one(&src, &good, Some("dc"), RPO);
    let f = RoadmapFacts {
        copies: &good,
        rpo: RPO,
        rto: Some(Duration::from_secs(3600)),
        verdict: &v,
        all_encrypted: true,
        extended: &v,
    };
    let r = roadmap(&f);
    assert_eq!(r.reached, [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(r.next.as_ref().unwrap().step, 8);
    // Without objectives: step 2 is next, whatever else holds.
    let f = RoadmapFacts { rpo: None, ..f };
    assert_eq!(roadmap(&f).next.unwrap().step, 2);
    // Plain http to a remote bucket: step 5 is missing and named.
    let plain = [
        copy("local", disk(&["sdb"]), Some("dc"), Some(120)),
        copy(
            "cloud",
            Place::Object {
                host: "s3.example.net".into(),
                on_this_host: false,
                tls: false,
            },
            None,
            Some(600),
        ),
    ];
    let v = three_two_one(&src, &plain, Some("dc"), RPO);
    let r = roadmap(&RoadmapFacts {
        copies: &plain,
        rpo: RPO,
        rto: RPO,
        verdict: &v,
        all_encrypted: true,
        extended: &v,
    });
    assert_eq!(r.reached, [1, 2, 3, 4, 6]);
    let crate::verdict::NextStep { step: n, what } = r.next.unwrap();
    assert_eq!(n, 5);
    assert!(what.contains("cloud (use s3:https://...)"), "{what}");
    // No copy immutable: step 5 is missing, and says how to get there.
    let ext = crate::verdict::three_two_one_one_zero(
        &v,
        &[crate::verdict::CopyProof {
            name: "local".into(),
            ..Default::default()
        }],
    );
    let r = roadmap(&RoadmapFacts {
        copies: &good,
        rpo: RPO,
        rto: RPO,
        verdict: &three_two_one(&src, &good, Some("dc"), RPO),
        all_encrypted: true,
        extended: &ext,
    });
    let n = r.next.unwrap();
    assert_eq!(n.step, 5);
    assert!(n.what.starts_with("make the copies safe from a compromised host (3-2-1-1-0): put one copy where this host cannot delete"), "{}", n.what);
    // Nothing backed up yet.
    let none = [copy("local", disk(&["sdb"]), None, None)];
    let v = three_two_one(&src, &none, None, RPO);
    let r = roadmap(&RoadmapFacts {
        copies: &none,
        rpo: RPO,
        rto: RPO,
        verdict: &v,
        all_encrypted: true,
        extended: &v,
    });
    assert_eq!(r.next.unwrap().step, 1);
}

#[test]
fn a_stream_source_shares_a_medium_with_local_disks_but_not_object_storage() {
    let src = copy("source", Place::Stream, None, None);
    let copies = [copy("local", disk(&["sda"]), None, Some(1))];
    let v = three_two_one(&src, &copies, None, RPO);
    assert!(!v.rules[1].held, "{v:#?}");
    let copies = [
        copy("local", disk(&["sda"]), None, Some(1)),
        copy("cloud", object("s3.example.net", false), None, Some(1)),
    ];
    let v = three_two_one(&src, &copies, None, RPO);
    assert!(v.rules[1].held, "{v:#?}");
    // A disk copy declared elsewhere is not off-site from a command source.
    let copies = [copy("far", disk(&["sdb"]), Some("dr-site"), Some(1))];
    let v = three_two_one(&src, &copies, Some("dc-houston"), RPO);
    assert_eq!(
        v.rules[2].detail,
        "no copy off-site: far (disk sdb) declares site \"dr-site\" but shares a medium with the source (the system the command reads)"
    );
}
