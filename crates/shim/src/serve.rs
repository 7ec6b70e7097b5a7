//! The VM's API on the shim's socket: the libvirt REMOTE program, restricted to what one
//! running domain can answer. The daemon forwards its clients' calls here unchanged.

use std::sync::Arc;

use vireo_proto::error::{code, domain as errdom};
use vireo_proto::remote::*;
use vireo_proto::{
    Header, RemoteError, QEMU_PROC_DOMAIN_AGENT_COMMAND, QEMU_PROC_DOMAIN_MONITOR_COMMAND,
    QEMU_PROGRAM, QEMU_VERSION, REMOTE_PROGRAM, REMOTE_VERSION,
};
use vireo_rpc::server::{Client, Dispatch, Outcome, Server, Service};
use vireo_xdr::{Array, Decoder, Xdr};

use crate::hotplug::{Missing, Unsupported};
use crate::vm::{Aborted, Lifecycle, OpFailed, OpInvalid, Vm};
use vireo_proto::vireo::{
    procs as vprocs, ShimAttachArgs, ShimAttachRet, ShimBlockJobArgs, ShimDetachArgs,
    ShimDetachRet, ShimMigrateArgs, ShimMigrateEndArgs, ShimSaveArgs, ShimScreenshotArgs,
    ShimScreenshotRet, ShimSetLinkArgs, ShimSnapshotArgs, ShimUpdateMemoryArgs, VIREO_PROGRAM,
    VIREO_VERSION,
};

/// The longest a detach may wait for the guest.
const MAX_DETACH_WAIT_MS: u32 = 60_000;

/// `VIR_DOMAIN_DESTROY_GRACEFUL`.
const DESTROY_GRACEFUL: u32 = 1;

pub struct ShimService {
    vm: Arc<Vm>,
    /// Serves the VM's own endpoint (`crate::public`) rather than the daemon's channel.
    public: bool,
    hv_version: u64,
}

impl ShimService {
    /// The daemon's channel (`<run>/shim/<uuid>.sock`).
    pub fn new(vm: Arc<Vm>) -> Self {
        ShimService {
            vm,
            public: false,
            hv_version: 0,
        }
    }

    /// The VM's own endpoint for clients (`<run>/vm/<NAME>-sock`, `-sock-ro`).
    pub fn new_public(vm: Arc<Vm>, hv_version: u64) -> Self {
        ShimService {
            vm,
            public: true,
            hv_version,
        }
    }

    pub(crate) fn vm(&self) -> &Arc<Vm> {
        &self.vm
    }

    pub(crate) fn hv_version(&self) -> u64 {
        self.hv_version
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
                    memory: vm.memory_kib(),
                    nr_virt_cpu: vm.vcpus_now(),
                    cpu_time: vm.cpu_time_ns(),
                })
            }
            procs::DOMAIN_GET_MESSAGES => {
                let a: DomainFlagsArgs = args(payload)?;
                self.check_uuid(&a.dom.uuid)?;
                crate::taint::check_message_flags(a.flags)?;
                ret(DomainGetMessagesRet {
                    msgs: Array(vm.messages(a.flags)),
                })
            }
            procs::DOMAIN_GET_VCPUS_FLAGS => {
                let a: DomainFlagsArgs = args(payload)?;
                self.check_uuid(&a.dom.uuid)?;
                let num = if a.flags & VCPU_MAXIMUM != 0 {
                    vm.def.vcpus
                } else {
                    vm.vcpus_now()
                };
                ret(DomainGetVcpusFlagsRet { num: num as i32 })
            }
            procs::DOMAIN_SET_METADATA => {
                let a: DomainSetMetadataArgs = args(payload)?;
                self.check_uuid(&a.dom.uuid)?;
                vm.set_metadata(
                    a.type_,
                    a.metadata.as_deref(),
                    a.key.as_deref(),
                    a.uri.as_deref(),
                )
                .map_err(|e| to_remote(&e))?;
                Ok(Vec::new())
            }
            procs::DOMAIN_GET_XML_DESC => {
                let a: DomainFlagsArgs = args(payload)?;
                self.check_uuid(&a.dom.uuid)?;
                ret(DomainGetXmlDescRet { xml: vm.live_xml() })
            }
            _ => Err(RemoteError::unknown_procedure(p)),
        }
    }

    pub(crate) fn check_uuid(&self, uuid: &Uuid) -> Result<(), RemoteError> {
        check_uuid(&self.vm, uuid)
    }
}

