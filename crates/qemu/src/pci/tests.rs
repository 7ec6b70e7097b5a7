use super::*;

fn def(devices: &str, machine: &str) -> Domain {
    Domain::parse(&format!(
        "<domain type='qemu'><name>t</name><memory>65536</memory>\
         <os><type machine='{machine}'>hvm</type></os><devices>{devices}</devices></domain>"
    ))
    .unwrap()
}

fn at(a: &Option<Address>) -> (u32, u32, u32, bool) {
    let (p, multi) = parse_address(a.as_ref().expect("an address"), "")
        .unwrap()
        .unwrap();
    (p.bus, p.slot, p.function, multi)
}

/// virt-install's q35 guest: 14 root ports side by side in slots 1 and 2 (no video), one
/// device per port in libvirt's order (interface, USB, virtio-serial, disk, balloon, rng).
#[test]
fn q35_like_virt_install() {
    let mut ports = String::new();
    for _ in 0..14 {
        ports.push_str("<controller type='pci' model='pcie-root-port'/>");
    }
    let mut d = def(
        &format!(
            "<disk type='file' device='disk'><source file='/x'/><target dev='vda' bus='virtio'/></disk>\
             <controller type='usb' model='qemu-xhci' ports='15'/>\
             <controller type='pci' model='pcie-root'/>{ports}\
             <interface type='user'><model type='virtio'/></interface>\
             <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>\
             <memballoon model='virtio'/><rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>"
        ),
        "pc-q35-7.2",
    );
    assign(&mut d, Family::Q35).unwrap();
    let c = &d.devices.controllers;
    assert_eq!(c[0].index, Some(0)); // usb
    assert_eq!(c[1].index, Some(0)); // pcie-root
    assert!(c[1].address.is_none());
    for (n, port) in c[2..16].iter().enumerate() {
        let i = n as u32 + 1;
        assert_eq!(port.index, Some(i));
        assert_eq!(port.model_name.as_deref(), Some("pcie-root-port"));
        let (bus, slot, f, multi) = at(&port.address);
        assert_eq!(
            (bus, slot, f, multi),
            (0, 1 + n as u32 / 8, n as u32 % 8, n % 8 == 0)
        );
        assert_eq!(
            port.target_attrs,
            vec![
                ("chassis".to_string(), i.to_string()),
                ("port".to_string(), format!("{:#x}", 8 + n))
            ]
        );
    }
    // The virtio-serial controller the channel needs was added.
    assert_eq!(c[16].ctl_type, ControllerType::VirtioSerial);
    assert_eq!(at(&d.devices.interfaces[0].address), (1, 0, 0, false));
    assert_eq!(at(&c[0].address), (2, 0, 0, false));
    assert_eq!(at(&c[16].address), (3, 0, 0, false));
    assert_eq!(at(&d.devices.disks[0].address), (4, 0, 0, false));
    assert_eq!(
        at(&d.devices.memballoon.as_ref().unwrap().address),
        (5, 0, 0, false)
    );
    assert_eq!(at(&d.devices.rngs[0].address), (6, 0, 0, false));

    // Assigning again changes nothing: addresses are stable.
    let again = {
        let mut x = d.clone();
        assign(&mut x, Family::Q35).unwrap();
        x
    };
    assert_eq!(again, d);
}

/// A q35 guest without ports gets one per PCIe device, and a pcie-to-pci-bridge (on a
/// port of its own) for a conventional PCI card; the video card takes slot 1.
#[test]
fn q35_adds_ports_and_a_bridge() {
    let mut d = def(
        "<interface type='user'/>\
         <disk type='file' device='disk'><source file='/x'/><target dev='vda' bus='virtio'/></disk>\
         <video><model type='vga'/></video>",
        "q35",
    );
    assign(&mut d, Family::Q35).unwrap();
    let c = &d.devices.controllers;
    let models: Vec<_> = c.iter().map(|c| (c.index, c.model.as_deref())).collect();
    assert_eq!(
        models,
        vec![
            (Some(0), Some("pcie-root")),
            (Some(1), Some("pcie-root-port")),
            (Some(2), Some("pcie-to-pci-bridge")),
            (Some(3), Some("pcie-root-port")),
        ]
    );
    assert_eq!(at(&d.devices.videos[0].address), (0, 1, 0, false));
    assert_eq!(at(&c[1].address), (0, 2, 0, true));
    assert_eq!(at(&c[2].address), (1, 0, 0, false));
    assert_eq!(c[2].model_name.as_deref(), Some("pcie-pci-bridge"));
    assert_eq!(at(&c[3].address), (0, 2, 1, false));
    // rtl8139 (the default model) on the bridge, the virtio disk on the second port.
    assert_eq!(at(&d.devices.interfaces[0].address), (2, 1, 0, false));
    assert_eq!(at(&d.devices.disks[0].address), (3, 0, 0, false));
}

/// pc: everything on the root bus from slot 3 (PIIX3 at 1, video at 2), USB at 1.2.
#[test]
fn pc_root_bus() {
    let mut d = def(
        "<controller type='usb'/>\
         <interface type='user'><model type='virtio'/></interface>\
         <video><model type='cirrus'/></video><memballoon model='virtio'/>",
        "pc-i440fx-7.2",
    );
    assign(&mut d, Family::Pc).unwrap();
    let c = &d.devices.controllers;
    assert_eq!(c[0].model.as_deref(), Some("piix3-uhci"));
    assert_eq!(at(&c[0].address), (0, 1, 2, false));
    assert_eq!(c[1].model.as_deref(), Some("pci-root"));
    assert_eq!(at(&d.devices.videos[0].address), (0, 2, 0, false));
    assert_eq!(at(&d.devices.interfaces[0].address), (0, 3, 0, false));
    assert_eq!(
        at(&d.devices.memballoon.as_ref().unwrap().address),
        (0, 4, 0, false)
    );
}

