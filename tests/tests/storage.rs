//! Storage pools and volumes (`vireo-storaged`, or `vireod`) with the real virsh and
//! python3-libvirt, in every layout.

use std::process::Output;

use rustix::process::Signal;
use vireo_tests::{
    done_then_refused, fails, ok, output_parts, same_as_virsh, validate, Daemon, Layout,
};

/// The `default` pool a fresh daemon has, and the volume commands on it.
fn dir_pool_volumes_with_virsh(layout: Layout) {
    let d = Daemon::start_in(layout);
    let images = d.root.join("var/lib/vireo/images");
    let list = ok(&d.virsh(&["pool-list", "--all"]));
    assert!(list.contains(" default   active   yes"), "{list}");
    let xml = ok(&d.virsh(&["pool-dumpxml", "default"]));
    assert!(
        xml.contains(&format!("<path>{}</path>", images.display())),
        "{xml}"
    );
    validate(&xml, "storagepool", &d.root);

    // raw (sparse) base, qcow2 overlay on it, a copy, a resize, a wipe.
    ok(&d.virsh(&[
        "vol-create-as",
        "default",
        "base.img",
        "64M",
        "--allocation",
        "0",
    ]));
    let base = images.join("base.img");
    let out = ok(&d.virsh(&[
        "vol-create-as",
        "default",
        "top.qcow2",
        "128M",
        "--format",
        "qcow2",
        "--backing-vol",
        base.to_str().unwrap(),
        "--backing-vol-format",
        "raw",
    ]));
    assert!(out.contains("Vol top.qcow2 created"), "{out}");
    let vx = ok(&d.virsh(&["vol-dumpxml", "top.qcow2", "--pool", "default"]));
    assert!(vx.contains("<format type='qcow2'/>"), "{vx}");
    assert!(
        vx.contains(&format!("<path>{}</path>", base.display())),
        "{vx}"
    );
    assert!(
        vx.contains("<capacity unit='bytes'>134217728</capacity>"),
        "{vx}"
    );
    validate(&vx, "storagevol", &d.root);
    // The format comes from the header, not the name.
    std::fs::write(images.join("fake.qcow2"), vec![0u8; 4096]).unwrap();
    ok(&d.virsh(&["pool-refresh", "default"]));
    let fx = ok(&d.virsh(&["vol-dumpxml", "fake.qcow2", "--pool", "default"]));
    assert!(fx.contains("<format type='raw'/>"), "{fx}");

    let vl = ok(&d.virsh(&["vol-list", "default"]));
    for v in ["base.img", "top.qcow2", "fake.qcow2"] {
        assert!(vl.contains(v), "{vl}");
    }
    ok(&d.virsh(&["vol-clone", "top.qcow2", "copy.qcow2", "--pool", "default"]));
    let info = ok(&d.virsh(&["vol-info", "copy.qcow2", "--pool", "default"]));
    assert!(info.contains("Capacity:       128.00 MiB"), "{info}");
    let err = fails(&d.virsh(&["vol-resize", "copy.qcow2", "64M", "--pool", "default"]));
    assert!(err.contains("shrink"), "{err}");
    ok(&d.virsh(&["vol-resize", "copy.qcow2", "256M", "--pool", "default"]));
    let info = ok(&d.virsh(&["vol-info", "copy.qcow2", "--pool", "default"]));
    assert!(info.contains("Capacity:       256.00 MiB"), "{info}");
    ok(&d.virsh(&[
        "vol-resize",
        "base.img",
        "32M",
        "--shrink",
        "--pool",
        "default",
    ]));
    ok(&d.virsh(&["vol-wipe", "copy.qcow2", "--pool", "default"]));
    // The other algorithms are scrub's patterns: the data is gone, the size kept.
    std::fs::write(images.join("fake.qcow2"), vec![0x5au8; 4096]).unwrap();
    ok(&d.virsh(&[
        "vol-wipe",
        "fake.qcow2",
        "--pool",
        "default",
        "--algorithm",
        "nnsa",
    ]));
    let after = std::fs::read(images.join("fake.qcow2")).unwrap();
    assert_eq!(after.len(), 4096);
    assert!(after != vec![0x5au8; 4096], "nnsa changed nothing");
    let err = fails(&d.virsh(&[
        "vol-wipe",
        "base.img",
        "--pool",
        "default",
        "--algorithm",
        "nosuch",
    ]));
    assert!(err.contains("nosuch") || err.contains("algorithm"), "{err}");
    let caps = ok(&d.virsh(&["pool-capabilities"]));
    assert!(caps.contains("<pool type='dir' supported='yes'>"), "{caps}");
    assert!(
        caps.contains("<pool type='iscsi' supported='no'/>"),
        "{caps}"
    );
    validate(&caps, "storagepoolcaps", &d.root);
    assert_eq!(
        ok(&d.virsh(&["vol-pool", images.join("copy.qcow2").to_str().unwrap()])).trim(),
        "default"
    );

    // Bad input: clear errors, nothing made, the daemon goes on.
    let err = fails(&d.virsh(&["vol-create-as", "default", "../escape", "1M"]));
    assert!(err.contains("cannot contain '/'"), "{err}");
    let err = fails(&d.virsh(&["vol-create-as", "default", "huge", "100000T"]));
    assert!(err.contains("Not enough space"), "{err}");
    let err = fails(&d.virsh(&["vol-create-as", "default", "base.img", "1M"]));
    assert!(err.contains("exists already"), "{err}");
    let err = fails(&d.virsh(&["vol-info", "nope", "--pool", "default"]));
    assert!(err.contains("Storage volume not found"), "{err}");
    // A target path in the volume's XML does not put it outside the pool.
    let outside = d.root.join("outside.img");
    let vx = d.root.join("outside.xml");
    std::fs::write(
        &vx,
        format!(
            "<volume><name>inside.img</name><capacity>1048576</capacity>\
             <target><path>{}</path></target></volume>",
            outside.display()
        ),
    )
    .unwrap();
    ok(&d.virsh(&["vol-create", "default", vx.to_str().unwrap()]));
    assert!(!outside.exists());
    assert!(images.join("inside.img").exists());
    ok(&d.virsh(&["vol-delete", "inside.img", "--pool", "default"]));
    assert!(!images.join("../escape").exists());
    assert!(!images.join("huge").exists());

    for v in ["copy.qcow2", "top.qcow2", "base.img", "fake.qcow2"] {
        ok(&d.virsh(&["vol-delete", v, "--pool", "default"]));
    }
    let vl = ok(&d.virsh(&["vol-list", "default"]));
    assert!(!vl.contains("base.img"), "{vl}");
}

