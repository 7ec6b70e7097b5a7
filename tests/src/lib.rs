//! Helpers for end-to-end tests: start a real `vireod` under a temp root, wait for its
//! readiness signal (sd_notify, no sleeps), run real clients against it.

pub mod fakemdev;
pub mod fakepci;

use std::ffi::CStr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Directory holding the workspace's built binaries (`target/debug` or `target/release`).
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VIREO_BIN_DIR") {
        return PathBuf::from(d);
    }
    // Test executables live in target/<profile>/deps.
    let exe = std::env::current_exe().expect("current_exe");
    let mut d = exe.parent().expect("deps dir").to_path_buf();
    if d.ends_with("deps") {
        d.pop();
    }
    d
}

/// Path of a workspace binary; tells how to build it when missing.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the tests",
        p.display()
    );
    p
}

/// The repository's `tests/` directory.
pub fn tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// How the daemons are laid out for a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `vireod`, every driver in one process.
    Monolithic,
    /// One daemon per driver; clients talk to `vireo-qemud`.
    Modular,
    /// One daemon per driver behind `vireo-proxyd` on the legacy socket.
    Proxied,
}

/// The driver daemons of the modular layout, in start order.
pub const DRIVER_DAEMONS: [&str; 7] = [
    "vireo-networkd",
    "vireo-nwfilterd",
    "vireo-storaged",
    "vireo-secretd",
    "vireo-nodedevd",
    "vireo-interfaced",
    "vireo-qemud",
];

impl Layout {
    fn daemons(self) -> Vec<&'static str> {
        match self {
            Layout::Monolithic => vec!["vireod"],
            Layout::Modular => DRIVER_DAEMONS.to_vec(),
            Layout::Proxied => {
                let mut v = DRIVER_DAEMONS.to_vec();
                v.push("vireo-proxyd");
                v
            }
        }
    }

    /// The socket name clients of this layout use.
    fn front(self) -> &'static str {
        match self {
            Layout::Modular => "vireo-qemud",
            _ => "vireod",
        }
    }
}

/// Runs a test once per layout: `in_every_layout!(name)` makes `name::monolithic`,
/// `name::modular` and `name::proxied` from `fn name(layout: Layout)`.
#[macro_export]
macro_rules! in_every_layout {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn monolithic() {
                super::$name($crate::Layout::Monolithic)
            }
            #[test]
            fn modular() {
                super::$name($crate::Layout::Modular)
            }
            #[test]
            fn proxied() {
                super::$name($crate::Layout::Proxied)
            }
        }
    )*};
}

/// A network namespace of a test's own: its daemons, their bridges, taps, dnsmasq, firewall
/// rules and guests live there, never in the machine's. It goes away with the last process
/// in it and this handle.
pub struct NetNs {
    fd: std::os::fd::OwnedFd,
    /// With [`NetNs::with_private_run`]: a mount namespace of its own too.
    mnt: Option<std::os::fd::OwnedFd>,
}

impl NetNs {
    /// A new namespace with its loopback up; `None` when this process may not make one
    /// (not root).
    pub fn new() -> Option<NetNs> {
        // A namespace belongs to a thread: make it on a thread of its own and keep only a
        // descriptor of it.
        let fd = std::thread::spawn(|| -> Option<std::os::fd::OwnedFd> {
            // Only this short-lived thread's network namespace changes.
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
            std::fs::File::open("/proc/thread-self/ns/net")
                .ok()
                .map(Into::into)
        })
        .join()
        .ok()??;
        let ns = NetNs { fd, mnt: None };
        let up = ns.command("ip").args(["link", "set", "lo", "up"]).status();
        assert!(
            up.is_ok_and(|s| s.success()),
            "cannot bring lo up in the test's namespace"
        );
        Some(ns)
    }

    /// A network namespace as [`NetNs::new`] makes, and a mount namespace in which `/run`
    /// is an empty tmpfs of the test's own: what is made in `/run/libvirt` there (the
    /// drop-in socket links) is seen by the commands run in it and by nothing else.
    pub fn with_private_run() -> Option<NetNs> {
        NetNs::with_mount(c"tmpfs", c"/run", c"tmpfs")
    }

    /// A network namespace as [`NetNs::new`] makes, and a mount namespace in which `/sys`
    /// is a sysfs mounted from inside it: `/sys/class/net` there shows the namespace's
    /// interfaces (and no others), as the node device driver reading `/` must see them.
    pub fn with_own_sysfs() -> Option<NetNs> {
        NetNs::with_mount(c"sysfs", c"/sys", c"sysfs")
    }

