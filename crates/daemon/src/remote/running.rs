//! Domain calls that need a running VM (or start one): answered asynchronously, mostly by
//! forwarding the call, untouched, to the VM's shim.

use std::sync::Arc;

use vireo_proto::remote::*;
use vireo_proto::RemoteError;
use vireo_rpc::server::{BoxFuture, Outcome};
use vireo_xdr::{Decoder, Xdr};

use super::{args, ret, void, ProcResult, RemoteService};

/// `VIR_DOMAIN_XML_INACTIVE`.
const XML_INACTIVE: u32 = 2;

/// Some(future) when `p` is served here for this payload; None sends it to the ordinary
/// (synchronous) path.
pub(super) fn dispatch(
    s: &Arc<RemoteService>,
    p: i32,
    payload: &[u8],
    readonly: bool,
) -> Option<BoxFuture<Outcome>> {
    if matches!(
        p,
        procs::DOMAIN_ATTACH_DEVICE
            | procs::DOMAIN_ATTACH_DEVICE_FLAGS
            | procs::DOMAIN_DETACH_DEVICE
            | procs::DOMAIN_DETACH_DEVICE_FLAGS
            | procs::DOMAIN_UPDATE_DEVICE_FLAGS
            | procs::DOMAIN_DETACH_DEVICE_ALIAS
    ) {
        let s = Arc::clone(s);
        let payload = payload.to_vec();
        return Some(Box::pin(
            async move { device(&s, p, &payload).await.into() },
        ));
    }
    if matches!(p, procs::DOMAIN_GET_METADATA | procs::DOMAIN_SET_METADATA) {
        let s = Arc::clone(s);
        let payload = payload.to_vec();
        return Some(Box::pin(async move {
            let r = async {
                let q = s.hv()?;
                if p == procs::DOMAIN_SET_METADATA {
                    let a: DomainSetMetadataArgs = args(&payload)?;
                    q.set_metadata(&a).await?;
                    return void();
                }
                let a: DomainGetMetadataArgs = args(&payload)?;
                ret(DomainGetMetadataRet {
                    metadata: q
                        .get_metadata(&a.dom, a.type_, a.uri.as_deref(), a.flags)
                        .await?,
                })
            };
            r.await.into()
        }));
    }
    if p == procs::DOMAIN_SET_MEMORY_STATS_PERIOD {
        let s = Arc::clone(s);
        let payload = payload.to_vec();
        return Some(Box::pin(async move {
            let r = async {
                let a: DomainSetMemoryStatsPeriodArgs = args(&payload)?;
                s.hv()?
                    .set_memory_stats_period(&a.dom, a.period, a.flags)
                    .await?;
                void()
            };
            r.await.into()
        }));
    }
    if matches!(
        p,
        procs::DOMAIN_SAVE
            | procs::DOMAIN_SAVE_FLAGS
            | procs::DOMAIN_RESTORE
            | procs::DOMAIN_RESTORE_FLAGS
            | procs::DOMAIN_MANAGED_SAVE
    ) {
        let s = Arc::clone(s);
        let payload = payload.to_vec();
        return Some(Box::pin(async move {
            save_restore(&s, p, &payload).await.into()
        }));
    }
    if matches!(
        p,
        procs::DOMAIN_SET_MEMORY | procs::DOMAIN_SET_MAX_MEMORY | procs::DOMAIN_SET_MEMORY_FLAGS
    ) {
        let s = Arc::clone(s);
        let payload = payload.to_vec();
        return Some(Box::pin(async move {
            let r = async {
                let (dom, kib, flags) = match p {
                    // virDomainSetMemory: the running guest; virDomainSetMaxMemory: the
                    // maximum, where the domain is (refused while it runs).
                    procs::DOMAIN_SET_MEMORY => {
                        let a: DomainSetMemoryArgs = args(&payload)?;
                        (a.dom, a.memory, affect::LIVE)
                    }
                    procs::DOMAIN_SET_MAX_MEMORY => {
                        let a: DomainSetMemoryArgs = args(&payload)?;
                        (a.dom, a.memory, MEM_MAXIMUM)
                    }
                    _ => {
                        let a: DomainSetMemoryFlagsArgs = args(&payload)?;
                        (a.dom, a.memory, a.flags)
                    }
                };
                s.hv()?.set_memory(&dom, kib, flags).await?;
                void()
            };
            r.await.into()
        }));
    }
    if p == procs::DOMAIN_INTERFACE_ADDRESSES {
        let s = Arc::clone(s);
        let payload = payload.to_vec();
        return Some(Box::pin(async move {
            let r = async {
                let a: DomainInterfaceAddressesArgs = args(&payload)?;
                // The guest agent's answer comes from the VM's shim.
                if a.source == ifaddr_source::AGENT {
                    if !s.hv()?.is_running(&a.dom)? {
                        return Err(vireo_driver::DriverError::OperationInvalid(
                            "domain is not running".into(),
                        )
                        .into());
                    }
                    return forward_call(&s, p, &payload).await;
                }
                let ifaces = s
                    .hv()?
                    .interface_addresses(&a.dom, a.source, a.flags)
                    .await?;
                ret(DomainInterfaceAddressesRet {
                    ifaces: vireo_xdr::Array(
                        ifaces
                            .into_iter()
                            .map(|(name, hwaddr, addrs)| DomainInterface {
                                name,
                                hwaddr,
                                addrs: vireo_xdr::Array(
                                    addrs
                                        .into_iter()
                                        .map(|(type_, addr, prefix)| DomainIpAddr {
                                            type_,
                                            addr,
                                            prefix,
                                        })
                                        .collect(),
                                ),
                            })
                            .collect(),
                    ),
                })
            };
            r.await.into()
        }));
    }
    if matches!(
        p,
        procs::DOMAIN_BLOCK_PULL
            | procs::DOMAIN_BLOCK_REBASE
            | procs::DOMAIN_BLOCK_COPY
            | procs::DOMAIN_BLOCK_COMMIT
            | procs::DOMAIN_BLOCK_JOB_ABORT
    ) {
        // Block jobs: started and ended through the QEMU driver, run by the shim.
        let s = Arc::clone(s);
        let payload = payload.to_vec();
        return Some(Box::pin(async move {
            let r = async {
                vireo_qemu::blockjob::serve(s.hv()?, p, &payload).await?;
                void()
            };
            r.await.into()
        }));
    }
    if p == procs::DOMAIN_PIN_VCPU {
        // virDomainPinVcpu is PinVcpuFlags on the running guest.
        let s = Arc::clone(s);
        let payload = payload.to_vec();
        return Some(Box::pin(async move {
            let r = async {
                let a: DomainPinVcpuArgs = args(&payload)?;
                let flagged = vireo_xdr::to_bytes(&DomainPinVcpuFlagsArgs {
                    dom: a.dom,
                    vcpu: a.vcpu,
                    cpumap: a.cpumap,
                    flags: affect::LIVE,
                });
                s.hv()?
                    .pinning(procs::DOMAIN_PIN_VCPU_FLAGS, &flagged)
                    .await
            };
            r.await.into()
        }));
    }
    if matches!(
        p,
        procs::DOMAIN_PIN_VCPU_FLAGS
            | procs::DOMAIN_PIN_EMULATOR
            | procs::DOMAIN_GET_VCPU_PIN_INFO
            | procs::DOMAIN_GET_EMULATOR_PIN_INFO
    ) {
        // Pins: the running VM's through its shim, the definition's in the driver.
        let s = Arc::clone(s);
        let payload = payload.to_vec();
        return Some(Box::pin(async move {
            let r = async { s.hv()?.pinning(p, &payload).await };
            r.await.into()
        }));
    }
    if matches!(
        p,
        procs::DOMAIN_GET_IOTHREAD_INFO
            | procs::DOMAIN_PIN_IOTHREAD
            | procs::DOMAIN_ADD_IOTHREAD
            | procs::DOMAIN_DEL_IOTHREAD
            | procs::DOMAIN_SET_IOTHREAD_PARAMS
    ) {
        // I/O threads: the running VM's through its shim, the definition's in the driver.
        let s = Arc::clone(s);
        let payload = payload.to_vec();
        return Some(Box::pin(async move {
            let r = async { s.hv()?.iothreads(p, &payload).await };
            r.await.into()
        }));
    }
    if matches!(
        p,
        procs::DOMAIN_GET_SCHEDULER_TYPE
            | procs::DOMAIN_GET_SCHEDULER_PARAMETERS
            | procs::DOMAIN_GET_SCHEDULER_PARAMETERS_FLAGS
            | procs::DOMAIN_SET_SCHEDULER_PARAMETERS
            | procs::DOMAIN_SET_SCHEDULER_PARAMETERS_FLAGS
            | procs::DOMAIN_GET_MEMORY_PARAMETERS
            | procs::DOMAIN_SET_MEMORY_PARAMETERS
            | procs::DOMAIN_GET_BLKIO_PARAMETERS
            | procs::DOMAIN_SET_BLKIO_PARAMETERS
    ) {
        // Resource tuning: the running VM's cgroup through its shim, the definition's in
        // the driver.
        let s = Arc::clone(s);
        let payload = payload.to_vec();
        return Some(Box::pin(async move {
            let r = async { s.hv()?.tuning(p, &payload).await };
            r.await.into()
        }));
    }
    if matches!(p, procs::DOMAIN_SET_VCPUS | procs::DOMAIN_SET_VCPUS_FLAGS) {
        // Live: vCPUs plugged into (or out of) the running VM by its shim.
        let s = Arc::clone(s);
        let payload = payload.to_vec();
        return Some(Box::pin(async move {
            let r = async {
                let (dom, n, flags) = if p == procs::DOMAIN_SET_VCPUS {
                    let a: DomainSetVcpusArgs = args(&payload)?;
                    (a.dom, a.nvcpus, affect::LIVE)
                } else {
                    let a: DomainSetVcpusFlagsArgs = args(&payload)?;
                    (a.dom, a.nvcpus, a.flags)
                };
                s.hv()?.set_vcpus(&dom, n, flags).await?;
                void()
            };
            r.await.into()
        }));
    }
    if p == procs::DOMAIN_GET_MESSAGES {
        // A running VM's taints are its shim's; a domain not running has none.
        let s = Arc::clone(s);
        let payload = payload.to_vec();
        return Some(Box::pin(async move {
            let r = async {
                let a: DomainFlagsArgs = args(&payload)?;
                super::domain::check_flags(a.flags, message::DEPRECATION | message::TAINTING)?;
                if s.hv()?.is_running(&a.dom)? {
                    return forward_call(&s, p, &payload).await;
                }
                ret(DomainGetMessagesRet {
                    msgs: Default::default(),
                })
            };
            r.await.into()
        }));
    }
    if p == procs::CONNECT_GET_ALL_DOMAIN_STATS {
        let s = Arc::clone(s);
        let payload = payload.to_vec();
        return Some(Box::pin(async move {
            super::stats::all_domain_stats(&s, &payload).await.into()
        }));
    }
    if matches!(
        p,
        procs::DOMAIN_BLOCK_STATS
            | procs::DOMAIN_BLOCK_STATS_FLAGS
            | procs::DOMAIN_INTERFACE_STATS
            | procs::DOMAIN_MEMORY_STATS
            | procs::DOMAIN_GET_BLOCK_INFO
            | procs::DOMAIN_GET_VCPUS
            | procs::DOMAIN_SEND_KEY
            | procs::DOMAIN_GET_JOB_INFO
            | procs::DOMAIN_GET_JOB_STATS
            | procs::DOMAIN_ABORT_JOB
            | procs::DOMAIN_GET_BLOCK_JOB_INFO
            | procs::DOMAIN_BLOCK_JOB_SET_SPEED
            | procs::DOMAIN_GET_GUEST_INFO
            | procs::DOMAIN_FSFREEZE
            | procs::DOMAIN_FSTHAW
            | procs::DOMAIN_GET_TIME
            | procs::DOMAIN_SET_TIME
            | procs::DOMAIN_SET_USER_PASSWORD
            | procs::DOMAIN_GET_HOSTNAME
            | procs::DOMAIN_GET_FSINFO
            | procs::DOMAIN_GET_GUEST_VCPUS
            | procs::DOMAIN_SET_GUEST_VCPUS
            | procs::DOMAIN_PM_SUSPEND_FOR_DURATION
            | procs::DOMAIN_PM_WAKEUP
            | procs::DOMAIN_SET_BLOCK_THRESHOLD
    ) {
        // The running VM's counters and jobs, from its shim; a domain that runs none has
        // none.
        let s = Arc::clone(s);
        let payload = payload.to_vec();
        return Some(Box::pin(async move {
            let restoring = match (p, first_dom(&payload), s.hv()) {
                (procs::DOMAIN_GET_JOB_INFO | procs::DOMAIN_GET_JOB_STATS, Ok(dom), Ok(q)) => {
                    q.restore_job(&dom, p)
                }
                _ => None,
            };
            if let Some(r) = restoring {
                // A VM being restored: its job is the daemon's until its shim is ready.
                return Outcome::Reply(r);
            }
            let completed = p == procs::DOMAIN_GET_JOB_STATS
                && flags_after_dom(&payload) & job::STATS_COMPLETED != 0;
            if completed {
                return completed_job_stats(&s, &payload).await.into();
            }
            let r = match first_dom(&payload) {
                Err(e) => Err(e),
                Ok(dom) => match s.hv().and_then(|q| Ok(q.is_running(&dom)?)) {
                    Ok(true) => forward_call(&s, p, &payload).await,
                    Ok(false) => Err(vireo_driver::DriverError::OperationInvalid(
                        "domain is not running".into(),
                    )
                    .into()),
                    Err(e) => Err(e),
                },
            };
            r.into()
        }));
    }
    let forward = match p {
        procs::DOMAIN_CREATE | procs::DOMAIN_CREATE_WITH_FLAGS | procs::DOMAIN_CREATE_XML => false,
        procs::DOMAIN_SHUTDOWN
        | procs::DOMAIN_SHUTDOWN_FLAGS
        | procs::DOMAIN_DESTROY
        | procs::DOMAIN_DESTROY_FLAGS
        | procs::DOMAIN_REBOOT
        | procs::DOMAIN_RESET
        | procs::DOMAIN_SUSPEND
        | procs::DOMAIN_RESUME => true,
        // Live answers only while running; the definition otherwise.
        procs::DOMAIN_GET_INFO if running(s, payload) => true,
        // The running guest's vCPU counts, unless the definition's are asked for.
        procs::DOMAIN_GET_VCPUS_FLAGS
            if running(s, payload) && flags_after_dom(payload) & affect::CONFIG == 0 =>
        {
            true
        }
        procs::DOMAIN_GET_XML_DESC
            if running(s, payload) && flags_after_dom(payload) & XML_INACTIVE == 0 =>
        {
            true
        }
        _ => return None,
    };
    let s = Arc::clone(s);
    let payload = payload.to_vec();
    Some(Box::pin(async move {
        let r = if forward {
            match forward_call(&s, p, &payload).await {
                // The VM ended while its shim was asked (the shim closes the connection
                // once its VM is gone): what is asked of its state is the definition's now.
                Err(e) if answers_stopped(p) => match first_dom(&payload) {
                    Ok(dom) if ended(&s, &dom).await => {
                        super::domain::dispatch(&s, p, &payload, readonly)
                    }
                    _ => Err(e),
                },
                r => r,
            }
        } else {
            start(&s, p, &payload).await
        };
        r.into()
    }))
}

