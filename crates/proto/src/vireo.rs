//! `VIREO_PROGRAM` (0x76697265, "vire"), version 1: Vireo's own calls, for what libvirt's
//! protocol has no procedure. Never in libvirt's procedure number space.
//!
//! | proc | name | args | reply |
//! |---|---|---|---|
//! | 1 | NETWORK_PORT_CREATE_TAP | [`PortCreateTapArgs`] | [`PortCreateTapRet`] + the tap's descriptor (REPLY_WITH_FDS) |
//! | 2 | BRIDGE_PORT_CREATE_TAP | [`BridgePortCreateTapArgs`] | [`BridgePortCreateTapRet`] + the tap's descriptor (REPLY_WITH_FDS) |
//! | 3 | BRIDGE_PORT_DELETE | [`BridgePortDeleteArgs`] | nothing |
//! | 10 | NODE_DEVICE_LEASE | [`NodeDeviceLeaseArgs`] | [`NodeDeviceLeaseRet`] + the VFIO group's descriptor (REPLY_WITH_FDS) |
//! | 11 | NODE_DEVICE_RELEASE | [`NodeDeviceReleaseArgs`] | [`NodeDeviceReleaseRet`] |
//! | 12 | NODE_DEVICE_LEASES | [`NodeDeviceLeasesArgs`] | [`NodeDeviceLeasesRet`] |
//! | 20 | DAEMON_METRICS | [`DaemonMetricsArgs`] | [`DaemonMetricsRet`] (on the admin socket) |
//! | 100 | SHIM_ATTACH_DEVICE | [`ShimAttachArgs`] + the device's descriptors (CALL_WITH_FDS) | [`ShimAttachRet`] |
//! | 101 | SHIM_DETACH_DEVICE | [`ShimDetachArgs`] | [`ShimDetachRet`] |
//! | 102 | SHIM_CHANGE_MEDIA | [`ShimAttachArgs`] (the cdrom with its new source) | nothing |
//! | 103 | SHIM_SAVE | [`ShimSaveArgs`] + the image's descriptor | nothing |
//! | 104 | SHIM_SCREENSHOT | [`ShimScreenshotArgs`] | [`ShimScreenshotRet`] |
//! | 105 | SHIM_SNAPSHOT | [`ShimSnapshotArgs`] (+ the memory file's descriptor for EXTERNAL_MEMORY) | nothing |
//! | 106 | SHIM_BLOCK_JOB | [`ShimBlockJobArgs`] | nothing |
//! | 107 | SHIM_UPDATE_MEMORY | [`ShimUpdateMemoryArgs`] | nothing |
//! | 108 | SHIM_SET_LINK | [`ShimSetLinkArgs`] | nothing |
//! | 109 | SHIM_MIGRATE | [`ShimMigrateArgs`] + the connected migration socket (and one NBD connection per disk copied) | [`ShimMigrateRet`] |
//! | 110 | SHIM_MIGRATE_END | [`ShimMigrateEndArgs`] | nothing |
//!
//! Procedures from 20 to 29 are served on a daemon's admin socket (beside libvirt's ADMIN
//! program, whose procedure numbers they leave alone), to the daemon's own user only.
//! Procedures from 100 on are between the QEMU daemon and a VM's shim only.

use vireo_xdr::xdr_struct;

use crate::network::NetworkPort;
use crate::remote::{Network, Uuid};

pub const VIREO_PROGRAM: u32 = 0x7669_7265;
pub const VIREO_VERSION: u32 = 1;