    /// A network namespace as [`NetNs::new`] makes, and a mount namespace of its own in
    /// which `fstype` (`source`) is mounted on `target`, by a thread inside the network
    /// namespace (so that a sysfs shows that namespace's interfaces).
    fn with_mount(source: &CStr, target: &CStr, fstype: &CStr) -> Option<NetNs> {
        use rustix::mount::{mount, mount_change, MountFlags, MountPropagationFlags};
        use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
        use std::os::fd::AsFd;
        let mut ns = NetNs::new()?;
        let net = ns.fd.as_fd();
        let mnt = std::thread::scope(|s| {
            s.spawn(|| -> Option<std::os::fd::OwnedFd> {
                // Only this short-lived thread's namespaces change (CLONE_NEWNS gives it a
                // file system context of its own).
                move_into_link_name_space(net, Some(LinkNameSpaceType::Network)).ok()?;
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).ok()?;
                let private = MountPropagationFlags::REC | MountPropagationFlags::PRIVATE;
                mount_change(c"/", private).ok()?;
                mount(source, target, fstype, MountFlags::empty(), None).ok()?;
                std::fs::File::open("/proc/thread-self/ns/mnt")
                    .ok()
                    .map(Into::into)
            })
            .join()
        })
        .ok()??;
        ns.mnt = Some(mnt);
        Some(ns)
    }

    /// A command that runs in this namespace (and nowhere else differs).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let mut c = Command::new(program);
        let fd = self.fd.as_raw_fd();
        let mnt = self.mnt.as_ref().map(|m| m.as_raw_fd());
        // SAFETY: setns is async-signal-safe; the descriptors stay open in the parent
        // while the child is spawned.
        unsafe {
            c.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(m) = mnt {
                    if libc::setns(m, libc::CLONE_NEWNS) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        c
    }

    /// Runs a command in the namespace and returns its output.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
    }
}

/// Runs `program args` in the daemons' network namespace and returns its standard output.
#[track_caller]
pub fn in_ns(d: &Daemon, program: &str, args: &[&str]) -> String {
    let ns = d
        .netns
        .as_ref()
        .expect("network tests run as root, in a namespace of their own");
    ok(&ns.run(program, args))
}

/// Writes `text` to `name` under the test's root; returns the path.
pub fn write_file(d: &Daemon, name: &str, text: &str) -> String {
    let f = d.root.join(name);
    std::fs::write(&f, text).expect("write under the test root");
    f.to_string_lossy().into_owned()
}

/// A DHCP client (busybox udhcpc, reporting `hostname`) on a new veth `dev` with address
/// `mac`, whose peer is in `bridge`, all in the daemons' namespace: returns the address it
/// was given.
pub fn dhcp_client(d: &Daemon, bridge: &str, dev: &str, mac: &str, hostname: &str) -> String {
    let peer = format!("{dev}p");
    in_ns(
        d,
        "ip",
        &[
            "link", "add", dev, "address", mac, "type", "veth", "peer", "name", &peer,
        ],
    );
    in_ns(d, "ip", &["link", "set", &peer, "master", bridge, "up"]);
    in_ns(d, "ip", &["link", "set", dev, "up"]);
    let ns = d.netns.as_ref().expect("a namespace of the test's own");
    let o = ns.run(
        "busybox",
        &[
            "udhcpc",
            "-i",
            dev,
            "-n",
            "-q",
            "-f",
            "-t",
            "10",
            "-T",
            "1",
            "-s",
            "/bin/true",
            "-x",
            &format!("hostname:{hostname}"),
        ],
    );
    // udhcpc reports on stderr.
    let out = String::from_utf8_lossy(&o.stderr).into_owned();
    out.lines()
        .find_map(|l| l.split("lease of ").nth(1))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no lease for {dev}: {out}"))
        .to_string()
}

/// What a command said and how it ended: (stdout, stderr, exit code).
pub fn output_parts(o: &Output) -> (String, String, Option<i32>) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        o.status.code(),
    )
}

/// Runs `args` through our `vireo` and then the real virsh, asserts both said exactly the
/// same (and exited alike); returns vireo's run.
#[track_caller]
pub fn same_as_virsh(d: &Daemon, args: &[&str]) -> Output {
    let ours = d.vireo(args);
    let theirs = d.virsh(args);
    assert_eq!(
        output_parts(&ours),
        output_parts(&theirs),
        "vireo (left) and virsh (right) differ on {args:?}"
    );
    ours
}

/// Each of `calls` prints the same with vireo as with virsh, and ends alike.
#[track_caller]
pub fn all_same_as_virsh(d: &Daemon, calls: &[&[&str]]) {
    for args in calls {
        same_as_virsh(d, args);
    }
}

/// Each of `calls` fails with vireo as with virsh, saying the same.
#[track_caller]
pub fn all_refused_as_virsh(d: &Daemon, calls: &[&[&str]]) {
    for args in calls {
        let o = same_as_virsh(d, args);
        assert!(!o.status.success(), "{args:?} should fail");
    }
}

/// [`same_as_virsh`] on the daemon's read-only socket (`-r`).
#[track_caller]
pub fn same_as_virsh_read_only(d: &Daemon, args: &[&str]) -> Output {
    let ro = d.uri_ro();
    let b = bin("vireo");
    let vireo = b.to_str().expect("utf-8 path");
    let full = [&["-r", "-c", &ro][..], args].concat();
    let ours = run_cmd(vireo, &full);
    let theirs = run_cmd("virsh", &full);
    assert_eq!(
        output_parts(&ours),
        output_parts(&theirs),
        "vireo (left) and virsh (right) differ on read-only {args:?}"
    );
    ours
}

