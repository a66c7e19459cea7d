//! A config with two related repositories, for plan, status and agent tests.

use super::*;
use std::path::PathBuf;
use std::process::{Command, Output};

/// A primary repository, a related second one, a password file and a config.
pub struct Plans {
    pub env: Env,
    pub cfg: PathBuf,
}

impl Plans {
    /// Create `location` as a repository related to `local`, or fail the test.
    pub fn init_related(&self, location: &str) {
        let o = self
            .env
            .cmd(&["init", "--from-repo", self.env.repo.to_str().unwrap()])
            .env("IRONVAULT_REPO", location)
            .env("IRONVAULT_FROM_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// Repositories `local` and `second` (related), and the given plans.
    pub fn new(plans: &str) -> Plans {
        let env = Env::new();
        env.init();
        let pass = env.path("pass");
        write(&pass, format!("{PASSWORD}\n").as_bytes());
        // As docs/install.md says: readable by its owner only.
        std::fs::set_permissions(&pass, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let second = env.path("second");
        let o = env
            .cmd(&["init", "--from-repo", env.repo.to_str().unwrap()])
            .env("IRONVAULT_REPO", &second)
            .env("IRONVAULT_FROM_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "init --from-repo (the repository second): {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let cfg = env.path("ironvault.toml");
        let d = env.dir.path().display();
        write(
            &cfg,
            format!(
                "state_dir = \"{d}/state\"\nlisten = \"off\"\n\
                 [repository.local]\nurl = \"{d}/repo\"\npassword_file = \"{d}/pass\"\n\
                 [repository.second]\nurl = \"{d}/second\"\npassword_file = \"{d}/pass\"\n{plans}"
            )
            .as_bytes(),
        );
        Plans { env, cfg }
    }

    /// Append to the config.
    pub fn add(&self, text: &str) {
        let t = std::fs::read_to_string(&self.cfg).unwrap() + text;
        write(&self.cfg, t.as_bytes());
    }

    /// Replace text in the config.
    pub fn replace(&self, from: &str, to: &str) {
        let t = std::fs::read_to_string(&self.cfg).unwrap();
        assert!(t.contains(from), "{from:?} not in the config");
        write(&self.cfg, t.replace(from, to).as_bytes());
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.env("IRONVAULT_CONFIG", &self.cfg)
            .env("IRONVAULT_CACHE_DIR", self.env.path("cache"))
            .env("IRONVAULT_STATE_DIR", self.env.path("state"))
            .env_remove("IRONVAULT_REPO")
            .env_remove("IRONVAULT_PASSWORD")
            .args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    pub fn expect(&self, args: &[&str], code: i32) -> (String, String) {
        let o = self.run(args);
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        );
        assert_eq!(
            o.status.code(),
            Some(code),
            "{args:?}\nstdout:\n{out}\nstderr:\n{err}"
        );
        (out, err)
    }

    /// A repository-level command on `local` or `second`.
    pub fn repo(&self, name: &str, args: &[&str]) -> String {
        let loc = if name == "local" {
            self.env.repo.clone()
        } else {
            self.env.path(name)
        };
        let o = self
            .env
            .cmd(args)
            .env("IRONVAULT_REPO", loc)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn snapshots(&self, name: &str) -> Vec<serde_json::Value> {
        let v: serde_json::Value =
            serde_json::from_str(&self.repo(name, &["snapshots", "--json"])).unwrap();
        v.as_array().unwrap().clone()
    }

    pub fn history(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.env.path("state/history.sqlite")).unwrap()
    }
}

pub fn steps(h: &rusqlite::Connection, run: i64) -> Vec<(String, Option<String>, String)> {
    let mut st = h
        .prepare("SELECT step, copy, result FROM steps WHERE run = ?1 ORDER BY id")
        .unwrap();
    st.query_map([run], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}
