//! Checking one `[plan.NAME]` table.

use super::*;

pub(super) fn check_plan(
    c: &mut Checker,
    name: &str,
    p: &Spanned<RawPlan>,
    repos: &BTreeMap<String, Repository>,
) -> Option<Plan> {
    let span = p.span();
    let p = p.get_ref();
    if let Err(e) = check_name(name) {
        c.err(span.clone(), format!("plan {name:?}: {e}"));
    }
    let source = match (&p.paths.is_empty(), &p.command) {
        (false, Some(cmd)) => {
            c.err(
                cmd.span(),
                format!("plan {name}: give paths or command, not both (make two plans)"),
            );
            None
        }
        (true, None) => {
            c.err(span.clone(), format!("plan {name}: nothing to back up; add paths = [\"/data\"] or command = \"...\" (its output is stored as one file)"));
            None
        }
        (false, None) => {
            for path in &p.paths {
                if !path.starts_with('/') {
                    c.err(
                        span.clone(),
                        format!("plan {name}: path {path:?} is not absolute"),
                    );
                } else if std::fs::symlink_metadata(path).is_err() {
                    // It may be mounted later; until then every run fails.
                    c.warn(
                        span.clone(),
                        format!("plan {name}: path {path} does not exist (yet); the plan's backups fail until it does"),
                    );
                }
            }
            Some(Source::Paths(p.paths.clone()))
        }
        (true, Some(cmd)) => {
            if cmd.get_ref().trim().is_empty() {
                c.err(
                    cmd.span(),
                    format!("plan {name}: command is empty; give the command whose standard output is backed up, e.g. command = \"mysqldump --all-databases\""),
                );
            }
            let filename = p
                .filename
                .clone()
                .unwrap_or_else(|| format!("{name}.stream"));
            if filename.is_empty() || filename.contains('/') || filename == "." || filename == ".."
            {
                c.err(
                    cmd.span(),
                    format!(
                        "plan {name}: filename {filename:?} must be a plain file name (no '/')"
                    ),
                );
            }
            Some(Source::Command {
                command: cmd.get_ref().clone(),
                filename,
            })
        }
    };
    for t in &p.tags {
        if t.trim().is_empty() || t.contains(',') || t.starts_with("plan:") {
            c.err(span.clone(), format!("plan {name}: tag {t:?} is not allowed: tags must be non-empty, without ',', and 'plan:' is reserved for the plan's own tag"));
        }
    }
    if p.copies.get_ref().is_empty() {
        c.err(
            p.copies.span(),
            format!("plan {name}: copies is empty; name at least one [repository.NAME]"),
        );
    }
    let known: Vec<&str> = repos.keys().map(|s| s.as_str()).collect();
    let mut copies = Vec::new();
    for r in p.copies.get_ref() {
        if !repos.contains_key(r.get_ref()) {
            c.err(r.span(), format!("plan {name}: copies names repository {:?}, which is not defined; define [repository.{}] or use one of: {}", r.get_ref(), r.get_ref(), if known.is_empty() { "(none defined)".to_string() } else { known.join(", ") }));
        } else if copies.contains(r.get_ref()) {
            c.err(
                r.span(),
                format!(
                    "plan {name}: repository {:?} is named twice in copies",
                    r.get_ref()
                ),
            );
        }
        copies.push(r.get_ref().clone());
    }
    // One `copy` command opens both ends with one environment and one CA.
    if let Some(first) = copies.first().and_then(|n| repos.get(n)) {
        for d in copies.iter().skip(1).filter_map(|n| repos.get(n)) {
            for (k, v) in &first.env {
                if d.env.get(k).is_some_and(|w| w != v) {
                    c.err(p.copies.span(), format!("plan {name}: repositories {} and {} set {k} differently; a copy opens both with one environment, so give them the same value (or one S3 profile with access to both)", first.name, d.name));
                }
            }
            if let (Some(a), Some(b)) = (&first.cacert, &d.cacert) {
                if a != b {
                    c.err(p.copies.span(), format!("plan {name}: repositories {} and {} name different cacert files; a copy trusts one: put both CA certificates in one PEM file", first.name, d.name));
                }
            }
        }
    }
    let mut keep = BTreeMap::new();
    for k in p.keep.iter().chain(p.keep_on.values()) {
        if let Some(w) = &k.get_ref().within {
            if let Err(e) = ironvault_core::forget::CalDuration::parse(w) {
                c.err(k.span(), format!("plan {name}: keep within: {e}"));
            }
        }
    }
    if let Some(k) = &p.keep {
        if k.get_ref().is_empty() {
            c.err(k.span(), format!("plan {name}: keep is empty; name what to keep (e.g. {{ daily = 7 }}) or leave keep out to keep everything"));
        }
        for r in &copies {
            keep.insert(r.clone(), k.get_ref().clone());
        }
    }
    for (r, k) in &p.keep_on {
        if !copies.contains(r) {
            c.err(
                k.span(),
                format!("plan {name}: keep_on names {r:?}, which is not one of its copies"),
            );
        } else if k.get_ref().is_empty() {
            c.err(k.span(), format!("plan {name}: keep_on.{r} is empty"));
        }
        keep.insert(r.clone(), k.get_ref().clone());
    }
    let drill = p.drill.as_ref().map(|d| {
        let dr = d.get_ref();
        let copy = match &dr.copy {
            Some(cp) => {
                if !copies.contains(cp.get_ref()) {
                    c.err(
                        cp.span(),
                        format!(
                            "plan {name}: drill copy {:?} is not one of the plan's copies ({})",
                            cp.get_ref(),
                            copies.join(", ")
                        ),
                    );
                }
                cp.get_ref().clone()
            }
            None => copies.last().cloned().unwrap_or_default(),
        };
        if let Some(sb) = &dr.sandbox {
            if !sb.is_absolute() {
                c.err(
                    d.span(),
                    format!(
                        "plan {name}: drill sandbox {} is not an absolute path",
                        sb.display()
                    ),
                );
            }
        }
        Drill {
            schedule: c.schedule(&dr.schedule, &format!("plan {name}: drill ")),
            copy,
            sandbox: dr.sandbox.clone(),
        }
    });
    let nice = p.nice.as_ref().and_then(|n| {
        if (-20..=19).contains(n.get_ref()) {
            Some(*n.get_ref())
        } else {
            c.err(
                n.span(),
                format!("plan {name}: nice {} is outside -20..19", n.get_ref()),
            );
            None
        }
    });
    let ionice = p.ionice.as_ref().and_then(|v| {
        parse_ionice(v.get_ref())
            .map_err(|e| c.err(v.span(), format!("plan {name}: {e}")))
            .ok()
    });
    let window = p.window.as_ref().and_then(|w| {
        Window::parse(w.get_ref())
            .map_err(|e| c.err(w.span(), format!("plan {name}: {e}")))
            .ok()
    });
    let schedule = c.schedule(&p.schedule, &format!("plan {name}: "));
    let (rpo, rto) = (
        c.duration(&p.rpo, &format!("plan {name}: rpo")),
        c.duration(&p.rto, &format!("plan {name}: rto")),
    );
    if let (Some(s), Some(rpo), Some(r)) = (&schedule, rpo, &p.rpo) {
        if let Some(gap) = longest_gap(s) {
            if gap > rpo {
                c.warn(
                    r.span(),
                    format!(
                        "plan {name}: the schedule leaves up to {} between runs, more than the rpo of {}: the RPO will be missed between runs; run more often or raise the rpo",
                        crate::duration::human(gap),
                        crate::duration::human(rpo)
                    ),
                );
            }
        }
    }
    let suspect = check_suspect(c, name, p.suspect.as_ref());
    Some(Plan {
        name: name.to_string(),
        source: source?,
        exclude: p.exclude.clone(),
        iexclude: p.iexclude.clone(),
        one_file_system: p.one_file_system,
        tags: p.tags.clone(),
        before: p.before.clone(),
        after: p.after.clone(),
        schedule,
        copies,
        prune: p.prune.unwrap_or(true),
        keep,
        rpo,
        rto,
        drill,
        nice,
        ionice,
        window,
        suspect,
    })
}