/// For a command that changes something: vireo does it (and must print `want`); virsh
/// then does the same again, which must fail exactly as vireo's own second attempt does.
#[track_caller]
pub fn done_then_refused(d: &Daemon, args: &[&str], want: &str) {
    assert_eq!(ok(&d.vireo(args)), want, "{args:?}");
    let again = same_as_virsh(d, args);
    assert!(
        !again.status.success(),
        "{args:?} should fail the second time"
    );
}

/// Vireo's daemons running under a private root, in a network namespace of their own.
pub struct Daemon {
    pub root: PathBuf,
    pub layout: Layout,
    /// The daemons' network namespace (`None` when the tests do not run as root).
    pub netns: Option<NetNs>,
    children: Vec<(&'static str, Child)>,
    /// A directory searched first for programs by the daemon that runs QEMU (a test's
    /// stand-in `qemu-system-x86_64`).
    pub qemu_dir: Option<PathBuf>,
    _tmp: Option<tempfile::TempDir>,
}

impl Daemon {
    /// Starts `vireod --root <new temp dir>` and waits until it is ready.
    pub fn start() -> Daemon {
        Daemon::start_in(Layout::Monolithic)
    }

    /// Starts the daemons of `layout` under a new temp root, each waited for.
    pub fn start_in(layout: Layout) -> Daemon {
        let mut d = Daemon::unstarted(layout);
        d.restart();
        d
    }

    /// A new temp root (and namespace) for the daemons of `layout`, none started yet.
    fn unstarted(layout: Layout) -> Daemon {
        let tmp = tempfile::Builder::new()
            .prefix("vireo-test")
            .tempdir()
            .expect("tempdir");
        Daemon {
            root: tmp.path().to_path_buf(),
            layout,
            netns: NetNs::new(),
            children: Vec::new(),
            qemu_dir: None,
            _tmp: Some(tmp),
        }
    }

    /// The daemons of `layout` under a new temp root that `prepare` fills first (a .conf,
    /// certificates), each started with `extra` arguments.
    pub fn start_prepared(layout: Layout, prepare: impl FnOnce(&Path), extra: &[&str]) -> Daemon {
        let mut d = Daemon::unstarted(layout);
        prepare(&d.root);
        d.start_with(extra);
        d
    }

    /// The daemons of `layout` under a new temp root, their node device driver reading the
    /// tree at `sysfs` instead of the machine's (`sysfs_root` in their .conf).
    pub fn start_with_sysfs(layout: Layout, sysfs: &Path) -> Daemon {
        let mut d = Daemon::unstarted(layout);
        let etc = d.root.join("etc/vireo");
        std::fs::create_dir_all(&etc).expect("config dir");
        for name in ["vireod", "vireo-nodedevd"] {
            std::fs::write(
                etc.join(format!("{name}.conf")),
                format!("sysfs_root = \"{}\"\n", sysfs.display()),
            )
            .expect("daemon .conf");
        }
        d.restart();
        d
    }

    /// The daemons of `layout` under a new temp root, reading the machine's devices (`/`) in
    /// namespaces of the test's own where /sys is the network namespace's own sysfs: the
    /// node device driver sees (and hears the kernel's events about) the interfaces the
    /// test makes there.
    pub fn start_with_own_sysfs(layout: Layout) -> Daemon {
        let mut d = Daemon::unstarted(layout);
        d.netns = Some(NetNs::with_own_sysfs().expect("namespaces (root needed)"));
        d.restart();
        d
    }

    /// The daemons of `layout` answering on libvirt's socket paths too
    /// (`--libvirt-paths`), in namespaces of the test's own where `/run` is private.
    pub fn start_dropin(layout: Layout) -> Daemon {
        let tmp = tempfile::Builder::new()
            .prefix("vireo-test")
            .tempdir()
            .expect("tempdir");
        let root = tmp.path().to_path_buf();
        let mut d = Daemon {
            root,
            layout,
            netns: Some(NetNs::with_private_run().expect("namespaces (root needed)")),
            children: Vec::new(),
            qemu_dir: None,
            _tmp: Some(tmp),
        };
        d.start_with(&["--libvirt-paths"]);
        d
    }

    /// As [`Daemon::start_prepared`], in namespaces the test made: `netns` (with a mount
    /// namespace of its own, e.g., where the test runs services of its own).
    pub fn start_prepared_in(
        layout: Layout,
        netns: NetNs,
        prepare: impl FnOnce(&Path),
        extra: &[&str],
    ) -> Daemon {
        let tmp = tempfile::Builder::new()
            .prefix("vireo-test")
            .tempdir()
            .expect("tempdir");
        let mut d = Daemon {
            root: tmp.path().to_path_buf(),
            layout,
            netns: Some(netns),
            children: Vec::new(),
            qemu_dir: None,
            _tmp: Some(tmp),
        };
        prepare(&d.root);
        d.start_with(extra);
        d
    }

    /// `program` as a command in the daemons' namespaces.
    pub fn ns_command(&self, program: &str) -> Command {
        match &self.netns {
            Some(ns) => ns.command(program),
            None => Command::new(program),
        }
    }

    /// Starts the layout's daemons on an existing root (after a kill, to test recovery).
    pub fn restart(&mut self) {
        self.start_with(&[]);
    }

