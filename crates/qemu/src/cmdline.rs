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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use vireo_storagefile::Layer;
use vireo_xml::{
    Address, AddressType, BootDev, Chardev, ChardevType, ClockOffset, ControllerType, CpuCheck,
    CpuFeaturePolicy, CpuMatch, CpuMode, DiskBus, DiskCache, DiskDevice, DiskIo, DiskType, Domain,
    Feature, GraphicsType, InputBus, InputType, InterfaceType, LifecycleAction, LinkState,
    ListenType, MemballoonModel, RngBackendModel, RngModel, TickPolicy, TimerName, VcpuPlacement,
    VideoModelType,
};

use crate::caps::QemuCaps;
use crate::pci::{machine_family, Family};

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
// Small helpers
// ---------------------------------------------------------------------------

/// QEMU's `key=value,key=value` syntax takes a literal comma inside a value as `,,`.
fn esc(s: &str) -> String {
    s.replace(',', ",,")
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// Builder for one `key=value,...` option string; every value is escaped.
struct Opts(String);

impl Opts {
    /// `head` is written as is: a driver or backend name chosen by this module.
    fn new(head: &str) -> Opts {
        Opts(head.to_string())
    }

    fn set(mut self, key: &str, value: impl Display) -> Opts {
        if !self.0.is_empty() {
            self.0.push(',');
        }
        self.0.push_str(key);
        self.0.push('=');
        self.0.push_str(&esc(&value.to_string()));
        self
    }

    fn set_opt(self, key: &str, value: Option<impl Display>) -> Opts {
        match value {
            Some(v) => self.set(key, v),
            None => self,
        }
    }

    /// Appends options that were formatted (and escaped) already.
    fn raw(mut self, piece: &str) -> Opts {
        if !piece.is_empty() {
            if !self.0.is_empty() {
                self.0.push(',');
            }
            self.0.push_str(piece);
        }
        self
    }

    fn done(self) -> String {
        self.0
    }
}

/// A JSON object with its keys in the given order (serde_json's map would sort them).
fn json_obj(fields: &[(&str, Value)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{}", Value::from(*k), v))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// Names accepted where a value is pasted into an option or a file name: CPU models and
/// features, keymaps, channel names used as socket file names.
fn is_simple_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn check_socket_path(path: &Path, what: &str) -> Result<()> {
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return unsupported(format!(
            "{what}: socket path '{}' is longer than {MAX_SOCKET_PATH} bytes",
            path.display()
        ));
    }
    Ok(())
}

/// `state='on|off'` of a feature element that takes nothing else; absent means on.
fn feature_state(f: &Feature) -> Result<bool> {
    if !f.children.is_empty() || f.attrs.iter().any(|(k, _)| k != "state") {
        return unsupported(format!(
            "<features><{}> with settings other than 'state' is not supported",
            f.name
        ));
    }
    match f.attr("state") {
        None | Some("on") => Ok(true),
        Some("off") => Ok(false),
        Some(other) => unsupported(format!("<features><{}>: invalid state '{other}'", f.name)),
    }
}

/// Index of a disk target name such as `vda`, `sdb`, `hdc`, `vdaa` (0, 1, 2, 26) and its
/// prefix.
fn disk_name_index(dev: &str) -> Option<(&'static str, u32)> {
    let prefix = ["xvd", "ubd", "vd", "sd", "hd", "fd"]
        .into_iter()
        .find(|p| dev.starts_with(p))?;
    let letters = dev.get(prefix.len()..)?;
    if letters.is_empty() || letters.len() > 4 || !letters.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let mut idx: u32 = 0;
    for b in letters.bytes() {
        idx = idx * 26 + u32::from(b - b'a') + 1;
    }
    Some((prefix, idx - 1))
}

// ---------------------------------------------------------------------------
// Machine family and PCI slots
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

/// Slot bookkeeping for the command line. [`crate::pci::assign`] has given every device
/// of the definition its place (and checked the places); this only writes them, and finds
/// slots on the root bus for what the command line adds on its own (a USB controller for
/// USB inputs, an AHCI controller for SATA disks on pc).
struct PciBus {
    root: &'static str,
    used: BTreeSet<(u32, u32, u32)>,
}

struct PciAddr {
    bus: u32,
    slot: u32,
    function: u32,
    multifunction: bool,
}

impl PciBus {
    fn new(family: Family) -> PciBus {
        let mut used = BTreeSet::new();
        // Slot 0: the host bridge.
        for f in 0..8 {
            used.insert((0, 0, f));
        }
        let root = match family {
            Family::Pc => {
                // PIIX3: ISA bridge, IDE, ACPI/PM. Function 2 is the USB controller's place.
                used.extend([(0, 1, 0), (0, 1, 1), (0, 1, 3)]);
                "pci.0"
            }
            Family::Q35 => {
                // ICH9: LPC, AHCI, SMBus.
                used.extend([(0, 0x1f, 0), (0, 0x1f, 2), (0, 0x1f, 3)]);
                "pcie.0"
            }
        };
        PciBus { root, used }
    }

    fn parse(addr: &Address, what: &str) -> Result<PciAddr> {
        match crate::pci::parse_address(addr, what) {
            Ok(Some((at, multifunction))) => Ok(PciAddr {
                bus: at.bus,
                slot: at.slot,
                function: at.function,
                multifunction,
            }),
            Ok(None) => unsupported(format!(
                "{what}: address type '{}' is not valid for a PCI device",
                addr.addr_type
            )),
            Err(e) => unsupported(e),
        }
    }

    /// Claims an address written in the definition (before any automatic placement).
    fn reserve(&mut self, addr: &Address, what: &str) -> Result<()> {
        if addr.addr_type != AddressType::Pci {
            return Ok(());
        }
        let a = Self::parse(addr, what)?;
        if !self.used.insert((a.bus, a.slot, a.function)) {
            return unsupported(format!(
                "{what}: PCI address {:#04x}:{:#04x}.{:x} is already in use",
                a.bus, a.slot, a.function
            ));
        }
        Ok(())
    }

    /// `bus=…,addr=…[,multifunction=on]`: bus 0 is the machine's root bus, bus N the
    /// controller with index N (QEMU id `pci.N`).
    fn format_at(&self, bus: u32, slot: u32, function: u32, multifunction: bool) -> String {
        let mut s = if bus == 0 {
            format!("bus={},addr={slot:#x}", self.root)
        } else {
            format!("bus=pci.{bus},addr={slot:#x}")
        };
        if function != 0 {
            s.push_str(&format!(".{function:#x}"));
        }
        if multifunction {
            s.push_str(",multifunction=on");
        }
        s
    }

    fn format(&self, slot: u32, function: u32, multifunction: bool) -> String {
        self.format_at(0, slot, function, multifunction)
    }

    /// The first slot of the root bus with no function in use (its function 0 is then
    /// taken).
    fn free_slot(&mut self, what: &str) -> Result<u32> {
        for slot in 1..32 {
            if !self.used.iter().any(|&(b, s, _)| b == 0 && s == slot) {
                self.used.insert((0, slot, 0));
                return Ok(slot);
            }
        }
        unsupported(format!("{what}: no free PCI slot left on the root bus"))
    }

    /// The first slot with no function in use.
    fn next_free(&mut self, what: &str) -> Result<String> {
        let slot = self.free_slot(what)?;
        Ok(self.format(slot, 0, false))
    }

    /// `bus=...,addr=...` for a PCI device: its own address (reserved already) or the next
    /// free slot.
    fn place(&mut self, addr: Option<&Address>, what: &str) -> Result<String> {
        match addr {
            None => self.next_free(what),
            Some(a) => {
                let p = Self::parse(a, what)?;
                Ok(self.format_at(p.bus, p.slot, p.function, p.multifunction))
            }
        }
    }

    /// A fixed default such as PIIX3's USB function, when free.
    fn place_at(&mut self, slot: u32, function: u32, what: &str) -> Result<String> {
        if self.used.insert((0, slot, function)) {
            Ok(self.format(slot, function, false))
        } else {
            self.next_free(what)
        }
    }
}

// ---------------------------------------------------------------------------
// The builder
// ---------------------------------------------------------------------------

/// Settings that end up as `-machine` options.
#[derive(Default)]
struct MachineOpts {
    acpi: bool,
    hpet_off: bool,
    smm: Option<bool>,
    vmport: Option<bool>,
    i8042_off: bool,
    vmcoreinfo: bool,
}

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
    /// Ports taken on `virtio-serial0.0`.
    vserial_ports: BTreeSet<u32>,
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
        self.reserve_pci()?;

        self.arg2(
            "-name",
            format!("guest={},debug-threads=on", esc(&def.name)),
        );
        self.arg("-S");
        let mut machine = Opts::new(&esc(&self.machine))
            .set("usb", "off")
            .set("dump-guest-core", "off");
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
        self.arg2("-m", format!("size={}k", def.memory_kib));
        self.arg2("-smp", smp);
        self.arg2("-uuid", uuid);
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
        self.controllers(inputs.needs_usb)?;
        self.disks()?;
        self.interfaces()?;
        self.chardevs()?;
        self.emit_inputs(inputs)?;
        self.graphics()?;
        self.video()?;
        self.memballoon()?;
        self.rngs()?;
        if mopts.vmcoreinfo {
            self.arg2("-device", "vmcoreinfo");
        }
        self.arg2("-msg", "timestamp=on");
        Ok(())
    }

    /// `<pm>`: S3 and S4 are properties of the chipset's power-management device.
    fn power_management(&mut self) {
        let Some(pm) = &self.def.pm else { return };
        let dev = match self.family {
            Family::Pc => "PIIX4_PM",
            Family::Q35 => "ICH9-LPC",
        };
        for (state, on) in [("s3", pm.suspend_to_mem), ("s4", pm.suspend_to_disk)] {
            if let Some(on) = on {
                let off = u8::from(on == vireo_xml::YesNo::No);
                self.arg2("-global", format!("{dev}.disable_{state}={off}"));
            }
        }
    }

    // -----------------------------------------------------------------------
    // Memory, CPUs
    // -----------------------------------------------------------------------

    fn check_memory_and_placement(&self) -> Result<()> {
        let def = self.def;
        if def.current_memory_kib < def.memory_kib {
            return unsupported(format!(
                "<currentMemory> ({} KiB) smaller than <memory> ({} KiB) is not supported yet \
                 (it needs the balloon inflated at start)",
                def.current_memory_kib, def.memory_kib
            ));
        }
        if def.vcpu_placement == VcpuPlacement::Auto {
            return unsupported("<vcpu placement='auto'> is not supported (needs numad)");
        }
        if def.vcpu_cpuset.is_some() {
            return unsupported("<vcpu cpuset=...> (vCPU pinning) is not supported yet");
        }
        if def.vcpus > self.max_cpus {
            return unsupported(format!(
                "{} vCPUs exceed the maximum of {} for machine type '{}'",
                def.vcpus, self.max_cpus, self.machine
            ));
        }
        Ok(())
    }

    fn smp(&self) -> Result<String> {
        let def = self.def;
        let max = def.vcpus;
        let (sockets, dies, cores, threads) =
            match def.cpu.as_ref().and_then(|c| c.topology.as_ref()) {
                Some(t) => (t.sockets, t.dies.unwrap_or(1), t.cores, t.threads),
                None => (max, 1, 1, 1),
            };
        let product = u64::from(sockets) * u64::from(dies) * u64::from(cores) * u64::from(threads);
        if product != u64::from(max) {
            return unsupported(format!(
                "<cpu><topology>: sockets*dies*cores*threads = {product} differs from the \
                 maximum vCPU count {max}"
            ));
        }
        let mut s = match def.vcpu_current {
            Some(cur) if cur < max => format!("{cur},maxcpus={max}"),
            _ => max.to_string(),
        };
        s.push_str(&format!(
            ",sockets={sockets},dies={dies},cores={cores},threads={threads}"
        ));
        Ok(s)
    }

    fn cpu(&self) -> Result<Option<String>> {
        let Some(cpu) = &self.def.cpu else {
            // QEMU's default model (qemu64).
            return Ok(None);
        };
        if cpu.vendor.is_some() {
            return unsupported("<cpu><vendor> is not supported");
        }
        if cpu.model.as_ref().is_some_and(|m| m.vendor_id.is_some()) {
            return unsupported("<cpu><model vendor_id=...> is not supported");
        }
        // <model fallback> is a libvirt-side choice of a replacement model: nothing to do.
        let model = cpu
            .model
            .as_ref()
            .map(|m| m.name.trim())
            .filter(|n| !n.is_empty());
        let mode = cpu.mode.unwrap_or(CpuMode::Custom);
        let base = match mode {
            CpuMode::HostPassthrough => {
                if !self.kvm {
                    return unsupported(
                        "<cpu mode='host-passthrough'> needs KVM (domain type 'kvm'); use \
                         mode='maximum' with type 'qemu'",
                    );
                }
                "host".to_string()
            }
            // libvirt expands host-model to a named model plus features. We give the
            // guest the host CPU under KVM and the richest emulated CPU under TCG: the
            // guest sees at least what host-model would give, but the result is not
            // migratable to a different host.
            CpuMode::HostModel => if self.kvm { "host" } else { "max" }.to_string(),
            CpuMode::Maximum => "max".to_string(),
            CpuMode::Custom => match model {
                Some(m) if is_simple_name(m) => m.to_string(),
                Some(m) => return unsupported(format!("<cpu><model>: invalid model name '{m}'")),
                None => {
                    if !cpu.features.is_empty() {
                        return unsupported("<cpu><feature> needs a <model> (or a mode)");
                    }
                    if cpu.migratable.is_some() {
                        return unsupported("<cpu migratable=...> needs a host or maximum mode");
                    }
                    // Only a topology, or nothing: QEMU's default model.
                    return Ok(None);
                }
            },
        };
        if mode != CpuMode::Custom && model.is_some() {
            return unsupported(format!(
                "<cpu mode='{mode}'> with a <model> is not supported"
            ));
        }
        let mut o = Opts::new(&base);
        if let Some(m) = cpu.migratable {
            if mode == CpuMode::Custom {
                return unsupported("<cpu migratable=...> needs a host or maximum mode");
            }
            o = o.set("migratable", on_off(m));
        }
        for f in &cpu.features {
            if !is_simple_name(&f.name) {
                return unsupported(format!("<cpu><feature>: invalid name '{}'", f.name));
            }
            let v = match f.policy {
                CpuFeaturePolicy::Force | CpuFeaturePolicy::Require => "on",
                CpuFeaturePolicy::Disable | CpuFeaturePolicy::Forbid => "off",
                CpuFeaturePolicy::Optional => {
                    return unsupported(format!(
                        "<cpu><feature policy='optional' name='{}'> is not supported",
                        f.name
                    ))
                }
            };
            o = o.set(&f.name, v);
        }
        // check='full' and match='strict' both mean: do not run with a CPU that lacks
        // something asked for, which is QEMU's `enforce`. check='none'/'partial' and the
        // other match modes ask libvirt for no more than QEMU does by default.
        if cpu.check == Some(CpuCheck::Full) || cpu.match_mode == Some(CpuMatch::Strict) {
            o = o.set("enforce", "on");
        }
        Ok(Some(o.done()))
    }

    // -----------------------------------------------------------------------
    // Features, clock, lifecycle, boot
    // -----------------------------------------------------------------------

    fn features(&self) -> Result<MachineOpts> {
        let mut m = MachineOpts::default();
        for f in &self.def.features {
            let name = f.name.as_str();
            match name {
                "acpi" => {
                    if !f.attrs.is_empty() || !f.children.is_empty() {
                        return unsupported("<features><acpi> takes no settings");
                    }
                    m.acpi = true;
                }
                "apic" => {
                    if f.attr("eoi").is_some() {
                        return unsupported("<features><apic eoi=...> is not supported");
                    }
                    if !f.attrs.is_empty() || !f.children.is_empty() {
                        return unsupported("<features><apic> takes no settings");
                    }
                    // The APIC is always present on x86 machines.
                }
                "pae" => {
                    // Always available to an x86_64 guest.
                    if !f.attrs.is_empty() || !f.children.is_empty() {
                        return unsupported("<features><pae> takes no settings");
                    }
                }
                "hap" => {
                    // KVM always uses hardware-assisted paging when the host has it.
                    if !feature_state(f)? {
                        return unsupported("<features><hap state='off'> is not supported");
                    }
                }
                "smm" => m.smm = Some(feature_state(f)?),
                "vmport" => m.vmport = Some(feature_state(f)?),
                "vmcoreinfo" => m.vmcoreinfo = feature_state(f)?,
                "ps2" => m.i8042_off = !feature_state(f)?,
                "hyperv" => {
                    return unsupported(
                        "<features><hyperv> (Hyper-V enlightenments) is not supported yet",
                    )
                }
                "kvm" => {
                    return unsupported("<features><kvm> (hidden state, ...) is not supported yet")
                }
                "pvspinlock" | "pmu" | "ioapic" | "msrs" | "tcg" | "async-teardown" => {
                    return unsupported(format!("<features><{name}> is not supported yet"))
                }
                "gic" | "hpt" | "htm" | "nested-hv" | "ccf-assist" | "cfpc" | "sbbc" | "ibs"
                | "ras" => {
                    return unsupported(format!(
                        "<features><{name}> does not apply to x86 machines"
                    ))
                }
                _ => {
                    return unsupported(format!(
                        "<features><{name}> does not apply to QEMU domains"
                    ))
                }
            }
        }
        Ok(m)
    }

    /// `-rtc` value, and the kvm-pit lost-tick policy.
    fn clock(&self, m: &mut MachineOpts) -> Result<(String, Option<&'static str>)> {
        let Some(clock) = &self.def.clock else {
            return Ok(("base=utc".to_string(), None));
        };
        let base = match clock.offset {
            ClockOffset::Utc => "utc",
            ClockOffset::Localtime => "localtime",
            other => return unsupported(format!("<clock offset='{other}'> is not supported yet")),
        };
        if clock.timezone.is_some()
            || clock.adjustment.is_some()
            || clock.basis.is_some()
            || clock.start.is_some()
        {
            return unsupported(
                "<clock> timezone, adjustment, basis and start are not supported yet",
            );
        }
        let mut rtc = Opts::new("").set("base", base);
        let mut pit = None;
        for t in &clock.timers {
            let what = format!("<timer name='{}'>", t.name);
            if t.frequency.is_some() || t.mode.is_some() {
                return unsupported(format!("{what}: frequency and mode are not supported"));
            }
            if t.track.is_some() && t.name != TimerName::Rtc {
                return unsupported(format!("{what}: track is only valid for the rtc timer"));
            }
            match t.name {
                TimerName::Rtc => {
                    if t.present == Some(false) {
                        return unsupported(format!("{what} present='no' is not supported"));
                    }
                    match t.tickpolicy {
                        // Late ticks are delivered late: QEMU's behaviour without driftfix.
                        None | Some(TickPolicy::Delay) => {}
                        Some(TickPolicy::Catchup) => rtc = rtc.set("driftfix", "slew"),
                        Some(p) => {
                            return unsupported(format!("{what} tickpolicy='{p}' is not supported"))
                        }
                    }
                    match t.track.as_deref() {
                        None => {}
                        Some("guest") => rtc = rtc.set("clock", "vm"),
                        Some("wall") => rtc = rtc.set("clock", "host"),
                        Some("realtime") => rtc = rtc.set("clock", "rt"),
                        Some(other) => {
                            return unsupported(format!("{what} track='{other}' is not supported"))
                        }
                    }
                }
                TimerName::Pit => {
                    if t.present == Some(false) {
                        return unsupported(format!("{what} present='no' is not supported"));
                    }
                    let policy = match t.tickpolicy {
                        None => None,
                        Some(TickPolicy::Delay) => Some("delay"),
                        Some(TickPolicy::Discard) => Some("discard"),
                        Some(p) => {
                            return unsupported(format!("{what} tickpolicy='{p}' is not supported"))
                        }
                    };
                    // Without KVM the PIT is QEMU's own, which always delays lost ticks:
                    // 'delay' needs nothing, another policy cannot be had.
                    pit = match policy {
                        Some("delay") if !self.kvm => None,
                        Some(_) if !self.kvm => {
                            return unsupported(format!(
                                "{what} with tickpolicy other than 'delay' needs KVM (the \
                                 in-kernel PIT)"
                            ))
                        }
                        p => p,
                    };
                }
                TimerName::Hpet => {
                    if t.tickpolicy.is_some() {
                        return unsupported(format!("{what}: tickpolicy is not supported"));
                    }
                    if t.present == Some(false) {
                        m.hpet_off = true;
                    }
                }
                TimerName::Kvmclock => {
                    if t.tickpolicy.is_some() || t.present == Some(false) {
                        return unsupported(format!(
                            "{what}: only present='yes' (the default) is supported"
                        ));
                    }
                }
                _ => return unsupported(format!("{what} is not supported")),
            }
        }
        Ok((rtc.done(), pit))
    }

    /// Whether `-no-reboot` is needed.
    fn lifecycle(&self) -> Result<bool> {
        let def = self.def;
        // The shim applies on_poweroff when QEMU reports the (guest) SHUTDOWN.
        match def.on_poweroff {
            LifecycleAction::Destroy | LifecycleAction::Restart | LifecycleAction::Preserve => {}
            other => {
                return unsupported(format!(
                    "<on_poweroff>{other}</on_poweroff> is not supported"
                ))
            }
        }
        let no_reboot = match def.on_reboot {
            LifecycleAction::Restart => false,
            LifecycleAction::Destroy => true,
            other => {
                return unsupported(format!("<on_reboot>{other}</on_reboot> is not supported"))
            }
        };
        // There is no pvpanic device, so QEMU never reports a guest crash and on_crash
        // never triggers; destroy, restart and preserve are accepted as they are.
        match def.on_crash {
            LifecycleAction::Destroy | LifecycleAction::Restart | LifecycleAction::Preserve => {}
            other => return unsupported(format!("<on_crash>{other}</on_crash> is not supported")),
        }
        Ok(no_reboot)
    }

    /// `-boot` value; fills the bootindex of disks and interfaces.
    fn boot(&mut self) -> Result<String> {
        let def = self.def;
        let os = &def.os;
        if os.firmware == Some(vireo_xml::OsFirmware::Efi) {
            return unsupported("<os firmware='efi'> (UEFI) is not supported yet");
        }
        if os.loader.is_some() {
            return unsupported("<os><loader> (custom firmware) is not supported yet");
        }
        if os.nvram.is_some() {
            return unsupported("<os><nvram> is not supported yet");
        }
        if os.dtb.is_some() {
            return unsupported("<os><dtb> does not apply to x86 machines");
        }
        if os.kernel.is_none() && (os.initrd.is_some() || os.cmdline.is_some()) {
            return unsupported("<os><initrd> and <cmdline> need a <kernel>");
        }

        let devices = &def.devices;
        let per_device = !devices.boot_orders().is_empty();
        if per_device {
            for (i, d) in devices.disks.iter().enumerate() {
                self.disk_boot[i] = d.boot_order;
            }
            for (i, n) in devices.interfaces.iter().enumerate() {
                self.net_boot[i] = n.boot_order;
            }
        } else {
            // libvirt's default when nothing is said is booting from the first disk.
            let listed = os.boot_devs();
            let order: &[BootDev] = if listed.is_empty() {
                &[BootDev::Hd]
            } else {
                &listed
            };
            for (pos, dev) in order.iter().enumerate() {
                let index = pos as u32 + 1;
                let wanted = match dev {
                    BootDev::Hd => Some(DiskDevice::Disk),
                    BootDev::Cdrom => Some(DiskDevice::Cdrom),
                    BootDev::Network => None,
                    // Floppy disks are refused, so there is never a floppy to mark.
                    BootDev::Fd => continue,
                };
                match wanted {
                    Some(kind) => {
                        if let Some(i) = devices
                            .disks
                            .iter()
                            .enumerate()
                            .position(|(i, d)| d.device == kind && self.disk_boot[i].is_none())
                        {
                            self.disk_boot[i] = Some(index);
                        }
                    }
                    None => {
                        if let Some(slot) = self.net_boot.iter_mut().find(|b| b.is_none()) {
                            *slot = Some(index);
                        }
                    }
                }
            }
        }

        let mut o = Opts::new("");
        if let Some(menu) = &os.bootmenu {
            o = o.set("menu", on_off(menu.enable == vireo_xml::YesNo::Yes));
            if let Some(t) = menu.timeout {
                if t > 65535 {
                    return unsupported(format!(
                        "<bootmenu timeout='{t}'>: at most 65535 milliseconds"
                    ));
                }
                if menu.enable == vireo_xml::YesNo::Yes {
                    o = o.set("splash-time", t);
                }
            }
        }
        Ok(o.set("strict", "on").done())
    }

    // -----------------------------------------------------------------------
    // PCI addresses written in the definition
    // -----------------------------------------------------------------------

    fn reserve_pci(&mut self) -> Result<()> {
        let def = self.def;
        let d = &def.devices;
        let mut explicit: Vec<(String, &Address)> = Vec::new();
        for c in &d.controllers {
            let emitted = match c.ctl_type {
                ControllerType::Usb | ControllerType::VirtioSerial => true,
                ControllerType::Sata => self.family == Family::Pc,
                ControllerType::Pci => c.index.unwrap_or(0) != 0,
                _ => false,
            };
            if emitted {
                if let Some(a) = &c.address {
                    explicit.push((format!("<controller type='{}'>", c.ctl_type), a));
                }
            }
        }
        for disk in &d.disks {
            if let Some(a) = &disk.address {
                explicit.push((format!("<disk> '{}'", disk.target.dev), a));
            }
        }
        for (i, n) in d.interfaces.iter().enumerate() {
            if let Some(a) = &n.address {
                explicit.push((format!("<interface> {i}"), a));
            }
        }
        for v in &d.videos {
            if let Some(a) = &v.address {
                explicit.push(("<video>".to_string(), a));
            }
        }
        if let Some(a) = d.memballoon.as_ref().and_then(|m| m.address.as_ref()) {
            explicit.push(("<memballoon>".to_string(), a));
        }
        for r in &d.rngs {
            if let Some(a) = &r.address {
                explicit.push(("<rng>".to_string(), a));
            }
        }
        for i in &d.inputs {
            if let Some(a) = &i.address {
                explicit.push((format!("<input type='{}'>", i.input_type), a));
            }
        }
        for (what, a) in explicit {
            self.pci.reserve(a, &what)?;
        }
        // libvirt gives the video device the first free slot.
        if let Some(v) = d.videos.first() {
            let none = v
                .model
                .as_ref()
                .is_some_and(|m| m.model_type == VideoModelType::None);
            if v.address.is_none() && !none {
                self.video_addr = Some(self.pci.next_free("<video>")?);
            }
        }
        Ok(())
    }

    // -----------------------------------------------------------------------
    // Controllers
    // -----------------------------------------------------------------------

    fn controllers(&mut self, needs_usb: bool) -> Result<()> {
        let def = self.def;
        let d = &def.devices;
        let mut usb: Option<&vireo_xml::Controller> = None;
        // ICH9's USB 1 companions of an ich9-ehci1 (`<master startport>`), by first port.
        let mut companions: Vec<&vireo_xml::Controller> = Vec::new();
        let mut sata: Option<&vireo_xml::Controller> = None;
        let mut vserial: Option<&vireo_xml::Controller> = None;
        // Buses first, parents before children (a controller's index is above its
        // parent bus's).
        let mut pci: Vec<&vireo_xml::Controller> = d
            .controllers
            .iter()
            .filter(|c| c.ctl_type == ControllerType::Pci)
            .collect();
        pci.sort_by_key(|c| c.index.unwrap_or(0));
        for c in pci {
            self.pci_controller(c)?;
        }
        for c in &d.controllers {
            let what = format!(
                "<controller type='{}' index='{}'>",
                c.ctl_type,
                c.index.unwrap_or(0)
            );
            if c.ctl_type == ControllerType::Pci {
                continue;
            }
            if c.index.unwrap_or(0) != 0 {
                return unsupported(format!("{what}: only index 0 is supported"));
            }
            if !c.driver_attrs.is_empty() {
                return unsupported(format!("{what}: <driver> settings are not supported"));
            }
            if c.model_name.is_some() || !c.target_attrs.is_empty() {
                return unsupported(format!("{what}: <model>/<target> are not supported"));
            }
            if c.ctl_type != ControllerType::VirtioSerial && c.vectors.is_some() {
                return unsupported(format!("{what}: vectors is not supported"));
            }
            if !matches!(
                c.ctl_type,
                ControllerType::VirtioSerial | ControllerType::Usb
            ) && c.ports.is_some()
            {
                return unsupported(format!("{what}: ports is not supported"));
            }
            if c.ctl_type == ControllerType::Usb && c.master_startport.is_some() {
                companions.push(c);
                continue;
            }
            let slot = match c.ctl_type {
                ControllerType::Usb => &mut usb,
                ControllerType::Sata => &mut sata,
                ControllerType::VirtioSerial => &mut vserial,
                ControllerType::Ide => {
                    if self.family == Family::Q35 {
                        return unsupported(
                            "q35 machines have no IDE controller (use a SATA controller)",
                        );
                    }
                    if c.model.is_some() {
                        return unsupported(format!("{what}: model is not supported"));
                    }
                    // PIIX3's IDE function, built in; libvirt writes its fixed address.
                    self.builtin_address(c, 1, 1, &what)?;
                    continue;
                }
                other => {
                    return unsupported(format!("<controller type='{other}'> is not supported yet"))
                }
            };
            if slot.is_some() {
                return unsupported(format!("{what} appears twice"));
            }
            *slot = Some(c);
        }

        // USB: the one asked for, or a default one when a USB device needs it.
        let usb_model = match usb {
            Some(c) => c.model.as_deref(),
            None if needs_usb => None,
            None => Some("none"),
        };
        let usb_model = usb_model.unwrap_or(match self.family {
            Family::Pc => "piix3-uhci",
            Family::Q35 => "qemu-xhci",
        });
        let usb_addr = usb.and_then(|c| c.address.as_ref());
        let usb_ports = usb.and_then(|c| c.ports);
        if !companions.is_empty() && usb_model != "ich9-ehci1" {
            return unsupported(
                "<controller type='usb'> with <master> needs an ich9-ehci1 master controller",
            );
        }
        match usb_model {
            "none" => {
                if needs_usb {
                    return unsupported(
                        "USB input devices need a USB controller, but <controller type='usb' \
                         model='none'>",
                    );
                }
                if usb_addr.is_some() {
                    return unsupported("<controller type='usb' model='none'> takes no address");
                }
            }
            "piix3-uhci" => {
                if usb_ports.is_some() {
                    return unsupported(
                        "<controller type='usb' model='piix3-uhci'>: ports is not supported",
                    );
                }
                let addr = match (usb_addr, self.family) {
                    (None, Family::Pc) => self.pci.place_at(1, 2, "USB controller")?,
                    (a, _) => self.pci.place(a, "USB controller")?,
                };
                let dev = Opts::new("piix3-usb-uhci")
                    .set("id", "usb")
                    .raw(&addr)
                    .done();
                self.arg2("-device", dev);
            }
            "qemu-xhci" | "nec-xhci" => {
                let driver = if usb_model == "qemu-xhci" {
                    "qemu-xhci"
                } else {
                    "nec-usb-xhci"
                };
                if usb_ports.is_some_and(|p| p == 0 || p > 15) {
                    return unsupported("<controller type='usb'>: ports must be 1 to 15");
                }
                let addr = self.pci.place(usb_addr, "USB controller")?;
                let dev = Opts::new(driver)
                    .set_opt("p2", usb_ports)
                    .set_opt("p3", usb_ports)
                    .set("id", "usb")
                    .raw(&addr)
                    .done();
                self.arg2("-device", dev);
            }
            "ich9-ehci1" => self.ich9_usb(usb_addr, &companions)?,
            other => {
                return unsupported(format!(
                    "<controller type='usb' model='{other}'> is not supported (piix3-uhci, \
                     qemu-xhci, nec-xhci, ich9-ehci1 with its ich9-uhci companions, or none)"
                ))
            }
        }

        // SATA: built into q35; an ich9-ahci on pc, when asked for or used by a disk.
        if let Some(c) = sata {
            if c.model.is_some() {
                return unsupported("<controller type='sata'>: model is not supported");
            }
        }
        let sata_disks = d
            .disks
            .iter()
            .any(|disk| disk.target.bus == Some(DiskBus::Sata));
        match self.family {
            Family::Q35 => {
                if let Some(c) = sata {
                    self.builtin_address(c, 0x1f, 2, "<controller type='sata'>")?;
                }
            }
            Family::Pc => {
                if sata.is_some() || sata_disks {
                    let addr = self
                        .pci
                        .place(sata.and_then(|c| c.address.as_ref()), "SATA controller")?;
                    let dev = Opts::new("ich9-ahci").set("id", "sata0").raw(&addr).done();
                    self.arg2("-device", dev);
                }
            }
        }

        // virtio-serial: when asked for, or for channels and virtio consoles.
        let needs_vserial = !d.channels.is_empty()
            || d.consoles.iter().any(|c| {
                c.target.as_ref().and_then(|t| t.target_type.as_deref()) == Some("virtio")
            });
        if let Some(c) = vserial {
            if c.model.is_some() {
                return unsupported("<controller type='virtio-serial'>: model is not supported");
            }
        }
        if vserial.is_some() || needs_vserial {
            let addr = self.pci.place(
                vserial.and_then(|c| c.address.as_ref()),
                "virtio-serial controller",
            )?;
            let dev = Opts::new("virtio-serial-pci")
                .set("id", "virtio-serial0")
                .set_opt("max_ports", vserial.and_then(|c| c.ports))
                .set_opt("vectors", vserial.and_then(|c| c.vectors))
                .raw(&addr)
                .done();
            self.arg2("-device", dev);
        }
        Ok(())
    }

    /// The root bus is part of the machine; root ports and bridges are devices on their
    /// parent bus (whose index is lower), with QEMU id `pci.INDEX`.
    fn pci_controller(&mut self, c: &vireo_xml::Controller) -> Result<()> {
        let index = c.index.unwrap_or(0);
        let model = c.model.as_deref().unwrap_or("");
        let what = format!("<controller type='pci' index='{index}' model='{model}'>");
        let Some(kind) = crate::pci::BusKind::of_model(model) else {
            return unsupported(format!("{what} is not supported"));
        };
        if !c.driver_attrs.is_empty() {
            return unsupported(format!("{what}: <driver> settings are not supported"));
        }
        let Some(device) = kind.qemu_device() else {
            // The root: part of the machine, nothing to set.
            if c.model_name.is_some() || !c.target_attrs.is_empty() || c.address.is_some() {
                return unsupported(format!("{what} takes no settings other than index 0"));
            }
            return Ok(());
        };
        if let Some(n) = &c.model_name {
            if n != device {
                return unsupported(format!(
                    "{what}: <model name='{n}'> is not supported (only '{device}')"
                ));
            }
        }
        let Some(addr) = &c.address else {
            return unsupported(format!("{what} has no PCI address"));
        };
        let at = PciBus::parse(addr, &what)?;
        if at.bus >= index {
            return unsupported(format!(
                "{what}: it must sit on a bus of lower index than its own (bus {:#04x})",
                at.bus
            ));
        }
        let target = |key: &str| -> Result<Option<u64>> {
            match c.target_attrs.iter().find(|(k, _)| k == key) {
                None => Ok(None),
                Some((_, v)) => {
                    let v = v.trim();
                    let n = match v.strip_prefix("0x") {
                        Some(h) => u64::from_str_radix(h, 16).ok(),
                        None => v.parse().ok(),
                    };
                    n.map(Some).map_or_else(
                        || unsupported(format!("{what}: invalid <target {key}='{v}'>")),
                        Ok,
                    )
                }
            }
        };
        let allowed: &[&str] = match kind {
            crate::pci::BusKind::PcieRootPort => &["chassis", "port", "hotplug"],
            crate::pci::BusKind::PciBridge => &["chassisNr", "hotplug"],
            _ => &[],
        };
        if let Some((k, _)) = c
            .target_attrs
            .iter()
            .find(|(k, _)| !allowed.contains(&k.as_str()))
        {
            return unsupported(format!("{what}: <target {k}=…> is not supported"));
        }
        let hotplug = match c.target_attrs.iter().find(|(k, _)| k == "hotplug") {
            None => None,
            Some((_, v)) if v == "on" => Some("on"),
            Some((_, v)) if v == "off" => Some("off"),
            Some((_, v)) => return unsupported(format!("{what}: invalid hotplug '{v}'")),
        };
        let mut dev = Opts::new(device);
        match kind {
            crate::pci::BusKind::PcieRootPort => {
                dev = dev
                    .set_opt("port", target("port")?)
                    .set_opt("chassis", target("chassis")?);
            }
            crate::pci::BusKind::PciBridge => {
                dev = dev.set_opt("chassis_nr", target("chassisNr")?);
            }
            _ => {}
        }
        let dev = dev
            .set("id", format!("pci.{index}"))
            .raw(
                &self
                    .pci
                    .format_at(at.bus, at.slot, at.function, at.multifunction),
            )
            .set_opt(
                match kind {
                    crate::pci::BusKind::PcieRootPort => "hotplug",
                    _ => "shpc",
                },
                hotplug,
            )
            .done();
        self.arg2("-device", dev);
        Ok(())
    }

    /// A built-in controller may carry its fixed address, and nothing else.
    /// The secret object holding an encrypted disk's passphrase (`-object secret`, read
    /// from the pipe the launcher gave QEMU); returns its id.
    fn disk_secret(
        &mut self,
        enc: &vireo_xml::Encryption,
        format_node: &str,
        what: &str,
    ) -> Result<String> {
        if enc.format != "luks" {
            return unsupported(format!(
                "{what}: encryption format '{}' is not supported (luks)",
                enc.format
            ));
        }
        let uuid = match enc.secret.as_slice() {
            [s] if s.secret_type == "passphrase" && s.uuid.is_some() => {
                vireo_xml::format_uuid(&s.uuid.unwrap_or_default())
            }
            _ => {
                return unsupported(format!(
                    "{what}: LUKS encryption needs one <secret type='passphrase' uuid='…'/>"
                ))
            }
        };
        if let Some(id) = self.secret_objects.get(&uuid) {
            return Ok(id.clone());
        }
        let fd = match &self.cfg.secret_fds {
            // Only checking: any fd will do.
            None => -1,
            Some(fds) => match fds.get(&uuid) {
                Some(fd) => *fd,
                None => {
                    return unsupported(format!(
                        "{what}: the passphrase (secret {uuid}) was not given"
                    ))
                }
            },
        };
        let id = format!("{format_node}-encryption-secret0");
        self.secret_objects.insert(uuid, id.clone());
        self.arg2(
            "-object",
            Opts::new("secret")
                .set("id", &id)
                .set("file", format!("/dev/fd/{fd}"))
                .set("format", "raw")
                .done(),
        );
        Ok(id)
    }

    /// ICH9's USB 2 controller (function 7) and its USB 1 companions (functions 0, 1, 2,
    /// the first multifunction) in one PCI slot, as libvirt lays them out.
    fn ich9_usb(
        &mut self,
        addr: Option<&Address>,
        companions: &[&vireo_xml::Controller],
    ) -> Result<()> {
        let mut seen = BTreeSet::new();
        for c in companions {
            let n = match c.model.as_deref() {
                Some("ich9-uhci1") => 1,
                Some("ich9-uhci2") => 2,
                Some("ich9-uhci3") => 3,
                other => {
                    return unsupported(format!(
                        "<controller type='usb' model='{}'> cannot be a companion of \
                         ich9-ehci1 (ich9-uhci1, 2 or 3)",
                        other.unwrap_or("")
                    ))
                }
            };
            if !seen.insert(n) {
                return unsupported(format!(
                    "<controller type='usb' model='ich9-uhci{n}'> appears twice"
                ));
            }
            if c.address.is_some() {
                return unsupported(
                    "ich9-uhci companion controllers take their master's slot; give no address",
                );
            }
        }
        let (bus, base) = match addr {
            Some(a) => {
                let p = PciBus::parse(a, "USB controller")?;
                (p.bus, p.slot)
            }
            None => (0, self.pci.free_slot("USB controller")?),
        };
        let ehci = Opts::new("ich9-usb-ehci1")
            .set("id", "usb")
            .raw(&self.pci.format_at(bus, base, 7, false))
            .done();
        self.arg2("-device", ehci);
        for c in companions {
            let (n, first) = match c.model.as_deref() {
                Some("ich9-uhci1") => (1, 0),
                Some("ich9-uhci2") => (2, 1),
                _ => (3, 2),
            };
            let dev = Opts::new(&format!("ich9-usb-uhci{n}"))
                .set("masterbus", "usb.0")
                .set("firstport", c.master_startport.unwrap_or(0))
                .raw(&self.pci.format_at(bus, base, first, first == 0))
                .done();
            self.pci.used.insert((bus, base, first));
            self.arg2("-device", dev);
        }
        self.pci.used.insert((bus, base, 7));
        Ok(())
    }

    fn builtin_address(
        &self,
        c: &vireo_xml::Controller,
        slot: u32,
        function: u32,
        what: &str,
    ) -> Result<()> {
        let Some(a) = &c.address else { return Ok(()) };
        if a.addr_type == AddressType::Pci {
            let p = PciBus::parse(a, what)?;
            if p.slot == slot && p.function == function {
                return Ok(());
            }
        }
        unsupported(format!(
            "{what}: this controller is built into the machine at PCI {slot:#04x}.{function:x} \
             and cannot be moved"
        ))
    }

    // -----------------------------------------------------------------------
    // Disks
    // -----------------------------------------------------------------------

    fn disks(&mut self) -> Result<()> {
        let def = self.def;
        let disks = &def.devices.disks;
        let count = disks.len();
        let mut names = BTreeSet::new();
        let mut ide_units = BTreeSet::new();
        let mut sata_ports = BTreeSet::new();
        let mut virtio_ids = BTreeSet::new();
        for (i, disk) in disks.iter().enumerate() {
            let dev = disk.target.dev.as_str();
            let what = format!("<disk> '{dev}'");
            if !names.insert(dev) {
                return unsupported(format!("{what}: target dev used by two disks"));
            }
            let Some((prefix, index)) = disk_name_index(dev) else {
                return unsupported(format!("{what}: not a valid disk target name"));
            };
            let bus = disk.target.bus.unwrap_or(match prefix {
                "hd" => DiskBus::Ide,
                "vd" => DiskBus::Virtio,
                "fd" => DiskBus::Fdc,
                "xvd" => DiskBus::Xen,
                "ubd" => DiskBus::Uml,
                _ => DiskBus::Scsi,
            });
            match disk.device {
                DiskDevice::Disk | DiskDevice::Cdrom => {}
                other => return unsupported(format!("{what}: device='{other}' is not supported")),
            }
            let cdrom = disk.device == DiskDevice::Cdrom;

            // Where it goes.
            let (driver, placement, id) = match bus {
                DiskBus::Virtio => {
                    if cdrom {
                        return unsupported(format!("{what}: a cdrom cannot be on the virtio bus"));
                    }
                    if !virtio_ids.insert(index) {
                        return unsupported(format!(
                            "{what}: clashes with another virtio disk name"
                        ));
                    }
                    let addr = self.pci.place(disk.address.as_ref(), &what)?;
                    ("virtio-blk-pci", addr, format!("virtio-disk{index}"))
                }
                DiskBus::Ide => {
                    if self.family == Family::Q35 {
                        return unsupported(format!(
                            "{what}: q35 machines have no IDE bus (use bus='sata')"
                        ));
                    }
                    let (b, u) = match &disk.address {
                        Some(a) => drive_address(a, &what, 1, 1)?,
                        None => (index / 2, index % 2),
                    };
                    if b > 1 {
                        return unsupported(format!(
                            "{what}: the IDE bus has only 4 units (hda-hdd)"
                        ));
                    }
                    if !ide_units.insert((b, u)) {
                        return unsupported(format!("{what}: IDE unit {b}.{u} is used twice"));
                    }
                    (
                        if cdrom { "ide-cd" } else { "ide-hd" },
                        format!("bus=ide.{b},unit={u}"),
                        format!("ide0-{b}-{u}"),
                    )
                }
                DiskBus::Sata => {
                    let port = match &disk.address {
                        Some(a) => drive_address(a, &what, 0, 5)?.1,
                        None => index,
                    };
                    if port > 5 {
                        return unsupported(format!(
                            "{what}: the SATA controller has 6 ports (sda-sdf)"
                        ));
                    }
                    if !sata_ports.insert(port) {
                        return unsupported(format!("{what}: SATA port {port} is used twice"));
                    }
                    let bus = match self.family {
                        Family::Q35 => format!("ide.{port}"),
                        Family::Pc => format!("sata0.{port}"),
                    };
                    (
                        if cdrom { "ide-cd" } else { "ide-hd" },
                        format!("bus={bus}"),
                        format!("sata0-0-{port}"),
                    )
                }
                DiskBus::Scsi => {
                    return unsupported(format!(
                        "{what}: bus 'scsi' is not supported yet (use 'virtio' or 'sata')"
                    ))
                }
                other => return unsupported(format!("{what}: bus '{other}' is not supported")),
            };

            // What it reads.
            let set = disk_settings(disk, bus, &what)?;
            let cache = set.cache;
            let path = disk_path(disk, &what)?;
            let node = count - i;
            let format_name = format!("libvirt-{node}-format");
            if let Some(path) = path {
                // LUKS: the passphrase is a secret object QEMU reads from a pipe.
                let secret = match &disk.encryption {
                    Some(enc) => Some(self.disk_secret(enc, &format_name, &what)?),
                    None => None,
                };
                let nodes = disk_nodes(disk, path, node, &set, secret.as_deref(), &what)?;
                for n in &nodes.nodes {
                    self.arg2("-blockdev", json_obj(n));
                }
            }
            let mut o = Opts::new(driver).raw(&placement);
            if path.is_some() {
                o = o.set("drive", &format_name);
            }
            o = o
                .set("id", id)
                .set_opt("bootindex", self.disk_boot.get(i).copied().flatten())
                .set_opt("write-cache", cache.map(|c| on_off(c.2)))
                .set_opt("serial", disk.serial.as_deref());
            if disk.shareable {
                o = o.set("share-rw", "on");
            }
            self.arg2("-device", o.done());
            // <alias>: ids are ours; a user alias does not change the guest.
        }
        Ok(())
    }

    // -----------------------------------------------------------------------
    // Network interfaces
    // -----------------------------------------------------------------------

    fn interfaces(&mut self) -> Result<()> {
        let def = self.def;
        let mut taps = 0usize;
        for (i, n) in def.devices.interfaces.iter().enumerate() {
            let what = match &n.mac {
                Some(m) => format!("<interface> '{m}'"),
                None => format!("<interface> {i}"),
            };
            // The backend: user-mode networking, or the tap the network driver made.
            let netdev = match n.if_type {
                InterfaceType::User => {
                    if n.source.is_some() {
                        return unsupported(format!(
                            "{what}: <source> is not supported for type='user'"
                        ));
                    }
                    if n.bandwidth.is_some() || n.filterref.is_some() {
                        return unsupported(format!(
                            "{what}: <bandwidth> and <filterref> need an interface on a network"
                        ));
                    }
                    format!("user,id=hostnet{i}")
                }
                t @ (InterfaceType::Network | InterfaceType::Bridge) => {
                    let src = n.source.as_ref();
                    if t == InterfaceType::Network && src.and_then(|s| s.network.as_ref()).is_none()
                    {
                        return unsupported(format!(
                            "{what}: a network interface needs <source network='…'/>"
                        ));
                    }
                    if t == InterfaceType::Bridge && src.and_then(|s| s.bridge.as_ref()).is_none() {
                        return unsupported(format!(
                            "{what}: a bridge interface needs <source bridge='…'/>"
                        ));
                    }
                    // The network driver made the tap (in the network's bridge, or the
                    // host's); QEMU gets it as a descriptor.
                    let fd = match &self.cfg.tap_fds {
                        Some(fds) => match fds.get(taps) {
                            Some(fd) => *fd,
                            None => {
                                return unsupported(format!(
                                    "{what}: no tap device was made for it"
                                ))
                            }
                        },
                        None => -1,
                    };
                    taps += 1;
                    format!("tap,fd={fd},id=hostnet{i}")
                }
                t @ (InterfaceType::Ethernet | InterfaceType::Direct) => {
                    return unsupported(format!(
                        "<interface type='{t}'> is not supported by Vireo yet; use type='network', \
                         'bridge' or 'user'"
                    ))
                }
                t => return unsupported(format!("<interface type='{t}'> is not supported")),
            };
            let Some(mac) = &n.mac else {
                return unsupported(
                    "interface without MAC address (the driver assigns one before starting)",
                );
            };
            let driver = nic_driver(n, &what)?;
            self.arg2("-netdev", netdev);
            let addr = self.pci.place(n.address.as_ref(), &what)?;
            let dev = Opts::new(driver)
                .set("netdev", format!("hostnet{i}"))
                .set("id", format!("net{i}"))
                .set("mac", mac)
                .set_opt("host_mtu", n.mtu)
                .raw(&addr)
                .set_opt("bootindex", self.net_boot.get(i).copied().flatten())
                .done();
            self.arg2("-device", dev);
        }
        Ok(())
    }

    // -----------------------------------------------------------------------
    // Character devices
    // -----------------------------------------------------------------------

    /// The `-chardev` value for a serial, console or channel backend.
    fn chardev_backend(
        &self,
        c: &Chardev,
        id: &str,
        what: &str,
        default_socket: &str,
    ) -> Result<String> {
        if c.protocol.is_some() {
            return unsupported(format!(
                "{what}: <protocol> is only for tcp, which is not supported"
            ));
        }
        if c.sources.len() > 1 {
            return unsupported(format!("{what}: more than one <source>"));
        }
        let src = c.sources.first();
        // A pty's <source path> and the tty attribute describe a previous run.
        let o = match c.dev_type {
            ChardevType::Pty => Opts::new("pty").set("id", id),
            ChardevType::Null => Opts::new("null").set("id", id),
            ChardevType::File => {
                let Some(path) = src.and_then(|s| s.path.as_deref()) else {
                    return unsupported(format!("{what}: type 'file' needs <source path=...>"));
                };
                Opts::new("file")
                    .set("id", id)
                    .set("path", path)
                    .set_opt("append", src.and_then(|s| s.append).map(on_off))
            }
            ChardevType::Unix => {
                let path = src.and_then(|s| s.path.as_deref());
                // libvirt connects unless told to bind; without a path there is nothing
                // to connect to, so we bind a socket of our own.
                let bind = match src.and_then(|s| s.mode.as_deref()) {
                    Some("bind") => true,
                    Some(_) => false,
                    None => path.is_none(),
                };
                let path = match path {
                    Some(p) => {
                        let p = PathBuf::from(p);
                        check_socket_path(&p, what)?;
                        p
                    }
                    // The launcher chooses run_dir, and with it the length of this path.
                    None if bind => self.cfg.run_dir.join(default_socket),
                    None => {
                        return unsupported(format!(
                            "{what}: mode='connect' needs <source path=...>"
                        ))
                    }
                };
                let o = Opts::new("socket")
                    .set("id", id)
                    .set("path", path.display());
                if bind {
                    o.set("server", "on").set("wait", "off")
                } else {
                    o
                }
            }
            ChardevType::Spicevmc | ChardevType::Spiceport => {
                return unsupported(format!(
                    "{what}: type '{}' needs SPICE, which is not supported",
                    c.dev_type
                ))
            }
            other => {
                return unsupported(format!(
                "{what}: character device type '{other}' is not supported (pty, file, unix, null)"
            ))
            }
        };
        Ok(o.set_opt("logfile", c.log_file.as_deref()).done())
    }

    fn chardevs(&mut self) -> Result<()> {
        let def = self.def;
        let d = &def.devices;

        // <console> 0 with a serial target is the first <serial> seen from another side
        // (libvirt keeps the two in step); without any <serial> it is the serial port.
        let mut serials: Vec<&Chardev> = d.serials.iter().collect();
        let mut virtio_consoles: Vec<(usize, &Chardev)> = Vec::new();
        for (i, c) in d.consoles.iter().enumerate() {
            let ttype = c.target.as_ref().and_then(|t| t.target_type.as_deref());
            match ttype {
                None | Some("serial") => {
                    if i != 0 {
                        return unsupported(format!(
                            "<console> {i}: only the first console can be a serial console"
                        ));
                    }
                    match serials.first() {
                        None => serials.push(c),
                        Some(s) if s.dev_type == c.dev_type => {}
                        Some(s) => {
                            return unsupported(format!(
                            "<console type='{}'> differs from the <serial type='{}'> it stands for",
                            c.dev_type, s.dev_type
                        ))
                        }
                    }
                }
                Some("virtio") => virtio_consoles.push((i, c)),
                Some(other) => {
                    return unsupported(format!(
                        "<console><target type='{other}'> is not supported"
                    ))
                }
            }
        }

        let mut indexes = BTreeSet::new();
        for (i, s) in serials.iter().enumerate() {
            let what = format!("<serial> {i}");
            let target = s.target.clone().unwrap_or_default();
            if target
                .target_type
                .as_deref()
                .is_some_and(|t| t != "isa-serial" && t != "serial")
            {
                return unsupported(format!(
                    "{what}: target type '{}' is not supported (isa-serial)",
                    target.target_type.as_deref().unwrap_or_default()
                ));
            }
            if target
                .model_name
                .as_deref()
                .is_some_and(|m| m != "isa-serial")
            {
                return unsupported(format!(
                    "{what}: target model '{}' is not supported (isa-serial)",
                    target.model_name.as_deref().unwrap_or_default()
                ));
            }
            if s.address.is_some() {
                return unsupported(format!("{what}: <address> is not supported"));
            }
            let index = target.port.unwrap_or(i as u32);
            if index > 3 {
                return unsupported(format!("{what}: an ISA serial port is number 0 to 3"));
            }
            if !indexes.insert(index) {
                return unsupported(format!("{what}: serial port {index} is used twice"));
            }
            let id = format!("charserial{i}");
            let backend = self.chardev_backend(s, &id, &what, &format!("serial{i}.sock"))?;
            self.arg2("-chardev", backend);
            let dev = Opts::new("isa-serial")
                .set("chardev", &id)
                .set("id", format!("serial{i}"))
                .set("index", index)
                .done();
            self.arg2("-device", dev);
        }

        // virtio-serial port numbers: explicit ones first; port 0 belongs to a console.
        let mut wanted: Vec<(bool, Option<u32>)> = Vec::new();
        for ch in d.channels.iter() {
            wanted.push((false, vserial_port(ch.address.as_ref(), "<channel>")?));
        }
        for (_, c) in &virtio_consoles {
            wanted.push((true, vserial_port(c.address.as_ref(), "<console>")?));
        }
        for (console, port) in &wanted {
            if let Some(p) = port {
                if *p == 0 && !console {
                    return unsupported("<channel>: virtio-serial port 0 is reserved for consoles");
                }
                if !self.vserial_ports.insert(*p) {
                    return unsupported(format!("virtio-serial port {p} is used twice"));
                }
            }
        }

        for (i, ch) in d.channels.iter().enumerate() {
            let what = format!("<channel> {i}");
            let target = ch.target.clone().unwrap_or_default();
            match target.target_type.as_deref() {
                Some("virtio") => {}
                other => {
                    return unsupported(format!(
                        "{what}: target type '{}' is not supported (virtio)",
                        other.unwrap_or_default()
                    ))
                }
            }
            // target state (connected/disconnected) is live status, not configuration.
            let name = target.name.as_deref();
            let sock = match name {
                Some(n) if is_simple_name(n) && n != "." && n != ".." => n.to_string(),
                _ => format!("channel{i}.sock"),
            };
            let id = format!("charchannel{i}");
            let backend = self.chardev_backend(ch, &id, &what, &sock)?;
            self.arg2("-chardev", backend);
            let nr = match wanted.get(i).and_then(|w| w.1) {
                Some(p) => p,
                None => self.next_vserial_port(1),
            };
            let dev = Opts::new("virtserialport")
                .set("bus", "virtio-serial0.0")
                .set("nr", nr)
                .set("chardev", &id)
                .set("id", format!("channel{i}"))
                .set_opt("name", name)
                .done();
            self.arg2("-device", dev);
        }

        for (k, (i, c)) in virtio_consoles.iter().enumerate() {
            let what = format!("<console> {i}");
            let id = format!("charconsole{i}");
            let backend = self.chardev_backend(c, &id, &what, &format!("console{i}.sock"))?;
            self.arg2("-chardev", backend);
            let nr = match wanted.get(d.channels.len() + k).and_then(|w| w.1) {
                Some(p) => p,
                None => self.next_vserial_port(0),
            };
            let dev = Opts::new("virtconsole")
                .set("bus", "virtio-serial0.0")
                .set("nr", nr)
                .set("chardev", &id)
                .set("id", format!("console{i}"))
                .done();
            self.arg2("-device", dev);
        }
        Ok(())
    }

    fn next_vserial_port(&mut self, from: u32) -> u32 {
        let mut p = from;
        while self.vserial_ports.contains(&p) {
            p += 1;
        }
        self.vserial_ports.insert(p);
        p
    }

    // -----------------------------------------------------------------------
    // Input
    // -----------------------------------------------------------------------

    fn plan_inputs(&self) -> Result<InputPlan> {
        let mut plan = InputPlan::default();
        let ps2_off = self
            .def
            .features
            .iter()
            .any(|f| f.name == "ps2" && f.attr("state") == Some("off"));
        for (i, inp) in self.def.devices.inputs.iter().enumerate() {
            let what = format!("<input type='{}'>", inp.input_type);
            if matches!(inp.input_type, InputType::Passthrough | InputType::Evdev)
                || !inp.source_attrs.is_empty()
            {
                return unsupported(format!("{what} (host input passthrough) is not supported"));
            }
            let bus = inp.bus.unwrap_or(match inp.input_type {
                InputType::Tablet => InputBus::Usb,
                _ => InputBus::Ps2,
            });
            let kind = match inp.input_type {
                InputType::Tablet => "tablet",
                InputType::Mouse => "mouse",
                _ => "keyboard",
            };
            if bus != InputBus::Virtio && inp.model.is_some() {
                return unsupported(format!("{what}: model is only for bus='virtio'"));
            }
            match bus {
                InputBus::Ps2 => {
                    if inp.input_type == InputType::Tablet {
                        return unsupported(
                            "<input type='tablet' bus='ps2'> does not exist (use usb or virtio)",
                        );
                    }
                    if ps2_off {
                        return unsupported(format!("{what}: PS/2 is switched off in <features>"));
                    }
                    if inp.address.is_some() {
                        return unsupported(format!("{what}: a PS/2 device has no address"));
                    }
                    // The i8042 controller is part of the machine.
                }
                InputBus::Usb => {
                    let driver = match kind {
                        "tablet" => "usb-tablet",
                        "mouse" => "usb-mouse",
                        _ => "usb-kbd",
                    };
                    let port = match &inp.address {
                        None => None,
                        Some(a) => Some(usb_port(a, &what)?),
                    };
                    plan.needs_usb = true;
                    plan.devices.push(PlannedInput::Usb {
                        driver,
                        id: format!("input{i}"),
                        port,
                    });
                }
                InputBus::Virtio => {
                    match inp.model.as_deref() {
                        None | Some("virtio") => {}
                        Some(m) => {
                            return unsupported(format!("{what}: model '{m}' is not supported"))
                        }
                    }
                    plan.devices.push(PlannedInput::Pci {
                        driver: match kind {
                            "tablet" => "virtio-tablet-pci",
                            "mouse" => "virtio-mouse-pci",
                            _ => "virtio-keyboard-pci",
                        },
                        id: format!("input{i}"),
                        index: i,
                    });
                }
                InputBus::Xen => {
                    return unsupported(format!("{what}: bus 'xen' does not apply to QEMU"))
                }
            }
        }
        Ok(plan)
    }

    fn emit_inputs(&mut self, plan: InputPlan) -> Result<()> {
        for p in plan.devices {
            let dev = match p {
                PlannedInput::Usb { driver, id, port } => Opts::new(driver)
                    .set("id", id)
                    .set("bus", "usb.0")
                    .set_opt("port", port)
                    .done(),
                PlannedInput::Pci { driver, id, index } => {
                    let addr = self
                        .def
                        .devices
                        .inputs
                        .get(index)
                        .and_then(|i| i.address.as_ref());
                    let addr = self.pci.place(addr, "<input>")?;
                    Opts::new(driver).set("id", id).raw(&addr).done()
                }
            };
            self.arg2("-device", dev);
        }
        Ok(())
    }

    // -----------------------------------------------------------------------
    // Graphics, video
    // -----------------------------------------------------------------------

    fn graphics(&mut self) -> Result<()> {
        let def = self.def;
        let gs = &def.devices.graphics;
        let Some(g) = gs.first() else { return Ok(()) };
        if gs.len() > 1 {
            return unsupported("more than one <graphics> is not supported");
        }
        if g.graphics_type != GraphicsType::Vnc {
            return unsupported(format!(
                "<graphics type='{}'> is not supported (only vnc)",
                g.graphics_type
            ));
        }
        if g.passwd.is_some() {
            return unsupported(
                "<graphics type='vnc' passwd=...> (VNC passwords) is not supported yet",
            );
        }
        if g.tls_port.is_some() {
            return unsupported("<graphics type='vnc'>: tlsPort is only for SPICE");
        }
        if g.websocket.is_some() {
            return unsupported("<graphics type='vnc' websocket=...> is not supported yet");
        }
        if g.listens.len() > 1 {
            return unsupported("<graphics type='vnc'> with more than one <listen>");
        }
        let auto = g.autoport == Some(true) || matches!(g.port, None | Some(-1));
        let display = if auto {
            None
        } else {
            match g.port {
                Some(p) if (5900..=65535).contains(&p) => Some((p - 5900) as u32),
                Some(p) => {
                    return unsupported(format!(
                        "<graphics type='vnc' port='{p}'>: the port must be 5900 to 65535 (or autoport)"
                    ))
                }
                None => None,
            }
        };
        let listen = g.listens.first();
        let target = match listen.map(|l| l.listen_type) {
            None | Some(ListenType::Address) => {
                let addr = listen
                    .and_then(|l| l.address.clone())
                    .or_else(|| g.listen.clone())
                    .unwrap_or_else(|| "127.0.0.1".to_string());
                if addr.is_empty()
                    || !addr
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '_'))
                {
                    return unsupported(format!(
                        "<graphics type='vnc'>: invalid listen address '{addr}'"
                    ));
                }
                let host = if addr.contains(':') {
                    format!("[{addr}]")
                } else {
                    addr
                };
                match display {
                    Some(d) => format!("{host}:{d}"),
                    // QEMU takes the first free display from 0 to VNC_AUTO_LAST_DISPLAY; the
                    // shim reads the port it chose with query-vnc.
                    None => format!("{host}:0,to={VNC_AUTO_LAST_DISPLAY}"),
                }
            }
            Some(ListenType::Socket) => {
                let path = match listen.and_then(|l| l.socket.clone()) {
                    Some(p) => {
                        let p = PathBuf::from(p);
                        check_socket_path(&p, "<graphics type='vnc'>")?;
                        p
                    }
                    None => self.cfg.run_dir.join("vnc.sock"),
                };
                format!("unix:{}", esc(&path.display().to_string()))
            }
            Some(ListenType::None) => "none".to_string(),
            Some(ListenType::Network) => {
                return unsupported(
                    "<listen type='network'> needs the network daemon (not yet available)",
                )
            }
        };
        // No host audio for VNC clients: an explicit "none" backend keeps QEMU from probing
        // the host's sound systems, as libvirt does.
        self.arg2("-audiodev", "none,id=audio1");
        self.arg2("-vnc", format!("{target},audiodev=audio1"));
        if let Some(k) = &g.keymap {
            if !is_simple_name(k) {
                return unsupported(format!("<graphics keymap='{k}'>: invalid keymap name"));
            }
            self.arg2("-k", k.clone());
        }
        Ok(())
    }

    fn video(&mut self) -> Result<()> {
        let def = self.def;
        let vs = &def.devices.videos;
        let Some(v) = vs.first() else { return Ok(()) };
        if vs.len() > 1 {
            return unsupported(
                "more than one <video> (secondary video devices) is not supported yet",
            );
        }
        let what = "<video>";
        // A <video> without <model> gets the VGA adapter (the driver normally fills it).
        let model = v.model.clone().unwrap_or(vireo_xml::VideoModel {
            model_type: VideoModelType::Vga,
            ram: None,
            vram: None,
            vram64: None,
            vgamem: None,
            heads: None,
            primary: None,
        });
        // primary: with a single video device it is the primary one anyway.
        let t = model.model_type;
        if t == VideoModelType::None {
            return Ok(());
        }
        let driver = match t {
            VideoModelType::Vga => "VGA",
            VideoModelType::Cirrus => "cirrus-vga",
            VideoModelType::Virtio => "virtio-vga",
            VideoModelType::Qxl => "qxl-vga",
            VideoModelType::Bochs => "bochs-display",
            other => {
                return unsupported(format!(
                    "<video><model type='{other}'> is not supported (vga, cirrus, virtio, qxl, bochs, none)"
                ))
            }
        };
        if t != VideoModelType::Qxl
            && (model.ram.is_some() || model.vram64.is_some() || model.vgamem.is_some())
        {
            return unsupported(format!(
                "{what}: ram, vram64 and vgamem are only for model 'qxl'"
            ));
        }
        if !matches!(t, VideoModelType::Qxl | VideoModelType::Virtio)
            && model.heads.is_some_and(|h| h != 1)
        {
            return unsupported(format!(
                "{what}: several heads need model 'qxl' or 'virtio'"
            ));
        }
        let mut o = Opts::new(driver).set("id", "video0");
        match t {
            VideoModelType::Vga => {
                if let Some(vram) = model.vram {
                    if vram < 1024 || vram % 1024 != 0 {
                        return unsupported(format!("{what}: vram must be a multiple of 1024 KiB"));
                    }
                    o = o.set("vgamem_mb", vram / 1024);
                }
            }
            VideoModelType::Cirrus => {
                if let Some(vram) = model.vram {
                    if !matches!(vram, 4096 | 8192 | 16384) {
                        return unsupported(format!(
                            "{what}: cirrus vram must be 4096, 8192 or 16384 KiB"
                        ));
                    }
                    o = o.set("vgamem_mb", vram / 1024);
                }
            }
            VideoModelType::Bochs => {
                if let Some(vram) = model.vram {
                    o = o.set("vgamem", u64::from(vram) * 1024);
                }
            }
            VideoModelType::Virtio => {
                // virtio-gpu has no video memory setting; libvirt writes a vram value for
                // every model and ignores it for virtio as well.
                o = o.set_opt("max_outputs", model.heads);
            }
            VideoModelType::Qxl => {
                o = o
                    .set_opt("ram_size", model.ram.map(|r| u64::from(r) * 1024))
                    .set_opt("vram_size", model.vram.map(|r| u64::from(r) * 1024))
                    .set_opt("vram64_size_mb", model.vram64.map(|r| r / 1024))
                    .set_opt("vgamem_mb", model.vgamem.map(|r| r / 1024))
                    .set_opt("max_outputs", model.heads);
            }
            _ => {}
        }
        let addr = match self.video_addr.take() {
            Some(a) => a,
            None => self.pci.place(v.address.as_ref(), what)?,
        };
        self.arg2("-device", o.raw(&addr).done());
        Ok(())
    }

    // -----------------------------------------------------------------------
    // Balloon, RNG
    // -----------------------------------------------------------------------

    fn memballoon(&mut self) -> Result<()> {
        let def = self.def;
        let Some(m) = &def.devices.memballoon else {
            return Ok(());
        };
        let what = "<memballoon>";
        match m.model {
            MemballoonModel::Virtio => {}
            MemballoonModel::None => return Ok(()),
            other => {
                return unsupported(format!(
                    "<memballoon model='{other}'> is not supported (virtio or none)"
                ))
            }
        }
        if m.stats_period.is_some() {
            return unsupported(
                "<memballoon><stats period=...> is not supported yet (it is set over QMP after start)",
            );
        }
        let addr = self.pci.place(m.address.as_ref(), what)?;
        let dev = Opts::new("virtio-balloon-pci")
            .set("id", "balloon0")
            .set_opt("deflate-on-oom", m.autodeflate.map(on_off))
            .set_opt("free-page-reporting", m.free_page_reporting.map(on_off))
            .raw(&addr)
            .done();
        self.arg2("-device", dev);
        Ok(())
    }

    fn rngs(&mut self) -> Result<()> {
        let def = self.def;
        for (i, r) in def.devices.rngs.iter().enumerate() {
            let what = format!("<rng> {i}");
            if r.model != RngModel::Virtio {
                return unsupported(format!(
                    "<rng model='{}'> is not supported (virtio)",
                    r.model
                ));
            }
            let obj_id = format!("objrng{i}");
            let object = match r.backend.model {
                RngBackendModel::Random => {
                    let path = r.backend.path.as_deref().unwrap_or("/dev/urandom");
                    if !matches!(path, "/dev/urandom" | "/dev/random" | "/dev/hwrng") {
                        return unsupported(format!(
                            "{what}: backend '{path}' is not allowed (/dev/urandom, /dev/random, /dev/hwrng)"
                        ));
                    }
                    Opts::new("rng-random")
                        .set("id", &obj_id)
                        .set("filename", path)
                        .done()
                }
                RngBackendModel::Builtin => Opts::new("rng-builtin").set("id", &obj_id).done(),
                RngBackendModel::Egd => {
                    return unsupported(format!("{what}: the egd backend is not supported"))
                }
            };
            self.arg2("-object", object);
            let addr = self.pci.place(r.address.as_ref(), &what)?;
            let mut o = Opts::new("virtio-rng-pci")
                .set("rng", &obj_id)
                .set("id", format!("rng{i}"));
            if let Some(rate) = &r.rate {
                o = o
                    .set("max-bytes", rate.bytes)
                    .set("period", rate.period.unwrap_or(1000));
            }
            self.arg2("-device", o.raw(&addr).done());
        }
        Ok(())
    }
}

