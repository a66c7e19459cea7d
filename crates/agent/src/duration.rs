//! Durations as operators write them in the config: `90s`, `15m`, `1h30m`, `7d`, `2w`.

use std::time::Duration;

/// Parse a duration: one or more NUMBER UNIT pairs, units s, m, h, d, w.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration; write e.g. \"15m\", \"1h\" or \"1h30m\"".into());
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_whitespace() && num.is_empty() {
            // "1h 30m" reads as "1h30m"; "1 h" stays an error below.
            continue;
        }
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => {
                return Err(format!(
                    "{text:?} is not a duration: unknown unit {c:?}; use s, m, h, d or w (e.g. \"15m\", \"1h30m\")"
                ))
            }
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("{text:?} is not a duration: a number must come before {c:?}"))?;
        num.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{text:?} is too long a duration"))?;
    }
    if !num.is_empty() {
        return Err(format!(
            "{text:?} is not a duration: {num} has no unit; write e.g. \"{num}m\" or \"{num}s\""
        ));
    }
    Ok(Duration::from_secs(total))
}

/// A duration in the units an operator reads: "45 s", "15 min", "2 h 5 min", "3 d 4 h".
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match s {
        0..=119 => format!("{s} s"),
        120..=3599 if sec == 0 || s >= 600 => format!("{m} min"),
        120..=3599 => format!("{m} min {sec} s"),
        3600..=172_799 if m == 0 => format!("{} h", s / 3600),
        3600..=172_799 => format!("{} h {m} min", s / 3600),
        _ if h == 0 => format!("{d} d"),
        _ => format!("{d} d {h} h"),
    }
}

/// Seconds as measured (a step, an RTA): "0.42 s", "41.3 s", "4 min 10 s".
pub fn human_secs(t: f64) -> String {
    if t < 1.0 {
        format!("{t:.2} s")
    } else if t < 120.0 {
        format!("{t:.1} s")
    } else {
        human(Duration::from_secs_f64(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_bad_ones_say_why() {
        assert_eq!(parse("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("2w1d"), Ok(Duration::from_secs(15 * 86_400)));
        assert_eq!(parse(" 45s "), Ok(Duration::from_secs(45)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(parse("1 h").is_err());
        assert!(parse("15").unwrap_err().contains("no unit"));
        assert!(parse("15min").unwrap_err().contains("unknown unit 'i'"));
        assert!(parse("h")
            .unwrap_err()
            .contains("a number must come before"));
        assert!(parse("").unwrap_err().contains("empty"));
        assert!(parse("99999999999999999999w").is_err());
    }

    #[test]
    fn human_durations_read_naturally() {
        assert_eq!(human(Duration::from_secs(45)), "45 s");
        assert_eq!(human(Duration::from_secs(900)), "15 min");
        assert_eq!(human(Duration::from_secs(150)), "2 min 30 s");
        assert_eq!(human(Duration::from_secs(7500)), "2 h 5 min");
        assert_eq!(human(Duration::from_secs(3600)), "1 h");
        assert_eq!(human(Duration::from_secs(3 * 86_400 + 4 * 3600)), "3 d 4 h");
    }
}
