//! Domain definition → QEMU command line.
//!
//! * `golden`: every `tests/data/cmdline/NAME.xml` must translate to `NAME.args` (one
//!   argument per line). `VIREO_BLESS=1 cargo test -p vireo-qemu --test cmdline` rewrites
//!   the `.args` files instead.
//! * `check_rejects`: what `check` refuses, and with which message.
//! * `qemu_accepts_golden_cases`: starts the real `qemu-system-x86_64` (paused by `-S`) on
//!   every golden case, completes the QMP handshake and quits, so that option syntax QEMU
//!   does not accept fails here. Paths under `/VIREO_TESTDIR` are redirected to a temporary
//!   directory holding small images made for the run. KVM cases run under TCG (nested KVM
//!   is unreliable on test hosts) unless `VIREO_QEMU_KVM=1`.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vireo_qemu::caps::{Machine, QemuCaps};
use vireo_qemu::cmdline::{self, LaunchConfig};
use vireo_xml::Domain;

const QEMU: &str = "/usr/bin/qemu-system-x86_64";
const PLACEHOLDER: &str = "/VIREO_TESTDIR";

fn caps() -> QemuCaps {
    let m = |name: &str, canonical: Option<&str>, max_cpus| Machine {
        name: name.into(),
        canonical: canonical.map(Into::into),
        max_cpus,
    };
    QemuCaps {
        emulator: QEMU.into(),
        version: 7_002_000,
        machines: vec![
            m("pc", Some("pc-i440fx-7.2"), 255),
            m("pc-i440fx-7.2", None, 255),
            m("q35", Some("pc-q35-7.2"), 288),
            m("pc-q35-7.2", None, 288),
        ],
        kvm: true,
    }
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cmdline")
}

/// `(name, xml text)` of every golden case, sorted by name.
fn cases() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(data_dir()).expect("tests/data/cmdline") {
        let path = entry.expect("directory entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("xml") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 file name")
            .to_string();
        out.push((name, fs::read_to_string(&path).expect("readable xml")));
    }
    out.sort();
    out
}

