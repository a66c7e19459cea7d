//! Checking the config file: it is read as loose `Raw*` tables (with the
//! span of each value), then checked into the model of `config`, every
//! problem collected with the line it is on and what to change. `plan`
//! checks one `[plan.NAME]`; `files` the files the config names and who may
//! change them.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    site: Option<String>,
    hostname: Option<String>,
    state_dir: Option<Spanned<PathBuf>>,
    listen: Option<Spanned<String>>,
    listen_token_file: Option<Spanned<PathBuf>>,
    refresh: Option<Spanned<String>>,
    alerts: Option<RawAlerts>,
    #[serde(default)]
    repository: BTreeMap<String, Spanned<RawRepo>>,
    #[serde(default)]
    plan: BTreeMap<String, Spanned<RawPlan>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    command: Option<String>,
    webhook: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepo {
    url: Spanned<String>,
    password_file: Option<Spanned<PathBuf>>,
    password_command: Option<String>,
    medium: Option<Spanned<String>>,
    site: Option<String>,
    cacert: Option<Spanned<PathBuf>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    #[serde(default)]
    paths: Vec<String>,
    command: Option<Spanned<String>>,
    filename: Option<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    iexclude: Vec<String>,
    #[serde(default)]
    one_file_system: bool,
    #[serde(default)]
    tags: Vec<String>,
    before: Option<String>,
    after: Option<String>,
    schedule: Option<Spanned<String>>,
    copies: Spanned<Vec<Spanned<String>>>,
    keep: Option<Spanned<Keep>>,
    #[serde(default)]
    keep_on: BTreeMap<String, Spanned<Keep>>,
    prune: Option<bool>,
    rpo: Option<Spanned<String>>,
    rto: Option<Spanned<String>>,
    drill: Option<Spanned<RawDrill>>,
    nice: Option<Spanned<i32>>,
    ionice: Option<Spanned<String>>,
    window: Option<Spanned<String>>,
    suspect: Option<Spanned<RawSuspect>>,
}

/// `[plan.NAME.suspect]`: when a backup is judged a likely mass encryption.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuspect {
    enabled: Option<bool>,
    changed: Option<f64>,
    incompressible: Option<f64>,
    history: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrill {
    schedule: Option<Spanned<String>>,
    copy: Option<Spanned<String>>,
    sandbox: Option<PathBuf>,
}

/// Collects errors with their lines.
struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigError>,
}

impl Checker<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn err(&mut self, span: std::ops::Range<usize>, msg: impl Into<String>) {
        let line = self.line_of(span.start);
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            msg: msg.into(),
        });
    }

    /// Something that works but should be fixed; the config is still used.
    fn warn(&mut self, span: std::ops::Range<usize>, msg: impl Into<String>) {
        let line = self.line_of(span.start);
        self.warnings.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            msg: msg.into(),
        });
    }

    /// The key of the line a span starts on, to name in a message (the
    /// key only: a value may be a secret, as in `env`).
    fn key_at(&self, span: &std::ops::Range<usize>) -> Option<String> {
        let start = span.start.min(self.text.len());
        let from = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let to = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        let (key, _) = self.text[from..to].split_once('=')?;
        let key = key.trim();
        (!key.is_empty() && !key.starts_with('[')).then(|| key.to_string())
    }

    fn duration(&mut self, v: &Option<Spanned<String>>, key: &str) -> Option<Duration> {
        let v = v.as_ref()?;
        match duration::parse(v.get_ref()) {
            Ok(d) if d.is_zero() => {
                self.err(v.span(), format!("{key} must be longer than 0"));
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.err(v.span(), format!("{key}: {e}"));
                None
            }
        }
    }

    fn schedule(&mut self, v: &Option<Spanned<String>>, prefix: &str) -> Option<Schedule> {
        let v = v.as_ref()?;
        Schedule::parse(v.get_ref())
            .map_err(|e| self.err(v.span(), format!("{prefix}{e}")))
            .ok()
    }
}

