//! Block jobs with the real virsh on a TCG guest whose disk is a qcow2 chain: an active
//! commit with pivot (the guest's writes end up in the base image; the persistent
//! definition follows), a commit of a middle image, a pull, a copy with pivot and one
//! finished without, a throttled copy watched with `blockjob --info` and aborted, the
//! BLOCK_JOB and BLOCK_JOB_2 events, and the refusals.

use vireo_tests::{fails, guest_shell, ok, run_cmd, write_file, Daemon, EventLog, Layout};

fn head(d: &Daemon, img: &str, fmt: &str) -> String {
    vireo_tests::image_head(d, img, fmt)
}

fn source(d: &Daemon) -> String {
    let out = ok(&d.virsh(&["domblklist", "vm1"]));
    out.lines()
        .find_map(|l| l.trim().strip_prefix("vda"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The guest reads its disk's first 8 bytes past its page cache.
const READ: &str = "sync; echo 3 > /proc/sys/vm/drop_caches; head -c 8 /dev/vda; echo";

fn write(data: &str, done: &str) -> String {
    format!("printf {data} | dd of=/dev/vda conv=fsync 2>/dev/null; echo {done}-$((1+1))")
}

fn block_jobs_with_virsh(layout: Layout) {
    let d = Daemon::start_in(layout);
    let root = d.root.to_str().expect("utf-8").to_string();
    let base = vireo_tests::define_with_disk(&d, "base.qcow2", "qcow2");
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let mut ev = EventLog::start_devices(&d);
    // 4 MiB of data after the mark, for the throttled copy below.
    guest_shell(
        &d,
        "vm1",
        &[
            "--resume",
            "dd if=/dev/urandom of=/dev/vda bs=1M seek=1 count=4 conv=fsync 2>/dev/null; echo R-$((1+1))",
            "R-2",
            &write("BASEMARK", "A"),
            "A-2",
        ],
    );

    // Active commit: an overlay, the guest writes into it, the commit brings that down.
    ok(&d.virsh(&[
        "snapshot-create-as",
        "vm1",
        "s1",
        "--disk-only",
        "--no-metadata",
    ]));
    let top = source(&d);
    assert_ne!(top, base);
    guest_shell(&d, "vm1", &["--running", &write("COMMITED", "B"), "B-2"]);
    let err = fails(&d.virsh(&["blockcommit", "vm1", "vda", "--wait"]));
    assert!(err.contains("requires active flag"), "{err}");
    let out = ok(&d.virsh(&[
        "blockcommit",
        "vm1",
        "vda",
        "--active",
        "--pivot",
        "--wait",
        "--delete",
    ]));
    assert!(out.contains("Successfully pivoted"), "{out}");
    assert_eq!(source(&d), base);
    guest_shell(&d, "vm1", &["--running", READ, "COMMITED"]);
    // READY, then COMPLETED, of an active commit (4), by target and by image.
    ev.wait_for("vm1 block-job-2 vda 4 3");
    ev.wait_for("vm1 block-job-2 vda 4 0");
    ev.wait_for(&format!("vm1 block-job {base} 4 0"));
    // --delete: the overlay committed away is gone.
    assert!(!std::path::Path::new(&top).exists(), "{top} is still there");
    let inactive = ok(&d.virsh(&["dumpxml", "--inactive", "vm1"]));
    assert!(
        inactive.contains(&format!("<source file='{base}'/>")),
        "{inactive}"
    );

    // Two overlays; the middle one is committed into the base (COMMIT, 3), then the
    // top pulls the rest up (PULL, 1).
    ok(&d.virsh(&[
        "snapshot-create-as",
        "vm1",
        "s2",
        "--disk-only",
        "--no-metadata",
    ]));
    let mid = source(&d);
    guest_shell(&d, "vm1", &["--running", &write("MIDDLE01", "C"), "C-2"]);
    ok(&d.virsh(&[
        "snapshot-create-as",
        "vm1",
        "s3",
        "--disk-only",
        "--no-metadata",
    ]));
    let top = source(&d);
    ok(&d.virsh(&[
        "blockcommit",
        "vm1",
        "vda",
        "--top",
        &mid,
        "--base",
        &base,
        "--wait",
        "--delete",
    ]));
    ev.wait_for("vm1 block-job-2 vda 3 0");
    assert!(!std::path::Path::new(&mid).exists(), "{mid} is still there");
    let chain = ok(&run_cmd("qemu-img", &["info", "-U", &top]));
    assert!(chain.contains(&format!("backing file: {base}")), "{chain}");
    ok(&d.virsh(&["blockpull", "vm1", "vda", "--wait"]));
    ev.wait_for("vm1 block-job-2 vda 1 0");
    guest_shell(&d, "vm1", &["--running", READ, "MIDDLE01"]);

    // A copy with pivot, and one finished without (the disk stays where it was).
    let copy = format!("{root}/copy.qcow2");
    let out = ok(&d.virsh(&[
        "blockcopy",
        "vm1",
        "vda",
        &copy,
        "--format",
        "qcow2",
        "--pivot",
        "--wait",
        "--transient-job",
    ]));
    assert!(out.contains("Successfully pivoted"), "{out}");
    assert_eq!(source(&d), copy);
    ev.wait_for("vm1 block-job-2 vda 2 0");
    guest_shell(&d, "vm1", &["--running", &write("COPIED01", "D"), "D-2"]);
    let raw = format!("{root}/copy.raw");
    let xml = write_file(
        &d,
        "dest.xml",
        &format!("<disk type='file'><driver type='raw'/><source file='{raw}'/></disk>"),
    );
    ok(&d.virsh(&[
        "blockcopy",
        "vm1",
        "vda",
        "--xml",
        &xml,
        "--finish",
        "--wait",
        "--transient-job",
    ]));
    assert_eq!(source(&d), copy);

    // Throttled to 1 MiB/s, the copy of 5 MiB is seen going, then aborted.
    let slow = format!("{root}/slow.qcow2");
    ok(&d.virsh(&[
        "blockcopy",
        "vm1",
        "vda",
        &slow,
        "--format",
        "qcow2",
        "--bandwidth",
        "1",
        "--transient-job",
    ]));
    // virsh prints the progress on stderr.
    let o = d.virsh(&["blockjob", "vm1", "vda", "--info"]);
    let progress = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && progress.contains("Block Copy: ["),
        "{progress}"
    );
    let bw = ok(&d.virsh(&["blockjob", "vm1", "vda", "--info", "--bytes"]));
    assert!(bw.contains("Bandwidth limit: 1048576 bytes/s"), "{bw}");
    let err = fails(&d.virsh(&["blockjob", "vm1", "vda", "--pivot"]));
    assert!(err.contains("not ready for pivot yet"), "{err}");
    let err = fails(&d.virsh(&[
        "blockcopy",
        "vm1",
        "vda",
        &format!("{root}/other.qcow2"),
        "--transient-job",
    ]));
    assert!(err.contains("already in active block job"), "{err}");
    ok(&d.virsh(&["blockjob", "vm1", "vda", "--abort"]));
    ev.wait_for("vm1 block-job-2 vda 2 2");
    assert_eq!(source(&d), copy);
    let info = ok(&d.virsh(&["blockjob", "vm1", "vda", "--info"]));
    assert!(info.contains("No current block job"), "{info}");
    let err = fails(&d.virsh(&["blockjob", "vm1", "vdz", "--info"]));
    assert!(err.contains("disk 'vdz' not found"), "{err}");
    ok(&d.virsh(&["destroy", "vm1"]));
    let err = fails(&d.virsh(&["blockpull", "vm1", "vda"]));
    assert!(err.contains("domain is not running"), "{err}");

    // QEMU is gone, its caches written: the images hold what the jobs put there. The
    // commits went down into the base; the pulled image stands alone; the copies hold
    // what the guest wrote.
    assert_eq!(head(&d, &base, "qcow2"), "MIDDLE01");
    let info = ok(&run_cmd("qemu-img", &["info", &top]));
    assert!(!info.contains("backing file"), "{info}");
    assert_eq!(head(&d, &top, "qcow2"), "MIDDLE01");
    assert_eq!(head(&d, &copy, "qcow2"), "COPIED01");
    assert_eq!(head(&d, &raw, "raw"), "COPIED01");
}

vireo_tests::in_every_layout!(block_jobs_with_virsh);

/// `blockcopy --shallow`: only the top image is copied, over the same backing image; the
/// guest reads the base's data through the copy, its writes land in the copy, and a later
/// active commit takes the copy down into the base.
#[test]
fn shallow_copy_keeps_the_backing_chain() {
    let d = Daemon::start();
    let root = d.root.to_str().expect("utf-8").to_string();
    let base = vireo_tests::define_with_disk(&d, "base.qcow2", "qcow2");
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    guest_shell(&d, "vm1", &["--resume", &write("BASEMARK", "A"), "A-2"]);
    ok(&d.virsh(&[
        "snapshot-create-as",
        "vm1",
        "s1",
        "--disk-only",
        "--no-metadata",
    ]));
    let at = |data: &str, done: &str| {
        format!(
            "printf {data} | dd of=/dev/vda bs=512 seek=1 conv=fsync 2>/dev/null; \
             echo {done}-$((1+1))"
        )
    };
    guest_shell(&d, "vm1", &["--running", &at("TOPDATA1", "B"), "B-2"]);
    let shallow = format!("{root}/shallow.qcow2");
    let out = ok(&d.virsh(&[
        "blockcopy",
        "vm1",
        "vda",
        &shallow,
        "--shallow",
        "--pivot",
        "--wait",
        "--transient-job",
    ]));
    assert!(out.contains("Successfully pivoted"), "{out}");
    assert_eq!(source(&d), shallow);
    let info = ok(&run_cmd("qemu-img", &["info", "-U", &shallow]));
    assert!(info.contains(&format!("backing file: {base}")), "{info}");
    // The base's data comes through the copy; the top's was copied.
    let read_at = "sync; echo 3 > /proc/sys/vm/drop_caches; \
                   dd if=/dev/vda bs=512 skip=1 count=1 2>/dev/null | head -c 8; echo";
    guest_shell(
        &d,
        "vm1",
        &["--running", READ, "BASEMARK", read_at, "TOPDATA1"],
    );
    guest_shell(&d, "vm1", &["--running", &write("COPYNEW1", "C"), "C-2"]);
    // The copy goes down into the base: the chain the shim kept is whole.
    let out = ok(&d.virsh(&["blockcommit", "vm1", "vda", "--active", "--pivot", "--wait"]));
    assert!(out.contains("Successfully pivoted"), "{out}");
    assert_eq!(source(&d), base);
    guest_shell(&d, "vm1", &["--running", READ, "COPYNEW1"]);
    ok(&d.virsh(&["destroy", "vm1"]));
    assert_eq!(head(&d, &base, "qcow2"), "COPYNEW1");
}

/// A loop device over a file, removed with it.
struct Loop(String);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .args(["-d", &self.0])
            .status();
    }
}

