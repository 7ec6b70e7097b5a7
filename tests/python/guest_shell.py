#!/usr/bin/python3
"""Drives a test guest's shell through the real `virsh console` (in a pseudo-terminal).

argv: URI NAME [--resume|--running] [CMD EXPECT]... With --resume, resumes the (paused)
guest once the console is attached, so nothing it prints is missed; with --running, the
guest was ready before (its ready line is not waited for). Waits for the guest's ready line,
then for each pair types CMD and waits for EXPECT in what follows; leaves with Ctrl-].
Exits 0 on success, printing everything it saw.
"""
import os
import select
import subprocess
import sys
import time

uri, name = sys.argv[1], sys.argv[2]
mode = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] in ("--resume", "--running") else ""
pairs = sys.argv[4:] if mode else sys.argv[3:]
master, slave = os.openpty()
p = subprocess.Popen(["virsh", "-c", uri, "console", name], stdin=slave, stdout=slave,
                     stderr=slave, close_fds=True, start_new_session=True)
os.close(slave)
seen = b""


def state():
    """What the daemon and QEMU say of the guest, for a failure's message."""
    out = []
    for args in (["domstate", "--reason", name],
                 ["qemu-monitor-command", "--hmp", name, "info status"],
                 ["qemu-monitor-command", "--hmp", name, "info cpus"],
                 ["qemu-monitor-command", "--hmp", name, "info chardev"]):
        try:
            r = subprocess.run(["virsh", "-c", uri] + args, capture_output=True, text=True,
                               timeout=30)
        except subprocess.TimeoutExpired:
            out.append(f"$ virsh {' '.join(args)}\n(no answer in 30 s)")
            continue
        out.append(f"$ virsh {' '.join(args)}\n{r.stdout.strip()}{r.stderr.strip()}")
        # Who holds the console's pty open (a second reader would take what it prints).
        for pty in [w.split("pty:", 1)[1] for w in r.stdout.split() if "pty:" in w]:
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    fds = os.listdir(f"/proc/{pid}/fd")
                    held = sum(os.readlink(f"/proc/{pid}/fd/{f}") == pty for f in fds)
                    comm = open(f"/proc/{pid}/comm").read().strip() if held else ""
                except OSError:
                    continue
                if held:
                    out.append(f"{pty} open {held} time(s) in pid {pid} ({comm})")
    return "\n".join(out)


def wait_for(marker, timeout, since=0):
    global seen
    end = time.time() + timeout
    while marker not in seen[since:]:
        left = end - time.time()
        if left <= 0:
            sys.exit(f"timed out waiting for {marker!r}; saw:\n{seen.decode(errors='replace')}"
                     f"\n{state()}")
        r, _, _ = select.select([master], [], [], left)
        if r:
            try:
                seen += os.read(master, 4096)
            except OSError:
                sys.exit(f"console closed; saw:\n{seen.decode(errors='replace')}")


wait_for(b"Escape character is", 20)
if mode == "--resume":
    subprocess.run(["virsh", "-c", uri, "resume", name], check=True, capture_output=True)
if mode != "--running":
    wait_for(b"VIREO-GUEST-READY", 110)
else:
    # The guest was ready long ago: make sure it hears us before the real commands (what
    # is typed while the console is still being connected can be lost).
    for _ in range(40):
        mark = len(seen)
        os.write(master, b"echo SYNC-$((1+1))\r")
        try_until = time.time() + 3
        while b"SYNC-2" not in seen[mark:] and time.time() < try_until:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                seen += os.read(master, 4096)
        if b"SYNC-2" in seen[mark:]:
            break
    else:
        sys.exit(f"the guest does not answer; saw:\n{seen.decode(errors='replace')}\n{state()}")
for cmd, expect in zip(pairs[0::2], pairs[1::2]):
    mark = len(seen)
    os.write(master, cmd.encode() + b"\r")
    wait_for(expect.encode(), 100, mark)
os.write(master, b"\x1d")
try:
    p.wait(timeout=20)
except subprocess.TimeoutExpired:
    p.kill()
    sys.exit("virsh console did not exit on Ctrl-]")
print(seen.decode(errors="replace"))
sys.exit(p.returncode)
