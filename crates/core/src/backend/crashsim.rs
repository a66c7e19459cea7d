//! Test-only power-cut simulator around the real file system. It lets the
//! real operations happen, remembers which effects are not yet durable (file
//! data not fsynced, directory entries whose directory was not fsynced), and
//! on `crash()` undoes exactly those — what a power cut may lose. A budget of
//! operations makes every step after the N-th fail, as when the power goes.

use super::local::{FileOps, RealFileOps};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

enum Entry {
    Created {
        dir: PathBuf,
        path: PathBuf,
    },
    Renamed {
        dir: PathBuf,
        from: PathBuf,
        to: PathBuf,
    },
}

impl Entry {
    fn dir(&self) -> &Path {
        match self {
            Entry::Created { dir, .. } | Entry::Renamed { dir, .. } => dir,
        }
    }
}

#[derive(Default)]
struct Journal {
    unsynced_data: HashSet<PathBuf>,
    entries: Vec<Entry>,
}

/// The simulator; share it with `Sim` handles.
pub struct CrashSim {
    real: RealFileOps,
    budget: AtomicI64,
    /// Negative control: a backend that "forgets" every fsync.
    skip_fsync: bool,
    journal: Mutex<Journal>,
}

impl CrashSim {
    pub fn new(budget: i64, skip_fsync: bool) -> Arc<CrashSim> {
        Arc::new(CrashSim {
            real: RealFileOps,
            budget: AtomicI64::new(budget),
            skip_fsync,
            journal: Mutex::new(Journal::default()),
        })
    }

    fn tick(&self) -> std::io::Result<()> {
        if self.budget.fetch_sub(1, Ordering::SeqCst) <= 0 {
            return Err(std::io::Error::other("simulated power cut"));
        }
        Ok(())
    }

    /// Lose everything that was not durable.
    pub fn crash(&self) {
        self.budget.store(0, Ordering::SeqCst);
        let mut j = self.journal.lock().unwrap();
        for p in j.unsynced_data.drain() {
            if p.is_file() {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .unwrap()
                    .set_len(0)
                    .unwrap();
            }
        }
        for e in j.entries.drain(..).rev() {
            match e {
                Entry::Renamed { from, to, .. } => {
                    if to.exists() {
                        std::fs::rename(&to, &from).unwrap();
                    }
                }
                Entry::Created { path, .. } => {
                    if path.is_dir() {
                        std::fs::remove_dir_all(&path).unwrap();
                    } else if path.exists() {
                        std::fs::remove_file(&path).unwrap();
                    }
                }
            }
        }
    }
}

/// A `FileOps` handle on a shared simulator.
pub struct Sim(pub Arc<CrashSim>);

fn parent(p: &Path) -> PathBuf {
    p.parent().unwrap().to_path_buf()
}

impl FileOps for Sim {
    fn write_new(&self, path: &Path, data: &[u8], kind: &str) -> std::io::Result<()> {
        self.0.tick()?;
        self.0.real.write_new(path, data, kind)?;
        let mut j = self.0.journal.lock().unwrap();
        j.unsynced_data.insert(path.to_path_buf());
        j.entries.push(Entry::Created {
            dir: parent(path),
            path: path.to_path_buf(),
        });
        Ok(())
    }

