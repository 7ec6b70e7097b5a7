//! libFuzzer's entry for the `xml_storage` target (see `vireo_fuzz::targets::xml_storage`).
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: vireo_fuzz::init("xml_storage"),
    |data: &[u8]| vireo_fuzz::run("xml_storage", data)
);
