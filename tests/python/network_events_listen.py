#!/usr/bin/python3
"""Prints every network lifecycle event as 'network NAME defined|undefined|started|stopped',
one per line, until killed.

argv[1] is the URI. Prints 'LISTENING' once registered, so the caller can go on.
"""
import sys

import libvirt

NAMES = {
    libvirt.VIR_NETWORK_EVENT_DEFINED: "defined",
    libvirt.VIR_NETWORK_EVENT_UNDEFINED: "undefined",
    libvirt.VIR_NETWORK_EVENT_STARTED: "started",
    libvirt.VIR_NETWORK_EVENT_STOPPED: "stopped",
}

libvirt.virEventRegisterDefaultImpl()
conn = libvirt.open(sys.argv[1])


def cb(_conn, net, event, _detail, _opaque):
    print("network", net.name(), NAMES.get(event, event), flush=True)


conn.networkEventRegisterAny(None, libvirt.VIR_NETWORK_EVENT_ID_LIFECYCLE, cb, None)
print("LISTENING", flush=True)
while True:
    libvirt.virEventRunDefaultImpl()
