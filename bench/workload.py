#!/usr/bin/python3
"""The measurements of `bench/compare`, run as the unprivileged benchmark user.

`bench/compare` lays out a private directory (binaries, one home per daemon set), drops its
privileges and runs `workload.py run`, which starts each daemon set in turn (libvirtd in
session mode, monolithic vireod, the modular vireo daemons behind vireo-proxyd), drives it
with python-libvirt, stops it, and writes every raw sample as JSON. Rounds interleave the
daemon sets so that drift of the machine hits all of them alike. `workload.py client` and
`workload.py events` are the helper processes for the four-connection and event rows.

`workload.py net`, run as root, measures the network rows: every daemon set in turn, each
time in a network namespace made for it (`ip netns add`; libvirtd, which runs in system
mode there, also in a mount namespace of its own whose /run, /var, /etc/libvirt, passwd and
group are the run's), so that its bridge, dnsmasq, firewall rules, taps and guests exist
only there; the namespace and every process in it are gone at the end of the block.
`workload.py bare-tap` is the helper that starts bare QEMU on a ready tap inside one.
"""

import argparse
import ctypes
import fcntl
import json
import shutil
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid

import libvirt

WINDOW = 0.1  # seconds per call-rate sample


def now():
    return time.monotonic()


def log(msg):
    print(f"[workload] {msg}", file=sys.stderr, flush=True)


def quiet(_ctx, _err):
    """libvirt prints every error to stderr by default; failures here are expected or raised."""


libvirt.registerErrorHandler(quiet, None)


def domain_xml(name, dom_type):
    return (
        f"<domain type='{dom_type}'><name>{name}</name>"
        "<memory unit='MiB'>64</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64'>hvm</type></os>"
        "<devices><memballoon model='none'/></devices></domain>"
    )


# The network rows' NAT network: a bridge, a dnsmasq (DHCP and DNS) and NAT firewall rules,
# only ever made inside a namespace of the run's own.
NET_NAME = "vbench"
NET_BRIDGE = "vbench0"
NET_SUBNET = "10.123.0.0/24"
NET_XML = (
    f"<network><name>{NET_NAME}</name><forward mode='nat'/>"
    f"<bridge name='{NET_BRIDGE}'/>"
    "<ip address='10.123.0.1' netmask='255.255.255.0'>"
    "<dhcp><range start='10.123.0.100' end='10.123.0.199'/></dhcp></ip></network>"
)
# The NIC model is left to the daemons: rtl8139 for both (libvirt's default on x86), and
# the bare-QEMU floor uses the same.
NIC_MODEL = "rtl8139"


def nic_domain_xml(name, dom_type):
    """domain_xml with one interface on the NAT network."""
    return (
        f"<domain type='{dom_type}'><name>{name}</name>"
        "<memory unit='MiB'>64</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64'>hvm</type></os>"
        f"<devices><interface type='network'><source network='{NET_NAME}'/></interface>"
        "<memballoon model='none'/></devices></domain>"
    )


# ---------------------------------------------------------------------------------------------
# The daemon sets


def make_pki(base):
    """A CA, a server certificate for 127.0.0.1 and a client certificate (openssl, EC
    P-256), the client's in a pkipath directory: returns (server files dir, pkipath)."""
    d = os.path.join(base, "pki")
    client = os.path.join(d, "client")
    os.makedirs(client, exist_ok=True)

    def ossl(*argv):
        subprocess.run(["openssl", *argv], check=True, capture_output=True, cwd=d)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    ossl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "cacert.pem", "-days", "2",
         "-subj", "/CN=bench CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for who, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
                     ("client", "extendedKeyUsage=clientAuth")):
        with open(os.path.join(d, f"{who}.ext"), "w") as f:
            f.write(ext + "\nkeyUsage=digitalSignature,keyEncipherment\n")
        ossl("req", *ec, "-keyout", f"{who}key.pem", "-out", f"{who}.csr", "-subj", f"/CN={who}")
        ossl("x509", "-req", "-in", f"{who}.csr", "-CA", "cacert.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{who}cert.pem", "-days", "2", "-extfile", f"{who}.ext")
    for f in ("cacert.pem", "clientcert.pem", "clientkey.pem"):
        shutil.copy(os.path.join(d, f), os.path.join(client, f))
    return d, client


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tls_conf(pki, port):
    """libvirtd.conf's lines for TLS on 127.0.0.1:port with the bench's certificates."""
    return (f'listen_tls = 1\nlisten_tcp = 0\nlisten_addr = "127.0.0.1"\ntls_port = "{port}"\n'
            f'ca_file = "{pki}/cacert.pem"\ncert_file = "{pki}/servercert.pem"\n'
            f'key_file = "{pki}/serverkey.pem"\n')


class DaemonSet:
    """A set of daemon processes answering one URI."""

    name = ""

    def __init__(self, home, uri, sock):
        self.home = home
        self.uri = uri
        self.sock = sock
        self.procs = []
        # With enable_tls: the same daemons over qemu+tls:// (--listen).
        self.tls_uri = None

    def spawn(self):
        raise NotImplementedError

    def start(self):
        """Starts the daemons cold; returns seconds from exec to the first call's reply."""
        t0 = now()
        self.spawn()
        deadline = t0 + 60
        wait_socket(self.sock, deadline, self.procs)
        while True:
            try:
                c = libvirt.open(self.uri)
                c.getLibVersion()
                took = now() - t0
                c.close()
                break
            except libvirt.libvirtError:
                if now() > deadline:
                    raise
                time.sleep(0.0005)
        self.settle()
        return took

    def settle(self):
        """Waits until every daemon of the set is up (after the first call was timed)."""

    def pids(self):
        return [p.pid for p in self.procs]

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []


