//! Internal snapshots with the real virsh on a TCG guest with a qcow2 disk: of the shut-off
//! domain (`qemu-img snapshot`) and of the running guest with its memory (QEMU's snapshot
//! jobs in the VM's shim); the tree (`--tree`, `--parent`, `--roots`, `--leaves`,
//! `snapshot-parent`, `snapshot-current`, `snapshot-info`), `snapshot-dumpxml` (valid for
//! libvirt's schema), revert (running, paused, shut off: the guest's memory and disk are
//! what they were), delete (one, with children, metadata only), redefine, and the refusals.

use vireo_tests::{fails, guest_shell, ok, run_cmd, validate, write_file, Daemon, EventLog};

fn define_with_disk(d: &Daemon, format: &str) -> String {
    vireo_tests::define_with_disk(d, &format!("vm1.{format}"), format)
}

fn disk_head(d: &Daemon, img: &str) -> String {
    vireo_tests::image_head(d, img, "qcow2")
}

fn state(d: &Daemon) -> String {
    ok(&d.virsh(&["domstate", "--reason", "vm1"]))
        .trim()
        .to_string()
}

fn names(d: &Daemon, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["snapshot-list", "vm1", "--name"];
    args.extend_from_slice(extra);
    ok(&d.virsh(&args))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

fn snapshots_with_virsh(layout: vireo_tests::Layout) {
    let d = Daemon::start_in(layout);
    let img = define_with_disk(&d, "qcow2");

    // Of the shut-off domain: the disk only.
    let out = ok(&d.virsh(&[
        "snapshot-create-as",
        "vm1",
        "off1",
        "--description",
        "before boot",
    ]));
    assert!(out.contains("Domain snapshot off1 created"), "{out}");
    let tags = ok(&run_cmd("qemu-img", &["snapshot", "-l", &img]));
    assert!(tags.contains("off1"), "{tags}");

    // Of the running guest: memory and disk. The guest leaves a mark in each first.
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let mut ev = EventLog::start(&d);
    guest_shell(
        &d,
        "vm1",
        &[
            "--resume",
            "echo MARK-$((6*7)) > /tmp/mark; printf DISKMARK | dd of=/dev/vda conv=fsync 2>/dev/null; echo W-$((1+1))",
            "W-2",
        ],
    );
    ok(&d.virsh(&["snapshot-create-as", "vm1", "run1"]));
    assert_eq!(state(&d), "running (unpaused)");
    // The snapshot was the VM's job: its statistics stay until read (or kept).
    let done = ok(&d.virsh(&["domjobinfo", "vm1", "--completed", "--keep-completed"]));
    assert!(
        done.contains("Completed") && done.contains("Snapshot"),
        "{done}"
    );
    ok(&d.virsh(&["domjobinfo", "vm1", "--completed"]));
    let none = ok(&d.virsh(&["domjobinfo", "vm1", "--completed"]));
    assert!(none.contains("None"), "{none}");
    let tags = ok(&run_cmd("qemu-img", &["snapshot", "-U", "-l", &img]));
    assert!(tags.contains("run1"), "{tags}");
    // The guest went on, and changes both marks.
    guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            "echo OTHER > /tmp/mark; printf XXXXXXXX | dd of=/dev/vda conv=fsync 2>/dev/null; echo W-$((1+2))",
            "W-3",
        ],
    );

    // The tree and what virsh shows of it.
    assert_eq!(
        ok(&d.virsh(&["snapshot-current", "--name", "vm1"])).trim(),
        "run1"
    );
    assert_eq!(
        ok(&d.virsh(&["snapshot-parent", "vm1", "run1"])).trim(),
        "off1"
    );
    let tree = ok(&d.virsh(&["snapshot-list", "vm1", "--tree"]));
    assert!(tree.contains("off1\n  |\n  +- run1"), "{tree}");
    let info = ok(&d.virsh(&["snapshot-info", "vm1", "run1"]));
    for want in [
        "State:          running",
        "Location:       internal",
        "Current:        yes",
        "Parent:         off1",
    ] {
        assert!(info.contains(want), "{want}: {info}");
    }
    let list = ok(&d.virsh(&["snapshot-list", "vm1"]));
    assert!(list.contains("shutoff"), "{list}");
    assert_eq!(names(&d, &["--roots"]), ["off1"]);
    assert_eq!(names(&d, &["--leaves"]), ["run1"]);
    assert_eq!(names(&d, &["--inactive"]), ["off1"]);
    assert_eq!(names(&d, &["--active"]), ["run1"]);
    let xml = ok(&d.virsh(&["snapshot-dumpxml", "vm1", "off1"]));
    assert!(
        xml.contains("<description>before boot</description>"),
        "{xml}"
    );
    assert!(xml.contains("<memory snapshot='no'/>"), "{xml}");
    assert!(
        xml.contains("<disk name='vda' snapshot='internal'/>"),
        "{xml}"
    );
    validate(&xml, "domainsnapshot", &d.root);
    let xml = ok(&d.virsh(&["snapshot-dumpxml", "vm1", "run1"]));
    assert!(xml.contains("<state>running</state>"), "{xml}");
    assert!(xml.contains("<memory snapshot='internal'/>"), "{xml}");
    validate(&xml, "domainsnapshot", &d.root);

    // Revert: the guest is back where it was, memory and disk, running.
    ev.seen.clear();
    ok(&d.virsh(&["snapshot-revert", "vm1", "run1"]));
    // SUSPENDED then RESUMED, FROM_SNAPSHOT.
    ev.wait_for("vm1 3 5");
    ev.wait_for("vm1 4 2");
    assert_eq!(state(&d), "running (from snapshot)");
    guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            "cat /tmp/mark; head -c 8 /dev/vda; echo",
            "MARK-42\r\nDISKMARK",
        ],
    );
    // Paused when asked.
    ok(&d.virsh(&["snapshot-revert", "vm1", "run1", "--paused"]));
    assert_eq!(state(&d), "paused (from snapshot)");

    // A new snapshot is run1's child; deleting run1 moves it up to off1.
    ok(&d.virsh(&["snapshot-create-as", "vm1", "run2"]));
    assert_eq!(
        ok(&d.virsh(&["snapshot-parent", "vm1", "run2"])).trim(),
        "run1"
    );
    ok(&d.virsh(&["snapshot-delete", "vm1", "run1"]));
    assert_eq!(
        ok(&d.virsh(&["snapshot-parent", "vm1", "run2"])).trim(),
        "off1"
    );
    let tags = ok(&run_cmd("qemu-img", &["snapshot", "-U", "-l", &img]));
    assert!(!tags.contains("run1") && tags.contains("run2"), "{tags}");

    // Back to the shut-off snapshot: the VM stops, the disk is as before the boot.
    ev.seen.clear();
    ok(&d.virsh(&["snapshot-revert", "vm1", "off1"]));
    ev.wait_for("vm1 5 6");
    assert_eq!(state(&d), "shut off (from snapshot)");
    assert_eq!(disk_head(&d, &img), "\0".repeat(8));

    // From shut off to a snapshot with memory: a new QEMU loads it, paused as run2 was.
    ok(&d.virsh(&["snapshot-revert", "vm1", "run2"]));
    assert_eq!(state(&d), "paused (from snapshot)");
    ok(&d.virsh(&["resume", "vm1"]));
    guest_shell(&d, "vm1", &["--running", "cat /tmp/mark", "MARK-42"]);
    ok(&d.virsh(&["destroy", "vm1"]));

    // Redefine (what snapshot-edit and backups of the metadata do), then refusals.
    let saved = ok(&d.virsh(&["snapshot-dumpxml", "vm1", "run2"]));
    ok(&d.virsh(&["snapshot-delete", "vm1", "run2", "--metadata"]));
    let tags = ok(&run_cmd("qemu-img", &["snapshot", "-l", &img]));
    assert!(
        tags.contains("run2"),
        "metadata-only delete kept the image's: {tags}"
    );
    assert_eq!(names(&d, &[]), ["off1"]);
    let f = write_file(&d, "run2.xml", &saved);
    ok(&d.virsh(&["snapshot-create", "vm1", &f, "--redefine", "--current"]));
    assert_eq!(
        ok(&d.virsh(&["snapshot-current", "--name", "vm1"])).trim(),
        "run2"
    );
    let err = fails(&d.virsh(&["snapshot-revert", "vm1", "nope"]));
    assert!(
        err.contains("Domain snapshot not found: no domain snapshot with matching name 'nope'"),
        "{err}"
    );
    let err = fails(&d.virsh(&["snapshot-create-as", "vm1", "off1"]));
    assert!(err.contains("'off1' already exists"), "{err}");
    let err = fails(&d.virsh(&["snapshot-create-as", "vm1", "x", "--disk-only", "--quiesce"]));
    assert!(err.contains("guest agent"), "{err}");
    let bogus = write_file(&d, "bogus.xml", "<domainsnapshot><bogus/></domainsnapshot>");
    let err = fails(&d.virsh(&["snapshot-create", "vm1", &bogus]));
    assert!(
        err.contains("<bogus>") && err.contains("not supported"),
        "{err}"
    );
    let err = fails(&d.virsh(&["snapshot-create-as", "vm1", "a/b"]));
    assert!(err.contains("invalid snapshot name"), "{err}");
    let err = fails(&d.virsh(&["undefine", "vm1"]));
    assert!(
        err.contains("cannot delete inactive domain with 2 snapshots"),
        "{err}"
    );

    // With children: everything goes, from the images too.
    ok(&d.virsh(&["snapshot-delete", "vm1", "off1", "--children"]));
    assert!(names(&d, &[]).is_empty());
    let tags = ok(&run_cmd("qemu-img", &["snapshot", "-l", &img]));
    assert!(!tags.contains("off1") && !tags.contains("run2"), "{tags}");

    // --halt: the snapshot, then the VM stops.
    ok(&d.virsh(&["start", "vm1"]));
    ok(&d.virsh(&["snapshot-create-as", "vm1", "last", "--halt"]));
    assert_eq!(state(&d), "shut off (from snapshot)");
    ok(&d.virsh(&["undefine", "vm1", "--snapshots-metadata"]));
}

