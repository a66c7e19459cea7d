//! A stored key file (clear JSON): parsed, and when its KDF parameters are
//! cheap enough to try per input, unwrapped with the generator's password.
#![no_main]

use ironvault_core::crypto::keyfile::KeyFile;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(k) = KeyFile::parse(data, "fuzz") else {
        return;
    };
    // The parser bounds memory at 4 GiB; trying such a key per input would
    // stall the fuzzer, so only the cheapest parameters reach the unwrap.
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let cost = |field: &str| json["kdf"][field].as_u64().unwrap_or(u64::MAX);
    if cost("memory_kib") <= 64 && cost("iterations") <= 2 && cost("parallelism") <= 2 {
        let _ = k.unwrap_master(ironvault_fuzz::KEY_FILE_PASSWORD, "fuzz");
    }
});
