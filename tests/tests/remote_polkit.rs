//! `auth_unix_rw` / `auth_unix_ro` = "polkit": a client of the UNIX sockets other than root
//! (and the daemons' own user) must have polkit's yes for `org.libvirt.unix.manage`
//! (read-write socket) or `org.libvirt.unix.monitor` (read-only socket) before anything
//! else is served.
//!
//! Each test has a polkit of its own: in a mount namespace of the test's own (a private
//! `/run`), a `dbus-daemon` with a system bus configuration the test writes listens at the
//! system bus's usual place there, `/run/dbus/system_bus_socket`, and starts the machine's
//! `polkitd` on demand (D-Bus activation: no race with its start). Bind mounts over polkit's
//! directories make polkitd see only the action file Vireo ships and the test's rules, and
//! over `/etc/passwd` and `/etc/group` the test's users. The daemons run in that namespace, and
//! so do the clients, as those users (setpriv). Nothing of the machine's is touched.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};

use rustix::process::Signal;
use vireo_tests::{bin_dir, fails, in_every_layout, ok, run_cmd, tests_dir, Daemon, Layout, NetNs};

/// The test's users: polkit's rules (below) say yes to both actions for ADMIN, to the
/// monitor action only for MONITOR, no to DENIED, and want ASKED to authenticate as an
/// administrator (no agent can ask, as no one is at a terminal).
const ADMIN: (&str, u32) = ("vpk-admin", 4171);
const MONITOR: (&str, u32) = ("vpk-monitor", 4172);
const DENIED: (&str, u32) = ("vpk-denied", 4173);
const ASKED: (&str, u32) = ("vpk-asked", 4174);
const USERS: [(&str, u32); 4] = [ADMIN, MONITOR, DENIED, ASKED];

/// The action file `scripts/install --polkit` installs.
fn actions_file() -> PathBuf {
    tests_dir().join("../scripts/polkit/vireo-libvirt-unix.policy")
}

const RULES: &str = r#"polkit.addRule(function(action, subject) {
    var manage = action.id == "org.libvirt.unix.manage";
    var monitor = action.id == "org.libvirt.unix.monitor";
    if (!manage && !monitor)
        return polkit.Result.NOT_HANDLED;
    if (subject.user == "vpk-admin")
        return polkit.Result.YES;
    if (subject.user == "vpk-monitor")
        return monitor ? polkit.Result.YES : polkit.Result.NO;
    if (subject.user == "vpk-asked")
        return polkit.Result.AUTH_ADMIN;
    return polkit.Result.NO;
});
"#;

/// The test's system bus (and, once asked, its polkitd), in the test's namespace.
struct Bus {
    daemon: Child,
    dir: tempfile::TempDir,
}

impl Bus {
    /// Writes the bus's configuration, polkit's files and the users, mounts them over the
    /// machine's in `ns` (whose mount namespace is the test's own), and starts the bus
    /// there, waiting until it listens.
    fn start(ns: &NetNs) -> Bus {
        let polkitd = vireo_hostprog::require("/usr/lib/polkit-1/polkitd");
        let dbus = vireo_hostprog::require("dbus-daemon");
        let dir = tempfile::Builder::new()
            .prefix("vireo-polkit")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        for sub in ["services", "actions", "rules"] {
            std::fs::create_dir(d.join(sub)).expect("mkdir");
        }
        let conf = d.join("system.conf");
        std::fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{}</servicedir>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#,
                d.join("services").display()
            ),
        )
        .expect("bus config");
        std::fs::write(
            d.join("services/org.freedesktop.PolicyKit1.service"),
            format!(
                "[D-BUS Service]\nName=org.freedesktop.PolicyKit1\nExec={} --no-debug\nUser=root\n",
                polkitd.display()
            ),
        )
        .expect("service file");
        std::fs::copy(actions_file(), d.join("actions/vireo-libvirt-unix.policy"))
            .expect("actions");
        std::fs::write(d.join("rules/50-vireo-test.rules"), RULES).expect("rules");
        let mut passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
        let mut group = std::fs::read_to_string("/etc/group").expect("/etc/group");
        for (name, id) in USERS {
            passwd.push_str(&format!("{name}:x:{id}:{id}::/nonexistent:/bin/sh\n"));
            group.push_str(&format!("{name}:x:{id}:\n"));
        }
        std::fs::write(d.join("passwd"), passwd).expect("passwd");
        std::fs::write(d.join("group"), group).expect("group");
        // polkitd reads them as its own user.
        chmod_tree(d);

        let dir_of = |p: &str| d.join(p).to_string_lossy().into_owned();
        ok(&ns.run("mkdir", &["-p", "/run/dbus"]));
        for (ours, theirs) in [
            ("actions", "/usr/share/polkit-1/actions"),
            ("rules", "/etc/polkit-1/rules.d"),
            ("rules", "/usr/share/polkit-1/rules.d"),
            ("passwd", "/etc/passwd"),
            ("group", "/etc/group"),
        ] {
            ok(&ns.run("mount", &["--bind", &dir_of(ours), theirs]));
        }

        let log = std::fs::File::create(d.join("bus.log")).expect("bus log");
        let mut daemon = ns
            .command(dbus)
            .arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start dbus-daemon");
        // It prints its address once it listens: the readiness signal.
        let mut line = String::new();
        if let Some(out) = daemon.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let bus = Bus { daemon, dir };
        assert!(
            line.starts_with("unix:path=/run/dbus/system_bus_socket"),
            "dbus-daemon did not start ({line:?}): {}",
            std::fs::read_to_string(bus.dir.path().join("bus.log")).unwrap_or_default()
        );
        bus
    }
}

