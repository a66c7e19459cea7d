//! Key files: add, list, passwd, remove; the last key and the key in use are kept.

mod common;
use common::*;

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
