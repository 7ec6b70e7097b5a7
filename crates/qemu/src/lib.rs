//! The QEMU driver: owns the domain definitions (persistent XML under the config dir),
//! answers lookups and listings, and describes the host's QEMU (capabilities, version).

pub mod blockjob;
pub mod caps;
pub mod cgroup;
pub mod cmdline;
pub mod console;
pub mod cpumodel;
mod devlease;
pub mod domcaps;
pub mod driver;
mod extsnap;
pub mod firmware;
pub mod flags;
pub mod health;
pub mod hotplug;
mod hotplug_hostdev;
pub mod ifaddr;
pub mod iothread;
pub mod keys;
pub mod lifecycle;
mod memdev;
pub mod metadata;
pub mod migrate;
pub mod owners;
pub mod pci;
pub mod peers;
pub mod pinning;
pub mod resources;
mod restorejob;
pub mod save;
pub mod saveimage;
pub mod screen;
pub mod snapshot;
pub mod stats;
pub mod tune;
pub mod validate;

pub use driver::{DomainInfo, QemuConfig, QemuDriver, QemuUser};
pub use peers::{DeviceLease, DeviceLeases, NetPort, Peers, VolumeSource};
