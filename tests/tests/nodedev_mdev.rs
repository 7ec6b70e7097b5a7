//! Mediated devices made, defined, started, destroyed and undefined with the real virsh
//! and python-libvirt, in every layout, on a synthetic sysfs tree whose kernel is played by
//! [`FakeMdev`] (a UUID written into a type's `create` makes the device, `1` written into
//! its `remove` takes it away): what the kernel was asked, the listings by state, the XML,
//! the definitions kept across a restart of the daemons (and autostarted then), the
//! lifecycle events a python client sees, and the refusals, which change nothing.

use vireo_tests::fakemdev::{FakeMdev, PARENT_NAME};
use vireo_tests::{fails, ok, write_file, Daemon, EventLog, Layout};

const V4: &str = "i915-GVTg_V5_4";
const V8: &str = "i915-GVTg_V5_8";
const U1: &str = "4b20d080-1b54-4048-85b3-a6a62d165c01";
const U3: &str = "f0a8e41a-0b2c-4d7c-8a36-2b3f8f7f3c03";

/// libvirt's name of the device `uuid` made under the tree's parent.
fn name_of(uuid: &str) -> String {
    format!("mdev_{}_0000_00_02_0", uuid.replace('-', "_"))
}

/// A `<device>` to make: a type of `parent`, with this UUID (or none: the daemon's
/// choice) and attributes.
fn mdev_xml(parent: &str, type_id: &str, uuid: Option<&str>, attrs: &[(&str, &str)]) -> String {
    let uuid = uuid
        .map(|u| format!("    <uuid>{u}</uuid>\n"))
        .unwrap_or_default();
    let attrs: String = attrs
        .iter()
        .map(|(n, v)| format!("    <attr name='{n}' value='{v}'/>\n"))
        .collect();
    format!(
        "<device>\n  <parent>{parent}</parent>\n  <capability type='mdev'>\n    \
         <type id='{type_id}'/>\n{uuid}{attrs}  </capability>\n</device>\n"
    )
}

/// The names `nodedev-list` prints with these options.
fn listed(d: &Daemon, opts: &[&str]) -> Vec<String> {
    let out = ok(&d.virsh(&[&["nodedev-list", "--cap", "mdev"], opts].concat()));
    out.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// `nodedev-info`'s Active, Persistent and Autostart values.
fn info(d: &Daemon, name: &str) -> (String, String, String) {
    let out = ok(&d.virsh(&["nodedev-info", name]));
    let get = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {key} in {out}"))
    };
    (get("Active:"), get("Persistent:"), get("Autostart:"))
}

fn pair(a: &str, p: &str, s: &str) -> (String, String, String) {
    (a.into(), p.into(), s.into())
}

