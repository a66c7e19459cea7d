//! The storage conformance suite, run against a `rest:` backend talking to
//! a real server on loopback (plain HTTP), over a local directory root.

use ironvault_core::backend::rest::{RestBackend, RestOptions};
use ironvault_core::backend::{conformance, Backend};
use ironvault_server::tokens::{Role, TokenFile};
use ironvault_server::{serve, ServeOptions};

fn start(dir: &std::path::Path, role: Role) -> (String, String) {
    let tokens = dir.join("tokens.json");
    let mut f = TokenFile::load(&tokens, true).unwrap();
    let token = f.add("t", role, vec![], None).unwrap();
    f.save(&tokens).unwrap();
    std::fs::create_dir(dir.join("root")).unwrap();
    let opts = ServeOptions {
        root: dir.join("root").to_string_lossy().to_string(),
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: None,
        tokens,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        serve(&opts, |addr| tx.send(addr).unwrap()).unwrap();
    });
    let addr = rx.recv().unwrap();
    (format!("rest:http://{addr}/repo1"), token)
}

#[test]
fn rest_backend_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let (loc, token) = start(dir.path(), Role::Admin);
    let b = RestBackend::open(
        &loc,
        &RestOptions {
            cacert: None,
            token: Some(token),
        },
    )
    .unwrap();
    conformance(&b);
    assert!(b.prefers_large_reads());
    assert!(b.clock_skew().unwrap().abs() <= 2);
    let s = b.transfer_stats().unwrap();
    assert!(
        s.puts >= 3 && s.bytes_sent > 0 && s.bytes_received > 0,
        "{s:?}"
    );
    // An admin token may delete and overwrite: the copy is not immutable.
    assert_eq!(b.immutability().unwrap(), None);
}

#[test]
fn an_append_token_reports_append_only_and_a_wrong_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (loc, token) = start(dir.path(), Role::Append);
    let b = RestBackend::open(
        &loc,
        &RestOptions {
            cacert: None,
            token: Some(token),
        },
    )
    .unwrap();
    assert_eq!(
        b.immutability().unwrap(),
        Some(ironvault_core::backend::Immutability::AppendOnly {
            role: "append".into()
        })
    );
    let wrong = RestBackend::open(
        &loc,
        &RestOptions {
            cacert: None,
            token: Some("ivt_wrong".into()),
        },
    )
    .unwrap();
    let e = wrong.list("index/").unwrap_err().to_string();
    assert!(
        e.contains("does not accept this token (unknown token)"),
        "{e}"
    );
}
