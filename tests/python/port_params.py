#!/usr/bin/python3
"""Sets a network port's bandwidth parameters and prints them back.

argv: URI, read-only URI, data dir (as every test script gets), then the network, the
port's UUID and FIELD=VALUE pairs (unsigned ints). Prints 'FIELD VALUE' per parameter
after the change, sorted.
"""
import sys

import libvirt

conn = libvirt.open(sys.argv[1])
net = conn.networkLookupByName(sys.argv[4])
port = net.portLookupByUUIDString(sys.argv[5])
params = {}
for pair in sys.argv[6:]:
    k, v = pair.split("=", 1)
    params[k] = int(v)
port.setParameters(params)
for k, v in sorted(port.parameters().items()):
    print(k, v)
