//! A stored lock object, listed and opened with the fixed key, then judged
//! as a lock taker does (stale or live, and its description).
#![no_main]

use ironvault_core::backend::Backend;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let f = ironvault_fuzz::fixture();
    let _ = f.backend.put("locks/fuzz", data);
    ironvault_fuzz::judge_locks();
});
