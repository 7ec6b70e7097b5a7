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
            "--sysusersdir",
            tmp.path().join("sysusers.d").to_str().unwrap(),
        ],
    ));
    // QEMU's own user, for systemd to make (in the kvm group, for /dev/kvm).
    let users = std::fs::read_to_string(tmp.path().join("sysusers.d/vireo.conf")).unwrap();
    for line in [
        "u vireo-qemu - \"Vireo QEMU\" /var/lib/vireo -",
        "m vireo-qemu kvm",
    ] {
        assert!(users.lines().any(|l| l == line), "{line}:\n{users}");
    }
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
    assert!(prefix.join("bin/virt-ssh-helper").is_file());
    // The GSSAPI helper, where the daemons and vireo look beside their own directories,
    // and it runs there (MIT's library found).
    let gss = prefix.join("libexec/vireo-gss-helper");
    ok(&run_cmd(gss.to_str().unwrap(), &["check"]));
    assert!(prefix.join("sbin/vireo-saslpasswd").is_file());
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

/// `--libvirt-paths`: the daemons answer on libvirt's paths, and a tmpfiles.d file links
/// those paths to Vireo's sockets at boot (socket activation through libvirt's names).
#[test]
fn install_as_a_drop_in_for_libvirt() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("usr");
    let units = tmp.path().join("units");
    let tmpfiles = tmp.path().join("tmpfiles.d");
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
            "--libvirt-paths",
            "--tmpfilesdir",
            tmpfiles.to_str().unwrap(),
            "--sysusersdir",
            tmp.path().join("sysusers.d").to_str().unwrap(),
        ],
    ));
    let svc = std::fs::read_to_string(units.join("vireod.service")).unwrap();
    assert!(svc.contains(" --timeout 120 --libvirt-paths\n"), "{svc}");
    let conf = std::fs::read_to_string(tmpfiles.join("vireo-libvirt-paths.conf")).unwrap();
    for line in [
        "L+ /run/libvirt/libvirt-sock - - - - /run/vireo/vireod-sock",
        "L+ /run/libvirt/libvirt-sock-ro - - - - /run/vireo/vireod-sock-ro",
        "L+ /run/libvirt/virtqemud-sock - - - - /run/vireo/vireo-qemud-sock",
        "L+ /run/libvirt/virtnetworkd-admin-sock - - - - /run/vireo/vireo-networkd-admin-sock",
    ] {
        assert!(conf.lines().any(|l| l == line), "{line}:\n{conf}");
    }
}
