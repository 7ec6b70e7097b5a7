//! Least privilege, shown on a running VM: QEMU runs under its own seccomp filter
//! (`-sandbox on,…`, libvirt's default), which the kernel reports in `/proc/PID/status`.

use vireo_tests::{ok, write_file, Daemon, Layout};

/// QEMU's pid, from its shim's status file.
fn qemu_pid(d: &Daemon) -> u32 {
    let dir = d.run_dir().join("shim");
    let status = std::fs::read_dir(&dir)
        .expect("shim dir")
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "status"))
        .expect("a shim status file");
    let text = std::fs::read_to_string(status.path()).expect("status");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    v["qemu_pid"].as_u64().expect("qemu_pid") as u32
}

fn status_field(pid: u32, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{key}:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default()
}

fn qemu_runs_in_its_seccomp_sandbox(layout: Layout) {
    let d = Daemon::start_in(layout);
    let xml = vireo_tests::guest_xml("vm1");
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &xml)]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let pid = qemu_pid(&d);
    // 2: SECCOMP_MODE_FILTER; NoNewPrivs comes with it.
    assert_eq!(status_field(pid, "Seccomp"), "2", "QEMU {pid}");
    assert_eq!(status_field(pid, "NoNewPrivs"), "1", "QEMU {pid}");
    ok(&d.virsh(&["resume", "vm1"]));
    ok(&d.virsh(&["destroy", "vm1"]));
}

vireo_tests::in_every_layout!(qemu_runs_in_its_seccomp_sandbox);

/// The shim, once QEMU runs: no capability but CAP_SYS_NICE, no way to gain any, its own
/// seccomp filter;
/// and it still serves (a suspend, a disk plugged in, a snapshot, statistics).
fn the_shim_runs_without_privileges(layout: Layout) {
    let d = Daemon::start_in(layout);
    let img = vireo_tests::define_with_disk(&d, "vm1.qcow2", "qcow2");
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let dir = d.run_dir().join("shim");
    let status = std::fs::read_dir(&dir)
        .expect("shim dir")
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "status"))
        .expect("a shim status file");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(status.path()).expect("status"))
            .expect("json");
    let shim = v["shim_pid"].as_u64().expect("shim_pid") as u32;
    // Only CAP_SYS_NICE (bit 23), to pin the threads of a QEMU that runs as root.
    assert_eq!(status_field(shim, "CapEff"), "0000000000800000");
    assert_eq!(status_field(shim, "CapPrm"), "0000000000800000");
    assert_eq!(status_field(shim, "CapInh"), "0000000000000000");
    assert_eq!(status_field(shim, "NoNewPrivs"), "1");
    assert_eq!(status_field(shim, "Seccomp"), "2");
    ok(&d.virsh(&["resume", "vm1"]));
    ok(&d.virsh(&["suspend", "vm1"]));
    let extra = d.root.join("extra.qcow2");
    let extra = extra.to_str().expect("utf-8");
    ok(&vireo_tests::run_cmd(
        "qemu-img",
        &["create", "-q", "-f", "qcow2", extra, "8M"],
    ));
    let disk = format!(
        "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
         <source file='{extra}'/><target dev='vdb' bus='virtio'/></disk>"
    );
    let file = write_file(&d, "vdb.xml", &disk);
    ok(&d.virsh(&["attach-device", "vm1", &file, "--live"]));
    ok(&d.virsh(&["snapshot-create-as", "vm1", "s1"]));
    let stats = ok(&d.virsh(&["domstats", "vm1", "--block"]));
    assert!(stats.contains("block.count=2"), "{stats}");
    assert!(stats.contains(&img), "{stats}");
    ok(&d.virsh(&["destroy", "vm1"]));
}

vireo_tests::in_every_layout!(the_shim_runs_without_privileges);
