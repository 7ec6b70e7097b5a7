#!/usr/bin/python3
"""The calls OpenStack Nova's libvirt driver makes, in the order its paths make them, against
a real guest: host start-up, spawn, diagnostics, attach and detach of a volume, cold
snapshot (managed save), live snapshot (a shallow block copy), soft and hard reboot, resize, delete.

argv: URI URI_RO DATA_DIR KERNEL INITRD WORKDIR. Prints one line per step; exits 0 when
every step did what Nova expects.

The calls, by path (the libvirt API names):
  start-up  virConnectOpenAuth, virConnectRegisterCloseCallback, virConnectGetLibVersion,
            virConnectGetVersion, virConnectGetType, virConnectGetHostname,
            virConnectGetCapabilities, virNodeGetInfo, virConnectGetDomainCapabilities,
            virConnectGetCPUModelNames, virConnectListAllDomains,
            virConnectDomainEventRegisterAny (lifecycle, device-removed,
            device-removal-failed)
  spawn     virDomainDefineXML (Nova's XML: cputune shares, metadata, sysinfo/smbios, timers, balloon
            period, rng, usb tablet, vnc, serial log), virDomainCreateWithFlags(PAUSED),
            virDomainResume, virDomainGetInfo, virDomainGetID, virDomainGetUUIDString,
            virDomainGetXMLDesc, virDomainIsActive, virDomainGetState
  diagnose  virDomainGetVcpus, virDomainMemoryStats, virDomainBlockStats,
            virDomainGetMetadata
  volume    virDomainAttachDeviceFlags(LIVE|CONFIG), virDomainDetachDeviceFlags(LIVE|CONFIG)
            and the DEVICE_REMOVED event
  snapshot  virDomainManagedSave, virDomainHasManagedSaveImage, virDomainCreateWithFlags
            (restores the saved state)
  live snapshot  virDomainGetXMLDesc(INACTIVE|SECURE), virDomainIsPersistent,
            virDomainUndefineFlags (the running domain made transient), virDomainBlockJobAbort,
            virDomainBlockRebase(COPY|REUSE_EXT|SHALLOW), virDomainGetBlockJobInfo until
            the copy caught up, virDomainBlockJobAbort (the copy kept, not pivoted),
            virDomainDefineXML (persistent again)
  reboot    virDomainShutdown (then virDomainGetInfo until shut off),
            virDomainCreateWithFlags; virDomainDestroy, virDomainCreateWithFlags
  resize    virDomainDestroy, virDomainUndefineFlags(MANAGED_SAVE|NVRAM),
            virDomainDefineXML, virDomainCreateWithFlags
  delete    virDomainDestroy, virDomainUndefineFlags(MANAGED_SAVE|NVRAM),
            virDomainLookupByUUIDString (not found)
"""
import os
import sys
import threading
import time

import libvirt

uri, _uri_ro, _data, kernel, initrd, work = sys.argv[1:7]
NOVA_NS = "http://openstack.org/xmlns/libvirt/nova/1.1"
UUID = "5e7b6a5c-2b0d-4a7e-9a52-0f4a3c1d2e10"
NAME = "instance-00000001"
console_log = os.path.join(work, "console.log")
disk = os.path.join(work, "disk")
volume = os.path.join(work, "volume")


def step(msg):
    print(msg, flush=True)


