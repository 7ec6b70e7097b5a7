#!/usr/bin/python3
"""Boots the test guest with python-libvirt's console stream attached, then does OP.

argv: URI RO-URI DATA NAME OP, OP one of:
  poweroff  the guest is told on its console to power itself off
  poweroff-polled  the same while another thread asks the domain's state, XML and vCPU
            count without a pause: every answer comes, live or (once the VM ended) from
            the definition, never an error
  reboot    virDomainReboot; the guest must boot again (its ready line comes back)
Prints 'ok OP' on success.
"""
import sys

import libvirt

uri, name, op = sys.argv[1], sys.argv[4], sys.argv[5]
conn = libvirt.open(uri)
dom = conn.lookupByName(name)
dom.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
st = conn.newStream(0)
dom.openConsole(None, st, 0)
dom.resume()
seen = b""


def wait_for(marker, count=1):
    global seen
    while seen.count(marker) < count:
        data = st.recv(4096)
        if not data:
            sys.exit(f"console ended before {marker!r}; saw {seen!r}")
        seen += data


wait_for(b"VIREO-GUEST-READY")
if op == "poweroff-polled":
    import threading

    errors = []
    polls = [0]

    def poll():
        c = libvirt.open(uri)
        d = c.lookupByName(name)
        while True:
            try:
                state = d.info()[0]
                d.XMLDesc(0)
                d.vcpusFlags(0)
            except libvirt.libvirtError as e:
                errors.append(str(e))
                return
            polls[0] += 1
            if state == libvirt.VIR_DOMAIN_SHUTOFF:
                return

    t = threading.Thread(target=poll)
    t.start()
    st.send(b"poweroff\r")
    while st.recv(4096):
        pass
    t.join()
    if errors:
        sys.exit(f"a poll failed after {polls[0]}: {errors[0]}")
    print("polls", polls[0])
elif op == "poweroff":
    st.send(b"poweroff\r")
    # The console ends with the VM. (The guest's last line may not leave its serial port
    # before it powers off: what counts is that the VM ends, which the events say.)
    while st.recv(4096):
        pass
elif op == "reboot":
    dom.reboot(0)
    wait_for(b"VIREO-GUEST-READY", 2)
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING, dom.state()
    st.finish()
else:
    sys.exit(f"unknown op {op}")
print("ok", op, flush=True)
