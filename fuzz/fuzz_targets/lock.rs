//! A lock's plaintext (CBOR), sealed under the fixed key as a lock holder
//! writes it, then listed, opened and judged as a lock taker does.
#![no_main]

use ironvault_core::backend::Backend;
use ironvault_core::crypto::{ad, seal};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let f = ironvault_fuzz::fixture();
    let _ = f
        .backend
        .put("locks/fuzz", &seal(f.repo.master_key(), ad::LOCK, data));
    ironvault_fuzz::judge_locks();
});
