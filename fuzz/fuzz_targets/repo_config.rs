//! A repository config's sealed body (CBOR): sealed under the fixed key into
//! the fixture's envelope (its format version and id), then opened and
//! checked as opening a repository does.
#![no_main]

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ironvault_core::crypto::{ad, seal};
use ironvault_core::format::config::Config;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let f = ironvault_fuzz::fixture();
    let mut envelope = ironvault_fuzz::fixture_envelope().clone();
    envelope["sealed"] = B64
        .encode(seal(f.repo.master_key(), ad::CONFIG, data))
        .into();
    let Ok(bytes) = serde_json::to_vec(&envelope) else {
        return;
    };
    let _ = Config::open(&bytes, f.repo.master_key());
});
