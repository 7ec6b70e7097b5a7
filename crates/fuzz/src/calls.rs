//! The argument type of every procedure the daemons (and the VM shims) serve, by program
//! and procedure number: the type the dispatcher decodes that call's payload into
//! (`args()` in `crates/daemon/src/remote/`, `crates/daemon/src/admin.rs`,
//! `crates/qemu/src/`, `crates/shim/src/`). Procedures without arguments are absent.
//! The `table_covers_every_decoded_type` test checks that every argument type named in
//! those sources is here.

use vireo_proto::admin::ADMIN_VERSION;
use vireo_proto::vireo::{VIREO_PROGRAM, VIREO_VERSION};
use vireo_proto::{
    admin, auth, interface as iface, migrate, network as net, nodedev, nwfilter as nwf, remote,
    secret, storage as st, vireo,
};
use vireo_proto::{
    ADMIN_PROGRAM, QEMU_PROC_DOMAIN_AGENT_COMMAND, QEMU_PROC_DOMAIN_MONITOR_COMMAND, QEMU_PROGRAM,
    REMOTE_PROGRAM,
};
use vireo_xdr::{Decoder, Xdr};

/// One procedure's entry.
pub struct Call {
    pub prog: u32,
    pub proc_: i32,
    /// The argument type's name, for messages.
    pub ty: &'static str,
    /// Decodes a payload as the dispatcher does and checks what it got.
    pub check: fn(&[u8]),
    /// A valid payload (the type's default value), a seed for the fuzzer.
    pub seed: fn() -> Vec<u8>,
}

/// Decodes `payload` as `T` the way the daemon's `args()` does (the whole payload must be
/// used); what decodes must encode into bytes that decode again.
fn check<T: Xdr>(payload: &[u8]) {
    let mut d = Decoder::new(payload);
    let Ok(v) = T::decode(&mut d) else {
        return;
    };
    let _ = d.finish();
    let once = vireo_xdr::to_bytes(&v);
    if let Err(e) = vireo_xdr::from_bytes::<T>(&once) {
        panic!(
            "{}: the re-encoded value does not decode: {e}",
            std::any::type_name::<T>()
        );
    }
}

fn seed<T: Xdr + Default>() -> Vec<u8> {
    vireo_xdr::to_bytes(&T::default())
}

macro_rules! calls {
    ($($prog:ident $module:ident :: $proc:ident => $t:ty;)*) => {
        /// Every procedure with arguments, per program.
        pub static CALLS: &[Call] = &[$(Call {
            prog: $prog,
            proc_: $module::procs::$proc,
            ty: stringify!($t),
            check: check::<$t>,
            seed: seed::<$t>,
        },)*];
    };
}

const REMOTE: u32 = REMOTE_PROGRAM;
const VIREO: u32 = VIREO_PROGRAM;
const ADMIN: u32 = ADMIN_PROGRAM;

/// libvirt's QEMU program: the procedures Vireo serves.
mod qemu_prog {
    pub mod procs {
        pub const DOMAIN_AGENT_COMMAND: i32 = super::super::QEMU_PROC_DOMAIN_AGENT_COMMAND;
        pub const DOMAIN_MONITOR_COMMAND: i32 = super::super::QEMU_PROC_DOMAIN_MONITOR_COMMAND;
    }
}
const QEMU: u32 = QEMU_PROGRAM;

