//! The `vireo` CLI's nwfilter-* and nwfilter-binding-* commands against virsh's: the same
//! steps through both, the same output (stdout, stderr and exit status), inside the test's
//! own network namespace.

use vireo_tests::{done_then_refused, fails, in_ns, ok, same_as_virsh, write_file, Daemon, Layout};

const OWN: &str = "<filter name='no-ssh' chain='ipv4'>\
    <rule action='drop' direction='in' priority='400'><tcp dstportstart='22'/></rule>\
    <filterref filter='clean-traffic'/></filter>";

const BINDING: &str = "<filterbinding><owner><name>vm</name>\
    <uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid></owner>\
    <portdev name='vf0'/><mac address='52:54:00:aa:00:01'/>\
    <filterref filter='no-ssh'><parameter name='IP' value='10.70.0.5'/></filterref>\
    </filterbinding>";

/// A veth pair in the daemons' namespace: `dev` (to bind filters to) and `{dev}p`.
fn veth(d: &Daemon, dev: &str) {
    let peer = format!("{dev}p");
    in_ns(
        d,
        "ip",
        &["link", "add", dev, "type", "veth", "peer", "name", &peer],
    );
}

/// Like [`same`], for a command that must fail; returns its stderr.
#[track_caller]
fn same_failure(d: &Daemon, args: &[&str]) -> String {
    fails(&same_as_virsh(d, args))
}

/// The UUID `nwfilter-list` shows for `name`.
fn uuid_of(list: &str, name: &str) -> String {
    list.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {name} in {list}"))
        .to_string()
}