pub mod procs {
    /// A network port with a tap device made for it in the network's bridge; the reply
    /// carries the device's descriptor.
    pub const NETWORK_PORT_CREATE_TAP: i32 = 1;
    /// A tap device in a bridge the host has (`<interface type='bridge'>`), made by the
    /// network driver; the reply carries the device's descriptor.
    pub const BRIDGE_PORT_CREATE_TAP: i32 = 2;
    /// Releases such a port (and its tap, if it still exists).
    pub const BRIDGE_PORT_DELETE: i32 = 3;
    /// A host device for a domain, from the node device driver: checked free, detached
    /// when managed, its node made the caller's; the reply carries the node open.
    pub const NODE_DEVICE_LEASE: i32 = 10;
    /// Ends a domain's leases (of one device, or all), managed devices back to the host.
    pub const NODE_DEVICE_RELEASE: i32 = 11;
    /// The leases the caller's user holds (to reconcile after a restart).
    pub const NODE_DEVICE_LEASES: i32 = 12;
    /// The daemon's metrics in Prometheus' text format (admin socket).
    /// [`DaemonMetricsArgs`] → [`DaemonMetricsRet`].
    pub const DAEMON_METRICS: i32 = 20;
    /// Hot-plugs a device the QEMU daemon has prepared (its tap made, its MAC address
    /// given) into the running VM; the device's descriptors come with the call.
    pub const SHIM_ATTACH_DEVICE: i32 = 100;
    /// Asks the guest to release a device and waits a while for it.
    pub const SHIM_DETACH_DEVICE: i32 = 101;
    /// Changes (or ejects) a cdrom's medium.
    pub const SHIM_CHANGE_MEDIA: i32 = 102;
    /// The VM's memory and device state into the file given as the call's one
    /// descriptor (at its offset); QEMU then ends. [`ShimSaveArgs`] → void.
    pub const SHIM_SAVE: i32 = 103;
    /// A picture of the VM's screen. [`ShimScreenshotArgs`] → [`ShimScreenshotRet`].
    pub const SHIM_SCREENSHOT: i32 = 104;
    /// Takes, loads or deletes an internal snapshot of the running VM (memory and the
    /// disks named). [`ShimSnapshotArgs`] → void.
    pub const SHIM_SNAPSHOT: i32 = 105;
    /// Starts a block job on a disk (pull, commit, copy). [`ShimBlockJobArgs`] → void.
    /// The job's progress, speed and end are the REMOTE program's block job calls.
    pub const SHIM_BLOCK_JOB: i32 = 106;
    /// Asks the guest to have another share of a virtio-mem device.
    /// [`ShimUpdateMemoryArgs`] → void.
    pub const SHIM_UPDATE_MEMORY: i32 = 107;
    /// Sets an interface's link up or down (`domif-setlink`). [`ShimSetLinkArgs`] → void.
    pub const SHIM_SET_LINK: i32 = 108;
    /// Live migration out: QEMU's migration stream into the connected socket that comes
    /// with the call, as a job; returns once it completed (the guest paused, waiting for
    /// the confirmation) or failed (the guest as it was). [`ShimMigrateArgs`] →
    /// [`ShimMigrateRet`].
    pub const SHIM_MIGRATE: i32 = 109;
    /// The end of a migration: on the source, confirmed (QEMU ends) or cancelled (the
    /// guest goes on); on the destination, the guest runs. [`ShimMigrateEndArgs`] → void.
    pub const SHIM_MIGRATE_END: i32 = 110;
}

