use crate::network::tests::validate_schema;
use crate::{Domain, HostdevSource, MdevModel, StartupPolicy, UsbGuestReset, XmlError};

/// A domain whose `<devices>` hold `devices`.
fn domain(devices: &str) -> String {
    format!(
        "<domain type='kvm'><name>h</name><uuid>11111111-2222-3333-4444-555555555555</uuid>\
         <memory unit='KiB'>65536</memory><os><type arch='x86_64' machine='pc'>hvm</type></os>\
         <devices>{devices}</devices></domain>"
    )
}

fn parse(devices: &str) -> Domain {
    let xml = domain(devices);
    Domain::parse_kept(&xml).unwrap_or_else(|e| panic!("{e}\n--- input ---\n{xml}"))
}

fn error(devices: &str) -> String {
    match Domain::parse_kept(&domain(devices)) {
        Ok(d) => panic!("accepted: {}", d.format()),
        Err(e) => e.to_string(),
    }
}

/// The `<hostdev>` elements of a formatted domain, as they are written.
fn hostdevs_of(out: &str) -> String {
    let start = out.find("    <hostdev").unwrap_or(out.len());
    let end = out
        .rfind("</hostdev>\n")
        .map_or(start, |e| e + "</hostdev>\n".len());
    out[start..end].to_string()
}

const PCI: &str = "<hostdev mode='subsystem' type='pci' managed='yes'>
      <driver name='vfio'/>
      <source>
        <address domain='0x0000' bus='0x06' slot='0x12' function='0x5'/>
      </source>
      <boot order='2'/>
      <alias name='ua-gpu'/>
      <rom enabled='yes' bar='off' file='/x.bin'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>
    </hostdev>";

const USB: &str = "<hostdev mode='subsystem' type='usb' managed='no'>
      <source startupPolicy='optional' guestReset='off'>
        <vendor id='0x1234'/>
        <product id='0xbeef'/>
        <address bus='1' device='2'/>
      </source>
      <boot order='3'/>
      <address type='usb' bus='0' port='1'/>
    </hostdev>";

const MDEV: &str =
    "<hostdev mode='subsystem' type='mdev' managed='no' model='vfio-pci' display='on' ramfb='on'>
      <source>
        <address uuid='53764d0e-85a0-42b4-af5c-2046b460b1dc'/>
      </source>
    </hostdev>";

