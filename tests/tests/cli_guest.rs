//! Our own `vireo` command on one booted TCG guest (Debian's qemu-ga on its agent channel,
//! an ext2 filesystem mounted from its disk, a CD-ROM drive, a user-mode card), against the
//! real virsh on the same daemon: the agent's commands (qemu-agent-command with --pretty,
//! --block, --timeout; guestinfo; domfsinfo; domfsfreeze / domfsthaw; set-user-password;
//! domtime; domhostname; vcpucount --guest) print what virsh prints; then devices plugged
//! and unplugged live by vireo — a disk the guest sees come and go, media inserted and
//! ejected, the card's link set down (the guest loses its carrier) and up, the card
//! unplugged, a card on a bridge of the test's namespace plugged in and out — each seen by
//! virsh as vireo left it, and virsh's repetition refused as vireo's would be.

use vireo_tests::{
    all_refused_as_virsh, all_same_as_virsh, done_then_refused, guest_shell, in_ns, ok, run_cmd,
    same_as_virsh, write_file, Daemon, EventLog,
};

const MAC: &str = "52:54:00:aa:bb:01";

#[test]
fn vireo_agent_and_live_devices_on_a_running_guest() {
    let d = Daemon::start();
    let path = |name: &str| d.root.join(name).to_str().expect("utf-8").to_string();
    let (fs, extra, iso) = (path("fs.img"), path("extra.img"), path("cd.iso"));
    for (f, size) in [(&fs, "16M"), (&extra, "8M"), (&iso, "1M")] {
        ok(&run_cmd(
            "qemu-img",
            &["create", "-q", "-f", "raw", f, size],
        ));
    }
    let devices = format!(
        "<memballoon model='none'/>\
         <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>\
         <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{fs}'/>\
         <target dev='vda' bus='virtio'/></disk>\
         <disk type='file' device='cdrom'><driver name='qemu' type='raw'/>\
         <target dev='hdc' bus='ide'/><readonly/></disk>\
         <interface type='user'><mac address='{MAC}'/><model type='virtio'/></interface>"
    );
    let xml = vireo_tests::guest_xml("vm1")
        .replace("<vcpu>1</vcpu>", "<vcpu>2</vcpu>")
        .replace("<memballoon model='none'/>", &devices);
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &xml)]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let mut dev = EventLog::start_devices(&d);
    guest_shell(
        &d,
        "vm1",
        &[
            "--resume",
            "mke2fs -q /dev/vda && mkdir -p /mnt && mount /dev/vda /mnt && echo M-$((1+1))",
            "M-2",
        ],
    );
    dev.wait_for("vm1 agent-lifecycle 1 2");

    agent(&d);
    disks(&d, &mut dev, &extra, &iso);
    interfaces(&d, &mut dev);
    ok(&d.virsh(&["destroy", "vm1"]));
}

