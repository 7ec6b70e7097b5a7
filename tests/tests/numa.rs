//! The guest's memory layout with virsh on TCG guests: NUMA cells the guest kernel sees,
//! a DIMM plugged into a cell and taken out again, a virtio-mem device the guest is asked
//! to take more of, and memory in huge pages the host sets aside.

use vireo_tests::{fails, ok, write_file, Daemon, EventLog};

/// The test guest with 2 vCPUs in two NUMA cells of 128 MiB, room for 1 GiB, and `devices`.
fn numa_guest(devices: &str) -> String {
    vireo_tests::guest_xml("vm1")
        .replace(
            "<memory unit='MiB'>128</memory>",
            "<maxMemory slots='2' unit='MiB'>1024</maxMemory><memory unit='MiB'>256</memory>",
        )
        .replace("<vcpu>1</vcpu>", "<vcpu>2</vcpu>")
        .replace(
            "</features>",
            "</features><cpu><numa><cell id='0' cpus='0' memory='128' unit='MiB'/>\
             <cell id='1' cpus='1' memory='128' unit='MiB'/></numa></cpu>",
        )
        .replace(
            "<memballoon model='none'/>",
            &format!("<memballoon model='none'/>{devices}"),
        )
}

/// The value of `<memory>` in KiB in `xml`.
fn memory_kib(xml: &str) -> u64 {
    xml.split("<memory unit='KiB'>")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .and_then(|v| v.parse().ok())
        .expect("memory")
}

const DIMM: &str = "<memory model='dimm'><target><size unit='MiB'>128</size><node>1</node>\
                    </target></memory>";

#[test]
fn numa_cells_and_a_dimm_plugged_in_and_out() {
    let d = Daemon::start();
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &numa_guest(""))]));
    let def = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert_eq!(memory_kib(&def), 256 * 1024, "{def}");
    assert!(
        def.contains("<maxMemory slots='2' unit='KiB'>1048576</maxMemory>"),
        "{def}"
    );
    assert!(
        def.contains("<cell id='1' cpus='1' memory='131072' unit='KiB'/>"),
        "{def}"
    );
    let mut ev = EventLog::start_devices(&d);
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    // The guest kernel sees both cells, and no memory it has not onlined.
    vireo_tests::guest_shell(
        &d,
        "vm1",
        &[
            "--resume",
            "echo NODES-$(ls -d /sys/devices/system/node/node* | wc -l)",
            "NODES-2",
            "echo OFF-$(grep -l 0 /sys/devices/system/memory/memory*/online | wc -l)",
            "OFF-0",
        ],
    );

    // A DIMM in cell 1: the guest has memory it can online; the live XML counts it.
    let dimm = write_file(&d, "dimm.xml", DIMM);
    ok(&d.virsh(&["attach-device", "vm1", &dimm, "--live"]));
    ev.wait_for("vm1 device-added dimm0");
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert_eq!(memory_kib(&live), 384 * 1024, "{live}");
    assert!(live.contains("<alias name='dimm0'/>"), "{live}");
    vireo_tests::guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            "n=$(grep -l 0 /sys/devices/system/memory/memory*/online | wc -l); \
             [ $n -gt 0 ] && echo DIMM-IN-$((1+1))",
            "DIMM-IN-2",
        ],
    );
    // The definition did not change.
    let inactive = ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]));
    assert_eq!(memory_kib(&inactive), 256 * 1024, "{inactive}");

    // Out again: the guest never onlined it, so it lets it go at once.
    ok(&d.virsh(&["detach-device", "vm1", &dimm, "--live"]));
    ev.wait_for("vm1 device-removed dimm0");
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(!live.contains("model='dimm'"), "{live}");
    assert_eq!(memory_kib(&live), 256 * 1024, "{live}");
    vireo_tests::guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            "echo OFF-$(grep -l 0 /sys/devices/system/memory/memory*/online | wc -l)",
            "OFF-0",
        ],
    );

    // The definition: a DIMM there grows <memory>; the slots and the room are counted.
    ok(&d.virsh(&["attach-device", "vm1", &dimm, "--config"]));
    let inactive = ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]));
    assert_eq!(memory_kib(&inactive), 384 * 1024, "{inactive}");
    ok(&d.virsh(&["attach-device", "vm1", &dimm, "--config"]));
    let e = fails(&d.virsh(&["attach-device", "vm1", &dimm, "--config"]));
    assert!(e.contains("no free memory slot"), "{e}");
    ok(&d.virsh(&["destroy", "vm1"]));

    // The next start has both DIMMs in their slots.
    ok(&d.virsh(&["start", "vm1"]));
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert_eq!(memory_kib(&live), 512 * 1024, "{live}");
    assert!(live.contains("<alias name='dimm1'/>"), "{live}");
    ok(&d.virsh(&["destroy", "vm1"]));
    ok(&d.virsh(&["detach-device", "vm1", &dimm, "--config"]));
    let inactive = ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]));
    assert_eq!(memory_kib(&inactive), 384 * 1024, "{inactive}");
}