async fn start(s: &RemoteService, p: i32, payload: &[u8]) -> ProcResult {
    match p {
        procs::DOMAIN_CREATE => {
            let a: DomainArgs = args(payload)?;
            s.hv()?.start(&a.dom, 0).await?;
            void()
        }
        procs::DOMAIN_CREATE_WITH_FLAGS => {
            let a: DomainFlagsArgs = args(payload)?;
            ret(DomainRet {
                dom: s.hv()?.start(&a.dom, a.flags).await?,
            })
        }
        _ => {
            let a: DomainCreateXmlArgs = args(payload)?;
            ret(DomainRet {
                dom: s.hv()?.create_xml(&a.xml, a.flags).await?,
            })
        }
    }
}

/// Save, restore and managed save: the state of a running VM to a file and back.
async fn save_restore(s: &RemoteService, p: i32, payload: &[u8]) -> ProcResult {
    let q = s.hv()?;
    match p {
        procs::DOMAIN_SAVE => {
            let a: DomainSaveArgs = args(payload)?;
            q.save(&a.dom, &a.to, None, 0).await?;
            void()
        }
        procs::DOMAIN_SAVE_FLAGS => {
            let a: DomainSaveFlagsArgs = args(payload)?;
            q.save(&a.dom, &a.to, a.dxml.as_deref(), a.flags).await?;
            void()
        }
        procs::DOMAIN_RESTORE => {
            let a: DomainRestoreArgs = args(payload)?;
            q.restore(&a.from, None, 0).await?;
            void()
        }
        procs::DOMAIN_RESTORE_FLAGS => {
            let a: DomainRestoreFlagsArgs = args(payload)?;
            q.restore(&a.from, a.dxml.as_deref(), a.flags).await?;
            void()
        }
        _ => {
            let a: DomainFlagsArgs = args(payload)?;
            q.managed_save(&a.dom, a.flags).await?;
            void()
        }
    }
}

