//! Live migration between two Vireo "hosts" with the unmodified virsh and python-libvirt:
//! two daemons under separate roots, each in a network namespace of its own, joined by a
//! veth pair this test makes (10.77.9.0/30, inside those namespaces only) that carries the
//! migration stream. The clients reach both daemons over their UNIX sockets.
//!
//! The test guest runs a counter (a file on its RAM disk, and its console); after a
//! migration the counter goes on from where it was on the destination: the guest moved, it
//! did not boot again. Faults (the destination's QEMU killed, the network cut, the job
//! cancelled) leave the guest running on the source and nowhere else.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use vireo_tests::{fails, guest_shell, ok, python3, tests_dir, write_file, Daemon, Layout};

const SRC_ADDR: &str = "10.77.9.1";
const DST_ADDR: &str = "10.77.9.2";

/// Two hosts and the link between them (removed when dropped).
struct Hosts {
    a: Daemon,
    b: Daemon,
}

impl Hosts {
    fn start(layout: Layout) -> Hosts {
        Hosts::join(Daemon::start_in(layout), Daemon::start_in(layout))
    }

    /// Links the two hosts' namespaces.
    fn join(a: Daemon, b: Daemon) -> Hosts {
        let h = Hosts { a, b };
        let peer = h.b.pid().to_string();
        ns(
            &h.a,
            &[
                "link", "add", "mig-a", "type", "veth", "peer", "name", "mig-b", "netns", &peer,
            ],
        );
        ns(
            &h.a,
            &["addr", "add", &format!("{SRC_ADDR}/30"), "dev", "mig-a"],
        );
        ns(&h.a, &["link", "set", "mig-a", "up"]);
        ns(
            &h.b,
            &["addr", "add", &format!("{DST_ADDR}/30"), "dev", "mig-b"],
        );
        ns(&h.b, &["link", "set", "mig-b", "up"]);
        h
    }

    /// Cuts the network between the hosts (both ends of the veth go).
    fn cut(&self) {
        ns(&self.a, &["link", "del", "mig-a"]);
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        if let Some(n) = self.a.netns.as_ref() {
            let _ = n.run("ip", &["link", "del", "mig-a"]);
        }
    }
}

/// `ip ARGS` in the daemon's namespace; it must work.
#[track_caller]
fn ns(d: &Daemon, args: &[&str]) -> String {
    let n = d
        .netns
        .as_ref()
        .expect("migration tests run as root, each host in a namespace of its own");
    ok(&n.run("ip", args))
}

fn state(d: &Daemon, name: &str) -> String {
    ok(&d.virsh(&["domstate", "--reason", name]))
        .trim()
        .to_string()
}

fn listed(d: &Daemon) -> String {
    ok(&d.virsh(&["list", "--all", "--name"]))
}

/// Boots `vm1` (transient, or defined first with `persistent`) on `d` and starts its
/// counter: a number in /tmp/count (and on the console), one more every 200 ms. Returns
/// the lifecycle event listener started before the boot.
fn boot_counting(d: &Daemon, persistent: bool) -> Events {
    let xml = write_file(d, "vm1.xml", &vireo_tests::guest_xml("vm1"));
    if persistent {
        ok(&d.virsh(&["define", &xml]));
        ok(&d.virsh(&["start", "--paused", "vm1"]));
    } else {
        ok(&d.virsh(&["create", "--paused", &xml]));
    }
    let ev = Events::start(d);
    guest_shell(
        d,
        "vm1",
        &[
            "--resume",
            "echo MARK-$((6*7)) > /tmp/mark; \
             (i=0; while :; do i=$((i+1)); echo $i > /tmp/count; echo COUNT-$i; sleep 0.2; done) & \
             echo STARTED-$((1+1))",
            "STARTED-2",
        ],
    );
    ev
}

/// The counter's value now, read in the guest on `d` (which must run it).
fn counter(d: &Daemon) -> u64 {
    let seen = guest_shell(
        d,
        "vm1",
        &["--running", "echo AT-$(cat /tmp/count)-END", "-END"],
    );
    seen.split("AT-")
        .filter_map(|s| s.split("-END").next()?.trim().parse::<u64>().ok())
        .last()
        .unwrap_or_else(|| panic!("no counter value in:\n{seen}"))
}

