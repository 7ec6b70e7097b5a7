//! Node devices (`vireo-nodedevd`, or `vireod`) with the real virsh and python-libvirt, in
//! every layout, over a synthetic sysfs tree the test builds (a PCI bridge, a network card
//! behind it with its IOMMU group, its interface, a virtual interface, the machine's DMI
//! data; a USB device and its interface, a Fibre Channel SCSI host with a disk, a graphics
//! device with a DRM node and mediated device types, one of them made); on this machine's
//! own sysfs, read only; and the kernel's events about an interface the test makes in a
//! network namespace of its own.

use std::os::unix::fs::symlink;
use std::path::Path;

use vireo_tests::{fails, in_ns, ok, same_as_virsh, validate, Daemon, EventLog, Layout};

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
    peripherals(root);
}

/// A device directory `dir` with its `uevent` file and a link to it in each list.
fn dev(root: &Path, dir: &str, uevent: &str, lists: &[&str]) {
    put(root, &format!("{dir}/uevent"), uevent);
    let name = dir.rsplit('/').next().unwrap();
    for l in lists {
        link(root, &format!("{l}/{name}"), &format!("/{dir}"));
    }
}

/// Its world wide node and port names.
const WWNN: &str = "20000000c9848140";
const WWPN: &str = "10000000c9848140";
const SDA: &str = "block_sda_QEMU_HARDDISK_0001";
const MDEV: &str = "mdev_4b20d080_1b54_4048_85b3_a6a62d165c01_0000_00_02_0";

