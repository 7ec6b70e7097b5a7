//! What a viewer (virt-manager, virt-viewer) asks of a running domain: a screenshot (a PNG
//! as a stream after the reply), and where its display is (`domdisplay`, `vncdisplay`).

use vireo_tests::{fails, ok, write_file, Daemon, Layout};

fn screenshot_and_display(layout: Layout) {
    let d = Daemon::start_in(layout);
    let xml = vireo_tests::guest_xml("vm1").replace(
        "<memballoon model='none'/>",
        "<graphics type='vnc' autoport='yes' listen='127.0.0.1'/>\
         <video><model type='vga'/></video><memballoon model='none'/>",
    );
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &xml)]));
    let shot = d.root.join("shot");
    let shot = shot.to_str().expect("utf-8");
    let e = fails(&d.virsh(&["screenshot", "vm1", shot]));
    assert!(e.contains("domain is not running"), "{e}");

    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let out = ok(&d.virsh(&["screenshot", "vm1", shot]));
    assert!(out.contains("with type of image/png"), "{out}");
    let png = std::fs::read(shot).expect("the screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    // IHDR: width and height, big-endian, after the signature and the chunk header.
    let (w, h) = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from_be_bytes(png[20..24].try_into().unwrap()),
    );
    assert!(w >= 320 && h >= 200, "{w}x{h}");
    let e = fails(&d.virsh(&["-r", "screenshot", "vm1", shot]));
    assert!(
        e.contains("read only access prevents virDomainScreenshot"),
        "{e}"
    );

    let display = ok(&d.virsh(&["domdisplay", "vm1"]));
    assert!(display.trim().starts_with("vnc://127.0.0.1:"), "{display}");
    let vnc = ok(&d.virsh(&["vncdisplay", "vm1"]));
    assert!(vnc.trim().starts_with("127.0.0.1:"), "{vnc}");
    ok(&d.virsh(&["destroy", "vm1"]));

    // A domain without a display has nothing to show.
    let headless = vireo_tests::guest_xml("vm2");
    ok(&d.virsh(&["create", "--paused", &write_file(&d, "vm2.xml", &headless)]));
    let e = fails(&d.virsh(&["screenshot", "vm2", shot]));
    assert!(
        e.contains("There is no console to take a screendump from"),
        "{e}"
    );
    ok(&d.virsh(&["destroy", "vm2"]));
}

vireo_tests::in_every_layout!(screenshot_and_display);