#[test]
fn libvirt_formatted_hostdevs_round_trip_unchanged() {
    let devices = format!("{PCI}{USB}{MDEV}");
    let d = parse(&devices);
    assert_eq!(d.devices.hostdevs.len(), 3);
    let out = d.format();
    // Written as libvirt writes them (its test driver's dumpxml of the same input).
    let want = format!("    {PCI}\n    {USB}\n    {MDEV}\n");
    assert_eq!(hostdevs_of(&out), want, "{out}");
    assert_eq!(Domain::parse(&out).unwrap(), d);
    validate_schema(&out, "domain", "hostdev-all");

    let h = &d.devices.hostdevs;
    assert!(h[0].managed && !h[1].managed);
    assert_eq!(h[0].describe(), "PCI device 0000:06:12.5");
    assert_eq!(d.devices.boot_orders(), vec![2, 3]);
    match &h[0].source {
        HostdevSource::Pci(a) => {
            assert_eq!(a.to_string(), "0000:06:12.5");
            assert_eq!(a.nodedev_name(), "pci_0000_06_12_5");
        }
        other => panic!("{other:?}"),
    }
    match &h[1].source {
        HostdevSource::Usb(u) => {
            assert_eq!(u.startup_policy, Some(StartupPolicy::Optional));
            assert_eq!(u.guest_reset, Some(UsbGuestReset::Off));
            assert_eq!(
                u.address.map(|a| a.dev_path()).as_deref(),
                Some("/dev/bus/usb/001/002")
            );
        }
        other => panic!("{other:?}"),
    }
    match &h[2].source {
        HostdevSource::Mdev(m) => {
            assert_eq!(m.model, MdevModel::VfioPci);
            assert_eq!((m.display, m.ramfb), (Some(true), Some(true)));
            assert_eq!(
                m.sysfs_path(),
                "/sys/bus/mdev/devices/53764d0e-85a0-42b4-af5c-2046b460b1dc"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(h[0].on_guest_pci() && !h[1].on_guest_pci() && h[2].on_guest_pci());
}

#[test]
fn numbers_and_defaults_are_written_as_libvirt_writes_them() {
    // Out of order, decimal, octal and hexadecimal, mode and managed left out.
    let d = parse(
        "<hostdev type='pci'><address type='pci' slot='5'/><source>\
           <address domain='0' bus='6' slot='0x12' function='5'/></source></hostdev>\
         <hostdev type='usb'><source><address bus='0x1f' device='010'/></source></hostdev>\
         <hostdev type='usb'><source><product id='077'/><vendor id='4660'/></source></hostdev>\
         <hostdev type='mdev' model='vfio-pci'><source>\
           <address uuid='53764D0E85a042b4af5c2046b460b1dc'/></source></hostdev>",
    );
    let out = d.format();
    for want in [
        "<hostdev mode='subsystem' type='pci' managed='no'>",
        "<address domain='0x0000' bus='0x06' slot='0x12' function='0x5'/>",
        "<address type='pci' slot='5'/>",
        "<address bus='31' device='8'/>",
        "<vendor id='0x1234'/>\n        <product id='0x003f'/>",
        "<hostdev mode='subsystem' type='mdev' managed='no' model='vfio-pci'>",
        "<address uuid='53764d0e-85a0-42b4-af5c-2046b460b1dc'/>",
    ] {
        assert!(out.contains(want), "{want} missing:\n{out}");
    }
    assert_eq!(Domain::parse(&out).unwrap(), d);
}

#[test]
fn hostdevs_come_after_videos_and_before_redirdevs_and_hubs() {
    let d = parse(&format!(
        "<hub type='usb'/><redirdev bus='usb' type='tcp'><source mode='connect' \
         host='localhost' service='4000'/></redirdev>{USB}<video><model type='vga'/></video>\
         <sound model='ich9'/><watchdog model='i6300esb'/>"
    ));
    let out = d.format();
    let pos = |s: &str| out.find(s).unwrap_or_else(|| panic!("{s} missing: {out}"));
    assert!(pos("<sound") < pos("<video>"));
    assert!(pos("<video>") < pos("<hostdev"));
    assert!(pos("<hostdev") < pos("<redirdev"));
    assert!(pos("<redirdev") < pos("<hub"));
    assert!(pos("<hub") < pos("<watchdog"));
    validate_schema(&out, "domain", "hostdev-order");
}

#[test]
fn bad_sources_are_clear_xml_errors() {
    let pci = |addr: &str| {
        format!("<hostdev mode='subsystem' type='pci'><source><address {addr}/></source></hostdev>")
    };
    let mdev = |uuid: &str| {
        format!(
            "<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source>\
             <address uuid='{uuid}'/></source></hostdev>"
        )
    };
    let cases = [
        (
            pci("domain='0' bus='6' slot='32' function='5'"),
            "XML error: Invalid PCI address slot='0x20', must be <= 0x1F",
        ),
        (
            pci("bus='6' slot='3' function='8'"),
            "XML error: Invalid PCI address function=0x8, must be <= 7",
        ),
        (
            pci("bus='256' slot='3'"),
            "XML error: Invalid PCI address bus='0x100', must be <= 0xFF",
        ),
        (
            pci("domain='0x10000' bus='1'"),
            "XML error: Invalid PCI address domain='0x10000', must be <= 0xFFFF",
        ),
        (
            pci("bus='x' slot='1'"),
            "XML error: invalid value 'x' for attribute 'bus' of <address>: expected a \
             non-negative integer",
        ),
        (
            "<hostdev mode='subsystem' type='pci'><source/></hostdev>".into(),
            "XML error: missing <address> in the <source> of a PCI <hostdev>",
        ),
        (
            "<hostdev mode='subsystem' type='pci'/>".into(),
            "XML error: missing <source> in <hostdev>",
        ),
        (
            mdev("zz"),
            "XML error: invalid value 'zz' for attribute 'uuid' of <address>: expected a UUID",
        ),
        (
            mdev("53764d0e-85a0-42b4-af5c-2046b460b1"),
            "XML error: invalid value '53764d0e-85a0-42b4-af5c-2046b460b1' for attribute \
             'uuid' of <address>: expected a UUID",
        ),
        (
            "<hostdev mode='subsystem' type='mdev'><source><address \
             uuid='53764d0e-85a0-42b4-af5c-2046b460b1dc'/></source></hostdev>"
                .into(),
            "XML error: missing attribute 'model' in <hostdev>",
        ),
        (
            "<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source/></hostdev>".into(),
            "XML error: missing <address> in the <source> of an mdev <hostdev>",
        ),
        (
            "<hostdev mode='subsystem' type='usb'><source/></hostdev>".into(),
            "XML error: a USB <hostdev> needs <vendor> and <product>, or <address bus \
             device>, in its <source>",
        ),
        (
            "<hostdev mode='subsystem' type='usb'><source><vendor id='1'/></source></hostdev>"
                .into(),
            "XML error: missing <product> beside <vendor> in the <source> of a USB <hostdev>",
        ),
        (
            "<hostdev mode='subsystem' type='usb'><source><vendor id='0x12345'/>\
             <product id='1'/></source></hostdev>"
                .into(),
            "XML error: USB vendor id 0x12345 is out of range (0xffff)",
        ),
        (
            "<hostdev mode='subsystem' type='usb'><source><address bus='1'/></source></hostdev>"
                .into(),
            "XML error: missing attribute 'device' in <address>",
        ),
        (
            "<hostdev mode='subsystem' type='usb'><source startupPolicy='bad'>\
             <address bus='1' device='2'/></source></hostdev>"
                .into(),
            "XML error: invalid value 'bad' for attribute 'startupPolicy' of <source>: \
             unknown startupPolicy 'bad'",
        ),
        (
            "<hostdev mode='subsystem' type='bogus'><source/></hostdev>".into(),
            "XML error: invalid value 'bogus' for attribute 'type' of <hostdev>: unknown \
             host device source address type 'bogus'",
        ),
        (
            "<hostdev mode='subsystem' type='pci' model='vfio-pci'><source>\
             <address bus='1'/></source></hostdev>"
                .into(),
            "XML error: attribute 'model' of <hostdev> applies to type='mdev' only",
        ),
        (
            "<hostdev mode='subsystem' type='pci'><driver name='foo'/><source>\
             <address bus='1'/></source></hostdev>"
                .into(),
            "XML error: invalid value 'foo' for attribute 'name' of <driver>: unknown host \
             device driver name 'foo'",
        ),
    ];
    for (dev, want) in cases {
        assert_eq!(error(&dev), want, "{dev}");
    }
}

#[test]
fn guest_addresses_boot_orders_roms_and_duplicates_are_checked() {
    let src = "<source><address bus='6' slot='0x12' function='5'/></source>";
    let pci = |inner: &str| format!("<hostdev mode='subsystem' type='pci'>{src}{inner}</hostdev>");
    let cases = [
        (
            pci("<address type='usb' bus='0' port='1'/>"),
            "XML error: PCI host devices must use 'pci' or 'unassigned' address type",
        ),
        (
            "<hostdev mode='subsystem' type='usb'><source><address bus='1' device='2'/>\
             </source><address type='pci' slot='3'/></hostdev>"
                .into(),
            "XML error: USB host devices must use 'usb' address type",
        ),
        (
            "<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address \
             uuid='53764d0e-85a0-42b4-af5c-2046b460b1dc'/></source><address type='usb' \
             bus='0' port='1'/></hostdev>"
                .into(),
            "XML error: unsupported address type 'usb' with mediated device model 'vfio-pci'",
        ),
        (
            pci("<boot order='0'/>"),
            "XML error: invalid value '0' for attribute 'order' of <boot>: must be greater \
             than zero",
        ),
        (
            format!(
                "{}<disk type='file'><source file='/x'/><target dev='vda' bus='virtio'/>\
                 <boot order='1'/></disk>",
                pci("<boot order='1'/>")
            ),
            "XML error: boot order 1 is already used by another device",
        ),
        (
            pci("<rom enabled='no' bar='on'/>"),
            "unsupported configuration: ROM tuning is not supported when ROM is disabled",
        ),
        (
            format!("{}{}", pci(""), pci("")),
            "XML error: <hostdev> PCI device 0000:06:12.5 is given twice",
        ),
        (
            "<hostdev mode='subsystem' type='usb'><source><vendor id='1'/><product id='2'/>\
             </source></hostdev><hostdev mode='subsystem' type='usb'><source><vendor \
             id='0x1'/><product id='0x2'/></source></hostdev>"
                .into(),
            "XML error: <hostdev> USB device 0001:0002 is given twice",
        ),
    ];
    for (dev, want) in cases {
        assert_eq!(error(&dev), want, "{dev}");
    }
    // The same ids at two different places are two devices.
    parse(
        "<hostdev mode='subsystem' type='usb'><source><vendor id='1'/><product id='2'/>\
         <address bus='1' device='2'/></source></hostdev><hostdev mode='subsystem' \
         type='usb'><source><vendor id='1'/><product id='2'/><address bus='1' device='3'/>\
         </source></hostdev>",
    );
    // A disabled ROM alone, an empty ROM file, an unassigned PCI function.
    let d = parse(&pci("<rom enabled='no'/><address type='unassigned'/>"));
    assert!(!d.devices.hostdevs[0].on_guest_pci());
    let out = d.format();
    assert!(out.contains("<rom enabled='no'/>"), "{out}");
    validate_schema(&out, "domain", "hostdev-unassigned");
    let d = parse(&pci("<rom file=''/>"));
    assert!(d.format().contains("<rom file=''/>"));
}

#[test]
fn other_modes_and_types_are_refused_by_name() {
    let cases = [
        (
            "<hostdev mode='capabilities' type='storage'><source><block>/dev/sda</block>\
             </source></hostdev>",
            "unsupported configuration: <hostdev mode='capabilities' type='storage'> is not \
             supported by Vireo (only mode='subsystem' devices: pci, usb, mdev)",
        ),
        (
            "<hostdev mode='subsystem' type='scsi'><source><adapter name='scsi_host0'/>\
             <address bus='0' target='0' unit='0'/></source></hostdev>",
            "unsupported configuration: <hostdev type='scsi'> is not supported by Vireo yet \
             (pci, usb, mdev)",
        ),
        (
            "<hostdev mode='subsystem' type='scsi_host'><source protocol='vhost' \
             wwpn='naa.5123456789abcde0'/></hostdev>",
            "unsupported configuration: <hostdev type='scsi_host'> is not supported by Vireo \
             yet (pci, usb, mdev)",
        ),
        (
            "<hostdev mode='bogus' type='pci'><source><address bus='1'/></source></hostdev>",
            "XML error: invalid value 'bogus' for attribute 'mode' of <hostdev>: unknown \
             hostdev mode 'bogus'",
        ),
    ];
    for (dev, want) in cases {
        assert_eq!(error(dev), want, "{dev}");
    }
    // What the model does not keep is named, never dropped.
    let e = error(
        "<hostdev mode='subsystem' type='pci'><source writeFiltering='yes'>\
         <address bus='1'/></source></hostdev>",
    );
    assert!(e.contains("attribute 'writeFiltering' of <source>"), "{e}");
    let e = error(
        "<hostdev mode='subsystem' type='pci'><source><address bus='1'/></source>\
         <acpi index='3'/></hostdev>",
    );
    assert!(e.contains("<acpi> in <hostdev>"), "{e}");
    assert!(matches!(
        Domain::parse_kept(&domain(
            "<hostdev mode='subsystem' type='pci'><source><address bus='1'/></source>\
             <boot order='1' loadparm='x'/></hostdev>"
        )),
        Err(XmlError::Unsupported(_))
    ));
}

#[test]
fn a_hostdev_alone_is_read_and_written() {
    let h: crate::Hostdev = crate::parse_root(MDEV, "hostdev").unwrap();
    assert_eq!(
        crate::format_root(&h, "hostdev"),
        format!("{}\n", MDEV.replace("\n    ", "\n"))
    );
    crate::parse_root_kept::<crate::Hostdev>(USB, "hostdev").unwrap();
}
