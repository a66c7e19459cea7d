//! End to end: back up a tree with every file type and metadata kind, restore
//! it, and compare byte for byte and metadata for metadata.

use crate::common::*;

#[test]
fn every_file_type_and_metadata_round_trips() {
    require_root("restoring owners and device nodes");
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src, true);
    env.init();
    let out = env.ok(&["backup", src.to_str().unwrap()]);
    assert!(out.contains("snapshot"), "{out}");
    env.check_ok();
    let target = env.path("restore");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target.join("src"));
    // the >4 GiB sparse file came back sparse, not 5 GiB of zeros on disk
    let md = std::fs::metadata(target.join("src/big-sparse.img")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert!(md.len() > 4 << 30);
    assert!(
        md.blocks() * 512 < 64 << 20,
        "restored sparse file allocates {} bytes",
        md.blocks() * 512
    );
}

#[test]
fn the_comparison_detects_differences() {
    // The tree comparison used above must not be vacuous.
    let env = Env::new();
    let a = env.path("a");
    make_rich_tree(&a, false);
    let b = env.path("b");
    copy_tree(&a, &b);
    assert_same_tree(&a, &b);
    std::fs::write(b.join("small.txt"), b"hello ironvauLt\n").unwrap();
    set_times(&b.join("small.txt"), 1, 0);
    let d = diff_trees(&a, &b);
    assert!(d.iter().any(|l| l.contains("small.txt: content")), "{d:?}");
    assert!(d.iter().any(|l| l.contains("small.txt: mtime")), "{d:?}");
    xattr::remove(b.join("small.txt"), "user.comment").unwrap();
    std::fs::remove_file(b.join("hard-b")).unwrap();
    std::fs::write(b.join("hard-b"), b"shared inode content\n").unwrap();
    let d = diff_trees(&a, &b).join("\n");
    assert!(d.contains("xattrs differ"), "{d}");
    assert!(d.contains("hard-link groups differ"), "{d}");
}

/// Run `backup SRC` under strace, logging every open to `log`.
fn backup_under_strace(
    env: &Env,
    src: &std::path::Path,
    log: &std::path::Path,
) -> std::process::Output {
    std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=open,openat,openat2", "-o"])
        .arg(log)
        .arg(bin())
        .args(["backup", src.to_str().unwrap()])
        .env("IRONVAULT_REPO", &env.repo)
        .env("IRONVAULT_PASSWORD", PASSWORD)
        .output()
        .expect("strace (scripts/test.sh installs it)")
}

#[test]
fn second_backup_of_unchanged_tree_reads_no_file_contents() {
    let env = Env::new();
    let src = env.path("src");
    // 40 MiB of file data in 200 files: far more than any metadata read
    for i in 0..200 {
        write(
            &src.join(format!("d{}/f{i}", i % 10)),
            &random_bytes(200 << 10, i),
        );
    }
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    // Watch the second backup from outside with strace: it must not open any
    // regular file under the source (directories are opened to list them).
    let log = env.path("strace.log");
    let out = backup_under_strace(&env, &src, &log);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("0 new, 0 changed, 200 unmodified"),
        "{stdout}"
    );
    let trace = std::fs::read_to_string(&log).unwrap();
    let src_s = src.to_str().unwrap();
    let opened: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains(src_s) && !l.contains("O_DIRECTORY"))
        .collect();
    assert!(
        opened.is_empty(),
        "the no-change backup opened source files:\n{}",
        opened.join("\n")
    );
    // the trace is real: the first-time backup of a new file does show up
    write(&src.join("new-file"), b"new");
    assert!(backup_under_strace(&env, &src, &log).status.success());
    let trace = std::fs::read_to_string(&log).unwrap();
    assert!(
        trace
            .lines()
            .any(|l| l.contains("new-file") && !l.contains("O_DIRECTORY")),
        "{trace}"
    );
}

#[test]
fn inserting_1k_in_a_100mb_file_adds_only_a_few_chunks() {
    let env = Env::new();
    let src = env.path("src");
    let mut data = random_bytes(100 << 20, 9);
    write(&src.join("big.db"), &data);
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    data.splice(50 << 20..50 << 20, random_bytes(1024, 10));
    write(&src.join("big.db"), &data);
    let out = env.ok(&["backup", "--json", src.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let added = v["data_added"].as_u64().unwrap();
    // chunks average 1 MiB (max 8 MiB): a local edit rewrites one or two chunks
    assert!(added < 12 << 20, "added {added} bytes after a 1 KiB insert");
    assert!(added > 1024);
    let target = env.path("r");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(std::fs::read(target.join("src/big.db")).unwrap(), data);
}
