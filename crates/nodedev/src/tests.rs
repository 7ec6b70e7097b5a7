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
    t
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

#[test]
fn lists_every_device_computer_first_then_by_name() {
    let t = host();
    let d = NodeDevDriver::open(t.path());
    let all = [
        "computer",
        ETH0,
        LO,
        WLAN0,
        "pci_0000_00_02_0",
        "pci_0000_00_1c_0",
        "pci_0000_01_00_0",
    ];
    assert_eq!(d.names(None).unwrap(), all);
    assert_eq!(
        d.names(Some("pci")).unwrap(),
        ["pci_0000_00_02_0", "pci_0000_00_1c_0", "pci_0000_01_00_0"]
    );
    assert_eq!(d.names(Some("net")).unwrap(), [ETH0, LO, WLAN0]);
    assert_eq!(d.names(Some("system")).unwrap(), ["computer"]);
    assert!(d.names(Some("usb_device")).unwrap().is_empty());
    assert!(d.names(Some("nonsense")).unwrap().is_empty());

    let listed = d.all().unwrap();
    assert_eq!(
        listed.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        all
    );
    assert_eq!(listed[0].1, ["system"]);
    assert_eq!(listed[1].1, ["net"]);
    assert_eq!(listed[6].1, ["pci"]);
    assert_eq!(d.caps("pci_0000_01_00_0").unwrap(), ["pci"]);
    assert_eq!(d.caps(ETH0).unwrap(), ["net"]);
    assert_eq!(d.caps("computer").unwrap(), ["system"]);
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