#[test]
fn golden() {
    let bless = std::env::var("VIREO_BLESS").is_ok_and(|v| v == "1");
    let caps = caps();
    let cases = cases();
    assert!(cases.len() >= 4, "golden cases are missing");
    let mut failures = Vec::new();
    for (name, xml) in &cases {
        let def = Domain::parse(xml).unwrap_or_else(|e| panic!("{name}.xml: {e}"));
        if let Err(e) = cmdline::check(&def, &caps) {
            failures.push(format!("{name}: check failed: {e}"));
            continue;
        }
        let cfg = LaunchConfig {
            monitor_fd: 3,
            run_dir: format!("/run/vireo/qemu/{name}").into(),
            secret_fds: Some(Default::default()),
            tap_fds: Some(Vec::new()),
            usb_host_fds: Some(Vec::new()),
            sandbox: true,
        };
        let args = match cmdline::build(&def, &caps, &cfg) {
            Ok(a) => a,
            Err(e) => {
                failures.push(format!("{name}: build failed: {e}"));
                continue;
            }
        };
        assert!(
            args.iter().all(|a| !a.contains('\n')),
            "{name}: an argument contains a newline"
        );
        let text = args.join("\n") + "\n";
        let args_path = data_dir().join(format!("{name}.args"));
        if bless {
            fs::write(&args_path, &text).expect("write .args");
            continue;
        }
        let expected = fs::read_to_string(&args_path).unwrap_or_default();
        if expected != text {
            let mut diff = String::new();
            let (e, g): (Vec<&str>, Vec<&str>) =
                (expected.lines().collect(), text.lines().collect());
            for i in 0..e.len().max(g.len()) {
                let (a, b) = (e.get(i).copied(), g.get(i).copied());
                if a != b {
                    diff.push_str(&format!(
                        "  line {}: expected {:?}\n           got      {:?}\n",
                        i + 1,
                        a.unwrap_or("<none>"),
                        b.unwrap_or("<none>")
                    ));
                }
            }
            failures.push(format!(
                "{name}: arguments differ from {name}.args (VIREO_BLESS=1 rewrites it)\n{diff}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// check
// ---------------------------------------------------------------------------

/// A small valid domain; `os`, `top` (features, cpu, clock, lifecycle) and `devices` are
/// pasted in.
fn domain(dom_type: &str, os: &str, top: &str, devices: &str) -> String {
    format!(
        "<domain type='{dom_type}'><name>t</name>\
         <uuid>11111111-2222-3333-4444-555555555555</uuid>\
         <memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os>{os}</os>{top}<devices>{devices}</devices></domain>"
    )
}

/// A launch configuration with no secrets and no taps, monitor on fd 7.
fn launch_cfg(run_dir: &str) -> LaunchConfig {
    LaunchConfig {
        monitor_fd: 7,
        run_dir: run_dir.into(),
        secret_fds: Some(Default::default()),
        tap_fds: Some(Vec::new()),
        usb_host_fds: Some(Vec::new()),
        sandbox: true,
    }
}

const PC: &str = "<type arch='x86_64' machine='pc'>hvm</type>";
const Q35: &str = "<type arch='x86_64' machine='q35'>hvm</type>";

fn check_xml(xml: &str) -> Result<(), String> {
    check_with(xml, &caps())
}

fn check_with(xml: &str, caps: &QemuCaps) -> Result<(), String> {
    let def = Domain::parse(xml).map_err(|e| format!("parse: {e}"))?;
    cmdline::check(&def, caps).map_err(|e| e.to_string())
}

#[test]
fn check_accepts_the_base_domain() {
    check_xml(&domain("qemu", PC, "", "")).expect("base domain");
    check_xml(&domain("kvm", Q35, "", "")).expect("base domain on q35");
    // Less memory at boot than the maximum, with a balloon to hold the rest.
    check_xml(
        &domain("qemu", PC, "", "<memballoon model='virtio'/>").replace(
            "<memory unit='MiB'>64</memory>",
            "<memory unit='MiB'>64</memory><currentMemory unit='MiB'>48</currentMemory>",
        ),
    )
    .expect("a ballooned guest");
    // An sd disk without a bus is on SCSI, as in libvirt (and gets a controller).
    check_xml(&domain(
        "qemu",
        PC,
        "",
        "<disk type='file' device='disk'><source file='/a.img'/><target dev='sda'/></disk>",
    ))
    .expect("a SCSI disk");
    // The shim sets the balloon's statistics period after QEMU starts.
    check_xml(&domain(
        "qemu",
        PC,
        "",
        "<memballoon model='virtio'><stats period='5'/></memballoon>",
    ))
    .expect("balloon with a statistics period");
}

#[test]
fn check_rejects() {
    let disk = |attrs: &str, inner: &str| format!("<disk {attrs}>{inner}</disk>");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "I/O thread of a SATA disk",
            domain(
                "qemu",
                PC,
                "<iothreads>1</iothreads>",
                "<disk type='file'><driver name='qemu' iothread='1'/><source file='/x'/>\
                 <target dev='sda' bus='sata'/></disk>",
            ),
            "only virtio disks can run in an I/O thread (bus 'sata')",
        ),
        (
            "I/O thread of an LSI controller",
            domain(
                "qemu",
                PC,
                "<iothreads>1</iothreads>",
                "<controller type='scsi' model='lsilogic'><driver iothread='1'/></controller>",
            ),
            "<driver iothread=…> is not supported",
        ),
        (
            "network interface",
            domain(
                "qemu",
                PC,
                "",
                "<interface type='network'><mac address='52:54:00:00:00:01'/></interface>",
            ),
            "a network interface needs <source network='…'/>",
        ),
        (
            "bridge interface without a bridge",
            domain(
                "qemu",
                PC,
                "",
                "<interface type='bridge'><mac address='52:54:00:00:00:01'/></interface>",
            ),
            "a bridge interface needs <source bridge='…'/>",
        ),
        (
            "direct interface",
            domain(
                "qemu",
                PC,
                "",
                "<interface type='direct'><mac address='52:54:00:00:00:01'/>\
                 <source dev='eth0' mode='bridge'/></interface>",
            ),
            "<interface type='direct'> is not supported by Vireo yet",
        ),
        (
            "interface without MAC",
            domain("qemu", PC, "", "<interface type='user'><model type='virtio'/></interface>"),
            "interface without MAC",
        ),
        (
            "vhost on user networking",
            domain(
                "qemu",
                PC,
                "",
                "<interface type='user'><mac address='52:54:00:00:00:01'/>\
                 <driver name='vhost'/></interface>",
            ),
            "<driver name='vhost'>",
        ),
        (
            "spice",
            domain("qemu", PC, "", "<graphics type='spice' autoport='yes'/>"),
            "<graphics type='spice'> is not supported (only vnc)",
        ),
        (
            "two graphics",
            domain("qemu", PC, "", "<graphics type='vnc'/><graphics type='vnc'/>"),
            "more than one <graphics>",
        ),
        (
            "vnc password",
            domain("qemu", PC, "", "<graphics type='vnc' passwd='secret'/>"),
            "VNC passwords",
        ),
        (
            "vnc port below 5900",
            domain("qemu", PC, "", "<graphics type='vnc' port='80' autoport='no'/>"),
            "the port must be 5900 to 65535",
        ),
        (
            "host-passthrough under tcg",
            domain("qemu", PC, "<cpu mode='host-passthrough'/>", ""),
            "<cpu mode='host-passthrough'> needs KVM",
        ),
        (
            "optional cpu feature",
            domain(
                "qemu",
                PC,
                "<cpu><model>qemu64</model><feature policy='optional' name='x2apic'/></cpu>",
                "",
            ),
            "policy='optional'",
        ),
        (
            "topology mismatch",
            domain(
                "qemu",
                PC,
                "<cpu><topology sockets='2' cores='1' threads='1'/></cpu>",
                "",
            ),
            "differs from the maximum vCPU count 1",
        ),
        (
            "loader without a file",
            domain("qemu", &format!("{PC}<loader readonly='yes' type='pflash'/>"), "", ""),
            "<loader> names no firmware file",
        ),
        (
            "secure boot on pc",
            domain("qemu", &format!("{PC}<loader readonly='yes' secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.secboot.fd</loader>"), "", ""),
            "secure boot needs a q35 machine",
        ),
        (
            "efi firmware not chosen",
            "<domain type='qemu'><name>t</name><uuid>11111111-2222-3333-4444-555555555555</uuid>\
             <memory>65536</memory><os firmware='efi'><type machine='q35'>hvm</type></os></domain>"
                .to_string(),
            "the driver chooses it at start",
        ),
        (
            "initrd without kernel",
            domain("qemu", &format!("{PC}<initrd>/boot/initrd</initrd>"), "", ""),
            "need a <kernel>",
        ),
        (
            "scsi controller model",
            domain(
                "qemu",
                PC,
                "",
                "<controller type='scsi' model='megasas'/>",
            ),
            "<controller type='scsi' model='megasas'> is not supported (lsilogic, virtio-scsi)",
        ),
        (
            "floppy",
            domain(
                "qemu",
                PC,
                "",
                &disk("type='file' device='floppy'", "<source file='/a.img'/><target dev='fda' bus='fdc'/>"),
            ),
            "device='floppy' is not supported",
        ),
        (
            "network disk",
            domain(
                "qemu",
                PC,
                "",
                &disk(
                    "type='network' device='disk'",
                    "<source protocol='nbd' name='x'><host name='h' port='10809'/></source>\
                     <target dev='vda' bus='virtio'/>",
                ),
            ),
            "type 'network' is not supported yet",
        ),
        (
            "vmdk image",
            domain(
                "qemu",
                PC,
                "",
                &disk(
                    "type='file' device='disk'",
                    "<driver name='qemu' type='vmdk'/><source file='/a.vmdk'/><target dev='vda' bus='virtio'/>",
                ),
            ),
            "image format 'vmdk' is not supported",
        ),
        (
            "disk without source",
            domain(
                "qemu",
                PC,
                "",
                &disk("type='file' device='disk'", "<target dev='vda' bus='virtio'/>"),
            ),
            "no <source>",
        ),
        (
            "io native without O_DIRECT",
            domain(
                "qemu",
                PC,
                "",
                &disk(
                    "type='file' device='disk'",
                    "<driver name='qemu' type='raw' io='native'/><source file='/a.img'/>\
                     <target dev='vda' bus='virtio'/>",
                ),
            ),
            "io='native' needs cache='none' or 'directsync'",
        ),
        (
            "ide disk on q35",
            domain(
                "qemu",
                Q35,
                "",
                &disk("type='file' device='disk'", "<source file='/a.img'/><target dev='hda' bus='ide'/>"),
            ),
            "q35 machines have no IDE bus",
        ),
        (
            "read-only sata disk",
            domain(
                "qemu",
                Q35,
                "",
                &disk(
                    "type='file' device='disk'",
                    "<source file='/a.img'/><target dev='sda' bus='sata'/><readonly/>",
                ),
            ),
            "a read-only disk needs bus='virtio'",
        ),
        (
            "virtio cdrom",
            domain(
                "qemu",
                PC,
                "",
                &disk("type='file' device='cdrom'", "<target dev='vda' bus='virtio'/>"),
            ),
            "a cdrom cannot be on the virtio bus",
        ),
        (
            "fifth ide disk",
            domain(
                "qemu",
                PC,
                "",
                &disk("type='file' device='disk'", "<source file='/a.img'/><target dev='hde' bus='ide'/>"),
            ),
            "only 4 units",
        ),
        (
            "shareable qcow2",
            domain(
                "qemu",
                PC,
                "",
                &disk(
                    "type='file' device='disk'",
                    "<driver name='qemu' type='qcow2'/><source file='/a.qcow2'/>\
                     <target dev='vda' bus='virtio'/><shareable/>",
                ),
            ),
            "a shareable disk must be raw",
        ),
        (
            "two disks with one target",
            domain(
                "qemu",
                PC,
                "",
                &format!(
                    "{0}{0}",
                    disk("type='file' device='disk'", "<source file='/a.img'/><target dev='vda' bus='virtio'/>")
                ),
            ),
            "target dev used by two disks",
        ),
        (
            "pci address on another bus",
            domain(
                "qemu",
                Q35,
                "",
                "<memballoon model='virtio'><address type='pci' domain='0x0000' bus='0x02' \
                 slot='0x00' function='0x0'/></memballoon>",
            ),
            "PCI bus 0x02 does not exist (no <controller type='pci' index='2'>)",
        ),
        (
            "pci address used twice",
            domain(
                "qemu",
                PC,
                "",
                "<memballoon model='virtio'><address type='pci' bus='0' slot='0x05'/></memballoon>\
                 <rng model='virtio'><backend model='random'>/dev/urandom</backend>\
                 <address type='pci' bus='0' slot='0x05'/></rng>",
            ),
            "PCI address 0x00:0x05.0 is already in use",
        ),
        (
            "pci address of the PIIX3 bridge",
            domain(
                "qemu",
                PC,
                "",
                "<memballoon model='virtio'><address type='pci' bus='0' slot='0x01' function='0x0'/></memballoon>",
            ),
            "already in use",
        ),
        (
            "dmi-to-pci-bridge",
            domain(
                "qemu",
                Q35,
                "",
                "<controller type='pci' index='1' model='dmi-to-pci-bridge'/>",
            ),
            "<controller type='pci' model='dmi-to-pci-bridge'> is not supported",
        ),
        (
            "pcie-root-port on pc",
            domain(
                "qemu",
                PC,
                "",
                "<controller type='pci' index='1' model='pcie-root-port'/>",
            ),
            "model='pcie-root-port'> needs a q35 machine",
        ),
        (
            "root port on its own bus",
            domain(
                "qemu",
                Q35,
                "",
                "<controller type='pci' index='1' model='pcie-root-port'>\
                 <address type='pci' bus='0x02' slot='0'/></controller>\
                 <controller type='pci' index='2' model='pcie-root-port'>\
                 <address type='pci' bus='0x00' slot='3'/></controller>",
            ),
            "it must sit on a bus of lower index than its own (bus 0x02)",
        ),
        (
            "pci-root on q35",
            domain("qemu", Q35, "", "<controller type='pci' index='0' model='pci-root'/>"),
            "<controller type='pci' index='0'> must be model 'pcie-root' on this machine",
        ),
        (
            "second usb controller",
            domain("qemu", PC, "", "<controller type='usb' index='1' model='qemu-xhci'/>"),
            "only index 0 is supported",
        ),
        (
            "scsi controller twice",
            domain(
                "qemu",
                PC,
                "",
                "<controller type='scsi' index='1' model='virtio-scsi'/>\
                 <controller type='scsi' index='1' model='virtio-scsi'/>",
            ),
            "<controller type='scsi' index='1'> appears twice",
        ),
        (
            "disk on a missing scsi controller",
            domain(
                "qemu",
                PC,
                "",
                "<controller type='scsi' index='0' model='virtio-scsi'/>\
                 <disk type='file' device='disk'><source file='/a.img'/>\
                 <target dev='sda' bus='scsi'/>\
                 <address type='drive' controller='3' bus='0' target='0' unit='0'/></disk>",
            ),
            "there is no <controller type='scsi' index='3'> for it",
        ),
        (
            "channel on a missing virtio-serial controller",
            domain(
                "qemu",
                PC,
                "",
                "<controller type='virtio-serial' index='0'/>\
                 <channel type='unix'><source mode='bind' path='/run/x/c.sock'/>\
                 <target type='virtio' name='a.b'/>\
                 <address type='virtio-serial' controller='1' bus='0' port='1'/></channel>",
            ),
            "there is no <controller type='virtio-serial' index='1'>",
        ),
        (
            "ide controller on q35",
            domain("qemu", Q35, "", "<controller type='ide' index='0'/>"),
            "q35 machines have no IDE controller",
        ),
        (
            "usb tablet without usb",
            domain(
                "qemu",
                PC,
                "",
                "<controller type='usb' index='0' model='none'/><input type='tablet' bus='usb'/>",
            ),
            "USB input devices need a USB controller",
        ),
        (
            "piix4 usb controller",
            domain("qemu", PC, "", "<controller type='usb' index='0' model='piix4-uhci'/>"),
            "model='piix4-uhci'> is not supported",
        ),
        (
            "usb companion without its master",
            domain(
                "qemu",
                PC,
                "",
                "<controller type='usb' model='ich9-uhci1'><master startport='0'/></controller>",
            ),
            "needs an ich9-ehci1 master",
        ),
        (
            "usb companion twice",
            domain(
                "qemu",
                PC,
                "",
                "<controller type='usb' model='ich9-ehci1'/>\
                 <controller type='usb' model='ich9-uhci1'><master startport='0'/></controller>\
                 <controller type='usb' model='ich9-uhci1'><master startport='2'/></controller>",
            ),
            "appears twice",
        ),
        (
            "ps2 tablet",
            domain("qemu", PC, "", "<input type='tablet' bus='ps2'/>"),
            "does not exist",
        ),
        (
            "evdev input",
            domain("qemu", PC, "", "<input type='evdev'><source dev='/dev/input/event1'/></input>"),
            "host input passthrough",
        ),
        (
            "tcp serial over TLS",
            domain(
                "qemu",
                PC,
                "",
                "<serial type='tcp'><source mode='bind' host='127.0.0.1' service='4555' \
                 tls='yes'/><protocol type='raw'/></serial>",
            ),
            "TLS on a tcp character device",
        ),
        (
            "redirdev over SPICE",
            domain("qemu", PC, "", "<redirdev bus='usb' type='spicevmc'/>"),
            "needs SPICE",
        ),
        (
            "udp serial",
            domain(
                "qemu",
                PC,
                "",
                "<serial type='udp'><source mode='connect' host='127.0.0.1' service='4555'/></serial>",
            ),
            "character device type 'udp' is not supported",
        ),
        (
            "spicevmc channel",
            domain(
                "qemu",
                PC,
                "",
                "<channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel>",
            ),
            "needs SPICE",
        ),
        (
            "guestfwd channel",
            domain(
                "qemu",
                PC,
                "",
                "<channel type='pty'><target type='guestfwd' address='10.0.2.1' port='4600'/></channel>",
            ),
            "target type 'guestfwd' is not supported",
        ),
        (
            "unix connect without path",
            domain(
                "qemu",
                PC,
                "",
                "<serial type='unix'><source mode='connect'/></serial>",
            ),
            "mode='connect' needs <source path=...>",
        ),
        (
            "console that differs from the serial",
            domain(
                "qemu",
                PC,
                "",
                "<serial type='pty'/><console type='file'><source path='/tmp/x'/>\
                 <target type='serial'/></console>",
            ),
            "differs from the <serial type='pty'>",
        ),
        (
            "egd rng",
            domain(
                "qemu",
                PC,
                "",
                "<rng model='virtio'><backend model='egd' type='pty'/></rng>",
            ),
            "the egd backend is not supported",
        ),
        (
            "rng from a file",
            domain(
                "qemu",
                PC,
                "",
                "<rng model='virtio'><backend model='random'>/tmp/entropy</backend></rng>",
            ),
            "backend '/tmp/entropy' is not allowed",
        ),
        (
            "vmvga video",
            domain("qemu", PC, "", "<video><model type='vmvga'/></video>"),
            "<video><model type='vmvga'> is not supported",
        ),
        (
            "two videos",
            domain(
                "qemu",
                PC,
                "",
                "<video><model type='vga'/></video><video><model type='qxl'/></video>",
            ),
            "more than one <video>",
        ),
        (
            "pit tick policy merge",
            domain("qemu", PC, "<clock offset='utc'><timer name='pit' tickpolicy='merge'/></clock>", ""),
            "unsupported pit tickpolicy 'merge'",
        ),
        (
            "variable clock",
            domain("qemu", PC, "<clock offset='variable' adjustment='10' basis='utc'/>", ""),
            "<clock offset='variable'> is not supported yet",
        ),
        (
            "tsc timer",
            domain("qemu", PC, "<clock offset='utc'><timer name='tsc' frequency='3000000000'/></clock>", ""),
            "<timer name='tsc'>",
        ),
        (
            "hyperv",
            domain("kvm", PC, "<features><acpi/><hyperv mode='custom'><relaxed state='on'/></hyperv></features>", ""),
            "<features><hyperv> (Hyper-V enlightenments) is not supported yet",
        ),
        (
            "apic eoi",
            domain("kvm", PC, "<features><apic eoi='on'/></features>", ""),
            "<features><apic eoi=...>",
        ),
        (
            "gic on x86",
            domain("qemu", PC, "<features><gic version='3'/></features>", ""),
            "does not apply to x86",
        ),
        (
            "on_reboot preserve",
            domain("qemu", PC, "<on_reboot>preserve</on_reboot>", ""),
            "<on_reboot>preserve</on_reboot> is not supported",
        ),
        (
            "on_crash coredump",
            domain("qemu", PC, "<on_crash>coredump-destroy</on_crash>", ""),
            "<on_crash>coredump-destroy</on_crash> is not supported",
        ),
        (
            "memory balloon at start",
            "<domain type='qemu'><name>t</name><uuid>11111111-2222-3333-4444-555555555555</uuid>\
             <memory unit='MiB'>128</memory><currentMemory unit='MiB'>64</currentMemory>\
             <os><type machine='pc'>hvm</type></os></domain>"
                .to_string(),
            "<currentMemory> (65536 KiB) smaller than <memory> (131072 KiB)",
        ),
        (
            "too many vcpus",
            "<domain type='qemu'><name>t</name><uuid>11111111-2222-3333-4444-555555555555</uuid>\
             <memory>65536</memory><vcpu>300</vcpu>\
             <os><type machine='q35'>hvm</type></os></domain>"
                .to_string(),
            "300 vCPUs exceed the maximum of 288",
        ),
        (
            "unknown machine",
            domain("qemu", "<type machine='microvm'>hvm</type>", "", ""),
            "machine type 'microvm' is not offered by /usr/bin/qemu-system-x86_64",
        ),
        (
            "other architecture",
            domain("qemu", "<type arch='aarch64' machine='virt'>hvm</type>", "", ""),
            "architecture 'aarch64' is not supported",
        ),
        (
            "missing uuid",
            "<domain type='qemu'><name>t</name><memory>65536</memory>\
             <os><type machine='pc'>hvm</type></os></domain>"
                .to_string(),
            "the domain has no UUID",
        ),
    ];
    let mut failures = Vec::new();
    for (what, xml, expected) in &cases {
        match check_xml(xml) {
            Ok(()) => failures.push(format!("{what}: accepted")),
            Err(e) if e.starts_with("unsupported configuration: ") && e.contains(expected) => {}
            Err(e) => failures.push(format!(
                "{what}: got '{e}', expected it to contain '{expected}'"
            )),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn check_rejects_kvm_without_kvm() {
    let mut caps = caps();
    caps.kvm = false;
    let err = check_with(&domain("kvm", PC, "", ""), &caps).expect_err("kvm without /dev/kvm");
    assert_eq!(
        err,
        "unsupported configuration: KVM is not available on this host"
    );
    check_with(&domain("qemu", PC, "", ""), &caps).expect("tcg is always there");
}

#[test]
fn check_rejects_old_qemu() {
    let mut caps = caps();
    caps.version = 6_002_000;
    let err = check_with(&domain("qemu", PC, "", ""), &caps).expect_err("old QEMU");
    assert!(err.contains("QEMU 6.2.0 is too old"), "{err}");
    // An unknown version (missing emulator at define time) is not held against the domain.
    caps.version = 0;
    check_with(&domain("qemu", PC, "", ""), &caps).expect("unknown version");
}

#[test]
fn block_devices_and_paths() {
    let xml = domain(
        "qemu",
        PC,
        "",
        "<disk type='block' device='disk'><source dev='/dev/vg/guest'/>\
         <target dev='vda' bus='virtio'/></disk>\
         <disk type='block' device='cdrom'><source dev='/dev/sr0'/>\
         <target dev='hdc' bus='ide'/></disk>\
         <serial type='unix'><source mode='bind'/></serial>\
         <channel type='unix'><source mode='bind'/><target type='virtio' name='../evil'/></channel>",
    );
    let def = Domain::parse(&xml).expect("parse");
    let cfg = launch_cfg("/run/x,y");
    let args = cmdline::build(&def, &caps(), &cfg).expect("build");
    let has = |s: &str| args.iter().any(|a| a == s);
    assert!(
        has(
            r#"{"driver":"host_device","filename":"/dev/vg/guest","node-name":"libvirt-2-storage","auto-read-only":true,"discard":"unmap"}"#
        ),
        "{args:#?}"
    );
    assert!(
        has(
            r#"{"driver":"host_cdrom","filename":"/dev/sr0","node-name":"libvirt-1-storage","auto-read-only":true,"discard":"unmap"}"#
        ),
        "{args:#?}"
    );
    assert!(
        has("socket,id=charmonitor,fd=7,server=on,wait=off"),
        "{args:#?}"
    );
    // Sockets without a path go under the run directory (commas escaped); a channel name
    // that is not a plain file name is not used as one.
    assert!(
        has("socket,id=charserial0,path=/run/x,,y/serial0.sock,server=on,wait=off"),
        "{args:#?}"
    );
    assert!(
        has("socket,id=charchannel0,path=/run/x,,y/channel0.sock,server=on,wait=off"),
        "{args:#?}"
    );
}

/// Interfaces on networks and host bridges use the taps the network driver made, in
/// interface order; a user-mode interface between them keeps its own backend.
#[test]
fn network_interfaces_use_their_taps() {
    let xml = domain(
        "qemu",
        PC,
        "",
        "<interface type='network'><mac address='52:54:00:00:00:01'/>\
         <source network='default'/><model type='virtio'/></interface>\
         <interface type='user'><mac address='52:54:00:00:00:02'/></interface>\
         <interface type='network'><mac address='52:54:00:00:00:03'/>\
         <source network='other'/><model type='e1000'/></interface>\
         <interface type='bridge'><mac address='52:54:00:00:00:04'/>\
         <source bridge='br0'/><model type='virtio'/></interface>",
    );
    let def = Domain::parse(&xml).expect("parse");
    let mut cfg = LaunchConfig {
        monitor_fd: 3,
        run_dir: "/run/x".into(),
        secret_fds: Some(Default::default()),
        tap_fds: Some(vec![200, 201, 202]),
        usb_host_fds: Some(Vec::new()),
        sandbox: true,
    };
    let args = cmdline::build(&def, &caps(), &cfg).expect("build");
    let has = |s: &str| args.iter().any(|a| a == s);
    assert!(has("tap,fd=200,id=hostnet0"), "{args:#?}");
    assert!(has("user,id=hostnet1"), "{args:#?}");
    assert!(has("tap,fd=201,id=hostnet2"), "{args:#?}");
    assert!(has("tap,fd=202,id=hostnet3"), "{args:#?}");
    cfg.tap_fds = Some(vec![200, 201]);
    let err = cmdline::build(&def, &caps(), &cfg).unwrap_err().to_string();
    assert!(err.contains("no tap device"), "{err}");
}

/// A qcow2 disk's backing chain is given to QEMU layer by layer, each with the format its
/// overlay records; a backing file with no recorded format is raw, never probed.
#[test]
fn qcow2_backing_chains_are_explicit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |n: &str| dir.path().join(n).to_str().expect("utf-8").to_string();
    let img = |args: &[&str]| {
        let st = Command::new(vireo_hostprog::require("qemu-img"))
            .args(args)
            .status()
            .expect("run qemu-img");
        assert!(st.success(), "qemu-img {args:?}");
    };
    // base is raw but holds a qcow2 header, as a guest could write one.
    img(&["create", "-q", "-f", "qcow2", &p("base"), "1M"]);
    img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        &p("base"),
        "-F",
        "raw",
        &p("top"),
        "1M",
    ]);
    // Drop the recorded backing format (qemu-img no longer makes such images; old ones
    // exist): its header extension becomes one nobody knows.
    let mut head = fs::read(p("top")).expect("read top");
    let at = head
        .windows(4)
        .position(|w| w == [0xe2, 0x79, 0x2a, 0xca])
        .expect("backing format extension");
    head[at..at + 4].copy_from_slice(&[0, 0, 0, 1]);
    fs::write(p("top"), head).expect("write top");
    let xml = domain(
        "qemu",
        PC,
        "",
        &format!(
            "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
             <source file='{}'/><target dev='vda' bus='virtio'/></disk>",
            p("top")
        ),
    );
    let def = Domain::parse(&xml).expect("parse");
    let cfg = LaunchConfig {
        monitor_fd: 3,
        run_dir: dir.path().to_path_buf(),
        secret_fds: Some(Default::default()),
        tap_fds: Some(Vec::new()),
        usb_host_fds: Some(Vec::new()),
        sandbox: true,
    };
    let args = cmdline::build(&def, &caps(), &cfg).expect("build");
    let has = |s: &str| args.iter().any(|a| a == s);
    assert!(
        has(
            r#"{"node-name":"libvirt-1-b1-format","read-only":true,"driver":"raw","file":"libvirt-1-b1-storage"}"#
        ),
        "{args:#?}"
    );
    assert!(
        has(
            r#"{"node-name":"libvirt-1-format","read-only":false,"driver":"qcow2","file":"libvirt-1-storage","backing":"libvirt-1-b1-format"}"#
        ),
        "{args:#?}"
    );
    // The backing layer is defined before the overlay that uses it.
    let at = |s: &str| args.iter().position(|a| a.contains(s)).expect(s);
    assert!(at("libvirt-1-b1-format") < at(r#""node-name":"libvirt-1-format""#));
}

// ---------------------------------------------------------------------------
// The real QEMU
// ---------------------------------------------------------------------------

/// Kills and reaps QEMU whatever happens to the test.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A multiboot image QEMU can load with `-kernel` (it never runs: CPUs stay stopped).
fn fake_kernel() -> Vec<u8> {
    let magic: u32 = 0x1bad_b002;
    let flags: u32 = 0x0001_0000; // load addresses given in the header
    let header = [
        magic,
        flags,
        0u32.wrapping_sub(magic.wrapping_add(flags)),
        0x0010_0000, // header_addr
        0x0010_0000, // load_addr
        0,           // load_end_addr: whole file
        0,           // bss_end_addr
        0x0010_0020, // entry_addr
    ];
    let mut image: Vec<u8> = header.iter().flat_map(|w| w.to_le_bytes()).collect();
    image.extend_from_slice(&[0xf4, 0xeb, 0xfd]); // hlt; jmp back
    image.resize(4096, 0);
    image
}

/// Makes the files a case refers to under the placeholder directory. Returns the
/// listeners for `*.listen.sock` (QEMU connects to them); other `*.sock` are QEMU's own.
fn prepare_files(xml: &str, dir: &Path) -> Vec<UnixListener> {
    let mut listeners = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find(PLACEHOLDER) {
        let after = &rest[at + PLACEHOLDER.len()..];
        let end = after
            .find(|c: char| c == '\'' || c == '"' || c == '<' || c.is_whitespace())
            .unwrap_or(after.len());
        let name = after[..end].trim_start_matches('/');
        rest = &after[end..];
        let path = dir.join(name);
        if path.exists() {
            continue;
        }
        if name.ends_with(".listen.sock") {
            listeners.push(UnixListener::bind(&path).expect("bind test socket"));
        } else if name.ends_with(".sock") || name.ends_with(".log") {
            // Created by QEMU.
        } else if name.ends_with(".qcow2") {
            let st = Command::new(vireo_hostprog::require("qemu-img"))
                .args(["create", "-q", "-f", "qcow2"])
                .arg(&path)
                .arg("64M")
                .status()
                .expect("run qemu-img");
            assert!(st.success(), "qemu-img create {}", path.display());
        } else if name.ends_with("VARS.fd") {
            // A UEFI variable store: the firmware's own template.
            fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &path).expect("OVMF (package ovmf)");
        } else if name.starts_with("vmlinuz") {
            fs::write(&path, fake_kernel()).expect("write kernel");
        } else {
            fs::write(&path, vec![0u8; 1 << 20]).expect("write image");
        }
    }
    listeners
}

/// Nested KVM is unreliable on test machines (vCPU setup can abort even with -S), so KVM
/// cases run under TCG unless VIREO_QEMU_KVM=1; only `-accel` and `-cpu host` change.
fn maybe_tcg(args: Vec<String>) -> Vec<String> {
    if std::env::var("VIREO_QEMU_KVM").is_ok_and(|v| v == "1") {
        return args;
    }
    let mut out = Vec::with_capacity(args.len());
    let mut prev = String::new();
    for a in args {
        let a = match prev.as_str() {
            "-accel" if a == "kvm" => "tcg".to_string(),
            "-cpu" if a == "host" || a.starts_with("host,") => format!("max{}", &a[4..]),
            _ => a,
        };
        prev.clone_from(&a);
        out.push(a);
    }
    out
}

fn read_reply(r: &mut impl BufRead, what: &str) -> Result<serde_json::Value, String> {
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) => return Err(format!("monitor closed while waiting for {what}")),
            Ok(_) => {}
            Err(e) => return Err(format!("reading {what}: {e}")),
        }
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| format!("{what}: bad JSON {line:?}: {e}"))?;
        if v.get("event").is_some() {
            continue;
        }
        if let Some(err) = v.get("error") {
            return Err(format!("{what}: {err}"));
        }
        return Ok(v);
    }
}

