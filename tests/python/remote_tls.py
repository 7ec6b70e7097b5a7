"""python-libvirt over qemu+tls:// (tests/tests/remote_tls.rs).

remote_tls.py list URI   open URI, print its domains and whether the link is secure
remote_tls.py hold URI   open URI, say OPEN, keep it open until a line comes on stdin
"""
import sys

import libvirt


def main():
    _, what, uri = sys.argv
    assert what in ("list", "hold")
    # SASL needs an authentication callback; the credentials come from auth.conf
    # (LIBVIRT_AUTH_FILE), so it has nothing left to fill in.
    def ask(creds, _data):
        return 0 if not creds else -1

    auth = [[libvirt.VIR_CRED_AUTHNAME, libvirt.VIR_CRED_PASSPHRASE], ask, None]
    conn = libvirt.openAuth(uri, auth, 0)
    if what == "hold":
        conn.getLibVersion()
        print("OPEN", flush=True)
        sys.stdin.readline()
        conn.close()
        return
    names = sorted(d.name() for d in conn.listAllDomains())
    print(f"domains={','.join(names)}")
    print(f"secure={conn.isSecure()} encrypted={conn.isEncrypted()}")
    print(f"uri={conn.getURI()} hostname={conn.getHostname()}")
    conn.close()


if __name__ == "__main__":
    main()
