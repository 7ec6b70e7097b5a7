//! The install command lays out binaries and systemd units that systemd accepts.

use vireo_tests::{bin_dir, ok, run_cmd, tests_dir};

#[test]
fn install_writes_valid_units_for_every_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("usr");
    let units = tmp.path().join("units");
    let script = tests_dir().join("../scripts/install");
    ok(&run_cmd(
        "bash",
        &[
            script.to_str().unwrap(),
            "--prefix",
            prefix.to_str().unwrap(),
            "--unitdir",
            units.to_str().unwrap(),
            "--from",
            bin_dir().to_str().unwrap(),
        ],
    ));
    let daemons = vireo_tests::DRIVER_DAEMONS
        .iter()
        .chain(&["vireod", "vireo-proxyd"])
        .copied();
    let mut files = Vec::new();
    for d in daemons {
        assert!(prefix.join("sbin").join(d).is_file(), "{d} not installed");
        for suffix in [".service", ".socket", "-ro.socket", "-admin.socket"] {
            let f = units.join(format!("{d}{suffix}"));
            assert!(f.is_file(), "{} missing", f.display());
            files.push(f.to_string_lossy().into_owned());
        }
        let svc = std::fs::read_to_string(units.join(format!("{d}.service"))).unwrap();
        assert!(
            svc.contains("Type=notify") && svc.contains("KillMode=process"),
            "{svc}"
        );
    }
    assert!(prefix.join("sbin/vireo-shim").is_file());
    assert!(prefix.join("bin/vireo").is_file());
    // The proxy takes over the legacy socket path.
    let proxy = std::fs::read_to_string(units.join("vireo-proxyd.socket")).unwrap();
    assert!(
        proxy.contains("ListenStream=/run/vireo/vireod-sock\n"),
        "{proxy}"
    );
    let args: Vec<&str> = std::iter::once("verify")
        .chain(files.iter().map(String::as_str))
        .collect();
    let v = run_cmd("systemd-analyze", &args);
    assert!(
        v.status.success() && v.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&v.stderr)
    );
}
