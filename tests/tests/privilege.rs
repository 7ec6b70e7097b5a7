//! Least privilege, shown on a running VM: QEMU runs under its own seccomp filter
//! (`-sandbox on,…`, libvirt's default) and, with qemu.conf's `user`, as that user with
//! its files handed over for the run; the shim keeps no capability in effect, cannot gain
//! one, and runs under a seccomp filter of its own. The kernel reports each in
//! `/proc/PID/status`.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use vireo_tests::{ok, proc_status_field, write_file, Daemon, Layout};

/// QEMU's pid, from its shim's status file.
fn qemu_pid(d: &Daemon) -> u32 {
    shim_status(d)["qemu_pid"].as_u64().expect("qemu_pid") as u32
}

/// The shim's pid, from its status file.
fn shim_pid(d: &Daemon) -> u32 {
    shim_status(d)["shim_pid"].as_u64().expect("shim_pid") as u32
}

fn shim_status(d: &Daemon) -> serde_json::Value {
    let dir = d.run_dir().join("shim");
    let status = std::fs::read_dir(&dir)
        .expect("shim dir")
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "status"))
        .expect("a shim status file");
    let text = std::fs::read_to_string(status.path()).expect("status");
    serde_json::from_str(&text).expect("json")
}

fn qemu_runs_in_its_seccomp_sandbox(layout: Layout) {
    let d = Daemon::start_in(layout);
    let xml = vireo_tests::guest_xml("vm1");
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &xml)]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let pid = qemu_pid(&d);
    // 2: SECCOMP_MODE_FILTER; NoNewPrivs comes with it.
    assert_eq!(proc_status_field(pid, "Seccomp"), "2", "QEMU {pid}");
    assert_eq!(proc_status_field(pid, "NoNewPrivs"), "1", "QEMU {pid}");
    shim_is_confined(&d);
    ok(&d.virsh(&["resume", "vm1"]));
    // What the shim still does for the VM raises a capability on a thread of its own.
    ok(&d.virsh(&["vcpupin", "vm1", "0", "0"]));
    ok(&d.virsh(&["domstats", "vm1"]));
    ok(&d.virsh(&["destroy", "vm1"]));
}

vireo_tests::in_every_layout!(qemu_runs_in_its_seccomp_sandbox);

/// The shim: no capability in effect, none to gain, its own seccomp filter.
fn shim_is_confined(d: &Daemon) {
    let shim = shim_pid(d);
    assert_eq!(
        proc_status_field(shim, "CapEff"),
        "0000000000000000",
        "shim {shim}"
    );
    assert_eq!(
        proc_status_field(shim, "CapInh"),
        "0000000000000000",
        "shim {shim}"
    );
    assert_eq!(proc_status_field(shim, "NoNewPrivs"), "1", "shim {shim}");
    assert_eq!(proc_status_field(shim, "Seccomp"), "2", "shim {shim}");
}

/// The uid nobody, which QEMU runs as here (qemu.conf's `user = "+65534"`).
const NOBODY: u32 = 65534;

fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::metadata(p).expect("stat");
    (m.uid(), m.gid())
}

/// A daemon whose qemu.conf runs QEMU as nobody, with a copy of the guest's kernel and
/// initrd under its root (nobody must reach them: the test's root is private otherwise).
fn nobody_daemon(layout: Layout) -> Daemon {
    use std::os::unix::fs::PermissionsExt;
    let (kernel, initrd) = vireo_tests::guest();
    Daemon::start_prepared(
        layout,
        |root| {
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            std::fs::create_dir_all(root.join("etc/vireo")).expect("etc");
            std::fs::write(
                root.join("etc/vireo/qemu.conf"),
                format!("user = \"+{NOBODY}\"\ngroup = \"+{NOBODY}\"\n"),
            )
            .expect("qemu.conf");
            std::fs::create_dir_all(root.join("guest")).expect("guest");
            std::fs::copy(&kernel, root.join("guest/vmlinuz")).expect("kernel");
            std::fs::copy(&initrd, root.join("guest/initrd.img")).expect("initrd");
        },
        &[],
    )
}

