//! `<hostdev>` in a domain: virsh defines PCI, USB and mediated host devices and reads
//! them back as libvirt writes them (valid for libvirt's schema, the PCI ones with a guest
//! PCI address); attach-device and detach-device change them in the persistent definition;
//! the kinds Vireo does not run (mode='capabilities', SCSI) are refused by name, and so is a
//! device the host does not have plugged into a running guest. No host device is touched:
//! nothing here starts a guest with one, and the running guest's node device driver reads
//! a synthetic tree (plugging devices in and out is `nodedev_leases.rs`'s).

use vireo_tests::{fails, ok, validate, write_file, Daemon, Layout};

const PCI: &str = "<hostdev mode='subsystem' type='pci' managed='yes'>
      <driver name='vfio'/>
      <source>
        <address domain='0x0000' bus='0x06' slot='0x12' function='0x5'/>
      </source>
      <boot order='1'/>
      <rom bar='off'/>";

const USB: &str = "<hostdev mode='subsystem' type='usb' managed='no'>
      <source startupPolicy='optional'>
        <vendor id='0x1234'/>
        <product id='0xbeef'/>
      </source>
    </hostdev>";

const MDEV: &str = "<hostdev mode='subsystem' type='mdev' managed='no' model='vfio-pci'>
      <source>
        <address uuid='53764d0e-85a0-42b4-af5c-2046b460b1dc'/>
      </source>";

/// The test guest with `devices` before its (absent) balloon.
fn guest_with(devices: &str) -> String {
    vireo_tests::guest_xml("vm1").replace(
        "<memballoon model='none'/>",
        &format!("{devices}<memballoon model='none'/>"),
    )
}