/// Attach, detach and update of devices (live through the shim, config in the definition).
async fn device(s: &RemoteService, p: i32, payload: &[u8]) -> ProcResult {
    let (dom, xml, flags) = match p {
        // The calls without flags have hotplug semantics: the running VM only (LIVE).
        procs::DOMAIN_ATTACH_DEVICE | procs::DOMAIN_DETACH_DEVICE => {
            let a: DomainDeviceArgs = args(payload)?;
            (a.dom, a.xml, affect::LIVE)
        }
        _ => {
            let a: DomainDeviceFlagsArgs = args(payload)?;
            (a.dom, a.xml, a.flags)
        }
    };
    let q = s.hv()?;
    match p {
        procs::DOMAIN_ATTACH_DEVICE | procs::DOMAIN_ATTACH_DEVICE_FLAGS => {
            q.attach_device(&dom, &xml, flags).await?
        }
        procs::DOMAIN_DETACH_DEVICE | procs::DOMAIN_DETACH_DEVICE_FLAGS => {
            q.detach_device(&dom, &xml, flags).await?
        }
        procs::DOMAIN_DETACH_DEVICE_ALIAS => q.detach_device_alias(&dom, &xml, flags).await?,
        _ => q.update_device(&dom, &xml, flags).await?,
    }
    void()
}