    fn sync_file(&self, path: &Path) -> std::io::Result<()> {
        self.0.tick()?;
        if !self.0.skip_fsync {
            self.0.real.sync_file(path)?;
            self.0.journal.lock().unwrap().unsynced_data.remove(path);
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.0.tick()?;
        self.0.real.rename(from, to)?;
        let mut j = self.0.journal.lock().unwrap();
        if j.unsynced_data.remove(from) {
            j.unsynced_data.insert(to.to_path_buf());
        }
        j.entries.push(Entry::Renamed {
            dir: parent(to),
            from: from.to_path_buf(),
            to: to.to_path_buf(),
        });
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.0.tick()?;
        if !self.0.skip_fsync {
            self.0.real.sync_dir(dir)?;
            self.0
                .journal
                .lock()
                .unwrap()
                .entries
                .retain(|e| e.dir() != dir);
        }
        Ok(())
    }

    fn create_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.0.tick()?;
        self.0.real.create_dir(dir)?;
        self.0.journal.lock().unwrap().entries.push(Entry::Created {
            dir: parent(dir),
            path: dir.to_path_buf(),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::local::LocalBackend;
    use crate::backend::Backend;
    use crate::backup::{backup, BackupOptions};
    use crate::check::{check, CheckOptions};
    use crate::crypto::kdf::KdfParams;
    use crate::repo::Repository;
    use crate::restore::{restore, RestoreOptions};

    const PW: &[u8] = b"pw";

    fn files(n: usize, seed: u8) -> Vec<(String, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let data: Vec<u8> = (0..20_000 + i * 3000)
                    .map(|j| (j as u8).wrapping_mul(seed).wrapping_add(i as u8))
                    .collect();
                (format!("f{i}"), data)
            })
            .collect()
    }

    fn write_src(dir: &Path, fs_: &[(String, Vec<u8>)]) {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        for (n, d) in fs_ {
            std::fs::write(dir.join(n), d).unwrap();
        }
    }

    fn restores_to(
        repo: &Repository,
        tree: &crate::format::Id,
        dir: &Path,
        want: &[(String, Vec<u8>)],
    ) -> bool {
        let _ = std::fs::remove_dir_all(dir);
        let st = restore(repo, tree, &RestoreOptions::new(dir.to_path_buf())).unwrap();
        st.errors.is_empty()
            && want.iter().all(|(n, d)| {
                std::fs::read(dir.join("src").join(n)).ok().as_deref() == Some(&d[..])
            })
    }

    /// One run: snapshot A durably, then snapshot B through the simulator with
    /// `budget` operations, then a power cut. Returns the violations found.
    fn run(budget: i64, skip_fsync: bool) -> (bool, Vec<String>) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("repo");
        let src = tmp.path().join("src");
        let kdf = KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let real: Arc<dyn Backend> = Arc::new(LocalBackend::new(&root));
        let repo = Arc::new(Repository::init(real, PW, kdf, None).unwrap());
        let a = files(4, 3);
        write_src(&src, &a);
        let opts = BackupOptions::new(vec![src.clone()]);
        let ra = backup(repo.clone(), &opts, &|_| {}).unwrap();

        let b = files(6, 7);
        write_src(&src, &b);
        let sim = CrashSim::new(budget, skip_fsync);
        let simb: Arc<dyn Backend> =
            Arc::new(LocalBackend::with_ops(&root, Box::new(Sim(sim.clone()))));
        let result = Repository::open(simb, PW).and_then(|r| backup(Arc::new(r), &opts, &|_| {}));
        let completed = result.is_ok();
        sim.crash();

        let mut violations = Vec::new();
        let real: Arc<dyn Backend> = Arc::new(LocalBackend::new(&root));
        let repo = Repository::open(real, PW).unwrap();
        let report = check(
            &repo,
            &CheckOptions {
                read_data: true,
                ..Default::default()
            },
            &|_, _, _| {},
        )
        .unwrap();
        violations.extend(report.errors.iter().map(|e| format!("check: {e}")));
        repo.load_index(false).unwrap();
        if !restores_to(&repo, &ra.snapshot.tree, &tmp.path().join("ra"), &a) {
            violations.push("snapshot A no longer restores".into());
        }
        if let Ok(rb) = result {
            // a backup that reported success must survive the power cut
            match repo.load_snapshot(&rb.snapshot_id) {
                Ok(s) if restores_to(&repo, &s.tree, &tmp.path().join("rb"), &b) => {}
                _ => violations.push("a completed backup's snapshot was lost or damaged".into()),
            }
        }
        (completed, violations)
    }

    #[test]
    fn power_cut_at_every_step_loses_nothing_durable() {
        let mut budget = 0;
        loop {
            let (completed, v) = run(budget, false);
            assert!(v.is_empty(), "power cut after {budget} operations: {v:?}");
            if completed {
                break;
            }
            budget += 1;
            assert!(budget < 500, "backup never completed");
        }
        assert!(budget > 10, "the backup should take many steps ({budget})");
    }

    #[test]
    fn the_simulator_catches_a_backend_that_skips_fsync() {
        // Negative control: with fsyncs skipped, some power cut loses data.
        let found = (0..200).any(|budget| !run(budget, true).1.is_empty());
        assert!(
            found,
            "skipping fsync went unnoticed: the simulator has no teeth"
        );
    }
}