/// A pool's whole life: define, build, start, autostart, info, stop, delete, undefine;
/// and one created transient.
fn pool_lifecycle_with_virsh(layout: Layout) {
    let mut d = Daemon::start_in(layout);
    let target = d.root.join("pool-p");
    let t = target.to_str().unwrap();
    assert!(ok(&d.virsh(&["pool-define-as", "p", "dir", "--target", t])).contains("Pool p defined"));
    let err = fails(&d.virsh(&["pool-start", "p"]));
    assert!(err.contains("build the pool first"), "{err}");
    ok(&d.virsh(&["pool-build", "p"]));
    assert!(target.is_dir());
    ok(&d.virsh(&["pool-start", "p"]));
    ok(&d.virsh(&["pool-autostart", "p"]));
    let info = ok(&d.virsh(&["pool-info", "p"]));
    assert!(info.contains("State:          running"), "{info}");
    assert!(info.contains("Autostart:      yes"), "{info}");
    ok(&d.virsh(&["vol-create-as", "p", "v", "1M"]));
    let err = fails(&d.virsh(&["pool-undefine", "p"]));
    assert!(err.contains("still active"), "{err}");
    // A second pool on the same directory is refused.
    let err = fails(&d.virsh(&["pool-define-as", "q", "dir", "--target", t]));
    assert!(err.contains("conflict"), "{err}");
    let err = fails(&d.virsh(&[
        "pool-define-as",
        "r",
        "iscsi",
        "--source-host",
        "h",
        "--target",
        "/dev/disk/by-path",
    ]));
    assert!(err.contains("not supported"), "{err}");

    // Definitions, autostart and what was active survive a kill -9 of the daemon.
    d.kill9();
    d.restart();
    let list = ok(&d.virsh(&["pool-list", "--all"]));
    assert!(list.contains(" p         active   yes"), "{list}");
    assert!(ok(&d.virsh(&["vol-list", "p"])).contains(" v "));

    ok(&d.virsh(&["vol-delete", "v", "--pool", "p"]));
    // Stopped, then a new daemon: autostart starts it again.
    ok(&d.virsh(&["pool-destroy", "p"]));
    d.terminate();
    d.restart();
    let info = ok(&d.virsh(&["pool-info", "p"]));
    assert!(
        info.contains("State:          running"),
        "autostart at daemon start: {info}"
    );
    ok(&d.virsh(&["pool-autostart", "p", "--disable"]));
    ok(&d.virsh(&["pool-destroy", "p"]));
    let info = ok(&d.virsh(&["pool-info", "p"]));
    assert!(info.contains("State:          inactive"), "{info}");
    ok(&d.virsh(&["pool-delete", "p"]));
    assert!(!target.exists());
    ok(&d.virsh(&["pool-undefine", "p"]));
    assert!(!ok(&d.virsh(&["pool-list", "--all"])).contains(" p "));

    let tt = d.root.join("pool-t");
    ok(&d.virsh(&[
        "pool-create-as",
        "t",
        "dir",
        "--target",
        tt.to_str().unwrap(),
        "--build",
    ]));
    let list = ok(&d.virsh(&["pool-list", "--transient"]));
    assert!(list.contains(" t "), "{list}");
    ok(&d.virsh(&["pool-destroy", "t"]));
    assert!(!ok(&d.virsh(&["pool-list", "--all"])).contains(" t "));
}

/// A 64 MiB file with holes goes up and comes back as a sparse stream: the same bytes,
/// and sparse on both ends; and without --sparse, the same bytes too.
/// A 64 MiB file at `path` with holes: four runs of data (the first and last bytes among
/// them) between them.
fn holey_file(path: &std::path::Path) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::create(path).unwrap();
    f.set_len(64 << 20).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for (at, len) in [
        (0u64, 300_000usize),
        (5 << 20, 1 << 20),
        (33 << 20, 12_345),
        ((64 << 20) - 4096, 4096),
    ] {
        let data: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        f.write_all_at(&data, at).unwrap();
    }
}

/// `p` is 64 MiB long and holds less than 8 MiB of blocks.
fn sparse(p: &std::path::Path) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).unwrap();
    assert_eq!(m.len(), 64 << 20, "{}", p.display());
    assert!(
        m.blocks() * 512 < 8 << 20,
        "{} is not sparse: {} blocks",
        p.display(),
        m.blocks()
    );
}

/// `a` and `b` hold the same bytes.
#[track_caller]
fn same_bytes(a: &std::path::Path, b: &std::path::Path) {
    assert!(
        std::fs::read(a).unwrap() == std::fs::read(b).unwrap(),
        "{} and {} differ",
        a.display(),
        b.display()
    );
}

fn volume_upload_and_download(layout: Layout) {
    let d = Daemon::start_in(layout);
    let src = d.root.join("src.img");
    holey_file(&src);
    sparse(&src);
    let vol = d.root.join("var/lib/vireo/images/up.img");
    ok(&d.virsh(&[
        "vol-create-as",
        "default",
        "up.img",
        "64M",
        "--allocation",
        "0",
    ]));
    let s = src.to_str().unwrap();
    ok(&d.virsh(&["vol-upload", "up.img", s, "--pool", "default", "--sparse"]));
    assert!(
        std::fs::read(&vol).unwrap() == std::fs::read(&src).unwrap(),
        "upload differs"
    );
    sparse(&vol);
    let info = ok(&d.virsh(&["vol-info", "up.img", "--pool", "default"]));
    assert!(info.contains("Capacity:       64.00 MiB"), "{info}");

    let back = d.root.join("back.img");
    ok(&d.virsh(&[
        "vol-download",
        "up.img",
        back.to_str().unwrap(),
        "--pool",
        "default",
        "--sparse",
    ]));
    assert!(
        std::fs::read(&back).unwrap() == std::fs::read(&src).unwrap(),
        "download differs"
    );
    sparse(&back);

    // Dense both ways, into a volume that had other data: the same bytes.
    std::fs::write(&vol, vec![0xaau8; 64 << 20]).unwrap();
    ok(&d.virsh(&["vol-upload", "up.img", s, "--pool", "default"]));
    assert!(
        std::fs::read(&vol).unwrap() == std::fs::read(&src).unwrap(),
        "dense upload differs"
    );
    let dense = d.root.join("dense.img");
    ok(&d.virsh(&[
        "vol-download",
        "up.img",
        dense.to_str().unwrap(),
        "--pool",
        "default",
    ]));
    assert!(
        std::fs::read(&dense).unwrap() == std::fs::read(&src).unwrap(),
        "dense download differs"
    );
    // A part of it: offset and length.
    let part = d.root.join("part.img");
    ok(&d.virsh(&[
        "vol-download",
        "up.img",
        part.to_str().unwrap(),
        "--pool",
        "default",
        "--offset",
        "5242880",
        "--length",
        "1048576",
    ]));
    assert!(std::fs::read(&part).unwrap() == std::fs::read(&src).unwrap()[5 << 20..6 << 20]);
    let err = fails(&d.virsh(&["vol-upload", "nope", s, "--pool", "default"]));
    assert!(err.contains("Storage volume not found"), "{err}");
}

