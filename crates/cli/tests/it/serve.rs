//! `ironvault serve` end to end: the real binary serving a directory root
//! over HTTPS with a test CA made by the `openssl` CLI, clients on
//! `rest:https://localhost:PORT/NAME` with tokens of each role. The
//! compromised-host test is the point of the server: an `append` token
//! with the repository password must not be able to destroy anything.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};

/// Test servers listen on 4110-4199 (one port per server in this process).
static NEXT_PORT: AtomicU16 = AtomicU16::new(4110);

fn sh(cmd: &mut Command) {
    let o = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?} ({e}): the serve tests need the openssl CLI (apt-get install openssl)")
    });
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A CA and a server certificate for localhost and 127.0.0.1 signed by it.
fn make_certs(dir: &Path) {
    let d = |f: &str| dir.join(f);
    std::fs::write(d("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    sh(Command::new("openssl")
        .args(["req", "-x509"])
        .args(ec)
        .args(["-days", "2", "-subj", "/CN=ironvault test CA"])
        .arg("-keyout")
        .arg(d("ca.key"))
        .arg("-out")
        .arg(d("ca.pem")));
    sh(Command::new("openssl")
        .arg("req")
        .args(ec)
        .args(["-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(d("server.key"))
        .arg("-out")
        .arg(d("server.csr")));
    sh(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
        .arg("-in")
        .arg(d("server.csr"))
        .arg("-CA")
        .arg(d("ca.pem"))
        .arg("-CAkey")
        .arg(d("ca.key"))
        .arg("-extfile")
        .arg(d("ext.cnf"))
        .arg("-out")
        .arg(d("server.pem")));
}

/// A running `ironvault serve` with a token per role.
pub struct Server {
    pub env: Env,
    pub port: u16,
    pub root: PathBuf,
    root_location: Option<String>,
    pub admin: String,
    pub append: String,
    pub read: String,
    child: Option<Child>,
}

impl Server {
    pub fn start() -> Server {
        Server::start_on(None)
    }

    /// A server whose root is `root` (an s3: location) instead of a directory.
    pub fn start_on(root_location: Option<String>) -> Server {
        let env = Env::new();
        make_certs(env.dir.path());
        let root = env.path("root");
        std::fs::create_dir(&root).unwrap();
        let mut s = Server {
            port: NEXT_PORT.fetch_add(1, Ordering::Relaxed),
            root,
            admin: String::new(),
            append: String::new(),
            read: String::new(),
            root_location,
            env,
            child: None,
        };
        s.admin = s.add_token("admin1", "admin", &[]);
        s.append = s.add_token("host1", "append", &[]);
        s.read = s.add_token("reader", "read", &[]);
        s.spawn();
        s
    }

    /// `serve token add`: the token is the last line of output.
    pub fn add_token(&self, name: &str, role: &str, extra: &[&str]) -> String {
        let t = self.env.path("tokens.json");
        let out = self.env.ok(&[
            &[
                "serve",
                "token",
                "add",
                "--tokens",
                t.to_str().unwrap(),
                name,
                "--role",
                role,
            ][..],
            extra,
        ]
        .concat());
        let token = out.lines().last().unwrap().trim().to_string();
        assert!(token.starts_with("ivt_") && token.len() == 68, "{out}");
        token
    }

    /// Start the server on the first free test port from `self.port` on.
    pub fn spawn(&mut self) {
        for _ in 0..20 {
            if self.try_spawn() {
                return;
            }
            self.port = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        }
        panic!("ironvault serve found no free port in 4110-4199");
    }

    fn try_spawn(&mut self) -> bool {
        let d = |f: &str| self.env.path(f).to_string_lossy().to_string();
        let listen = format!("127.0.0.1:{}", self.port);
        let root = self.root_location.clone().unwrap_or_else(|| d("root"));
        let args = [
            "serve",
            "--root",
            &root,
            "--listen",
            &listen,
            "--tls-cert",
            &d("server.pem"),
            "--tls-key",
            &d("server.key"),
            "--tokens",
            &d("tokens.json"),
        ];
        let mut child = self
            .env
            .cmd(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if !line.starts_with("serving the repositories under") {
            let _ = child.wait();
            return false;
        }
        self.child = Some(child);
        true
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn location(&self, name: &str) -> String {
        format!("rest:https://localhost:{}/{name}", self.port)
    }

    /// A client command on repository `name` with `token`.
    pub fn client(&self, name: &str, token: &str, args: &[&str]) -> Command {
        let mut c = self.env.cmd(args);
        c.env("IRONVAULT_REPO", self.location(name))
            .env("IRONVAULT_CACERT", self.env.path("ca.pem"))
            .env("IRONVAULT_TOKEN", token);
        c
    }

    pub fn ok(&self, name: &str, token: &str, args: &[&str]) -> String {
        let o = self.client(name, token, args).output().unwrap();
        assert!(
            o.status.success(),
            "ironvault {args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Run, expect failure with exactly one error line; return it.
    pub fn refused(&self, name: &str, token: &str, args: &[&str]) -> String {
        let o = self.client(name, token, args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(
            !o.status.success(),
            "ironvault {args:?} was not refused: {}{err}",
            String::from_utf8_lossy(&o.stdout)
        );
        let lines: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(
            lines.len(),
            1,
            "ironvault {args:?}: not one error line:\n{err}"
        );
        lines[0].to_string()
    }

    /// A raw request with curl: returns (HTTP status, body).
    pub fn curl(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> (u16, String) {
        let url = format!("https://localhost:{}/{path}", self.port);
        let mut c = Command::new("curl");
        c.args(["-sS", "-o", "-", "-w", "\n%{http_code}"]);
        // -X HEAD would wait for the body the Content-Length announces.
        if method == "HEAD" {
            c.arg("-I");
        } else {
            c.args(["-X", method]);
        }
        c.arg("--cacert")
            .arg(self.env.path("ca.pem"))
            .args(["-H", &format!("Authorization: Bearer {token}")]);
        if let Some(b) = body {
            let f = self.env.path("curl-body");
            std::fs::write(&f, b).unwrap();
            c.arg("--data-binary").arg(format!("@{}", f.display()));
        }
        let o = c.arg(url).output().expect("the serve tests need curl");
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let (body, code) = out.trim_end().rsplit_once('\n').unwrap_or(("", out.trim()));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// Names of the stored objects under `dir` of repository `name`.
    pub fn objects(&self, name: &str, dir: &str) -> Vec<String> {
        files_under(&self.root.join(name).join(dir))
            .into_iter()
            .map(|p| {
                p.strip_prefix(self.root.join(name))
                    .unwrap()
                    .to_string_lossy()
                    .to_string()
            })
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn tree(env: &Env, name: &str, seed: u64) -> PathBuf {
    let d = env.path(name);
    write(&d.join("a.bin"), &random_bytes(200_000, seed));
    write(&d.join("sub/b.txt"), format!("file {seed}\n").as_bytes());
    d
}

#[test]
fn a_compromised_host_with_an_append_token_cannot_destroy_anything() {
    let s = Server::start();
    let (a, r) = (s.append.as_str(), s.admin.as_str());
    // An append token cannot create a repository; an admin can.
    let e = s.refused("r1", a, &["init"]);
    assert!(
        e.contains("token 'host1' (role append) may not create keys/"),
        "{e}"
    );
    assert!(e.contains("that needs a token with role admin"), "{e}");
    s.ok("r1", r, &["init"]);
    let src1 = tree(&s.env, "src1", 1);
    let src2 = tree(&s.env, "src2", 2);
    let junk = tree(&s.env, "junk", 3);
    for src in [&src1, &src2, &junk] {
        s.ok("r1", a, &["backup", src.to_str().unwrap()]);
    }
    let ids: Vec<String> = {
        let v: serde_json::Value =
            serde_json::from_str(&s.ok("r1", a, &["snapshots", "--json"])).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids.len(), 3);
    // The admin forgets the junk snapshot, so prune has something to delete.
    s.ok("r1", r, &["forget", &ids[2]]);
    // A second key, for the attacker to try to remove.
    let pw2 = s.env.path("pw2");
    std::fs::write(&pw2, "another password\n").unwrap();
    s.ok(
        "r1",
        r,
        &["key", "add", "--new-password-file", pw2.to_str().unwrap()],
    );
    let keys_before = s.objects("r1", "keys");
    let key2 = keys_before
        .iter()
        .map(|k| k.trim_start_matches("keys/")[..8].to_string())
        .find(|k| !s.ok("r1", a, &["key", "list"]).contains(&format!("*{k}")))
        .unwrap();
    // A lock held by another token (the reader's), for unlock to try.
    let other_lock = format!("locks/{}", "7".repeat(64));
    let (code, _) = s.curl(
        &s.read,
        "POST",
        &format!("r1/{other_lock}"),
        Some(b"sealed lock"),
    );
    assert_eq!(code, 200);

    let before = files_under(&s.root.join("r1"))
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect::<Vec<_>>();
    let role = "token 'host1' (role append)";
    for args in [
        &["forget", "--keep-last", "1", "--group-by", "host"][..],
        &["forget", &ids[0]],
        &["prune"],
        &["prune", "--max-unused", "0%"],
        &["rewrite", "--exclude", "*.txt", &ids[0]],
        &["key", "add", "--new-password-file", pw2.to_str().unwrap()],
        &["key", "remove", &key2],
        &["unlock", "--remove-all"],
    ] {
        let e = s.refused("r1", a, args);
        assert!(
            e.contains(role) && e.contains("that needs a token with role admin"),
            "{args:?}: {e}"
        );
    }
    // The same through raw requests, object by object.
    let one = |dir: &str| s.objects("r1", dir).into_iter().next().unwrap();
    let pack = one("packs/data");
    for (method, name, body) in [
        ("DELETE", pack.clone(), None),
        ("DELETE", one("index"), None),
        ("DELETE", one("snapshots"), None),
        ("DELETE", one("keys"), None),
        ("DELETE", "config".to_string(), None),
        ("DELETE", other_lock.clone(), None),
        ("POST", one("snapshots"), Some(&b"garbage"[..])),
        ("POST", other_lock.clone(), Some(&b"garbage"[..])),
        ("POST", "config".to_string(), Some(&b"garbage"[..])),
        ("POST", pack.clone(), Some(&b"other bytes"[..])),
        ("POST", one("index"), Some(&b"other bytes"[..])),
        ("POST", format!("keys/{}", "0".repeat(64)), Some(&b"k"[..])),
        (
            "POST",
            format!("forgotten/{}", "0".repeat(64)),
            Some(&b"f"[..]),
        ),
        (
            "POST",
            format!("deletions/{}", "1".repeat(64)),
            Some(&b"d"[..]),
        ),
        (
            "POST",
            format!("erasures/{}", "1".repeat(64)),
            Some(&b"e"[..]),
        ),
    ] {
        let (code, msg) = s.curl(a, method, &format!("r1/{name}"), body);
        assert_eq!(code, 403, "{method} {name}: {msg}");
        assert_eq!(msg.lines().count(), 1, "{msg}");
        assert!(msg.contains(role) && msg.contains(&name), "{msg}");
    }
    // A new pack whose bytes do not hash to its name is not stored.
    let fake = format!("packs/data/00/{}", "0".repeat(64));
    let (code, msg) = s.curl(a, "POST", &format!("r1/{fake}"), Some(b"bytes"));
    assert_eq!(code, 400, "{msg}");
    // An identical upload again is accepted (a retry) and changes nothing.
    let same = std::fs::read(s.root.join("r1").join(&pack)).unwrap();
    assert_eq!(s.curl(a, "POST", &format!("r1/{pack}"), Some(&same)).0, 200);
    // Nothing changed on the server.
    let after = files_under(&s.root.join("r1"))
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect::<Vec<_>>();
    let added: Vec<_> = after
        .iter()
        .filter(|x| !before.contains(x))
        .map(|x| &x.0)
        .collect();
    let gone: Vec<_> = before
        .iter()
        .filter(|x| !after.contains(x))
        .map(|x| &x.0)
        .collect();
    assert!(gone.is_empty(), "objects removed or changed: {gone:?}");
    // Only new objects (the rewritten snapshot's trees) may have been added.
    for p in added {
        let n = p
            .strip_prefix(s.root.join("r1"))
            .unwrap()
            .to_string_lossy()
            .to_string();
        assert!(
            n.starts_with("packs/") || n.starts_with("index/") || n.starts_with("snapshots/"),
            "{n}"
        );
    }
    // Every snapshot still restores, with the read token.
    for (id, src) in [(&ids[0], &src1), (&ids[1], &src2)] {
        let target = s.env.path(&format!("restore-{id}"));
        s.ok(
            "r1",
            &s.read,
            &["restore", id, "--target", target.to_str().unwrap()],
        );
        assert_same_tree(src, &target.join(src.file_name().unwrap()));
    }
    s.ok("r1", &s.read, &["check", "--read-data"]);
    // The admin prunes and removes the stray lock.
    assert_eq!(
        s.curl(r, "DELETE", &format!("r1/{other_lock}"), None).0,
        200
    );
    s.ok("r1", r, &["prune"]);
    s.ok("r1", r, &["check", "--read-data"]);
    let left = s.ok("r1", r, &["snapshots", "--json"]);
    assert!(
        left.contains(&ids[0]) && left.contains(&ids[1]) && !left.contains(&ids[2]),
        "{left}"
    );
}

#[test]
fn tls_with_a_custom_ca_and_wrong_expired_or_removed_tokens() {
    let s = Server::start();
    s.ok("r1", &s.admin, &["init"]);
    // Without the CA the server's certificate is not trusted.
    let o = s
        .client("r1", &s.read, &["snapshots"])
        .env_remove("IRONVAULT_CACERT")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("is not trusted") && err.contains("--cacert"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // A wrong token.
    let e = s.refused("r1", "ivt_0000", &["snapshots"]);
    assert!(
        e.contains("the server does not accept this token (unknown token)"),
        "{e}"
    );
    assert!(e.contains("IRONVAULT_TOKEN or --token-file"), "{e}");
    // No token at all.
    let e = s.refused("r1", "", &["snapshots"]);
    assert!(
        e.contains("needs a token: set IRONVAULT_TOKEN or pass --token-file"),
        "{e}"
    );
    // An expired one (the server re-reads the token file as it changes).
    let old = s.add_token("old", "read", &["--expires", "2001-01-01T00:00:00Z"]);
    let e = s.refused("r1", &old, &["snapshots"]);
    assert!(
        e.contains("token 'old' expired at 2001-01-01T00:00:00Z"),
        "{e}"
    );
    // One limited to another repository.
    let other = s.add_token("other", "admin", &["--repository", "r2"]);
    let e = s.refused("r1", &other, &["snapshots"]);
    assert!(
        e.contains("token 'other' (role admin) does not open repository r1"),
        "{e}"
    );
    // --token-file works as IRONVAULT_TOKEN does; a removed token stops working.
    let f = s.env.path("reader.token");
    std::fs::write(&f, format!("{}\n", s.read)).unwrap();
    let mut c = s.client(
        "r1",
        "",
        &["snapshots", "--token-file", f.to_str().unwrap()],
    );
    assert!(c.output().unwrap().status.success());
    let t = s.env.path("tokens.json");
    let list = s
        .env
        .ok(&["serve", "token", "list", "--tokens", t.to_str().unwrap()]);
    assert!(
        list.contains("reader\tread\t*") && !list.contains(&s.read[4..]),
        "{list}"
    );
    s.env.ok(&[
        "serve",
        "token",
        "remove",
        "--tokens",
        t.to_str().unwrap(),
        "reader",
    ]);
    let e = s.refused("r1", &s.read, &["snapshots"]);
    assert!(e.contains("unknown token"), "{e}");
    // The token file keeps hashes only, mode 0600.
    use std::os::unix::fs::PermissionsExt;
    let text = std::fs::read_to_string(&t).unwrap();
    assert!(!text.contains(&s.append[4..]) && !text.contains(&s.admin[4..]));
    assert_eq!(
        std::fs::metadata(&t).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_server_killed_mid_upload_leaves_no_partial_object() {
    let mut s = Server::start();
    s.ok("r1", &s.admin, &["init"]);
    let body = random_bytes(4 << 20, 9);
    let f = s.env.path("big");
    std::fs::write(&f, &body).unwrap();
    let id = blake3::hash(&body).to_hex().to_string();
    let name = format!("packs/data/{}/{id}", &id[..2]);
    // A slow upload (64 KiB/s), cut by killing the server after a second.
    let mut up = Command::new("curl")
        .args(["-sS", "--limit-rate", "64K", "-X", "POST"])
        .arg("--cacert")
        .arg(s.env.path("ca.pem"))
        .args(["-H", &format!("Authorization: Bearer {}", s.admin)])
        .arg("--data-binary")
        .arg(format!("@{}", f.display()))
        .arg(format!("https://localhost:{}/r1/{name}", s.port))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the serve tests need curl");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    s.kill();
    let _ = up.wait();
    s.spawn();
    assert_eq!(s.curl(&s.admin, "HEAD", &format!("r1/{name}"), None).0, 404);
    let stray: Vec<_> = files_under(&s.root.join("r1"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("packs/"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    s.ok("r1", &s.admin, &["check"]);
    // The same upload, whole, is stored: the name was a valid one.
    assert_eq!(
        s.curl(&s.admin, "POST", &format!("r1/{name}"), Some(&body))
            .0,
        200
    );
    assert_eq!(s.curl(&s.admin, "HEAD", &format!("r1/{name}"), None).0, 200);
    assert_eq!(std::fs::read(s.root.join("r1").join(&name)).unwrap(), body);
}

#[test]
fn eight_clients_back_up_while_an_admin_prunes() {
    let s = Server::start();
    s.ok("r1", &s.admin, &["init"]);
    let old = tree(&s.env, "old", 100);
    s.ok("r1", &s.append, &["backup", old.to_str().unwrap()]);
    s.ok("r1", &s.admin, &["forget", "latest"]);
    let srcs: Vec<PathBuf> = (0..8).map(|i| tree(&s.env, &format!("c{i}"), i)).collect();
    let clients: Vec<Child> = srcs
        .iter()
        .map(|src| {
            s.client("r1", &s.append, &["backup", src.to_str().unwrap()])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    s.ok("r1", &s.admin, &["prune"]);
    for c in clients {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    s.ok("r1", &s.admin, &["prune"]);
    s.ok("r1", &s.read, &["check", "--read-data"]);
    let v: serde_json::Value =
        serde_json::from_str(&s.ok("r1", &s.read, &["snapshots", "--json"])).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 8);
    let target = s.env.path("restore");
    s.ok(
        "r1",
        &s.read,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
}

#[test]
fn a_plan_copies_to_a_repository_server_and_drills_from_it() {
    use crate::common::plans::Plans;
    let s = Server::start();
    let p = Plans::new("");
    // The admin creates the repository, related to the plan's first copy.
    let o = s
        .client(
            "r1",
            &s.admin,
            &["init", "--from-repo", p.env.repo.to_str().unwrap()],
        )
        .env("IRONVAULT_FROM_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The backup host holds an append token only.
    let token = p.env.path("server.token");
    write(&token, format!("{}\n", s.append).as_bytes());
    let src = p.env.path("src");
    write(&src.join("a.txt"), b"to the server\n");
    write(&src.join("big.bin"), &random_bytes(1 << 20, 5));
    p.add(&format!(
        "[repository.vault]\nurl = \"{}\"\npassword_file = \"{}\"\ncacert = \"{}\"\n\
         env = {{ IRONVAULT_TOKEN_FILE = \"{}\" }}\n\
         [plan.files]\npaths = [\"{}\"]\ncopies = [\"local\", \"vault\"]\nrpo = \"1h\"\nrto = \"1h\"\n",
        s.location("r1"),
        p.env.path("pass").display(),
        s.env.path("ca.pem").display(),
        token.display(),
        src.display()
    ));
    let (out, _) = p.expect(&["run", "files"], 0);
    assert!(out.contains("copy      vault: success"), "{out}");
    let (out, _) = p.expect(&["drill", "files", "--copy", "vault"], 0);
    assert!(
        out.contains("drill of plan files from vault: snapshot"),
        "{out}"
    );
    // The copy is on the server, readable with the read token.
    let v: serde_json::Value =
        serde_json::from_str(&s.ok("r1", &s.read, &["snapshots", "--json"])).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    // status counts it as the immutable copy of 3-2-1-1-0, from what the
    // server said of the append token when the copy was written (3-2-1
    // itself does not hold: both copies are on this host, exit 2).
    let (out, _) = p.expect(&["status", "--long"], 2);
    assert!(
        out.contains("ok   immutable: vault (append-only server (role append), read back "),
        "{out}"
    );
}

#[test]
fn a_server_on_an_s3_root_keeps_its_repositories_in_the_bucket() {
    let root = s3::unique_location("serve");
    let s = Server::start_on(Some(root.clone()));
    s.ok("r1", &s.admin, &["init"]);
    let src = tree(&s.env, "src", 4);
    s.ok("r1", &s.append, &["backup", src.to_str().unwrap()]);
    let e = s.refused("r1", &s.append, &["forget", "latest"]);
    assert!(
        e.contains("token 'host1' (role append) may not create forgotten/"),
        "{e}"
    );
    // The repository is in the bucket under ROOT/NAME, readable directly.
    let direct = s
        .env
        .cmd(&["snapshots", "--json"])
        .env("IRONVAULT_REPO", format!("{root}/r1"))
        .output()
        .unwrap();
    assert!(
        direct.status.success(),
        "{}",
        String::from_utf8_lossy(&direct.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&direct.stdout)
            .matches("\"id\"")
            .count(),
        1
    );
    let target = s.env.path("restore");
    s.ok(
        "r1",
        &s.read,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert_same_tree(&src, &target.join("src"));
}
