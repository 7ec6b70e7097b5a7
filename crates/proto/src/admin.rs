//! ADMIN_PROGRAM: the admin API libvirt's daemons serve on their admin socket, and that
//! `virt-admin` speaks. Procedure numbers and field orders are libvirt's (the wire contract);
//! the Rust spelling is ours. `XxxArgs` is what a CALL carries, `XxxRet` what its REPLY
//! carries.

use vireo_xdr::{xdr_struct, Array};

pub use crate::ADMIN_PROGRAM;
pub const ADMIN_VERSION: u32 = 1;

/// libvirt's list maxima for this program.
pub const SERVER_LIST_MAX: usize = 16384;
pub const SERVER_THREADPOOL_PARAMETERS_MAX: usize = 32;
pub const CLIENT_LIST_MAX: usize = 16384;
pub const CLIENT_INFO_PARAMETERS_MAX: usize = 64;
pub const SERVER_CLIENT_LIMITS_MAX: usize = 32;

/// `virClientTransport`: how a client reached the daemon.
pub mod transport {
    pub const UNIX: u32 = 0;
    pub const TCP: u32 = 1;
    pub const TLS: u32 = 2;
}

procedures! {
    CONNECT_OPEN = 1,
    CONNECT_CLOSE = 2,
    CONNECT_GET_LIB_VERSION = 3,
    CONNECT_LIST_SERVERS = 4,
    CONNECT_LOOKUP_SERVER = 5,
    SERVER_GET_THREADPOOL_PARAMETERS = 6,
    SERVER_SET_THREADPOOL_PARAMETERS = 7,
    SERVER_LIST_CLIENTS = 8,
    SERVER_LOOKUP_CLIENT = 9,
    CLIENT_GET_INFO = 10,
    CLIENT_CLOSE = 11,
    SERVER_GET_CLIENT_LIMITS = 12,
    SERVER_SET_CLIENT_LIMITS = 13,
    CONNECT_GET_LOGGING_OUTPUTS = 14,
    CONNECT_GET_LOGGING_FILTERS = 15,
    CONNECT_SET_LOGGING_OUTPUTS = 16,
    CONNECT_SET_LOGGING_FILTERS = 17,
    SERVER_UPDATE_TLS_FILES = 18,
    CONNECT_SET_DAEMON_TIMEOUT = 19,
}

pub use crate::typed::{param_type, TypedParam, TypedValue};

xdr_struct! {
    /// A server handle (`admin_nonnull_server`).
    pub struct Server { pub name: String }
}

xdr_struct! {
    /// A client handle (`admin_nonnull_client`): `timestamp` is the connection time in
    /// seconds since the epoch, `transport` one of [`transport`].
    pub struct Client {
        pub srv: Server,
        pub id: u64,
        pub timestamp: i64,
        pub transport: u32,
    }
}

xdr_struct! {
/// Arguments that are just flags (CONNECT_OPEN, CONNECT_GET_LOGGING_*).
pub struct FlagsArgs { pub flags: u32 } }
xdr_struct! {
/// Arguments that are a server handle and flags (threadpool and client-limit getters,
/// TLS update).
pub struct ServerFlagsArgs { pub srv: Server, pub flags: u32 } }
xdr_struct! {
/// Arguments that are a client handle and flags (CLIENT_GET_INFO, CLIENT_CLOSE).
pub struct ClientFlagsArgs { pub clnt: Client, pub flags: u32 } }

