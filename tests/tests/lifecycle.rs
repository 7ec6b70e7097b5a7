//! Real VMs: the test guest boots under TCG through vireod and its per-VM shim, driven by
//! the real virsh and watched by a python-libvirt event listener.

use rustix::process::Signal;
use vireo_tests::{fails, guest_xml, ok, run_cmd, Daemon, EventLog, Layout};

fn define(d: &Daemon, name: &str) {
    let f = d.root.join(format!("{name}.xml"));
    std::fs::write(&f, guest_xml(name)).unwrap();
    ok(&d.virsh(&["define", f.to_str().unwrap()]));
}

fn lifecycle_with_virsh_console_and_events(layout: Layout) {
    let d = Daemon::start_in(layout);
    let mut ev = EventLog::start(&d);
    define(&d, "vm1");
    ev.wait_for("vm1 0 0");

    // Start paused, so the console is attached before the guest prints its first line.
    let out = ok(&d.virsh(&["start", "--paused", "vm1"]));
    assert!(out.contains("Domain 'vm1' started"), "{out}");
    ev.wait_for("vm1 3 0");
    let list = ok(&d.virsh(&["list"]));
    assert!(list.contains(" 1    vm1    paused"), "{list}");

    let console = vireo_tests::tests_dir().join("python/console.py");
    let c = run_cmd(
        vireo_tests::python3(),
        &[console.to_str().unwrap(), &d.uri(), "vm1", "--resume"],
    );
    let seen = ok(&c);
    assert!(seen.contains("VIREO-GUEST-READY"), "{seen}");
    ev.wait_for("vm1 4 0");

    let list = ok(&d.virsh(&["list"]));
    assert!(list.contains(" 1    vm1    running"), "{list}");
    let info = ok(&d.virsh(&["dominfo", "vm1"]));
    assert!(info.contains("Id:             1"), "{info}");
    assert!(info.contains("State:          running"), "{info}");
    assert_eq!(ok(&d.virsh(&["domid", "vm1"])).trim(), "1");

    ok(&d.virsh(&["suspend", "vm1"]));
    assert_eq!(
        ok(&d.virsh(&["domstate", "--reason", "vm1"])).trim(),
        "paused (user)"
    );
    // QEMU runs as root here (the test's user): libvirt calls that a taint.
    let info = ok(&d.virsh(&["dominfo", "vm1"]));
    assert!(
        info.contains("Messages:       tainted: running with undesirable elevated privileges\n")
            || !rustix::process::geteuid().is_root(),
        "{info}"
    );
    assert!(!info.contains("custom monitor"), "{info}");
    // QEMU's own monitor, through qemu-monitor-command: QMP, its errors, and HMP.
    let st = ok(&d.virsh(&[
        "qemu-monitor-command",
        "vm1",
        r#"{"execute":"query-status"}"#,
    ]));
    assert!(st.contains(r#""status":"paused""#), "{st}");
    let e = ok(&d.virsh(&["qemu-monitor-command", "vm1", r#"{"execute":"nope"}"#]));
    assert!(e.contains("CommandNotFound"), "{e}");
    let hmp = ok(&d.virsh(&["qemu-monitor-command", "--hmp", "vm1", "info status"]));
    assert!(hmp.contains("VM status: paused"), "{hmp}");
    // Which taints the domain, as in libvirt: dominfo says so, and so does its log.
    let info = ok(&d.virsh(&["dominfo", "vm1"]));
    assert!(
        info.contains("Messages:       tainted: custom monitor control commands issued\n"),
        "{info}"
    );
    let info = ok(&d.vireo(&["dominfo", "vm1"]));
    assert!(
        info.contains("Messages:       tainted: custom monitor control commands issued\n"),
        "{info}"
    );
    let log = std::fs::read_to_string(d.vm_log("vm1")).expect("the domain's log");
    assert_eq!(
        log.matches("is tainted: custom-monitor").count(),
        1,
        "{log}"
    );
    ok(&d.virsh(&["resume", "vm1"]));
    assert_eq!(
        ok(&d.virsh(&["domstate", "--reason", "vm1"])).trim(),
        "running (unpaused)"
    );

    // A graceful shutdown: the guest powers itself off, on_poweroff=destroy applies.
    ok(&d.virsh(&["shutdown", "vm1"]));
    ev.wait_for("vm1 5 0");
    assert_eq!(
        ok(&d.virsh(&["domstate", "--reason", "vm1"])).trim(),
        "shut off (shutdown)"
    );
    assert!(
        d.qemu_pid("vm1").is_none(),
        "QEMU still running after shutdown"
    );

    ok(&d.virsh(&["start", "vm1"]));
    ev.wait_for("vm1 2 0");
    let info = ok(&d.virsh(&["dominfo", "vm1"]));
    assert!(info.contains("Id:             2"), "{info}");
    ok(&d.virsh(&["destroy", "vm1"]));
    let all = ev.wait_for("vm1 5 1");
    assert_eq!(
        ok(&d.virsh(&["domstate", "--reason", "vm1"])).trim(),
        "shut off (destroyed)"
    );
    assert!(
        d.qemu_pid("vm1").is_none(),
        "QEMU still running after destroy"
    );
    assert_eq!(
        all,
        [
            "vm1 0 0", // defined, added
            "vm1 2 0", // started, booted
            "vm1 3 0", // suspended (start --paused)
            "vm1 4 0", // resumed, unpaused (by the console script)
            "vm1 3 0", // suspend
            "vm1 4 0", // resume
            "vm1 6 1", // shutdown, guest finished
            "vm1 5 0", // stopped, shutdown
            "vm1 4 0", // start: resumed, unpaused
            "vm1 2 0", // start: started, booted
            "vm1 6 2", // destroy: shutdown by the host
            "vm1 5 1", // stopped, destroyed
        ]
    );
}

fn vms_survive_a_daemon_crash(layout: Layout) {
    let mut d = Daemon::start_in(layout);
    define(&d, "keep1");
    define(&d, "keep2");
    ok(&d.virsh(&["start", "keep1"]));
    ok(&d.virsh(&["start", "keep2"]));
    let before = ok(&d.virsh(&["list"]));
    let p1 = d.qemu_pid("keep1").expect("keep1 runs");
    let p2 = d.qemu_pid("keep2").expect("keep2 runs");
    d.kill9();
    // Still running, same processes.
    assert_eq!(d.qemu_pid("keep1"), Some(p1));
    assert_eq!(d.qemu_pid("keep2"), Some(p2));
    d.restart();
    assert_eq!(ok(&d.virsh(&["list"])), before);
    assert!(before.contains(" 1    keep1   running"), "{before}");
    assert!(before.contains(" 2    keep2   running"), "{before}");
    // The next VM gets a new id, not a reused one.
    ok(&d.virsh(&["destroy", "keep1"]));
    ok(&d.virsh(&["start", "keep1"]));
    assert_eq!(ok(&d.virsh(&["domid", "keep1"])).trim(), "3");
    ok(&d.virsh(&["destroy", "keep1"]));
    ok(&d.virsh(&["destroy", "keep2"]));
    assert!(d.qemu_pid("keep1").is_none() && d.qemu_pid("keep2").is_none());
}

#[test]
fn qemu_crash_is_seen_as_crashed() {
    let d = Daemon::start();
    let mut ev = EventLog::start(&d);
    define(&d, "crashy");
    ok(&d.virsh(&["start", "crashy"]));
    ev.wait_for("crashy 2 0");
    let pid = d.qemu_pid("crashy").expect("running");
    let shim = vireo_tests::shim_pid(&d.root, "crashy").expect("its shim");
    vireo_tests::signal(pid, Signal::KILL);
    ev.wait_for("crashy 5 5");
    assert_eq!(
        ok(&d.virsh(&["domstate", "--reason", "crashy"])).trim(),
        "shut off (crashed)"
    );
    // The shim is gone too: its socket was removed.
    let shims: Vec<_> = std::fs::read_dir(d.root.join("run/vireo/shim"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "sock"))
        .collect();
    assert!(shims.is_empty(), "shim socket left: {shims:?}");
    assert!(
        vireo_tests::wait_exit(shim, std::time::Duration::from_secs(30)),
        "the shim did not exit"
    );
    // And it starts again.
    ok(&d.virsh(&["start", "crashy"]));
    ok(&d.virsh(&["destroy", "crashy"]));
}

fn transient_domains_and_unsupported_devices(layout: Layout) {
    let d = Daemon::start_in(layout);
    let f = d.root.join("t.xml");
    std::fs::write(&f, guest_xml("transient1")).unwrap();
    let out = ok(&d.virsh(&["create", f.to_str().unwrap()]));
    assert!(out.contains("Domain 'transient1' created"), "{out}");
    let info = ok(&d.virsh(&["dominfo", "transient1"]));
    assert!(info.contains("Persistent:     no"), "{info}");
    assert!(info.contains("State:          running"), "{info}");
    ok(&d.virsh(&["destroy", "transient1"]));
    // A transient domain is gone once stopped.
    fails(&d.virsh(&["dominfo", "transient1"]));
    assert!(!ok(&d.virsh(&["list", "--all"])).contains("transient1"));

    // Something QEMU could run but we cannot set up yet: a clear error, nothing started.
    let bad = guest_xml("bridged").replace(
        "<memballoon model='none'/>",
        "<interface type='direct'><mac address='52:54:00:00:00:01'/><source dev='eth0' mode='bridge'/>\
         <model type='virtio'/></interface><memballoon model='none'/>",
    );
    let f = d.root.join("bad.xml");
    std::fs::write(&f, bad).unwrap();
    let err = fails(&d.virsh(&["create", f.to_str().unwrap()]));
    assert!(err.contains("unsupported configuration"), "{err}");
    assert!(d.qemu_pid("bridged").is_none());
    assert!(!ok(&d.virsh(&["list", "--all"])).contains("bridged"));
}

#[test]
fn vireo_cli_lifecycle() {
    let d = Daemon::start();
    let f = d.root.join("c.xml");
    std::fs::write(&f, guest_xml("cli1")).unwrap();
    ok(&d.vireo(&["define", f.to_str().unwrap()]));
    assert_eq!(
        ok(&d.vireo(&["start", "cli1"])),
        "Domain 'cli1' started\n\n"
    );
    assert_eq!(ok(&d.vireo(&["list"])), ok(&d.virsh(&["list"])));
    assert_eq!(
        ok(&d.vireo(&["suspend", "cli1"])),
        "Domain 'cli1' suspended\n\n"
    );
    assert_eq!(
        ok(&d.vireo(&["domstate", "--reason", "cli1"])),
        "paused (user)\n\n"
    );
    assert_eq!(
        ok(&d.vireo(&["resume", "cli1"])),
        "Domain 'cli1' resumed\n\n"
    );
    assert_eq!(
        ok(&d.vireo(&["reset", "cli1"])),
        "Domain 'cli1' was reset\n\n"
    );
    let err = fails(&d.vireo(&["start", "cli1"]));
    assert!(err.contains("already running"), "{err}");
    assert_eq!(
        ok(&d.vireo(&["destroy", "cli1"])),
        "Domain 'cli1' destroyed\n\n"
    );
    let err = fails(&d.vireo(&["suspend", "cli1"]));
    assert!(err.contains("not running"), "{err}");
    // Same name, no uuid: a new domain clashing with the defined one, as in libvirt.
    let err = fails(&d.vireo(&["create", f.to_str().unwrap()]));
    assert!(err.contains("already defined with uuid"), "{err}");
    let t = d.root.join("t.xml");
    std::fs::write(&t, guest_xml("cli2")).unwrap();
    let out = ok(&d.vireo(&["create", t.to_str().unwrap()]));
    assert!(out.starts_with("Domain 'cli2' created from"), "{out}");
    ok(&d.vireo(&["destroy", "cli2"]));
    assert!(d.qemu_pid("cli1").is_none() && d.qemu_pid("cli2").is_none());
}

#[test]
fn guest_power_off_reaches_every_event_client() {
    let d = Daemon::start();
    let mut ev1 = EventLog::start(&d);
    let mut ev2 = EventLog::start(&d);
    define(&d, "selfoff");
    let out = ok(&d.python("guest_ops.py", &["selfoff", "poweroff"]));
    assert!(out.contains("ok poweroff"), "{out}");
    for ev in [&mut ev1, &mut ev2] {
        let all = ev.wait_for("selfoff 5 0");
        assert_eq!(
            all,
            [
                "selfoff 0 0", // defined
                "selfoff 2 0", // started (paused)
                "selfoff 3 0", // suspended
                "selfoff 4 0", // resumed
                "selfoff 6 1", // shutdown by the guest
                "selfoff 5 0", // stopped, shutdown
            ]
        );
    }
    assert_eq!(
        ok(&d.virsh(&["domstate", "--reason", "selfoff"])).trim(),
        "shut off (shutdown)"
    );
}

/// A client that asks a domain's state while its guest powers off gets an answer every
/// time: live while the VM runs, the definition's once it has ended, never the shim's
/// closed connection.
#[test]
fn state_asked_through_a_power_off_is_always_answered() {
    let d = Daemon::start_in(Layout::Modular);
    define(&d, "polled");
    let out = ok(&d.python("guest_ops.py", &["polled", "poweroff-polled"]));
    assert!(out.contains("ok poweroff-polled"), "{out}");
}

#[test]
fn reboot_boots_the_guest_again() {
    let d = Daemon::start();
    let mut ev = EventLog::start(&d);
    define(&d, "rebooter");
    let out = ok(&d.python("guest_ops.py", &["rebooter", "reboot"]));
    assert!(out.contains("ok reboot"), "{out}");
    assert_eq!(ok(&d.virsh(&["domstate", "rebooter"])).trim(), "running");
    ok(&d.virsh(&["destroy", "rebooter"]));
    // A reboot is no stop: the only STOPPED is the destroy's.
    let all = ev.wait_for("rebooter 5 1");
    assert_eq!(
        all.iter().filter(|l| l.starts_with("rebooter 5")).count(),
        1,
        "{all:?}"
    );
}

#[test]
fn undefining_a_running_domain_makes_it_transient() {
    let d = Daemon::start();
    define(&d, "goner");
    ok(&d.virsh(&["start", "goner"]));
    ok(&d.virsh(&["undefine", "goner"]));
    let info = ok(&d.virsh(&["dominfo", "goner"]));
    assert!(info.contains("Persistent:     no"), "{info}");
    assert!(info.contains("State:          running"), "{info}");
    assert!(!d.config_dir().join("qemu/goner.xml").exists());
    ok(&d.virsh(&["destroy", "goner"]));
    fails(&d.virsh(&["dominfo", "goner"]));
}

#[test]
fn a_dead_shim_takes_its_vm_along() {
    let d = Daemon::start();
    let mut ev = EventLog::start(&d);
    define(&d, "orphan");
    ok(&d.virsh(&["start", "orphan"]));
    let qemu = d.qemu_pid("orphan").expect("running");
    let shim = vireo_tests::shim_pid(&d.root, "orphan").expect("its shim");
    vireo_tests::signal(shim, Signal::KILL);
    ev.wait_for("orphan 5 5");
    assert!(vireo_tests::wait_exit(
        qemu,
        std::time::Duration::from_secs(30)
    ));
    assert_eq!(
        ok(&d.virsh(&["domstate", "--reason", "orphan"])).trim(),
        "shut off (crashed)"
    );
    // The dead shim's socket file is stale; a new start does not mind.
    ok(&d.virsh(&["start", "orphan"]));
    ok(&d.virsh(&["destroy", "orphan"]));
}

vireo_tests::in_every_layout!(
    lifecycle_with_virsh_console_and_events,
    vms_survive_a_daemon_crash,
    transient_domains_and_unsupported_devices,
);
