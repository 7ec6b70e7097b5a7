//! libFuzzer's entry for the `xml_nodedev` target (see `vireo_fuzz::targets::xml_nodedev`).
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: vireo_fuzz::init("xml_nodedev"),
    |data: &[u8]| vireo_fuzz::run("xml_nodedev", data)
);
