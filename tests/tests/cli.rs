//! Our own `vireo` command against `vireod`: the same scenario as with virsh, and the same
//! output for the commands both have.

use vireo_tests::{data, fails, ok, Daemon, Layout};

fn vireo_cli_scenario(layout: Layout) {
    let d = Daemon::start_in(layout);
    let v = ok(&d.vireo(&["version"]));
    assert!(v.contains("Using API: QEMU 9.0.0"), "{v}");
    assert_eq!(ok(&d.vireo(&["uri"])).trim(), d.uri());
    assert_eq!(ok(&d.vireo(&["hostname"])), ok(&d.virsh(&["hostname"])));
    assert_eq!(ok(&d.vireo(&["nodeinfo"])), ok(&d.virsh(&["nodeinfo"])));
    assert!(ok(&d.vireo(&["capabilities"])).contains("<capabilities>"));
    assert_eq!(
        ok(&d.vireo(&["list", "--all"])),
        ok(&d.virsh(&["list", "--all"]))
    );

    let minimal = data("minimal.xml");
    let out = ok(&d.vireo(&["define", minimal.to_str().unwrap()]));
    assert_eq!(
        out,
        format!("Domain 'vec1' defined from {}\n\n", minimal.display())
    );
    for cmd in [
        &["list", "--all"][..],
        &["list", "--all", "--name"],
        &["list"],
        &["dominfo", "vec1"],
        &["domstate", "vec1"],
        &["domstate", "--reason", "vec1"],
        &["domuuid", "vec1"],
        &["domid", "vec1"],
        &["dumpxml", "vec1"],
    ] {
        assert_eq!(
            ok(&d.vireo(cmd)),
            ok(&d.virsh(cmd)),
            "output of {cmd:?} differs"
        );
    }
    assert_eq!(
        ok(&d.vireo(&["autostart", "vec1"])),
        "Domain 'vec1' marked as autostarted\n\n"
    );
    assert!(ok(&d.virsh(&["dominfo", "vec1"])).contains("Autostart:      enable"));
    assert_eq!(
        ok(&d.vireo(&["dominfo", "vec1"])),
        ok(&d.virsh(&["dominfo", "vec1"]))
    );
    ok(&d.vireo(&["autostart", "--disable", "vec1"]));
    assert!(ok(&d.virsh(&["dominfo", "vec1"])).contains("Autostart:      disable"));

    let bad = d.root.join("bad.xml");
    std::fs::write(&bad, "<domain type='qemu'>\n").unwrap();
    let err = fails(&d.vireo(&["define", bad.to_str().unwrap()]));
    assert!(err.contains("error: Failed to define domain from"), "{err}");
    assert!(err.contains("(domain_definition):2"), "{err}");

    assert_eq!(
        ok(&d.vireo(&["undefine", "vec1"])),
        "Domain 'vec1' has been undefined\n\n"
    );
    let err = fails(&d.vireo(&["dominfo", "vec1"]));
    assert!(err.contains("error: failed to get domain 'vec1'"), "{err}");
    assert!(err.contains("Domain not found"), "{err}");
}

#[test]
fn vireo_cli_read_only_and_bad_usage() {
    let d = Daemon::start();
    let ro = d.uri_ro();
    let b = vireo_tests::bin("vireo");
    let vireo = b.to_str().unwrap();
    ok(&vireo_tests::run_cmd(vireo, &["-c", &ro, "list", "--all"]));
    let err = fails(&vireo_tests::run_cmd(
        vireo,
        &["-c", &ro, "define", data("minimal.xml").to_str().unwrap()],
    ));
    assert!(err.contains("read only access prevents"), "{err}");
    let err = fails(&d.vireo(&["frobnicate"]));
    assert!(err.contains("unknown command"), "{err}");
    let err = fails(&d.vireo(&["dominfo"]));
    assert!(err.contains("requires <domain>"), "{err}");
    let missing = d.root.join("run/vireo/nothing-here");
    let err = fails(&vireo_tests::run_cmd(
        vireo,
        &[
            "-c",
            &format!("qemu+unix:///system?socket={}", missing.display()),
            "list",
        ],
    ));
    assert!(err.contains("is the daemon running?"), "{err}");
}

vireo_tests::in_every_layout!(vireo_cli_scenario,);

/// The vireo CLI's memory, vCPU, address, key and capabilities commands print what virsh
/// prints.
#[test]
fn vireo_cli_tuning() {
    let d = Daemon::start();
    let xml = vireo_tests::guest_xml("vm1")
        .replace("<memballoon model='none'/>", "<memballoon model='virtio'/>");
    let f = d.root.join("vm1.xml");
    std::fs::write(&f, xml).unwrap();
    ok(&d.vireo(&["define", f.to_str().unwrap()]));
    ok(&d.vireo(&["setmem", "vm1", "100M", "--config"]));
    ok(&d.vireo(&["setvcpus", "vm1", "2", "--config", "--maximum"]));
    let inactive = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(
        inactive.contains("<currentMemory unit='KiB'>102400</currentMemory>"),
        "{inactive}"
    );
    assert!(inactive.contains(">2</vcpu>"), "{inactive}");
    ok(&d.vireo(&["start", "--paused", "vm1"]));
    // The CPU a paused vCPU thread last ran on does not change between the two calls.
    assert_eq!(
        ok(&d.vireo(&["vcpuinfo", "vm1"])),
        ok(&d.virsh(&["vcpuinfo", "vm1"]))
    );
    assert_eq!(
        ok(&d.vireo(&["domifaddr", "vm1"])),
        ok(&d.virsh(&["domifaddr", "vm1"]))
    );
    assert_eq!(
        ok(&d.vireo(&["domcapabilities", "--virttype", "qemu"])),
        ok(&d.virsh(&["domcapabilities", "--virttype", "qemu"]))
    );
    ok(&d.vireo(&["send-key", "vm1", "KEY_A", "KEY_LEFTCTRL"]));
    ok(&d.vireo(&["setmem", "vm1", "96M"]));
    assert!(ok(&d.virsh(&["dominfo", "vm1"])).contains("Used memory:    98304 KiB"));
    let e = fails(&d.vireo(&["setmaxmem", "vm1", "1G"]));
    assert!(
        e.contains("cannot resize the maximum memory on an active domain"),
        "{e}"
    );
    let e = fails(&d.vireo(&["send-key", "vm1", "--codeset", "usb", "4"]));
    assert!(e.contains("unknown codeset"), "{e}");
    ok(&d.vireo(&["destroy", "vm1"]));
}