/// A call about another domain than this shim's VM is answered "no domain".
pub(crate) fn check_uuid(vm: &Vm, uuid: &Uuid) -> Result<(), RemoteError> {
    if *uuid == vm.uuid {
        Ok(())
    } else {
        Err(RemoteError::new(
            code::NO_DOMAIN,
            errdom::QEMU,
            "Domain not found: this shim serves another domain",
        ))
    }
}

impl Service for ShimService {
    type ClientData = crate::public::Registrations;

    fn knows_program(&self, prog: u32, vers: u32) -> bool {
        (prog == REMOTE_PROGRAM && vers == REMOTE_VERSION)
            || (prog == VIREO_PROGRAM && vers == VIREO_VERSION && !self.public)
            || (prog == QEMU_PROGRAM && vers == QEMU_VERSION)
    }

    /// Descriptors come from the daemon only.
    fn accepts_fds(&self) -> bool {
        !self.public
    }

    fn call_with_fds(
        self: Arc<Self>,
        client: &Arc<Client<crate::public::Registrations>>,
        h: Header,
        payload: &[u8],
        fds: Vec<std::os::fd::OwnedFd>,
    ) -> Dispatch {
        match (h.prog, h.proc_) {
            (VIREO_PROGRAM, vprocs::SHIM_ATTACH_DEVICE) => self.attach(payload, fds),
            (VIREO_PROGRAM, vprocs::SHIM_SAVE) => self.save(payload, fds),
            (VIREO_PROGRAM, vprocs::SHIM_SNAPSHOT) => self.snapshot_with_memory(payload, fds),
            (VIREO_PROGRAM, vprocs::SHIM_MIGRATE) => self.migrate(client, payload, fds),
            _ => Dispatch::Now(Outcome::Error(RemoteError::rpc(
                "this procedure takes no file descriptors",
            ))),
        }
    }

