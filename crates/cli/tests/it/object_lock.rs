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
