//! Domain definition → QEMU command line (QEMU 7.2 syntax, x86_64, pc and q35 machines).
//!
//! [`build`] turns a [`Domain`] into the arguments that follow the emulator path. Names
//! follow libvirt's conventions (`charserial0`, `libvirt-1-storage`/`libvirt-1-format`,
//! `virtio-disk0`, `hostnet0`/`net0`, `charchannel0`, `video0`, `balloon0`, `rng0`/`objrng0`,
//! `input0`, ...), so QMP replies and logs read the same as under libvirt.
//!
//! [`check`] runs exactly the same translation and throws the arguments away, so the two
//! can never disagree: whatever cannot be honoured is refused by both, with a message that
//! names the element. Only settings with no effect on the running guest are accepted
//! without translation (title, description, metadata, `<emulator>`, device aliases, and
//! live-state attributes such as a pty's path or a channel's `state`); each is named at
//! the place it is skipped.
//!
//! Contract with the driver: the definition is complete. It has a UUID, every interface
//! has a MAC address, the machine type is set. Devices that libvirt adds in its post-parse
//! step (memory balloon, USB controller, PS/2 inputs, a video device for graphics) are the
//! driver's business: this module adds nothing the definition does not ask for, except the
//! controllers that requested devices need (a USB controller for USB inputs, the
//! virtio-serial controller for channels and virtio consoles, an AHCI controller for SATA
//! disks on `pc`).
//!
//! Lifecycle: QEMU always runs with `-S` (the shim starts the CPUs after the QMP handshake)
//! and `-no-shutdown` (a guest power-off stops QEMU instead of ending it, and the shim
//! applies `<on_poweroff>`). `<on_reboot>destroy</on_reboot>` adds `-no-reboot`, which
//! turns a guest reset into a `SHUTDOWN` event with reason `guest-reset`.
//!
//! PCI: [`crate::pci::assign`] gave every PCI device its place at define (root ports on
//! q35, one per device; the root bus on pc), and [`build`] runs it again for a definition
//! that has none, so every device is written with an explicit `bus=…,addr=…`: bus 0 is the
//! machine's (`pci.0` on pc, `pcie.0` on q35), bus N the PCI controller of index N
//! (`pci.N`), emitted before the devices on it.
//!
//! Boot order: `<os><boot dev=...>` is expressed as `bootindex` on the first device of
//! each kind (position in the list, from 1), per-device `<boot order>` as that index;
//! `-boot strict=on` limits firmware to those devices.
//!
//! Where each part of the command line is made:
//!
//! - `mod.rs` (here): [`build`], [`check`], [`LaunchConfig`], [`CmdlineError`], machine
//!   families ([`family_of`], [`supported_machine`]), and the `Builder` with its ordered
//!   list of steps (`Builder::run`), which writes the global options (`-name`, `-machine`,
//!   `-m`, `-smp`, monitor, ...).
//! - `util.rs`: small shared helpers (`Opts` option strings, escaping, JSON objects).
//! - `slots.rs`: PCI slot bookkeeping for the command line (`PciBus`) and the address
//!   of hot-plugged PCI devices (not to be confused with [`crate::pci`], which assigns
//!   the PCI topology of a definition).
//! - `machine.rs`: `-machine` features, CPU model, SMP topology, memory checks, clock,
//!   lifecycle actions, boot order, power management (`<pm>`).
//! - `controllers.rs`: PCI, USB, SATA and virtio-serial controllers; reservation of the
//!   PCI addresses written in the definition.
//! - `disks.rs`: disks and their `-blockdev` nodes, disk secrets, hot-plugged disks and
//!   cdrom media ([`hotplug_disk`], [`media_nodes`], [`disk_alias`], [`DiskNodes`]).
//! - `net.rs`: network interfaces ([`interface_device`] for hot-plug).
//! - `chardev.rs`: serials, consoles and channels ([`channel_device`] for hot-plug).
//! - `input.rs`: input devices ([`input_device`] for hot-plug).
//! - `graphics.rs`: graphics (VNC) and video.
//! - `misc.rs`: memory balloon and RNG devices.
//! - `hostdev.rs`: host devices (`<hostdev>`: VFIO PCI functions, mediated devices, host
//!   USB devices by descriptor) and what the launcher must provide for them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use vireo_xml::Domain;

use crate::caps::QemuCaps;
use crate::pci::{machine_family, Family};

mod chardev;
mod controllers;
mod disks;
mod graphics;
mod hostdev;
mod input;
mod machine;
mod memory;
mod misc;
mod net;
mod platform;
mod slots;
mod util;

