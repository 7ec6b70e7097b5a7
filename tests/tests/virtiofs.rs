//! A host directory shared with the guest by virtiofs: `<filesystem>` with the virtiofs
//! driver (QEMU 7.2's virtiofsd, run by the VM's shim) on shared memfd memory. The guest
//! mounts it by its tag, reads what the host put there, and what it writes lands on the
//! host. Without shared memory the definition is refused at start, nothing started.

use vireo_tests::{fails, guest_shell, ok, write_file, Daemon};

#[test]
fn a_host_directory_reaches_the_guest() {
    let d = Daemon::start();
    let share = d.root.join("share");
    std::fs::create_dir_all(&share).expect("share dir");
    std::fs::write(share.join("hello.txt"), "FROM-THE-HOST\n").expect("file");
    let fs = format!(
        "<memballoon model='none'/><filesystem type='mount' accessmode='passthrough'>\
         <driver type='virtiofs'/><source dir='{}'/><target dir='hostshare'/></filesystem>",
        share.display()
    );
    let xml = vireo_tests::guest_xml("vm1")
        .replace("<memballoon model='none'/>", &fs)
        .replace(
            "<vcpu>",
            "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking><vcpu>",
        );
    // Without shared memory, virtiofs cannot work: refused, nothing started.
    let unshared = xml.replace("<access mode='shared'/>", "");
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &unshared)]));
    let err = fails(&d.virsh(&["start", "vm1"]));
    assert!(err.contains("shared"), "{err}");
    assert!(d.qemu_pid("vm1").is_none());

    ok(&d.virsh(&["undefine", "vm1"]));
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &xml)]));
    let def = ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]));
    assert!(def.contains("<driver type='virtiofs'/>"), "{def}");
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    guest_shell(
        &d,
        "vm1",
        &[
            "--resume",
            "mkdir -p /mnt && mount -t virtiofs hostshare /mnt && cat /mnt/hello.txt && \
             echo FROM-THE-GUEST > /mnt/back.txt && sync && echo V-$((1+1))",
            "FROM-THE-HOST",
        ],
    );
    guest_shell(&d, "vm1", &["--running", "echo W-$((1+1))", "W-2"]);
    assert_eq!(
        std::fs::read_to_string(share.join("back.txt")).expect("written by the guest"),
        "FROM-THE-GUEST\n"
    );
    ok(&d.virsh(&["destroy", "vm1"]));
}