    pub fn start_with(&mut self, extra: &[&str]) {
        assert!(self.children.is_empty(), "daemons already running");
        for name in self.layout.daemons() {
            self.start_one(name, extra);
        }
    }

    /// Starts one daemon and waits for its READY notification.
    pub fn start_one(&mut self, name: &'static str, extra: &[&str]) {
        let root = self.root.clone();
        self.start_as(name, &root, None, extra);
    }

    /// Starts one daemon under `root` (as `uid`, if given) and waits for it to be ready.
    fn start_as(&mut self, name: &'static str, root: &Path, uid: Option<u32>, extra: &[&str]) {
        let notify_path = self.root.join(format!("notify-{name}"));
        let _ = std::fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path).expect("bind notify socket");
        if uid.is_some() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&notify_path, std::fs::Permissions::from_mode(0o777))
                .expect("notify socket mode");
        }
        notify
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("vireod.log"))
            .expect("log file");
        let mut cmd = match &self.netns {
            Some(ns) => ns.command(bin(name)),
            None => Command::new(bin(name)),
        };
        if let Some(uid) = uid {
            use std::os::unix::process::CommandExt;
            // After entering the namespace (which needs root): drop to the user.
            // SAFETY: setgroups, setgid and setuid are async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(uid) != 0
                        || libc::setuid(uid) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        if let Some(dir) = self
            .qemu_dir
            .as_ref()
            .filter(|_| matches!(name, "vireod" | "vireo-qemud"))
        {
            let path = std::env::var("PATH").unwrap_or_default();
            cmd.env("PATH", format!("{}:{path}", dir.display()));
        }
        let child = cmd
            .arg("--root")
            .arg(root)
            .args(extra)
            .env("NOTIFY_SOCKET", &notify_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        self.children.push((name, child));
        let mut buf = [0u8; 256];
        let n = notify
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("{name} did not become ready: {e}; log:\n{}", self.log()));
        assert!(
            std::str::from_utf8(&buf[..n])
                .unwrap_or("")
                .contains("READY=1"),
            "unexpected notification"
        );
        let _ = std::fs::remove_file(&notify_path);
    }

    /// The modular daemons behind `vireo-proxyd` with **vireo-qemud unprivileged**: it runs
    /// as uid 65534 under a root of its own (`ROOT/qemud`, with the other daemons' sockets
    /// linked into it and the identity token shared), and the network daemon's socket is
    /// open to it (`unix_sock_rw_perms = "0777"` in its .conf). QEMU then runs as 65534 too.
    pub fn start_with_unprivileged_qemud() -> Daemon {
        Daemon::start_unprivileged(None, None)
    }

    /// As [`Daemon::start_with_unprivileged_qemud`], the node device driver reading the
    /// tree at `sysfs` (and its socket open to vireo-qemud, as the network daemon's), and
    /// vireo-qemud finding `qemu-system-x86_64` in `qemu_dir` first.
    pub fn start_unprivileged(sysfs: Option<&Path>, qemu_dir: Option<&Path>) -> Daemon {
        use std::os::unix::fs::{chown, symlink, PermissionsExt};
        const NOBODY: u32 = 65534;
        let tmp = tempfile::Builder::new()
            .prefix("vireo-test")
            .tempdir()
            .expect("tempdir");
        let root = tmp.path().to_path_buf();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut d = Daemon {
            root: root.clone(),
            layout: Layout::Proxied,
            netns: NetNs::new(),
            children: Vec::new(),
            qemu_dir: None,
            _tmp: Some(tmp),
        };
        std::fs::create_dir_all(root.join("etc/vireo")).expect("etc");
        std::fs::write(
            root.join("etc/vireo/vireo-networkd.conf"),
            "unix_sock_rw_perms = \"0777\"\n",
        )
        .expect("networkd.conf");
        if let Some(sysfs) = sysfs {
            std::fs::write(
                root.join("etc/vireo/vireo-nodedevd.conf"),
                format!(
                    "unix_sock_rw_perms = \"0777\"\nsysfs_root = \"{}\"\n",
                    sysfs.display()
                ),
            )
            .expect("nodedevd.conf");
        }
        d.qemu_dir = qemu_dir.map(Path::to_path_buf);
        let others: Vec<&'static str> = DRIVER_DAEMONS
            .iter()
            .copied()
            .filter(|n| *n != "vireo-qemud")
            .collect();
        for name in &others {
            d.start_one(name, &[]);
        }
        let q = root.join("qemud");
        for dir in ["", "run", "run/vireo", "etc", "etc/vireo"] {
            let p = q.join(dir);
            std::fs::create_dir_all(&p).expect("qemud dirs");
            chown(&p, Some(NOBODY), Some(NOBODY)).expect("chown");
        }
        let token = q.join("etc/vireo/identity-token");
        std::fs::copy(root.join("etc/vireo/identity-token"), &token).expect("token");
        chown(&token, Some(NOBODY), Some(NOBODY)).expect("chown token");
        for name in &others {
            let s = format!("{name}-sock");
            symlink(
                root.join("run/vireo").join(&s),
                q.join("run/vireo").join(&s),
            )
            .expect("link");
        }
        d.start_as("vireo-qemud", &q, Some(NOBODY), &[]);
        symlink(
            q.join("run/vireo/vireo-qemud-sock"),
            root.join("run/vireo/vireo-qemud-sock"),
        )
        .expect("link qemud");
        d.start_one("vireo-proxyd", &[]);
        d
    }

    /// Starts again the vireo-qemud of [`Daemon::start_unprivileged`] (after a kill).
    pub fn restart_unprivileged_qemud(&mut self) {
        let q = self.root.join("qemud");
        self.start_as("vireo-qemud", &q, Some(65534), &[]);
    }

    /// Stops one daemon (SIGTERM) and waits for it.
    pub fn stop_one(&mut self, name: &str) {
        if let Some(i) = self.children.iter().position(|(n, _)| *n == name) {
            let (_, mut c) = self.children.remove(i);
            signal(c.id() as i32, rustix::process::Signal::TERM);
            let _ = c.wait();
        }
    }

    /// Kills one daemon with SIGKILL and waits for it.
    pub fn kill9_one(&mut self, name: &str) {
        if let Some(i) = self.children.iter().position(|(n, _)| *n == name) {
            let (_, mut c) = self.children.remove(i);
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("vireod.log")).unwrap_or_default()
    }

    /// Pids of every daemon running.
    pub fn pids(&self) -> Vec<i32> {
        self.children.iter().map(|(_, c)| c.id() as i32).collect()
    }

    /// The resident memory of every daemon running, summed, in bytes.
    pub fn rss(&self) -> u64 {
        self.pids().into_iter().map(rss_kib).sum::<u64>() * 1024
    }

    pub fn pid(&self) -> u32 {
        self.children.first().map(|(_, c)| c.id()).expect("running")
    }

    /// Pid of the running daemon `name` (e.g. `vireo-qemud`).
    pub fn pid_of(&self, name: &str) -> Option<i32> {
        self.children
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| c.id() as i32)
    }

    pub fn socket(&self) -> PathBuf {
        self.root
            .join(format!("run/vireo/{}-sock", self.layout.front()))
    }

    pub fn socket_ro(&self) -> PathBuf {
        self.root
            .join(format!("run/vireo/{}-sock-ro", self.layout.front()))
    }

    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run/vireo")
    }

    pub fn config_dir(&self) -> PathBuf {
        self.root.join("etc/vireo")
    }

    /// The log of domain `name` (QEMU's and its shim's output).
    pub fn vm_log(&self, name: &str) -> PathBuf {
        self.root.join(format!("var/lib/vireo/log/qemu/{name}.log"))
    }

    /// Pid of the QEMU running domain `name` for these daemons.
    pub fn qemu_pid(&self, name: &str) -> Option<i32> {
        qemu_pid_under(&self.root, name)
    }

    /// The URI clients use for this daemon.
    pub fn uri(&self) -> String {
        format!("qemu+unix:///system?socket={}", self.socket().display())
    }

    pub fn uri_ro(&self) -> String {
        format!("qemu+unix:///system?socket={}", self.socket_ro().display())
    }

    /// SIGKILL to every daemon, as a crash would.
    pub fn kill9(&mut self) {
        for (_, mut c) in self.children.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM to every daemon and wait; returns the exit status of the first.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut first = None;
        for (_, mut c) in self.children.drain(..).rev() {
            let pid = c.id() as i32;
            // SIGCONT too: a test may have stopped it.
            signal(pid, rustix::process::Signal::TERM);
            signal(pid, rustix::process::Signal::CONT);
            // A daemon that does not leave within a minute is killed: a test never hangs.
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            let st = loop {
                match c.try_wait() {
                    Ok(Some(st)) => break st,
                    Ok(None) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    _ => {
                        eprintln!("daemon {pid} ignored SIGTERM for a minute: killed");
                        let _ = c.kill();
                        break c.wait().expect("wait");
                    }
                }
            };
            first = Some(st);
        }
        first.expect("running")
    }

    pub fn is_running(&mut self) -> bool {
        self.children
            .iter_mut()
            .all(|(_, c)| c.try_wait().ok().flatten().is_none())
    }

    /// Runs the real `virsh -c <uri> args…`.
    pub fn virsh(&self, args: &[&str]) -> Output {
        run_cmd("virsh", &[&["-c", &self.uri()], args].concat())
    }

    /// Runs our `vireo -c <uri> args…`.
    pub fn vireo(&self, args: &[&str]) -> Output {
        let b = bin("vireo");
        run_cmd(
            b.to_str().expect("utf-8 path"),
            &[&["-c", &self.uri()], args].concat(),
        )
    }

    /// Runs a python3-libvirt script from `tests/python` with argv: read-write URI, read-only
    /// URI, test data dir, then `args`.
    pub fn python(&self, script: &str, args: &[&str]) -> Output {
        let path = tests_dir().join("python").join(script);
        let p = path.to_str().expect("utf-8 path");
        let data = tests_dir().join("data");
        let d = data.to_str().expect("utf-8 path");
        run_cmd(
            python3(),
            &[&[p, &self.uri(), &self.uri_ro(), d], args].concat(),
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !self.children.is_empty() {
            let _ = self.terminate();
        }
        // VMs and dnsmasq outlive daemons by design; a test's must not outlive the test.
        kill_shims_under(&self.root);
        kill_dnsmasq_under(&self.root);
    }
}