async fn forward_call(s: &RemoteService, p: i32, payload: &[u8]) -> ProcResult {
    let dom = first_dom(payload)?;
    s.hv()?.forward(&dom, p, payload).await
}

/// GET_JOB_STATS of the last job that ended: the running VM's shim knows its own; the
/// driver keeps a migration's (at both ends), also once the VM has gone from here.
async fn completed_job_stats(s: &RemoteService, payload: &[u8]) -> ProcResult {
    let a: DomainFlagsArgs = args(payload)?;
    let unknown = a.flags & !(job::STATS_COMPLETED | job::STATS_KEEP_COMPLETED);
    if unknown != 0 {
        return Err(vireo_driver::DriverError::InvalidArg(format!(
            "unsupported flags (0x{unknown:x})"
        ))
        .into());
    }
    let q = s.hv()?;
    if q.is_running(&a.dom)? {
        let reply = forward_call(s, procs::DOMAIN_GET_JOB_STATS, payload).await?;
        let r: DomainGetJobStatsRet = vireo_xdr::from_bytes(&reply)
            .map_err(|e| RemoteError::rpc(format!("Unable to decode message payload: {e}")))?;
        if r.type_ != job::NONE {
            return Ok(reply);
        }
    }
    let kept = q.completed_job(&a.dom, a.flags & job::STATS_KEEP_COMPLETED != 0)?;
    Ok(vireo_xdr::to_bytes(&DomainGetJobStatsRet {
        type_: if kept.is_some() {
            job::COMPLETED
        } else {
            job::NONE
        },
        params: vireo_xdr::Array(kept.unwrap_or_default()),
    }))
}

