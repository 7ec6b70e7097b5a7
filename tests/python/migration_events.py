#!/usr/bin/python3
"""Prints a host's domain lifecycle events as 'NAME EVENT DETAIL', its migration
iteration events as 'NAME iteration N' and its job completed events as 'NAME completed
OPERATION downtime|-', one per line, until killed.

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


def completed(_conn, dom, params, _opaque):
    downtime = "downtime" if "downtime" in params else "-"
    print(dom.name(), "completed", params.get("operation"), downtime, flush=True)


conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle, None)
conn.domainEventRegisterAny(
    None, libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED, completed, None)
conn.domainEventRegisterAny(
    None, libvirt.VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION, iteration, None)
print("LISTENING", flush=True)
while True:
    libvirt.virEventRunDefaultImpl()
