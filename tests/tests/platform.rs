//! Platform devices on a real TCG guest (q35): the definition keeps them (with the PCI
//! places libvirt would give: ICH9's HD audio at 00:1b.0, conventional PCI devices behind
//! a pcie-to-pci-bridge) and validates against libvirt's schema; the guest finds the
//! devices where QEMU put them (its PCI IDs, the IOMMU's DMAR table, the ISA pvpanic's
//! ACPI device). A vsock device is refused with a clear error on a host without
//! /dev/vhost-vsock, nothing started.

use vireo_tests::{fails, guest_shell, ok, validate, write_file, Daemon};

const DEVICES: &str = "<memballoon model='none'/>\
    <sound model='ich9'/><audio id='1' type='none'/><hub type='usb'/>\
    <watchdog model='i6300esb' action='poweroff'/>\
    <panic model='isa'/><panic model='pvpanic'/>\
    <shmem name='vireo-test-platform'><model type='ivshmem-plain'/><size unit='M'>1</size></shmem>\
    <iommu model='intel'/>";

#[test]
fn platform_devices_reach_the_guest() {
    let d = Daemon::start();
    let xml = vireo_tests::guest_xml("vm1")
        .replace("machine='pc'", "machine='q35'")
        .replace("<memballoon model='none'/>", DEVICES);
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &xml)]));
    let def = ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]));
    // libvirt 9.0's schema predates the PCI pvpanic model (libvirt 9.1 has it).
    let panic_pci = without_element(&def, "<panic model='pvpanic'>", "</panic>");
    validate(&panic_pci, "domain", &d.root);
    assert!(
        def.contains("<sound model='ich9'>\n      <address type='pci' domain='0x0000' bus='0x00' slot='0x1b' function='0x0'/>"),
        "{def}"
    );
    assert!(def.contains("model='pcie-to-pci-bridge'"), "{def}");
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    // vendor:device of every PCI function, the ACPI tables, the ACPI devices.
    let cmd =
        "for f in /sys/bus/pci/devices/*; do echo PCI-$(cat $f/vendor):$(cat $f/device); done; \
               ls /sys/firmware/acpi/tables; ls /sys/bus/acpi/devices; echo L-$((1+1))";
    let seen = guest_shell(&d, "vm1", &["--resume", cmd, "L-2"]);
    for want in [
        "PCI-0x8086:0x293e", // ICH9 HD audio
        "PCI-0x8086:0x25ab", // i6300esb
        "PCI-0x1b36:0x0011", // pvpanic-pci
        "PCI-0x1af4:0x1110", // ivshmem
        "DMAR",              // the Intel IOMMU's table
        "QEMU0001",          // the ISA pvpanic
    ] {
        assert!(seen.contains(want), "{want} not seen:\n{seen}");
    }
    ok(&d.virsh(&["destroy", "vm1"]));

    if !std::path::Path::new("/dev/vhost-vsock").exists() {
        let with_vsock = def.replace(
            "<iommu model='intel'/>",
            "<iommu model='intel'/><vsock model='virtio'><cid auto='yes'/></vsock>",
        );
        ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &with_vsock)]));
        let err = fails(&d.virsh(&["start", "vm1"]));
        assert!(err.contains("/dev/vhost-vsock"), "{err}");
        assert!(d.qemu_pid("vm1").is_none());
    }
    ok(&d.virsh(&["undefine", "vm1"]));
}

/// `text` without the first element that starts with `start` and ends with `end`.
fn without_element(text: &str, start: &str, end: &str) -> String {
    match text.find(start) {
        Some(i) => match text[i..].find(end) {
            Some(j) => format!("{}{}", &text[..i], &text[i + j + end.len()..]),
            None => text.to_string(),
        },
        None => text.to_string(),
    }
}