/// Flow control: a client that stops reading a download (virsh stopped with SIGSTOP) makes
/// no daemon on the way (storaged, the proxy, vireod) buffer the volume: their memory
/// stays put while the client sleeps, and the download completes once it wakes.
fn a_stopped_reader_is_not_buffered_for(layout: Layout) {
    const SIZE: u64 = 192 << 20;
    let d = Daemon::start_in(layout);
    let vol = d.root.join("var/lib/vireo/images/big.img");
    ok(&d.virsh(&["vol-create-as", "default", "big.img", "192M"]));
    std::fs::write(&vol, vec![0x5au8; SIZE as usize]).unwrap();
    let out = d.root.join("big.out");
    /// Kills the stopped virsh if the test fails before it is woken.
    struct Reader(std::process::Child);
    impl Drop for Reader {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut virsh = Reader(
        std::process::Command::new("virsh")
            .args(["-c", &d.uri(), "vol-download", "big.img"])
            .arg(&out)
            .args(["--pool", "default"])
            .spawn()
            .unwrap(),
    );
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let t0 = std::time::Instant::now();
    while size(&out) < 8 << 20 {
        assert!(t0.elapsed().as_secs() < 60, "the download does not start");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    vireo_tests::signal(virsh.0.id() as i32, Signal::STOP);
    let before = d.rss();
    // Nothing signals "the daemons would have buffered by now": give them the time the
    // whole volume takes to read here (well under a second), several times over.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let after = d.rss();
    let written = size(&out);
    assert!(
        after < before + (32 << 20),
        "the daemons grew from {before} to {after} bytes while the reader slept"
    );
    assert!(
        written < SIZE,
        "the whole volume went out to a stopped reader"
    );
    vireo_tests::signal(virsh.0.id() as i32, Signal::CONT);
    assert!(virsh.0.wait().unwrap().success());
    assert_eq!(size(&out), SIZE);
    assert!(std::fs::read(&out).unwrap().iter().all(|&b| b == 0x5a));
}

/// A TCG guest boots with a disk that is a qcow2 overlay volume on a raw base volume: the
/// QEMU driver asks the storage driver (through its public API) where the volume is, and
/// QEMU is told the format of both layers. The guest reads the base's bytes through the
/// overlay. A disk naming a missing volume or pool starts nothing.
fn guest_boots_from_a_qcow2_overlay_volume(layout: Layout) {
    let d = Daemon::start_in(layout);
    let images = d.root.join("var/lib/vireo/images");
    ok(&d.virsh(&["vol-create-as", "default", "base.img", "16M"]));
    let marker = d.root.join("marker");
    std::fs::write(&marker, b"VIREOBASEMARKER0").unwrap();
    ok(&d.virsh(&[
        "vol-upload",
        "base.img",
        marker.to_str().unwrap(),
        "--pool",
        "default",
    ]));
    ok(&d.virsh(&[
        "vol-create-as",
        "default",
        "top.qcow2",
        "32M",
        "--format",
        "qcow2",
        "--backing-vol",
        images.join("base.img").to_str().unwrap(),
        "--backing-vol-format",
        "raw",
    ]));
    let disk = "<disk type='volume' device='disk'><source pool='default' volume='top.qcow2'/>\
                <target dev='vda' bus='virtio'/></disk>";
    let xml = vireo_tests::guest_xml("vm1").replace("<devices>", &format!("<devices>{disk}"));
    let f = d.root.join("vm1.xml");
    std::fs::write(&f, &xml).unwrap();
    ok(&d.virsh(&["define", f.to_str().unwrap()]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let console = vireo_tests::tests_dir().join("python/console.py");
    let seen = ok(&vireo_tests::run_cmd(
        vireo_tests::python3(),
        &[console.to_str().unwrap(), &d.uri(), "vm1", "--resume"],
    ));
    assert!(
        seen.contains("VIREO-GUEST-DISK vda 65536 VIREOBASEMARKER0"),
        "{seen}"
    );
    // The live XML shows the disk as the volume it was defined as, with the format the
    // volume has, as libvirt does; not the file it was resolved to.
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(
        live.contains("<disk type='volume' device='disk'>"),
        "{live}"
    );
    assert!(
        live.contains("<source pool='default' volume='top.qcow2'/>"),
        "{live}"
    );
    assert!(live.contains("type='qcow2'"), "{live}");
    let path = images.join("top.qcow2");
    assert!(!live.contains(path.to_str().unwrap()), "{live}");
    ok(&d.virsh(&["destroy", "vm1"]));

    // A disk naming a volume or a pool that is not there: a clear error, nothing runs.
    for (name, src) in [
        ("vm2", "<source pool='default' volume='gone.qcow2'/>"),
        ("vm3", "<source pool='nopool' volume='top.qcow2'/>"),
    ] {
        let xml = vireo_tests::guest_xml(name).replace(
            "<devices>",
            &format!("<devices><disk type='volume' device='disk'>{src}<target dev='vda' bus='virtio'/></disk>"),
        );
        let f = d.root.join(format!("{name}.xml"));
        std::fs::write(&f, &xml).unwrap();
        ok(&d.virsh(&["define", f.to_str().unwrap()]));
        let err = fails(&d.virsh(&["start", name]));
        let want = if name == "vm2" {
            "gone.qcow2"
        } else {
            "nopool"
        };
        assert!(err.contains(want), "{err}");
        assert_eq!(ok(&d.virsh(&["domstate", name])).trim(), "shut off");
        assert!(d.qemu_pid(name).is_none());
    }
}

/// Volumes encrypted with LUKS (a raw one: a LUKS image; a qcow2 one: encrypted inside),
/// made in the pool with a private secret's passphrase, and a TCG guest that boots with
/// both: the QEMU driver gets the passphrase from the secret driver and hands it to QEMU
/// through a pipe. It is in no process's command line, no file, no log.
fn guest_boots_from_luks_volumes(layout: Layout) {
    const PASS: &str = "pass-PHRASE-7a3f91";
    const S: &str = "5e1c0a2b-9d8e-4f70-a1b2-c3d4e5f60789";
    let d = Daemon::start_in(layout);
    let sx = d.root.join("s.xml");
    std::fs::write(
        &sx,
        format!("<secret private='yes'><uuid>{S}</uuid></secret>"),
    )
    .unwrap();
    ok(&d.virsh(&["secret-define", sx.to_str().unwrap()]));
    let pf = d.root.join("pass");
    std::fs::write(&pf, PASS).unwrap();
    ok(&d.virsh(&[
        "secret-set-value",
        S,
        "--file",
        pf.to_str().unwrap(),
        "--plain",
    ]));
    std::fs::remove_file(&pf).unwrap();
    let enc =
        format!("<encryption format='luks'><secret type='passphrase' uuid='{S}'/></encryption>");
    for f in ["raw", "qcow2"] {
        let vx = d.root.join(format!("v-{f}.xml"));
        std::fs::write(
            &vx,
            format!(
                "<volume><name>enc.{f}</name><capacity unit='M'>16</capacity>\
                 <target><format type='{f}'/>{enc}</target></volume>"
            ),
        )
        .unwrap();
        ok(&d.virsh(&["vol-create", "default", vx.to_str().unwrap()]));
        let x = ok(&d.virsh(&["vol-dumpxml", &format!("enc.{f}"), "--pool", "default"]));
        assert!(x.contains("<encryption format='luks'/>"), "{x}");
        assert!(x.contains(&format!("<format type='{f}'/>")), "{x}");
    }
    let disks = format!(
        "<disk type='volume' device='disk'><source pool='default' volume='enc.raw'/>\
         <target dev='vda' bus='virtio'/>{enc}</disk>\
         <disk type='volume' device='disk'><source pool='default' volume='enc.qcow2'/>\
         <target dev='vdb' bus='virtio'/>{enc}</disk>"
    );
    let xml = vireo_tests::guest_xml("encvm").replace("<devices>", &format!("<devices>{disks}"));
    let f = d.root.join("encvm.xml");
    std::fs::write(&f, &xml).unwrap();
    ok(&d.virsh(&["define", f.to_str().unwrap()]));
    ok(&d.virsh(&["start", "--paused", "encvm"]));
    // Nowhere on a command line: every process's, QEMU's and the shim's included.
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            assert!(
                !cmd.windows(PASS.len()).any(|w| w == PASS.as_bytes()),
                "the passphrase is on the command line of {}",
                e.path().display()
            );
        }
    }
    let console = vireo_tests::tests_dir().join("python/console.py");
    let seen = ok(&vireo_tests::run_cmd(
        vireo_tests::python3(),
        &[console.to_str().unwrap(), &d.uri(), "encvm", "--resume"],
    ));
    assert!(seen.contains("VIREO-GUEST-DISK vda 32768 "), "{seen}");
    assert!(seen.contains("VIREO-GUEST-DISK vdb 32768 "), "{seen}");
    ok(&d.virsh(&["destroy", "encvm"]));
    // Nor in any file under the daemons' root (definitions, logs, runtime state).
    fn scan(dir: &std::path::Path, pass: &str) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                scan(&p, pass);
            } else if m.is_file() && m.len() < (8 << 20) {
                let data = std::fs::read(&p).unwrap_or_default();
                assert!(
                    !data.windows(pass.len()).any(|w| w == pass.as_bytes()),
                    "the passphrase is in {}",
                    p.display()
                );
            }
        }
    }
    scan(&d.root, PASS);
    // A disk whose secret does not exist starts nothing, and says which secret.
    let bad = xml
        .replace(S, "00000000-0000-0000-0000-00000000beef")
        .replace("encvm", "encvm2");
    std::fs::write(&f, &bad).unwrap();
    ok(&d.virsh(&["define", f.to_str().unwrap()]));
    let err = fails(&d.virsh(&["start", "encvm2"]));
    assert!(
        err.contains("00000000-0000-0000-0000-00000000beef"),
        "{err}"
    );
    assert!(d.qemu_pid("encvm2").is_none());
}

