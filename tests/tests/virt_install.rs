//! virt-install and virt-xml (Debian's virtinst) against Vireo with their defaults: a q35
//! guest whose devices sit on PCIe root ports, laid out at define as libvirt lays them
//! out, edited by virt-xml, and given a disk while it runs (on a spare root port).

use vireo_tests::{guest_shell, ok, run_cmd, validate, write_file, Daemon, EventLog, Layout};

/// The guest shell command that waits for disk `dev` and prints its first 16 bytes.
fn read_disk(dev: &str) -> String {
    format!(
        "i=0; while [ ! -e /sys/block/{dev} ] && [ $i -lt 120 ]; do sleep 1; i=$((i+1)); done; \
         echo DISK-{dev}-$(dd if=/dev/{dev} bs=16 count=1 2>/dev/null)"
    )
}

fn virt_install_q35_guest(layout: Layout) {
    let d = Daemon::start_in(layout);
    let mut ev = EventLog::start_devices(&d);
    let (kernel, initrd) = vireo_tests::guest();
    let boot = format!(
        "kernel={},initrd={},kernel_args=console=ttyS0 quiet",
        kernel.display(),
        initrd.display()
    );
    // linux2022 makes virt-install choose q35 with 14 spare root ports, a qemu-xhci USB
    // controller, a guest-agent channel, a balloon and an RNG.
    let out = run_cmd(
        "virt-install",
        &[
            "--connect",
            &d.uri(),
            "--name",
            "vi35",
            "--memory",
            "192",
            "--vcpus",
            "1",
            "--disk",
            "none",
            "--import",
            "--boot",
            &boot,
            "--virt-type",
            "qemu",
            "--osinfo",
            "linux2022",
            "--network",
            "none",
            "--graphics",
            "none",
            "--noautoconsole",
        ],
    );
    assert!(ok(&out).contains("Domain creation completed"));
    assert!(ok(&d.virsh(&["list"])).contains(" vi35   running"));

    let live = ok(&d.virsh(&["dumpxml", "vi35"]));
    assert!(live.contains("machine='pc-q35-7.2'"), "{live}");
    assert_eq!(live.matches("model='pcie-root-port'").count(), 14, "{live}");
    // Root ports side by side, eight to a multifunction slot, port = slot·8 + function;
    // each with its alias, as libvirt shows a running guest's.
    assert!(
        live.contains(
            "<controller type='pci' index='9' model='pcie-root-port'>\n      \
             <model name='pcie-root-port'/>\n      <target chassis='9' port='0x10'/>\n      \
             <alias name='pci.9'/>\n      \
             <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0' \
             multifunction='on'/>"
        ),
        "{live}"
    );
    assert!(live.contains("<alias name='pcie.0'/>"), "{live}");
    // One port per device, in libvirt's order: USB, virtio-serial (added for the
    // agent's channel), balloon, RNG.
    for (what, bus) in [
        (
            "<controller type='usb' index='0' model='qemu-xhci' ports='15'>",
            1,
        ),
        ("<controller type='virtio-serial' index='0'>", 2),
        ("<memballoon model='virtio'>", 3),
        ("<rng model='virtio'>", 4),
    ] {
        let at = live
            .find(what)
            .unwrap_or_else(|| panic!("no {what} in {live}"));
        let addr = format!(
            "<address type='pci' domain='0x0000' bus='{bus:#04x}' slot='0x00' function='0x0'/>"
        );
        let next = live[at..].find("<address").map(|i| &live[at + i..]);
        assert!(
            next.is_some_and(|s| s.starts_with(&addr)),
            "{what} is not on bus {bus}:\n{live}"
        );
    }
    validate(&live, "domain", &d.root);
    let inactive = ok(&d.virsh(&["dumpxml", "--inactive", "vi35"]));
    validate(&inactive, "domain", &d.root);
    // Defined again as it is shown, nothing moves.
    let again = write_file(&d, "again.xml", &inactive);
    ok(&d.virsh(&["define", &again]));
    assert_eq!(ok(&d.virsh(&["dumpxml", "--inactive", "vi35"])), inactive);

    // virt-xml edits the definition (the running guest keeps its memory)...
    let out = run_cmd(
        "virt-xml",
        &["--connect", &d.uri(), "vi35", "--edit", "--memory", "256"],
    );
    assert!(ok(&out).contains("defined successfully"));
    assert!(ok(&d.virsh(&["dumpxml", "--inactive", "vi35"]))
        .contains("<memory unit='KiB'>262144</memory>"));
    assert!(ok(&d.virsh(&["dumpxml", "vi35"])).contains("<memory unit='KiB'>196608</memory>"));

    // ...and plugs a disk into the running guest: it lands on the first free root port,
    // and the guest reads it.
    let img = d.root.join("hot.img");
    let mut data = b"VIREOQ35HOTDISK1".to_vec();
    data.resize(1 << 20, 0);
    std::fs::write(&img, &data).unwrap();
    let disk = format!("{},bus=virtio,format=raw", img.display());
    let out = run_cmd(
        "virt-xml",
        &[
            "--connect",
            &d.uri(),
            "vi35",
            "--add-device",
            "--disk",
            &disk,
            "--update",
        ],
    );
    assert!(ok(&out).contains("Device hotplug successful"));
    ev.wait_for("vi35 device-added virtio-disk0");
    let live = ok(&d.virsh(&["dumpxml", "vi35"]));
    let at = live.find("hot.img").expect("the disk is shown");
    assert!(
        live[at..].contains(
            "<address type='pci' domain='0x0000' bus='0x05' slot='0x00' function='0x0'/>"
        ),
        "{live}"
    );
    validate(&live, "domain", &d.root);
    guest_shell(
        &d,
        "vi35",
        &["--running", &read_disk("vda"), "DISK-vda-VIREOQ35HOTDISK1"],
    );

    // Unplugged again: the guest's PCIe hotplug lets it go.
    ok(&d.virsh(&["detach-disk", "vi35", "vda", "--live"]));
    ev.wait_for("vi35 device-removed virtio-disk0");
    guest_shell(
        &d,
        "vi35",
        &[
            "--running",
            "[ -e /sys/block/vda ] || echo NO-VDA-$((1+1))",
            "NO-VDA-2",
        ],
    );
    ok(&d.virsh(&["destroy", "vi35"]));
}

