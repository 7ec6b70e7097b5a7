//! Host devices for VMs: `nodedev-detach` / `-reattach` / `-reset` with the real virsh,
//! and the node device driver's leases (Vireo's own calls), on a synthetic sysfs tree
//! whose kernel is played by [`FakePci`] (no real device is ever taken from this
//! machine).

use std::os::unix::fs::MetadataExt;

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
