//! Every payload in the captured libvirt traffic decodes with our types, uses every byte,
//! and encodes back to the same bytes. `tests/data/wire-vectors` (at the workspace root) is
//! the domain capture; `crates/proto/tests/data/network-vectors` the network, network port
//! and nwfilter capture (see its README).

use vireo_proto::header::{Header, HEADER_LEN};
use vireo_proto::remote::*;
use vireo_proto::{network, nwfilter, MessageType, RemoteError, Status};
use vireo_xdr::{Decoder, Xdr};

fn roundtrip<T: Xdr>(payload: &[u8], what: &str) {
    let mut d = Decoder::new(payload);
    let v = T::decode(&mut d).unwrap_or_else(|e| panic!("{what}: {e}"));
    d.finish().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        vireo_xdr::to_bytes(&v),
        payload,
        "{what}: re-encoding differs"
    );
}

/// Checks one payload against the type the procedure uses in that direction.
fn check(proc_: i32, call: bool, payload: &[u8], what: &str) {
    macro_rules! table {
        ($($p:ident => $a:ty, $r:ty;)*) => {
            match proc_ {
                $(procs::$p => if call { roundtrip::<$a>(payload, what) } else { roundtrip::<$r>(payload, what) },)*
                other => panic!("{what}: no types for procedure {other}"),
            }
        };
    }
    table! {
        AUTH_LIST => (), AuthListRet;
        CONNECT_SUPPORTS_FEATURE => ConnectSupportsFeatureArgs, ConnectSupportsFeatureRet;
        CONNECT_OPEN => ConnectOpenArgs, ();
        CONNECT_CLOSE => (), ();
        CONNECT_REGISTER_CLOSE_CALLBACK => (), ();
        CONNECT_UNREGISTER_CLOSE_CALLBACK => (), ();
        CONNECT_GET_TYPE => (), ConnectGetTypeRet;
        CONNECT_GET_VERSION => (), ConnectGetVersionRet;
        CONNECT_GET_LIB_VERSION => (), ConnectGetLibVersionRet;
        CONNECT_LIST_ALL_DOMAINS => ConnectListAllDomainsArgs, ConnectListAllDomainsRet;
        DOMAIN_DEFINE_XML => DomainDefineXmlArgs, DomainRet;
        DOMAIN_GET_STATE => DomainFlagsArgs, DomainGetStateRet;
        DOMAIN_LOOKUP_BY_NAME => DomainLookupByNameArgs, DomainRet;
        DOMAIN_GET_OS_TYPE => DomainArgs, DomainGetOsTypeRet;
        DOMAIN_GET_INFO => DomainArgs, DomainGetInfoRet;
        DOMAIN_IS_PERSISTENT => DomainArgs, DomainIsPersistentRet;
        DOMAIN_IS_ACTIVE => DomainArgs, DomainIsActiveRet;
        DOMAIN_GET_AUTOSTART => DomainArgs, DomainGetAutostartRet;
        DOMAIN_SET_AUTOSTART => DomainSetAutostartArgs, ();
        DOMAIN_HAS_MANAGED_SAVE_IMAGE => DomainFlagsArgs, DomainHasManagedSaveImageRet;
        NODE_GET_SECURITY_MODEL => (), NodeGetSecurityModelRet;
        DOMAIN_GET_SECURITY_LABEL => DomainArgs, DomainGetSecurityLabelRet;
        DOMAIN_GET_MESSAGES => DomainFlagsArgs, DomainGetMessagesRet;
        DOMAIN_GET_XML_DESC => DomainFlagsArgs, DomainGetXmlDescRet;
        DOMAIN_SNAPSHOT_NUM => DomainFlagsArgs, DomainSnapshotNumRet;
        DOMAIN_UNDEFINE_FLAGS => DomainFlagsArgs, ();
        DOMAIN_UNDEFINE => DomainArgs, ();
        CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY => EventCallbackRegisterAnyArgs, EventCallbackRegisterAnyRet;
        CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY => EventCallbackDeregisterAnyArgs, ();
        DOMAIN_EVENT_CALLBACK_LIFECYCLE => (), DomainEventCallbackLifecycleMsg;
        CONNECT_NUM_OF_NETWORKS => (), network::NumRet;
        CONNECT_LIST_NETWORKS => network::MaxNamesArgs, network::NamesRet;
        CONNECT_NUM_OF_DEFINED_NETWORKS => (), network::NumRet;
        CONNECT_LIST_DEFINED_NETWORKS => network::MaxNamesArgs, network::NamesRet;
        CONNECT_LIST_ALL_NETWORKS => network::ListAllArgs, network::ListAllNetworksRet;
        NETWORK_LOOKUP_BY_NAME => network::NameArgs, network::NetRet;
        NETWORK_LOOKUP_BY_UUID => network::UuidArgs, network::NetRet;
        NETWORK_CREATE_XML => network::XmlArgs, network::NetRet;
        NETWORK_CREATE_XML_FLAGS => network::XmlFlagsArgs, network::NetRet;
        NETWORK_DEFINE_XML => network::XmlArgs, network::NetRet;
        NETWORK_DEFINE_XML_FLAGS => network::XmlFlagsArgs, network::NetRet;
        NETWORK_UNDEFINE => network::NetArgs, ();
        NETWORK_CREATE => network::NetArgs, ();
        NETWORK_DESTROY => network::NetArgs, ();
        NETWORK_GET_XML_DESC => network::NetFlagsArgs, network::XmlRet;
        NETWORK_GET_BRIDGE_NAME => network::NetArgs, network::GetBridgeNameRet;
        NETWORK_GET_AUTOSTART => network::NetArgs, network::AutostartRet;
        NETWORK_SET_AUTOSTART => network::SetAutostartArgs, ();
        NETWORK_IS_ACTIVE => network::NetArgs, network::ActiveRet;
        NETWORK_IS_PERSISTENT => network::NetArgs, network::PersistentRet;
        NETWORK_UPDATE => network::NetworkUpdateArgs, ();
        NETWORK_GET_DHCP_LEASES => network::GetDhcpLeasesArgs, network::GetDhcpLeasesRet;
        NETWORK_SET_METADATA => network::SetMetadataArgs, ();
        NETWORK_GET_METADATA => network::GetMetadataArgs, network::GetMetadataRet;
        CONNECT_NETWORK_EVENT_REGISTER_ANY => network::EventRegisterAnyArgs, network::EventRegisterAnyRet;
        CONNECT_NETWORK_EVENT_DEREGISTER_ANY => network::EventDeregisterAnyArgs, ();
        NETWORK_EVENT_LIFECYCLE => (), network::NetworkEventLifecycleMsg;
        NETWORK_EVENT_CALLBACK_METADATA_CHANGE => (), network::NetworkEventMetadataChangeMsg;
        NETWORK_LIST_ALL_PORTS => network::ListAllPortsArgs, network::ListAllPortsRet;
        NETWORK_PORT_LOOKUP_BY_UUID => network::PortLookupByUuidArgs, network::PortRet;
        NETWORK_PORT_CREATE_XML => network::PortCreateXmlArgs, network::PortRet;
        NETWORK_PORT_GET_PARAMETERS => network::PortGetParametersArgs, network::PortGetParametersRet;
        NETWORK_PORT_SET_PARAMETERS => network::PortSetParametersArgs, ();
        NETWORK_PORT_GET_XML_DESC => network::PortFlagsArgs, network::XmlRet;
        NETWORK_PORT_DELETE => network::PortFlagsArgs, ();
        CONNECT_NUM_OF_NWFILTERS => (), nwfilter::NumRet;
        CONNECT_LIST_NWFILTERS => nwfilter::MaxNamesArgs, nwfilter::NamesRet;
        CONNECT_LIST_ALL_NWFILTERS => nwfilter::ListAllArgs, nwfilter::ListAllNwFiltersRet;
        NWFILTER_LOOKUP_BY_NAME => nwfilter::NameArgs, nwfilter::NwFilterRet;
        NWFILTER_LOOKUP_BY_UUID => nwfilter::UuidArgs, nwfilter::NwFilterRet;
        NWFILTER_DEFINE_XML => nwfilter::XmlArgs, nwfilter::NwFilterRet;
        NWFILTER_DEFINE_XML_FLAGS => nwfilter::XmlFlagsArgs, nwfilter::NwFilterRet;
        NWFILTER_UNDEFINE => nwfilter::NwFilterArgs, ();
        NWFILTER_GET_XML_DESC => nwfilter::NwFilterFlagsArgs, nwfilter::XmlRet;
        NWFILTER_BINDING_LOOKUP_BY_PORT_DEV => nwfilter::NameArgs, nwfilter::BindingRet;
        NWFILTER_BINDING_CREATE_XML => nwfilter::XmlFlagsArgs, nwfilter::BindingRet;
        NWFILTER_BINDING_DELETE => nwfilter::BindingArgs, ();
        NWFILTER_BINDING_GET_XML_DESC => nwfilter::BindingFlagsArgs, nwfilter::XmlRet;
        CONNECT_LIST_ALL_NWFILTER_BINDINGS => nwfilter::ListAllArgs, nwfilter::ListAllBindingsRet;
    }
}

