//! A snapshot's plaintext (CBOR), saved under the fixed key as a backup
//! does, then listed, verified and decoded.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let f = ironvault_fuzz::fixture();
    if f.repo.save_snapshot_plain(data).is_ok() {
        if let Ok((snaps, _)) = f.repo.list_snapshots() {
            for (_, s) in snaps {
                let _ = s.parsed_time();
            }
        }
    }
    f.backend.remove_prefix("snapshots/");
});