    fn call(
        self: Arc<Self>,
        client: &Arc<Client<crate::public::Registrations>>,
        h: Header,
        payload: &[u8],
    ) -> Dispatch {
        let p = h.proc_;
        // Flags libvirt does not know are refused whichever endpoint the call came in on
        // (the daemon refuses them too, before it forwards a call).
        let bad = vireo_qemu::flags::unknown(p, payload);
        if bad != 0 && h.prog == REMOTE_PROGRAM {
            return Dispatch::Now(Outcome::Error(RemoteError::new(
                code::INVALID_ARG,
                errdom::QEMU,
                format!("invalid argument: unsupported flags (0x{bad:x})"),
            )));
        }
        if self.public {
            if let Some(d) = crate::public::call(&self, client, &h, payload) {
                return d;
            }
        }
        if h.prog == QEMU_PROGRAM {
            let payload = payload.to_vec();
            return match p {
                QEMU_PROC_DOMAIN_AGENT_COMMAND => Dispatch::Later(Box::pin(async move {
                    crate::guest::agent_command(&self.vm, &payload).await.into()
                })),
                QEMU_PROC_DOMAIN_MONITOR_COMMAND => Dispatch::Later(Box::pin(async move {
                    crate::monitor::command(&self.vm, &payload).await.into()
                })),
                _ => Dispatch::Now(Outcome::Error(RemoteError::unknown_procedure(p))),
            };
        }
        if crate::pinning::serves(p) && h.prog == REMOTE_PROGRAM {
            let payload = payload.to_vec();
            return Dispatch::Later(Box::pin(async move {
                crate::pinning::serve(&self.vm, p, &payload).await.into()
            }));
        }
        if crate::tune::serves(p) && h.prog == REMOTE_PROGRAM {
            let payload = payload.to_vec();
            return Dispatch::Later(Box::pin(async move {
                crate::tune::serve(&self.vm, p, &payload).await.into()
            }));
        }
        if crate::iothread::serves(p) && h.prog == REMOTE_PROGRAM {
            let payload = payload.to_vec();
            return Dispatch::Later(Box::pin(async move {
                crate::iothread::serve(&self.vm, p, &payload).await.into()
            }));
        }
        if crate::migrate::serves(p) && h.prog == REMOTE_PROGRAM {
            let payload = payload.to_vec();
            return Dispatch::Later(Box::pin(async move {
                crate::migrate::serve(&self.vm, p, &payload).await.into()
            }));
        }
        if crate::guest::serves(p) {
            let payload = payload.to_vec();
            return Dispatch::Later(Box::pin(async move {
                crate::guest::serve(&self.vm, p, &payload).await.into()
            }));
        }
        if h.prog == VIREO_PROGRAM {
            return match p {
                vprocs::SHIM_ATTACH_DEVICE => self.attach(payload, Vec::new()),
                vprocs::SHIM_DETACH_DEVICE => self.detach(payload),
                vprocs::SHIM_CHANGE_MEDIA => self.change_media(payload),
                vprocs::SHIM_SET_LINK => {
                    let a: ShimSetLinkArgs = match args(payload) {
                        Ok(a) => a,
                        Err(e) => return Dispatch::Now(Outcome::Error(e)),
                    };
                    Dispatch::Later(Box::pin(async move {
                        match self.vm.set_link(&a.alias, a.up != 0).await {
                            Ok(()) => Outcome::Reply(Vec::new()),
                            Err(e) => Outcome::Error(to_remote(&e)),
                        }
                    }))
                }
                vprocs::SHIM_UPDATE_MEMORY => {
                    let a: ShimUpdateMemoryArgs = match args(payload) {
                        Ok(a) => a,
                        Err(e) => return Dispatch::Now(Outcome::Error(e)),
                    };
                    Dispatch::Later(Box::pin(async move {
                        match self
                            .vm
                            .set_requested_memory(&a.alias, a.requested_kib)
                            .await
                        {
                            Ok(()) => Outcome::Reply(Vec::new()),
                            Err(e) => Outcome::Error(to_remote(&e)),
                        }
                    }))
                }
                vprocs::SHIM_SAVE => self.save(payload, Vec::new()),
                vprocs::SHIM_MIGRATE => self.migrate(client, payload, Vec::new()),
                vprocs::SHIM_MIGRATE_END => {
                    let a: ShimMigrateEndArgs = match args(payload) {
                        Ok(a) => a,
                        Err(e) => return Dispatch::Now(Outcome::Error(e)),
                    };
                    Dispatch::Later(Box::pin(async move {
                        match self.vm.migrate_end(a.op).await {
                            Ok(()) => Outcome::Reply(Vec::new()),
                            Err(e) => Outcome::Error(to_remote(&e)),
                        }
                    }))
                }
                vprocs::SHIM_BLOCK_JOB => {
                    let a: ShimBlockJobArgs = match args(payload) {
                        Ok(a) => a,
                        Err(e) => return Dispatch::Now(Outcome::Error(e)),
                    };
                    Dispatch::Later(Box::pin(async move {
                        match self.vm.start_block_job(a).await {
                            Ok(()) => Outcome::Reply(Vec::new()),
                            Err(e) => Outcome::Error(to_remote(&e)),
                        }
                    }))
                }
                vprocs::SHIM_SNAPSHOT => {
                    let a: ShimSnapshotArgs = match args(payload) {
                        Ok(a) => a,
                        Err(e) => return Dispatch::Now(Outcome::Error(e)),
                    };
                    Dispatch::Later(Box::pin(async move {
                        match self
                            .vm
                            .snapshot(a.op, &a.tag, &a.disks.0, a.run != 0, &a.files.0)
                            .await
                        {
                            Ok(()) => Outcome::Reply(Vec::new()),
                            Err(e) => Outcome::Error(to_remote(&e)),
                        }
                    }))
                }
                vprocs::SHIM_SCREENSHOT => {
                    let a: ShimScreenshotArgs = match args(payload) {
                        Ok(a) => a,
                        Err(e) => return Dispatch::Now(Outcome::Error(e)),
                    };
                    Dispatch::Later(Box::pin(async move {
                        match self.vm.screenshot(a.screen).await {
                            Ok(data) => Outcome::ok(&ShimScreenshotRet {
                                mime: "image/png".into(),
                                data: vireo_xdr::Opaque(data),
                            }),
                            Err(e) => Outcome::Error(to_remote(&e)),
                        }
                    }))
                }
                _ => Dispatch::Now(Outcome::Error(RemoteError::unknown_procedure(p))),
            };
        }
        let op = match p {
            procs::DOMAIN_SUSPEND
            | procs::DOMAIN_RESUME
            | procs::DOMAIN_SHUTDOWN
            | procs::DOMAIN_SHUTDOWN_FLAGS
            | procs::DOMAIN_REBOOT
            | procs::DOMAIN_RESET
            | procs::DOMAIN_DESTROY
            | procs::DOMAIN_DESTROY_FLAGS
            | procs::DOMAIN_SET_MEMORY_STATS_PERIOD
            | procs::DOMAIN_SET_MEMORY_FLAGS
            | procs::DOMAIN_SET_VCPUS_FLAGS
            | procs::DOMAIN_SEND_KEY => p,
            procs::DOMAIN_GET_BLOCK_JOB_INFO
            | procs::DOMAIN_BLOCK_JOB_ABORT
            | procs::DOMAIN_BLOCK_JOB_SET_SPEED => {
                let payload = payload.to_vec();
                return Dispatch::Later(Box::pin(async move {
                    self.block_job_call(p, &payload).await.into()
                }));
            }
            procs::DOMAIN_GET_JOB_INFO | procs::DOMAIN_GET_JOB_STATS | procs::DOMAIN_ABORT_JOB => {
                let payload = payload.to_vec();
                return Dispatch::Later(Box::pin(async move {
                    crate::job::serve(&self.vm, p, &payload).await.into()
                }));
            }
            procs::CONNECT_GET_ALL_DOMAIN_STATS
            | procs::DOMAIN_BLOCK_STATS
            | procs::DOMAIN_BLOCK_STATS_FLAGS
            | procs::DOMAIN_INTERFACE_STATS
            | procs::DOMAIN_MEMORY_STATS
            | procs::DOMAIN_GET_BLOCK_INFO
            | procs::DOMAIN_GET_VCPUS
            | procs::DOMAIN_SET_BLOCK_THRESHOLD => {
                let payload = payload.to_vec();
                return Dispatch::Later(Box::pin(async move {
                    crate::stats::serve(&self.vm, p, &payload).await.into()
                }));
            }
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
        let payload = payload.to_vec();
        Dispatch::Later(Box::pin(async move {
            let vm = &self.vm;
            let r = match op {
                procs::DOMAIN_SUSPEND => vm.suspend().await,
                procs::DOMAIN_RESUME => vm.resume().await,
                procs::DOMAIN_SHUTDOWN | procs::DOMAIN_SHUTDOWN_FLAGS => {
                    vm.shutdown_mode(flags, false).await
                }
                procs::DOMAIN_REBOOT => vm.shutdown_mode(flags, true).await,
                procs::DOMAIN_RESET => vm.reset().await,
                procs::DOMAIN_SET_MEMORY_STATS_PERIOD => {
                    // The domain and flags were read above; the period sits between them.
                    match args::<DomainSetMemoryStatsPeriodArgs>(&payload) {
                        Ok(a) => vm.set_balloon_period(a.period).await,
                        Err(e) => return Outcome::Error(e),
                    }
                }
                procs::DOMAIN_SEND_KEY => match args::<DomainSendKeyArgs>(&payload) {
                    Ok(a) if a.flags != 0 => {
                        return Outcome::Error(to_remote(&anyhow::anyhow!(crate::stats::BadArg(
                            format!("unsupported flags (0x{:x})", a.flags)
                        ))))
                    }
                    Ok(a) => vm.send_keys(a.codeset, &a.keycodes.0, a.holdtime).await,
                    Err(e) => return Outcome::Error(e),
                },
                procs::DOMAIN_SET_VCPUS_FLAGS => match args::<DomainSetVcpusFlagsArgs>(&payload) {
                    Ok(a) => vm.set_vcpus(a.nvcpus).await,
                    Err(e) => return Outcome::Error(e),
                },
                procs::DOMAIN_SET_MEMORY_FLAGS => {
                    // The memory sits between the domain and the flags; the daemon sends
                    // the live part only.
                    match args::<DomainSetMemoryFlagsArgs>(&payload) {
                        Ok(a) => vm.set_memory(a.memory).await,
                        Err(e) => return Outcome::Error(e),
                    }
                }
                _ => vm.destroy(flags & DESTROY_GRACEFUL != 0).await,
            };
            match r {
                Ok(()) => Outcome::Reply(Vec::new()),
                Err(e) => Outcome::Error(to_remote(&e)),
            }
        }))
    }
}

impl ShimService {
    /// GET_BLOCK_JOB_INFO, BLOCK_JOB_SET_SPEED and BLOCK_JOB_ABORT.
    async fn block_job_call(&self, p: i32, payload: &[u8]) -> Result<Vec<u8>, RemoteError> {
        let vm = &self.vm;
        let bad_flags = |f: u32| {
            RemoteError::new(
                code::INVALID_ARG,
                errdom::QEMU,
                format!("invalid argument: unsupported flags (0x{f:x})"),
            )
        };
        match p {
            procs::DOMAIN_GET_BLOCK_JOB_INFO => {
                let a: DomainBlockJobArgs = args(payload)?;
                self.check_uuid(&a.dom.uuid)?;
                if a.flags & !block_job::INFO_BANDWIDTH_BYTES != 0 {
                    return Err(bad_flags(a.flags & !block_job::INFO_BANDWIDTH_BYTES));
                }
                let bytes = a.flags & block_job::INFO_BANDWIDTH_BYTES != 0;
                let r = vm.block_job_info(&a.path, bytes).await;
                ret(r.map_err(|e| to_remote(&e))?)
            }
            procs::DOMAIN_BLOCK_JOB_SET_SPEED => {
                let a: DomainBlockBandwidthArgs = args(payload)?;
                self.check_uuid(&a.dom.uuid)?;
                if a.flags & !block_job::SPEED_BANDWIDTH_BYTES != 0 {
                    return Err(bad_flags(a.flags & !block_job::SPEED_BANDWIDTH_BYTES));
                }
                let speed =
                    speed_bytes(a.bandwidth, a.flags & block_job::SPEED_BANDWIDTH_BYTES != 0)?;
                vm.block_job_set_speed(&a.path, speed)
                    .await
                    .map_err(|e| to_remote(&e))?;
                Ok(Vec::new())
            }
            _ => {
                let a: DomainBlockJobArgs = args(payload)?;
                self.check_uuid(&a.dom.uuid)?;
                let known = block_job::ABORT_ASYNC | block_job::ABORT_PIVOT;
                if a.flags & !known != 0 {
                    return Err(bad_flags(a.flags & !known));
                }
                vm.block_job_abort(
                    &a.path,
                    a.flags & block_job::ABORT_PIVOT != 0,
                    a.flags & block_job::ABORT_ASYNC == 0,
                )
                .await
                .map_err(|e| to_remote(&e))?;
                Ok(Vec::new())
            }
        }
    }

