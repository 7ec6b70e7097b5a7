//! Connection-level calls: open/close, auth, features, versions, host facts, capabilities.

use std::sync::Arc;

use vireo_proto::error::{code, domain as errdom};
use vireo_proto::feature;
use vireo_proto::remote::*;
use vireo_proto::typed::{find, TypedValue};
use vireo_proto::RemoteError;
use vireo_rpc::server::Identity;
use vireo_xdr::{Array, CharArray, FixedChars};

use crate::identity::{token_matches, TOKEN_PARAM};

use super::domain::check_flags;
use super::{args, ret, void, ProcResult, RemoteClient, RemoteService};

pub use vireo_proto::remote::LIB_VERSION;

/// The connection-level calls every daemon answers itself, whatever drivers it hosts.
pub(super) fn serves(p: i32) -> bool {
    matches!(
        p,
        procs::AUTH_LIST
            | procs::CONNECT_SUPPORTS_FEATURE
            | procs::CONNECT_OPEN
            | procs::CONNECT_SET_IDENTITY
            | procs::CONNECT_CLOSE
            | procs::CONNECT_REGISTER_CLOSE_CALLBACK
            | procs::CONNECT_UNREGISTER_CLOSE_CALLBACK
            | procs::CONNECT_GET_LIB_VERSION
            | procs::CONNECT_GET_HOSTNAME
            | procs::CONNECT_GET_URI
            | procs::CONNECT_IS_SECURE
    )
}