fn chmod_tree(p: &Path) {
    let mode = if p.is_dir() { 0o755 } else { 0o644 };
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    if p.is_dir() {
        for e in std::fs::read_dir(p).expect("read_dir").flatten() {
            chmod_tree(&e.path());
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        // polkitd (started by the bus, which detaches it) first, then the bus; both are
        // ours to end. polkitd is the one in the bus's mount namespace, the test's own.
        let bus = self.daemon.id() as i32;
        let ns_of = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
        let ours = ns_of(bus);
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
                continue;
            };
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            if ours.is_some()
                && ns_of(pid) == ours
                && exe.is_some_and(|x| x.file_name().is_some_and(|n| n == "polkitd"))
            {
                end_and_wait(pid);
            }
        }
        vireo_tests::signal(bus, Signal::TERM);
        let _ = self.daemon.wait();
    }
}

/// Sends SIGTERM to `pid` (a child of our bus, not of ours) and waits until it has
/// ended: its pidfd becomes readable then. Bounded: a minute, then SIGKILL.
fn end_and_wait(pid: i32) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags};
    let Some(pid) = Pid::from_raw(pid) else {
        return;
    };
    let Ok(fd) = pidfd_open(pid, PidfdFlags::empty()) else {
        return; // Already gone.
    };
    let _ = pidfd_send_signal(&fd, Signal::TERM);
    let minute = Timespec {
        tv_sec: 60,
        tv_nsec: 0,
    };
    if poll(&mut [PollFd::new(&fd, PollFlags::IN)], Some(&minute)) == Ok(0) {
        let _ = pidfd_send_signal(&fd, Signal::KILL);
    }
}

/// The daemons of `layout`, both of their sockets guarded by polkit (every daemon's: the
/// front one is what the clients reach), in namespaces whose polkit is `bus`'s.
fn daemons(layout: Layout, ns: NetNs) -> Daemon {
    Daemon::start_prepared_in(
        layout,
        ns,
        |root| {
            // The test users reach the sockets: the root is open to them, and the sockets
            // are (libvirt's 0777 for the read-write socket under polkit).
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755))
                .expect("chmod root");
            let etc = root.join("etc/vireo");
            std::fs::create_dir_all(&etc).expect("etc");
            let names = ["vireod", "vireo-proxyd"]
                .into_iter()
                .chain(vireo_tests::DRIVER_DAEMONS);
            for name in names {
                std::fs::write(
                    etc.join(format!("{name}.conf")),
                    "auth_unix_rw = \"polkit\"\nauth_unix_ro = \"polkit\"\n",
                )
                .expect("conf");
            }
        },
        &[],
    )
}

