#!/usr/bin/python3
"""Prints every domain lifecycle event as 'NAME EVENT DETAIL', one per line, until killed.

argv[1] is the URI; with argv[2] 'devices' it prints device events instead, as
'NAME device-added|device-removed|device-removal-failed ALIAS', and metadata changes as
'NAME metadata-change TYPE NSURI' (NSURI '-' for none), and block jobs as
'NAME block-job-2 DISK TYPE STATUS' (by target) and 'NAME block-job PATH TYPE STATUS'
(by image, the older event), the guest agent's coming and going as
'NAME agent-lifecycle STATE REASON', and a memory device's new size as
'NAME memory-size ALIAS KIB'. With argv[2] 'others': reboot, rtc-change, watchdog,
io-error(-reason), graphics, tray-change, pmsuspend, pmwakeup, balloon-change,
block-threshold and tunable events, one line each (see the callbacks). Prints 'LISTENING' once
registered, so the caller can go on.
"""
import sys
import threading

import libvirt

libvirt.virEventRegisterDefaultImpl()
conn = libvirt.open(sys.argv[1])


def cb(_conn, dom, event, detail, _opaque):
    print(dom.name(), event, detail, flush=True)


def device_cb(what):
    def f(_conn, dom, alias, _opaque):
        print(dom.name(), what, alias, flush=True)

    return f


if sys.argv[2:] == ["devices"]:
    for eid, what in [
        (libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_ADDED, "device-added"),
        (libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, "device-removed"),
        (libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED, "device-removal-failed"),
    ]:
        conn.domainEventRegisterAny(None, eid, device_cb(what), None)

    def metadata_cb(_conn, dom, mtype, nsuri, _opaque):
        print(dom.name(), "metadata-change", mtype, nsuri or "-", flush=True)

    conn.domainEventRegisterAny(
        None, libvirt.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, metadata_cb, None)

    def block_cb(what):
        def f(_conn, dom, disk, jtype, status, _opaque):
            print(dom.name(), what, disk, jtype, status, flush=True)

        return f

    conn.domainEventRegisterAny(
        None, libvirt.VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2, block_cb("block-job-2"), None)
    conn.domainEventRegisterAny(
        None, libvirt.VIR_DOMAIN_EVENT_ID_BLOCK_JOB, block_cb("block-job"), None)

    def agent_cb(_conn, dom, state, reason, _opaque):
        print(dom.name(), "agent-lifecycle", state, reason, flush=True)

    conn.domainEventRegisterAny(
        None, libvirt.VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE, agent_cb, None)

    def memory_cb(_conn, dom, alias, size, _opaque):
        print(dom.name(), "memory-size", alias, size, flush=True)

    conn.domainEventRegisterAny(
        None, libvirt.VIR_DOMAIN_EVENT_ID_MEMORY_DEVICE_SIZE_CHANGE, memory_cb, None)
elif sys.argv[2:] == ["others"]:
    def show(*parts):
        print(*parts, flush=True)

    def on(eid, f):
        conn.domainEventRegisterAny(None, eid, f, None)

    on(libvirt.VIR_DOMAIN_EVENT_ID_REBOOT,
       lambda _c, dom, _o: show(dom.name(), "reboot"))
    on(libvirt.VIR_DOMAIN_EVENT_ID_RTC_CHANGE,
       lambda _c, dom, offset, _o: show(dom.name(), "rtc-change", offset))
    on(libvirt.VIR_DOMAIN_EVENT_ID_WATCHDOG,
       lambda _c, dom, action, _o: show(dom.name(), "watchdog", action))
    on(libvirt.VIR_DOMAIN_EVENT_ID_IO_ERROR,
       lambda _c, dom, src, alias, action, _o:
       show(dom.name(), "io-error", src, alias, action))
    on(libvirt.VIR_DOMAIN_EVENT_ID_IO_ERROR_REASON,
       lambda _c, dom, src, alias, action, reason, _o:
       show(dom.name(), "io-error-reason", src, alias, action, reason))
    on(libvirt.VIR_DOMAIN_EVENT_ID_GRAPHICS,
       lambda _c, dom, phase, local, remote, auth, _subject, _o:
       show(dom.name(), "graphics", phase, local["node"], remote["node"], auth))
    on(libvirt.VIR_DOMAIN_EVENT_ID_TRAY_CHANGE,
       lambda _c, dom, alias, reason, _o: show(dom.name(), "tray-change", alias, reason))
    on(libvirt.VIR_DOMAIN_EVENT_ID_PMSUSPEND,
       lambda _c, dom, reason, _o: show(dom.name(), "pmsuspend", reason))
    on(libvirt.VIR_DOMAIN_EVENT_ID_PMWAKEUP,
       lambda _c, dom, reason, _o: show(dom.name(), "pmwakeup", reason))
    on(libvirt.VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE,
       lambda _c, dom, actual, _o: show(dom.name(), "balloon-change", actual))
    on(libvirt.VIR_DOMAIN_EVENT_ID_BLOCK_THRESHOLD,
       lambda _c, dom, dev, path, threshold, excess, _o:
       show(dom.name(), "block-threshold", dev, path, threshold, "excess" if excess else "none"))
    on(libvirt.VIR_DOMAIN_EVENT_ID_TUNABLE,
       lambda _c, dom, params, _o: show(
           dom.name(), "tunable",
           ",".join(f"{k}={v}" for k, v in sorted(params.items()))))
else:
    conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, cb, None)
print("LISTENING", flush=True)
while True:
    libvirt.virEventRunDefaultImpl()
