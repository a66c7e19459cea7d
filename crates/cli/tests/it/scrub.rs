//! Scrubbing: `check --read-data-subset` and `--scrub-cycle` cover every pack
//! exactly once over their runs, find damage on the run that reads it, and
//! leave a record of each run.

use crate::common::*;
use std::collections::BTreeSet;

fn packs_read(env: &Env, args: &[&str]) -> (i32, BTreeSet<String>) {
    let mut a = vec!["check", "--json"];
    a.extend_from_slice(args);
    let o = env.run(&a);
    let out = String::from_utf8_lossy(&o.stdout);
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let set = v["packs_read"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    (o.status.code().unwrap(), set)
}

#[test]
fn subsets_and_cycles_cover_every_pack_once_and_find_damage_on_their_day() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("a"), &random_bytes(40 << 20, 21));
    write(&src.join("b"), &random_bytes(30 << 20, 22));
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let (_, all) = packs_read(&env, &["--read-data"]);
    assert!(all.len() >= 4, "{all:?}");

    for m in [2u64, 3] {
        let mut seen = BTreeSet::new();
        for n in 1..=m {
            let (code, got) = packs_read(&env, &["--read-data-subset", &format!("{n}/{m}")]);
            assert_eq!(code, 0);
            assert!(seen.is_disjoint(&got), "part {n}/{m} read a pack twice");
            seen.extend(got);
        }
        assert_eq!(seen, all, "{m} parts cover every pack");
    }
    let (_, some) = packs_read(&env, &["--read-data-subset", "25%"]);
    assert_eq!(some.len(), all.len().div_ceil(4));

    // A 3-day cycle starting on any day covers every pack once.
    let day0 = 20_500u64;
    let mut by_day = Vec::new();
    for d in day0..day0 + 3 {
        let (code, got) = packs_read(&env, &["--scrub-cycle", "3", "--scrub-day", &d.to_string()]);
        assert_eq!(code, 0);
        by_day.push(got);
    }
    let union: BTreeSet<_> = by_day.iter().flatten().cloned().collect();
    assert_eq!(union, all);
    assert_eq!(by_day.iter().map(|s| s.len()).sum::<usize>(), all.len());

    // Damage one data pack: only the day that reads it finds it.
    let victim = all
        .iter()
        .find(|p| {
            env.repo
                .join(format!("packs/data/{}/{p}", &p[..2]))
                .exists()
        })
        .unwrap()
        .clone();
    let path = env
        .repo
        .join(format!("packs/data/{}/{victim}", &victim[..2]));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0x55;
    std::fs::write(&path, bytes).unwrap();
    for (i, d) in (day0..day0 + 3).enumerate() {
        let (code, _) = packs_read(&env, &["--scrub-cycle", "3", "--scrub-day", &d.to_string()]);
        let expect = if by_day[i].contains(&victim) { 1 } else { 0 };
        assert_eq!(code, expect, "day {d}");
    }

    // Every data-reading run left a record: 1 + 2 + 3 + 1 + 3 + 3 runs.
    let records = files_under(&env.repo.join("scrubs"));
    assert_eq!(records.len(), 13, "{records:?}");
    // A plain structural check reads no data and writes no record.
    env.run(&["check"]);
    assert_eq!(files_under(&env.repo.join("scrubs")).len(), 13);
    // Bad selections are refused with what is expected.
    let o = env.run(&["check", "--read-data-subset", "4/3"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("N/M"));
}
