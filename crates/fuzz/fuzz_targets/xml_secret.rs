//! libFuzzer's entry for the `xml_secret` target (see `vireo_fuzz::targets::xml_secret`).
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: vireo_fuzz::init("xml_secret"),
    |data: &[u8]| vireo_fuzz::run("xml_secret", data)
);
