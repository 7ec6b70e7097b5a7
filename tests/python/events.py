#!/usr/bin/python3
"""Lifecycle events for define and undefine reach a python client with libvirt's codes."""
import sys
import threading

import libvirt

URI, DATA = sys.argv[1], sys.argv[3]
XML = open(f"{DATA}/minimal.xml").read().replace("vec1", "ev1")

libvirt.virEventRegisterDefaultImpl()
threading.Thread(target=lambda: [libvirt.virEventRunDefaultImpl() for _ in iter(int, 1)],
                 daemon=True).start()

conn = libvirt.open(URI)
seen = []
cond = threading.Condition()


def cb(_conn, dom, event, detail, _opaque):
    with cond:
        seen.append((dom.name(), event, detail))
        cond.notify_all()


cid = conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, cb, None)
dom = conn.defineXML(XML)
dom.undefine()
with cond:
    cond.wait_for(lambda: len(seen) >= 2, timeout=10)
assert seen == [("ev1", libvirt.VIR_DOMAIN_EVENT_DEFINED, libvirt.VIR_DOMAIN_EVENT_DEFINED_ADDED),
                ("ev1", libvirt.VIR_DOMAIN_EVENT_UNDEFINED,
                 libvirt.VIR_DOMAIN_EVENT_UNDEFINED_REMOVED)], seen
conn.domainEventDeregisterAny(cid)
del dom
conn.close()
print("events ok")
