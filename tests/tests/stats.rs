//! Statistics of running and inactive domains with the real virsh and python-libvirt:
//! domstats (every group Vireo has), domblkstat, domblkinfo, dommemstat, and
//! getAllDomainStats over a read-only connection, as monitoring tools call it; our CLI
//! prints what virsh prints.

use vireo_tests::{fails, guest_shell, ok, run_cmd, write_file, Daemon, Layout};

/// `FIELD=VALUE` of `virsh domstats` output, as a number.
fn stat(out: &str, field: &str) -> u64 {
    let key = format!("  {field}=");
    out.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in:\n{out}"))
}

fn domain_statistics(layout: Layout) {
    let d = Daemon::start_in(layout);
    let img = d.root.join("data.img");
    let mut data = b"VIREOSTATSDISK01".to_vec();
    data.resize(1 << 20, 0);
    std::fs::write(&img, &data).unwrap();
    let xml = vireo_tests::guest_xml("vm1").replace(
        "<memballoon model='none'/>",
        &format!(
            "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
             <source file='{}'/><target dev='vda' bus='virtio'/></disk>\
             <memballoon model='virtio'/>",
            img.display()
        ),
    );
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &xml)]));
    let other = vireo_tests::guest_xml("vm2");
    ok(&d.virsh(&["define", &write_file(&d, "vm2.xml", &other)]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    // The guest reads its disk, so there is something to count.
    guest_shell(
        &d,
        "vm1",
        &[
            "--resume",
            "echo DISK-$(dd if=/dev/vda bs=16 count=1 2>/dev/null)",
            "DISK-VIREOSTATSDISK01",
        ],
    );

    let out = ok(&d.virsh(&["domstats", "vm1"]));
    assert!(out.starts_with("Domain: 'vm1'\n"), "{out}");
    assert_eq!(stat(&out, "state.state"), 1);
    assert!(stat(&out, "cpu.time") > 0);
    assert_eq!(stat(&out, "balloon.current"), 131072);
    assert_eq!(stat(&out, "balloon.maximum"), 131072);
    assert!(stat(&out, "balloon.rss") > 0);
    assert_eq!(stat(&out, "vcpu.current"), 1);
    assert!(stat(&out, "vcpu.0.time") > 0);
    assert_eq!(stat(&out, "block.count"), 1);
    assert!(out.contains("  block.0.name=vda\n"), "{out}");
    assert!(
        out.contains(&format!("  block.0.path={}\n", img.display())),
        "{out}"
    );
    assert!(stat(&out, "block.0.rd.reqs") > 0);
    assert!(stat(&out, "block.0.rd.bytes") >= 16);
    assert_eq!(stat(&out, "block.0.capacity"), 1 << 20);
    assert_eq!(stat(&out, "block.0.physical"), 1 << 20);
    assert_eq!(stat(&out, "net.count"), 0);

    // Every domain, the inactive one from its definition.
    let all = ok(&d.virsh(&["domstats", "--state", "--vcpu"]));
    let vm2 = &all[all.find("Domain: 'vm2'").expect("vm2 listed")..];
    assert_eq!(stat(vm2, "state.state"), 5);
    assert_eq!(stat(vm2, "vcpu.maximum"), 1);
    let running = ok(&d.virsh(&["domstats", "--list-running", "--state"]));
    assert!(!running.contains("vm2"), "{running}");

    let blk = ok(&d.virsh(&["domblkstat", "vm1", "vda"]));
    assert!(blk.contains("vda rd_req "), "{blk}");
    let info = ok(&d.virsh(&["domblkinfo", "vm1", "vda"]));
    assert!(info.contains("Capacity:       1048576"), "{info}");
    let mem = ok(&d.virsh(&["dommemstat", "vm1"]));
    assert!(mem.contains("actual 131072"), "{mem}");
    // The guest's balloon driver reports its own statistics once asked to.
    ok(&d.virsh(&["dommemstat", "vm1", "--period", "1", "--live"]));
    assert!(ok(&d.virsh(&["dumpxml", "vm1"])).contains("<stats period='1'/>"));
    let mut mem = String::new();
    for _ in 0..120 {
        mem = ok(&d.virsh(&["dommemstat", "vm1"]));
        if mem.contains("last_update ") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(mem.contains("usable ") && mem.contains("unused "), "{mem}");
    let out = ok(&d.virsh(&["domstats", "vm1", "--balloon"]));
    assert!(stat(&out, "balloon.usable") > 0);
    ok(&d.virsh(&["dommemstat", "vm1", "--period", "5", "--config"]));
    assert!(ok(&d.virsh(&["dumpxml", "--inactive", "vm1"])).contains("<stats period='5'/>"));
    let e = fails(&d.virsh(&["dommemstat", "vm2", "--period", "5", "--config"]));
    assert!(e.contains("No memory balloon device configured"), "{e}");

    let e = fails(&d.virsh(&["domblkstat", "vm1", "vdz"]));
    assert!(e.contains("invalid argument: invalid path: vdz"), "{e}");
    let e = fails(&d.virsh(&["dommemstat", "vm2"]));
    assert!(e.contains("domain is not running"), "{e}");

    // Our CLI prints what virsh prints.
    for args in [
        &["domblkinfo", "vm1", "vda"][..],
        &["domstats", "vm2"],
        &[
            "domstats",
            "--list-inactive",
            "--state",
            "--vcpu",
            "--balloon",
        ],
    ] {
        assert_eq!(ok(&d.vireo(args)), ok(&d.virsh(args)), "{args:?}");
    }
    // Every word but the last (the value, which moves between two calls: rss, times).
    let names = |out: &str| -> Vec<String> {
        out.lines()
            .map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w[..w.len().saturating_sub(1)].join(" ")
            })
            .collect()
    };
    for args in [&["domblkstat", "vm1", "vda"][..], &["dommemstat", "vm1"]] {
        assert_eq!(
            names(&ok(&d.vireo(args))),
            names(&ok(&d.virsh(args))),
            "{args:?}"
        );
    }
    let out = ok(&d.vireo(&["domstats", "vm1", "--block"]));
    assert!(out.contains("  block.0.name=vda\n"), "{out}");
    let e = fails(&d.vireo(&["dommemstat", "vm2"]));
    assert!(e.contains("domain is not running"), "{e}");

    let script = vireo_tests::tests_dir().join("python/domstats.py");
    let py = ok(&run_cmd(
        vireo_tests::python3(),
        &[
            script.to_str().unwrap(),
            &d.uri(),
            &d.uri_ro(),
            "vm1",
            "vm2",
        ],
    ));
    assert!(py.contains("DOMSTATS-OK"), "{py}");
    ok(&d.virsh(&["destroy", "vm1"]));
}

