//! Our own `vireo` command's device, vCPU, metadata, display and CPU-model commands print
//! what virsh prints, against the same daemon, without booting a guest: the XML
//! attach-disk and attach-interface build (`--print-xml`, every option, every refusal),
//! domblklist / domiflist / domif-getlink / vcpucount / vcpupin / emulatorpin / desc /
//! metadata on a shut-off domain's definition, detach-disk / detach-interface /
//! change-media / domif-setlink changes of that definition (vireo makes each; virsh's
//! repetition fails as vireo's would), then the same on a domain started paused (QEMU runs,
//! the guest does not): live pins, the title and metadata of the running domain, a disk
//! plugged in, the link set down, the media changed, domdisplay, vncdisplay, screenshot;
//! cpu-models; each refusal word for word, read-only connections included.

use vireo_tests::{
    all_refused_as_virsh, all_same_as_virsh, done_then_refused, ok, output_parts, run_cmd,
    run_cmd_env, same_as_virsh, same_as_virsh_read_only, write_file, Daemon,
};

const MAC: &str = "52:54:00:aa:bb:01";

/// The devices of vm1: a CD-ROM drive without media, a user-mode card, a VNC display.
const VM1_DEVICES: &str = "<memballoon model='none'/>\
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/>\
    <target dev='hdc' bus='ide'/><readonly/></disk>\
    <interface type='user'><mac address='52:54:00:aa:bb:01'/><model type='virtio'/></interface>\
    <graphics type='vnc' autoport='yes' listen='127.0.0.1'/><video><model type='vga'/></video>";

#[test]
fn vireo_devices_vcpus_metadata_and_displays() {
    let d = Daemon::start();
    let img = d.root.join("disk.img");
    let img = img.to_str().expect("utf-8").to_string();
    let iso = d.root.join("cd.iso");
    let iso = iso.to_str().expect("utf-8").to_string();
    for (f, size) in [(&img, "16M"), (&iso, "1M")] {
        ok(&run_cmd(
            "qemu-img",
            &["create", "-q", "-f", "raw", f, size],
        ));
    }
    let vm1 = vireo_tests::guest_xml("vm1")
        .replace("<vcpu>1</vcpu>", "<vcpu>2</vcpu>")
        .replace("<memballoon model='none'/>", VM1_DEVICES);
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &vm1)]));
    let vm2_devices = format!(
        "<memballoon model='none'/>\
         <disk type='file' device='disk'><source file='{img}'/>\
         <target dev='vda' bus='virtio'/></disk>\
         <disk type='file' device='cdrom'><source file='{iso}'/>\
         <target dev='hdc' bus='ide'/><readonly/></disk>\
         <disk type='file' device='cdrom'><target dev='hdd' bus='ide'/></disk>\
         <disk type='file' device='floppy'><driver name='qemu'/><source file='{iso}'/>\
         <target dev='fda'/></disk>\
         <interface type='user'><mac address='52:54:00:aa:bb:02'/></interface>\
         <interface type='user'><mac address='52:54:00:aa:bb:03'/></interface>"
    );
    let vm2 = vireo_tests::guest_xml("vm2")
        .replace("<vcpu>1</vcpu>", "<vcpu current='1'>2</vcpu>")
        .replace("<memballoon model='none'/>", &vm2_devices);
    ok(&d.virsh(&["define", &write_file(&d, "vm2.xml", &vm2)]));

    print_xml(&d, &img);
    definition(&d, &img, &iso);
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    running(&d, &img, &iso);
    read_only(&d);
    all_same_as_virsh(
        &d,
        &[
            &["cpu-models", "x86_64"],
            &["cpu-models", "--arch", "x86_64"],
        ],
    );
    all_refused_as_virsh(
        &d,
        &[
            &["cpu-models", "sparc64"],
            &["cpu-models", ""],
            &["cpu-models"],
            &["cpu-models", "a", "b"],
        ],
    );
    ok(&d.virsh(&["destroy", "vm1"]));
}

