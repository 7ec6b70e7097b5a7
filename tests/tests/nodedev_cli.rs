//! The `vireo` CLI's nodedev commands that change devices, and nodedev-info, against
//! virsh's: the same steps through both, the same output (stdout, stderr and exit status).
//! PCI devices are detached, reset and reattached on [`FakePci`]'s synthetic tree;
//! mediated devices made, defined, started, marked, destroyed and undefined on
//! [`FakeMdev`]'s, both in one root.

use vireo_tests::fakemdev::{FakeMdev, PARENT_NAME};
use vireo_tests::fakepci::FakePci;
use vireo_tests::{done_then_refused, ok, same_as_virsh, write_file, Daemon, Layout};

const NIC: &str = "pci_0000_01_00_0";
const UUID: &str = "3e9b1c7a-6f1d-4b8e-9c2a-5d4e3f2a1b0c";
const MDEV: &str = "mdev_3e9b1c7a_6f1d_4b8e_9c2a_5d4e3f2a1b0c_0000_00_02_0";

fn mdev_xml(type_id: &str) -> String {
    format!(
        "<device>\n  <parent>{PARENT_NAME}</parent>\n  <capability type='mdev'>\n    \
         <type id='{type_id}'/>\n    <uuid>{UUID}</uuid>\n  </capability>\n</device>\n"
    )
}

/// Runs each of `all` through vireo and virsh, which must say the same, and succeed (or
/// fail) as `works` says.
#[track_caller]
fn same(d: &Daemon, works: bool, all: &[&[&str]]) {
    for args in all {
        let o = same_as_virsh(d, args);
        assert_eq!(o.status.success(), works, "{args:?}");
    }
}

fn nodedev_commands_as_virsh(layout: Layout) {
    let t = tempfile::tempdir().unwrap();
    let pci = FakePci::start(t.path());
    let kernel = FakeMdev::start(t.path());
    let d = Daemon::start_with_sysfs(layout, t.path());

    same(
        &d,
        true,
        &[
            &["nodedev-info", "computer"],
            &["nodedev-info", NIC],
            &["nodedev-info", "--device", PARENT_NAME],
        ],
    );
    same(
        &d,
        false,
        &[
            &["nodedev-info"],
            &["nodedev-info", "pci_0000_09_00_0"],
            &["nodedev-info", "a,b"],
            &["nodedev-detach"],
            &["nodedev-detach", "nope"],
            &["nodedev-detach", "--driver", "xen", NIC],
            &["nodedev-detach", "computer"],
            // Its interface is up.
            &["nodedev-detach", "pci_0000_03_00_0"],
            &["nodedev-reattach", "nope"],
            &["nodedev-reset", "nope"],
            // The host's driver has it.
            &["nodedev-reset", NIC],
            &["nodedev-create"],
            &["nodedev-create", "/nonexistent/m.xml"],
            &["nodedev-define", "/nonexistent/m.xml"],
            &["nodedev-destroy", "nope"],
            &["nodedev-destroy", NIC],
            &["nodedev-undefine", NIC],
            &["nodedev-start", NIC],
            &["nodedev-start", "nope"],
            &["nodedev-autostart", NIC],
            &["nodedev-autostart", "--disable", "nope"],
        ],
    );

    // PCI: detached (again: nothing to do), reset, reattached (again: nothing to do).
    assert_eq!(
        ok(&d.vireo(&["nodedev-detach", NIC])),
        format!("Device {NIC} detached\n\n")
    );
    assert_eq!(pci.driver("0000:01:00.0").as_deref(), Some("vfio-pci"));
    same(
        &d,
        true,
        &[
            &["nodedev-detach", NIC],
            &["nodedev-dettach", "--driver", "vfio", NIC],
            &["nodedev-reset", NIC],
        ],
    );
    pci.settle();
    assert_eq!(pci.resets("0000:01:00.0"), 2);
    assert_eq!(
        ok(&d.vireo(&["nodedev-reattach", "--device", NIC])),
        format!("Device {NIC} re-attached\n\n")
    );
    same(&d, true, &[&["nodedev-reattach", NIC]]);
    pci.settle();
    assert_eq!(pci.driver("0000:01:00.0").as_deref(), Some("e1000e"));

    // A transient mediated device: made, refused a second time, destroyed.
    let f = write_file(&d, "m.xml", &mdev_xml("i915-GVTg_V5_8"));
    assert_eq!(
        ok(&d.vireo(&["nodedev-create", &f])),
        format!("Node device {MDEV} created from {f}\n\n")
    );
    kernel.settle();
    assert_eq!(kernel.devices(), [UUID]);
    same(&d, true, &[&["nodedev-info", MDEV]]);
    same(
        &d,
        false,
        &[
            &["nodedev-create", &f],
            &["nodedev-create", "--validate", &f],
            &["nodedev-autostart", MDEV],
            &["nodedev-undefine", MDEV],
            &["nodedev-start", MDEV],
        ],
    );
    done_then_refused(
        &d,
        &["nodedev-destroy", MDEV],
        &format!("Destroyed node device '{MDEV}'\n\n"),
    );

    // Defined, marked, started, stopped, unmarked, undefined.
    assert_eq!(
        ok(&d.vireo(&["nodedev-define", "--validate", &f])),
        format!("Node device '{MDEV}' defined from '{f}'\n\n")
    );
    same(
        &d,
        true,
        &[
            &["nodedev-define", &f],
            &["nodedev-info", MDEV],
            &["nodedev-list", "--inactive"],
            &["nodedev-list", "--all", "--cap", "mdev"],
            &["nodedev-list", "--cap", "mdev"],
            &["nodedev-dumpxml", MDEV],
        ],
    );
    same(&d, false, &[&["nodedev-destroy", MDEV]]);
    assert_eq!(
        ok(&d.vireo(&["nodedev-autostart", MDEV])),
        format!("Device {MDEV} marked as autostarted\n\n")
    );
    same(
        &d,
        true,
        &[&["nodedev-autostart", MDEV], &["nodedev-info", MDEV]],
    );
    done_then_refused(
        &d,
        &["nodedev-start", MDEV],
        &format!("Device {MDEV} started\n\n"),
    );
    kernel.settle();
    assert_eq!(kernel.devices(), [UUID]);
    same(
        &d,
        true,
        &[&["nodedev-info", MDEV], &["nodedev-dumpxml", MDEV]],
    );
    assert_eq!(
        ok(&d.vireo(&["nodedev-destroy", "--name", MDEV])),
        format!("Destroyed node device '{MDEV}'\n\n")
    );
    assert_eq!(
        ok(&d.vireo(&["nodedev-autostart", "--disable", MDEV])),
        format!("Device {MDEV} unmarked as autostarted\n\n")
    );
    same(
        &d,
        true,
        &[
            &["nodedev-autostart", "--disable", MDEV],
            &["nodedev-info", MDEV],
        ],
    );
    done_then_refused(
        &d,
        &["nodedev-undefine", MDEV],
        &format!("Undefined node device '{MDEV}'\n\n"),
    );
    same(&d, true, &[&["nodedev-list", "--all", "--cap", "mdev"]]);
    kernel.settle();
    assert!(kernel.devices().is_empty());
}

vireo_tests::in_every_layout!(nodedev_commands_as_virsh);
