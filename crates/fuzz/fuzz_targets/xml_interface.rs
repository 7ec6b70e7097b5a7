//! libFuzzer's entry for the `xml_interface` target (see `vireo_fuzz::targets::xml_interface`).
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: vireo_fuzz::init("xml_interface"),
    |data: &[u8]| vireo_fuzz::run("xml_interface", data)
);
