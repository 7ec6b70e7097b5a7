use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use vireo_proto::RemoteError;

use super::*;

/// Writes `text` to `root/rel`, making the directories above it.
fn file(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

/// Makes `root/rel` a link to `target`, making the directories above it.
fn link(root: &Path, rel: &str, target: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    symlink(target, p).unwrap();
}

const BRIDGE: &str = "sys/devices/pci0000:00/0000:00:1c.0";
const NIC: &str = "sys/devices/pci0000:00/0000:00:1c.0/0000:01:00.0";
const VGA: &str = "sys/devices/pci0000:00/0000:00:02.0";

/// A host with a PCIe root port (`00:1c.0`) and an Ethernet card behind it (`01:00.0`,
/// `eth0`), a graphics device on the root bus with a wireless interface under it
/// (`00:02.0`, `wlan0`), a loopback interface, and DMI data.
fn host() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    for (dir, class, vendor, device) in [
        (BRIDGE, "0x060400", "0x8086", "0x8c10"),
        (NIC, "0x020000", "0x8086", "0x10d3"),
        (VGA, "0x030000", "0x1234", "0x1111"),
    ] {
        file(r, &format!("{dir}/class"), &format!("{class}\n"));
        file(r, &format!("{dir}/vendor"), &format!("{vendor}\n"));
        file(r, &format!("{dir}/device"), &format!("{device}\n"));
    }
    fs::create_dir_all(r.join("sys/bus/pci/drivers/pcieport")).unwrap();
    fs::create_dir_all(r.join("sys/bus/pci/drivers/e1000e")).unwrap();
    link(
        r,
        &format!("{BRIDGE}/driver"),
        "../../../bus/pci/drivers/pcieport",
    );
    link(
        r,
        &format!("{NIC}/driver"),
        "../../../../bus/pci/drivers/e1000e",
    );
    link(
        r,
        &format!("{NIC}/iommu_group"),
        "../../../../kernel/iommu_groups/7",
    );
    link(
        r,
        "sys/kernel/iommu_groups/7/devices/0000:01:00.0",
        "../../../../devices/pci0000:00/0000:00:1c.0/0000:01:00.0",
    );
    link(
        r,
        &format!("{BRIDGE}/iommu_group"),
        "../../../kernel/iommu_groups/6",
    );
    fs::create_dir_all(r.join("sys/kernel/iommu_groups/6/devices")).unwrap();
    link(
        r,
        "sys/bus/pci/devices/0000:00:1c.0",
        "../../../devices/pci0000:00/0000:00:1c.0",
    );
    link(
        r,
        "sys/bus/pci/devices/0000:01:00.0",
        "../../../devices/pci0000:00/0000:00:1c.0/0000:01:00.0",
    );
    // Absolute, as seen inside the root.
    link(
        r,
        "sys/bus/pci/devices/0000:00:02.0",
        "/sys/devices/pci0000:00/0000:00:02.0",
    );

    let eth0 = format!("{NIC}/net/eth0");
    file(r, &format!("{eth0}/address"), "00:1b:21:aa:bb:cc\n");
    file(r, &format!("{eth0}/operstate"), "up\n");
    file(r, &format!("{eth0}/speed"), "1000\n");
    file(r, &format!("{eth0}/uevent"), "INTERFACE=eth0\nIFINDEX=2\n");
    let wlan0 = format!("{VGA}/net/wlan0");
    file(r, &format!("{wlan0}/address"), "02:00:00:00:01:00\n");
    file(r, &format!("{wlan0}/operstate"), "down\n");
    file(r, &format!("{wlan0}/speed"), "-1\n");
    file(
        r,
        &format!("{wlan0}/uevent"),
        "DEVTYPE=wlan\nINTERFACE=wlan0\n",
    );
    file(
        r,
        "sys/devices/virtual/net/lo/address",
        "00:00:00:00:00:00\n",
    );
    file(r, "sys/devices/virtual/net/lo/operstate", "unknown\n");
    link(
        r,
        "sys/class/net/eth0",
        "../../devices/pci0000:00/0000:00:1c.0/0000:01:00.0/net/eth0",
    );
    link(
        r,
        "sys/class/net/wlan0",
        "../../devices/pci0000:00/0000:00:02.0/net/wlan0",
    );
    link(r, "sys/class/net/lo", "../../devices/virtual/net/lo");
    file(r, "sys/class/net/bonding_masters", "\n");

    let dmi = "sys/devices/virtual/dmi/id";
    file(
        r,
        &format!("{dmi}/product_name"),
        "Standard PC (Q35 + ICH9, 2009)\n",
    );
    file(r, &format!("{dmi}/sys_vendor"), "QEMU\n");
    file(r, &format!("{dmi}/product_version"), "pc-q35-8.2\n");
    file(
        r,
        &format!("{dmi}/product_uuid"),
        "5A1B2C3D-0000-4000-8000-0123456789AB\n",
    );
    file(r, &format!("{dmi}/bios_vendor"), "SeaBIOS\n");
    file(r, &format!("{dmi}/bios_version"), "1.16.3\n");
    file(r, &format!("{dmi}/bios_date"), "04/01/2014\n");
    link(r, "sys/class/dmi/id", "../../devices/virtual/dmi/id");
    peripherals(r);
    t
}

