//! An index file's plaintext (the binary form before compression), which
//! is compressed and sealed under the fixed key as a writer does, then
//! opened and parsed.
#![no_main]

use ironvault_core::crypto::{ad, seal};
use ironvault_core::format::index::IndexFile;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let f = ironvault_fuzz::fixture();
    let Ok(z) = zstd::bulk::compress(data, 1) else {
        return;
    };
    let sealed = seal(f.repo.master_key(), ad::INDEX, &z);
    let _ = IndexFile::open(f.repo.master_key(), &sealed, "index/fuzz");
});
