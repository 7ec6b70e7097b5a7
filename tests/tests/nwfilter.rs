//! Traffic filters (`vireo-nwfilterd`, or `vireod`) with the real virsh, enforced with
//! nftables inside the test's own network namespace.

use vireo_tests::{fails, in_ns, ok, validate, write_file, Daemon, Layout};

/// Whether `virsh nwfilter-list` output names `name`.
fn listed(list: &str, name: &str) -> bool {
    list.lines()
        .any(|l| l.split_whitespace().last() == Some(name))
}

const BINDING: &str = "<filterbinding><owner><name>vm</name>\
    <uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid></owner>\
    <portdev name='vf0'/><mac address='52:54:00:aa:00:01'/>\
    <filterref filter='clean-traffic'><parameter name='IP' value='10.70.0.5'/></filterref>\
    </filterbinding>";

/// Filters and bindings through virsh: the well-known filters, a filter of our own,
/// reference loops and missing filters refused, a binding whose rules are in the kernel
/// while it exists, and a filter in use that cannot be undefined.
fn filters_and_bindings_with_virsh(layout: Layout) {
    let d = Daemon::start_in(layout);
    let list = ok(&d.virsh(&["nwfilter-list"]));
    for name in [
        "clean-traffic",
        "no-mac-spoofing",
        "no-ip-spoofing",
        "no-arp-spoofing",
        "allow-dhcp",
        "allow-arp",
        "allow-incoming-ipv4",
    ] {
        assert!(listed(&list, name), "{name}: {list}");
    }
    let xml = ok(&d.virsh(&["nwfilter-dumpxml", "clean-traffic"]));
    assert!(
        xml.contains("<filterref filter='no-mac-spoofing'/>"),
        "{xml}"
    );
    validate(&xml, "nwfilter", &d.root);

    let own = "<filter name='no-ssh' chain='ipv4'>\
        <rule action='drop' direction='in' priority='400'><tcp dstportstart='22'/></rule>\
        <filterref filter='clean-traffic'/></filter>";
    let f = write_file(&d, "own.xml", own);
    ok(&d.virsh(&["nwfilter-define", &f]));
    assert!(listed(&ok(&d.virsh(&["nwfilter-list"])), "no-ssh"));
    // A loop: clean-traffic would reference no-ssh, which references clean-traffic.
    let looped = ok(&d.virsh(&["nwfilter-dumpxml", "clean-traffic"]))
        .replace("</filter>", "<filterref filter='no-ssh'/></filter>");
    let f = write_file(&d, "loop.xml", &looped);
    let err = fails(&d.virsh(&["nwfilter-define", &f]));
    assert!(err.contains("loop"), "{err}");

    // A binding on a device of the namespace: its table is there while it exists.
    in_ns(
        &d,
        "ip",
        &["link", "add", "vf0", "type", "veth", "peer", "name", "vf0p"],
    );
    let b = write_file(&d, "binding.xml", BINDING);
    ok(&d.virsh(&["nwfilter-binding-create", &b]));
    let rules = in_ns(&d, "nft", &["list", "table", "bridge", "vireo-nwf-vf0"]);
    assert!(rules.contains("52:54:00:aa:00:01"), "{rules}");
    assert!(rules.contains("10.70.0.5"), "{rules}");
    let bl = ok(&d.virsh(&["nwfilter-binding-list"]));
    assert!(bl.contains("vf0") && bl.contains("clean-traffic"), "{bl}");
    let bx = ok(&d.virsh(&["nwfilter-binding-dumpxml", "vf0"]));
    validate(&bx, "nwfilterbinding", &d.root);
    let err = fails(&d.virsh(&["nwfilter-binding-create", &b]));
    assert!(err.contains("already exists"), "{err}");
    let err = fails(&d.virsh(&["nwfilter-undefine", "no-ip-spoofing"]));
    assert!(err.contains("in use"), "{err}");
    // A binding of a filter that is not there: refused, nothing made.
    let missing = write_file(
        &d,
        "missing.xml",
        &BINDING
            .replace("vf0", "vf1")
            .replace("clean-traffic", "no-such-filter"),
    );
    let err = fails(&d.virsh(&["nwfilter-binding-create", &missing]));
    assert!(err.contains("no-such-filter"), "{err}");
    assert!(!in_ns(&d, "nft", &["list", "tables"]).contains("vireo-nwf-vf1"));

    ok(&d.virsh(&["nwfilter-binding-delete", "vf0"]));
    assert!(!in_ns(&d, "nft", &["list", "tables"]).contains("vireo-nwf-vf0"));
    ok(&d.virsh(&["nwfilter-undefine", "no-ssh"]));
    assert!(!listed(&ok(&d.virsh(&["nwfilter-list"])), "no-ssh"));
}

/// A binding outlives a restart of the daemons, and a filter that changes is applied again
/// to the bindings that use it.
fn bindings_outlive_restarts_and_follow_their_filters(layout: Layout) {
    let mut d = Daemon::start_in(layout);
    in_ns(
        &d,
        "ip",
        &["link", "add", "vf0", "type", "veth", "peer", "name", "vf0p"],
    );
    let own = "<filter name='mine' chain='ipv4'>\
        <rule action='drop' direction='in' priority='400'><tcp dstportstart='22'/></rule></filter>";
    let f = write_file(&d, "own.xml", own);
    ok(&d.virsh(&["nwfilter-define", &f]));
    let b = write_file(&d, "binding.xml", &BINDING.replace("clean-traffic", "mine"));
    ok(&d.virsh(&["nwfilter-binding-create", &b]));
    d.kill9();
    d.restart();
    assert!(ok(&d.virsh(&["nwfilter-binding-list"])).contains("vf0"));
    let rules = in_ns(&d, "nft", &["list", "table", "bridge", "vireo-nwf-vf0"]);
    assert!(rules.contains("dport 22 drop"), "{rules}");
    let f = write_file(&d, "own2.xml", &own.replace("'22'", "'2222'"));
    ok(&d.virsh(&["nwfilter-define", &f]));
    let rules = in_ns(&d, "nft", &["list", "table", "bridge", "vireo-nwf-vf0"]);
    assert!(rules.contains("dport 2222 drop"), "{rules}");
    ok(&d.virsh(&["nwfilter-binding-delete", "vf0"]));
}

vireo_tests::in_every_layout!(
    filters_and_bindings_with_virsh,
    bindings_outlive_restarts_and_follow_their_filters,
);
