//! `qemu+ssh://` against Vireo, with the unmodified virsh, python-libvirt, our `vireo` and
//! our client library. A real `sshd`, started by the test with a configuration, host key and
//! authorized key of its own, listens on a loopback port inside the test's network namespace
//! (whose `/run` is private: sshd's `/run/sshd` and the drop-in links of `--libvirt-paths`
//! are there and nowhere else). The sessions' PATH starts with the build's directory, so the
//! command virsh sends (`which virt-ssh-helper … else nc -U …`) finds our helper, and
//! `VIREO_RUN_DIR` shows it the daemons' sockets under the test's root. Every client runs in
//! those namespaces with an empty home of its own (ssh writes its known_hosts there): the
//! machine's ssh setup is neither read nor written, and no traffic leaves the namespace.

use std::ffi::{CStr, CString};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use rustix::process::Signal;
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
use vireo_tests::{
    bin, bin_dir, fails, guest_xml, in_every_layout, ok, output_parts, python3, run_cmd, tests_dir,
    wait_exit, write_file, Daemon, Layout,
};

/// sshd's port, on the namespace's own loopback.
const PORT: u16 = 2222;

/// A test's own sshd.
struct Sshd {
    dir: PathBuf,
    config: PathBuf,
    child: Option<Child>,
}

impl Sshd {
    /// Keys, configuration and a running sshd whose sessions find the daemons' sockets by
    /// `VIREO_RUN_DIR` (with `run_dir`), or else by the paths a plain system has.
    fn start(d: &Daemon, run_dir: bool) -> Sshd {
        let dir = d.root.join("ssh");
        std::fs::create_dir_all(&dir).expect("ssh dir");
        for k in ["host_key", "client_key", "stranger_key"] {
            let f = dir.join(k);
            ok(&run_cmd(
                "ssh-keygen",
                &["-q", "-t", "ed25519", "-N", "", "-C", k, "-f", path(&f)],
            ));
        }
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys"))
            .expect("authorized_keys");
        // sshd's privilege separation directory, in the namespace's own /run.
        ok(&d
            .ns_command("mkdir")
            .args(["-p", "-m", "0755", "/run/sshd"])
            .output()
            .expect("mkdir"));
        let mut env = format!("PATH={}:/usr/sbin:/usr/bin:/sbin:/bin", bin_dir().display());
        if run_dir {
            env.push_str(&format!(" VIREO_RUN_DIR={}", d.run_dir().display()));
        }
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {PORT}\nListenAddress 127.0.0.1\nHostKey {dir}/host_key\n\
                 PidFile {dir}/sshd.pid\nAuthorizedKeysFile {dir}/authorized_keys\n\
                 UsePAM no\nStrictModes no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
                 SetEnv {env}\n",
                dir = dir.display()
            ),
        )
        .expect("sshd_config");
        let mut s = Sshd {
            dir,
            config,
            child: None,
        };
        s.run(d);
        s
    }

    /// Starts sshd on the existing keys and configuration; waits for its READY=1.
    fn run(&mut self, d: &Daemon) {
        assert!(self.child.is_none(), "sshd already running");
        let notify_path = self.dir.join("notify");
        let _ = std::fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path).expect("notify socket");
        notify
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("sshd.log"))
            .expect("sshd log");
        self.child = Some(
            d.ns_command("/usr/sbin/sshd")
                .args(["-D", "-e", "-f", path(&self.config)])
                .env("NOTIFY_SOCKET", &notify_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start sshd (openssh-server: scripts/install-deps)"),
        );
        let mut buf = [0u8; 64];
        let n = notify
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("sshd did not become ready: {e}\n{}", self.log()));
        assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
        let _ = std::fs::remove_file(&notify_path);
    }

    /// The URI of the daemons through this sshd, as root with `key`, with `params`.
    fn uri_with(&self, key: &str, params: &str) -> String {
        let mut u = format!(
            "qemu+ssh://root@127.0.0.1:{PORT}/system?keyfile={}&no_verify=1",
            self.dir.join(key).display()
        );
        if !params.is_empty() {
            u.push('&');
            u.push_str(params);
        }
        u
    }

    fn uri(&self, params: &str) -> String {
        self.uri_with("client_key", params)
    }

    /// Our `virt-ssh-helper`s running in this sshd's sessions.
    fn helpers(&self) -> Vec<i32> {
        let helper = bin("virt-ssh-helper");
        let Some(c) = &self.child else {
            return Vec::new();
        };
        descendants(c.id() as i32)
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|e| e == helper))
            .collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// Kills every sshd process — the listener and each session's — as a crash of the
    /// remote host's ssh service would; what the sessions ran is left to notice alone.
    fn kill(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        for (pid, comm) in descendants(c.id() as i32) {
            if comm == "sshd" {
                vireo_tests::signal(pid, Signal::KILL);
            }
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            for (pid, _) in descendants(c.id() as i32) {
                vireo_tests::signal(pid, Signal::KILL);
            }
        }
        self.kill();
    }
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Every process below `pid`, with its command name.
fn descendants(pid: i32) -> Vec<(i32, String)> {
    let procs: Vec<(i32, i32, String)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            let (head, tail) = stat.rsplit_once(')')?;
            let comm = head.split_once('(')?.1.to_string();
            let ppid = tail.split_whitespace().nth(1)?.parse().ok()?;
            Some((p, ppid, comm))
        })
        .collect();
    let mut out: Vec<(i32, String)> = Vec::new();
    let mut parents = vec![pid];
    while let Some(parent) = parents.pop() {
        for (p, pp, comm) in &procs {
            if *pp == parent && !out.iter().any(|(o, _)| o == p) {
                out.push((*p, comm.clone()));
                parents.push(*p);
            }
        }
    }
    out
}

