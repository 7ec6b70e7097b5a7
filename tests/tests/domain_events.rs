//! The domain events beyond lifecycle and devices, each caused for real on one TCG guest
//! and received by python-libvirt: RTC_CHANGE (the guest sets its clock to 2031),
//! TUNABLE (vcpupin, emulatorpin), BALLOON_CHANGE (setmem), TRAY_CHANGE (the CD-ROM's
//! tray opened and closed by change-media), GRAPHICS (a VNC client connects, initializes,
//! leaves), PMSUSPEND / PMWAKEUP (dompmsuspend through the guest agent, dompmwakeup, with
//! the PMSUSPENDED state and its lifecycle events), IO_ERROR / IO_ERROR_REASON (the guest
//! writes to a disk whose file sits on a full tmpfs: QEMU stops it, paused for an I/O
//! error), BLOCK_THRESHOLD (domblkthreshold, passed by that write; `domstats --block` shows
//! the threshold until then, `--backing` the images below a disk's) and REBOOT (virsh
//! reset). In every layout.

use vireo_tests::{guest_shell, in_ns, ok, python3, run_cmd, write_file, Daemon, EventLog, Layout};

const CHANNEL: &str =
    "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>";

/// A small tmpfs of the test's own, lazily unmounted when dropped (QEMU may still hold a
/// file there while the daemons wind down).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: std::path::PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&dir).expect("mount point");
        let d = dir.to_str().expect("utf-8");
        ok(&run_cmd(
            "mount",
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", d],
        ));
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Some(d) = self.0.to_str() {
            let _ = run_cmd("umount", &["-l", d]);
        }
    }
}

/// The alias the live XML gives the disk whose target is `dev`.
fn disk_alias(xml: &str, dev: &str) -> String {
    let at = xml
        .find(&format!("<target dev='{dev}'"))
        .unwrap_or_else(|| panic!("no disk {dev}: {xml}"));
    let rest = &xml[at..];
    let end = rest.find("</disk>").unwrap_or(rest.len());
    let a = rest[..end]
        .find("<alias name='")
        .unwrap_or_else(|| panic!("no alias for {dev}: {xml}"));
    let tail = &rest[a + "<alias name='".len()..];
    tail[..tail.find('\'').unwrap_or(0)].to_string()
}

