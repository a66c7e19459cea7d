//! Human-readable sizes and durations, and names made safe for a terminal.

pub use ironvault_core::human::{bytes, count, plural};

/// A name from a repository as text safe to print on a terminal, as `ls -b`
/// does: control characters (C0, DEL and C1, which terminals read as
/// commands), bidirectional overrides, line separators and bytes that are
/// not UTF-8 are written as escapes (`\n`, `\t`, `\r`, `\x1b`, `\u{9b}`),
/// and `\` as `\\` so that an escape cannot be faked. Anyone who can back
/// up a file names it, so a name must not drive the terminal of whoever
/// lists the snapshot. JSON output keeps the exact names instead.
pub fn escape(name: &[u8]) -> String {
    escape_with(name, true)
}

/// `escape` for text (host names, tags, paths of a snapshot).
pub fn escape_str(s: &str) -> String {
    escape(s.as_bytes())
}

/// JSON text made safe for a terminal: JSON escapes C0 controls and `\`
/// itself, but not DEL, C1 controls or bidirectional overrides.
pub fn escape_json_text(json: &str) -> String {
    escape_with(json.as_bytes(), false)
}

fn escape_with(name: &[u8], backslash: bool) -> String {
    let mut out = String::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' if backslash => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if (c as u32) < 0x80 && c.is_control() => {
                    out.push_str(&format!("\\x{:02x}", c as u32))
                }
                c if c.is_control() || is_invisible_format(c) => {
                    out.push_str(&format!("\\u{{{:x}}}", c as u32))
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Characters that reorder or break what a terminal shows without being
/// controls: bidirectional marks, embeddings, overrides and isolates, and
/// the line and paragraph separators.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

/// Seconds as "1.23 s" or "2m03s".
pub fn duration(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.2} s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// "S3: 12 requests (3 PUT, 5 GET, 4 LIST, 0 DELETE), 33.1 MiB sent, 2.0 KiB received".
pub fn transfer_line(b: &dyn ironvault_core::backend::Backend) -> Option<String> {
    let t = b.transfer_stats()?;
    Some(format!(
        "Storage: {} ({} PUT, {} GET, {} LIST, {} DELETE), {} sent, {} received",
        plural(t.requests, "request"),
        t.puts,
        t.gets,
        t.lists,
        t.deletes,
        bytes(t.bytes_sent),
        bytes(t.bytes_received)
    ))
}

/// The same for a JSON summary (None, printed as null, for backends that do not count).
pub fn storage_stats(
    b: &dyn ironvault_core::backend::Backend,
) -> Option<ironvault_core::contract::summary::StorageStats> {
    b.transfer_stats().map(Into::into)
}

/// What keeps this host from deleting the repository's objects, for a
/// `--json` summary. A storage that cannot say is taken as one where
/// nothing does: a fact is only what was read back.
pub fn immutability(
    b: &dyn ironvault_core::backend::Backend,
) -> Option<ironvault_core::contract::summary::ImmutabilityFact> {
    b.immutability()
        .ok()
        .flatten()
        .map(|i| ironvault_core::contract::summary::ImmutabilityFact::new(&i))
}

/// Parse a size: plain bytes or with a binary suffix K, M, G, T (e.g. "500M", "1.5G").
pub fn parse_size(s: &str) -> Result<u64, String> {
    let mut t = s.trim();
    // "2GiB", "2GB" and "2G" mean the same (powers of 1024, as sizes are shown).
    for suffix in ["iB", "ib", "B", "b"] {
        if let Some(x) = t.strip_suffix(suffix) {
            if x.ends_with(|c: char| "kKmMgGtT".contains(c)) {
                t = x;
                break;
            }
        }
    }
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("'{s}': unknown size unit '{c}'; use K, M, G or T")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v >= 0.0 && v.is_finite() => Ok((v * mult as f64) as u64),
        _ => Err(format!("'{s}' is not a size; give e.g. 500M or 10G")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::bytes(10), "10 B");
        assert_eq!(super::bytes(1536), "1.5 KiB");
        assert_eq!(super::bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn names_cannot_drive_the_terminal() {
        use super::escape;
        assert_eq!(escape(b"plain name.txt"), "plain name.txt");
        assert_eq!(
            escape("caf\u{e9} \u{1f600}".as_bytes()),
            "caf\u{e9} \u{1f600}"
        );
        assert_eq!(escape(b"a\x1b[2Jb\nc\td\re"), "a\\x1b[2Jb\\nc\\td\\re");
        assert_eq!(escape(b"\x07\x7f\x00"), "\\x07\\x7f\\x00");
        // C1 CSI, an override that reverses what follows, a line separator.
        assert_eq!(
            escape("x\u{9b}31m\u{202e}gpj.exe\u{2028}".as_bytes()),
            "x\\u{9b}31m\\u{202e}gpj.exe\\u{2028}"
        );
        // Not UTF-8, and a backslash that would otherwise fake an escape.
        assert_eq!(escape(b"\xff\xfeok"), "\\xff\\xfeok");
        assert_eq!(escape(b"a\\x1b"), "a\\\\x1b");
        // JSON text: its own escapes stay, what JSON leaves raw is escaped.
        assert_eq!(
            super::escape_json_text("{\"h\":\"a\\u001b\u{9b}\u{7f}\"}"),
            "{\"h\":\"a\\u001b\\u{9b}\\x7f\"}"
        );
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(super::parse_size("1024"), Ok(1024));
        assert_eq!(super::parse_size("500M"), Ok(500 << 20));
        assert_eq!(super::parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(super::parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(super::parse_size("2GB"), Ok(2 << 30));
        assert!(super::parse_size("5X").is_err());
        assert!(super::parse_size("-1K").is_err());
    }
}
