//! Host devices for VMs: `nodedev-detach` / `-reattach` / `-reset` with the real virsh,
//! and the node device driver's leases (Vireo's own calls), on a synthetic sysfs tree
//! whose kernel is played by [`FakePci`] (no real device is ever taken from this
//! machine).

use std::os::unix::fs::MetadataExt;

use rustix::process::Signal;
use vireo_proto::vireo::{
    procs as vprocs, NodeDeviceLeaseArgs, NodeDeviceLeaseRet, NodeDeviceLeasesArgs,
    NodeDeviceLeasesRet, NodeDeviceReleaseArgs, NodeDeviceReleaseRet, VIREO_PROGRAM, VIREO_VERSION,
};
use vireo_tests::fakepci::FakePci;
use vireo_tests::{fails, ok, Daemon, Layout};

const NIC: &str = "pci_0000_01_00_0";

fn detach_reattach_and_reset_follow_the_kernel(layout: Layout) {
    let t = tempfile::tempdir().unwrap();
    let pci = FakePci::start(t.path());
    let d = Daemon::start_with_sysfs(layout, t.path());
    let out = ok(&d.virsh(&["nodedev-detach", NIC]));
    assert!(out.contains(&format!("Device {NIC} detached")), "{out}");
    assert_eq!(pci.driver("0000:01:00.0").as_deref(), Some("vfio-pci"));
    assert!(pci.vfio_node(7).exists());
    // Detached twice: nothing to do.
    ok(&d.virsh(&["nodedev-detach", "--driver", "vfio", NIC]));
    ok(&d.virsh(&["nodedev-reset", NIC]));
    pci.settle();
    assert_eq!(pci.resets("0000:01:00.0"), 1);
    let out = ok(&d.virsh(&["nodedev-reattach", NIC]));
    assert!(out.contains(&format!("Device {NIC} re-attached")), "{out}");
    pci.settle();
    assert_eq!(pci.driver("0000:01:00.0").as_deref(), Some("e1000e"));
    assert!(!pci.vfio_node(7).exists());
    let xml = ok(&d.virsh(&["nodedev-dumpxml", NIC]));
    assert!(xml.contains("<name>e1000e</name>"), "{xml}");

    // Refused, nothing changed: a device the host's driver has (reset), a group shared
    // with a device the host uses, an interface that is up, a device that is not PCI or
    // not there, a driver that is not this host's, a read-only connection.
    let e = fails(&d.virsh(&["nodedev-reset", NIC]));
    assert!(e.contains("bound to the host's driver e1000e"), "{e}");
    let e = fails(&d.virsh(&["nodedev-detach", "pci_0000_02_00_0"]));
    assert!(
        e.contains("shares IOMMU group 8 with 0000:02:00.1") && e.contains("snd_hda_intel"),
        "{e}"
    );
    let e = fails(&d.virsh(&["nodedev-detach", "pci_0000_03_00_0"]));
    assert!(e.contains("interface eth3 up"), "{e}");
    let e = fails(&d.virsh(&["nodedev-detach", "computer"]));
    assert!(e.contains("not a PCI device"), "{e}");
    let e = fails(&d.virsh(&["nodedev-detach", "pci_0000_0z_00_0"]));
    assert!(e.contains("not found"), "{e}");
    let e = fails(&d.virsh(&["nodedev-detach", "--driver", "xen", NIC]));
    assert!(e.contains("unsupported driver name 'xen'"), "{e}");
    let e = fails(&d.virsh(&["-r", "nodedev-detach", NIC]));
    assert!(e.contains("read only"), "{e}");
    pci.settle();
    for (addr, driver) in [
        ("0000:01:00.0", "e1000e"),
        ("0000:02:00.0", "amdgpu"),
        ("0000:03:00.0", "e1000e"),
    ] {
        assert_eq!(pci.driver(addr).as_deref(), Some(driver), "{addr}");
    }
}