fn domain_events_for_real(layout: Layout) {
    let d = Daemon::start_in(layout);
    let full = Tmpfs::mount(d.root.join("full"), "4m");
    let img = full.0.join("disk.img");
    let img = img.to_str().expect("utf-8").to_string();
    ok(&run_cmd(
        "qemu-img",
        &["create", "-q", "-f", "raw", &img, "64M"],
    ));
    let iso = write_file(&d, "cd.iso", &"vireo".repeat(1000));
    let base = d.root.join("base.raw");
    let base = base.to_str().expect("utf-8").to_string();
    let over = d.root.join("over.qcow2");
    let over = over.to_str().expect("utf-8").to_string();
    ok(&run_cmd(
        "qemu-img",
        &["create", "-q", "-f", "raw", &base, "32M"],
    ));
    ok(&run_cmd(
        "qemu-img",
        &[
            "create", "-q", "-f", "qcow2", "-b", &base, "-F", "raw", &over,
        ],
    ));
    let devices = format!(
        "<memballoon model='virtio'/>{CHANNEL}\
         <disk type='file' device='disk'><driver name='qemu' type='raw'/>\
         <source file='{img}'/><target dev='vdb' bus='virtio'/></disk>\
         <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
         <source file='{over}'/><target dev='vdc' bus='virtio'/></disk>\
         <disk type='file' device='cdrom'><driver name='qemu' type='raw'/>\
         <source file='{iso}'/><target dev='hdc' bus='ide'/><readonly/></disk>\
         <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>"
    );
    let xml = vireo_tests::guest_xml("vm1").replace("<memballoon model='none'/>", &devices);
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &xml)]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let mut ev = EventLog::start_others(&d);
    let mut life = EventLog::start(&d);

    // The guest sets its hardware clock about five years ahead: RTC_CHANGE with that offset.
    guest_shell(
        &d,
        "vm1",
        &[
            "--resume",
            "date -s '2031-06-01 00:00:00' >/dev/null && hwclock -w -u && echo R-$((2+2))",
            "R-4",
        ],
    );
    let rtc = ev.wait_until("an RTC change of years", |l| {
        l.strip_prefix("vm1 rtc-change ")
            .and_then(|o| o.parse::<i64>().ok())
            .is_some_and(|o| o > 100_000_000)
    });
    assert!(rtc.starts_with("vm1 rtc-change "), "{rtc}");

    // Live tuning: TUNABLE with libvirt's parameter names.
    ok(&d.virsh(&["vcpupin", "vm1", "0", "0", "--live"]));
    ev.wait_for("vm1 tunable cputune.vcpupin0=0");
    ok(&d.virsh(&["emulatorpin", "vm1", "0", "--live"]));
    ev.wait_for("vm1 tunable cputune.emulatorpin=0");

    // The balloon: the guest gives memory back, QEMU says how much it holds now.
    ok(&d.virsh(&["setmem", "vm1", "100M", "--live"]));
    ev.wait_for("vm1 balloon-change 102400");

    // The CD-ROM's tray, opened by an eject and closed by an insert.
    let alias = disk_alias(&ok(&d.virsh(&["dumpxml", "vm1"])), "hdc");
    ok(&d.virsh(&["change-media", "vm1", "hdc", "--eject", "--live"]));
    ev.wait_for(&format!("vm1 tray-change {alias} 0"));
    ok(&d.virsh(&["change-media", "vm1", "hdc", &iso, "--insert", "--live"]));
    ev.wait_for(&format!("vm1 tray-change {alias} 1"));

    // A VNC client comes, says hello, goes: connect, initialize, disconnect.
    let display = ok(&d.virsh(&["vncdisplay", "vm1"]));
    let n: u16 = display
        .trim()
        .rsplit(':')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("display: {display}"));
    let port = (5900 + n).to_string();
    let script = vireo_tests::tests_dir().join("python/vnc_hello.py");
    let hello = in_ns(
        &d,
        python3(),
        &[script.to_str().expect("utf-8"), "127.0.0.1", &port],
    );
    assert!(hello.contains("DESKTOP"), "{hello}");
    for phase in 0..3 {
        ev.wait_until(&format!("graphics phase {phase}"), |l| {
            l.starts_with(&format!("vm1 graphics {phase} 127.0.0.1 127.0.0.1 "))
        });
    }

    // Suspend to RAM through the guest agent, and the wake-up.
    life.seen.clear();
    ok(&d.virsh(&["dompmsuspend", "vm1", "mem"]));
    ev.wait_for("vm1 pmsuspend 0");
    life.wait_for("vm1 7 0");
    assert_eq!(ok(&d.virsh(&["domstate", "vm1"])).trim(), "pmsuspended");
    ok(&d.virsh(&["dompmwakeup", "vm1"]));
    ev.wait_for("vm1 pmwakeup 0");
    life.wait_for("vm1 2 4");
    assert_eq!(ok(&d.virsh(&["domstate", "vm1"])).trim(), "running");

    // Images below a disk's own, with --backing; a write threshold on vdb, shown in the
    // statistics until the guest passes it.
    let stats = ok(&d.virsh(&["domstats", "vm1", "--block", "--backing"]));
    assert!(stats.contains("block.count=4"), "{stats}");
    assert!(stats.contains("backingIndex=1"), "{stats}");
    assert!(stats.contains(&format!("path={base}")), "{stats}");
    ok(&d.virsh(&["domblkthreshold", "vm1", "vdb", "1M"]));
    let stats = ok(&d.virsh(&["domstats", "vm1", "--block"]));
    assert!(stats.contains("block.0.threshold=1048576"), "{stats}");
    assert!(!stats.contains("backingIndex"), "{stats}");

    // The disk's file cannot grow past the full tmpfs: QEMU stops the guest for it. (The
    // guest names its first virtio disk vda.)
    guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            "(sleep 1; dd if=/dev/zero of=/dev/vda bs=1M count=16 conv=fsync) >/dev/null 2>&1 & \
             echo D-$((3+3))",
            "D-6",
        ],
    );
    let vdb = disk_alias(&ok(&d.virsh(&["dumpxml", "vm1"])), "vdb");
    ev.wait_for(&format!("vm1 io-error-reason {img} {vdb} 1 enospc"));
    ev.wait_for(&format!("vm1 io-error {img} {vdb} 1"));
    ev.wait_for(&format!("vm1 block-threshold vdb {img} 1048576 excess"));
    let stats = ok(&d.virsh(&["domstats", "vm1", "--block"]));
    assert!(
        !stats.contains("threshold"),
        "a threshold fires once: {stats}"
    );
    life.wait_for("vm1 3 2");
    assert_eq!(
        ok(&d.virsh(&["domstate", "vm1", "--reason"])).trim(),
        "paused (I/O error)"
    );

    // A reset: REBOOT.
    ok(&d.virsh(&["reset", "vm1"]));
    ev.wait_for("vm1 reboot");
    ok(&d.virsh(&["destroy", "vm1"]));
}

vireo_tests::in_every_layout!(domain_events_for_real);
