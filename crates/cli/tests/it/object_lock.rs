//! S3 Object Lock against a real server that enforces it (SeaweedFS, started
//! by scripts/s3-lock-server.sh). The raw requests here are made by curl,
//! not by ironvault: what is refused is refused by the server itself.

use crate::common::lock_s3::{bucket_url, header, request, server_now};
use crate::common::*;

fn unique_key(tag: &str) -> String {
    format!(
        "raw/{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// The server refuses, for an object version under COMPLIANCE retention:
/// deleting it by version id (also with the governance bypass header),
/// shortening its retention; an overwrite only adds a version and the locked
/// one still reads back; a delete without version id only hides it behind
/// a delete marker. Extending the retention is allowed.
#[test]
fn server_refuses_to_delete_overwrite_or_shorten_a_compliance_locked_version() {
    let dir = Env::new();
    let key = unique_key("locked");
    let url = format!("{}/{key}", bucket_url());
    let original = dir.path("original");
    write(&original, b"the locked bytes");
    // Retain-until from the server's clock, not ours.
    let until = server_now() + chrono::Duration::days(1);
    let until_s = until.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let (code, answer) = request(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-X",
        "PUT",
        "-T",
        original.to_str().unwrap(),
        "-H",
        "x-amz-object-lock-mode: COMPLIANCE",
        "-H",
        &format!("x-amz-object-lock-retain-until-date: {until_s}"),
        &url,
    ]);
    assert_eq!(code, 200, "{answer}");
    let version = header(&answer, "x-amz-version-id").expect("a versioned bucket");
    let (code, body) = request(&[&format!("{url}?retention=")]);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("<Mode>COMPLIANCE</Mode>") && body.contains(&until_s),
        "retention as written: {body}"
    );

    // Delete by version id: refused by the server.
    let by_version = format!("{url}?versionId={version}");
    let (code, body) = request(&["-X", "DELETE", &by_version]);
    assert_eq!(code, 403, "a locked version is not deleted: {body}");
    assert!(body.contains("AccessDenied"), "{body}");
    let (code, body) = request(&[
        "-X",
        "DELETE",
        "-H",
        "x-amz-bypass-governance-retention: true",
        &by_version,
    ]);
    assert_eq!(code, 403, "no bypass under COMPLIANCE: {body}");

    // Shortening the retention: refused.
    let retention = |until: &str| {
        let p = dir.path("retention.xml");
        write(
            &p,
            format!(
                "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>COMPLIANCE</Mode>\
                 <RetainUntilDate>{until}</RetainUntilDate></Retention>"
            )
            .as_bytes(),
        );
        request(&[
            "-X",
            "PUT",
            "-T",
            p.to_str().unwrap(),
            &format!("{url}?retention="),
        ])
    };
    let sooner = (server_now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let (code, body) = retention(&sooner);
    assert_eq!(code, 403, "retention is not shortened: {body}");
    let (_, body) = request(&[&format!("{url}?retention=")]);
    assert!(body.contains(&until_s), "retention unchanged: {body}");

    // Overwrite: a new version; the locked one still reads back.
    let other = dir.path("other");
    write(&other, b"garbage from an attacker");
    let (code, body) = request(&["-X", "PUT", "-T", other.to_str().unwrap(), &url]);
    assert_eq!(code, 200, "{body}");
    let (code, body) = request(&[&by_version]);
    assert_eq!(code, 200);
    assert_eq!(body, "the locked bytes");

    // Delete without version id: only a delete marker; the version stays.
    let (code, answer) = request(&["-D", "-", "-o", "/dev/null", "-X", "DELETE", &url]);
    assert_eq!(code, 204, "{answer}");
    assert_eq!(
        header(&answer, "x-amz-delete-marker").as_deref(),
        Some("true")
    );
    let (code, _) = request(&[&url]);
    assert_eq!(code, 404, "hidden behind the marker");
    let (code, body) = request(&[&by_version]);
    assert_eq!((code, body.as_str()), (200, "the locked bytes"));

    // Extending is allowed (what the maintenance step does).
    let later = (until + chrono::Duration::days(2))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let (code, body) = retention(&later);
    assert_eq!(code, 200, "{body}");
}

/// `init --object-lock-days N` sets the bucket's default retention (read
/// back from the server), so every object a backup writes (config, keys,
/// packs, indexes, snapshots) is kept N days from its writing by the
/// server's clock: deleting any of them by version id is refused by the
/// server. The repository still works, and the backend reports the lock as
/// read back.
#[test]
fn init_object_lock_days_makes_the_server_keep_every_object() {
    let location = lock_s3::unique_location("init");
    let env = Env::with_repo(&location);
    let src = env.path("src");
    write(&src.join("a.txt"), b"kept by the server");
    write(&src.join("b.bin"), &random_bytes(200_000, 7));
    let (out, _) = lock_s3::expect(&env, &["init", "--object-lock-days", "2"], 0);
    assert!(
        out.contains("Object Lock: the bucket keeps every object written from now on for 2 days (COMPLIANCE)"),
        "{out}"
    );
    let (code, body) = request(&[&format!("{}?object-lock=", bucket_url())]);
    assert_eq!(code, 200);
    assert!(
        body.contains("<Mode>COMPLIANCE</Mode>") && body.contains("<Days>2</Days>"),
        "the bucket's default retention: {body}"
    );
    lock_s3::expect(&env, &["backup", src.to_str().unwrap()], 0);
    let prefix = location
        .split_once(&format!("/{}/", lock_s3::var("IRONVAULT_LOCK_S3_BUCKET")))
        .unwrap()
        .1
        .to_string();
    let keys = lock_s3::keys(&format!("{prefix}/"));
    for kind in ["/config", "/keys/", "/packs/", "/index/", "/snapshots/"] {
        assert!(
            keys.iter().any(|k| k.contains(kind)),
            "a {kind} object in {keys:?}"
        );
    }
    let now = server_now();
    for key in keys.iter().filter(|k| !k.contains("/locks/")) {
        let url = format!("{}/{key}", bucket_url());
        let (code, body) = request(&[&format!("{url}?retention=")]);
        assert_eq!(code, 200, "{key}: {body}");
        assert!(body.contains("<Mode>COMPLIANCE</Mode>"), "{key}: {body}");
        let until = body
            .split("<RetainUntilDate>")
            .nth(1)
            .and_then(|s| s.split('<').next())
            .unwrap();
        let until = chrono::DateTime::parse_from_rfc3339(until).unwrap();
        let left = until.with_timezone(&chrono::Utc) - now;
        assert!(
            left > chrono::Duration::hours(47) && left <= chrono::Duration::hours(48),
            "{key}: retained until {until}, {left} from the server's now"
        );
        let (_, head) = request(&["-D", "-", "-o", "/dev/null", "-I", &url]);
        let version = header(&head, "x-amz-version-id").unwrap();
        let (code, body) = request(&["-X", "DELETE", &format!("{url}?versionId={version}")]);
        assert_eq!(code, 403, "{key} is not deleted: {body}");
    }
    let target = env.path("restore");
    lock_s3::expect(
        &env,
        &["restore", "latest", "--target", target.to_str().unwrap()],
        0,
    );
    assert_eq!(
        std::fs::read(target.join("src/a.txt")).unwrap(),
        b"kept by the server"
    );
}

/// A bucket without Object Lock (Garage): init refuses, says why and what
/// to do, and writes nothing.
#[test]
fn init_object_lock_days_on_a_bucket_without_object_lock_is_refused() {
    let env = Env::with_repo(&crate::common::s3::unique_location("nolock"));
    let o = env
        .cmd(&["init", "--object-lock-days", "2"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("does not have Object Lock enabled") && err.contains("create a new bucket"),
        "{err}"
    );
    let o = env.cmd(&["snapshots"]).output().unwrap();
    assert_ne!(o.status.code(), Some(0), "no repository was created");
}

/// Someone with delete rights deletes objects without a version id (raw
/// requests, not ironvault): on the versioned bucket they are only hidden.
/// `check` says so and names the fix; `repair versions` removes the delete
/// markers and brings them back; restore works again.
#[test]
fn repair_versions_brings_back_objects_hidden_by_delete_markers() {
    let location = lock_s3::unique_location("hidden");
    let env = Env::with_repo(&location);
    let src = env.path("src");
    write(&src.join("a.txt"), b"hidden, not gone");
    write(&src.join("b.bin"), &random_bytes(300_000, 9));
    lock_s3::expect(&env, &["init"], 0);
    lock_s3::expect(&env, &["backup", src.to_str().unwrap()], 0);
    let prefix = location
        .split_once(&format!("/{}/", lock_s3::var("IRONVAULT_LOCK_S3_BUCKET")))
        .unwrap()
        .1
        .to_string();
    let keys = lock_s3::keys(&format!("{prefix}/"));
    let victims: Vec<&String> = keys
        .iter()
        .filter(|k| k.contains("/snapshots/") || k.contains("/packs/") || k.contains("/index/"))
        .collect();
    assert!(victims.len() >= 3, "{keys:?}");
    for k in &victims {
        let (code, body) = request(&["-X", "DELETE", &format!("{}/{k}", bucket_url())]);
        assert_eq!(code, 204, "{k}: {body}");
    }
    let (out, _) = lock_s3::expect(&env, &["snapshots"], 0);
    assert!(!out.contains("src"), "the snapshot is hidden: {out}");

    let o = lock_s3::cmd(&env, &["check"]).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        text.contains(&format!(
            "{} objects hidden behind delete markers",
            victims.len()
        )) && text.contains("run 'ironvault repair versions'"),
        "{text}"
    );
    let (out, _) = lock_s3::expect(&env, &["repair", "versions", "--dry-run"], 0);
    assert!(
        out.contains(&format!("{} objects hidden", victims.len())),
        "{out}"
    );
    assert_eq!(
        lock_s3::keys(&format!("{prefix}/")).len(),
        keys.len() - victims.len()
    );

    let (out, _) = lock_s3::expect(&env, &["repair", "versions"], 0);
    assert!(
        out.contains(&format!("brought back {} objects", victims.len())),
        "{out}"
    );
    assert_eq!(lock_s3::keys(&format!("{prefix}/")), keys);
    let (out, _) = lock_s3::expect(&env, &["check"], 0);
    assert!(!out.contains("hidden"), "{out}");
    let (out, _) = lock_s3::expect(&env, &["repair", "versions"], 0);
    assert!(out.contains("no object is hidden"), "{out}");
    let target = env.path("restore");
    lock_s3::expect(
        &env,
        &["restore", "latest", "--target", target.to_str().unwrap()],
        0,
    );
    assert_eq!(
        std::fs::read(target.join("src/a.txt")).unwrap(),
        b"hidden, not gone"
    );
}

/// forget and prune on a locked repository finish (the server never refuses
/// a delete without version id) and say in one line that the bucket keeps
/// the locked versions; those versions are still in the bucket, the kept
/// snapshot restores and check passes.
#[test]
fn forget_and_prune_finish_on_a_locked_repository_and_say_so() {
    let location = lock_s3::unique_location("prune");
    let env = Env::with_repo(&location);
    let src = env.path("src");
    lock_s3::expect(&env, &["init", "--object-lock-days", "2"], 0);
    write(&src.join("old.bin"), &random_bytes(400_000, 1));
    lock_s3::expect(&env, &["backup", src.to_str().unwrap()], 0);
    std::fs::remove_file(src.join("old.bin")).unwrap();
    write(&src.join("new.txt"), b"the one kept");
    lock_s3::expect(&env, &["backup", src.to_str().unwrap()], 0);
    let prefix = location
        .split_once(&format!("/{}/", lock_s3::var("IRONVAULT_LOCK_S3_BUCKET")))
        .unwrap()
        .1
        .to_string();
    let before = lock_s3::keys(&format!("{prefix}/"));
    let (out, _) = lock_s3::expect(&env, &["forget", "--keep-last", "1", "--prune"], 0);
    assert!(out.contains("removed 1 snapshot"), "{out}");
    assert!(
        out.contains("Object Lock (COMPLIANCE, 2 days): the deleted objects are gone from the repository; the bucket keeps their locked versions"),
        "{out}"
    );
    let after = lock_s3::keys(&format!("{prefix}/"));
    let gone: Vec<&String> = before
        .iter()
        .filter(|k| !after.contains(k) && !k.contains("/locks/"))
        .collect();
    assert!(
        gone.iter().any(|k| k.contains("/snapshots/"))
            && gone.iter().any(|k| k.contains("/packs/")),
        "forget and prune deleted a snapshot and a pack: {gone:?}"
    );
    let (code, versions) = request(&[&format!(
        // curl signs the query as given: parameters in sorted order.
        "{}?prefix={}&versions=",
        bucket_url(),
        format!("{prefix}/").replace('/', "%2F")
    )]);
    assert_eq!(code, 200);
    for k in &gone {
        assert!(
            versions.contains(&format!("<Key>{k}</Key>")),
            "{k}: its locked version stays in the bucket"
        );
    }
    lock_s3::expect(&env, &["check"], 0);
    let target = env.path("restore");
    lock_s3::expect(
        &env,
        &["restore", "latest", "--target", target.to_str().unwrap()],
        0,
    );
    assert_eq!(
        std::fs::read(target.join("src/new.txt")).unwrap(),
        b"the one kept"
    );
}

/// `lock extend --days N` moves every object's retain-until to N days from
/// the server's now (never shorter), needs no repository password, and a
/// second run finds nothing to do.
#[test]
fn lock_extend_keeps_every_object_locked_longer_by_the_servers_clock() {
    let location = lock_s3::unique_location("extend");
    let env = Env::with_repo(&location);
    let src = env.path("src");
    write(&src.join("a.txt"), b"kept longer");
    lock_s3::expect(&env, &["init", "--object-lock-days", "2"], 0);
    lock_s3::expect(&env, &["backup", src.to_str().unwrap()], 0);
    let prefix = location
        .split_once(&format!("/{}/", lock_s3::var("IRONVAULT_LOCK_S3_BUCKET")))
        .unwrap()
        .1
        .to_string();
    let keys: Vec<String> = lock_s3::keys(&format!("{prefix}/"))
        .into_iter()
        .filter(|k| !k.contains("/locks/"))
        .collect();
    let mut extend = lock_s3::cmd(&env, &["lock", "extend", "--days", "5"]);
    extend.env_remove("IRONVAULT_PASSWORD");
    let o = extend.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains(&format!("extended the retention of {} objects", keys.len())),
        "{out}"
    );
    let now = server_now();
    for key in &keys {
        let (code, body) = request(&[&format!("{}/{key}?retention=", bucket_url())]);
        assert_eq!(code, 200, "{key}: {body}");
        let until = body
            .split("<RetainUntilDate>")
            .nth(1)
            .and_then(|s| s.split('<').next())
            .unwrap();
        let left = chrono::DateTime::parse_from_rfc3339(until)
            .unwrap()
            .with_timezone(&chrono::Utc)
            - now;
        assert!(
            left > chrono::Duration::hours(119) && left <= chrono::Duration::hours(120),
            "{key}: retained until {until}, {left} from the server's now"
        );
        assert!(body.contains("<Mode>COMPLIANCE</Mode>"), "{body}");
    }
    let (out, _) = lock_s3::expect(&env, &["lock", "extend", "--days", "3"], 0);
    assert!(
        out.contains("extended the retention of 0 objects")
            && out.contains(&format!("{} objects already", keys.len())),
        "never shortened: {out}"
    );
}
