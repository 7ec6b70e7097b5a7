#!/usr/bin/python3
"""libvirt's error codes for the domain calls real tools make, swept call by call.

argv: URI URI_RO DATA RUNNING_NAME INACTIVE_NAME. RUNNING_NAME runs (paused) with a virtio
disk vda; INACTIVE_NAME is defined and shut off. Checks, as libvirt answers them:
  - an unknown flag: VIR_ERR_INVALID_ARG, whatever the domain's state (libvirt checks the
    flags first), and nothing changed;
  - a call that needs a running domain, on the shut-off one: VIR_ERR_OPERATION_INVALID;
  - bad arguments (an unknown disk, a vCPU out of range, bad XML …): their codes;
  - a changing call on the read-only connection: VIR_ERR_OPERATION_DENIED;
  - after all of it: no snapshot, device, save image or definition change left behind.
Prints one line per checked call ('ok NAME') and exits 0, or names each mismatch.
"""
import sys

import libvirt

uri, uri_ro, _data, running, inactive = sys.argv[1:6]
conn = libvirt.open(uri)
ro = libvirt.openReadOnly(uri_ro)
run = conn.lookupByName(running)
off = conn.lookupByName(inactive)
BAD = 1 << 29
DISK = ("<disk type='file' device='disk'><source file='/nonexistent.img'/>"
        "<target dev='vdz' bus='virtio'/></disk>")
SNAP = "<domainsnapshot><name>never</name></domainsnapshot>"
failures = []


def expect(name, code, call):
    libvirt.virResetLastError()
    try:
        r = call()
        # A few bindings answer -1 or None for a failure instead of raising.
        last = libvirt.virGetLastError()
        if r in (-1, None) and last is not None:
            raise libvirt.libvirtError("binding's failure value")
    except libvirt.libvirtError as e:
        if e.get_error_code() == code:
            print("ok", name, flush=True)
            return
        failures.append(f"{name}: code {e.get_error_code()} ({e}), expected {code}")
        return
    except Exception as e:  # the binding itself refused: a mistake of this script
        failures.append(f"{name}: {type(e).__name__}: {e}")
        return
    failures.append(f"{name}: succeeded, expected error {code}")


def state_of(dom):
    return dom.XMLDesc(0), dom.listAllSnapshots(0), dom.hasManagedSaveImage(0)


before = {d.name(): state_of(d) for d in (run, off)}
INVALID = libvirt.VIR_ERR_INVALID_ARG

