//! libFuzzer entry point: see [`rcopy_fuzz::superblock`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rcopy_fuzz::superblock(data));