    /// SHIM_ATTACH_DEVICE: an interface (with its tap when it has one), a disk (with the
    /// pipe of its passphrase when it is encrypted) or another device.
    fn attach(self: Arc<Self>, payload: &[u8], mut fds: Vec<std::os::fd::OwnedFd>) -> Dispatch {
        let a: ShimAttachArgs = match args(payload) {
            Ok(a) => a,
            Err(e) => return Dispatch::Now(Outcome::Error(e)),
        };
        if fds.len() > 1 {
            return Dispatch::Now(Outcome::Error(RemoteError::rpc(
                "a device takes one descriptor at most",
            )));
        }
        let xml_err = |e: vireo_xml::XmlError| {
            Dispatch::Now(Outcome::Error(RemoteError::new(
                code::XML_ERROR,
                errdom::DOMAIN,
                format!("XML error: {e}"),
            )))
        };
        if a.xml.trim_start().starts_with("<disk") {
            // An encrypted disk's passphrase comes in a pipe.
            let passphrase = fds.pop();
            let run: vireo_xml::Disk = match vireo_xml::parse_root(&a.xml, "disk") {
                Ok(d) => d,
                Err(e) => return xml_err(e),
            };
            let shown = match &a.shown {
                Some(x) => match vireo_xml::parse_root(x, "disk") {
                    Ok(d) => d,
                    Err(e) => return xml_err(e),
                },
                None => run.clone(),
            };
            return Dispatch::Later(Box::pin(async move {
                match self.vm.attach_disk(run, shown, passphrase).await {
                    Ok(alias) => Outcome::ok(&ShimAttachRet { alias }),
                    Err(e) => Outcome::Error(to_remote(&e)),
                }
            }));
        }
        let x = a.xml.trim_start();
        if x.starts_with("<hostdev") {
            let hd: vireo_xml::Hostdev = match vireo_xml::parse_root(&a.xml, "hostdev") {
                Ok(h) => h,
                Err(e) => return xml_err(e),
            };
            return Dispatch::Later(Box::pin(async move {
                match self.vm.attach_hostdev(hd, fds.pop()).await {
                    Ok(alias) => Outcome::ok(&ShimAttachRet { alias }),
                    Err(e) => Outcome::Error(to_remote(&e)),
                }
            }));
        }
        if x.starts_with("<controller") {
            let c: vireo_xml::Controller = match vireo_xml::parse_root(&a.xml, "controller") {
                Ok(c) => c,
                Err(e) => return xml_err(e),
            };
            return Dispatch::Later(Box::pin(async move {
                match self.vm.attach_controller(c).await {
                    Ok(alias) => Outcome::ok(&ShimAttachRet { alias }),
                    Err(e) => Outcome::Error(to_remote(&e)),
                }
            }));
        }
        if x.starts_with("<memory") {
            let m: vireo_xml::MemoryDevice = match vireo_xml::parse_root(&a.xml, "memory") {
                Ok(m) => m,
                Err(e) => return xml_err(e),
            };
            return Dispatch::Later(Box::pin(async move {
                match self.vm.attach_memory(m).await {
                    Ok(alias) => Outcome::ok(&ShimAttachRet { alias }),
                    Err(e) => Outcome::Error(to_remote(&e)),
                }
            }));
        }
        if x.starts_with("<input") || x.starts_with("<channel") {
            if !fds.is_empty() {
                return Dispatch::Now(Outcome::Error(RemoteError::rpc(
                    "this device takes no descriptors",
                )));
            }
            enum Other {
                Input(vireo_xml::Input),
                Channel(vireo_xml::Chardev),
            }
            let parsed = if x.starts_with("<input") {
                vireo_xml::parse_root(&a.xml, "input").map(Other::Input)
            } else {
                vireo_xml::parse_root(&a.xml, "channel").map(Other::Channel)
            };
            let dev = match parsed {
                Ok(d) => d,
                Err(e) => return xml_err(e),
            };
            return Dispatch::Later(Box::pin(async move {
                let r = match dev {
                    Other::Input(i) => self.vm.attach_input(i).await,
                    Other::Channel(c) => self.vm.attach_channel(c).await,
                };
                match r {
                    Ok(alias) => Outcome::ok(&ShimAttachRet { alias }),
                    Err(e) => Outcome::Error(to_remote(&e)),
                }
            }));
        }
        let iface: vireo_xml::Interface = match vireo_xml::parse_root(&a.xml, "interface") {
            Ok(i) => i,
            Err(e) => return xml_err(e),
        };
        Dispatch::Later(Box::pin(async move {
            match self.vm.attach_interface(iface, fds.pop()).await {
                Ok(alias) => Outcome::ok(&ShimAttachRet { alias }),
                Err(e) => Outcome::Error(to_remote(&e)),
            }
        }))
    }

