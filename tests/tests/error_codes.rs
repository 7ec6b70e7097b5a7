//! libvirt's error codes for the domain calls, swept by `tests/python/error_codes.py`
//! (unknown flags, a shut-off domain asked what only a running one can do, bad arguments,
//! changes on the read-only socket), with nothing left half-made; in every layout.

use vireo_tests::{define_with_disk, ok, write_file, Daemon, Layout};

fn domain_calls_answer_with_libvirts_codes(layout: Layout) {
    let d = Daemon::start_in(layout);
    define_with_disk(&d, "vm1.img", "qcow2");
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let xml = vireo_tests::guest_xml("vm2");
    ok(&d.virsh(&["define", &write_file(&d, "vm2.xml", &xml)]));
    let out = d.python("error_codes.py", &["vm1", "vm2"]);
    let text = ok(&out);
    assert!(text.contains("ALL OK"), "{text}");
    ok(&d.virsh(&["destroy", "vm1"]));
}

vireo_tests::in_every_layout!(domain_calls_answer_with_libvirts_codes);
