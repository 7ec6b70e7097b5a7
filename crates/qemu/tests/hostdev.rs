//! The `<hostdev>` part of the command line is what QEMU 7.2 accepts: each generated
//! device is given to the real `qemu-system-x86_64`, whose options parse and whose device
//! is then realized, failing only because the host device is not there (no PCI function
//! 0000:06:12.5 or mediated device on a test host; `/dev/null` as the USB device's
//! descriptor). A misspelt option fails earlier, with another message.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use vireo_qemu::caps::{Machine, QemuCaps};
use vireo_qemu::cmdline::{self, LaunchConfig};
use vireo_xml::Domain;

const QEMU: &str = "/usr/bin/qemu-system-x86_64";

/// Where the USB device's descriptor is in QEMU.
const USB_FD: i32 = 9;

fn caps() -> QemuCaps {
    QemuCaps {
        emulator: QEMU.into(),
        version: 7_002_000,
        machines: vec![Machine {
            name: "pc".into(),
            canonical: Some("pc-i440fx-7.2".into()),
            max_cpus: 255,
        }],
        kvm: false,
    }
}

const DEVICES: &str = "<controller type='usb' model='piix3-uhci'/><graphics type='vnc'/>\
    <hostdev mode='subsystem' type='pci' managed='yes'><driver name='vfio'/><source>\
      <address domain='0' bus='6' slot='0x12' function='5'/></source><boot order='1'/>\
      <alias name='ua-gpu'/><rom bar='on' file='/usr/share/qemu/efi-e1000.rom'/>\
      <address type='pci' slot='7' multifunction='on'/></hostdev>\
    <hostdev mode='subsystem' type='pci'><source><address bus='6' slot='0x12' \
      function='6'/></source><rom enabled='no'/></hostdev>\
    <hostdev mode='subsystem' type='mdev' model='vfio-pci' display='on' ramfb='on'><source>\
      <address uuid='53764d0e-85a0-42b4-af5c-2046b460b1dc'/></source></hostdev>\
    <hostdev mode='subsystem' type='mdev' model='vfio-pci' display='off'><source>\
      <address uuid='53764d0e-85a0-42b4-af5c-2046b460b1dd'/></source><boot order='3'/>\
      </hostdev>\
    <hostdev mode='subsystem' type='usb'><source guestReset='off'><vendor id='0x1234'/>\
      <product id='0xbeef'/></source><boot order='2'/>\
      <address type='usb' bus='0' port='1'/></hostdev>";

fn command_line() -> Vec<String> {
    let xml = format!(
        "<domain type='qemu'><name>h</name><uuid>11111111-2222-3333-4444-555555555555</uuid>\
         <memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='pc'>hvm</type></os><devices>{DEVICES}</devices>\
         </domain>"
    );
    let def = Domain::parse_kept(&xml).unwrap_or_else(|e| panic!("{e}"));
    let cfg = LaunchConfig {
        monitor_fd: 3,
        run_dir: "/run/vireo/h".into(),
        secret_fds: Some(Default::default()),
        tap_fds: Some(Vec::new()),
        usb_host_fds: Some(vec![USB_FD]),
        sandbox: true,
    };
    cmdline::build(&def, &caps(), &cfg).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs QEMU (paused, no defaults) with `args` and the USB descriptor; its exit success
/// and what it wrote on stderr.
fn run(args: &[&str]) -> (bool, String) {
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .expect("open /dev/null");
    let fd = null.as_raw_fd();
    let mut cmd = Command::new(QEMU);
    cmd.args([
        "-machine",
        "pc",
        "-accel",
        "tcg",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-S",
    ])
    .args(args)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls (fcntl, dup2) on fds open in the child run
    // between fork and exec; the descriptor becomes USB_FD without FD_CLOEXEC.
    unsafe {
        cmd.pre_exec(move || {
            if fd == USB_FD {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, USB_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("run qemu-system-x86_64");
    drop(null);
    let pid = child.id();
    let mut stderr = child.stderr.take().expect("stderr pipe");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        let _ = tx.send((child.wait().map(|st| st.success()).unwrap_or(false), s));
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(r) => r,
        Err(_) => {
            // It did not stop on the missing device: end it (it is ours) and say so.
            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            panic!("QEMU kept running with {args:?}");
        }
    }
}

#[test]
fn qemu_parses_every_hostdev_device_and_fails_only_on_the_missing_device() {
    if !std::path::Path::new(QEMU).exists() {
        eprintln!("no {QEMU}: nothing to check");
        return;
    }
    let args = command_line();
    let value = |opt: &str, has: &str| -> Vec<String> {
        args.windows(2)
            .filter(|w| w[0] == opt && w[1].contains(has))
            .map(|w| w[1].clone())
            .collect()
    };
    let usb_controller = value("-device", "piix3-usb-uhci");
    let add_fd = value("-add-fd", "fd=");
    assert_eq!(add_fd, [format!("fd={USB_FD},set=100,opaque=hostdev4")]);
    let devices: Vec<String> = value("-device", "vfio-pci")
        .into_iter()
        .chain(value("-device", "usb-host"))
        .collect();
    assert_eq!(devices.len(), 5, "{args:#?}");

    // The whole device is read before QEMU looks for the host's: these are realize errors.
    let missing = [
        "vfio /sys/bus/pci/devices/0000:06:12.5: no such host device",
        "vfio /sys/bus/pci/devices/0000:06:12.6: no such host device",
        "vfio /sys/bus/mdev/devices/53764d0e-85a0-42b4-af5c-2046b460b1dc: no such host device",
        "vfio /sys/bus/mdev/devices/53764d0e-85a0-42b4-af5c-2046b460b1dd: no such host device",
        // The fd set was there and its descriptor opened: /dev/null is no USB device.
        "failed to open host usb device /dev/fdset/100",
    ];
    for (dev, want) in devices.iter().zip(missing) {
        let mut a: Vec<&str> = Vec::new();
        for c in &usb_controller {
            a.extend(["-device", c.as_str()]);
        }
        for f in &add_fd {
            a.extend(["-add-fd", f.as_str()]);
        }
        a.extend(["-device", dev.as_str()]);
        let (ok, err) = run(&a);
        assert!(!ok, "QEMU started with {dev}");
        assert!(
            err.contains(want),
            "-device {dev}: expected «{want}», QEMU said:\n{err}"
        );
    }

    // And a misspelt option is refused before that, so the check above means something.
    let (ok, err) = run(&["-device", "vfio-pci,host=0000:06:12.5,bogus=1"]);
    assert!(
        !ok && err.contains("Property 'vfio-pci.bogus' not found"),
        "{err}"
    );
}