class Libvirtd(DaemonSet):
    """libvirtd in session mode, every directory it uses under its own home."""

    name = "libvirtd"

    def __init__(self, base, short="lv"):
        self.base = base
        home = os.path.join(base, short)
        sock = os.path.join(home, "run", "libvirt", "libvirt-sock")
        super().__init__(home, f"qemu+unix:///session?socket={sock}", sock)
        self.env = {
            "HOME": home,
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "XDG_RUNTIME_DIR": os.path.join(home, "run"),
            "XDG_CONFIG_HOME": os.path.join(home, "config"),
            "XDG_CACHE_HOME": os.path.join(home, "cache"),
            "XDG_DATA_HOME": os.path.join(home, "data"),
            "XDG_STATE_HOME": os.path.join(home, "state"),
        }
        for d in ("run", "config", "cache", "data", "state"):
            os.makedirs(os.path.join(home, d), mode=0o700, exist_ok=True)
        self.logf = os.path.join(home, "libvirtd.log")

    def enable_tls(self, pki, client):
        port = free_port()
        os.makedirs(os.path.join(self.home, "config", "libvirt"), exist_ok=True)
        with open(os.path.join(self.home, "config", "libvirt", "libvirtd.conf"), "w") as f:
            f.write(tls_conf(pki, port))
        self.tls_uri = f"qemu+tls://127.0.0.1:{port}/session?pkipath={client}"

    def twin(self):
        """A second session libvirtd on this machine, the migration rows' destination: a
        host UUID of its own, or libvirt refuses to migrate to "the same host"."""
        t = Libvirtd(self.base, "lv2")
        os.makedirs(os.path.join(t.home, "config", "libvirt"), exist_ok=True)
        with open(os.path.join(t.home, "config", "libvirt", "libvirtd.conf"), "w") as f:
            f.write(f'host_uuid = "{uuid.uuid4()}"\n')
        return t

    def pids(self):
        """libvirtd itself: the child of the reaper."""
        out = []
        for p in self.procs:
            with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
                out.extend(int(x) for x in f.read().split())
        return out

    def spawn(self):
        # libvirtd runs QEMU daemonized and, to destroy it, waits until the process is gone,
        # which needs init to reap it. Where PID 1 reaps lazily (containers) that adds
        # seconds, so a prompt reaper stands in for init here, as systemd would be.
        with open(self.logf, "ab") as logf:
            self.procs = [
                subprocess.Popen(
                    ["tini", "-s", "--", "libvirtd"] + (["--listen"] if self.tls_uri else []),
                    env=self.env,
                    cwd=self.home,
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=logf,
                    start_new_session=True,
                )
            ]


class Vireo(DaemonSet):
    """Vireo's daemons under their own --root, told apart by the names they run as."""

    def __init__(self, base, name, short, daemons, bindir, netns=None):
        self.base = base
        self.short = short
        # Short directory names: QEMU's socket paths below must fit in sun_path.
        home = os.path.join(base, short)
        os.makedirs(home, mode=0o700, exist_ok=True)
        sock = os.path.join(home, "run", "vireo", "vireod-sock")
        super().__init__(home, f"qemu+unix:///system?socket={sock}", sock)
        self.name = name
        self.daemons = daemons
        self.bindir = bindir
        # A NetNs to run the daemons in (the network rows), or None.
        self.netns = netns
        self.logf = os.path.join(home, "daemons.log")
        self.notify_path = os.path.join(home, "notify")
        self.notify = None

    def enable_tls(self, pki, client):
        port = free_port()
        etc = os.path.join(self.home, "etc", "vireo")
        os.makedirs(etc, exist_ok=True)
        for d in ("vireod", "vireo-proxyd"):
            with open(os.path.join(etc, f"{d}.conf"), "w") as f:
                f.write(tls_conf(pki, port))
        self.tls_uri = f"qemu+tls://127.0.0.1:{port}/system?pkipath={client}"

    def twin(self):
        """The same daemons under a second root: the migration rows' destination."""
        return Vireo(self.base, self.name, self.short + "2", self.daemons, self.bindir)

    def spawn(self):
        if self.notify is None:
            self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.notify.bind(self.notify_path)
        env = {
            "HOME": self.home,
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "NOTIFY_SOCKET": self.notify_path,
        }
        with open(self.logf, "ab") as logf:
            self.procs = [
                subprocess.Popen(
                    (self.netns.cmd() if self.netns else [])
                    + [os.path.join(self.bindir, d), "--root", self.home]
                    + (["--listen"] if self.tls_uri and d in ("vireod", "vireo-proxyd") else []),
                    env=env,
                    cwd=self.home,
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=logf,
                    start_new_session=True,
                )
                for d in self.daemons
            ]

    def settle(self):
        ready = 0
        self.notify.settimeout(30)
        while ready < len(self.daemons):
            msg = self.notify.recv(4096)
            if b"READY=1" in msg:
                ready += 1


def wait_socket(path, deadline, procs):
    """Returns once something accepts connections on `path`."""
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return
        except OSError:
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"daemon exited with {p.returncode} before listening")
            if now() > deadline:
                raise RuntimeError(f"nothing listens on {path}")
            time.sleep(0.0005)
        finally:
            s.close()


def memory_mib(pids, key):
    """Sum over `pids` of a field of smaps_rollup ("Rss:", "Pss:"), in MiB."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(key):
                    total += int(line.split()[1])
    return total / 1024


# ---------------------------------------------------------------------------------------------
# The measurements


def rate_windows(fn, secs):
    """Calls `fn` for `secs` seconds; returns calls/s for each window of WINDOW seconds."""
    rates = []
    end = now() + secs
    while True:
        w0 = now()
        if w0 >= end:
            return rates
        n = 0
        while True:
            fn()
            n += 1
            t = now()
            if t - w0 >= WINDOW:
                break
        rates.append(n / (t - w0))


def latencies(fn, n):
    """Runs `fn` n times; returns each run's time in ms."""
    out = []
    for _ in range(n):
        t0 = now()
        fn()
        out.append((now() - t0) * 1e3)
    return out


