//! The network filter calls of REMOTE_PROGRAM: filters (175–181, 286, 431) and filter
//! bindings (397–401), in libvirt's field order. Neither has events.

use vireo_xdr::{xdr_struct, Array};

use crate::remote::Uuid;

/// libvirt's `REMOTE_NWFILTER_LIST_MAX`.
pub const NWFILTER_LIST_MAX: usize = 16384;
/// libvirt's `REMOTE_NWFILTER_BINDING_LIST_MAX`.
pub const NWFILTER_BINDING_LIST_MAX: usize = 16384;

xdr_struct! {
    /// A network filter handle (`remote_nonnull_nwfilter`).
    pub struct NwFilter {
        pub name: String,
        pub uuid: Uuid,
    }
}

xdr_struct! {
    /// A filter binding handle (`remote_nonnull_nwfilter_binding`): the port device (the
    /// guest interface's host-side name, e.g. `vnet0`) and the filter bound to it.
    pub struct NwFilterBinding {
        pub portdev: String,
        pub filtername: String,
    }
}

/// `VIR_NWFILTER_DEFINE_VALIDATE` (NWFILTER_DEFINE_XML_FLAGS).
pub const DEFINE_VALIDATE: u32 = 1;
/// `VIR_NWFILTER_BINDING_CREATE_VALIDATE` (NWFILTER_BINDING_CREATE_XML).
pub const BINDING_CREATE_VALIDATE: u32 = 1;

// ---- Filters.

xdr_struct! { pub struct NumRet { pub num: i32 } }
xdr_struct! { pub struct MaxNamesArgs { pub maxnames: i32 } }
xdr_struct! { pub struct NamesRet { pub names: Array<String, NWFILTER_LIST_MAX> } }
xdr_struct! {
    /// CONNECT_LIST_ALL_NWFILTERS and CONNECT_LIST_ALL_NWFILTER_BINDINGS: libvirt defines
    /// no flags for either, so `flags` must be 0.
    pub struct ListAllArgs { pub need_results: i32, pub flags: u32 }
}
xdr_struct! {
    pub struct ListAllNwFiltersRet {
        pub filters: Array<NwFilter, NWFILTER_LIST_MAX>,
        pub ret: u32,
    }
}
xdr_struct! {
    /// NWFILTER_LOOKUP_BY_NAME, and NWFILTER_BINDING_LOOKUP_BY_PORT_DEV (the port device).
    pub struct NameArgs { pub name: String }
}
xdr_struct! { pub struct UuidArgs { pub uuid: Uuid } }
xdr_struct! {
    /// NWFILTER_DEFINE_XML.
    pub struct XmlArgs { pub xml: String }
}
xdr_struct! {
    /// NWFILTER_DEFINE_XML_FLAGS and NWFILTER_BINDING_CREATE_XML.
    pub struct XmlFlagsArgs { pub xml: String, pub flags: u32 }
}
xdr_struct! { pub struct XmlRet { pub xml: String } }
xdr_struct! {
    /// Returns that are just a filter handle (lookups, define).
    pub struct NwFilterRet { pub nwfilter: NwFilter }
}
xdr_struct! {
    /// Arguments that are just a filter handle (undefine).
    pub struct NwFilterArgs { pub nwfilter: NwFilter }
}
xdr_struct! {
    /// Arguments that are a filter handle and flags (get XML desc).
    pub struct NwFilterFlagsArgs { pub nwfilter: NwFilter, pub flags: u32 }
}

// ---- Bindings.