#[test]
fn virtio_mem_gives_the_guest_what_is_asked() {
    let d = Daemon::start();
    let vmem = "<memory model='virtio-mem'><target><size unit='MiB'>256</size><node>0</node>\
                <block unit='MiB'>2</block><requested unit='MiB'>0</requested></target></memory>";
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &numa_guest(vmem))]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let mut ev = EventLog::start_devices(&d);
    vireo_tests::guest_shell(&d, "vm1", &["--resume", "echo UP-$((1+1))", "UP-2"]);
    ok(&d.virsh(&[
        "update-memory-device",
        "vm1",
        "--requested-size",
        "64MiB",
        "--live",
    ]));
    // The guest's driver plugs the blocks in; QEMU says how much it has, and the
    // clients hear it (MEMORY_DEVICE_SIZE_CHANGE).
    ev.wait_for("vm1 memory-size virtiomem0 65536");
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(
        live.contains("<current unit='KiB'>65536</current>"),
        "{live}"
    );
    assert!(
        live.contains("<requested unit='KiB'>65536</requested>"),
        "{live}"
    );
    let e = fails(&d.virsh(&[
        "update-memory-device",
        "vm1",
        "--requested-size",
        "3MiB",
        "--live",
    ]));
    assert!(e.contains("multiple of the block size"), "{e}");
    ok(&d.virsh(&["destroy", "vm1"]));
}

/// Sets aside `n` more 2 MiB pages for the test, and gives them back when dropped.
struct HugePages {
    before: u64,
}

impl HugePages {
    const KNOB: &'static str = "/proc/sys/vm/nr_hugepages";

    fn reserve(n: u64) -> Option<HugePages> {
        let before: u64 = std::fs::read_to_string(Self::KNOB)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        std::fs::write(Self::KNOB, (before + n).to_string()).ok()?;
        let now: u64 = std::fs::read_to_string(Self::KNOB)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let h = HugePages { before };
        (now >= before + n).then_some(h)
    }

    fn free() -> u64 {
        let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        info.lines()
            .find_map(|l| l.strip_prefix("HugePages_Free:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for HugePages {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::KNOB, self.before.to_string());
    }
}

#[test]
fn guest_memory_in_huge_pages() {
    let Some(_pages) = HugePages::reserve(64) else {
        eprintln!("cannot set huge pages aside here (not root?): skipped");
        return;
    };
    let d = Daemon::start();
    let xml = vireo_tests::guest_xml("vm1").replace(
        "<vcpu>1</vcpu>",
        "<memoryBacking><hugepages/></memoryBacking><vcpu>1</vcpu>",
    );
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &xml)]));
    let free = HugePages::free();
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    // 128 MiB of 2 MiB pages, taken at start.
    assert_eq!(free - HugePages::free(), 64);
    vireo_tests::guest_shell(&d, "vm1", &["--resume", "echo HUGE-$((1+1))", "HUGE-2"]);
    ok(&d.virsh(&["destroy", "vm1"]));
    assert_eq!(HugePages::free(), free);
}
