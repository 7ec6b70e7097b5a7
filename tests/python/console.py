#!/usr/bin/python3
"""Drives the real `virsh console` through a pseudo-terminal (it insists on one).

argv: URI NAME. Waits for the guest's ready line, types a command, waits for its echo,
then leaves with Ctrl-]. Exits 0 on success, printing what it saw.
"""
import os
import select
import subprocess
import sys
import time

uri, name = sys.argv[1], sys.argv[2]
master, slave = os.openpty()
p = subprocess.Popen(["virsh", "-c", uri, "console", name], stdin=slave, stdout=slave,
                     stderr=slave, close_fds=True, start_new_session=True)
os.close(slave)
seen = b""


def wait_for(marker, timeout):
    global seen
    end = time.time() + timeout
    while marker not in seen:
        left = end - time.time()
        if left <= 0:
            sys.exit(f"timed out waiting for {marker!r}; saw:\n{seen.decode(errors='replace')}")
        r, _, _ = select.select([master], [], [], left)
        if r:
            try:
                seen += os.read(master, 4096)
            except OSError:
                sys.exit(f"console closed; saw:\n{seen.decode(errors='replace')}")


wait_for(b"Escape character is", 20)
if len(sys.argv) > 3 and sys.argv[3] == "--resume":
    subprocess.run(["virsh", "-c", uri, "resume", name], check=True, capture_output=True)
wait_for(b"VIREO-GUEST-READY", 120)
os.write(master, b"echo console-$((6*7))-ok\r")
wait_for(b"console-42-ok", 60)
os.write(master, b"\x1d")
try:
    p.wait(timeout=20)
except subprocess.TimeoutExpired:
    p.kill()
    sys.exit("virsh console did not exit on Ctrl-]")
print(seen.decode(errors="replace"))
sys.exit(p.returncode)
