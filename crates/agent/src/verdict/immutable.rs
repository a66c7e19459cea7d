//! The two rules Veeam adds to 3-2-1 (3-2-1-1-0): **1** copy immutable or
//! offline, which a compromised host holding the password and the storage
//! credentials cannot delete, and **0** errors, the newest verification of
//! each copy clean. Judged from recorded facts only: the immutability a
//! copy's storage reported when the plan last wrote to it (`backup`/`copy`
//! `--json`, kept in the history), and the plan's drills and steps.

use super::{Rule, Verdict};
use chrono::{DateTime, Utc};

/// What the history shows about one copy.
#[derive(Clone, Debug, Default)]
pub struct CopyProof {
    pub name: String,
    /// The newest write to the copy (backup or copy step that ran its
    /// command): when, and the immutability its storage reported (words).
    pub written: Option<(DateTime<Utc>, Option<String>)>,
    /// The newest backup or copy step to the copy failed: its error.
    pub write_failed: Option<String>,
    /// The newest drill from this copy: when, and its error if it failed.
    pub drill: Option<(DateTime<Utc>, Option<String>)>,
}

fn when(t: &DateTime<Utc>) -> String {
    t.with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// 3-2-1 (`three_two_one`) plus the two rules: held when all five hold.
pub fn three_two_one_one_zero(base: &Verdict, copies: &[CopyProof]) -> Verdict {
    let immutable: Vec<String> = copies
        .iter()
        .filter_map(|c| match &c.written {
            Some((t, Some(what))) => Some(format!("{} ({what}, read back {})", c.name, when(t))),
            _ => None,
        })
        .collect();
    let one = Rule {
        rule: "1 immutable",
        held: !immutable.is_empty(),
        detail: if immutable.is_empty() {
            let names: Vec<&str> = copies.iter().map(|c| c.name.as_str()).collect();
            format!(
                "no copy is immutable or offline: this host can delete {} (no storage reported otherwise when last written)",
                names.join(", ")
            )
        } else {
            format!("immutable: {}", immutable.join(", "))
        },
        fix: immutable.is_empty().then(|| {
            "put one copy where this host cannot delete: behind an append-only repository server with a token that may not delete, or in an S3 bucket with Object Lock; the plan's next run reads the fact back (ironvault run PLAN)".to_string()
        }),
    };
    let mut errors = Vec::new();
    let mut clean = Vec::new();
    let mut undrilled = Vec::new();
    for c in copies {
        if let Some(e) = &c.write_failed {
            errors.push(format!("the last write to {} failed: {e}", c.name));
        }
        match &c.drill {
            Some((t, None)) => clean.push(format!("{} drilled clean {}", c.name, when(t))),
            Some((t, Some(e))) => errors.push(format!(
                "the drill from {} on {} failed: {e}",
                c.name,
                when(t)
            )),
            None => undrilled.push(c.name.as_str()),
        }
    }
    let held = errors.is_empty() && !clean.is_empty();
    let mut detail = if !errors.is_empty() {
        errors.join("; ")
    } else if clean.is_empty() {
        "no copy has been drilled: nothing shows a restore works".to_string()
    } else {
        format!("0 errors: {}", clean.join(", "))
    };
    if !undrilled.is_empty() && !clean.is_empty() {
        detail += &format!("; not drilled yet: {}", undrilled.join(", "));
    }
    let zero = Rule {
        rule: "0 errors",
        held,
        detail,
        fix: (!held).then(|| {
            if errors.is_empty() {
                "run a drill (ironvault drill PLAN), or give the plan a drill schedule".to_string()
            } else {
                "look at the failed steps (ironvault history PLAN), fix them, and run the plan and its drill again (ironvault run PLAN, ironvault drill PLAN)".to_string()
            }
        }),
    };
    let mut rules = base.rules.clone();
    rules.push(one);
    rules.push(zero);
    Verdict {
        held: rules.iter().all(|r| r.held),
        rules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Verdict {
        Verdict {
            held: true,
            rules: vec![],
        }
    }

    #[test]
    fn immutable_needs_a_fact_read_back_and_zero_errors_a_clean_drill() {
        let t = Utc::now();
        let mut local = CopyProof {
            name: "local".into(),
            written: Some((t, None)),
            ..CopyProof::default()
        };
        let v = three_two_one_one_zero(&base(), &[local.clone()]);
        assert!(!v.held);
        assert!(v.rules[0]
            .detail
            .starts_with("no copy is immutable or offline: this host can delete local"));
        assert!(v.rules[1].detail.starts_with("no copy has been drilled"));
        let vault = CopyProof {
            name: "vault".into(),
            written: Some((t, Some("append-only server (role append)".into()))),
            ..CopyProof::default()
        };
        local.drill = Some((t, None));
        let v = three_two_one_one_zero(&base(), &[local.clone(), vault.clone()]);
        assert!(v.held, "{v:#?}");
        assert!(
            v.rules[1].detail.ends_with("not drilled yet: vault"),
            "{v:#?}"
        );
        local.drill = Some((t, Some("2 files differ".into())));
        let v = three_two_one_one_zero(&base(), &[local, vault]);
        assert!(!v.rules[1].held);
        assert!(v.rules[1].detail.contains("the drill from local on "));
        assert!(v.rules[1]
            .fix
            .as_deref()
            .unwrap()
            .contains("ironvault history PLAN"));
    }
}