class Clients:
    """Four python processes, one connection each, calling in step."""

    def __init__(self, uri, n):
        self.procs = [
            subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "client", uri],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(n)
        ]
        for p in self.procs:
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("client did not connect")

    def run(self, call, secs):
        start = now() + 0.05
        for p in self.procs:
            p.stdin.write(f"{call} {start} {secs}\n")
            p.stdin.flush()
        counts = None
        for p in self.procs:
            c = json.loads(p.stdout.readline())
            counts = c if counts is None else [a + b for a, b in zip(counts, c)]
        return [n / WINDOW for n in counts]

    def close(self):
        for p in self.procs:
            p.stdin.close()
            p.wait(timeout=20)


def client_main(uri):
    """`workload.py client URI`: one connection; runs the calls the parent asks for."""
    c = libvirt.open(uri)
    print("ready", flush=True)
    for line in sys.stdin:
        call, start, secs = line.split()
        fn = getattr(c, call)
        start, secs = float(start), float(secs)
        windows = round(secs / WINDOW)
        counts = [0] * windows
        while now() < start:
            pass
        while True:
            fn()
            i = int((now() - start) / WINDOW)
            if i >= windows:
                break
            counts[i] += 1
        print(json.dumps(counts), flush=True)
    c.close()


def events_main(uri, n, dom_type):
    """`workload.py events URI N TYPE`: define/undefine N times; ms from call to its event."""
    libvirt.virEventRegisterDefaultImpl()

    def loop():
        while True:
            libvirt.virEventRunDefaultImpl()

    threading.Thread(target=loop, daemon=True).start()
    c = libvirt.open(uri)
    seen = {}
    cond = threading.Condition()

    def on_event(_conn, dom, event, _detail, _opaque):
        t = now()
        with cond:
            seen[(dom.name(), event)] = t
            cond.notify_all()

    cb = c.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_event, None)

    def wait_for(key, t0):
        with cond:
            if not cond.wait_for(lambda: key in seen, timeout=10):
                raise RuntimeError(f"no {key} event")
            return (seen.pop(key) - t0) * 1e3

    out = []
    for i in range(n):
        name = f"bench-ev-{i}"
        t0 = now()
        dom = c.defineXML(domain_xml(name, dom_type))
        out.append(wait_for((name, libvirt.VIR_DOMAIN_EVENT_DEFINED), t0))
        t0 = now()
        dom.undefine()
        out.append(wait_for((name, libvirt.VIR_DOMAIN_EVENT_UNDEFINED), t0))
    c.domainEventDeregisterAny(cb)
    c.close()
    print(json.dumps(out), flush=True)


