//! S3 backend tests; the ones that talk to a server use the Garage that
//! scripts/test.sh starts (IRONVAULT_TEST_S3).

use super::credentials::*;
use super::http::*;
use super::*;

/// A fresh prefix in the test bucket of the real server that
/// scripts/test.sh starts. Without it these tests fail: they never skip.
pub(crate) fn test_location(tag: &str) -> String {
    let base = std::env::var("IRONVAULT_TEST_S3").expect(
        "IRONVAULT_TEST_S3 is not set: run scripts/test.sh, or scripts/s3-server.sh start and source its env file",
    );
    format!("{base}/unit-{tag}-{}", crate::format::Id::random().to_hex())
}

#[test]
fn s3_conformance_multipart_and_long_listings() {
    let opts = S3Options {
        multipart_threshold: 6 << 20,
        part_size: 5 << 20,
        ..S3Options::default()
    };
    let b = S3Backend::open(&test_location("conf"), &opts).unwrap();
    crate::backend::conformance(&b);

    // 13 MiB: three parts.
    let big: Vec<u8> = (0..13u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let before = b.transfer_stats().unwrap();
    b.put("packs/data/00/big", &big).unwrap();
    let after = b.transfer_stats().unwrap();
    assert!(
        after.puts - before.puts >= 5,
        "initiate + 3 parts + complete: {after:?}"
    );
    assert_eq!(b.get("packs/data/00/big").unwrap(), big);
    assert_eq!(
        b.get_range("packs/data/00/big", 12 << 20, 10).unwrap(),
        big[12 << 20..(12 << 20) + 10]
    );
    assert!(after.bytes_sent - before.bytes_sent >= big.len() as u64);

    // Listings page past 1,000 keys.
    let names: Vec<String> = (0..1100).map(|i| format!("index/{i:05}")).collect();
    std::thread::scope(|s| {
        for part in names.chunks(140) {
            let b = &b;
            s.spawn(move || {
                for n in part {
                    b.put(n, b"x").unwrap();
                }
            });
        }
    });
    let l = b.list("index/").unwrap();
    assert_eq!(l.len(), 1100);
    assert_eq!(l[1099].name, "index/01099");
    assert_eq!(
        b.list("index/0105").unwrap().len(),
        10,
        "a partial last component filters"
    );
}

#[test]
fn s3_lock_ages_follow_the_storage_clock() {
    let b = S3Backend::open(&test_location("locks"), &S3Options::default()).unwrap();
    crate::repo::lock::tests::storage_time_rules(Arc::new(b));
}

#[test]
fn s3_through_the_metadata_cache() {
    let d = tempfile::tempdir().unwrap();
    let b = S3Backend::open(&test_location("cache"), &S3Options::default()).unwrap();
    let c = crate::backend::cache::CachedBackend::new(Box::new(b), d.path()).unwrap();
    crate::backend::conformance(&c);
    let tree = vec![3u8; 4096];
    let name = format!("packs/tree/ab/{}", blake3::hash(&tree).to_hex());
    c.put(&name, &tree).unwrap();
    let before = c.transfer_stats().unwrap();
    for _ in 0..5 {
        assert_eq!(c.get_range(&name, 100, 4).unwrap(), vec![3u8; 4]);
    }
    assert_eq!(
        c.transfer_stats().unwrap().gets,
        before.gets,
        "served from the cache"
    );
}

#[test]
fn missing_bucket_and_bad_credentials_say_so() {
    let base = test_location("x");
    let endpoint = base.split('/').take(3).collect::<Vec<_>>().join("/");
    let b = S3Backend::open(
        &format!("{endpoint}/no-such-bucket-here"),
        &S3Options::default(),
    )
    .unwrap();
    let e = b.list("keys/").unwrap_err().to_string();
    assert!(
        e.contains("bucket no-such-bucket-here does not exist"),
        "{e}"
    );
    let env = |k: &str| match k {
        "AWS_ACCESS_KEY_ID" => Some("GK00000000000000000000dead".into()),
        "AWS_SECRET_ACCESS_KEY" => Some("wrong".into()),
        _ => None,
    };
    let b = S3Backend::open_with_env(&base, &S3Options::default(), &env).unwrap();
    let e = b.get("config").unwrap_err().to_string();
    assert!(e.contains("access denied"), "{e}");
}

#[test]
fn virtual_host_addressing_reaches_the_bucket() {
    // The test server answers BUCKET.localhost (root_domain ".localhost").
    let base = test_location("vhost");
    let (_, rest) = base.split_once("//").unwrap();
    let port = rest.split('/').next().unwrap().rsplit(':').next().unwrap();
    let path = rest.split_once('/').unwrap().1;
    let opts = S3Options {
        virtual_host: true,
        ..S3Options::default()
    };
    let b = S3Backend::open(&format!("s3:http://localhost:{port}/{path}"), &opts).unwrap();
    crate::backend::conformance(&b);
    // Path style sees the same objects.
    b.put("index/vh", b"virtual").unwrap();
    let p = S3Backend::open(&base, &S3Options::default()).unwrap();
    assert_eq!(p.get("index/vh").unwrap(), b"virtual");
}

#[test]
fn locations_parse() {
    let l = S3Location::parse("s3:http://127.0.0.1:3900/bkt/a/b/").unwrap();
    assert_eq!(l.endpoint, "http://127.0.0.1:3900");
    assert_eq!(l.bucket, "bkt");
    assert_eq!(l.prefix, "a/b");
    let l = S3Location::parse("s3:https://s3.example.net/bkt").unwrap();
    assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("bkt", ""));
    for bad in [
        "s3:ftp://h/b",
        "s3:http://h",
        "s3:http://h/",
        "s3:http://h/b/pre~fix",
        "s3:http://h/b/a//b",
        "s3:http://h/b/./x",
        "s3:http://h/b%20/x",
        "s3://bucket",
        "http://h/b",
    ] {
        assert!(S3Location::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn credentials_from_env_then_profile_file() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    let config = dir.path().join("config");
    std::fs::write(
        &creds,
        "[default]\naws_access_key_id = D\naws_secret_access_key = DS\n\n[work]\n# comment\naws_access_key_id=W\naws_secret_access_key=WS\naws_session_token = T\n",
    )
    .unwrap();
    std::fs::write(&config, "[profile work]\nregion = eu-west-3\n").unwrap();
    let files = |extra: &'static [(&'static str, &'static str)]| {
        let c = creds.to_string_lossy().to_string();
        let g = config.to_string_lossy().to_string();
        move |k: &str| -> Option<String> {
            match k {
                "AWS_SHARED_CREDENTIALS_FILE" => Some(c.clone()),
                "AWS_CONFIG_FILE" => Some(g.clone()),
                _ => extra
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string()),
            }
        }
    };
    let env = files(&[("AWS_ACCESS_KEY_ID", "E"), ("AWS_SECRET_ACCESS_KEY", "ES")]);
    let c = find_credentials(&env).unwrap();
    assert_eq!((c.key_id.as_str(), c.secret.as_str()), ("E", "ES"));
    let c = find_credentials(&files(&[])).unwrap();
    assert_eq!((c.key_id.as_str(), c.token.as_deref()), ("D", None));
    let c = find_credentials(&files(&[("AWS_PROFILE", "work")])).unwrap();
    assert_eq!(
        (c.key_id.as_str(), c.token.as_deref(), c.region.as_deref()),
        ("W", Some("T"), Some("eu-west-3"))
    );
    let e = find_credentials(&files(&[("AWS_PROFILE", "nope")])).unwrap_err();
    assert!(e.to_string().contains("no S3 credentials"), "{e}");
}

