#!/usr/bin/python3
"""Migrates a running domain with python-libvirt.

argv: SOURCE_URI DEST_URI NAME MIGRATE_URI MODE, MODE 'p2p' (virDomainMigrateToURI3, the
source daemon drives) or 'managed' (virDomainMigrate3, this client drives both daemons).
Prints 'MIGRATED NAME STATE' (the state on the destination, from its connection) or the
error, and exits 1 on failure.
"""
import sys

import libvirt

src_uri, dst_uri, name, miguri, mode = sys.argv[1:6]
src = libvirt.open(src_uri)
dom = src.lookupByName(name)
params = {
    libvirt.VIR_MIGRATE_PARAM_URI: miguri,
    libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: 0,
}
flags = libvirt.VIR_MIGRATE_LIVE
try:
    if mode == "p2p":
        dom.migrateToURI3(dst_uri, params, flags | libvirt.VIR_MIGRATE_PEER2PEER)
        dst = libvirt.open(dst_uri)
        ddom = dst.lookupByName(name)
    else:
        dst = libvirt.open(dst_uri)
        ddom = dom.migrate3(dst, params, flags)
    state, reason = ddom.state()
    print("MIGRATED", ddom.name(), state, reason, flush=True)
except libvirt.libvirtError as e:
    print("ERROR", e.get_error_code(), e, flush=True)
    sys.exit(1)
