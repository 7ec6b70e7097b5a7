#!/usr/bin/python3
"""Host interfaces through python3-libvirt, in the daemons' network namespace where the
test made a veth pair vp0/vp1: lists (all the calls and filters), lookups by name and by
MAC, XML, a bridge defined, started, found active, destroyed and undefined, a read-only
connection refused a change, a transaction rolled back. argv[4]: vp0's MAC address."""
import sys

import libvirt

URI, URI_RO, MAC = sys.argv[1], sys.argv[2], sys.argv[4]
conn = libvirt.open(URI)


def names(flags=0):
    return sorted(i.name() for i in conn.listAllInterfaces(flags))


assert names() == ["lo", "vp0", "vp1"], names()
# Nothing is up: lo's state is unknown, the veths are down.
assert names(libvirt.VIR_CONNECT_LIST_INTERFACES_ACTIVE) == [], names(2)
assert names(libvirt.VIR_CONNECT_LIST_INTERFACES_INACTIVE) == ["lo", "vp0", "vp1"]
assert conn.numOfInterfaces() == 0 and conn.listInterfaces() == []
assert conn.numOfDefinedInterfaces() == 3
assert sorted(conn.listDefinedInterfaces()) == ["lo", "vp0", "vp1"]

vp0 = conn.interfaceLookupByName("vp0")
assert vp0.MACString() == MAC, vp0.MACString()
assert conn.interfaceLookupByMACString(MAC.upper()).name() == "vp0"
assert vp0.isActive() == 0
xml = vp0.XMLDesc(0)
assert "<interface type='ethernet' name='vp0'>" in xml, xml
assert "<mac address='%s'/>" % MAC in xml, xml
try:
    conn.interfaceLookupByName("nope0")
    raise SystemExit("nope0 found")
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_NO_INTERFACE, e
    assert "couldn't find interface named 'nope0'" in str(e), e
try:
    conn.interfaceLookupByMACString("52:54:00:00:00:99")
    raise SystemExit("found by an unknown MAC")
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_NO_INTERFACE, e

ro = libvirt.openReadOnly(URI_RO)
assert sorted(i.name() for i in ro.listAllInterfaces(0)) == ["lo", "vp0", "vp1"]
try:
    ro.interfaceDefineXML("<interface type='bridge' name='pbr1'><bridge/></interface>")
    raise SystemExit("read-only define allowed")
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_OPERATION_DENIED, e

br = conn.interfaceDefineXML(
    "<interface type='bridge' name='pbr0'><bridge stp='off'>"
    "<interface type='ethernet' name='vp0'/></bridge></interface>")
assert br.name() == "pbr0" and br.MACString() == "", br.MACString()
assert br.isActive() == 0
assert "pbr0" in names(libvirt.VIR_CONNECT_LIST_INTERFACES_INACTIVE)
br.create(0)
assert br.isActive() == 1
# The port is in its bridge, not in the list; the bridge took its address.
assert names(libvirt.VIR_CONNECT_LIST_INTERFACES_ACTIVE) == ["pbr0"], names(2)
assert conn.interfaceLookupByName("pbr0").MACString() == MAC
try:
    br.create(0)
    raise SystemExit("started twice")
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID, e
br.destroy(0)
assert br.isActive() == 0

conn.changeBegin(0)
try:
    conn.changeBegin(0)
    raise SystemExit("two transactions")
except libvirt.libvirtError as e:
    assert "there is another transaction running" in str(e), e
br.undefine()
assert "pbr0" not in names()
conn.changeRollback(0)
assert "pbr0" in names(), names()
try:
    conn.changeCommit(0)
    raise SystemExit("commit without a transaction")
except libvirt.libvirtError as e:
    assert "no transaction running" in str(e), e
conn.interfaceLookupByName("pbr0").undefine()
assert names() == ["lo", "vp0", "vp1"], names()
print("interfaces ok")
