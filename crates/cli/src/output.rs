//! Human-readable sizes and durations.

pub use ironvault_core::human::{bytes, count, plural};

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

/// The same as JSON (null for backends that do not count).
pub fn transfer_json(b: &dyn ironvault_core::backend::Backend) -> serde_json::Value {
    match b.transfer_stats() {
        None => serde_json::Value::Null,
        Some(t) => serde_json::json!({
            "requests": t.requests, "puts": t.puts, "gets": t.gets, "lists": t.lists,
            "deletes": t.deletes, "bytes_sent": t.bytes_sent, "bytes_received": t.bytes_received,
        }),
    }
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