    /// SHIM_MIGRATE: the VM, live, into the first connected socket given (its disks
    /// first, each into one of the others, when it copies them).
    fn migrate(
        self: Arc<Self>,
        caller: &Arc<Client<crate::public::Registrations>>,
        payload: &[u8],
        mut fds: Vec<std::os::fd::OwnedFd>,
    ) -> Dispatch {
        let a: ShimMigrateArgs = match args(payload) {
            Ok(a) => a,
            Err(e) => return Dispatch::Now(Outcome::Error(e)),
        };
        if fds.len() != 1 + a.disks.0.len() {
            return Dispatch::Now(Outcome::Error(RemoteError::rpc(
                "a migration takes one socket, and one more per disk it copies",
            )));
        }
        let nbd = fds.split_off(1);
        let Some(sock) = fds.pop() else {
            return Dispatch::Now(Outcome::Error(RemoteError::rpc(
                "a migration takes one socket",
            )));
        };
        let caller = Arc::clone(caller);
        let caller_gone = Box::new(move || caller.is_closed());
        Dispatch::Later(Box::pin(async move {
            match self.vm.migrate_out(sock, nbd, a, caller_gone).await {
                Ok(stopped_at_ms) => {
                    Outcome::Reply(vireo_xdr::to_bytes(&vireo_proto::vireo::ShimMigrateRet {
                        stopped_at_ms,
                    }))
                }
                Err(e) => Outcome::Error(to_remote(&e)),
            }
        }))
    }