vireo_tests::in_every_layout!(snapshots_with_virsh);

/// A raw disk cannot hold an internal snapshot: refused, nothing made.
#[test]
fn raw_disks_are_refused() {
    let d = Daemon::start();
    define_with_disk(&d, "raw");
    let err = fails(&d.virsh(&["snapshot-create-as", "vm1", "s"]));
    assert!(
        err.contains("internal snapshot for disk vda unsupported for storage type raw"),
        "{err}"
    );
    assert!(names(&d, &[]).is_empty());
    ok(&d.virsh(&["undefine", "vm1"]));
}

/// A transient domain's snapshots go with it: started again from the same XML, it has
/// none.
#[test]
fn a_transient_domains_snapshots_go_with_it() {
    let d = Daemon::start();
    define_with_disk(&d, "qcow2");
    let xml = ok(&d.virsh(&["dumpxml", "vm1"]));
    ok(&d.virsh(&["undefine", "vm1"]));
    let f = write_file(&d, "t.xml", &xml);
    ok(&d.virsh(&["create", "--paused", &f]));
    ok(&d.virsh(&["snapshot-create-as", "vm1", "t2"]));
    assert_eq!(names(&d, &[]), ["t2"]);
    ok(&d.virsh(&["destroy", "vm1"]));
    ok(&d.virsh(&["create", "--paused", &f]));
    assert!(names(&d, &[]).is_empty());
    ok(&d.virsh(&["destroy", "vm1"]));
}