const XHCI: &str = "sys/devices/pci0000:00/0000:00:14.0";
const HBA: &str = "sys/devices/pci0000:00/0000:00:1f.2";
/// The USB disk's interface, and the SCSI host its storage driver made.
const USB_IF: &str = "sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0";
const LUN: &str = "sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host2/target2:0:0/2:0:0:0";
const CD: &str = "sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host2/target2:0:1/2:0:1:0";
const MDEV_UUID: &str = "4b20d080-1b54-4048-85b3-a6a62d165c01";

/// A device directory `dir` with its `uevent` file and a link to it in each list.
fn device(r: &Path, dir: &str, uevent: &str, lists: &[&str]) {
    file(r, &format!("{dir}/uevent"), uevent);
    let name = dir.rsplit('/').next().unwrap();
    for l in lists {
        link(r, &format!("{l}/{name}"), &format!("/{dir}"));
    }
}

/// Beside the PCI devices and interfaces: a USB controller (`00:14.0`) with its root hub
/// (`usb1`) and a USB disk (`1-1`, interface `1-1:1.0`) whose SCSI host (`host2`) has a
/// disk (`sda`, with a partition, known to udev) and a CD-ROM drive with a disc (`sr0`),
/// and the disk's SCSI generic node (`sg0`); a Fibre Channel adapter (`00:1f.2`) with its
/// host (`host5`) and world wide names; the graphics device's DRM nodes (`card0`,
/// `renderD128`, a connector) and its mediated device types, one of them made (an mdev);
/// a loop device (no kind libvirt knows).
fn peripherals(r: &Path) {
    for (dir, class, vendor, device, driver) in [
        (XHCI, "0x0c0330", "0x8086", "0xa12f", "xhci_hcd"),
        (HBA, "0x0c0400", "0x10df", "0xf100", "lpfc"),
    ] {
        file(r, &format!("{dir}/class"), &format!("{class}\n"));
        file(r, &format!("{dir}/vendor"), &format!("{vendor}\n"));
        file(r, &format!("{dir}/device"), &format!("{device}\n"));
        link(
            r,
            &format!("{dir}/driver"),
            &format!("/sys/bus/pci/drivers/{driver}"),
        );
        let addr = dir.rsplit('/').next().unwrap();
        link(
            r,
            &format!("sys/bus/pci/devices/{addr}"),
            &format!("/{dir}"),
        );
    }
    let usb = "sys/bus/usb/devices";
    let hub = format!("{XHCI}/usb1");
    device(
        r,
        &hub,
        "MAJOR=189\nMINOR=0\nDEVNAME=bus/usb/001/001\nDEVTYPE=usb_device\nDRIVER=usb\nBUSNUM=001\nDEVNUM=001\n",
        &[usb],
    );
    for (f, v) in [
        ("idVendor", "1d6b"),
        ("idProduct", "0002"),
        ("manufacturer", "Linux 6.1.0 xhci-hcd"),
        ("product", "xHCI Host Controller"),
    ] {
        file(r, &format!("{hub}/{f}"), &format!("{v}\n"));
    }
    link(r, &format!("{hub}/driver"), "/sys/bus/usb/drivers/usb");
    let disk = format!("{XHCI}/usb1/1-1");
    device(
        r,
        &disk,
        "MAJOR=189\nMINOR=1\nDEVNAME=bus/usb/001/002\nDEVTYPE=usb_device\nDRIVER=usb\nBUSNUM=001\nDEVNUM=002\n",
        &[usb],
    );
    // No product string: the id alone.
    for (f, v) in [
        ("idVendor", "46f4"),
        ("idProduct", "0001"),
        ("manufacturer", "QEMU"),
    ] {
        file(r, &format!("{disk}/{f}"), &format!("{v}\n"));
    }
    link(r, &format!("{disk}/driver"), "/sys/bus/usb/drivers/usb");
    device(
        r,
        USB_IF,
        "DEVTYPE=usb_interface\nDRIVER=usb-storage\nINTERFACE=8/6/80\n",
        &[usb],
    );
    for (f, v) in [
        ("bInterfaceNumber", "00"),
        ("bInterfaceClass", "08"),
        ("bInterfaceSubClass", "06"),
        ("bInterfaceProtocol", "50"),
    ] {
        file(r, &format!("{USB_IF}/{f}"), &format!("{v}\n"));
    }
    link(
        r,
        &format!("{USB_IF}/driver"),
        "/sys/bus/usb/drivers/usb-storage",
    );

    let scsi = "sys/bus/scsi/devices";
    let block = "sys/class/block";
    let host2 = format!("{USB_IF}/host2");
    device(r, &host2, "DEVTYPE=scsi_host\n", &[scsi]);
    file(r, &format!("{host2}/scsi_host/host2/unique_id"), "1\n");
    link(
        r,
        "sys/class/scsi_host/host2",
        &format!("/{host2}/scsi_host/host2"),
    );
    for (lun, target, kind) in [(LUN, "target2:0:0", "0"), (CD, "target2:0:1", "5")] {
        device(
            r,
            &format!("{host2}/{target}"),
            "DEVTYPE=scsi_target\n",
            &[scsi],
        );
        device(
            r,
            lun,
            "DEVTYPE=scsi_device\nDRIVER=sd\nMODALIAS=scsi:t-0x00\n",
            &[scsi],
        );
        file(r, &format!("{lun}/type"), &format!("{kind}\n"));
        file(r, &format!("{lun}/vendor"), "QEMU    \n");
        file(r, &format!("{lun}/model"), "QEMU HARDDISK   \n");
        link(r, &format!("{lun}/driver"), "/sys/bus/scsi/drivers/sd");
    }
    let sda = format!("{LUN}/block/sda");
    device(
        r,
        &sda,
        "MAJOR=8\nMINOR=0\nDEVNAME=sda\nDEVTYPE=disk\n",
        &[block],
    );
    file(r, &format!("{sda}/size"), "2097152\n");
    file(r, &format!("{sda}/removable"), "0\n");
    file(r, &format!("{sda}/queue/logical_block_size"), "512\n");
    link(r, &format!("{sda}/device"), &format!("/{LUN}"));
    device(
        r,
        &format!("{sda}/sda1"),
        "MAJOR=8\nMINOR=1\nDEVNAME=sda1\nDEVTYPE=partition\n",
        &[block],
    );
    file(
        r,
        "run/udev/data/b8:0",
        "S:disk/by-id/usb-QEMU_QEMU_HARDDISK_1-0:0\nW:4\nE:ID_BUS=usb\nE:ID_TYPE=disk\nE:ID_SERIAL=QEMU_QEMU_HARDDISK_1-0:0\nG:systemd\n",
    );
    let sr0 = format!("{CD}/block/sr0");
    device(
        r,
        &sr0,
        "MAJOR=11\nMINOR=0\nDEVNAME=sr0\nDEVTYPE=disk\n",
        &[block],
    );
    file(r, &format!("{sr0}/size"), "1000\n");
    file(r, &format!("{sr0}/removable"), "1\n");
    file(r, &format!("{sr0}/queue/logical_block_size"), "2048\n");
    link(r, &format!("{sr0}/device"), &format!("/{CD}"));
    file(
        r,
        "run/udev/data/b11:0",
        "E:ID_CDROM=1\nE:ID_CDROM_MEDIA=1\nE:ID_FS_LABEL=Debian\n",
    );
    device(
        r,
        &format!("{LUN}/scsi_generic/sg0"),
        "MAJOR=21\nMINOR=0\nDEVNAME=sg0\n",
        &["sys/class/scsi_generic"],
    );
    device(
        r,
        "sys/devices/virtual/block/loop0",
        "MAJOR=7\nMINOR=0\nDEVNAME=loop0\nDEVTYPE=disk\n",
        &[block],
    );

    let host5 = format!("{HBA}/host5");
    device(r, &host5, "DEVTYPE=scsi_host\n", &[scsi]);
    file(r, &format!("{host5}/scsi_host/host5/unique_id"), "6\n");
    file(r, &format!("{host5}/scsi_host/host5/vport_create"), "");
    link(
        r,
        "sys/class/scsi_host/host5",
        &format!("/{host5}/scsi_host/host5"),
    );
    let fc = format!("{host5}/fc_host/host5");
    for (f, v) in [
        ("node_name", "0x20000000c9848140"),
        ("port_name", "0x10000000c9848140"),
        ("fabric_name", "0x2002000573de9a81"),
        ("max_npiv_vports", "127"),
        ("npiv_vports_inuse", "0"),
        ("vport_create", ""),
    ] {
        file(r, &format!("{fc}/{f}"), &format!("{v}\n"));
    }
    link(r, "sys/class/fc_host/host5", &format!("/{fc}"));

    let drm = "sys/class/drm";
    for (node, minor) in [("card0", 0), ("renderD128", 128)] {
        device(
            r,
            &format!("{VGA}/drm/{node}"),
            &format!("MAJOR=226\nMINOR={minor}\nDEVNAME=dri/{node}\nDEVTYPE=drm_minor\n"),
            &[drm],
        );
    }
    device(
        r,
        &format!("{VGA}/drm/card0/card0-HDMI-A-1"),
        "DEVTYPE=drm_connector\n",
        &[drm],
    );
    file(r, "sys/class/drm/version", "drm 1.1.0 20060810\n");

    let types = format!("{VGA}/mdev_supported_types");
    for (id, name, available) in [
        ("i915-GVTg_V5_4", Some("GVTg_V5_4"), "1"),
        ("i915-GVTg_V5_8", None, "2"),
    ] {
        file(r, &format!("{types}/{id}/device_api"), "vfio-pci\n");
        file(
            r,
            &format!("{types}/{id}/available_instances"),
            &format!("{available}\n"),
        );
        if let Some(n) = name {
            file(r, &format!("{types}/{id}/name"), &format!("{n}\n"));
        }
    }
    let mdev = format!("{VGA}/{MDEV_UUID}");
    device(
        r,
        &mdev,
        "MDEV_TYPE=i915-GVTg_V5_4\n",
        &["sys/bus/mdev/devices"],
    );
    link(
        r,
        &format!("{mdev}/mdev_type"),
        &format!("/{types}/i915-GVTg_V5_4"),
    );
    link(
        r,
        &format!("{mdev}/iommu_group"),
        "/sys/kernel/iommu_groups/12",
    );
    link(
        r,
        &format!("{mdev}/driver"),
        "/sys/bus/mdev/drivers/vfio_mdev",
    );
    link(
        r,
        &format!("sys/kernel/iommu_groups/12/devices/{MDEV_UUID}"),
        &format!("/{mdev}"),
    );
}

