//! python3-libvirt (Debian's python3-libvirt) against `vireod`.

use vireo_tests::{ok, Daemon};

#[test]
fn python_libvirt_domain_configurations() {
    let d = Daemon::start();
    let out = ok(&d.python("basic.py", &[]));
    assert!(out.contains("python ok"), "{out}");
}

#[test]
fn python_lifecycle_events_for_define_and_undefine() {
    let d = Daemon::start();
    let out = ok(&d.python("events.py", &[]));
    assert!(out.contains("events ok"), "{out}");
}