/// The name of a procedure of this program.
pub fn proc_name(p: i32) -> Option<&'static str> {
    match p {
        procs::NETWORK_PORT_CREATE_TAP => Some("NETWORK_PORT_CREATE_TAP"),
        procs::BRIDGE_PORT_CREATE_TAP => Some("BRIDGE_PORT_CREATE_TAP"),
        procs::BRIDGE_PORT_DELETE => Some("BRIDGE_PORT_DELETE"),
        procs::NODE_DEVICE_LEASE => Some("NODE_DEVICE_LEASE"),
        procs::NODE_DEVICE_RELEASE => Some("NODE_DEVICE_RELEASE"),
        procs::NODE_DEVICE_LEASES => Some("NODE_DEVICE_LEASES"),
        procs::DAEMON_METRICS => Some("DAEMON_METRICS"),
        procs::SHIM_ATTACH_DEVICE => Some("SHIM_ATTACH_DEVICE"),
        procs::SHIM_DETACH_DEVICE => Some("SHIM_DETACH_DEVICE"),
        procs::SHIM_CHANGE_MEDIA => Some("SHIM_CHANGE_MEDIA"),
        procs::SHIM_SAVE => Some("SHIM_SAVE"),
        procs::SHIM_SCREENSHOT => Some("SHIM_SCREENSHOT"),
        procs::SHIM_SNAPSHOT => Some("SHIM_SNAPSHOT"),
        procs::SHIM_BLOCK_JOB => Some("SHIM_BLOCK_JOB"),
        procs::SHIM_UPDATE_MEMORY => Some("SHIM_UPDATE_MEMORY"),
        procs::SHIM_SET_LINK => Some("SHIM_SET_LINK"),
        procs::SHIM_MIGRATE => Some("SHIM_MIGRATE"),
        procs::SHIM_MIGRATE_END => Some("SHIM_MIGRATE_END"),
        _ => None,
    }
}

xdr_struct! {
    /// As `NETWORK_PORT_CREATE_XML`'s arguments.
    pub struct PortCreateTapArgs {
        pub net: Network,
        pub xml: String,
        /// The guest interface's `<filterref>` (XML), which the network driver binds to
        /// the tap through the filter driver.
        pub filterref: Option<String>,
        pub flags: u32,
    }
}

xdr_struct! {
    pub struct PortCreateTapRet {
        pub port: NetworkPort,
        /// The tap device's name (`vnetN`).
        pub ifname: String,
    }
}

xdr_struct! {
    pub struct BridgePortCreateTapArgs {
        /// The host's bridge (`<source bridge>`); empty: in none, a plain tap
        /// (`<interface type='ethernet'>`).
        pub bridge: String,
        /// A `<networkport>` definition: owner, MAC address, bandwidth.
        pub xml: String,
        pub filterref: Option<String>,
        pub flags: u32,
    }
}

xdr_struct! {
    pub struct BridgePortCreateTapRet {
        pub port: Uuid,
        pub ifname: String,
    }
}

xdr_struct! {
    /// The port of domain `owner` whose tap is `ifname` (as its live XML shows it).
    pub struct BridgePortDeleteArgs {
        pub owner: Uuid,
        pub ifname: String,
        pub flags: u32,
    }
}

xdr_struct! {
    /// `DAEMON_METRICS`: no flags are defined yet (0).
    pub struct DaemonMetricsArgs {
        pub flags: u32,
    }
}

xdr_struct! {
    /// The metrics as an HTTP scrape of the daemon's `metrics_listen` port returns them
    /// (Prometheus' text exposition format, version 0.0.4).
    pub struct DaemonMetricsRet {
        pub text: String,
    }
}

/// Most leases one reply lists.
pub const LEASE_LIST_MAX: usize = 4096;

xdr_struct! {
    /// `NODE_DEVICE_LEASE`: node device `name` (`pci_0000_01_00_0`) for domain `owner`;
    /// `managed` 1: detached for the lease and given back at its end.
    pub struct NodeDeviceLeaseArgs {
        pub name: String,
        pub owner: Uuid,
        pub owner_name: String,
        pub managed: i32,
        pub flags: u32,
    }
}

xdr_struct! {
    pub struct NodeDeviceLeaseRet {
        /// The device's address as QEMU's `host=` takes it (`0000:01:00.0`).
        pub address: String,
        /// The node the descriptor is (`/dev/vfio/7`).
        pub node: String,
    }
}

xdr_struct! {
    /// `NODE_DEVICE_RELEASE`: the leases of domain `owner` (of device `name` only, if
    /// given).
    pub struct NodeDeviceReleaseArgs {
        pub owner: Uuid,
        pub name: Option<String>,
        pub flags: u32,
    }
}

