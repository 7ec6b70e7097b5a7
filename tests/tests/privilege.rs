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
