//! libFuzzer's entry for the `xml_network` target (see `vireo_fuzz::targets::xml_network`).
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: vireo_fuzz::init("xml_network"),
    |data: &[u8]| vireo_fuzz::run("xml_network", data)
);