/// virt-install (Debian's virtinst) makes the disk in pool `default` (`--disk size=1`)
/// and the imported guest reaches running.
fn virt_install_creates_a_volume_and_starts_the_guest(layout: Layout) {
    let d = Daemon::start_in(layout);
    let (kernel, initrd) = vireo_tests::guest();
    let boot = format!(
        "kernel={},initrd={},kernel_args=console=ttyS0 quiet",
        kernel.display(),
        initrd.display()
    );
    let out = vireo_tests::run_cmd(
        "virt-install",
        &[
            "--connect",
            &d.uri(),
            "--name",
            "vi1",
            "--memory",
            "128",
            "--vcpus",
            "1",
            "--disk",
            "size=1",
            "--import",
            "--boot",
            &boot,
            "--virt-type",
            "qemu",
            "--osinfo",
            "generic",
            "--network",
            "none",
            "--graphics",
            "none",
            "--noautoconsole",
        ],
    );
    let text = ok(&out);
    assert!(text.contains("Domain creation completed"), "{text}");
    let list = ok(&d.virsh(&["list"]));
    assert!(list.contains(" vi1    running"), "{list}");
    let vols = ok(&d.virsh(&["vol-list", "default"]));
    assert!(vols.contains("vi1.qcow2"), "{vols}");
    let info = ok(&d.virsh(&["vol-info", "vi1.qcow2", "--pool", "default"]));
    assert!(info.contains("Capacity:       1.00 GiB"), "{info}");
    ok(&d.virsh(&["destroy", "vi1"]));
}

/// Unmounts what a test mounted, however the test ends.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let mounted = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split(' ').nth(4) == self.0.to_str());
        if mounted {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
}

fn is_mounted(p: &std::path::Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == p.to_str())
}