/// The value of line `key` (`Seccomp`, `CapEff`, …) of `/proc/PID/status`, or "" (no such
/// line, or the process is gone).
pub fn proc_status_field(pid: impl std::fmt::Display, key: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

/// VmRSS of `pid`, in KiB (0 when it is gone).
pub fn rss_kib(pid: i32) -> u64 {
    proc_status_field(pid, "VmRSS")
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap_or(0)
}

/// (pid, parent pid, command line with spaces) of every process.
pub fn procs() -> Vec<(i32, i32, String)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((pid, ppid, String::from_utf8_lossy(&cmd).replace('\0', " ")))
        })
        .collect()
}

/// Kills every `vireo-shim` started for `root` and its QEMU, and removes their VMs'
/// cgroups once they are gone.
fn kill_shims_under(root: &Path) {
    let Some(root) = root.to_str() else { return };
    let procs = procs();
    let shims = procs
        .iter()
        .filter(|(_, _, c)| c.contains("vireo-shim") && c.contains(root));
    let mut killed = Vec::new();
    let mut cgroups = Vec::new();
    for (shim, _, cmd) in shims {
        let children = procs.iter().filter(|(_, ppid, _)| ppid == shim);
        for pid in children.map(|(c, _, _)| *c).chain([*shim]) {
            killed.extend(kill_pid(pid));
        }
        // `--def RUN/shim/UUID.xml`: the VM's cgroup is named after the UUID.
        let uuid = cmd
            .split_whitespace()
            .skip_while(|a| *a != "--def")
            .nth(1)
            .and_then(|p| Path::new(p).file_stem())
            .map(|u| u.to_string_lossy().into_owned());
        cgroups.extend(uuid.map(|u| vireo_qemu::cgroup::name_of(&u)));
    }
    // The shims cannot remove their VMs' cgroups now: they can go once QEMU has.
    for p in &killed {
        pidfd_wait(p, Duration::from_secs(10));
    }
    for name in cgroups {
        // A process that has exited is out of its cgroup, but the kernel may let go of
        // the group itself a moment later.
        for _ in 0..20 {
            if vireo_qemu::cgroup::remove_leftover(&name) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Sends `sig` to process `pid`, as kill(2); a process already gone is no error.
pub fn signal(pid: i32, sig: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// SIGKILLs `pid` through a pidfd (so that a pid reused meanwhile is never hit), and
/// returns the pidfd to wait on; None when the process is already gone.
fn kill_pid(pid: i32) -> Option<std::os::fd::OwnedFd> {
    use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};
    let fd = pidfd_open(Pid::from_raw(pid)?, PidfdFlags::empty()).ok()?;
    pidfd_send_signal(&fd, Signal::KILL).ok()?;
    Some(fd)
}

/// Waits up to `timeout` for the process of `pidfd` to end; true when it has.
fn pidfd_wait(pidfd: &std::os::fd::OwnedFd, timeout: Duration) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let t = Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
    loop {
        match poll(&mut fds, Some(&t)) {
            Ok(n) => return n == 1,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
}

/// Kills every dnsmasq started for a network under `root`.
fn kill_dnsmasq_under(root: &Path) {
    let Some(root) = root.to_str() else { return };
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd);
        if (cmd.starts_with("dnsmasq") || cmd.contains("/dnsmasq\0")) && cmd.contains(root) {
            let _ = kill_pid(pid);
        }
    }
}

/// The system python with the libvirt module (Debian's python3-libvirt), checked once.
pub fn python3() -> &'static str {
    static CHECKED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    const PYTHON: &str = "/usr/bin/python3";
    CHECKED.get_or_init(|| {
        let ok = Command::new(vireo_hostprog::require(PYTHON))
            .args(["-c", "import libvirt"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "{PYTHON} cannot import libvirt: python3-libvirt is not installed \
             (scripts/install-deps installs it)"
        );
    });
    PYTHON
}

/// Runs a command to completion; one that hangs is killed after two minutes, so a test
/// fails instead of stalling the suite.
pub fn run_cmd(cmd: &str, args: &[&str]) -> Output {
    run_cmd_within(cmd, args, 120)
}

/// As [`run_cmd`], with a limit of `secs` seconds (a slow guest session, say).
pub fn run_cmd_within(cmd: &str, args: &[&str], secs: u32) -> Output {
    run_cmd_env(cmd, args, secs, &[])
}

/// As [`run_cmd_within`], with variables `env` set for the command (an `EDITOR`, say).
pub fn run_cmd_env(cmd: &str, args: &[&str], secs: u32, env: &[(&str, &str)]) -> Output {
    let program = vireo_hostprog::require(cmd);
    Command::new(vireo_hostprog::require("timeout"))
        .args(["--kill-after=5", &secs.to_string()])
        .arg(program)
        .args(args)
        .env("LC_ALL", "C")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e} (is it installed?)"))
}

/// Asserts success and returns stdout.
#[track_caller]
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "command failed ({}):\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts failure and returns stderr.
#[track_caller]
pub fn fails(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "command should have failed:\nstdout:\n{}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Test data file path.
pub fn data(name: &str) -> PathBuf {
    tests_dir().join("data").join(name)
}

/// Validates an XML document with libvirt's own `virt-xml-validate`.
#[track_caller]
pub fn validate(xml: &str, schema: &str, dir: &Path) {
    let f = dir.join(format!("validate-{schema}.xml"));
    std::fs::write(&f, xml).expect("write xml");
    let o = run_cmd("virt-xml-validate", &[f.to_str().expect("utf-8"), schema]);
    assert!(
        o.status.success(),
        "virt-xml-validate rejected our {schema} XML:\n{}\n{}\n{xml}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The test guest (kernel, initrd), built once from Debian packages by
/// `scripts/build-test-guest` and cached outside the tree.
pub fn guest() -> (PathBuf, PathBuf) {
    static GUEST: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    GUEST
        .get_or_init(|| {
            let script = tests_dir().join("../scripts/build-test-guest");
            let o = Command::new("bash")
                .arg(&script)
                .stdin(Stdio::null())
                .output()
                .expect("run build-test-guest");
            assert!(
                o.status.success(),
                "build-test-guest failed:\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
            let out = String::from_utf8_lossy(&o.stdout);
            let dir = PathBuf::from(out.lines().last().expect("guest dir").trim());
            (dir.join("vmlinuz"), dir.join("initrd.img"))
        })
        .clone()
}

/// A definition of the test guest (TCG) named `name`.
pub fn guest_xml(name: &str) -> String {
    let (kernel, initrd) = guest();
    std::fs::read_to_string(data("guest.xml"))
        .expect("guest.xml")
        .replace("@NAME@", name)
        .replace("@KERNEL@", kernel.to_str().expect("utf-8"))
        .replace("@INITRD@", initrd.to_str().expect("utf-8"))
}

/// Defines `vm1`, the test guest with a 64 MiB disk `vda` of `format` (raw or qcow2) at
/// `ROOT/NAME`; returns the image's path.
pub fn define_with_disk(d: &Daemon, name: &str, format: &str) -> String {
    let img = d.root.join(name);
    let img = img.to_str().expect("utf-8").to_string();
    ok(&run_cmd(
        "qemu-img",
        &["create", "-q", "-f", format, &img, "64M"],
    ));
    let disk = format!(
        "<memballoon model='none'/><disk type='file' device='disk'>\
         <driver name='qemu' type='{format}'/><source file='{img}'/>\
         <target dev='vda' bus='virtio'/></disk>"
    );
    let xml = guest_xml("vm1").replace("<memballoon model='none'/>", &disk);
    ok(&d.virsh(&["define", &write_file(d, "vm1.xml", &xml)]));
    img
}

/// The first 8 bytes the guest sees on the disk whose image (of `format`) is `img`.
pub fn image_head(d: &Daemon, img: &str, format: &str) -> String {
    let out = d.root.join("head.raw");
    let out = out.to_str().expect("utf-8");
    ok(&run_cmd(
        "qemu-img",
        &[
            "dd",
            "-U",
            "-f",
            format,
            "-O",
            "raw",
            "bs=512",
            "count=1",
            &format!("if={img}"),
            &format!("of={out}"),
        ],
    ));
    let bytes = std::fs::read(out).expect("head");
    String::from_utf8_lossy(&bytes[..bytes.len().min(8)]).into_owned()
}

/// Lifecycle events as a python-libvirt client sees them ("NAME EVENT DETAIL" lines).
pub struct EventLog {
    child: Child,
    rx: std::sync::mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl EventLog {
    /// Domain lifecycle events: `NAME EVENT DETAIL` lines.
    pub fn start(d: &Daemon) -> EventLog {
        EventLog::run(d, "events_listen.py", &[])
    }

    /// Domain device events: `NAME device-added|device-removed|device-removal-failed ALIAS`.
    pub fn start_devices(d: &Daemon) -> EventLog {
        EventLog::run(d, "events_listen.py", &["devices"])
    }

    /// The other domain events (reboot, RTC, watchdog, I/O errors, graphics, tray, power
    /// management, balloon, tunables): `NAME KIND …` lines (see `events_listen.py`).
    pub fn start_others(d: &Daemon) -> EventLog {
        EventLog::run(d, "events_listen.py", &["others"])
    }

    /// Network lifecycle events: `network NAME defined|undefined|started|stopped` lines.
    pub fn start_networks(d: &Daemon) -> EventLog {
        EventLog::run(d, "network_events_listen.py", &[])
    }

    /// Node device events: `nodedev NAME created|deleted|defined|undefined|updated` lines.
    pub fn start_nodedevs(d: &Daemon) -> EventLog {
        EventLog::run(d, "nodedev_events_listen.py", &[])
    }

    /// Domain lifecycle events of the connection at `uri` (e.g. a VM's own endpoint).
    pub fn start_at(uri: &str) -> EventLog {
        EventLog::run_at(uri, "events_listen.py", &[])
    }

    fn run(d: &Daemon, script: &str, extra: &[&str]) -> EventLog {
        EventLog::run_at(&d.uri(), script, extra)
    }

    fn run_at(uri: &str, script: &str, extra: &[&str]) -> EventLog {
        let script = tests_dir().join("python").join(script);
        let mut child = Command::new(python3())
            .arg(script)
            .arg(uri)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("events listener");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut log = EventLog {
            child,
            rx,
            seen: Vec::new(),
        };
        log.wait_for("LISTENING");
        log.seen.clear();
        log
    }

    /// Waits (up to two minutes) until `line` has been seen; returns everything so far.
    pub fn wait_for(&mut self, line: &str) -> Vec<String> {
        self.wait_until(line, |l| l == line);
        self.seen.clone()
    }

    /// Waits (up to two minutes) for a line `matches` accepts (`what` names it in the
    /// panic); returns that line.
    pub fn wait_until(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(l) = self.seen.iter().find(|l| matches(l)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!("no event {what:?}; saw {:?}", self.seen),
            }
        }
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pid of the QEMU process running domain `name` for the daemons under `root` (its parent
/// is a shim started for that root), from /proc.
pub fn qemu_pid_under(root: &Path, name: &str) -> Option<i32> {
    let needle = format!("guest={name},");
    let root = root.to_str()?;
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd);
        if !(cmd.contains("qemu-system") && cmd.contains(&needle)) {
            continue;
        }
        let parent = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|st| {
                st.rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .nth(1)?
                    .parse::<i32>()
                    .ok()
            });
        let owner = parent
            .and_then(|pp| std::fs::read(format!("/proc/{pp}/cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).into_owned())
            .unwrap_or_default();
        if owner.contains(root) {
            return Some(pid);
        }
    }
    None
}

/// Waits (at most `timeout`) for process `pid` to exit, on its pidfd: no polling loop.
pub fn wait_exit(pid: i32, timeout: Duration) -> bool {
    use rustix::process::{pidfd_open, Pid, PidfdFlags};
    match Pid::from_raw(pid).map(|p| pidfd_open(p, PidfdFlags::empty())) {
        Some(Ok(fd)) => pidfd_wait(&fd, timeout),
        // Already gone (ESRCH), or no process to wait for.
        _ => true,
    }
}

/// Pid of the `vireo-shim` serving domain `name` under daemon root `root`.
pub fn shim_pid(root: &Path, name: &str) -> Option<i32> {
    let qemu = qemu_pid_under(root, name)?;
    let stat = std::fs::read_to_string(format!("/proc/{qemu}/stat")).ok()?;
    let ppid: i32 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let cmd = std::fs::read(format!("/proc/{ppid}/cmdline")).ok()?;
    let cmd = String::from_utf8_lossy(&cmd);
    (cmd.contains("vireo-shim") && cmd.contains(root.to_str()?)).then_some(ppid)
}

/// Runs the guest's shell through virsh console: waits for it to be ready, then types
/// each command and waits for what it should print. Returns all it saw.
pub fn guest_shell(d: &Daemon, name: &str, pairs: &[&str]) -> String {
    guest_shell_at(&d.uri(), name, pairs)
}

/// [`guest_shell`] through the connection at `uri` (e.g. a VM's own endpoint).
pub fn guest_shell_at(uri: &str, name: &str, pairs: &[&str]) -> String {
    let script = crate::tests_dir().join("python/guest_shell.py");
    // TCG guests on a loaded machine: minutes, not seconds, for a whole session.
    ok(&crate::run_cmd_within(
        crate::python3(),
        &[&[script.to_str().unwrap(), uri, name], pairs].concat(),
        400,
    ))
}

/// The address the guest's card got, from its `VIREO-GUEST-NET eth0 MAC IP` line.
pub fn guest_ip(seen: &str, mac: &str) -> String {
    seen.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 4 && f[0] == "VIREO-GUEST-NET" && f[2] == mac).then(|| f[3].to_string())
        })
        .filter(|ip| ip != "none")
        .unwrap_or_else(|| panic!("no address for {mac} in:\n{seen}"))
}

/// Pings `ip` from the namespace's host side, up to four times, until it answers.
pub fn host_ping(d: &Daemon, ip: &str) {
    for _ in 0..3 {
        if d.netns
            .as_ref()
            .expect("a namespace of the test's own")
            .run("busybox", &["ping", "-c", "1", "-W", "5", ip])
            .status
            .success()
        {
            return;
        }
    }
    in_ns(d, "busybox", &["ping", "-c", "1", "-W", "5", ip]);
}

/// A guest shell command that pings `ip` up to eight times, succeeding on the first answer.
pub fn tries(ip: &str) -> String {
    format!("for i in 1 2 3 4 5 6 7 8; do ping -c 1 -W 5 {ip} >/dev/null && break; done")
}

/// The quoted value that follows `prefix` (e.g. `<target dev='`) in `xml`, or "".
pub fn value_after(xml: &str, prefix: &str) -> String {
    xml.split(prefix)
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .unwrap_or_default()
        .to_string()
}