/// A USB controller (`00:14.0`) with its root hub and a tablet (`1-1`, interface
/// `1-1:1.0`); a Fibre Channel adapter (`00:1f.2`) whose host (`host0`) has a disk
/// (`sda`, known to udev); a graphics device (`00:02.0`) with a DRM node (`card0`), two
/// mediated device types and a mediated device made of one.
fn peripherals(root: &Path) {
    let xhci = "sys/devices/pci0000:00/0000:00:14.0";
    let hba = "sys/devices/pci0000:00/0000:00:1f.2";
    let vga = "sys/devices/pci0000:00/0000:00:02.0";
    for (dir, class, device) in [
        (xhci, "0x0c0330", "0xa12f"),
        (hba, "0x0c0400", "0xf100"),
        (vga, "0x030000", "0x5917"),
    ] {
        put(root, &format!("{dir}/class"), &format!("{class}\n"));
        put(root, &format!("{dir}/vendor"), "0x8086\n");
        put(root, &format!("{dir}/device"), &format!("{device}\n"));
        let addr = dir.rsplit('/').next().unwrap();
        link(
            root,
            &format!("sys/bus/pci/devices/{addr}"),
            &format!("/{dir}"),
        );
    }
    let usb = ["sys/bus/usb/devices"];
    let hub = format!("{xhci}/usb1");
    dev(
        root,
        &hub,
        "DEVNAME=bus/usb/001/001\nDEVTYPE=usb_device\nBUSNUM=001\nDEVNUM=001\n",
        &usb,
    );
    put(root, &format!("{hub}/idVendor"), "1d6b\n");
    put(root, &format!("{hub}/idProduct"), "0002\n");
    let tablet = format!("{hub}/1-1");
    dev(
        root,
        &tablet,
        "DEVNAME=bus/usb/001/002\nDEVTYPE=usb_device\nBUSNUM=001\nDEVNUM=002\n",
        &usb,
    );
    for (f, v) in [
        ("idVendor", "0627"),
        ("idProduct", "0001"),
        ("manufacturer", "QEMU"),
        ("product", "QEMU USB Tablet"),
    ] {
        put(root, &format!("{tablet}/{f}"), &format!("{v}\n"));
    }
    let intf = format!("{tablet}/1-1:1.0");
    dev(root, &intf, "DEVTYPE=usb_interface\n", &usb);
    for (f, v) in [
        ("bInterfaceNumber", "00"),
        ("bInterfaceClass", "03"),
        ("bInterfaceSubClass", "00"),
        ("bInterfaceProtocol", "00"),
    ] {
        put(root, &format!("{intf}/{f}"), &format!("{v}\n"));
    }
    link(
        root,
        &format!("{intf}/driver"),
        "/sys/bus/usb/drivers/usbhid",
    );

    let scsi = ["sys/bus/scsi/devices"];
    let host = format!("{hba}/host0");
    dev(root, &host, "DEVTYPE=scsi_host\n", &scsi);
    let fc = format!("{host}/fc_host/host0");
    put(root, &format!("{fc}/node_name"), &format!("0x{WWNN}\n"));
    put(root, &format!("{fc}/port_name"), &format!("0x{WWPN}\n"));
    link(root, "sys/class/fc_host/host0", &format!("/{fc}"));
    let target = format!("{host}/target0:0:0");
    dev(root, &target, "DEVTYPE=scsi_target\n", &scsi);
    let lun = format!("{target}/0:0:0:0");
    dev(root, &lun, "DEVTYPE=scsi_device\n", &scsi);
    put(root, &format!("{lun}/type"), "0\n");
    put(root, &format!("{lun}/vendor"), "ATA     \n");
    put(root, &format!("{lun}/model"), "QEMU HARDDISK   \n");
    let sda = format!("{lun}/block/sda");
    dev(
        root,
        &sda,
        "MAJOR=8\nMINOR=0\nDEVNAME=sda\nDEVTYPE=disk\n",
        &["sys/class/block"],
    );
    put(root, &format!("{sda}/size"), "2097152\n");
    put(root, &format!("{sda}/queue/logical_block_size"), "512\n");
    link(root, &format!("{sda}/device"), &format!("/{lun}"));
    put(
        root,
        "run/udev/data/b8:0",
        "S:disk/by-id/ata-QEMU_HARDDISK_0001\nE:ID_BUS=ata\nE:ID_TYPE=disk\nE:ID_SERIAL=QEMU_HARDDISK_0001\n",
    );

    dev(
        root,
        &format!("{vga}/drm/card0"),
        "MAJOR=226\nMINOR=0\nDEVNAME=dri/card0\nDEVTYPE=drm_minor\n",
        &["sys/class/drm"],
    );
    let types = format!("{vga}/mdev_supported_types");
    for (id, available) in [("i915-GVTg_V5_4", "1"), ("i915-GVTg_V5_8", "2")] {
        put(root, &format!("{types}/{id}/device_api"), "vfio-pci\n");
        put(
            root,
            &format!("{types}/{id}/available_instances"),
            &format!("{available}\n"),
        );
    }
    let mdev = format!("{vga}/4b20d080-1b54-4048-85b3-a6a62d165c01");
    dev(
        root,
        &mdev,
        "MDEV_TYPE=i915-GVTg_V5_4\n",
        &["sys/bus/mdev/devices"],
    );
    link(
        root,
        &format!("{mdev}/mdev_type"),
        &format!("/{types}/i915-GVTg_V5_4"),
    );
    link(
        root,
        &format!("{mdev}/iommu_group"),
        "/sys/kernel/iommu_groups/12",
    );
}

