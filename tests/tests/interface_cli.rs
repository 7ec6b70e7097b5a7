//! The `vireo` CLI's iface-* commands against virsh's: the same steps through both, the
//! same output (stdout, stderr and exit status), inside the test's own network namespace.

use vireo_tests::{
    done_then_refused, in_ns, ok, output_parts, same_as_virsh, write_file, Daemon, Layout,
};

const BRIDGE: &str = "<interface type='bridge' name='vbr0'>
  <protocol family='ipv4'>
    <ip address='192.168.124.1' prefix='24'/>
  </protocol>
  <bridge stp='off' delay='0'>
    <interface type='ethernet' name='vt0'/>
  </bridge>
</interface>
";

fn iface_commands_as_virsh(layout: Layout) {
    let d = Daemon::start_in(layout);
    in_ns(
        &d,
        "ip",
        &["link", "add", "vt0", "type", "veth", "peer", "name", "Vt0p"],
    );
    let link = in_ns(&d, "ip", &["-o", "link", "show", "vt0"]);
    let mac = link
        .split("link/ether ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("vt0's MAC")
        .to_string();
    let upper = mac.to_uppercase();

    let reads = |d: &Daemon| {
        for args in [
            &["iface-list"][..],
            &["iface-list", "--all"],
            &["iface-list", "--inactive"],
            &["iface-list", "--all", "--inactive"],
            &["iface-dumpxml", "vt0"],
            &["iface-dumpxml", "--inactive", "vt0"],
            &["iface-dumpxml", &upper],
            &["iface-dumpxml", "nope0"],
            &["iface-dumpxml"],
            &["iface-mac", "vt0"],
            &["iface-mac", "--interface", "lo"],
            &["iface-mac", &mac],
            &["iface-name", &mac],
            &["iface-name", "vt0"],
            &["iface-name", "52:54:00:00:00:99"],
            &["iface-start", "Vt0p"],
            &["iface-rollback"],
            &["iface-commit"],
        ] {
            same_as_virsh(d, args);
        }
    };
    reads(&d);

    // Define, and define again (a redefinition): the same words from both.
    let f = write_file(&d, "vbr0.xml", BRIDGE);
    assert_eq!(
        ok(&d.vireo(&["iface-define", &f])),
        format!("Interface vbr0 defined from {f}\n\n")
    );
    same_as_virsh(&d, &["iface-define", &f]);
    let taken = write_file(
        &d,
        "taken.xml",
        "<interface type='bridge' name='Vt0p'><bridge/></interface>",
    );
    same_as_virsh(&d, &["iface-define", &taken]);
    same_as_virsh(&d, &["iface-define", "/nonexistent/x.xml"]);
    reads(&d);
    same_as_virsh(&d, &["iface-dumpxml", "vbr0"]);

    done_then_refused(&d, &["iface-start", "vbr0"], "Interface vbr0 started\n\n");
    reads(&d);
    same_as_virsh(&d, &["iface-dumpxml", "vbr0"]);

    // Destroyed: virsh 9 says so and exits 1 all the same; vireo too.
    let o = d.vireo(&["iface-destroy", "vbr0"]);
    assert_eq!(
        output_parts(&o),
        (
            "Interface vbr0 destroyed\n\n".to_string(),
            String::new(),
            Some(1)
        )
    );
    assert!(!in_ns(&d, "ip", &["link"]).contains("vbr0"));
    same_as_virsh(&d, &["iface-destroy", "vbr0"]);

    done_then_refused(
        &d,
        &["iface-begin"],
        "Network config change transaction started\n\n",
    );
    done_then_refused(
        &d,
        &["iface-commit"],
        "Network config change transaction committed\n\n",
    );
    ok(&d.vireo(&["iface-begin"]));
    done_then_refused(
        &d,
        &["iface-undefine", "vbr0"],
        "Interface vbr0 undefined\n\n",
    );
    assert_eq!(
        ok(&d.vireo(&["iface-rollback"])),
        "Network config change transaction rolled back\n\n"
    );
    same_as_virsh(&d, &["iface-list", "--all"]);
    same_as_virsh(&d, &["iface-rollback"]);
    done_then_refused(
        &d,
        &["iface-undefine", "vbr0"],
        "Interface vbr0 undefined\n\n",
    );
    reads(&d);
}

vireo_tests::in_every_layout!(iface_commands_as_virsh);