vireo_tests::in_every_layout!(detach_reattach_and_reset_follow_the_kernel);

/// A connection to the daemon serving node devices, for Vireo's own calls.
async fn nodedev_conn(d: &Daemon) -> vireo_client::Connect {
    let sock = match d.layout {
        Layout::Monolithic => "vireod-sock",
        _ => "vireo-nodedevd-sock",
    };
    let uri = format!(
        "nodedev+unix:///system?socket={}",
        d.run_dir().join(sock).display()
    );
    vireo_client::Connect::open(&uri, false).await.unwrap()
}

type CallResult<R> = Result<(R, Vec<std::os::fd::OwnedFd>), vireo_rpc::client::CallError>;

async fn lease(
    c: &vireo_client::Connect,
    owner: u8,
    owner_name: &str,
    managed: bool,
) -> CallResult<NodeDeviceLeaseRet> {
    lease_of(c, NIC, owner, owner_name, managed).await
}

async fn lease_of(
    c: &vireo_client::Connect,
    name: &str,
    owner: u8,
    owner_name: &str,
    managed: bool,
) -> CallResult<NodeDeviceLeaseRet> {
    c.connection()
        .call_fds(
            VIREO_PROGRAM,
            VIREO_VERSION,
            vprocs::NODE_DEVICE_LEASE,
            &NodeDeviceLeaseArgs {
                name: name.into(),
                owner: [owner; 16],
                owner_name: owner_name.into(),
                managed: i32::from(managed),
                flags: 0,
            },
        )
        .await
}

async fn release(c: &vireo_client::Connect, owner: u8) -> Vec<String> {
    let (r, _): (NodeDeviceReleaseRet, _) = c
        .connection()
        .call_fds(
            VIREO_PROGRAM,
            VIREO_VERSION,
            vprocs::NODE_DEVICE_RELEASE,
            &NodeDeviceReleaseArgs {
                owner: [owner; 16],
                name: None,
                flags: 0,
            },
        )
        .await
        .unwrap();
    r.names.0
}

async fn leases(c: &vireo_client::Connect) -> Vec<(String, String)> {
    let (r, _): (NodeDeviceLeasesRet, _) = c
        .connection()
        .call_fds(
            VIREO_PROGRAM,
            VIREO_VERSION,
            vprocs::NODE_DEVICE_LEASES,
            &NodeDeviceLeasesArgs { flags: 0 },
        )
        .await
        .unwrap();
    r.leases
        .0
        .into_iter()
        .map(|l| (l.name, l.owner_name))
        .collect()
}

fn err_text<T>(r: CallResult<T>) -> String {
    match r {
        Ok(_) => panic!("the call should have failed"),
        Err(e) => e.to_string(),
    }
}