/// Read and check a config file.
pub fn load(file: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "no config file; write one (docs/config.md has a commented example) or pass --config FILE (default {DEFAULT_PATH})"
            )
        } else {
            format!("cannot read the config file: {e}")
        };
        ConfigErrors(vec![ConfigError {
            file: file.to_path_buf(),
            line: 0,
            msg: hint,
        }])
    })?;
    check_config_file(file).map_err(|e| ConfigErrors(vec![e]))?;
    let mut cfg = parse(file, &text)?;
    // `env` may hold object-storage keys: the file should be private then.
    if cfg.repositories.values().any(|r| !r.env.is_empty()) {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(file) {
            if m.permissions().mode() & 0o004 != 0 {
                cfg.warnings.insert(
                    0,
                    ConfigError {
                        file: file.to_path_buf(),
                        line: 0,
                        msg: format!(
                            "the config sets repository env (credentials?) and can be read by every user of this host; chmod 600 {}",
                            file.display()
                        ),
                    },
                );
            }
        }
    }
    Ok(cfg)
}

/// Check config text (`file` is only for messages).
pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let mut c = Checker {
        file,
        text,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let raw: RawConfig = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let mut msg = e.message().trim().to_string();
            if msg.starts_with("unknown field") {
                msg.push_str(" (a misspelt key? docs/config.md lists every key)");
            } else if msg.starts_with("invalid") {
                // A value of the wrong type: name its key, and never echo a
                // string value (it may be a secret, as in `env`).
                msg = redact_strings(&msg);
                if let Some(key) = c.key_at(&span) {
                    msg = format!("{msg}, in the value of `{key}`");
                }
            }
            c.err(span, msg);
            return Err(ConfigErrors(c.errors));
        }
    };
    let mut cfg = check(&mut c, raw);
    if c.errors.is_empty() {
        c.warnings.sort_by_key(|e| e.line);
        cfg.warnings = c.warnings;
        Ok(cfg)
    } else {
        // In the order of the file, as an editor shows them.
        c.errors.sort_by_key(|e| e.line);
        Err(ConfigErrors(c.errors))
    }
}