/// `blockcopy --blockdev`: the copy goes to a block device (a loop device the test made),
/// raw; after the pivot the disk is `<disk type='block'>` on it, in the live and the
/// persistent definition, and the guest reads its data from it.
#[test]
fn copy_to_a_block_device() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: loop devices need root (CI has it)");
        return;
    }
    let d = Daemon::start_in(Layout::Modular);
    vireo_tests::define_with_disk(&d, "src.qcow2", "qcow2");
    let backing = d.root.join("dev.img");
    std::fs::write(&backing, vec![0u8; 64 << 20]).unwrap();
    let dev = ok(&run_cmd(
        "losetup",
        &["-f", "--show", backing.to_str().unwrap()],
    ))
    .trim()
    .to_string();
    let _lo = Loop(dev.clone());
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    guest_shell(&d, "vm1", &["--resume", &write("BLOCKDEV", "A"), "A-2"]);

    // Not a block device: refused.
    let file = d.root.join("plain.img");
    std::fs::write(&file, b"").unwrap();
    let err = fails(&d.virsh(&[
        "blockcopy",
        "vm1",
        "vda",
        file.to_str().unwrap(),
        "--blockdev",
        "--format",
        "raw",
    ]));
    assert!(err.contains("is not a block device"), "{err}");

    ok(&d.virsh(&[
        "blockcopy",
        "vm1",
        "vda",
        &dev,
        "--blockdev",
        "--format",
        "raw",
        "--wait",
        "--pivot",
    ]));
    assert_eq!(source(&d), dev);
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(live.contains("<disk type='block' device='disk'>"), "{live}");
    assert!(live.contains(&format!("<source dev='{dev}'")), "{live}");
    let inactive = ok(&d.virsh(&["dumpxml", "vm1", "--inactive"]));
    assert!(
        inactive.contains(&format!("<source dev='{dev}'")),
        "{inactive}"
    );
    assert_eq!(&std::fs::read(&backing).unwrap()[..8], b"BLOCKDEV");
    guest_shell(&d, "vm1", &["--running", READ, "BLOCKDEV"]);
    ok(&d.virsh(&["destroy", "vm1"]));
}