xdr_struct! {
    /// The devices released.
    pub struct NodeDeviceReleaseRet {
        pub names: vireo_xdr::Array<String, LEASE_LIST_MAX>,
    }
}

/// `NODE_DEVICE_LEASES` flag: every user's leases (root only).
pub const LEASES_ALL: u32 = 1;

xdr_struct! {
    pub struct NodeDeviceLeasesArgs {
        pub flags: u32,
    }
}

xdr_struct! {
    /// One lease: device, domain, managed.
    pub struct NodeDeviceLeaseInfo {
        pub name: String,
        pub owner: Uuid,
        pub owner_name: String,
        pub managed: i32,
    }
}

xdr_struct! {
    pub struct NodeDeviceLeasesRet {
        pub leases: vireo_xdr::Array<NodeDeviceLeaseInfo, LEASE_LIST_MAX>,
    }
}

xdr_struct! {
    pub struct ShimAttachArgs {
        /// The device's XML (`<interface>`, `<disk>`), as QEMU is to use it.
        pub xml: String,
        /// The device as the live definition is to show it, when that differs (a disk
        /// given as a storage volume).
        pub shown: Option<String>,
        pub flags: u32,
    }
}

xdr_struct! {
    pub struct ShimAttachRet {
        /// The device's alias (its QEMU id).
        pub alias: String,
    }
}

xdr_struct! {
    pub struct ShimDetachArgs {
        pub alias: String,
        /// How long to wait for the guest to let the device go.
        pub wait_ms: u32,
    }
}

xdr_struct! {
    pub struct ShimDetachRet {
        /// 1 when the device is gone, 0 when the guest has not let it go yet (it goes
        /// when the guest does, with a DEVICE_REMOVED event).
        pub removed: i32,
    }
}

xdr_struct! {
    /// `SHIM_SAVE`: nothing but room for flags to come.
    pub struct ShimSaveArgs {
        pub flags: u32,
    }
}

/// The largest screenshot a shim sends back (a frame holds 32 MiB).
pub const SCREENSHOT_MAX: usize = 30 << 20;

xdr_struct! {
    /// `SHIM_SCREENSHOT`: which head of the display.
    pub struct ShimScreenshotArgs {
        pub screen: u32,
    }
}

xdr_struct! {
    /// The picture (PNG) and its MIME type.
    pub struct ShimScreenshotRet {
        pub mime: String,
        pub data: vireo_xdr::Opaque<SCREENSHOT_MAX>,
    }
}

/// What [`ShimSnapshotArgs`] asks for.
pub mod snapshot_op {
    /// Memory and disks into the disks' images (QEMU's `snapshot-save`).
    pub const SAVE: i32 = 0;
    /// The guest back to that state (`snapshot-load`).
    pub const LOAD: i32 = 1;
    /// The snapshot out of the disks' images (`snapshot-delete`).
    pub const DELETE: i32 = 2;
    /// Each disk named goes on writing into a new overlay, the file of the same index
    /// (made by the daemon, backed by the disk's image): an external disk-only snapshot.
    pub const EXTERNAL: i32 = 3;
    /// An external snapshot with the memory state: the VM's state into the descriptor
    /// sent with the call (QEMU's migration stream, from its offset), then EXTERNAL's
    /// overlays, at one instant; the guest goes on as it was. With `run` = 1 (libvirt's
    /// LIVE) the guest is not paused while its memory is written.
    pub const EXTERNAL_MEMORY: i32 = 4;
}

xdr_struct! {
    /// `SHIM_SNAPSHOT`: an internal snapshot named `tag` of the disks with these targets
    /// (the memory goes into the first one's image).
    pub struct ShimSnapshotArgs {
        pub op: i32,
        pub tag: String,
        pub disks: vireo_xdr::Array<String, 256>,
        /// After a load: 1 the guest runs, 0 it stays paused. EXTERNAL_MEMORY: 1 live.
        pub run: i32,
        /// EXTERNAL: the overlays, one per disk.
        pub files: vireo_xdr::Array<String, 256>,
    }
}