/// Leases through Vireo's own calls: one domain holds the device, another is refused
/// naming it, virsh may not take it away, a kill -9 of the node device daemon loses no
/// lease, the release gives a managed device back to the host.
fn leases_hold_across_a_crash(layout: Layout) {
    let t = tempfile::tempdir().unwrap();
    let pci = FakePci::start(t.path());
    let mut d = Daemon::start_with_sysfs(layout, t.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = nodedev_conn(&d).await;
        // Not managed: the device must be detached already.
        let e = err_text(lease(&c, 1, "first", false).await);
        assert!(
            e.contains("is not bound to vfio-pci (its driver is e1000e)"),
            "{e}"
        );
        let (r, fds) = lease(&c, 1, "first", true).await.unwrap();
        assert_eq!(
            (r.address.as_str(), r.node.as_str()),
            ("0000:01:00.0", "/dev/vfio/7")
        );
        assert_eq!(fds.len(), 1);
        // The descriptor is the group's node.
        let fd_meta = std::fs::metadata(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fds[0])
        ))
        .unwrap();
        assert_eq!(fd_meta.ino(), pci.vfio_node(7).metadata().unwrap().ino());
        assert_eq!(pci.driver("0000:01:00.0").as_deref(), Some("vfio-pci"));
        // The same domain again (a daemon that restarted): the lease stands.
        lease(&c, 1, "first", true).await.unwrap();
        let e = err_text(lease(&c, 2, "second", true).await);
        assert!(
            e.contains("PCI device 0000:01:00.0 is in use by driver QEMU, domain first"),
            "{e}"
        );
        // A group the host shares is refused; nothing changes.
        let e = err_text(lease_of(&c, "pci_0000_02_00_0", 2, "second", true).await);
        assert!(e.contains("0000:02:00.1"), "{e}");
        assert_eq!(pci.driver("0000:02:00.0").as_deref(), Some("amdgpu"));
    });
    for cmd in ["nodedev-detach", "nodedev-reattach", "nodedev-reset"] {
        let e = fails(&d.virsh(&[cmd, NIC]));
        assert!(
            e.contains("in use by driver QEMU, domain first"),
            "{cmd}: {e}"
        );
    }
    match layout {
        // One process: its QEMU driver, restarted too, knows no domain with host devices
        // and leaves the leases alone.
        Layout::Monolithic => {
            d.kill9();
            d.restart();
        }
        _ => {
            d.kill9_one("vireo-nodedevd");
            d.start_one("vireo-nodedevd", &[]);
        }
    }
    rt.block_on(async {
        let c = nodedev_conn(&d).await;
        assert_eq!(leases(&c).await, [(NIC.to_string(), "first".to_string())]);
        let e = err_text(lease(&c, 2, "second", true).await);
        assert!(e.contains("domain first"), "{e}");
        assert_eq!(release(&c, 1).await, [NIC]);
        pci.settle();
        assert_eq!(pci.driver("0000:01:00.0").as_deref(), Some("e1000e"));
        assert!(leases(&c).await.is_empty());
        lease(&c, 2, "second", true).await.unwrap();
        assert_eq!(release(&c, 2).await, [NIC]);
        assert!(release(&c, 2).await.is_empty());
    });
    pci.settle();
    assert_eq!(pci.driver("0000:01:00.0").as_deref(), Some("e1000e"));
}

vireo_tests::in_every_layout!(leases_hold_across_a_crash);

/// A stand-in `qemu-system-x86_64` that runs the real one without the `vfio-pci` devices
/// (no real device sits behind the synthetic tree) and says on its standard error, which
/// goes to the domain's log, what it left out.
const QEMU_WITHOUT_VFIO: &str = r#"#!/bin/sh
held=
for a do
    shift
    if [ -n "$held" ]; then
        held=
        case "$a" in
            vfio-pci,*|usb-host,*) echo "vireo-test: left out -device $a" >&2; continue ;;
        esac
        set -- "$@" -device "$a"
        continue
    fi
    if [ "$a" = -device ]; then
        held=1
        continue
    fi
    case "$a" in
        fd=*,set=*)
            fd=${a#fd=}
            fd=${fd%%,*}
            echo "vireo-test: fd $fd is $(readlink /proc/$$/fd/$fd)" >&2 ;;
    esac
    set -- "$@" "$a"
done
exec /usr/bin/qemu-system-x86_64 "$@"
"#;

/// A domain with the network card of the synthetic tree, managed.
fn with_nic(name: &str) -> String {
    format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>\
         <os><type arch='x86_64' machine='pc'>hvm</type></os><devices>\
         <hostdev mode='subsystem' type='pci' managed='yes'><source>\
         <address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></source></hostdev>\
         <memballoon model='none'/></devices></domain>"
    )
}

