//! Read-ahead for remote storage: one request per blob costs a round trip
//! each, which makes a restore of many small files from S3 take minutes. A
//! read of a data blob from a remote pack fetches a window of the pack from
//! the blob onwards, and the next reads that fall inside a recent window are
//! served from memory. Restore and copy read packs mostly forwards (a backup
//! packs blobs in the order it walks, which is the order they are restored),
//! so most blobs come out of a window. A window is fetched by one thread;
//! others that need a blob inside it wait for that fetch instead of starting
//! their own. Blobs are still verified one by one after they leave the window
//! (their keyed id and AEAD tag).

use crate::error::Result;
use crate::format::Id;
use crate::sync::Locked;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

/// Bytes fetched past the start of a missed blob.
pub const WINDOW: u64 = 4 << 20;
/// Windows kept (fetched or being fetched, across all threads), newest
/// first: together at most SPANS × WINDOW bytes. A blob larger than a window
/// is read alone and not kept.
pub const SPANS: usize = 8;

struct Span {
    pack: Id,
    start: u64,
    end: u64,
    /// The window's bytes once fetched; None if the fetch failed.
    data: OnceLock<Option<Vec<u8>>>,
}

/// Recently fetched windows of packs.
#[derive(Default)]
pub struct ReadAhead {
    spans: Mutex<VecDeque<Arc<Span>>>,
}

impl ReadAhead {
    /// The range to fetch for a missed blob: from it, at least WINDOW bytes
    /// (or the blob) but not past the pack's end.
    pub fn window(offset: u64, len: u64, pack_size: u64) -> (u64, u64) {
        let end = (offset + len.max(WINDOW)).min(pack_size.max(offset + len));
        (offset, end - offset)
    }

    /// Bytes [offset, offset+len) of `pack` (`pack_size` bytes long), from a
    /// window if one holds or will hold them, else by fetching a new window
    /// with `fetch(start, len)`.
    pub fn read(
        &self,
        pack: &Id,
        offset: u64,
        len: u64,
        pack_size: u64,
        fetch: &dyn Fn(u64, u64) -> Result<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let (start, wlen) = Self::window(offset, len, pack_size);
        if wlen > WINDOW {
            return fetch(offset, len);
        }
        let span = {
            let mut spans = self.spans.locked();
            let found = spans
                .iter()
                .find(|s| s.pack == *pack && s.start <= offset && offset + len <= s.end)
                .cloned();
            found.unwrap_or_else(|| {
                let s = Arc::new(Span {
                    pack: *pack,
                    start,
                    end: start + wlen,
                    data: OnceLock::new(),
                });
                spans.push_front(s.clone());
                spans.truncate(SPANS);
                s
            })
        };
        // One thread fetches; the others asking for the same window wait.
        let data = span
            .data
            .get_or_init(|| fetch(span.start, span.end - span.start).ok());
        match data {
            Some(d) if (offset - span.start + len) as usize <= d.len() => {
                let a = (offset - span.start) as usize;
                Ok(d[a..a + len as usize].to_vec())
            }
            // The window could not be read (or came back short): read just
            // the blob, so an error names what is really wrong.
            _ => fetch(offset, len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn windows_serve_later_blobs_and_stay_bounded() {
        let ra = ReadAhead::default();
        let p = Id::random();
        assert_eq!(ReadAhead::window(100, 10, 16 << 20), (100, WINDOW));
        assert_eq!(ReadAhead::window(100, 10, 1000), (100, 900));
        assert_eq!(ReadAhead::window(0, 9 << 20, 8 << 20), (0, 9 << 20));
        let pack: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let calls = AtomicUsize::new(0);
        let fetch = |o: u64, l: u64| {
            calls.fetch_add(1, Ordering::Relaxed);
            Ok(pack[o as usize..(o + l) as usize].to_vec())
        };
        assert_eq!(
            ra.read(&p, 100, 3, 1000, &fetch).unwrap(),
            vec![100, 101, 102]
        );
        assert_eq!(ra.read(&p, 356, 2, 1000, &fetch).unwrap(), vec![100, 101]);
        assert_eq!(
            calls.load(Ordering::Relaxed),
            1,
            "the second read came from the window"
        );
        assert_eq!(ra.read(&p, 50, 2, 1000, &fetch).unwrap(), vec![50, 51]);
        assert_eq!(
            calls.load(Ordering::Relaxed),
            2,
            "before the window: a new fetch"
        );
        for _ in 0..SPANS {
            ra.read(&Id::random(), 0, 1, 10, &|_, _| Ok(vec![0; 10]))
                .unwrap();
        }
        ra.read(&p, 100, 3, 1000, &fetch).unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 3, "oldest windows dropped");
        // A failed window fetch falls back to reading the blob alone.
        let q = Id::random();
        let flaky = |o: u64, l: u64| {
            if l > 3 {
                Err(crate::error::Error::Internal("window failed".into()))
            } else {
                Ok(pack[o as usize..(o + l) as usize].to_vec())
            }
        };
        assert_eq!(ra.read(&q, 10, 3, 1000, &flaky).unwrap(), vec![10, 11, 12]);
    }

    #[test]
    fn threads_wanting_one_window_fetch_it_once() {
        let ra = ReadAhead::default();
        let p = Id::random();
        let calls = AtomicUsize::new(0);
        let fetch = |o: u64, l: u64| {
            calls.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(std::time::Duration::from_millis(50));
            Ok(vec![7u8; l as usize]
                .into_iter()
                .map(|b| b ^ (o as u8))
                .collect())
        };
        std::thread::scope(|s| {
            for i in 0..4u64 {
                let (ra, fetch, p) = (&ra, &fetch, &p);
                s.spawn(move || {
                    // All want blobs at the start of the pack: whichever thread
                    // comes first opens the window, the others wait for it.
                    ra.read(p, 0, 100 + i, 16 << 20, fetch).unwrap();
                });
            }
        });
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }
}