# Unknown flags, on the running domain (each call's flags are checked before anything).
flag_calls = {
    "XMLDesc": lambda d: d.XMLDesc(BAD),
    "createWithFlags": lambda d: d.createWithFlags(BAD),
    "setMemoryFlags": lambda d: d.setMemoryFlags(65536, BAD),
    "setVcpusFlags": lambda d: d.setVcpusFlags(1, BAD),
    "vcpusFlags": lambda d: d.vcpusFlags(BAD),
    "snapshotCreateXML": lambda d: d.snapshotCreateXML(SNAP, BAD),
    "listAllSnapshots": lambda d: d.listAllSnapshots(BAD),
    "snapshotNum": lambda d: d.snapshotNum(BAD),
    "hasCurrentSnapshot": lambda d: d.hasCurrentSnapshot(BAD),
    "managedSave": lambda d: d.managedSave(BAD),
    "hasManagedSaveImage": lambda d: d.hasManagedSaveImage(BAD),
    "managedSaveRemove": lambda d: d.managedSaveRemove(BAD),
    "saveFlags": lambda d: d.saveFlags("/nonexistent/save", None, BAD),
    "setMetadata": lambda d: d.setMetadata(libvirt.VIR_DOMAIN_METADATA_TITLE, "t", None,
                                           None, BAD),
    "metadata": lambda d: d.metadata(libvirt.VIR_DOMAIN_METADATA_TITLE, None, BAD),
    "schedulerParametersFlags": lambda d: d.schedulerParametersFlags(BAD),
    "setSchedulerParametersFlags": lambda d: d.setSchedulerParametersFlags(
        {"cpu_shares": 512}, BAD),
    "blkioParameters": lambda d: d.blkioParameters(BAD),
    "memoryParameters": lambda d: d.memoryParameters(BAD),
    "pinVcpuFlags": lambda d: d.pinVcpuFlags(0, (True,), BAD),
    "pinEmulator": lambda d: d.pinEmulator((True,), BAD),
    "vcpuPinInfo": lambda d: d.vcpuPinInfo(BAD),
    "emulatorPinInfo": lambda d: d.emulatorPinInfo(BAD),
    "iothreadInfo": lambda d: d.ioThreadInfo(BAD),
    "addIOThread": lambda d: d.addIOThread(7, BAD),
    "attachDeviceFlags": lambda d: d.attachDeviceFlags(DISK, BAD),
    "detachDeviceFlags": lambda d: d.detachDeviceFlags(DISK, BAD),
    "updateDeviceFlags": lambda d: d.updateDeviceFlags(DISK, BAD),
    "blockStatsFlags": lambda d: d.blockStatsFlags("vda", BAD),
    "blockInfo": lambda d: d.blockInfo("vda", BAD),
    "blockJobInfo": lambda d: d.blockJobInfo("vda", BAD),
    "blockPull": lambda d: d.blockPull("vda", 0, BAD),
    "blockCommit": lambda d: d.blockCommit("vda", None, None, 0, BAD),
    "blockRebase": lambda d: d.blockRebase("vda", None, 0, BAD),
    "blockCopy": lambda d: d.blockCopy("vda", "<disk type='file'><source file='/x'/></disk>",
                                       None, BAD),
    "jobStats": lambda d: d.jobStats(BAD),
    "guestInfo": lambda d: d.guestInfo(0, BAD),
    "fsFreeze": lambda d: d.fsFreeze(None, BAD),
    "fsThaw": lambda d: d.fsThaw(None, BAD),
    "getTime": lambda d: d.getTime(BAD),
    "setTime": lambda d: d.setTime({"seconds": 0}, BAD),
    "hostname": lambda d: d.hostname(BAD),
    "setUserPassword": lambda d: d.setUserPassword("root", "x", BAD),
    "fsInfo": lambda d: d.fsInfo(BAD),
    "interfaceAddresses": lambda d: d.interfaceAddresses(0, BAD),
    "PMSuspendForDuration": lambda d: d.pMSuspendForDuration(0, 0, BAD),
    "PMWakeup": lambda d: d.pMWakeup(BAD),
    "setBlockThreshold": lambda d: d.setBlockThreshold("vda", 1, BAD),
    "setMemoryStatsPeriod": lambda d: d.setMemoryStatsPeriod(5, BAD),
    "sendKey": lambda d: d.sendKey(0, 0, [30], 1, BAD),
    "migrateGetMaxSpeed": lambda d: d.migrateGetMaxSpeed(BAD),
    "migrateGetMaxDowntime": lambda d: d.migrateGetMaxDowntime(BAD),
    "getGuestVcpus": lambda d: d.guestVcpus(BAD),
    "undefineFlags": lambda d: d.undefineFlags(BAD),
    "destroyFlags": lambda d: d.destroyFlags(BAD),
    "shutdownFlags": lambda d: d.shutdownFlags(BAD),
    "reboot": lambda d: d.reboot(BAD),
    "reset": lambda d: d.reset(BAD),
    "state": lambda d: d.state(BAD),
}
for name, call in flag_calls.items():
    expect(f"flags {name}", INVALID, lambda: call(run))
# (1 << 29 is a stats flag, NOWAIT.)
expect("flags getAllDomainStats", INVALID, lambda: conn.getAllDomainStats(0, 1 << 20))
expect("flags listAllDomains", INVALID, lambda: conn.listAllDomains(BAD))
expect("flags domainXMLFromNative", libvirt.VIR_ERR_NO_SUPPORT,
       lambda: conn.domainXMLFromNative("qemu-argv", "x", 0))