/// The XML attach-disk and attach-interface would send, and their refusals before any.
fn print_xml(d: &Daemon, img: &str) {
    let calls: &[&[&str]] = &[
        &["attach-disk", "vm1", img, "vdb", "--print-xml"],
        &[
            "attach-disk",
            "vm1",
            "/dev/null",
            "vdb",
            "--print-xml",
            "--driver",
            "qemu",
            "--subdriver",
            "raw",
            "--cache",
            "none",
            "--io",
            "native",
            "--iothread",
            "1",
            "--type",
            "disk",
            "--mode",
            "readonly",
            "--serial",
            "S1",
            "--wwn",
            "5000c50015ea71ac",
            "--alias",
            "ua-x",
            "--rawio",
            "--address",
            "pci:0.0.7.0",
            "--multifunction",
            "--targetbus",
            "virtio",
        ],
        &[
            "attach-disk",
            "vm1",
            "",
            "hdd",
            "--type",
            "cdrom",
            "--print-xml",
        ],
        &[
            "attach-disk",
            "vm1",
            "a'b<c",
            "vdb",
            "--serial",
            "a'b<",
            "--print-xml",
        ],
        &[
            "attach-disk",
            "vm1",
            "x",
            "vdb",
            "--sourcetype",
            "block",
            "--print-xml",
        ],
        &[
            "attach-disk",
            "vm1",
            "x",
            "sdb",
            "--shareable",
            "--print-xml",
        ],
        &[
            "attach-disk",
            "vm1",
            "vol",
            "sdb",
            "--source-protocol",
            "nbd",
            "--source-host-name",
            "h:10809",
            "--print-xml",
        ],
        &[
            "attach-disk",
            "vm1",
            "vol",
            "vdb",
            "--source-protocol",
            "nbd",
            "--source-host-transport",
            "unix",
            "--source-host-socket",
            "/s",
            "--print-xml",
        ],
        &[
            "attach-disk",
            "vm1",
            "x",
            "sda",
            "--address",
            "scsi:0.0.3",
            "--print-xml",
        ],
        &[
            "attach-disk",
            "vm1",
            "x",
            "sda",
            "--address",
            "usb:1.2",
            "--print-xml",
        ],
        &[
            "attach-disk",
            "vm1",
            "x",
            "sda",
            "--address",
            "sata:0:0:1",
            "--print-xml",
        ],
        &[
            "attach-disk",
            "vm1",
            "x",
            "hda",
            "--address",
            "ide:0.1.0",
            "--print-xml",
        ],
        &[
            "attach-disk",
            "vm1",
            "x",
            "vda",
            "--address",
            "ccw:0xfe.0.0x1",
            "--print-xml",
        ],
        &[
            "attach-disk",
            "vm1",
            "x",
            "xda",
            "--address",
            "scsi:0.0.3",
            "--print-xml",
        ],
        // No domain is needed to print.
        &["attach-disk", "nope", "x", "vdb", "--print-xml"],
        &[
            "attach-interface",
            "vm1",
            "network",
            "default",
            "--print-xml",
        ],
        &[
            "attach-interface",
            "vm1",
            "bridge",
            "br0",
            "--mac",
            "52:54:00:00:00:01",
            "--model",
            "virtio",
            "--target",
            "t0",
            "--script",
            "/bin/true",
            "--alias",
            "ua-n",
            "--inbound",
            "100,200,300,400",
            "--outbound",
            "10,,30",
            "--managed",
            "--print-xml",
        ],
        &[
            "attach-interface",
            "vm1",
            "network",
            "n",
            "--inbound",
            "0,,,5",
            "--print-xml",
        ],
        &["attach-interface", "vm1", "direct", "eth9", "--print-xml"],
        &[
            "attach-interface",
            "vm1",
            "hostdev",
            "0000:00:01.0",
            "--print-xml",
        ],
        &[
            "attach-interface",
            "vm1",
            "vhostuser",
            "/s",
            "--source-mode",
            "client",
            "--print-xml",
        ],
    ];
    all_same_as_virsh(d, calls);
    all_refused_as_virsh(
        d,
        &[
            &[
                "attach-disk",
                "vm1",
                "x",
                "vda",
                "--address",
                "scsi:0.0.3",
                "--print-xml",
            ],
            &[
                "attach-disk",
                "vm1",
                "x",
                "sda",
                "--address",
                "ide:0.0.0",
                "--print-xml",
            ],
            &[
                "attach-disk",
                "vm1",
                "x",
                "hda",
                "--address",
                "pci:0.0.7.0",
                "--print-xml",
            ],
            &[
                "attach-disk",
                "vm1",
                "x",
                "vda",
                "--address",
                "pci:0.0.7",
                "--print-xml",
            ],
            &[
                "attach-disk",
                "vm1",
                "x",
                "vda",
                "--address",
                "bogus",
                "--print-xml",
            ],
            &["attach-disk", "vm1", "x", "vda", "--sourcetype", "nope"],
            &["attach-disk", "vm1", "x", "vda", "--mode", "rw"],
            &["attach-disk", "vm1", "x", "vda", "--wwn", "zz"],
            &["attach-disk", "vm1", "x", "vda", "--source-host-name", "h"],
            &["attach-disk", "vm1", "x", "vda", "--sourcetype", "network"],
            &[
                "attach-disk",
                "vm1",
                "x",
                "vda",
                "--source-protocol",
                "nbd",
                "--source-host-socket",
                "/s",
            ],
            &[
                "attach-disk",
                "vm1",
                "x",
                "vdc",
                "--shareable",
                "--mode",
                "readonly",
            ],
            &[
                "attach-disk",
                "vm1",
                "x",
                "vda",
                "--current",
                "--persistent",
            ],
            &["attach-disk", "vm1", "x", "vda", "--current", "--live"],
            &["attach-disk", "vm1", "x", "vda", "--driver", ""],
            &["attach-disk", "vm1", "x", ""],
            &["attach-disk", "vm1", "x"],
            &["attach-disk", "vm1", "x", "vda", "--bogus"],
            &["attach-disk", "nope", "x", "vda"],
            &["attach-interface", "vm1", "user", "x", "--print-xml"],
            &["attach-interface", "vm1", "bogus", "x"],
            &["attach-interface", "vm1", "null", "x", "--inbound", ",,,,"],
            &[
                "attach-interface",
                "vm1",
                "network",
                "x",
                "--inbound",
                "1,x",
            ],
            &["attach-interface", "vm1", "network", "x", "--inbound", "-5"],
            &[
                "attach-interface",
                "vm1",
                "network",
                "x",
                "--inbound",
                "0,1",
            ],
            &["attach-interface", "vm1", "network", "x", "--outbound", "0"],
            &[
                "attach-interface",
                "vm1",
                "network",
                "x",
                "--outbound",
                "1,2,3,4",
            ],
            &["attach-interface", "vm1", "vhostuser", "/s"],
            &[
                "attach-interface",
                "vm1",
                "vhostuser",
                "/s",
                "--source-mode",
                "x",
            ],
            &["attach-interface", "vm1", "hostdev", "bad"],
            &["attach-interface", "vm1", "network"],
            &["attach-interface", "nope", "network", "n"],
        ],
    );
}