/// An fs pool on an image file: built (mkfs only where no filesystem is, unless
/// --overwrite), started (mounted), its volumes on that filesystem (raw and qcow2 from XML,
/// a 64 MiB file with holes up and down again, sparse, a clone, a resize either way, a
/// wipe, deletes), stopped (unmounted), started again with the volumes still there.
fn fs_pool_with_virsh(layout: Layout) {
    let d = Daemon::start_in(layout);
    let img = d.root.join("fs.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let target = d.root.join("fsmnt");
    let _guard = Unmount(target.clone());
    ok(&d.virsh(&[
        "pool-define-as",
        "fsp",
        "fs",
        "--source-dev",
        img.to_str().unwrap(),
        "--source-format",
        "ext4",
        "--target",
        target.to_str().unwrap(),
    ]));
    ok(&d.virsh(&["pool-build", "fsp"]));
    let err = fails(&d.virsh(&["pool-build", "fsp"]));
    assert!(err.contains("already holds a ext4 filesystem"), "{err}");
    ok(&d.virsh(&["pool-build", "fsp", "--overwrite"]));
    ok(&d.virsh(&["pool-start", "fsp"]));
    assert!(is_mounted(&target), "not mounted");
    let xml = ok(&d.virsh(&["pool-dumpxml", "fsp"]));
    validate(&xml, "storagepool", &d.root);
    let info = ok(&d.virsh(&["pool-info", "fsp"]));
    assert!(info.contains("State:          running"), "{info}");
    assert!(
        info.contains("MiB"),
        "the filesystem's size, not the host's: {info}"
    );
    ok(&d.virsh(&["vol-create-as", "fsp", "v.qcow2", "8M", "--format", "qcow2"]));

    // Volumes from XML: raw (nothing allocated) and qcow2.
    let raw = d.root.join("raw.xml");
    std::fs::write(
        &raw,
        "<volume><name>r.img</name><capacity unit='M'>64</capacity>\
         <allocation>0</allocation><target><format type='raw'/></target></volume>",
    )
    .unwrap();
    assert_eq!(
        ok(&d.virsh(&["vol-create", "fsp", raw.to_str().unwrap()])),
        format!("Vol r.img created from {}\n\n", raw.display())
    );
    let q = d.root.join("q.xml");
    std::fs::write(
        &q,
        "<volume><name>q.qcow2</name><capacity unit='M'>64</capacity>\
         <target><format type='qcow2'/></target></volume>",
    )
    .unwrap();
    ok(&d.virsh(&["vol-create", "fsp", q.to_str().unwrap()]));
    let qx = ok(&d.virsh(&["vol-dumpxml", "q.qcow2", "--pool", "fsp"]));
    assert!(qx.contains("<format type='qcow2'/>"), "{qx}");
    assert!(
        qx.contains(&format!(
            "<path>{}</path>",
            target.join("q.qcow2").display()
        )),
        "{qx}"
    );
    // A 64 MiB file with holes up into the raw volume and down again, sparse both ways.
    let src = d.root.join("src.img");
    holey_file(&src);
    let vol = target.join("r.img");
    ok(&d.virsh(&[
        "vol-upload",
        "r.img",
        src.to_str().unwrap(),
        "--pool",
        "fsp",
        "--sparse",
    ]));
    same_bytes(&vol, &src);
    sparse(&vol);
    let back = d.root.join("back.img");
    ok(&d.virsh(&[
        "vol-download",
        "r.img",
        back.to_str().unwrap(),
        "--pool",
        "fsp",
        "--sparse",
    ]));
    same_bytes(&back, &src);
    sparse(&back);
    // A clone holds the same bytes; it grows, and shrinks only when told to.
    ok(&d.virsh(&["vol-clone", "r.img", "c.img", "--pool", "fsp"]));
    same_bytes(&target.join("c.img"), &src);
    assert_eq!(
        ok(&d.virsh(&["vol-resize", "c.img", "96M", "--pool", "fsp"])),
        "Size of volume 'c.img' successfully changed to 96M\n\n"
    );
    let info = ok(&d.virsh(&["vol-info", "c.img", "--pool", "fsp"]));
    assert!(info.contains("Capacity:       96.00 MiB"), "{info}");
    let err = fails(&d.virsh(&["vol-resize", "c.img", "32M", "--pool", "fsp"]));
    assert!(err.contains("shrink"), "{err}");
    ok(&d.virsh(&["vol-resize", "c.img", "32M", "--shrink", "--pool", "fsp"]));
    let info = ok(&d.virsh(&["vol-info", "c.img", "--pool", "fsp"]));
    assert!(info.contains("Capacity:       32.00 MiB"), "{info}");
    assert_eq!(
        std::fs::read(target.join("c.img")).unwrap(),
        std::fs::read(&src).unwrap()[..32 << 20]
    );
    ok(&d.virsh(&["vol-resize", "q.qcow2", "128M", "--pool", "fsp"]));
    let info = ok(&d.virsh(&["vol-info", "q.qcow2", "--pool", "fsp"]));
    assert!(info.contains("Capacity:       128.00 MiB"), "{info}");
    // Wiped: zeros, the size kept.
    assert_eq!(
        ok(&d.virsh(&["vol-wipe", "r.img", "--pool", "fsp"])),
        "Vol r.img wiped\n\n"
    );
    let wiped = std::fs::read(&vol).unwrap();
    assert_eq!(wiped.len(), 64 << 20);
    assert!(wiped.iter().all(|b| *b == 0), "r.img not wiped");
    for v in ["r.img", "c.img", "q.qcow2"] {
        assert_eq!(
            ok(&d.virsh(&["vol-delete", v, "--pool", "fsp"])),
            format!("Vol {v} deleted\n\n")
        );
        assert!(!target.join(v).exists(), "{v} still there");
    }
    ok(&d.virsh(&["pool-destroy", "fsp"]));
    assert!(!is_mounted(&target), "still mounted");
    assert!(!target.join("v.qcow2").exists());
    ok(&d.virsh(&["pool-start", "fsp"]));
    assert!(ok(&d.virsh(&["vol-list", "fsp"])).contains("v.qcow2"));
    ok(&d.virsh(&["vol-delete", "v.qcow2", "--pool", "fsp"]));
    ok(&d.virsh(&["pool-destroy", "fsp"]));
    ok(&d.virsh(&["pool-delete", "fsp"]));
    ok(&d.virsh(&["pool-undefine", "fsp"]));
}

/// A loop device on an image file the test made, and the volume group on it, removed
/// however the test ends.
struct LoopVg {
    dev: String,
    vg: String,
}

impl LoopVg {
    /// A loop device on a new image file of `size` bytes.
    fn new(img: &std::path::Path, vg: &str, size: u64) -> LoopVg {
        std::fs::File::create(img).unwrap().set_len(size).unwrap();
        let out = ok(&vireo_tests::run_cmd(
            "losetup",
            &["-f", "--show", img.to_str().unwrap()],
        ));
        LoopVg {
            dev: out.trim().to_string(),
            vg: vg.to_string(),
        }
    }
}

impl Drop for LoopVg {
    fn drop(&mut self) {
        let quiet = |cmd: &str, args: &[&str]| {
            let _ = std::process::Command::new(cmd)
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        };
        quiet("vgremove", &["-f", &self.vg]);
        quiet("pvremove", &["-y", &self.dev]);
        quiet("losetup", &["-d", &self.dev]);
    }
}

/// A logical pool: an LVM volume group on a loop device the test made. Built (pvcreate,
/// vgcreate; a device with a label is refused without --overwrite), started, its size from
/// LVM, found by find-storage-pool-sources, stopped, deleted (vgremove, pvremove). Logical
/// volumes need the kernel's device-mapper: where it is there they are made, listed and
/// removed; where not (this project's VMs), creating one fails with LVM's reason.
fn logical_pool_with_virsh(layout: Layout) {
    let d = Daemon::start_in(layout);
    let vg = format!("vireotest{}{:?}", std::process::id(), layout).to_lowercase();
    // Room for the LVs of the device-mapper branch: 16 MiB, and two of 64 MiB.
    let lo = LoopVg::new(&d.root.join("pv.img"), &vg, 192 << 20);
    ok(&d.virsh(&[
        "pool-define-as",
        "lp",
        "logical",
        "--source-dev",
        &lo.dev,
        "--source-name",
        &vg,
        "--target",
        &format!("/dev/{vg}"),
    ]));
    ok(&d.virsh(&["pool-build", "lp"]));
    ok(&d.virsh(&["pool-start", "lp"]));
    let info = ok(&d.virsh(&["pool-info", "lp"]));
    assert!(info.contains("State:          running"), "{info}");
    assert!(info.contains("Capacity:       188.00 MiB"), "{info}");
    let xml = ok(&d.virsh(&["pool-dumpxml", "lp"]));
    validate(&xml, "storagepool", &d.root);
    let found = ok(&d.virsh(&["find-storage-pool-sources", "logical"]));
    assert!(found.contains(&format!("<name>{vg}</name>")), "{found}");
    assert!(
        found.contains(&format!("<device path='{}'/>", lo.dev)),
        "{found}"
    );

    let dm = std::process::Command::new("dmsetup")
        .arg("targets")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("linear"));
    let made = d.virsh(&["vol-create-as", "lp", "lv1", "8M"]);
    if dm {
        ok(&made);
        let vols = ok(&d.virsh(&["vol-list", "lp"]));
        assert!(vols.contains(&format!("/dev/{vg}/lv1")), "{vols}");
        ok(&d.virsh(&["vol-resize", "lv1", "16M", "--pool", "lp"]));
        // A 64 MiB file with holes up into an LV and down again; a clone of the LV; a
        // wipe. An LV is a block device: the holes uploaded read back as zeros, and a
        // download finds no holes in it (SEEK_DATA sees a block device as data throughout,
        // as libvirt's does), so the bytes are compared, not the blocks.
        let src = d.root.join("src.img");
        holey_file(&src);
        ok(&d.virsh(&["vol-create-as", "lp", "lv2", "64M"]));
        let lv2 = std::path::PathBuf::from(format!("/dev/{vg}/lv2"));
        ok(&d.virsh(&[
            "vol-upload",
            "lv2",
            src.to_str().unwrap(),
            "--pool",
            "lp",
            "--sparse",
        ]));
        same_bytes(&lv2, &src);
        let back = d.root.join("back.img");
        ok(&d.virsh(&[
            "vol-download",
            "lv2",
            back.to_str().unwrap(),
            "--pool",
            "lp",
            "--sparse",
        ]));
        same_bytes(&back, &src);
        ok(&d.virsh(&["vol-clone", "lv2", "lv3", "--pool", "lp"]));
        let lv3 = std::path::PathBuf::from(format!("/dev/{vg}/lv3"));
        same_bytes(&lv3, &src);
        assert_eq!(
            ok(&d.virsh(&["vol-wipe", "lv3", "--pool", "lp"])),
            "Vol lv3 wiped\n\n"
        );
        let wiped = std::fs::read(&lv3).unwrap();
        assert_eq!(wiped.len(), 64 << 20);
        assert!(wiped.iter().all(|b| *b == 0), "lv3 not wiped");
        for lv in ["lv3", "lv2", "lv1"] {
            ok(&d.virsh(&["vol-delete", lv, "--pool", "lp"]));
            assert!(
                !std::path::Path::new(&format!("/dev/{vg}/{lv}")).exists(),
                "{lv} still there"
            );
        }
    } else {
        let err = fails(&made);
        assert!(
            err.contains("lvcreate") && err.contains("device-mapper"),
            "{err}"
        );
    }
    ok(&d.virsh(&["pool-destroy", "lp"]));
    ok(&d.virsh(&["pool-delete", "lp"]));
    let err = fails(&d.virsh(&["pool-start", "lp"]));
    assert!(err.contains(&vg), "{err}");
    // A device that holds an LVM label is not overwritten unless asked.
    ok(&vireo_tests::run_cmd("pvcreate", &["-y", &lo.dev]));
    let err = fails(&d.virsh(&["pool-build", "lp"]));
    assert!(err.contains("LVM2_member"), "{err}");
    ok(&d.virsh(&["pool-build", "lp", "--overwrite"]));
    ok(&d.virsh(&["pool-delete", "lp"]));
    ok(&d.virsh(&["pool-undefine", "lp"]));
}