fn mdev_lifecycle_with_virsh(layout: Layout) {
    let t = tempfile::tempdir().unwrap();
    let kernel = FakeMdev::start(t.path());
    let mut d = Daemon::start_with_sysfs(layout, t.path());
    let mut events = EventLog::start_nodedevs(&d);
    let n1 = name_of(U1);

    // A transient device, with an attribute.
    let f1 = write_file(
        &d,
        "m1.xml",
        &mdev_xml(PARENT_NAME, V8, Some(U1), &[("assign_adapter", "5")]),
    );
    let out = ok(&d.virsh(&["nodedev-create", &f1]));
    assert_eq!(out, format!("Node device {n1} created from {f1}\n\n"));
    kernel.settle();
    assert_eq!(kernel.devices(), [U1]);
    assert_eq!(kernel.attr(U1, "assign_adapter").as_deref(), Some("5"));
    assert_eq!(kernel.available(V8), 1);
    let group = kernel.group(U1).expect("a group of its own");
    assert!(kernel.vfio_node(group).exists());
    events.wait_for(&format!("nodedev {n1} created"));
    assert_eq!(listed(&d, &[]), [n1.as_str()]);
    let xml = ok(&d.virsh(&["nodedev-dumpxml", &n1]));
    for want in [
        format!("<name>{n1}</name>"),
        format!("<parent>{PARENT_NAME}</parent>"),
        "<name>vfio_mdev</name>".to_string(),
        format!("<type id='{V8}'/>"),
        format!("<uuid>{U1}</uuid>"),
        "<parent_addr>0000:00:02.0</parent_addr>".to_string(),
        format!("<iommuGroup number='{group}'/>"),
        "<attr name='assign_adapter' value='5'/>".to_string(),
    ] {
        assert!(xml.contains(&want), "{want} not in {xml}");
    }
    assert_eq!(info(&d, &n1), pair("yes", "no", "no"));
    let e = fails(&d.virsh(&["nodedev-autostart", &n1]));
    assert!(
        e.contains("cannot set autostart for transient device"),
        "{e}"
    );

    // Refused, nothing changed: the UUID in use, a type the parent does not offer, a
    // parent that is not there or offers no types, no instance left, an attribute the
    // device does not have, a read-only connection.
    let e = fails(&d.virsh(&["nodedev-create", &f1]));
    assert!(
        e.contains(&format!("UUID {U1} is in use by mediated device {n1}")),
        "{e}"
    );
    let f = write_file(
        &d,
        "bad.xml",
        &mdev_xml(PARENT_NAME, "nvidia-63", None, &[]),
    );
    let e = fails(&d.virsh(&["nodedev-create", &f]));
    assert!(e.contains("type 'nvidia-63' is not one that device"), "{e}");
    let f = write_file(&d, "bad.xml", &mdev_xml("pci_0000_09_00_0", V8, None, &[]));
    let e = fails(&d.virsh(&["nodedev-define", &f]));
    assert!(
        e.contains("invalid parent device 'pci_0000_09_00_0'"),
        "{e}"
    );
    let f = write_file(&d, "bad.xml", &mdev_xml("computer", V8, None, &[]));
    let e = fails(&d.virsh(&["nodedev-create", &f]));
    assert!(e.contains("invalid parent device 'computer'"), "{e}");
    let f4 = write_file(&d, "m4.xml", &mdev_xml(PARENT_NAME, V4, None, &[]));
    let out = ok(&d.virsh(&["nodedev-create", &f4]));
    let n4 = out
        .strip_prefix("Node device ")
        .and_then(|r| r.split_whitespace().next())
        .expect("the name")
        .to_string();
    assert!(
        n4.starts_with("mdev_") && n4.ends_with("_0000_00_02_0"),
        "{n4}"
    );
    let e = fails(&d.virsh(&["nodedev-create", &f4]));
    assert!(
        e.contains(&format!("no instance of mediated device type '{V4}'")),
        "{e}"
    );
    let f = write_file(
        &d,
        "bad.xml",
        &mdev_xml(PARENT_NAME, V8, None, &[("no_such_attr", "1")]),
    );
    let e = fails(&d.virsh(&["nodedev-create", &f]));
    assert!(e.contains("cannot set attribute 'no_such_attr'"), "{e}");
    let e = fails(&d.virsh(&["-r", "nodedev-destroy", &n1]));
    assert!(e.contains("read only"), "{e}");
    kernel.settle();
    assert_eq!(kernel.devices().len(), 2);
    assert_eq!((kernel.available(V4), kernel.available(V8)), (0, 1));

    // Destroyed: gone, its instance back.
    let out = ok(&d.virsh(&["nodedev-destroy", &n1]));
    assert_eq!(out, format!("Destroyed node device '{n1}'\n\n"));
    events.wait_for(&format!("nodedev {n1} deleted"));
    kernel.settle();
    assert_eq!(kernel.available(V8), 2);
    assert!(!kernel.devices().contains(&U1.to_string()));
    let e = fails(&d.virsh(&["nodedev-destroy", &n1]));
    assert!(
        e.contains(&format!("Could not find matching device '{n1}'")),
        "{e}"
    );
    ok(&d.virsh(&["nodedev-destroy", "--name", &n4]));

    // Defined: listed as inactive, kept in our own files.
    let n3 = name_of(U3);
    let f3 = write_file(&d, "m3.xml", &mdev_xml(PARENT_NAME, V8, Some(U3), &[]));
    let out = ok(&d.virsh(&["nodedev-define", &f3]));
    assert_eq!(out, format!("Node device '{n3}' defined from '{f3}'\n\n"));
    events.wait_for(&format!("nodedev {n3} defined"));
    let kept = d.config_dir().join(format!("nodedev/{n3}.xml"));
    assert!(kept.exists(), "{}", kept.display());
    assert!(listed(&d, &[]).is_empty());
    assert_eq!(listed(&d, &["--inactive"]), [n3.as_str()]);
    assert_eq!(listed(&d, &["--all"]), [n3.as_str()]);
    let xml = ok(&d.virsh(&["nodedev-dumpxml", &n3]));
    assert!(
        xml.contains("<iommuGroup number='0'/>") && !xml.contains("<path>"),
        "{xml}"
    );
    assert_eq!(info(&d, &n3), pair("no", "yes", "no"));
    let e = fails(&d.virsh(&["nodedev-destroy", &n3]));
    assert!(e.contains(&format!("Device '{n3}' is not active")), "{e}");
    let out = ok(&d.virsh(&["nodedev-autostart", &n3]));
    assert_eq!(out, format!("Device {n3} marked as autostarted\n\n"));
    let out = ok(&d.virsh(&["nodedev-start", &n3]));
    assert_eq!(out, format!("Device {n3} started\n\n"));
    events.wait_for(&format!("nodedev {n3} created"));
    kernel.settle();
    assert_eq!(kernel.devices(), [U3]);
    assert_eq!(info(&d, &n3), pair("yes", "yes", "yes"));
    let e = fails(&d.virsh(&["nodedev-start", &n3]));
    assert!(e.contains("Device is already active"), "{e}");
    ok(&d.virsh(&["nodedev-destroy", &n3]));
    kernel.settle();
    assert!(kernel.devices().is_empty());
    assert_eq!(listed(&d, &["--inactive"]), [n3.as_str()]);

    // The daemons again: the definition is still there, and started (autostart).
    d.terminate();
    d.restart();
    kernel.settle();
    assert_eq!(kernel.devices(), [U3]);
    assert_eq!(info(&d, &n3), pair("yes", "yes", "yes"));

    // Undefined while made: it stays, transient; destroyed, it is gone.
    let mut events = EventLog::start_nodedevs(&d);
    let out = ok(&d.virsh(&["nodedev-undefine", &n3]));
    assert_eq!(out, format!("Undefined node device '{n3}'\n\n"));
    events.wait_for(&format!("nodedev {n3} undefined"));
    assert!(!kept.exists());
    assert_eq!(info(&d, &n3), pair("yes", "no", "no"));
    ok(&d.virsh(&["nodedev-destroy", &n3]));
    events.wait_for(&format!("nodedev {n3} deleted"));
    assert!(listed(&d, &["--all"]).is_empty());
    let e = fails(&d.virsh(&["nodedev-undefine", &n3]));
    assert!(
        e.contains(&format!("Could not find matching device '{n3}'")),
        "{e}"
    );
    // A host device is neither destroyed nor undefined.
    let e = fails(&d.virsh(&["nodedev-destroy", PARENT_NAME]));
    assert!(e.contains("Unsupported device type"), "{e}");
    let e = fails(&d.virsh(&["nodedev-undefine", PARENT_NAME]));
    assert!(
        e.contains(&format!("Node device '{PARENT_NAME}' is not defined")),
        "{e}"
    );
    kernel.settle();
    assert!(kernel.devices().is_empty());
}

