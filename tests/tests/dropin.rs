//! Drop-in socket paths (`--libvirt-paths`): the unmodified virsh with **no `-c`** reaches
//! Vireo through libvirt's own socket paths (`/run/libvirt/libvirt-sock`, `virtqemud-sock`
//! …), in every layout. The test's `/run` is a tmpfs of its own mount namespace: the
//! machine's `/run/libvirt` is never touched.

use std::process::Output;

use vireo_tests::{ok, write_file, Daemon, Layout};

/// virsh as a user types it: no URI (or, for the modular layout without a proxy, one
/// that names no socket).
fn virsh(d: &Daemon, uri: Option<&str>, args: &[&str]) -> Output {
    let mut c = d.ns_command("virsh");
    if let Some(u) = uri {
        c.args(["-c", u]);
    }
    c.args(args)
        .env_remove("LIBVIRT_DEFAULT_URI")
        .env_remove("VIRSH_DEFAULT_CONNECT_URI")
        .output()
        .expect("run virsh")
}

fn links(d: &Daemon) -> Vec<String> {
    let out = d.ns_command("ls").arg("/run/libvirt").output().expect("ls");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn plain_virsh_reaches_vireo(layout: Layout) {
    let mut d = Daemon::start_dropin(layout);
    let names = links(&d);
    // libvirt-sock is the monolithic daemon's, or the proxy's (as virtproxyd's is);
    // each driver daemon stands in for its libvirt counterpart.
    for want in ["libvirt-sock", "libvirt-sock-ro", "libvirt-admin-sock"] {
        let expected = layout != Layout::Modular;
        assert_eq!(
            names.iter().any(|n| n == want),
            expected,
            "{want}: {names:?}"
        );
    }
    for want in [
        "virtqemud-sock",
        "virtqemud-sock-ro",
        "virtnetworkd-sock",
        "virtsecretd-sock",
    ] {
        assert!(names.iter().any(|n| n == want), "{want}: {names:?}");
    }
    // Without a proxy there is no legacy socket (as with libvirt's modular daemons
    // without virtproxyd): the client is told to go to the driver daemon directly, still
    // without naming a socket.
    let uri = (layout == Layout::Modular).then_some("qemu:///system?mode=direct");

    assert_eq!(
        ok(&virsh(&d, uri, &["uri"])).trim(),
        uri.unwrap_or("qemu:///system")
    );
    let xml = vireo_tests::guest_xml("plain1");
    ok(&virsh(
        &d,
        uri,
        &["define", &write_file(&d, "plain1.xml", &xml)],
    ));
    // What virsh without -c did is what the daemons hold.
    let listed = ok(&d.virsh(&["list", "--all", "--name"]));
    assert!(listed.contains("plain1"), "{listed}");
    let listed = ok(&virsh(&d, uri, &["list", "--all"]));
    assert!(listed.contains("plain1"), "{listed}");
    // Another family through the same default connection, and the read-only socket.
    ok(&virsh(&d, uri, &["net-list", "--all"]));
    let ro = ok(&virsh(&d, uri, &["-r", "dominfo", "plain1"]));
    assert!(ro.contains("plain1"), "{ro}");
    ok(&virsh(&d, uri, &["undefine", "plain1"]));

    // The links go with the daemons.
    d.terminate();
    let left = links(&d);
    assert!(left.is_empty(), "{left:?}");
}

vireo_tests::in_every_layout!(plain_virsh_reaches_vireo);

/// A socket that is not Vireo's (a libvirtd of the machine's own) is left alone: the
/// daemon says why it does not start.
#[test]
fn someone_elses_socket_is_not_taken() {
    let d = Daemon::start_dropin(Layout::Monolithic);
    let root = d.root.join("second");
    // In the same namespaces, a second vireod finds the first one's links.
    let out = d
        .ns_command(vireo_tests::bin("vireod").to_str().expect("utf-8"))
        .args(["--root", root.to_str().expect("utf-8"), "--libvirt-paths"])
        .output()
        .expect("run vireod");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/run/libvirt/libvirt-sock exists and is not this daemon's"),
        "{err}"
    );
    // The first one's links are still there.
    assert!(links(&d).iter().any(|n| n == "libvirt-sock"));
}
