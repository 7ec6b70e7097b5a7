use super::*;

#[test]
fn records_read_back() {
    let r = Record {
        made: vec!["br0".into(), "eth0.5".into()],
        enslaved: vec!["veth0".into()],
        upped: vec![],
        addrs: vec![
            ("192.168.9.1".parse().unwrap(), 24),
            ("fd00::1".parse().unwrap(), 64),
        ],
    };
    assert_eq!(Record::parse(&r.to_text()), r);
    assert_eq!(Record::parse("junk\naddr nonsense\n"), Record::default());
}

#[test]
fn bridge_delays_are_seconds() {
    assert_eq!(bridge_delay("15").unwrap(), 1500);
    assert_eq!(bridge_delay("0").unwrap(), 0);
    assert!(bridge_delay("-1").is_err());
    assert!(bridge_delay("x").is_err());
    assert!(bridge_delay("99999999999").is_err());
}

#[test]
fn names_in_a_definition_are_checked() {
    let d = InterfaceDef::parse(
        "<interface type='bridge' name='br0'><bridge><interface type='ethernet' name='a/b'/></bridge></interface>",
    )
    .unwrap();
    assert!(check_names(&d)
        .unwrap_err()
        .to_string()
        .contains("invalid interface name 'a/b'"));
    let d = InterfaceDef::parse(
        "<interface type='vlan' name='v0'><vlan tag='3'><interface name='this-name-is-too-long'/></vlan></interface>",
    )
    .unwrap();
    assert!(check_names(&d).is_err());
    let d = InterfaceDef::parse("<interface type='ethernet' name='sixteen_chars_xx'/>").unwrap();
    assert!(check_names(&d).is_err());
}

/// Runs `f` on a thread of its own in a new network namespace (with `lo` only), when this
/// process may make one (root); `None` otherwise.
fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    std::thread::spawn(move || {
        // Only this short-lived thread's network namespace changes.
        if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
            return None;
        }
        Some(f())
    })
    .join()
    .ok()?
}

fn veth(nl: &mut Netlink, a: &str) {
    // The driver makes no veths: the test makes its pair with the same netlink crate.
    use netlink_packet_route::link::{
        InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage,
    };
    let mut peer = LinkMessage::default();
    peer.attributes.push(LinkAttribute::IfName(format!("{a}p")));
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(a.to_string()));
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    nl.raw_new_link(m).unwrap();
}

