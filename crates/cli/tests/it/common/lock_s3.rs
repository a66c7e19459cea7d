//! The S3 server that enforces Object Lock (SeaweedFS, started by
//! scripts/s3-lock-server.sh) and raw requests to it made with curl's own
//! SigV4 signing: an independent client, so what the server refuses is
//! refused by the server, not by ironvault.

use std::process::{Command, Output};

/// A variable of the lock server's env file; fails loudly when the server is
/// not running: these tests never skip.
pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: Object Lock tests need the SeaweedFS server; run scripts/test.sh, \
             or scripts/s3-lock-server.sh start and source the file 'scripts/s3-lock-server.sh env' prints"
        )
    })
}

/// http://HOST:PORT/BUCKET of the locked bucket.
pub fn bucket_url() -> String {
    format!(
        "http://{}/{}",
        var("IRONVAULT_LOCK_S3_ENDPOINT"),
        var("IRONVAULT_LOCK_S3_BUCKET")
    )
}

/// A signed request: `curl --aws-sigv4` with the lock server's key, plus `args`.
/// Prints the status code as the last line of stdout.
pub fn curl(args: &[&str]) -> Output {
    let user = format!(
        "{}:{}",
        var("IRONVAULT_LOCK_S3_KEY_ID"),
        var("IRONVAULT_LOCK_S3_SECRET")
    );
    let out = Command::new("curl")
        .args([
            "-sS",
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
            "--user",
            &user,
        ])
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl (the test tools: scripts/test.sh installs it)");
    assert!(out.status.success(), "curl {args:?}: {out:?}");
    out
}

/// (HTTP status, body, headers) of a signed request; `-D -` puts headers first.
pub fn request(args: &[&str]) -> (u16, String) {
    let out = curl(args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// The value of header `name` (case-insensitive) in a `-D -` answer.
pub fn header(answer: &str, name: &str) -> Option<String> {
    answer.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// The server's clock now, from the `Date` of an answer.
pub fn server_now() -> chrono::DateTime<chrono::Utc> {
    let (_, answer) = request(&["-D", "-", "-o", "/dev/null", "-I", &bucket_url()]);
    let date = header(&answer, "date").expect("the server answers with a Date header");
    chrono::DateTime::parse_from_rfc2822(&date)
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// A fresh repository location inside the locked bucket.
pub fn unique_location(tag: &str) -> String {
    format!(
        "{}/{tag}-{}-{}",
        var("IRONVAULT_LOCK_S3"),
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// `ironvault ARGS` with the lock server's key (the process's AWS_* name Garage's).
pub fn cmd(env: &super::Env, args: &[&str]) -> Command {
    let mut c = env.cmd(args);
    c.env("AWS_ACCESS_KEY_ID", var("IRONVAULT_LOCK_S3_KEY_ID"))
        .env("AWS_SECRET_ACCESS_KEY", var("IRONVAULT_LOCK_S3_SECRET"))
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_SESSION_TOKEN");
    c
}

/// Run with the lock server's key, assert the exit code, return (stdout, stderr).
pub fn expect(env: &super::Env, args: &[&str], code: i32) -> (String, String) {
    let o = cmd(env, args).output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert_eq!(
        o.status.code(),
        Some(code),
        "ironvault {args:?}\nstdout:\n{out}\nstderr:\n{err}"
    );
    (out, err)
}

/// The keys under `prefix` in the locked bucket (current versions).
pub fn keys(prefix: &str) -> Vec<String> {
    let url = format!(
        "{}?list-type=2&prefix={}",
        bucket_url(),
        prefix.replace('/', "%2F")
    );
    let (code, body) = request(&[&url]);
    assert_eq!(code, 200, "{body}");
    body.split("<Key>")
        .skip(1)
        .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_string()))
        .collect()
}
