"""A UNIX socket guarded by polkit (tests/tests/remote_polkit.rs), run as a test user.

polkit.py open URI [NAME]  open URI read-write (or read-only when URI's socket ends in -ro),
                           print its domains, define a domain called NAME if given;
                           a libvirt error is printed as "error CODE DOMAIN MESSAGE"
polkit.py raw SOCKET       speak the protocol by hand: CONNECT_OPEN before authenticating,
                           AUTH_LIST, AUTH_POLKIT, CONNECT_OPEN again; one line per answer
"""
import socket
import struct
import sys

import libvirt

DOMAIN = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type>hvm</type></os>
</domain>"""


def open_and_list(uri, name):
    # No error handler printing to stderr: the error is printed once, below.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        if uri.endswith("-ro"):
            conn = libvirt.openReadOnly(uri)
        else:
            conn = libvirt.open(uri)
        if name:
            conn.defineXML(DOMAIN.format(name=name))
        names = sorted(d.name() for d in conn.listAllDomains())
        print("domains=" + ",".join(names))
        conn.close()
    except libvirt.libvirtError as e:
        print(f"error {e.get_error_code()} {e.get_error_domain()} {e.get_error_message()}")
        sys.exit(1)


REMOTE_PROGRAM = 0x20008086
CONNECT_OPEN = 1
AUTH_LIST = 66
AUTH_POLKIT = 70


def xdr_string(s):
    b = s.encode()
    return struct.pack(">I", len(b)) + b + b"\0" * (-len(b) % 4)


class Raw:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(60)
        self.s.connect(path)
        self.serial = 0

    def read(self, n):
        out = b""
        while len(out) < n:
            chunk = self.s.recv(n - len(out))
            if not chunk:
                raise EOFError("the daemon closed the connection")
            out += chunk
        return out

    def call(self, proc, payload=b""):
        self.serial += 1
        header = struct.pack(">IIiiIi", REMOTE_PROGRAM, 1, proc, 0, self.serial, 0)
        self.s.sendall(struct.pack(">I", 4 + len(header) + len(payload)) + header + payload)
        (length,) = struct.unpack(">I", self.read(4))
        frame = self.read(length - 4)
        _prog, _vers, rproc, mtype, serial, status = struct.unpack(">IIiiIi", frame[:24])
        assert (rproc, mtype, serial) == (proc, 1, self.serial), (rproc, mtype, serial)
        return status, frame[24:]


def error_line(body):
    code, domain, has_message = struct.unpack(">iiI", body[:12])
    message = ""
    if has_message:
        (n,) = struct.unpack(">I", body[12:16])
        message = body[16 : 16 + n].decode()
    return f"error {code} {domain} {message}"


def raw(path):
    c = Raw(path)
    open_args = struct.pack(">I", 1) + xdr_string("qemu:///system") + struct.pack(">I", 0)

    def show(what, status, body, ok):
        print(what, ok(body) if status == 0 else error_line(body), flush=True)

    status, body = c.call(CONNECT_OPEN, open_args)
    show("open", status, body, lambda _b: "ok")
    status, body = c.call(AUTH_LIST)
    show(
        "auth-list",
        status,
        body,
        lambda b: "ok " + " ".join(str(t) for t in struct.unpack(f">{len(b) // 4 - 1}i", b[4:])),
    )
    status, body = c.call(AUTH_POLKIT)
    show("auth-polkit", status, body, lambda b: f"ok complete={struct.unpack('>i', b)[0]}")
    status, body = c.call(CONNECT_OPEN, open_args)
    show("open", status, body, lambda _b: "ok")


def main():
    what = sys.argv[1]
    if what == "open":
        open_and_list(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    elif what == "raw":
        raw(sys.argv[2])
    else:
        sys.exit(f"unknown command {what}")


if __name__ == "__main__":
    main()