/// Replays every frame of every `.txt` file in `dir`; returns (files, frames).
fn replay_dir(dir: &std::path::Path) -> (usize, usize) {
    let mut frames = 0;
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("wire vectors")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let what = format!("{}:{}", f.file_name().unwrap().to_string_lossy(), n + 1);
            let (left, comment) = line.split_once(" # ").unwrap();
            let hex = left.split_once(' ').unwrap().1;
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            assert_eq!(
                u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize,
                bytes.len()
            );
            let h = Header::decode(bytes[4..4 + HEADER_LEN].try_into().unwrap());
            let mut re = Vec::new();
            h.encode(&mut re);
            assert_eq!(re, &bytes[4..4 + HEADER_LEN], "{what}: header");
            let payload = &bytes[4 + HEADER_LEN..];
            frames += 1;
            if h.prog == vireo_proto::KEEPALIVE_PROGRAM {
                assert!(payload.is_empty(), "{what}");
                continue;
            }
            // The comment names the procedure as libvirt does: so must we.
            if let Some(name) = proc_name(h.proc_) {
                let want = format!("REMOTE {name}({}) ", h.proc_);
                assert!(comment.starts_with(&want), "{what}: {comment}");
            }
            match (h.message_type(), h.status()) {
                (Some(MessageType::Call), _) if proc_name(h.proc_).is_none() => {
                    assert!(payload.is_empty(), "{what}")
                }
                (Some(MessageType::Call), _) => check(h.proc_, true, payload, &what),
                (Some(MessageType::Reply), Some(Status::Error)) => {
                    roundtrip::<RemoteError>(payload, &what)
                }
                (Some(MessageType::Reply | MessageType::Message), _) => {
                    check(h.proc_, false, payload, &what)
                }
                other => panic!("{what}: unexpected {other:?}"),
            }
        }
    }
    (files.len(), frames)
}

#[test]
fn every_captured_payload_round_trips() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/wire-vectors");
    let (files, frames) = replay_dir(&dir);
    assert!(files >= 16);
    assert_eq!(frames, 282);
}

#[test]
fn every_captured_network_and_nwfilter_payload_round_trips() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/network-vectors");
    let (files, frames) = replay_dir(&dir);
    assert_eq!(files, 25);
    assert_eq!(frames, 588);
}
