//! End to end against a real S3 server (Garage, started by scripts/test.sh),
//! directly or through a proxy that logs requests and injects faults.

use crate::common::s3::{self, Fault, OwnServer, Proxy};
use crate::common::*;
use std::time::Duration;

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A tree of `mib` MiB of random data in a few files, plus small files.
fn corpus(root: &std::path::Path, mib: usize, seed: u64) {
    write(&root.join("big.bin"), &random_bytes(mib << 20, seed));
    for i in 0..40 {
        write(
            &root.join(format!("dir{}/small-{i}.txt", i % 4)),
            format!("small file {i} {seed}\n").repeat(i + 1).as_bytes(),
        );
    }
}

fn restore_and_compare(env: &Env, src: &std::path::Path, what: &str) {
    let r = env.path(&format!("restore-{what}"));
    env.ok(&["restore", "latest", "--target", r.to_str().unwrap()]);
    let name = src.file_name().unwrap();
    assert_same_tree(src, &r.join(name));
}

#[test]
fn s3_round_trip_every_file_type() {
    require_root("restoring owners and device nodes");
    let env = Env::with_repo(&s3::unique_location("roundtrip"));
    let src = env.path("src");
    make_rich_tree(&src, false);
    env.init();
    let out = env.ok(&["backup", src.to_str().unwrap()]);
    assert!(
        out.contains("Storage: "),
        "the summary reports requests: {out}"
    );
    env.check_ok();
    restore_and_compare(&env, &src, "1");
    // Once the first backup's reads have updated access times (which
    // snapshots record), an unchanged tree stores nothing.
    env.ok(&["backup", src.to_str().unwrap()]);
    let out = env.ok(&["backup", "--json", src.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(v["data_added"], 0, "{out}");
    assert!(v["storage"]["requests"].as_u64().unwrap() > 0, "{out}");
    assert_eq!(env.snapshot_ids().len(), 3);
}

#[test]
fn copy_between_local_and_s3_keeps_ids_sends_only_missing_blobs_and_is_idempotent() {
    let local = Env::new();
    let src = local.path("src");
    corpus(&src, 20, 1);
    local.init();
    local.ok(&[
        "backup",
        "--tag",
        "daily",
        "--host",
        "erp01",
        src.to_str().unwrap(),
    ]);
    write(&src.join("dir0/new.txt"), b"second snapshot\n");
    local.ok(&["backup", "--tag", "weekly", src.to_str().unwrap()]);
    let ids = local.snapshot_ids();
    // restore puts a snapshot of .../src under TARGET/src: keep the same name.
    let keep = local.path("kept/src");
    std::fs::create_dir_all(local.path("kept")).unwrap();
    copy_tree(&src, &keep);
    // The original source is gone: copy must never read it.
    std::fs::remove_dir_all(&src).unwrap();

    let proxy = Proxy::start(&s3::endpoint());
    let remote = Env::with_repo(&proxy.via(&s3::unique_location("copy")));
    let from = local.repo.to_str().unwrap();
    remote
        .cmd(&["init", "--from-repo", from])
        .env("IRONVAULT_FROM_PASSWORD", PASSWORD)
        .output()
        .map(|o| assert!(o.status.success(), "{}", stderr_of(&o)))
        .unwrap();
    // Only the tagged one first, then everything: the first is not sent twice.
    let o = remote
        .cmd(&["copy", "--from-repo", from, "--tag", "daily"])
        .env("IRONVAULT_FROM_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_eq!(remote.snapshot_ids(), vec![ids[0].clone()]);
    let first_packs: Vec<_> = proxy
        .take_done()
        .into_iter()
        .filter(|s| s.is_stored_data_pack())
        .collect();
    assert!(
        !first_packs.is_empty(),
        "20 MiB went up in at least one pack"
    );
    let pwfile = local.path("pw");
    std::fs::write(&pwfile, format!("{PASSWORD}\n")).unwrap();
    let o = remote
        .cmd(&[
            "copy",
            "--all",
            "--json",
            "--from-repo",
            from,
            "--from-password-file",
        ])
        .arg(&pwfile)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(
        (
            v["snapshots_copied"].as_u64(),
            v["snapshots_present"].as_u64()
        ),
        (Some(1), Some(1)),
        "{out}"
    );
    let sent = v["snapshots"][1]["bytes_copied"].as_u64().unwrap();
    assert!(
        sent < 4096,
        "only the new small file was missing, yet {sent} bytes were copied"
    );
    let second: Vec<_> = proxy
        .take_done()
        .into_iter()
        .filter(|s| s.is_stored_data_pack())
        .collect();
    assert_eq!(
        second.len(),
        1,
        "one small pack for the new file: {second:?}"
    );

    // Same ids, times, hosts and tags on both sides.
    let meta = |e: &Env| -> Vec<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_str(&e.ok(&["snapshots", "--json"])).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| serde_json::json!([s["id"], s["time"], s["hostname"], s["tags"], s["paths"]]))
            .collect()
    };
    assert_eq!(meta(&local), meta(&remote));
    assert_eq!(meta(&remote)[0][2], "erp01");

    // Copying again is a no-op: nothing but the lock is written.
    let o = remote
        .cmd(&["copy", "--from-repo", from, "--from-password-command"])
        .arg(format!("echo '{PASSWORD}'"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 snapshots copied, 2 already present"));
    let puts: Vec<_> = proxy
        .take_done()
        .into_iter()
        .filter(|s| s.method == "PUT" && !s.target.contains("/locks/"))
        .collect();
    assert!(puts.is_empty(), "a repeated copy wrote {puts:?}");
    remote.check_ok();
    restore_and_compare(&remote, &keep, "remote");

    // And back down to a third, local repository related to the S3 one.
    let back = Env::new();
    let o = back
        .cmd(&["init", "--from-repo", remote.repo.to_str().unwrap()])
        .env("IRONVAULT_FROM_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    let o = back
        .cmd(&[
            "copy",
            "--from-repo",
            remote.repo.to_str().unwrap(),
            &ids[1][..8],
        ])
        .env("IRONVAULT_FROM_PASSWORD", PASSWORD)
        .env("IRONVAULT_CACHE_DIR", remote.path("cache"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_eq!(back.snapshot_ids(), vec![ids[1].clone()]);
    back.check_ok();
    restore_and_compare(&back, &keep, "back");

    // Unrelated repositories are refused, saying how to make a related one.
    let other = Env::new();
    other.init();
    let o = other
        .cmd(&["copy", "--from-repo", from])
        .env("IRONVAULT_FROM_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = stderr_of(&o);
    assert!(
        e.contains("not related") && e.contains("init --repo DEST --from-repo"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(other.snapshot_ids().is_empty());

    // A wrong source password names the source.
    let o = other
        .cmd(&["copy", "--from-repo", from])
        .env("IRONVAULT_FROM_PASSWORD", "nope")
        .output()
        .unwrap();
    assert!(stderr_of(&o).contains("wrong password for the source repository"));
}

#[test]
fn a_killed_backup_resumes_without_uploading_its_packs_again() {
    let proxy = Proxy::start(&s3::endpoint());
    let env = Env::with_repo(&proxy.via(&s3::unique_location("resume")));
    let src = env.path("src");
    corpus(&src, 120, 2);
    env.init();
    proxy.take_done();
    // Slow enough (40 MiB/s) that the kill lands in the middle.
    let mut child = env.spawn(&["--limit-upload", "40960", "backup", src.to_str().unwrap()]);
    wait_for("3 data packs uploaded", Duration::from_secs(120), || {
        proxy
            .done_snapshot()
            .iter()
            .filter(|s| s.is_stored_data_pack())
            .count()
            >= 3
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let stored: Vec<String> = proxy
        .take_done()
        .into_iter()
        .filter(|s| s.is_stored_data_pack())
        .map(|s| s.target)
        .collect();
    assert!(stored.len() >= 3);
    assert!(env.snapshot_ids().is_empty(), "no snapshot after a kill");

    let o = env.run(&["backup", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(stderr_of(&o).contains("reusing"), "{}", stderr_of(&o));
    let again: Vec<String> = proxy
        .take_done()
        .into_iter()
        .filter(|s| s.is_stored_data_pack())
        .map(|s| s.target)
        .collect();
    let repeated: Vec<_> = again.iter().filter(|t| stored.contains(t)).collect();
    assert!(repeated.is_empty(), "uploaded again: {repeated:?}");
    assert!(!again.is_empty(), "the rerun uploaded the rest");
    env.check_ok();
    restore_and_compare(&env, &src, "resumed");
}

#[test]
fn backups_through_throttling_resets_and_delays_complete_or_fail_cleanly() {
    let proxy = Proxy::start(&s3::endpoint());
    for (i, fault) in [
        Fault::SlowDownEvery(3),
        Fault::ResetEvery(4),
        Fault::Delay(Duration::from_millis(30)),
    ]
    .into_iter()
    .enumerate()
    {
        let env = Env::with_repo(&proxy.via(&s3::unique_location("faults")));
        let src = env.path("src");
        corpus(&src, 40, 10 + i as u64);
        env.init();
        proxy.set_fault(fault);
        proxy.take_log();
        let o = env.run(&["--s3-retry-timeout", "30", "backup", src.to_str().unwrap()]);
        proxy.set_fault(Fault::None);
        let seen = proxy.take_log().len();
        assert!(
            seen >= 8,
            "{fault:?}: only {seen} requests, so few faults were injected"
        );
        eprintln!(
            "{fault:?}: {seen} requests, backup exit {:?}: {}",
            o.status.code(),
            stderr_of(&o).trim()
        );
        let e = stderr_of(&o);
        if !o.status.success() {
            let errors = e.lines().filter(|l| l.starts_with("error:")).count();
            assert_eq!(errors, 1, "{fault:?}: not one error line: {e}");
        }
        if fault != Fault::Delay(Duration::from_millis(30)) {
            assert!(
                e.contains("retrying for up to 30 s"),
                "{fault:?}: the user is told: {e}"
            );
        }
        // Whatever happened, no snapshot points at missing data.
        env.check_ok();
        env.ok(&["backup", src.to_str().unwrap()]);
        env.check_ok();
        restore_and_compare(&env, &src, &format!("{i}"));
    }
}

#[test]
fn killing_the_s3_server_mid_backup_fails_in_one_line_and_a_rerun_completes() {
    // Below the kernel's ephemeral range (32768 and up): once this server is
    // killed, a proxy of another test binding port 0 cannot take its port
    // and answer the retrying backup.
    let port = 10000 + (std::process::id() % 20000) as u16;
    let server_dir = tempfile::tempdir().unwrap();
    let server = OwnServer::start(server_dir.path().join("garage"), port);
    let env = Env::with_repo(&server.location("killed"));
    let src = env.path("src");
    corpus(&src, 100, 3);
    env.init();
    let child = env.spawn(&[
        "--limit-upload",
        "20480",
        "--s3-retry-timeout",
        "5",
        "backup",
        src.to_str().unwrap(),
    ]);
    // Mid backup: the upload is under way, so the kill lands on a live
    // connection (which once ended the process by SIGPIPE).
    wait_for("5 MiB sent", Duration::from_secs(60), || {
        bytes_written(child.id()) >= 5 << 20
    });
    server.kill();
    let o = child.wait_with_output().unwrap();
    let e = stderr_of(&o);
    assert!(!o.status.success(), "the backup cannot have finished: {e}");
    let errors: Vec<_> = e.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{}: {e}", o.status);
    assert!(errors[0].contains("cannot reach the S3 server"), "{e}");
    server.restart();
    assert!(env.snapshot_ids().is_empty());
    env.check_ok();
    let o = env.run(&["backup", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    env.check_ok();
    restore_and_compare(&env, &src, "after-kill");
}

#[test]
fn browsing_and_incremental_backups_read_no_data_packs() {
    let proxy = Proxy::start(&s3::endpoint());
    let env = Env::with_repo(&proxy.via(&s3::unique_location("cache")));
    let src = env.path("src");
    corpus(&src, 20, 4);
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    write(&src.join("dir1/changed.txt"), b"a change\n");
    env.ok(&["backup", src.to_str().unwrap()]);
    let ids = env.snapshot_ids();
    let data_gets = |log: Vec<s3::Seen>| -> Vec<String> {
        log.into_iter()
            .filter(|s| s.method == "GET" && s.target.contains("/packs/data/"))
            .map(|s| s.target)
            .collect()
    };
    let browse = |env: &Env| {
        env.ok(&["snapshots"]);
        env.ok(&["ls", "latest"]);
        env.ok(&["diff", &ids[0], &ids[1]]);
        env.ok(&["find", "small-1*"]);
        env.ok(&["stats", "latest"]);
    };
    proxy.take_log();
    browse(&env);
    env.ok(&["backup", src.to_str().unwrap()]);
    let log = proxy.take_log();
    assert!(data_gets(log.clone()).is_empty(), "{:?}", data_gets(log));
    // With the metadata cache warm, browsing downloads no tree packs either.
    browse(&env);
    let trees: Vec<_> = proxy
        .take_log()
        .into_iter()
        .filter(|s| s.method == "GET" && s.target.contains("/packs/tree/"))
        .collect();
    assert!(trees.is_empty(), "{trees:?}");
    // Deleting the cache loses nothing; it is filled again.
    std::fs::remove_dir_all(env.path("cache")).unwrap();
    browse(&env);
    assert!(data_gets(proxy.take_log()).is_empty());
    // The proxy does see data packs when a restore needs them.
    restore_and_compare(&env, &src, "cached");
    assert!(!data_gets(proxy.take_log()).is_empty());
}

/// Run a shell command, panicking with its output if it fails.
fn sh(cmd: &str) {
    let o = std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Kills the child when dropped.
struct KillOnDrop(std::process::Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn https_with_a_private_ca_needs_cacert() {
    // A private CA and a server certificate for 127.0.0.1, and socat
    // terminating TLS in front of the real server.
    let env = Env::new();
    let d = env.path("tls");
    std::fs::create_dir_all(&d).unwrap();
    let d = d.to_str().unwrap();
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    sh(&format!(
        "cd {d} && openssl req -x509 {ec} -keyout ca.key -out ca.pem -days 2 -subj '/CN=ironvault test CA' \
         -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null && \
         openssl req {ec} -keyout srv.key -out srv.csr -subj '/CN=127.0.0.1' 2>/dev/null && \
         printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext && \
         openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext 2>/dev/null"
    ));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _socat = KillOnDrop(
        std::process::Command::new("socat")
            .arg(format!(
                "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={d}/srv.pem,key={d}/srv.key,verify=0"
            ))
            .arg(format!("TCP:{}", s3::endpoint()))
            .spawn()
            .expect("socat (scripts/test.sh installs it)"),
    );
    wait_for("socat to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let real = s3::unique_location("tls");
    let loc = real.replacen(
        &format!("http://{}", s3::endpoint()),
        &format!("https://127.0.0.1:{port}"),
        1,
    );
    let tls = Env::with_repo(&loc);
    let o = tls.run(&["--s3-retry-timeout", "3", "init"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr_of(&o);
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    let ca = format!("{d}/ca.pem");
    tls.ok(&["--cacert", &ca, "init"]);
    let src = tls.path("src");
    corpus(&src, 2, 5);
    tls.ok(&["--cacert", &ca, "backup", src.to_str().unwrap()]);
    let r = tls.path("r");
    tls.ok(&[
        "--cacert",
        &ca,
        "restore",
        "latest",
        "--target",
        r.to_str().unwrap(),
    ]);
    assert_same_tree(&src, &r.join("src"));
    // A file that is not PEM is refused clearly.
    let o = tls.run(&["--cacert", "/etc/hostname", "snapshots"]);
    assert!(
        stderr_of(&o).contains("not a PEM certificate file"),
        "{}",
        stderr_of(&o)
    );
}

#[test]
fn ctrl_c_while_packs_upload_writes_no_snapshot_and_exits_130() {
    let env = Env::with_repo(&s3::unique_location("sigint"));
    let src = env.path("src");
    corpus(&src, 30, 6);
    env.init();
    // 30 MiB uploaded at 5 MiB/s: once 5 MiB are sent, the signal arrives
    // while packs are going up, seconds before the last one.
    let child = env.spawn(&["--limit-upload", "5120", "backup", src.to_str().unwrap()]);
    wait_for("the backup to send 5 MiB", Duration::from_secs(120), || {
        bytes_written(child.id()) >= 5 << 20
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr_of(&o));
    assert!(env.snapshot_ids().is_empty());
    env.check_ok();
    env.ok(&["backup", src.to_str().unwrap()]);
    restore_and_compare(&env, &src, "after-sigint");
}
