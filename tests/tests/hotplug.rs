//! Devices attached to and detached from domains with the real virsh: interfaces on a NAT
//! network, on a host bridge and user-mode ones, and virtio disks (a file, a storage
//! volume), plugged into a running TCG guest (which sees them come and go) and into the
//! definition. Inside the test's own network namespace.

use vireo_tests::{
    fails, guest_shell, host_ping, in_ns, ok, tries, write_file, Daemon, EventLog, Layout,
};

const NAT: &str = "<network><name>vnat</name><forward mode='nat'/>\
    <bridge name='vbr-nat'/>\
    <ip address='10.77.0.1' netmask='255.255.255.0'>\
    <dhcp><range start='10.77.0.100' end='10.77.0.199'/></dhcp></ip></network>";

/// Defines and starts the NAT network `vnat`.
fn nat_network(d: &Daemon) {
    let f = write_file(d, "vnat.xml", NAT);
    ok(&d.virsh(&["net-define", &f]));
    ok(&d.virsh(&["net-start", "vnat"]));
}

/// Defines guest `vm1` from `xml`, starts it paused, starts listening for device events and
/// lets the guest run until its shell is ready.
fn boot(d: &Daemon, xml: &str) -> EventLog {
    let g = write_file(d, "vm1.xml", xml);
    ok(&d.virsh(&["define", &g]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let ev = EventLog::start_devices(d);
    guest_shell(d, "vm1", &["--resume"]);
    ev
}

/// The guest shell command that waits for card `dev` to appear, asks for an address and
/// pings the gateway, printing `tag` when all of that worked.
fn bring_up(dev: &str, tag: &str) -> String {
    format!(
        "i=0; while [ ! -e /sys/class/net/{dev} ] && [ $i -lt 120 ]; do sleep 1; i=$((i+1)); done; \
         ip link set {dev} up; udhcpc -i {dev} -n -q -t 8 -T 2 -s /etc/udhcpc.script >/dev/null 2>&1; \
         echo ADDR-{dev}-$(cat /run/ip.{dev}); {} && echo {tag}",
        tries("10.77.0.1")
    )
}

/// The address the guest printed for `dev` (`ADDR-dev-IP`).
fn addr_of(seen: &str, dev: &str) -> String {
    let key = format!("ADDR-{dev}-");
    seen.lines()
        .find_map(|l| l.trim().strip_prefix(&key).map(str::to_string))
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| panic!("no address for {dev} in:\n{seen}"))
}

fn ports(d: &Daemon) -> usize {
    ok(&d.virsh(&["net-port-list", "vnat", "--uuid"]))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// A running guest gets an interface on a NAT network, one on a host bridge (also in its
/// definition) and a user-mode one; it sees them, gets a lease on the first two and reaches
/// the gateway. DEVICE_ADDED for each. Detaching asks the guest: the card goes, its port and
/// tap go back, DEVICE_REMOVED comes; a config detach changes only the definition. Bad
/// calls are refused with libvirt's errors, nothing left behind.
fn interfaces_come_and_go(layout: Layout) {
    let d = Daemon::start_in(layout);
    nat_network(&d);
    let mut ev = boot(&d, &vireo_tests::guest_xml("vm1"));

    // On the network, live.
    let on_net = write_file(
        &d,
        "if-net.xml",
        "<interface type='network'><mac address='52:54:00:77:00:51'/>\
         <source network='vnat'/><model type='virtio'/></interface>",
    );
    let out = ok(&d.virsh(&["attach-device", "vm1", &on_net, "--live"]));
    assert!(out.contains("Device attached successfully"), "{out}");
    ev.wait_for("vm1 device-added net0");
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(live.contains("<alias name='net0'/>"), "{live}");
    assert!(live.contains("portid='"), "{live}");
    assert_eq!(ports(&d), 1);
    let tap = vireo_tests::value_after(&live, "<target dev='");
    assert!(tap.starts_with("vnet"), "{live}");
    assert!(!ok(&d.virsh(&["dumpxml", "--inactive", "vm1"])).contains("52:54:00:77:00:51"));

    // On the host's bridge, live and in the definition; user-mode, live.
    let on_bridge = write_file(
        &d,
        "if-br.xml",
        "<interface type='bridge'><mac address='52:54:00:77:00:52'/>\
         <source bridge='vbr-nat'/><model type='virtio'/></interface>",
    );
    ok(&d.virsh(&["attach-device", "vm1", &on_bridge, "--live", "--config"]));
    ev.wait_for("vm1 device-added net1");
    let user = write_file(
        &d,
        "if-user.xml",
        "<interface type='user'><mac address='52:54:00:77:00:53'/><model type='virtio'/></interface>",
    );
    ok(&d.virsh(&["attach-device", "vm1", &user]));
    ev.wait_for("vm1 device-added net2");
    let inactive = ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]));
    assert!(inactive.contains("52:54:00:77:00:52"), "{inactive}");
    assert!(!inactive.contains("52:54:00:77:00:53"), "{inactive}");

    // The guest sees the cards, and the first two get leases and reach the gateway.
    let seen = guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            &bring_up("eth0", "HOT0-$((40+2))"),
            "HOT0-42",
            &bring_up("eth1", "HOT1-$((40+2))"),
            "HOT1-42",
            "i=0; while [ ! -e /sys/class/net/eth2 ] && [ $i -lt 120 ]; do sleep 1; i=$((i+1)); done; \
             echo THIRD-$(cat /sys/class/net/eth2/address)",
            "THIRD-52:54:00:77:00:53",
        ],
    );
    let ip0 = addr_of(&seen, "eth0");
    host_ping(&d, &ip0);
    host_ping(&d, &addr_of(&seen, "eth1"));

    // Detach the network card: the guest lets it go, the port and tap go back.
    let out = ok(&d.virsh(&["detach-device", "vm1", &on_net, "--live"]));
    assert!(out.contains("Device detached successfully"), "{out}");
    ev.wait_for("vm1 device-removed net0");
    let t0 = std::time::Instant::now();
    while ports(&d) != 0 || in_ns(&d, "ip", &["-br", "link"]).contains(&format!("{tap} ")) {
        assert!(
            t0.elapsed().as_secs() < 30,
            "the port or tap of net0 stayed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(!live.contains("52:54:00:77:00:51"), "{live}");
    guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            "[ -e /sys/class/net/eth0 ] || echo GONE-$((1+1))",
            "GONE-2",
        ],
    );

    // The bridge card from the definition only: the guest keeps it.
    ok(&d.virsh(&["detach-device", "vm1", &on_bridge, "--config"]));
    assert!(!ok(&d.virsh(&["dumpxml", "--inactive", "vm1"])).contains("52:54:00:77:00:52"));
    assert!(ok(&d.virsh(&["dumpxml", "vm1"])).contains("52:54:00:77:00:52"));

    // Refusals.
    let e = fails(&d.virsh(&["detach-device", "vm1", &on_net, "--live"]));
    assert!(
        e.contains("device not found") && e.contains("52:54:00:77:00:51"),
        "{e}"
    );
    let sound = write_file(&d, "sound.xml", "<sound model='ich9'/>");
    let e = fails(&d.virsh(&["attach-device", "vm1", &sound, "--live"]));
    assert!(e.contains("not supported by Vireo yet"), "{e}");
    let nowhere = write_file(
        &d,
        "if-nowhere.xml",
        "<interface type='network'><source network='nowhere'/><model type='virtio'/></interface>",
    );
    let links = in_ns(&d, "ip", &["-br", "link"]);
    let e = fails(&d.virsh(&["attach-device", "vm1", &nowhere, "--live"]));
    assert!(e.contains("nowhere"), "{e}");
    assert_eq!(in_ns(&d, "ip", &["-br", "link"]), links);
    ok(&d.virsh(&["destroy", "vm1"]));
    // Hotplug semantics without flags (libvirt's virDomainAttachDevice): live only.
    let e = fails(&d.virsh(&["attach-device", "vm1", &user]));
    assert!(e.contains("domain is not running"), "{e}");
    // With the domain shut off, the current definition is the one changed.
    ok(&d.virsh(&["attach-device", "vm1", &user, "--current"]));
    assert!(ok(&d.virsh(&["dumpxml", "vm1"])).contains("52:54:00:77:00:53"));
    let t0 = std::time::Instant::now();
    while ok(&d.virsh(&["net-port-list", "vnat", "--uuid"])).trim() != ""
        || in_ns(&d, "ip", &["-br", "link"]).contains("vnet")
    {
        assert!(
            t0.elapsed().as_secs() < 30,
            "a port or tap outlived the guest"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    ok(&d.virsh(&["net-destroy", "vnat"]));
}

/// The guest shell command that waits for disk `dev` and prints its first 16 bytes.
fn read_disk(dev: &str) -> String {
    format!(
        "i=0; while [ ! -e /sys/block/{dev} ] && [ $i -lt 120 ]; do sleep 1; i=$((i+1)); done; \
         echo DISK-{dev}-$(dd if=/dev/{dev} bs=16 count=1 2>/dev/null)"
    )
}

/// Writes `marker` at the start of the image `path` (1 MiB, made if missing).
fn mark(path: &std::path::Path, marker: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap();
    f.write_all(marker.as_bytes()).unwrap();
    f.set_len(1 << 20).unwrap();
}

/// A running guest gets a virtio disk from a file and one from a storage volume (the live
/// XML shows the volume), reads them, and loses the first when it is detached (its block
/// nodes go, DEVICE_REMOVED comes). Config attach and detach change the definition only;
/// what cannot be hot-plugged is refused.
fn disks_come_and_go(layout: Layout) {
    let d = Daemon::start_in(layout);
    let mut ev = boot(&d, &vireo_tests::guest_xml("vm1"));

    let img = d.root.join("hot.img");
    mark(&img, "VIREOHOTFILE0001");
    let file_disk = write_file(
        &d,
        "disk-file.xml",
        &format!(
            "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
             <source file='{}'/><target dev='vdb' bus='virtio'/></disk>",
            img.display()
        ),
    );
    let out = ok(&d.virsh(&["attach-device", "vm1", &file_disk, "--live"]));
    assert!(out.contains("Device attached successfully"), "{out}");
    ev.wait_for("vm1 device-added virtio-disk1");

    ok(&d.virsh(&["vol-create-as", "default", "hot2.img", "1M"]));
    mark(
        &d.root.join("var/lib/vireo/images/hot2.img"),
        "VIREOHOTVOLUME02",
    );
    let vol_disk = write_file(
        &d,
        "disk-vol.xml",
        "<disk type='volume' device='disk'><driver name='qemu' type='raw'/>\
         <source pool='default' volume='hot2.img'/><target dev='vdc' bus='virtio'/></disk>",
    );
    ok(&d.virsh(&["attach-device", "vm1", &vol_disk, "--live", "--config"]));
    ev.wait_for("vm1 device-added virtio-disk2");
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(
        live.contains("<source pool='default' volume='hot2.img'/>"),
        "{live}"
    );
    assert!(live.contains("<alias name='virtio-disk2'/>"), "{live}");
    let inactive = ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]));
    assert!(
        inactive.contains("hot2.img") && !inactive.contains("hot.img'"),
        "{inactive}"
    );

    // The guest names its disks in the order they came (it had none): vda, vdb.
    guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            &read_disk("vda"),
            "DISK-vda-VIREOHOTFILE0001",
            &read_disk("vdb"),
            "DISK-vdb-VIREOHOTVOLUME02",
        ],
    );

    // Detach the file disk: the guest lets it go.
    ok(&d.virsh(&["detach-device", "vm1", &file_disk, "--live"]));
    ev.wait_for("vm1 device-removed virtio-disk1");
    assert!(!ok(&d.virsh(&["dumpxml", "vm1"])).contains("hot.img'"));
    guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            "[ -e /sys/block/vda ] || echo NO-VDA-$((1+1))",
            "NO-VDA-2",
        ],
    );
    // Attached again: the same target, new block nodes. (The events seen so far are
    // forgotten first: the same ones come again.)
    ev.seen.clear();
    ok(&d.virsh(&["attach-device", "vm1", &file_disk, "--live"]));
    ev.wait_for("vm1 device-added virtio-disk1");
    // By its alias: asked, then gone when the event says so.
    ev.seen.clear();
    ok(&d.virsh(&["detach-device-alias", "vm1", "virtio-disk1", "--live"]));
    ev.wait_for("vm1 device-removed virtio-disk1");
    assert!(!ok(&d.virsh(&["dumpxml", "vm1"])).contains("hot.img'"));
    let e = fails(&d.virsh(&["detach-device-alias", "vm1", "nope0", "--live"]));
    assert!(e.contains("no device found with alias nope0"), "{e}");
    ev.seen.clear();
    ok(&d.virsh(&["attach-device", "vm1", &file_disk, "--live"]));
    ev.wait_for("vm1 device-added virtio-disk1");

    // The volume disk from the definition only.
    ok(&d.virsh(&["detach-device", "vm1", &vol_disk, "--config"]));
    assert!(!ok(&d.virsh(&["dumpxml", "--inactive", "vm1"])).contains("hot2.img"));
    assert!(ok(&d.virsh(&["dumpxml", "vm1"])).contains("hot2.img"));

    // Refusals.
    let e = fails(&d.virsh(&["attach-device", "vm1", &vol_disk, "--live"]));
    assert!(e.contains("target vdc already exists"), "{e}");
    let sata = write_file(
        &d,
        "disk-sata.xml",
        &format!(
            "<disk type='file' device='disk'><source file='{}'/>\
             <target dev='sdb' bus='sata'/></disk>",
            img.display()
        ),
    );
    let e = fails(&d.virsh(&["attach-device", "vm1", &sata, "--live"]));
    assert!(
        e.contains("unsupported configuration: <disk> 'sdb': only virtio and SCSI disks"),
        "{e}"
    );
    let gone = write_file(
        &d,
        "disk-gone.xml",
        "<disk type='file'><source file='/x'/><target dev='vdz'/></disk>",
    );
    let e = fails(&d.virsh(&["detach-device", "vm1", &gone, "--live"]));
    assert!(e.contains("disk vdz not found"), "{e}");
    let missing = write_file(
        &d,
        "disk-missing.xml",
        "<disk type='volume'><source pool='default' volume='nope.img'/><target dev='vdd'/></disk>",
    );
    let e = fails(&d.virsh(&["attach-device", "vm1", &missing, "--live"]));
    assert!(e.contains("nope.img"), "{e}");
    ok(&d.virsh(&["destroy", "vm1"]));
}

