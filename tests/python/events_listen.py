#!/usr/bin/python3
"""Prints every domain lifecycle event as 'NAME EVENT DETAIL', one per line, until killed.

argv[1] is the URI. Prints 'LISTENING' once registered, so the caller can go on.
"""
import sys
import threading

import libvirt

libvirt.virEventRegisterDefaultImpl()
conn = libvirt.open(sys.argv[1])


def cb(_conn, dom, event, detail, _opaque):
    print(dom.name(), event, detail, flush=True)


conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, cb, None)
print("LISTENING", flush=True)
while True:
    libvirt.virEventRunDefaultImpl()
