//! libFuzzer's entry for the `rpc_call` target (see `vireo_fuzz::targets::rpc_call`).
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: vireo_fuzz::init("rpc_call"),
    |data: &[u8]| vireo_fuzz::run("rpc_call", data)
);