/// A domain with the tablet (by its ids) and the mediated device of the synthetic tree.
fn with_tablet_and_mdev(name: &str) -> String {
    format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>\
         <os><type arch='x86_64' machine='pc'>hvm</type></os><devices>\
         <hostdev mode='subsystem' type='usb'><source><vendor id='0x0627'/>\
         <product id='0x0001'/></source></hostdev>\
         <hostdev mode='subsystem' type='mdev' model='vfio-pci'><source>\
         <address uuid='{}'/></source></hostdev>\
         <hostdev mode='subsystem' type='usb'><source startupPolicy='optional'>\
         <vendor id='0x1234'/><product id='0xbeef'/></source></hostdev>\
         <memballoon model='none'/></devices></domain>",
        vireo_tests::fakepci::MDEV_UUID
    )
}

/// Every lease of the node device daemon (as root, every user's).
fn all_leases(d: &Daemon, rt: &tokio::runtime::Runtime) -> Vec<(String, String)> {
    rt.block_on(async {
        let c = nodedev_conn(d).await;
        let (r, _): (NodeDeviceLeasesRet, _) = c
            .connection()
            .call_fds(
                VIREO_PROGRAM,
                VIREO_VERSION,
                vprocs::NODE_DEVICE_LEASES,
                &NodeDeviceLeasesArgs {
                    flags: vireo_proto::vireo::LEASES_ALL,
                },
            )
            .await
            .unwrap();
        r.leases
            .0
            .into_iter()
            .map(|l| (l.name, l.owner_name))
            .collect()
    })
}

/// The synthetic machine (its kernel played by [`FakePci`]) under a new temp dir, with an
/// unprivileged vireo-qemud that runs `qemu` (a stand-in script) as its QEMU, and a
/// runtime for Vireo's own calls.
fn unprivileged_machine(
    qemu: &str,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    FakePci,
    Daemon,
    tokio::runtime::Runtime,
) {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sys = t.path().join("machine");
    std::fs::create_dir(&sys).unwrap();
    let pci = FakePci::start(&sys);
    let bin = t.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let wrapper = bin.join("qemu-system-x86_64");
    std::fs::write(&wrapper, qemu).unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = Daemon::start_unprivileged(Some(&sys), Some(&bin));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (t, sys, pci, d, rt)
}