/// External disk-only snapshots: the running guest goes on in an overlay while its image
/// keeps the snapshot; a revert puts a new overlay on that image; of a shut-off domain too,
/// with the overlay named or reused.
#[test]
fn external_disk_only_snapshots() {
    let d = Daemon::start_in(vireo_tests::Layout::Modular);
    let img = define_with_disk(&d, "qcow2");
    let root = d.root.to_str().expect("utf-8").to_string();
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let write = |data: &str, done: &str| {
        format!("printf {data} | dd of=/dev/vda conv=fsync 2>/dev/null; echo {done}-$((1+1))")
    };
    guest_shell(&d, "vm1", &["--resume", &write("DISKMARK", "A"), "A-2"]);

    ok(&d.virsh(&["snapshot-create-as", "vm1", "ext1", "--disk-only"]));
    let overlay = format!("{root}/vm1.ext1");
    let blk = ok(&d.virsh(&["domblklist", "vm1"]));
    assert!(blk.contains(&overlay), "{blk}");
    let xml = ok(&d.virsh(&["snapshot-dumpxml", "vm1", "ext1"]));
    assert!(xml.contains("<state>disk-snapshot</state>"), "{xml}");
    assert!(
        xml.contains(&format!("<source file='{overlay}'/>")),
        "{xml}"
    );
    validate(&xml, "domainsnapshot", &d.root);
    assert_eq!(names(&d, &["--disk-only", "--external"]), ["ext1"]);
    // The persistent definition follows.
    let inactive = ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]));
    assert!(inactive.contains(&overlay), "{inactive}");

    // The guest's writes go to the overlay; the image keeps the snapshot.
    guest_shell(&d, "vm1", &["--running", &write("NEWDATA1", "B"), "B-2"]);
    assert_eq!(disk_head(&d, &img), "DISKMARK");
    assert_eq!(disk_head(&d, &overlay), "NEWDATA1");
    let chain = ok(&run_cmd("qemu-img", &["info", "-U", &overlay]));
    assert!(chain.contains(&format!("backing file: {img}")), "{chain}");

    // Revert: a new overlay on the snapshot's image; the guest reads what it held.
    ok(&d.virsh(&["snapshot-revert", "vm1", "ext1", "--paused"]));
    let blk = ok(&d.virsh(&["domblklist", "vm1"]));
    assert!(blk.contains(&format!("{root}/vm1.ext1-")), "{blk}");
    guest_shell(
        &d,
        "vm1",
        &["--resume", "head -c 8 /dev/vda; echo", "DISKMARK"],
    );
    ok(&d.virsh(&["destroy", "vm1"]));

    // Of the shut-off domain, with the overlay named, then reusing one made beforehand.
    let named = format!("{root}/named.qcow2");
    ok(&d.virsh(&[
        "snapshot-create-as",
        "vm1",
        "ext2",
        "--disk-only",
        "--diskspec",
        &format!("vda,file={named}"),
    ]));
    let inactive = ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]));
    assert!(inactive.contains(&named), "{inactive}");
    assert!(
        ok(&d.virsh(&["snapshot-list", "vm1"])).contains("shutoff"),
        "offline external snapshot state"
    );
    let err = fails(&d.virsh(&[
        "snapshot-create-as",
        "vm1",
        "ext3",
        "--disk-only",
        "--diskspec",
        &format!("vda,file={img}"),
    ]));
    assert!(err.contains("already exists"), "{err}");
    let reused = format!("{root}/reused.qcow2");
    ok(&run_cmd(
        "qemu-img",
        &[
            "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", &named, &reused,
        ],
    ));
    ok(&d.virsh(&[
        "snapshot-create-as",
        "vm1",
        "ext3",
        "--disk-only",
        "--reuse-external",
        "--diskspec",
        &format!("vda,file={reused}"),
    ]));
    let err = fails(&d.virsh(&[
        "snapshot-create-as",
        "vm1",
        "mix",
        "--diskspec",
        "vda,snapshot=internal",
        "--disk-only",
    ]));
    assert!(err.contains("mixing internal and external"), "{err}");
    assert_eq!(
        ok(&d.virsh(&["snapshot-parent", "vm1", "ext3"])).trim(),
        "ext2"
    );
    // Deleting an external snapshot merges its overlay into the image under it: not for
    // one the domain was reverted away from (its overlay is in no chain); the metadata
    // can go.
    let err = fails(&d.virsh(&["snapshot-delete", "vm1", "ext1"]));
    assert!(
        err.contains("no longer runs on the snapshot's overlay"),
        "{err}"
    );
    ok(&d.virsh(&["snapshot-delete", "vm1", "ext1", "--metadata"]));
    ok(&d.virsh(&["undefine", "vm1", "--snapshots-metadata"]));
}

