//! Virtual networks (`vireo-networkd`, or `vireod`) with the real virsh, inside the test's
//! own network namespace: bridges, firewall tables, dnsmasq and DHCP clients never touch
//! the machine's network.

use rustix::process::Signal;
use vireo_tests::{
    dhcp_client, fails, guest_ip, guest_shell, host_ping, in_ns, ok, tries, validate, write_file,
    Daemon, Layout,
};

const NAT: &str = "<network><name>vnat</name><forward mode='nat'/>\
    <bridge name='vbr-nat'/><domain name='vnat.test' localOnly='yes'/>\
    <dns><host ip='10.77.0.1'><hostname>gateway</hostname></host></dns>\
    <ip address='10.77.0.1' netmask='255.255.255.0'>\
    <dhcp><range start='10.77.0.100' end='10.77.0.199'/></dhcp></ip></network>";

fn links(d: &Daemon) -> String {
    in_ns(d, "ip", &["-br", "link"])
}

fn ruleset(d: &Daemon) -> String {
    in_ns(d, "nft", &["list", "ruleset"])
}

/// dnsmasq processes started for networks under this test's root.
fn dnsmasqs(d: &Daemon) -> Vec<i32> {
    let root = d.root.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    let c = String::from_utf8_lossy(&c);
                    c.contains("dnsmasq") && c.contains(&root)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// The whole virsh round trip of a NAT network: define, start (bridge, firewall table,
/// dnsmasq), DHCP leases, a static host added live, events, destroy (all of it gone),
/// undefine; and a transient network.
fn nat_network_with_virsh(layout: Layout) {
    let d = Daemon::start_in(layout);
    let mut events = vireo_tests::EventLog::start_networks(&d);
    // A daemon under --root defines libvirt's `default` network, without autostart.
    let list = ok(&d.virsh(&["net-list", "--all"]));
    assert!(
        list.contains(" default   inactive   no          yes"),
        "{list}"
    );

    let f = write_file(&d, "vnat.xml", NAT);
    assert_eq!(
        ok(&d.virsh(&["net-define", &f])),
        "Network vnat defined from ".to_string() + &f + "\n\n"
    );
    events.wait_for("network vnat defined");
    let xml = ok(&d.virsh(&["net-dumpxml", "vnat"]));
    assert!(xml.contains("<uuid>"), "{xml}");
    assert!(
        xml.contains("<bridge name='vbr-nat' stp='on' delay='0'/>"),
        "{xml}"
    );
    assert!(xml.contains("<mac address='52:54:00:"), "{xml}");
    validate(&xml, "network", &d.root);

    ok(&d.virsh(&["net-start", "vnat"]));
    events.wait_for("network vnat started");
    assert!(links(&d).contains("vbr-nat"), "{}", links(&d));
    let addrs = in_ns(&d, "ip", &["-br", "addr", "show", "dev", "vbr-nat"]);
    assert!(addrs.contains("10.77.0.1/24"), "{addrs}");
    let rules = ruleset(&d);
    assert!(rules.contains("table inet vireo-vbr-nat"), "{rules}");
    assert!(rules.contains("masquerade"), "{rules}");
    assert_eq!(dnsmasqs(&d).len(), 1);
    let info = ok(&d.virsh(&["net-info", "vnat"]));
    assert!(info.contains("Active:         yes"), "{info}");
    assert!(info.contains("Bridge:         vbr-nat"), "{info}");
    ok(&d.virsh(&["net-autostart", "vnat"]));
    let list = ok(&d.virsh(&["net-list"]));
    assert!(list.contains(" vnat   active   yes         yes"), "{list}");

    // A DHCP client on the bridge gets an address from the range, and its lease is listed.
    let ip = dhcp_client(&d, "vbr-nat", "vc0", "52:54:00:aa:00:01", "client0");
    assert!(ip.starts_with("10.77.0.1") && ip.len() == 11, "{ip}");
    let leases = ok(&d.virsh(&["net-dhcp-leases", "vnat"]));
    assert!(leases.contains("52:54:00:aa:00:01"), "{leases}");
    assert!(leases.contains(&format!("{ip}/24")), "{leases}");
    assert!(leases.contains("client0"), "{leases}");
    let one = ok(&d.virsh(&["net-dhcp-leases", "vnat", "--mac", "52:54:00:AA:00:01"]));
    assert!(one.contains("client0"), "{one}");
    let none = ok(&d.virsh(&["net-dhcp-leases", "vnat", "--mac", "52:54:00:aa:00:09"]));
    assert!(!none.contains("client0"), "{none}");

    // A static host added to the running network (and its definition) is served at once.
    let host = "<host mac='52:54:00:aa:00:02' name='fixed' ip='10.77.0.50'/>";
    ok(&d.virsh(&[
        "net-update",
        "vnat",
        "add",
        "ip-dhcp-host",
        host,
        "--live",
        "--config",
    ]));
    let ip = dhcp_client(&d, "vbr-nat", "vc1", "52:54:00:aa:00:02", "whatever");
    assert_eq!(ip, "10.77.0.50");
    for args in [
        &["net-dumpxml", "vnat"][..],
        &["net-dumpxml", "vnat", "--inactive"],
    ] {
        let flag = args.len();
        let xml = ok(&d.virsh(args));
        assert!(xml.contains(host.trim_end_matches("/>")), "{flag}: {xml}");
    }
    let err = fails(&d.virsh(&["net-update", "vnat", "add", "ip-dhcp-host", host, "--live"]));
    assert!(err.contains("existing"), "{err}");
    ok(&d.virsh(&[
        "net-update",
        "vnat",
        "delete",
        "ip-dhcp-host",
        host,
        "--config",
    ]));
    let xml = ok(&d.virsh(&["net-dumpxml", "vnat", "--inactive"]));
    assert!(!xml.contains("fixed"), "{xml}");

    // Destroy removes exactly what the network made.
    ok(&d.virsh(&["net-destroy", "vnat"]));
    events.wait_for("network vnat stopped");
    assert!(!links(&d).contains("vbr-nat"), "{}", links(&d));
    assert!(!ruleset(&d).contains("vireo-vbr-nat"), "{}", ruleset(&d));
    assert!(dnsmasqs(&d).is_empty());
    ok(&d.virsh(&["net-undefine", "vnat"]));
    events.wait_for("network vnat undefined");
    let err = fails(&d.virsh(&["net-info", "vnat"]));
    assert!(err.contains("Network not found"), "{err}");

    // A transient network lives while it runs.
    let t = write_file(
        &d,
        "vtmp.xml",
        &NAT.replace("vnat", "vtmp").replace("vbr-nat", "vbr-tmp"),
    );
    ok(&d.virsh(&["net-create", &t]));
    let list = ok(&d.virsh(&["net-list", "--transient"]));
    assert!(list.contains(" vtmp "), "{list}");
    ok(&d.virsh(&["net-destroy", "vtmp"]));
    assert!(!ok(&d.virsh(&["net-list", "--all"])).contains("vtmp"));
    assert!(!links(&d).contains("vbr-tmp"));
}

/// Routed, isolated and open networks: the rules each needs, and none for open.
fn other_forward_modes(layout: Layout) {
    let d = Daemon::start_in(layout);
    let nets = [
        ("vroute", "<forward mode='route'/>", "10.78.0.1", true),
        ("viso", "", "10.79.0.1", true),
        ("vopen", "<forward mode='open'/>", "10.80.0.1", false),
    ];
    for (name, fwd, ip, has_rules) in nets {
        let xml = format!(
            "<network><name>{name}</name>{fwd}<bridge name='br-{name}'/>\
             <ip address='{ip}' prefix='24'/></network>"
        );
        let f = write_file(&d, &format!("{name}.xml"), &xml);
        ok(&d.virsh(&["net-define", &f]));
        ok(&d.virsh(&["net-start", name]));
        let rules = ruleset(&d);
        assert_eq!(
            rules.contains(&format!("vireo-br-{name}")),
            has_rules,
            "{name}: {rules}"
        );
        assert!(!rules.contains("masquerade"), "{name}: {rules}");
        assert!(links(&d).contains(&format!("br-{name}")));
    }
    // Isolated: nothing is forwarded anywhere else.
    let rules = ruleset(&d);
    assert!(!rules.contains("saddr 10.79.0.0/24"), "{rules}");
    assert!(rules.contains("ip daddr 10.78.0.0/24 accept"), "{rules}");
    for (name, ..) in nets {
        ok(&d.virsh(&["net-destroy", name]));
    }
    assert!(!ruleset(&d).contains("vireo-"), "{}", ruleset(&d));
}

/// Bad input: a clear error, nothing half-made, the daemon keeps serving.
fn bad_networks_are_refused(layout: Layout) {
    let d = Daemon::start_in(layout);
    // A subnet an interface of the namespace already has.
    in_ns(
        &d,
        "ip",
        &[
            "link", "add", "busy0", "type", "veth", "peer", "name", "busy0p",
        ],
    );
    in_ns(&d, "ip", &["addr", "add", "10.77.0.9/24", "dev", "busy0"]);
    in_ns(&d, "ip", &["link", "set", "busy0", "up"]);
    let f = write_file(&d, "vnat.xml", NAT);
    ok(&d.virsh(&["net-define", &f]));
    let err = fails(&d.virsh(&["net-start", "vnat"]));
    assert!(err.contains("already in use by interface busy0"), "{err}");
    // A bridge of that name that is not ours.
    in_ns(&d, "ip", &["link", "add", "notours", "type", "bridge"]);
    let other = NAT
        .replace("vnat", "v2")
        .replace("vbr-nat", "notours")
        .replace("10.77.0", "10.66.0");
    let f2 = write_file(&d, "v2.xml", &other);
    ok(&d.virsh(&["net-define", &f2]));
    let err = fails(&d.virsh(&["net-start", "v2"]));
    assert!(err.contains("already in use by interface notours"), "{err}");
    // Two networks on one subnet.
    let twin = NAT
        .replace("vnat", "v3")
        .replace("vbr-nat", "vbr-3")
        .replace("10.77.0", "10.66.0");
    let f3 = write_file(&d, "v3.xml", &twin);
    ok(&d.virsh(&["net-define", &f3]));
    in_ns(&d, "ip", &["link", "del", "notours"]);
    ok(&d.virsh(&["net-start", "v2"]));
    let err = fails(&d.virsh(&["net-start", "v3"]));
    assert!(err.contains("already in use"), "{err}");
    // Nothing of the failed starts is left.
    let l = links(&d);
    assert!(!l.contains("vbr-nat") && !l.contains("vbr-3"), "{l}");
    let rules = ruleset(&d);
    assert!(
        !rules.contains("vireo-vbr-nat") && !rules.contains("vireo-vbr-3"),
        "{rules}"
    );
    assert_eq!(dnsmasqs(&d).len(), 1);
    ok(&d.virsh(&["net-destroy", "v2"]));

    for (xml, want) in [
        (
            NAT.replace("10.77.0.199", "10.78.0.10"),
            "not entirely within network",
        ),
        (NAT.replace("vnat", "a/b"), "'/'"),
        ("<network><name>x</name>".to_string(), "XML"),
        (
            NAT.replace("<forward mode='nat'/>", "<forward mode='teleport'/>"),
            "teleport",
        ),
    ] {
        let f = write_file(&d, "bad.xml", &xml);
        let err = fails(&d.virsh(&["net-define", &f]));
        assert!(err.contains(want), "{want}: {err}");
    }
    let list = ok(&d.virsh(&["net-list", "--all"]));
    assert!(!list.contains(" x ") && !list.contains("a/b"), "{list}");
}

/// kill -9 of the daemons: the network goes on (bridge, rules, dnsmasq); the restarted
/// daemon lists it active and adopts its dnsmasq; destroy then removes everything.
fn restarted_daemon_adopts_active_networks(layout: Layout) {
    let mut d = Daemon::start_in(layout);
    let f = write_file(&d, "vnat.xml", NAT);
    ok(&d.virsh(&["net-define", &f]));
    ok(&d.virsh(&["net-start", "vnat"]));
    let before = dnsmasqs(&d);
    assert_eq!(before.len(), 1);
    d.kill9();
    assert_eq!(dnsmasqs(&d), before);
    let ip = dhcp_client(&d, "vbr-nat", "vc0", "52:54:00:aa:00:03", "during");
    assert!(ip.starts_with("10.77.0."), "{ip}");
    d.restart();
    let list = ok(&d.virsh(&["net-list"]));
    assert!(list.contains(" vnat "), "{list}");
    assert_eq!(
        dnsmasqs(&d),
        before,
        "the running dnsmasq is adopted, not replaced"
    );
    let leases = ok(&d.virsh(&["net-dhcp-leases", "vnat"]));
    assert!(leases.contains("during"), "{leases}");
    // A dnsmasq that dies is started again.
    vireo_tests::signal(before[0], Signal::KILL);
    let t0 = std::time::Instant::now();
    while dnsmasqs(&d).iter().all(|p| *p == before[0]) {
        assert!(t0.elapsed().as_secs() < 30, "dnsmasq was not restarted");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    ok(&d.virsh(&["net-destroy", "vnat"]));
    assert!(!links(&d).contains("vbr-nat"));
    assert!(!ruleset(&d).contains("vireo-"));
    assert!(dnsmasqs(&d).is_empty());
}

/// A guest on a network: its interface definition.
fn guest_on(d: &Daemon, name: &str, network: &str, mac: &str) -> String {
    let iface = format!(
        "<interface type='network'><mac address='{mac}'/><source network='{network}'/>\
         <model type='virtio'/></interface>"
    );
    let xml = vireo_tests::guest_xml(name).replace("<devices>", &format!("<devices>{iface}"));
    write_file(d, &format!("{name}.xml"), &xml)
}

/// Two TCG guests on one NAT network: the QEMU driver gets each a port and its tap from
/// the network driver (the tap as a descriptor); the guests get leases from our dnsmasq
/// and reach each other, the gateway and the namespace's host side; a stopped guest's
/// port is released.
fn two_guests_on_a_nat_network(layout: Layout) {
    let d = Daemon::start_in(layout);
    let f = write_file(&d, "vnat.xml", NAT);
    ok(&d.virsh(&["net-define", &f]));
    ok(&d.virsh(&["net-start", "vnat"]));
    let (mac1, mac2) = ("52:54:00:77:00:01", "52:54:00:77:00:02");
    for (vm, mac) in [("vm1", mac1), ("vm2", mac2)] {
        let mut f = guest_on(&d, vm, "vnat", mac);
        if vm == "vm1" {
            // vm1's interface has limits: 1000 KiB/s in (peak 2000), 500 KiB/s out.
            let xml = std::fs::read_to_string(&f).unwrap().replace(
                "<model type='virtio'/>",
                "<model type='virtio'/><bandwidth><inbound average='1000' peak='2000'/>\
                 <outbound average='500'/></bandwidth>",
            );
            f = write_file(&d, "vm1-bw.xml", &xml);
        }
        ok(&d.virsh(&["define", &f]));
        ok(&d.virsh(&["start", "--paused", vm]));
    }
    // The limits are on vm1's tap.
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    let tap = vireo_tests::value_after(&live, "<target dev='");
    let class = in_ns(&d, "tc", &["class", "show", "dev", &tap]);
    assert!(class.contains("rate 8Mbit ceil 16Mbit"), "{class}");
    let limit = in_ns(&d, "nft", &["list", "ruleset", "netdev"]);
    assert!(
        limit.contains("table netdev vireo-bw-")
            && limit.contains(&format!("device \"{tap}\""))
            && limit.contains("limit rate over 500 kbytes/second"),
        "{limit}"
    );
    // The limits change on the running port (NETWORK_PORT_SET_PARAMETERS): a new inbound
    // rate, no outbound limit any more.
    let portid = vireo_tests::value_after(&ok(&d.virsh(&["dumpxml", "vm1"])), "portid='");
    let got = ok(&d.python(
        "port_params.py",
        &[
            "vnat",
            &portid,
            "inbound.average=3000",
            "inbound.peak=0",
            "outbound.average=0",
        ],
    ));
    assert!(
        got.contains("inbound.average 3000") && got.contains("outbound.average 0"),
        "{got}"
    );
    let class = in_ns(&d, "tc", &["class", "show", "dev", &tap]);
    assert!(class.contains("rate 24Mbit ceil 24Mbit"), "{class}");
    assert!(!in_ns(&d, "nft", &["list", "tables"]).contains("vireo-bw-"));
    let port = ok(&d.virsh(&["net-port-dumpxml", "vnat", &portid]));
    assert!(
        port.contains("<inbound average='3000'/>") && !port.contains("<outbound"),
        "{port}"
    );
    let e = fails(&d.python("port_params.py", &["vnat", &portid, "inbound.floor=10"]));
    assert!(e.contains("floor"), "{e}");
    let seen1 = guest_shell(&d, "vm1", &["--resume"]);
    let ip1 = guest_ip(&seen1, mac1);
    let seen2 = guest_shell(
        &d,
        "vm2",
        &[
            "--resume",
            &format!("{} && echo PEER-$((40+2))", tries(&ip1)),
            "PEER-42",
            &format!("{} && echo GW-$((40+2))", tries("10.77.0.1")),
            "GW-42",
        ],
    );
    let ip2 = guest_ip(&seen2, mac2);
    assert!(
        ip1.starts_with("10.77.0.1") && ip2.starts_with("10.77.0.1"),
        "{ip1} {ip2}"
    );
    assert_ne!(ip1, ip2);
    // The host side of the namespace reaches both.
    for ip in [&ip1, &ip2] {
        host_ping(&d, ip);
    }
    let leases = ok(&d.virsh(&["net-dhcp-leases", "vnat"]));
    assert!(leases.contains(mac1) && leases.contains(mac2), "{leases}");
    // domifaddr: the network's lease, and the host's ARP table (the pings filled it).
    let addrs = ok(&d.virsh(&["domifaddr", "vm1"]));
    assert!(
        addrs.contains(&tap) && addrs.contains(mac1) && addrs.contains(&format!("{ip1}/24")),
        "{addrs}"
    );
    let arp = ok(&d.virsh(&["domifaddr", "vm1", "--source", "arp"]));
    assert!(arp.contains(mac1) && arp.contains(&ip1), "{arp}");
    // This guest has no agent channel.
    let e = fails(&d.virsh(&["domifaddr", "vm1", "--source", "agent"]));
    assert!(e.contains("QEMU guest agent is not configured"), "{e}");
    // The tap's counters, from the guest's side: it sent its DHCP requests and pings,
    // it received the answers (by tap name and by MAC address alike).
    for dev in [tap.as_str(), mac1] {
        let st = ok(&d.virsh(&["domifstat", "vm1", dev]));
        let count = |k: &str| -> u64 {
            st.lines()
                .find_map(|l| l.strip_prefix(&format!("{dev} {k} ")))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {k} in {st}"))
        };
        assert!(count("rx_packets") > 0 && count("tx_packets") > 0, "{st}");
    }
    let stats = ok(&d.virsh(&["domstats", "vm1", "--interface"]));
    assert!(
        stats.contains("  net.count=1\n") && stats.contains(&format!("  net.0.name={tap}\n")),
        "{stats}"
    );
    // The live XML names the tap, the port and the bridge; the network lists the ports.
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(live.contains("<target dev='vnet"), "{live}");
    assert!(live.contains("portid='"), "{live}");
    assert!(live.contains("bridge='vbr-nat'"), "{live}");
    let portid = vireo_tests::value_after(&live, "portid='");
    let ports = ok(&d.virsh(&["net-port-list", "vnat"]));
    assert!(!portid.is_empty() && ports.contains(&portid), "{ports}");
    let port = ok(&d.virsh(&["net-port-dumpxml", "vnat", &portid]));
    assert!(port.contains("<name>vm1</name>"), "{port}");
    assert!(port.contains(&format!("<mac address='{mac1}'/>")), "{port}");
    assert!(
        port.contains("<plug type='network' bridge='vbr-nat'/>"),
        "{port}"
    );
    let nports = |d: &Daemon| {
        ok(&d.virsh(&["net-port-list", "vnat", "--uuid"]))
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count()
    };
    assert_eq!(nports(&d), 2);
    ok(&d.virsh(&["destroy", "vm1"]));
    let t0 = std::time::Instant::now();
    while nports(&d) != 1 {
        assert!(t0.elapsed().as_secs() < 30, "vm1's port was not released");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!in_ns(&d, "nft", &["list", "tables"]).contains("vireo-bw-"));
    ok(&d.virsh(&["destroy", "vm2"]));
}

/// kill -9 of the network daemon (or of vireod) while two guests run: their traffic goes
/// on; a guest that stopped while no network daemon ran has its port released when the
/// daemon is back; the restarted daemon lists the network active with the other port; and
/// destroying everything leaves no bridge, tap, firewall table or dnsmasq behind.
fn guests_keep_their_network_when_networkd_dies(layout: Layout) {
    let mut d = Daemon::start_in(layout);
    let f = write_file(&d, "vnat.xml", NAT);
    ok(&d.virsh(&["net-define", &f]));
    ok(&d.virsh(&["net-start", "vnat"]));
    let (mac1, mac2) = ("52:54:00:77:00:11", "52:54:00:77:00:12");
    let mut ips = Vec::new();
    for (vm, mac) in [("vm1", mac1), ("vm2", mac2)] {
        let f = guest_on(&d, vm, "vnat", mac);
        ok(&d.virsh(&["define", &f]));
        ok(&d.virsh(&["start", "--paused", vm]));
        ips.push(guest_ip(&guest_shell(&d, vm, &["--resume"]), mac));
    }
    let dnsmasq = dnsmasqs(&d);
    let monolithic = layout == Layout::Monolithic;
    if monolithic {
        d.kill9();
    } else {
        d.kill9_one("vireo-networkd");
    }
    // Traffic goes on without the daemon.
    for ip in &ips {
        host_ping(&d, ip);
    }
    assert_eq!(dnsmasqs(&d), dnsmasq);
    // vm1 stops while no network daemon runs.
    if monolithic {
        let pid = d.qemu_pid("vm1").expect("vm1 runs");
        vireo_tests::signal(pid, Signal::KILL);
        assert!(vireo_tests::wait_exit(
            pid,
            std::time::Duration::from_secs(30)
        ));
        d.restart();
    } else {
        ok(&d.virsh(&["destroy", "vm1"]));
        d.start_one("vireo-networkd", &[]);
    }
    let list = ok(&d.virsh(&["net-list"]));
    assert!(list.contains(" vnat "), "{list}");
    let ports = ok(&d.virsh(&["net-port-list", "vnat", "--uuid"]));
    assert_eq!(
        ports.lines().filter(|l| !l.trim().is_empty()).count(),
        1,
        "{ports}"
    );
    host_ping(&d, &ips[1]);
    ok(&d.virsh(&["destroy", "vm2"]));
    let t0 = std::time::Instant::now();
    while !ok(&d.virsh(&["net-port-list", "vnat", "--uuid"]))
        .trim()
        .is_empty()
    {
        assert!(t0.elapsed().as_secs() < 30, "vm2's port was not released");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    ok(&d.virsh(&["net-destroy", "vnat"]));
    let l = links(&d);
    assert!(!l.contains("vbr-nat") && !l.contains("vnet"), "{l}");
    assert!(!ruleset(&d).contains("vireo-"), "{}", ruleset(&d));
    assert!(dnsmasqs(&d).is_empty());
}

/// Two TCG guests with fixed addresses (static DHCP hosts), one with `clean-traffic`: the
/// filtered guest that takes another IP or MAC address reaches neither the other guest nor
/// the gateway, the unfiltered one does; the binding goes with the guest.
fn clean_traffic_stops_a_spoofing_guest(layout: Layout) {
    let d = Daemon::start_in(layout);
    let (mac1, mac2) = ("52:54:00:77:00:21", "52:54:00:77:00:22");
    let net = NAT.replace(
        "</dhcp>",
        &format!("<host mac='{mac1}' ip='10.77.0.21'/><host mac='{mac2}' ip='10.77.0.22'/></dhcp>"),
    );
    let f = write_file(&d, "vnat.xml", &net);
    ok(&d.virsh(&["net-define", &f]));
    ok(&d.virsh(&["net-start", "vnat"]));
    let filtered = std::fs::read_to_string(guest_on(&d, "vm1", "vnat", mac1))
        .unwrap()
        .replace(
            "<model type='virtio'/>",
            "<model type='virtio'/><filterref filter='clean-traffic'/>",
        );
    let f1 = write_file(&d, "vm1.xml", &filtered);
    let f2 = guest_on(&d, "vm2", "vnat", mac2);
    for (vm, f) in [("vm1", &f1), ("vm2", &f2)] {
        ok(&d.virsh(&["define", f]));
        ok(&d.virsh(&["start", "--paused", vm]));
    }
    let bl = ok(&d.virsh(&["nwfilter-binding-list"]));
    assert!(bl.contains("clean-traffic"), "{bl}");
    let ip2 = guest_ip(&guest_shell(&d, "vm2", &["--resume"]), mac2);
    assert_eq!(ip2, "10.77.0.22");
    // With its own address vm1 reaches vm2 and the gateway; with another one it reaches
    // neither; with its own again it does. vm2, unfiltered, reaches vm1 and the gateway
    // with any address. (Pings that should pass get a few tries: TCG guests on a loaded machine
    // answer slowly.)
    let seen = guest_shell(
        &d,
        "vm1",
        &[
            "--resume",
            &format!("{} && echo PEER-$((40+2))", tries("10.77.0.22")),
            "PEER-42",
            "ip addr flush dev eth0; ip addr add 10.77.0.99/24 dev eth0; \
             ping -c 2 -W 3 10.77.0.1 >/dev/null && echo LEAK-$((1+1)) || echo HELD-$((2+2))",
            "HELD-4",
            "ping -c 2 -W 3 10.77.0.22 >/dev/null && echo LEAK-$((1+2)) || echo HELD-$((2+3))",
            "HELD-5",
            &format!(
                "ip addr flush dev eth0; ip addr add 10.77.0.21/24 dev eth0; \
                 {} && echo BACK-$((3+3))",
                tries("10.77.0.1")
            ),
            "BACK-6",
            // Another MAC address: held as well.
            "ip link set eth0 down; ip link set eth0 address 52:54:00:77:00:99; \
             ip link set eth0 up; ip addr add 10.77.0.21/24 dev eth0 2>/dev/null; \
             ping -c 2 -W 3 10.77.0.1 >/dev/null && echo LEAK-$((1+3)) || echo HELD-$((3+3))",
            "HELD-6",
            &format!(
                "ip link set eth0 down; ip link set eth0 address {mac1}; ip link set eth0 up; \
                 ip addr add 10.77.0.21/24 dev eth0 2>/dev/null; echo RESTORED-$((4+4))"
            ),
            "RESTORED-8",
        ],
    );
    assert_eq!(guest_ip(&seen, mac1), "10.77.0.21");
    guest_shell(
        &d,
        "vm2",
        &[
            "--running",
            &format!(
                "ip addr flush dev eth0; ip addr add 10.77.0.98/24 dev eth0; \
                 {} && {} && echo FREE-$((3+4))",
                tries("10.77.0.21"),
                tries("10.77.0.1")
            ),
            "FREE-7",
        ],
    );
    ok(&d.virsh(&["destroy", "vm1"]));
    let t0 = std::time::Instant::now();
    while ok(&d.virsh(&["nwfilter-binding-list"])).contains("clean-traffic") {
        assert!(t0.elapsed().as_secs() < 30, "vm1's binding was not removed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    ok(&d.virsh(&["destroy", "vm2"]));
}

/// A guest on a host's bridge (`<interface type='bridge'>`, no libvirt network): the
/// network driver makes its tap in that bridge (with the interface's `clean-traffic`), the
/// guest gets a lease from whatever serves that bridge (here a NAT network's dnsmasq), the
/// filter learns the leased address from the DHCP answer (so the guest gets through, and
/// not with another address), and the tap, its binding and its record go with the guest. A bridge that does not exist, or a
/// device that is not a bridge: a clear error, nothing started, no tap left.
fn guest_on_a_host_bridge(layout: Layout) {
    let d = Daemon::start_in(layout);
    let f = write_file(&d, "vnat.xml", NAT);
    ok(&d.virsh(&["net-define", &f]));
    ok(&d.virsh(&["net-start", "vnat"]));
    let on_bridge = |name: &str, bridge: &str, mac: &str| {
        let iface = format!(
            "<interface type='bridge'><mac address='{mac}'/><source bridge='{bridge}'/>\
             <model type='virtio'/><filterref filter='clean-traffic'/></interface>"
        );
        let xml = vireo_tests::guest_xml(name).replace("<devices>", &format!("<devices>{iface}"));
        write_file(&d, &format!("{name}.xml"), &xml)
    };
    let mac = "52:54:00:77:00:41";
    ok(&d.virsh(&["define", &on_bridge("vm1", "vbr-nat", mac)]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(live.contains("<interface type='bridge'>"), "{live}");
    assert!(live.contains("<source bridge='vbr-nat'/>"), "{live}");
    assert!(!live.contains("portid="), "{live}");
    let tap = vireo_tests::value_after(&live, "<target dev='");
    assert!(tap.starts_with("vnet"), "{live}");
    let members = in_ns(&d, "ip", &["-br", "link", "show", "master", "vbr-nat"]);
    assert!(members.contains(&tap), "{members}");
    // Not a port of the network; its filter is bound to the tap.
    assert_eq!(
        ok(&d.virsh(&["net-port-list", "vnat", "--uuid"])).trim(),
        ""
    );
    let bl = ok(&d.virsh(&["nwfilter-binding-list"]));
    assert!(bl.contains(&tap) && bl.contains("clean-traffic"), "{bl}");
    let seen = guest_shell(
        &d,
        "vm1",
        &[
            "--resume",
            &format!("{} && echo GW-$((40+2))", tries("10.77.0.1")),
            "GW-42",
        ],
    );
    let ip = guest_ip(&seen, mac);
    assert!(ip.starts_with("10.77.0.1"), "{ip}");
    host_ping(&d, &ip);
    // clean-traffic without an IP: the address dnsmasq acknowledged was learned (the
    // guest reached the gateway above); another one is held.
    let learned = d.run_dir().join(format!("nwfilter/learned/{tap}"));
    assert_eq!(std::fs::read_to_string(&learned).unwrap_or_default(), ip);
    guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            "ip addr flush dev eth0; ip addr add 10.77.0.99/24 dev eth0; \
             ping -c 2 -W 3 10.77.0.1 >/dev/null && echo LEAK-$((1+1)) || echo HELD-$((2+2))",
            "HELD-4",
        ],
    );
    ok(&d.virsh(&["destroy", "vm1"]));
    let records = d.run_dir().join("network/bridge-ports");
    let t0 = std::time::Instant::now();
    while ok(&d.virsh(&["nwfilter-binding-list"])).contains(&tap)
        || std::fs::read_dir(&records).map_or(0, |r| r.count()) != 0
    {
        assert!(t0.elapsed().as_secs() < 30, "vm1's port was not released");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!links(&d).contains(&tap));
    // No such bridge; a device that is not a bridge.
    in_ns(
        &d,
        "ip",
        &[
            "link", "add", "notbr", "type", "veth", "peer", "name", "notbr1",
        ],
    );
    for (vm, bridge, want) in [
        ("vm2", "nobr", "bridge 'nobr' does not exist"),
        ("vm3", "notbr", "'notbr' is not a bridge"),
    ] {
        ok(&d.virsh(&["define", &on_bridge(vm, bridge, "52:54:00:77:00:42")]));
        let e = fails(&d.virsh(&["start", vm]));
        assert!(e.contains(want), "{e}");
        assert!(ok(&d.virsh(&["domstate", vm])).contains("shut off"));
    }
    assert!(!links(&d).contains("vnet"), "{}", links(&d));
    ok(&d.virsh(&["net-destroy", "vnat"]));
}

/// The heart of the split: vireo-qemud runs as an unprivileged user (uid 65534), the
/// network daemon as root; real virsh through vireo-proxyd starts a TCG guest on a NAT
/// network, its tap made by the network daemon and handed over as a descriptor, and the
/// guest gets a lease. Nothing of the QEMU side runs as root.
#[test]
fn unprivileged_qemud_boots_a_guest_on_a_nat_network() {
    use std::os::unix::fs::{chown, MetadataExt};
    let d = Daemon::start_with_unprivileged_qemud();
    let f = write_file(&d, "vnat.xml", NAT);
    ok(&d.virsh(&["net-define", &f]));
    ok(&d.virsh(&["net-start", "vnat"]));
    // The guest's kernel where uid 65534 can read it.
    let (kernel, initrd) = vireo_tests::guest();
    let q = d.root.join("qemud");
    let mut xml =
        std::fs::read_to_string(guest_on(&d, "vm1", "vnat", "52:54:00:77:00:31")).unwrap();
    for (from, name) in [(&kernel, "vmlinuz"), (&initrd, "initrd.img")] {
        let to = q.join(name);
        std::fs::copy(from, &to).unwrap();
        chown(&to, Some(65534), Some(65534)).unwrap();
        xml = xml.replace(from.to_str().unwrap(), to.to_str().unwrap());
    }
    let f = write_file(&d, "vm1-nobody.xml", &xml);
    ok(&d.virsh(&["define", &f]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let seen = guest_shell(&d, "vm1", &["--resume"]);
    let ip = guest_ip(&seen, "52:54:00:77:00:31");
    assert!(ip.starts_with("10.77.0.1"), "{ip}");
    host_ping(&d, &ip);
    // Who runs what: vireo-qemud and QEMU as 65534.
    let uid = |pid: i32| std::fs::metadata(format!("/proc/{pid}")).unwrap().uid();
    let qemu = d.qemu_pid("vm1").expect("vm1 runs");
    assert_eq!(uid(qemu), 65534);
    let qemud = d.pids()[DRIVER_POSITION_QEMUD];
    assert_eq!(uid(qemud), 65534);
    ok(&d.virsh(&["destroy", "vm1"]));
    ok(&d.virsh(&["net-destroy", "vnat"]));
}

/// vireo-qemud's place among the daemons `start_with_unprivileged_qemud` starts (after the
/// six other drivers).
const DRIVER_POSITION_QEMUD: usize = 6;

vireo_tests::in_every_layout!(
    clean_traffic_stops_a_spoofing_guest,
    guests_keep_their_network_when_networkd_dies,
    two_guests_on_a_nat_network,
    guest_on_a_host_bridge,
    nat_network_with_virsh,
    other_forward_modes,
    bad_networks_are_refused,
    restarted_daemon_adopts_active_networks,
);