/// Runs `program args` in the daemons' namespaces as `user`, in a session of its own (no
/// terminal: virsh must not start a polkit agent on the tester's).
fn as_user(d: &Daemon, user: (&str, u32), program: &str, args: &[&str]) -> Output {
    let id = user.1.to_string();
    d.ns_command(vireo_hostprog::require("setsid").to_str().expect("path"))
        .arg("--wait")
        .arg(vireo_hostprog::require("timeout"))
        .args(["--kill-after=5", "120"])
        .arg(vireo_hostprog::require("setpriv"))
        .args(["--reuid", &id, "--regid", &id, "--clear-groups"])
        .arg(vireo_hostprog::require(program))
        .args(args)
        .env("HOME", "/nonexistent")
        .env("LC_ALL", "C")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_CACHE_HOME")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} as {}: {e}", user.0))
}

fn virsh_as(d: &Daemon, user: (&str, u32), ro: bool, args: &[&str]) -> Output {
    let uri = if ro { d.uri_ro() } else { d.uri() };
    let mut all = vec!["-c", &uri];
    if ro {
        all.push("-r");
    }
    all.extend_from_slice(args);
    as_user(d, user, "virsh", &all)
}

fn python_as(d: &Daemon, user: (&str, u32), args: &[&str]) -> Output {
    let script = vireo_tests::tests_dir().join("python/polkit.py");
    let script = script.to_str().expect("utf-8 path");
    as_user(d, user, vireo_tests::python3(), &[&[script], args].concat())
}

/// Writes a domain definition the test users can read; returns its path.
fn domain_file(d: &Daemon, name: &str) -> String {
    let path = d.root.join(format!("{name}.xml"));
    std::fs::write(
        &path,
        format!(
            "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>\
             <vcpu>1</vcpu><os><type>hvm</type></os></domain>"
        ),
    )
    .expect("domain xml");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    path.to_string_lossy().into_owned()
}

/// virsh's way of saying it could not connect, then libvirt's message.
#[track_caller]
fn refused(o: &Output, message: &str) {
    let err = fails(o);
    assert!(
        err.contains("failed to connect to the hypervisor") && err.contains(message),
        "expected {message:?}, got:\n{err}"
    );
}

const DENIED_BY_POLICY: &str = "error: authentication failed: access denied by policy";

fn polkit_guards_the_sockets(layout: Layout) {
    let ns = NetNs::with_private_run().expect("namespaces (root needed)");
    let _bus = Bus::start(&ns);
    let d = daemons(layout, ns);

    // Root is let in without polkit being asked, as by libvirt.
    ok(&d.virsh(&["define", &domain_file(&d, "pk-root")]));

    // Yes to both actions: virsh and python-libvirt list and define.
    ok(&virsh_as(
        &d,
        ADMIN,
        false,
        &["define", &domain_file(&d, "pk-admin")],
    ));
    let list = ok(&virsh_as(&d, ADMIN, false, &["list", "--all", "--name"]));
    assert_eq!(
        list.split_whitespace().collect::<Vec<_>>(),
        ["pk-admin", "pk-root"],
        "{list}"
    );
    assert_eq!(
        ok(&python_as(&d, ADMIN, &["open", &d.uri(), "pk-python"])).trim(),
        "domains=pk-admin,pk-python,pk-root"
    );
    let ro = ok(&virsh_as(&d, ADMIN, true, &["list", "--all", "--name"]));
    assert!(ro.contains("pk-python"), "{ro}");
    // Vireo's own client asks polkit too.
    let vireo = vireo_tests::bin("vireo");
    let out = as_user(
        &d,
        ADMIN,
        vireo.to_str().expect("path"),
        &["-c", &d.uri(), "list", "--all", "--name"],
    );
    assert!(ok(&out).contains("pk-python"), "{out:?}");

    // Yes to the monitor action only: the read-only socket, not the read-write one.
    let ro = ok(&virsh_as(&d, MONITOR, true, &["list", "--all", "--name"]));
    assert!(ro.contains("pk-admin"), "{ro}");
    assert_eq!(
        ok(&python_as(&d, MONITOR, &["open", &d.uri_ro()])).trim(),
        "domains=pk-admin,pk-python,pk-root"
    );
    refused(&virsh_as(&d, MONITOR, false, &["list"]), DENIED_BY_POLICY);

    // No: libvirt's error, from virsh, python-libvirt and Vireo's client alike.
    refused(&virsh_as(&d, DENIED, false, &["list"]), DENIED_BY_POLICY);
    refused(&virsh_as(&d, DENIED, true, &["list"]), DENIED_BY_POLICY);
    let out = python_as(&d, DENIED, &["open", &d.uri(), "pk-denied"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "error 45 60 authentication failed: access denied by policy",
        "{out:?}"
    );
    let out = as_user(
        &d,
        DENIED,
        vireo.to_str().expect("path"),
        &["-c", &d.uri(), "list"],
    );
    assert!(fails(&out).contains("access denied by policy"), "{out:?}");

    // polkit wants an administrator's password and nobody can be asked for it.
    refused(
        &virsh_as(&d, ASKED, false, &["list"]),
        "error: authentication unavailable: no polkit agent available to authenticate action 'org.libvirt.unix.manage'",
    );
    refused(
        &virsh_as(&d, ASKED, true, &["list"]),
        "error: authentication unavailable: no polkit agent available to authenticate action 'org.libvirt.unix.monitor'",
    );

    // Nothing is served before polkit's yes, nor after its no.
    let sock = d.socket();
    let sock = sock.to_str().expect("utf-8 path");
    let out = ok(&python_as(&d, DENIED, &["raw", sock]));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "open error 39 7 authentication required",
            "auth-list ok 2",
            "auth-polkit error 45 60 authentication failed: access denied by policy",
            "open error 39 7 authentication required",
        ],
        "{out}"
    );
    let out = ok(&python_as(&d, ADMIN, &["raw", sock]));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "open error 39 7 authentication required",
            "auth-list ok 2",
            "auth-polkit ok complete=1",
            "open ok",
        ],
        "{out}"
    );

    // What was refused changed nothing.
    let list = ok(&d.virsh(&["list", "--all", "--name"]));
    assert_eq!(
        list.split_whitespace().collect::<Vec<_>>(),
        ["pk-admin", "pk-python", "pk-root"],
        "{list}"
    );
}

