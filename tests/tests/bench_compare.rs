//! `bench/compare --quick` runs libvirtd and Vireo side by side and reports every row of the
//! workload for each daemon set. No timing is asserted here: only that the command works
//! from this checkout and that its JSON has a number for every row and daemon set.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The rows the issue asks for (and two extra memory/start rows), by id.
const ROWS: [&str; 26] = [
    "connect_close",
    "libversion_1",
    "libversion_4",
    "hostname_1",
    "hostname_4",
    "define_undefine",
    "list_0",
    "list_100",
    "list_1000",
    "start",
    "destroy",
    "event",
    "rss_idle",
    "pss_idle",
    "rss_1000",
    "first_call",
    "first_call_empty",
    "all_stats",
    "save",
    "restore",
    "attach_detach",
    "vol_create_qcow2",
    "vol_upload_dense",
    "vol_upload_sparse",
    "vol_download_dense",
    "vol_download_sparse",
];
/// The node device and host interface rows: a number for every Vireo daemon set; libvirtd's
/// driver may refuse them as a session daemon, and then the row says why instead.
const HOST_ROWS: [&str; 3] = ["nodedev_list", "nodedev_xml", "iface_list"];
const TARGETS: [&str; 3] = ["libvirtd", "vireod", "vireo-modular"];
const PROMISES: [&str; 7] = ["P1", "P2", "P3", "P4", "P5", "P6", "P7"];

fn number(v: &Value, what: &str) -> f64 {
    let x = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"));
    assert!(x.is_finite() && x > 0.0, "{what} = {x}");
    x
}

#[test]
fn quick_run_reports_every_row_for_every_daemon_set() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo")
        .to_path_buf();
    let out = tempfile::tempdir().expect("tempdir");
    let bins = vireo_tests::bin("vireod")
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let st = Command::new("timeout")
        .args(["--kill-after=10", "600"])
        .arg(repo.join("bench/compare"))
        .arg("--quick")
        .arg("--bin-dir")
        .arg(&bins)
        .arg("--out")
        .arg(out.path())
        .status()
        .expect("run bench/compare");
    assert!(st.success(), "bench/compare --quick failed: {st}");

    let text = std::fs::read_to_string(out.path().join("compare.json")).expect("compare.json");
    let j: Value = serde_json::from_str(&text).expect("JSON");
    let rows = j["rows"].as_array().expect("rows");
    for id in ROWS {
        let row = rows
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("row {id} missing"));
        for t in TARGETS {
            number(&row["values"][t]["median"], &format!("{id} median for {t}"));
            if row["values"][t]["p99"] != Value::Null {
                number(&row["values"][t]["p99"], &format!("{id} p99 for {t}"));
            }
        }
        for t in ["vireod", "vireo-modular"] {
            number(&row["ratio"][t], &format!("{id} ratio for {t}"));
        }
    }
    for id in HOST_ROWS {
        let row = rows
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("row {id} missing"));
        for t in TARGETS {
            let why = &row["unavailable"][t];
            if t == "libvirtd" && why.as_str().is_some_and(|w| !w.is_empty()) {
                assert!(
                    row["values"][t].is_null(),
                    "{id}: {t} has a number and a refusal"
                );
                continue;
            }
            number(&row["values"][t]["median"], &format!("{id} median for {t}"));
        }
    }
    number(&j["floor"]["value"]["median"], "bare QEMU start");
    number(&j["floors"][1]["value"]["median"], "dd between two files");
    let checks = j["checks"].as_array().expect("checks");
    for p in PROMISES {
        for t in ["vireod", "vireo-modular"] {
            let c = checks
                .iter()
                .find(|c| c["promise"] == p && c["target"] == t)
                .unwrap_or_else(|| panic!("promise {p} not checked for {t}"));
            assert!(c["ok"].is_boolean(), "{p} for {t}: {c}");
        }
    }
    for fact in [
        "libvirt", "qemu", "vireo", "cpu", "cores", "kernel", "accel",
    ] {
        assert!(
            !j["facts"][fact].is_null(),
            "fact {fact} missing: {}",
            j["facts"]
        );
    }
    let md = std::fs::read_to_string(out.path().join("compare.md")).expect("compare.md");
    assert!(md.contains("| | unit | libvirtd | vireod | ratio | Vireo modular | ratio |"));
    assert!(md.contains("P7: idle RSS of all daemons below libvirtd's"));
}