def domain_xml(memory_kib):
    return f"""<domain type="qemu">
  <uuid>{UUID}</uuid>
  <name>{NAME}</name>
  <memory>{memory_kib}</memory>
  <vcpu>1</vcpu>
  <cputune>
    <shares>1024</shares>
  </cputune>
  <metadata>
    <nova:instance xmlns:nova="{NOVA_NS}">
      <nova:package version="27.1.0"/>
      <nova:name>vm1</nova:name>
      <nova:creationTime>2026-12-01 02:00:00</nova:creationTime>
      <nova:flavor name="m1.tiny">
        <nova:memory>{memory_kib // 1024}</nova:memory>
        <nova:disk>1</nova:disk>
        <nova:swap>0</nova:swap>
        <nova:ephemeral>0</nova:ephemeral>
        <nova:vcpus>1</nova:vcpus>
      </nova:flavor>
      <nova:owner>
        <nova:user uuid="8f2c0a">admin</nova:user>
        <nova:project uuid="1a2b3c">admin</nova:project>
      </nova:owner>
      <nova:root type="image" uuid="3c4d5e"/>
      <nova:ports/>
    </nova:instance>
  </metadata>
  <sysinfo type="smbios">
    <system>
      <entry name="manufacturer">OpenStack Foundation</entry>
      <entry name="product">OpenStack Nova</entry>
      <entry name="version">27.1.0</entry>
      <entry name="serial">{UUID}</entry>
      <entry name="uuid">{UUID}</entry>
      <entry name="family">Virtual Machine</entry>
    </system>
  </sysinfo>
  <os>
    <type machine="q35">hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 quiet</cmdline>
    <smbios mode="sysinfo"/>
  </os>
  <features>
    <acpi/>
    <apic/>
    <vmcoreinfo/>
  </features>
  <clock offset="utc">
    <timer name="pit" tickpolicy="delay"/>
    <timer name="rtc" tickpolicy="catchup"/>
    <timer name="hpet" present="no"/>
  </clock>
  <cpu mode="host-model" match="exact">
    <topology sockets="1" cores="1" threads="1"/>
  </cpu>
  <devices>
    <disk type="file" device="disk">
      <driver name="qemu" type="qcow2" cache="none"/>
      <source file="{disk}"/>
      <target dev="vda" bus="virtio"/>
    </disk>
    <serial type="pty">
      <log file="{console_log}" append="off"/>
    </serial>
    <input type="tablet" bus="usb"/>
    <graphics type="vnc" autoport="yes" listen="127.0.0.1"/>
    <video>
      <model type="virtio"/>
    </video>
    <memballoon model="virtio">
      <stats period="10"/>
    </memballoon>
    <rng model="virtio">
      <backend model="random">/dev/urandom</backend>
    </rng>
    <controller type="usb" index="0"/>
    <controller type="pci" model="pcie-root"/>
{ROOT_PORTS}  </devices>
</domain>"""


# Nova adds `[libvirt] num_pcie_ports` root ports to a q35 guest, so that volumes and ports
# can be plugged in later; deployments set it (here: 10).
ROOT_PORTS = '    <controller type="pci" model="pcie-root-port"/>\n' * 10

VOLUME_XML = f"""<disk type="file" device="disk">
  <driver name="qemu" type="raw" cache="none"/>
  <source file="{volume}"/>
  <target dev="vdb" bus="virtio"/>
  <serial>7d8e9f00-volume</serial>
</disk>"""


def wait(what, check, secs=300):
    end = time.time() + secs
    while not check():
        if time.time() > end:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.1)


def guest_ready():
    """The guest printed its ready line into the serial log (Nova's console log)."""
    try:
        with open(console_log, "rb") as f:
            return b"VIREO-GUEST-READY" in f.read()
    except FileNotFoundError:
        return False


# Events, as Nova's host listens for them.
libvirt.virEventRegisterDefaultImpl()
events = []
removed = threading.Event()


def loop():
    while True:
        libvirt.virEventRunDefaultImpl()


threading.Thread(target=loop, daemon=True).start()


def auth_cb(creds, _opaque):
    return 0


# --- start-up -------------------------------------------------------------------------
conn = libvirt.openAuth(uri, [[libvirt.VIR_CRED_AUTHNAME, libvirt.VIR_CRED_NOECHOPROMPT],
                              auth_cb, None], 0)
conn.registerCloseCallback(lambda *_: None, None)
assert conn.getLibVersion() >= 7_000_000, conn.getLibVersion()
assert conn.getVersion() >= 7_000_000, conn.getVersion()
assert conn.getType() == "QEMU", conn.getType()
assert conn.getHostname()
assert "<capabilities>" in conn.getCapabilities()
assert conn.getInfo()[0] == "x86_64", conn.getInfo()
caps = conn.getDomainCapabilities(None, "x86_64", "q35", "qemu", 0)
assert "<machine>pc-q35-7.2</machine>" in caps, caps
assert "qemu64" in conn.getCPUModelNames("x86_64", 0)
assert conn.listAllDomains(0) == []
conn.domainEventRegisterAny(
    None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
    lambda _c, d, ev, detail, _o: events.append((d.name(), ev, detail)), None)
conn.domainEventRegisterAny(
    None, libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
    lambda _c, d, alias, _o: removed.set(), None)
conn.domainEventRegisterAny(
    None, libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED,
    lambda _c, d, alias, _o: None, None)
step("start-up ok")

# --- spawn ----------------------------------------------------------------------------
dom = conn.defineXML(domain_xml(131072))
dom.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
assert dom.info()[0] == libvirt.VIR_DOMAIN_PAUSED
dom.resume()
state, _, mem, vcpus, _ = dom.info()
assert state == libvirt.VIR_DOMAIN_RUNNING and mem == 131072 and vcpus == 1, dom.info()
assert dom.ID() > 0 and dom.UUIDString() == UUID and dom.isActive()
assert dom.state() == [libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_UNPAUSED]
live = dom.XMLDesc(0)
assert "<entry name='product'>OpenStack Nova</entry>" in live, live
wait("the guest's ready line", guest_ready)
step("spawn ok")

