//! python3-libvirt (Debian's python3-libvirt) against `vireod`.

use vireo_tests::{ok, Daemon, Layout};

fn python_libvirt_domain_configurations(layout: Layout) {
    let d = Daemon::start_in(layout);
    let out = ok(&d.python("basic.py", &[]));
    assert!(out.contains("python ok"), "{out}");
}

fn python_lifecycle_events_for_define_and_undefine(layout: Layout) {
    let d = Daemon::start_in(layout);
    let out = ok(&d.python("events.py", &[]));
    assert!(out.contains("events ok"), "{out}");
}

vireo_tests::in_every_layout!(
    python_libvirt_domain_configurations,
    python_lifecycle_events_for_define_and_undefine,
);