fn nwfilter_with_vireo_cli(layout: Layout) {
    let d = Daemon::start_in(layout);
    let list = ok(&same_as_virsh(&d, &["nwfilter-list"]));
    assert!(list.starts_with(" UUID"), "{list}");
    let clean = uuid_of(&list, "clean-traffic");
    assert_eq!(clean.len(), 36, "{clean}");

    let reads = |d: &Daemon| {
        for args in [
            &["nwfilter-list"][..],
            &["nwfilter-binding-list"],
            &["nwfilter-dumpxml", "clean-traffic"],
            &["nwfilter-dumpxml", &clean],
            &["nwfilter-dumpxml", "--nwfilter", "no-ip-spoofing"],
            &["nwfilter-dumpxml", "--nwfilter=allow-dhcp"],
        ] {
            ok(&same_as_virsh(d, args));
        }
    };
    reads(&d);

    // Define, and define again (a redefinition, also validated): the same words from both.
    let f = write_file(&d, "own.xml", OWN);
    assert_eq!(
        ok(&d.vireo(&["nwfilter-define", &f])),
        format!("Network filter no-ssh defined from {f}\n\n")
    );
    ok(&same_as_virsh(&d, &["nwfilter-define", &f]));
    ok(&same_as_virsh(&d, &["nwfilter-define", "--validate", &f]));
    ok(&same_as_virsh(&d, &["nwfilter-define", "--file", &f]));
    reads(&d);
    let own = uuid_of(&ok(&d.vireo(&["nwfilter-list"])), "no-ssh");
    let xml = ok(&same_as_virsh(&d, &["nwfilter-dumpxml", "no-ssh"]));
    assert!(xml.contains("<filterref filter='clean-traffic'/>"), "{xml}");
    ok(&same_as_virsh(&d, &["nwfilter-dumpxml", &own]));

    // Errors, as virsh words them (and its blank line on stdout for those that ran).
    let bad = write_file(&d, "bad.xml", "<filter name='bad'><rule action='nope'/>");
    // (No name: the daemon's own check refuses it, with --validate or without.)
    let unvalid = write_file(&d, "unvalid.xml", "<filter chain='ipv4'/>");
    let looped = ok(&d.vireo(&["nwfilter-dumpxml", "clean-traffic"]))
        .replace("</filter>", "<filterref filter='no-ssh'/></filter>");
    let looped = write_file(&d, "loop.xml", &looped);
    let missing = write_file(
        &d,
        "missing.xml",
        &BINDING
            .replace("vf0", "vf1")
            .replace("no-ssh", "no-such-filter"),
    );
    for args in [
        &["nwfilter-dumpxml", "nope"][..],
        &["nwfilter-dumpxml", "00000000-0000-0000-0000-000000000000"],
        &["nwfilter-dumpxml", "zzzzzzzz-0000-0000-0000-000000000000"],
        &["nwfilter-undefine", "nope"],
        &["nwfilter-binding-dumpxml", "vf0"],
        &["nwfilter-binding-delete", "vf0"],
        &["nwfilter-define", "/nonexistent"],
        &["nwfilter-define", &bad],
        &["nwfilter-define", "--validate", &unvalid],
        &["nwfilter-define", &looped],
        &["nwfilter-binding-create", "/nonexistent"],
        &["nwfilter-binding-create", &missing],
        &["nwfilter-binding-create", "--validate", &unvalid],
        &["nwfilter-list", "extra"],
        &["nwfilter-list", "--bogus"],
        &["nwfilter-binding-list", "extra"],
        &["nwfilter-define"],
        &["nwfilter-define", &f, "extra"],
        &["nwfilter-define", "--bogus", &f],
        &["nwfilter-undefine"],
        &["nwfilter-dumpxml"],
        &["nwfilter-dumpxml", "--nwfilter"],
        &["nwfilter-dumpxml", "no-ssh", "extra"],
        &["nwfilter-dumpxml", "--nwfilter", "no-ssh", "extra"],
        &["nwfilter-dumpxml", "no-ssh", "--nwfilter", "no-ssh"],
        &["nwfilter-define", "--validate", "--validate", &f],
        &[
            "nwfilter-binding-delete",
            "--binding=vf0",
            "--binding",
            "vf0",
        ],
        &["nwfilter-binding-create"],
        &["nwfilter-binding-delete"],
        &["nwfilter-binding-dumpxml"],
        &["nwfilter-binding-dumpxml", "vf0", "vf1"],
        &["nwfilter-nosuchcommand"],
        &["-r", "nwfilter-define", &f],
        &["-r", "nwfilter-undefine", "no-ssh"],
    ] {
        same_failure(&d, args);
    }
    let err = fails(&d.vireo(&["nwfilter-dumpxml", "nope"]));
    assert!(
        err.starts_with("error: failed to get nwfilter 'nope'\nerror: "),
        "{err}"
    );
    reads(&d);

    // A binding on a device of the namespace: made by vireo, refused the second time
    // alike, listed and dumped alike.
    veth(&d, "vf0");
    let b = write_file(&d, "binding.xml", BINDING);
    done_then_refused(
        &d,
        &["nwfilter-binding-create", &b],
        &format!("Network filter binding on vf0 created from {b}\n\n"),
    );
    let err = fails(&d.vireo(&["nwfilter-binding-create", &b]));
    assert!(err.contains("already exists"), "{err}");
    reads(&d);
    let bl = ok(&same_as_virsh(&d, &["nwfilter-binding-list"]));
    assert!(bl.contains("vf0") && bl.contains("no-ssh"), "{bl}");
    let bx = ok(&same_as_virsh(&d, &["nwfilter-binding-dumpxml", "vf0"]));
    assert!(bx.contains("<portdev name='vf0'/>"), "{bx}");
    ok(&same_as_virsh(
        &d,
        &["nwfilter-binding-dumpxml", "--binding", "vf0"],
    ));
    // Another, validated, by virsh: both list the two in the same order.
    veth(&d, "Vf2");
    let b2 = write_file(
        &d,
        "binding2.xml",
        &BINDING
            .replace("vf0", "Vf2")
            .replace("aa:00:01", "aa:00:02"),
    );
    assert_eq!(
        ok(&d.virsh(&["nwfilter-binding-create", "--validate", &b2])),
        format!("Network filter binding on Vf2 created from {b2}\n\n")
    );
    let bl = ok(&same_as_virsh(&d, &["nwfilter-binding-list"]));
    assert_eq!(bl.lines().count(), 5, "{bl}");

    // Filters in use stay: the bound one, and one it references; read-only stays read-only.
    for args in [
        &["nwfilter-undefine", "no-ssh"][..],
        &["nwfilter-undefine", &own],
        &["nwfilter-undefine", "clean-traffic"],
        &["nwfilter-undefine", "no-ip-spoofing"],
        &["-r", "nwfilter-binding-delete", "vf0"],
        &["-r", "nwfilter-binding-create", &b],
    ] {
        same_failure(&d, args);
    }
    let err = fails(&d.vireo(&["nwfilter-undefine", "no-ssh"]));
    assert!(err.contains("in use"), "{err}");
    // Redefining a filter in use is fine (the bindings follow it).
    ok(&same_as_virsh(&d, &["nwfilter-define", &f]));
    ok(&same_as_virsh(&d, &["-r", "nwfilter-binding-list"]));
    ok(&same_as_virsh(
        &d,
        &["-r", "nwfilter-binding-dumpxml", "Vf2"],
    ));
    ok(&same_as_virsh(&d, &["-r", "nwfilter-list"]));

    // Away: the bindings, then the filter (by UUID), each once.
    done_then_refused(
        &d,
        &["nwfilter-binding-delete", "vf0"],
        "Network filter binding on vf0 deleted\n\n",
    );
    done_then_refused(
        &d,
        &["nwfilter-binding-delete", "--binding", "Vf2"],
        "Network filter binding on Vf2 deleted\n\n",
    );
    assert!(!in_ns(&d, "nft", &["list", "tables"]).contains("vireo-nwf-vf0"));
    same_as_virsh(&d, &["nwfilter-binding-list"]);
    done_then_refused(
        &d,
        &["nwfilter-undefine", &own],
        &format!("Network filter {own} undefined\n\n"),
    );
    // One more, defined by virsh, undefined by vireo by name.
    ok(&d.virsh(&["nwfilter-define", &f]));
    done_then_refused(
        &d,
        &["nwfilter-undefine", "--nwfilter", "no-ssh"],
        "Network filter no-ssh undefined\n\n",
    );
    reads(&d);
    assert!(!ok(&d.vireo(&["nwfilter-list"])).contains("no-ssh"));
}

vireo_tests::in_every_layout!(nwfilter_with_vireo_cli);