/// With no polkit to ask (no system bus at all), root is still let in, as libvirt lets it
/// in "if some piece of polkit isn't present/running"; anyone else is refused and told why.
fn root_needs_no_polkit(layout: Layout) {
    let ns = NetNs::with_private_run().expect("namespaces (root needed)");
    // The users, but no bus.
    let bus_less = tempfile::tempdir().expect("tempdir");
    let mut passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    passwd.push_str(&format!(
        "{}:x:{}:{}::/nonexistent:/bin/sh\n",
        ADMIN.0, ADMIN.1, ADMIN.1
    ));
    let file = bus_less.path().join("passwd");
    std::fs::write(&file, passwd).expect("passwd");
    chmod_tree(bus_less.path());
    ok(&ns.run(
        "mount",
        &["--bind", file.to_str().expect("path"), "/etc/passwd"],
    ));
    let d = daemons(layout, ns);

    ok(&d.virsh(&["define", &domain_file(&d, "pk-root")]));
    assert_eq!(ok(&d.virsh(&["list", "--all", "--name"])).trim(), "pk-root");
    let out = virsh_as(&d, ADMIN, false, &["list"]);
    refused(&out, "error: authentication failed: cannot ask polkit: ");
}

in_every_layout!(polkit_guards_the_sockets, root_needs_no_polkit);

/// `scripts/install --polkit` installs the action file (only when asked).
#[test]
fn install_ships_the_actions() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let script = tests_dir().join("../scripts/install");
    let script = script.to_str().expect("path");
    let t = tmp.path().to_str().expect("path");
    let install = |extra: &[&str]| {
        let prefix = format!("{t}/usr");
        let units = format!("{t}/units");
        let from = bin_dir();
        let from = from.to_str().expect("path");
        let users = format!("{t}/sysusers.d");
        let base = [
            script,
            "--prefix",
            &prefix,
            "--unitdir",
            &units,
            "--from",
            from,
            "--sysusersdir",
            &users,
        ];
        ok(&run_cmd("bash", &[&base[..], extra].concat()));
    };
    let dir = format!("{t}/actions");
    install(&["--polkitdir", &dir]);
    assert!(!Path::new(&dir).exists(), "installed without --polkit");
    install(&["--polkit", "--polkitdir", &dir]);
    let installed = std::fs::read(format!("{dir}/vireo-libvirt-unix.policy")).expect("installed");
    assert_eq!(installed, std::fs::read(actions_file()).expect("ours"));
    ok(&run_cmd(
        "xmllint",
        &["--noout", &format!("{dir}/vireo-libvirt-unix.policy")],
    ));
}
