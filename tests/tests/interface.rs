//! Host interfaces (`vireo-interfaced`, or `vireod`) with the real virsh and python-libvirt,
//! in every layout, inside the test's own network namespace: the veths the test makes
//! there are the host's interfaces; bridges and VLANs are defined, started, listed and
//! destroyed there, never on the machine's own interfaces.

use vireo_tests::{fails, in_ns, ok, write_file, Daemon, Layout};

const BRIDGE: &str = "<interface type='bridge' name='vbr0'>
  <mtu size='1400'/>
  <protocol family='ipv4'>
    <ip address='192.168.123.1' prefix='24'/>
  </protocol>
  <bridge stp='off' delay='0'>
    <interface type='ethernet' name='vt0'/>
  </bridge>
</interface>
";

const VLAN: &str = "<interface type='vlan' name='vt1.42'>
  <vlan tag='42'>
    <interface name='vt1'/>
  </vlan>
</interface>
";

/// A veth pair `a`/`b` in the daemons' namespace, both down.
fn veth(d: &Daemon, a: &str, b: &str) {
    in_ns(
        d,
        "ip",
        &["link", "add", a, "type", "veth", "peer", "name", b],
    );
}

/// The MAC address of `dev` in the daemons' namespace.
fn mac(d: &Daemon, dev: &str) -> String {
    let out = in_ns(d, "ip", &["-o", "link", "show", dev]);
    out.split("link/ether ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no MAC for {dev}: {out}"))
        .to_string()
}

/// Whether the kernel makes VLAN devices (8021q): tried on a veth of the test's own.
fn kernel_has_vlans(d: &Daemon) -> bool {
    veth(d, "vprobe0", "vprobe1");
    let ns = d.netns.as_ref().expect("a namespace of the test's own");
    let made = ns
        .run(
            "ip",
            &[
                "link",
                "add",
                "link",
                "vprobe0",
                "name",
                "vprobe0.9",
                "type",
                "vlan",
                "id",
                "9",
            ],
        )
        .status
        .success();
    in_ns(d, "ip", &["link", "del", "vprobe0"]);
    made
}

