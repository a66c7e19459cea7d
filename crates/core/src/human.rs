//! Sizes and counts as people read them, for messages the engine writes.

/// 1536 → "1.5 KiB".
pub fn bytes(n: u64) -> String {
    const U: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

/// "1 file", "2 files".
pub fn plural(n: u64, word: &str) -> String {
    count(n, word, &format!("{word}s"))
}

/// "1 match", "2 matches": for words whose plural is not word + s.
pub fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}
