//! The unmodified `virsh` (libvirt-clients) against `vireod`.

use vireo_tests::{data, fails, ok, run_cmd, validate, Daemon, Layout};

fn connection_commands(layout: Layout) {
    let d = Daemon::start_in(layout);
    let v = ok(&d.virsh(&["version"]));
    assert!(v.contains("Using API: QEMU 9.0.0"), "{v}");
    assert!(v.contains("Running hypervisor: QEMU"), "{v}");
    assert_eq!(ok(&d.virsh(&["uri"])).trim(), d.uri());
    let host = ok(&run_cmd("hostname", &[]));
    assert_eq!(ok(&d.virsh(&["hostname"])).trim(), host.trim());
    let n = ok(&d.virsh(&["nodeinfo"]));
    assert!(n.contains("CPU model:           x86_64"), "{n}");
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    assert!(n.contains(&format!("CPU(s):              {cpus}\n")), "{n}");
    let caps = ok(&d.virsh(&["capabilities"]));
    assert!(caps.contains("<os_type>hvm</os_type>"), "{caps}");
    assert!(caps.contains("<domain type='qemu'/>"), "{caps}");
    validate(&caps, "capability", &d.root);
}

fn domain_configuration_lifecycle(layout: Layout) {
    let d = Daemon::start_in(layout);
    let minimal = data("minimal.xml");
    let empty = ok(&d.virsh(&["list", "--all"]));
    assert_eq!(empty, " Id   Name   State\n--------------------\n\n");

    let out = ok(&d.virsh(&["define", minimal.to_str().unwrap()]));
    assert!(out.contains("Domain 'vec1' defined from"), "{out}");
    let list = ok(&d.virsh(&["list", "--all"]));
    assert_eq!(
        list,
        " Id   Name   State\n-----------------------\n -    vec1   shut off\n\n"
    );
    assert_eq!(
        ok(&d.virsh(&["list"])),
        " Id   Name   State\n--------------------\n\n"
    );

    let info = ok(&d.virsh(&["dominfo", "vec1"]));
    for line in [
        "Id:             -",
        "Name:           vec1",
        "UUID:           11111111-2222-3333-4444-555555555555",
        "OS Type:        hvm",
        "State:          shut off",
        "CPU(s):         1",
        "Max memory:     65536 KiB",
        "Used memory:    65536 KiB",
        "Persistent:     yes",
        "Autostart:      disable",
        "Security model: none",
    ] {
        assert!(info.contains(line), "missing {line:?} in\n{info}");
    }
    assert_eq!(ok(&d.virsh(&["domstate", "vec1"])).trim(), "shut off");
    assert_eq!(
        ok(&d.virsh(&["domstate", "--reason", "vec1"])).trim(),
        "shut off (unknown)"
    );
    assert_eq!(
        ok(&d.virsh(&["domuuid", "vec1"])).trim(),
        "11111111-2222-3333-4444-555555555555"
    );
    assert_eq!(ok(&d.virsh(&["domid", "vec1"])).trim(), "-");
    // lookups by UUID work too
    assert_eq!(
        ok(&d.virsh(&["domname", "11111111-2222-3333-4444-555555555555"])).trim(),
        "vec1"
    );

    let out = ok(&d.virsh(&["autostart", "vec1"]));
    assert!(out.contains("marked as autostarted"), "{out}");
    assert!(ok(&d.virsh(&["dominfo", "vec1"])).contains("Autostart:      enable"));
    let auto = ok(&d.virsh(&["list", "--all", "--autostart", "--name"]));
    assert_eq!(auto.trim(), "vec1");
    ok(&d.virsh(&["autostart", "--disable", "vec1"]));
    assert!(ok(&d.virsh(&["dominfo", "vec1"])).contains("Autostart:      disable"));

    let xml = ok(&d.virsh(&["dumpxml", "vec1"]));
    assert!(xml.contains("<memory unit='KiB'>65536</memory>"), "{xml}");
    validate(&xml, "domain", &d.root);

    let out = ok(&d.virsh(&["undefine", "vec1"]));
    assert!(out.contains("Domain 'vec1' has been undefined"), "{out}");
    let err = fails(&d.virsh(&["dominfo", "vec1"]));
    assert!(err.contains("failed to get domain 'vec1'"), "{err}");
}

fn dumpxml_round_trips_every_modelled_field(layout: Layout) {
    let d = Daemon::start_in(layout);
    let full = data("full.xml");
    ok(&d.virsh(&["define", full.to_str().unwrap()]));
    let xml = ok(&d.virsh(&["dumpxml", "full"]));
    validate(&xml, "domain", &d.root);
    let out = d.root.join("full-out.xml");
    std::fs::write(&out, &xml).unwrap();
    let check = tests_python("xml_subset.py");
    let r = run_cmd(
        vireo_tests::python3(),
        &[&check, full.to_str().unwrap(), out.to_str().unwrap()],
    );
    assert!(
        r.status.success(),
        "dumpxml lost something: {}\n{xml}",
        String::from_utf8_lossy(&r.stderr)
    );
    // Defining what we printed gives the same definition again.
    ok(&d.virsh(&["define", out.to_str().unwrap()]));
    assert_eq!(ok(&d.virsh(&["dumpxml", "full"])), xml);
}

