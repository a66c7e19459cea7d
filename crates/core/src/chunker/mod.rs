//! Content-defined chunking: FastCDC 2020 from the `fastcdc` crate with the
//! gear table mixed with the repository's chunker seed (format.md §4). The
//! boundaries depend only on the bytes, the sizes and the seed.

use crate::format::config::ChunkerParams;
use fastcdc::v2020::{FastCDC, Normalization};

/// Chunk boundaries for one repository.
#[derive(Clone)]
pub struct Chunker {
    min: u32,
    avg: u32,
    max: u32,
    seed: u64,
}

impl Chunker {
    /// A chunker with the repository's parameters and seed.
    pub fn new(p: &ChunkerParams, seed: u64) -> Chunker {
        Chunker {
            min: p.min,
            avg: p.avg,
            max: p.max,
            seed,
        }
    }

    /// Largest chunk this chunker can emit.
    pub fn max_size(&self) -> usize {
        self.max as usize
    }

    /// Smallest chunk (except the last one of a stream).
    pub fn min_size(&self) -> usize {
        self.min as usize
    }

    /// Length of the first chunk of `buf`. If `eof` is false and no cut point
    /// is found before the buffer ends, returns None (more data is needed).
    pub fn next_cut(&self, buf: &[u8], eof: bool) -> Option<usize> {
        if buf.is_empty() {
            return None;
        }
        if buf.len() <= self.min as usize {
            return if eof { Some(buf.len()) } else { None };
        }
        let mut c = FastCDC::with_level_and_seed(
            buf,
            self.min,
            self.avg,
            self.max,
            Normalization::Level1,
            self.seed,
        );
        let first = c.next()?;
        if first.length < buf.len() || eof || buf.len() >= self.max as usize {
            Some(first.length)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u64) -> Vec<u8> {
        // xorshift: deterministic pseudo-random bytes
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn cuts(c: &Chunker, d: &[u8]) -> Vec<usize> {
        let mut out = vec![];
        let mut pos = 0;
        while let Some(n) = c.next_cut(&d[pos..], true) {
            out.push(n);
            pos += n;
        }
        out
    }

    /// The boundaries are part of the format: a change here breaks dedup
    /// against existing repositories. These values pin fastcdc's behaviour.
    #[test]
    fn boundaries_are_deterministic() {
        let c = Chunker::new(&ChunkerParams::default(), 0x1234_5678_9abc_def0);
        let d = data(16 << 20, 42);
        let got = cuts(&c, &d);
        assert_eq!(got.iter().sum::<usize>(), d.len());
        assert_eq!(got, cuts(&c, &d));
        let pinned: Vec<usize> = got.iter().take(4).copied().collect();
        assert_eq!(
            pinned, PINNED,
            "chunk boundaries changed: the format would break"
        );
        let other = Chunker::new(&ChunkerParams::default(), 1);
        assert_ne!(cuts(&other, &d), got, "the seed must change boundaries");
    }

    const PINNED: [usize; 4] = [2_705_011, 842_327, 637_484, 1_695_906];

    #[test]
    fn insert_shifts_few_chunks() {
        let c = Chunker::new(&ChunkerParams::default(), 99);
        let d = data(32 << 20, 7);
        let mut e = d.clone();
        e.splice(16 << 20..16 << 20, std::iter::repeat_n(0xAB, 1024));
        let set = |v: &[u8]| {
            let mut s = std::collections::HashSet::new();
            let mut pos = 0;
            for n in cuts(&c, v) {
                s.insert(blake3::hash(&v[pos..pos + n]));
                pos += n;
            }
            s
        };
        let a = set(&d);
        let b = set(&e);
        let new = b.difference(&a).count();
        assert!(new <= 3, "{new} new chunks after a 1 KiB insert");
    }
}
