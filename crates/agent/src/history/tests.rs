use super::*;

#[test]
fn a_database_of_the_first_schema_is_upgraded_in_place() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("history.sqlite");
    {
        // The tables as the first release wrote them.
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO meta VALUES ('schema', '1');
             CREATE TABLE incidents (plan TEXT NOT NULL, copy TEXT NOT NULL, kind TEXT NOT NULL,
                 opened INTEGER NOT NULL, message TEXT NOT NULL, PRIMARY KEY (plan, copy, kind));
             INSERT INTO incidents VALUES ('erp', 'cloud', 'unreachable', 1764000000000, 'down');",
        )
        .unwrap();
    }
    let h = History::open(&path).unwrap();
    let inc = h.incidents().unwrap();
    assert_eq!(inc.len(), 1);
    assert!(inc[0].delivered, "alerted by the version that opened it");
    assert_eq!(
        (inc[0].attempts, inc[0].sent.clone()),
        (0, vec!["*".to_string()])
    );
    h.mark_attempt(&inc[0], &["command".into()], true, Utc::now())
        .unwrap();
    assert!(h
        .resolve_incident("erp", "cloud", "unreachable")
        .unwrap()
        .is_some());
    // And opening it again changes nothing.
    drop(h);
    assert!(History::open(&path)
        .unwrap()
        .incidents()
        .unwrap()
        .is_empty());
}

#[test]
fn processes_opening_a_new_history_at_once_take_turns() {
    use std::os::unix::fs::PermissionsExt;
    for _ in 0..5 {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("history.sqlite");
        let threads: Vec<_> = (0..6)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let h = History::open(&path)?;
                    h.start_run(&format!("p{i}"), "run", "manual", None)
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn runs_steps_and_incidents_survive_reopening() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("state/history.sqlite");
    let sched = Utc.with_ymd_and_hms(2026, 11, 26, 10, 15, 0).unwrap();
    {
        let h = History::open(&path).unwrap();
        let run = h.start_run("erp", "run", "schedule", Some(sched)).unwrap();
        let s = h.start_step(run, Step::Backup, Some("local")).unwrap();
        let end = StepEnd {
            bytes: Some(1234),
            snapshot: Some("ab12".into()),
            ..StepEnd::default()
        };
        h.end_step(s, Outcome::Success, &end).unwrap();
        let s2 = h.start_step(run, Step::Copy, Some("cloud")).unwrap();
        let err = StepEnd {
            error: Some("unreachable".into()),
            ..StepEnd::default()
        };
        h.end_step(s2, Outcome::Failed, &err).unwrap();
        h.end_run(run, Outcome::Failed, Some("copy to cloud failed"))
            .unwrap();
        // A run left running, as by a killed process.
        let r2 = h.start_run("erp", "run", "manual", None).unwrap();
        h.start_step(r2, Step::Backup, Some("local")).unwrap();
        assert!(h.open_incident("erp", "cloud", "run_failed", "x").unwrap());
        assert!(!h.open_incident("erp", "cloud", "run_failed", "x2").unwrap());
    }
    let h = History::open(&path).unwrap();
    assert_eq!(h.last_scheduled("erp", "run").unwrap(), Some(sched));
    assert_eq!(h.last_scheduled("erp", "drill").unwrap(), None);
    assert_eq!(h.abandon_unfinished("erp").unwrap(), 1);
    let runs = h.runs(Some("erp"), 10).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].result, Outcome::Abandoned);
    assert_eq!(h.steps(runs[0].id).unwrap()[0].result, Outcome::Abandoned);
    assert_eq!(runs[1].error.as_deref(), Some("copy to cloud failed"));
    let steps = h.steps(runs[1].id).unwrap();
    assert_eq!(steps[0].bytes, Some(1234));
    assert_eq!(steps[0].snapshot.as_deref(), Some("ab12"));
    let last = h
        .last_step("erp", Step::Backup, Some("local"))
        .unwrap()
        .unwrap();
    assert_eq!(
        last.result,
        Outcome::Success,
        "the newest that ran to its end"
    );
    assert_eq!(
        h.failures("erp").unwrap(),
        [("copy".to_string(), "cloud".to_string(), 1)]
    );
    assert_eq!(h.last_success("erp").unwrap(), None);
    assert_eq!(h.incidents().unwrap().len(), 1, "incidents persist");
    assert_eq!(
        h.incidents().unwrap()[0].message,
        "x2",
        "with the newest message"
    );
    let inc = h.resolve_incident("erp", "cloud", "run_failed").unwrap();
    assert_eq!(inc.unwrap().message, "x2");
    assert!(h
        .resolve_incident("erp", "cloud", "run_failed")
        .unwrap()
        .is_none());
}

#[test]
fn a_newer_schema_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("h.sqlite");
    History::open(&path).unwrap();
    let c = Connection::open(&path).unwrap();
    c.execute("UPDATE meta SET value = '99' WHERE key = 'schema'", [])
        .unwrap();
    let e = History::open(&path).err().unwrap().to_string();
    assert!(e.contains("newer ironvault (schema 99)"), "{e}");
}