pub(super) fn dispatch(
    s: &RemoteService,
    client: &Arc<RemoteClient>,
    p: i32,
    payload: &[u8],
) -> Option<ProcResult> {
    Some(match p {
        procs::AUTH_LIST => ret(AuthListRet {
            types: Array(vec![0]),
        }),
        procs::CONNECT_SUPPORTS_FEATURE => {
            let a: ConnectSupportsFeatureArgs = match args(payload) {
                Ok(a) => a,
                Err(e) => return Some(Err(e)),
            };
            let supported = match a.feature {
                feature::PROGRAM_KEEPALIVE => {
                    client.enable_keepalive();
                    1
                }
                feature::REMOTE_EVENT_CALLBACK
                | feature::REMOTE_CLOSE_CALLBACK
                | feature::TYPED_PARAM_STRING => 1,
                // Migration (protocol 3 with typed parameters, peer-to-peer) and the
                // migratable XML, where domains are served.
                feature::MIGRATION_P2P
                | feature::MIGRATION_V3
                | feature::XML_MIGRATABLE
                | feature::MIGRATION_PARAMS
                    if s.qemu.is_some() =>
                {
                    1
                }
                _ => 0,
            };
            ret(ConnectSupportsFeatureRet { supported })
        }
        procs::CONNECT_OPEN => open(s, client, payload),
        procs::CONNECT_SET_IDENTITY => set_identity(s, client, payload),
        procs::CONNECT_CLOSE => {
            let mut st = client.data.lock();
            st.open = false;
            st.close_callback = false;
            void()
        }
        procs::CONNECT_REGISTER_CLOSE_CALLBACK => {
            client.data.lock().close_callback = true;
            void()
        }
        procs::CONNECT_UNREGISTER_CLOSE_CALLBACK => {
            client.data.lock().close_callback = false;
            void()
        }
        procs::CONNECT_GET_TYPE => ret(ConnectGetTypeRet {
            type_: "QEMU".into(),
        }),
        procs::CONNECT_GET_VERSION => s.hv().and_then(|q| {
            ret(ConnectGetVersionRet {
                hv_ver: q.hypervisor_version(),
            })
        }),
        procs::CONNECT_GET_LIB_VERSION => ret(ConnectGetLibVersionRet {
            lib_ver: LIB_VERSION,
        }),
        procs::CONNECT_GET_HOSTNAME => ret(ConnectGetHostnameRet {
            hostname: vireo_driver::host::hostname(),
        }),
        procs::CONNECT_GET_URI => {
            let uri = client.data.lock().uri.clone();
            ret(ConnectGetUriRet {
                uri: uri.unwrap_or_else(|| s.paths.default_uri("qemu")),
            })
        }
        procs::CONNECT_IS_SECURE => ret(ConnectIsSecureRet { secure: 1 }),
        procs::CONNECT_GET_MAX_VCPUS => {
            if let Err(e) = args::<ConnectGetMaxVcpusArgs>(payload) {
                return Some(Err(e));
            }
            ret(ConnectGetMaxVcpusRet { max_vcpus: 255 })
        }
        procs::CONNECT_GET_DOMAIN_CAPABILITIES => {
            let a: ConnectGetDomainCapabilitiesArgs = match args(payload) {
                Ok(a) => a,
                Err(e) => return Some(Err(e)),
            };
            if let Err(e) = check_flags(a.flags, 0) {
                return Some(Err(e));
            }
            let q = vireo_qemu::domcaps::Query {
                emulator: a.emulatorbin.as_deref(),
                arch: a.arch.as_deref(),
                machine: a.machine.as_deref(),
                virttype: a.virttype.as_deref(),
            };
            s.hv().and_then(|h| {
                ret(ConnectGetDomainCapabilitiesRet {
                    capabilities: h.domain_capabilities(&q)?,
                })
            })
        }
        procs::NODE_GET_CPU_MAP => {
            let a: NodeGetCpuMapArgs = match args(payload) {
                Ok(a) => a,
                Err(e) => return Some(Err(e)),
            };
            if let Err(e) = check_flags(a.flags, 0) {
                return Some(Err(e));
            }
            let (count, online) = vireo_driver::host::cpu_map();
            let mut map = Vec::new();
            if a.need_map != 0 {
                map = vec![0u8; (count as usize).div_ceil(8).min(CPUMAP_MAX)];
                for c in &online {
                    if let Some(b) = map.get_mut(*c as usize / 8) {
                        *b |= 1 << (c % 8);
                    }
                }
            }
            ret(NodeGetCpuMapRet {
                cpumap: vireo_xdr::Opaque(map),
                online: if a.need_online != 0 {
                    online.len() as u32
                } else {
                    0
                },
                ret: count as i32,
            })
        }
        procs::CONNECT_GET_CPU_MODEL_NAMES => {
            let a: ConnectGetCpuModelNamesArgs = match args(payload) {
                Ok(a) => a,
                Err(e) => return Some(Err(e)),
            };
            if let Err(e) = check_flags(a.flags, 0) {
                return Some(Err(e));
            }
            s.hv().and_then(|h| {
                let models = h.cpu_model_names(&a.arch)?;
                let n = models.len() as i32;
                // need_results 0: only the count.
                let models = if a.need_results == 0 {
                    Vec::new()
                } else {
                    models
                };
                ret(ConnectGetCpuModelNamesRet {
                    models: vireo_xdr::Array(models),
                    ret: n,
                })
            })
        }
        procs::CONNECT_COMPARE_CPU => {
            let a: ConnectCompareCpuArgs = match args(payload) {
                Ok(a) => a,
                Err(e) => return Some(Err(e)),
            };
            s.hv().and_then(|q| {
                ret(ConnectCompareCpuRet {
                    result: q.compare_cpu(&a.xml, a.flags)?,
                })
            })
        }
        procs::CONNECT_COMPARE_HYPERVISOR_CPU => {
            let a: ConnectCompareHypervisorCpuArgs = match args(payload) {
                Ok(a) => a,
                Err(e) => return Some(Err(e)),
            };
            s.hv().and_then(|q| {
                check_hypervisor(&a.arch, &a.virttype)?;
                ret(ConnectCompareCpuRet {
                    result: q.compare_cpu(&a.xml_cpu, a.flags)?,
                })
            })
        }
        procs::CONNECT_BASELINE_CPU => {
            let a: ConnectBaselineCpuArgs = match args(payload) {
                Ok(a) => a,
                Err(e) => return Some(Err(e)),
            };
            s.hv().and_then(|q| {
                ret(ConnectBaselineCpuRet {
                    cpu: q.baseline_cpu(&a.xml_cpus.0, a.flags, false)?,
                })
            })
        }
        procs::CONNECT_BASELINE_HYPERVISOR_CPU => {
            let a: ConnectBaselineHypervisorCpuArgs = match args(payload) {
                Ok(a) => a,
                Err(e) => return Some(Err(e)),
            };
            s.hv().and_then(|q| {
                check_hypervisor(&a.arch, &a.virttype)?;
                ret(ConnectBaselineCpuRet {
                    cpu: q.baseline_cpu(&a.xml_cpus.0, a.flags, true)?,
                })
            })
        }
        procs::CONNECT_GET_CAPABILITIES => s.hv().and_then(|q| {
            ret(ConnectGetCapabilitiesRet {
                capabilities: q.capabilities_xml(),
            })
        }),
        procs::NODE_GET_INFO => {
            let n = vireo_driver::host::node_info();
            ret(NodeGetInfoRet {
                model: FixedChars(n.model),
                memory: n.memory_kib,
                cpus: n.cpus as i32,
                mhz: n.mhz as i32,
                nodes: n.nodes as i32,
                sockets: n.sockets as i32,
                cores: n.cores as i32,
                threads: n.threads as i32,
            })
        }
        procs::NODE_GET_SECURITY_MODEL => ret(NodeGetSecurityModelRet {
            model: CharArray("none".into()),
            doi: CharArray("0".into()),
        }),
        _ => return None,
    })
}

