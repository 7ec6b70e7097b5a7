//! Title, description and applications' metadata elements with the real virsh (`desc`,
//! `metadata`), in the running domain and in its definition, with METADATA_CHANGE events.

use vireo_tests::{fails, ok, write_file, Daemon, EventLog, Layout};

const NOVA: &str = "http://openstack.org/xmlns/libvirt/nova/1.1";

fn metadata_get_and_set(layout: Layout) {
    let d = Daemon::start_in(layout);
    let xml = vireo_tests::guest_xml("vm1");
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &xml)]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let mut ev = EventLog::start_devices(&d);

    // The description of the running domain only (virsh's default while it runs).
    ok(&d.virsh(&["desc", "vm1", "--new-desc", "a test guest"]));
    ev.wait_for("vm1 metadata-change 0 -");
    assert_eq!(ok(&d.virsh(&["desc", "vm1"])).trim(), "a test guest");
    assert!(ok(&d.virsh(&["dumpxml", "vm1"])).contains("<description>a test guest</description>"));
    assert!(!ok(&d.virsh(&["dumpxml", "--inactive", "vm1"])).contains("<description>"));
    // The title in both.
    ok(&d.virsh(&[
        "desc",
        "vm1",
        "--title",
        "--live",
        "--config",
        "--new-desc",
        "Guest One",
    ]));
    ev.wait_for("vm1 metadata-change 1 -");
    for args in [&["dumpxml", "vm1"][..], &["dumpxml", "--inactive", "vm1"]] {
        assert!(
            ok(&d.virsh(args)).contains("<title>Guest One</title>"),
            "{args:?}"
        );
    }
    let list = ok(&d.virsh(&["list", "--title"]));
    assert!(list.contains("Guest One"), "{list}");

    // An application's element, in its own namespace, as Nova keeps its own.
    let elem = "<instance><name>server-1</name><flavor name='m1.tiny'/></instance>";
    ok(&d.virsh(&[
        "metadata", "vm1", NOVA, "--key", "nova", "--set", elem, "--config", "--live",
    ]));
    ev.wait_for(&format!("vm1 metadata-change 2 {NOVA}"));
    let got = ok(&d.virsh(&["metadata", "vm1", NOVA, "--config"]));
    assert!(got.contains("<name>server-1</name>"), "{got}");
    let inactive = ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]));
    assert!(
        inactive.contains(&format!("<nova:instance xmlns:nova=\"{NOVA}\">")),
        "{inactive}"
    );
    assert!(ok(&d.virsh(&["dumpxml", "vm1"])).contains("<nova:name>server-1</nova:name>"));
    vireo_tests::validate(&inactive, "domain", &d.root);
    // Removed again.
    ok(&d.virsh(&["metadata", "vm1", NOVA, "--remove", "--config", "--live"]));
    let e = fails(&d.virsh(&["metadata", "vm1", NOVA]));
    assert!(
        e.contains("metadata not found: Requested metadata element is not present"),
        "{e}"
    );
    // Bad input changes nothing.
    let e = fails(&d.virsh(&[
        "metadata",
        "vm1",
        NOVA,
        "--key",
        "nova",
        "--set",
        "<unclosed>",
    ]));
    assert!(e.contains("invalid argument"), "{e}");
    ok(&d.virsh(&["destroy", "vm1"]));
    // The definition kept what was set with --config.
    assert!(ok(&d.virsh(&["dumpxml", "vm1"])).contains("<title>Guest One</title>"));
    assert!(!ok(&d.virsh(&["dumpxml", "vm1"])).contains("a test guest"));
}

vireo_tests::in_every_layout!(metadata_get_and_set);