#[derive(Default)]
struct InputPlan {
    needs_usb: bool,
    devices: Vec<PlannedInput>,
}

enum PlannedInput {
    Usb {
        driver: &'static str,
        id: String,
        port: Option<String>,
    },
    Pci {
        driver: &'static str,
        id: String,
        index: usize,
    },
}

/// `(bus, unit)` of a drive address on controller 0 (IDE: bus 0-1, unit 0-1; SATA: bus 0,
/// unit = port 0-5).
fn drive_address(a: &Address, what: &str, max_bus: u64, max_unit: u64) -> Result<(u32, u32)> {
    if a.addr_type != AddressType::Drive {
        return unsupported(format!(
            "{what}: address type '{}' is not valid for this bus (drive)",
            a.addr_type
        ));
    }
    let num = |k: &str| -> Result<u64> {
        match a.get(k) {
            None => Ok(0),
            Some(raw) => a.get_num(k).map_or_else(
                || unsupported(format!("{what}: invalid drive address {k} '{raw}'")),
                Ok,
            ),
        }
    };
    let (controller, bus, target, unit) = (
        num("controller")?,
        num("bus")?,
        num("target")?,
        num("unit")?,
    );
    if controller != 0 || target != 0 || bus > max_bus || unit > max_unit {
        return unsupported(format!(
            "{what}: drive address {controller}:{bus}:{target}:{unit} is not available"
        ));
    }
    Ok((bus as u32, unit as u32))
}

