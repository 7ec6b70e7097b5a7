//! libFuzzer's entry for the `xml_nwfilter` target (see `vireo_fuzz::targets::xml_nwfilter`).
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: vireo_fuzz::init("xml_nwfilter"),
    |data: &[u8]| vireo_fuzz::run("xml_nwfilter", data)
);
