//! libFuzzer's entry for the `rpc_frame` target (see `vireo_fuzz::targets::rpc_frame`).
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: vireo_fuzz::init("rpc_frame"),
    |data: &[u8]| vireo_fuzz::run("rpc_frame", data)
);
