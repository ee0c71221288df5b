//! libFuzzer entry point: see [`rcopy_fuzz::activity`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rcopy_fuzz::activity(data));