/// A message with every double-quoted string replaced by `"..."`.
fn redact_strings(msg: &str) -> String {
    let mut out = String::new();
    let mut rest = msg;
    while let Some(i) = rest.find('"') {
        out.push_str(&rest[..=i]);
        match rest[i + 1..].find('"') {
            Some(j) => {
                out.push_str("...\"");
                rest = &rest[i + 1 + j + 1..];
            }
            None => {
                out.push_str("...");
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// A repository's location compared as the same place: a trailing `/`, and
/// for a directory that exists, symlinks and `..`, make no difference.
fn same_place(url: &str) -> String {
    let trimmed = url.trim().trim_end_matches('/');
    if trimmed.starts_with('/') {
        if let Ok(p) = std::fs::canonicalize(trimmed) {
            return p.to_string_lossy().into_owned();
        }
    }
    trimmed.to_string()
}

fn check(c: &mut Checker, raw: RawConfig) -> Config {
    let mut repositories = BTreeMap::new();
    let mut places: BTreeMap<String, String> = BTreeMap::new();
    for (name, r) in &raw.repository {
        let span = r.span();
        if let Err(e) = check_name(name) {
            c.err(span.clone(), format!("repository {name:?}: {e}"));
        }
        // One repository under two names would count as two copies.
        let place = same_place(r.get_ref().url.get_ref());
        if let Some(other) = places.get(&place) {
            c.err(
                r.get_ref().url.span(),
                format!("repository {name}: url is the same repository as {other}'s; one repository is one copy, so give each name its own repository"),
            );
        } else {
            places.insert(place, name.clone());
        }
        let r = r.get_ref();
        let url = r.url.get_ref().trim().to_string();
        let object = url.starts_with("s3:") || url.starts_with("rest:");
        if url.is_empty() {
            c.err(r.url.span(), format!("repository {name}: url is empty; give a directory or s3:https://HOST/BUCKET[/PREFIX]"));
        } else if !object && !url.starts_with('/') {
            c.err(r.url.span(), format!("repository {name}: url {url:?} is neither an absolute directory, s3:http(s)://HOST/BUCKET[/PREFIX] nor rest:https://HOST:PORT/NAME"));
        } else if url.starts_with("rest:") {
            if let Err(e) = ironvault_core::backend::rest::RestLocation::parse(&url) {
                c.err(r.url.span(), format!("repository {name}: {e}"));
            }
        } else if object {
            if let Err(e) = ironvault_core::backend::s3::S3Location::parse(&url) {
                c.err(r.url.span(), format!("repository {name}: {e}"));
            }
        }
        let medium = match r.medium.as_ref().map(|m| (m.get_ref().as_str(), m.span())) {
            None => {
                if object {
                    MediumKind::Object
                } else {
                    MediumKind::Disk
                }
            }
            Some(("disk", s)) => {
                if object {
                    c.err(s, format!("repository {name}: medium is \"disk\" but the url is object storage (s3:) or a repository server (rest:); write medium = \"object\""));
                }
                MediumKind::Disk
            }
            Some(("object", s)) => {
                if !object {
                    c.err(s, format!("repository {name}: medium is \"object\" but the url is a directory; write medium = \"disk\" (a directory on a mounted bucket is still a disk path to ironvault)"));
                }
                MediumKind::Object
            }
            Some((other, s)) => {
                c.err(
                    s,
                    format!(
                        "repository {name}: unknown medium {other:?}; use \"disk\" or \"object\""
                    ),
                );
                MediumKind::Disk
            }
        };
        match (&r.password_file, &r.password_command) {
            (Some(_), Some(_)) => c.err(span.clone(), format!("repository {name}: give password_file or password_command, not both")),
            (None, None) => c.err(span.clone(), format!("repository {name}: no password source; add password_file = \"/etc/ironvault/{name}.pass\" (first line is the password) or password_command")),
            (Some(f), None) => check_password_file(c, name, f),
            _ => {}
        }
        if let Some(ca) = &r.cacert {
            if let Err(e) = std::fs::File::open(ca.get_ref()) {
                c.err(
                    ca.span(),
                    format!(
                        "repository {name}: cannot read cacert {} ({e})",
                        ca.get_ref().display()
                    ),
                );
            }
        }
        repositories.insert(
            name.clone(),
            Repository {
                name: name.clone(),
                url,
                password_file: r.password_file.as_ref().map(|f| f.get_ref().clone()),
                password_command: r.password_command.clone(),
                medium,
                site: r.site.clone(),
                cacert: r.cacert.as_ref().map(|f| f.get_ref().clone()),
                env: r.env.clone(),
            },
        );
    }
    let mut plans = BTreeMap::new();
    for (name, p) in &raw.plan {
        if let Some(plan) = check_plan(c, name, p, &repositories) {
            plans.insert(name.clone(), plan);
        }
    }
    let alerts = raw.alerts.as_ref().map(|a| {
        if let Some(w) = &a.webhook {
            let u = w.get_ref();
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                c.err(
                    w.span(),
                    format!("alerts: webhook {u:?} must be an http:// or https:// URL"),
                );
            }
        }
        Alerts {
            command: a.command.clone(),
            webhook: a.webhook.as_ref().map(|w| w.get_ref().clone()),
        }
    });
    let (listen, listen_token_file) =
        check_listen(c, raw.listen.as_ref(), raw.listen_token_file.as_ref());
    if let Some(d) = &raw.state_dir {
        if !d.get_ref().is_absolute() {
            c.err(
                d.span(),
                format!(
                    "state_dir {} is not an absolute path",
                    d.get_ref().display()
                ),
            );
        }
    }
    let refresh = c
        .duration(&raw.refresh, "refresh")
        .unwrap_or(Duration::from_secs(300));
    Config {
        file: c.file.to_path_buf(),
        refresh,
        site: raw.site.clone(),
        hostname: raw
            .hostname
            .clone()
            .unwrap_or_else(ironvault_core::host::hostname),
        state_dir: raw
            .state_dir
            .as_ref()
            .map(|d| d.get_ref().clone())
            .unwrap_or_else(|| PathBuf::from("/var/lib/ironvault")),
        listen,
        listen_token_file,
        alerts: alerts.unwrap_or_default(),
        repositories,
        plans,
        warnings: Vec::new(),
    }
}

mod files;
mod plan;
pub use files::{changeable_by_others, read_token};
use files::{check_config_file, check_listen, check_password_file};
use plan::{check_name, check_plan};
