//! Every payload in the captured libvirt traffic decodes with our types, uses every byte,
//! and encodes back to the same bytes.

use vireo_proto::header::{Header, HEADER_LEN};
use vireo_proto::remote::*;
use vireo_proto::{MessageType, RemoteError, Status};
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
    }
}

#[test]
fn every_captured_payload_round_trips() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/wire-vectors");
    let mut frames = 0;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("wire vectors")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(files.len() >= 16);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let what = format!("{}:{}", f.file_name().unwrap().to_string_lossy(), n + 1);
            let (left, _) = line.split_once(" # ").unwrap();
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
    assert_eq!(frames, 282);
}
