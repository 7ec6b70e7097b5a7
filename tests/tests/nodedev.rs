//! Node devices (`vireo-nodedevd`, or `vireod`) with the real virsh and python-libvirt, in
//! every layout, over a synthetic sysfs tree the test builds (a PCI bridge, a network card
//! behind it with its IOMMU group, its interface, a virtual interface, the machine's DMI
//! data); and on this machine's own sysfs, read only.

use std::os::unix::fs::symlink;
use std::path::Path;

use vireo_tests::{fails, ok, validate, Daemon, Layout};

/// Writes `text` at `root/rel`, making the directories.
fn put(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A link at `root/rel` to `target`, making the directories.
fn link(root: &Path, rel: &str, target: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    symlink(target, p).unwrap();
}

/// The synthetic tree: what a small machine's sysfs shows of these devices.
fn tree(root: &Path) {
    let bridge = "sys/devices/pci0000:00/0000:00:1c.0";
    let nic = "sys/devices/pci0000:00/0000:00:1c.0/0000:01:00.0";
    for (dev, class, vendor, device) in [
        (bridge, "0x060400", "0x8086", "0x9d10"),
        (nic, "0x020000", "0x8086", "0x15d8"),
    ] {
        put(root, &format!("{dev}/class"), &format!("{class}\n"));
        put(root, &format!("{dev}/vendor"), &format!("{vendor}\n"));
        put(root, &format!("{dev}/device"), &format!("{device}\n"));
    }
    link(
        root,
        &format!("{bridge}/driver"),
        "../../../bus/pci/drivers/pcieport",
    );
    link(
        root,
        &format!("{nic}/driver"),
        "../../../../bus/pci/drivers/e1000e",
    );
    link(
        root,
        &format!("{nic}/iommu_group"),
        "../../../../kernel/iommu_groups/7",
    );
    link(
        root,
        "sys/kernel/iommu_groups/7/devices/0000:01:00.0",
        "../../../../devices/pci0000:00/0000:00:1c.0/0000:01:00.0",
    );
    link(
        root,
        "sys/bus/pci/devices/0000:00:1c.0",
        "../../../devices/pci0000:00/0000:00:1c.0",
    );
    link(
        root,
        "sys/bus/pci/devices/0000:01:00.0",
        "../../../devices/pci0000:00/0000:00:1c.0/0000:01:00.0",
    );
    let eth = format!("{nic}/net/eth0");
    put(root, &format!("{eth}/address"), "52:54:00:aa:bb:cc\n");
    put(root, &format!("{eth}/operstate"), "up\n");
    put(root, &format!("{eth}/speed"), "1000\n");
    link(
        root,
        "sys/class/net/eth0",
        "../../devices/pci0000:00/0000:00:1c.0/0000:01:00.0/net/eth0",
    );
    put(
        root,
        "sys/devices/virtual/net/lo/address",
        "00:00:00:00:00:00\n",
    );
    put(root, "sys/devices/virtual/net/lo/operstate", "unknown\n");
    link(root, "sys/class/net/lo", "../../devices/virtual/net/lo");
    put(root, "sys/class/dmi/id/sys_vendor", "Vireo Test Machines\n");
    put(root, "sys/class/dmi/id/product_name", "Synthetic 1\n");
}

fn nodedev_with_virsh(layout: Layout) {
    let sysfs = tempfile::tempdir().unwrap();
    tree(sysfs.path());
    let d = Daemon::start_with_sysfs(layout, sysfs.path());
    let list = ok(&d.virsh(&["nodedev-list"]));
    for name in [
        "computer",
        "net_eth0_52_54_00_aa_bb_cc",
        "net_lo_00_00_00_00_00_00",
        "pci_0000_00_1c_0",
        "pci_0000_01_00_0",
    ] {
        assert!(list.lines().any(|l| l.trim() == name), "{name}: {list}");
    }
    let pci = ok(&d.virsh(&["nodedev-list", "--cap", "pci"]));
    assert_eq!(
        pci.split_whitespace().collect::<Vec<_>>(),
        ["pci_0000_00_1c_0", "pci_0000_01_00_0"]
    );
    // The tree: the card under its bridge, its interface under it.
    let tree = ok(&d.virsh(&["nodedev-list", "--tree"]));
    let at = |n: &str| tree.find(n).unwrap_or_else(|| panic!("{n}: {tree}"));
    assert!(at("computer") < at("pci_0000_00_1c_0"), "{tree}");
    assert!(at("pci_0000_00_1c_0") < at("pci_0000_01_00_0"), "{tree}");
    assert!(at("pci_0000_01_00_0") < at("net_eth0"), "{tree}");
    let xml = ok(&d.virsh(&["nodedev-dumpxml", "pci_0000_01_00_0"]));
    for want in [
        "<name>pci_0000_01_00_0</name>",
        "<path>/sys/devices/pci0000:00/0000:00:1c.0/0000:01:00.0</path>",
        "<parent>pci_0000_00_1c_0</parent>",
        "<name>e1000e</name>",
        "<capability type='pci'>",
        "<class>0x020000</class>",
        "<bus>1</bus>",
        "<iommuGroup number='7'>",
        "<address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>",
    ] {
        assert!(xml.contains(want), "{want}: {xml}");
    }
    validate(&xml, "nodedev", &d.root);
    let xml = ok(&d.virsh(&["nodedev-dumpxml", "net_eth0_52_54_00_aa_bb_cc"]));
    assert!(xml.contains("<interface>eth0</interface>"), "{xml}");
    assert!(xml.contains("<link speed='1000' state='up'/>"), "{xml}");
    validate(&xml, "nodedev", &d.root);
    let xml = ok(&d.virsh(&["nodedev-dumpxml", "computer"]));
    assert!(
        xml.contains("<vendor>Vireo Test Machines</vendor>"),
        "{xml}"
    );
    validate(&xml, "nodedev", &d.root);
    let err = fails(&d.virsh(&["nodedev-dumpxml", "pci_0000_09_00_0"]));
    assert!(err.contains("Node device not found"), "{err}");
}

vireo_tests::in_every_layout!(nodedev_with_virsh);

/// python-libvirt's node device calls: the list with a capability filter, the parent, the
/// capabilities, the old name lists.
#[test]
fn nodedev_with_python() {
    let sysfs = tempfile::tempdir().unwrap();
    tree(sysfs.path());
    let d = Daemon::start_with_sysfs(Layout::Modular, sysfs.path());
    let script = "import libvirt, sys\n\
        c = libvirt.openReadOnly(sys.argv[1])\n\
        nets = sorted(x.name() for x in c.listAllDevices(libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_NET))\n\
        d = c.nodeDeviceLookupByName('pci_0000_01_00_0')\n\
        print(nets, d.parent(), d.listCaps(), c.numOfDevices('pci', 0), c.listDevices('net', 0))\n";
    let out = ok(&vireo_tests::run_cmd(
        vireo_tests::python3(),
        &["-c", script, &d.uri_ro()],
    ));
    assert_eq!(
        out.trim(),
        "['net_eth0_52_54_00_aa_bb_cc', 'net_lo_00_00_00_00_00_00'] pci_0000_00_1c_0 ['pci'] 2 \
         ['net_eth0_52_54_00_aa_bb_cc', 'net_lo_00_00_00_00_00_00']"
    );
}

/// This machine's own devices, read only: as many PCI devices as sysfs has, each one's
/// XML valid.
#[test]
fn nodedev_on_this_machine() {
    let d = Daemon::start();
    let pci = ok(&d.virsh(&["nodedev-list", "--cap", "pci"]));
    let names: Vec<&str> = pci.split_whitespace().collect();
    let sysfs = std::fs::read_dir("/sys/bus/pci/devices").map_or(0, |r| r.count());
    assert_eq!(names.len(), sysfs, "{pci}");
    for n in names.iter().take(5) {
        let xml = ok(&d.virsh(&["nodedev-dumpxml", n]));
        validate(&xml, "nodedev", &d.root);
    }
}
