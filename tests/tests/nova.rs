//! The calls OpenStack Nova's libvirt driver makes in its start-up, spawn, diagnostics,
//! attach/detach volume, cold and live snapshot, reboot, resize and delete paths (listed
//! in `tests/python/nova_calls.py`), made by python-libvirt against vireod and against
//! the modular daemons, with a real guest.

use vireo_tests::{ok, Daemon, Layout};

fn nova_paths(layout: Layout) {
    let d = Daemon::start_in(layout);
    let (kernel, initrd) = vireo_tests::guest();
    let work = d.root.join("nova");
    std::fs::create_dir_all(&work).unwrap();
    // The root disk (qcow2, empty) and a volume to attach.
    ok(&vireo_tests::run_cmd(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            work.join("disk").to_str().unwrap(),
            "64M",
        ],
    ));
    std::fs::write(work.join("volume"), vec![0u8; 1 << 20]).unwrap();
    let out = ok(&d.python(
        "nova_calls.py",
        &[
            kernel.to_str().unwrap(),
            initrd.to_str().unwrap(),
            work.to_str().unwrap(),
        ],
    ));
    for s in [
        "start-up",
        "spawn",
        "diagnostics",
        "volume",
        "snapshot",
        "live-snapshot",
        "reboot",
        "resize",
        "delete",
    ] {
        assert!(out.contains(&format!("{s} ok")), "{s}:\n{out}");
    }
}

#[test]
fn nova_paths_on_vireod() {
    nova_paths(Layout::Monolithic);
}

#[test]
fn nova_paths_on_the_modular_daemons() {
    nova_paths(Layout::Modular);
}