/// The port of a `<address type='virtio-serial'>` on controller 0, bus 0.
fn vserial_port(a: Option<&Address>, what: &str) -> Result<Option<u32>> {
    let Some(a) = a else { return Ok(None) };
    if a.addr_type != AddressType::VirtioSerial {
        return unsupported(format!(
            "{what}: address type '{}' is not valid here (virtio-serial)",
            a.addr_type
        ));
    }
    let num = |k: &str| a.get(k).map(|_| a.get_num(k));
    match (num("controller"), num("bus")) {
        (None | Some(Some(0)), None | Some(Some(0))) => {}
        _ => {
            return unsupported(format!(
                "{what}: only virtio-serial controller 0, bus 0 is available"
            ))
        }
    }
    match num("port") {
        None => Ok(None),
        Some(Some(p)) if p < 31 => Ok(Some(p as u32)),
        Some(_) => unsupported(format!("{what}: invalid virtio-serial port")),
    }
}

/// The port of a `<address type='usb' bus='0' port='1'>` (ports may be nested: `1.2`).
fn usb_port(a: &Address, what: &str) -> Result<String> {
    if a.addr_type != AddressType::Usb {
        return unsupported(format!(
            "{what}: address type '{}' is not valid for a USB device",
            a.addr_type
        ));
    }
    if a.get("bus").is_some() && a.get_num("bus") != Some(0) {
        return unsupported(format!("{what}: only USB bus 0 is available"));
    }
    match a.get("port") {
        Some(p)
            if !p.is_empty()
                && p.split('.')
                    .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
        {
            Ok(p.to_string())
        }
        _ => unsupported(format!("{what}: USB address without a valid port")),
    }
}

