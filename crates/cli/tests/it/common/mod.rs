//! Shared helpers for end-to-end tests: run the real `ironvault` binary,
//! build source trees with every file type, and compare trees byte for byte
//! and metadata for metadata.

pub mod lock_s3;
pub mod plans;
pub mod s3;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "correct horse battery staple";

/// Path of the binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ironvault"))
}

/// A scratch area with a repository path inside.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub repo: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("ironvault-e2e-")
            .tempdir()
            .unwrap();
        let repo = dir.path().join("repo");
        Env { dir, repo }
    }

    /// A scratch area whose repository is `location` (an s3: URL, say).
    pub fn with_repo(location: &str) -> Env {
        let mut e = Env::new();
        e.repo = PathBuf::from(location);
        e
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// A command with the repository and password set.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.env("IRONVAULT_REPO", &self.repo)
            .env("IRONVAULT_PASSWORD", PASSWORD)
            .env("IRONVAULT_CACHE_DIR", self.dir.path().join("cache"))
            .env("IRONVAULT_STATE_DIR", self.dir.path().join("state"))
            .env_remove("IRONVAULT_FAILPOINT")
            .env_remove("IRONVAULT_PASSWORD_FILE")
            .env_remove("IRONVAULT_PASSWORD_COMMAND")
            .args(args);
        c
    }

    /// Start in the background with stdout and stderr captured.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.cmd(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Run and return the output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Run, assert the exit code, return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.expect(args, 0)
    }

    pub fn expect(&self, args: &[&str], code: i32) -> String {
        let o = self.run(args);
        assert_eq!(
            o.status.code(),
            Some(code),
            "ironvault {args:?} exited {:?}\nstdout:\n{}\nstderr:\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn init(&self) {
        self.ok(&["init"]);
    }

    /// Ids of all snapshots, oldest first.
    pub fn snapshot_ids(&self) -> Vec<String> {
        let out = self.ok(&["snapshots", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// `check --read-data` must pass.
    pub fn check_ok(&self) {
        self.ok(&["check", "--read-data"]);
    }
}

/// A command held at a pause point (`IRONVAULT_PAUSE`; failpoints builds).
pub struct Paused {
    pub child: std::process::Child,
    go: PathBuf,
}

impl Paused {
    /// Let it go on, and wait for it to end.
    pub fn resume(mut self) -> std::process::ExitStatus {
        fs::write(&self.go, b"").unwrap();
        self.child.wait().unwrap()
    }

    /// Let it go on, and collect what it printed (to the pipes it was given).
    pub fn resume_with_output(self) -> Output {
        fs::write(&self.go, b"").unwrap();
        self.child.wait_with_output().unwrap()
    }
}

/// Wait (at most `timeout`) until `cond` holds, checking every 10 ms;
/// past the timeout, panic naming `what` was waited for.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Wait (at most 2 minutes) for a file to appear.
pub fn wait_for_file(p: &Path) {
    wait_for(
        &format!("{} to appear", p.display()),
        Duration::from_secs(120),
        || p.exists(),
    );
}

/// Bytes process `pid` has passed to write(2) and its kin so far (to files,
/// pipes and sockets alike): `wchar` of /proc/PID/io; 0 once it is gone.
pub fn bytes_written(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("wchar: ")?.trim().parse().ok())
        })
        .unwrap_or(0)
}

impl Env {
    /// Start `args` and return once it has reached the pause point `point`.
    pub fn spawn_paused(&self, args: &[&str], point: &str) -> Paused {
        self.spawn_paused_cmd(self.cmd(args), point)
    }