fn hostdevs_in_the_definition(layout: Layout) {
    let d = Daemon::start_in(layout);
    // Written loosely (decimal numbers, no mode, no managed on the USB device).
    let xml = guest_with(
        "<hostdev type='pci' managed='yes'><driver name='vfio'/><source>\
         <address domain='0' bus='6' slot='18' function='5'/></source><boot order='1'/>\
         <rom bar='off'/></hostdev>\
         <hostdev type='usb'><source startupPolicy='optional'><vendor id='4660'/>\
         <product id='0xbeef'/></source></hostdev>\
         <hostdev type='mdev' model='vfio-pci'><source>\
         <address uuid='53764d0e85a042b4af5c2046b460b1dc'/></source></hostdev>",
    );
    ok(&d.virsh(&["define", "--validate", &write_file(&d, "vm1.xml", &xml)]));
    let def = ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]));
    validate(&def, "domain", &d.root);
    for want in [PCI, USB, MDEV] {
        assert!(def.contains(want), "{want}\nnot in:\n{def}");
    }
    // The PCI and mediated devices have a place on the guest's PCI bus, after the disks
    // and kept from now on; the USB one is on its USB bus.
    let after = |s: &str| def[def.find(s).unwrap_or(0)..].to_string();
    assert!(
        after(PCI)
            .contains("<rom bar='off'/>\n      <address type='pci' domain='0x0000' bus='0x00'"),
        "{def}"
    );
    assert!(
        after(MDEV).contains("</source>\n      <address type='pci' domain='0x0000' bus='0x00'"),
        "{def}"
    );
    // `<boot order>` on a host device is a per-device boot order like a disk's.
    let both = def.replacen("hvm</type>", "hvm</type><boot dev='hd'/>", 1);
    let e = fails(&d.virsh(&["define", &write_file(&d, "both.xml", &both)]));
    assert!(
        e.contains("per-device boot elements cannot be used together with os/boot"),
        "{e}"
    );

    // Persistent attach and detach, matched by the host device.
    let usb2 = "<hostdev mode='subsystem' type='usb'><source><address bus='3' device='7'/>\
                </source></hostdev>";
    let f = write_file(&d, "usb2.xml", usb2);
    ok(&d.virsh(&["attach-device", "vm1", &f, "--config"]));
    let def = ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]));
    assert!(def.contains("<address bus='3' device='7'/>"), "{def}");
    let e = fails(&d.virsh(&["attach-device", "vm1", &f, "--config"]));
    assert!(
        e.contains("device is already in the domain configuration"),
        "{e}"
    );
    ok(&d.virsh(&["detach-device", "vm1", &f, "--config"]));
    let e = fails(&d.virsh(&["detach-device", "vm1", &f, "--config"]));
    assert!(
        e.contains("device not present in domain configuration"),
        "{e}"
    );
    let after = ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]));
    assert!(!after.contains("device='7'"), "{after}");
    let bad = write_file(
        &d,
        "bad.xml",
        "<hostdev mode='subsystem' type='pci'><source><address bus='1' slot='40'/></source></hostdev>",
    );
    let e = fails(&d.virsh(&["attach-device", "vm1", &bad, "--config"]));
    assert!(
        e.contains("Invalid PCI address slot='0x28', must be <= 0x1F"),
        "{e}"
    );

    // What Vireo does not run is named.
    for (dev, want) in [
        (
            "<hostdev mode='capabilities' type='storage'><source><block>/dev/sda</block>\
             </source></hostdev>",
            "<hostdev mode='capabilities' type='storage'> is not supported by Vireo",
        ),
        (
            "<hostdev mode='subsystem' type='scsi'><source><adapter name='scsi_host0'/>\
             <address bus='0' target='0' unit='0'/></source></hostdev>",
            "<hostdev type='scsi'> is not supported by Vireo yet",
        ),
        (
            "<hostdev mode='subsystem' type='usb'><source/></hostdev>",
            "a USB <hostdev> needs <vendor> and <product>, or <address bus device>",
        ),
        (
            "<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source>\
             <address uuid='53764d0e-zz'/></source></hostdev>",
            "invalid value '53764d0e-zz' for attribute 'uuid' of <address>",
        ),
    ] {
        let e = fails(&d.virsh(&[
            "define",
            &write_file(&d, "vm2.xml", &guest_with(dev).replace(">vm1<", ">vm2<")),
        ]));
        assert!(e.contains(want), "{dev}: {e}");
    }
    ok(&d.virsh(&["undefine", "vm1"]));
}

vireo_tests::in_every_layout!(hostdevs_in_the_definition);

#[test]
fn a_running_guest_gets_no_missing_hostdev_plugged() {
    let t = tempfile::tempdir().unwrap();
    let _pci = vireo_tests::fakepci::FakePci::start(t.path());
    let d = Daemon::start_with_sysfs(Layout::Monolithic, t.path());
    ok(&d.virsh(&[
        "define",
        &write_file(&d, "vm1.xml", &vireo_tests::guest_xml("vm1")),
    ]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let f = write_file(
        &d,
        "usb.xml",
        "<hostdev mode='subsystem' type='usb'><source><address bus='3' device='7'/></source>\
         </hostdev>",
    );
    let e = fails(&d.virsh(&["attach-device", "vm1", &f, "--live"]));
    assert!(
        e.contains("USB device 003/007 was not found on the host"),
        "{e}"
    );
    let e = fails(&d.virsh(&["detach-device", "vm1", &f, "--live"]));
    assert!(e.contains("host usb device 003.007 not found"), "{e}");
    // Nothing changed, and the persistent definition still takes it.
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(!live.contains("<hostdev"), "{live}");
    ok(&d.virsh(&["attach-device", "vm1", &f, "--config"]));
    assert!(ok(&d.virsh(&["dumpxml", "--inactive", "vm1"])).contains("<hostdev"));
    assert!(!ok(&d.virsh(&["dumpxml", "vm1"])).contains("<hostdev"));
    ok(&d.virsh(&["destroy", "vm1"]));
    ok(&d.virsh(&["undefine", "vm1"]));
}