/// The done-when of issue 13's interface part: a bridge and a VLAN defined with
/// `virsh iface-define`, started, listed, destroyed, inside the namespace; a taken name
/// refused with nothing changed.
fn bridge_and_vlan_with_virsh(layout: Layout) {
    let d = Daemon::start_in(layout);
    veth(&d, "vt0", "vt0p");
    veth(&d, "vt1", "vt1p");
    let vt0 = mac(&d, "vt0");
    let vt1 = mac(&d, "vt1");

    // The host's interfaces: nothing is up, lo's state is unknown.
    let none = ok(&d.virsh(&["iface-list"]));
    assert_eq!(none.lines().count(), 3, "{none}");
    assert!(
        none.starts_with(" Name   State   MAC Address\n---"),
        "{none}"
    );
    let all = ok(&d.virsh(&["iface-list", "--all"]));
    assert!(
        all.contains(&format!(" vt0    inactive   {vt0}\n")),
        "{all}"
    );
    assert!(
        all.contains(" lo     inactive   00:00:00:00:00:00\n"),
        "{all}"
    );
    assert_eq!(
        ok(&d.virsh(&["iface-dumpxml", "vt0"])),
        format!(
            "<interface type='ethernet' name='vt0'>\n  <mtu size='1500'/>\n  \
             <link state='down'/>\n  <mac address='{vt0}'/>\n</interface>\n\n"
        )
    );
    assert_eq!(ok(&d.virsh(&["iface-mac", "vt1"])), format!("{vt1}\n\n"));
    assert_eq!(ok(&d.virsh(&["iface-name", &vt1])), "vt1\n\n");
    let e = fails(&d.virsh(&["iface-dumpxml", "nope0"]));
    assert!(
        e.contains("Interface not found: couldn't find interface named 'nope0'"),
        "{e}"
    );

    // A bridge taking a name that is taken: refused, nothing written or changed.
    let taken = write_file(
        &d,
        "taken.xml",
        "<interface type='bridge' name='vt1'><bridge/></interface>",
    );
    let e = fails(&d.virsh(&["iface-define", &taken]));
    assert!(
        e.contains("interface name 'vt1' is taken by an existing device"),
        "{e}"
    );
    assert!(!d.config_dir().join("interface/vt1.xml").exists());
    assert!(in_ns(&d, "ip", &["-d", "link", "show", "vt1"]).contains("veth"));

    // The bridge: defined (inactive, no MAC yet), started, listed, its port inside it.
    let f = write_file(&d, "vbr0.xml", BRIDGE);
    assert_eq!(
        ok(&d.virsh(&["iface-define", &f])),
        format!("Interface vbr0 defined from {f}\n\n")
    );
    assert!(d.config_dir().join("interface/vbr0.xml").exists());
    let inactive = ok(&d.virsh(&["iface-list", "--inactive"]));
    assert!(inactive.contains(" vbr0   inactive   \n"), "{inactive}");
    assert_eq!(
        ok(&d.virsh(&["iface-dumpxml", "vbr0"])),
        format!("{BRIDGE}\n")
    );
    assert_eq!(
        ok(&d.virsh(&["iface-start", "vbr0"])),
        "Interface vbr0 started\n\n"
    );
    let active = ok(&d.virsh(&["iface-list"]));
    assert!(
        active.contains(&format!(" vbr0   active   {vt0}\n")),
        "{active}"
    );
    assert!(
        !active.contains("vt0 "),
        "a bridge port is not listed: {active}"
    );
    let link = in_ns(&d, "ip", &["-d", "link", "show", "vbr0"]);
    assert!(
        link.contains("mtu 1400") && link.contains("bridge "),
        "{link}"
    );
    assert!(in_ns(&d, "ip", &["link", "show", "vt0"]).contains("master vbr0"));
    assert!(in_ns(&d, "ip", &["addr", "show", "vbr0"]).contains("inet 192.168.123.1/24"));
    // Already active: refused, nothing changed.
    let e = fails(&d.virsh(&["iface-start", "vbr0"]));
    assert!(e.contains("interface 'vbr0' is already active"), "{e}");
    // A host interface is not ours to stop.
    let e = fails(&d.virsh(&["iface-destroy", "vt1"]));
    assert!(e.contains("not defined here"), "{e}");

    // The VLAN: defined and listed; started where the kernel makes VLANs, else refused
    // with the kernel's reason and nothing made.
    let v = write_file(&d, "vlan.xml", VLAN);
    assert_eq!(
        ok(&d.virsh(&["iface-define", &v])),
        format!("Interface vt1.42 defined from {v}\n\n")
    );
    let all = ok(&d.virsh(&["iface-list", "--all"]));
    assert!(all.contains(" vt1.42   inactive"), "{all}");
    if kernel_has_vlans(&d) {
        assert_eq!(
            ok(&d.virsh(&["iface-start", "vt1.42"])),
            "Interface vt1.42 started\n\n"
        );
        let link = in_ns(&d, "ip", &["-d", "link", "show", "vt1.42"]);
        assert!(link.contains("vlan protocol 802.1Q id 42"), "{link}");
        let active = ok(&d.virsh(&["iface-list"]));
        assert!(
            active.contains(&format!(" vt1.42   active   {vt1}\n")),
            "{active}"
        );
        let o = d.virsh(&["iface-destroy", "vt1.42"]);
        assert!(String::from_utf8_lossy(&o.stdout).contains("Interface vt1.42 destroyed"));
        assert!(!in_ns(&d, "ip", &["link"]).contains("vt1.42"));
    } else {
        let e = fails(&d.virsh(&["iface-start", "vt1.42"]));
        assert!(
            e.contains("cannot create VLAN interface 'vt1.42': Operation not supported"),
            "{e}"
        );
        assert!(!in_ns(&d, "ip", &["link"]).contains("vt1.42"));
        assert!(!d.run_dir().join("interface/vt1.42.state").exists());
    }

    // Destroyed: the bridge is gone, its port freed and down, nothing else touched.
    // (virsh 9 exits 1 after a destroy that worked: its own bug.)
    let o = d.virsh(&["iface-destroy", "vbr0"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "Interface vbr0 destroyed\n\n"
    );
    let links = in_ns(&d, "ip", &["link"]);
    assert!(!links.contains("vbr0"), "{links}");
    let port = in_ns(&d, "ip", &["link", "show", "vt0"]);
    assert!(!port.contains("master") && !port.contains(",UP"), "{port}");
    let e = fails(&d.virsh(&["iface-destroy", "vbr0"]));
    assert!(e.contains("interface 'vbr0' is not active"), "{e}");
    for name in ["vbr0", "vt1.42"] {
        assert_eq!(
            ok(&d.virsh(&["iface-undefine", name])),
            format!("Interface {name} undefined\n\n")
        );
    }
    let all = ok(&d.virsh(&["iface-list", "--all"]));
    assert!(!all.contains("vbr0") && !all.contains("vt1.42"), "{all}");
}

/// iface-begin / iface-commit / iface-rollback: the definitions and what ran come back.
fn transactions_with_virsh(layout: Layout) {
    let d = Daemon::start_in(layout);
    veth(&d, "vt0", "vt0p");
    let f = write_file(&d, "vbr0.xml", BRIDGE);
    ok(&d.virsh(&["iface-define", &f]));
    ok(&d.virsh(&["iface-start", "vbr0"]));

    assert_eq!(
        ok(&d.virsh(&["iface-begin"])),
        "Network config change transaction started\n\n"
    );
    let e = fails(&d.virsh(&["iface-begin"]));
    assert!(
        e.contains("Failed to begin network config change transaction")
            && e.contains("there is another transaction running."),
        "{e}"
    );
    // Within it: the running bridge stopped and undefined, another defined and started.
    d.virsh(&["iface-destroy", "vbr0"]);
    ok(&d.virsh(&["iface-undefine", "vbr0"]));
    let other = write_file(
        &d,
        "vbr1.xml",
        "<interface type='bridge' name='vbr1'><bridge stp='on' delay='2'/></interface>",
    );
    ok(&d.virsh(&["iface-define", &other]));
    ok(&d.virsh(&["iface-start", "vbr1"]));
    assert!(in_ns(&d, "ip", &["link"]).contains("vbr1"));
    assert_eq!(
        ok(&d.virsh(&["iface-rollback"])),
        "Network config change transaction rolled back\n\n"
    );
    // As at iface-begin.
    let links = in_ns(&d, "ip", &["link"]);
    assert!(links.contains("vbr0") && !links.contains("vbr1"), "{links}");
    assert!(in_ns(&d, "ip", &["link", "show", "vt0"]).contains("master vbr0"));
    let all = ok(&d.virsh(&["iface-list", "--all"]));
    assert!(
        all.contains(" vbr0   active") && !all.contains("vbr1"),
        "{all}"
    );
    assert!(!d.config_dir().join("interface/vbr1.xml").exists());

    let e = fails(&d.virsh(&["iface-rollback"]));
    assert!(
        e.contains("no transaction running, nothing to rollback."),
        "{e}"
    );
    ok(&d.virsh(&["iface-begin"]));
    ok(&d.virsh(&["iface-define", &other]));
    assert_eq!(
        ok(&d.virsh(&["iface-commit"])),
        "Network config change transaction committed\n\n"
    );
    let e = fails(&d.virsh(&["iface-commit"]));
    assert!(
        e.contains("no transaction running, nothing to be committed."),
        "{e}"
    );
    assert!(ok(&d.virsh(&["iface-list", "--all"])).contains(" vbr1   inactive"));
    d.virsh(&["iface-destroy", "vbr0"]);
    assert!(!in_ns(&d, "ip", &["link"]).contains("vbr0"));
}

/// iface-bridge puts an interface into a new bridge, iface-unbridge takes it out again,
/// as virsh does them (its own XML edits, then define, start, destroy, undefine).
fn bridge_and_unbridge_with_virsh(layout: Layout) {
    let d = Daemon::start_in(layout);
    veth(&d, "vt0", "vt0p");
    let vt0 = mac(&d, "vt0");
    assert_eq!(
        ok(&d.virsh(&["iface-bridge", "vt0", "vbr5", "--no-stp"])),
        "Created bridge vbr5 with attached device vt0\nBridge interface vbr5 started\n\n"
    );
    assert!(in_ns(&d, "ip", &["link", "show", "vt0"]).contains("master vbr5"));
    let xml = ok(&d.virsh(&["iface-dumpxml", "vbr5"]));
    assert!(
        xml.contains(&format!(
            "<interface type='ethernet' name='vt0'>\n      <mac address='{vt0}'/>"
        )),
        "{xml}"
    );
    let e = fails(&d.virsh(&["iface-bridge", "vt0p", "vbr5"]));
    assert!(e.contains("Network device vbr5 already exists"), "{e}");
    assert_eq!(
        ok(&d.virsh(&["iface-unbridge", "vbr5"])),
        "Device vt0 un-attached from bridge vbr5\nInterface vt0 started\n\n"
    );
    let links = in_ns(&d, "ip", &["link"]);
    assert!(!links.contains("vbr5"), "{links}");
    let port = in_ns(&d, "ip", &["link", "show", "vt0"]);
    assert!(!port.contains("master") && port.contains(",UP"), "{port}");
    // vt0 is now defined here (virsh defined it from the bridge's member).
    assert!(d.config_dir().join("interface/vt0.xml").exists());
    ok(&d.virsh(&["iface-undefine", "vt0"]));
    assert!(in_ns(&d, "ip", &["link"]).contains("vt0"));
}

/// The same through python-libvirt: every list call and filter, lookups, XML, a bridge's
/// lifecycle, a read-only connection, a transaction.
fn interfaces_with_python(layout: Layout) {
    let d = Daemon::start_in(layout);
    veth(&d, "vp0", "vp1");
    let vp0 = mac(&d, "vp0");
    let out = ok(&d.python("interfaces.py", &[&vp0]));
    assert!(out.contains("interfaces ok"), "{out}");
    assert!(!in_ns(&d, "ip", &["link"]).contains("pbr0"));
}

vireo_tests::in_every_layout!(
    bridge_and_vlan_with_virsh,
    transactions_with_virsh,
    bridge_and_unbridge_with_virsh,
    interfaces_with_python,
);

/// Definitions outlive the daemon, and a restarted daemon still knows what it started.
#[test]
fn definitions_and_running_bridges_outlive_a_restart() {
    let mut d = Daemon::start_in(Layout::Monolithic);
    veth(&d, "vt0", "vt0p");
    let f = write_file(&d, "vbr0.xml", BRIDGE);
    ok(&d.virsh(&["iface-define", &f]));
    ok(&d.virsh(&["iface-start", "vbr0"]));
    d.terminate();
    d.restart();
    assert!(ok(&d.virsh(&["iface-list"])).contains(" vbr0   active"));
    let o = d.virsh(&["iface-destroy", "vbr0"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("Interface vbr0 destroyed"));
    assert!(!in_ns(&d, "ip", &["link"]).contains("vbr0"));
    assert!(!in_ns(&d, "ip", &["link", "show", "vt0"]).contains("master"));
}
