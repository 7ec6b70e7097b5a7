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