/// The plan's `suspect` table, each share from 0 to 1.
fn check_suspect(c: &mut Checker, name: &str, raw: Option<&Spanned<RawSuspect>>) -> Suspect {
    let mut out = Suspect::default();
    let Some(raw) = raw else {
        return out;
    };
    let span = raw.span();
    let r = raw.get_ref();
    out.enabled = r.enabled.unwrap_or(true);
    for (key, v, into) in [
        ("changed", r.changed, &mut out.changed),
        ("incompressible", r.incompressible, &mut out.incompressible),
    ] {
        match v {
            Some(v) if (0.0..=1.0).contains(&v) => *into = v,
            Some(v) => c.err(
                span.clone(),
                format!("plan {name}: suspect.{key} = {v} is not a share; give a number from 0 to 1 (e.g. 0.5 for half)"),
            ),
            None => {}
        }
    }
    match r.history {
        Some(0) => c.err(
            span,
            format!("plan {name}: suspect.history must be at least 1 (backups the baseline is the median of)"),
        ),
        Some(n) => out.history = n,
        None => {}
    }
    out
}

/// Names of plans and repositories become file names and metric labels:
/// letters, digits, '-', '_' and '.', not starting with '.'.
pub(super) fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err("use only letters, digits, '-', '_' and '.' in names (not starting with '.')".into())
    }
}

/// "idle", "best-effort" or "best-effort:N" (N 0..7), "realtime:N" → (class, level).
fn parse_ionice(s: &str) -> Result<(i32, i32), String> {
    let (class, level) = match s.split_once(':') {
        Some((c, l)) => (c, Some(l)),
        None => (s, None),
    };
    let level = match level {
        None => 4,
        Some(l) => match l.parse::<i32>() {
            Ok(n) if (0..=7).contains(&n) => n,
            _ => return Err(format!("ionice level {l:?} is not 0..7")),
        },
    };
    match class {
        "idle" => Ok((3, 0)),
        "best-effort" => Ok((2, level)),
        "realtime" => Ok((1, level)),
        _ => Err(format!(
            "ionice {s:?}: use \"idle\", \"best-effort[:0-7]\" or \"realtime[:0-7]\""
        )),
    }
}

/// The longest wait between two runs the schedule names, over its next 400
/// runs (enough to see the gaps of daily, weekly and monthly schedules).
fn longest_gap(s: &crate::schedule::Schedule) -> Option<Duration> {
    let mut t = s.next_after(&chrono::Local::now())?;
    let mut longest = Duration::ZERO;
    for _ in 0..400 {
        let next = s.next_after(&t)?;
        longest = longest.max((next - t).to_std().ok()?);
        t = next;
    }
    Some(longest)
}
