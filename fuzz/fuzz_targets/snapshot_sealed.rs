//! A stored snapshot object: its id (32 bytes, the object's name), then its
//! bytes; listed and opened with the fixed key.
#![no_main]

use ironvault_core::backend::Backend;
use ironvault_core::format::Id;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((id, stored)) = ironvault_fuzz::split::<32>(data) else {
        return;
    };
    let f = ironvault_fuzz::fixture();
    let _ = f
        .backend
        .put(&format!("snapshots/{}", Id(id).to_hex()), stored);
    let _ = f.repo.list_snapshots();
    f.backend.remove_prefix("snapshots/");
});
