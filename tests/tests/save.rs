//! A running guest's state saved to a file and restored with the real virsh (`save`,
//! `restore`, `save-image-dumpxml`, `save-image-define`), and the managed save a persistent
//! domain starts from (`managedsave`, `start`, `start --force-boot`, `managedsave-remove`).
//! The guest writes a mark into its memory (a file on its RAM disk) before each save and
//! reads it back after the restore: the guest did not boot again, it went on.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vireo_tests::{fails, guest_shell, ok, run_cmd, write_file, Daemon, EventLog, Layout};

/// Boots vm1 (defined) and leaves a mark in its memory.
fn boot_with_mark(d: &Daemon) -> EventLog {
    let xml = vireo_tests::guest_xml("vm1");
    ok(&d.virsh(&["define", &write_file(d, "vm1.xml", &xml)]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let ev = EventLog::start(d);
    guest_shell(
        d,
        "vm1",
        &[
            "--resume",
            "echo MARK-$((6*7)) > /tmp/mark; echo WROTE-$((1+1))",
            "WROTE-2",
        ],
    );
    ev
}

fn has_mark(d: &Daemon) {
    guest_shell(d, "vm1", &["--running", "cat /tmp/mark", "MARK-42"]);
}

fn state(d: &Daemon) -> String {
    ok(&d.virsh(&["domstate", "--reason", "vm1"]))
        .trim()
        .to_string()
}

fn save_and_restore(layout: Layout) {
    let d = Daemon::start_in(layout);
    let mut ev = boot_with_mark(&d);
    let image = d.root.join("vm1.save");
    let image = image.to_str().expect("utf-8");

    let out = ok(&d.virsh(&["save", "vm1", image]));
    assert!(
        out.contains(&format!("Domain 'vm1' saved to {image}")),
        "{out}"
    );
    // STOPPED, SAVED.
    ev.wait_for("vm1 5 4");
    assert_eq!(state(&d), "shut off (saved)");
    assert!(d.qemu_pid("vm1").is_none(), "QEMU outlived the save");
    let saved = ok(&d.virsh(&["save-image-dumpxml", image]));
    assert!(saved.contains("<name>vm1</name>"), "{saved}");
    let mode = std::fs::metadata(image).expect("image").permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );

    let out = ok(&d.virsh(&["restore", image]));
    assert!(
        out.contains(&format!("Domain restored from {image}")),
        "{out}"
    );
    // STARTED, RESTORED.
    ev.wait_for("vm1 2 2");
    assert_eq!(state(&d), "running (restored)");
    has_mark(&d);

    // Saved as paused: restored paused (SUSPENDED, RESTORED) unless asked to run.
    ok(&d.virsh(&["save", "--paused", "vm1", image]));
    ok(&d.virsh(&["restore", image]));
    ev.wait_for("vm1 3 4");
    assert!(state(&d).starts_with("paused"), "{}", state(&d));
    ok(&d.virsh(&["save", "vm1", image]));
    ok(&d.virsh(&["restore", "--running", image]));
    assert_eq!(state(&d), "running (restored)");

    // The image's definition can be replaced by one of the same domain.
    ok(&d.virsh(&["destroy", "vm1"]));
    let e = fails(&d.virsh(&["save", "vm1", image]));
    assert!(e.contains("domain is not running"), "{e}");
    let titled = saved.replace(
        "<name>vm1</name>",
        "<name>vm1</name><title>Restored</title>",
    );
    // (The last save was of a paused guest: this image restores it running.)
    ok(&d.virsh(&[
        "save-image-define",
        "--running",
        image,
        &write_file(&d, "t.xml", &titled),
    ]));
    assert!(ok(&d.virsh(&["save-image-dumpxml", image])).contains("<title>Restored</title>"));
    let other = saved.replace("<name>vm1</name>", "<name>vm2</name>");
    let e = fails(&d.virsh(&["save-image-define", image, &write_file(&d, "o.xml", &other)]));
    assert!(e.contains("the image holds 'vm1'"), "{e}");

    // Refusals, and nothing lost by them.
    let junk = write_file(
        &d,
        "junk.save",
        "not an image at all, but long enough to read",
    );
    let e = fails(&d.virsh(&["restore", &junk]));
    assert!(e.contains("not a Vireo save image"), "{e}");
    let e = fails(&d.virsh(&["-r", "restore", image]));
    assert!(e.contains("read only"), "{e}");
    ok(&d.virsh(&["restore", image]));
    let e = fails(&d.virsh(&["restore", image]));
    assert!(e.contains("already active"), "{e}");
    assert!(ok(&d.virsh(&["dumpxml", "vm1"])).contains("<title>Restored</title>"));
    assert_eq!(state(&d), "running (restored)");
    has_mark(&d);
    ok(&d.virsh(&["destroy", "vm1"]));
}

vireo_tests::in_every_layout!(save_and_restore);

#[test]
fn managed_save() {
    let mut d = Daemon::start_in(Layout::Modular);
    let mut ev = boot_with_mark(&d);

    let out = ok(&d.virsh(&["managedsave", "vm1"]));
    assert!(out.contains("Domain 'vm1' state saved by libvirt"), "{out}");
    ev.wait_for("vm1 5 4");
    assert!(ok(&d.virsh(&["dominfo", "vm1"])).contains("Managed save:   yes"));
    assert!(ok(&d.virsh(&["list", "--all", "--managed-save"])).contains(" saved"));
    assert!(ok(&d.virsh(&["list", "--all", "--with-managed-save"])).contains("vm1"));
    assert!(!ok(&d.virsh(&["list", "--all", "--without-managed-save"])).contains("vm1"));
    assert!(ok(&d.virsh(&["managedsave-dumpxml", "vm1"])).contains("<name>vm1</name>"));
    let e = fails(&d.virsh(&["-r", "managedsave-dumpxml", "--security-info", "vm1"]));
    assert!(e.contains("operation forbidden"), "{e}");
    assert!(ok(&d.virsh(&["-r", "managedsave-dumpxml", "vm1"])).contains("<name>vm1</name>"));
    let e = fails(&d.virsh(&["undefine", "vm1"]));
    assert!(
        e.contains("Refusing to undefine while domain managed save image exists"),
        "{e}"
    );

    // The image outlives the daemons, and the next start restores it.
    d.kill9();
    d.restart();
    assert_eq!(state(&d), "shut off (saved)");
    let mut ev = EventLog::start(&d);
    ok(&d.virsh(&["start", "vm1"]));
    ev.wait_for("vm1 2 2");
    assert_eq!(state(&d), "running (restored)");
    assert!(ok(&d.virsh(&["dominfo", "vm1"])).contains("Managed save:   no"));
    has_mark(&d);

    // --force-boot drops the image and boots.
    ok(&d.virsh(&["managedsave", "vm1"]));
    ok(&d.virsh(&["start", "--force-boot", "vm1"]));
    ev.wait_for("vm1 2 0");
    assert_eq!(state(&d), "running (booted)");
    assert!(ok(&d.virsh(&["dominfo", "vm1"])).contains("Managed save:   no"));

    // managedsave-remove, and undefine --managed-save.
    ok(&d.virsh(&["managedsave", "vm1"]));
    ok(&d.virsh(&["managedsave-remove", "vm1"]));
    assert!(ok(&d.virsh(&["dominfo", "vm1"])).contains("Managed save:   no"));
    ok(&d.virsh(&["start", "vm1"]));
    ok(&d.virsh(&["managedsave", "vm1"]));
    ok(&d.virsh(&["undefine", "--managed-save", "vm1"]));
    let left: Vec<_> = walk(&d.root)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "save"))
        .collect();
    assert!(left.is_empty(), "images left: {left:?}");

    // A transient domain has no managed save.
    let xml = vireo_tests::guest_xml("tr1");
    ok(&d.virsh(&["create", "--paused", &write_file(&d, "tr1.xml", &xml)]));
    let e = fails(&d.virsh(&["managedsave", "tr1"]));
    assert!(
        e.contains("cannot do managed save for transient domain"),
        "{e}"
    );
    ok(&d.virsh(&["destroy", "tr1"]));
}