/// Our `vireo` command: the pool and volume commands print what virsh prints, and
/// vol-upload / vol-download move the same bytes, sparse.
fn storage_with_vireo_cli(layout: Layout) {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let d = Daemon::start_in(layout);
    let t = d.root.join("cli-pool");
    let ts = t.to_str().unwrap();
    assert_eq!(
        ok(&d.vireo(&["pool-define-as", "cp", "dir", "--target", ts])),
        "Pool cp defined\n\n"
    );
    assert_eq!(ok(&d.vireo(&["pool-build", "cp"])), "Pool cp built\n\n");
    assert_eq!(ok(&d.vireo(&["pool-start", "cp"])), "Pool cp started\n\n");
    assert_eq!(
        ok(&d.vireo(&["vol-create-as", "cp", "a.qcow2", "64M", "--format", "qcow2"])),
        "Vol a.qcow2 created\n\n"
    );
    ok(&d.vireo(&["vol-create-as", "cp", "b.img", "8M", "--allocation", "0"]));
    assert_eq!(
        ok(&d.vireo(&["vol-clone", "a.qcow2", "c.qcow2", "--pool", "cp"])),
        "Vol c.qcow2 cloned from a.qcow2\n\n"
    );
    assert_eq!(
        ok(&d.vireo(&["vol-resize", "b.img", "16M", "--pool", "cp"])),
        "Size of volume 'b.img' successfully changed to 16M\n\n"
    );
    for cmd in [
        &["pool-list"][..],
        &["pool-list", "--all"],
        &["pool-list", "--all", "--name"],
        &["pool-info", "cp"],
        &["pool-dumpxml", "cp"],
        &["vol-list", "cp"],
        &["vol-info", "a.qcow2", "--pool", "cp"],
        &["vol-info", "b.img", "--pool", "cp"],
        &["vol-dumpxml", "c.qcow2", "--pool", "cp"],
        &["vol-path", "b.img", "--pool", "cp"],
    ] {
        // The host filesystem's free space moves while other tests run: sizes of the
        // pool are left out of the comparison.
        let steady = |o: String| {
            o.lines()
                .filter(|l| {
                    ![
                        "Capacity:",
                        "Allocation:",
                        "Available:",
                        "<capacity",
                        "<allocation",
                        "<available",
                    ]
                    .iter()
                    .any(|k| l.trim_start().starts_with(k))
                        || cmd[0].starts_with("vol-")
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(
            steady(ok(&d.vireo(cmd))),
            steady(ok(&d.virsh(cmd))),
            "output of {cmd:?} differs"
        );
    }
    // Up and down, sparse.
    let src = d.root.join("src.img");
    let f = std::fs::File::create(&src).unwrap();
    f.set_len(16 << 20).unwrap();
    f.write_all_at(b"head", 0).unwrap();
    f.write_all_at(&[7u8; 70_000], 9 << 20).unwrap();
    drop(f);
    ok(&d.vireo(&[
        "vol-upload",
        "b.img",
        src.to_str().unwrap(),
        "--pool",
        "cp",
        "--sparse",
    ]));
    let vol = t.join("b.img");
    assert!(std::fs::read(&vol).unwrap() == std::fs::read(&src).unwrap());
    assert!(std::fs::metadata(&vol).unwrap().blocks() * 512 < 1 << 20);
    let back = d.root.join("back.img");
    ok(&d.vireo(&[
        "vol-download",
        "b.img",
        back.to_str().unwrap(),
        "--pool",
        "cp",
        "--sparse",
    ]));
    assert!(std::fs::read(&back).unwrap() == std::fs::read(&src).unwrap());
    assert!(std::fs::metadata(&back).unwrap().blocks() * 512 < 1 << 20);
    ok(&d.vireo(&[
        "vol-download",
        vol.to_str().unwrap(),
        back.to_str().unwrap(),
    ]));
    assert!(std::fs::read(&back).unwrap() == std::fs::read(&src).unwrap());
    // Errors as virsh words them.
    let err = fails(&d.vireo(&["vol-info", "nope", "--pool", "cp"]));
    assert!(err.contains("error: failed to get vol 'nope'"), "{err}");
    assert!(err.contains("Storage volume not found"), "{err}");
    let err = fails(&d.vireo(&["pool-info", "nopool"]));
    assert!(err.contains("error: failed to get pool 'nopool'"), "{err}");
    assert_eq!(
        ok(&d.vireo(&["vol-wipe", "b.img", "--pool", "cp"])),
        "Vol b.img wiped\n\n"
    );
    for v in ["a.qcow2", "b.img", "c.qcow2"] {
        assert_eq!(
            ok(&d.vireo(&["vol-delete", v, "--pool", "cp"])),
            format!("Vol {v} deleted\n\n")
        );
    }
    assert_eq!(
        ok(&d.vireo(&["pool-destroy", "cp"])),
        "Pool cp destroyed\n\n"
    );
    assert_eq!(ok(&d.vireo(&["pool-delete", "cp"])), "Pool cp deleted\n\n");
    assert_eq!(
        ok(&d.vireo(&["pool-undefine", "cp"])),
        "Pool cp has been undefined\n\n"
    );
}

/// Runs `args` with virsh and with `vireo` at once, each waiting for one event, and
/// `cause` until both have ended: both must have printed `want` and exited 0.
fn both_see_an_event(d: &Daemon, args: &[&str], cause: impl Fn(), want: &str) {
    let uri = d.uri();
    let spawn = |prog: &std::path::Path| {
        std::process::Command::new(prog)
            .args(["-c", &uri])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let theirs = spawn(std::path::Path::new("virsh"));
    let ours = spawn(&vireo_tests::bin("vireo"));
    // The listeners register at some point: events until both have seen one.
    let t0 = std::time::Instant::now();
    for pid in [theirs.id(), ours.id()] {
        while !vireo_tests::wait_exit(pid as i32, std::time::Duration::from_millis(200)) {
            assert!(t0.elapsed().as_secs() < 60, "no event reached {args:?}");
            cause();
        }
    }
    for (who, child) in [("virsh", theirs), ("vireo", ours)] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            output_parts(&out),
            (want.to_string(), String::new(), Some(0)),
            "{who} {args:?}"
        );
    }
}

/// Runs `prog -c URI args…` with no terminal and no `$VISUAL` but for `env`, set.
fn with_env(d: &Daemon, prog: &std::path::Path, env: (&str, &str), args: &[&str]) -> Output {
    std::process::Command::new(prog)
        .args(["-c", &d.uri()])
        .args(args)
        .env_remove("VISUAL")
        .env(env.0, env.1)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// Runs `args` with `vireo` and then virsh, both with `env` set: (vireo's, virsh's).
fn both_with_env(d: &Daemon, env: (&str, &str), args: &[&str]) -> (Output, Output) {
    (
        with_env(d, &vireo_tests::bin("vireo"), env, args),
        with_env(d, std::path::Path::new("virsh"), env, args),
    )
}

/// The pool, volume and secret commands virsh has beside the first ones (pool-name,
/// pool-capabilities, pool-edit, pool-event, find-storage-pool-sources(-as),
/// vol-create-from, vol-key, vol-name, vol-pool, secret-event), run by virsh and by
/// `vireo` against the same daemon: the same output, refusals and exit codes.
fn more_storage_commands_with_vireo_cli(layout: Layout) {
    let d = Daemon::start_in(layout);
    let t = d.root.join("mp");
    ok(&d.virsh(&[
        "pool-define-as",
        "mp",
        "dir",
        "--target",
        t.to_str().unwrap(),
    ]));
    ok(&d.virsh(&["pool-build", "mp"]));
    ok(&d.virsh(&["pool-start", "mp"]));
    ok(&d.virsh(&["vol-create-as", "mp", "a.img", "8M"]));
    let a = t.join("a.img");
    let a = a.to_str().unwrap();
    let uuid = ok(&d.virsh(&["pool-uuid", "mp"])).trim().to_string();
    let vx = d.root.join("b.xml");
    std::fs::write(
        &vx,
        "<volume><name>b.qcow2</name><capacity unit='M'>16</capacity>\
         <target><format type='qcow2'/></target></volume>",
    )
    .unwrap();
    let vx = vx.to_str().unwrap();
    for cmd in [
        &["pool-name", &uuid][..],
        &["pool-name", "mp"],
        &["pool-name", "12345678-1234-1234-1234-123456789abc"],
        &["pool-name"],
        &["pool-capabilities"],
        &["pool-capabilities", "x"],
        &["find-storage-pool-sources", "logical"],
        &["find-storage-pool-sources", "dir"],
        &[
            "find-storage-pool-sources",
            "dir",
            "--srcSpec",
            "/nonexistent/s.xml",
        ],
        &[
            "find-storage-pool-sources-as",
            "dir",
            "--host",
            "h",
            "--port",
            "1",
        ],
        &["find-storage-pool-sources-as"],
        &["vol-key", "a.img", "--pool", "mp"],
        &["vol-key", "a.img", "mp"],
        &["vol-key", a],
        &["vol-key", "a.img"],
        &["vol-key", "nope", "--pool", "mp"],
        &["vol-key", "a.img", "--pool", "nopool"],
        &["vol-name", a],
        &["vol-name", "a.img"],
        &["vol-pool", a],
        &["vol-pool", a, "--uuid"],
        &["vol-pool", "nope"],
        &["vol-create-from", "mp", vx, "a.img"],
        &["vol-create-from", "mp", vx, "nope", "--inputpool", "mp"],
        &[
            "vol-create-from",
            "mp",
            vx,
            "a.img",
            "--inputpool",
            "nopool",
        ],
        &["vol-create-from", "mp", "/nonexistent/v.xml", a],
        &["vol-create-from", "nopool", vx, a],
        &["vol-create-from", "mp", vx],
        &["pool-event", "--list"],
        &["pool-event"],
        &["pool-event", "--event", "bogus"],
        &["pool-event", "--event", "refresh", "--timeout", "0"],
        &["pool-event", "mp", "--event", "lifecycle", "--timeout", "1"],
        &[
            "pool-event",
            "nopool",
            "--event",
            "refresh",
            "--timeout",
            "1",
        ],
        &["secret-event", "--list"],
        &["secret-event"],
        &["secret-event", "--event", "value-changed", "--timeout", "1"],
        &[
            "secret-event",
            "nope",
            "--event",
            "lifecycle",
            "--timeout",
            "1",
        ],
        &["pool-edit", "nopool"],
    ] {
        same_as_virsh(&d, cmd);
    }
    listing_options_as_virsh(&d, &t, a, &uuid);
    // A clone through XML, also into another format; made once.
    done_then_refused(
        &d,
        &["vol-create-from", "mp", vx, "a.img", "--inputpool", "mp"],
        "Vol b.qcow2 created from input vol a.img\n\n",
    );
    let bx = ok(&d.virsh(&["vol-dumpxml", "b.qcow2", "--pool", "mp"]));
    assert!(bx.contains("<format type='qcow2'/>"), "{bx}");
    same_as_virsh(&d, &["vol-key", "b.qcow2", "--pool", "mp"]);
    same_as_virsh(&d, &["vol-pool", t.join("b.qcow2").to_str().unwrap()]);

    // Events caused while both wait.
    let px = d.root.join("mp.xml");
    std::fs::write(&px, ok(&d.virsh(&["pool-dumpxml", "--inactive", "mp"]))).unwrap();
    let px = px.to_str().unwrap();
    both_see_an_event(
        &d,
        &[
            "pool-event",
            "--pool",
            "mp",
            "--event",
            "lifecycle",
            "--timeout",
            "60",
        ],
        || {
            ok(&d.virsh(&["pool-define", px]));
        },
        "event 'lifecycle' for storage pool mp: Defined\nevents received: 1\n\n",
    );
    both_see_an_event(
        &d,
        &["pool-event", "mp", "--event", "refresh", "--timeout", "60"],
        || {
            ok(&d.virsh(&["pool-refresh", "mp"]));
        },
        "event 'refresh' for storage pool mp\nevents received: 1\n\n",
    );
    let sid = "6c1c2b0e-5f2a-4d7e-9a31-0b9d8e7f6a51";
    let sx = d.root.join("s.xml");
    std::fs::write(
        &sx,
        format!(
            "<secret ephemeral='no' private='no'><uuid>{sid}</uuid>\
             <usage type='volume'><volume>{a}</volume></usage></secret>"
        ),
    )
    .unwrap();
    let sx = sx.to_str().unwrap();
    both_see_an_event(
        &d,
        &["secret-event", "--event", "lifecycle", "--timeout", "60"],
        || {
            ok(&d.virsh(&["secret-define", sx]));
        },
        &format!("event 'lifecycle' for secret {sid}: Defined\nevents received: 1\n\n"),
    );
    both_see_an_event(
        &d,
        &[
            "secret-event",
            sid,
            "--event",
            "value-changed",
            "--timeout",
            "60",
        ],
        || {
            ok(&d.virsh(&["secret-set-value", sid, "--base64", "c2VjcmV0"]));
        },
        &format!("event 'value-changed' for secret {sid}\nevents received: 1\n\n"),
    );

    // pool-edit: the editor is a script that swaps two target paths.
    let (t1, t2) = (d.root.join("ep1"), d.root.join("ep2"));
    ok(&d.virsh(&[
        "pool-define-as",
        "ep",
        "dir",
        "--target",
        t1.to_str().unwrap(),
    ]));
    let swap = d.root.join("swap.sh");
    std::fs::write(
        &swap,
        format!(
            "#!/bin/sh\nsed -i -e 's|{0}<|@<|' -e 's|{1}<|{0}<|' -e 's|@<|{1}<|' \"$1\"\n",
            t1.display(),
            t2.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&swap, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path_of = |name: &str| {
        let x = ok(&d.virsh(&["pool-dumpxml", name]));
        let after = x.split("<path>").nth(1).unwrap_or_default();
        after.split('<').next().unwrap_or_default().to_string()
    };
    let (ours, theirs) =
        both_with_env(&d, ("EDITOR", swap.to_str().unwrap()), &["pool-edit", "ep"]);
    // vireo swapped ep1 for ep2, then virsh swapped it back.
    for o in [&ours, &theirs] {
        assert_eq!(ok(o), "Pool ep XML configuration edited.\n\n");
    }
    assert_eq!(path_of("ep"), t1.to_str().unwrap());
    let ours = with_env(
        &d,
        &vireo_tests::bin("vireo"),
        ("VISUAL", swap.to_str().unwrap()),
        &["pool-edit", "ep"],
    );
    assert_eq!(ok(&ours), "Pool ep XML configuration edited.\n\n");
    assert_eq!(path_of("ep"), t2.to_str().unwrap());
    // An editor that changes nothing.
    let (ours, theirs) = both_with_env(&d, ("EDITOR", "true"), &["pool-edit", "ep"]);
    assert_eq!(output_parts(&ours), output_parts(&theirs));
    assert_eq!(ok(&ours), "Pool ep XML configuration not changed.\n\n");
    // A failing editor (one with words of the shell's runs through `sh -c`): the same
    // words, but for the temporary file's random name.
    let (ours, theirs) = both_with_env(&d, ("EDITOR", "exit 3;"), &["pool-edit", "ep"]);
    let unnamed = |o: &Output| {
        let (out, err, code) = output_parts(o);
        let err = err
            .split(' ')
            .map(|w| if w.starts_with("/tmp/") { "FILE" } else { w })
            .collect::<Vec<_>>()
            .join(" ");
        (out, err, code)
    };
    assert_eq!(unnamed(&ours), unnamed(&theirs));
    assert!(unnamed(&ours)
        .1
        .contains("Child process (sh -c 'exit 3; FILE unexpected exit status 3"));
    // An edit the daemon refuses: virsh says "Failed." and, having no terminal to ask
    // whether to edit again, prints "Pool (null) XML configuration edited." and exits 0
    // (a virsh bug); vireo says "Failed." and the daemon's reason, and fails.
    let bad = d.root.join("bad.sh");
    std::fs::write(
        &bad,
        "#!/bin/sh\nsed -i 's|<name>ep</name>|<name>e/p</name>|' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (ours, theirs) = both_with_env(&d, ("EDITOR", bad.to_str().unwrap()), &["pool-edit", "ep"]);
    assert_eq!(output_parts(&theirs).1, "error: Failed.\n");
    let err = fails(&ours);
    assert!(err.starts_with("error: Failed.\nerror: "), "{err}");
    assert_eq!(err.lines().count(), 2, "{err}");
    assert_eq!(String::from_utf8_lossy(&ours.stdout), "\n");
    assert_eq!(path_of("ep"), t2.to_str().unwrap());
    ok(&d.virsh(&["pool-undefine", "ep"]));
}

/// pool-list's and vol-list's `--details` and filters, pool-info's and vol-info's
/// `--bytes` and `--physical`, pool-define-as's and pool-create-as's source options and
/// `--print-xml`: as virsh, with `mp` (holding `a`, 8 MiB) active.
fn listing_options_as_virsh(d: &Daemon, t: &std::path::Path, a: &str, uuid: &str) {
    let ip = t.join("ip");
    ok(&d.virsh(&[
        "pool-define-as",
        "ip",
        "dir",
        "--target",
        ip.to_str().unwrap(),
    ]));
    for cmd in [
        &["pool-list", "--details", "--inactive"][..],
        &["pool-list", "--inactive", "--uuid"],
        &["pool-list", "--all", "--uuid", "--name"],
        &["pool-list", "--all", "--name", "--type", "dir"],
        &[
            "pool-list",
            "--type",
            "dir,logical",
            "--inactive",
            "--details",
        ],
        &["pool-list", "--type", "fs", "--details"],
        &[
            "pool-list",
            "--details",
            "--persistent",
            "--no-autostart",
            "--inactive",
        ],
        &["pool-list", "--details", "--transient"],
        &["pool-list", "--details", "--name"],
        &["pool-list", "--details", "--uuid"],
        &["pool-list", "--type", "bogus"],
        &["pool-list", "--type", "dir,bogus", "--details"],
        &["pool-list", "--type", ""],
        &["vol-list", "mp", "--details"],
        &["vol-list", "--pool", "mp", "--details"],
        &["vol-list", "--pool", "mp"],
        &["vol-list", "ip", "--details"],
        &["vol-info", "a.img", "--pool", "mp", "--bytes"],
        &["vol-info", a, "--physical"],
        &["vol-info", a, "--physical", "--bytes"],
        &["vol-info", "nope", "--pool", "mp", "--bytes"],
        &["pool-info", "ip", "--bytes"],
        &[
            "pool-define-as",
            "x",
            "dir",
            "--target",
            "/t",
            "--print-xml",
        ],
        &[
            "pool-define-as",
            "x",
            "logical",
            "--source-dev",
            "/dev/loop9",
            "--source-name",
            "vg",
            "--source-format",
            "lvm2",
            "--target",
            "/dev/vg",
            "--print-xml",
        ],
        &[
            "pool-create-as",
            "x",
            "netfs",
            "--source-host",
            "h",
            "--source-path",
            "/e",
            "--source-format",
            "nfs",
            "--target",
            "/m",
            "--print-xml",
        ],
        &[
            "pool-create-as",
            "x",
            "iscsi",
            "--source-host",
            "h",
            "--source-dev",
            "iqn.x",
            "--source-initiator",
            "iqn.y",
            "--auth-type",
            "chap",
            "--auth-username",
            "u",
            "--secret-usage",
            "s",
            "--print-xml",
        ],
        &[
            "pool-create-as",
            "x",
            "scsi",
            "--adapter-name",
            "host0",
            "--print-xml",
        ],
        &[
            "pool-create-as",
            "x",
            "scsi",
            "--adapter-wwnn",
            "1",
            "--adapter-wwpn",
            "2",
            "--adapter-parent",
            "p",
            "--print-xml",
        ],
        &[
            "pool-define-as",
            "x",
            "rbd",
            "--source-name",
            "p",
            "--auth-type",
            "ceph",
            "--auth-username",
            "u",
            "--secret-uuid",
            uuid,
            "--print-xml",
        ],
        &[
            "pool-define-as",
            "x",
            "rbd",
            "--secret-uuid",
            uuid,
            "--secret-usage",
            "s",
        ],
        &[
            "pool-define-as",
            "x",
            "netfs",
            "--source-protocol-ver",
            "3",
            "--source-host",
            "h",
            "--print-xml",
        ],
        &[
            "pool-create-as",
            "x",
            "dir",
            "--overwrite",
            "--no-overwrite",
        ],
        &["pool-define-as", "x", "dir", "--build"],
    ] {
        same_as_virsh(d, cmd);
    }
    // Active pools' sizes follow the host filesystem's free space, which other tests
    // move: those are compared with each number masked and the spacing with them.
    let masked = |o: &Output| {
        let (out, err, code) = output_parts(o);
        let out = out
            .split_whitespace()
            .map(|w| {
                if w.chars().all(|c| c.is_ascii_digit() || c == '.') {
                    "N"
                } else if w.chars().all(|c| c == '-') {
                    "---"
                } else {
                    w
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        (out, err, code)
    };
    for cmd in [
        &["pool-list", "--details"][..],
        &["pool-list", "--details", "--all", "--persistent"],
        &["pool-list", "--details", "--type", "dir", "--all"],
        &["pool-info", "mp", "--bytes"],
    ] {
        let (ours, theirs) = (d.vireo(cmd), d.virsh(cmd));
        assert_eq!(masked(&ours), masked(&theirs), "{cmd:?}");
        assert!(ours.status.success(), "{cmd:?}");
    }
    ok(&d.virsh(&["pool-undefine", "ip"]));
}

fn storage_with_python(layout: Layout) {
    let d = Daemon::start_in(layout);
    let out = ok(&d.python("storage.py", &[d.root.to_str().unwrap()]));
    assert!(out.contains("storage ok"), "{out}");
}

vireo_tests::in_every_layout!(
    dir_pool_volumes_with_virsh,
    pool_lifecycle_with_virsh,
    volume_upload_and_download,
    a_stopped_reader_is_not_buffered_for,
    guest_boots_from_a_qcow2_overlay_volume,
    guest_boots_from_luks_volumes,
    virt_install_creates_a_volume_and_starts_the_guest,
    fs_pool_with_virsh,
    logical_pool_with_virsh,
    storage_with_vireo_cli,
    more_storage_commands_with_vireo_cli,
    storage_with_python,
);
