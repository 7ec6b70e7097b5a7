#!/usr/bin/python3
"""A VNC client that says hello and leaves: argv HOST PORT. Does the RFB 3.8 handshake
with security type None, sends ClientInit, reads ServerInit (so QEMU reports the client
connected, then initialized), closes (disconnected) and prints the desktop's name."""
import socket
import struct
import sys


def read(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            sys.exit(f"server closed after {buf!r}")
        buf += chunk
    return buf


with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60) as s:
    version = read(s, 12)
    if not version.startswith(b"RFB "):
        sys.exit(f"not VNC: {version!r}")
    s.sendall(b"RFB 003.008\n")
    types = read(s, read(s, 1)[0])
    if 1 not in types:
        sys.exit(f"no security type None in {list(types)}")
    s.sendall(b"\x01")
    if struct.unpack(">I", read(s, 4))[0] != 0:
        sys.exit("security handshake failed")
    s.sendall(b"\x01")
    header = read(s, 24)
    name = read(s, struct.unpack(">I", header[20:24])[0])
    print("DESKTOP", name.decode(errors="replace"), flush=True)