vireo_tests::in_every_layout!(virt_install_q35_guest);

/// `virsh domcapabilities` and `cpu-models`, which virt-install and virt-manager read to
/// choose a guest's defaults: valid against libvirt's schema, offering only what Vireo
/// runs, and refusing what this host cannot do as libvirt does.
#[test]
fn domain_capabilities() {
    let d = Daemon::start();
    let caps = ok(&d.virsh(&["domcapabilities", "--virttype", "qemu"]));
    validate(&caps, "domaincaps", &d.root);
    assert!(caps.contains("<domain>qemu</domain>"), "{caps}");
    assert!(caps.contains("<machine>pc-i440fx-7.2</machine>"), "{caps}");
    assert!(
        caps.contains("<mode name='host-passthrough' supported='no'>"),
        "{caps}"
    );
    assert!(caps.contains(">qemu64</model>"), "{caps}");
    // VNC only, UEFI (OVMF), an emulated TPM (swtpm): what Vireo runs, nothing it refuses.
    assert!(
        caps.contains("<value>vnc</value>") && !caps.contains("spice"),
        "{caps}"
    );
    assert!(caps.contains("<loader supported='yes'>"), "{caps}");
    assert!(
        caps.contains("<value>/usr/share/OVMF/OVMF_CODE_4M.fd</value>"),
        "{caps}"
    );
    // Secure boot needs q35's SMM: not offered on pc.
    assert!(!caps.contains("secboot"), "{caps}");
    assert!(caps.contains("<tpm supported='yes'>"), "{caps}");
    let q35 = ok(&d.virsh(&["domcapabilities", "--virttype", "qemu", "--machine", "q35"]));
    validate(&q35, "domaincaps", &d.root);
    assert!(q35.contains("<machine>pc-q35-7.2</machine>"), "{q35}");
    assert!(q35.contains("<vcpu max='288'/>"), "{q35}");
    assert!(q35.contains("OVMF_CODE_4M.secboot.fd"), "{q35}");

    let models = ok(&d.virsh(&["cpu-models", "x86_64"]));
    assert!(models.lines().any(|l| l == "qemu64"), "{models}");
    assert!(!models.lines().any(|l| l == "host"), "{models}");

    for (args, want) in [
        (
            &["--arch", "aarch64"][..],
            "does not support arch 'aarch64'",
        ),
        (
            &["--machine", "microvm"],
            "the machine 'microvm' is not supported",
        ),
        (&["--virttype", "xen"], "unknown virttype: xen"),
        (
            &["--emulatorbin", "/usr/bin/qemu-system-aarch64"],
            "is not available",
        ),
    ] {
        let o = d.virsh(&[&["domcapabilities"][..], args].concat());
        let e = vireo_tests::fails(&o);
        assert!(e.contains(want), "{args:?}: {e}");
    }
    let e = vireo_tests::fails(&d.virsh(&["cpu-models", "armv7l"]));
    assert!(e.contains("cannot find CPU models"), "{e}");
}