/// vm2, shut off: its definition read and changed.
fn definition(d: &Daemon, img: &str, iso: &str) {
    all_same_as_virsh(
        d,
        &[
            &["domblklist", "vm2"],
            &["domblklist", "vm2", "--details"],
            &["domblklist", "--domain", "vm2", "--inactive"],
            &["domiflist", "vm2"],
            &["domiflist", "vm1", "--inactive"],
            &["domif-getlink", "vm2", "52:54:00:aa:bb:02"],
            &["domif-getlink", "vm2", "52:54:0:AA:bb:3", "--config"],
            &["domif-getlink", "vm2", "52:54:00:aa:bb:02", "--persistent"],
            &["vcpucount", "vm2"],
            &["vcpucount", "vm2", "--maximum"],
            &["vcpucount", "vm2", "--config", "--active"],
            &["vcpucount", "vm2", "--current"],
            &["vcpupin", "vm2"],
            &["vcpupin", "vm2", "--vcpu", "1", "--config"],
            &["emulatorpin", "vm2"],
            &["emulatorpin", "vm2", "--config"],
            &["desc", "vm2"],
            &["desc", "vm2", "--title", "--config"],
            &["detach-disk", "vm2", "vda", "--print-xml"],
            &["detach-disk", "vm2", iso, "--print-xml", "--config"],
            &[
                "detach-interface",
                "vm2",
                "user",
                "--mac",
                "52:54:00:AA:BB:3",
                "--print-xml",
            ],
            &[
                "change-media",
                "vm2",
                "hdc",
                "/tmp/other.iso",
                "--print-xml",
            ],
            &["change-media", "vm2", "hdc", "--eject", "--print-xml"],
            &["change-media", "vm2", "hdd", iso, "--print-xml", "--block"],
            &[
                "change-media",
                "vm2",
                iso,
                "--update",
                "/tmp/y.iso",
                "--print-xml",
            ],
            &["change-media", "vm2", "fda", "--update", "--print-xml"],
            &[
                "domif-setlink",
                "vm2",
                "52:54:00:AA:bb:02",
                "down",
                "--print-xml",
            ],
        ],
    );
    all_refused_as_virsh(
        d,
        &[
            &["domif-getlink", "vm2", "vnet0"],
            &["domif-getlink", "vm2", "52:54:00:aa:bb:09"],
            &["domif-getlink", "vm2", ""],
            &["vcpucount", "vm2", "--live"],
            &["vcpucount", "vm2", "--active", "--maximum"],
            &["vcpucount", "vm2", "--guest", "--config"],
            &["vcpupin", "vm2", "--live"],
            &["vcpupin", "vm2", "--live", "--config"],
            &["vcpupin", "vm2", "--vcpu", "5"],
            &["vcpupin", "vm2", "--cpulist", "0"],
            &["vcpupin", "vm2", "-1"],
            &["vcpupin", "vm2", "0", "x"],
            &["vcpupin", "vm2", "0", ""],
            &["emulatorpin", "vm2", "--live"],
            &["emulatorpin", "vm2", "--live", "--config"],
            &["desc", "vm2", "--live", "--current"],
            &["metadata", "vm2", "http://example.org/x/"],
            &["metadata", "vm2", "http://example.org/x/", "--set", "<a/>"],
            &[
                "metadata",
                "vm2",
                "http://example.org/x/",
                "--remove",
                "--set",
                "<a/>",
            ],
            &["metadata", "vm2"],
            &["detach-disk", "vm2", "vdz", "--print-xml"],
            &["detach-interface", "vm2", "user", "--print-xml"],
            &["detach-interface", "vm2", "user"],
            &["detach-interface", "vm2", "network", "--config"],
            &[
                "detach-interface",
                "vm2",
                "user",
                "--mac",
                "52:54:00:aa:bb:09",
            ],
            &["detach-interface", "vm2", ""],
            &["change-media", "vm2", "vda", "x", "--print-xml"],
            &["change-media", "vm2", "hdc", "--insert", "x", "--print-xml"],
            &["change-media", "vm2", "hdd", "--eject", "--print-xml"],
            &["change-media", "vm2", "hdd", "--insert", "--print-xml"],
            &["change-media", "vm2", "hdc", "--eject", "--block"],
            &["change-media", "vm2", "hdc", "x", "--current", "--live"],
            &["domif-setlink", "vm2", "x", "up"],
            &["domif-setlink", "vm2", "52:54:00:aa:bb:02", "sideways"],
        ],
    );

    // vireo changes the definition; virsh sees it, and its repetition fails alike.
    done_then_refused(
        d,
        &[
            "attach-disk",
            "vm2",
            img,
            "vdb",
            "--config",
            "--targetbus",
            "virtio",
        ],
        "Disk attached successfully\n\n",
    );
    same_as_virsh(d, &["domblklist", "vm2", "--details"]);
    done_then_refused(
        d,
        &["detach-disk", "vm2", "vdb", "--config"],
        "Disk detached successfully\n\n",
    );
    done_then_refused(
        d,
        &[
            "attach-interface",
            "vm2",
            "network",
            "default",
            "--mac",
            "52:54:00:aa:bb:04",
            "--config",
        ],
        "Interface attached successfully\n\n",
    );
    same_as_virsh(d, &["domiflist", "vm2"]);
    done_then_refused(
        d,
        &["detach-interface", "vm2", "network", "--config"],
        "Interface detached successfully\n\n",
    );
    done_then_refused(
        d,
        &["change-media", "vm2", "hdd", iso, "--insert", "--config"],
        "Successfully inserted media.\n",
    );
    done_then_refused(
        d,
        &["change-media", "vm2", "hdd", "--eject", "--config"],
        "Successfully ejected media.\n",
    );
    assert_eq!(
        ok(&d.vireo(&["domif-setlink", "vm2", "52:54:00:aa:bb:02", "down"])),
        "Device updated successfully\n\n"
    );
    same_as_virsh(d, &["domif-getlink", "vm2", "52:54:00:aa:bb:02"]);
    same_as_virsh(
        d,
        &[
            "domif-setlink",
            "vm2",
            "52:54:00:aa:bb:02",
            "down",
            "--print-xml",
        ],
    );
    assert_eq!(
        ok(&d.vireo(&["vcpupin", "vm2", "1", "0", "--config"])),
        "\n"
    );
    assert_eq!(ok(&d.vireo(&["emulatorpin", "vm2", "0", "--config"])), "\n");
    all_same_as_virsh(d, &[&["vcpupin", "vm2"], &["emulatorpin", "vm2"]]);
    assert_eq!(
        ok(&d.vireo(&["desc", "vm2", "a  second", "guest", "--config"])),
        "Domain description updated successfully\n"
    );
    assert_eq!(
        ok(&d.vireo(&["desc", "vm2", "--title", "--new-desc", "Two"])),
        "Domain title updated successfully\n"
    );
    all_same_as_virsh(d, &[&["desc", "vm2"], &["desc", "vm2", "--title"]]);
    let ns = "http://example.org/x/";
    assert_eq!(
        ok(&d.vireo(&[
            "metadata",
            "vm2",
            ns,
            "--key",
            "x",
            "--set",
            "<a b='1'><c/></a>"
        ])),
        "Metadata modified\n\n"
    );
    same_as_virsh(d, &["metadata", "vm2", ns]);
    assert_eq!(
        ok(&d.vireo(&["metadata", "vm2", ns, "--remove", "--config"])),
        "Metadata removed\n\n"
    );
    all_refused_as_virsh(d, &[&["metadata", "vm2", ns]]);
    edits(d, ns);
}

