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
    // With its alias, as libvirt shows it (detach-device-alias takes it).
    assert!(live.contains("<alias name='scsi0'/>"), "{live}");
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

/// The passphrase of the LUKS volumes of [`luks_disks_come_and_go`], and its secret.
const LUKS_PASS: &str = "hot-PASS-c91e7d20";
const LUKS_SECRET: &str = "6f2d8c1a-3b4e-4a5f-9e8d-7c6b5a4f3e21";

/// Writes `byte` over the first 4 KiB of what the LUKS image `path` holds (`driver` luks for
/// a raw LUKS image, qcow2 for one encrypted inside), through QEMU's own decryption; the
/// passphrase is read from a file made for that and removed after.
fn write_through_luks(d: &Daemon, path: &std::path::Path, driver: &str, byte: u8) {
    let pf = d.root.join("luks-pass");
    std::fs::write(&pf, LUKS_PASS).unwrap();
    let key = if driver == "luks" {
        "key-secret"
    } else {
        "encrypt.key-secret"
    };
    let out = vireo_tests::run_cmd(
        "qemu-io",
        &[
            "--object",
            &format!("secret,id=s0,file={}", pf.display()),
            "--image-opts",
            &format!(
                "driver={driver},{key}=s0,file.driver=file,file.filename={}",
                path.display()
            ),
            "-c",
            &format!("write -P {byte:#04x} 0 4096"),
        ],
    );
    std::fs::remove_file(&pf).unwrap();
    ok(&out);
}

/// Fails when the passphrase is on any process's command line.
fn passphrase_on_no_command_line() {
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            assert!(
                !cmd.windows(LUKS_PASS.len())
                    .any(|w| w == LUKS_PASS.as_bytes()),
                "the passphrase is on the command line of {}",
                e.path().display()
            );
        }
    }
}

/// Fails when the passphrase is in a file under `dir`.
fn passphrase_in_no_file(dir: &std::path::Path) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            passphrase_in_no_file(&p);
        } else if m.is_file() && m.len() < (8 << 20) {
            let data = std::fs::read(&p).unwrap_or_default();
            assert!(
                !data
                    .windows(LUKS_PASS.len())
                    .any(|w| w == LUKS_PASS.as_bytes()),
                "the passphrase is in {}",
                p.display()
            );
        }
    }
}

