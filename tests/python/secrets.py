#!/usr/bin/python3
"""Secrets through python3-libvirt: define, values, lookups, list filters, private values
refused, events (lifecycle and value changed, also for one secret only), undefine."""
import sys
import threading

import libvirt

URI, URI_RO = sys.argv[1], sys.argv[2]

libvirt.virEventRegisterDefaultImpl()
threading.Thread(target=lambda: [libvirt.virEventRunDefaultImpl() for _ in iter(int, 1)],
                 daemon=True).start()

conn = libvirt.open(URI)
seen, one = [], []
cond = threading.Condition()


def on_life(_conn, sec, event, detail, box):
    with cond:
        box.append(("life", sec.UUIDString(), event, detail))
        cond.notify_all()


def on_value(_conn, sec, box):
    with cond:
        box.append(("value", sec.UUIDString()))
        cond.notify_all()


c1 = conn.secretEventRegisterAny(None, libvirt.VIR_SECRET_EVENT_ID_LIFECYCLE, on_life, seen)
c2 = conn.secretEventRegisterAny(None, libvirt.VIR_SECRET_EVENT_ID_VALUE_CHANGED, on_value, seen)

vol = conn.secretDefineXML("<secret private='yes'><description>disk key</description>"
                           "<usage type='volume'><volume>/images/a.img</volume></usage></secret>")
uuid = vol.UUIDString()
# Events for this secret only.
c3 = conn.secretEventRegisterAny(vol, libvirt.VIR_SECRET_EVENT_ID_VALUE_CHANGED, on_value, one)
tls = conn.secretDefineXML("<secret ephemeral='yes'><usage type='tls'><name>web</name></usage>"
                           "</secret>")
vol.setValue(b"\x00binary\xffkey")
tls.setValue(b"tls-pass")

assert vol.usageType() == libvirt.VIR_SECRET_USAGE_TYPE_VOLUME, vol.usageType()
assert vol.usageID() == "/images/a.img"
assert conn.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_TLS, "web").UUIDString() \
    == tls.UUIDString()
assert conn.secretLookupByUUIDString(uuid).usageID() == "/images/a.img"
assert tls.value() == b"tls-pass"
try:
    vol.value()
    raise SystemExit("a private value was returned")
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_INVALID_SECRET, e.get_error_code()
    assert e.get_error_domain() == libvirt.VIR_FROM_SECRET, e.get_error_domain()

# A value larger than libvirt allows (64 KiB) is refused, the old one kept.
try:
    tls.setValue(b"x" * 65537)
    raise SystemExit("an oversized value was taken")
except libvirt.libvirtError:
    pass
assert tls.value() == b"tls-pass"

names = lambda flags: sorted(s.usageID() for s in conn.listAllSecrets(flags))
assert names(0) == ["/images/a.img", "web"], names(0)
assert names(libvirt.VIR_CONNECT_LIST_SECRETS_EPHEMERAL) == ["web"]
assert names(libvirt.VIR_CONNECT_LIST_SECRETS_NO_EPHEMERAL) == ["/images/a.img"]
assert names(libvirt.VIR_CONNECT_LIST_SECRETS_PRIVATE) == ["/images/a.img"]
assert names(libvirt.VIR_CONNECT_LIST_SECRETS_NO_PRIVATE) == ["web"]
assert conn.numOfSecrets() == 2 and sorted(conn.listSecrets()) == sorted([uuid, tls.UUIDString()])
try:
    conn.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_CEPH, "nope")
    raise SystemExit("found a secret that does not exist")
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_NO_SECRET, e.get_error_code()

# Read-only connections see secrets but cannot change them or read values.
ro = libvirt.openReadOnly(URI_RO)
assert len(ro.listAllSecrets()) == 2
for call in (lambda: ro.secretLookupByUUIDString(uuid).setValue(b"x"),
             lambda: ro.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_TLS, "web").value(),
             lambda: ro.secretDefineXML("<secret/>")):
    try:
        call()
        raise SystemExit("a read-only connection changed or read a secret")
    except libvirt.libvirtError as e:
        assert e.get_error_code() == libvirt.VIR_ERR_OPERATION_DENIED, e.get_error_code()
ro.close()

tls.undefine()
vol.undefine()
with cond:
    cond.wait_for(lambda: len(seen) >= 6 and len(one) >= 1, timeout=10)
D, U = libvirt.VIR_SECRET_EVENT_DEFINED, libvirt.VIR_SECRET_EVENT_UNDEFINED
want = [("life", uuid, D, 0), ("life", tls.UUIDString(), D, 0), ("value", uuid),
        ("value", tls.UUIDString()), ("life", tls.UUIDString(), U, 0), ("life", uuid, U, 0)]
assert seen == want, seen
assert one == [("value", uuid)], one
for c in (c1, c2, c3):
    conn.secretEventDeregisterAny(c)
conn.close()
print("secrets ok")