/// The QEMU device model of a guest interface, after the checks every interface passes.
fn nic_driver(n: &vireo_xml::Interface, what: &str) -> Result<&'static str> {
    match n.driver_name() {
        None | Some("qemu") => {}
        Some(other) => {
            return unsupported(format!("{what}: <driver name='{other}'> is not supported"))
        }
    }
    if n.driver
        .as_ref()
        .and_then(|d| d.queues)
        .is_some_and(|q| q > 1)
    {
        return unsupported(format!("{what}: multiple queues are not supported"));
    }
    if n.link_state == Some(LinkState::Down) {
        return unsupported(format!("{what}: <link state='down'> is not supported yet"));
    }
    let model = n.model.as_deref().unwrap_or("rtl8139");
    let driver = match model {
        "virtio" => "virtio-net-pci",
        "e1000" => "e1000",
        "e1000e" => "e1000e",
        "rtl8139" => "rtl8139",
        other => {
            return unsupported(format!(
                "{what}: model '{other}' is not supported (virtio, e1000, e1000e, rtl8139)"
            ))
        }
    };
    if n.mtu.is_some() && driver != "virtio-net-pci" {
        return unsupported(format!("{what}: <mtu> needs model 'virtio'"));
    }
    Ok(driver)
}

/// The `device_add` arguments of a guest interface hot-plugged with QEMU id `id` on
/// backend `netdev`, at its `<address>` (the driver gives one).
pub fn interface_device(
    n: &vireo_xml::Interface,
    id: &str,
    netdev: &str,
) -> Result<serde_json::Value> {
    let what = match &n.mac {
        Some(m) => format!("<interface> '{m}'"),
        None => "<interface>".to_string(),
    };
    let Some(mac) = &n.mac else {
        return unsupported("interface without MAC address");
    };
    let driver = nic_driver(n, &what)?;
    let mut v = json!({"driver": driver, "id": id, "netdev": netdev, "mac": mac});
    if let Some(mtu) = n.mtu {
        v["host_mtu"] = json!(mtu);
    }
    hotplug_pci_place(&mut v, n.address.as_ref(), &what)?;
    Ok(v)
}