/// The issue's flow: an unprivileged vireo-qemud starts a domain with a PCI hostdev and
/// gets a lease from vireo-nodedevd (root), which detached the device and made its VFIO
/// group the QEMU user's; a second domain asking for it is refused naming the first, also
/// after a kill -9 of vireo-nodedevd; the first one's end, while vireo-nodedevd is down,
/// gives the device back once that daemon is back; and a VM that ends while vireo-qemud is
/// down has its device given back when that daemon starts.
#[test]
fn unprivileged_qemud_leases_a_pci_device() {
    let (_t, sys, pci, mut d, rt) = unprivileged_machine(QEMU_WITHOUT_VFIO);
    for vm in ["vm1", "vm2"] {
        let f = vireo_tests::write_file(&d, &format!("{vm}.xml"), &with_nic(vm));
        ok(&d.virsh(&["define", &f]));
    }
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    assert_eq!(pci.driver("0000:01:00.0").as_deref(), Some("vfio-pci"));
    assert_eq!(pci.vfio_node(7).metadata().unwrap().uid(), 65534);
    assert_eq!(all_leases(&d, &rt), [(NIC.to_string(), "vm1".to_string())]);
    let log = std::fs::read_to_string(d.root.join("qemud/var/lib/vireo/log/qemu/vm1.log"))
        .unwrap_or_default();
    assert!(
        log.contains("left out -device vfio-pci,host=0000:01:00.0,id=hostdev0"),
        "{log}"
    );
    let e = fails(&d.virsh(&["start", "vm2"]));
    assert!(e.contains("in use by driver QEMU, domain vm1"), "{e}");
    assert!(ok(&d.virsh(&["domstate", "vm2"])).contains("shut off"));
    d.kill9_one("vireo-nodedevd");
    d.start_one("vireo-nodedevd", &[]);
    let e = fails(&d.virsh(&["start", "vm2"]));
    assert!(e.contains("domain vm1"), "{e}");
    let e = fails(&d.virsh(&["nodedev-reattach", NIC]));
    assert!(e.contains("domain vm1"), "{e}");
    // vm1 ends while vireo-nodedevd is down: its device goes back once that daemon is back.
    d.kill9_one("vireo-nodedevd");
    ok(&d.virsh(&["destroy", "vm1"]));
    d.start_one("vireo-nodedevd", &[]);
    // Nothing signals the retried release: its outcome is awaited, within a bound.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !all_leases(&d, &rt).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "vm1's lease was not given back"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    pci.settle();
    assert_eq!(pci.driver("0000:01:00.0").as_deref(), Some("e1000e"));
    ok(&d.virsh(&["start", "--paused", "vm2"]));
    assert_eq!(all_leases(&d, &rt), [(NIC.to_string(), "vm2".to_string())]);
    // vm2 ends while vireo-qemud is down: its device comes back when the daemon starts.
    d.kill9_one("vireo-qemud");
    let qemu = d.qemu_pid("vm2").expect("vm2 runs");
    vireo_tests::signal(qemu, Signal::KILL);
    d.restart_unprivileged_qemud();
    assert!(all_leases(&d, &rt).is_empty());
    pci.settle();
    assert_eq!(pci.driver("0000:01:00.0").as_deref(), Some("e1000e"));
    assert!(ok(&d.virsh(&["domstate", "vm2"])).contains("shut off"));
    // A USB device found by its ids reaches QEMU as a descriptor of its node; a mediated
    // device's VFIO group becomes the QEMU user's.
    let f = vireo_tests::write_file(&d, "vm4.xml", &with_tablet_and_mdev("vm4"));
    ok(&d.virsh(&["define", &f]));
    ok(&d.virsh(&["start", "--paused", "vm4"]));
    let mut leased = all_leases(&d, &rt);
    leased.sort();
    let mdev = format!(
        "mdev_{}_0000_02_00_0",
        vireo_tests::fakepci::MDEV_UUID.replace('-', "_")
    );
    assert_eq!(
        leased,
        [
            (mdev, "vm4".to_string()),
            ("usb_1_1".to_string(), "vm4".to_string())
        ]
    );
    assert_eq!(pci.vfio_node(12).metadata().unwrap().uid(), 65534);
    let log = std::fs::read_to_string(d.root.join("qemud/var/lib/vireo/log/qemu/vm4.log"))
        .unwrap_or_default();
    let node = sys.join("dev/bus/usb/001/002");
    assert!(
        log.contains(&format!("is {}", node.display()))
            && log.contains("left out -device usb-host,hostdevice=/dev/fdset/100")
            && log.contains("sysfsdev=/sys/bus/mdev/devices/"),
        "{log}"
    );
    // The optional device that is not there is left out of the running VM only.
    assert!(!ok(&d.virsh(&["dumpxml", "vm4"])).contains("0xbeef"));
    assert!(ok(&d.virsh(&["dumpxml", "--inactive", "vm4"])).contains("0xbeef"));
    ok(&d.virsh(&["destroy", "vm4"]));
    let mandatory = with_tablet_and_mdev("vm5").replace(" startupPolicy='optional'", "");
    let f = vireo_tests::write_file(&d, "vm5.xml", &mandatory);
    ok(&d.virsh(&["define", &f]));
    let e = fails(&d.virsh(&["start", "vm5"]));
    assert!(e.contains("USB device 1234:beef was not found"), "{e}");
    // A device that is not there is named, nothing started.
    let gone = with_nic("vm3").replace("bus='0x01'", "bus='0x05'");
    let f = vireo_tests::write_file(&d, "vm3.xml", &gone);
    ok(&d.virsh(&["define", &f]));
    let e = fails(&d.virsh(&["start", "vm3"]));
    assert!(e.contains("pci_0000_05_00_0"), "{e}");
    assert!(all_leases(&d, &rt).is_empty());
}

