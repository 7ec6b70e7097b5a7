//! The VM's API on the shim's socket: the libvirt REMOTE program, restricted to what one
//! running domain can answer. The daemon forwards its clients' calls here unchanged.

use std::sync::Arc;

use vireo_proto::error::{code, domain as errdom};
use vireo_proto::remote::*;
use vireo_proto::{Header, RemoteError, REMOTE_PROGRAM, REMOTE_VERSION};
use vireo_rpc::server::{Client, Dispatch, Outcome, Server, Service};
use vireo_xdr::{Array, Decoder, Xdr};

use crate::vm::{Lifecycle, OpFailed, OpInvalid, Vm};

/// `VIR_DOMAIN_DESTROY_GRACEFUL`.
const DESTROY_GRACEFUL: u32 = 1;

pub struct ShimService {
    vm: Arc<Vm>,
}

impl ShimService {
    pub fn new(vm: Arc<Vm>) -> Self {
        ShimService { vm }
    }

    fn handle(&self) -> Domain {
        handle(&self.vm)
    }

    fn now(&self, p: i32, payload: &[u8]) -> Result<Vec<u8>, RemoteError> {
        let vm = &self.vm;
        match p {
            procs::AUTH_LIST => ret(AuthListRet {
                types: Array(vec![0]),
            }),
            procs::CONNECT_OPEN | procs::CONNECT_CLOSE => Ok(Vec::new()),
            procs::CONNECT_SUPPORTS_FEATURE => ret(ConnectSupportsFeatureRet { supported: 0 }),
            procs::DOMAIN_LOOKUP_BY_UUID => {
                let a: DomainLookupByUuidArgs = args(payload)?;
                self.check_uuid(&a.uuid)?;
                ret(DomainRet { dom: self.handle() })
            }
            procs::DOMAIN_GET_STATE => {
                let a: DomainFlagsArgs = args(payload)?;
                self.check_uuid(&a.dom.uuid)?;
                let (state, reason) = vm.state();
                ret(DomainGetStateRet { state, reason })
            }
            procs::DOMAIN_GET_INFO => {
                let a: DomainArgs = args(payload)?;
                self.check_uuid(&a.dom.uuid)?;
                ret(DomainGetInfoRet {
                    state: vm.state().0 as u32,
                    max_mem: vm.def.max_memory_kib(),
                    memory: vm.def.current_memory_kib,
                    nr_virt_cpu: vm.def.current_vcpus(),
                    cpu_time: vm.cpu_time_ns(),
                })
            }
            procs::DOMAIN_GET_XML_DESC => {
                let a: DomainFlagsArgs = args(payload)?;
                self.check_uuid(&a.dom.uuid)?;
                ret(DomainGetXmlDescRet { xml: vm.live_xml() })
            }
            _ => Err(RemoteError::unknown_procedure(p)),
        }
    }

    fn check_uuid(&self, uuid: &Uuid) -> Result<(), RemoteError> {
        if *uuid == self.vm.uuid {
            Ok(())
        } else {
            Err(RemoteError::new(
                code::NO_DOMAIN,
                errdom::QEMU,
                "Domain not found: this shim serves another domain",
            ))
        }
    }
}

impl Service for ShimService {
    type ClientData = ();

    fn knows_program(&self, prog: u32, vers: u32) -> bool {
        prog == REMOTE_PROGRAM && vers == REMOTE_VERSION
    }

    fn call(self: Arc<Self>, _client: &Arc<Client<()>>, h: Header, payload: &[u8]) -> Dispatch {
        let p = h.proc_;
        let op = match p {
            procs::DOMAIN_SUSPEND
            | procs::DOMAIN_RESUME
            | procs::DOMAIN_SHUTDOWN
            | procs::DOMAIN_SHUTDOWN_FLAGS
            | procs::DOMAIN_REBOOT
            | procs::DOMAIN_RESET
            | procs::DOMAIN_DESTROY
            | procs::DOMAIN_DESTROY_FLAGS => p,
            _ => return Dispatch::Now(self.now(p, payload).into()),
        };
        // The first argument of all of these is the domain handle; some add flags.
        let mut d = Decoder::new(payload);
        let dom = match Domain::decode(&mut d) {
            Ok(dom) => dom,
            Err(e) => {
                return Dispatch::Now(Outcome::Error(RemoteError::rpc(format!(
                    "Unable to decode message payload: {e}"
                ))))
            }
        };
        let flags = if d.remaining() >= 4 {
            u32::decode(&mut d).unwrap_or(0)
        } else {
            0
        };
        if let Err(e) = self.check_uuid(&dom.uuid) {
            return Dispatch::Now(Outcome::Error(e));
        }
        Dispatch::Later(Box::pin(async move {
            let vm = &self.vm;
            let r = match op {
                procs::DOMAIN_SUSPEND => vm.suspend().await,
                procs::DOMAIN_RESUME => vm.resume().await,
                procs::DOMAIN_SHUTDOWN | procs::DOMAIN_SHUTDOWN_FLAGS => vm.shutdown().await,
                procs::DOMAIN_REBOOT => vm.reboot().await,
                procs::DOMAIN_RESET => vm.reset().await,
                _ => vm.destroy(flags & DESTROY_GRACEFUL != 0).await,
            };
            match r {
                Ok(()) => Outcome::Reply(Vec::new()),
                Err(e) => Outcome::Error(to_remote(&e)),
            }
        }))
    }
}

/// The handle of the shim's domain (id -1 once QEMU is gone).
pub fn handle(vm: &Vm) -> Domain {
    let running = vm.state().0 != state::SHUTOFF;
    Domain {
        name: vm.def.name.clone(),
        uuid: vm.uuid,
        id: if running { vm.id } else { -1 },
    }
}

/// Sends a lifecycle event to every client of the shim (the daemon, mostly).
pub fn broadcast(server: &Arc<Server<ShimService>>, vm: &Vm, ev: Lifecycle) {
    let payload = vireo_xdr::to_bytes(&DomainEventLifecycleMsg {
        dom: handle(vm),
        event: ev.event,
        detail: ev.detail,
    });
    for c in server.clients() {
        c.send_message(
            REMOTE_PROGRAM,
            REMOTE_VERSION,
            procs::DOMAIN_EVENT_LIFECYCLE,
            1,
            &payload,
        );
    }
}

fn to_remote(e: &anyhow::Error) -> RemoteError {
    if let Some(OpInvalid(m)) = e.downcast_ref() {
        return RemoteError::new(
            code::OPERATION_INVALID,
            errdom::QEMU,
            format!("Requested operation is not valid: {m}"),
        );
    }
    if let Some(OpFailed(m)) = e.downcast_ref() {
        return RemoteError::new(
            code::OPERATION_FAILED,
            errdom::QEMU,
            format!("operation failed: {m}"),
        );
    }
    RemoteError::new(
        code::INTERNAL_ERROR,
        errdom::QEMU,
        format!("internal error: {e}"),
    )
}

fn args<T: Xdr>(payload: &[u8]) -> Result<T, RemoteError> {
    vireo_xdr::from_bytes(payload)
        .map_err(|e| RemoteError::rpc(format!("Unable to decode message payload: {e}")))
}

fn ret<T: Xdr>(v: T) -> Result<Vec<u8>, RemoteError> {
    Ok(vireo_xdr::to_bytes(&v))
}