xdr_struct! {
    /// `SHIM_BLOCK_JOB`: job `kind` (libvirt's block job type: pull, copy, commit, active
    /// commit) on the disk with target `disk`. `base` and `top` are images of the disk's
    /// chain (None: the defaults: the whole chain, the active layer); for a copy, `dest`
    /// is the destination image (made by the daemon) and `dest_format` its format.
    /// `bandwidth` is in bytes per second (0: unlimited).
    pub struct ShimBlockJobArgs {
        pub kind: i32,
        pub disk: String,
        pub base: Option<String>,
        pub top: Option<String>,
        pub dest: Option<String>,
        pub dest_format: Option<String>,
        pub bandwidth: u64,
        /// For commit: only into the top's own backing image (SHALLOW).
        pub shallow: i32,
        /// For commit: the images committed away are deleted once the job ended well
        /// (DELETE).
        pub delete: i32,
    }
}

xdr_struct! {
    /// `SHIM_UPDATE_MEMORY`: the virtio-mem device with this alias, asked to give the guest
    /// `requested_kib` of its memory.
    pub struct ShimUpdateMemoryArgs {
        pub alias: String,
        pub requested_kib: u64,
    }
}

xdr_struct! {
    /// `SHIM_SET_LINK`: the interface with this alias, its link up (1) or down (0).
    pub struct ShimSetLinkArgs {
        pub alias: String,
        pub up: i32,
    }
}

xdr_struct! {
    /// `SHIM_MIGRATE`: libvirt's migration `flags` (LIVE, AUTO_CONVERGE, POSTCOPY, …) and
    /// the tuning of this migration; 0 (or -1 for the auto-converge steps) keeps what the
    /// VM has.
    pub struct ShimMigrateArgs {
        pub flags: u32,
        /// MiB/s.
        pub bandwidth: u64,
        /// MiB/s, once in post-copy.
        pub bandwidth_postcopy: u64,
        /// Milliseconds.
        pub downtime_ms: u64,
        /// Percent of the vCPUs' time throttled at first, and the step after that.
        pub auto_converge_initial: i32,
        pub auto_converge_increment: i32,
        /// With NON_SHARED_DISK / NON_SHARED_INC: the disks (targets) copied to the
        /// destination first, each through the descriptor of the same index after the
        /// migration socket (a connection to the destination's NBD server).
        pub disks: vireo_xdr::Array<String, 256>,
    }
}

xdr_struct! {
    /// `SHIM_MIGRATE`'s answer: when QEMU paused the guest for the switch-over, in
    /// milliseconds since the epoch (0: unknown, as after a post-copy switch), from which
    /// the destination counts the downtime to its resume, as libvirt does.
    pub struct ShimMigrateRet {
        pub stopped_at_ms: u64,
    }
}

/// What [`ShimMigrateEndArgs`] asks for.
pub mod migrate_end {
    /// Source: the destination runs the guest; QEMU ends here (STOPPED, MIGRATED).
    pub const CONFIRM: i32 = 0;
    /// Source: the migration failed or was cancelled; the guest goes on here.
    pub const CANCEL: i32 = 1;
    /// Destination: the migration is over; the guest runs (RESUMED, MIGRATED, or
    /// POSTCOPY while the rest of its memory still comes).
    pub const RESUME: i32 = 2;
    /// Destination: returns once the incoming stream is complete (after post-copy).
    pub const COMPLETE: i32 = 3;
    /// Destination: the migration is over; the guest stays paused (VIR_MIGRATE_PAUSED:
    /// SUSPENDED, PAUSED).
    pub const STAY_PAUSED: i32 = 4;
}

xdr_struct! {
    pub struct ShimMigrateEndArgs {
        pub op: i32,
    }
}
