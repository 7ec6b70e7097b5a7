"""python-libvirt over qemu+ssh:// (tests/tests/remote_ssh.rs).

remote_ssh.py start URI XMLFILE  define the domain in XMLFILE and start it paused
remote_ssh.py hold URI           list, wait for a line on stdin, list again: print the error
"""
import sys

import libvirt


def start(uri, xmlfile):
    conn = libvirt.open(uri)
    with open(xmlfile) as f:
        dom = conn.defineXML(f.read())
    dom.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
    state, _ = dom.state()
    names = sorted(d.name() for d in conn.listAllDomains())
    print(f"started {dom.name()} state={state} domains={','.join(names)}")
    print(f"uri={conn.getURI()} type={conn.getType()}")
    conn.close()


def hold(uri):
    conn = libvirt.open(uri)
    names = sorted(d.name() for d in conn.listAllDomains())
    print(f"first {','.join(names)}", flush=True)
    sys.stdin.readline()
    try:
        conn.listAllDomains()
        print("second call worked", flush=True)
    except libvirt.libvirtError as e:
        print(f"error code={e.get_error_code()} {e.get_error_message()}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "start":
        start(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "hold":
        hold(sys.argv[2])
    else:
        sys.exit(f"unknown mode {sys.argv[1]}")
