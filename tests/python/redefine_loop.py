#!/usr/bin/python3
"""Redefines a domain from two files in turn until killed; prints a line per define."""
import sys

import libvirt

conn = libvirt.open(sys.argv[1])
xmls = [open(sys.argv[2]).read(), open(sys.argv[3]).read()]
i = 0
while True:
    try:
        conn.defineXML(xmls[i % 2])
    except libvirt.libvirtError:
        sys.exit(0)
    print(i, flush=True)
    i += 1