/// LUKS volumes (a LUKS image and a qcow2 one encrypted inside, one secret) plugged into a
/// running guest, as OpenStack Nova attaches encrypted volumes: the passphrase goes from
/// the secret driver to QEMU through pipes (on no command line, in no file), the guest
/// reads what was written through the LUKS layer, and each secret object goes with its
/// disk (the same disks plug in again after their detach). A disk whose secret does not
/// exist is refused, and leaves nothing behind. The definition follows with --config.
fn luks_disks_come_and_go(layout: Layout) {
    let d = Daemon::start_in(layout);
    let sx = write_file(
        &d,
        "s.xml",
        &format!("<secret private='yes'><uuid>{LUKS_SECRET}</uuid></secret>"),
    );
    ok(&d.virsh(&["secret-define", &sx]));
    let pf = d.root.join("pass");
    std::fs::write(&pf, LUKS_PASS).unwrap();
    ok(&d.virsh(&[
        "secret-set-value",
        LUKS_SECRET,
        "--file",
        pf.to_str().unwrap(),
        "--plain",
    ]));
    std::fs::remove_file(&pf).unwrap();
    let enc = format!(
        "<encryption format='luks'><secret type='passphrase' uuid='{LUKS_SECRET}'/></encryption>"
    );
    for (f, driver, byte) in [("raw", "luks", 0x56u8), ("qcow2", "qcow2", 0x57)] {
        let vx = write_file(
            &d,
            &format!("v-{f}.xml"),
            &format!(
                "<volume><name>enc.{f}</name><capacity unit='M'>16</capacity>\
                 <target><format type='{f}'/>{enc}</target></volume>"
            ),
        );
        ok(&d.virsh(&["vol-create", "default", &vx]));
        let path = d.root.join(format!("var/lib/vireo/images/enc.{f}"));
        write_through_luks(&d, &path, driver, byte);
    }
    let disk = |f: &str, dev: &str| {
        format!(
            "<disk type='volume' device='disk'><driver name='qemu' type='{f}'/>\
             <source pool='default' volume='enc.{f}'/><target dev='{dev}' bus='virtio'/>{enc}</disk>"
        )
    };
    let raw = write_file(&d, "enc-raw.xml", &disk("raw", "vdb"));
    let qcow = write_file(&d, "enc-qcow2.xml", &disk("qcow2", "vdc"));
    let mut ev = boot(&d, &vireo_tests::guest_xml("vm1"));

    let out = ok(&d.virsh(&["attach-device", "vm1", &raw, "--live"]));
    assert!(out.contains("Device attached successfully"), "{out}");
    ev.wait_for("vm1 device-added virtio-disk1");
    ok(&d.virsh(&["attach-device", "vm1", &qcow, "--live", "--config"]));
    ev.wait_for("vm1 device-added virtio-disk2");
    passphrase_on_no_command_line();
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(
        live.contains("<source pool='default' volume='enc.raw'/>")
            && live.contains(&format!("<secret type='passphrase' uuid='{LUKS_SECRET}'/>")),
        "{live}"
    );
    let inactive = ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]));
    assert!(
        inactive.contains("enc.qcow2") && !inactive.contains("enc.raw"),
        "{inactive}"
    );
    // The guest reads the plain bytes: 'V' (0x56) and 'W' (0x57).
    guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            &read_disk("vda"),
            "DISK-vda-VVVVVVVVVVVVVVVV",
            &read_disk("vdb"),
            "DISK-vdb-WWWWWWWWWWWWWWWW",
        ],
    );

    // Out, and in again: the secret object went with the disk (the same one is made again).
    ok(&d.virsh(&["detach-device", "vm1", &raw, "--live"]));
    ev.wait_for("vm1 device-removed virtio-disk1");
    assert!(!ok(&d.virsh(&["dumpxml", "vm1"])).contains("enc.raw"));
    guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            "i=0; while [ -e /sys/block/vda ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done; \
             [ -e /sys/block/vda ] || echo NO-VDA-$((1+1))",
            "NO-VDA-2",
            &read_disk("vdb"),
            "DISK-vdb-WWWWWWWWWWWWWWWW",
        ],
    );
    ev.seen.clear();
    ok(&d.virsh(&["attach-device", "vm1", &raw, "--live"]));
    ev.wait_for("vm1 device-added virtio-disk1");
    guest_shell(
        &d,
        "vm1",
        &["--running", &read_disk("vda"), "DISK-vda-VVVVVVVVVVVVVVVV"],
    );
    ok(&d.virsh(&["detach-device", "vm1", &qcow, "--live", "--config"]));
    ev.wait_for("vm1 device-removed virtio-disk2");
    assert!(!ok(&d.virsh(&["dumpxml", "--inactive", "vm1"])).contains("enc.qcow2"));
    ev.seen.clear();
    ok(&d.virsh(&["attach-device", "vm1", &qcow, "--live"]));
    ev.wait_for("vm1 device-added virtio-disk2");
    ok(&d.virsh(&["detach-device", "vm1", &qcow, "--live"]));
    ev.wait_for("vm1 device-removed virtio-disk2");

    // A secret that does not exist: refused, saying which; nothing left in the way.
    let bad = write_file(
        &d,
        "enc-bad.xml",
        &disk("qcow2", "vdc").replace(LUKS_SECRET, "00000000-0000-0000-0000-00000000beef"),
    );
    let e = fails(&d.virsh(&["attach-device", "vm1", &bad, "--live"]));
    assert!(e.contains("00000000-0000-0000-0000-00000000beef"), "{e}");
    assert!(!ok(&d.virsh(&["dumpxml", "vm1"])).contains("enc.qcow2"));
    ev.seen.clear();
    ok(&d.virsh(&["attach-device", "vm1", &qcow, "--live"]));
    ev.wait_for("vm1 device-added virtio-disk2");
    passphrase_on_no_command_line();
    ok(&d.virsh(&["destroy", "vm1"]));
    passphrase_in_no_file(&d.root);
}