/// The home directory ssh uses: the password database's, not `$HOME`.
fn home_dir() -> String {
    let uid = rustix::process::getuid().as_raw().to_string();
    std::fs::read_to_string("/etc/passwd")
        .expect("/etc/passwd")
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 5 && f[2] == uid)
        .map(|f| f[5].to_string())
        .expect("this user's home")
}

/// Puts the calling process (or thread) in a mount namespace of its own where the home
/// directory is an empty tmpfs. Only system calls, no allocation: fit to run between fork
/// and exec.
fn private_home(home: &CStr) -> std::io::Result<()> {
    use rustix::mount::{mount, mount_change, MountFlags, MountPropagationFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
    mount_change(
        c"/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )?;
    mount(c"tmpfs", home, c"tmpfs", MountFlags::empty(), None)?;
    Ok(())
}

/// `program args` as a client of the remote host: in the test's namespaces, with an empty
/// home of its own, killed if it hangs.
fn client(d: &Daemon, program: &str, args: &[&str]) -> Command {
    let mut c = d.ns_command("timeout");
    c.args(["--kill-after=5", "120", program])
        .args(args)
        .env("LC_ALL", "C")
        .env_remove("LIBVIRT_DEFAULT_URI")
        .stdin(Stdio::null());
    let home = CString::new(home_dir()).expect("home");
    // SAFETY: private_home makes only system calls (async-signal-safe); `home` lives in
    // the closure.
    unsafe {
        c.pre_exec(move || private_home(&home));
    }
    c
}

fn run(mut c: Command) -> Output {
    c.output().expect("run a client")
}

fn virsh(d: &Daemon, uri: &str, args: &[&str]) -> Output {
    run(client(d, "virsh", &[&["-c", uri], args].concat()))
}

fn vireo(d: &Daemon, uri: &str, args: &[&str]) -> Output {
    let b = bin("vireo");
    run(client(d, path(&b), &[&["-c", uri], args].concat()))
}

/// virsh over ssh lists and starts a domain, read-write and read-only; what it prints is
/// what it prints over the local socket.
fn virsh_over_ssh(layout: Layout) {
    let d = Daemon::start_dropin(layout);
    let sshd = Sshd::start(&d, true);
    let uri = sshd.uri("");
    let local = ok(&d.virsh(&["list", "--all"]));
    assert_eq!(ok(&virsh(&d, &uri, &["list", "--all"])), local);
    let xml = write_file(&d, "vm1.xml", &guest_xml("vm1"));
    let out = ok(&virsh(&d, &uri, &["define", &xml]));
    assert!(out.starts_with("Domain 'vm1' defined from"), "{out}");
    assert_eq!(
        ok(&virsh(&d, &uri, &["start", "--paused", "vm1"])).trim(),
        "Domain 'vm1' started"
    );
    let list = ok(&virsh(&d, &uri, &["list", "--all"]));
    assert!(list.contains(" vm1 ") && list.contains("paused"), "{list}");
    assert_eq!(list, ok(&d.virsh(&["list", "--all"])));
    // Only through our helper (the remote command without nc).
    assert_eq!(
        ok(&virsh(&d, &sshd.uri("proxy=native"), &["list", "--all"])),
        list
    );
    // Read-only: `virt-ssh-helper -r`, the daemon's read-only socket.
    let ro = run(client(&d, "virsh", &["-r", "-c", &uri, "domstate", "vm1"]));
    assert_eq!(ok(&ro).trim(), "paused");
    let err = fails(&run(client(
        &d,
        "virsh",
        &["-r", "-c", &uri, "destroy", "vm1"],
    )));
    assert!(err.contains("read only access prevents"), "{err}");
    assert_eq!(
        ok(&virsh(&d, &uri, &["destroy", "vm1"])).trim(),
        "Domain 'vm1' destroyed"
    );
    ok(&virsh(&d, &uri, &["undefine", "vm1"]));
    assert_eq!(ok(&virsh(&d, &uri, &["list", "--all"])), local);
    // Every session's helper is gone with its session.
    assert!(sshd
        .helpers()
        .iter()
        .all(|&p| wait_exit(p, Duration::from_secs(30))));
}

/// python-libvirt starts a domain over ssh; our `vireo` over ssh says what virsh over ssh
/// says about it, and stops it.
fn python_and_vireo_over_ssh(layout: Layout) {
    let d = Daemon::start_dropin(layout);
    let sshd = Sshd::start(&d, true);
    let uri = sshd.uri("");
    let xml = write_file(&d, "vm-py.xml", &guest_xml("vm-py"));
    let script = tests_dir().join("python/remote_ssh.py");
    let out = ok(&run(client(
        &d,
        python3(),
        &[path(&script), "start", &uri, &xml],
    )));
    assert!(out.contains("started vm-py state=3 domains=vm-py"), "{out}");
    assert!(out.contains(" type=QEMU"), "{out}");
    for args in [
        &["list", "--all"][..],
        &["domstate", "vm-py"],
        &["domid", "vm-py"],
        &["list", "--name"],
    ] {
        let ours = vireo(&d, &uri, args);
        let theirs = virsh(&d, &uri, args);
        assert!(ours.status.success(), "{args:?}: {ours:?}");
        assert_eq!(output_parts(&ours), output_parts(&theirs), "{args:?}");
    }
    // Read-only through our client too.
    let b = bin("vireo");
    let ro = run(client(
        &d,
        path(&b),
        &["-r", "-c", &uri, "domstate", "vm-py"],
    ));
    assert_eq!(ok(&ro).trim(), "paused");
    let err = fails(&run(client(
        &d,
        path(&b),
        &["-r", "-c", &uri, "destroy", "vm-py"],
    )));
    assert!(err.contains("read only access prevents"), "{err}");
    ok(&vireo(&d, &uri, &["destroy", "vm-py"]));
    ok(&vireo(&d, &uri, &["undefine", "vm-py"]));
    assert!(!ok(&d.virsh(&["list", "--all"])).contains("vm-py"));
}

/// The other remote commands libvirt's client sends: `nc -U` on the socket given (or on
/// libvirt's `libvirt-sock`, which `--libvirt-paths` answers), and our helper finding the
/// daemons by libvirt's paths when the session has no `VIREO_RUN_DIR`.
fn netcat_and_libvirt_paths(layout: Layout) {
    let d = Daemon::start_dropin(layout);
    let sshd = Sshd::start(&d, false);
    let local = ok(&d.virsh(&["list", "--all"]));
    let own = format!("socket={}", d.socket().display());
    // Without a proxy there is no libvirt-sock: nc goes to virtqemud's socket by name.
    let legacy = if layout == Layout::Modular {
        "proxy=netcat&socket=/var/run/libvirt/virtqemud-sock"
    } else {
        "proxy=netcat"
    };
    for params in ["", "proxy=native", &own, legacy, "netcat=nc"] {
        if params == "netcat=nc" && layout == Layout::Modular {
            continue;
        }
        let uri = sshd.uri(params);
        assert_eq!(ok(&virsh(&d, &uri, &["list", "--all"])), local, "{params}");
        assert_eq!(ok(&vireo(&d, &uri, &["list", "--all"])), local, "{params}");
    }
}

in_every_layout!(
    virsh_over_ssh,
    python_and_vireo_over_ssh,
    netcat_and_libvirt_paths
);

/// Our client library in this process, on a thread in the daemons' network namespace with
/// a home of its own: opens over ssh, lists, then (once told) lists again; says how each
/// went.
fn rust_client_session(
    d: &Daemon,
    uri: String,
) -> (
    std::sync::mpsc::Receiver<String>,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let net = std::fs::File::open(format!("/proc/{}/ns/net", d.pid())).expect("daemon's netns");
    let home = CString::new(home_dir()).expect("home");
    let (tx, rx) = std::sync::mpsc::channel();
    let (go, wait) = tokio::sync::oneshot::channel::<()>();
    let t = std::thread::spawn(move || {
        // Only this thread's namespaces change (its unshare(CLONE_NEWNS) gives it a file
        // system context of its own).
        let entered = private_home(&home).and_then(|()| {
            move_into_link_name_space(net.as_fd(), Some(LinkNameSpaceType::Network))
                .map_err(Into::into)
        });
        if let Err(e) = entered {
            let _ = tx.send(format!("namespaces: {e}"));
            return;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let c = match vireo_client::Connect::open(&uri, false).await {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(format!("open: {e}"));
                    return;
                }
            };
            match c.list_all_domains(0).await {
                Ok(v) => tx.send(format!("first {}", v.len())),
                Err(e) => tx.send(format!("first call: {e}")),
            }
            .ok();
            let _ = wait.await;
            let _ = tx.send(match c.list_all_domains(0).await {
                Ok(_) => "second call worked".into(),
                Err(e) => format!("error {e}"),
            });
        });
    });
    (rx, go, t)
}

