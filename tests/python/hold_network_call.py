#!/usr/bin/python3
"""Opens argv[1] read-only, makes a network call (whatever its answer), prints READY and
keeps the connection open until its stdin closes."""
import sys

import libvirt

conn = libvirt.openReadOnly(sys.argv[1])
try:
    conn.listAllNetworks(0)
except libvirt.libvirtError as e:
    print("network call answered:", e, file=sys.stderr)
print("READY", flush=True)
sys.stdin.read()
conn.close()
