//! Resource tuning in the VM's own cgroup, with virsh and python-libvirt on a TCG guest:
//! `<memtune>`, `<cputune><shares>` and `<blkiotune><weight>` applied at start;
//! `memtune`, `schedinfo` and `blkiotune` read and change the running VM (its cgroup
//! files follow) and the definition; the cgroup goes with the VM.

use rustix::process::Signal;
use vireo_tests::{fails, ok, write_file, Daemon, Layout};

/// The directory of the VM's cgroup for v1 controller `ctl` (or its v2 one), from where
/// QEMU's main thread is (in the cpu controller: the VM's `emulator` cgroup).
fn cgroup_dir(pid: i32, ctl: &str) -> std::path::PathBuf {
    let dir = thread_cgroup_dir(pid, ctl);
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("emulator") => dir.parent().expect("the VM's cgroup").to_path_buf(),
        _ => dir,
    }
}

fn thread_cgroup_dir(pid: i32, ctl: &str) -> std::path::PathBuf {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in own.lines() {
        let mut it = line.splitn(3, ':');
        let (_, ctls, path) = (it.next(), it.next().unwrap_or(""), it.next().unwrap_or(""));
        if ctls.split(',').any(|c| c == ctl) {
            return std::path::Path::new("/sys/fs/cgroup")
                .join(ctl)
                .join(path.trim_start_matches('/'));
        }
    }
    let v2 = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a cgroup");
    std::path::Path::new("/sys/fs/cgroup").join(v2.trim_start_matches('/'))
}

fn read(dir: &std::path::Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
        .trim()
        .to_string()
}

