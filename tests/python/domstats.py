#!/usr/bin/python3
"""getAllDomainStats and domainListGetStats as monitoring tools call them (Prometheus'
libvirt exporter uses a read-only connection and asks for every group).

argv: URI URI_RO RUNNING_NAME INACTIVE_NAME. Prints `NAME FIELD=VALUE` lines of the
read-only all-domains call, then checks a few things and exits 0.
"""
import os
import sys

import libvirt

uri, uri_ro, running, inactive = sys.argv[1:5]
ro = libvirt.openReadOnly(uri_ro)
recs = ro.getAllDomainStats(0, 0)
names = sorted(d.name() for d, _ in recs)
assert names == sorted([running, inactive]), names
for dom, stats in recs:
    for k in sorted(stats):
        print(f"{dom.name()} {k}={stats[k]}")

by = {d.name(): s for d, s in recs}
assert by[running]["state.state"] == libvirt.VIR_DOMAIN_RUNNING, by[running]
assert by[inactive]["state.state"] == libvirt.VIR_DOMAIN_SHUTOFF, by[inactive]
assert by[running]["cpu.time"] > 0
assert by[running]["vcpu.0.time"] > 0
# The run-queue wait, as libvirt reports it, where the host kernel keeps it.
if os.path.exists("/proc/self/schedstat"):
    assert by[running]["vcpu.0.delay"] >= 0, by[running]

# Only the running ones, only two groups.
rw = libvirt.open(uri)
only = rw.getAllDomainStats(
    libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_BLOCK,
    libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_RUNNING)
assert [d.name() for d, _ in only] == [running], only
assert "cpu.time" not in only[0][1] and "block.count" in only[0][1], only

# A list of domains, and a group this daemon does not have, enforced: refused.
dom = rw.lookupByName(running)
one = rw.domainListGetStats([dom], libvirt.VIR_DOMAIN_STATS_BALLOON)
assert one[0][1]["balloon.maximum"] == 131072, one
try:
    rw.domainListGetStats([dom], libvirt.VIR_DOMAIN_STATS_PERF,
                          libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ENFORCE_STATS)
    raise AssertionError("an unsupported group was accepted")
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED, e.get_error_code()

# memoryStats and blockStats straight from the domain.
mem = dom.memoryStats()
assert mem["actual"] == 131072 and mem["rss"] > 0, mem
rd_req, rd_bytes, wr_req, wr_bytes, errs = dom.blockStats("vda")
assert rd_req > 0 and rd_bytes > 0 and errs == -1, (rd_req, rd_bytes, errs)
try:
    dom.blockStats("vdz")
    raise AssertionError("an unknown disk had statistics")
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_INVALID_ARG, e.get_error_code()
off = rw.lookupByName(inactive)
try:
    off.memoryStats()
    raise AssertionError("an inactive domain had memory statistics")
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID, e.get_error_code()
print("DOMSTATS-OK")