    /// SHIM_SAVE: the VM's state into the one file given, then QEMU ends.
    fn save(self: Arc<Self>, payload: &[u8], mut fds: Vec<std::os::fd::OwnedFd>) -> Dispatch {
        if let Err(e) = args::<ShimSaveArgs>(payload) {
            return Dispatch::Now(Outcome::Error(e));
        }
        let Some(file) = fds.pop().filter(|_| fds.is_empty()) else {
            return Dispatch::Now(Outcome::Error(RemoteError::rpc(
                "a save takes exactly one file descriptor",
            )));
        };
        Dispatch::Later(Box::pin(async move {
            match self.vm.save(file).await {
                Ok(()) => Outcome::Reply(Vec::new()),
                Err(e) => Outcome::Error(to_remote(&e)),
            }
        }))
    }

    /// SHIM_SNAPSHOT with EXTERNAL_MEMORY: the memory state into the one file given, and
    /// the overlays.
    fn snapshot_with_memory(
        self: Arc<Self>,
        payload: &[u8],
        mut fds: Vec<std::os::fd::OwnedFd>,
    ) -> Dispatch {
        let a: ShimSnapshotArgs = match args(payload) {
            Ok(a) => a,
            Err(e) => return Dispatch::Now(Outcome::Error(e)),
        };
        let file = fds.pop().filter(|_| fds.is_empty());
        let (Some(file), vireo_proto::vireo::snapshot_op::EXTERNAL_MEMORY) = (file, a.op) else {
            return Dispatch::Now(Outcome::Error(RemoteError::rpc(
                "an external snapshot with memory takes exactly one file descriptor",
            )));
        };
        Dispatch::Later(Box::pin(async move {
            match self
                .vm
                .snapshot_with_memory(&a.disks.0, &a.files.0, a.run != 0, file)
                .await
            {
                Ok(()) => Outcome::Reply(Vec::new()),
                Err(e) => Outcome::Error(to_remote(&e)),
            }
        }))
    }

