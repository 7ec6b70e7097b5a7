//! CPU pinning with virsh: `<cputune>` puts each vCPU thread and QEMU's other threads on
//! their host CPUs at start (the kernel's affinity of each thread says so), `vcpupin` and
//! `emulatorpin` change them on the running VM and in the definition.

use vireo_tests::{fails, ok, write_file, Daemon};

/// The affinity of every thread of process `pid`: (name, Cpus_allowed_list).
fn threads(pid: i32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("tasks")
        .flatten()
    {
        let st = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
        let field = |k: &str| {
            st.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        out.push((field("Name:"), field("Cpus_allowed_list:")));
    }
    out
}

#[test]
fn vcpus_and_emulator_are_pinned() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        eprintln!("one host CPU: nothing to pin apart");
        return;
    }
    let d = Daemon::start();
    let xml = vireo_tests::guest_xml("vm1").replace(
        "<vcpu>1</vcpu>",
        "<vcpu>2</vcpu><cputune><vcpupin vcpu='0' cpuset='1'/><emulatorpin cpuset='0'/></cputune>",
    );
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &xml)]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let pid = d.qemu_pid("vm1").expect("qemu");
    let t = threads(pid);
    // QEMU names its vCPU threads "CPU N/TCG".
    let of = |name: &str| {
        t.iter()
            .find(|(n, _)| n.starts_with(name))
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| panic!("no thread {name}: {t:?}"))
    };
    assert_eq!(of("CPU 0/"), "1");
    assert_eq!(of("CPU 1/"), format!("0-{}", cpus - 1));
    assert!(
        t.iter()
            .filter(|(n, _)| !n.starts_with("CPU "))
            .all(|(_, a)| a == "0"),
        "{t:?}"
    );
    let table = ok(&d.virsh(&["vcpupin", "vm1"]));
    assert!(
        table.lines().any(|l| l.split_whitespace().eq(["0", "1"])),
        "{table}"
    );

    // Live: vCPU 1 to CPU 0, the emulator to CPU 1.
    ok(&d.virsh(&["vcpupin", "vm1", "1", "0", "--live"]));
    ok(&d.virsh(&["emulatorpin", "vm1", "1", "--live"]));
    let t = threads(pid);
    let of = |name: &str| {
        t.iter()
            .find(|(n, _)| n.starts_with(name))
            .map(|(_, a)| a.clone())
    };
    assert_eq!(of("CPU 1/").as_deref(), Some("0"));
    assert_eq!(of("qemu-system").as_deref(), Some("1"));
    let emu = ok(&d.virsh(&["emulatorpin", "vm1"]));
    assert!(emu.contains("*: 1"), "{emu}");
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(live.contains("<vcpupin vcpu='1' cpuset='0'/>"), "{live}");

    // Config: the definition changes, the running VM does not.
    ok(&d.virsh(&["vcpupin", "vm1", "1", "1", "--config"]));
    let def = ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]));
    assert!(def.contains("<vcpupin vcpu='1' cpuset='1'/>"), "{def}");
    let cfg = ok(&d.virsh(&["vcpupin", "vm1", "--config"]));
    assert!(
        cfg.lines().any(|l| l.split_whitespace().eq(["1", "1"])),
        "{cfg}"
    );
    // No flag: virsh's older call (virDomainPinVcpu), the running guest's pin.
    ok(&d.virsh(&["vcpupin", "vm1", "0", "1"]));
    assert_eq!(
        threads(pid)
            .iter()
            .find(|(n, _)| n.starts_with("CPU 0/"))
            .map(|(_, a)| a.as_str()),
        Some("1")
    );
    // virsh itself refuses a CPU the host does not have.
    let err = fails(&d.virsh(&["vcpupin", "vm1", "0", &cpus.to_string()]));
    assert!(err.contains("exceed the maxcpu"), "{err}");
    ok(&d.virsh(&["destroy", "vm1"]));
}

/// `setvcpus --live`: a vCPU plugged into the running guest (which brings it online) and
/// unplugged again (the guest lets it go), within the maximum the VM started with.
#[test]
fn vcpus_plugged_in_and_out() {
    let d = Daemon::start();
    let xml = vireo_tests::guest_xml("vm1").replace("<vcpu>1</vcpu>", "<vcpu current='1'>2</vcpu>");
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &xml)]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    vireo_tests::guest_shell(&d, "vm1", &["--resume", "echo B-$((1+1))", "B-2"]);
    ok(&d.virsh(&["setvcpus", "vm1", "2", "--live"]));
    let count = ok(&d.virsh(&["vcpucount", "vm1"]));
    assert!(count.contains("current      live           2"), "{count}");
    vireo_tests::guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            "echo 1 > /sys/devices/system/cpu/cpu1/online; echo N-$(grep -c ^processor /proc/cpuinfo)",
            "N-2",
        ],
    );
    let stats = ok(&d.virsh(&["domstats", "vm1", "--vcpu"]));
    assert!(stats.contains("vcpu.current=2"), "{stats}");
    ok(&d.virsh(&["setvcpus", "vm1", "1", "--live"]));
    vireo_tests::guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            "echo N-$(grep -c ^processor /proc/cpuinfo)",
            "N-1",
        ],
    );
    let err = fails(&d.virsh(&["setvcpus", "vm1", "3", "--live"]));
    assert!(err.contains("greater than max allowable vcpus"), "{err}");
    // The boot vCPU was not plugged in: it stays.
    let err = fails(&d.virsh(&["setvcpus", "vm1", "1", "--live", "--maximum"]));
    assert!(!err.is_empty());
    ok(&d.virsh(&["destroy", "vm1"]));
}