#[test]
fn rate_limit_spaces_reservations() {
    let r = RateLimit::new(Some(1024)).unwrap(); // 1 MiB/s
    let now = Instant::now();
    assert_eq!(r.reserve(0, now), Duration::ZERO);
    assert_eq!(r.reserve(512 << 10, now), Duration::from_millis(500));
    assert_eq!(r.reserve(512 << 10, now), Duration::from_millis(1000));
    // Idle time is not banked: after a pause, the next transfer pays only its own share.
    let later = now + Duration::from_secs(10);
    assert_eq!(r.reserve(1 << 20, later), Duration::from_secs(1));
    assert!(RateLimit::new(None).is_none() && RateLimit::new(Some(0)).is_none());
}

#[test]
fn the_servers_clock_is_read_from_an_http_date() {
    let now = chrono::DateTime::parse_from_rfc3339("2026-12-03T18:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert_eq!(
        skew_from_date("Thu, 03 Dec 2026 18:15:30 GMT", now),
        Some(930)
    );
    assert_eq!(
        skew_from_date("Thu, 03 Dec 2026 17:59:58 GMT", now),
        Some(-2)
    );
    assert_eq!(skew_from_date("yesterday", now), None);
}

#[test]
fn a_server_answer_tells_its_clock() {
    let b = S3Backend::open(&test_location("clock"), &S3Options::default()).unwrap();
    assert_eq!(b.clock_skew(), None, "no answer yet");
    b.list("keys/").unwrap();
    // The test server runs on this host: its clock is ours.
    let skew = b.clock_skew().expect("a Date in the answer");
    assert!(skew.abs() <= 2, "skew {skew}");
}

/// The bucket's Object Lock as read back from the server: SeaweedFS
/// (scripts/s3-lock-server.sh) enforces it, Garage has none.
#[test]
fn immutability_is_what_the_server_reports() {
    let var = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| {
            panic!("{k} is not set: run scripts/test.sh, or scripts/s3-lock-server.sh start and source its env file")
        })
    };
    let env = |k: &str| match k {
        "AWS_ACCESS_KEY_ID" => Some(var("IRONVAULT_LOCK_S3_KEY_ID")),
        "AWS_SECRET_ACCESS_KEY" => Some(var("IRONVAULT_LOCK_S3_SECRET")),
        _ => None,
    };
    let location = format!("{}/unit-imm", var("IRONVAULT_LOCK_S3"));
    let b = S3Backend::open_with_env(&location, &S3Options::default(), &env).unwrap();
    b.set_object_lock("compliance", 2).unwrap();
    assert_eq!(
        b.immutability().unwrap(),
        Some(crate::backend::Immutability::ObjectLock {
            mode: "COMPLIANCE".into(),
            retain_days: 2
        })
    );
    assert!(b.set_object_lock("forever", 2).is_err());

    let g = S3Backend::open(&test_location("imm"), &S3Options::default()).unwrap();
    assert_eq!(g.immutability().unwrap(), None);
    let e = g.set_object_lock("compliance", 2).unwrap_err().to_string();
    assert!(e.contains("does not have Object Lock enabled"), "{e}");
    g.put("index/aa", b"x").unwrap();
    assert_eq!(g.hidden_objects().unwrap(), vec![]);
}
