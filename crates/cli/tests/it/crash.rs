//! Crash safety: kill the real binary (SIGKILL) at every named failpoint of
//! the write order; afterwards `check --read-data` passes, the earlier
//! snapshot restores byte for byte, and a rerun completes.

use crate::common::*;
use std::os::unix::process::ExitStatusExt;

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature: scripts/test.sh runs it with --features failpoints"
)]
fn kill_at_every_failpoint_then_check_restore_and_rerun() {
    for fp in ironvault_core::failpoint::ALL {
        let env = Env::new();
        let src = env.path("src");
        for i in 0..20 {
            write(
                &src.join(format!("a/f{i}")),
                &random_bytes(50_000 + i * 1000, i as u64),
            );
        }
        env.init();
        env.ok(&["backup", src.to_str().unwrap()]);
        let before = env.path("before");
        copy_tree(&src, &before);
        // change the source: new files, a changed file
        for i in 0..10 {
            write(
                &src.join(format!("b/g{i}")),
                &random_bytes(300_000, 100 + i as u64),
            );
        }
        write(&src.join("a/f0"), b"changed");

        let out = env
            .cmd(&["backup", src.to_str().unwrap()])
            .env("IRONVAULT_FAILPOINT", fp)
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGKILL),
            "failpoint {fp} was not hit: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let check = env.run(&["check", "--read-data"]);
        assert_eq!(
            check.status.code(),
            Some(0),
            "check after a kill at {fp} failed:\n{}\n{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let ids = env.snapshot_ids();
        assert!(!ids.is_empty());
        let r1 = env.path("r1");
        env.ok(&["restore", &ids[0], "--target", r1.to_str().unwrap()]);
        assert_same_tree(&before, &r1.join("src"));
        // rerun completes and the new snapshot is complete
        env.ok(&["backup", src.to_str().unwrap()]);
        env.check_ok();
        let r2 = env.path("r2");
        env.ok(&["restore", "latest", "--target", r2.to_str().unwrap()]);
        assert_same_tree(&src, &r2.join("src"));
    }
}
