//! A stored index file, opened with the fixed key.
#![no_main]

use ironvault_core::format::index::IndexFile;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let f = ironvault_fuzz::fixture();
    let _ = IndexFile::open(f.repo.master_key(), data, "index/fuzz");
});
