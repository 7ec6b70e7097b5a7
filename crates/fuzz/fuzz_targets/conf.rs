//! libFuzzer's entry for the `conf` target (see `vireo_fuzz::targets::conf`).
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: vireo_fuzz::init("conf"),
    |data: &[u8]| vireo_fuzz::run("conf", data)
);