/// A save in progress shows in `domjobinfo` and stops at `domjobabort`; the guest goes on.
/// QEMU is held (SIGSTOP) so that the save cannot end before the test looks at it.
#[test]
fn save_job_info_and_abort() {
    let d = Daemon::start_in(Layout::Monolithic);
    let _ev = boot_with_mark(&d);
    let qemu = d.qemu_pid("vm1").expect("QEMU of vm1");
    let image = d.root.join("held.save");
    let image = image.to_str().expect("utf-8").to_string();
    let signal = |sig: &str| ok(&run_cmd("kill", &[sig, &qemu.to_string()]));
    signal("-STOP");
    let save = Command::new("virsh")
        .args(["-c", &d.uri(), "save", "vm1", &image])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("virsh save");
    let t0 = Instant::now();
    let info = loop {
        let info = ok(&d.virsh(&["domjobinfo", "vm1"]));
        if info.contains("Operation:        Save") {
            break info;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no save job: {info}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(info.contains("Job type:         Unbounded"), "{info}");
    // The abort is marked at once; QEMU hears of it when it runs again.
    ok(&d.virsh(&["domjobabort", "vm1"]));
    signal("-CONT");
    let e = fails(&save.wait_with_output().expect("save"));
    assert!(
        e.contains("operation aborted: domain save job: canceled by client"),
        "{e}"
    );
    assert!(!std::path::Path::new(&image).exists());
    assert!(state(&d).starts_with("running"), "{}", state(&d));
    assert!(ok(&d.virsh(&["domjobinfo", "vm1"])).contains("Job type:         None"));
    let e = fails(&d.virsh(&["domjobabort", "vm1"]));
    assert!(e.contains("no job is active on the domain"), "{e}");
    has_mark(&d);
    ok(&d.virsh(&["destroy", "vm1"]));
    let e = fails(&d.virsh(&["domjobinfo", "vm1"]));
    assert!(e.contains("domain is not running"), "{e}");
}

/// Vireo's own CLI: save, restore, managedsave, domjobinfo, as virsh prints them.
#[test]
fn vireo_cli_save_restore() {
    let d = Daemon::start();
    let xml = vireo_tests::guest_xml("vm1");
    ok(&d.vireo(&["define", &write_file(&d, "vm1.xml", &xml)]));
    // A paused guest runs no code: its save is what is measured here, not the guest.
    ok(&d.vireo(&["start", "--paused", "vm1"]));
    let info = ok(&d.vireo(&["domjobinfo", "vm1"]));
    assert_eq!(info, ok(&d.virsh(&["domjobinfo", "vm1"])));
    let image = d.root.join("cli.save");
    let image = image.to_str().expect("utf-8");
    let out = ok(&d.vireo(&["save", "--verbose", "vm1", image]));
    assert!(
        out.contains(&format!("Domain 'vm1' saved to {image}")),
        "{out}"
    );
    let xml = ok(&d.vireo(&["save-image-dumpxml", image]));
    assert_eq!(xml, ok(&d.virsh(&["save-image-dumpxml", image])));
    let out = ok(&d.vireo(&["restore", "--verbose", image]));
    assert!(
        out.contains(&format!("Domain restored from {image}")),
        "{out}"
    );
    assert!(state(&d).starts_with("paused"), "{}", state(&d));
    let e = fails(&d.vireo(&["domjobabort", "vm1"]));
    assert!(e.contains("no job is active on the domain"), "{e}");

    let out = ok(&d.vireo(&["managedsave", "vm1"]));
    assert!(out.contains("Domain 'vm1' state saved by libvirt"), "{out}");
    assert!(ok(&d.vireo(&["dominfo", "vm1"])).contains("Managed save:   yes"));
    let e = fails(&d.vireo(&["undefine", "vm1"]));
    assert!(e.contains("managed save image exists"), "{e}");
    ok(&d.vireo(&["start", "--force-boot", "--paused", "vm1"]));
    assert!(ok(&d.vireo(&["dominfo", "vm1"])).contains("Managed save:   no"));
    ok(&d.vireo(&["managedsave", "vm1"]));
    let out = ok(&d.vireo(&["managedsave-remove", "vm1"]));
    assert!(
        out.contains("Removed managedsave image for domain 'vm1'"),
        "{out}"
    );
    let out = ok(&d.vireo(&["managedsave-remove", "vm1"]));
    assert!(
        out.contains("has no manage save image; removal skipped"),
        "{out}"
    );
    ok(&d.vireo(&["start", "--paused", "vm1"]));
    ok(&d.vireo(&["managedsave", "vm1"]));
    ok(&d.vireo(&["undefine", "--managed-save", "vm1"]));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A restore is a job while QEMU reads the image: `domjobinfo` shows it (a bounded job,
/// the image's size) until the VM runs. QEMU is held (SIGSTOP) as soon as it exists.
#[test]
fn restore_job_info() {
    let d = Daemon::start_in(Layout::Modular);
    let _ev = boot_with_mark(&d);
    let image = d.root.join("job.save");
    let image = image.to_str().expect("utf-8").to_string();
    ok(&d.virsh(&["save", "vm1", &image]));
    let restore = Command::new("virsh")
        .args(["-c", &d.uri(), "restore", &image])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("virsh restore");
    // Nothing tells when QEMU exists: look for it.
    let t0 = Instant::now();
    let qemu = loop {
        if let Some(pid) = d.qemu_pid("vm1") {
            break pid;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no QEMU");
        std::thread::sleep(Duration::from_millis(1));
    };
    let signal = |sig: &str| ok(&run_cmd("kill", &[sig, &qemu.to_string()]));
    signal("-STOP");
    let info = ok(&d.virsh(&["domjobinfo", "vm1"]));
    let stats = ok(&run_cmd(
        vireo_tests::python3(),
        &[
            "-c",
            &format!(
                "import libvirt; s = libvirt.open('{}').lookupByName('vm1').jobStats(); \
                 print('data_total:', s['data_total'])",
                d.uri()
            ),
        ],
    ));
    signal("-CONT");
    let out = ok(&restore.wait_with_output().expect("restore"));
    assert!(out.contains("Domain restored from"), "{out}");
    assert!(info.contains("Job type:         Bounded"), "{info}");
    assert!(info.contains("Operation:        Restore"), "{info}");
    let total: u64 = stats
        .lines()
        .find_map(|l| l.trim().strip_prefix("data_total:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{stats}"));
    let size = std::fs::metadata(&image).unwrap().len();
    assert!(total > size / 2 && total <= size, "{total} of {size}");
    assert!(state(&d).starts_with("running"), "{}", state(&d));
    assert!(ok(&d.virsh(&["domjobinfo", "vm1"])).contains("Job type:         None"));
    has_mark(&d);
    ok(&d.virsh(&["destroy", "vm1"]));
}
