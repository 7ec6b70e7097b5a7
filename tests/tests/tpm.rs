//! An emulated TPM: swtpm (Debian's) runs beside the VM's QEMU with the domain's state,
//! the guest finds a TPM 2.0 device, the state stays between starts and goes with
//! `undefine` (unless `--keep-tpm`); domcapabilities offers it.

use vireo_tests::{guest_shell, ok, write_file, Daemon};

#[test]
fn emulated_tpm_reaches_the_guest() {
    let d = Daemon::start();
    let caps = ok(&d.virsh(&["domcapabilities", "--machine", "q35"]));
    assert!(caps.contains("<tpm supported='yes'>"), "{caps}");
    let xml = vireo_tests::guest_xml("vm1")
        .replace("machine='pc'", "machine='q35'")
        .replace(
            "<memballoon model='none'/>",
            "<memballoon model='none'/><tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>",
        );
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &xml)]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let seen = guest_shell(
        &d,
        "vm1",
        &[
            "--resume",
            "cat /sys/class/tpm/tpm0/tpm_version_major; echo T-$((1+1))",
            "T-2",
        ],
    );
    assert!(seen.contains("2\r\n"), "{seen}");
    let uuid = ok(&d.virsh(&["domuuid", "vm1"]));
    let state = d.root.join("var/lib/vireo/qemu/swtpm").join(uuid.trim());
    ok(&d.virsh(&["destroy", "vm1"]));
    // swtpm wrote the TPM's state, which outlives the run.
    let files = std::fs::read_dir(&state).expect("state dir").count();
    assert!(files > 0, "no TPM state in {}", state.display());
    ok(&d.virsh(&["undefine", "vm1", "--keep-tpm"]));
    assert!(state.exists());
    ok(&d.virsh(&[
        "define",
        &write_file(
            &d,
            "vm1.xml",
            &xml.replace(
                "<name>vm1</name>",
                &format!("<name>vm1</name><uuid>{}</uuid>", uuid.trim()),
            ),
        ),
    ]));
    ok(&d.virsh(&["undefine", "vm1"]));
    assert!(!state.exists(), "the TPM's state outlived undefine");
}

/// swtpm goes with its VM's shim even when the shim is killed before QEMU ever connected
/// to it (QEMU's start is held up here by an emulator that waits first).
#[test]
fn swtpm_goes_with_a_shim_killed_before_qemu_connects() {
    use std::os::unix::fs::PermissionsExt;
    let d = Daemon::start();
    let qemu = vireo_hostprog::find("qemu-system-x86_64").expect("qemu");
    let slow = d.root.join("slow-qemu");
    // The probes (no -name) run at once; a VM's QEMU waits until it is released.
    let gate = d.root.join("release");
    std::fs::write(
        &slow,
        format!(
            "#!/bin/sh\ncase \"$*\" in *guest=*) while [ ! -e {gate} ]; do sleep 0.05; done;; esac\n\
             exec {qemu} \"$@\"\n",
            gate = gate.display(),
            qemu = qemu.display()
        ),
    )
    .expect("wrapper");
    std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let xml = vireo_tests::guest_xml("vm1")
        .replace("machine='pc'", "machine='q35'")
        .replace(
            "<memballoon model='none'/>",
            &format!(
                "<emulator>{}</emulator><memballoon model='none'/>\
                 <tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>",
                slow.display()
            ),
        );
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &xml)]));
    let mut start = std::process::Command::new("virsh")
        .args(["-c", &d.uri(), "start", "--paused", "vm1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("virsh");
    // swtpm runs, QEMU waits at the gate: the shim is killed then.
    let root = d.root.to_string_lossy().into_owned();
    let of_root = |name: &str| -> Option<i32> {
        vireo_tests::procs()
            .into_iter()
            .find(|(_, _, c)| c.contains(name) && c.contains(&root))
            .map(|(p, ..)| p)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (swtpm, shim) = loop {
        if let (Some(t), Some(s)) = (of_root("swtpm socket"), of_root("vireo-shim")) {
            break (t, s);
        }
        assert!(std::time::Instant::now() < deadline, "no swtpm started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    vireo_tests::signal(shim, rustix::process::Signal::KILL);
    assert!(
        vireo_tests::wait_exit(swtpm, std::time::Duration::from_secs(10)),
        "swtpm outlived its shim"
    );
    let _ = start.wait();
    std::fs::write(&gate, b"").expect("gate");
}
