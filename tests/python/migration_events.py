#!/usr/bin/python3
"""Prints a host's domain lifecycle events as 'NAME EVENT DETAIL' and its migration
iteration events as 'NAME iteration N', one per line, until killed.

argv[1] is the URI. Prints 'LISTENING' once registered.
"""
import sys

import libvirt

libvirt.virEventRegisterDefaultImpl()
conn = libvirt.open(sys.argv[1])


def lifecycle(_conn, dom, event, detail, _opaque):
    print(dom.name(), event, detail, flush=True)


def iteration(_conn, dom, n, _opaque):
    print(dom.name(), "iteration", n, flush=True)


conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle, None)
conn.domainEventRegisterAny(
    None, libvirt.VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION, iteration, None)
print("LISTENING", flush=True)
while True:
    libvirt.virEventRunDefaultImpl()