/// Asserts that `child` is right under `parent` in virsh's tree: below it, one level in,
/// with nothing at `parent`'s level or above between them.
#[track_caller]
fn assert_under(tree: &str, parent: &str, child: &str) {
    let lines: Vec<&str> = tree.lines().collect();
    // A device's line: its name last, after `+- ` (or alone for a root).
    let at = |name: &str| {
        lines
            .iter()
            .position(|l| l.trim_start_matches([' ', '|', '+', '-']) == name)
            .unwrap_or_else(|| panic!("{name} not in:\n{tree}"))
    };
    let name_of = |l: &str| l.trim_start_matches([' ', '|', '+', '-']).len();
    let col = |l: &str| l.len() - name_of(l);
    let (p, c) = (at(parent), at(child));
    assert!(
        p < c && col(lines[c]) > col(lines[p]),
        "{child} not under {parent}:\n{tree}"
    );
    for l in &lines[p + 1..c] {
        assert!(
            name_of(l) == 0 || col(l) > col(lines[p]),
            "{child} not under {parent}:\n{tree}"
        );
    }
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
    let listed = |cap: &str| {
        let out = ok(&d.virsh(&["nodedev-list", "--cap", cap]));
        out.split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listed("pci"),
        [
            "pci_0000_00_02_0",
            "pci_0000_00_14_0",
            "pci_0000_00_1c_0",
            "pci_0000_00_1f_2",
            "pci_0000_01_00_0"
        ]
    );
    for (cap, want) in [
        ("usb_device", &["usb_1_1", "usb_usb1"][..]),
        ("usb", &["usb_1_1_1_0"]),
        ("scsi_host", &["scsi_host0"]),
        ("fc_host", &["scsi_host0"]),
        ("scsi_target", &["scsi_target0_0_0"]),
        ("scsi", &["scsi_0_0_0_0"]),
        ("storage", &[SDA]),
        ("drm", &["drm_card0"]),
        ("mdev_types", &["pci_0000_00_02_0"]),
        ("mdev", &[MDEV]),
        ("vdpa", &[]),
    ] {
        assert_eq!(listed(cap), want, "--cap {cap}");
    }
    assert_eq!(
        listed("usb,usb_device"),
        ["usb_1_1", "usb_1_1_1_0", "usb_usb1"]
    );
    // The tree: the card under its bridge, its interface under it; each new kind under
    // the device above it in sysfs.
    let tree = ok(&d.virsh(&["nodedev-list", "--tree"]));
    for (parent, child) in [
        ("computer", "pci_0000_00_1c_0"),
        ("pci_0000_00_1c_0", "pci_0000_01_00_0"),
        ("pci_0000_01_00_0", "net_eth0_52_54_00_aa_bb_cc"),
        ("pci_0000_00_14_0", "usb_usb1"),
        ("usb_usb1", "usb_1_1"),
        ("usb_1_1", "usb_1_1_1_0"),
        ("pci_0000_00_1f_2", "scsi_host0"),
        ("scsi_host0", "scsi_target0_0_0"),
        ("scsi_target0_0_0", "scsi_0_0_0_0"),
        ("scsi_0_0_0_0", SDA),
        ("pci_0000_00_02_0", "drm_card0"),
        ("pci_0000_00_02_0", MDEV),
    ] {
        assert_under(&tree, parent, child);
    }
    for (name, wants) in [
        (
            "usb_1_1",
            &[
                "<devnode type='dev'>/dev/bus/usb/001/002</devnode>",
                "<parent>usb_usb1</parent>",
                "<capability type='usb_device'>\n    <bus>1</bus>\n    <device>2</device>\n    <product id='0x0001'>QEMU USB Tablet</product>\n    <vendor id='0x0627'>QEMU</vendor>",
            ][..],
        ),
        (
            "usb_usb1",
            &["<product id='0x0002' />\n    <vendor id='0x1d6b' />"],
        ),
        (
            "usb_1_1_1_0",
            &["<name>usbhid</name>", "<class>3</class>\n    <subclass>0</subclass>"],
        ),
        (
            "scsi_host0",
            &[&format!("<host>0</host>\n    <capability type='fc_host'>\n      <wwnn>{WWNN}</wwnn>\n      <wwpn>{WWPN}</wwpn>\n    </capability>")],
        ),
        ("scsi_0_0_0_0", &["<lun>0</lun>\n    <type>disk</type>"]),
        (
            SDA,
            &[
                "<devnode type='dev'>/dev/sda</devnode>\n  <devnode type='link'>/dev/disk/by-id/ata-QEMU_HARDDISK_0001</devnode>",
                "<block>/dev/sda</block>\n    <bus>ata</bus>\n    <drive_type>disk</drive_type>\n    <model>QEMU HARDDISK</model>\n    <vendor>ATA</vendor>\n    <serial>QEMU_HARDDISK_0001</serial>\n    <size>1073741824</size>",
            ],
        ),
        ("drm_card0", &["<type>primary</type>"]),
        (
            "pci_0000_00_02_0",
            &["<capability type='mdev_types'>", "<type id='i915-GVTg_V5_8'>\n        <deviceAPI>vfio-pci</deviceAPI>\n        <availableInstances>2</availableInstances>"],
        ),
        (
            MDEV,
            &["<type id='i915-GVTg_V5_4'/>\n    <uuid>4b20d080-1b54-4048-85b3-a6a62d165c01</uuid>\n    <parent_addr>0000:00:02.0</parent_addr>\n    <iommuGroup number='12'/>"],
        ),
    ] {
        let xml = ok(&d.virsh(&["nodedev-dumpxml", name]));
        for want in wants {
            assert!(xml.contains(want), "{want}: {xml}");
        }
        validate(&xml, "nodedev", &d.root);
    }
    // A SCSI host by its world wide names, as virsh looks one up.
    let by_wwn = ok(&d.virsh(&["nodedev-dumpxml", &format!("{WWNN},{WWPN}")]));
    assert!(by_wwn.contains("<name>scsi_host0</name>"), "{by_wwn}");
    let err = fails(&d.virsh(&["nodedev-dumpxml", &format!("{WWPN},{WWNN}")]));
    assert!(
        err.contains(&format!(
            "no node device with matching wwnn '{WWPN}' and wwpn '{WWNN}'"
        )),
        "{err}"
    );
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
        print(nets, d.parent(), d.listCaps(), c.numOfDevices('pci', 0), c.listDevices('net', 0))\n\
        h = c.nodeDeviceLookupSCSIHostByWWN(sys.argv[2], sys.argv[3], 0)\n\
        t = c.listAllDevices(libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV_TYPES)\n\
        print(h.name(), h.listCaps(), [x.name() for x in t], t[0].listCaps())\n";
    let out = ok(&vireo_tests::run_cmd(
        vireo_tests::python3(),
        &["-c", script, &d.uri_ro(), WWNN, WWPN],
    ));
    assert_eq!(
        out.trim(),
        "['net_eth0_52_54_00_aa_bb_cc', 'net_lo_00_00_00_00_00_00'] pci_0000_00_1c_0 ['pci'] 5 \
         ['net_eth0_52_54_00_aa_bb_cc', 'net_lo_00_00_00_00_00_00']\n\
         scsi_host0 ['scsi_host', 'fc_host'] ['pci_0000_00_02_0'] ['pci', 'mdev_types']"
    );
}

