//! Each VM's own endpoint: the unmodified virsh and python-libvirt reach a running VM's shim
//! at `qemu+unix:///system?socket=<run>/vm/<NAME>-sock` (and `-sock-ro`), also while every
//! daemon is stopped — the guest boots through the shim's console, is suspended, inspected
//! and its statistics read — and the daemons, started again, see what was done. With the
//! daemons up, what a client does at the VM's endpoint reaches the daemon's clients at once
//! (state and events), and the other way round. Calls only a daemon can answer are refused
//! by name; the read-only socket refuses changes. In every layout.

use vireo_tests::{fails, guest_shell_at, ok, run_cmd, write_file, Daemon, EventLog, Layout};

fn virsh_at(uri: &str, args: &[&str]) -> std::process::Output {
    run_cmd("virsh", &[&["-c", uri], args].concat())
}

fn field(out: &str, key: &str) -> String {
    out.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}

fn a_vm_is_served_by_its_shim_alone(layout: Layout) {
    let mut d = Daemon::start_in(layout);
    let xml = vireo_tests::guest_xml("vm1");
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &xml)]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let sock = d.run_dir().join("vm/vm1-sock");
    let vm = format!("qemu+unix:///system?socket={}", sock.display());
    let vm_ro = format!("qemu+unix:///system?socket={}-ro", sock.display());

    // Every daemon stopped: the VM, its shim and its endpoint go on.
    d.terminate();
    let info = ok(&virsh_at(&vm, &["dominfo", "vm1"]));
    assert_eq!(field(&info, "Name"), "vm1", "{info}");
    assert_eq!(field(&info, "State"), "paused", "{info}");
    let mut events = EventLog::start_at(&vm);
    // The guest boots through the shim's own console and resume.
    let seen = guest_shell_at(&vm, "vm1", &["--resume", "echo E-$((4+4))", "E-8"]);
    assert!(seen.contains("E-8"), "{seen}");
    events.wait_for("vm1 4 0");
    assert_eq!(ok(&virsh_at(&vm, &["domstate", "vm1"])).trim(), "running");
    ok(&virsh_at(&vm, &["suspend", "vm1"]));
    events.wait_for("vm1 3 0");
    let stats = ok(&virsh_at(&vm, &["domstats", "vm1", "--state", "--vcpu"]));
    assert!(stats.contains("state.state=3"), "{stats}");
    assert!(stats.contains("vcpu.0.time="), "{stats}");
    let st = ok(&virsh_at(
        &vm,
        &[
            "qemu-monitor-command",
            "vm1",
            r#"{"execute":"query-status"}"#,
        ],
    ));
    assert!(st.contains(r#""status":"paused""#), "{st}");
    // Read-only: looking is allowed, changing is not.
    assert_eq!(
        field(&ok(&virsh_at(&vm_ro, &["dominfo", "vm1"])), "State"),
        "paused"
    );
    let e = fails(&virsh_at(&vm_ro, &["resume", "vm1"]));
    assert!(e.contains("read only access prevents"), "{e}");
    let e = fails(&virsh_at(
        &vm_ro,
        &["qemu-monitor-command", "--hmp", "vm1", "info status"],
    ));
    assert!(
        e.contains("read only access prevents virDomainQemuMonitorCommand"),
        "{e}"
    );
    // What needs a daemon says so.
    let e = fails(&virsh_at(&vm, &["list", "--all"]));
    assert!(e.contains("needs the QEMU daemon"), "{e}");
    let e = fails(&virsh_at(&vm, &["define", &write_file(&d, "x.xml", &xml)]));
    assert!(e.contains("needs the QEMU daemon"), "{e}");
    let e = fails(&virsh_at(&vm, &["dominfo", "vm2"]));
    assert!(e.contains("failed to get domain 'vm2'"), "{e}");

    // The daemons again: they see the VM as the shim left it.
    d.restart();
    assert_eq!(ok(&d.virsh(&["domstate", "vm1"])).trim(), "paused");
    let mut at_daemon = EventLog::start(&d);
    // A change at the VM's endpoint is the daemon's news at once, and the other way round.
    ok(&virsh_at(&vm, &["resume", "vm1"]));
    at_daemon.wait_for("vm1 4 0");
    assert_eq!(ok(&d.virsh(&["domstate", "vm1"])).trim(), "running");
    events.seen.clear();
    ok(&d.virsh(&["suspend", "vm1"]));
    events.wait_for("vm1 3 0");
    assert_eq!(ok(&virsh_at(&vm, &["domstate", "vm1"])).trim(), "paused");

    // python-libvirt at the VM's endpoint: the domain by name, its XML and info.
    let out = ok(&run_cmd(
        vireo_tests::python3(),
        &[
            "-c",
            "import sys, libvirt\n\
             c = libvirt.open(sys.argv[1])\n\
             d = c.lookupByName('vm1')\n\
             assert d.isActive() == 1 and d.info()[0] == libvirt.VIR_DOMAIN_PAUSED\n\
             assert '<name>vm1</name>' in d.XMLDesc(0)\n\
             try:\n\
             \x20   d.destroyFlags(0x100)\n\
             \x20   raise SystemExit('an unknown flag destroyed the domain')\n\
             except libvirt.libvirtError as e:\n\
             \x20   assert e.get_error_code() == libvirt.VIR_ERR_INVALID_ARG, e\n\
             \x20   assert 'unsupported flags (0x100)' in str(e), e\n\
             assert d.isActive() == 1\n\
             print('PY-OK', c.getType(), c.getLibVersion())",
            &vm,
        ],
    ));
    assert!(out.contains("PY-OK QEMU 9000000"), "{out}");

    // The endpoint goes with the VM (its shim removes it on the way out, before it ends).
    let shim = vireo_tests::shim_pid(&d.root, "vm1").expect("the VM's shim");
    ok(&d.virsh(&["destroy", "vm1"]));
    assert!(
        vireo_tests::wait_exit(shim, std::time::Duration::from_secs(30)),
        "shim {shim} did not end"
    );
    assert!(!sock.exists(), "{} is left", sock.display());
}

vireo_tests::in_every_layout!(a_vm_is_served_by_its_shim_alone);