calls! {
    // Connection, authentication, host.
    REMOTE remote::CONNECT_OPEN => remote::ConnectOpenArgs;
    REMOTE remote::CONNECT_SUPPORTS_FEATURE => remote::ConnectSupportsFeatureArgs;
    REMOTE remote::CONNECT_SET_IDENTITY => remote::ConnectSetIdentityArgs;
    REMOTE remote::CONNECT_GET_MAX_VCPUS => remote::ConnectGetMaxVcpusArgs;
    REMOTE auth::AUTH_SASL_START => auth::AuthSaslStartArgs;
    REMOTE auth::AUTH_SASL_STEP => auth::AuthSaslStepArgs;
    REMOTE remote::CONNECT_GET_DOMAIN_CAPABILITIES => remote::ConnectGetDomainCapabilitiesArgs;
    REMOTE remote::NODE_GET_CPU_MAP => remote::NodeGetCpuMapArgs;
    REMOTE remote::CONNECT_GET_CPU_MODEL_NAMES => remote::ConnectGetCpuModelNamesArgs;
    REMOTE remote::CONNECT_COMPARE_CPU => remote::ConnectCompareCpuArgs;
    REMOTE remote::CONNECT_COMPARE_HYPERVISOR_CPU => remote::ConnectCompareHypervisorCpuArgs;
    REMOTE remote::CONNECT_BASELINE_CPU => remote::ConnectBaselineCpuArgs;
    REMOTE remote::CONNECT_BASELINE_HYPERVISOR_CPU => remote::ConnectBaselineHypervisorCpuArgs;
    // Events.
    REMOTE remote::CONNECT_DOMAIN_EVENT_REGISTER_ANY => remote::EventRegisterAnyArgs;
    REMOTE remote::CONNECT_DOMAIN_EVENT_DEREGISTER_ANY => remote::EventRegisterAnyArgs;
    REMOTE remote::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY => remote::EventCallbackRegisterAnyArgs;
    REMOTE remote::CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY => remote::EventCallbackDeregisterAnyArgs;
    REMOTE remote::CONNECT_NETWORK_EVENT_REGISTER_ANY => net::EventRegisterAnyArgs;
    REMOTE remote::CONNECT_NETWORK_EVENT_DEREGISTER_ANY => remote::EventCallbackDeregisterAnyArgs;
    REMOTE remote::CONNECT_SECRET_EVENT_REGISTER_ANY => secret::ConnectSecretEventRegisterAnyArgs;
    REMOTE remote::CONNECT_SECRET_EVENT_DEREGISTER_ANY => remote::EventCallbackDeregisterAnyArgs;
    REMOTE remote::CONNECT_STORAGE_POOL_EVENT_REGISTER_ANY => st::PoolEventRegisterAnyArgs;
    REMOTE remote::CONNECT_STORAGE_POOL_EVENT_DEREGISTER_ANY => remote::EventCallbackDeregisterAnyArgs;
    REMOTE remote::CONNECT_NODE_DEVICE_EVENT_REGISTER_ANY => nodedev::NodeDeviceEventRegisterAnyArgs;
    REMOTE remote::CONNECT_NODE_DEVICE_EVENT_DEREGISTER_ANY => remote::EventCallbackDeregisterAnyArgs;
    // Domains: definitions, lookups, listings.
    REMOTE remote::CONNECT_LIST_DOMAINS => remote::ConnectListDomainsArgs;
    REMOTE remote::CONNECT_LIST_DEFINED_DOMAINS => remote::ConnectListDefinedDomainsArgs;
    REMOTE remote::CONNECT_LIST_ALL_DOMAINS => remote::ConnectListAllDomainsArgs;
    REMOTE remote::DOMAIN_DEFINE_XML => remote::DomainDefineXmlArgs;
    REMOTE remote::DOMAIN_DEFINE_XML_FLAGS => remote::DomainDefineXmlFlagsArgs;
    REMOTE remote::DOMAIN_CREATE_XML => remote::DomainCreateXmlArgs;
    REMOTE remote::DOMAIN_UNDEFINE => remote::DomainArgs;
    REMOTE remote::DOMAIN_UNDEFINE_FLAGS => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_LOOKUP_BY_NAME => remote::DomainLookupByNameArgs;
    REMOTE remote::DOMAIN_LOOKUP_BY_UUID => remote::DomainLookupByUuidArgs;
    REMOTE remote::DOMAIN_LOOKUP_BY_ID => remote::DomainLookupByIdArgs;
    REMOTE remote::DOMAIN_GET_XML_DESC => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_GET_INFO => remote::DomainArgs;
    REMOTE remote::DOMAIN_GET_STATE => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_GET_OS_TYPE => remote::DomainArgs;
    REMOTE remote::DOMAIN_GET_MAX_MEMORY => remote::DomainArgs;
    REMOTE remote::DOMAIN_GET_MAX_VCPUS => remote::DomainArgs;
    REMOTE remote::DOMAIN_GET_VCPUS_FLAGS => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_GET_AUTOSTART => remote::DomainArgs;
    REMOTE remote::DOMAIN_SET_AUTOSTART => remote::DomainSetAutostartArgs;
    REMOTE remote::DOMAIN_IS_ACTIVE => remote::DomainArgs;
    REMOTE remote::DOMAIN_IS_PERSISTENT => remote::DomainArgs;
    REMOTE remote::DOMAIN_IS_UPDATED => remote::DomainArgs;
    REMOTE remote::DOMAIN_HAS_MANAGED_SAVE_IMAGE => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_MANAGED_SAVE_REMOVE => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_MANAGED_SAVE_GET_XML_DESC => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_MANAGED_SAVE_DEFINE_XML => remote::DomainManagedSaveDefineXmlArgs;
    REMOTE remote::DOMAIN_SAVE_IMAGE_GET_XML_DESC => remote::DomainSaveImageGetXmlDescArgs;
    REMOTE remote::DOMAIN_SAVE_IMAGE_DEFINE_XML => remote::DomainSaveImageDefineXmlArgs;
    REMOTE remote::DOMAIN_GET_SECURITY_LABEL => remote::DomainArgs;
    REMOTE remote::DOMAIN_GET_MESSAGES => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_GET_METADATA => remote::DomainGetMetadataArgs;
    REMOTE remote::DOMAIN_SET_METADATA => remote::DomainSetMetadataArgs;
    // Domains: lifecycle.
    REMOTE remote::DOMAIN_CREATE => remote::DomainArgs;
    REMOTE remote::DOMAIN_CREATE_WITH_FLAGS => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_SHUTDOWN => remote::DomainArgs;
    REMOTE remote::DOMAIN_SHUTDOWN_FLAGS => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_DESTROY => remote::DomainArgs;
    REMOTE remote::DOMAIN_DESTROY_FLAGS => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_REBOOT => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_RESET => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_SUSPEND => remote::DomainArgs;
    REMOTE remote::DOMAIN_RESUME => remote::DomainArgs;
    REMOTE remote::DOMAIN_SAVE => remote::DomainSaveArgs;
    REMOTE remote::DOMAIN_SAVE_FLAGS => remote::DomainSaveFlagsArgs;
    REMOTE remote::DOMAIN_RESTORE => remote::DomainRestoreArgs;
    REMOTE remote::DOMAIN_RESTORE_FLAGS => remote::DomainRestoreFlagsArgs;
    REMOTE remote::DOMAIN_MANAGED_SAVE => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_OPEN_CONSOLE => remote::DomainOpenConsoleArgs;
    REMOTE remote::DOMAIN_SCREENSHOT => remote::DomainScreenshotArgs;
    REMOTE remote::DOMAIN_SEND_KEY => remote::DomainSendKeyArgs;
    // Domains: devices.
    REMOTE remote::DOMAIN_ATTACH_DEVICE => remote::DomainDeviceArgs;
    REMOTE remote::DOMAIN_DETACH_DEVICE => remote::DomainDeviceArgs;
    REMOTE remote::DOMAIN_ATTACH_DEVICE_FLAGS => remote::DomainDeviceFlagsArgs;
    REMOTE remote::DOMAIN_DETACH_DEVICE_FLAGS => remote::DomainDeviceFlagsArgs;
    REMOTE remote::DOMAIN_UPDATE_DEVICE_FLAGS => remote::DomainDeviceFlagsArgs;
    REMOTE remote::DOMAIN_DETACH_DEVICE_ALIAS => remote::DomainDeviceFlagsArgs;
    REMOTE remote::DOMAIN_INTERFACE_ADDRESSES => remote::DomainInterfaceAddressesArgs;
    // Domains: resources and tuning.
    REMOTE remote::DOMAIN_SET_MEMORY => remote::DomainSetMemoryArgs;
    REMOTE remote::DOMAIN_SET_MAX_MEMORY => remote::DomainSetMemoryArgs;
    REMOTE remote::DOMAIN_SET_MEMORY_FLAGS => remote::DomainSetMemoryFlagsArgs;
    REMOTE remote::DOMAIN_SET_MEMORY_STATS_PERIOD => remote::DomainSetMemoryStatsPeriodArgs;
    REMOTE remote::DOMAIN_SET_VCPUS => remote::DomainSetVcpusArgs;
    REMOTE remote::DOMAIN_SET_VCPUS_FLAGS => remote::DomainSetVcpusFlagsArgs;
    REMOTE remote::DOMAIN_GET_VCPUS => remote::DomainGetVcpusArgs;
    REMOTE remote::DOMAIN_GET_VCPU_PIN_INFO => remote::DomainGetVcpuPinInfoArgs;
    REMOTE remote::DOMAIN_PIN_VCPU_FLAGS => remote::DomainPinVcpuFlagsArgs;
    REMOTE remote::DOMAIN_PIN_EMULATOR => remote::DomainPinEmulatorArgs;
    REMOTE remote::DOMAIN_GET_EMULATOR_PIN_INFO => remote::DomainGetEmulatorPinInfoArgs;
    REMOTE remote::DOMAIN_GET_IOTHREAD_INFO => remote::DomainGetIothreadInfoArgs;
    REMOTE remote::DOMAIN_PIN_IOTHREAD => remote::DomainPinIothreadArgs;
    REMOTE remote::DOMAIN_ADD_IOTHREAD => remote::DomainIothreadIdArgs;
    REMOTE remote::DOMAIN_DEL_IOTHREAD => remote::DomainIothreadIdArgs;
    REMOTE remote::DOMAIN_SET_IOTHREAD_PARAMS => remote::DomainSetIothreadParamsArgs;
    REMOTE remote::DOMAIN_GET_SCHEDULER_TYPE => remote::DomainArgs;
    REMOTE remote::DOMAIN_GET_SCHEDULER_PARAMETERS => remote::DomainGetSchedulerParametersArgs;
    REMOTE remote::DOMAIN_GET_SCHEDULER_PARAMETERS_FLAGS => remote::DomainGetSchedulerParametersFlagsArgs;
    REMOTE remote::DOMAIN_SET_SCHEDULER_PARAMETERS => remote::DomainSetSchedulerParametersArgs;
    REMOTE remote::DOMAIN_SET_SCHEDULER_PARAMETERS_FLAGS => remote::DomainSetTuneParametersArgs;
    REMOTE remote::DOMAIN_GET_MEMORY_PARAMETERS => remote::DomainGetTuneParametersArgs;
    REMOTE remote::DOMAIN_SET_MEMORY_PARAMETERS => remote::DomainSetTuneParametersArgs;
    REMOTE remote::DOMAIN_GET_BLKIO_PARAMETERS => remote::DomainGetTuneParametersArgs;
    REMOTE remote::DOMAIN_SET_BLKIO_PARAMETERS => remote::DomainSetTuneParametersArgs;
    // Domains: statistics and jobs.
    REMOTE remote::CONNECT_GET_ALL_DOMAIN_STATS => remote::ConnectGetAllDomainStatsArgs;
    REMOTE remote::DOMAIN_BLOCK_STATS => remote::DomainPathArgs;
    REMOTE remote::DOMAIN_BLOCK_STATS_FLAGS => remote::DomainBlockStatsFlagsArgs;
    REMOTE remote::DOMAIN_INTERFACE_STATS => remote::DomainPathArgs;
    REMOTE remote::DOMAIN_MEMORY_STATS => remote::DomainMemoryStatsArgs;
    REMOTE remote::DOMAIN_GET_BLOCK_INFO => remote::DomainGetBlockInfoArgs;
    REMOTE remote::DOMAIN_GET_JOB_INFO => remote::DomainArgs;
    REMOTE remote::DOMAIN_GET_JOB_STATS => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_ABORT_JOB => remote::DomainArgs;
    // Domains: block jobs.
    REMOTE remote::DOMAIN_BLOCK_PULL => remote::DomainBlockBandwidthArgs;
    REMOTE remote::DOMAIN_BLOCK_REBASE => remote::DomainBlockRebaseArgs;
    REMOTE remote::DOMAIN_BLOCK_COPY => remote::DomainBlockCopyArgs;
    REMOTE remote::DOMAIN_BLOCK_COMMIT => remote::DomainBlockCommitArgs;
    REMOTE remote::DOMAIN_BLOCK_JOB_ABORT => remote::DomainBlockJobArgs;
    REMOTE remote::DOMAIN_GET_BLOCK_JOB_INFO => remote::DomainBlockJobArgs;
    REMOTE remote::DOMAIN_BLOCK_JOB_SET_SPEED => remote::DomainBlockBandwidthArgs;
    // Domains: the guest agent.
    REMOTE remote::DOMAIN_GET_GUEST_INFO => remote::DomainGetGuestInfoArgs;
    REMOTE remote::DOMAIN_FSFREEZE => remote::DomainFsfreezeArgs;
    REMOTE remote::DOMAIN_FSTHAW => remote::DomainFsfreezeArgs;
    REMOTE remote::DOMAIN_GET_TIME => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_SET_TIME => remote::DomainSetTimeArgs;
    REMOTE remote::DOMAIN_SET_USER_PASSWORD => remote::DomainSetUserPasswordArgs;
    REMOTE remote::DOMAIN_PM_SUSPEND_FOR_DURATION => vireo_proto::domevent::DomainPmSuspendForDurationArgs;
    REMOTE remote::DOMAIN_PM_WAKEUP => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_PIN_VCPU => remote::DomainPinVcpuArgs;
    REMOTE remote::DOMAIN_SET_BLOCK_THRESHOLD => vireo_proto::domevent::DomainSetBlockThresholdArgs;
    REMOTE remote::DOMAIN_GET_HOSTNAME => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_GET_FSINFO => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_GET_GUEST_VCPUS => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_SET_GUEST_VCPUS => remote::DomainSetGuestVcpusArgs;
    // Domains: snapshots.
    REMOTE remote::DOMAIN_SNAPSHOT_CREATE_XML => remote::DomainSnapshotCreateXmlArgs;
    REMOTE remote::DOMAIN_SNAPSHOT_GET_XML_DESC => remote::DomainSnapshotFlagsArgs;
    REMOTE remote::DOMAIN_SNAPSHOT_NUM => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_SNAPSHOT_LIST_NAMES => remote::DomainSnapshotListNamesArgs;
    REMOTE remote::DOMAIN_SNAPSHOT_LOOKUP_BY_NAME => remote::DomainSnapshotLookupByNameArgs;
    REMOTE remote::DOMAIN_HAS_CURRENT_SNAPSHOT => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_SNAPSHOT_CURRENT => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_REVERT_TO_SNAPSHOT => remote::DomainSnapshotFlagsArgs;
    REMOTE remote::DOMAIN_SNAPSHOT_DELETE => remote::DomainSnapshotFlagsArgs;
    REMOTE remote::DOMAIN_SNAPSHOT_GET_PARENT => remote::DomainSnapshotFlagsArgs;
    REMOTE remote::DOMAIN_SNAPSHOT_NUM_CHILDREN => remote::DomainSnapshotFlagsArgs;
    REMOTE remote::DOMAIN_SNAPSHOT_LIST_CHILDREN_NAMES => remote::DomainSnapshotListChildrenNamesArgs;
    REMOTE remote::DOMAIN_SNAPSHOT_IS_CURRENT => remote::DomainSnapshotFlagsArgs;
    REMOTE remote::DOMAIN_SNAPSHOT_HAS_METADATA => remote::DomainSnapshotFlagsArgs;
    REMOTE remote::DOMAIN_LIST_ALL_SNAPSHOTS => remote::DomainListAllSnapshotsArgs;
    REMOTE remote::DOMAIN_SNAPSHOT_LIST_ALL_CHILDREN => remote::DomainSnapshotListAllChildrenArgs;
    // Domains: migration.
    REMOTE remote::DOMAIN_MIGRATE_BEGIN3_PARAMS => migrate::Begin3ParamsArgs;
    REMOTE remote::DOMAIN_MIGRATE_PREPARE3_PARAMS => migrate::Prepare3ParamsArgs;
    REMOTE remote::DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS => migrate::Prepare3ParamsArgs;
    REMOTE remote::DOMAIN_MIGRATE_PERFORM3_PARAMS => migrate::Perform3ParamsArgs;
    REMOTE remote::DOMAIN_MIGRATE_FINISH3_PARAMS => migrate::Finish3ParamsArgs;
    REMOTE remote::DOMAIN_MIGRATE_CONFIRM3_PARAMS => migrate::Confirm3ParamsArgs;
    REMOTE remote::DOMAIN_MIGRATE_SET_MAX_SPEED => migrate::SetMaxSpeedArgs;
    REMOTE remote::DOMAIN_MIGRATE_GET_MAX_SPEED => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_MIGRATE_SET_MAX_DOWNTIME => migrate::SetMaxDowntimeArgs;
    REMOTE remote::DOMAIN_MIGRATE_GET_MAX_DOWNTIME => remote::DomainFlagsArgs;
    REMOTE remote::DOMAIN_MIGRATE_START_POST_COPY => remote::DomainFlagsArgs;
    // Events a shim sends the QEMU daemon (decoded there).
    REMOTE remote::DOMAIN_EVENT_LIFECYCLE => remote::DomainEventLifecycleMsg;
    REMOTE remote::DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION => migrate::IterationMsg;
    REMOTE remote::DOMAIN_EVENT_CALLBACK_JOB_COMPLETED => migrate::JobCompletedMsg;
    // Secrets.
    REMOTE remote::CONNECT_LIST_SECRETS => secret::ConnectListSecretsArgs;
    REMOTE remote::CONNECT_LIST_ALL_SECRETS => secret::ConnectListAllSecretsArgs;
    REMOTE remote::SECRET_LOOKUP_BY_UUID => secret::SecretLookupByUuidArgs;
    REMOTE remote::SECRET_LOOKUP_BY_USAGE => secret::SecretLookupByUsageArgs;
    REMOTE remote::SECRET_DEFINE_XML => secret::SecretDefineXmlArgs;
    REMOTE remote::SECRET_UNDEFINE => secret::SecretArgs;
    REMOTE remote::SECRET_GET_XML_DESC => secret::SecretFlagsArgs;
    REMOTE remote::SECRET_SET_VALUE => secret::SecretSetValueArgs;
    REMOTE remote::SECRET_GET_VALUE => secret::SecretFlagsArgs;
    // Storage.
    REMOTE remote::CONNECT_LIST_STORAGE_POOLS => st::MaxNamesArgs;
    REMOTE remote::CONNECT_LIST_DEFINED_STORAGE_POOLS => st::MaxNamesArgs;
    REMOTE remote::CONNECT_LIST_ALL_STORAGE_POOLS => st::ListAllPoolsArgs;
    REMOTE remote::CONNECT_FIND_STORAGE_POOL_SOURCES => st::FindPoolSourcesArgs;
    REMOTE remote::CONNECT_GET_STORAGE_POOL_CAPABILITIES => st::FlagsArgs;
    REMOTE remote::STORAGE_POOL_DEFINE_XML => st::XmlFlagsArgs;
    REMOTE remote::STORAGE_POOL_CREATE_XML => st::XmlFlagsArgs;
    REMOTE remote::STORAGE_POOL_CREATE => st::PoolFlagsArgs;
    REMOTE remote::STORAGE_POOL_BUILD => st::PoolFlagsArgs;
    REMOTE remote::STORAGE_POOL_DESTROY => st::PoolArgs;
    REMOTE remote::STORAGE_POOL_DELETE => st::PoolFlagsArgs;
    REMOTE remote::STORAGE_POOL_UNDEFINE => st::PoolArgs;
    REMOTE remote::STORAGE_POOL_REFRESH => st::PoolFlagsArgs;
    REMOTE remote::STORAGE_POOL_LOOKUP_BY_NAME => st::NameArgs;
    REMOTE remote::STORAGE_POOL_LOOKUP_BY_UUID => st::UuidArgs;
    REMOTE remote::STORAGE_POOL_LOOKUP_BY_VOLUME => st::VolArgs;
    REMOTE remote::STORAGE_POOL_LOOKUP_BY_TARGET_PATH => st::PathArgs;
    REMOTE remote::STORAGE_POOL_GET_INFO => st::PoolArgs;
    REMOTE remote::STORAGE_POOL_GET_XML_DESC => st::PoolFlagsArgs;
    REMOTE remote::STORAGE_POOL_GET_AUTOSTART => st::PoolArgs;
    REMOTE remote::STORAGE_POOL_SET_AUTOSTART => st::PoolSetAutostartArgs;
    REMOTE remote::STORAGE_POOL_IS_ACTIVE => st::PoolArgs;
    REMOTE remote::STORAGE_POOL_IS_PERSISTENT => st::PoolArgs;
    REMOTE remote::STORAGE_POOL_NUM_OF_VOLUMES => st::PoolArgs;
    REMOTE remote::STORAGE_POOL_LIST_VOLUMES => st::ListVolumesArgs;
    REMOTE remote::STORAGE_POOL_LIST_ALL_VOLUMES => st::ListAllVolumesArgs;
    REMOTE remote::STORAGE_VOL_CREATE_XML => st::VolCreateXmlArgs;
    REMOTE remote::STORAGE_VOL_CREATE_XML_FROM => st::VolCreateXmlFromArgs;
    REMOTE remote::STORAGE_VOL_DELETE => st::VolFlagsArgs;
    REMOTE remote::STORAGE_VOL_WIPE => st::VolFlagsArgs;
    REMOTE remote::STORAGE_VOL_WIPE_PATTERN => st::VolWipePatternArgs;
    REMOTE remote::STORAGE_VOL_RESIZE => st::VolResizeArgs;
    REMOTE remote::STORAGE_VOL_LOOKUP_BY_NAME => st::VolLookupByNameArgs;
    REMOTE remote::STORAGE_VOL_LOOKUP_BY_KEY => st::KeyArgs;
    REMOTE remote::STORAGE_VOL_LOOKUP_BY_PATH => st::PathArgs;
    REMOTE remote::STORAGE_VOL_GET_INFO => st::VolArgs;
    REMOTE remote::STORAGE_VOL_GET_INFO_FLAGS => st::VolFlagsArgs;
    REMOTE remote::STORAGE_VOL_GET_XML_DESC => st::VolFlagsArgs;
    REMOTE remote::STORAGE_VOL_GET_PATH => st::VolArgs;
    REMOTE remote::STORAGE_VOL_UPLOAD => st::VolTransferArgs;
    REMOTE remote::STORAGE_VOL_DOWNLOAD => st::VolTransferArgs;
    // Networks and their ports.
    REMOTE remote::CONNECT_LIST_NETWORKS => net::MaxNamesArgs;
    REMOTE remote::CONNECT_LIST_DEFINED_NETWORKS => net::MaxNamesArgs;
    REMOTE remote::CONNECT_LIST_ALL_NETWORKS => net::ListAllArgs;
    REMOTE remote::NETWORK_LOOKUP_BY_NAME => net::NameArgs;
    REMOTE remote::NETWORK_LOOKUP_BY_UUID => net::UuidArgs;
    REMOTE remote::NETWORK_DEFINE_XML => net::XmlArgs;
    REMOTE remote::NETWORK_DEFINE_XML_FLAGS => net::XmlFlagsArgs;
    REMOTE remote::NETWORK_CREATE_XML => net::XmlArgs;
    REMOTE remote::NETWORK_CREATE_XML_FLAGS => net::XmlFlagsArgs;
    REMOTE remote::NETWORK_UNDEFINE => net::NetArgs;
    REMOTE remote::NETWORK_CREATE => net::NetArgs;
    REMOTE remote::NETWORK_DESTROY => net::NetArgs;
    REMOTE remote::NETWORK_GET_XML_DESC => net::NetFlagsArgs;
    REMOTE remote::NETWORK_GET_BRIDGE_NAME => net::NetArgs;
    REMOTE remote::NETWORK_GET_AUTOSTART => net::NetArgs;
    REMOTE remote::NETWORK_SET_AUTOSTART => net::SetAutostartArgs;
    REMOTE remote::NETWORK_IS_ACTIVE => net::NetArgs;
    REMOTE remote::NETWORK_IS_PERSISTENT => net::NetArgs;
    REMOTE remote::NETWORK_UPDATE => net::NetworkUpdateArgs;
    REMOTE remote::NETWORK_GET_DHCP_LEASES => net::GetDhcpLeasesArgs;
    REMOTE remote::NETWORK_SET_METADATA => net::SetMetadataArgs;
    REMOTE remote::NETWORK_GET_METADATA => net::GetMetadataArgs;
    REMOTE remote::NETWORK_LIST_ALL_PORTS => net::ListAllPortsArgs;
    REMOTE remote::NETWORK_PORT_LOOKUP_BY_UUID => net::PortLookupByUuidArgs;
    REMOTE remote::NETWORK_PORT_CREATE_XML => net::PortCreateXmlArgs;
    REMOTE remote::NETWORK_PORT_GET_XML_DESC => net::PortFlagsArgs;
    REMOTE remote::NETWORK_PORT_DELETE => net::PortFlagsArgs;
    REMOTE remote::NETWORK_PORT_GET_PARAMETERS => net::PortGetParametersArgs;
    REMOTE remote::NETWORK_PORT_SET_PARAMETERS => net::PortSetParametersArgs;
    // Network filters and their bindings.
    REMOTE remote::CONNECT_LIST_NWFILTERS => nwf::MaxNamesArgs;
    REMOTE remote::CONNECT_LIST_ALL_NWFILTERS => nwf::ListAllArgs;
    REMOTE remote::NWFILTER_LOOKUP_BY_NAME => nwf::NameArgs;
    REMOTE remote::NWFILTER_LOOKUP_BY_UUID => nwf::UuidArgs;
    REMOTE remote::NWFILTER_DEFINE_XML => nwf::XmlArgs;
    REMOTE remote::NWFILTER_DEFINE_XML_FLAGS => nwf::XmlFlagsArgs;
    REMOTE remote::NWFILTER_UNDEFINE => nwf::NwFilterArgs;
    REMOTE remote::NWFILTER_GET_XML_DESC => nwf::NwFilterFlagsArgs;
    REMOTE remote::CONNECT_LIST_ALL_NWFILTER_BINDINGS => nwf::ListAllArgs;
    REMOTE remote::NWFILTER_BINDING_LOOKUP_BY_PORT_DEV => nwf::NameArgs;
    REMOTE remote::NWFILTER_BINDING_CREATE_XML => nwf::XmlFlagsArgs;
    REMOTE remote::NWFILTER_BINDING_DELETE => nwf::BindingArgs;
    REMOTE remote::NWFILTER_BINDING_GET_XML_DESC => nwf::BindingFlagsArgs;
    // Node devices.
    REMOTE remote::NODE_NUM_OF_DEVICES => nodedev::NodeNumOfDevicesArgs;
    REMOTE remote::NODE_LIST_DEVICES => nodedev::NodeListDevicesArgs;
    REMOTE remote::CONNECT_LIST_ALL_NODE_DEVICES => nodedev::ConnectListAllNodeDevicesArgs;
    REMOTE remote::NODE_DEVICE_LOOKUP_BY_NAME => nodedev::NodeDeviceNameArgs;
    REMOTE remote::NODE_DEVICE_LOOKUP_SCSI_HOST_BY_WWN => nodedev::NodeDeviceLookupScsiHostByWwnArgs;
    REMOTE remote::NODE_DEVICE_GET_XML_DESC => nodedev::NodeDeviceGetXmlDescArgs;
    REMOTE remote::NODE_DEVICE_GET_PARENT => nodedev::NodeDeviceNameArgs;
    REMOTE remote::NODE_DEVICE_NUM_OF_CAPS => nodedev::NodeDeviceNameArgs;
    REMOTE remote::NODE_DEVICE_LIST_CAPS => nodedev::NodeDeviceListCapsArgs;
    REMOTE remote::NODE_DEVICE_DETTACH => nodedev::NodeDeviceNameArgs;
    REMOTE remote::NODE_DEVICE_DETACH_FLAGS => nodedev::NodeDeviceDetachFlagsArgs;
    REMOTE remote::NODE_DEVICE_RE_ATTACH => nodedev::NodeDeviceNameArgs;
    REMOTE remote::NODE_DEVICE_RESET => nodedev::NodeDeviceNameArgs;
    REMOTE remote::NODE_DEVICE_CREATE_XML => nodedev::NodeDeviceXmlArgs;
    REMOTE remote::NODE_DEVICE_DEFINE_XML => nodedev::NodeDeviceXmlArgs;
    REMOTE remote::NODE_DEVICE_DESTROY => nodedev::NodeDeviceNameArgs;
    REMOTE remote::NODE_DEVICE_UNDEFINE => nodedev::NodeDeviceNameFlagsArgs;
    REMOTE remote::NODE_DEVICE_CREATE => nodedev::NodeDeviceNameFlagsArgs;
    REMOTE remote::NODE_DEVICE_GET_AUTOSTART => nodedev::NodeDeviceNameArgs;
    REMOTE remote::NODE_DEVICE_SET_AUTOSTART => nodedev::NodeDeviceSetAutostartArgs;
    REMOTE remote::NODE_DEVICE_IS_PERSISTENT => nodedev::NodeDeviceNameArgs;
    REMOTE remote::NODE_DEVICE_IS_ACTIVE => nodedev::NodeDeviceNameArgs;
    // Host interfaces.
    REMOTE remote::CONNECT_LIST_INTERFACES => iface::InterfaceMaxNamesArgs;
    REMOTE remote::CONNECT_LIST_DEFINED_INTERFACES => iface::InterfaceMaxNamesArgs;
    REMOTE remote::CONNECT_LIST_ALL_INTERFACES => iface::ConnectListAllInterfacesArgs;
    REMOTE remote::INTERFACE_LOOKUP_BY_NAME => iface::InterfaceNameArgs;
    REMOTE remote::INTERFACE_LOOKUP_BY_MAC_STRING => iface::InterfaceMacArgs;
    REMOTE remote::INTERFACE_GET_XML_DESC => iface::InterfaceFlagsArgs;
    REMOTE remote::INTERFACE_IS_ACTIVE => iface::InterfaceArgs;
    REMOTE remote::INTERFACE_DEFINE_XML => iface::InterfaceDefineXmlArgs;
    REMOTE remote::INTERFACE_UNDEFINE => iface::InterfaceArgs;
    REMOTE remote::INTERFACE_CREATE => iface::InterfaceFlagsArgs;
    REMOTE remote::INTERFACE_DESTROY => iface::InterfaceFlagsArgs;
    REMOTE remote::INTERFACE_CHANGE_BEGIN => iface::InterfaceChangeArgs;
    REMOTE remote::INTERFACE_CHANGE_COMMIT => iface::InterfaceChangeArgs;
    REMOTE remote::INTERFACE_CHANGE_ROLLBACK => iface::InterfaceChangeArgs;
    // libvirt's QEMU program.
    QEMU qemu_prog::DOMAIN_AGENT_COMMAND => remote::QemuDomainAgentCommandArgs;
    QEMU qemu_prog::DOMAIN_MONITOR_COMMAND => remote::QemuDomainMonitorCommandArgs;
    // Vireo's own program (network and node device daemons; the shims from 100 on).
    VIREO vireo::NETWORK_PORT_CREATE_TAP => vireo::PortCreateTapArgs;
    VIREO vireo::BRIDGE_PORT_CREATE_TAP => vireo::BridgePortCreateTapArgs;
    VIREO vireo::BRIDGE_PORT_DELETE => vireo::BridgePortDeleteArgs;
    VIREO vireo::NODE_DEVICE_LEASE => vireo::NodeDeviceLeaseArgs;
    VIREO vireo::NODE_DEVICE_RELEASE => vireo::NodeDeviceReleaseArgs;
    VIREO vireo::NODE_DEVICE_LEASES => vireo::NodeDeviceLeasesArgs;
    VIREO vireo::DAEMON_METRICS => vireo::DaemonMetricsArgs;
    VIREO vireo::SHIM_ATTACH_DEVICE => vireo::ShimAttachArgs;
    VIREO vireo::SHIM_DETACH_DEVICE => vireo::ShimDetachArgs;
    VIREO vireo::SHIM_CHANGE_MEDIA => vireo::ShimAttachArgs;
    VIREO vireo::SHIM_SAVE => vireo::ShimSaveArgs;
    VIREO vireo::SHIM_SCREENSHOT => vireo::ShimScreenshotArgs;
    VIREO vireo::SHIM_SNAPSHOT => vireo::ShimSnapshotArgs;
    VIREO vireo::SHIM_BLOCK_JOB => vireo::ShimBlockJobArgs;
    VIREO vireo::SHIM_UPDATE_MEMORY => vireo::ShimUpdateMemoryArgs;
    VIREO vireo::SHIM_SET_LINK => vireo::ShimSetLinkArgs;
    VIREO vireo::SHIM_MIGRATE => vireo::ShimMigrateArgs;
    VIREO vireo::SHIM_MIGRATE_END => vireo::ShimMigrateEndArgs;
    // The admin program (virt-admin, on the admin socket).
    ADMIN admin::CONNECT_OPEN => admin::FlagsArgs;
    ADMIN admin::CONNECT_LIST_SERVERS => admin::ConnectListServersArgs;
    ADMIN admin::CONNECT_LOOKUP_SERVER => admin::ConnectLookupServerArgs;
    ADMIN admin::SERVER_GET_THREADPOOL_PARAMETERS => admin::ServerFlagsArgs;
    ADMIN admin::SERVER_SET_THREADPOOL_PARAMETERS => admin::ServerSetThreadpoolParametersArgs;
    ADMIN admin::SERVER_LIST_CLIENTS => admin::ServerListClientsArgs;
    ADMIN admin::SERVER_LOOKUP_CLIENT => admin::ServerLookupClientArgs;
    ADMIN admin::CLIENT_GET_INFO => admin::ClientFlagsArgs;
    ADMIN admin::CLIENT_CLOSE => admin::ClientFlagsArgs;
    ADMIN admin::SERVER_GET_CLIENT_LIMITS => admin::ServerFlagsArgs;
    ADMIN admin::SERVER_SET_CLIENT_LIMITS => admin::ServerSetClientLimitsArgs;
    ADMIN admin::CONNECT_GET_LOGGING_OUTPUTS => admin::FlagsArgs;
    ADMIN admin::CONNECT_GET_LOGGING_FILTERS => admin::FlagsArgs;
    ADMIN admin::CONNECT_SET_LOGGING_OUTPUTS => admin::ConnectSetLoggingOutputsArgs;
    ADMIN admin::CONNECT_SET_LOGGING_FILTERS => admin::ConnectSetLoggingFiltersArgs;
    ADMIN admin::SERVER_UPDATE_TLS_FILES => admin::ServerFlagsArgs;
    ADMIN admin::CONNECT_SET_DAEMON_TIMEOUT => admin::ConnectSetDaemonTimeoutArgs;
}

/// The programs, in the order of the fuzz input's first byte.
pub const PROGRAMS: [(u32, u32); 4] = [
    (REMOTE_PROGRAM, vireo_proto::REMOTE_VERSION),
    (VIREO_PROGRAM, VIREO_VERSION),
    (QEMU_PROGRAM, vireo_proto::QEMU_VERSION),
    (ADMIN_PROGRAM, ADMIN_VERSION),
];

/// The entry for a call, if it takes arguments.
pub fn find(prog: u32, proc_: i32) -> Option<&'static Call> {
    CALLS.iter().find(|c| c.prog == prog && c.proc_ == proc_)
}

/// The fuzz input for a call: the program's index, the procedure (2 bytes, big-endian),
/// the payload.
pub fn input(prog: u32, proc_: i32, payload: &[u8]) -> Option<Vec<u8>> {
    let i = PROGRAMS.iter().position(|(p, _)| *p == prog)?;
    let p = u16::try_from(proc_).ok()?;
    let mut v = Vec::with_capacity(3 + payload.len());
    v.push(i as u8);
    v.extend_from_slice(&p.to_be_bytes());
    v.extend_from_slice(payload);
    Some(v)
}