/// Checks `xml` against libvirt's node device schema.
fn validate(xml: &str, label: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{label}.xml"));
    fs::write(&path, xml).unwrap();
    let out = Command::new(vireo_hostprog::require("virt-xml-validate"))
        .arg(&path)
        .arg("nodedev")
        .output()
        .unwrap_or_else(|e| panic!("cannot run virt-xml-validate (install libvirt-clients): {e}"));
    assert!(
        out.status.success(),
        "virt-xml-validate rejected {label} ({:?}):\n{}{}\n--- xml ---\n{xml}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

const ETH0: &str = "net_eth0_00_1b_21_aa_bb_cc";
const WLAN0: &str = "net_wlan0_02_00_00_00_01_00";
const LO: &str = "net_lo_00_00_00_00_00_00";

const SDA: &str = "block_sda_QEMU_QEMU_HARDDISK_1_0_0";
const MDEV: &str = "mdev_4b20d080_1b54_4048_85b3_a6a62d165c01_0000_00_02_0";

#[test]
fn lists_every_device_computer_first_then_by_name() {
    let t = host();
    let d = NodeDevDriver::open(t.path());
    let all = [
        "computer",
        SDA,
        "block_sr0",
        "drm_card0",
        "drm_renderD128",
        MDEV,
        ETH0,
        LO,
        WLAN0,
        "pci_0000_00_02_0",
        "pci_0000_00_14_0",
        "pci_0000_00_1c_0",
        "pci_0000_00_1f_2",
        "pci_0000_01_00_0",
        "scsi_2_0_0_0",
        "scsi_2_0_1_0",
        "scsi_generic_sg0",
        "scsi_host2",
        "scsi_host5",
        "scsi_target2_0_0",
        "scsi_target2_0_1",
        "usb_1_1",
        "usb_1_1_1_0",
        "usb_usb1",
    ];
    assert_eq!(d.names(None).unwrap(), all);
    assert_eq!(
        d.names(Some("pci")).unwrap(),
        [
            "pci_0000_00_02_0",
            "pci_0000_00_14_0",
            "pci_0000_00_1c_0",
            "pci_0000_00_1f_2",
            "pci_0000_01_00_0"
        ]
    );
    assert_eq!(d.names(Some("net")).unwrap(), [ETH0, LO, WLAN0]);
    assert_eq!(d.names(Some("system")).unwrap(), ["computer"]);
    assert_eq!(
        d.names(Some("usb_device")).unwrap(),
        ["usb_1_1", "usb_usb1"]
    );
    assert_eq!(d.names(Some("usb")).unwrap(), ["usb_1_1_1_0"]);
    assert_eq!(
        d.names(Some("scsi_host")).unwrap(),
        ["scsi_host2", "scsi_host5"]
    );
    assert_eq!(
        d.names(Some("scsi_target")).unwrap(),
        ["scsi_target2_0_0", "scsi_target2_0_1"]
    );
    assert_eq!(
        d.names(Some("scsi")).unwrap(),
        ["scsi_2_0_0_0", "scsi_2_0_1_0"]
    );
    // Not the partition, nor the loop device.
    assert_eq!(d.names(Some("storage")).unwrap(), [SDA, "block_sr0"]);
    assert_eq!(d.names(Some("scsi_generic")).unwrap(), ["scsi_generic_sg0"]);
    // Not the connector.
    assert_eq!(
        d.names(Some("drm")).unwrap(),
        ["drm_card0", "drm_renderD128"]
    );
    assert_eq!(d.names(Some("mdev")).unwrap(), [MDEV]);
    assert_eq!(d.names(Some("mdev_types")).unwrap(), ["pci_0000_00_02_0"]);
    assert_eq!(d.names(Some("fc_host")).unwrap(), ["scsi_host5"]);
    assert_eq!(d.names(Some("vports")).unwrap(), ["scsi_host5"]);
    assert!(d.names(Some("ccw")).unwrap().is_empty());
    assert!(d.names(Some("nonsense")).unwrap().is_empty());

    let listed = d.all().unwrap();
    assert_eq!(
        listed.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        all
    );
    let caps = |n: &str| listed.iter().find(|(x, _)| x == n).unwrap().1.clone();
    assert_eq!(caps("computer"), ["system"]);
    assert_eq!(caps(ETH0), ["net"]);
    assert_eq!(caps("pci_0000_01_00_0"), ["pci"]);
    assert_eq!(caps("pci_0000_00_02_0"), ["pci", "mdev_types"]);
    assert_eq!(caps("scsi_host5"), ["scsi_host", "fc_host", "vports"]);
    assert_eq!(caps("scsi_host2"), ["scsi_host"]);
    assert_eq!(d.caps("pci_0000_01_00_0").unwrap(), ["pci"]);
    assert_eq!(d.caps(ETH0).unwrap(), ["net"]);
    assert_eq!(d.caps("computer").unwrap(), ["system"]);
    assert_eq!(d.caps("usb_1_1_1_0").unwrap(), ["usb"]);
    assert_eq!(d.caps(MDEV).unwrap(), ["mdev"]);
}

#[test]
fn parents_are_the_nearest_pci_device_above() {
    let t = host();
    let d = NodeDevDriver::open(t.path());
    let parent = |n: &str| d.parent(n).unwrap();
    assert_eq!(parent(ETH0).as_deref(), Some("pci_0000_01_00_0"));
    assert_eq!(
        parent("pci_0000_01_00_0").as_deref(),
        Some("pci_0000_00_1c_0")
    );
    assert_eq!(parent("pci_0000_00_1c_0").as_deref(), Some("computer"));
    assert_eq!(parent(WLAN0).as_deref(), Some("pci_0000_00_02_0"));
    assert_eq!(parent(LO).as_deref(), Some("computer"));
    assert_eq!(parent("computer"), None);
}

#[test]
fn writes_libvirts_xml() {
    let t = host();
    let d = NodeDevDriver::open(t.path());
    assert_eq!(
        d.xml("pci_0000_01_00_0").unwrap(),
        "<device>
  <name>pci_0000_01_00_0</name>
  <path>/sys/devices/pci0000:00/0000:00:1c.0/0000:01:00.0</path>
  <parent>pci_0000_00_1c_0</parent>
  <driver>
    <name>e1000e</name>
  </driver>
  <capability type='pci'>
    <class>0x020000</class>
    <domain>0</domain>
    <bus>1</bus>
    <slot>0</slot>
    <function>0</function>
    <product id='0x10d3'/>
    <vendor id='0x8086'/>
    <iommuGroup number='7'>
      <address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </iommuGroup>
  </capability>
</device>
"
    );
    // No driver, no IOMMU group (an empty one is left out too), under the computer.
    let vga = d.xml("pci_0000_00_02_0").unwrap();
    assert!(vga.contains("<path>/sys/devices/pci0000:00/0000:00:02.0</path>\n  <parent>computer</parent>\n  <capability type='pci'>\n    <class>0x030000</class>\n    <domain>0</domain>\n    <bus>0</bus>\n    <slot>2</slot>"), "{vga}");
    assert!(
        !vga.contains("<driver>") && !vga.contains("iommuGroup"),
        "{vga}"
    );
    let bridge = d.xml("pci_0000_00_1c_0").unwrap();
    assert!(
        bridge.contains("<name>pcieport</name>") && !bridge.contains("iommuGroup"),
        "{bridge}"
    );
    assert!(bridge.contains("<slot>28</slot>"), "{bridge}");

    assert_eq!(
        d.xml(ETH0).unwrap(),
        "<device>
  <name>net_eth0_00_1b_21_aa_bb_cc</name>
  <path>/sys/devices/pci0000:00/0000:00:1c.0/0000:01:00.0/net/eth0</path>
  <parent>pci_0000_01_00_0</parent>
  <capability type='net'>
    <interface>eth0</interface>
    <address>00:1b:21:aa:bb:cc</address>
    <link speed='1000' state='up'/>
    <capability type='80203'/>
  </capability>
</device>
"
    );
    let wlan = d.xml(WLAN0).unwrap();
    assert!(
        wlan.contains("<link state='down'/>\n    <capability type='80211'/>"),
        "{wlan}"
    );
    let lo = d.xml(LO).unwrap();
    assert!(
        lo.contains("<path>/sys/devices/virtual/net/lo</path>\n  <parent>computer</parent>"),
        "{lo}"
    );
    assert!(lo.contains("<link state='unknown'/>"), "{lo}");

    assert_eq!(
        d.xml("computer").unwrap(),
        "<device>
  <name>computer</name>
  <capability type='system'>
    <product>Standard PC (Q35 + ICH9, 2009)</product>
    <hardware>
      <vendor>QEMU</vendor>
      <version>pc-q35-8.2</version>
      <uuid>5a1b2c3d-0000-4000-8000-0123456789ab</uuid>
    </hardware>
    <firmware>
      <vendor>SeaBIOS</vendor>
      <version>1.16.3</version>
      <release_date>04/01/2014</release_date>
    </firmware>
  </capability>
</device>
"
    );
    for name in d.names(None).unwrap() {
        validate(&d.xml(&name).unwrap(), &name);
    }
}

#[test]
fn an_empty_root_has_the_computer_alone() {
    let t = tempfile::tempdir().unwrap();
    let d = NodeDevDriver::open(t.path());
    assert_eq!(d.names(None).unwrap(), ["computer"]);
    let xml = d.xml("computer").unwrap();
    assert_eq!(
        xml,
        "<device>
  <name>computer</name>
  <capability type='system'>
    <hardware>
      <uuid>00000000-0000-0000-0000-000000000000</uuid>
    </hardware>
    <firmware/>
  </capability>
</device>
"
    );
    validate(&xml, "bare-computer");
}

#[test]
fn devices_are_read_again_at_each_call() {
    let t = host();
    let d = NodeDevDriver::open(t.path());
    assert!(d.names(None).unwrap().contains(&LO.to_string()));
    fs::remove_file(t.path().join("sys/class/net/lo")).unwrap();
    assert!(!d.names(None).unwrap().contains(&LO.to_string()));
    // A link left dangling (the device went away) is no device.
    fs::remove_dir_all(t.path().join(VGA)).unwrap();
    assert!(!d
        .names(Some("pci"))
        .unwrap()
        .contains(&"pci_0000_00_02_0".to_string()));
    assert_eq!(d.parent(ETH0).unwrap().as_deref(), Some("pci_0000_01_00_0"));
}

#[test]
fn an_unknown_name_is_libvirts_no_node_device() {
    let t = host();
    let d = NodeDevDriver::open(t.path());
    let msg = "Node device not found: no node device with matching name 'pci_0000_09_00_0'";
    for e in [
        d.xml("pci_0000_09_00_0").unwrap_err(),
        d.parent("pci_0000_09_00_0").unwrap_err(),
        d.caps("pci_0000_09_00_0").unwrap_err(),
    ] {
        assert_eq!(e.to_string(), msg);
        let r = RemoteError::from(e);
        assert_eq!((r.code, r.domain), (53, 22));
        assert_eq!(r.message.as_deref(), Some(msg));
        assert_eq!(r.str1.as_deref(), Some("Node device not found: %s"));
        assert_eq!(
            r.str2.as_deref(),
            Some("no node device with matching name 'pci_0000_09_00_0'")
        );
    }
}

#[test]
fn links_never_leave_the_root() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    fs::create_dir_all(r.join("sys/devices/x")).unwrap();
    link(r, "sys/a", "../../../../../sys/devices/x");
    link(r, "sys/b", "/sys/a");
    link(r, "sys/loop", "loop");
    let s = Sysfs::new(r.to_path_buf());
    assert_eq!(
        s.resolve(Path::new("/sys/a")).unwrap(),
        Path::new("/sys/devices/x")
    );
    assert_eq!(
        s.resolve(Path::new("/sys/b")).unwrap(),
        Path::new("/sys/devices/x")
    );
    assert!(s.resolve(Path::new("/sys/loop")).is_err());
    assert!(s.resolve(Path::new("/sys/none")).is_err());
}

#[test]
fn names_are_libvirts() {
    assert_eq!(device_name("pci", "0000:00:1f.2", None), "pci_0000_00_1f_2");
    assert_eq!(
        device_name("net", "br-lan.10", Some("52:54:00:ab:cd:ef")),
        "net_br_lan_10_52_54_00_ab_cd_ef"
    );
    assert_eq!(
        PciAddr::parse("0000:3a:1f.7"),
        Some(PciAddr {
            domain: 0,
            bus: 0x3a,
            slot: 0x1f,
            function: 7
        })
    );
    assert_eq!(PciAddr::parse("0000:00:1f"), None);
    assert_eq!(PciAddr::parse("0000:0g:1f.0"), None);
}

/// The host's own devices, read-only: every PCI device is listed, and every device's
/// XML is valid for libvirt.
#[test]
fn the_hosts_own_devices() {
    let d = NodeDevDriver::open("/");
    let entries = fs::read_dir("/sys/bus/pci/devices").map_or(0, |r| r.count());
    assert_eq!(d.names(Some("pci")).unwrap().len(), entries);
    for name in d.names(None).unwrap() {
        let xml = d.xml(&name).unwrap();
        validate(&xml, &name);
        assert_eq!(vireo_xml::NodeDeviceDef::parse(&xml).unwrap().format(), xml);
    }
}

#[test]
fn parents_are_the_nearest_listed_device_above() {
    let t = host();
    let d = NodeDevDriver::open(t.path());
    for (child, parent) in [
        ("usb_usb1", "pci_0000_00_14_0"),
        ("usb_1_1", "usb_usb1"),
        ("usb_1_1_1_0", "usb_1_1"),
        ("scsi_host2", "usb_1_1_1_0"),
        ("scsi_target2_0_0", "scsi_host2"),
        ("scsi_2_0_0_0", "scsi_target2_0_0"),
        (SDA, "scsi_2_0_0_0"),
        ("scsi_generic_sg0", "scsi_2_0_0_0"),
        ("block_sr0", "scsi_2_0_1_0"),
        ("scsi_host5", "pci_0000_00_1f_2"),
        ("drm_card0", "pci_0000_00_02_0"),
        ("drm_renderD128", "pci_0000_00_02_0"),
        (MDEV, "pci_0000_00_02_0"),
    ] {
        assert_eq!(d.parent(child).unwrap().as_deref(), Some(parent), "{child}");
    }
}

#[test]
fn writes_libvirts_xml_for_every_kind() {
    let t = host();
    let d = NodeDevDriver::open(t.path());
    assert_eq!(
        d.xml("usb_1_1").unwrap(),
        "<device>
  <name>usb_1_1</name>
  <path>/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1</path>
  <devnode type='dev'>/dev/bus/usb/001/002</devnode>
  <parent>usb_usb1</parent>
  <driver>
    <name>usb</name>
  </driver>
  <capability type='usb_device'>
    <bus>1</bus>
    <device>2</device>
    <product id='0x0001' />
    <vendor id='0x46f4'>QEMU</vendor>
  </capability>
</device>
"
    );
    let hub = d.xml("usb_usb1").unwrap();
    assert!(
        hub.contains("<product id='0x0002'>xHCI Host Controller</product>\n    <vendor id='0x1d6b'>Linux 6.1.0 xhci-hcd</vendor>"),
        "{hub}"
    );
    assert_eq!(
        d.xml("usb_1_1_1_0").unwrap(),
        "<device>
  <name>usb_1_1_1_0</name>
  <path>/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0</path>
  <parent>usb_1_1</parent>
  <driver>
    <name>usb-storage</name>
  </driver>
  <capability type='usb'>
    <number>0</number>
    <class>8</class>
    <subclass>6</subclass>
    <protocol>80</protocol>
  </capability>
</device>
"
    );
    assert_eq!(
        d.xml("scsi_host5").unwrap(),
        "<device>
  <name>scsi_host5</name>
  <path>/sys/devices/pci0000:00/0000:00:1f.2/host5</path>
  <parent>pci_0000_00_1f_2</parent>
  <capability type='scsi_host'>
    <host>5</host>
    <unique_id>6</unique_id>
    <capability type='fc_host'>
      <wwnn>20000000c9848140</wwnn>
      <wwpn>10000000c9848140</wwpn>
      <fabric_wwn>2002000573de9a81</fabric_wwn>
    </capability>
    <capability type='vport_ops'>
      <max_vports>127</max_vports>
      <vports>0</vports>
    </capability>
  </capability>
</device>
"
    );
    let host2 = d.xml("scsi_host2").unwrap();
    assert!(
        host2.contains("<host>2</host>\n    <unique_id>1</unique_id>\n  </capability>"),
        "{host2}"
    );
    let target = d.xml("scsi_target2_0_0").unwrap();
    assert!(
        target.contains("<parent>scsi_host2</parent>\n  <capability type='scsi_target'>\n    <target>target2:0:0</target>\n  </capability>"),
        "{target}"
    );
    assert_eq!(
        d.xml("scsi_2_0_0_0").unwrap(),
        "<device>
  <name>scsi_2_0_0_0</name>
  <path>/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host2/target2:0:0/2:0:0:0</path>
  <parent>scsi_target2_0_0</parent>
  <driver>
    <name>sd</name>
  </driver>
  <capability type='scsi'>
    <host>2</host>
    <bus>0</bus>
    <target>0</target>
    <lun>0</lun>
    <type>disk</type>
  </capability>
</device>
"
    );
    assert_eq!(
        d.xml(SDA).unwrap(),
        "<device>
  <name>block_sda_QEMU_QEMU_HARDDISK_1_0_0</name>
  <path>/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host2/target2:0:0/2:0:0:0/block/sda</path>
  <devnode type='dev'>/dev/sda</devnode>
  <devnode type='link'>/dev/disk/by-id/usb-QEMU_QEMU_HARDDISK_1-0:0</devnode>
  <parent>scsi_2_0_0_0</parent>
  <capability type='storage'>
    <block>/dev/sda</block>
    <bus>usb</bus>
    <drive_type>disk</drive_type>
    <model>QEMU HARDDISK</model>
    <vendor>QEMU</vendor>
    <serial>QEMU_QEMU_HARDDISK_1-0:0</serial>
    <size>1073741824</size>
    <logical_block_size>512</logical_block_size>
    <num_blocks>2097152</num_blocks>
  </capability>
</device>
"
    );
    let cd = d.xml("block_sr0").unwrap();
    assert!(
        cd.contains(
            "<block>/dev/sr0</block>
    <drive_type>cdrom</drive_type>
    <model>QEMU HARDDISK</model>
    <vendor>QEMU</vendor>
    <capability type='removable'>
      <media_available>1</media_available>
      <media_size>2048000</media_size>
      <media_label>Debian</media_label>
      <logical_block_size>2048</logical_block_size>
      <num_blocks>1000</num_blocks>
    </capability>
  </capability>"
        ),
        "{cd}"
    );
    let sg = d.xml("scsi_generic_sg0").unwrap();
    assert!(
        sg.contains("<devnode type='dev'>/dev/sg0</devnode>\n  <parent>scsi_2_0_0_0</parent>\n  <capability type='scsi_generic'>\n    <char>/dev/sg0</char>"),
        "{sg}"
    );
    assert_eq!(
        d.xml("drm_renderD128").unwrap(),
        "<device>
  <name>drm_renderD128</name>
  <path>/sys/devices/pci0000:00/0000:00:02.0/drm/renderD128</path>
  <devnode type='dev'>/dev/dri/renderD128</devnode>
  <parent>pci_0000_00_02_0</parent>
  <capability type='drm'>
    <type>render</type>
  </capability>
</device>
"
    );
    assert!(d.xml("drm_card0").unwrap().contains("<type>primary</type>"));
    assert_eq!(
        d.xml(MDEV).unwrap(),
        "<device>
  <name>mdev_4b20d080_1b54_4048_85b3_a6a62d165c01_0000_00_02_0</name>
  <path>/sys/devices/pci0000:00/0000:00:02.0/4b20d080-1b54-4048-85b3-a6a62d165c01</path>
  <parent>pci_0000_00_02_0</parent>
  <driver>
    <name>vfio_mdev</name>
  </driver>
  <capability type='mdev'>
    <type id='i915-GVTg_V5_4'/>
    <uuid>4b20d080-1b54-4048-85b3-a6a62d165c01</uuid>
    <parent_addr>0000:00:02.0</parent_addr>
    <iommuGroup number='12'/>
  </capability>
</device>
"
    );
    // The types in the order sysfs lists them, as libvirt reads them.
    let vga = d.xml("pci_0000_00_02_0").unwrap();
    let types = |id: &str, name: &str, n: u32| {
        format!("      <type id='{id}'>\n{name}        <deviceAPI>vfio-pci</deviceAPI>\n        <availableInstances>{n}</availableInstances>\n      </type>\n")
    };
    let v4 = types("i915-GVTg_V5_4", "        <name>GVTg_V5_4</name>\n", 1);
    let v8 = types("i915-GVTg_V5_8", "", 2);
    let listed: Vec<String> = fs::read_dir(t.path().join(VGA).join("mdev_supported_types"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let body = if listed[0].ends_with('4') {
        format!("{v4}{v8}")
    } else {
        format!("{v8}{v4}")
    };
    assert!(
        vga.contains(&format!(
            "    <vendor id='0x1234'/>\n    <capability type='mdev_types'>\n{body}    </capability>\n  </capability>"
        )),
        "{vga}"
    );
    for name in d.names(None).unwrap() {
        let xml = d.xml(&name).unwrap();
        validate(&xml, &name);
        assert_eq!(vireo_xml::NodeDeviceDef::parse(&xml).unwrap().format(), xml);
    }
}

#[test]
fn a_fibre_channel_host_is_found_by_its_names() {
    let t = host();
    let d = NodeDevDriver::open(t.path());
    assert_eq!(
        d.scsi_host_by_wwn("20000000c9848140", "10000000c9848140")
            .unwrap(),
        "scsi_host5"
    );
    // Node and port names the other way round: no such host.
    let e = d
        .scsi_host_by_wwn("10000000c9848140", "20000000c9848140")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Node device not found: no node device with matching wwnn '10000000c9848140' and wwpn '20000000c9848140'"
    );
    assert_eq!(RemoteError::from(e).code, 53);
    // A host whose names cannot be read is no FC host.
    fs::remove_file(t.path().join(HBA).join("host5/fc_host/host5/node_name")).unwrap();
    assert!(d
        .scsi_host_by_wwn("20000000c9848140", "10000000c9848140")
        .is_err());
    assert_eq!(d.caps("scsi_host5").unwrap(), ["scsi_host"]);
    let xml = d.xml("scsi_host5").unwrap();
    assert!(
        !xml.contains("fc_host") && !xml.contains("vport_ops"),
        "{xml}"
    );
}

#[test]
fn a_device_not_yet_known_to_udev_is_named_without_it() {
    let t = host();
    let d = NodeDevDriver::open(t.path());
    fs::remove_file(t.path().join("run/udev/data/b8:0")).unwrap();
    // Without udev's ID_TYPE a SCSI disk has no kind libvirt knows: left out.
    assert!(!d.names(Some("storage")).unwrap().contains(&SDA.to_string()));
    // A virtio disk is known by its name.
    let vda = "sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda";
    device(
        t.path(),
        vda,
        "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n",
        &["sys/class/block"],
    );
    file(t.path(), &format!("{vda}/size"), "8\n");
    file(
        t.path(),
        &format!("{vda}/queue/logical_block_size"),
        "4096\n",
    );
    assert_eq!(
        d.names(Some("storage")).unwrap(),
        ["block_sr0", "block_vda"]
    );
    let xml = d.xml("block_vda").unwrap();
    assert!(
        xml.contains("<parent>pci_0000_00_02_0</parent>\n  <capability type='storage'>\n    <block>/dev/vda</block>\n    <drive_type>disk</drive_type>\n    <size>32768</size>\n    <logical_block_size>4096</logical_block_size>\n    <num_blocks>8</num_blocks>"),
        "{xml}"
    );
}