def bare_qemu(base, kvm, tap_fd=None):
    """QEMU started paused, QMP handshake, `cont`: the floor under any start. Returns ms.
    With `tap_fd`, QEMU also gets that ready tap as its one NIC (`-netdev tap,fd=N`)."""
    path = os.path.join(base, "bare-qmp.sock")
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    # Our connection waits in the backlog until QEMU, which inherits the listener, accepts it.
    cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    cli.connect(path)
    fd = srv.fileno()
    nic = []
    if tap_fd is not None:
        nic = [
            "-netdev",
            f"tap,fd={tap_fd},id=hostnet0",
            "-device",
            f"{NIC_MODEL},netdev=hostnet0,id=net0,mac=52:54:00:12:34:56",
        ]
    t0 = now()
    p = subprocess.Popen(
        [
            "qemu-system-x86_64",
            "-S",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-m",
            "64",
            "-machine",
            "pc",
            "-accel",
            "kvm" if kvm else "tcg",
            "-chardev",
            f"socket,id=mon,fd={fd},server=on,wait=off",
            "-mon",
            "chardev=mon,mode=control",
            *nic,
        ],
        pass_fds=(fd,) if tap_fd is None else (fd, tap_fd),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        f = cli.makefile("rw")
        f.readline()  # greeting

        def execute(cmd):
            f.write(json.dumps({"execute": cmd}) + "\n")
            f.flush()
            while True:
                msg = json.loads(f.readline())
                if "return" in msg:
                    return
                if "error" in msg:
                    raise RuntimeError(f"QMP {cmd}: {msg['error']}")

        execute("qmp_capabilities")
        execute("cont")
        took = (now() - t0) * 1e3
    finally:
        p.kill()
        p.wait()
        cli.close()
        srv.close()
    return took


class Samples:
    def __init__(self):
        self.data = {}
        # metric -> daemon set -> why it has no samples (its driver refused the call).
        self.unavailable = {}
        # what -> daemon set -> how many objects each round's listing returned.
        self.listed = {}

    def add(self, metric, target, values):
        if not isinstance(values, list):
            values = [values]
        self.data.setdefault(metric, {}).setdefault(target, []).extend(values)

    def refuse(self, metric, target, why):
        self.unavailable.setdefault(metric, {})[target] = why

    def count(self, what, target, n):
        self.listed.setdefault(what, {}).setdefault(target, []).append(n)


def remove_all(conn):
    """Destroys and undefines every domain: nothing outlives a block."""
    for d in conn.listAllDomains(0):
        try:
            # A transient domain is gone once destroyed.
            persistent = d.isPersistent()
            if d.isActive():
                d.destroy()
            if persistent:
                d.undefine()
        except libvirt.libvirtError as e:
            log(f"cleanup of {d.name()}: {e}")


def block(t, cfg, s):
    """One round on one daemon set: cold start, every row, stop."""
    log(f"{t.name}: start")
    s.add("first_call", t.name, t.start() * 1e3)
    # Idle: started and answered a first call, nothing else.
    s.add("rss_idle", t.name, memory_mib(t.pids(), "Rss:"))
    s.add("pss_idle", t.name, memory_mib(t.pids(), "Pss:"))
    conn = libvirt.open(t.uri)
    try:
        conn.getLibVersion()

        def connect_close():
            libvirt.open(t.uri).close()

        connect_close()
        s.add("connect_close", t.name, latencies(connect_close, cfg.connects))
        if t.tls_uri:
            tls_rows(t, cfg, s)

        for call, metric in (("getLibVersion", "libversion"), ("getHostname", "hostname")):
            fn = getattr(conn, call)
            rate_windows(fn, WINDOW)  # warm-up
            s.add(f"{metric}_1", t.name, rate_windows(fn, cfg.rate_secs))
        clients = Clients(t.uri, 4)
        try:
            for call, metric in (("getLibVersion", "libversion"), ("getHostname", "hostname")):
                clients.run(call, WINDOW)  # warm-up
                s.add(f"{metric}_4", t.name, clients.run(call, cfg.rate_secs))
        finally:
            clients.close()

        seq = iter(range(1 << 30))

        def define_undefine():
            conn.defineXML(domain_xml(f"bench-du-{next(seq)}", cfg.dom_type)).undefine()

        rate_windows(define_undefine, WINDOW)
        s.add("define_undefine", t.name, rate_windows(define_undefine, cfg.rate_secs))

        out = subprocess.run(
            [
                sys.executable,
                os.path.abspath(__file__),
                "events",
                t.uri,
                str(cfg.events),
                cfg.dom_type,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        s.add("event", t.name, json.loads(out.stdout))

        defined = 0
        for n in (0, 100, 1000):
            while defined < n:
                conn.defineXML(domain_xml(f"bench-list-{defined:04}", cfg.dom_type))
                defined += 1
            conn.listAllDomains(0)
            s.add(f"list_{n}", t.name, latencies(lambda: conn.listAllDomains(0), cfg.lists))
        s.add("rss_1000", t.name, memory_mib(t.pids(), "Rss:"))
        remove_all(conn)

        dom = conn.defineXML(domain_xml("bench-vm", cfg.dom_type))
        try:
            for i in range(cfg.starts + 1):
                t0 = now()
                dom.create()
                t1 = now()
                state = dom.state()[0]
                dom.destroy()
                t2 = now()
                if state != libvirt.VIR_DOMAIN_RUNNING:
                    raise RuntimeError(f"{t.name}: state {state} after start")
                if i > 0:  # the first start of a daemon's life warms it up
                    s.add("start", t.name, (t1 - t0) * 1e3)
                    s.add("destroy", t.name, (t2 - t1) * 1e3)
        finally:
            remove_all(conn)
        stats_rows(t, cfg, s, conn)
        save_rows(t, cfg, s, conn)
        hotplug_rows(t, cfg, s, conn)
        storage_rows(t, cfg, s, conn)
        host_rows(t, cfg, s, conn)
        migrate_rows(t, cfg, s, conn)
    finally:
        conn.close()
        t.stop()


def tls_rows(t, cfg, s):
    """Over qemu+tls:// with the same certificates: connect (TCP, TLS handshake, the
    server's checks, AUTH_LIST, open) + close, and getLibVersion's rate on one connection."""

    def tls_connect_close():
        libvirt.open(t.tls_uri).close()

    tls_connect_close()
    s.add("tls_connect_close", t.name, latencies(tls_connect_close, cfg.connects))
    c = libvirt.open(t.tls_uri)
    try:
        rate_windows(c.getLibVersion, WINDOW)
        s.add("tls_libversion_1", t.name, rate_windows(c.getLibVersion, cfg.rate_secs))
    finally:
        c.close()


def save_rows(t, cfg, s, conn):
    """virsh save, then restore, of a paused 128 MiB guest, its image in the run's
    directory (a paused guest runs no code, so KVM is no danger here)."""
    path = os.path.join(cfg.dir, f"save-{t.name}.img")
    xml = domain_xml("bench-save", cfg.dom_type).replace(">64</memory>", ">128</memory>")
    dom = conn.createXML(xml, libvirt.VIR_DOMAIN_START_PAUSED)
    try:
        for i in range(cfg.saves + 1):
            t0 = now()
            dom.save(path)
            t1 = now()
            conn.restore(path)
            t2 = now()
            dom = conn.lookupByName("bench-save")
            state = dom.state()[0]
            if state != libvirt.VIR_DOMAIN_PAUSED:
                raise RuntimeError(f"{t.name}: state {state} after restore")
            os.unlink(path)
            if i > 0:  # the first one warms the daemon (and the page cache) up
                s.add("save", t.name, (t1 - t0) * 1e3)
                s.add("restore", t.name, (t2 - t1) * 1e3)
    finally:
        remove_all(conn)
        if os.path.exists(path):
            os.unlink(path)


MIGRATION_METRICS = ("migrate_total", "migrate_downtime")


def migrate_rows(t, cfg, s, conn):
    """Live migration, peer to peer, of an idle 256 MiB guest (TCG, whatever the other rows
    use: the guest runs during the migration) to a second instance of the same daemons
    (t.twin(): its own home, on this machine, the stream over loopback), then destroyed
    there; timed around the call, the downtime from the source's completed job statistics.
    A daemon set that cannot migrate so gets n/a, with why."""
    # One twin per set for the whole run (its notify socket, like the set's own, is bound
    # once).
    if getattr(t, "peer", None) is None:
        t.peer = t.twin()
    peer = t.peer
    xml = domain_xml("bench-mig", "qemu").replace(">64</memory>", ">256</memory>")
    flags = libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER
    params = {libvirt.VIR_MIGRATE_PARAM_URI: "tcp://127.0.0.1"}
    try:
        peer.start()
        dom = conn.defineXML(xml)
        pc = libvirt.open(peer.uri)
        try:
            for i in range(cfg.migrations + 1):
                dom.create()
                t0 = now()
                dom.migrateToURI3(peer.uri, params, flags)
                took = now() - t0
                st = dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
                pc.lookupByName("bench-mig").destroy()
                if "downtime" not in st:
                    raise RuntimeError(f"no downtime in the completed job's statistics: {st}")
                if i > 0:  # the first one warms both daemons up
                    s.add("migrate_total", t.name, took * 1e3)
                    s.add("migrate_downtime", t.name, float(st["downtime"]))
        finally:
            remove_all(pc)
            pc.close()
    except (libvirt.libvirtError, RuntimeError, OSError) as e:
        log(f"{t.name}: migration rows: {e}")
        for m in MIGRATION_METRICS:
            s.refuse(m, t.name, str(e).splitlines()[0] if str(e) else type(e).__name__)
    finally:
        remove_all(conn)
        peer.stop()


def hotplug_rows(t, cfg, s, conn):
    """attach-device + detach-device (live) of a file disk on a paused guest's virtio-scsi
    controller: a SCSI bus lets a disk go without the guest's word, so the pair measures
    the daemons (and QEMU), not a guest."""
    img = os.path.join(cfg.dir, f"hot-{t.name}.img")
    with open(img, "wb") as f:
        f.truncate(1 << 20)
    xml = domain_xml("bench-hot", cfg.dom_type).replace(
        "<devices>", "<devices><controller type='scsi' index='0' model='virtio-scsi'/>"
    )
    disk = (
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
        f"<source file='{img}'/><target dev='sdb' bus='scsi'/></disk>"
    )
    live = libvirt.VIR_DOMAIN_AFFECT_LIVE
    dom = conn.createXML(xml, libvirt.VIR_DOMAIN_START_PAUSED)
    try:

        def attach_detach():
            dom.attachDeviceFlags(disk, live)
            dom.detachDeviceFlags(disk, live)

        attach_detach()  # warm-up, and a check that both work
        s.add("attach_detach", t.name, latencies(attach_detach, cfg.hotplugs))
        if "sdb" in dom.XMLDesc(0):
            raise RuntimeError(f"{t.name}: the disk stayed after its detach")
    finally:
        remove_all(conn)
        os.unlink(img)


def stats_rows(t, cfg, s, conn):
    """getAllDomainStats over many paused guests with every group, as monitoring agents
    (Prometheus' libvirt exporter, KubeVirt) poll it. Paused guests run no guest code."""
    try:
        for i in range(cfg.stats_guests):
            conn.createXML(
                domain_xml(f"bench-stats-{i:03}", cfg.dom_type), libvirt.VIR_DOMAIN_START_PAUSED
            )
        got = len(conn.getAllDomainStats(0, 0))
        if got != cfg.stats_guests:
            raise RuntimeError(f"{t.name}: stats of {got} guests, not {cfg.stats_guests}")
        s.add("all_stats", t.name, latencies(lambda: conn.getAllDomainStats(0, 0), cfg.stats_calls))
    finally:
        remove_all(conn)


def make_sources(base, mib):
    """The files the transfer rows move: `mib` MiB dense (random bytes) and `mib` MiB with
    holes (1 MiB of data in every 16), made once per run."""
    dense = os.path.join(base, f"src-dense-{mib}")
    sparse = os.path.join(base, f"src-sparse-{mib}")
    if not os.path.exists(dense):
        with open(dense, "wb") as f:
            chunk = os.urandom(1 << 20)
            for _ in range(mib):
                f.write(chunk)
    if not os.path.exists(sparse):
        with open(sparse, "wb") as f:
            f.truncate(mib << 20)
            chunk = os.urandom(1 << 20)
            for at in range(0, mib, 16):
                f.seek(at << 20)
                f.write(chunk)
    return dense, sparse


def virsh_transfer(uri, op, pool, vol, path, sparse):
    """Seconds `virsh vol-upload` or `vol-download` takes (libvirt's own C client: the
    transfer rows measure the daemons, not a Python loop over chunks)."""
    cmd = ["virsh", "-q", "-c", uri, op, "--pool", pool, vol, path]
    if sparse:
        cmd.append("--sparse")
    t0 = now()
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    return now() - t0


def storage_rows(t, cfg, s, conn):
    """A dir pool in the run's directory: qcow2 volume creation, and the volume transfers
    (MiB/s), dense and sparse, both ways."""
    target = os.path.join(cfg.dir, f"pool-{t.name}")
    shutil.rmtree(target, ignore_errors=True)
    pool = conn.storagePoolCreateXML(
        f"<pool type='dir'><name>bench</name><target><path>{target}</path></target></pool>",
        libvirt.VIR_STORAGE_POOL_CREATE_WITH_BUILD,
    )
    try:
        seq = iter(range(1 << 30))

        def create_qcow2():
            pool.createXML(
                f"<volume><name>q{next(seq)}.qcow2</name><capacity unit='G'>1</capacity>"
                "<target><format type='qcow2'/></target></volume>",
                0,
            )

        s.add("vol_create_qcow2", t.name, latencies(create_qcow2, cfg.vols))
        dense, sparse = make_sources(cfg.dir, cfg.transfer_mib)
        mib = cfg.transfer_mib
        for kind, path in (("dense", dense), ("sparse", sparse)):
            xml = (
                f"<volume><name>{kind}.img</name><capacity unit='M'>{mib}</capacity>"
                "<allocation>0</allocation></volume>"
            )
            pool.createXML(xml, 0)
            name, sp = f"{kind}.img", kind == "sparse"
            took = virsh_transfer(t.uri, "vol-upload", "bench", name, path, sp)
            s.add(f"vol_upload_{kind}", t.name, mib / took)
            out = os.path.join(cfg.dir, f"dl-{t.name}-{kind}")
            took = virsh_transfer(t.uri, "vol-download", "bench", name, out, sp)
            s.add(f"vol_download_{kind}", t.name, mib / took)
            os.unlink(out)
    finally:
        for v in pool.listAllVolumes(0):
            v.delete(0)
        pool.destroy()
        shutil.rmtree(target, ignore_errors=True)


def refused(t, s, metrics, fn):
    """`fn()`, or None when the daemon set's driver refuses it (libvirtd's, as a session
    daemon, may have no such driver): then each of `metrics` is marked not available for
    the set, with libvirt's error, instead of a number."""
    try:
        return fn()
    except libvirt.libvirtError as e:
        why = e.get_error_message() or str(e)
        log(f"{t.name}: {', '.join(metrics)} not available: {why}")
        for m in metrics:
            s.refuse(m, t.name, why)
        return None


def host_rows(t, cfg, s, conn):
    """The node device and host interface drivers on this machine's own devices and
    interfaces, read only: listAllDevices; the XML of every listed device, one sample per
    device and call, in passes over the whole list until there are at least `lists`; and
    listAllInterfaces. The first call of each (and a first pass of XML) warms up."""
    devs = refused(t, s, ["nodedev_list", "nodedev_xml"], lambda: conn.listAllDevices(0))
    if devs is not None:
        s.count("nodedev", t.name, len(devs))
        s.add("nodedev_list", t.name, latencies(lambda: conn.listAllDevices(0), cfg.lists))

        def xml_pass():
            out = []
            for d in devs:
                t0 = now()
                try:
                    d.XMLDesc(0)
                except libvirt.libvirtError as e:
                    # Unplugged since the listing (a loop device of someone's test, say).
                    if e.get_error_code() != libvirt.VIR_ERR_NO_NODE_DEVICE:
                        raise
                    continue
                out.append((now() - t0) * 1e3)
            return out

        if refused(t, s, ["nodedev_xml"], xml_pass) is not None:
            for _ in range(-(-cfg.lists // max(len(devs), 1))):
                s.add("nodedev_xml", t.name, xml_pass())
    ifaces = refused(t, s, ["iface_list"], lambda: conn.listAllInterfaces(0))
    if ifaces is not None:
        s.count("iface", t.name, len(ifaces))
        s.add("iface_list", t.name, latencies(lambda: conn.listAllInterfaces(0), cfg.lists))


def dd_floor(cfg, s):
    """dd between two files of the same disk: the dense transfer rows' floor (MiB/s)."""
    dense, _ = make_sources(cfg.dir, cfg.transfer_mib)
    out = os.path.join(cfg.dir, "dd.out")
    t0 = now()
    subprocess.run(
        ["dd", f"if={dense}", f"of={out}", "bs=256K", "conv=fdatasync"],
        check=True,
        capture_output=True,
    )
    s.add("dd", "dd", cfg.transfer_mib / (now() - t0))
    os.unlink(out)


# ---------------------------------------------------------------------------------------------
# The network rows (as root, every daemon set in namespaces of its own)


class NetNs:
    """A network namespace of the run's own (`ip netns add`), with only its loopback up.
    Nothing in it reaches the machine's network: it has no link to the outside. `close`
    kills every process still in it and deletes it, and with it every bridge, tap and
    firewall rule made there."""

    def __init__(self, name):
        self.name = name
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        st = os.stat(f"/run/netns/{name}")
        self.key = (st.st_dev, st.st_ino)
        self.run("ip", "link", "set", "lo", "up")

    def cmd(self, *argv):
        """The command line that runs `argv` in the namespace (`ip netns exec` also gives
        it a mount namespace of its own, with /sys for that network namespace)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, *argv):
        out = subprocess.run(self.cmd(*argv), capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"in {self.name}: {' '.join(argv)}: {out.stderr.strip()}")
        return out.stdout

    def pids(self):
        out = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                st = os.stat(f"/proc/{pid}/ns/net")
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == self.key:
                out.append(int(pid))
        return out

    def close(self):
        for _ in range(200):
            left = self.pids()
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        else:
            raise RuntimeError(f"processes left in {self.name}: {self.pids()}")
        subprocess.run(["ip", "netns", "del", self.name], check=True, capture_output=True)


def passwd_with(path, line):
    """A copy of /etc/`path` with `line` added if its name is not there yet; None if it is."""
    with open(f"/etc/{path}") as f:
        text = f.read()
    if any(row.split(":")[0] == line.split(":")[0] for row in text.splitlines()):
        return None
    return text + ("" if text.endswith("\n") else "\n") + line + "\n"


class SystemLibvirtd(DaemonSet):
    """libvirtd in system (privileged) mode, so that it manages networks, in a network
    namespace and a mount namespace of the run's own: the run's /run and /var (tmpfs), its
    /etc/libvirt, and passwd and group with Debian's libvirt-qemu user added (libvirtd looks
    it up even when qemu.conf names another; only Debian's libvirt-daemon-system creates it).
    QEMU runs as in the session-mode rows: as the daemon's user, without cgroups, a mount
    namespace per domain or a security driver."""

    name = "libvirtd"

    def __init__(self, base, short, netns, cache):
        home = os.path.join(base, short)
        sock = os.path.join(home, "sock", "libvirt-sock")
        super().__init__(home, f"qemu+unix:///system?socket={sock}", sock)
        self.netns = netns
        self.cache = cache
        etc = os.path.join(home, "etc")
        for d in (etc, os.path.join(home, "sock")):
            os.makedirs(d, mode=0o700, exist_ok=True)
        if not os.path.isdir("/etc/libvirt"):
            raise RuntimeError("/etc/libvirt is missing (Debian's libvirt0 makes it)")
        with open(os.path.join(etc, "libvirtd.conf"), "w") as f:
            f.write(
                f'unix_sock_dir = "{home}/sock"\n'
                'unix_sock_rw_perms = "0700"\n'
                'unix_sock_ro_perms = "0700"\n'
                'unix_sock_admin_perms = "0700"\n'
                'auth_unix_rw = "none"\n'
                'auth_unix_ro = "none"\n'
                'log_outputs = "3:stderr"\n'
            )
        with open(os.path.join(etc, "qemu.conf"), "w") as f:
            f.write(
                'user = "root"\n'
                'group = "root"\n'
                'security_driver = "none"\n'
                "cgroup_controllers = [ ]\n"
                "namespaces = [ ]\n"
                'stdio_handler = "file"\n'
            )
        self.binds = [(etc, "/etc/libvirt"), (cache, "/var/cache/libvirt")]
        for path, line in (
            ("passwd", "libvirt-qemu:x:64055:64055::/var/lib/libvirt:/usr/sbin/nologin"),
            ("group", "libvirt-qemu:x:64055:"),
        ):
            text = passwd_with(path, line)
            if text is not None:
                copy = os.path.join(home, path)
                with open(copy, "w") as f:
                    f.write(text)
                os.chmod(copy, 0o644)
                self.binds.append((copy, f"/etc/{path}"))
        self.logf = os.path.join(home, "libvirtd.log")

    pids = Libvirtd.pids

    def spawn(self):
        script = "\n".join(
            [
                "set -e",
                # Nothing of libvirtd's is written to the machine's /run or /var.
                "mount -t tmpfs -o mode=0755 vireo-bench /run",
                "mount -t tmpfs -o mode=0755 vireo-bench /var",
                "mkdir -p /run/libvirt /run/lock /var/lib/libvirt /var/cache/libvirt"
                " /var/log/libvirt /var/tmp",
                "chmod 1777 /var/tmp",
                "ln -s /run /var/run",
                "ln -s /run/lock /var/lock",
                *(f'mount --bind "{src}" "{dst}"' for src, dst in self.binds),
                # A prompt reaper, as in session mode (see Libvirtd.spawn).
                "exec tini -s -- libvirtd",
            ]
        )
        env = {
            "HOME": self.home,
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
        }
        with open(self.logf, "ab") as logf:
            self.procs = [
                subprocess.Popen(
                    self.netns.cmd(
                        "unshare", "--mount", "--propagation", "private", "sh", "-c", script
                    ),
                    env=env,
                    cwd=self.home,
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=logf,
                    start_new_session=True,
                )
            ]


def processes_with(*words):
    """Pids whose command line has every one of `words`."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if all(w.encode() in cmd for w in words):
            out.append(int(pid))
    return out


def contained(ns):
    """The started network's bridge, NAT rules and dnsmasq are in `ns`, and none outside."""
    outside = subprocess.run(["ip", "link", "show", "dev", NET_BRIDGE], capture_output=True)
    if outside.returncode == 0:
        raise RuntimeError(f"{NET_BRIDGE} exists in the machine's own network namespace")
    ns.run("ip", "link", "show", "dev", NET_BRIDGE)
    rules = ns.run("nft", "list", "ruleset")
    if NET_SUBNET not in rules:
        raise RuntimeError(f"no firewall rule for {NET_SUBNET} in {ns.name}:\n{rules}")
    inside = set(ns.pids())
    dns = processes_with("dnsmasq", f"{NET_NAME}.conf")
    if not dns:
        raise RuntimeError(f"no dnsmasq for {NET_NAME}")
    if any(p not in inside for p in dns):
        raise RuntimeError(f"a dnsmasq for {NET_NAME} runs outside {ns.name}")


def net_block(t, cfg, s):
    """One round of the network rows on one daemon set, in its namespace."""
    log(f"{t.name}: network rows in {t.netns.name}")
    conn = net = None
    try:
        t.start()
        conn = libvirt.open(t.uri)
        net = conn.networkDefineXML(NET_XML)
        net.create()  # and the first cycle warms the daemon up
        contained(t.netns)
        net.destroy()

        def cycle():
            net.create()
            net.destroy()

        s.add("net_start_destroy", t.name, latencies(cycle, cfg.net_cycles))
        net.create()
        doms = [
            (conn.defineXML(domain_xml("bench-plain", cfg.dom_type)), "start_netns"),
            (conn.defineXML(nic_domain_xml("bench-nic", cfg.dom_type)), "start_nic"),
        ]
        for i in range(cfg.starts + 1):
            # A start without an interface comes between two with one: back to back, Vireo's
            # release of the last port (after destroy returned) can delete the new tap, which
            # reuses its vnetN name, and QEMU fails ("File descriptor in bad state").
            for dom, metric in doms:
                t0 = now()
                dom.create()
                took = now() - t0
                state = dom.state()[0]
                dom.destroy()
                if state != libvirt.VIR_DOMAIN_RUNNING:
                    raise RuntimeError(f"{t.name}: state {state} after start")
                if i > 0:  # the first start of each warms up
                    s.add(metric, t.name, took * 1e3)
    finally:
        if conn is not None:
            remove_all(conn)
            if net is not None:
                try:
                    if net.isActive():
                        net.destroy()
                    net.undefine()
                except libvirt.libvirtError as e:
                    log(f"cleanup of {NET_NAME}: {e}")
            conn.close()
        t.stop()


TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000


def open_tap(name):
    """A descriptor of the existing tap `name` (of this process's network namespace)."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


def bare_tap_main(base, tap, n, dom_type):
    """`workload.py bare-tap DIR TAP N TYPE` (in a namespace with the tap): bare QEMU with
    the tap, opened before the clock starts, as its NIC; prints each start's ms."""
    out = []
    for _ in range(n):
        fd = open_tap(tap)
        try:
            out.append(bare_qemu(base, dom_type == "kvm", tap_fd=fd))
        finally:
            os.close(fd)
    print(json.dumps(out), flush=True)


def bare_tap_floor(cfg, s, n, warm):
    """The floor of the NIC start row: bare QEMU given a ready tap on a bridge, in a
    namespace of its own; the first start is dropped when `warm`."""
    ns = NetNs(f"{cfg.ns_prefix}-qemu")
    try:
        ns.run("ip", "link", "add", NET_BRIDGE, "type", "bridge")
        ns.run("ip", "link", "set", NET_BRIDGE, "up")
        ns.run("ip", "tuntap", "add", "dev", "vbtap0", "mode", "tap")
        ns.run("ip", "link", "set", "vbtap0", "master", NET_BRIDGE, "up")
        out = ns.run(
            sys.executable, os.path.abspath(__file__), "bare-tap", cfg.dir, "vbtap0", str(n),
            cfg.dom_type,
        )
        values = json.loads(out)
        s.add("bare_qemu_tap", "qemu", values[1:] if warm else values)
    finally:
        ns.close()


def net_main(args):
    """`workload.py net`: the network rows, as root."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    cache = os.path.join(args.dir, "lv-cache")  # libvirtd's QEMU capabilities, probed once
    os.makedirs(cache, mode=0o700, exist_ok=True)
    makers = [
        ("lv", lambda r, ns: SystemLibvirtd(args.dir, f"lv{r}", ns, cache)),
        ("mono", lambda r, ns: Vireo(args.dir, "vireod", f"m{r}", ["vireod"], args.bindir, ns)),
        (
            "mod",
            lambda r, ns: Vireo(
                args.dir, "vireo-modular", f"d{r}", args.modular.split(","), args.bindir, ns
            ),
        ),
    ]
    s = Samples()
    try:
        for r in range(args.rounds):
            log(f"network round {r + 1} of {args.rounds}")
            k = r % len(makers)
            for short, make in makers[k:] + makers[:k]:
                ns = NetNs(f"{args.ns_prefix}-{short}")
                try:
                    net_block(make(r, ns), args, s)
                finally:
                    ns.close()
            bare_tap_floor(args, s, args.starts + (1 if r == 0 else 0), r == 0)
    finally:
        kill_descendants()
    with open(args.out, "w") as f:
        json.dump({"samples": s.data}, f)


def kill_descendants():
    left = descendants()
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in left:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def descendants():
    """Every process below this one (orphans come to us: we are a subreaper)."""
    out = []
    todo = [os.getpid()]
    while todo:
        pid = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    kids = [int(x) for x in f.read().split()]
            except FileNotFoundError:
                continue
            out.extend(kids)
            todo.extend(kids)
    return out


def run_main(args):
    # Daemons that fork away (libvirtd's virtlogd) stay ours to reap and kill at the end.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    cfg = args
    sets = [
        Libvirtd(args.dir),
        Vireo(args.dir, "vireod", "mono", ["vireod"], args.bindir),
        Vireo(
            args.dir,
            "vireo-modular",
            "mod",
            args.modular.split(","),
            args.bindir,
        ),
    ]
    pki, client = make_pki(args.dir)
    for t in sets:
        t.enable_tls(pki, client)
    s = Samples()
    facts = {}
    try:
        # The first start of each: empty caches (libvirtd probes QEMU then).
        for t in sets:
            log(f"{t.name}: first start")
            s.add("first_call_empty", t.name, t.start() * 1e3)
            c = libvirt.open(t.uri)
            facts[f"{t.name}_version"] = c.getLibVersion()
            facts[f"{t.name}_hypervisor_version"] = c.getVersion()
            c.close()
            t.stop()
        bare = 0
        for r in range(args.rounds):
            log(f"round {r + 1} of {args.rounds}")
            k = r % len(sets)
            for t in sets[k:] + sets[:k]:
                block(t, cfg, s)
            dd_floor(cfg, s)
            for _ in range(args.starts + (1 if r == 0 else 0)):
                took = bare_qemu(args.dir, args.dom_type == "kvm")
                if bare > 0:
                    s.add("bare_qemu", "qemu", took)
                bare += 1
    finally:
        for t in sets:
            t.stop()
        kill_descendants()
    with open(args.out, "w") as f:
        json.dump(
            {
                "samples": s.data,
                "facts": facts,
                "unavailable": s.unavailable,
                "listed": s.listed,
            },
            f,
        )


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--dir", required=True)
    r.add_argument("--bindir", required=True)
    r.add_argument("--modular", required=True, help="the modular daemons, in start order")
    r.add_argument("--out", required=True)
    r.add_argument("--dom-type", default="kvm")
    r.add_argument("--rounds", type=int, default=3)
    r.add_argument("--rate-secs", type=float, default=1.0)
    r.add_argument("--connects", type=int, default=300)
    r.add_argument("--events", type=int, default=100)
    r.add_argument("--lists", type=int, default=100)
    r.add_argument("--starts", type=int, default=5)
    r.add_argument("--vols", type=int, default=20)
    r.add_argument("--transfer-mib", type=int, default=256)
    r.add_argument("--stats-guests", type=int, default=100)
    r.add_argument("--stats-calls", type=int, default=50)
    r.add_argument("--saves", type=int, default=5)
    r.add_argument("--hotplugs", type=int, default=20)
    r.add_argument("--migrations", type=int, default=5)
    n = sub.add_parser("net", help="the network rows, as root, in namespaces of their own")
    n.add_argument("--dir", required=True)
    n.add_argument("--bindir", required=True)
    n.add_argument("--modular", required=True, help="the modular daemons, in start order")
    n.add_argument("--out", required=True)
    n.add_argument("--dom-type", default="kvm")
    n.add_argument("--rounds", type=int, default=3)
    n.add_argument("--starts", type=int, default=5)
    n.add_argument("--net-cycles", type=int, default=10)
    n.add_argument("--ns-prefix", required=True, help="the names of the run's namespaces")
    b = sub.add_parser("bare-tap")
    b.add_argument("dir")
    b.add_argument("tap")
    b.add_argument("n", type=int)
    b.add_argument("dom_type")
    c = sub.add_parser("client")
    c.add_argument("uri")
    e = sub.add_parser("events")
    e.add_argument("uri")
    e.add_argument("n", type=int)
    e.add_argument("dom_type")
    args = ap.parse_args()
    if args.cmd == "run":
        run_main(args)
    elif args.cmd == "net":
        net_main(args)
    elif args.cmd == "bare-tap":
        bare_tap_main(args.dir, args.tap, args.n, args.dom_type)
    elif args.cmd == "client":
        client_main(args.uri)
    else:
        events_main(args.uri, args.n, args.dom_type)


if __name__ == "__main__":
    main()