/// How a disk's image is read: format, cache mode (direct, no-flush, write-cache), AIO and
/// whether it is read-only.
pub(crate) struct DiskSettings {
    format: &'static str,
    cache: Option<(bool, bool, bool)>,
    aio: Option<&'static str>,
    readonly: bool,
    cdrom: bool,
}

/// Checks what a disk asks of its image and gives the settings.
fn disk_settings(disk: &vireo_xml::Disk, bus: DiskBus, what: &str) -> Result<DiskSettings> {
    let cdrom = disk.device == DiskDevice::Cdrom;
    let drv = disk.driver.clone().unwrap_or_default();
    if drv.name.as_deref().is_some_and(|n| n != "qemu") {
        return unsupported(format!(
            "{what}: driver name '{}' is not supported (only 'qemu')",
            drv.name.as_deref().unwrap_or_default()
        ));
    }
    let format = match drv.format.as_deref() {
        None | Some("raw") | Some("iso") => "raw",
        Some("qcow2") => "qcow2",
        Some(other) => {
            return unsupported(format!(
                "{what}: image format '{other}' is not supported (raw or qcow2)"
            ))
        }
    };
    let cache = match drv.cache {
        None | Some(DiskCache::Default) => None,
        Some(DiskCache::None) => Some((true, false, true)),
        Some(DiskCache::Writeback) => Some((false, false, true)),
        Some(DiskCache::Writethrough) => Some((false, false, false)),
        Some(DiskCache::Directsync) => Some((true, false, false)),
        Some(DiskCache::Unsafe) => Some((false, true, true)),
    };
    let aio = match drv.io {
        None => None,
        Some(DiskIo::Threads) => Some("threads"),
        Some(DiskIo::Native) => {
            if !cache.is_some_and(|c| c.0) {
                return unsupported(format!(
                    "{what}: io='native' needs cache='none' or 'directsync'"
                ));
            }
            Some("native")
        }
        Some(DiskIo::IoUring) => Some("io_uring"),
    };
    if disk.shareable && format != "raw" {
        return unsupported(format!("{what}: a shareable disk must be raw"));
    }
    if disk.readonly && !cdrom && bus != DiskBus::Virtio {
        return unsupported(format!(
            "{what}: a read-only disk needs bus='virtio' (IDE and SATA disks cannot be \
             read-only)"
        ));
    }
    Ok(DiskSettings {
        format,
        cache,
        aio,
        readonly: disk.readonly || cdrom,
        cdrom,
    })
}

