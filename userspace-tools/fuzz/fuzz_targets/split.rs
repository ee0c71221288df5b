//! libFuzzer entry point: see [`rcopy_fuzz::split`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rcopy_fuzz::split(data));