/// Deleting external snapshots, as libvirt 9 does: the overlay each one started is
/// committed into the image it kept and removed — on the running guest (the older one
/// committed under the newer, then the newer by an active commit and a pivot; the guest's
/// data all ends in its original image) and on the shut-off domain (`qemu-img commit`).
#[test]
fn external_snapshots_are_deleted_into_their_images() {
    let d = Daemon::start();
    let img = define_with_disk(&d, "qcow2");
    let root = d.root.to_str().expect("utf-8").to_string();
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let write = |data: &str, done: &str| {
        format!("printf {data} | dd of=/dev/vda conv=fsync 2>/dev/null; echo {done}-$((1+1))")
    };
    guest_shell(&d, "vm1", &["--resume", &write("BASEDATA", "A"), "A-2"]);
    ok(&d.virsh(&["snapshot-create-as", "vm1", "e1", "--disk-only"]));
    let o1 = format!("{root}/vm1.e1");
    guest_shell(&d, "vm1", &["--running", &write("AFTER001", "B"), "B-2"]);
    ok(&d.virsh(&["snapshot-create-as", "vm1", "e2", "--disk-only"]));
    let o2 = format!("{root}/vm1.e2");
    guest_shell(&d, "vm1", &["--running", &write("AFTER002", "C"), "C-2"]);

    // The older one: its overlay goes into the image under it, under the newer overlay.
    ok(&d.virsh(&["snapshot-delete", "vm1", "e1"]));
    assert!(!std::path::Path::new(&o1).exists(), "{o1} is still there");
    assert_eq!(disk_head(&d, &img), "AFTER001");
    let chain = ok(&run_cmd("qemu-img", &["info", "-U", &o2]));
    assert!(chain.contains(&format!("backing file: {img}")), "{chain}");
    assert_eq!(names(&d, &[]), ["e2"]);
    // The newer one, whose overlay the guest runs on: an active commit, then the pivot.
    ok(&d.virsh(&["snapshot-delete", "vm1", "e2"]));
    assert!(!std::path::Path::new(&o2).exists(), "{o2} is still there");
    let blk = ok(&d.virsh(&["domblklist", "vm1"]));
    assert!(blk.contains(&img), "{blk}");
    assert!(ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]))
        .contains(&format!("<source file='{img}'/>")));
    guest_shell(
        &d,
        "vm1",
        &["--running", "head -c 8 /dev/vda; echo", "AFTER002"],
    );
    assert!(names(&d, &[]).is_empty());
    ok(&d.virsh(&["destroy", "vm1"]));
    assert_eq!(disk_head(&d, &img), "AFTER002");

    // Shut off: the definition's overlay, committed with qemu-img.
    ok(&d.virsh(&["snapshot-create-as", "vm1", "e3", "--disk-only"]));
    let o3 = format!("{root}/vm1.e3");
    assert!(ok(&d.virsh(&["dumpxml", "--inactive", "vm1"])).contains(&o3));
    ok(&d.virsh(&["snapshot-delete", "vm1", "e3"]));
    assert!(!std::path::Path::new(&o3).exists(), "{o3} is still there");
    assert!(ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]))
        .contains(&format!("<source file='{img}'/>")));
    assert!(names(&d, &[]).is_empty());
}

