//! libFuzzer's entry for the `xml_domain` target (see `vireo_fuzz::targets::xml_domain`).
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: vireo_fuzz::init("xml_domain"),
    |data: &[u8]| vireo_fuzz::run("xml_domain", data)
);
