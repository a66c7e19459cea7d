//! A stored repository config object (clear JSON envelope, sealed body),
//! checked and opened with the fixed key.
#![no_main]

use ironvault_core::format::config::Config;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let f = ironvault_fuzz::fixture();
    let _ = Config::check_envelope(data);
    let _ = Config::open(data, f.repo.master_key());
});