# Calls that need a running domain, on the shut-off one.
NOT_RUNNING = libvirt.VIR_ERR_OPERATION_INVALID
running_only = {
    "suspend": lambda d: d.suspend(),
    "resume": lambda d: d.resume(),
    "shutdown": lambda d: d.shutdown(),
    "reboot": lambda d: d.reboot(0),
    "reset": lambda d: d.reset(0),
    "destroy": lambda d: d.destroy(),
    "managedSave": lambda d: d.managedSave(0),
    "save": lambda d: d.save("/nonexistent/save"),
    "memoryStats": lambda d: d.memoryStats(),
    "blockStats": lambda d: d.blockStats("vda"),
    "blockJobInfo": lambda d: d.blockJobInfo("vda", 0),
    "blockPull": lambda d: d.blockPull("vda", 0, 0),
    "jobInfo": lambda d: d.jobInfo(),
    "abortJob": lambda d: d.abortJob(),
    "guestInfo": lambda d: d.guestInfo(0, 0),
    "fsFreeze": lambda d: d.fsFreeze(None, 0),
    "getTime": lambda d: d.getTime(0),
    "hostname": lambda d: d.hostname(0),
    "interfaceAddresses": lambda d: d.interfaceAddresses(0, 0),
    "PMSuspendForDuration": lambda d: d.pMSuspendForDuration(0, 0, 0),
    "PMWakeup": lambda d: d.pMWakeup(0),
    "setBlockThreshold": lambda d: d.setBlockThreshold("vda", 1, 0),
    "sendKey": lambda d: d.sendKey(0, 0, [30], 1, 0),
    "vcpus": lambda d: d.vcpus(),
    "pinVcpuFlags live": lambda d: d.pinVcpuFlags(0, (True,), libvirt.VIR_DOMAIN_AFFECT_LIVE),
    "setMemoryFlags live": lambda d: d.setMemoryFlags(65536, libvirt.VIR_DOMAIN_AFFECT_LIVE),
    "attachDeviceFlags live": lambda d: d.attachDeviceFlags(DISK,
                                                            libvirt.VIR_DOMAIN_AFFECT_LIVE),
    "setMemoryStatsPeriod live": lambda d: d.setMemoryStatsPeriod(
        5, libvirt.VIR_DOMAIN_AFFECT_LIVE),
}
for name, call in running_only.items():
    expect(f"shut off {name}", NOT_RUNNING, lambda: call(off))
expect("running create", NOT_RUNNING, lambda: run.create())
expect("live snapshot of a shut-off domain", libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
       lambda: off.snapshotCreateXML(SNAP, libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_LIVE))

# Bad arguments, on the running domain.
expect("unknown disk blockStats", INVALID, lambda: run.blockStats("vdz"))
expect("unknown disk blockInfo", INVALID, lambda: run.blockInfo("vdz", 0))
expect("unknown disk setBlockThreshold", INVALID, lambda: run.setBlockThreshold("vdz", 1, 0))
expect("vCPU out of range pinVcpu", INVALID,
       lambda: run.pinVcpuFlags(64, (True,), libvirt.VIR_DOMAIN_AFFECT_LIVE))
# Malformed XML is libvirt's XML_DETAIL (libxml2's message), well-formed nonsense XML_ERROR.
expect("bad device XML attach", libvirt.VIR_ERR_XML_DETAIL,
       lambda: run.attachDeviceFlags("<disk", libvirt.VIR_DOMAIN_AFFECT_LIVE))
expect("bad snapshot XML", libvirt.VIR_ERR_XML_DETAIL,
       lambda: run.snapshotCreateXML("<domainsnapshot>", 0))
expect("live and config memory stats period beyond", INVALID,
       lambda: run.setMemoryStatsPeriod(-1, libvirt.VIR_DOMAIN_AFFECT_LIVE))
expect("negative setTime", INVALID,
       lambda: run.setTime({"seconds": 0, "nseconds": 1_000_000_000}, 0))
expect("pm suspend duration", INVALID, lambda: run.pMSuspendForDuration(0, 10, 0))
expect("pm suspend target", INVALID, lambda: run.pMSuspendForDuration(9, 0, 0))
expect("no such snapshot", libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT,
       lambda: run.snapshotLookupByName("nope", 0))

# Changing calls on the read-only connection.
DENIED = libvirt.VIR_ERR_OPERATION_DENIED
rrun = ro.lookupByName(running)
for name, call in {
    "suspend": lambda d: d.suspend(),
    "destroy": lambda d: d.destroy(),
    "setMemoryFlags": lambda d: d.setMemoryFlags(65536, 0),
    "attachDeviceFlags": lambda d: d.attachDeviceFlags(DISK, 0),
    "snapshotCreateXML": lambda d: d.snapshotCreateXML(SNAP, 0),
    "setMetadata": lambda d: d.setMetadata(libvirt.VIR_DOMAIN_METADATA_TITLE, "t", None,
                                           None, 0),
    "managedSave": lambda d: d.managedSave(0),
    "pinVcpuFlags": lambda d: d.pinVcpuFlags(0, (True,), 0),
    "setBlockThreshold": lambda d: d.setBlockThreshold("vda", 1, 0),
    "PMWakeup": lambda d: d.pMWakeup(0),
}.items():
    expect(f"read-only {name}", DENIED, lambda: call(rrun))

# Nothing was made or changed by any of it.
after = {d.name(): state_of(d) for d in (run, off)}
for name in before:
    if before[name] != after[name]:
        failures.append(f"{name} changed: {before[name]} -> {after[name]}")
assert run.isActive() and not off.isActive()

if failures:
    sys.exit("mismatches:\n" + "\n".join(failures))
print("ALL OK", flush=True)