xdr_struct! { pub struct ConnectGetLibVersionRet { pub lib_ver: u64 } }
xdr_struct! { pub struct ConnectListServersArgs { pub need_results: u32, pub flags: u32 } }
xdr_struct! {
    pub struct ConnectListServersRet {
        pub servers: Array<Server, SERVER_LIST_MAX>,
        pub ret: u32,
    }
}
xdr_struct! { pub struct ConnectLookupServerArgs { pub name: String, pub flags: u32 } }
xdr_struct! { pub struct ConnectLookupServerRet { pub srv: Server } }
xdr_struct! {
    pub struct ServerGetThreadpoolParametersRet {
        pub params: Array<TypedParam, SERVER_THREADPOOL_PARAMETERS_MAX>,
    }
}
xdr_struct! {
    pub struct ServerSetThreadpoolParametersArgs {
        pub srv: Server,
        pub params: Array<TypedParam, SERVER_THREADPOOL_PARAMETERS_MAX>,
        pub flags: u32,
    }
}
xdr_struct! {
    pub struct ServerListClientsArgs {
        pub srv: Server,
        pub need_results: u32,
        pub flags: u32,
    }
}
xdr_struct! {
    pub struct ServerListClientsRet {
        pub clients: Array<Client, CLIENT_LIST_MAX>,
        pub ret: u32,
    }
}
xdr_struct! {
    pub struct ServerLookupClientArgs {
        pub srv: Server,
        pub id: u64,
        pub flags: u32,
    }
}
xdr_struct! { pub struct ServerLookupClientRet { pub clnt: Client } }
xdr_struct! {
    pub struct ClientGetInfoRet {
        pub params: Array<TypedParam, CLIENT_INFO_PARAMETERS_MAX>,
    }
}
xdr_struct! {
    pub struct ServerGetClientLimitsRet {
        pub params: Array<TypedParam, SERVER_CLIENT_LIMITS_MAX>,
    }
}
xdr_struct! {
    pub struct ServerSetClientLimitsArgs {
        pub srv: Server,
        pub params: Array<TypedParam, SERVER_CLIENT_LIMITS_MAX>,
        pub flags: u32,
    }
}
xdr_struct! { pub struct ConnectGetLoggingOutputsRet { pub outputs: String, pub noutputs: u32 } }
xdr_struct! {
    pub struct ConnectGetLoggingFiltersRet {
        pub filters: Option<String>,
        pub nfilters: u32,
    }
}
xdr_struct! {
    pub struct ConnectSetLoggingOutputsArgs {
        pub outputs: Option<String>,
        pub flags: u32,
    }
}
xdr_struct! {
    pub struct ConnectSetLoggingFiltersArgs {
        pub filters: Option<String>,
        pub flags: u32,
    }
}
xdr_struct! { pub struct ConnectSetDaemonTimeoutArgs { pub timeout: u32, pub flags: u32 } }

#[cfg(test)]
mod tests {
    use super::*;
    use vireo_xdr::{from_bytes, to_bytes};

    #[test]
    fn typed_param_layout() {
        let p = TypedParam::uint("nWorkers", 4);
        assert_eq!(
            to_bytes(&p),
            [
                &8u32.to_be_bytes()[..],
                b"nWorkers",
                &2u32.to_be_bytes(),
                &4u32.to_be_bytes()
            ]
            .concat()
        );
        let b = to_bytes(&TypedParam::boolean("readonly", true));
        assert_eq!(&b[b.len() - 8..], &[0, 0, 0, 6, 0, 0, 0, 1]);
        for p in [
            TypedParam::int("a", -3),
            TypedParam::new("b", TypedValue::LLong(-1 << 40)),
            TypedParam::new("c", TypedValue::ULLong(1 << 40)),
            TypedParam::new("d", TypedValue::Double(0.5)),
            TypedParam::string("unix_user_name", "root"),
        ] {
            assert_eq!(from_bytes::<TypedParam>(&to_bytes(&p)).unwrap(), p);
        }
    }

    #[test]
    fn hostile_typed_params_are_refused() {
        // Unknown discriminant.
        let mut b = to_bytes(&"x".to_string());
        b.extend_from_slice(&9u32.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes());
        assert!(from_bytes::<TypedParam>(&b).is_err());
        // A count beyond the maximum, and one beyond the buffer.
        let mut b = to_bytes(&Server { name: "s".into() });
        b.extend_from_slice(&33u32.to_be_bytes());
        assert!(from_bytes::<ServerSetThreadpoolParametersArgs>(&b).is_err());
        let mut b = to_bytes(&Server { name: "s".into() });
        b.extend_from_slice(&32u32.to_be_bytes());
        assert!(from_bytes::<ServerSetThreadpoolParametersArgs>(&b).is_err());
    }

    #[test]
    fn client_handle_layout() {
        let c = Client {
            srv: Server {
                name: "vireod".into(),
            },
            id: 7,
            timestamp: 1_700_000_000,
            transport: transport::UNIX,
        };
        let b = to_bytes(&c);
        assert_eq!(b.len(), 4 + 8 + 8 + 8 + 4);
        assert_eq!(from_bytes::<Client>(&b).unwrap(), c);
        assert_eq!(proc_name(procs::CLIENT_CLOSE), Some("CLIENT_CLOSE"));
        assert_eq!(proc_name(20), None);
    }
}
