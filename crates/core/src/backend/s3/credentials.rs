//! Credentials for S3: the environment, else an AWS profile file.

use crate::error::{Error, Result};

/// Credentials found in the environment or a profile file.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Credentials {
    pub(super) key_id: String,
    pub(super) secret: String,
    pub(super) token: Option<String>,
    pub(super) region: Option<String>,
}

/// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, else the
/// profile `AWS_PROFILE` (or "default") of `AWS_SHARED_CREDENTIALS_FILE` (or
/// ~/.aws/credentials). Region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the
/// profile's region in ~/.aws/config (`AWS_CONFIG_FILE`), else us-east-1.
pub(super) fn find_credentials(env: &dyn Fn(&str) -> Option<String>) -> Result<Credentials> {
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let home = env("HOME").unwrap_or_default();
    let region_env = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION"));
    let config_file = env("AWS_CONFIG_FILE").unwrap_or_else(|| format!("{home}/.aws/config"));
    let config_section = if profile == "default" {
        "default".to_string()
    } else {
        format!("profile {profile}")
    };
    let region = region_env.or_else(|| {
        std::fs::read_to_string(&config_file)
            .ok()
            .and_then(|t| ini_value(&t, &config_section, "region"))
    });
    if let (Some(key_id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Credentials {
            key_id,
            secret,
            token: env("AWS_SESSION_TOKEN"),
            region,
        });
    }
    let file =
        env("AWS_SHARED_CREDENTIALS_FILE").unwrap_or_else(|| format!("{home}/.aws/credentials"));
    let missing = || {
        Error::Usage(format!(
            "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or put profile [{profile}] in {file} (AWS_PROFILE chooses the profile)"
        ))
    };
    let text = std::fs::read_to_string(&file).map_err(|_| missing())?;
    match (
        ini_value(&text, &profile, "aws_access_key_id"),
        ini_value(&text, &profile, "aws_secret_access_key"),
    ) {
        (Some(key_id), Some(secret)) => Ok(Credentials {
            key_id,
            secret,
            token: ini_value(&text, &profile, "aws_session_token"),
            region,
        }),
        _ => Err(missing()),
    }
}

/// The value of `key` in `[section]` of an INI text (the AWS profile files).
fn ini_value(text: &str, section: &str, key: &str) -> Option<String> {
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = s.trim().to_string();
        } else if current == section {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == key {
                    return Some(v.trim().to_string());
                }
            }
        }
    }
    None
}