/// The file or device a disk reads (None: an empty cdrom).
fn disk_path<'a>(disk: &'a vireo_xml::Disk, what: &str) -> Result<Option<&'a str>> {
    let path = match disk.disk_type {
        DiskType::File => disk.source.as_ref().and_then(|s| s.file.as_deref()),
        DiskType::Block => disk.source.as_ref().and_then(|s| s.dev.as_deref()),
        other => {
            return unsupported(format!(
                "{what}: type '{other}' is not supported yet (file or block)"
            ))
        }
    };
    if path.is_none() && disk.device != DiskDevice::Cdrom {
        return unsupported(format!("{what}: no <source> (only a cdrom can be empty)"));
    }
    Ok(path)
}

/// A disk's block nodes, each a list of (key, value) in the order QEMU is given them.
pub struct DiskNodes {
    /// Deepest first: a node is defined before the one that uses it.
    pub nodes: Vec<Vec<(&'static str, Value)>>,
    /// The top (format) node: the device's `drive`.
    pub top: String,
}

impl DiskNodes {
    /// The node names, top first (the order to remove them in).
    pub fn names(&self) -> Vec<String> {
        self.nodes
            .iter()
            .rev()
            .filter_map(|n| {
                n.iter()
                    .find(|(k, _)| *k == "node-name")
                    .and_then(|(_, v)| v.as_str().map(str::to_string))
            })
            .collect()
    }
}

/// The block nodes of a disk whose image is `path`, named `libvirt-{node}-…`: every layer
/// of a qcow2 chain with the format its overlay records (QEMU probes none), then the
/// image's storage and format nodes; `secret` is the id of an encrypted image's key.
fn disk_nodes(
    disk: &vireo_xml::Disk,
    path: &str,
    node: usize,
    set: &DiskSettings,
    secret: Option<&str>,
    what: &str,
) -> Result<DiskNodes> {
    let format = set.format;
    // (An image that is not there yet has no chain to read; QEMU says it is missing.)
    let backing: Vec<Layer> = if format == "qcow2" && Path::new(path).exists() {
        match vireo_storagefile::chain(Path::new(path), "qcow2") {
            Ok(mut layers) => {
                layers.remove(0);
                layers
            }
            Err(e) => return unsupported(format!("{what}: {e}")),
        }
    } else {
        Vec::new()
    };
    let proto = match (disk.disk_type, set.cdrom) {
        (DiskType::Block, true) => "host_cdrom",
        (DiskType::Block, false) => "host_device",
        _ => "file",
    };
    let cache_json = set
        .cache
        .map(|(direct, no_flush, _)| json!({"direct": direct, "no-flush": no_flush}));
    let layer_names = |k: usize| {
        (
            format!("libvirt-{node}-b{k}-storage"),
            format!("libvirt-{node}-b{k}-format"),
        )
    };
    let mut nodes = Vec::new();
    for (k, layer) in backing.iter().enumerate().rev() {
        let (sname, fname) = layer_names(k + 1);
        let lpath = layer.path.to_string_lossy();
        let mut storage = vec![
            ("driver", json!("file")),
            ("filename", json!(lpath)),
            ("node-name", json!(sname)),
        ];
        if let Some(c) = &cache_json {
            storage.push(("cache", c.clone()));
        }
        storage.push(("auto-read-only", json!(true)));
        storage.push(("discard", json!("unmap")));
        let mut fmt = vec![("node-name", json!(fname)), ("read-only", json!(true))];
        if let Some(c) = &cache_json {
            fmt.push(("cache", c.clone()));
        }
        fmt.push(("driver", json!(layer.format)));
        fmt.push(("file", json!(sname)));
        if k + 1 < backing.len() {
            fmt.push(("backing", json!(layer_names(k + 2).1)));
        }
        nodes.push(storage);
        nodes.push(fmt);
    }
    let storage_name = format!("libvirt-{node}-storage");
    let format_name = format!("libvirt-{node}-format");
    let mut storage = vec![("driver", json!(proto)), ("filename", json!(path))];
    if let Some(a) = set.aio {
        storage.push(("aio", json!(a)));
    }
    storage.push(("node-name", json!(storage_name)));
    if let Some(c) = &cache_json {
        storage.push(("cache", c.clone()));
    }
    storage.push(("auto-read-only", json!(true)));
    storage.push(("discard", json!("unmap")));
    let mut fmt = vec![
        ("node-name", json!(format_name)),
        ("read-only", json!(set.readonly)),
    ];
    if let Some(c) = cache_json {
        fmt.push(("cache", c));
    }
    if disk.driver.as_ref().and_then(|d| d.discard) == Some(vireo_xml::DiskDiscard::Unmap) {
        fmt.push(("discard", json!("unmap")));
    }
    // LUKS: a raw disk is a LUKS image, a qcow2 one is encrypted inside.
    let mut driver_name = format;
    if let Some(secret) = secret {
        if format == "raw" {
            driver_name = "luks";
            fmt.push(("key-secret", json!(secret)));
        } else {
            fmt.push(("encrypt", json!({"format": "luks", "key-secret": secret})));
        }
    }
    fmt.push(("driver", json!(driver_name)));
    fmt.push(("file", json!(storage_name)));
    if !backing.is_empty() {
        fmt.push(("backing", json!(layer_names(1).1)));
    }
    nodes.push(storage);
    nodes.push(fmt);
    Ok(DiskNodes {
        nodes,
        top: format_name,
    })
}

/// A disk hot-plugged into a running VM (virtio only, as on real hardware a disk needs a
/// hot-pluggable bus): its block nodes, named `libvirt-{node}-…`, and the `device_add`
/// arguments. Returns (nodes, device, device id).
pub fn hotplug_disk(disk: &vireo_xml::Disk, node: usize) -> Result<(DiskNodes, Value, String)> {
    let dev = disk.target.dev.as_str();
    let what = format!("<disk> '{dev}'");
    let Some((prefix, index)) = disk_name_index(dev) else {
        return unsupported(format!("{what}: not a valid disk target name"));
    };
    let bus = disk.target.bus.unwrap_or(if prefix == "vd" {
        DiskBus::Virtio
    } else {
        DiskBus::Ide
    });
    if bus != DiskBus::Virtio || disk.device != DiskDevice::Disk {
        return unsupported(format!(
            "{what}: only virtio disks can be hot-plugged (bus '{bus}', device '{}')",
            disk.device
        ));
    }
    if disk.encryption.is_some() {
        return unsupported(format!(
            "{what}: hot-plugging an encrypted disk is not supported by Vireo yet"
        ));
    }
    let set = disk_settings(disk, bus, &what)?;
    let Some(path) = disk_path(disk, &what)? else {
        return unsupported(format!("{what}: no <source>"));
    };
    let nodes = disk_nodes(disk, path, node, &set, None, &what)?;
    let id = format!("virtio-disk{index}");
    let mut device = json!({"driver": "virtio-blk-pci", "id": id, "drive": nodes.top});
    if let Some(c) = set.cache {
        device["write-cache"] = json!(on_off(c.2));
    }
    if let Some(serial) = &disk.serial {
        device["serial"] = json!(serial);
    }
    if disk.shareable {
        device["share-rw"] = json!(true);
    }
    hotplug_pci_place(&mut device, disk.address.as_ref(), &what)?;
    Ok((nodes, device, id))
}

/// The block nodes of a cdrom's new medium, named `libvirt-{node}-…` (None: no medium).
pub fn media_nodes(disk: &vireo_xml::Disk, node: usize) -> Result<Option<DiskNodes>> {
    let what = format!("<disk> '{}'", disk.target.dev);
    if disk.device != DiskDevice::Cdrom {
        return unsupported(format!("{what}: only a cdrom's medium can be changed"));
    }
    if disk.encryption.is_some() {
        return unsupported(format!("{what}: an encrypted cdrom is not supported"));
    }
    let bus = disk.target.bus.unwrap_or(DiskBus::Ide);
    let set = disk_settings(disk, bus, &what)?;
    match disk_path(disk, &what)? {
        Some(path) => Ok(Some(disk_nodes(disk, path, node, &set, None, &what)?)),
        None => Ok(None),
    }
}

/// The `device_add` arguments of an input device hot-plugged with id `id` (USB or
/// virtio; PS/2 devices are part of the machine).
pub fn input_device(inp: &vireo_xml::Input, id: &str) -> Result<Value> {
    let what = format!("<input type='{}'>", inp.input_type);
    if matches!(inp.input_type, InputType::Passthrough | InputType::Evdev)
        || !inp.source_attrs.is_empty()
    {
        return unsupported(format!("{what} (host input passthrough) is not supported"));
    }
    let bus = inp.bus.unwrap_or(match inp.input_type {
        InputType::Tablet => InputBus::Usb,
        _ => InputBus::Ps2,
    });
    let driver = match (bus, inp.input_type) {
        (InputBus::Usb, InputType::Tablet) => "usb-tablet",
        (InputBus::Usb, InputType::Mouse) => "usb-mouse",
        (InputBus::Usb, _) => "usb-kbd",
        (InputBus::Virtio, InputType::Tablet) => "virtio-tablet-pci",
        (InputBus::Virtio, InputType::Mouse) => "virtio-mouse-pci",
        (InputBus::Virtio, _) => "virtio-keyboard-pci",
        (other, _) => {
            return unsupported(format!(
                "{what}: bus '{other}' cannot be hot-plugged (usb or virtio)"
            ))
        }
    };
    match inp.model.as_deref() {
        None => {}
        Some("virtio") if bus == InputBus::Virtio => {}
        Some(m) => return unsupported(format!("{what}: model '{m}' is not supported")),
    }
    let mut v = json!({"driver": driver, "id": id});
    if bus == InputBus::Usb {
        if inp.address.is_some() {
            return unsupported(format!(
                "{what}: a hot-plugged USB input's <address> is not supported yet"
            ));
        }
        v["bus"] = json!("usb.0");
    } else {
        hotplug_pci_place(&mut v, inp.address.as_ref(), &what)?;
    }
    Ok(v)
}

/// Puts a hot-plugged PCI device where its `<address>` says (`bus`: `pci.N` for the
/// controller of index N; on bus 0 QEMU's main bus, whatever its name), or lets QEMU
/// choose when it has none.
fn hotplug_pci_place(v: &mut Value, addr: Option<&Address>, what: &str) -> Result<()> {
    let Some(a) = addr else { return Ok(()) };
    let p = PciBus::parse(a, what)?;
    if p.bus != 0 {
        v["bus"] = json!(format!("pci.{}", p.bus));
    }
    v["addr"] = json!(if p.function == 0 {
        format!("{:#x}", p.slot)
    } else {
        format!("{:#x}.{:#x}", p.slot, p.function)
    });
    if p.multifunction {
        v["multifunction"] = json!(true);
    }
    Ok(())
}

/// A virtio channel hot-plugged with ids `id` (device) and `chardev`: the `chardev-add`
/// arguments (a UNIX socket the VM listens on: its `<source path>`, else `default_path`)
/// and the `device_add` ones.
pub fn channel_device(
    ch: &Chardev,
    id: &str,
    chardev: &str,
    default_path: &Path,
) -> Result<(Value, Value)> {
    let what = "<channel>";
    match ch.target.as_ref().and_then(|t| t.target_type.as_deref()) {
        Some("virtio") => {}
        other => {
            return unsupported(format!(
                "{what}: target type '{}' is not supported (virtio)",
                other.unwrap_or_default()
            ))
        }
    }
    if ch.dev_type != ChardevType::Unix {
        return unsupported(format!(
            "{what}: only a UNIX socket channel can be hot-plugged"
        ));
    }
    let src = ch.sources.first();
    if src
        .and_then(|s| s.mode.as_deref())
        .is_some_and(|m| m != "bind")
    {
        return unsupported(format!(
            "{what}: a hot-plugged channel's socket is one the VM listens on (mode='bind')"
        ));
    }
    let path = src
        .and_then(|s| s.path.clone())
        .unwrap_or_else(|| default_path.display().to_string());
    let backend = json!({
        "id": chardev,
        "backend": {"type": "socket", "data": {
            "addr": {"type": "unix", "data": {"path": path}},
            "server": true,
            "wait": false,
        }},
    });
    let mut dev = json!({"driver": "virtserialport", "bus": "virtio-serial0.0", "chardev": chardev, "id": id});
    if let Some(name) = ch.target.as_ref().and_then(|t| t.name.as_deref()) {
        dev["name"] = json!(name);
    }
    Ok((backend, dev))
}

/// The QEMU id the command line gives a disk's device (its alias in the live XML).
pub fn disk_alias(disk: &vireo_xml::Disk) -> Option<String> {
    let (prefix, index) = disk_name_index(&disk.target.dev)?;
    let bus = disk.target.bus.unwrap_or(match prefix {
        "hd" => DiskBus::Ide,
        "vd" => DiskBus::Virtio,
        _ => DiskBus::Scsi,
    });
    let drive = |max_bus, max_unit| match &disk.address {
        Some(a) => drive_address(a, "", max_bus, max_unit).ok(),
        None => Some((index / 2, index % 2)),
    };
    match bus {
        DiskBus::Virtio => Some(format!("virtio-disk{index}")),
        DiskBus::Ide => drive(1, 1).map(|(b, u)| format!("ide0-{b}-{u}")),
        DiskBus::Sata => {
            let port = match &disk.address {
                Some(a) => drive_address(a, "", 0, 5).ok()?.1,
                None => index,
            };
            Some(format!("sata0-0-{port}"))
        }
        _ => None,
    }
}

/// A node list as a QMP argument object.
pub fn node_object(fields: &[(&'static str, Value)]) -> Value {
    Value::Object(
        fields
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_names() {
        assert_eq!(disk_name_index("vda"), Some(("vd", 0)));
        assert_eq!(disk_name_index("sdb"), Some(("sd", 1)));
        assert_eq!(disk_name_index("hdd"), Some(("hd", 3)));
        assert_eq!(disk_name_index("vdz"), Some(("vd", 25)));
        assert_eq!(disk_name_index("vdaa"), Some(("vd", 26)));
        assert_eq!(disk_name_index("xvdb"), Some(("xvd", 1)));
        assert_eq!(disk_name_index("vda1"), None);
        assert_eq!(disk_name_index("vd"), None);
        assert_eq!(disk_name_index("nvme0n1"), None);
        assert_eq!(disk_name_index("vdzzzzz"), None);
    }

    #[test]
    fn escaping_and_json() {
        assert_eq!(esc("/a,b,,c"), "/a,,b,,,,c");
        assert_eq!(
            Opts::new("file").set("id", "x").set("path", "/a,b").done(),
            "file,id=x,path=/a,,b"
        );
        assert_eq!(
            json_obj(&[("b", json!(1)), ("a", json!("x\"y"))]),
            r#"{"b":1,"a":"x\"y"}"#
        );
    }

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

    #[test]
    fn pci_slots() {
        let mut bus = PciBus::new(Family::Pc);
        assert_eq!(
            bus.place_at(1, 2, "usb").ok(),
            Some("bus=pci.0,addr=0x1.0x2".into())
        );
        assert_eq!(bus.next_free("x").ok(), Some("bus=pci.0,addr=0x2".into()));
        let a = Address::pci(0, 0, 3, 0);
        assert!(bus.reserve(&a, "y").is_ok());
        assert!(bus.reserve(&a, "z").is_err());
        assert_eq!(bus.next_free("x").ok(), Some("bus=pci.0,addr=0x4".into()));
        // Other buses are the controllers' (pci::assign checked they exist).
        assert!(bus.reserve(&Address::pci(0, 1, 0, 0), "w").is_ok());
        assert_eq!(bus.format_at(1, 0, 0, false), "bus=pci.1,addr=0x0");
        assert!(bus.reserve(&Address::pci(0, 0, 1, 0), "v").is_err());
        let mut q = PciBus::new(Family::Q35);
        assert_eq!(q.next_free("x").ok(), Some("bus=pcie.0,addr=0x1".into()));
    }
}