/// Runs QEMU with `args`, talks QMP, quits. `Err` carries what went wrong and QEMU's stderr.
fn run_qemu(args: &[String], dir: &Path) -> Result<String, String> {
    let mon_path = dir.join("monitor.sock");
    let listener = UnixListener::bind(&mon_path).map_err(|e| format!("bind monitor: {e}"))?;
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new(QEMU);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls (fcntl, dup2) on fds open in the child run
    // between fork and exec. The listener becomes fd 3 without FD_CLOEXEC.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                let flags = libc::fcntl(3, libc::F_GETFD);
                if flags < 0 || libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = KillOnDrop(cmd.spawn().map_err(|e| format!("spawn QEMU: {e}"))?);
    // Only QEMU holds the listening socket now: if it dies, connecting or reading fails
    // instead of hanging.
    drop(listener);
    let mut stderr = child.0.stderr.take().ok_or("no stderr pipe")?;
    let stderr_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    let talk = || -> Result<(), String> {
        let stream = UnixStream::connect(&mon_path).map_err(|e| format!("connect: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let mut w = stream.try_clone().map_err(|e| e.to_string())?;
        let mut r = BufReader::new(stream);
        let greeting = read_reply(&mut r, "greeting")?;
        if greeting.get("QMP").is_none() {
            return Err(format!("unexpected greeting {greeting}"));
        }
        let mut cmd = |c: &str| -> Result<serde_json::Value, String> {
            writeln!(w, "{{\"execute\":\"{c}\"}}").map_err(|e| format!("send {c}: {e}"))?;
            read_reply(&mut r, c)
        };
        cmd("qmp_capabilities")?;
        let status = cmd("query-status")?;
        if status["return"]["status"] != "prelaunch" {
            return Err(format!("not paused before launch: {status}"));
        }
        cmd("quit")?;
        Ok(())
    };
    let talked = talk();

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        match child.0.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => break None,
        }
    };
    if status.is_none() {
        let _ = child.0.kill();
    }
    drop(child);
    let err_text = stderr_reader.join().unwrap_or_default();
    match (talked, status) {
        (Ok(()), Some(st)) if st.success() => Ok(err_text),
        (Ok(()), st) => Err(format!("QEMU did not exit cleanly ({st:?})\n{err_text}")),
        (Err(e), st) => Err(format!("{e} (exit: {st:?})\n{err_text}")),
    }
}

