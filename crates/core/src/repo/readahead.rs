//! Read-ahead for remote storage: one request per blob costs a round trip
//! each, which makes a restore of many small files from S3 take minutes. A
//! read of a data blob from a remote pack fetches a window of the pack from
//! the blob onwards, and the next reads that fall inside a recent window are
//! served from memory. Restore and copy read packs mostly forwards (a backup
//! packs blobs in the order it walks, which is the order they are restored),
//! so most blobs come out of a window. Blobs are still verified one by one
//! after they leave the window (their keyed id and AEAD tag).

use crate::format::Id;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Bytes fetched past the start of a missed blob.
pub const WINDOW: u64 = 4 << 20;
/// Windows kept (across all threads): bounds the memory to SPANS × WINDOW.
pub const SPANS: usize = 8;

struct Span {
    pack: Id,
    start: u64,
    data: Vec<u8>,
}

/// Recently fetched windows of packs, newest first.
#[derive(Default)]
pub struct ReadAhead {
    spans: Mutex<VecDeque<Arc<Span>>>,
}

impl ReadAhead {
    /// The bytes [offset, offset+len) of `pack` if a recent window holds them.
    pub fn lookup(&self, pack: &Id, offset: u64, len: u64) -> Option<Vec<u8>> {
        let spans = self.spans.lock().ok()?;
        spans.iter().find_map(|s| {
            let end = s.start + s.data.len() as u64;
            (s.pack == *pack && s.start <= offset && offset + len <= end).then(|| {
                let a = (offset - s.start) as usize;
                s.data[a..a + len as usize].to_vec()
            })
        })
    }

    /// The range to fetch for a missed blob: from it, at least WINDOW bytes
    /// (or the blob) but not past the pack's end.
    pub fn window(offset: u64, len: u64, pack_size: u64) -> (u64, u64) {
        let end = (offset + len.max(WINDOW)).min(pack_size.max(offset + len));
        (offset, end - offset)
    }

    /// Remember a fetched window.
    pub fn insert(&self, pack: Id, start: u64, data: Vec<u8>) {
        if let Ok(mut spans) = self.spans.lock() {
            spans.push_front(Arc::new(Span { pack, start, data }));
            spans.truncate(SPANS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_serve_later_blobs_and_stay_bounded() {
        let ra = ReadAhead::default();
        let p = Id::random();
        assert_eq!(ReadAhead::window(100, 10, 16 << 20), (100, WINDOW));
        assert_eq!(ReadAhead::window(100, 10, 1000), (100, 900));
        assert_eq!(ReadAhead::window(0, 9 << 20, 8 << 20), (0, 9 << 20));
        ra.insert(p, 100, (0..=255u8).cycle().take(900).collect());
        assert_eq!(ra.lookup(&p, 100, 3).unwrap(), vec![0, 1, 2]);
        assert_eq!(ra.lookup(&p, 356, 2).unwrap(), vec![0, 1]);
        assert!(ra.lookup(&p, 990, 20).is_none(), "past the window");
        assert!(ra.lookup(&Id::random(), 100, 3).is_none(), "another pack");
        for _ in 0..SPANS {
            ra.insert(Id::random(), 0, vec![0; 10]);
        }
        assert!(ra.lookup(&p, 100, 3).is_none(), "oldest window dropped");
    }
}
