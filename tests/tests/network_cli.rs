//! The `vireo` CLI's net-* commands against virsh's: the same steps through both, the same
//! output (stdout, stderr and exit status), inside the test's own network namespace.

use vireo_tests::{
    dhcp_client, done_then_refused, fails, ok, output_parts, same_as_virsh, write_file, Daemon,
    Layout,
};

const NAT: &str = "<network><name>vnat</name><forward mode='nat'/>\
    <bridge name='vbr-nat'/><domain name='vnat.test' localOnly='yes'/>\
    <dns><host ip='10.77.0.1'><hostname>gateway</hostname></host></dns>\
    <ip address='10.77.0.1' netmask='255.255.255.0'>\
    <dhcp><range start='10.77.0.100' end='10.77.0.199'/></dhcp></ip></network>";

const PORT: &str = "<networkport><owner><name>g1</name>\
    <uuid>11111111-2222-3333-4444-555555555555</uuid></owner>\
    <mac address='52:54:00:01:02:03'/></networkport>";

fn network_with_vireo_cli(layout: Layout) {
    let d = Daemon::start_in(layout);
    let f = write_file(&d, "vnat.xml", NAT);

    // Define, and define again (a redefinition): the same words from both.
    assert_eq!(
        ok(&d.vireo(&["net-define", &f])),
        format!("Network vnat defined from {f}\n\n")
    );
    same_as_virsh(&d, &["net-define", &f]);
    let uuid = ok(&d.vireo(&["net-uuid", "vnat"])).trim().to_string();
    assert_eq!(uuid.len(), 36, "{uuid}");
    let default_uuid = ok(&d.virsh(&["net-uuid", "default"])).trim().to_string();

    let reads = |d: &Daemon| {
        for args in [
            &["net-list"][..],
            &["net-list", "--all"],
            &["net-list", "--inactive"],
            &["net-list", "--all", "--name"],
            &["net-list", "--all", "--uuid"],
            &["net-list", "--all", "--table"],
            &["net-list", "--persistent", "--all"],
            &["net-list", "--transient", "--all"],
            &["net-list", "--autostart", "--all"],
            &["net-list", "--no-autostart", "--all"],
            &["net-info", "vnat"],
            &["net-info", &uuid],
            &["net-info", "default"],
            &["net-uuid", "vnat"],
            &["net-name", &uuid],
            &["net-name", &default_uuid],
            &["net-dumpxml", "vnat"],
            &["net-dumpxml", "--inactive", "vnat"],
            &["net-dumpxml", "--network", "vnat"],
        ] {
            ok(&same_as_virsh(d, args));
        }
    };
    reads(&d);

    // Start; starting again is refused the same way.
    done_then_refused(&d, &["net-start", "vnat"], "Network vnat started\n\n");
    let err = fails(&d.vireo(&["net-start", "vnat"]));
    assert_eq!(
        err,
        "error: Failed to start network vnat\n\
         error: Requested operation is not valid: network is already active as 'vnat'\n"
    );
    // Autostart, on and off: idempotent, so both say the same each time.
    same_as_virsh(&d, &["net-autostart", "vnat"]);
    reads(&d);
    same_as_virsh(&d, &["net-autostart", "--disable", "vnat"]);
    assert_eq!(
        ok(&d.vireo(&["net-autostart", &uuid])),
        format!("Network {uuid} marked as autostarted\n\n")
    );
    reads(&d);

    // Errors, as virsh words them (and its blank line on stdout for those that ran).
    for args in [
        &["net-info", "nope"][..],
        &["net-info", "00000000-0000-0000-0000-000000000000"],
        &["net-uuid", "nope"],
        &["net-name", "vnat"],
        &["net-name", "00000000-0000-0000-0000-000000000000"],
        &["net-name", "zzzzzzzz-0000-0000-0000-000000000000"],
        &["net-start", "nope"],
        &["net-destroy", "nope"],
        &["net-undefine", "nope"],
        &["net-autostart", "nope"],
        &["net-dumpxml", "nope"],
        &["net-dhcp-leases", "nope"],
        &["net-port-list", "nope"],
        &["net-info"],
        &["net-info", "vnat", "extra"],
        &["net-list", "--bogus"],
        &["net-list", "--name", "--uuid"],
        &["net-port-list", "vnat", "--uuid", "--table"],
        &["net-update", "vnat", "add"],
        &["net-update", "vnat", "bogus", "ip-dhcp-host", "<host/>"],
        &["net-update", "vnat", "add", "bogus", "<host/>"],
        &["net-update", "nope", "add", "ip-dhcp-host", "<host/>"],
        &[
            "net-update",
            "vnat",
            "add",
            "ip-dhcp-host",
            "<host/>",
            "--current",
            "--live",
        ],
        &[
            "net-update",
            "vnat",
            "add",
            "ip-dhcp-host",
            "<host/>",
            "--parent-index",
            "x",
        ],
        &["net-update", "vnat", "add", "ip-dhcp-host", "/nonexistent"],
        &["net-update", "vnat", "add", "ip-dhcp-host", "<host"],
        &["net-define", "/nonexistent"],
        &["net-create", "/nonexistent"],
        &["net-event"],
        &["net-event", "--event", "bogus"],
        &["net-event", "--event", "lifecycle", "--timeout", "0"],
        &["nosuchcommand"],
    ] {
        let o = same_as_virsh(&d, args);
        assert!(!o.status.success(), "{args:?}");
    }
    let err = fails(&d.vireo(&["net-info", "nope"]));
    assert_eq!(
        err,
        "error: failed to get network 'nope'\n\
         error: Network not found: no network with matching name 'nope'\n"
    );

    // A DHCP lease, listed alike (expiry in local time), also by MAC in any case.
    let ip = dhcp_client(&d, "vbr-nat", "vc0", "52:54:00:aa:00:01", "client0");
    let leases = ok(&same_as_virsh(&d, &["net-dhcp-leases", "vnat"]));
    assert!(leases.contains(&format!("{ip}/24")), "{leases}");
    assert!(leases.contains("client0"), "{leases}");
    let one = ok(&same_as_virsh(
        &d,
        &["net-dhcp-leases", "vnat", "--mac", "52:54:00:AA:00:01"],
    ));
    assert!(one.contains("client0"), "{one}");
    let none = ok(&same_as_virsh(
        &d,
        &["net-dhcp-leases", "--mac", "52:54:00:aa:00:09", "vnat"],
    ));
    assert!(!none.contains("client0"), "{none}");

    // net-update: the command and section reach the daemon the right way round (a static
    // host added live is served at once), and the messages are virsh's.
    let host = "<host mac='52:54:00:aa:00:02' name='fixed' ip='10.77.0.50'/>";
    let add = ["net-update", "vnat", "add", "ip-dhcp-host", host];
    done_then_refused(
        &d,
        &[&add[..], &["--live", "--config"]].concat(),
        "Updated network vnat persistent config and live state\n",
    );
    assert_eq!(
        dhcp_client(&d, "vbr-nat", "vc1", "52:54:00:aa:00:02", "whatever"),
        "10.77.0.50"
    );
    reads(&d);
    done_then_refused(
        &d,
        &[
            "net-update",
            "vnat",
            "delete",
            "ip-dhcp-host",
            host,
            "--config",
        ],
        "Updated network vnat persistent config\n",
    );
    reads(&d);
    done_then_refused(
        &d,
        &[
            "net-update",
            "vnat",
            "delete",
            "ip-dhcp-host",
            host,
            "--current",
        ],
        "Updated network vnat live state\n",
    );
    // From a file, first in the list, in the first <ip>.
    let hf = write_file(
        &d,
        "host.xml",
        "<host mac='52:54:00:aa:00:03' name='other' ip='10.77.0.51'/>",
    );
    done_then_refused(
        &d,
        &[
            "net-update",
            "vnat",
            "add-first",
            "ip-dhcp-host",
            &hf,
            "--parent-index",
            "0",
            "--live",
        ],
        "Updated network vnat live state\n",
    );
    let live = ok(&same_as_virsh(&d, &["net-dumpxml", "vnat"]));
    assert!(live.contains("name='other'"), "{live}");
    let dns = "<host ip='10.77.0.9'><hostname>nine</hostname></host>";
    ok(&d.vireo(&["net-update", "vnat", "add", "dns-host", dns, "--live"]));
    let live = ok(&same_as_virsh(&d, &["net-dumpxml", "vnat"]));
    assert!(live.contains("<hostname>nine</hostname>"), "{live}");

    // Ports: made by virsh and by vireo, listed, dumped and deleted alike.
    let pf = write_file(&d, "port.xml", PORT);
    ok(&d.virsh(&["net-port-create", "vnat", &pf]));
    let made = ok(&d.vireo(&["net-port-create", "vnat", &pf]));
    let port = made
        .strip_prefix("Network port ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("{made}"))
        .to_string();
    assert_eq!(made, format!("Network port {port} created from {pf}\n\n"));
    same_as_virsh(&d, &["net-port-list", "vnat"]);
    let uuids = ok(&same_as_virsh(&d, &["net-port-list", "vnat", "--uuid"]));
    assert_eq!(
        uuids.lines().filter(|l| !l.is_empty()).count(),
        2,
        "{uuids}"
    );
    let xml = ok(&same_as_virsh(&d, &["net-port-dumpxml", "vnat", &port]));
    assert!(xml.contains("<name>g1</name>"), "{xml}");
    assert_eq!(
        ok(&d.vireo(&["net-port-delete", "vnat", &port])),
        format!("Network port {port} deleted\n\n")
    );
    // virsh reports an unknown port with its own line only, and exits 0 (a virsh bug):
    // vireo prints that line and the daemon's reason, and fails.
    for cmd in ["net-port-dumpxml", "net-port-delete"] {
        let ours = d.vireo(&[cmd, "vnat", &port]);
        let theirs = d.virsh(&[cmd, "vnat", &port]);
        let want = format!("error: failed to get network port '{port}'\n");
        assert_eq!(output_parts(&theirs).1, want);
        let err = fails(&ours);
        assert!(err.starts_with(&want), "{err}");
        assert!(err.lines().count() == 2, "{err}");
        assert_eq!(ours.stdout, theirs.stdout);
    }
    same_as_virsh(&d, &["net-port-list", "vnat"]);

    // Events: the list, a quiet wait that times out, one lifecycle event.
    same_as_virsh(&d, &["net-event", "--list"]);
    same_as_virsh(
        &d,
        &[
            "net-event",
            "default",
            "--event",
            "lifecycle",
            "--timeout",
            "1",
        ],
    );
    let bin = vireo_tests::bin("vireo");
    let uri = d.uri();
    let listener = std::process::Command::new(&bin)
        .args([
            "-c",
            &uri,
            "net-event",
            "vnat",
            "--event",
            "lifecycle",
            "--timeout",
            "60",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Redefinitions until the listener (registered at some point) has seen one.
    let pid = listener.id() as i32;
    let t0 = std::time::Instant::now();
    while !vireo_tests::wait_exit(pid, std::time::Duration::from_millis(200)) {
        assert!(t0.elapsed().as_secs() < 60, "no event reached net-event");
        ok(&d.virsh(&["net-define", &f]));
    }
    let out = listener.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "event 'lifecycle' for network vnat: Defined\nevents received: 1\n\n"
    );

    // A transient network: created, listed, not undefinable, gone when destroyed.
    let t = write_file(
        &d,
        "vtmp.xml",
        &NAT.replace("vnat", "vtmp")
            .replace("vbr-nat", "vbr-tmp")
            .replace("10.77.0", "10.78.0"),
    );
    assert_eq!(
        ok(&d.vireo(&["net-create", &t])),
        format!("Network vtmp created from {t}\n\n")
    );
    reads(&d);
    same_as_virsh(&d, &["net-info", "vtmp"]);
    assert!(!same_as_virsh(&d, &["net-undefine", "vtmp"])
        .status
        .success());
    assert!(!same_as_virsh(&d, &["net-autostart", "vtmp"])
        .status
        .success());
    done_then_refused(&d, &["net-destroy", "vtmp"], "Network vtmp destroyed\n\n");

    // Down and away.
    done_then_refused(&d, &["net-destroy", "vnat"], "Network vnat destroyed\n\n");
    reads(&d);
    assert!(!same_as_virsh(&d, &["net-dhcp-leases", "vnat"])
        .status
        .success());
    ok(&d.vireo(&["net-update", "vnat", "add", "ip-dhcp-host", host]));
    let cfg = ok(&same_as_virsh(&d, &["net-dumpxml", "vnat"]));
    assert!(cfg.contains("name='fixed'"), "{cfg}");
    done_then_refused(
        &d,
        &["net-undefine", "vnat"],
        "Network vnat has been undefined\n\n",
    );
    same_as_virsh(&d, &["net-list", "--all"]);
}

vireo_tests::in_every_layout!(network_with_vireo_cli);