#[test]
fn qemu_accepts_golden_cases() {
    vireo_hostprog::require(QEMU);
    vireo_hostprog::require("qemu-img");
    let caps = caps();
    let mut failures = Vec::new();
    for (name, xml) in cases() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let dir_str = dir.to_str().expect("utf-8 temp dir");
        let _listeners = prepare_files(&xml, dir);
        let xml = xml.replace(PLACEHOLDER, dir_str);
        let def = Domain::parse(&xml).unwrap_or_else(|e| panic!("{name}: {e}"));
        let run_dir = dir.join("run");
        fs::create_dir_all(&run_dir).expect("run dir");
        let cfg = LaunchConfig {
            monitor_fd: 3,
            run_dir,
            secret_fds: Some(Default::default()),
            tap_fds: Some(Vec::new()),
            usb_host_fds: Some(Vec::new()),
            sandbox: true,
        };
        let args = match cmdline::build(&def, &caps, &cfg) {
            Ok(a) => maybe_tcg(a),
            Err(e) => {
                failures.push(format!("{name}: build: {e}"));
                continue;
            }
        };
        match run_qemu(&args, dir) {
            Ok(stderr) => {
                // A clean start prints nothing: warnings (deprecated options, missing
                // CPU features, ...) count as failures. The one expected line is QEMU
                // saying which display `-vnc ...,to=N` settled on.
                let unexpected: Vec<&str> = stderr
                    .lines()
                    .filter(|l| !l.trim().is_empty() && !l.starts_with("VNC server running on "))
                    .collect();
                if !unexpected.is_empty() {
                    failures.push(format!("{name}: QEMU warned:\n{stderr}\nargs: {args:?}"));
                }
            }
            Err(e) => failures.push(format!("{name}: {e}\nargs: {args:?}")),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn scsi_disks_sit_on_their_controller() {
    let cfg = launch_cfg("/run/x");
    let disks = "<disk type='file' device='disk'><source file='/a.img'/>\
                 <target dev='sda' bus='scsi'/></disk>\
                 <disk type='file' device='cdrom'><source file='/b.iso'/>\
                 <target dev='sdc' bus='scsi'/>\
                 <address type='drive' controller='0' bus='0' target='2' unit='5'/></disk>";
    // lsilogic: the unit is the SCSI id; a target other than 0 has no place.
    let lsi = domain(
        "qemu",
        PC,
        "",
        &format!(
            "<controller type='scsi' model='lsilogic'>\
             <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>\
             </controller>{}",
            disks.replace(" target='2'", "")
        ),
    );
    let args =
        cmdline::build(&Domain::parse(&lsi).unwrap(), &caps(), &cfg).expect("build lsilogic");
    let has = |args: &[String], s: &str| args.iter().any(|a| a.starts_with(s));
    assert!(has(&args, "lsi,id=scsi0,bus=pci.0,addr=0x5"), "{args:#?}");
    assert!(
        has(
            &args,
            "scsi-hd,bus=scsi0.0,scsi-id=0,drive=libvirt-2-format,id=scsi0-0-0-0"
        ),
        "{args:#?}"
    );
    assert!(
        has(
            &args,
            "scsi-cd,bus=scsi0.0,scsi-id=5,drive=libvirt-1-format,id=scsi0-0-0-5"
        ),
        "{args:#?}"
    );
    // virtio-scsi: target and lun.
    let vscsi = domain(
        "qemu",
        PC,
        "",
        &format!(
            "<controller type='scsi' model='virtio-scsi'>\
             <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>\
             </controller>{disks}"
        ),
    );
    let args =
        cmdline::build(&Domain::parse(&vscsi).unwrap(), &caps(), &cfg).expect("build virtio-scsi");
    assert!(
        has(&args, "virtio-scsi-pci,id=scsi0,bus=pci.0,addr=0x5"),
        "{args:#?}"
    );
    assert!(
        has(
            &args,
            "scsi-cd,bus=scsi0.0,channel=0,scsi-id=2,lun=5,drive=libvirt-1-format,id=scsi0-0-2-5"
        ),
        "{args:#?}"
    );
    let e = cmdline::build(
        &Domain::parse(&lsi.replace("unit='5'", "unit='5' target='1'")).unwrap(),
        &caps(),
        &cfg,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not available on an lsilogic controller"), "{e}");
    // Without a controller, libvirt's default one (lsilogic) is added.
    let none = domain("qemu", PC, "", disks);
    let e = cmdline::build(&Domain::parse(&none).unwrap(), &caps(), &cfg)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not available on an lsilogic controller"), "{e}");
}

/// SCSI and virtio-serial controllers beyond index 0: each its own device (`scsiN`,
/// `virtio-serialN`), a disk on the controller its drive address names, channels on the
/// controller theirs names (else the first one), ports counted per controller.
#[test]
fn controllers_beyond_index_0() {
    let cfg = launch_cfg("/run/x");
    let pci = |slot: u32| {
        format!(
            "<address type='pci' domain='0x0000' bus='0x00' slot='{slot:#04x}' function='0x0'/>"
        )
    };
    let xml = domain(
        "qemu",
        PC,
        "",
        &format!(
            "<controller type='scsi' index='0' model='virtio-scsi'>{}</controller>\
             <controller type='scsi' index='1' model='lsilogic'>{}</controller>\
             <controller type='virtio-serial' index='0'>{}</controller>\
             <controller type='virtio-serial' index='1' ports='8'>{}</controller>\
             <disk type='file' device='disk'><source file='/a.img'/>\
             <target dev='sda' bus='scsi'/>\
             <address type='drive' controller='1' bus='0' target='0' unit='3'/></disk>\
             <channel type='unix'><source mode='bind' path='/run/x/a.sock'/>\
             <target type='virtio' name='a.0'/></channel>\
             <channel type='unix'><source mode='bind' path='/run/x/b.sock'/>\
             <target type='virtio' name='b.1'/>\
             <address type='virtio-serial' controller='1' bus='0' port='1'/></channel>\
             <channel type='unix'><source mode='bind' path='/run/x/c.sock'/>\
             <target type='virtio' name='c.1'/>\
             <address type='virtio-serial' controller='1' bus='0'/></channel>",
            pci(5),
            pci(6),
            pci(7),
            pci(8)
        ),
    );
    let args = cmdline::build(&Domain::parse(&xml).unwrap(), &caps(), &cfg).expect("build");
    let has = |s: &str| args.iter().any(|a| a.starts_with(s));
    for want in [
        "virtio-scsi-pci,id=scsi0,bus=pci.0,addr=0x5",
        "lsi,id=scsi1,bus=pci.0,addr=0x6",
        "virtio-serial-pci,id=virtio-serial0,bus=pci.0,addr=0x7",
        "virtio-serial-pci,id=virtio-serial1,max_ports=8,bus=pci.0,addr=0x8",
        "scsi-hd,bus=scsi1.0,scsi-id=3,drive=libvirt-1-format,id=scsi1-0-0-3",
        "virtserialport,bus=virtio-serial0.0,nr=1,chardev=charchannel0,id=channel0,name=a.0",
        "virtserialport,bus=virtio-serial1.0,nr=1,chardev=charchannel1,id=channel1,name=b.1",
        "virtserialport,bus=virtio-serial1.0,nr=2,chardev=charchannel2,id=channel2,name=c.1",
    ] {
        assert!(has(want), "no {want} in {args:#?}");
    }
    // The same port twice on one controller, not on two.
    let twice = xml.replace("bus='0'/></channel>", "bus='0' port='1'/></channel>");
    let e = cmdline::build(&Domain::parse(&twice).unwrap(), &caps(), &cfg)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("virtio-serial port 1 of controller 1 is used twice"),
        "{e}"
    );
}

/// The `device_add` of a controller plugged into a running VM: SCSI and virtio-serial
/// ones of any index, no other kind.
#[test]
fn hot_plugged_controllers() {
    let c = |x: &str| -> vireo_xml::Controller { vireo_xml::parse_root(x, "controller").unwrap() };
    let v = cmdline::hotplug_controller(&c(
        "<controller type='scsi' index='2' model='virtio-scsi'>\
         <address type='pci' domain='0x0000' bus='0x00' slot='0x09' function='0x0'/></controller>",
    ))
    .unwrap();
    assert_eq!(v["driver"], "virtio-scsi-pci");
    assert_eq!(v["id"], "scsi2");
    let v = cmdline::hotplug_controller(&c(
        "<controller type='virtio-serial' index='1' ports='4'>\
         <address type='pci' domain='0x0000' bus='0x00' slot='0x0a' function='0x0'/></controller>",
    ))
    .unwrap();
    assert_eq!(v["driver"], "virtio-serial-pci");
    assert_eq!(v["id"], "virtio-serial1");
    assert_eq!(v["max_ports"], 4);
    let e = cmdline::hotplug_controller(&c("<controller type='usb' index='1' model='qemu-xhci'/>"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("'usb' controller cannot be hot plugged"), "{e}");
}

/// A LUKS disk plugged in: its format node reads the key from the secret object it is
/// given; without one it is refused. The secret objects a VM starts with are named after
/// the first disk of each secret, as the command line names them.
#[test]
fn hot_plugged_luks_disks() {
    let s = "<encryption format='luks'><secret type='passphrase' \
             uuid='11111111-2222-3333-4444-555555555555'/></encryption>";
    let disk = |fmt: &str, dev: &str, file: &str| -> vireo_xml::Disk {
        vireo_xml::parse_root(
            &format!(
                "<disk type='file' device='disk'><driver name='qemu' type='{fmt}'/>\
                 <source file='{file}'/><target dev='{dev}' bus='virtio'/>{s}</disk>"
            ),
            "disk",
        )
        .unwrap()
    };
    let raw = disk("raw", "vdb", "/nonexistent/a.img");
    let (nodes, device, id) =
        cmdline::hotplug_disk(&raw, 3, &[], Some("libvirt-3-format-encryption-secret0")).unwrap();
    assert_eq!(id, "virtio-disk1");
    assert_eq!(device["drive"], "libvirt-3-format");
    let top = cmdline::node_object(nodes.nodes.last().unwrap());
    assert_eq!(top["driver"], "luks");
    assert_eq!(top["key-secret"], "libvirt-3-format-encryption-secret0");
    let q = disk("qcow2", "vdc", "/nonexistent/b.qcow2");
    let (nodes, _, _) = cmdline::hotplug_disk(&q, 4, &[], Some("k")).unwrap();
    let top = cmdline::node_object(nodes.nodes.last().unwrap());
    assert_eq!(top["driver"], "qcow2");
    assert_eq!(top["encrypt"]["key-secret"], "k");
    let Err(e) = cmdline::hotplug_disk(&raw, 3, &[], None) else {
        panic!("an encrypted disk without its secret");
    };
    let e = e.to_string();
    assert!(e.contains("its passphrase was not given"), "{e}");
    // Ids: a free one after a name a disk of the VM still has.
    let id = cmdline::hotplug_secret_id(2, |x| x == "libvirt-2-format-encryption-secret0");
    assert_eq!(id, "libvirt-2-format-encryption-secret0-1");
    let o = cmdline::secret_object(&id, 27);
    assert_eq!(o["qom-type"], "secret");
    assert_eq!(o["file"], "/dev/fd/27");
    // At start: three disks, the first and the last of one secret.
    let mut plain = disk("raw", "vdd", "/c");
    plain.encryption = None;
    let ids = cmdline::initial_secret_ids(&[raw.clone(), plain, q]);
    let first = Some("libvirt-3-format-encryption-secret0".to_string());
    assert_eq!(ids, vec![first.clone(), None, first]);
}

/// libvirt's PIT policies: every one but merge is taken; under TCG (QEMU's own PIT) none
/// changes the command line, under KVM delay and discard set the in-kernel PIT's.
#[test]
fn pit_tick_policies_as_libvirt_takes_them() {
    let cfg = launch_cfg("/run/x");
    let kvm = QemuCaps {
        kvm: true,
        ..caps()
    };
    for (policy, tcg_global, kvm_global) in [
        ("delay", None, Some("kvm-pit.lost_tick_policy=delay")),
        ("discard", None, Some("kvm-pit.lost_tick_policy=discard")),
        ("catchup", None, None),
    ] {
        let clock =
            format!("<clock offset='utc'><timer name='pit' tickpolicy='{policy}'/></clock>");
        for (ty, caps, want) in [
            ("qemu", caps(), tcg_global),
            ("kvm", kvm.clone(), kvm_global),
        ] {
            let def = Domain::parse_kept(&domain(ty, PC, &clock, "")).expect("parse");
            let args =
                cmdline::build(&def, &caps, &cfg).unwrap_or_else(|e| panic!("{policy}: {e}"));
            let pit = args
                .iter()
                .find(|a| a.starts_with("kvm-pit."))
                .map(String::as_str);
            assert_eq!(pit, want, "{ty} {policy}: {args:?}");
        }
    }
}

#[test]
fn smbios_tables_from_sysinfo() {
    let cfg = launch_cfg("/run/x");
    let sysinfo = "<sysinfo type='smbios'>\
         <bios><entry name='vendor'>Vireo</entry><entry name='date'>12/01/2026</entry></bios>\
         <system><entry name='manufacturer'>OpenStack Foundation</entry>\
         <entry name='product'>OpenStack, Nova</entry>\
         <entry name='uuid'>11111111-2222-3333-4444-555555555555</entry></system>\
         <baseBoard><entry name='serial'>B1</entry></baseBoard>\
         <chassis><entry name='asset'>A1</entry></chassis>\
         <oemStrings><entry>app:one</entry><entry>app:two</entry></oemStrings>\
         </sysinfo>";
    let os = |mode: &str| format!("{PC}<smbios mode='{mode}'/>");
    let build = |xml: &str| {
        let def = Domain::parse_kept(xml).map_err(|e| e.to_string())?;
        cmdline::build(&def, &caps(), &cfg).map_err(|e| e.to_string())
    };
    let args = build(&domain("qemu", &os("sysinfo"), sysinfo, "")).expect("sysinfo");
    let smbios: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "-smbios")
        .map(|w| w[1].as_str())
        .collect();
    assert_eq!(
        smbios,
        [
            "type=0,vendor=Vireo,date=12/01/2026",
            "type=1,manufacturer=OpenStack Foundation,product=OpenStack,, Nova,\
             uuid=11111111-2222-3333-4444-555555555555",
            "type=2,serial=B1",
            "type=3,asset=A1",
            "type=11,value=app:one,value=app:two",
        ]
    );
    // emulate (and no <smbios>): QEMU's own tables.
    let args = build(&domain("qemu", &os("emulate"), sysinfo, "")).expect("emulate");
    assert!(!args.iter().any(|a| a == "-smbios"), "{args:?}");
    for (xml, want) in [
        (
            domain("qemu", &os("host"), sysinfo, ""),
            "<smbios mode='host'> is not supported",
        ),
        (
            domain("qemu", &os("sysinfo"), "", ""),
            "needs a <sysinfo type='smbios'>",
        ),
        (
            domain(
                "qemu",
                &os("sysinfo"),
                &sysinfo.replace(
                    "11111111-2222-3333-4444-555555555555",
                    "11111111-2222-3333-4444-000000000000",
                ),
                "",
            ),
            "UUID mismatch",
        ),
        (
            domain(
                "qemu",
                &os("sysinfo"),
                &sysinfo.replace("name='asset'", "name='colour'"),
                "",
            ),
            "<sysinfo><chassis><entry name='colour'> is not valid",
        ),
    ] {
        let e = build(&xml).unwrap_err();
        assert!(e.contains(want), "{e}");
    }
}

#[test]
fn memory_backends_follow_memory_backing_and_numatune() {
    let cfg = launch_cfg("/run/x");
    let build = |top: &str, devices: &str| {
        let xml = domain("qemu", Q35, top, devices);
        let def = Domain::parse_kept(&xml).map_err(|e| e.to_string())?;
        cmdline::build(&def, &caps(), &cfg).map_err(|e| e.to_string())
    };
    let objects = |args: &[String]| -> Vec<String> {
        args.windows(2)
            .filter(|w| w[0] == "-object")
            .map(|w| w[1].clone())
            .collect()
    };
    // Without cells: one backend, in 2 MiB pages of a memfd, preallocated, on host node 0.
    let args = build(
        "<memoryBacking><hugepages><page size='2048' unit='KiB'/></hugepages>\
         <nosharepages/><locked/></memoryBacking>\
         <numatune><memory mode='interleave' nodeset='0'/></numatune>",
        "",
    )
    .expect("huge pages");
    assert_eq!(
        objects(&args),
        [
            "{\"qom-type\":\"memory-backend-memfd\",\"id\":\"pc.ram\",\"hugetlb\":true,\
             \"hugetlbsize\":2097152,\"share\":false,\"prealloc\":true,\"merge\":false,\
             \"size\":67108864,\"host-nodes\":[0],\"policy\":\"interleave\"}"
        ]
    );
    assert!(
        args.iter().any(|a| a.contains("memory-backend=pc.ram")),
        "{args:?}"
    );
    assert!(args.windows(2).any(|w| w == ["-overcommit", "mem-lock=on"]));
    // Plain memory needs no backend.
    let args = build("", "").expect("plain");
    assert!(objects(&args).is_empty(), "{args:?}");
    assert!(args.windows(2).any(|w| w == ["-m", "size=65536k"]));

    // What is refused, and why.
    for (top, devices, want) in [
        (
            "<memoryBacking><hugepages><page size='4' unit='KiB'/></hugepages></memoryBacking>",
            "",
            "huge pages of 4 KiB",
        ),
        (
            "<memoryBacking><discard/></memoryBacking>",
            "",
            "file-backed memory",
        ),
        (
            "<numatune><memnode cellid='0' nodeset='0'/></numatune>",
            "",
            "needs <cpu><numa> cells",
        ),
        (
            "<cpu><numa><cell id='0' cpus='0' memory='65536'/></numa></cpu>",
            "<memory model='dimm'><target><size>65536</size></target></memory>",
            "need <maxMemory>",
        ),
        (
            "<maxMemory slots='1'>1048576</maxMemory>",
            "<memory model='dimm'><target><size>32768</size></target></memory>",
            "at least one <cpu><numa> cell",
        ),
        (
            "<vcpu>2</vcpu><cpu><numa><cell id='0' cpus='0' memory='65536'/></numa></cpu>",
            "",
            "every vCPU (0-1) must be in a NUMA cell",
        ),
        (
            "<maxMemory slots='1'>1048576</maxMemory>\
             <cpu><numa><cell id='0' cpus='0' memory='65536'/></numa></cpu>",
            "<memory model='nvdimm'><target><size>65536</size></target></memory>",
            "<memory model='nvdimm'> is not supported",
        ),
    ] {
        let top = top.replace("<vcpu>2</vcpu>", "");
        let xml = domain("qemu", Q35, &top, devices);
        let xml = if want.contains("every vCPU") {
            xml.replace("<vcpu>1</vcpu>", "<vcpu>2</vcpu>")
        } else {
            xml
        };
        let def = Domain::parse_kept(&xml).unwrap_or_else(|e| panic!("{want}: {e}"));
        let e = cmdline::build(&def, &caps(), &cfg).expect_err(want);
        assert!(e.to_string().contains(want), "{want}: {e}");
    }
}