fn open(s: &RemoteService, client: &Arc<RemoteClient>, payload: &[u8]) -> ProcResult {
    let a: ConnectOpenArgs = args(payload)?;
    let uri = match a.name.as_deref() {
        None | Some("") => s.paths.default_uri("qemu"),
        Some(u) => u.to_string(),
    };
    let scheme = uri.split("://").next().unwrap_or("");
    if !s.role.accepts_scheme(scheme) {
        return Err(RemoteError::new(
            code::NO_CONNECT,
            errdom::REMOTE,
            format!("no connection driver available for {uri}"),
        ));
    }
    let mut st = client.data.lock();
    st.open = true;
    st.readonly = client.readonly || a.flags & CONNECT_RO != 0;
    st.uri = Some(uri);
    void()
}

/// Another Vireo daemon vouches for the client it forwards: accepted only with the shared
/// token, and only before the connection is opened.
fn set_identity(s: &RemoteService, client: &Arc<RemoteClient>, payload: &[u8]) -> ProcResult {
    let a: ConnectSetIdentityArgs = args(payload)?;
    let denied = |why: &str| {
        RemoteError::new(
            code::OPERATION_DENIED,
            errdom::RPC,
            format!("operation forbidden: {why}"),
        )
    };
    if client.data.lock().open {
        return Err(denied(
            "identity can only be set before the connection is opened",
        ));
    }
    let token = match find(&a.params.0, TOKEN_PARAM) {
        Some(TypedValue::String(t)) => t,
        _ => return Err(denied("forged identity: no token")),
    };
    if !token_matches(token, &s.token) {
        return Err(denied("forged identity: wrong token"));
    }
    let num = |f: &str| match find(&a.params.0, f) {
        Some(TypedValue::ULLong(v)) => Some(*v as i64),
        Some(TypedValue::LLong(v)) => Some(*v),
        Some(TypedValue::UInt(v)) => Some(*v as i64),
        Some(TypedValue::Int(v)) => Some(*v as i64),
        _ => None,
    };
    let peer = client.identity;
    let for_user = ["unix-user-id", "unix-group-id", "process-id"]
        .iter()
        .any(|f| find(&a.params.0, f).is_some());
    client.data.lock().internal = !for_user;
    let text = |f: &str| match find(&a.params.0, f) {
        Some(TypedValue::String(v)) => Some(v.clone()),
        _ => None,
    };
    client.set_forwarded_remote(text("sasl-user-name"), text("x509-distinguished-name"));
    client.set_forwarded_identity(Identity {
        uid: num("unix-user-id").map(|v| v as u32).unwrap_or(peer.uid),
        gid: num("unix-group-id").map(|v| v as u32).unwrap_or(peer.gid),
        pid: num("process-id").map(|v| v as i32),
    });
    void()
}

/// The hypervisor CPU calls answer for this host's x86_64 QEMU (kvm or qemu) only.
fn check_hypervisor(arch: &Option<String>, virttype: &Option<String>) -> Result<(), RemoteError> {
    if let Some(a) = arch.as_deref().filter(|a| *a != "x86_64") {
        return Err(vireo_driver::DriverError::InvalidArg(format!(
            "architecture '{a}' is not supported (x86_64)"
        ))
        .into());
    }
    if let Some(v) = virttype
        .as_deref()
        .filter(|v| !matches!(*v, "kvm" | "qemu"))
    {
        return Err(vireo_driver::DriverError::InvalidArg(format!(
            "virttype '{v}' is not supported (kvm, qemu)"
        ))
        .into());
    }
    Ok(())
}
