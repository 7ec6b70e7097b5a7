//! USB devices (`usb_device`: a hub, a disk, a keyboard) and their interfaces (`usb`), from
//! `/sys/bus/usb/devices`, as libvirt's udev backend shows them: the bus and device
//! numbers and ids from the kernel's properties (udev's vendor and model names when its
//! database has them, else the device's own strings), an interface's class, subclass and
//! protocol.

use std::path::Path;

use vireo_xml::{Hex, NodeDevCapType, NodeDevUsbCap, NodeDevUsbDeviceCap, NodeDevUsbId};

use crate::props::{parse_num, Props};
use crate::sysfs::Sysfs;

/// Where the USB bus lists its devices and interfaces.
pub(crate) const USB_DEVICES: &str = "/sys/bus/usb/devices";

/// `DEVTYPE` of a device.
pub(crate) const DEVICE: &str = "usb_device";
/// `DEVTYPE` of an interface.
pub(crate) const INTERFACE: &str = "usb_interface";

/// A USB device: its bus and device numbers, product and vendor. A number the kernel does
/// not give is 0, as in libvirt.
pub(crate) fn device_cap(sysfs: &Sysfs, path: &Path, props: &Props) -> NodeDevUsbDeviceCap {
    let attr = |f: &str| sysfs.attr(path, f);
    // udev's usb_id gives the ids; without udev, the device's own files say the same.
    let id = |prop: &str, file: &str| {
        props
            .num(prop, 16)
            .or_else(|| attr(file).and_then(|v| parse_num(&v, 16)))
            .unwrap_or(0)
    };
    let name = |prop: &str, file: &str| {
        props
            .get(prop)
            .map(str::to_string)
            .or_else(|| attr(file))
            .map(|s| s.chars().filter(|c| !c.is_control()).collect::<String>())
            .filter(|s| !s.is_empty())
    };
    NodeDevUsbDeviceCap {
        cap_type: NodeDevCapType::UsbDevice,
        bus: props.num("BUSNUM", 10).unwrap_or(0),
        device: props.num("DEVNUM", 10).unwrap_or(0),
        product: NodeDevUsbId {
            id: Hex(id("ID_MODEL_ID", "idProduct")),
            name: name("ID_MODEL_FROM_DATABASE", "product"),
        },
        vendor: NodeDevUsbId {
            id: Hex(id("ID_VENDOR_ID", "idVendor")),
            name: name("ID_VENDOR_FROM_DATABASE", "manufacturer"),
        },
    }
}

/// An interface of a USB device: its number, class, subclass and protocol (hexadecimal
/// in sysfs, decimal in the XML).
pub(crate) fn interface_cap(sysfs: &Sysfs, path: &Path) -> NodeDevUsbCap {
    let num = |f: &str| {
        sysfs
            .attr(path, f)
            .and_then(|v| parse_num(&v, 16))
            .unwrap_or(0)
    };
    NodeDevUsbCap {
        cap_type: NodeDevCapType::Usb,
        number: num("bInterfaceNumber"),
        class: num("bInterfaceClass"),
        subclass: num("bInterfaceSubClass"),
        protocol: num("bInterfaceProtocol"),
        description: None,
    }
}
