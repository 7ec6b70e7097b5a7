//! UEFI: `<os firmware='efi'>` boots the test guest (q35, TCG, its kernel given directly)
//! under Debian's OVMF, chosen by Vireo, with an NVRAM of the domain's own made from the
//! firmware's template at the first start and kept; secure boot with enrolled keys picks
//! the secure-boot build; `undefine` leaves the NVRAM alone only when told what to do with
//! it; domcapabilities offers the firmware to virt-install.

use vireo_tests::{fails, guest_shell, ok, write_file, Daemon};

#[test]
fn uefi_guest_boots_with_its_own_nvram() {
    let d = Daemon::start();
    let caps = ok(&d.virsh(&["domcapabilities", "--machine", "q35"]));
    assert!(caps.contains("<value>efi</value>"), "{caps}");
    assert!(caps.contains("OVMF_CODE_4M.secboot.fd"), "{caps}");

    // OVMF wants more memory than the BIOS: with 128 MiB it does not reach the kernel.
    let xml = vireo_tests::guest_xml("vm1")
        .replace(
            "<memory unit='MiB'>128</memory>",
            "<memory unit='MiB'>256</memory>",
        )
        .replace("machine='pc'", "machine='q35'")
        .replace("<os>", "<os firmware='efi'>");
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &xml)]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    let live = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(
        live.contains("<loader readonly='yes' secure='no' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>"),
        "{live}"
    );
    let nvram = d.root.join("var/lib/vireo/qemu/nvram/vm1_VARS.fd");
    assert!(
        live.contains(&format!(
            "<nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>{}</nvram>",
            nvram.display()
        )),
        "{live}"
    );
    let template = std::fs::read("/usr/share/OVMF/OVMF_VARS_4M.fd").expect("ovmf");
    assert_eq!(
        std::fs::metadata(&nvram).expect("nvram").len(),
        template.len() as u64
    );
    // The guest sees UEFI.
    guest_shell(
        &d,
        "vm1",
        &[
            "--resume",
            "test -d /sys/firmware/efi && echo EFI-$((1+1))",
            "EFI-2",
        ],
    );
    ok(&d.virsh(&["destroy", "vm1"]));

    // Secure boot with enrolled keys: the secure-boot build and the keys' store.
    let secure = xml.replace(
        "<os firmware='efi'>",
        "<os firmware='efi'><firmware><feature enabled='yes' name='secure-boot'/>\
         <feature enabled='yes' name='enrolled-keys'/></firmware>",
    );
    let secure = secure.replace("<features>", "<features><smm state='on'/>");
    ok(&d.virsh(&[
        "define",
        &write_file(&d, "vm2.xml", &secure.replace("vm1", "vm2")),
    ]));
    ok(&d.virsh(&["start", "--paused", "vm2"]));
    let live = ok(&d.virsh(&["dumpxml", "vm2"]));
    assert!(
        live.contains("OVMF_CODE_4M.secboot.fd") && live.contains("OVMF_VARS_4M.ms.fd"),
        "{live}"
    );
    ok(&d.virsh(&["destroy", "vm2"]));

    // The NVRAM holds the guest's variables: undefine asks what to do with it.
    let err = fails(&d.virsh(&["undefine", "vm1"]));
    assert!(err.contains("cannot undefine domain with nvram"), "{err}");
    ok(&d.virsh(&["undefine", "vm1", "--keep-nvram"]));
    assert!(nvram.exists());
    ok(&d.virsh(&["undefine", "vm2", "--nvram"]));
    assert!(!d.root.join("var/lib/vireo/qemu/nvram/vm2_VARS.fd").exists());
}