# --- diagnostics ------------------------------------------------------------------------
info, maps = dom.vcpus()
assert len(info) == 1 and info[0][0] == 0 and info[0][1] == libvirt.VIR_VCPU_RUNNING, info
assert len(maps) == 1 and any(maps[0]), maps
assert info[0][2] > 0, info
mem = dom.memoryStats()
assert mem["actual"] == 131072, mem
rd_req, rd_bytes, _, _, _ = dom.blockStats("vda")
assert rd_req >= 0 and rd_bytes >= 0
meta = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, NOVA_NS, 0)
assert "<name>vm1</name>" in meta, meta
step("diagnostics ok")

# --- attach and detach a volume -------------------------------------------------------------
flags = libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG
dom.attachDeviceFlags(VOLUME_XML, flags)
assert volume in dom.XMLDesc(0) and volume in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
dom.detachDeviceFlags(VOLUME_XML, flags)
wait("DEVICE_REMOVED", removed.is_set)
wait("the volume to leave the live XML", lambda: volume not in dom.XMLDesc(0))
assert volume not in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
step("volume ok")

# --- cold snapshot: the memory state is kept while the disk is copied ------------------------
dom.managedSave(0)
assert dom.info()[0] == libvirt.VIR_DOMAIN_SHUTOFF
assert dom.hasManagedSaveImage(0) == 1
dom.createWithFlags(0)
assert dom.info()[0] == libvirt.VIR_DOMAIN_RUNNING
assert dom.state()[1] == libvirt.VIR_DOMAIN_RUNNING_RESTORED, dom.state()
assert dom.hasManagedSaveImage(0) == 0
step("snapshot ok")

# --- live snapshot: the root disk mirrored into a new image while the guest runs ---------
# Nova undefines the domain for the copy (blockRebase wants a transient one) and defines it
# again from the XML it kept.
import subprocess  # noqa: E402

delta = os.path.join(work, "snap.delta")
subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", delta, "64M"], check=True)
kept = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
assert dom.isPersistent() == 1
dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
assert dom.isPersistent() == 0 and dom.isActive() == 1
try:
    dom.blockJobAbort("vda", 0)
except libvirt.libvirtError:
    pass  # Nova aborts first whatever there is; nothing is there
dom.blockRebase("vda", delta, 0,
                libvirt.VIR_DOMAIN_BLOCK_REBASE_COPY
                | libvirt.VIR_DOMAIN_BLOCK_REBASE_REUSE_EXT
                | libvirt.VIR_DOMAIN_BLOCK_REBASE_SHALLOW)


def copied():
    info = dom.blockJobInfo("vda", 0)
    return bool(info) and info["cur"] == info["end"] and info["end"] > 0


wait("the copy to catch up", copied)
dom.blockJobAbort("vda", 0)
assert not dom.blockJobInfo("vda", 0)
dom = conn.defineXML(kept)
assert dom.isPersistent() == 1 and dom.isActive() == 1
assert disk in dom.XMLDesc(0) and delta not in dom.XMLDesc(0)
out = subprocess.run(["qemu-img", "info", "--output=json", "-U", delta], check=True,
                     capture_output=True, text=True).stdout
assert '"format": "qcow2"' in out, out
step("live-snapshot ok")

# --- soft reboot (the guest powers off on ACPI), hard reboot ----------------------------------
dom.shutdown()
wait("the guest to power off", lambda: dom.info()[0] == libvirt.VIR_DOMAIN_SHUTOFF)
os.unlink(console_log)
dom.createWithFlags(0)
wait("the guest's ready line after the reboot", guest_ready)
dom.destroy()
dom.createWithFlags(0)
assert dom.info()[0] == libvirt.VIR_DOMAIN_RUNNING
step("reboot ok")

# --- resize: a new definition with more memory -------------------------------------------
dom.destroy()
dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
dom = conn.defineXML(domain_xml(196608))
dom.createWithFlags(0)
assert dom.info()[1] == 196608, dom.info()
step("resize ok")

# --- delete -------------------------------------------------------------------------------
dom.destroy()
dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
try:
    conn.lookupByUUIDString(UUID)
    sys.exit("the domain is still there")
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN, e
kinds = {(ev, detail) for name, ev, detail in events if name == NAME}
for want in [(libvirt.VIR_DOMAIN_EVENT_DEFINED, 0), (libvirt.VIR_DOMAIN_EVENT_STARTED, 0),
             (libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_SAVED),
             (libvirt.VIR_DOMAIN_EVENT_STARTED, libvirt.VIR_DOMAIN_EVENT_STARTED_RESTORED),
             (libvirt.VIR_DOMAIN_EVENT_UNDEFINED, 0)]:
    assert want in kinds, (want, sorted(kinds))
step("delete ok")
conn.close()