/// The guest's definition, booting the copy of its kernel and initrd under `d`'s root.
fn nobody_guest_xml(d: &Daemon, name: &str) -> String {
    let (kernel, initrd) = vireo_tests::guest();
    vireo_tests::guest_xml(name)
        .replace(
            kernel.to_str().expect("utf-8"),
            &d.root.join("guest/vmlinuz").display().to_string(),
        )
        .replace(
            initrd.to_str().expect("utf-8"),
            &d.root.join("guest/initrd.img").display().to_string(),
        )
}

/// A cdrom on IDE with the medium `iso`.
fn cdrom(iso: &Path) -> String {
    format!(
        "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>\
         <source file='{}'/><target dev='hdc' bus='ide'/><readonly/></disk>",
        iso.display()
    )
}

/// qemu.conf's `user` and `group`: QEMU runs as them, with its disk, kernel and initrd
/// handed to them while it runs and given back to root afterwards (a disk unplugged or a
/// medium changed, at once), and the VM works (paused, resumed, pinned, statistics, a disk
/// plugged in and out, a medium changed, an external snapshot) with a confined shim.
fn qemu_runs_as_its_own_user(layout: Layout) {
    let d = nobody_daemon(layout);
    let root = d.root.clone();
    let disk = root.join("disk.img");
    let extra = root.join("extra.img");
    let (iso_a, iso_b) = (root.join("a.iso"), root.join("b.iso"));
    for img in [&disk, &extra, &iso_a, &iso_b] {
        ok(&vireo_tests::run_cmd(
            "qemu-img",
            &[
                "create",
                "-q",
                "-f",
                "raw",
                img.to_str().expect("utf-8"),
                "8M",
            ],
        ));
    }
    let xml = nobody_guest_xml(&d, "vm1").replace(
        "<memballoon model='none'/>",
        &format!(
            "<memballoon model='none'/><disk type='file' device='disk'>\
                 <driver name='qemu' type='raw'/><source file='{}'/>\
                 <target dev='vda' bus='virtio'/></disk>{}",
            disk.display(),
            cdrom(&iso_a)
        ),
    );
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &xml)]));
    ok(&d.virsh(&["start", "vm1"]));
    let pid = qemu_pid(&d);
    let ids = format!("{NOBODY}\t{NOBODY}\t{NOBODY}\t{NOBODY}");
    assert_eq!(proc_status_field(pid, "Uid"), ids, "QEMU {pid}");
    assert_eq!(proc_status_field(pid, "Gid"), ids, "QEMU {pid}");
    assert_eq!(proc_status_field(pid, "Seccomp"), "2", "QEMU {pid}");
    assert_eq!(
        proc_status_field(pid, "CapEff"),
        "0000000000000000",
        "QEMU {pid}"
    );
    for f in [
        &disk,
        &iso_a,
        &root.join("guest/vmlinuz"),
        &root.join("guest/initrd.img"),
    ] {
        assert_eq!(
            owner(f),
            (NOBODY, NOBODY),
            "{} while QEMU runs",
            f.display()
        );
    }
    shim_is_confined(&d);
    // Not root's: no taint (libvirt's "high-privileges").
    let info = ok(&d.virsh(&["dominfo", "vm1"]));
    assert!(!info.contains("Messages:"), "{info}");
    ok(&d.virsh(&["suspend", "vm1"]));
    ok(&d.virsh(&["resume", "vm1"]));
    ok(&d.virsh(&["vcpupin", "vm1", "0", "0"]));
    let stats = ok(&d.virsh(&["domstats", "vm1"]));
    assert!(stats.contains("state.state=1"), "{stats}");
    ok(&d.virsh(&[
        "attach-disk",
        "vm1",
        extra.to_str().expect("utf-8"),
        "vdb",
        "--live",
    ]));
    assert_eq!(owner(&extra), (NOBODY, NOBODY), "a disk plugged in");
    // The overlay the daemon makes for an external snapshot is QEMU's user's too.
    let overlay = root.join("overlay.qcow2");
    ok(&d.virsh(&[
        "snapshot-create-as",
        "vm1",
        "s1",
        "--disk-only",
        "--diskspec",
        &format!("vda,file={}", overlay.display()),
        "--diskspec",
        "vdb,snapshot=no",
    ]));
    assert_eq!(owner(&overlay), (NOBODY, NOBODY), "an overlay");
    // A disk unplugged goes back at once; the VM's other files stay QEMU's.
    // A medium changed: the new one is QEMU's, the old one goes back at once.
    ok(&d.virsh(&[
        "update-device",
        "vm1",
        &write_file(&d, "cd-b.xml", &cdrom(&iso_b)),
        "--live",
    ]));
    assert_eq!(owner(&iso_b), (NOBODY, NOBODY), "a medium inserted");
    assert_eq!(owner(&iso_a), (0, 0), "a medium ejected");
    // (The guest lets a disk go once it has booted.)
    vireo_tests::guest_shell(&d, "vm1", &[]);
    ok(&d.virsh(&["detach-disk", "vm1", "vdb", "--live"]));
    eventually("the unplugged disk back to root", || {
        owner(&extra) == (0, 0)
    });
    for f in [&disk, &overlay, &root.join("guest/vmlinuz")] {
        assert_eq!(
            owner(f),
            (NOBODY, NOBODY),
            "{} after the unplug",
            f.display()
        );
    }
    ok(&d.virsh(&["destroy", "vm1"]));
    for f in [
        &disk,
        &extra,
        &iso_b,
        &overlay,
        &root.join("guest/vmlinuz"),
        &root.join("guest/initrd.img"),
    ] {
        assert_eq!(owner(f), (0, 0), "{} after QEMU", f.display());
    }
    // The VM's cgroup went with it, though the shim had no capability in effect.
    let uuid = ok(&d.virsh(&["domuuid", "vm1"]));
    let name = format!("vireo-qemu-{}", uuid.trim());
    let o = vireo_tests::run_cmd(
        "find",
        &["/sys/fs/cgroup", "-maxdepth", "5", "-name", &name],
    );
    let found = String::from_utf8_lossy(&o.stdout);
    assert!(found.trim().is_empty(), "cgroup left: {found}");
}

