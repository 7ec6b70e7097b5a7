#!/usr/bin/python3
"""Mediated devices through python3-libvirt, on the synthetic tree of tests/src/fakemdev.rs
(parent pci_0000_00_02_0 offering i915-GVTg_V5_4 and i915-GVTg_V5_8): one made and
destroyed, one defined, started, marked to autostart, stopped and undefined; the
listings by state; the refusals (a read-only connection, a type not offered, a UUID in
use) with their error codes. Prints 'OK' at the end."""
import sys

import libvirt

URI, URI_RO = sys.argv[1], sys.argv[2]
conn = libvirt.open(URI)
PARENT = "pci_0000_00_02_0"
U1 = "8b0a1d0c-5d35-4d6e-9f63-0d2ac1b4a001"
U2 = "8b0a1d0c-5d35-4d6e-9f63-0d2ac1b4a002"
N1 = "mdev_" + U1.replace("-", "_") + "_0000_00_02_0"
N2 = "mdev_" + U2.replace("-", "_") + "_0000_00_02_0"


def xml(uuid, type_id="i915-GVTg_V5_8", parent=PARENT):
    return ("<device><parent>%s</parent><capability type='mdev'><type id='%s'/>"
            "<uuid>%s</uuid></capability></device>" % (parent, type_id, uuid))


def names(flags=0):
    return sorted(d.name() for d in conn.listAllDevices(flags))


def refused(call, code, text):
    try:
        call()
    except libvirt.libvirtError as e:
        assert e.get_error_code() == code, (e.get_error_code(), str(e))
        assert text in str(e), str(e)
        return
    raise SystemExit("not refused: " + text)


ACTIVE = libvirt.VIR_CONNECT_LIST_NODE_DEVICES_ACTIVE
INACTIVE = libvirt.VIR_CONNECT_LIST_NODE_DEVICES_INACTIVE
MDEV = libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV

# A transient device.
dev = conn.nodeDeviceCreateXML(xml(U1), 0)
assert dev.name() == N1, dev.name()
assert dev.isActive() == 1 and dev.isPersistent() == 0 and dev.autostart() == 0
assert dev.parent() == PARENT, dev.parent()
assert "<uuid>%s</uuid>" % U1 in dev.XMLDesc(0)
assert names(MDEV) == [N1], names(MDEV)
refused(lambda: conn.nodeDeviceCreateXML(xml(U1), 0),
        libvirt.VIR_ERR_OPERATION_INVALID, "UUID %s is in use" % U1)
refused(lambda: conn.nodeDeviceCreateXML(xml(U2, "nvidia-63"), 0),
        libvirt.VIR_ERR_CONFIG_UNSUPPORTED, "type 'nvidia-63' is not one that")
refused(lambda: conn.nodeDeviceCreateXML(xml(U2, parent="pci_0000_09_00_0"), 0),
        libvirt.VIR_ERR_CONFIG_UNSUPPORTED, "invalid parent device 'pci_0000_09_00_0'")
refused(lambda: dev.setAutostart(1), libvirt.VIR_ERR_OPERATION_INVALID,
        "cannot set autostart for transient device")
ro = libvirt.openReadOnly(URI_RO)
refused(lambda: ro.nodeDeviceCreateXML(xml(U2), 0), libvirt.VIR_ERR_OPERATION_DENIED,
        "read only")
refused(lambda: ro.nodeDeviceLookupByName(N1).destroy(), libvirt.VIR_ERR_OPERATION_DENIED,
        "read only")
dev.destroy()
assert names(MDEV) == [], names(MDEV)

# A persistent one.
dev = conn.nodeDeviceDefineXML(xml(U2, "i915-GVTg_V5_4"), 0)
assert dev.name() == N2, dev.name()
assert dev.isActive() == 0 and dev.isPersistent() == 1
assert names(MDEV | INACTIVE) == [N2] and names(MDEV | ACTIVE) == []
assert N2 in names(0) and N2 not in names(ACTIVE)
refused(dev.destroy, libvirt.VIR_ERR_OPERATION_INVALID, "is not active")
dev.setAutostart(1)
assert dev.autostart() == 1
dev.create(0)
assert dev.isActive() == 1 and dev.isPersistent() == 1
assert names(MDEV | ACTIVE) == [N2]
refused(lambda: dev.create(0), libvirt.VIR_ERR_OPERATION_INVALID, "already active")
# Its type has no instance left.
refused(lambda: conn.nodeDeviceCreateXML(xml(U1, "i915-GVTg_V5_4"), 0),
        libvirt.VIR_ERR_OPERATION_INVALID, "no instance of mediated device type")
dev.destroy()
assert dev.isActive() == 0 and names(MDEV | INACTIVE) == [N2]
dev.setAutostart(0)
assert dev.autostart() == 0
dev.undefine(0)
assert names(MDEV | INACTIVE) == [] and names(MDEV) == []
refused(lambda: conn.nodeDeviceLookupByName(N2), libvirt.VIR_ERR_NO_NODE_DEVICE,
        "no node device with matching name")
print("OK")
