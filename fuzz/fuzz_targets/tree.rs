//! A tree blob's plaintext (CBOR), sealed as the packer stores blobs under
//! the fixed key, then opened, verified and decoded as `read_tree` does.
#![no_main]

use ironvault_core::format::tree::Tree;
use ironvault_core::format::{from_cbor, BlobType};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let f = ironvault_fuzz::fixture();
    let id = f.repo.id_keys().blob_id(BlobType::Tree, data);
    let sealed = f.repo.seal_blob(BlobType::Tree, &id, data, 0);
    if let Ok(plain) = f
        .repo
        .open_blob(BlobType::Tree, &id, &sealed, data.len() as u32, "fuzz")
    {
        if let Ok(tree) = from_cbor::<Tree>(&plain, "tree") {
            let _ = tree.find(b"fuzz");
        }
    }
});
