#!/usr/bin/python3
"""Storage through python3-libvirt: pool events (lifecycle and refresh), list filters,
volume create/clone/lookups/info, read-only refusals."""
import sys
import threading

import libvirt

URI, URI_RO, ROOT = sys.argv[1], sys.argv[2], sys.argv[4]

libvirt.virEventRegisterDefaultImpl()
threading.Thread(target=lambda: [libvirt.virEventRunDefaultImpl() for _ in iter(int, 1)],
                 daemon=True).start()

conn = libvirt.open(URI)
seen = []
cond = threading.Condition()


def on_life(_conn, pool, event, detail, _opaque):
    with cond:
        seen.append((pool.name(), event))
        cond.notify_all()


def on_refresh(_conn, pool, _opaque):
    with cond:
        seen.append((pool.name(), "refresh"))
        cond.notify_all()


c1 = conn.storagePoolEventRegisterAny(None, libvirt.VIR_STORAGE_POOL_EVENT_ID_LIFECYCLE,
                                      on_life, None)
c2 = conn.storagePoolEventRegisterAny(None, libvirt.VIR_STORAGE_POOL_EVENT_ID_REFRESH,
                                      on_refresh, None)

pool = conn.storagePoolDefineXML(
    f"<pool type='dir'><name>py</name><target><path>{ROOT}/py-pool</path></target></pool>")
pool.build()
pool.create()
pool.refresh()
assert pool.isActive() and pool.isPersistent()
state, cap, alloc, avail = pool.info()
assert state == libvirt.VIR_STORAGE_POOL_RUNNING and cap > 0 and avail > 0, pool.info()

F = libvirt
names = lambda flags: sorted(p.name() for p in conn.listAllStoragePools(flags))
assert names(0) == ["default", "py"], names(0)
assert names(F.VIR_CONNECT_LIST_STORAGE_POOLS_AUTOSTART) == ["default"]
assert names(F.VIR_CONNECT_LIST_STORAGE_POOLS_NO_AUTOSTART) == ["py"]
assert names(F.VIR_CONNECT_LIST_STORAGE_POOLS_DIR) == ["default", "py"]
assert names(F.VIR_CONNECT_LIST_STORAGE_POOLS_LOGICAL) == []
assert names(F.VIR_CONNECT_LIST_STORAGE_POOLS_INACTIVE) == []

vol = pool.createXML("<volume><name>d.qcow2</name><capacity unit='M'>8</capacity>"
                     "<target><format type='qcow2'/></target></volume>",
                     F.VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA)
assert vol.info()[1] == 8 << 20, vol.info()
clone = pool.createXMLFrom("<volume><name>d2.raw</name><target><format type='raw'/></target>"
                           "</volume>", vol, 0)
assert "<format type='raw'/>" in clone.XMLDesc(0)
assert conn.storageVolLookupByPath(clone.path()).name() == "d2.raw"
assert conn.storageVolLookupByKey(vol.key()).name() == "d.qcow2"
assert vol.storagePoolLookupByVolume().name() == "py"
assert sorted(v.name() for v in pool.listAllVolumes()) == ["d.qcow2", "d2.raw"]
assert pool.numOfVolumes() == 2
try:
    pool.storageVolLookupByName("nope")
    raise SystemExit("found a volume that does not exist")
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL, e.get_error_code()
    assert e.get_error_domain() == libvirt.VIR_FROM_STORAGE, e.get_error_domain()

ro = libvirt.openReadOnly(URI_RO)
rp = ro.storagePoolLookupByName("py")
assert len(rp.listAllVolumes()) == 2
for call in (rp.destroy, lambda: rp.storageVolLookupByName("d.qcow2").delete(0),
             lambda: rp.createXML("<volume><name>x</name><capacity>1</capacity></volume>", 0)):
    try:
        call()
        raise SystemExit("a read-only connection changed storage")
    except libvirt.libvirtError as e:
        assert e.get_error_code() == libvirt.VIR_ERR_OPERATION_DENIED, e.get_error_code()
ro.close()

clone.delete(0)
vol.delete(0)
pool.destroy()
pool.delete(0)
pool.undefine()
D = libvirt
want = [("py", D.VIR_STORAGE_POOL_EVENT_DEFINED), ("py", D.VIR_STORAGE_POOL_EVENT_CREATED),
        ("py", D.VIR_STORAGE_POOL_EVENT_STARTED), ("py", "refresh"),
        ("py", D.VIR_STORAGE_POOL_EVENT_STOPPED), ("py", D.VIR_STORAGE_POOL_EVENT_DELETED),
        ("py", D.VIR_STORAGE_POOL_EVENT_UNDEFINED)]
with cond:
    cond.wait_for(lambda: len(seen) >= len(want), timeout=10)
assert seen == want, seen
conn.storagePoolEventDeregisterAny(c1)
conn.storagePoolEventDeregisterAny(c2)
conn.close()
print("storage ok")
