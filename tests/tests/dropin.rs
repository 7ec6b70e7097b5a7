//! Drop-in socket paths (`--libvirt-paths`): the unmodified virsh with **no `-c`** reaches
//! Vireo through libvirt's own socket paths (`/run/libvirt/libvirt-sock`, `virtqemud-sock`
//! …), in every layout, and a user's session ones under `$XDG_RUNTIME_DIR/libvirt`. The
//! tests' `/run` is a tmpfs of their own mount namespace: the machine's `/run/libvirt` is
//! never touched.

use std::process::Output;

use rustix::process::Signal;
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

/// A user's session: vireod started by an unprivileged user (uid 65534, in a network
/// namespace of its own) with `--libvirt-paths` links its sockets under
/// `$XDG_RUNTIME_DIR/libvirt`, and that user's plain virsh (no `-c`: `qemu:///session`)
/// reaches it there, defines and lists a domain.
#[test]
fn a_users_plain_virsh_reaches_a_session_vireod() {
    use std::os::unix::fs::{chown, PermissionsExt};
    let tmp = tempfile::Builder::new()
        .prefix("vireo-session")
        .tempdir()
        .expect("tempdir");
    let root = tmp.path();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (xdg, home) = (root.join("xdg"), root.join("home"));
    for d in [&xdg, &home] {
        std::fs::create_dir(d).expect("mkdir");
        chown(d, Some(65534), Some(65534)).expect("chown");
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    }
    let env = |c: &mut std::process::Command| {
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("XDG_RUNTIME_DIR", &xdg)
            .env("HOME", &home);
    };
    let as_user = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    let mut start = std::process::Command::new("unshare");
    start
        .args(["-n", "setpriv"])
        .args(as_user)
        .arg(vireo_tests::tests_dir().join("../scripts/start-daemon"))
        .arg(vireo_tests::bin("vireod"))
        .arg("--libvirt-paths");
    env(&mut start);
    start.env("VIREO_LOG", home.join("vireod.log"));
    let pid = ok(&start.output().expect("start vireod"));
    let pid: i32 = pid.trim().parse().expect("pid");
    // The daemon goes with the test, whatever happens.
    struct Stop(i32);
    impl Drop for Stop {
        fn drop(&mut self) {
            vireo_tests::signal(self.0, Signal::KILL);
        }
    }
    let stop = Stop(pid);
    let virsh = |args: &[&str]| {
        let mut c = std::process::Command::new("setpriv");
        c.args(as_user).arg("virsh").args(args);
        env(&mut c);
        c.env_remove("LIBVIRT_DEFAULT_URI");
        c.output().expect("run virsh")
    };
    let link = xdg.join("libvirt/libvirt-sock");
    assert!(
        std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()),
        "{} is not a link",
        link.display()
    );
    assert_eq!(ok(&virsh(&["uri"])).trim(), "qemu:///session");
    let xml = vireo_tests::guest_xml("mine");
    let file = home.join("mine.xml");
    std::fs::write(&file, xml).expect("write");
    chown(&file, Some(65534), Some(65534)).expect("chown");
    ok(&virsh(&["define", file.to_str().expect("utf-8")]));
    let list = ok(&virsh(&["list", "--all"]));
    assert!(list.contains("mine"), "{list}");
    assert!(
        home.join(".config/vireo").exists(),
        "the definition is the user's own"
    );
    vireo_tests::signal(pid, Signal::TERM);
    assert!(
        vireo_tests::wait_exit(pid, std::time::Duration::from_secs(30)),
        "vireod {pid} did not stop"
    );
    std::mem::forget(stop);
}