#[test]
fn explicit_addresses_are_kept_and_checked() {
    let mut d = def(
        "<controller type='pci' index='0' model='pcie-root'/>\
         <controller type='pci' index='1' model='pcie-root-port'/>\
         <interface type='user'><model type='virtio'/>\
         <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></interface>\
         <memballoon model='virtio'/>",
        "q35",
    );
    assign(&mut d, Family::Q35).unwrap();
    assert_eq!(at(&d.devices.interfaces[0].address), (1, 0, 0, false));
    // The port was taken, so the balloon got a port added for it.
    assert_eq!(
        at(&d.devices.memballoon.as_ref().unwrap().address),
        (2, 0, 0, false)
    );

    let bad = |devices: &str, want: &str| {
        let mut d = def(devices, "q35");
        let before = d.clone();
        let e = assign(&mut d, Family::Q35).unwrap_err();
        assert!(e.contains(want), "{devices}: {e}");
        assert_eq!(d, before, "a refused definition is left as it was");
    };
    bad(
        "<memballoon model='virtio'><address type='pci' bus='0x07' slot='0'/></memballoon>",
        "PCI bus 0x07 does not exist",
    );
    bad(
        "<controller type='pci' index='1' model='pcie-root-port'/>\
         <memballoon model='virtio'><address type='pci' bus='0x01' slot='3'/></memballoon>",
        "slot 0x03 is not usable on PCI bus 0x01",
    );
    bad(
        "<rng model='virtio'><backend model='random'/><address type='pci' slot='4'/></rng>\
         <memballoon model='virtio'><address type='pci' slot='4'/></memballoon>",
        "0x00:0x04.0 is already in use",
    );
    bad(
        "<controller type='pci' index='0' model='pci-root'/>",
        "must be model 'pcie-root'",
    );
    bad(
        "<controller type='pci' index='1' model='dmi-to-pci-bridge'/>",
        "model='dmi-to-pci-bridge'> is not supported",
    );
    let mut pc = def(
        "<controller type='pci' index='1' model='pcie-root-port'/>",
        "pc",
    );
    assert!(assign(&mut pc, Family::Pc)
        .unwrap_err()
        .contains("needs a q35 machine"));
}

#[test]
fn hotplug_takes_a_free_port_and_never_adds_one() {
    let mut d = def(
        "<controller type='pci' index='1' model='pcie-root-port'/>\
         <controller type='pci' index='2' model='pcie-root-port'/>\
         <memballoon model='virtio'/>",
        "q35",
    );
    assign(&mut d, Family::Q35).unwrap();
    let mut t = Topology::of(&d, Family::Q35).unwrap();
    assert_eq!(
        t.place_hotplug(true, "<disk> 'vdb'").unwrap(),
        PciSlot {
            bus: 2,
            slot: 0,
            function: 0
        }
    );
    let e = t.place_hotplug(true, "<disk> 'vdc'").unwrap_err();
    assert!(e.contains("no free PCIe root port"), "{e}");
}

/// Platform devices on q35: ICH9's HD audio at 00:1b.0, conventional PCI devices (the
/// i6300esb watchdog, ivshmem) on a pcie-to-pci-bridge added for them, PCI Express ones
/// (vsock, pvpanic is conventional) as libvirt places them; ISA and USB ones get none.
#[test]
fn platform_devices_on_q35() {
    let mut d = def(
        "<controller type='pci' model='pcie-root'/>\
         <sound model='ich9'/><sound model='usb'/><hub type='usb'/>\
         <watchdog model='i6300esb'/><watchdog model='itco'/>\
         <panic model='isa'/><panic model='pvpanic'/>\
         <shmem name='s'><size unit='M'>4</size></shmem>\
         <vsock model='virtio'/><iommu model='intel'/>",
        "pc-q35-7.2",
    );
    assign(&mut d, Family::Q35).unwrap();
    let dv = &d.devices;
    assert_eq!(at(&dv.sounds[0].address), (0, 0x1b, 0, false));
    assert!(dv.sounds[1].address.is_none());
    assert!(dv.hubs[0].address.is_none());
    assert!(dv.panics[0].address.is_none());
    assert!(dv.watchdogs[1].address.is_none());
    assert!(dv.iommu.as_ref().unwrap().address.is_none());
    // Conventional PCI behind a bridge (bus > 0), the vsock on a root port of its own.
    let (wbus, ..) = at(&dv.watchdogs[0].address);
    let (pbus, ..) = at(&dv.panics[1].address);
    let (sbus, ..) = at(&dv.shmems[0].address);
    assert!(
        wbus > 0 && wbus == pbus && pbus == sbus,
        "{wbus} {pbus} {sbus}"
    );
    let (vbus, vslot, ..) = at(&dv.vsock.as_ref().unwrap().address);
    assert!(vbus > 0 && vslot == 0);
    assert!(dv
        .controllers
        .iter()
        .any(|c| c.model.as_deref() == Some("pcie-to-pci-bridge")));
}