/// A stand-in `qemu-system-x86_64` that runs the real one with an emulated device in the
/// place of each host device of the command line (no real device sits behind the
/// synthetic tree): `pci-testdev` for `vfio-pci` (same id, bus and slot, so that the
/// guest's ACPI hotplug has a real PCI device to let go) and `usb-tablet` for `usb-host`
/// (its fd set still added). What it replaced goes to the domain's log.
const QEMU_WITH_STAND_INS: &str = r#"#!/bin/sh
held=
for a do
    shift
    if [ -n "$held" ]; then
        held=
        case "$a" in
            vfio-pci,*)
                echo "vireo-test: pci-testdev stands in for -device $a" >&2
                a="pci-testdev,id=${a#*,id=}" ;;
            usb-host,*)
                echo "vireo-test: usb-tablet stands in for -device $a" >&2
                a="usb-tablet,id=${a#*,id=}" ;;
        esac
        set -- "$@" -device "$a"
        continue
    fi
    if [ "$a" = -device ]; then
        held=1
        continue
    fi
    set -- "$@" "$a"
done
exec /usr/bin/qemu-system-x86_64 "$@"
"#;

const NIC_HOSTDEV: &str = "<hostdev mode='subsystem' type='pci' managed='yes'><source>\
    <address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></source></hostdev>";

const TABLET_HOSTDEV: &str = "<hostdev mode='subsystem' type='usb'><source>\
    <vendor id='0x0627'/><product id='0x0001'/></source></hostdev>";

/// How many of QEMU `pid`'s descriptors are open on `path`.
fn fds_on(pid: i32, path: &std::path::Path) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == path))
                .count()
        })
        .unwrap_or(0)
}