/// Faults: a key the host does not know is refused; sshd killed mid-session ends each
/// client's session with what ssh said, the helpers go, the daemons go on serving others,
/// and a new sshd serves new sessions.
#[test]
fn faults() {
    let d = Daemon::start_dropin(Layout::Modular);
    let mut sshd = Sshd::start(&d, true);
    let b = bin("vireo");
    let vireo_bin = path(&b);

    let stranger = sshd.uri_with("stranger_key", "");
    let err = fails(&virsh(&d, &stranger, &["list"]));
    assert!(err.contains("Permission denied (publickey)"), "{err}");
    let err = fails(&vireo(&d, &stranger, &["list"]));
    assert!(
        err.contains("error: failed to connect to the hypervisor")
            && err.contains("Permission denied (publickey)"),
        "{err}"
    );

    // Sessions held open: python-libvirt, and our client library.
    let uri = sshd.uri("");
    let script = tests_dir().join("python/remote_ssh.py");
    let mut py = client(&d, python3(), &[path(&script), "hold", &uri])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // (libvirt reports the lost session on stderr again when the connection goes.)
        .stderr(Stdio::null())
        .spawn()
        .expect("python");
    let mut py_out = BufReader::new(py.stdout.take().expect("stdout"));
    let mut line = String::new();
    py_out.read_line(&mut line).expect("python's first line");
    assert_eq!(line.trim(), "first", "{line}");
    let (rust_said, go, rust) = rust_client_session(&d, uri.clone());
    let said = rust_said.recv().expect("the Rust client's first answer");
    assert_eq!(said, "first 0");
    let held = sshd.helpers();
    assert_eq!(held.len(), 2, "{held:?}");

    sshd.kill();
    // Each helper notices its session's end by itself.
    for p in held {
        assert!(wait_exit(p, Duration::from_secs(30)), "helper {p} stayed");
    }
    let mut stdin = py.stdin.take().expect("stdin");
    writeln!(stdin).expect("to python");
    line.clear();
    py_out.read_line(&mut line).expect("python's second line");
    assert!(line.starts_with("error code="), "{line}");
    assert!(py.wait().expect("python").success());
    let _ = go.send(());
    let said = rust_said.recv().expect("the Rust client's second answer");
    assert!(
        said.starts_with("error End of file while reading data:")
            && said.contains("closed by remote host"),
        "{said}"
    );
    rust.join().expect("client thread");

    // No sshd: the connection is refused, clearly.
    let err = fails(&virsh(&d, &uri, &["list"]));
    assert!(err.contains("Connection refused"), "{err}");
    let err = fails(&vireo(&d, &uri, &["list"]));
    assert!(err.contains("Connection refused"), "{err}");

    // The daemons went on serving others, and serve new sessions once sshd is back.
    ok(&d.virsh(&["list", "--all"]));
    sshd.run(&d);
    ok(&virsh(&d, &uri, &["list", "--all"]));
    ok(&run(client(&d, vireo_bin, &["-c", &uri, "list", "--all"])));
}