pub use chardev::channel_device;
pub use controllers::{controller_id, hotplug_controller, live_alias};
pub use disks::{
    disk_alias, hotplug_disk, hotplug_secret_id, initial_secret_ids, luks_secret, media_nodes,
    node_object, scsi_controller_of, secret_object, DiskNodes,
};
pub use hostdev::{hostdev_alias, hostdev_device, usb_host_devices, vfio_memlock_kib, USB_FDSET};
pub use input::input_device;
pub use machine::iothread_object;
pub use memory::{hotplug_memory, memory_device, memory_prefix};
pub use net::interface_device;

use slots::PciBus;
use util::{esc, json_obj, on_off, Opts};

/// What the launcher provides beyond the definition.
#[derive(Debug, Clone)]
pub struct LaunchConfig {
    /// fd number (already open in the child, inheritable) of a LISTENING unix socket for
    /// the QMP monitor: emitted as
    /// `-chardev socket,id=charmonitor,fd=N,server=on,wait=off -mon chardev=charmonitor,id=monitor,mode=control`.
    pub monitor_fd: i32,
    /// Directory for per-VM runtime files: sockets of unix character devices that have no
    /// path of their own (`<serial type='unix'>`, a guest-agent `<channel>`), a VNC socket.
    pub run_dir: PathBuf,
    /// The passphrases of encrypted disks, by secret UUID: the fd (inherited by QEMU, a
    /// pipe holding the value) QEMU reads each from (`-object secret,file=/dev/fd/N`).
    /// `None` when only checking a definition.
    pub secret_fds: Option<BTreeMap<String, i32>>,
    /// The taps of the `<interface type='network'>`s, in interface order: the fd QEMU
    /// inherits for each (`-netdev tap,fd=N`). `None` when only checking a definition.
    pub tap_fds: Option<Vec<i32>>,
    /// The host USB devices of the `<hostdev type='usb'>`s, in the order of
    /// [`usb_host_devices`]: the fd QEMU inherits for each, open read-write on the
    /// device's node (`/dev/bus/usb/BBB/DDD`), put in fd set [`USB_FDSET`]` + K` by
    /// `-add-fd` for `usb-host,hostdevice=/dev/fdset/N`. `None` when only checking a
    /// definition.
    pub usb_host_fds: Option<Vec<i32>>,
    /// QEMU's own seccomp filter (`-sandbox on,…`): qemu.conf's `seccomp_sandbox`.
    pub sandbox: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CmdlineError {
    #[error("unsupported configuration: {0}")]
    Unsupported(String),
}

type Result<T> = std::result::Result<T, CmdlineError>;

fn unsupported<T>(msg: impl Into<String>) -> Result<T> {
    Err(CmdlineError::Unsupported(msg.into()))
}

/// Rejects what we cannot honour with a clear message (call at define AND at start).
///
/// This is [`build`] with a placeholder [`LaunchConfig`]: the configuration only supplies
/// the monitor fd and where default socket paths go, so the answer is the same at start.
pub fn check(def: &Domain, caps: &QemuCaps) -> Result<()> {
    let cfg = LaunchConfig {
        monitor_fd: 3,
        run_dir: PathBuf::from("/run/vireo/check"),
        secret_fds: None,
        tap_fds: None,
        usb_host_fds: None,
        sandbox: true,
    };
    build(def, caps, &cfg).map(|_| ())
}

/// The arguments after the emulator path.
pub fn build(def: &Domain, caps: &QemuCaps, cfg: &LaunchConfig) -> Result<Vec<String>> {
    // The driver assigned the PCI places at define; a definition from elsewhere (an
    // older Vireo, a test) gets them the same way here.
    let mut full = def.clone();
    if let Some(family) = family_of(def, caps) {
        crate::pci::assign(&mut full, family).map_err(CmdlineError::Unsupported)?;
    }
    let mut b = Builder::new(&full, caps, cfg)?;
    b.run()?;
    Ok(b.args)
}

/// Oldest QEMU whose syntax this module was checked against (`-machine ...,hpet=off`,
/// `server=on`, JSON `-blockdev` all predate it; it is what Debian 12 ships).
const MIN_QEMU_VERSION: u64 = 7_002_000;

/// Where `<vnc autoport>` lets QEMU look for a free display: 5900 to 6000. The shim learns
/// the port QEMU chose with `query-vnc`.
const VNC_AUTO_LAST_DISPLAY: u32 = 100;

/// Longest path a unix socket address can hold (`sun_path` minus the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

// ---------------------------------------------------------------------------
// Machine family
// ---------------------------------------------------------------------------

/// The chipset family of a definition's machine type (by its name or the canonical name
/// the emulator gives it); `None` for a machine Vireo does not run.
pub fn family_of(def: &Domain, caps: &QemuCaps) -> Option<Family> {
    let machine = def.os.os_type.machine.as_deref().unwrap_or("pc");
    machine_family(machine).or_else(|| {
        caps.machines
            .iter()
            .find(|m| m.name == machine)
            .and_then(|m| m.canonical.as_deref())
            .and_then(machine_family)
    })
}

/// Whether Vireo runs machines of this type (the pc and q35 families): only those are
/// offered in the capabilities, so that tools pick one of them.
pub fn supported_machine(m: &crate::caps::Machine) -> bool {
    machine_family(&m.name)
        .or_else(|| m.canonical.as_deref().and_then(machine_family))
        .is_some()
}

// ---------------------------------------------------------------------------
// The builder
// ---------------------------------------------------------------------------

struct Builder<'a> {
    def: &'a Domain,
    cfg: &'a LaunchConfig,
    machine: String,
    max_cpus: u32,
    family: Family,
    kvm: bool,
    pci: PciBus,
    /// Video device address, taken before anything else (slot 2 on pc, 1 on q35).
    video_addr: Option<String>,
    /// bootindex per disk and per interface (by position).
    disk_boot: Vec<Option<u32>>,
    net_boot: Vec<Option<u32>>,
    /// Ports taken on the virtio-serial buses: (controller index, port).
    vserial_ports: BTreeSet<(u32, u32)>,
    /// Secret objects made so far, by secret UUID: each pipe can be read once, so disks
    /// that share a passphrase share its object.
    secret_objects: BTreeMap<String, String>,
    args: Vec<String>,
}