/// Waits (within a bound: nothing signals a lease's release to the test) until the node
/// device daemon's leases are `want`.
fn leases_become(d: &Daemon, rt: &tokio::runtime::Runtime, want: &[(&str, &str)]) {
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let mut now = all_leases(d, rt);
        now.sort();
        if now == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "leases {now:?}, not {want:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Host devices plugged into and out of running VMs by an unprivileged vireo-qemud, each
/// leased from vireo-nodedevd for its domain.
///
/// What runs for real: the leases (taken before the shim is asked, given back when QEMU
/// refuses the device, a device one domain holds refused to another naming it, a device
/// a domain has refused again), the PCI place on the running guest, the shim's QMP calls
/// (`add-fd` of the USB device's node into a new fd set, `device_add`, `device_del`,
/// `remove-fd`), the guest's ACPI unplug of a PCI device it booted with (the test guest's
/// kernel lets it go), DEVICE_REMOVED, and the release of that one device's lease (and a
/// managed function's return to its host driver) — also after vireo-qemud restarted.
///
/// What only real hardware shows (see the README): QEMU accepting a hot-plugged
/// `vfio-pci` (it opens the function's sysfs directory and VFIO group on this machine,
/// which has no such device: it refuses, naming it) and a hot-plugged `usb-host` (libusb
/// takes only a real usbfs node: the synthetic node is a plain file, which QEMU refuses
/// cleanly); and the devices the VMs start with are emulated stand-ins
/// ([`QEMU_WITH_STAND_INS`]).
#[test]
fn hostdevs_come_and_go_while_vms_run() {
    use std::os::unix::fs::{chown, MetadataExt};
    let (_t, sys, pci, mut d, rt) = unprivileged_machine(QEMU_WITH_STAND_INS);
    // vm1: the test guest (its kernel where uid 65534 reads it) with the network card;
    // vm2: a small VM with the tablet.
    let (kernel, initrd) = vireo_tests::guest();
    let q = d.root.join("qemud");
    let mut xml =
        vireo_tests::guest_xml("vm1").replace("<devices>", &format!("<devices>{NIC_HOSTDEV}"));
    for (from, name) in [(&kernel, "vmlinuz"), (&initrd, "initrd.img")] {
        let to = q.join(name);
        std::fs::copy(from, &to).unwrap();
        chown(&to, Some(65534), Some(65534)).unwrap();
        xml = xml.replace(from.to_str().unwrap(), to.to_str().unwrap());
    }
    ok(&d.virsh(&["define", &vireo_tests::write_file(&d, "vm1.xml", &xml)]));
    let vm2 = format!(
        "<domain type='qemu'><name>vm2</name><memory unit='MiB'>64</memory>\
         <os><type arch='x86_64' machine='pc'>hvm</type></os><features><acpi/></features>\
         <devices>{TABLET_HOSTDEV}<memballoon model='none'/></devices></domain>"
    );
    ok(&d.virsh(&["define", &vireo_tests::write_file(&d, "vm2.xml", &vm2)]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    // vm2 runs (its firmware finds nothing to boot): QEMU closes a removed fd set's
    // descriptors only while the VM runs.
    ok(&d.virsh(&["start", "vm2"]));
    leases_become(&d, &rt, &[(NIC, "vm1"), ("usb_1_1", "vm2")]);
    let log = std::fs::read_to_string(q.join("var/lib/vireo/log/qemu/vm1.log")).unwrap();
    assert!(
        log.contains("pci-testdev stands in for -device vfio-pci,host=0000:01:00.0,id=hostdev0"),
        "{log}"
    );
    // The domains' devices are found again by a vireo-qemud that restarted.
    d.kill9_one("vireo-qemud");
    d.restart_unprivileged_qemud();
    let mut ev = vireo_tests::EventLog::start_devices(&d);
    vireo_tests::guest_shell(&d, "vm1", &["--resume"]);
    let live1 = ok(&d.virsh(&["dumpxml", "vm1"]));
    assert!(
        live1.contains("<alias name='hostdev0'/>") && live1.contains("bus='0x01'"),
        "{live1}"
    );

    let nic = vireo_tests::write_file(&d, "nic.xml", NIC_HOSTDEV);
    let tablet = vireo_tests::write_file(&d, "tablet.xml", TABLET_HOSTDEV);
    let mdev = vireo_tests::write_file(
        &d,
        "mdev.xml",
        &format!(
            "<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source>\
             <address uuid='{}'/></source></hostdev>",
            vireo_tests::fakepci::MDEV_UUID
        ),
    );
    // A device a domain holds: refused to it again, and to another domain naming it.
    let e = fails(&d.virsh(&["attach-device", "vm1", &nic, "--live"]));
    assert!(
        e.contains("PCI device 0000:01:00.0 is in use by driver QEMU, domain vm1"),
        "{e}"
    );
    let e = fails(&d.virsh(&["attach-device", "vm2", &nic, "--live"]));
    assert!(e.contains("in use by driver QEMU, domain vm1"), "{e}");
    let e = fails(&d.virsh(&["attach-device", "vm1", &tablet, "--live"]));
    assert!(e.contains("domain vm2"), "{e}");
    let live2 = ok(&d.virsh(&["dumpxml", "vm2"]));
    assert!(!live2.contains("bus='0x01'"), "{live2}");
    leases_become(&d, &rt, &[(NIC, "vm1"), ("usb_1_1", "vm2")]);

    // A mediated device, live and in the definition: leased (its VFIO group made the QEMU
    // user's), placed, refused by QEMU (no such device on this machine): the error names
    // it, the lease goes back, neither definition changes.
    let group12 = pci.vfio_node(12);
    let e = fails(&d.virsh(&["attach-device", "vm2", &mdev, "--live", "--config"]));
    assert!(
        e.contains(&format!(
            "cannot plug mediated device {} in",
            vireo_tests::fakepci::MDEV_UUID
        )) && e.contains("no such host device"),
        "{e}"
    );
    leases_become(&d, &rt, &[(NIC, "vm1"), ("usb_1_1", "vm2")]);
    assert_eq!(group12.metadata().unwrap().uid(), 0);
    for args in [&["dumpxml", "vm2"][..], &["dumpxml", "--inactive", "vm2"]] {
        let x = ok(&d.virsh(args));
        assert!(!x.contains(vireo_tests::fakepci::MDEV_UUID), "{x}");
    }

    // The tablet vm2 started with goes (a USB unplug needs no guest): DEVICE_REMOVED, its
    // fd set closed in QEMU, its lease given back, the network card's kept.
    let node = sys.join("dev/bus/usb/001/002");
    let qemu2 = d.qemu_pid("vm2").expect("vm2 runs");
    assert_eq!(fds_on(qemu2, &node), 1);
    ok(&d.virsh(&["detach-device-alias", "vm2", "hostdev0", "--live"]));
    ev.wait_for("vm2 device-removed hostdev0");
    leases_become(&d, &rt, &[(NIC, "vm1")]);
    assert_eq!(fds_on(qemu2, &node), 0);
    assert!(!ok(&d.virsh(&["dumpxml", "vm2"])).contains("<hostdev"));

    // Plugged in again: leased, its node passed to QEMU into a new fd set; QEMU's usb-host
    // refuses a node that is not usbfs: the error names the device, the fd set is
    // removed, the lease goes back. (QEMU 7.2's usb-host does not close the descriptor it
    // took from the fd set when it fails so: that one copy stays in QEMU.)
    let e = fails(&d.virsh(&["attach-device", "vm2", &tablet, "--live"]));
    assert!(
        e.contains("cannot plug USB device 0627:0001 in")
            && e.contains("failed to open host usb device /dev/fdset/"),
        "{e}"
    );
    assert!(fds_on(qemu2, &node) <= 1);
    leases_become(&d, &rt, &[(NIC, "vm1")]);
    assert!(!ok(&d.virsh(&["dumpxml", "vm2"])).contains("<hostdev"));

    // The guest lets the network card go (ACPI): DEVICE_REMOVED, its lease given back and
    // the managed function returned to its host driver.
    let out = ok(&d.virsh(&["detach-device", "vm1", &nic, "--live"]));
    assert!(out.contains("Device detached successfully"), "{out}");
    ev.wait_for("vm1 device-removed hostdev0");
    leases_become(&d, &rt, &[]);
    pci.settle();
    assert_eq!(pci.driver("0000:01:00.0").as_deref(), Some("e1000e"));
    assert!(!ok(&d.virsh(&["dumpxml", "vm1"])).contains("<hostdev"));
    // Its definition keeps it.
    assert!(ok(&d.virsh(&["dumpxml", "--inactive", "vm1"])).contains("bus='0x01'"));
    let e = fails(&d.virsh(&["detach-device", "vm1", &nic, "--live"]));
    assert!(e.contains("host pci device 0000:01:00.0 not found"), "{e}");

    // The card plugged into vm2 now: leased (bound to vfio-pci for it), placed, refused by
    // QEMU: the error names it, it goes back to its host driver, vm2 is as it was.
    let e = fails(&d.virsh(&["attach-device", "vm2", &nic, "--live"]));
    assert!(
        e.contains("cannot plug PCI device 0000:01:00.0 in")
            && e.contains("vfio /sys/bus/pci/devices/0000:01:00.0: no such host device"),
        "{e}"
    );
    leases_become(&d, &rt, &[]);
    pci.settle();
    assert_eq!(pci.driver("0000:01:00.0").as_deref(), Some("e1000e"));
    assert!(!ok(&d.virsh(&["dumpxml", "vm2"])).contains("<hostdev"));
    assert!(
        ev.seen.iter().all(|l| !l.contains("device-added")),
        "{:?}",
        ev.seen
    );

    ok(&d.virsh(&["destroy", "vm1"]));
    ok(&d.virsh(&["destroy", "vm2"]));
    leases_become(&d, &rt, &[]);
}