/// The guest on `d` went on from `before`: same memory (the mark), the counter past it and
/// still counting.
fn went_on(d: &Daemon, before: u64) {
    guest_shell(d, "vm1", &["--running", "cat /tmp/mark", "MARK-42"]);
    let now = counter(d);
    assert!(
        now > before,
        "the counter went from {before} to {now}: not on"
    );
    let later = counter(d);
    assert!(later > now, "the counter stopped at {now}");
}

/// A host's events as a python-libvirt client sees them.
struct Events {
    child: Child,
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Events {
    fn start(d: &Daemon) -> Events {
        let mut child = Command::new(python3())
            .arg(tests_dir().join("python/migration_events.py"))
            .arg(d.uri())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("event listener");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut e = Events {
            child,
            rx,
            seen: Vec::new(),
        };
        e.wait_for("LISTENING");
        e.seen.clear();
        e
    }

    /// Waits (two minutes at most) for a line.
    fn wait_for(&mut self, line: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.seen.iter().any(|l| l == line) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!("no event {line:?}; saw {:?}", self.seen),
            }
        }
    }

    /// Waits for a line that starts with `prefix`.
    fn wait_for_prefix(&mut self, prefix: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.seen.iter().any(|l| l.starts_with(prefix)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!("no event {prefix:?}…; saw {:?}", self.seen),
            }
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `virsh -c SRC migrate ARGS` in the background (a slow migration to watch or break).
fn migrate_in_background(src: &Daemon, args: &[&str]) -> Child {
    Command::new(vireo_hostprog::require("virsh"))
        .args(["-c", &src.uri(), "migrate"])
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("virsh migrate")
}

/// Waits (two minutes at most) for the migration job on `d` to have moved data.
fn wait_for_job(d: &Daemon) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let o = d.virsh(&["domjobinfo", "vm1"]);
        let info = String::from_utf8_lossy(&o.stdout).into_owned();
        let processed = info
            .lines()
            .find(|l| l.starts_with("Data processed:"))
            .is_some_and(|l| !l.contains(" 0.000 B"));
        if info.contains("Job type:         Unbounded") && processed {
            return info;
        }
        assert!(Instant::now() < deadline, "no migration job seen: {info}");
        // domjobinfo is the only way to see the job's progress: asked again shortly.
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The background migration's end: (success, stderr).
fn finish(mut c: Child) -> (bool, String) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Some(st) = c.try_wait().expect("wait virsh") {
            let mut err = String::new();
            if let Some(mut e) = c.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return (st.success(), err);
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            panic!("virsh migrate did not end");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The guest runs on `a` and nowhere on `b`.
fn runs_only_on(a: &Daemon, b: &Daemon) {
    assert!(
        state(a, "vm1").starts_with("running"),
        "{}",
        state(a, "vm1")
    );
    assert!(a.qemu_pid("vm1").is_some());
    // The destination drops what it started once its QEMU has ended (the shim's stopped
    // event), so for a moment it may still list the domain after that QEMU is gone.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (pid, list) = (b.qemu_pid("vm1"), listed(b));
        if pid.is_none() && !list.contains("vm1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "vm1 stays on the destination: QEMU {pid:?}, listed {list:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `virsh migrate --live --p2p` there, back without `--p2p`, and there again tunnelled,
/// the counter going on each time; the events on both sides; `--persistent` and
/// `--undefinesource`.
fn live_there_and_back(layout: Layout) {
    let h = Hosts::start(layout);
    let mut ev_a = boot_counting(&h.a, true);
    let mut ev_b = Events::start(&h.b);
    let before = counter(&h.a);

    // Peer to peer: the source's daemon reaches the destination's itself.
    let o = h.a.virsh(&[
        "migrate",
        "--live",
        "--p2p",
        "--auto-converge",
        "--verbose",
        "vm1",
        &h.b.uri(),
        "--migrateuri",
        &format!("tcp://{DST_ADDR}"),
    ]);
    ok(&o);
    // virsh follows the job (domjobinfo on its connection) while the migration runs.
    let progress = String::from_utf8_lossy(&o.stderr);
    assert!(progress.contains("Migration: [100 %]"), "{progress}");
    // Source: paused for the switch-over (SUSPENDED, MIGRATED), then gone (STOPPED,
    // MIGRATED); destination: STARTED, MIGRATED, then RESUMED, MIGRATED.
    ev_a.wait_for("vm1 3 1");
    ev_a.wait_for("vm1 5 3");
    ev_b.wait_for("vm1 2 1");
    ev_b.wait_for("vm1 4 1");
    // JOB_COMPLETED at both ends (outgoing 5, incoming 4), with the downtime; the same
    // statistics for `domjobinfo --completed`, also where the VM has gone (kept with
    // --keep-completed, taken without).
    ev_a.wait_for("vm1 completed 5 downtime");
    ev_b.wait_for("vm1 completed 4 downtime");
    let mut downtimes = Vec::new();
    for (d, op) in [(&h.a, "Outgoing migration"), (&h.b, "Incoming migration")] {
        for keep in [true, false] {
            let mut args = vec!["domjobinfo", "vm1", "--completed"];
            if keep {
                args.push("--keep-completed");
            }
            let info = ok(&d.virsh(&args));
            let line = |k: &str| {
                info.lines()
                    .find(|l| l.starts_with(k))
                    .map(|l| l[k.len()..].trim().to_string())
                    .unwrap_or_else(|| panic!("no {k} in {info}"))
            };
            assert_eq!(line("Job type:"), "Completed", "{info}");
            assert_eq!(line("Operation:"), op, "{info}");
            assert!(line("Total downtime:").ends_with(" ms"), "{info}");
            assert!(line("Time elapsed:").ends_with(" ms"), "{info}");
            if keep {
                downtimes.push(line("Total downtime:"));
            }
        }
        let info = ok(&d.virsh(&["domjobinfo", "vm1", "--completed"]));
        assert!(info.contains("Job type:         None"), "{info}");
    }
    // Both ends report the downtime the destination counted, from the source's pause to
    // its own resume, as libvirt does.
    assert_eq!(downtimes[0], downtimes[1]);
    assert_eq!(state(&h.b, "vm1"), "running (migrated)");
    // A persistent domain stays defined at the source (shut off), transient there.
    assert_eq!(state(&h.a, "vm1"), "shut off (migrated)");
    assert!(h.a.qemu_pid("vm1").is_none(), "QEMU outlived the migration");
    assert_eq!(
        ok(&h.b.virsh(&["dominfo", "vm1"]))
            .lines()
            .find(|l| l.starts_with("Persistent:"))
            .unwrap_or_default(),
        "Persistent:     no"
    );
    went_on(&h.b, before);

    // Back, the client driving both daemons, kept at the destination only.
    let before = counter(&h.b);
    ok(&h.b.virsh(&[
        "migrate",
        "--live",
        "--persistent",
        "--undefinesource",
        "vm1",
        &h.a.uri(),
        "--migrateuri",
        &format!("tcp://{SRC_ADDR}"),
    ]));
    ev_a.wait_for("vm1 4 1");
    assert_eq!(state(&h.a, "vm1"), "running (migrated)");
    assert!(ok(&h.a.virsh(&["dominfo", "vm1"])).contains("Persistent:     yes"));
    assert!(!listed(&h.b).contains("vm1"), "{}", listed(&h.b));
    went_on(&h.a, before);

    // Tunnelled: the stream goes through the daemons' own connection.
    let before = counter(&h.a);
    ok(&h.a.virsh(&[
        "migrate",
        "--live",
        "--p2p",
        "--tunnelled",
        "vm1",
        &h.b.uri(),
    ]));
    assert_eq!(state(&h.b, "vm1"), "running (migrated)");
    assert_eq!(state(&h.a, "vm1"), "shut off (migrated)");
    went_on(&h.b, before);
    ok(&h.b.virsh(&["destroy", "vm1"]));
    ok(&h.a.virsh(&["undefine", "vm1"]));
}

vireo_tests::in_every_layout!(live_there_and_back);

/// python-libvirt migrates too: peer to peer (`migrateToURI3`) and managed (`migrate3`).
#[test]
fn python_migrates() {
    let h = Hosts::start(Layout::Monolithic);
    let _ev = boot_counting(&h.a, false);
    let before = counter(&h.a);
    let script = tests_dir().join("python/migrate.py");
    let script = script.to_str().expect("utf-8");
    let out = ok(&vireo_tests::run_cmd(
        python3(),
        &[
            script,
            &h.a.uri(),
            &h.b.uri(),
            "vm1",
            &format!("tcp:{DST_ADDR}"),
            "p2p",
        ],
    ));
    // RUNNING (1), MIGRATED (2).
    assert!(out.contains("MIGRATED vm1 1 2"), "{out}");
    went_on(&h.b, before);
    let before = counter(&h.b);
    let out = ok(&vireo_tests::run_cmd(
        python3(),
        &[
            script,
            &h.b.uri(),
            &h.a.uri(),
            "vm1",
            &format!("tcp:{SRC_ADDR}"),
            "managed",
        ],
    ));
    assert!(out.contains("MIGRATED vm1 1 2"), "{out}");
    went_on(&h.a, before);
    assert!(!listed(&h.b).contains("vm1"));
    ok(&h.a.virsh(&["destroy", "vm1"]));
}

/// migrate-setspeed / migrate-getspeed / migrate-setmaxdowntime / migrate-getmaxdowntime,
/// a slow migration followed with domjobinfo and the iteration events, then cancelled
/// with domjobabort (the guest goes on at the source), then one whose destination QEMU is
/// killed, then one whose network is cut: each time the guest runs on the source only.
#[test]
fn jobs_and_faults() {
    let h = Hosts::start(Layout::Monolithic);
    let mut ev = boot_counting(&h.a, false);
    assert_eq!(
        ok(&h.a.virsh(&["migrate-getspeed", "vm1"])).trim(),
        "8796093022207"
    );
    ok(&h.a.virsh(&["migrate-setspeed", "vm1", "--bandwidth", "1"]));
    assert_eq!(ok(&h.a.virsh(&["migrate-getspeed", "vm1"])).trim(), "1");
    assert_eq!(
        ok(&h.a.virsh(&["migrate-getmaxdowntime", "vm1"])).trim(),
        "300"
    );
    ok(&h.a.virsh(&["migrate-setmaxdowntime", "vm1", "500"]));
    assert_eq!(
        ok(&h.a.virsh(&["migrate-getmaxdowntime", "vm1"])).trim(),
        "500"
    );
    let e = fails(&h.a.virsh(&["-r", "migrate-setspeed", "vm1", "--bandwidth", "2"]));
    assert!(e.contains("read only"), "{e}");
    let miguri = format!("tcp://{DST_ADDR}");

    // Cancelled: the job is seen, then aborted; the guest goes on here.
    let before = counter(&h.a);
    let m = migrate_in_background(
        &h.a,
        &[
            "--live",
            "--p2p",
            "vm1",
            &h.b.uri(),
            "--migrateuri",
            &miguri,
        ],
    );
    let info = wait_for_job(&h.a);
    assert!(
        info.contains("Operation:        Outgoing migration"),
        "{info}"
    );
    ev.wait_for("vm1 iteration 1");
    ok(&h.a.virsh(&["domjobabort", "vm1"]));
    let (done, err) = finish(m);
    assert!(!done, "the migration should have been cancelled");
    eprintln!("virsh migrate said: {err}");
    assert!(err.contains("operation aborted"), "{err}");
    runs_only_on(&h.a, &h.b);
    went_on(&h.a, before);

    // The destination's QEMU dies mid-migration (the client driving it).
    let before = counter(&h.a);
    let m = migrate_in_background(
        &h.a,
        &["--live", "vm1", &h.b.uri(), "--migrateuri", &miguri],
    );
    wait_for_job(&h.a);
    let qemu = h.b.qemu_pid("vm1").expect("the destination's QEMU");
    vireo_tests::signal(qemu, Signal::KILL);
    let (done, err) = finish(m);
    assert!(!done, "the migration should have failed");
    eprintln!("virsh migrate said: {err}");
    assert!(err.contains("migration"), "{err}");
    runs_only_on(&h.a, &h.b);
    went_on(&h.a, before);

    // The same, tunnelled: the destination's failure comes back through the stream.
    let before = counter(&h.a);
    let m = migrate_in_background(&h.a, &["--live", "--p2p", "--tunnelled", "vm1", &h.b.uri()]);
    wait_for_job(&h.a);
    let qemu = h.b.qemu_pid("vm1").expect("the destination's QEMU");
    vireo_tests::signal(qemu, Signal::KILL);
    let (done, err) = finish(m);
    assert!(!done, "the migration should have failed");
    eprintln!("virsh migrate said: {err}");
    assert!(err.contains("migration"), "{err}");
    runs_only_on(&h.a, &h.b);
    went_on(&h.a, before);

    // The network between the hosts is cut mid-migration (peer to peer).
    let before = counter(&h.a);
    let m = migrate_in_background(
        &h.a,
        &[
            "--live",
            "--p2p",
            "vm1",
            &h.b.uri(),
            "--migrateuri",
            &miguri,
        ],
    );
    wait_for_job(&h.a);
    h.cut();
    let (done, err) = finish(m);
    assert!(!done, "the migration should have failed");
    eprintln!("virsh migrate said: {err}");
    assert!(err.contains("migration"), "{err}");
    runs_only_on(&h.a, &h.b);
    went_on(&h.a, before);
    ev.wait_for_prefix("vm1 ");
    ok(&h.a.virsh(&["destroy", "vm1"]));
}

/// The destination's daemon killed mid-migration (peer to peer): the source notices, the
/// migration is cancelled and the guest goes on at the source; the destination, back, has
/// no trace of it.
#[test]
fn destination_daemon_killed() {
    daemon_killed_mid_migration(false);
}

/// The source's daemon killed mid-migration (peer to peer): nobody can finish it, so the
/// VM's shim cancels it and the guest goes on at the source; the destination, whose
/// client went away before Finish, drops what it started. The daemon, back, finds the
/// guest running.
#[test]
fn source_daemon_killed() {
    daemon_killed_mid_migration(true);
}

/// A slow peer-to-peer migration whose source's (or destination's) daemon is killed
/// mid-way: the guest goes on at the source only, once the daemon is back.
fn daemon_killed_mid_migration(source: bool) {
    let mut h = Hosts::start(Layout::Monolithic);
    let _ev = boot_counting(&h.a, false);
    ok(&h.a.virsh(&["migrate-setspeed", "vm1", "--bandwidth", "1"]));
    let before = counter(&h.a);
    let m = migrate_in_background(
        &h.a,
        &[
            "--live",
            "--p2p",
            "vm1",
            &h.b.uri(),
            "--migrateuri",
            &format!("tcp://{DST_ADDR}"),
        ],
    );
    wait_for_job(&h.a);
    let killed = if source { &mut h.a } else { &mut h.b };
    killed.kill9_one("vireod");
    let (done, err) = finish(m);
    assert!(!done, "the migration should have failed");
    if !source {
        assert!(err.contains("Lost connection to destination host"), "{err}");
    }
    killed.restart();
    runs_only_on(&h.a, &h.b);
    went_on(&h.a, before);
    ok(&h.a.virsh(&["destroy", "vm1"]));
}

/// `--postcopy --postcopy-after-precopy`: a guest that never converges (a 1 ms downtime
/// limit, memory written over and over) is switched to post-copy by virsh at the second
/// iteration event; it runs on the destination, and is simply migrated once all of its
/// memory is there.
#[test]
fn postcopy_after_precopy() {
    let h = Hosts::start(Layout::Monolithic);
    let mut ev_a = boot_counting(&h.a, false);
    let mut ev_b = Events::start(&h.b);
    ok(&h.a.virsh(&["migrate-setmaxdowntime", "vm1", "1"]));
    // 16 MiB of the guest's memory written over and over, sent at 4 MiB/s: every pass takes
    // seconds, and the guest would have to dirty no page at all in one of them to converge
    // (at 20 MiB/s a pass was short enough for a starved TCG vCPU to let it converge).
    guest_shell(
        &h.a,
        "vm1",
        &[
            "--running",
            "(while :; do dd if=/dev/zero of=/tmp/dirty bs=64k count=256 2>/dev/null; done) & \
             echo DIRTY-$((1+1))",
            "DIRTY-2",
        ],
    );
    let before = counter(&h.a);
    ok(&h.a.virsh(&[
        "migrate",
        "--live",
        "--p2p",
        "--postcopy",
        "--postcopy-after-precopy",
        "--bandwidth",
        "4",
        "vm1",
        &h.b.uri(),
        "--migrateuri",
        &format!("tcp://{DST_ADDR}"),
    ]));
    ev_a.wait_for("vm1 iteration 2");
    // SUSPENDED, POSTCOPY at the source; RESUMED at the destination: POSTCOPY while pages
    // still come, MIGRATED if they all came before the guest ran there.
    ev_a.wait_for("vm1 3 7");
    ev_a.wait_for("vm1 5 3");
    ev_b.wait_for("vm1 2 1");
    ev_b.wait_for_prefix("vm1 4 ");
    assert!(
        ev_b.seen.iter().any(|l| l == "vm1 4 3" || l == "vm1 4 1"),
        "{:?}",
        ev_b.seen
    );
    went_on(&h.b, before);
    let deadline = Instant::now() + Duration::from_secs(120);
    while state(&h.b, "vm1") != "running (migrated)" {
        assert!(Instant::now() < deadline, "{}", state(&h.b, "vm1"));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!listed(&h.a).contains("vm1"));
    ok(&h.b.virsh(&["destroy", "vm1"]));
}

/// `--copy-storage-all`: a guest whose qcow2 disk is a volume of each host's own `default`
/// pool moves with its disk: the destination's (empty) volume gets what the guest wrote,
/// copied over NBD (the destination QEMU's NBD server, reached through the daemons) before
/// the memory.
#[test]
fn copy_storage_all() {
    let h = Hosts::start(Layout::Monolithic);
    for d in [&h.a, &h.b] {
        ok(&d.virsh(&[
            "vol-create-as",
            "default",
            "vm1.qcow2",
            "64M",
            "--format",
            "qcow2",
        ]));
    }
    let disk = "<memballoon model='none'/><disk type='volume' device='disk'>\
                <driver name='qemu' type='qcow2'/>\
                <source pool='default' volume='vm1.qcow2'/>\
                <target dev='vda' bus='virtio'/></disk>";
    let xml = vireo_tests::guest_xml("vm1").replace("<memballoon model='none'/>", disk);
    ok(&h.a.virsh(&["define", &write_file(&h.a, "vm1.xml", &xml)]));
    ok(&h.a.virsh(&["start", "--paused", "vm1"]));
    let _ev = Events::start(&h.a);
    guest_shell(
        &h.a,
        "vm1",
        &[
            "--resume",
            "printf DISKMARK | dd of=/dev/vda conv=fsync 2>/dev/null; \
             echo MARK-$((6*7)) > /tmp/mark; \
             (i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.2; done) & \
             echo WROTE-$((1+1))",
            "WROTE-2",
        ],
    );
    let path = |d: &Daemon| {
        ok(&d.virsh(&["vol-path", "--pool", "default", "vm1.qcow2"]))
            .trim()
            .to_string()
    };
    let (src_img, dst_img) = (path(&h.a), path(&h.b));
    assert_ne!(src_img, dst_img);
    assert_ne!(vireo_tests::image_head(&h.b, &dst_img, "qcow2"), "DISKMARK");
    let before = counter(&h.a);
    ok(&h.a.virsh(&[
        "migrate",
        "--live",
        "--copy-storage-all",
        "vm1",
        &h.b.uri(),
        "--migrateuri",
        &format!("tcp://{DST_ADDR}"),
    ]));
    assert_eq!(state(&h.b, "vm1"), "running (migrated)");
    went_on(&h.b, before);
    // The destination's own image holds what the guest wrote on the source; the guest
    // goes on writing into it.
    assert_eq!(vireo_tests::image_head(&h.b, &dst_img, "qcow2"), "DISKMARK");
    guest_shell(
        &h.b,
        "vm1",
        &[
            "--running",
            "printf MOVEDOK | dd of=/dev/vda conv=fsync 2>/dev/null; echo MOVED-$((1+1))",
            "MOVED-2",
        ],
    );
    assert_eq!(vireo_tests::image_head(&h.b, &dst_img, "qcow2"), "MOVEDOKK");
    assert_eq!(vireo_tests::image_head(&h.a, &src_img, "qcow2"), "DISKMARK");
    ok(&h.b.virsh(&["destroy", "vm1"]));
}

/// Our `vireo migrate` (peer to peer there, managed back, with its progress bar), and the
/// tuning commands printing what virsh prints.
#[test]
fn vireo_cli_migrates() {
    let h = Hosts::start(Layout::Monolithic);
    let _ev = boot_counting(&h.a, false);
    for args in [
        &["migrate-getspeed", "vm1"][..],
        &["migrate-getspeed", "vm1", "--postcopy"],
        &["migrate-getmaxdowntime", "vm1"],
        &["migrate-setspeed", "vm1", "12"],
        &["migrate-setmaxdowntime", "vm1", "400"],
        &["migrate", "--live", "nope", &h.b.uri()],
        &["migrate-postcopy", "vm1"],
    ] {
        vireo_tests::same_as_virsh(&h.a, args);
    }
    assert_eq!(ok(&h.a.vireo(&["migrate-getspeed", "vm1"])).trim(), "12");
    assert_eq!(
        ok(&h.a.vireo(&["migrate-getmaxdowntime", "vm1"])).trim(),
        "400"
    );
    let before = counter(&h.a);
    let out = ok(&h.a.vireo(&[
        "migrate",
        "--live",
        "--p2p",
        "vm1",
        &h.b.uri(),
        "--migrateuri",
        &format!("tcp://{DST_ADDR}"),
    ]));
    assert_eq!(out, "\n");
    assert_eq!(state(&h.b, "vm1"), "running (migrated)");
    went_on(&h.b, before);
    let before = counter(&h.b);
    let o = h.b.vireo(&[
        "migrate",
        "--live",
        "--verbose",
        "vm1",
        &h.a.uri(),
        "--migrateuri",
        &format!("tcp://{SRC_ADDR}"),
    ]);
    ok(&o);
    let bar = String::from_utf8_lossy(&o.stderr);
    assert!(
        bar.contains("Migration: [") && bar.contains("100 %"),
        "{bar}"
    );
    assert_eq!(state(&h.a, "vm1"), "running (migrated)");
    assert!(!listed(&h.b).contains("vm1"));
    went_on(&h.a, before);
    ok(&h.a.virsh(&["destroy", "vm1"]));
}

/// Certificates for TLS between the hosts: a CA, the destination's server certificate for
/// its address on the link (in libvirt's places under its root), and a client certificate
/// for the source's daemon (a `pkipath` directory under its root).
fn make_pki(dst_root: &std::path::Path, src_root: &std::path::Path) -> std::path::PathBuf {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let dn = |cn: &str| {
        let mut d = DistinguishedName::new();
        d.push(DnType::OrganizationName, "Vireo Migration Test");
        d.push(DnType::CommonName, cn);
        d
    };
    let put = |path: std::path::PathBuf, text: String| {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    let ca_key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name = dn("Migration CA");
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = p.self_signed(&ca_key).expect("CA");
    let issue = |names: Vec<String>, cn: &str, eku| {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(names).expect("params");
        p.distinguished_name = dn(cn);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![eku];
        let cert = p.signed_by(&key, &ca, &ca_key).expect("sign");
        (cert.pem(), key.serialize_pem())
    };
    let (cert, key) = issue(
        vec![DST_ADDR.to_string()],
        "destination",
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    put(dst_root.join("etc/pki/CA/cacert.pem"), ca.pem());
    put(dst_root.join("etc/pki/libvirt/servercert.pem"), cert);
    put(dst_root.join("etc/pki/libvirt/private/serverkey.pem"), key);
    let (cert, key) = issue(Vec::new(), "source", ExtendedKeyUsagePurpose::ClientAuth);
    let dir = src_root.join("pki");
    put(dir.join("cacert.pem"), ca.pem());
    put(dir.join("clientcert.pem"), cert);
    put(dir.join("clientkey.pem"), key);
    dir
}

/// Peer to peer over TLS: the destination's daemon listens for remote clients
/// (`--listen`, certificates the test makes) in its namespace; the source's daemon reaches
/// it at `qemu+tls://10.77.9.2/system` with its client certificate, and the migration
/// stream goes to the address that connection came in on (no `--migrateuri`). A
/// destination that cannot be reached fails the migration before anything moves.
#[test]
fn peer_to_peer_over_tls() {
    let a = Daemon::start_in(Layout::Monolithic);
    let mut pki = std::path::PathBuf::new();
    let b = Daemon::start_prepared(
        Layout::Monolithic,
        |root| {
            pki = make_pki(root, &a.root);
            std::fs::create_dir_all(root.join("etc/vireo")).expect("etc");
            std::fs::write(
                root.join("etc/vireo/vireod.conf"),
                "listen_addr = \"0.0.0.0\"\n\
                 tls_allowed_dn_list = [\"O=Vireo Migration Test,CN=source\"]\n",
            )
            .expect("vireod.conf");
        },
        &["--listen"],
    );
    let h = Hosts::join(a, b);
    let _ev = boot_counting(&h.a, false);
    let before = counter(&h.a);
    let dest = format!("qemu+tls://{DST_ADDR}/system?pkipath={}", pki.display());
    ok(&h.a.virsh(&["migrate", "--live", "--p2p", "vm1", &dest]));
    assert_eq!(state(&h.b, "vm1"), "running (migrated)");
    went_on(&h.b, before);
    // Back is refused before anything moves: the source's daemon does not listen for
    // remote clients.
    let e = fails(&h.b.virsh(&[
        "migrate",
        "--live",
        "--p2p",
        "vm1",
        &format!("qemu+tls://{SRC_ADDR}/system?pkipath={}", pki.display()),
    ]));
    assert!(e.contains("Failed to connect to remote libvirt URI"), "{e}");
    assert_eq!(state(&h.b, "vm1"), "running (migrated)");
    ok(&h.b.virsh(&["destroy", "vm1"]));
}

/// What is not supported yet is refused before anything moves, clearly; a paused guest
/// moves renamed with the caller's definition and stays paused.
#[test]
fn refusals() {
    let h = Hosts::start(Layout::Monolithic);
    let xml = write_file(&h.a, "vm1.xml", &vireo_tests::guest_xml("vm1"));
    ok(&h.a.virsh(&["define", &xml]));
    let e = fails(&h.a.virsh(&["migrate", "--live", "vm1", &h.b.uri()]));
    assert!(e.contains("domain is not running"), "{e}");
    ok(&h.a.virsh(&["start", "--paused", "vm1"]));
    let e = fails(&h.a.virsh(&[
        "migrate",
        "--live",
        "--p2p",
        "--tunnelled",
        "--postcopy",
        "vm1",
        &h.b.uri(),
    ]));
    assert!(
        e.contains("post-copy is not supported with tunnelled"),
        "{e}"
    );
    let e = fails(&h.a.virsh(&[
        "migrate",
        "--live",
        "--p2p",
        "--tunnelled",
        "--copy-storage-all",
        "vm1",
        &h.b.uri(),
    ]));
    assert!(e.contains("copying the disks is not supported"), "{e}");
    let e = fails(&h.a.virsh(&[
        "migrate",
        "--live",
        "vm1",
        &h.b.uri(),
        "--migrateuri",
        "rdma://10.77.9.2",
    ]));
    assert!(e.contains("only tcp: migration URIs"), "{e}");
    assert_eq!(state(&h.a, "vm1"), "paused (user)");
    assert!(!listed(&h.b).contains("vm1"));

    // A paused guest stays paused there; renamed (--dname) with the caller's definition
    // (--xml, a title added).
    let live = ok(&h.a.virsh(&["dumpxml", "--migratable", "vm1"]));
    let titled = live.replacen("</name>", "</name>\n  <title>Moved</title>", 1);
    let xml = write_file(&h.a, "dest.xml", &titled);
    ok(&h.a.virsh(&[
        "migrate",
        "--live",
        "--dname",
        "vm2",
        "--xml",
        &xml,
        "vm1",
        &h.b.uri(),
        "--migrateuri",
        &format!("tcp://{DST_ADDR}"),
    ]));
    assert_eq!(state(&h.b, "vm2"), "paused (user)");
    assert!(ok(&h.b.virsh(&["dumpxml", "vm2"])).contains("<title>Moved</title>"));
    assert_eq!(state(&h.a, "vm1"), "shut off (migrated)");
    ok(&h.b.virsh(&["destroy", "vm2"]));
}
