//! A pack header's plaintext: the first 8 bytes of the input are the pack's
//! size (u64 LE), the rest the header, which is sealed under the fixed key
//! and framed as the packer does before the catalog reads it back.
#![no_main]

use ironvault_core::crypto::{ad, seal};
use ironvault_core::format::pack::MAGIC;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((size, header)) = ironvault_fuzz::split::<8>(data) else {
        return;
    };
    let f = ironvault_fuzz::fixture();
    let mut tail = seal(f.repo.master_key(), ad::PACK_HEADER, header);
    tail.extend_from_slice(&(tail.len() as u32).to_le_bytes());
    tail.extend_from_slice(MAGIC);
    ironvault_fuzz::read_pack_header(u64::from_le_bytes(size), &tail);
});