/// SCSI disks on a virtio-scsi controller: one from the definition, one plugged in and
/// out while the guest runs (a SCSI bus needs no word from the guest to let a disk go).
#[test]
fn scsi_disks_come_and_go() {
    let d = Daemon::start_in(Layout::Modular);
    let cold = d.root.join("cold.img");
    mark(&cold, "VIREOSCSICOLD001");
    let hot = d.root.join("hot.img");
    mark(&hot, "VIREOSCSIHOT0002");
    let xml = vireo_tests::guest_xml("vm1").replace(
        "<devices>",
        &format!(
            "<devices><controller type='scsi' model='virtio-scsi'/>\
             <disk type='file' device='disk'><driver name='qemu' type='raw'/>\
             <source file='{}'/><target dev='sda' bus='scsi'/></disk>",
            cold.display()
        ),
    );
    let mut ev = boot(&d, &xml);
    let inactive = ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]));
    assert!(
        inactive.contains("<controller type='scsi' index='0' model='virtio-scsi'>"),
        "{inactive}"
    );
    let disk = write_file(
        &d,
        "disk-scsi.xml",
        &format!(
            "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
             <source file='{}'/><target dev='sdb' bus='scsi'/></disk>",
            hot.display()
        ),
    );
    ok(&d.virsh(&["attach-device", "vm1", &disk, "--live"]));
    ev.wait_for("vm1 device-added scsi0-0-0-1");
    assert!(ok(&d.virsh(&["dumpxml", "vm1"])).contains("<alias name='scsi0-0-0-1'/>"));
    guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            &read_disk("sda"),
            "DISK-sda-VIREOSCSICOLD001",
            &read_disk("sdb"),
            "DISK-sdb-VIREOSCSIHOT0002",
        ],
    );
    ok(&d.virsh(&["detach-device", "vm1", &disk, "--live"]));
    ev.wait_for("vm1 device-removed scsi0-0-0-1");
    guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            "i=0; while [ -e /sys/block/sdb ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done; \
             [ -e /sys/block/sdb ] || echo NO-SDB-$((1+1))",
            "NO-SDB-2",
        ],
    );
    // lsilogic has seven units: the eighth disk has no place.
    let lsi = vireo_tests::guest_xml("vm2").replace(
        "<devices>",
        "<devices><controller type='scsi' model='lsilogic'/>\
         <disk type='file' device='disk'><source file='/dev/null'/>\
         <target dev='sdh' bus='scsi'/></disk>",
    );
    let e = fails(&d.virsh(&["create", &write_file(&d, "vm2.xml", &lsi)]));
    assert!(
        e.contains("is not available on an lsilogic controller"),
        "{e}"
    );
    ok(&d.virsh(&["destroy", "vm1"]));
}