/// What a command said and how it ended (see [`output_parts`]).
type Said = (String, String, Option<i32>);

/// `args` run by vireo, then by virsh, with `editor` as `$EDITOR`: what each said.
fn with_editor(d: &Daemon, editor: &str, args: &[&str]) -> (Said, Said) {
    let uri = d.uri();
    let full = [&["-c", uri.as_str()][..], args].concat();
    let env = [("EDITOR", editor), ("VISUAL", editor)];
    let vireo = vireo_tests::bin("vireo");
    let ours = run_cmd_env(vireo.to_str().expect("utf-8"), &full, 60, &env);
    let theirs = run_cmd_env("virsh", &full, 60, &env);
    (output_parts(&ours), output_parts(&theirs))
}

/// desc --edit and metadata --edit: an editor that changes nothing, then one that writes
/// a new title (its line end dropped) or a new element; what vireo made, virsh reads.
fn edits(d: &Daemon, ns: &str) {
    let script = |name: &str, body: &str| {
        use std::os::unix::fs::PermissionsExt;
        let f = write_file(d, name, &format!("#!/bin/sh\n{body}\n"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        f
    };
    let title = script("ed-title.sh", "printf 'Edited title\\n' > \"$1\"");
    let element = script("ed-meta.sh", "printf '<e n=\"1\"/>' > \"$1\"");
    for args in [
        &["desc", "vm2", "--edit"][..],
        &["desc", "vm2", "--title", "--edit", "--config"],
        &["metadata", "vm2", ns, "--key", "k", "--edit"],
    ] {
        let (ours, theirs) = with_editor(d, "true", args);
        assert_eq!(ours, theirs, "{args:?} with an editor that changes nothing");
        assert!(ours.0.contains("not changed"), "{ours:?}");
    }
    let (ours, _) = with_editor(d, &title, &["desc", "vm2", "--title", "--edit"]);
    assert_eq!(ours.0, "Domain title updated successfully\n", "{ours:?}");
    assert_eq!(
        ok(&same_as_virsh(d, &["desc", "vm2", "--title"])),
        "Edited title\n"
    );
    let (ours, theirs) = with_editor(d, &title, &["desc", "vm2", "--title", "--edit"]);
    assert_eq!(ours, theirs);
    let (ours, _) = with_editor(
        d,
        &element,
        &["metadata", "vm2", ns, "--key", "k", "--edit"],
    );
    assert_eq!(ours.0, "Metadata modified\n\n", "{ours:?}");
    assert_eq!(
        ok(&same_as_virsh(d, &["metadata", "vm2", ns])),
        "<e n=\"1\"/>\n\n"
    );
}

/// vm1, started paused: the running domain read and changed.
fn running(d: &Daemon, img: &str, iso: &str) {
    let shot = d.root.join("shot.png");
    let shot = shot.to_str().expect("utf-8");
    all_same_as_virsh(
        d,
        &[
            &["domblklist", "vm1", "--details"],
            &["domiflist", "vm1"],
            &["domif-getlink", "vm1", MAC],
            &["vcpucount", "vm1"],
            &["vcpucount", "vm1", "--live", "--maximum"],
            &["vcpupin", "vm1"],
            &["vcpupin", "vm1", "1"],
            &["vcpupin", "vm1", "--config"],
            &["emulatorpin", "vm1"],
            &["emulatorpin", "vm1", "--live"],
            &["domdisplay", "vm1"],
            &["domdisplay", "vm1", "--all"],
            &["domdisplay", "vm1", "--type", "vnc", "--include-password"],
            &["vncdisplay", "vm1"],
            &["screenshot", "vm1", shot],
            &[
                "screenshot",
                "--domain",
                "vm1",
                "--file",
                shot,
                "--screen",
                "0",
            ],
            &["detach-disk", "vm1", "hdc", "--print-xml"],
            &["detach-interface", "vm1", "user", "--print-xml"],
            &["domif-setlink", "vm1", MAC, "down", "--print-xml"],
            &["change-media", "vm1", "hdc", iso, "--print-xml"],
        ],
    );
    let png = std::fs::read(shot).expect("the screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    // Without --live/--config, virsh pins the running guest's vCPU (virDomainPinVcpu).
    all_same_as_virsh(d, &[&["vcpupin", "vm1", "1", "0"]]);
    all_refused_as_virsh(
        d,
        &[
            &["vcpupin", "vm1", "5"],
            &["vcpupin", "vm1", "0", "9999"],
            &["domdisplay", "vm1", "--type", "spice"],
            &["domdisplay", "vm1", "--all", "--type", "vnc"],
            &["domdisplay", "vm2"],
            &["vncdisplay", "vm2"],
            &["screenshot", "vm1", shot, "--screen", "1"],
            &["screenshot", "vm1", "/nonexistent/shot.png"],
            &["screenshot", "vm1", shot, "--screen", "x"],
            &["screenshot", "vm2", shot],
            &["domtime", "vm1"],
            &["domhostname", "vm1"],
            &["guestinfo", "vm1"],
            &["domfsinfo", "vm1"],
            &["qemu-agent-command", "vm1", "{\"execute\":\"guest-ping\"}"],
            &["qemu-agent-command", "vm1"],
            &["qemu-agent-command", "vm1", "--timeout", "0", "x"],
            &["qemu-agent-command", "vm1", "--async", "--block", "x"],
            &["domtime", "vm1", "--now", "--sync"],
            &["domtime", "vm1", "--time", "x"],
            &["domhostname", "vm1", "--source", "x"],
            &["set-user-password", "vm1", "root"],
            &["set-user-password", "vm1", "root", ""],
            &["domfsfreeze", "nope"],
        ],
    );

    // Pins of the running domain.
    assert_eq!(ok(&d.vireo(&["vcpupin", "vm1", "1", "0", "--live"])), "\n");
    assert_eq!(ok(&d.vireo(&["emulatorpin", "vm1", "0"])), "\n");
    all_same_as_virsh(
        d,
        &[
            &["vcpupin", "vm1"],
            &["emulatorpin", "vm1"],
            &["vcpupin", "vm1", "--config"],
        ],
    );
    // The running domain's title and metadata, not its definition's.
    assert_eq!(
        ok(&d.vireo(&["desc", "vm1", "--title", "Running", "one"])),
        "Domain title updated successfully\n"
    );
    all_same_as_virsh(
        d,
        &[
            &["desc", "vm1", "--title"],
            &["desc", "vm1", "--title", "--config"],
        ],
    );
    let ns = "http://example.org/run/";
    assert_eq!(
        ok(&d.vireo(&["metadata", "vm1", ns, "k", "<v n='1'/>", "--live"])),
        "Metadata modified\n\n"
    );
    same_as_virsh(d, &["metadata", "vm1", ns]);
    all_refused_as_virsh(d, &[&["metadata", "vm1", ns, "--config"]]);

    // A disk plugged into the paused guest; the link of its card down; media in its drive.
    done_then_refused(
        d,
        &["attach-disk", "vm1", img, "vdb", "--targetbus", "virtio"],
        "Disk attached successfully\n\n",
    );
    same_as_virsh(d, &["domblklist", "vm1"]);
    assert_eq!(
        ok(&d.vireo(&["domif-setlink", "vm1", MAC, "down"])),
        "Device updated successfully\n\n"
    );
    all_same_as_virsh(
        d,
        &[
            &["domif-getlink", "vm1", MAC],
            &["domif-getlink", "vm1", MAC, "--config"],
            &["domif-setlink", "vm1", MAC, "down"],
        ],
    );
    done_then_refused(
        d,
        &["change-media", "vm1", "hdc", iso, "--insert"],
        "Successfully inserted media.\n",
    );
    same_as_virsh(d, &["domblklist", "vm1"]);
    done_then_refused(
        d,
        &["change-media", "vm1", "hdc", "--eject", "--live"],
        "Successfully ejected media.\n",
    );
}

/// What a read-only connection may not do, refused as virsh refuses it.
fn read_only(d: &Daemon) {
    for args in [
        &["attach-disk", "vm1", "/dev/null", "vdc"][..],
        &["attach-disk", "vm1", "/dev/null", "vdc", "--config"],
        &["detach-disk", "vm1", "hdc"],
        &["detach-interface", "vm1", "user", "--live"],
        &["attach-interface", "vm1", "network", "default"],
        &["change-media", "vm1", "hdc", "x", "--live"],
        &["domif-setlink", "vm1", MAC, "up"],
        &["vcpupin", "vm1", "0", "0", "--live"],
        &["vcpupin", "vm1", "0", "0"],
        &["emulatorpin", "vm1", "0"],
        &["vcpucount", "vm1", "--guest"],
        &["desc", "vm1", "new"],
        &[
            "metadata",
            "vm1",
            "http://example.org/x/",
            "--key",
            "k",
            "--set",
            "<a/>",
        ],
        &["screenshot", "vm1", "/dev/null"],
        &["domtime", "vm1"],
        &["domhostname", "vm1"],
        &["guestinfo", "vm1"],
        &["domfsfreeze", "vm1"],
        &["domfsinfo", "vm1"],
        &["set-user-password", "vm1", "root", "x"],
        &["qemu-agent-command", "vm1", "x"],
    ] {
        let o = same_as_virsh_read_only(d, args);
        assert!(!o.status.success(), "read-only {args:?} should fail");
    }
    for args in [
        &["domblklist", "vm1"][..],
        &["domiflist", "vm1"],
        &["vcpupin", "vm1"],
        &["vcpucount", "vm1"],
        &["desc", "vm1", "--title"],
        &["domdisplay", "vm1"],
        &["cpu-models", "x86_64"],
    ] {
        same_as_virsh_read_only(d, args);
    }
}