/// The domain handle every one of these calls starts with.
fn first_dom(payload: &[u8]) -> Result<Domain, RemoteError> {
    Domain::decode(&mut Decoder::new(payload))
        .map_err(|e| RemoteError::rpc(format!("Unable to decode message payload: {e}")))
}

/// Whether the domain's VM has ended (a call to its shim failed: the VM may be ending).
async fn ended(s: &RemoteService, dom: &Domain) -> bool {
    match s.hv() {
        Ok(q) => q.settle_end(dom).await,
        Err(_) => false,
    }
}

/// The calls answered live while the domain runs and from its definition otherwise.
fn answers_stopped(p: i32) -> bool {
    matches!(
        p,
        procs::DOMAIN_GET_INFO | procs::DOMAIN_GET_VCPUS_FLAGS | procs::DOMAIN_GET_XML_DESC
    )
}

fn running(s: &RemoteService, payload: &[u8]) -> bool {
    first_dom(payload)
        .ok()
        .and_then(|d| s.hv().ok()?.is_running(&d).ok())
        .unwrap_or(false)
}

fn flags_after_dom(payload: &[u8]) -> u32 {
    let mut d = Decoder::new(payload);
    match Domain::decode(&mut d) {
        Ok(_) => u32::decode(&mut d).unwrap_or(0),
        Err(_) => 0,
    }
}