impl<'a> Builder<'a> {
    fn new(def: &'a Domain, caps: &QemuCaps, cfg: &'a LaunchConfig) -> Result<Builder<'a>> {
        if caps.version != 0 && caps.version < MIN_QEMU_VERSION {
            return unsupported(format!(
                "QEMU {}.{}.{} is too old: at least 7.2.0 is needed",
                caps.version / 1_000_000,
                caps.version / 1_000 % 1_000,
                caps.version % 1_000
            ));
        }
        let kvm = match def.dom_type.as_str() {
            "kvm" => {
                if !caps.kvm {
                    return unsupported("KVM is not available on this host");
                }
                true
            }
            "qemu" => false,
            other => {
                return unsupported(format!(
                "domain type '{other}' is not supported by the QEMU driver (use 'kvm' or 'qemu')"
            ))
            }
        };
        if def.os.os_type.name != "hvm" {
            return unsupported(format!(
                "OS type '{}' is not supported (only 'hvm')",
                def.os.os_type.name
            ));
        }
        if *def.os.os_type.arch != *"x86_64" {
            return unsupported(format!(
                "architecture '{}' is not supported (only x86_64)",
                &*def.os.os_type.arch
            ));
        }
        // The driver always fills the machine; "pc" is its default too.
        let machine = def
            .os
            .os_type
            .machine
            .clone()
            .unwrap_or_else(|| "pc".to_string());
        let Some(entry) = caps
            .machines
            .iter()
            .find(|m| m.name == machine || m.canonical.as_deref() == Some(machine.as_str()))
        else {
            return unsupported(format!(
                "machine type '{machine}' is not offered by {}",
                caps.emulator.display()
            ));
        };
        let family = machine_family(&machine)
            .or_else(|| entry.canonical.as_deref().and_then(machine_family))
            .map_or_else(
                || {
                    unsupported(format!(
                        "machine type '{machine}' is not supported (only the pc and q35 families)"
                    ))
                },
                Ok,
            )?;
        Ok(Builder {
            def,
            cfg,
            machine,
            max_cpus: entry.max_cpus,
            family,
            kvm,
            pci: PciBus::new(family),
            video_addr: None,
            disk_boot: vec![None; def.devices.disks.len()],
            net_boot: vec![None; def.devices.interfaces.len()],
            vserial_ports: BTreeSet::new(),
            secret_objects: BTreeMap::new(),
            args: Vec::new(),
        })
    }

    fn arg(&mut self, a: impl Into<String>) {
        self.args.push(a.into());
    }

    fn arg2(&mut self, a: &str, b: impl Into<String>) {
        self.args.push(a.to_string());
        self.args.push(b.into());
    }

    fn run(&mut self) -> Result<()> {
        let def = self.def;
        let uuid = def.uuid.map_or_else(
            || unsupported("the domain has no UUID (the driver assigns one at define)"),
            |u| Ok(vireo_xml::format_uuid(&u)),
        )?;
        // title, description, metadata and <emulator> (the launcher runs
        // caps.emulator) do not change the guest and are not read here.

        self.check_memory_and_placement()?;
        let mut mopts = self.features()?;
        let cpu = self.cpu()?;
        let smp = self.smp()?;
        let (rtc, pit_policy) = self.clock(&mut mopts)?;
        let no_reboot = self.lifecycle()?;
        let boot = self.boot()?;
        let smbios = self.smbios()?;
        self.reserve_pci()?;

        self.arg2(
            "-name",
            format!("guest={},debug-threads=on", esc(&def.name)),
        );
        self.arg("-S");
        let flash = self.firmware()?;
        let ram = self.memory_backend()?;
        let mut machine = Opts::new(&esc(&self.machine))
            .set("usb", "off")
            .set("dump-guest-core", "off");
        for (k, v) in &flash {
            if *k == "smm" && mopts.smm == Some(false) {
                return unsupported(
                    "secure boot needs SMM, which <features><smm state='off'/> turns off",
                );
            }
            if *k != "smm" {
                machine = machine.set(k, v);
            }
        }
        if flash.iter().any(|(k, _)| *k == "smm") {
            mopts.smm = Some(true);
        }
        if let Some(id) = &ram {
            machine = machine.set("memory-backend", id);
        }
        if !mopts.acpi {
            machine = machine.set("acpi", "off");
        }
        if mopts.hpet_off {
            // A machine property in QEMU 7.2 (checked against the binary); `-no-hpet` is
            // deprecated since 8.0 and gone in 9.0.
            machine = machine.set("hpet", "off");
        }
        machine = machine
            .set_opt("smm", mopts.smm.map(on_off))
            .set_opt("vmport", mopts.vmport.map(on_off));
        if mopts.i8042_off {
            machine = machine.set("i8042", "off");
        }
        self.arg2("-machine", machine.done());
        self.arg2("-accel", if self.kvm { "kvm" } else { "tcg" });
        if let Some(cpu) = cpu {
            self.arg2("-cpu", cpu);
        }
        let m = self.memory_size()?;
        self.arg2("-m", m);
        if def.memory_backing.as_ref().is_some_and(|m| m.locked) {
            self.arg2("-overcommit", "mem-lock=on");
        }
        self.arg2("-smp", smp);
        self.numa()?;
        for t in &def.iothreads.threads {
            self.arg2("-object", json_obj(&iothread_object(t)));
        }
        self.arg2("-uuid", uuid);
        for t in smbios {
            self.arg2("-smbios", t);
        }
        if def.devices.graphics.is_empty() {
            self.arg2("-display", "none");
        }
        self.arg("-no-user-config");
        self.arg("-nodefaults");
        self.arg2(
            "-chardev",
            format!(
                "socket,id=charmonitor,fd={},server=on,wait=off",
                self.cfg.monitor_fd
            ),
        );
        self.arg2("-mon", "chardev=charmonitor,id=monitor,mode=control");
        self.arg2("-rtc", rtc);
        if let Some(p) = pit_policy {
            self.arg2("-global", format!("kvm-pit.lost_tick_policy={p}"));
        }
        self.arg("-no-shutdown");
        if no_reboot {
            self.arg("-no-reboot");
        }
        self.power_management();
        self.arg2("-boot", boot);
        if let Some(k) = &def.os.kernel {
            // -kernel, -initrd and -append take their value whole (no option parsing).
            self.arg2("-kernel", k.clone());
        }
        if let Some(i) = &def.os.initrd {
            self.arg2("-initrd", i.clone());
        }
        if let Some(c) = &def.os.cmdline {
            self.arg2("-append", c.clone());
        }

        let inputs = self.plan_inputs()?;
        self.iommu()?;
        self.controllers(inputs.needs_usb || platform::needs_usb(def) || hostdev::needs_usb(def))?;
        self.disks()?;
        self.filesystems()?;
        self.interfaces()?;
        self.chardevs()?;
        self.emit_inputs(inputs)?;
        self.tpms()?;
        self.graphics()?;
        self.sound()?;
        self.video()?;
        self.hubs()?;
        self.redirdevs()?;
        self.smartcards()?;
        self.watchdogs()?;
        self.hostdevs()?;
        self.memballoon()?;
        self.rngs()?;
        self.panics()?;
        self.shmems()?;
        self.memory_devices()?;
        self.vsock()?;
        if mopts.vmcoreinfo {
            self.arg2("-device", "vmcoreinfo");
        }
        // QEMU's own seccomp filter, as libvirt's default (seccomp_sandbox = 1) asks for
        // it: no obsolete system calls, no setuid, no new processes, no changes to its
        // own scheduling (the shim pins QEMU's threads from outside).
        if self.cfg.sandbox {
            self.arg2(
                "-sandbox",
                "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
            );
        }
        self.arg2("-msg", "timestamp=on");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_families() {
        assert_eq!(machine_family("pc"), Some(Family::Pc));
        assert_eq!(machine_family("pc-i440fx-7.2"), Some(Family::Pc));
        assert_eq!(machine_family("pc-1.3"), Some(Family::Pc));
        assert_eq!(machine_family("q35"), Some(Family::Q35));
        assert_eq!(machine_family("pc-q35-7.2"), Some(Family::Q35));
        assert_eq!(machine_family("microvm"), None);
        assert_eq!(machine_family("isapc"), None);
    }
}