    /// Start `cmd` (made by `cmd`) and return once it has reached `point`.
    pub fn spawn_paused_cmd(&self, mut cmd: Command, point: &str) -> Paused {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let go = self.path(&format!(
            "go-{}",
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let child = cmd
            .env("IRONVAULT_PAUSE", format!("{point}={}", go.display()))
            .spawn()
            .unwrap();
        wait_for_file(&PathBuf::from(format!("{}.reached", go.display())));
        Paused { child, go }
    }

    /// Start `args` with its output captured and return once a line of its
    /// standard error contains `needle` (the lines seen so far with it);
    /// the rest of standard error is drained in the background.
    pub fn spawn_until_stderr(
        &self,
        args: &[&str],
        needle: &str,
    ) -> (std::process::Child, Vec<String>) {
        spawn_until_stderr(self.cmd(args), needle)
    }
}

/// Start `cmd` with its output captured and return once a line of its
/// standard error contains `needle` (the lines seen so far with it); the
/// rest of standard error is drained in the background.
pub fn spawn_until_stderr(mut cmd: Command, needle: &str) -> (std::process::Child, Vec<String>) {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut seen = Vec::new();
    let found = loop {
        match rx.recv_timeout(std::time::Duration::from_secs(120)) {
            Ok(l) => {
                let hit = l.contains(needle);
                seen.push(l);
                if hit {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    if !found {
        let _ = child.kill();
        let _ = child.wait();
        panic!("never saw {needle:?}; saw {seen:?}");
    }
    (child, seen)
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Tests that need root fail loudly without it: CI runs as root.
pub fn require_root(what: &str) {
    assert!(
        is_root(),
        "{what} needs root (CI runs as root; run scripts/test.sh as root)"
    );
}

pub fn write(p: &Path, data: &[u8]) {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(p, data).unwrap();
}

/// Deterministic pseudo-random bytes.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

fn cstr(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap()
}

pub fn set_times(p: &Path, sec: i64, nsec: i64) {
    let ts = [
        libc::timespec {
            tv_sec: sec - 100,
            tv_nsec: nsec,
        },
        libc::timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        },
    ];
    // SAFETY: valid path and two timespecs.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            cstr(p).as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(r, 0, "utimensat {}", p.display());
}

fn run_tool(cmd: &str, args: &[&OsStr]) {
    let st = Command::new(cmd)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (scripts/test.sh installs it)"));
    assert!(st.success(), "{cmd} {args:?} failed");
}

/// A tree with every file type and metadata kind ironvault must keep.
/// With `big_sparse`, also a sparse file larger than 4 GiB.
pub fn make_rich_tree(root: &Path, big_sparse: bool) {
    fs::create_dir_all(root).unwrap();
    write(&root.join("empty.txt"), b"");
    write(&root.join("small.txt"), b"hello ironvault\n");
    write(
        &root.join("dir/nested/deep/file.bin"),
        &random_bytes(3 << 20, 1),
    );
    write(
        &root.join("dir/compressible.txt"),
        &b"the same line again and again\n".repeat(100_000),
    );
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    fs::create_dir_all(root.join("dir/empty-sub")).unwrap();
    // non-UTF-8 names, for a file and a directory
    write(
        &root.join(OsStr::from_bytes(b"caf\xe9-latin1.txt")),
        b"latin-1 name\n",
    );
    write(
        &root.join(OsStr::from_bytes(b"dir-\xff\xfe/inner")),
        b"inner\n",
    );
    // symlinks: relative, absolute, dangling
    std::os::unix::fs::symlink("small.txt", root.join("link-rel")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("link-dangling")).unwrap();
    // hard links: three names, one inode
    write(&root.join("hard-a"), b"shared inode content\n");
    fs::hard_link(root.join("hard-a"), root.join("hard-b")).unwrap();
    fs::hard_link(root.join("hard-a"), root.join("dir/hard-c")).unwrap();
    // fifo
    run_tool("mkfifo", &[root.join("fifo").as_os_str()]);
    // modes: setuid, setgid, sticky, unusual permissions
    write(&root.join("setuid"), b"#!/bin/sh\n");
    fs::set_permissions(root.join("setuid"), fs::Permissions::from_mode(0o4755)).unwrap();
    write(&root.join("setgid"), b"x");
    fs::set_permissions(root.join("setgid"), fs::Permissions::from_mode(0o2750)).unwrap();
    fs::create_dir_all(root.join("sticky")).unwrap();
    fs::set_permissions(root.join("sticky"), fs::Permissions::from_mode(0o1777)).unwrap();
    write(&root.join("private"), b"secret");
    fs::set_permissions(root.join("private"), fs::Permissions::from_mode(0o600)).unwrap();
    // xattrs on a file and a directory, binary values
    xattr::set(root.join("small.txt"), "user.comment", b"a comment").unwrap();
    xattr::set(root.join("small.txt"), "user.binary", &[0u8, 1, 2, 255]).unwrap();
    xattr::set(root.join("dir"), "user.dir", b"on a directory").unwrap();
    // POSIX ACLs (stored as system.posix_acl_* xattrs)
    run_tool(
        "setfacl",
        &[
            OsStr::new("-m"),
            OsStr::new("u:nobody:r,g:daemon:rw"),
            root.join("private").as_os_str(),
        ],
    );
    run_tool(
        "setfacl",
        &[
            OsStr::new("-d"),
            OsStr::new("-m"),
            OsStr::new("u:nobody:rx"),
            root.join("dir").as_os_str(),
        ],
    );
    // sparse file: holes at the start, middle and end
    {
        let f = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(root.join("sparse.img"))
            .unwrap();
        use std::os::unix::fs::FileExt;
        f.set_len(64 << 20).unwrap();
        f.write_all_at(&random_bytes(100_000, 2), 5 << 20).unwrap();
        f.write_all_at(b"middle", 40 << 20).unwrap();
    }
    if big_sparse {
        let f = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(root.join("big-sparse.img"))
            .unwrap();
        use std::os::unix::fs::FileExt;
        f.set_len((5u64 << 30) + 12345).unwrap();
        f.write_all_at(b"start of data", 1 << 20).unwrap();
        f.write_all_at(&random_bytes(2 << 20, 3), (4u64 << 30) + (512 << 20))
            .unwrap();
    }
    if is_root() {
        // owners other than root, device nodes
        std::os::unix::fs::lchown(root.join("small.txt"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(root.join("link-rel"), Some(4321), Some(8765)).unwrap();
        std::os::unix::fs::lchown(root.join("dir/nested"), Some(65534), Some(65534)).unwrap();
        // chown clears setuid; set it again
        std::os::unix::fs::lchown(root.join("setuid"), Some(1000), Some(1000)).unwrap();
        fs::set_permissions(root.join("setuid"), fs::Permissions::from_mode(0o4755)).unwrap();
        let mk = |name: &str, kind: libc::mode_t, dev: libc::dev_t| {
            // SAFETY: valid path; mknod has no memory-safety preconditions.
            let r = unsafe { libc::mknod(cstr(&root.join(name)).as_ptr(), kind | 0o640, dev) };
            assert_eq!(r, 0, "mknod {name}");
        };
        mk("chardev", libc::S_IFCHR, libc::makedev(1, 3));
        mk("blockdev", libc::S_IFBLK, libc::makedev(7, 200));
    }
    // distinctive times last (children first so directory times stick)
    let mut all: Vec<PathBuf> = walk(root).into_values().collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in all.iter().enumerate() {
        set_times(
            p,
            1_600_000_000 + i as i64 * 3600,
            (i as i64 * 7919) % 1_000_000_000,
        );
    }
    set_times(root, 1_500_000_000, 123_456_789);
}

/// All paths under root (not root itself), keyed by relative raw bytes.
pub fn walk(root: &Path) -> BTreeMap<Vec<u8>, PathBuf> {
    let mut out = BTreeMap::new();
    fn rec(root: &Path, dir: &Path, out: &mut BTreeMap<Vec<u8>, PathBuf>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            let is_dir = e.file_type().unwrap().is_dir();
            out.insert(rel, p.clone());
            if is_dir {
                rec(root, &p, out);
            }
        }
    }
    rec(root, root, &mut out);
    out
}

fn xattrs(p: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut v: Vec<_> = xattr::list(p)
        .unwrap()
        .map(|n| {
            let val = xattr::get(p, &n).unwrap().unwrap_or_default();
            (n.as_bytes().to_vec(), val)
        })
        .collect();
    v.sort();
    v
}

/// Data/hole layout of a file from SEEK_DATA/SEEK_HOLE.
pub fn data_segments(p: &Path) -> Vec<(u64, u64)> {
    use std::os::unix::io::AsRawFd;
    let f = fs::File::open(p).unwrap();
    let size = f.metadata().unwrap().len() as i64;
    let fd = f.as_raw_fd();
    let mut out = Vec::new();
    let mut pos = 0i64;
    while pos < size {
        // SAFETY: lseek on an open fd.
        let d = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if d < 0 {
            break;
        }
        // SAFETY: as above.
        let h = unsafe { libc::lseek(fd, d, libc::SEEK_HOLE) };
        out.push((d as u64, (h - d) as u64));
        pos = h;
    }
    out
}

fn same_content(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let segs = data_segments(a);
    if segs != data_segments(b) {
        return false;
    }
    let (mut fa, mut fb) = (fs::File::open(a).unwrap(), fs::File::open(b).unwrap());
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    use std::io::{Seek, SeekFrom};
    for (off, len) in segs {
        fa.seek(SeekFrom::Start(off)).unwrap();
        fb.seek(SeekFrom::Start(off)).unwrap();
        let mut left = len as usize;
        while left > 0 {
            let n = left.min(ba.len());
            fa.read_exact(&mut ba[..n]).unwrap();
            fb.read_exact(&mut bb[..n]).unwrap();
            if ba[..n] != bb[..n] {
                return false;
            }
            left -= n;
        }
    }
    true
}

/// Compare two trees: names, types, contents (and hole layout), modes,
/// owners, mtimes, symlink targets, device numbers, xattrs/ACLs, and the
/// hard-link structure. Returns the list of differences.
pub fn diff_trees(a: &Path, b: &Path) -> Vec<String> {
    let wa = walk(a);
    let wb = walk(b);
    let mut d = Vec::new();
    for k in wa.keys().filter(|k| !wb.contains_key(*k)) {
        d.push(format!(
            "missing in restore: {}",
            String::from_utf8_lossy(k)
        ));
    }
    for k in wb.keys().filter(|k| !wa.contains_key(*k)) {
        d.push(format!("extra in restore: {}", String::from_utf8_lossy(k)));
    }
    let mut links_a: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
    let mut links_b: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
    let mut pairs = vec![(Vec::new(), a.to_path_buf(), b.to_path_buf())];
    for (k, pa) in &wa {
        if let Some(pb) = wb.get(k) {
            pairs.push((k.clone(), pa.clone(), pb.clone()));
        }
    }
    for (k, pa, pb) in pairs {
        let name = String::from_utf8_lossy(&k).into_owned();
        let (ma, mb) = (
            fs::symlink_metadata(&pa).unwrap(),
            fs::symlink_metadata(&pb).unwrap(),
        );
        let mut ck = |what: &str, x: String, y: String| {
            if x != y {
                d.push(format!("{name}: {what} differs: {x} vs {y}"));
            }
        };
        ck(
            "type",
            format!("{:?}", ma.file_type()),
            format!("{:?}", mb.file_type()),
        );
        ck(
            "mode",
            format!("{:o}", ma.mode()),
            format!("{:o}", mb.mode()),
        );
        ck("uid", ma.uid().to_string(), mb.uid().to_string());
        ck("gid", ma.gid().to_string(), mb.gid().to_string());
        ck(
            "mtime",
            format!("{}.{:09}", ma.mtime(), ma.mtime_nsec()),
            format!("{}.{:09}", mb.mtime(), mb.mtime_nsec()),
        );
        ck("rdev", ma.rdev().to_string(), mb.rdev().to_string());
        ck(
            "xattrs",
            format!("{:?}", xattrs(&pa)),
            format!("{:?}", xattrs(&pb)),
        );
        if ma.file_type().is_symlink() {
            ck(
                "target",
                format!("{:?}", fs::read_link(&pa).unwrap()),
                format!("{:?}", fs::read_link(&pb).unwrap()),
            );
        }
        if ma.file_type().is_file() {
            ck("size", ma.len().to_string(), mb.len().to_string());
            if ma.len() == mb.len() && !same_content(&pa, &pb) {
                d.push(format!("{name}: content or hole layout differs"));
            }
            if ma.nlink() > 1 {
                links_a.entry(ma.ino()).or_default().push(k.clone());
                links_b.entry(mb.ino()).or_default().push(k.clone());
            }
        }
    }
    let mut ga: Vec<_> = links_a.into_values().collect();
    let mut gb: Vec<_> = links_b.into_values().collect();
    ga.sort();
    gb.sort();
    if ga != gb {
        d.push(format!("hard-link groups differ: {ga:?} vs {gb:?}"));
    }
    d
}

pub fn assert_same_tree(a: &Path, b: &Path) {
    let d = diff_trees(a, b);
    assert!(d.is_empty(), "trees differ:\n{}", d.join("\n"));
}

/// `cp -a from to`: a copy with every metadata kind, to compare against later.
pub fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}

/// Files under `dir` (recursively), for corrupting repositories.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    if !dir.exists() {
        return Vec::new();
    }
    walk(dir).into_values().filter(|p| p.is_file()).collect()
}