vireo_tests::in_every_layout!(domain_statistics);

/// `virsh vcpuinfo`: each vCPU thread's state, host CPU, time and affinity while the guest
/// runs (GET_VCPUS), and the (unpinned) affinity of a stopped one (GET_VCPU_PIN_INFO).
#[test]
fn vcpu_info() {
    let d = Daemon::start();
    let xml = vireo_tests::guest_xml("vm1").replace("<vcpu>1</vcpu>", "<vcpu>2</vcpu>");
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &xml)]));
    let host_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let all = "y".repeat(host_cpus);
    let off = ok(&d.virsh(&["vcpuinfo", "vm1"]));
    assert_eq!(off.matches("CPU Affinity:").count(), 2, "{off}");
    assert!(off.contains(&format!("CPU Affinity:   {all}")), "{off}");

    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let on = ok(&d.virsh(&["vcpuinfo", "vm1"]));
    for i in 0..2 {
        assert!(on.contains(&format!("VCPU:           {i}")), "{on}");
    }
    assert_eq!(on.matches("State:          running").count(), 2, "{on}");
    assert!(on.contains("CPU:            "), "{on}");
    // QEMU's threads may run anywhere on this host (no <vcpu cpuset>).
    assert!(on.contains(&format!("CPU Affinity:   {all}")), "{on}");
    ok(&d.virsh(&["destroy", "vm1"]));
}