/// Controllers beyond the first: a VM that starts with two virtio-scsi controllers (a disk on
/// the second) and two virtio-serial ones (a channel on the second); a SCSI controller of
/// index 2 and a virtio-serial controller of index 2 plugged in while it runs, a disk and a
/// channel on them (the guest reads the disk and sees the port), then taken out. A
/// controller with a device on it cannot go (libvirt's "device is busy"); one added
/// without an index gets the first free one.
fn controllers_beyond_index_0(layout: Layout) {
    let d = Daemon::start_in(layout);
    let cold = d.root.join("cold.img");
    mark(&cold, "VIREOSCSI1COLD01");
    let hot = d.root.join("hot.img");
    mark(&hot, "VIREOSCSI2HOT002");
    let xml = vireo_tests::guest_xml("vm1").replace(
        "<devices>",
        &format!(
            "<devices><controller type='scsi' index='0' model='virtio-scsi'/>\
             <controller type='scsi' index='1' model='virtio-scsi'/>\
             <controller type='virtio-serial' index='0'/>\
             <controller type='virtio-serial' index='1'/>\
             <disk type='file' device='disk'><driver name='qemu' type='raw'/>\
             <source file='{}'/><target dev='sda' bus='scsi'/>\
             <address type='drive' controller='1' bus='0' target='0' unit='0'/></disk>\
             <channel type='unix'><source mode='bind'/>\
             <target type='virtio' name='org.vireo.cold.1'/>\
             <address type='virtio-serial' controller='1' bus='0' port='2'/></channel>",
            cold.display()
        ),
    );
    let mut ev = boot(&d, &xml);
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(live.contains("<alias name='scsi1-0-0-0'/>"), "{live}");
    assert!(
        live.contains("<controller type='scsi' index='1' model='virtio-scsi'>"),
        "{live}"
    );
    // The guest's port names: vportNpM is port M of the Nth virtio-serial device.
    let ports =
        "for p in /sys/class/virtio-ports/vport*; do echo PORT-${p##*/}-$(cat $p/name); done";
    let seen = guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            &read_disk("sda"),
            "DISK-sda-VIREOSCSI1COLD01",
            &format!("{ports}; echo PORTS-$((1+1))"),
            "PORTS-2",
        ],
    );
    assert!(
        seen.lines()
            .any(|l| l.trim().ends_with("p2-org.vireo.cold.1")),
        "{seen}"
    );

    // A SCSI controller of index 2, live, and a disk on it.
    let scsi2 = write_file(
        &d,
        "scsi2.xml",
        "<controller type='scsi' index='2' model='virtio-scsi'/>",
    );
    ok(&d.virsh(&["attach-device", "vm1", &scsi2, "--live"]));
    ev.wait_for("vm1 device-added scsi2");
    let e = fails(&d.virsh(&["attach-device", "vm1", &scsi2, "--live"]));
    assert!(e.contains("target scsi:2 already exists"), "{e}");
    let disk = write_file(
        &d,
        "disk-scsi2.xml",
        &format!(
            "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
             <source file='{}'/><target dev='sdb' bus='scsi'/>\
             <address type='drive' controller='2' bus='0' target='0' unit='0'/></disk>",
            hot.display()
        ),
    );
    ok(&d.virsh(&["attach-device", "vm1", &disk, "--live"]));
    ev.wait_for("vm1 device-added scsi2-0-0-0");
    guest_shell(
        &d,
        "vm1",
        &["--running", &read_disk("sdb"), "DISK-sdb-VIREOSCSI2HOT002"],
    );
    let e = fails(&d.virsh(&["detach-device", "vm1", &scsi2, "--live"]));
    assert!(
        e.contains("device cannot be detached: device is busy"),
        "{e}"
    );
    // Nor the first controller, whose disk came with the VM.
    let scsi1 = write_file(
        &d,
        "scsi1.xml",
        "<controller type='scsi' index='1' model='virtio-scsi'/>",
    );
    let e = fails(&d.virsh(&["detach-device", "vm1", &scsi1, "--live"]));
    assert!(e.contains("device is busy"), "{e}");
    ok(&d.virsh(&["detach-device", "vm1", &disk, "--live"]));
    ev.wait_for("vm1 device-removed scsi2-0-0-0");
    ok(&d.virsh(&["detach-device", "vm1", &scsi2, "--live"]));
    ev.wait_for("vm1 device-removed scsi2");
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(!live.contains("index='2'"), "{live}");

    // A virtio-serial controller of index 2, live, and a channel on its port 3.
    let vs2 = write_file(
        &d,
        "vs2.xml",
        "<controller type='virtio-serial' index='2'/>",
    );
    ok(&d.virsh(&["attach-device", "vm1", &vs2, "--live"]));
    ev.wait_for("vm1 device-added virtio-serial2");
    let channel = write_file(
        &d,
        "channel2.xml",
        "<channel type='unix'><source mode='bind'/>\
         <target type='virtio' name='org.vireo.hot.2'/>\
         <address type='virtio-serial' controller='2' bus='0' port='3'/></channel>",
    );
    ok(&d.virsh(&["attach-device", "vm1", &channel, "--live"]));
    ev.wait_for("vm1 device-added channel1");
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(live.contains("name='org.vireo.hot.2'"), "{live}");
    let seen = guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            &format!(
                "i=0; while ! grep -qx org.vireo.hot.2 /sys/class/virtio-ports/vport*/name \
                 && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done; {ports}; echo PORTS-$((2+1))"
            ),
            "PORTS-3",
        ],
    );
    assert!(
        seen.lines()
            .any(|l| l.trim().ends_with("p3-org.vireo.hot.2")),
        "{seen}"
    );
    let e = fails(&d.virsh(&["detach-device", "vm1", &vs2, "--live"]));
    assert!(
        e.contains("device cannot be detached: device is busy"),
        "{e}"
    );
    ok(&d.virsh(&["detach-device", "vm1", &channel, "--live"]));
    ev.wait_for("vm1 device-removed channel1");
    ok(&d.virsh(&["detach-device", "vm1", &vs2, "--live"]));
    ev.wait_for("vm1 device-removed virtio-serial2");
    assert!(!ok(&d.virsh(&["dumpxml", "vm1"])).contains("org.vireo.hot.2"));
    // A channel on a controller the VM does not have.
    let e = fails(&d.virsh(&["attach-device", "vm1", &channel, "--live"]));
    assert!(
        e.contains("there is no <controller type='virtio-serial' index='2'>"),
        "{e}"
    );
    // USB controllers stay.
    let usb = write_file(
        &d,
        "usb.xml",
        "<controller type='usb' index='1' model='qemu-xhci'/>",
    );
    let e = fails(&d.virsh(&["attach-device", "vm1", &usb, "--live"]));
    assert!(e.contains("'usb' controller cannot be hot plugged"), "{e}");

    // The definition: a controller without an index gets the first free one, and the
    // second SCSI controller cannot leave while its disk is there.
    let anon = write_file(
        &d,
        "anon.xml",
        "<controller type='scsi' model='virtio-scsi'/>",
    );
    ok(&d.virsh(&["attach-device", "vm1", &anon, "--config"]));
    let inactive = ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]));
    assert!(
        inactive.contains("<controller type='scsi' index='2' model='virtio-scsi'>"),
        "{inactive}"
    );
    let e = fails(&d.virsh(&["detach-device", "vm1", &scsi1, "--config"]));
    assert!(e.contains("device is busy"), "{e}");
    ok(&d.virsh(&["detach-device", "vm1", &scsi2, "--config"]));
    assert!(!ok(&d.virsh(&["dumpxml", "--inactive", "vm1"])).contains("index='2'"));
    ok(&d.virsh(&["destroy", "vm1"]));
}

