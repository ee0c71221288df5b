//! libFuzzer entry point: see [`rcopy_fuzz::handshake`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rcopy_fuzz::handshake(data));