xdr_struct! {
    /// Returns that are just a binding handle (lookup by port device, create).
    pub struct BindingRet { pub nwfilter: NwFilterBinding }
}
xdr_struct! {
    /// Arguments that are just a binding handle (delete).
    pub struct BindingArgs { pub nwfilter: NwFilterBinding }
}
xdr_struct! {
    /// Arguments that are a binding handle and flags (get XML desc).
    pub struct BindingFlagsArgs { pub nwfilter: NwFilterBinding, pub flags: u32 }
}
xdr_struct! {
    pub struct ListAllBindingsRet {
        pub bindings: Array<NwFilterBinding, NWFILTER_BINDING_LIST_MAX>,
        pub ret: u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vireo_xdr::{from_bytes, to_bytes, Xdr, XdrError};

    fn rt<T: Xdr + PartialEq + std::fmt::Debug>(v: &T) -> Vec<u8> {
        let b = to_bytes(v);
        assert_eq!(&from_bytes::<T>(&b).unwrap(), v);
        b
    }

    fn filter() -> NwFilter {
        NwFilter {
            name: "clean-traffic".into(),
            uuid: [0x44; 16],
        }
    }

    fn binding() -> NwFilterBinding {
        NwFilterBinding {
            portdev: "vnet0".into(),
            filtername: "clean-traffic".into(),
        }
    }

    #[test]
    fn handles_are_in_libvirts_order() {
        let b = rt(&filter());
        assert_eq!(&b[..4], &[0, 0, 0, 13]);
        assert_eq!(&b[4..20], b"clean-traffic\0\0\0");
        assert_eq!(&b[20..], &[0x44; 16]);
        let b = rt(&binding());
        assert_eq!(&b[..12], b"\0\0\0\x05vnet0\0\0\0");
        assert_eq!(&b[12..16], &[0, 0, 0, 13]);
        assert_eq!(b.len(), 12 + 20);
    }

    #[test]
    fn calls_round_trip() {
        rt(&NwFilterRet { nwfilter: filter() });
        rt(&NwFilterFlagsArgs {
            nwfilter: filter(),
            flags: 0,
        });
        rt(&XmlFlagsArgs {
            xml: "<filter name='x'/>".into(),
            flags: DEFINE_VALIDATE,
        });
        rt(&ListAllNwFiltersRet {
            filters: Array(vec![filter(), filter()]),
            ret: 2,
        });
        rt(&NamesRet {
            names: Array(vec!["a".into(), "clean-traffic".into()]),
        });
        rt(&BindingFlagsArgs {
            nwfilter: binding(),
            flags: 0,
        });
        rt(&ListAllBindingsRet {
            bindings: Array(vec![binding()]),
            ret: 1,
        });
        let b = rt(&ListAllArgs {
            need_results: 1,
            flags: 0,
        });
        assert_eq!(b, [0, 0, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn arrays_longer_than_their_maximum_are_refused() {
        fn too_long<T: Xdr>(b: &[u8]) -> bool {
            matches!(from_bytes::<T>(b), Err(XdrError::TooLong { .. }))
        }
        fn count_then_zeros(n: usize, elem: usize) -> Vec<u8> {
            let mut b = to_bytes(&(n as u32));
            b.resize(4 + n * elem + 4, 0);
            b
        }
        assert!(too_long::<NamesRet>(&count_then_zeros(
            NWFILTER_LIST_MAX + 1,
            4
        )));
        assert!(too_long::<ListAllNwFiltersRet>(&count_then_zeros(
            NWFILTER_LIST_MAX + 1,
            NwFilter::MIN_SIZE
        )));
        assert!(too_long::<ListAllBindingsRet>(&count_then_zeros(
            NWFILTER_BINDING_LIST_MAX + 1,
            NwFilterBinding::MIN_SIZE
        )));
        // Exactly the maximum of empty bindings (two empty strings each) decodes.
        let ok = count_then_zeros(NWFILTER_BINDING_LIST_MAX, NwFilterBinding::MIN_SIZE);
        let r = from_bytes::<ListAllBindingsRet>(&ok).unwrap();
        assert_eq!(r.bindings.0.len(), NWFILTER_BINDING_LIST_MAX);
    }

    #[test]
    fn read_only_connections_may_look_but_not_change() {
        use crate::remote::{allowed_read_only, procs::*};
        for p in [
            CONNECT_NUM_OF_NWFILTERS,
            CONNECT_LIST_NWFILTERS,
            CONNECT_LIST_ALL_NWFILTERS,
            NWFILTER_LOOKUP_BY_NAME,
            NWFILTER_LOOKUP_BY_UUID,
            NWFILTER_GET_XML_DESC,
            NWFILTER_BINDING_LOOKUP_BY_PORT_DEV,
            NWFILTER_BINDING_GET_XML_DESC,
            CONNECT_LIST_ALL_NWFILTER_BINDINGS,
        ] {
            assert!(allowed_read_only(p), "{p}");
        }
        for p in [
            NWFILTER_DEFINE_XML,
            NWFILTER_DEFINE_XML_FLAGS,
            NWFILTER_UNDEFINE,
            NWFILTER_BINDING_CREATE_XML,
            NWFILTER_BINDING_DELETE,
        ] {
            assert!(!allowed_read_only(p), "{p}");
        }
    }
}
