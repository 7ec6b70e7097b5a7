#!/usr/bin/python3
"""python3-libvirt against a Vireo daemon: argv[1] is the read-write URI, argv[2] read-only."""
import sys
import uuid

import libvirt

URI, URI_RO, DATA = sys.argv[1], sys.argv[2], sys.argv[3]

XML = open(f"{DATA}/minimal.xml").read().replace("vec1", "py1").replace(
    "11111111-2222-3333-4444-555555555555", "22222222-3333-4444-5555-666666666666")

conn = libvirt.open(URI)
assert conn.getType() == "QEMU", conn.getType()
assert conn.getLibVersion() >= 9000000
assert conn.getHostname()
assert "<capabilities>" in conn.getCapabilities()
info = conn.getInfo()
assert info[0] == "x86_64" and info[2] >= 1, info
assert conn.getURI() == URI, conn.getURI()
assert conn.isAlive() == 1

assert conn.listAllDomains(0) == []
dom = conn.defineXML(XML)
assert dom.name() == "py1"
assert dom.UUIDString() == "22222222-3333-4444-5555-666666666666"
assert dom.ID() == -1

# a second domain, left without a uuid: the daemon makes one
dom2 = conn.defineXML(XML.replace("py1", "py2").replace(
    "<uuid>22222222-3333-4444-5555-666666666666</uuid>", ""))
assert uuid.UUID(dom2.UUIDString())
assert dom2.UUIDString() != dom.UUIDString()

names = sorted(d.name() for d in conn.listAllDomains(0))
assert names == ["py1", "py2"], names
inactive = libvirt.VIR_CONNECT_LIST_DOMAINS_INACTIVE
active = libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE
assert len(conn.listAllDomains(inactive)) == 2
assert conn.listAllDomains(active) == []
assert len(conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_PERSISTENT)) == 2
assert conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_TRANSIENT) == []
dom.setAutostart(1)
auto = conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_AUTOSTART)
assert [d.name() for d in auto] == ["py1"]
assert [d.name() for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_NO_AUTOSTART)] == ["py2"]
assert conn.numOfDefinedDomains() == 2
assert sorted(conn.listDefinedDomains()) == ["py1", "py2"]
assert conn.numOfDomains() == 0

d = conn.lookupByName("py1")
assert d.UUIDString() == dom.UUIDString()
d = conn.lookupByUUIDString("22222222-3333-4444-5555-666666666666")
assert d.name() == "py1"
d = conn.lookupByUUID(uuid.UUID("22222222-3333-4444-5555-666666666666").bytes)
assert d.name() == "py1"

state, maxmem, mem, ncpu, cputime = d.info()
assert state == libvirt.VIR_DOMAIN_SHUTOFF
assert maxmem == 65536 and mem == 65536 and ncpu == 1 and cputime == 0, d.info()
assert d.state() == [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_UNKNOWN]
assert d.isActive() == 0 and d.isPersistent() == 1
assert d.autostart() == 1
assert d.OSType() == "hvm"
assert d.maxMemory() == 65536
xml = d.XMLDesc(0)
assert "<name>py1</name>" in xml and "22222222-3333-4444-5555-666666666666" in xml

for bad, code in [("<domain", libvirt.VIR_ERR_XML_DETAIL),
                  ("<domain type='qemu'><memory>1</memory><os><type>hvm</type></os></domain>",
                   libvirt.VIR_ERR_XML_ERROR)]:
    try:
        conn.defineXML(bad)
        raise AssertionError("defined bad XML")
    except libvirt.libvirtError as e:
        assert e.get_error_code() == code, (e.get_error_code(), str(e))

# a second definition with the same name but another uuid is refused
try:
    conn.defineXML(XML.replace("22222222-3333-4444-5555-666666666666",
                               "99999999-3333-4444-5555-666666666666"))
    raise AssertionError("duplicate name accepted")
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_OPERATION_FAILED, e.get_error_code()
    assert "already defined" in str(e), str(e)

# ... and so is the same uuid under another name
try:
    conn.defineXML(XML.replace("py1", "py1-renamed"))
    raise AssertionError("duplicate uuid accepted")
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_OPERATION_FAILED, e.get_error_code()
    assert "already exists with uuid" in str(e), str(e)

# elements Vireo does not model are refused by name (never dropped without a word)
try:
    conn.defineXML(XML.replace("py1", "weird").replace("22222222", "55555555").replace(
        "</os>", "</os><frobnicator level='11'/>"))
    raise AssertionError("an unknown element was accepted")
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_CONFIG_UNSUPPORTED, e.get_error_code()
    assert "<frobnicator> in <domain> is not supported" in str(e), str(e)
assert "weird" not in conn.listDefinedDomains()

try:
    conn.lookupByName("no-such")
    raise AssertionError("found a domain that does not exist")
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN
    assert "no-such" in str(e)

# read-only connections can look but not touch
ro = libvirt.openReadOnly(URI_RO)
assert len(ro.listAllDomains(0)) == 2
try:
    ro.defineXML(XML.replace("py1", "py3").replace("22222222", "33333333"))
    raise AssertionError("read-only define accepted")
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_OPERATION_DENIED, e.get_error_code()
ro.close()

# graphics passwords only with the secure flag, and never to read-only clients
gx = conn.defineXML(XML.replace("py1", "gfx").replace("22222222", "44444444").replace(
    "</os>", "</os><devices><graphics type='vnc' port='-1' autoport='yes' passwd='s3cret'/></devices>"))
assert "s3cret" not in gx.XMLDesc(0)
assert "passwd='s3cret'" in gx.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)
ro = libvirt.openReadOnly(URI_RO)
try:
    ro.lookupByName("gfx").XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)
    raise AssertionError("read-only client got the secure XML")
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_OPERATION_DENIED, e.get_error_code()
assert "s3cret" not in ro.lookupByName("gfx").XMLDesc(0)
ro.close()
gx.undefine()

d.undefine()
dom2.undefine()
assert conn.listAllDomains(0) == []
del d, dom, dom2, auto, gx
conn.close()
print("python ok")
