//! The guest agent: the test guest runs Debian's qemu-ga on its `org.qemu.guest_agent.0`
//! channel (with stand-ins for the `chpasswd` and `shutdown` programs busybox lacks), and
//! the real virsh drives it through Vireo: guestinfo, domfsinfo, domfsfreeze / domfsthaw
//! (on an ext2 filesystem the guest mounts from its disk), domtime, set-user-password,
//! domhostname, guestvcpus (and --cpulist), domifaddr --source agent, qemu-agent-command,
//! shutdown --mode agent, the AGENT_LIFECYCLE events, and the refusals.

use vireo_tests::{fails, guest_shell, ok, run_cmd, write_file, Daemon, EventLog, Layout};

/// The value virsh prints for `key` ("key   : value" lines), or "".
fn field(out: &str, key: &str) -> String {
    out.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}

const CHANNEL: &str =
    "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>";

fn guest_agent_with_virsh(layout: Layout) {
    let d = Daemon::start_in(layout);
    let img = d.root.join("fs.img");
    let img = img.to_str().expect("utf-8");
    ok(&run_cmd(
        "qemu-img",
        &["create", "-q", "-f", "raw", img, "16M"],
    ));
    let devices = format!(
        "<memballoon model='none'/>{CHANNEL}<disk type='file' device='disk'>\
         <driver name='qemu' type='raw'/><source file='{img}'/>\
         <target dev='vda' bus='virtio'/></disk>"
    );
    let xml = vireo_tests::guest_xml("vm1")
        .replace("<memballoon model='none'/>", &devices)
        .replace("<vcpu>1</vcpu>", "<vcpu>2</vcpu>");
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &xml)]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let mut dev = EventLog::start_devices(&d);
    let mut life = EventLog::start(&d);
    let boot = guest_shell(
        &d,
        "vm1",
        &[
            "--resume",
            "mke2fs -q /dev/vda && mkdir -p /mnt && mount /dev/vda /mnt && echo M-$((1+1))",
            "M-2",
        ],
    );
    assert!(boot.contains("VIREO-GUEST-AGENT vport"), "{boot}");
    // qemu-ga opened its port: connected (1), by the channel (2).
    dev.wait_for("vm1 agent-lifecycle 1 2");

    let os = ok(&d.virsh(&["guestinfo", "vm1", "--os", "--hostname"]));
    assert_eq!(field(&os, "os.id"), "vireo-test", "{os}");
    assert_eq!(field(&os, "hostname"), "vireo-guest", "{os}");
    assert_eq!(field(&os, "fs.count"), "", "only what was asked: {os}");
    let all = ok(&d.virsh(&["guestinfo", "vm1"]));
    for (k, v) in [
        ("timezone.name", "UTC"),
        ("fs.0.mountpoint", "/mnt"),
        ("fs.0.fstype", "ext2"),
        ("fs.0.disk.0.alias", "vda"),
        ("disk.0.alias", "vda"),
        ("if.0.name", "lo"),
    ] {
        assert_eq!(field(&all, k), v, "{k}: {all}");
    }
    let fs = ok(&d.virsh(&["domfsinfo", "vm1"]));
    let row = fs.lines().find(|l| l.contains("/mnt")).unwrap_or_default();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols, ["/mnt", "vda", "ext2", "vda"], "{fs}");
    assert!(ok(&d.virsh(&["domfsfreeze", "vm1"])).contains("Froze 1 filesystem(s)"));
    assert!(ok(&d.virsh(&["domfsthaw", "vm1"])).contains("Thawed 1 filesystem(s)"));
    assert!(ok(&d.virsh(&["domhostname", "vm1"])).contains("vireo-guest"));
    // The guest's own view of its vCPUs, and one taken offline and back by the agent.
    let v = ok(&d.virsh(&["guestvcpus", "vm1"]));
    assert_eq!(field(&v, "vcpus"), "0-1", "{v}");
    assert_eq!(field(&v, "online"), "0-1", "{v}");
    assert!(field(&v, "offlinable").contains('1'), "{v}");
    ok(&d.virsh(&["guestvcpus", "vm1", "--cpulist", "1", "--disable"]));
    assert_eq!(field(&ok(&d.virsh(&["guestvcpus", "vm1"])), "online"), "0");
    ok(&d.virsh(&["guestvcpus", "vm1", "--cpulist", "1", "--enable"]));
    assert_eq!(
        field(&ok(&d.virsh(&["guestvcpus", "vm1"])), "online"),
        "0-1"
    );
    let e = fails(&d.virsh(&["guestvcpus", "vm1", "--cpulist", "7", "--enable"]));
    assert!(e.contains("not present"), "{e}");
    // A disk-only snapshot with the guest's filesystems frozen by the agent meanwhile
    // (the overlay on the raw image is a qcow2); the guest writes on after it.
    let out = ok(&d.virsh(&[
        "snapshot-create-as",
        "vm1",
        "q1",
        "--disk-only",
        "--quiesce",
        "--no-metadata",
    ]));
    assert!(out.contains("Domain snapshot q1 created"), "{out}");
    guest_shell(
        &d,
        "vm1",
        &["--running", "touch /mnt/after && echo T-$((1+1))", "T-2"],
    );
    let addrs = ok(&d.virsh(&["domifaddr", "vm1", "--source", "agent"]));
    assert!(addrs.contains("127.0.0.1/8"), "{addrs}");

    // The guest's clock: set, read back, synced from its RTC again.
    ok(&d.virsh(&["domtime", "vm1", "--time", "1700000000"]));
    let t = ok(&d.virsh(&["domtime", "vm1"]));
    let secs: i64 = t
        .trim()
        .strip_prefix("Time: ")
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("{t}"));
    assert!((1_700_000_000..1_700_000_100).contains(&secs), "{t}");
    ok(&d.virsh(&["domtime", "vm1", "--sync"]));

    ok(&d.virsh(&["set-user-password", "vm1", "root", "s3cret"]));
    ok(&d.virsh(&[
        "set-user-password",
        "vm1",
        "root",
        "$6$salt$hash",
        "--encrypted",
    ]));
    guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            "cat /run/chpasswd.log",
            "plain root:s3cret\r\ncrypted root:$6$salt$hash",
        ],
    );

    let pong = ok(&d.virsh(&["qemu-agent-command", "vm1", r#"{"execute":"guest-ping"}"#]));
    assert_eq!(pong.trim(), r#"{"return":{}}"#);
    let err = fails(&d.virsh(&["qemu-agent-command", "vm1", r#"{"execute":"guest-frob"}"#]));
    assert!(
        err.contains("unable to execute QEMU agent command"),
        "{err}"
    );
    // Commands sent to the agent as written taint the domain, as in libvirt (read-only
    // connections may ask).
    let info = ok(&d.virsh(&["-r", "dominfo", "vm1"]));
    assert!(
        info.contains("tainted: custom guest agent control commands issued\n"),
        "{info}"
    );
    let err = fails(&d.virsh(&["-r", "guestinfo", "vm1"]));
    assert!(err.contains("read only"), "{err}");
    // The agent's addresses need a read-write connection; the ARP table's do not.
    let err = fails(&d.virsh(&["-r", "domifaddr", "vm1", "--source", "agent"]));
    assert!(err.contains("read only access prevents"), "{err}");
    ok(&d.virsh(&["-r", "domifaddr", "vm1", "--source", "arp"]));

    // A VM without the channel has no agent to ask.
    let plain = vireo_tests::guest_xml("vm2");
    ok(&d.virsh(&["define", &write_file(&d, "vm2.xml", &plain)]));
    ok(&d.virsh(&["start", "--paused", "vm2"]));
    let err = fails(&d.virsh(&["domtime", "vm2"]));
    assert!(err.contains("QEMU guest agent is not configured"), "{err}");
    ok(&d.virsh(&["destroy", "vm2"]));

    // Shut down by the agent: the guest powers itself off.
    life.seen.clear();
    ok(&d.virsh(&["shutdown", "vm1", "--mode", "agent"]));
    life.wait_for("vm1 5 0");
    let err = fails(&d.virsh(&["guestinfo", "vm1"]));
    assert!(err.contains("not running"), "{err}");
}

vireo_tests::in_every_layout!(guest_agent_with_virsh);