/// `name` as libvirt spells it: every byte but a letter or digit made `_`.
fn libvirt_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The `KEY=value` properties in the `uevent` file of the device `dir` (and udev's, when it
/// keeps a database).
fn uevent(dir: &Path) -> Vec<(String, String)> {
    let mut props: Vec<(String, String)> = std::fs::read_to_string(dir.join("uevent"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let get = |k: &str| props.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
    if let (Some(maj), Some(min)) = (get("MAJOR"), get("MINOR")) {
        let db = format!("/run/udev/data/b{maj}:{min}");
        for l in std::fs::read_to_string(db).unwrap_or_default().lines() {
            if let Some((k, v)) = l.strip_prefix("E:").and_then(|e| e.split_once('=')) {
                props.push((k.to_string(), v.to_string()));
            }
        }
    }
    props
}

/// The entries of `list` (a sysfs directory of links) whose `DEVTYPE` is `devtype`.
fn by_devtype(list: &str, devtype: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(list) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .filter(|e| {
            uevent(&e.path())
                .iter()
                .any(|(k, v)| k == "DEVTYPE" && v == devtype)
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// This machine's own devices, read only, against what sysfs shows read here: as many PCI
/// devices as sysfs has; the USB devices and interfaces, SCSI hosts, targets and devices,
/// DRM nodes, mediated devices and disks it has (few on a VM, maybe none); a disk under the
/// device above it; every device once in the tree; each one's XML valid.
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
    let listed = |cap: &str| {
        let out = ok(&d.virsh(&["nodedev-list", "--cap", cap]));
        let mut v: Vec<String> = out.split_whitespace().map(str::to_string).collect();
        v.sort();
        v
    };
    let named = |prefix: &str, entries: Vec<String>| {
        let mut v: Vec<String> = entries
            .iter()
            .map(|e| libvirt_name(&format!("{prefix}_{e}")))
            .collect();
        v.sort();
        v
    };
    let usb = "/sys/bus/usb/devices";
    let scsi = "/sys/bus/scsi/devices";
    assert_eq!(
        listed("usb_device"),
        named("usb", by_devtype(usb, "usb_device"))
    );
    assert_eq!(
        listed("usb"),
        named("usb", by_devtype(usb, "usb_interface"))
    );
    assert_eq!(
        listed("scsi_host"),
        named("scsi", by_devtype(scsi, "scsi_host"))
    );
    assert_eq!(
        listed("scsi_target"),
        named("scsi", by_devtype(scsi, "scsi_target"))
    );
    assert_eq!(
        listed("scsi"),
        named("scsi", by_devtype(scsi, "scsi_device"))
    );
    // Primary, control and render nodes (minor numbers below 192).
    let drm: Vec<String> = by_devtype("/sys/class/drm", "drm_minor")
        .into_iter()
        .filter(|n| {
            uevent(&Path::new("/sys/class/drm").join(n))
                .iter()
                .any(|(k, v)| k == "MINOR" && v.parse::<u32>().is_ok_and(|m| m < 192))
        })
        .collect();
    assert_eq!(listed("drm"), named("drm", drm));
    let mdevs = std::fs::read_dir("/sys/bus/mdev/devices").map_or(0, |r| r.count());
    assert_eq!(listed("mdev").len(), mdevs);
    // Disks: whole disks of a kind udev says (or their name does: virtio, NVMe), each
    // named by its node (and udev's serial number).
    let mut disks = Vec::new();
    for disk in by_devtype("/sys/class/block", "disk") {
        let props = uevent(&Path::new("/sys/class/block").join(&disk));
        let get = |k: &str| {
            props
                .iter()
                .rev()
                .find(|(x, _)| x == k)
                .map(|(_, v)| v.as_str())
        };
        let known = get("ID_TYPE").is_some_and(|t| ["disk", "cd", "floppy", "sd"].contains(&t))
            || ["ID_CDROM", "ID_DRIVE_FLOPPY", "ID_DRIVE_FLASH_SD"]
                .iter()
                .any(|k| get(k).is_some())
            || disk.starts_with("vd")
            || disk.starts_with("nvme");
        if known {
            let serial = get("ID_SERIAL")
                .map(|s| format!("_{s}"))
                .unwrap_or_default();
            disks.push(libvirt_name(&format!("block_{disk}{serial}")));
        }
    }
    disks.sort();
    assert_eq!(listed("storage"), disks);
    // A disk's parent: the nearest PCI or SCSI device above it in /sys/devices.
    for disk in by_devtype("/sys/class/block", "disk") {
        let Some(name) = listed("storage").into_iter().find(|n| {
            n == &format!("block_{}", libvirt_name(&disk))
                || n.starts_with(&format!("block_{}_", libvirt_name(&disk)))
        }) else {
            continue;
        };
        let path = std::fs::canonicalize(Path::new("/sys/class/block").join(&disk)).unwrap();
        let above = path
            .ancestors()
            .skip(1)
            .find_map(|a| {
                let n = a.file_name()?.to_str()?;
                let pci = n.len() == 12 && n.as_bytes()[4] == b':' && n.as_bytes()[10] == b'.';
                let lun =
                    n.split(':').count() == 4 && n.split(':').all(|p| p.parse::<u32>().is_ok());
                if pci {
                    Some(libvirt_name(&format!("pci_{n}")))
                } else if lun {
                    Some(libvirt_name(&format!("scsi_{n}")))
                } else {
                    None
                }
            })
            .unwrap_or_else(|| "computer".into());
        let xml = ok(&d.virsh(&["nodedev-dumpxml", &name]));
        assert!(xml.contains(&format!("<parent>{above}</parent>")), "{xml}");
        assert!(
            xml.contains(&format!("<block>/dev/{disk}</block>")),
            "{xml}"
        );
        validate(&xml, "nodedev", &d.root);
    }
    // The tree has every device, once.
    let all = ok(&d.virsh(&["nodedev-list"]));
    let tree = ok(&d.virsh(&["nodedev-list", "--tree"]));
    let mut in_tree: Vec<&str> = tree
        .lines()
        .map(|l| l.trim_start_matches([' ', '|', '+', '-']))
        .filter(|n| !n.is_empty())
        .collect();
    in_tree.sort();
    let mut every: Vec<&str> = all.split_whitespace().collect();
    every.sort();
    assert_eq!(in_tree, every, "{tree}");
    for cap in [
        "usb_device",
        "usb",
        "scsi_host",
        "scsi",
        "storage",
        "drm",
        "mdev",
    ] {
        for n in listed(cap).iter().take(3) {
            let xml = ok(&d.virsh(&["nodedev-dumpxml", n]));
            validate(&xml, "nodedev", &d.root);
        }
    }
}

/// A uevent for a new device reaches a python client's node device event callback: a veth
/// pair the test makes in its own network namespace (where the daemons run, with that
/// namespace's sysfs as their `/sys`) is CREATED, named with its MAC address, listed while
/// it is there, and DELETED when the test removes it.
fn nodedev_events(layout: Layout) {
    let d = Daemon::start_with_own_sysfs(layout);
    let mut events = EventLog::start_nodedevs(&d);
    let (v0, v1) = ("net_vnd0_52_54_00_0d_e0_01", "net_vnd1_52_54_00_0d_e0_02");
    in_ns(
        &d,
        "ip",
        &[
            "link",
            "add",
            "vnd0",
            "address",
            "52:54:00:0d:e0:01",
            "type",
            "veth",
            "peer",
            "name",
            "vnd1",
            "address",
            "52:54:00:0d:e0:02",
        ],
    );
    events.wait_for(&format!("nodedev {v0} created"));
    events.wait_for(&format!("nodedev {v1} created"));
    let nets = ok(&d.virsh(&["nodedev-list", "--cap", "net"]));
    assert!(nets.lines().any(|l| l == v0), "{nets}");
    let xml = ok(&d.virsh(&["nodedev-dumpxml", v0]));
    assert!(
        xml.contains("<path>/sys/devices/virtual/net/vnd0</path>"),
        "{xml}"
    );
    in_ns(&d, "ip", &["link", "del", "vnd0"]);
    let seen = events.wait_for(&format!("nodedev {v0} deleted"));
    events.wait_for(&format!("nodedev {v1} deleted"));
    assert!(
        !seen.iter().any(|l| l.starts_with("nodedev computer")),
        "{seen:?}"
    );
    let nets = ok(&d.virsh(&["nodedev-list", "--cap", "net"]));
    assert!(!nets.contains("vnd0"), "{nets}");
}

vireo_tests::in_every_layout!(nodedev_events);

/// The `vireo` CLI's nodedev-list (plain, by capability, as a tree), nodedev-dumpxml (by
/// name and by world wide names) and nodedev-event print exactly what virsh prints, its
/// refusals too.
#[test]
fn nodedev_cli_as_virsh() {
    let sysfs = tempfile::tempdir().unwrap();
    tree(sysfs.path());
    let d = Daemon::start_with_sysfs(Layout::Monolithic, sysfs.path());
    let wwn = format!("{WWNN},{WWPN}");
    let okays: &[&[&str]] = &[
        &["nodedev-list"],
        &["nodedev-list", "--tree"],
        &["nodedev-list", "--all"],
        &["nodedev-list", "--cap", "pci"],
        &["nodedev-list", "--cap", "usb_device,usb,storage"],
        &["nodedev-list", "--cap", "mdev_types"],
        &["nodedev-list", "--cap", "vdpa"],
        &["nodedev-list", "--inactive"],
        &["nodedev-list", "scsi"],
        &["nodedev-dumpxml", "usb_usb1"],
        &["nodedev-dumpxml", "--device", SDA],
        &["nodedev-dumpxml", MDEV],
        &["nodedev-dumpxml", &wwn],
        &["nodedev-event", "--list"],
    ];
    for args in okays {
        let o = same_as_virsh(&d, args);
        assert!(o.status.success(), "{args:?}");
    }
    let refused: &[&[&str]] = &[
        &["nodedev-list", "--cap", "pci,bogus"],
        &["nodedev-list", "--tree", "--cap", "pci"],
        &["nodedev-list", "--tree", "--inactive"],
        &["nodedev-list", "--all", "--inactive"],
        &["nodedev-dumpxml"],
        &["nodedev-dumpxml", "pci_0000_09_00_0"],
        &["nodedev-dumpxml", "abc,def"],
        &["nodedev-dumpxml", "a,b,c"],
        &["nodedev-dumpxml", &format!("{WWPN},{WWNN}")],
        &["nodedev-event"],
        &["nodedev-event", "--event", "bogus"],
        &["nodedev-event", "--event", "lifecycle", "--timeout", "0"],
        &["nodedev-event", "--device", "nope", "--event", "lifecycle"],
        // No event on a synthetic tree: the wait ends when its time is up.
        &["nodedev-event", "--event", "lifecycle", "--timeout", "1"],
        &[
            "nodedev-event",
            "computer",
            "--event",
            "update",
            "--loop",
            "--timeout",
            "1",
        ],
    ];
    for args in refused {
        let o = same_as_virsh(&d, args);
        assert!(!o.status.success(), "{args:?}");
    }
}