fn invalid_xml_gets_a_readable_error(layout: Layout) {
    let d = Daemon::start_in(layout);
    let bad = d.root.join("bad.xml");
    std::fs::write(
        &bad,
        "<domain type='qemu'>\n  <name>bad</name>\n  <memory unit='MiB'>64</memory>\n",
    )
    .unwrap();
    let err = fails(&d.virsh(&["define", bad.to_str().unwrap()]));
    assert!(err.contains("Failed to define domain from"), "{err}");
    assert!(
        err.contains("(domain_definition):4"),
        "no line number in: {err}"
    );

    let noname = d.root.join("noname.xml");
    std::fs::write(
        &noname,
        "<domain type='qemu'><memory>65536</memory><os><type>hvm</type></os></domain>",
    )
    .unwrap();
    let err = fails(&d.virsh(&["define", noname.to_str().unwrap()]));
    assert!(err.contains("name"), "{err}");

    let badmem = d.root.join("badmem.xml");
    std::fs::write(
        &badmem,
        "<domain type='qemu'><name>m</name><memory>lots</memory><os><type>hvm</type></os></domain>",
    )
    .unwrap();
    let err = fails(&d.virsh(&["define", badmem.to_str().unwrap()]));
    assert!(err.contains("lots"), "{err}");

    // What Vireo does not know is refused by name, never dropped without a word.
    let unknown = [
        (
            "<devices><parallel type='pty'><target port='0'/></parallel></devices>",
            "unsupported configuration: <parallel> in <devices> is not supported by Vireo \
             yet; it would be lost",
        ),
        (
            "<devices><rng model='virtio' colour='red'><backend model='random'/></rng></devices>",
            "unsupported configuration: attribute 'colour' of <rng> in <devices> is not \
             supported by Vireo yet; it would be lost",
        ),
        (
            "<features><acpi/><frobnicate/></features>",
            "<frobnicate> in <features> is not supported",
        ),
    ];
    for (i, (extra, want)) in unknown.iter().enumerate() {
        let f = d.root.join(format!("unknown{i}.xml"));
        std::fs::write(
            &f,
            format!(
                "<domain type='qemu'><name>u{i}</name><memory unit='MiB'>64</memory>\
                 <os><type>hvm</type></os>{extra}</domain>"
            ),
        )
        .unwrap();
        let err = fails(&d.virsh(&["define", f.to_str().unwrap()]));
        assert!(err.contains(want), "{extra}: {err}");
    }
    assert!(ok(&d.virsh(&["list", "--all", "--name"])).trim().is_empty());
}

fn read_only_socket_lists_but_cannot_define(layout: Layout) {
    let d = Daemon::start_in(layout);
    ok(&d.virsh(&["define", data("minimal.xml").to_str().unwrap()]));
    let ro = d.uri_ro();
    let list = ok(&run_cmd("virsh", &["-c", &ro, "list", "--all", "--name"]));
    assert_eq!(list.trim(), "vec1");
    let full = data("full.xml");
    let err = fails(&run_cmd(
        "virsh",
        &["-c", &ro, "define", full.to_str().unwrap()],
    ));
    assert!(err.contains("read only access prevents"), "{err}");
    let err = fails(&run_cmd("virsh", &["-c", &ro, "undefine", "vec1"]));
    assert!(err.contains("read only"), "{err}");
    // and virsh -r on the read-write socket is read-only as well
    let err = fails(&d.virsh(&["-r", "autostart", "vec1"]));
    assert!(err.contains("read only"), "{err}");
}

fn unknown_domain_error(layout: Layout) {
    let d = Daemon::start_in(layout);
    let err = fails(&d.virsh(&["dominfo", "nosuchdom"]));
    assert!(err.contains("failed to get domain 'nosuchdom'"), "{err}");
}

fn tests_python(script: &str) -> String {
    vireo_tests::tests_dir()
        .join("python")
        .join(script)
        .to_string_lossy()
        .into_owned()
}

vireo_tests::in_every_layout!(
    connection_commands,
    domain_configuration_lifecycle,
    dumpxml_round_trips_every_modelled_field,
    invalid_xml_gets_a_readable_error,
    read_only_socket_lists_but_cannot_define,
    unknown_domain_error,
);

/// `define --validate` and `create --validate` check the XML against libvirt's schema
/// first (xmllint, with the schemas libvirt-clients installs).
#[test]
fn define_and_create_validate_against_the_schema() {
    let d = Daemon::start();
    let good = vireo_tests::guest_xml("vm1");
    let f = vireo_tests::write_file(&d, "good.xml", &good);
    ok(&d.virsh(&["define", "--validate", &f]));
    let bad = good.replacen("<domain ", "<domain frobnicate='yes' ", 1);
    let b = vireo_tests::write_file(&d, "bad.xml", &bad);
    let e = fails(&d.virsh(&["define", "--validate", &b]));
    assert!(
        e.contains("XML document failed to validate against schema") && e.contains("domain.rng"),
        "{e}"
    );
    // Without --validate, Vireo's own reading refuses it by name.
    let e = fails(&d.virsh(&["define", &b]));
    assert!(e.contains("frobnicate"), "{e}");
    let e = fails(&d.virsh(&["create", "--validate", &b]));
    assert!(e.contains("failed to validate against schema"), "{e}");
    let v2 = vireo_tests::write_file(&d, "vm2.xml", &vireo_tests::guest_xml("vm2"));
    ok(&d.virsh(&["create", "--validate", "--paused", &v2]));
    ok(&d.virsh(&["destroy", "vm2"]));
}
