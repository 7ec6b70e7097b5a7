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

/// `virsh send-key`: keys by name (linux codeset) and by number reach the guest's AT
/// keyboard, read back from its event device; a codeset Vireo cannot translate is refused.
#[test]
fn send_key() {
    let d = Daemon::start_in(Layout::Modular);
    ok(&d.virsh(&[
        "define",
        &write_file(&d, "vm1.xml", &vireo_tests::guest_xml("vm1")),
    ]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    // The guest reads 12 input events (press and release of two keys, each with its scan
    // code and sync events) from its keyboard's event device.
    vireo_tests::guest_shell(
        &d,
        "vm1",
        &[
            "--resume",
            "for e in /sys/class/input/event*; do grep -q 'AT Translated' $e/device/name && \
             ev=/dev/input/${e##*/}; done; dd if=$ev of=/tmp/raw bs=24 count=12 2>/dev/null & \
             echo LISTENING-$((1+1))",
            "LISTENING-2",
        ],
    );
    ok(&d.virsh(&["send-key", "vm1", "KEY_A"]));
    ok(&d.virsh(&[
        "send-key",
        "vm1",
        "--codeset",
        "linux",
        "--holdtime",
        "50",
        "103",
    ]));
    let seen = vireo_tests::guest_shell(
        &d,
        "vm1",
        &[
            "--running",
            "wait; od -An -tu2 -v /tmp/raw | tr -s ' ' '\\n' | grep . | \
             awk 'NR%12==9{t=$1} NR%12==10 && t==1 {print \"KEY\", $1}'; echo READ-$((1+1))",
            "READ-2",
        ],
    );
    // Each key is pressed and released: EV_KEY twice.
    assert_eq!(seen.matches("KEY 30").count(), 2, "{seen}");
    assert_eq!(seen.matches("KEY 103").count(), 2, "{seen}");
    let e = fails(&d.virsh(&["send-key", "vm1", "--codeset", "usb", "4"]));
    assert!(e.contains("the usb codeset is not supported"), "{e}");
    let e = fails(&d.virsh(&["send-key", "vm1", "--codeset", "linux", "250"]));
    assert!(e.contains("cannot translate keycode 250"), "{e}");
    ok(&d.virsh(&["destroy", "vm1"]));
    let e = fails(&d.virsh(&["send-key", "vm1", "KEY_A"]));
    assert!(e.contains("domain is not running"), "{e}");
}
