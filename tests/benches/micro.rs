//! Micro-benchmarks of the hot pure code: XDR encode/decode of a listAllDomains reply with
//! 1,000 domains, domain XML parse/format, and counting a call for the metrics.
//!
//! Run: `cargo bench -p vireo-tests --bench micro`

use vireo_proto::remote::{ConnectListAllDomainsRet, Domain};
use vireo_xdr::Array;

fn main() {
    divan::main();
}

fn reply() -> ConnectListAllDomainsRet {
    let domains = (0..1000u32)
        .map(|i| Domain {
            name: format!("domain-{i:04}"),
            uuid: [(i % 251) as u8; 16],
            id: -1,
        })
        .collect();
    ConnectListAllDomainsRet {
        domains: Array(domains),
        ret: 1000,
    }
}

#[divan::bench]
fn encode_list_all_1000(b: divan::Bencher) {
    let r = reply();
    b.bench(|| vireo_xdr::to_bytes(divan::black_box(&r)));
}

#[divan::bench]
fn decode_list_all_1000(b: divan::Bencher) {
    let bytes = vireo_xdr::to_bytes(&reply());
    b.bench(|| vireo_xdr::from_bytes::<ConnectListAllDomainsRet>(divan::black_box(&bytes)));
}

fn full_xml() -> String {
    std::fs::read_to_string(vireo_tests::data("full.xml")).expect("full.xml")
}

#[divan::bench]
fn parse_domain_xml(b: divan::Bencher) {
    let xml = full_xml();
    b.bench(|| vireo_xml::Domain::parse(divan::black_box(&xml)));
}

#[divan::bench]
fn format_domain_xml(b: divan::Bencher) {
    let d = vireo_xml::Domain::parse(&full_xml()).expect("parse");
    b.bench(|| divan::black_box(&d).format());
}

/// What the server adds to every call for its metrics: the clock read at the reply and the
/// call counted (its procedure's slot, latency bucket and result).
#[divan::bench]
fn count_call_ok(b: divan::Bencher) {
    let m = vireo_rpc::metrics::CallMetrics::default();
    let t0 = std::time::Instant::now();
    b.bench(|| {
        m.record(
            divan::black_box(vireo_proto::REMOTE_PROGRAM),
            divan::black_box(vireo_proto::remote::procs::CONNECT_GET_LIB_VERSION),
            Ok(()),
            t0.elapsed(),
        )
    });
}

/// The same for a failed call (its error code counted under a short lock).
#[divan::bench]
fn count_call_failed(b: divan::Bencher) {
    let m = vireo_rpc::metrics::CallMetrics::default();
    let t0 = std::time::Instant::now();
    b.bench(|| {
        m.record(
            divan::black_box(vireo_proto::REMOTE_PROGRAM),
            divan::black_box(vireo_proto::remote::procs::DOMAIN_LOOKUP_BY_NAME),
            Err(divan::black_box(42)),
            t0.elapsed(),
        )
    });
}