vireo_tests::in_every_layout!(luks_disks_come_and_go, controllers_beyond_index_0);

/// A guest that refuses to let a DIMM go (its ACPI memory hotplug switched off: Linux
/// answers the eject request with _OST "not supported"): the detach fails with libvirt's
/// "unplug of device was rejected by the guest", DEVICE_REMOVAL_FAILED comes, and the
/// DIMM stays. Once the guest allows it again, the DIMM goes with DEVICE_REMOVED.
#[test]
fn a_guest_refuses_to_let_a_dimm_go() {
    let d = Daemon::start();
    let xml = vireo_tests::guest_xml("vm1")
        .replace(
            "<memory unit='MiB'>128</memory>",
            "<maxMemory slots='2' unit='MiB'>1024</maxMemory><memory unit='MiB'>256</memory>",
        )
        .replace(
            "</features>",
            "</features><cpu><numa><cell id='0' cpus='0' memory='256' unit='MiB'/></numa></cpu>",
        );
    let mut ev = boot(&d, &xml);
    let dimm = write_file(
        &d,
        "dimm.xml",
        "<memory model='dimm'><target><size unit='MiB'>128</size><node>0</node>\
         </target></memory>",
    );
    ok(&d.virsh(&["attach-device", "vm1", &dimm, "--live"]));
    ev.wait_for("vm1 device-added dimm0");
    let hotplug = "/sys/firmware/acpi/hotplug/memory/enabled";
    guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            &format!("echo 0 >{hotplug}; echo HP-$(cat {hotplug})-$((1+1))"),
            "HP-0-2",
        ],
    );
    let e = fails(&d.virsh(&["detach-device", "vm1", &dimm, "--live"]));
    assert!(
        e.contains("unplug of device was rejected by the guest"),
        "{e}"
    );
    ev.wait_for("vm1 device-removal-failed dimm0");
    assert!(!ev.seen.iter().any(|l| l.contains("device-removed")));
    assert!(ok(&d.virsh(&["dumpxml", "vm1"])).contains("<alias name='dimm0'/>"));

    guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            &format!("echo 1 >{hotplug}; echo HP-$(cat {hotplug})-$((1+1))"),
            "HP-1-2",
        ],
    );
    ok(&d.virsh(&["detach-device", "vm1", &dimm, "--live"]));
    ev.wait_for("vm1 device-removed dimm0");
    assert!(!ok(&d.virsh(&["dumpxml", "vm1"])).contains("model='dimm'"));
    ok(&d.virsh(&["destroy", "vm1"]));
}
