//! The one time format of every JSON document the binary prints: RFC 3339
//! with a numeric offset, fractional seconds when there are any
//! (`2026-01-02T03:04:05.123456789+01:00`, UTC as `+00:00`), as restic
//! prints times. Snapshot times keep the offset they were recorded with;
//! the agent's history and status print UTC.

use chrono::{DateTime, Utc};
use serde::Serializer;

/// A recorded time (a snapshot's, a key's) in the one format; a string that
/// is not RFC 3339 (a damaged object) is shown as it is.
pub fn normalise(recorded: &str) -> String {
    DateTime::parse_from_rfc3339(recorded)
        .map(|d| d.to_rfc3339())
        .unwrap_or_else(|_| recorded.to_string())
}

/// `t` in the one format.
pub fn utc(t: &DateTime<Utc>) -> String {
    t.to_rfc3339()
}

/// `serialize_with` for a `DateTime<Utc>` field (chrono's own prints `Z`).
pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&utc(t))
}

/// `serialize_with` for an `Option<DateTime<Utc>>` field.
pub fn serialize_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => serialize(t, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_format_with_a_numeric_offset() {
        assert_eq!(
            normalise("2026-01-02T03:04:05Z"),
            "2026-01-02T03:04:05+00:00"
        );
        assert_eq!(
            normalise("2026-01-02t03:04:05.5+01:00"),
            "2026-01-02T03:04:05.500+01:00"
        );
        assert_eq!(normalise("not a time"), "not a time");
        let t = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(utc(&t), "2026-01-02T03:04:05.123456789+00:00");
        let json = serde_json::to_string(&Some(t).map(|t| utc(&t))).unwrap();
        assert_eq!(json, "\"2026-01-02T03:04:05.123456789+00:00\"");
    }
}
