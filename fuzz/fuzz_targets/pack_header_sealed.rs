//! A stored pack as storage holds it: the first 8 bytes of the input are
//! the pack's size (u64 LE), the rest are its last bytes (sealed header,
//! header length, magic); the catalog reads its header.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((size, tail)) = ironvault_fuzz::split::<8>(data) else {
        return;
    };
    ironvault_fuzz::read_pack_header(u64::from_le_bytes(size), tail);
});