    /// SHIM_CHANGE_MEDIA: a cdrom's new medium (or none).
    fn change_media(self: Arc<Self>, payload: &[u8]) -> Dispatch {
        let a: ShimAttachArgs = match args(payload) {
            Ok(a) => a,
            Err(e) => return Dispatch::Now(Outcome::Error(e)),
        };
        let parse = |x: &str| -> Result<vireo_xml::Disk, RemoteError> {
            vireo_xml::parse_root(x, "disk").map_err(|e| {
                RemoteError::new(code::XML_ERROR, errdom::DOMAIN, format!("XML error: {e}"))
            })
        };
        let run = match parse(&a.xml) {
            Ok(d) => d,
            Err(e) => return Dispatch::Now(Outcome::Error(e)),
        };
        let shown = match a.shown.as_deref().map(parse).transpose() {
            Ok(s) => s.unwrap_or_else(|| run.clone()),
            Err(e) => return Dispatch::Now(Outcome::Error(e)),
        };
        Dispatch::Later(Box::pin(async move {
            match self.vm.change_media(run, shown).await {
                Ok(()) => Outcome::Reply(Vec::new()),
                Err(e) => Outcome::Error(to_remote(&e)),
            }
        }))
    }

    /// SHIM_DETACH_DEVICE: asks the guest, waits a while.
    fn detach(self: Arc<Self>, payload: &[u8]) -> Dispatch {
        let a: ShimDetachArgs = match args(payload) {
            Ok(a) => a,
            Err(e) => return Dispatch::Now(Outcome::Error(e)),
        };
        let wait = std::time::Duration::from_millis(u64::from(a.wait_ms.min(MAX_DETACH_WAIT_MS)));
        Dispatch::Later(Box::pin(async move {
            match self.vm.detach(&a.alias, wait).await {
                Ok(gone) => Outcome::ok(&ShimDetachRet {
                    removed: i32::from(gone),
                }),
                Err(e) => Outcome::Error(to_remote(&e)),
            }
        }))
    }
}

/// Who hears the shim's events: every client of the daemon's channel, as the shim emits
/// them (callback id 0), and the VM's own endpoint's clients by their registrations.
pub struct Audience {
    pub daemon: Arc<Server<ShimService>>,
    pub public: Vec<Arc<Server<ShimService>>>,
}

impl Audience {
    fn send(&self, proc_: i32, payload: &[u8]) {
        for c in self.daemon.clients() {
            c.send_message(REMOTE_PROGRAM, REMOTE_VERSION, proc_, 1, payload);
        }
        crate::public::deliver(&self.public, proc_, payload);
    }
}

/// Sends a device event (DEVICE_REMOVED, DEVICE_REMOVAL_FAILED) to every client of the
/// shim, as a callback message with callback id 0.
pub fn broadcast_device(to: &Audience, vm: &Vm, proc_: i32, alias: String) {
    let dom = handle(vm);
    let payload = if proc_ == procs::DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED {
        vireo_xdr::to_bytes(&DomainEventCallbackDeviceRemovedMsg {
            callback_id: 0,
            msg: DomainEventDeviceRemovedMsg {
                dom,
                dev_alias: alias,
            },
        })
    } else {
        vireo_xdr::to_bytes(&DomainEventCallbackDeviceMsg {
            callback_id: 0,
            dom,
            dev_alias: alias,
        })
    };
    to.send(proc_, &payload);
}

/// Sends an event message of the REMOTE program to every client of the shim.
pub fn broadcast_raw(to: &Audience, proc_: i32, payload: &[u8]) {
    to.send(proc_, payload);
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
pub fn broadcast(to: &Audience, vm: &Vm, ev: Lifecycle) {
    let payload = vireo_xdr::to_bytes(&DomainEventLifecycleMsg {
        dom: handle(vm),
        event: ev.event,
        detail: ev.detail,
    });
    to.send(procs::DOMAIN_EVENT_LIFECYCLE, &payload);
}

/// An error as the client gets it: a RemoteError raised on the way as it is, anything else
/// as [`to_remote`] words it.
pub(crate) fn remote_of(e: anyhow::Error) -> RemoteError {
    match e.downcast::<RemoteError>() {
        Ok(r) => r,
        Err(e) => to_remote(&e),
    }
}

pub(crate) fn to_remote(e: &anyhow::Error) -> RemoteError {
    if let Some(crate::stats::BadArg(m)) = e.downcast_ref() {
        return RemoteError::new(
            code::INVALID_ARG,
            errdom::QEMU,
            format!("invalid argument: {m}"),
        );
    }
    if let Some(u) = e.downcast_ref::<crate::agent::Unresponsive>() {
        return RemoteError::new(code::AGENT_UNRESPONSIVE, errdom::QEMU, u.to_string());
    }
    if e.downcast_ref::<crate::agent::NotConfigured>().is_some() {
        return RemoteError::new(
            code::ARGUMENT_UNSUPPORTED,
            errdom::QEMU,
            format!("argument unsupported: {e}"),
        );
    }
    if let Some(crate::agent::AgentError(m)) = e.downcast_ref() {
        return RemoteError::new(
            code::INTERNAL_ERROR,
            errdom::QEMU,
            format!("internal error: {m}"),
        );
    }
    if let Some(Unsupported(m)) = e.downcast_ref() {
        return RemoteError::new(
            code::CONFIG_UNSUPPORTED,
            errdom::DOMAIN,
            format!("unsupported configuration: {m}"),
        );
    }
    if let Some(Missing(m)) = e.downcast_ref() {
        return RemoteError::new(
            code::DEVICE_MISSING,
            errdom::DOMAIN,
            format!("device not found: {m}"),
        );
    }
    if let Some(OpInvalid(m)) = e.downcast_ref() {
        return RemoteError::new(
            code::OPERATION_INVALID,
            errdom::QEMU,
            format!("Requested operation is not valid: {m}"),
        );
    }
    if let Some(Aborted(m)) = e.downcast_ref() {
        return RemoteError::new(
            code::OPERATION_ABORTED,
            errdom::QEMU,
            format!("operation aborted: {m}"),
        );
    }
    if let Some(vireo_qmp::QmpError::Timeout(cmd)) = e.downcast_ref() {
        return RemoteError::new(
            code::OPERATION_TIMEOUT,
            errdom::QEMU,
            format!(
                "Timed out during operation: no answer from QEMU's monitor to '{cmd}' \
                 (QEMU stopped or stuck)"
            ),
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

pub(crate) fn args<T: Xdr>(payload: &[u8]) -> Result<T, RemoteError> {
    vireo_xdr::from_bytes(payload)
        .map_err(|e| RemoteError::rpc(format!("Unable to decode message payload: {e}")))
}

pub(crate) fn ret<T: Xdr>(v: T) -> Result<Vec<u8>, RemoteError> {
    Ok(vireo_xdr::to_bytes(&v))
}

/// A bandwidth as libvirt gives it (MiB/s, or bytes/s with the BYTES flag) in bytes/s.
pub(crate) fn speed_bytes(bandwidth: u64, bytes: bool) -> Result<u64, RemoteError> {
    if bytes {
        return Ok(bandwidth);
    }
    bandwidth.checked_mul(1 << 20).ok_or_else(|| {
        RemoteError::new(
            code::OVERFLOW,
            errdom::QEMU,
            format!(
                "value too large: bandwidth must be less than {} MiB/s",
                u64::MAX >> 20
            ),
        )
    })
}