/// External snapshots with the memory state (`--memspec file=…,snapshot=external`): the
/// guest's memory goes into the file (a save image, 0600) while its disks go on in
/// overlays, at one instant; the guest runs on. A revert starts it from that file on new
/// overlays over the snapshot's images: memory and disk are what they were. A `--live` one
/// too; deleting one commits its overlay and removes its memory file; and the refusals.
#[test]
fn external_snapshots_with_memory() {
    use std::os::unix::fs::PermissionsExt;
    let d = Daemon::start_in(vireo_tests::Layout::Modular);
    let img = define_with_disk(&d, "qcow2");
    let root = d.root.to_str().expect("utf-8").to_string();
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    guest_shell(
        &d,
        "vm1",
        &[
            "--resume",
            "echo MARK-$((6*7)) > /tmp/mark; printf DISKMARK | dd of=/dev/vda conv=fsync 2>/dev/null; echo W-$((1+1))",
            "W-2",
        ],
    );

    let mem = format!("{root}/mem1.save");
    ok(&d.virsh(&[
        "snapshot-create-as",
        "vm1",
        "mem1",
        "--memspec",
        &format!("file={mem},snapshot=external"),
    ]));
    assert_eq!(state(&d), "running (unpaused)");
    let meta = std::fs::metadata(&mem).expect("the memory file");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(meta.len() > 1 << 20, "{}", meta.len());
    let overlay = format!("{root}/vm1.mem1");
    let blk = ok(&d.virsh(&["domblklist", "vm1"]));
    assert!(blk.contains(&overlay), "{blk}");
    let xml = ok(&d.virsh(&["snapshot-dumpxml", "vm1", "mem1"]));
    assert!(xml.contains("<state>running</state>"), "{xml}");
    assert!(
        xml.contains(&format!("<memory snapshot='external' file='{mem}'/>")),
        "{xml}"
    );
    validate(&xml, "domainsnapshot", &d.root);
    assert_eq!(names(&d, &["--external", "--active"]), ["mem1"]);
    let info = ok(&d.virsh(&["snapshot-info", "vm1", "mem1"]));
    assert!(info.contains("Location:       external"), "{info}");

    // The guest goes on and changes both marks.
    guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            "echo OTHER > /tmp/mark; printf XXXXXXXX | dd of=/dev/vda conv=fsync 2>/dev/null; echo W-$((1+2))",
            "W-3",
        ],
    );
    assert_eq!(disk_head(&d, &img), "DISKMARK");

    // Revert: from the memory file, on a new overlay over the snapshot's image.
    let mut ev = EventLog::start(&d);
    ok(&d.virsh(&["snapshot-revert", "vm1", "mem1"]));
    // STOPPED then STARTED, FROM_SNAPSHOT.
    ev.wait_for("vm1 5 6");
    ev.wait_for("vm1 2 3");
    assert_eq!(state(&d), "running (from snapshot)");
    let blk = ok(&d.virsh(&["domblklist", "vm1"]));
    assert!(blk.contains(&format!("{root}/vm1.mem1-")), "{blk}");
    guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            "cat /tmp/mark; head -c 8 /dev/vda; echo",
            "MARK-42\r\nDISKMARK",
        ],
    );
    // Paused when asked.
    ok(&d.virsh(&["snapshot-revert", "vm1", "mem1", "--paused"]));
    assert_eq!(state(&d), "paused (from snapshot)");
    ok(&d.virsh(&["resume", "vm1"]));

    // A live one (the guest runs while its memory is written); deleting it commits its
    // overlay into the image under it and removes the memory file.
    let live = format!("{root}/live1.save");
    ok(&d.virsh(&[
        "snapshot-create-as",
        "vm1",
        "live1",
        "--live",
        "--memspec",
        &format!("file={live}"),
    ]));
    assert_eq!(state(&d), "running (unpaused)");
    assert!(std::path::Path::new(&live).exists());
    ok(&d.virsh(&["snapshot-delete", "vm1", "live1"]));
    assert!(!std::path::Path::new(&live).exists());

    // Refusals.
    let err = fails(&d.virsh(&[
        "snapshot-create-as",
        "vm1",
        "again",
        "--memspec",
        &format!("file={mem},snapshot=external"),
    ]));
    assert!(err.contains("already exists"), "{err}");
    let err = fails(&d.virsh(&["snapshot-create-as", "vm1", "x", "--live"]));
    assert!(err.contains("only during full system snapshots"), "{err}");
    ok(&d.virsh(&["destroy", "vm1"]));
    let err = fails(&d.virsh(&[
        "snapshot-create-as",
        "vm1",
        "off",
        "--memspec",
        &format!("file={root}/off.save"),
    ]));
    assert!(err.contains("memory state cannot be saved"), "{err}");
    ok(&d.virsh(&["undefine", "vm1", "--snapshots-metadata"]));
}