#[test]
fn memtune_schedinfo_and_blkiotune() {
    if !rustix::process::geteuid().is_root()
        || !std::path::Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
    {
        eprintln!("skipped: needs root and cgroup v1's memory controller (as CI has)");
        return;
    }
    let d = Daemon::start_in(Layout::Modular);
    let xml = vireo_tests::guest_xml("vm1").replace(
        "<vcpu>1</vcpu>",
        "<vcpu>1</vcpu><memtune><hard_limit unit='MiB'>1024</hard_limit></memtune>\
         <cputune><shares>512</shares><period>100000</period><quota>80000</quota>\
         <global_period>100000</global_period></cputune>",
    );
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &xml)]));
    let inactive = ok(&d.virsh(&["dumpxml", "vm1", "--inactive"]));
    assert!(
        inactive.contains("<hard_limit unit='KiB'>1048576</hard_limit>"),
        "{inactive}"
    );
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let pid = vireo_tests::qemu_pid_under(&d.root, "vm1").expect("QEMU runs");
    let mem = cgroup_dir(pid, "memory");
    let cpu = cgroup_dir(pid, "cpu");
    assert!(
        mem.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("vireo-qemu-")),
        "{}",
        mem.display()
    );
    assert_eq!(
        read(&mem, "memory.limit_in_bytes"),
        (1u64 << 30).to_string()
    );
    assert_eq!(read(&cpu, "cpu.shares"), "512");
    // Each vCPU thread in a cgroup of its own (the rest of QEMU in `emulator`), with the
    // vCPUs' bandwidth.
    assert_eq!(read(&cpu.join("vcpu0"), "cpu.cfs_quota_us"), "80000");
    assert!(!read(&cpu.join("vcpu0"), "tasks").is_empty());
    assert!(read(&cpu.join("emulator"), "tasks")
        .lines()
        .any(|t| t == pid.to_string()));

    // What virsh shows of the running VM.
    let out = ok(&d.virsh(&["memtune", "vm1"]));
    assert!(out.contains("hard_limit     : 1048576"), "{out}");
    assert!(out.contains("soft_limit     : unlimited"), "{out}");
    let out = ok(&d.virsh(&["schedinfo", "vm1"]));
    assert!(out.contains("Scheduler      : posix"), "{out}");
    assert!(out.contains("cpu_shares     : 512"), "{out}");
    assert!(out.contains("global_quota   : -1"), "{out}");
    assert!(out.contains("vcpu_quota     : 80000"), "{out}");

    // Live changes reach the cgroup and the live XML, not the definition.
    ok(&d.virsh(&["memtune", "vm1", "--hard-limit", "800000", "--live"]));
    assert_eq!(
        read(&mem, "memory.limit_in_bytes"),
        (800_000u64 * 1024).to_string()
    );
    ok(&d.virsh(&["schedinfo", "vm1", "--live", "--set", "cpu_shares=256"]));
    assert_eq!(read(&cpu, "cpu.shares"), "256");
    ok(&d.virsh(&[
        "schedinfo",
        "vm1",
        "--live",
        "--set",
        "vcpu_quota=40000",
        "--set",
        "emulator_period=200000",
    ]));
    assert_eq!(read(&cpu.join("vcpu0"), "cpu.cfs_quota_us"), "40000");
    assert_eq!(read(&cpu.join("emulator"), "cpu.cfs_period_us"), "200000");
    // (The kernel keeps a thread's quota within the domain's: the vCPUs' went first.)
    ok(&d.virsh(&["schedinfo", "vm1", "--live", "--set", "global_quota=50000"]));
    assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "50000");
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(
        live.contains("<hard_limit unit='KiB'>800000</hard_limit>"),
        "{live}"
    );
    assert!(live.contains("<shares>256</shares>"), "{live}");
    let inactive = ok(&d.virsh(&["dumpxml", "vm1", "--inactive"]));
    assert!(inactive.contains("<shares>512</shares>"), "{inactive}");

    // The definition only.
    ok(&d.virsh(&["memtune", "vm1", "--soft-limit", "400000", "--config"]));
    let inactive = ok(&d.virsh(&["dumpxml", "vm1", "--inactive"]));
    assert!(
        inactive.contains("<soft_limit unit='KiB'>400000</soft_limit>"),
        "{inactive}"
    );
    let out = ok(&d.virsh(&["memtune", "vm1", "--config"]));
    assert!(out.contains("soft_limit     : 400000"), "{out}");
    // (the running VM keeps no soft limit)
    assert!(read(&mem, "memory.soft_limit_in_bytes").len() > 12);

    // The block I/O weight: in the definition; live where the host's I/O scheduler
    // weighs (bfq), as the VM's cgroup shows.
    ok(&d.virsh(&["blkiotune", "vm1", "--weight", "600", "--config"]));
    let inactive = ok(&d.virsh(&["dumpxml", "vm1", "--inactive"]));
    assert!(
        inactive.contains("<blkiotune>\n    <weight>600</weight>"),
        "{inactive}"
    );
    let blk = cgroup_dir(pid, "blkio");
    if let Some(f) = ["blkio.weight", "blkio.bfq.weight"]
        .into_iter()
        .find(|f| blk.join(f).exists())
    {
        ok(&d.virsh(&["blkiotune", "vm1", "--weight", "700", "--live"]));
        assert_eq!(read(&blk, f), "700");
        let out = ok(&d.virsh(&["blkiotune", "vm1"]));
        assert!(out.contains("weight         : 700"), "{out}");
    } else {
        eprintln!(
            "live blkiotune not checked: no weight file in {}",
            blk.display()
        );
    }

    // Per-device limits, on a loop device the test made: live in the cgroup's throttle
    // file (by device number), shown by path; and in the definition.
    let backing = d.root.join("dev.img");
    std::fs::write(&backing, vec![0u8; 1 << 20]).unwrap();
    let lo = ok(&vireo_tests::run_cmd(
        "losetup",
        &["-f", "--show", backing.to_str().unwrap()],
    ))
    .trim()
    .to_string();
    let rdev = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&lo).unwrap().rdev()
    };
    let id = format!(
        "{}:{}",
        ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff),
        (rdev & 0xff) | ((rdev >> 12) & !0xff)
    );
    let live = d.virsh(&[
        "blkiotune",
        "vm1",
        "--device-read-iops-sec",
        &format!("{lo},100"),
        "--live",
    ]);
    let cfg = d.virsh(&[
        "blkiotune",
        "vm1",
        "--device-weights",
        &format!("{lo},500"),
        "--config",
    ]);
    let throttle = read(&blk, "blkio.throttle.read_iops_device");
    let shown = d.virsh(&["blkiotune", "vm1"]);
    let inactive = ok(&d.virsh(&["dumpxml", "vm1", "--inactive"]));
    // 0 takes the weight away again (this device's I/O scheduler may weigh nothing).
    let cleared = d.virsh(&[
        "blkiotune",
        "vm1",
        "--device-weights",
        &format!("{lo},0"),
        "--config",
    ]);
    let _ = std::process::Command::new("losetup")
        .args(["-d", &lo])
        .status();
    ok(&cleared);
    ok(&live);
    ok(&cfg);
    assert!(throttle.contains(&format!("{id} 100")), "{throttle}");
    let shown = ok(&shown);
    assert!(
        shown.contains(&format!("device_read_iops_sec: {lo},100")),
        "{shown}"
    );
    assert!(
        inactive.contains(&format!("<path>{lo}</path>\n      <weight>500</weight>")),
        "{inactive}"
    );

    // python-libvirt: the count first, then the values.
    let out = ok(&vireo_tests::run_cmd(
        vireo_tests::python3(),
        &[
            "-c",
            &format!(
                "import libvirt; c = libvirt.open('{}'); d = c.lookupByName('vm1'); \
                 print(d.memoryParameters(0)['hard_limit'], d.schedulerType()[0], \
                 d.schedulerParameters()['cpu_shares'])",
                d.uri()
            ),
        ],
    ));
    assert_eq!(out.trim(), "800000 posix 256");

    // Refusals.
    let err = fails(&d.virsh(&["schedinfo", "vm1", "--live", "--set", "vcpu_quota=5"]));
    assert!(err.contains("out of range"), "{err}");
    let err = fails(&d.virsh(&["schedinfo", "vm1", "--live", "--set", "cpu_shares=1"]));
    assert!(err.contains("out of range"), "{err}");

    // The cgroup goes with the VM.
    ok(&d.virsh(&["destroy", "vm1"]));
    assert!(!mem.exists(), "{} is left", mem.display());
    assert!(!cpu.exists(), "{} is left", cpu.display());

    // A shim killed cannot remove it: the QEMU daemon does, once QEMU is gone too.
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let pid = vireo_tests::qemu_pid_under(&d.root, "vm1").expect("QEMU runs");
    let dirs = ["memory", "cpu", "blkio"].map(|c| cgroup_dir(pid, c));
    assert!(dirs.iter().all(|d| d.exists()), "{dirs:?}");
    let shim = vireo_tests::shim_pid(&d.root, "vm1").expect("the shim runs");
    vireo_tests::signal(shim, Signal::KILL);
    // Nothing tells when the daemon has removed it.
    let t0 = std::time::Instant::now();
    while let Some(left) = dirs.iter().find(|d| d.exists()) {
        assert!(t0.elapsed().as_secs() < 30, "{} is left", left.display());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let st = ok(&d.virsh(&["domstate", "vm1", "--reason"]));
    assert!(st.contains("shut off (crashed)"), "{st}");
}