fn agent(d: &Daemon) {
    let ping = r#"{"execute":"guest-ping"}"#;
    all_same_as_virsh(
        d,
        &[
            &["qemu-agent-command", "vm1", ping],
            &["qemu-agent-command", "vm1", "--block", ping],
            &[
                "qemu-agent-command",
                "vm1",
                "--timeout",
                "30",
                ping,
                "--pretty",
            ],
            &[
                "qemu-agent-command",
                "vm1",
                r#"{"execute":"#,
                r#""guest-ping"}"#,
            ],
            &[
                "qemu-agent-command",
                "vm1",
                r#"{"execute":"guest-info"}"#,
                "--pretty",
            ],
            &[
                "qemu-agent-command",
                "--domain",
                "vm1",
                "--cmd",
                r#"{"execute":"guest-get-osinfo"}"#,
                "--pretty",
            ],
            &["guestinfo", "vm1"],
            &["guestinfo", "vm1", "--os", "--hostname", "--timezone"],
            &["guestinfo", "vm1", "--filesystem", "--disk", "--user"],
            &["guestinfo", "vm1", "--interface"],
            &["domfsinfo", "vm1"],
            &["domhostname", "vm1"],
            &["vcpucount", "vm1", "--guest"],
            &["vcpucount", "vm1"],
            &["set-user-password", "vm1", "root", "s3cret"],
            &[
                "set-user-password",
                "vm1",
                "root",
                "$6$salt$hash",
                "--encrypted",
            ],
            &["domtime", "vm1", "--time", "1700000000"],
            &["domtime", "vm1", "--sync"],
            &["domfsfreeze", "vm1", "--mountpoint", "/nowhere"],
        ],
    );
    all_refused_as_virsh(
        d,
        &[
            &["qemu-agent-command", "vm1", r#"{"execute":"guest-frob"}"#],
            &["qemu-agent-command", "vm1", "not json"],
            &["qemu-agent-command", "vm1", "--async", ping],
            &["qemu-agent-command", "vm1", "--timeout", "-1", ping],
            &["domhostname", "vm1", "--source", "dhcp"],
        ],
    );
    // The guest's own record of the passwords it was given, by both.
    guest_shell(
        d,
        "vm1",
        &[
            "--running",
            "cat /run/chpasswd.log",
            "plain root:s3cret\r\nplain root:s3cret\r\ncrypted root:$6$salt$hash\r\n\
             crypted root:$6$salt$hash",
        ],
    );
    // vireo freezes; frozen, both are refused alike; vireo thaws; both find nothing to thaw.
    assert_eq!(
        ok(&d.vireo(&["domfsfreeze", "vm1", "/mnt"])),
        "Froze 1 filesystem(s)\n\n"
    );
    all_refused_as_virsh(d, &[&["domfsfreeze", "vm1"]]);
    assert_eq!(
        ok(&d.vireo(&["domfsthaw", "vm1"])),
        "Thawed 1 filesystem(s)\n\n"
    );
    same_as_virsh(d, &["domfsthaw", "--domain", "vm1", "--mountpoint", "/mnt"]);
    // The guest's clock, synced from its RTC above: what both read, a second apart at most.
    let secs = |out: &str| -> i64 {
        out.trim()
            .strip_prefix("Time: ")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{out}"))
    };
    let ours = secs(&ok(&d.vireo(&["domtime", "vm1"])));
    let theirs = secs(&ok(&d.virsh(&["domtime", "vm1"])));
    assert!((theirs - ours).abs() <= 2, "{ours} {theirs}");
    let pretty = ok(&d.vireo(&["domtime", "vm1", "--pretty"]));
    let t = pretty.trim().strip_prefix("Time: ").unwrap_or_default();
    assert!(
        t.len() == 19 && t.as_bytes()[4] == b'-' && t.as_bytes()[10] == b' ',
        "{pretty}"
    );
    // The hostname from the agent when asked for; from DHCP leases, not yet.
    same_as_virsh(d, &["domhostname", "vm1", "--source", "agent"]);
    all_refused_as_virsh(d, &[&["domhostname", "vm1", "--source", "lease"]]);
}

fn disks(d: &Daemon, dev: &mut EventLog, extra: &str, iso: &str) {
    done_then_refused(
        d,
        &["attach-disk", "vm1", extra, "vdb", "--targetbus", "virtio"],
        "Disk attached successfully\n\n",
    );
    all_same_as_virsh(
        d,
        &[&["domblklist", "vm1"], &["domblklist", "vm1", "--inactive"]],
    );
    guest_shell(
        d,
        "vm1",
        &[
            "--running",
            "i=0; while [ ! -e /sys/block/vdb ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done; \
             echo VDB-$(cat /sys/block/vdb/size)",
            "VDB-16384",
        ],
    );
    dev.seen.clear();
    assert_eq!(
        ok(&d.vireo(&["detach-disk", "vm1", "vdb"])),
        "Disk detached successfully\n\n"
    );
    dev.wait_for("vm1 device-removed virtio-disk1");
    all_same_as_virsh(d, &[&["domblklist", "vm1", "--details"]]);
    all_refused_as_virsh(d, &[&["detach-disk", "vm1", "vdb"]]);
    guest_shell(
        d,
        "vm1",
        &[
            "--running",
            "echo GONE-$(ls /sys/block | grep -c vdb)",
            "GONE-0",
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
        &["change-media", "vm1", "hdc", "--eject"],
        "Successfully ejected media.\n",
    );
    same_as_virsh(d, &["domblklist", "vm1"]);
}

fn interfaces(d: &Daemon, dev: &mut EventLog) {
    // The link down: the guest's card loses its carrier; up again.
    assert_eq!(
        ok(&d.vireo(&["domif-setlink", "vm1", MAC, "down"])),
        "Device updated successfully\n\n"
    );
    all_same_as_virsh(
        d,
        &[
            &["domif-getlink", "vm1", MAC],
            &["domif-getlink", "vm1", MAC, "--config"],
        ],
    );
    guest_shell(
        d,
        "vm1",
        &[
            "--running",
            "ip link set eth0 up; sleep 1; echo CARRIER-$(cat /sys/class/net/eth0/carrier)",
            "CARRIER-0",
        ],
    );
    same_as_virsh(d, &["domif-setlink", "vm1", MAC, "up"]);
    same_as_virsh(d, &["domif-getlink", "vm1", MAC]);

    // The card unplugged, the guest letting it go.
    dev.seen.clear();
    assert_eq!(
        ok(&d.vireo(&["detach-interface", "vm1", "user", "--mac", MAC])),
        "Interface detached successfully\n\n"
    );
    dev.wait_for("vm1 device-removed net0");
    same_as_virsh(d, &["domiflist", "vm1"]);
    all_refused_as_virsh(d, &[&["detach-interface", "vm1", "user", "--mac", MAC]]);

    // A card on a bridge of the test's own namespace, plugged in and out.
    in_ns(d, "ip", &["link", "add", "vbr-cli", "type", "bridge"]);
    in_ns(d, "ip", &["link", "set", "vbr-cli", "up"]);
    let mac = "52:54:00:aa:bb:05";
    assert_eq!(
        ok(&d.vireo(&[
            "attach-interface",
            "vm1",
            "bridge",
            "vbr-cli",
            "--mac",
            mac,
            "--model",
            "virtio",
        ])),
        "Interface attached successfully\n\n"
    );
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    let at = live.find(mac).unwrap_or_else(|| panic!("{live}"));
    let alias = vireo_tests::value_after(&live[at..], "<alias name='");
    dev.wait_for(&format!("vm1 device-added {alias}"));
    all_same_as_virsh(
        d,
        &[
            &["domiflist", "vm1"],
            &["domif-getlink", "vm1", mac],
            &["detach-interface", "vm1", "bridge", "--print-xml"],
        ],
    );
    dev.seen.clear();
    assert_eq!(
        ok(&d.vireo(&["detach-interface", "vm1", "bridge"])),
        "Interface detached successfully\n\n"
    );
    dev.wait_for(&format!("vm1 device-removed {alias}"));
    same_as_virsh(d, &["domiflist", "vm1"]);
}