/// `setmem` (live through the balloon, and config), `setmaxmem` (config only while it
/// runs), `setvcpus` (config, maximum) and `vcpucount`.
#[test]
fn memory_and_vcpus() {
    let d = Daemon::start();
    let xml = vireo_tests::guest_xml("vm1")
        .replace("<memballoon model='none'/>", "<memballoon model='virtio'/>");
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &xml)]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    // The guest's balloon driver is loaded once it has booted.
    guest_shell(&d, "vm1", &["--resume"]);

    ok(&d.virsh(&["setmem", "vm1", "96M", "--live"]));
    assert!(ok(&d.virsh(&["dominfo", "vm1"])).contains("Used memory:    98304 KiB"));
    assert!(ok(&d.virsh(&["dumpxml", "vm1"]))
        .contains("<currentMemory unit='KiB'>98304</currentMemory>"));
    // The guest gives the memory back to its balloon.
    let t0 = std::time::Instant::now();
    loop {
        let stats = ok(&d.virsh(&["dommemstat", "vm1"]));
        if stats.lines().any(|l| l == "actual 98304") {
            break;
        }
        assert!(
            t0.elapsed().as_secs() < 120,
            "the balloon did not follow:\n{stats}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // The definition is not changed by a live change, and the other way round.
    assert!(ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]))
        .contains("<currentMemory unit='KiB'>131072</currentMemory>"));
    ok(&d.virsh(&["setmem", "vm1", "100M", "--config"]));
    assert!(ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]))
        .contains("<currentMemory unit='KiB'>102400</currentMemory>"));
    let e = fails(&d.virsh(&["setmem", "vm1", "1G", "--live"]));
    assert!(e.contains("must be between 1 and the maximum"), "{e}");
    let e = fails(&d.virsh(&["setmaxmem", "vm1", "256M"]));
    assert!(
        e.contains("cannot resize the maximum memory on an active domain"),
        "{e}"
    );
    ok(&d.virsh(&["setmaxmem", "vm1", "256M", "--config"]));
    assert!(ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]))
        .contains("<memory unit='KiB'>262144</memory>"));

    ok(&d.virsh(&["setvcpus", "vm1", "2", "--config", "--maximum"]));
    ok(&d.virsh(&["setvcpus", "vm1", "1", "--config"]));
    let inactive = ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]));
    assert!(inactive.contains("current='1'>2</vcpu>"), "{inactive}");
    let count = ok(&d.virsh(&["vcpucount", "vm1"]));
    for want in [
        "maximum      config         2",
        "maximum      live           1",
    ] {
        assert!(count.contains(want), "{want}:\n{count}");
    }
    // The running VM was started with one vCPU at most.
    let e = fails(&d.virsh(&["setvcpus", "vm1", "2", "--live"]));
    assert!(e.contains("greater than max allowable vcpus"), "{e}");
    let e = fails(&d.virsh(&["setvcpus", "vm1", "3", "--config"]));
    assert!(e.contains("greater than max allowable vcpus"), "{e}");
    ok(&d.virsh(&["destroy", "vm1"]));

    // Without a balloon the running memory cannot change.
    let plain = vireo_tests::guest_xml("vm2");
    ok(&d.virsh(&["create", "--paused", &write_file(&d, "vm2.xml", &plain)]));
    let e = fails(&d.virsh(&["setmem", "vm2", "64M"]));
    assert!(e.contains("without the balloon device"), "{e}");
    ok(&d.virsh(&["destroy", "vm2"]));
}