vireo_tests::in_every_layout!(qemu_runs_as_its_own_user);

/// Waits (at most 20 s) for `what` to hold: for the changes nothing signals.
fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not after 20 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// qemu.conf's dynamic ownership, remembered (libvirt's `remember_owner`): a file two VMs
/// use goes back when the last of them stops, and what a shim killed outright held goes
/// back once the daemon has seen it die.
fn owners_are_remembered(layout: Layout) {
    let d = nobody_daemon(layout);
    let kernel = d.root.join("guest/vmlinuz");
    for vm in ["vm1", "vm2"] {
        let xml = nobody_guest_xml(&d, vm);
        ok(&d.virsh(&["define", &write_file(&d, &format!("{vm}.xml"), &xml)]));
        ok(&d.virsh(&["start", "--paused", vm]));
    }
    assert_eq!(owner(&kernel), (NOBODY, NOBODY), "two VMs run");
    ok(&d.virsh(&["destroy", "vm1"]));
    assert_eq!(owner(&kernel), (NOBODY, NOBODY), "vm2 still runs");
    ok(&d.virsh(&["destroy", "vm2"]));
    assert_eq!(owner(&kernel), (0, 0), "both stopped");

    // A shim killed outright cannot give anything back: the daemon does.
    let mut events = vireo_tests::EventLog::start(&d);
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    assert_eq!(owner(&kernel), (NOBODY, NOBODY));
    let shim = shim_pid(&d) as i32;
    let qemu = qemu_pid(&d) as i32;
    let pid = rustix::process::Pid::from_raw(shim).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill");
    // QEMU, of another user than its shim, gets the shim's parent-death signal all the same.
    assert!(
        vireo_tests::wait_exit(qemu, std::time::Duration::from_secs(10)),
        "QEMU {qemu} outlived its shim"
    );
    // Stopped, failed: the daemon has seen the shim go.
    events.wait_for("vm1 5 5");
    eventually("the kernel given back", || owner(&kernel) == (0, 0));
    // Started again, the VM gives its files back to root, not to QEMU's user.
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    assert_eq!(owner(&kernel), (NOBODY, NOBODY));
    ok(&d.virsh(&["destroy", "vm1"]));
    assert_eq!(owner(&kernel), (0, 0));
}

vireo_tests::in_every_layout!(owners_are_remembered);