#[test]
fn a_bridge_is_made_listed_and_removed_in_a_namespace() {
    let Some(()) = in_new_netns(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = InterfaceDriver::open(
            &dir.path().join("etc"),
            &dir.path().join("run"),
            &dir.path().join("lib"),
        )
        .unwrap();
        let mut nl = Netlink::open().unwrap();
        veth(&mut nl, "vt0");
        let names = |d: &InterfaceDriver| -> Vec<(String, bool)> {
            d.list()
                .unwrap()
                .into_iter()
                .map(|l| (l.name, l.active))
                .collect()
        };
        assert_eq!(
            names(&d),
            [
                ("lo".to_string(), false),
                ("vt0".into(), false),
                ("vt0p".into(), false)
            ]
        );
        // A taken name is refused, nothing written.
        let e = d
            .define("<interface type='bridge' name='vt0'><bridge/></interface>")
            .unwrap_err();
        assert!(e.to_string().contains("taken"), "{e}");
        assert!(!dir.path().join("etc/interface/vt0.xml").exists());

        let (name, mac) = d
            .define(
                "<interface type='bridge' name='br7'>
                   <mtu size='1400'/>
                   <protocol family='ipv4'><ip address='192.168.77.1' prefix='24'/></protocol>
                   <bridge stp='off' delay='0'><interface type='ethernet' name='vt0'/></bridge>
                 </interface>",
            )
            .unwrap();
        assert_eq!((name.as_str(), mac.as_str()), ("br7", ""));
        assert!(!d.is_active("br7").unwrap());
        d.create("br7").unwrap();
        assert!(d.is_active("br7").unwrap());
        let e = d.create("br7").unwrap_err();
        assert!(e.to_string().contains("already active"), "{e}");
        // The port is shown in its bridge, not in the list.
        assert_eq!(
            names(&d),
            [
                ("br7".to_string(), true),
                ("lo".into(), false),
                ("vt0p".into(), false)
            ]
        );
        let links = nl.links().unwrap();
        let br = links.iter().find(|l| l.name == "br7").unwrap();
        let port = links.iter().find(|l| l.name == "vt0").unwrap();
        assert_eq!(port.master, Some(br.index));
        assert!(port.up && br.up);
        assert_eq!(br.mtu, Some(1400));
        let addrs = nl.addresses().unwrap();
        assert!(addrs.iter().any(|a| a.index == br.index
            && a.addr.to_string() == "192.168.77.1"
            && a.prefix == 24));
        // A host interface is not ours to stop.
        let e = d.destroy("vt0p").unwrap_err();
        assert!(e.to_string().contains("not defined here"), "{e}");
        // Undefining a running bridge is refused.
        assert!(d.undefine("br7").is_err());

        d.destroy("br7").unwrap();
        let links = nl.links().unwrap();
        assert!(links.iter().all(|l| l.name != "br7"));
        let port = links.iter().find(|l| l.name == "vt0").unwrap();
        assert_eq!(port.master, None);
        assert!(!port.up);
        assert!(!d.is_active("br7").unwrap());
        let e = d.destroy("br7").unwrap_err();
        assert!(e.to_string().contains("not active"), "{e}");

        // A transaction: begin, start, define another, roll back.
        d.change_begin().unwrap();
        let e = d.change_begin().unwrap_err();
        assert_eq!(
            e.to_string(),
            "Requested operation is not valid: there is another transaction running."
        );
        d.create("br7").unwrap();
        d.define("<interface type='bridge' name='br8'><bridge/></interface>")
            .unwrap();
        d.create("br8").unwrap();
        d.change_rollback().unwrap();
        let links = nl.links().unwrap();
        assert!(links.iter().all(|l| l.name != "br7" && l.name != "br8"));
        assert!(d.lookup_by_name("br8").is_err());
        assert!(d.change_commit().is_err());

        // Started before the transaction, destroyed and undefined in it: back and running.
        d.create("br7").unwrap();
        d.change_begin().unwrap();
        d.destroy("br7").unwrap();
        d.undefine("br7").unwrap();
        assert!(d.lookup_by_name("br7").is_err());
        d.change_rollback().unwrap();
        assert!(d.is_active("br7").unwrap());
        d.change_begin().unwrap();
        d.change_commit().unwrap();
        d.destroy("br7").unwrap();
        d.undefine("br7").unwrap();
        assert!(!dir.path().join("etc/interface/br7.xml").exists());
    }) else {
        eprintln!("not root: no namespace of the test's own, skipped");
        return;
    };
}

#[test]
fn a_failed_start_changes_nothing() {
    let Some(()) = in_new_netns(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = InterfaceDriver::open(
            &dir.path().join("etc"),
            &dir.path().join("run"),
            &dir.path().join("lib"),
        )
        .unwrap();
        let mut nl = Netlink::open().unwrap();
        // The second member does not exist: the bridge and the first member's enslaving
        // are undone.
        veth(&mut nl, "vu0");
        d.define(
            "<interface type='bridge' name='br9'><bridge>
               <interface type='ethernet' name='vu0'/>
               <interface type='ethernet' name='missing0'/>
             </bridge></interface>",
        )
        .unwrap();
        let e = d.create("br9").unwrap_err();
        assert!(e.to_string().contains("'missing0' does not exist"), "{e}");
        let links = nl.links().unwrap();
        assert!(links.iter().all(|l| l.name != "br9"));
        assert_eq!(links.iter().find(|l| l.name == "vu0").unwrap().master, None);
        assert!(!dir.path().join("run/interface/br9.state").exists());
    }) else {
        return;
    };
}
