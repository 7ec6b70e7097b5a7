#!/usr/bin/python3
"""Prints every node device event as 'nodedev NAME created|deleted|defined|undefined'
(lifecycle) or 'nodedev NAME updated' (update), one per line, until killed.

argv[1] is the URI. Prints 'LISTENING' once registered, so the caller can go on.
"""
import sys

import libvirt

NAMES = {
    libvirt.VIR_NODE_DEVICE_EVENT_CREATED: "created",
    libvirt.VIR_NODE_DEVICE_EVENT_DELETED: "deleted",
    libvirt.VIR_NODE_DEVICE_EVENT_DEFINED: "defined",
    libvirt.VIR_NODE_DEVICE_EVENT_UNDEFINED: "undefined",
}

libvirt.virEventRegisterDefaultImpl()
conn = libvirt.openReadOnly(sys.argv[1])


def lifecycle(_conn, dev, event, _detail, _opaque):
    print("nodedev", dev.name(), NAMES.get(event, event), flush=True)


def update(_conn, dev, _opaque):
    print("nodedev", dev.name(), "updated", flush=True)


conn.nodeDeviceEventRegisterAny(
    None, libvirt.VIR_NODE_DEVICE_EVENT_ID_LIFECYCLE, lifecycle, None
)
conn.nodeDeviceEventRegisterAny(None, libvirt.VIR_NODE_DEVICE_EVENT_ID_UPDATE, update, None)
print("LISTENING", flush=True)
while True:
    libvirt.virEventRunDefaultImpl()
