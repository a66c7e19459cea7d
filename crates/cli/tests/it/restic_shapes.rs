//! restic's shapes of the command line: `--time` in restic's form,
//! `--stdin-from-command -- CMD ARGS`, restic's field names in the
//! `backup --json` summary, and one time format in every JSON document.

use crate::common::plans::Plans;
use crate::common::*;

/// RFC 3339 with a numeric offset: `2026-01-02T03:04:05[.fraction]+01:00`.
fn is_one_time_format(t: &str) -> bool {
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let n = b.len();
    n >= 25
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && (n == 25 || (b[19] == b'.' && digits(20..n - 6)))
        && (b[n - 6] == b'+' || b[n - 6] == b'-')
        && digits(n - 5..n - 3)
        && b[n - 3] == b':'
        && digits(n - 2..n)
}

fn json(out: &str) -> serde_json::Value {
    let last = out.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `backup --time` in restic's form is local time; RFC 3339 keeps its zone;
/// anything else is a usage error with an example.
#[test]
fn time_in_restics_form_is_local_time() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("a"), b"a");
    env.init();
    let backup_at = |t: &str| {
        // A zone three hours east of UTC, without daylight saving time.
        let o = env
            .cmd(&["backup", "--json", "--time", t, src.to_str().unwrap()])
            .env("TZ", "XYZ-3")
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        json(&String::from_utf8_lossy(&o.stdout))["snapshot_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let times = [
        ("2026-01-02 03:04:05", "2026-01-02T03:04:05+03:00"),
        ("2026-01-02T03:04:05", "2026-01-02T03:04:05+03:00"),
        ("2026-01-02T03:04:05+01:00", "2026-01-02T03:04:05+01:00"),
        ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05+00:00"),
    ];
    let ids: Vec<String> = times.iter().map(|(given, _)| backup_at(given)).collect();
    let listed: serde_json::Value =
        serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    for ((given, want), id) in times.iter().zip(&ids) {
        let s = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id.as_str())
            .unwrap();
        assert_eq!(s["time"], *want, "--time {given:?}");
    }
    for bad in [
        "yesterday",
        "2026-01-02",
        "2026-13-02 03:04:05",
        "02.01.2026 03:04",
    ] {
        let o = env.run(&["backup", "--time", bad, src.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "--time {bad:?}: {err}");
        assert!(
            err.contains(&format!("--time {bad:?}")) && err.contains("2026-01-02 03:04:05"),
            "the message names the value and gives an example: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    assert_eq!(
        env.snapshot_ids().len(),
        times.len(),
        "no snapshot from a bad --time"
    );
}

/// `--stdin-from-command -- CMD ARGS` (restic's form) and the command right
/// after the flag (ours) store the same bytes.
#[test]
fn stdin_from_command_in_restics_form() {
    let env = Env::new();
    env.init();
    let t = env.path("t");
    // The exact shape of the issue, with arguments that look like flags.
    env.ok(&[
        "backup",
        "--stdin-filename",
        "x",
        "--stdin-from-command",
        "--",
        "sh",
        "-c",
        "printf '%s %s' restic \"$1\"",
        "sh",
        "--host",
    ]);
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_eq!(std::fs::read(t.join("x")).unwrap(), b"restic --host");
    // Ours keeps working.
    env.ok(&[
        "backup",
        "--stdin-filename",
        "y",
        "--stdin-from-command",
        "sh",
        "-c",
        "printf ours",
    ]);
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_eq!(std::fs::read(t.join("y")).unwrap(), b"ours");
    // A failing command still fails the backup in restic's form.
    let o = env.run(&["backup", "--stdin-from-command", "--", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(1));
    // The flag before other flags: a usage error that says where to put it.
    let o = env.run(&[
        "backup",
        "--stdin-from-command",
        "--stdin-filename",
        "z",
        "--",
        "true",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("put the flag last"), "{err}");
    let o = env.run(&["backup", "--stdin-from-command", "--"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(env.snapshot_ids().len(), 2);
}

/// `backup --json` prints restic's summary fields with restic's values, and ours beside them.
#[test]
fn backup_json_has_restics_summary_fields() {
    let env = Env::new();
    let src = env.path("src");
    let (a, b, c) = (
        random_bytes(1000, 1),
        random_bytes(2000, 2),
        random_bytes(3000, 3),
    );
    write(&src.join("a"), &a);
    write(&src.join("keep/b"), &b);
    write(&src.join("sub/c"), &c);
    env.init();
    let first = json(&env.ok(&["backup", "--json", src.to_str().unwrap()]));
    let want_first = [
        ("files_new", 3),
        ("files_changed", 0),
        ("files_unmodified", 0),
        ("dirs_new", 3),
        ("dirs_changed", 0),
        ("dirs_unmodified", 0),
        ("data_blobs", 3),
        // sub, keep, src and the snapshot's root
        ("tree_blobs", 4),
        ("total_files_processed", 3),
        ("total_bytes_processed", 6000),
        ("dirs", 3),
        ("bytes_read", 6000),
    ];
    for (k, v) in want_first {
        assert_eq!(first[k], v, "{k} in {first}");
    }
    let added = first["data_added"].as_u64().unwrap();
    // The new files' bytes and four small listings, before compression.
    assert!((6000..6000 + 8192).contains(&added), "{first}");
    // Random bytes do not compress: stored is a little more than plain data.
    let packed = first["data_added_packed"].as_u64().unwrap();
    assert!(packed > 6000, "{first}");
    let ids = env.snapshot_ids();
    assert_eq!(first["snapshot_id"], ids[0].as_str());
    assert_eq!(first["message_type"], "summary");
    assert!(first["total_duration"].as_f64().unwrap() > 0.0);

    // One file changed: its directory and the one above change, `keep` does not.
    let c2 = random_bytes(3500, 4);
    write(&src.join("sub/c"), &c2);
    let second = json(&env.ok(&["backup", "--json", src.to_str().unwrap()]));
    let want_second = [
        ("files_new", 0),
        ("files_changed", 1),
        ("files_unmodified", 2),
        ("dirs_new", 0),
        ("dirs_changed", 2),
        ("dirs_unmodified", 1),
        ("data_blobs", 1),
        // sub, src and the root; keep is reused
        ("tree_blobs", 3),
        ("total_files_processed", 3),
        ("total_bytes_processed", 6500),
        ("bytes_read", 3500),
    ];
    for (k, v) in want_second {
        assert_eq!(second[k], v, "{k} in {second}");
    }
    let added = second["data_added"].as_u64().unwrap();
    assert!((3500..3500 + 8192).contains(&added), "{second}");
    assert_eq!(second["parent"], ids[0].as_str());
    assert_eq!(second["snapshot_id"], env.snapshot_ids()[1].as_str());

    // Nothing changed: no new blob, every directory unmodified.
    let third = json(&env.ok(&["backup", "--json", src.to_str().unwrap()]));
    for (k, v) in [
        ("files_unmodified", 3),
        ("dirs_unmodified", 3),
        ("dirs_changed", 0),
        ("data_blobs", 0),
        ("tree_blobs", 0),
        ("bytes_read", 0),
        ("total_bytes_processed", 6500),
    ] {
        assert_eq!(third[k], v, "{k} in {third}");
    }
    for k in ["backup_start", "backup_end"] {
        assert!(
            is_one_time_format(third[k].as_str().unwrap()),
            "{k} in {third}"
        );
    }
}

/// Every time in a JSON document has the same format: snapshots, backup,
/// forget, ls, key list, history, status.
#[test]
fn one_time_format_in_every_json_document() {
    let p = Plans::new("");
    let src = p.env.path("src");
    write(&src.join("f"), b"f");
    p.add(&format!(
        "[plan.files]\npaths = [\"{}\"]\ncopies = [\"local\"]\nkeep = {{ last = 1 }}\n",
        src.display()
    ));
    let env = &p.env;
    env.ok(&[
        "backup",
        "--time",
        "2026-01-02T03:04:05Z",
        src.to_str().unwrap(),
    ]);
    let mut times: Vec<(String, String)> = Vec::new();
    let mut collect = |doc: &str, v: &serde_json::Value| {
        fn walk(doc: &str, key: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, x) in m {
                        walk(doc, k, x, out)
                    }
                }
                serde_json::Value::Array(a) => a.iter().for_each(|x| walk(doc, key, x, out)),
                serde_json::Value::String(s)
                    if s.len() >= 19 && s.as_bytes()[4] == b'-' && s.as_bytes()[10] == b'T' =>
                {
                    out.push((format!("{doc}: {key}"), s.clone()))
                }
                _ => {}
            }
        }
        walk(doc, "", v, &mut times)
    };
    let one = |out: &str| -> serde_json::Value { json(out) };
    collect("snapshots", &one(&env.ok(&["snapshots", "--json"])));
    collect(
        "backup",
        &one(&env.ok(&["backup", "--json", src.to_str().unwrap()])),
    );
    collect(
        "ls",
        &serde_json::Value::Array(
            env.ok(&["ls", "--json", "latest"])
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
        ),
    );
    collect("key list", &one(&env.ok(&["key", "list", "--json"])));
    collect(
        "forget",
        &one(&env.ok(&["forget", "--json", "--dry-run", "--keep-last", "1"])),
    );
    let (out, err) = p.expect(&["run", "files"], 0);
    assert!(!out.is_empty() || !err.is_empty());
    let (out, _) = p.expect(&["history", "--json"], 0);
    collect("history", &one(&out));
    let o = p.run(&["status", "--json"]);
    collect("status", &one(&String::from_utf8_lossy(&o.stdout)));
    for doc in [
        "snapshots",
        "backup",
        "ls",
        "key list",
        "forget",
        "history",
        "status",
    ] {
        assert!(
            times.iter().any(|(w, _)| w.starts_with(doc)),
            "no time found in {doc}: {times:?}"
        );
    }
    for (w, t) in &times {
        assert!(is_one_time_format(t), "{w}: {t}");
    }
    assert!(
        times.iter().any(|(_, t)| t == "2026-01-02T03:04:05+00:00"),
        "{times:?}"
    );
}