/// The images QEMU has open (its descriptors' targets).
fn open_files(d: &Daemon, name: &str) -> String {
    let pid = d.qemu_pid(name).expect("QEMU runs");
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|p| p.display().to_string() + "\n")
        .collect()
}

/// A cdrom's medium changed on a running VM (QEMU closes the old image and opens the
/// new one), ejected and inserted again, and changed in the definition only; other
/// devices cannot be updated.
fn cdrom_media_change(layout: Layout) {
    let d = Daemon::start_in(layout);
    let (a, b) = (d.root.join("a.iso"), d.root.join("b.iso"));
    mark(&a, "ISO-A");
    mark(&b, "ISO-B");
    let cdrom = |src: Option<&std::path::Path>| {
        format!(
            "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>{}\
             <target dev='hdc' bus='ide'/><readonly/></disk>",
            src.map(|p| format!("<source file='{}'/>", p.display()))
                .unwrap_or_default()
        )
    };
    let xml = vireo_tests::guest_xml("vm1")
        .replace("<devices>", &format!("<devices>{}", cdrom(Some(&a))));
    let g = write_file(&d, "vm1.xml", &xml);
    ok(&d.virsh(&["define", &g]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    assert!(open_files(&d, "vm1").contains(&format!("{}\n", a.display())));

    let to_b = write_file(&d, "cd-b.xml", &cdrom(Some(&b)));
    ok(&d.virsh(&["update-device", "vm1", &to_b, "--live"]));
    let files = open_files(&d, "vm1");
    assert!(
        files.contains(&format!("{}\n", b.display()))
            && !files.contains(&format!("{}\n", a.display())),
        "{files}"
    );
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(
        live.contains(&format!("<source file='{}'/>", b.display())),
        "{live}"
    );
    assert!(live.contains("<alias name='ide0-1-0'/>"), "{live}");
    assert!(ok(&d.virsh(&["dumpxml", "--inactive", "vm1"])).contains("a.iso"));

    // Ejected, then A again, live and in the definition.
    let empty = write_file(&d, "cd-empty.xml", &cdrom(None));
    ok(&d.virsh(&["update-device", "vm1", &empty, "--live"]));
    let files = open_files(&d, "vm1");
    assert!(!files.contains(".iso"), "{files}");
    assert!(!ok(&d.virsh(&["dumpxml", "vm1"])).contains(".iso"));
    let to_a = write_file(&d, "cd-a.xml", &cdrom(Some(&a)));
    ok(&d.virsh(&["update-device", "vm1", &to_a, "--live", "--config"]));
    assert!(open_files(&d, "vm1").contains(&format!("{}\n", a.display())));
    // The vireo command says what virsh says.
    assert_eq!(
        ok(&d.vireo(&["update-device", "vm1", &to_b, "--live"])),
        "Device updated successfully\n\n"
    );
    assert!(open_files(&d, "vm1").contains(&format!("{}\n", b.display())));
    ok(&d.virsh(&["update-device", "vm1", &to_a, "--live"]));
    let hdd = write_file(&d, "cd-missing.xml", &cdrom(Some(&a)).replace("hdc", "hdd"));
    let e = fails(&d.vireo(&["update-device", "vm1", &hdd]));
    assert!(
        e.contains("Failed to update device from") && e.contains("disk hdd not found"),
        "{e}"
    );
    // The definition alone.
    ok(&d.virsh(&["update-device", "vm1", &to_b, "--config"]));
    assert!(ok(&d.virsh(&["dumpxml", "--inactive", "vm1"])).contains("b.iso"));
    assert!(ok(&d.virsh(&["dumpxml", "vm1"])).contains("a.iso"));

    // Refusals.
    let e = fails(&d.virsh(&["update-device", "vm1", &hdd, "--live"]));
    assert!(e.contains("disk hdd not found"), "{e}");
    let plain = write_file(
        &d,
        "disk-plain.xml",
        &format!(
            "<disk type='file' device='disk'><source file='{}'/><target dev='hdc'/></disk>",
            a.display()
        ),
    );
    let e = fails(&d.virsh(&["update-device", "vm1", &plain, "--live"]));
    assert!(e.contains("only a cdrom's medium can be changed"), "{e}");
    ok(&d.virsh(&["destroy", "vm1"]));
}

/// Devices plugged in before every daemon was killed (-9) are still the VM's after the
/// restart: the live XML shows them, a disk can be unplugged from the definition, and when
/// the VM stops the hot-plugged interfaces' ports (on a network and on a host bridge) go
/// back to the network driver.
fn hotplugged_devices_outlive_a_daemon_restart(layout: Layout) {
    let mut d = Daemon::start_in(layout);
    nat_network(&d);
    let g = write_file(&d, "vm1.xml", &vireo_tests::guest_xml("vm1"));
    ok(&d.virsh(&["define", &g]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    for (name, xml) in [
        (
            "if-net.xml",
            "<interface type='network'><mac address='52:54:00:77:00:61'/>\
             <source network='vnat'/><model type='virtio'/></interface>",
        ),
        (
            "if-br.xml",
            "<interface type='bridge'><mac address='52:54:00:77:00:62'/>\
             <source bridge='vbr-nat'/><model type='virtio'/></interface>",
        ),
    ] {
        let f = write_file(&d, name, xml);
        ok(&d.virsh(&["attach-device", "vm1", &f, "--live"]));
    }
    let img = d.root.join("r.img");
    mark(&img, "VIREORESTART0001");
    let disk = write_file(
        &d,
        "disk.xml",
        &format!(
            "<disk type='file'><driver name='qemu' type='raw'/><source file='{}'/>\
             <target dev='vdb' bus='virtio'/></disk>",
            img.display()
        ),
    );
    ok(&d.virsh(&["attach-device", "vm1", &disk, "--live", "--config"]));
    let taps = |d: &Daemon| {
        in_ns(d, "ip", &["-br", "link"])
            .lines()
            .filter(|l| l.starts_with("vnet"))
            .count()
    };
    assert_eq!(taps(&d), 2);
    let before = ok(&d.virsh(&["dumpxml", "vm1"]));

    d.kill9();
    d.restart();
    assert_eq!(ok(&d.virsh(&["dumpxml", "vm1"])), before);
    assert_eq!(ports(&d), 1);
    ok(&d.virsh(&["detach-device", "vm1", &disk, "--config"]));
    assert!(!ok(&d.virsh(&["dumpxml", "--inactive", "vm1"])).contains("r.img"));
    ok(&d.virsh(&["destroy", "vm1"]));
    let records = d.run_dir().join("network/bridge-ports");
    let t0 = std::time::Instant::now();
    while ports(&d) != 0
        || taps(&d) != 0
        || std::fs::read_dir(&records).map_or(0, |r| r.count()) != 0
    {
        assert!(
            t0.elapsed().as_secs() < 30,
            "a hot-plugged port outlived the guest"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    ok(&d.virsh(&["net-destroy", "vnat"]));
}

/// A virtio channel (a socket the VM listens on) and a virtio keyboard come and go on a
/// running guest: DEVICE_ADDED and DEVICE_REMOVED, the live XML and the definition follow.
fn inputs_and_channels_come_and_go(layout: Layout) {
    let d = Daemon::start_in(layout);
    let xml = vireo_tests::guest_xml("vm1").replace(
        "<memballoon",
        "<controller type='virtio-serial' index='0'/><memballoon",
    );
    let mut ev = boot(&d, &xml);

    let channel = write_file(
        &d,
        "channel.xml",
        "<channel type='unix'><source mode='bind'/>\
         <target type='virtio' name='org.vireo.test.0'/></channel>",
    );
    ok(&d.virsh(&["attach-device", "vm1", &channel, "--live"]));
    ev.wait_for("vm1 device-added channel0");
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(live.contains("name='org.vireo.test.0'"), "{live}");
    assert!(live.contains("<alias name='channel0'/>"), "{live}");
    let path = vireo_tests::value_after(&live, "<source mode='bind' path='");
    assert!(path.ends_with("channel0.sock"), "{live}");
    std::os::unix::net::UnixStream::connect(&path).expect("the channel's socket listens");

    let keyboard = write_file(&d, "kbd.xml", "<input type='keyboard' bus='virtio'/>");
    ok(&d.virsh(&["attach-device", "vm1", &keyboard, "--live", "--config"]));
    ev.wait_for("vm1 device-added input0");
    assert!(ok(&d.virsh(&["dumpxml", "--inactive", "vm1"])).contains("bus='virtio'"));

    ok(&d.virsh(&["detach-device", "vm1", &channel, "--live"]));
    ev.wait_for("vm1 device-removed channel0");
    assert!(!ok(&d.virsh(&["dumpxml", "vm1"])).contains("org.vireo.test.0"));
    ok(&d.virsh(&["detach-device", "vm1", &keyboard, "--live", "--config"]));
    ev.wait_for("vm1 device-removed input0");
    assert!(!ok(&d.virsh(&["dumpxml", "vm1"])).contains("type='keyboard' bus='virtio'"));
    assert!(!ok(&d.virsh(&["dumpxml", "--inactive", "vm1"])).contains("bus='virtio'"));

    let tablet = write_file(&d, "tablet.xml", "<input type='tablet' bus='virtio'/>");
    let e = fails(&d.virsh(&["detach-device", "vm1", &tablet, "--live"]));
    assert!(e.contains("matching input device not found"), "{e}");
    let ps2 = write_file(&d, "ps2.xml", "<input type='mouse' bus='ps2'/>");
    let e = fails(&d.virsh(&["attach-device", "vm1", &ps2, "--live"]));
    assert!(e.contains("cannot be hot-plugged"), "{e}");
    ok(&d.virsh(&["destroy", "vm1"]));
}

vireo_tests::in_every_layout!(
    inputs_and_channels_come_and_go,
    interfaces_come_and_go,
    disks_come_and_go,
    cdrom_media_change,
    hotplugged_devices_outlive_a_daemon_restart,
);

/// `<interface type='ethernet'>`: a plain tap the network driver makes (in no bridge, up),
/// at start and plugged in live; the host side of each gets an address, and host and guest
/// reach each other through it. Unplugged, its tap goes.
#[test]
fn ethernet_interfaces() {
    let d = Daemon::start_in(Layout::Modular);
    let first = "<interface type='ethernet'><mac address='52:54:00:78:00:61'/>\
                 <model type='virtio'/></interface>";
    let xml = vireo_tests::guest_xml("vm1").replace(
        "<memballoon model='none'/>",
        &format!("<memballoon model='none'/>{first}"),
    );
    let mut ev = boot(&d, &xml);
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    let tap0 = vireo_tests::value_after(&live, "<target dev='");
    assert!(tap0.starts_with("vnet"), "{live}");
    // No bridge: the tap stands alone, up, for the host to give an address.
    let link = in_ns(&d, "ip", &["-o", "link", "show", "dev", &tap0]);
    assert!(!link.contains("master"), "{link}");
    in_ns(&d, "ip", &["addr", "add", "10.78.0.1/24", "dev", &tap0]);

    let second = write_file(
        &d,
        "if-eth.xml",
        "<interface type='ethernet'><mac address='52:54:00:78:00:62'/>\
         <model type='virtio'/></interface>",
    );
    ok(&d.virsh(&["attach-device", "vm1", &second, "--live"]));
    ev.wait_for("vm1 device-added net1");
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    let tap1 = live
        .split("<target dev='")
        .nth(2)
        .and_then(|r| r.split('\'').next())
        .unwrap_or_default()
        .to_string();
    assert!(tap1.starts_with("vnet") && tap1 != tap0, "{live}");
    in_ns(&d, "ip", &["addr", "add", "10.78.1.1/24", "dev", &tap1]);

    let up = |dev: &str, ip: &str, gw: &str, tag: &str| {
        format!(
            "i=0; while [ ! -e /sys/class/net/{dev} ] && [ $i -lt 120 ]; do sleep 1; i=$((i+1)); done; \
             ip link set {dev} up; ip addr add {ip}/24 dev {dev}; {} && echo {tag}",
            tries(gw)
        )
    };
    guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            &up("eth0", "10.78.0.2", "10.78.0.1", "ETH0-$((40+2))"),
            "ETH0-42",
            &up("eth1", "10.78.1.2", "10.78.1.1", "ETH1-$((40+2))"),
            "ETH1-42",
        ],
    );
    host_ping(&d, "10.78.0.2");
    host_ping(&d, "10.78.1.2");

    ok(&d.virsh(&["detach-device", "vm1", &second, "--live"]));
    ev.wait_for("vm1 device-removed net1");
    let ns = d.netns.as_ref().expect("a namespace of the test's own");
    assert!(!ns
        .run("ip", &["link", "show", "dev", &tap1])
        .status
        .success());
    ok(&d.virsh(&["destroy", "vm1"]));
    assert!(!ns
        .run("ip", &["link", "show", "dev", &tap0])
        .status
        .success());
}

/// A SCSI controller plugged into a running guest that had none, a disk on it (the guest
/// reads it), and both taken out again; the controller cannot go while a disk is on it.
#[test]
fn a_scsi_controller_comes_and_goes() {
    let d = Daemon::start_in(Layout::Modular);
    let hot = d.root.join("hot.img");
    mark(&hot, "VIREOSCSICTRL003");
    let mut ev = boot(&d, &vireo_tests::guest_xml("vm1"));
    let ctl = write_file(
        &d,
        "ctl.xml",
        "<controller type='scsi' index='0' model='virtio-scsi'/>",
    );
    ok(&d.virsh(&["attach-device", "vm1", &ctl, "--live"]));
    ev.wait_for("vm1 device-added scsi0");
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(live.contains("model='virtio-scsi'"), "{live}");
    let e = fails(&d.virsh(&["attach-device", "vm1", &ctl, "--live"]));
    assert!(e.contains("already exists"), "{e}");
    let disk = write_file(
        &d,
        "disk-scsi.xml",
        &format!(
            "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
             <source file='{}'/><target dev='sda' bus='scsi'/></disk>",
            hot.display()
        ),
    );
    ok(&d.virsh(&["attach-device", "vm1", &disk, "--live"]));
    ev.wait_for("vm1 device-added scsi0-0-0-0");
    guest_shell(
        &d,
        "vm1",
        &["--running", &read_disk("sda"), "DISK-sda-VIREOSCSICTRL003"],
    );
    let e = fails(&d.virsh(&["detach-device", "vm1", &ctl, "--live"]));
    assert!(e.contains("device is busy"), "{e}");
    ok(&d.virsh(&["detach-device", "vm1", &disk, "--live"]));
    ev.wait_for("vm1 device-removed scsi0-0-0-0");
    ok(&d.virsh(&["detach-device", "vm1", &ctl, "--live"]));
    ev.wait_for("vm1 device-removed scsi0");
    assert!(!ok(&d.virsh(&["dumpxml", "vm1"])).contains("type='scsi'"));

    // The definition: added and taken away on its own.
    ok(&d.virsh(&["attach-device", "vm1", &ctl, "--config"]));
    assert!(ok(&d.virsh(&["dumpxml", "--inactive", "vm1"])).contains("model='virtio-scsi'"));
    ok(&d.virsh(&["detach-device", "vm1", &ctl, "--config"]));
    assert!(!ok(&d.virsh(&["dumpxml", "--inactive", "vm1"])).contains("type='scsi'"));
    ok(&d.virsh(&["destroy", "vm1"]));
}

/// `domif-setlink` / `domif-getlink`: a card whose link starts down (the guest sees no
/// carrier), brought up and down on the running guest, and set in the definition.
#[test]
fn link_state_follows_domif_setlink() {
    let d = Daemon::start();
    let mac = "52:54:00:78:00:71";
    let xml = vireo_tests::guest_xml("vm1").replace(
        "<memballoon model='none'/>",
        &format!(
            "<memballoon model='none'/><interface type='user'><mac address='{mac}'/>\
             <model type='virtio'/><link state='down'/></interface>"
        ),
    );
    let _ev = boot(&d, &xml);
    // The guest's view of the carrier, once it is `want` (or after 10 s, whatever it is).
    let carrier = |tag: &str, want: u8| {
        format!(
            "ip link set eth0 up; f=/sys/class/net/eth0/carrier; i=0; \
             while [ \"$(cat $f)\" != {want} ] && [ $i -lt 50 ]; do usleep 200000; i=$((i+1)); done; \
             echo {tag}-$(cat $f)-$((1+1))"
        )
    };
    guest_shell(&d, "vm1", &["--running", &carrier("C0", 0), "C0-0-2"]);
    assert!(ok(&d.virsh(&["domif-getlink", "vm1", mac])).contains("down"));
    ok(&d.virsh(&["domif-setlink", "vm1", mac, "up"]));
    assert!(ok(&d.virsh(&["domif-getlink", "vm1", mac])).contains("up"));
    guest_shell(&d, "vm1", &["--running", &carrier("C1", 1), "C1-1-2"]);
    ok(&d.virsh(&["domif-setlink", "vm1", mac, "down"]));
    guest_shell(&d, "vm1", &["--running", &carrier("C2", 0), "C2-0-2"]);
    // The definition on its own.
    ok(&d.virsh(&["domif-setlink", "vm1", mac, "up", "--config"]));
    let inactive = ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]));
    assert!(inactive.contains("<link state='up'/>"), "{inactive}");
    assert!(ok(&d.virsh(&["domif-getlink", "vm1", mac])).contains("down"));
    let e = fails(&d.virsh(&["domif-setlink", "vm1", "52:54:00:78:00:99", "up"]));
    assert!(e.contains("52:54:00:78:00:99"), "{e}");
    ok(&d.virsh(&["destroy", "vm1"]));
}
