//! The agent's config file (TOML), parsed and checked as `ironvault agent`
//! and `config check` do.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ironvault_agent::config::parse(std::path::Path::new("/fuzz/ironvault.toml"), text);
});
