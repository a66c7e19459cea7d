//! Key files: add, list, passwd, remove; the last key and the key in use are kept.

use crate::common::*;

#[test]
fn key_add_list_passwd_remove() {
    let env = Env::new();
    env.init();
    let alice = env.path("alice.pw");
    std::fs::write(&alice, "alice's password\n").unwrap();
    let out = env.ok(&["key", "add", "--new-password-file", alice.to_str().unwrap()]);
    assert!(out.starts_with("added key "), "{out}");
    let list = |pw: &str| {
        let o = env
            .cmd(&["key", "list", "--json"])
            .env("IRONVAULT_PASSWORD", pw)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let keys = list(PASSWORD);
    assert_eq!(keys.as_array().unwrap().len(), 2);
    // both passwords open the repository
    let keys_a = list("alice's password");
    let cur = |v: &serde_json::Value| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|k| k["current"] == true)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (orig, alice_id) = (cur(&keys), cur(&keys_a));
    assert_ne!(orig, alice_id);

    // the key in use cannot be removed
    let o = env.run(&["key", "remove", &orig[..8]]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("the one this command was opened with"));
    // alice's key removed with the original password
    env.ok(&["key", "remove", &alice_id[..8]]);
    let o = env
        .cmd(&["snapshots"])
        .env("IRONVAULT_PASSWORD", "alice's password")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(12));

    // passwd replaces the key in use
    let newpw = env.path("new.pw");
    std::fs::write(&newpw, "a new password").unwrap();
    env.ok(&[
        "key",
        "passwd",
        "--new-password-file",
        newpw.to_str().unwrap(),
    ]);
    assert_eq!(
        env.cmd(&["snapshots"]).output().unwrap().status.code(),
        Some(12)
    );
    let o = env
        .cmd(&["snapshots"])
        .env("IRONVAULT_PASSWORD", "a new password")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(list("a new password").as_array().unwrap().len(), 1);
}

/// Run `args` with at most `limit_mib` of address space, as a host short of
/// memory would: a key file that made it allocate gigabytes would kill it.
fn run_limited(env: &Env, args: &[&str], password: &str, limit_mib: u64) -> std::process::Output {
    let mut c = env.cmd(args);
    c.env("IRONVAULT_PASSWORD", password);
    let bytes = limit_mib << 20;
    // SAFETY: setrlimit is async-signal-safe; it only limits the child.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, move || {
            let l = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &l) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c.output().unwrap()
}

#[test]
fn planted_key_files_are_refused_and_the_right_key_still_opens() {
    let env = Env::new();
    env.init();
    let keys = env.repo.join("keys");
    let real = std::fs::read_dir(&keys)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&real).unwrap();
    // Key files anyone with write access to the storage could add, named to
    // be listed before the real one: the most the old limits let through
    // (4 GiB, 64 passes), and one padded to 1 MiB.
    let costly = text
        .replace("\"memory_kib\": 65536", "\"memory_kib\": 4194304")
        .replace("\"iterations\": 3", "\"iterations\": 64");
    assert_ne!(costly, text);
    // Named by its own hash, as key files are (anyone can compute it), and
    // ground with spaces until that name sorts before the real one.
    let real_name = real.file_name().unwrap().to_str().unwrap().to_string();
    let costly = (0..)
        .map(|n| format!("{costly}{}", " ".repeat(n)))
        .find(|c| ironvault_core::format::Id::hash_of(c.as_bytes()).to_hex() < real_name)
        .unwrap();
    let costly_name = ironvault_core::format::Id::hash_of(costly.as_bytes()).to_hex();
    std::fs::write(keys.join(&costly_name), &costly).unwrap();
    let padded = text.replacen('{', &format!("{{\"pad\": \"{}\",", "x".repeat(1 << 20)), 1);
    std::fs::write(keys.join(format!("{}1", "0".repeat(63))), padded).unwrap();
    // No key remembered yet: every planted file is refused, one line each,
    // and the right key opens the repository within 512 MiB of memory.
    let o = run_limited(&env, &["snapshots"], PASSWORD, 512);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warnings.len(), 2, "{err}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(&format!("key file keys/{costly_name} "))
                && w.contains("m=4194304 KiB, t=64, p=1, beyond the limits")),
        "{err}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("more than a key file can be (4096)")),
        "{err}"
    );
    // The key that worked is remembered and tried first: nothing else is read.
    let o = run_limited(&env, &["snapshots"], PASSWORD, 512);
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
    let hint = std::fs::read_dir(env.path("cache"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path().join("last-key")).ok())
        .next()
        .unwrap();
    assert_eq!(
        hint,
        format!("keys/{}", real.file_name().unwrap().to_str().unwrap())
    );
    // A wrong password still tries (and refuses) every key file.
    let o = run_limited(&env, &["snapshots"], "not the password", 512);
    assert_eq!(o.status.code(), Some(12));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        err.lines().filter(|l| l.starts_with("warning: ")).count(),
        2,
        "{err}"
    );
    // key list says what is wrong with them, and they can be removed.
    let list = env.ok(&["key", "list"]);
    assert!(list.contains("beyond the limits"), "{list}");
    env.ok(&["key", "remove", &costly_name]);
}

/// The only key file with one byte changed (still valid JSON): it is named
/// damaged, and the wrong-password error (exit 12) says the password may
/// be right.
#[test]
fn a_damaged_key_file_is_not_called_a_wrong_password() {
    let env = Env::new();
    env.init();
    let keys: Vec<_> = std::fs::read_dir(env.repo.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(keys.len(), 1);
    let mut bytes = std::fs::read(&keys[0]).unwrap();
    let at = bytes.len() - 20;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&keys[0], &bytes).unwrap();
    let o = env.run(&["snapshots"]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(12), "{e}");
    assert!(
        e.contains("does not match its name")
            && e.contains("1 damaged key file, named above, was not tried"),
        "{e}"
    );
}
