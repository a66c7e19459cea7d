//! A stored tree blob as an index entry and a pack hold it: raw length
//! (u32 LE), blob id (32 bytes), then the sealed blob; opened with the fixed
//! key and decoded as `Repository::read_tree` does.
#![no_main]

use ironvault_core::format::tree::Tree;
use ironvault_core::format::{from_cbor, BlobType, Id};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((raw_len, rest)) = ironvault_fuzz::split::<4>(data) else {
        return;
    };
    let Some((id, sealed)) = ironvault_fuzz::split::<32>(rest) else {
        return;
    };
    let f = ironvault_fuzz::fixture();
    let raw_len = u32::from_le_bytes(raw_len);
    if let Ok(plain) = f
        .repo
        .open_blob(BlobType::Tree, &Id(id), sealed, raw_len, "fuzz")
    {
        let _ = from_cbor::<Tree>(&plain, "tree");
    }
});
