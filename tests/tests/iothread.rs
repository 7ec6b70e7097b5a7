//! I/O threads with virsh: `<iothreads>` become QEMU iothread objects, a virtio disk does
//! its I/O in one (the guest reads it), `<iothreadpin>` places each thread on its host CPUs
//! (the kernel's affinity says so), and `iothreadinfo / iothreadpin / iothreadadd /
//! iothreaddel / iothreadset` change the running VM and the definition.

use std::io::Write;

use vireo_tests::{fails, ok, run_cmd, write_file, Daemon};

/// The affinity (Cpus_allowed_list) of QEMU's thread named `name`, if it has one.
fn affinity(pid: i32, name: &str) -> Option<String> {
    for e in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let st = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
        let field = |k: &str| {
            st.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
        };
        if field("Name:").as_deref() == Some(name) {
            return field("Cpus_allowed_list:");
        }
    }
    None
}

/// `virsh iothreadinfo` as (id, affinity) rows.
fn info(d: &Daemon, extra: &[&str]) -> Vec<(String, String)> {
    let out = ok(&d.virsh(&[&["iothreadinfo", "vm1"], extra].concat()));
    out.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let id = w.next()?;
            id.parse::<u32>().ok()?;
            Some((id.to_string(), w.next()?.to_string()))
        })
        .collect()
}

#[test]
fn iothreads_carry_a_disk_and_follow_virsh() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let all = if cpus > 1 {
        format!("0-{}", cpus - 1)
    } else {
        "0".to_string()
    };
    let last = (cpus - 1).to_string();
    let d = Daemon::start();
    let img = d.root.join("data.raw");
    let img = img.to_str().expect("utf-8").to_string();
    ok(&run_cmd(
        "qemu-img",
        &["create", "-q", "-f", "raw", &img, "8M"],
    ));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .and_then(|mut f| f.write_all(b"IOTHREAD"))
        .expect("mark the disk");
    let xml = vireo_tests::guest_xml("vm1")
        .replace(
            "<vcpu>1</vcpu>",
            &format!(
                "<vcpu>1</vcpu><iothreads>2</iothreads>\
                 <cputune><iothreadpin iothread='2' cpuset='{last}'/></cputune>"
            ),
        )
        .replace(
            "<memballoon model='none'/>",
            &format!(
                "<memballoon model='none'/><disk type='file' device='disk'>\
                 <driver name='qemu' type='raw' iothread='2'/><source file='{img}'/>\
                 <target dev='vda' bus='virtio'/></disk>"
            ),
        );
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &xml)]));
    let def = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(def.contains("<iothreads>2</iothreads>"), "{def}");
    assert!(def.contains("iothread='2'/>"), "{def}");
    // Not running: the definition's threads.
    assert_eq!(
        info(&d, &[]),
        [("1".into(), all.clone()), ("2".into(), last.clone())]
    );

    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let pid = d.qemu_pid("vm1").expect("qemu");
    // QEMU names each I/O thread's thread "IO <id>".
    assert_eq!(
        affinity(pid, "IO iothread2").as_deref(),
        Some(last.as_str())
    );
    assert_eq!(affinity(pid, "IO iothread1").as_deref(), Some(all.as_str()));
    assert_eq!(
        info(&d, &[]),
        [("1".into(), all.clone()), ("2".into(), last.clone())]
    );
    // The disk does its I/O in thread 2: the guest reads what the image holds.
    vireo_tests::guest_shell(
        &d,
        "vm1",
        &["--resume", "head -c 8 /dev/vda; echo", "IOTHREAD"],
    );

    // A thread added to the running VM, pinned, tuned, and removed again.
    ok(&d.virsh(&["iothreadadd", "vm1", "5", "--live"]));
    assert!(affinity(pid, "IO iothread5").is_some());
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(live.contains("<iothreads>3</iothreads>"), "{live}");
    assert!(live.contains("<iothread id='5'/>"), "{live}");
    ok(&d.virsh(&["iothreadpin", "vm1", "5", "0", "--live"]));
    assert_eq!(affinity(pid, "IO iothread5").as_deref(), Some("0"));
    assert!(info(&d, &["--live"]).contains(&("5".into(), "0".into())));
    ok(&d.virsh(&[
        "iothreadset",
        "vm1",
        "5",
        "--poll-max-ns",
        "4096",
        "--thread-pool-max",
        "4",
    ]));
    let stats = ok(&d.virsh(&["domstats", "vm1", "--iothread"]));
    assert!(stats.contains("iothread.count=3"), "{stats}");
    assert!(stats.contains("iothread.5.poll-max-ns=4096"), "{stats}");
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(
        live.contains("<iothread id='5' thread_pool_max='4'/>"),
        "{live}"
    );
    let err = fails(&d.virsh(&["iothreadset", "vm1", "5", "--thread-pool-min", "9"]));
    assert!(err.contains("thread_pool_min"), "{err}");
    let err = fails(&d.virsh(&["iothreaddel", "vm1", "2", "--live"]));
    assert!(err.contains("being used by disk"), "{err}");
    let err = fails(&d.virsh(&["iothreadadd", "vm1", "1", "--live"]));
    assert!(err.contains("already using"), "{err}");
    ok(&d.virsh(&["iothreaddel", "vm1", "5", "--live"]));
    assert!(affinity(pid, "IO iothread5").is_none());
    assert!(!info(&d, &[]).iter().any(|(id, _)| id == "5"));
    let err = fails(&d.virsh(&["iothreaddel", "vm1", "5", "--live"]));
    assert!(err.contains("cannot find IOThread"), "{err}");

    // The definition changes on its own: nothing of it reached the running VM.
    ok(&d.virsh(&["iothreadadd", "vm1", "7", "--config"]));
    ok(&d.virsh(&[
        "iothreadset",
        "vm1",
        "7",
        "--config",
        "--thread-pool-min",
        "1",
        "--thread-pool-max",
        "2",
    ]));
    ok(&d.virsh(&["iothreadpin", "vm1", "7", "0", "--config"]));
    let err = fails(&d.virsh(&["iothreadset", "vm1", "7", "--config", "--poll-max-ns", "1"]));
    assert!(err.contains("running domain only"), "{err}");
    let def = ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]));
    assert!(
        def.contains("<iothread id='7' thread_pool_min='1' thread_pool_max='2'/>"),
        "{def}"
    );
    assert!(
        def.contains("<iothreadpin iothread='7' cpuset='0'/>"),
        "{def}"
    );
    assert!(info(&d, &["--config"]).contains(&("7".into(), "0".into())));
    assert!(affinity(pid, "IO iothread7").is_none());
    ok(&d.virsh(&["iothreaddel", "vm1", "7", "--config"]));
    let def = ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]));
    assert!(!def.contains("iothread id='7'"), "{def}");
    assert!(!def.contains("iothreadpin iothread='7'"), "{def}");
    ok(&d.virsh(&["destroy", "vm1"]));

    // The next start runs what the definition says.
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let pid = d.qemu_pid("vm1").expect("qemu");
    assert_eq!(
        affinity(pid, "IO iothread2").as_deref(),
        Some(last.as_str())
    );
    assert!(affinity(pid, "IO iothread5").is_none());
    ok(&d.virsh(&["destroy", "vm1"]));
}