vireo_tests::in_every_layout!(mdev_lifecycle_with_virsh);

fn mdev_lifecycle_with_python(layout: Layout) {
    let t = tempfile::tempdir().unwrap();
    let kernel = FakeMdev::start(t.path());
    let d = Daemon::start_with_sysfs(layout, t.path());
    let out = ok(&d.python("mdev.py", &[]));
    assert!(out.ends_with("OK\n"), "{out}");
    kernel.settle();
    assert!(kernel.devices().is_empty());
    assert_eq!(kernel.available(V4), 1);
}

vireo_tests::in_every_layout!(mdev_lifecycle_with_python);

/// A mediated device a domain holds (a lease through Vireo's own call, as the QEMU daemon
/// takes one) is not destroyed: virsh is told which domain has it; released, it goes.
fn a_leased_mdev_is_not_destroyed(layout: Layout) {
    use vireo_proto::vireo::{
        procs as vprocs, NodeDeviceLeaseArgs, NodeDeviceLeaseRet, NodeDeviceReleaseArgs,
        NodeDeviceReleaseRet, VIREO_PROGRAM, VIREO_VERSION,
    };
    let t = tempfile::tempdir().unwrap();
    let kernel = FakeMdev::start(t.path());
    let d = Daemon::start_with_sysfs(layout, t.path());
    let n1 = name_of(U1);
    let f1 = write_file(&d, "m1.xml", &mdev_xml(PARENT_NAME, V8, Some(U1), &[]));
    ok(&d.virsh(&["nodedev-create", &f1]));
    let sock = match layout {
        Layout::Monolithic => "vireod-sock",
        _ => "vireo-nodedevd-sock",
    };
    let uri = format!(
        "nodedev+unix:///system?socket={}",
        d.run_dir().join(sock).display()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = rt
        .block_on(vireo_client::Connect::open(&uri, false))
        .unwrap();
    let (r, _fds): (NodeDeviceLeaseRet, _) = rt
        .block_on(c.connection().call_fds(
            VIREO_PROGRAM,
            VIREO_VERSION,
            vprocs::NODE_DEVICE_LEASE,
            &NodeDeviceLeaseArgs {
                name: n1.clone(),
                owner: [7; 16],
                owner_name: "vm7".into(),
                managed: 1,
                flags: 0,
            },
        ))
        .unwrap();
    assert_eq!(r.address, U1);
    let e = fails(&d.virsh(&["nodedev-destroy", &n1]));
    assert!(
        e.contains(&format!(
            "mediated device {U1} is in use by driver QEMU, domain vm7"
        )),
        "{e}"
    );
    kernel.settle();
    assert_eq!(kernel.devices(), [U1]);
    let (r, _): (NodeDeviceReleaseRet, _) = rt
        .block_on(c.connection().call_fds(
            VIREO_PROGRAM,
            VIREO_VERSION,
            vprocs::NODE_DEVICE_RELEASE,
            &NodeDeviceReleaseArgs {
                owner: [7; 16],
                name: None,
                flags: 0,
            },
        ))
        .unwrap();
    assert_eq!(r.names.0, [n1.as_str()]);
    ok(&d.virsh(&["nodedev-destroy", &n1]));
    kernel.settle();
    assert!(kernel.devices().is_empty());
}

vireo_tests::in_every_layout!(a_leased_mdev_is_not_destroyed);
