use std::path::PathBuf;

use vireo_xml::{Domain, Hostdev};

use super::*;
use crate::caps::{Machine, QemuCaps};
use crate::cmdline::{build, check, LaunchConfig};
use crate::pci::Family;

fn caps() -> QemuCaps {
    let m = |name: &str, canonical: Option<&str>| Machine {
        name: name.into(),
        canonical: canonical.map(Into::into),
        max_cpus: 255,
    };
    QemuCaps {
        emulator: "/usr/bin/qemu-system-x86_64".into(),
        version: 7_002_000,
        machines: vec![m("pc", Some("pc-i440fx-7.2")), m("q35", Some("pc-q35-7.2"))],
        kvm: true,
    }
}

fn domain(machine: &str, devices: &str) -> Domain {
    let xml = format!(
        "<domain type='kvm'><name>h</name><uuid>11111111-2222-3333-4444-555555555555</uuid>\
         <memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='{machine}'>hvm</type></os>\
         <devices>{devices}</devices></domain>"
    );
    Domain::parse_kept(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"))
}

fn cfg(usb: Option<Vec<i32>>) -> LaunchConfig {
    LaunchConfig {
        monitor_fd: 3,
        run_dir: PathBuf::from("/run/vireo/t"),
        secret_fds: Some(Default::default()),
        tap_fds: Some(Vec::new()),
        usb_host_fds: usb,
        sandbox: true,
    }
}

/// The values of every `-device` (and `-add-fd`) argument of the command line.
fn devices(def: &Domain, usb: Option<Vec<i32>>) -> Vec<String> {
    let args = build(def, &caps(), &cfg(usb)).unwrap_or_else(|e| panic!("{e}"));
    args.windows(2)
        .filter(|w| w[0] == "-device" || w[0] == "-add-fd")
        .map(|w| format!("{} {}", w[0], w[1]))
        .collect()
}

fn refusal(def: &Domain) -> String {
    match check(def, &caps()) {
        Ok(()) => panic!("accepted: {}", def.format()),
        Err(e) => e.to_string(),
    }
}

const PCI: &str = "<hostdev mode='subsystem' type='pci' managed='yes'><source>\
                   <address domain='0' bus='6' slot='0x12' function='5'/></source></hostdev>";
const MDEV: &str = "<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source>\
                    <address uuid='53764d0e-85a0-42b4-af5c-2046b460b1dc'/></source></hostdev>";
const USB: &str = "<hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/>\
                   <product id='0xbeef'/></source></hostdev>";

#[test]
fn pci_functions_are_vfio_devices_at_their_places() {
    let def = domain(
        "pc",
        "<hostdev mode='subsystem' type='pci' managed='yes'><driver name='vfio'/><source>\
         <address domain='0' bus='6' slot='0x12' function='5'/></source><boot order='1'/>\
         <rom bar='off'/></hostdev>\
         <hostdev mode='subsystem' type='pci'><source><address bus='6' slot='0x12' \
         function='6'/></source><alias name='ua-nic'/><rom bar='on' file='/r,o.bin'/>\
         <address type='pci' slot='9'/></hostdev>\
         <hostdev mode='subsystem' type='pci'><source><address bus='7'/></source>\
         <rom enabled='no'/></hostdev>\
         <memballoon model='virtio'/>",
    );
    let d = devices(&def, None);
    let vfio: Vec<&String> = d.iter().filter(|a| a.contains("vfio-pci")).collect();
    assert_eq!(
        vfio,
        [
            "-device vfio-pci,host=0000:06:12.5,id=hostdev0,bootindex=1,bus=pci.0,addr=0x2,\
             rombar=0",
            "-device vfio-pci,host=0000:06:12.6,id=ua-nic,bus=pci.0,addr=0x9,rombar=1,\
             romfile=/r,,o.bin",
            "-device vfio-pci,host=0000:07:00.0,id=hostdev2,bus=pci.0,addr=0x3,romfile=",
        ],
        "{d:#?}"
    );
    // Host devices come before the balloon, on the command line and on the bus.
    let pos = |s: &str| d.iter().position(|a| a.contains(s)).unwrap_or(usize::MAX);
    assert!(pos("hostdev2") < pos("virtio-balloon-pci"), "{d:#?}");
    assert!(d
        .iter()
        .any(|a| a.contains("virtio-balloon-pci") && a.contains("addr=0x4")));
}

#[test]
fn pci_places_are_kept_in_the_definition_after_the_disks() {
    // q35: a root port each, after the virtio disk's and before the balloon's.
    let mut def = domain(
        "q35",
        &format!(
            "<memballoon model='virtio'/>{PCI}{MDEV}<disk type='file'><source file='/a'/>\
             <target dev='vda' bus='virtio'/></disk>"
        ),
    );
    crate::pci::assign(&mut def, Family::Q35).unwrap();
    let bus_of = |a: &Option<vireo_xml::Address>| a.as_ref().and_then(|a| a.get_num("bus"));
    let disk = bus_of(&def.devices.disks[0].address);
    let h0 = bus_of(&def.devices.hostdevs[0].address);
    let h1 = bus_of(&def.devices.hostdevs[1].address);
    let balloon = bus_of(&def.devices.memballoon.as_ref().unwrap().address);
    assert!(disk < h0 && h0 < h1 && h1 < balloon, "{}", def.format());
    let ports = def
        .devices
        .controllers
        .iter()
        .filter(|c| c.model.as_deref() == Some("pcie-root-port"))
        .count();
    assert_eq!(ports, 4, "{}", def.format());
    // Placed once: a second assignment changes nothing, and the command line follows it.
    let again = {
        let mut d = def.clone();
        crate::pci::assign(&mut d, Family::Q35).unwrap();
        d
    };
    assert_eq!(again, def);
    let d = devices(&def, None);
    let h0 = h0.unwrap_or_default();
    assert!(
        d.iter().any(
            |a| a.starts_with("-device vfio-pci,host=0000:06:12.5,id=hostdev0,")
                && a.ends_with(&format!("bus=pci.{h0},addr=0x0"))
        ),
        "{d:#?}"
    );
    // An address the definition gives is reserved against the others.
    let def = domain(
        "pc",
        &format!(
            "{}<hostdev mode='subsystem' type='pci'><source><address bus='9'/></source>\
             <address type='pci' slot='2'/></hostdev>",
            PCI.replace("</source>", "</source><address type='pci' slot='2'/>")
        ),
    );
    assert!(
        refusal(&def).contains("is already in use"),
        "{}",
        refusal(&def)
    );
}

#[test]
fn mediated_devices_by_their_sysfs_path() {
    let def = domain(
        "pc",
        &format!(
            "<graphics type='vnc'/>{MDEV}{}",
            MDEV.replace(
                "model='vfio-pci'",
                "model='vfio-pci' display='on' ramfb='on'"
            )
            .replace("b1dc", "b1dd")
        ),
    );
    let d = devices(&def, None);
    let v: Vec<&String> = d.iter().filter(|a| a.contains("sysfsdev")).collect();
    assert_eq!(
        v,
        [
            "-device vfio-pci,id=hostdev0,sysfsdev=/sys/bus/mdev/devices/\
             53764d0e-85a0-42b4-af5c-2046b460b1dc,bus=pci.0,addr=0x2",
            "-device vfio-pci-nohotplug,id=hostdev1,sysfsdev=/sys/bus/mdev/devices/\
             53764d0e-85a0-42b4-af5c-2046b460b1dd,display=on,ramfb=on,bus=pci.0,addr=0x3",
        ],
        "{d:#?}"
    );
    let with = |attrs: &str, more: &str| {
        domain(
            "pc",
            &format!(
                "{more}{}",
                MDEV.replace("model='vfio-pci'", &format!("model='vfio-pci' {attrs}"))
            ),
        )
    };
    let r = refusal(&with("display='on'", ""));
    assert!(r.contains("display='on' needs a <graphics>"), "{r}");
    let r = refusal(&with("ramfb='on'", "<graphics type='vnc'/>"));
    assert!(r.contains("ramfb='on' needs display='on'"), "{r}");
    let def = domain("pc", &MDEV.replace("vfio-pci", "vfio-ccw"));
    let r = refusal(&def);
    assert!(r.contains("model 'vfio-ccw' is for s390 machines"), "{r}");
}

#[test]
fn usb_devices_come_as_descriptors_in_fd_sets() {
    let def = domain(
        "pc",
        &format!(
            "{USB}<hostdev mode='subsystem' type='usb'><source guestReset='uninitialized'>\
             <address bus='1' device='5'/></source><boot order='2'/>\
             <address type='usb' bus='0' port='2'/></hostdev>{PCI}"
        ),
    );
    assert_eq!(
        usb_host_devices(&def)
            .iter()
            .map(|(i, _)| *i)
            .collect::<Vec<_>>(),
        [0, 1]
    );
    let d = devices(&def, Some(vec![40, 41]));
    let usb: Vec<&String> = d
        .iter()
        .filter(|a| a.contains("usb-host") || a.starts_with("-add-fd") || a.contains("uhci"))
        .collect();
    assert_eq!(
        usb,
        [
            "-device piix3-usb-uhci,id=usb,bus=pci.0,addr=0x1.0x2",
            "-add-fd fd=40,set=100,opaque=hostdev0",
            "-device usb-host,hostdevice=/dev/fdset/100,id=hostdev0,bus=usb.0",
            "-add-fd fd=41,set=101,opaque=hostdev1",
            "-device usb-host,hostdevice=/dev/fdset/101,id=hostdev1,bootindex=2,\
             guest-reset=on,guest-resets-all=off,bus=usb.0,port=2",
        ],
        "{d:#?}"
    );
    // Checking needs no descriptor; starting without one is refused.
    check(&def, &caps()).unwrap();
    let e = build(&def, &caps(), &cfg(Some(vec![40]))).unwrap_err();
    assert!(
        e.to_string()
            .contains("<hostdev> USB device 001/005: no descriptor of the host device was passed"),
        "{e}"
    );
    let def = domain("pc", &format!("<controller type='usb' model='none'/>{USB}"));
    assert!(refusal(&def).contains("need a USB controller"));
    let def = domain("pc", &USB.replace("</source>", "</source><rom bar='on'/>"));
    assert!(refusal(&def).contains("<rom> is for PCI devices"));
}

#[test]
fn what_vireo_cannot_honour_is_refused_by_name() {
    let def = domain(
        "pc",
        &PCI.replace("<source>", "<driver name='kvm'/><source>"),
    );
    assert_eq!(
        refusal(&def),
        "unsupported configuration: <hostdev> PCI device 0000:06:12.5: <driver name='kvm'> is \
         not supported (vfio)"
    );
    let def = domain(
        "pc",
        &PCI.replace("</source>", "</source><address type='unassigned'/>"),
    );
    assert!(refusal(&def).contains("address type 'unassigned' is not supported"));
}

#[test]
fn aliases_and_locked_memory() {
    let def = domain(
        "pc",
        &format!(
            "{}{USB}{}",
            PCI.replace("</source>", "</source><alias name='ua-x,y'/>"),
            MDEV.replace("</source>", "</source><alias name='hostdev9'/>")
        ),
    );
    let h = &def.devices.hostdevs;
    assert_eq!(hostdev_alias(&h[0], 0), "hostdev0");
    assert_eq!(hostdev_alias(&h[2], 2), "hostdev2");
    let ua = domain(
        "pc",
        &PCI.replace("</source>", "</source><alias name='ua-gpu'/>"),
    );
    assert_eq!(hostdev_alias(&ua.devices.hostdevs[0], 0), "ua-gpu");
    // 64 MiB of guest memory and 1 GiB for the devices; a hard limit wins.
    assert_eq!(vfio_memlock_kib(&def), Some(65536 + 1048576));
    assert_eq!(vfio_memlock_kib(&domain("pc", USB)), None);
    let mut limited = def.clone();
    limited.memtune = Some(vireo_xml::Memtune {
        hard_limit: Some(vireo_xml::MemSize::kib(500_000)),
        ..Default::default()
    });
    assert_eq!(vfio_memlock_kib(&limited), Some(500_000));
}

#[test]
fn hot_plugged_host_devices_are_device_add_arguments() {
    let one = |xml: &str| -> Hostdev {
        vireo_xml::parse_root(xml, "hostdev").unwrap_or_else(|e| panic!("{e}\n{xml}"))
    };
    let pci = one(&PCI.replace(
        "</source>",
        "</source><boot order='3'/><rom bar='off' file='/r.bin'/>\
         <address type='pci' domain='0' bus='2' slot='0' function='0'/>",
    ));
    assert_eq!(
        hostdev_device(&pci, "hostdev1", None, false).unwrap(),
        serde_json::json!({"driver": "vfio-pci", "host": "0000:06:12.5", "id": "hostdev1",
            "bootindex": 3, "rombar": 0, "romfile": "/r.bin", "bus": "pci.2", "addr": "0x0"})
    );
    let mdev = one(&MDEV.replace("model='vfio-pci'", "model='vfio-pci' display='off'"));
    assert_eq!(
        hostdev_device(&mdev, "ua-m", None, false).unwrap(),
        serde_json::json!({"driver": "vfio-pci", "id": "ua-m", "display": "off",
            "sysfsdev": "/sys/bus/mdev/devices/53764d0e-85a0-42b4-af5c-2046b460b1dc"})
    );
    let usb = one(&USB
        .replace("<source>", "<source guestReset='off'>")
        .replace(
            "</source>",
            "</source><address type='usb' bus='0' port='1.2'/>",
        ));
    assert_eq!(
        hostdev_device(&usb, "hostdev2", Some(102), false).unwrap(),
        serde_json::json!({"driver": "usb-host", "hostdevice": "/dev/fdset/102",
            "id": "hostdev2", "guest-reset": false, "bus": "usb.0", "port": "1.2"})
    );
    // Refused as at start, and what cannot be hot-plugged at all.
    let e = |h: &Hostdev, fdset: Option<u32>, graphics: bool| {
        hostdev_device(h, "x", fdset, graphics)
            .unwrap_err()
            .to_string()
    };
    assert!(e(&usb, None, false).contains("no descriptor of the host device was passed"));
    let ramfb = one(&MDEV.replace(
        "model='vfio-pci'",
        "model='vfio-pci' display='on' ramfb='on'",
    ));
    assert!(e(&ramfb, None, true).contains("ramfb='on' cannot be plugged into a running VM"));
    assert!(e(&ramfb, None, false).contains("display='on' needs a <graphics>"));
    let kvm = one(&PCI.replace("<source>", "<driver name='kvm'/><source>"));
    assert!(e(&kvm, None, false).contains("<driver name='kvm'> is not supported"));
    let unassigned = one(&PCI.replace("</source>", "</source><address type='unassigned'/>"));
    assert!(e(&unassigned, None, false).contains("'unassigned' is not supported"));
}
