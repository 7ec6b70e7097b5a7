//! The top level of a domain definition: identity, memory, vCPUs, OS boot
//! configuration, features, CPU model, clock and lifecycle actions.

use std::collections::HashSet;

use roxmltree::Node;

use crate::devices::Devices;
use crate::model::{field, XmlElement, XmlValue, YesNo};
use crate::platform::MemoryBacking;
use crate::util::{
    attr, attr_enum, attr_int, child, child_text, missing, one_of, parse_int, positive, str_enum,
    text, Writer, MAX_GENERIC_DEPTH,
};
use crate::{format_uuid, parse_uuid, to_kib, unit_multiplier, xml_element, XmlError};

/// Hypervisor types libvirt knows for `<domain type=...>`.
pub const DOMAIN_TYPES: &[&str] = &[
    "none",
    "qemu",
    "kqemu",
    "kvm",
    "xen",
    "lxc",
    "uml",
    "openvz",
    "test",
    "vmware",
    "hyperv",
    "vbox",
    "phyp",
    "parallels",
    "bhyve",
    "vz",
    "ch",
    "hvf",
];

/// Parts of a domain definition kept as they are written.
const DOMAIN_VERBATIM: &[&str] = &["domain/metadata"];

/// What the model leaves out of a definition because it says the same another way:
/// `<vcpu current=N>` with N the maximum; an empty `<devices/>` or `<features/>`; and the
/// `id` of a running domain, which a definition does not carry.
const DOMAIN_NORMALISED: &[&str] = &[
    "domain@id",
    "domain/vcpu@current",
    "domain/iothreads",
    "domain/iothreadids",
    "domain/devices",
    "domain/features",
];

/// Children of `<features>` that are kept; any other child is refused by
/// [`Domain::parse_kept`] (and dropped by [`Domain::parse`]).
pub const KNOWN_FEATURES: &[&str] = &[
    "acpi",
    "apic",
    "pae",
    "hap",
    "hyperv",
    "viridian",
    "kvm",
    "xen",
    "privnet",
    "pvspinlock",
    "capabilities",
    "pmu",
    "vmport",
    "gic",
    "smm",
    "ioapic",
    "hpt",
    "vmcoreinfo",
    "htm",
    "nested-hv",
    "msrs",
    "ccf-assist",
    "cfpc",
    "sbbc",
    "ibs",
    "tcg",
    "async-teardown",
    "ras",
    "ps2",
];

/// OS types accepted in `<os><type>`.
pub const OS_TYPES: &[&str] = &["hvm", "xen", "linux", "xenpvh", "exe", "uml"];

str_enum! {
    /// Action taken on guest power-off, reboot or crash.
    LifecycleAction, "lifecycle action" {
        Destroy => "destroy",
        Restart => "restart",
        Preserve => "preserve",
        RenameRestart => "rename-restart",
        CoredumpDestroy => "coredump-destroy",
        CoredumpRestart => "coredump-restart",
    }
}

str_enum! {
    /// `<vcpu placement=...>`.
    VcpuPlacement, "vcpu placement" {
        Static => "static",
        Auto => "auto",
    }
}

str_enum! {
    /// `<boot dev=...>` inside `<os>`.
    BootDev, "boot device" {
        Hd => "hd",
        Fd => "fd",
        Cdrom => "cdrom",
        Network => "network",
    }
}

str_enum! {
    /// `<os firmware=...>`.
    OsFirmware, "os firmware" {
        Bios => "bios",
        Efi => "efi",
    }
}

str_enum! {
    /// `<loader type=...>`.
    LoaderType, "loader type" {
        Rom => "rom",
        Pflash => "pflash",
    }
}

str_enum! {
    /// `<cpu mode=...>`.
    CpuMode, "cpu mode" {
        Custom => "custom",
        HostModel => "host-model",
        HostPassthrough => "host-passthrough",
        Maximum => "maximum",
    }
}

str_enum! {
    /// `<cpu match=...>`.
    CpuMatch, "cpu match" {
        Minimum => "minimum",
        Exact => "exact",
        Strict => "strict",
    }
}

str_enum! {
    /// `<cpu check=...>`.
    CpuCheck, "cpu check" {
        None => "none",
        Partial => "partial",
        Full => "full",
    }
}

str_enum! {
    /// `<cpu><model fallback=...>`.
    CpuFallback, "cpu model fallback" {
        Allow => "allow",
        Forbid => "forbid",
    }
}

str_enum! {
    /// `<cpu><feature policy=...>`.
    #[derive(Default)]
    CpuFeaturePolicy, "cpu feature policy" {
        Force => "force",
        #[default]
        Require => "require",
        Optional => "optional",
        Disable => "disable",
        Forbid => "forbid",
    }
}

str_enum! {
    /// `<clock offset=...>`.
    #[derive(Default)]
    ClockOffset, "clock offset" {
        #[default]
        Utc => "utc",
        Localtime => "localtime",
        Timezone => "timezone",
        Variable => "variable",
        Absolute => "absolute",
    }
}

str_enum! {
    /// `<timer name=...>`.
    TimerName, "timer name" {
        Platform => "platform",
        Rtc => "rtc",
        Tsc => "tsc",
        Hpet => "hpet",
        Pit => "pit",
        Kvmclock => "kvmclock",
        Hypervclock => "hypervclock",
        Armvtimer => "armvtimer",
    }
}

str_enum! {
    /// `<timer tickpolicy=...>`.
    TickPolicy, "timer tickpolicy" {
        Delay => "delay",
        Catchup => "catchup",
        Merge => "merge",
        Discard => "discard",
    }
}

/// A complete domain definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// `<domain type=...>`: hypervisor type, e.g. `kvm` or `qemu`.
    pub dom_type: String,
    pub name: String,
    /// `None` when the definition has no `<uuid>` (the daemon fills one).
    pub uuid: Option<[u8; 16]>,
    pub title: Option<String>,
    pub description: Option<String>,
    /// Inner XML of `<metadata>`, kept verbatim. Each top-level child
    /// carries the namespace declarations it needs. `Some("")` for an
    /// empty `<metadata/>`.
    pub metadata: Option<String>,
    /// `<maxMemory slots>`: room for memory plugged in later.
    pub max_memory: Option<crate::MaxMemory>,
    /// `<memory>`: maximum memory of the guest at boot, in KiB (memory devices included,
    /// as libvirt counts it).
    pub memory_kib: u64,
    /// `<currentMemory>` in KiB; equals `memory_kib` when absent, and is
    /// clamped to it like libvirt does.
    pub current_memory_kib: u64,
    /// `<memoryBacking>`.
    pub memory_backing: Option<MemoryBacking>,
    /// `<vcpu>`: maximum number of vCPUs (default 1).
    pub vcpus: u32,
    /// `<vcpu current=...>`: vCPUs online at boot, when fewer than `vcpus`.
    pub vcpu_current: Option<u32>,
    /// `<vcpu placement=...>` (default static, always emitted).
    pub vcpu_placement: VcpuPlacement,
    /// `<vcpu cpuset=...>`.
    pub vcpu_cpuset: Option<String>,
    /// `<iothreads>` and `<iothreadids>`: QEMU's I/O threads.
    pub iothreads: crate::IoThreads,
    /// `<cputune>`: where vCPUs and QEMU's own threads may run, and their CPU share.
    pub cputune: Option<Cputune>,
    /// `<memtune>`: memory limits of the domain's cgroup.
    pub memtune: Option<crate::Memtune>,
    /// `<blkiotune>`: block I/O weight of the domain's cgroup.
    pub blkiotune: Option<crate::Blkiotune>,
    /// `<numatune>`: the host NUMA nodes its memory comes from.
    pub numatune: Option<crate::Numatune>,
    /// `<sysinfo>` elements (SMBIOS, fw_cfg), in order.
    pub sysinfo: Vec<Sysinfo>,
    pub os: Os,
    /// Children of `<features>`, in document order.
    pub features: Vec<Feature>,
    pub cpu: Option<Cpu>,
    pub clock: Option<Clock>,
    pub on_poweroff: LifecycleAction,
    pub on_reboot: LifecycleAction,
    pub on_crash: LifecycleAction,
    pub pm: Option<Pm>,
    pub devices: Devices,
}

impl Default for Domain {
    fn default() -> Self {
        Domain {
            dom_type: "qemu".to_string(),
            name: String::new(),
            uuid: None,
            title: None,
            description: None,
            metadata: None,
            max_memory: None,
            memory_kib: 0,
            current_memory_kib: 0,
            vcpus: 1,
            vcpu_current: None,
            vcpu_placement: VcpuPlacement::Static,
            vcpu_cpuset: None,
            sysinfo: Vec::new(),
            os: Os::default(),
            features: Vec::new(),
            cpu: None,
            clock: None,
            on_poweroff: LifecycleAction::Destroy,
            on_reboot: LifecycleAction::Restart,
            on_crash: LifecycleAction::Destroy,
            pm: None,
            cputune: None,
            memtune: None,
            blkiotune: None,
            numatune: None,
            iothreads: Default::default(),
            memory_backing: None,
            devices: Devices::default(),
        }
    }
}

xml_element! {
    /// `<os>`.
    #[derive(Default)]
    pub struct Os {
        attr_opt firmware: OsFirmware = "firmware",
        child os_type: OsType = "type",
        /// `<firmware><feature …/></firmware>`: what the chosen firmware must (not) do.
        child_opt firmware_features: FirmwareFeatures = "firmware",
        child_opt loader: Loader = "loader",
        child_opt nvram: Nvram = "nvram",
        leaf_opt kernel: String = "kernel",
        leaf_opt initrd: String = "initrd",
        leaf_opt cmdline: String = "cmdline",
        leaf_opt dtb: String = "dtb",
        /// `<boot dev=...>` elements, order kept.
        children boot_devs: OsBoot = "boot",
        child_opt bootmenu: BootMenu = "bootmenu",
        child_opt smbios: Smbios = "smbios",
    }
}

xml_element! {
    /// `<os><smbios mode=...>`: where the guest's SMBIOS tables come from (`emulate`,
    /// `host`, or `sysinfo`: the domain's `<sysinfo type='smbios'>`).
    pub struct Smbios {
        attr mode: String = "mode",
    }
}

xml_element! {
    /// `<sysinfo type='smbios'>` (or `fwcfg`): what the guest's firmware tables say.
    pub struct Sysinfo {
        attr sysinfo_type: String = "type",
        child_opt bios: SysinfoBlock = "bios",
        child_opt system: SysinfoBlock = "system",
        children base_boards: SysinfoBlock = "baseBoard",
        child_opt chassis: SysinfoBlock = "chassis",
        child_opt oem_strings: OemStrings = "oemStrings",
        /// `type='fwcfg'`: `<entry name=...>` directly inside.
        children entries: SysinfoEntry = "entry",
    }
}

xml_element! {
    /// `<bios>`, `<system>`, `<baseBoard>`, `<chassis>`: named entries.
    pub struct SysinfoBlock {
        children entries: SysinfoEntry = "entry",
    }
}

xml_element! {
    /// `<entry name=...>VALUE</entry>` (fwcfg's may name a `file` instead).
    pub struct SysinfoEntry {
        attr_opt name: String = "name",
        attr_opt file: String = "file",
        text_opt value: String = "",
    }
}

xml_element! {
    /// `<oemStrings>`: unnamed entries.
    pub struct OemStrings {
        children entries: SysinfoEntry = "entry",
    }
}

impl Os {
    /// The `<boot dev=...>` devices, in order.
    pub fn boot_devs(&self) -> Vec<BootDev> {
        self.boot_devs.iter().map(|b| b.dev).collect()
    }
}

xml_element! {
    /// `<os><type arch=... machine=...>hvm</type>`.
    pub struct OsType {
        /// `x86_64` when not given.
        attr_def arch: Arch = "arch",
        attr_opt machine: String = "machine",
        /// The OS type, e.g. `hvm`.
        text name: String = "",
    }
    check OsType::check;
}

impl OsType {
    fn check(&mut self) -> Result<(), XmlError> {
        if self.name.is_empty() {
            return Err(missing("<type>", "<os>"));
        }
        if !OS_TYPES.contains(&self.name.as_str()) {
            return Err(XmlError::Invalid(format!(
                "unknown OS type '{}'",
                self.name
            )));
        }
        Ok(())
    }
}

impl Default for OsType {
    fn default() -> Self {
        OsType {
            arch: Arch::default(),
            machine: None,
            name: "hvm".to_string(),
        }
    }
}

/// A CPU architecture name such as `x86_64` (the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arch(pub String);

impl Default for Arch {
    fn default() -> Self {
        Arch("x86_64".to_string())
    }
}

impl std::ops::Deref for Arch {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl XmlValue for Arch {
    fn from_xml(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("expected an architecture name".into());
        }
        Ok(Arch(s.to_string()))
    }
    fn to_xml(&self) -> String {
        self.0.clone()
    }
}

xml_element! {
    /// `<os><boot dev=...>`.
    pub struct OsBoot {
        attr dev: BootDev = "dev",
    }
}

xml_element! {
    /// `<os><firmware>`.
    pub struct FirmwareFeatures {
        children features: FirmwareFeature = "feature",
    }
}

xml_element! {
    /// `<os><firmware><feature enabled='yes' name='secure-boot'/>`.
    pub struct FirmwareFeature {
        yes_no enabled: bool = "enabled",
        attr name: String = "name",
    }
}

impl Os {
    /// Whether the firmware feature `name` is asked for (Some(true)) or refused.
    pub fn firmware_feature(&self, name: &str) -> Option<bool> {
        self.firmware_features
            .as_ref()?
            .features
            .iter()
            .find(|f| f.name == name)
            .and_then(|f| f.enabled)
    }
}

xml_element! {
    /// `<os><loader>`.
    #[derive(Default)]
    pub struct Loader {
        yes_no readonly: bool = "readonly",
        yes_no secure: bool = "secure",
        attr_opt loader_type: LoaderType = "type",
        text_opt path: String = "",
    }
}

xml_element! {
    /// `<os><nvram>`.
    #[derive(Default)]
    pub struct Nvram {
        attr_opt template: String = "template",
        text_opt path: String = "",
    }
}

xml_element! {
    /// `<os><bootmenu>`.
    pub struct BootMenu {
        attr enable: YesNo = "enable",
        attr_opt timeout: u32 = "timeout",
    }
}

/// One child of `<features>`, kept generically: its name, attributes (in
/// order), child elements and text. Flag features such as `<acpi/>` have
/// only a name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Feature {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Feature>,
    /// Trimmed text content, when the element has no child elements.
    pub text: Option<String>,
}

impl Feature {
    /// A flag feature such as `acpi`.
    pub fn flag(name: &str) -> Feature {
        Feature {
            name: name.to_string(),
            ..Feature::default()
        }
    }

    /// Value of attribute `key`.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

xml_element! {
    /// `<cpu>`.
    #[derive(Default)]
    pub struct Cpu {
        attr_opt mode: CpuMode = "mode",
        attr_opt match_mode: CpuMatch = "match",
        attr_opt check: CpuCheck = "check",
        on_off migratable: bool = "migratable",
        child_opt model: CpuModel = "model",
        leaf_opt vendor: String = "vendor",
        child_opt topology: CpuTopology = "topology",
        children features: CpuFeature = "feature",
        child_opt numa: crate::Numa = "numa",
    }
}

xml_element! {
    /// `<cpu><model>`.
    #[derive(Default)]
    pub struct CpuModel {
        attr_opt fallback: CpuFallback = "fallback",
        attr_opt vendor_id: String = "vendor_id",
        /// Model name (element text); may be empty.
        text name: String = "",
    }
}

xml_element! {
    /// `<cpu><topology>`.
    pub struct CpuTopology {
        attr sockets: u32 = "sockets",
        attr_opt dies: u32 = "dies",
        attr cores: u32 = "cores",
        attr threads: u32 = "threads",
    }
    check CpuTopology::check;
}

impl CpuTopology {
    fn check(&mut self) -> Result<(), XmlError> {
        for (v, name) in [
            (Some(self.sockets), "sockets"),
            (self.dies, "dies"),
            (Some(self.cores), "cores"),
            (Some(self.threads), "threads"),
        ] {
            positive(v, &format!("attribute '{name}' of <topology>"))?;
        }
        Ok(())
    }
}

xml_element! {
    /// `<cpu><feature>`.
    pub struct CpuFeature {
        /// libvirt defaults the policy to `require` for guest CPUs.
        attr_def policy: CpuFeaturePolicy = "policy",
        attr name: String = "name",
    }
}

xml_element! {
    /// `<clock>`.
    pub struct Clock {
        /// `offset` (default utc).
        attr_def offset: ClockOffset = "offset",
        /// `timezone` for `offset='timezone'`.
        attr_opt timezone: String = "timezone",
        /// `adjustment` (seconds, or `reset`).
        attr_opt adjustment: String = "adjustment",
        /// `basis` for `offset='variable'`.
        attr_opt basis: String = "basis",
        /// `start` for `offset='absolute'`.
        attr_opt start: u64 = "start",
        children timers: Timer = "timer",
    }
    check Clock::check;
}

impl Clock {
    fn check(&mut self) -> Result<(), XmlError> {
        one_of(&self.basis, &["utc", "localtime"], "clock basis")
    }
}

xml_element! {
    /// `<clock><timer>`.
    pub struct Timer {
        attr name: TimerName = "name",
        /// `track` (boot, guest, wall, realtime).
        attr_opt track: String = "track",
        attr_opt tickpolicy: TickPolicy = "tickpolicy",
        /// `frequency` (tsc).
        attr_opt frequency: u64 = "frequency",
        /// `mode` (tsc: auto, native, emulate, paravirt, smpsafe).
        attr_opt mode: String = "mode",
        yes_no present: bool = "present",
    }
    check Timer::check;
}

impl Timer {
    fn check(&mut self) -> Result<(), XmlError> {
        one_of(
            &self.track,
            &["boot", "guest", "wall", "realtime"],
            "timer track",
        )?;
        one_of(
            &self.mode,
            &["auto", "native", "emulate", "paravirt", "smpsafe"],
            "timer mode",
        )
    }
}

xml_element! {
    /// `<cputune>`: the domain's share of the host's CPU time (`shares`) and its
    /// bandwidth (a `quota` of µs per `period`, for each vCPU, for the whole domain, for
    /// QEMU's own threads and for its I/O threads), and the host CPUs each vCPU, and
    /// QEMU's other threads, may run on.
    #[derive(Default)]
    pub struct Cputune {
        leaf_opt shares: u64 = "shares",
        leaf_opt period: u64 = "period",
        leaf_opt quota: i64 = "quota",
        leaf_opt global_period: u64 = "global_period",
        leaf_opt global_quota: i64 = "global_quota",
        leaf_opt emulator_period: u64 = "emulator_period",
        leaf_opt emulator_quota: i64 = "emulator_quota",
        leaf_opt iothread_period: u64 = "iothread_period",
        leaf_opt iothread_quota: i64 = "iothread_quota",
        children vcpupins: VcpuPin = "vcpupin",
        child_opt emulatorpin: EmulatorPin = "emulatorpin",
        children iothreadpins: crate::IoThreadPin = "iothreadpin",
    }
    check Cputune::check;
}

/// The most a CPU quota may be (libvirt's bound, in µs).
pub const CPU_QUOTA_MAX: i64 = 17_592_186_044_415;

impl Cputune {
    pub fn is_empty(&self) -> bool {
        self.vcpupins.is_empty()
            && self.emulatorpin.is_none()
            && self.iothreadpins.is_empty()
            && self.shares.is_none()
            && self.bandwidth_is_empty()
    }

    /// No period or quota is set.
    pub fn bandwidth_is_empty(&self) -> bool {
        self.global_period.is_none() && self.global_quota.is_none() && !self.has_thread_bandwidth()
    }

    /// A period or quota is set for the vCPUs, QEMU's own threads or the I/O threads
    /// (each kind of thread in cgroups of its own).
    pub fn has_thread_bandwidth(&self) -> bool {
        self.period.is_some()
            || self.quota.is_some()
            || self.emulator_period.is_some()
            || self.emulator_quota.is_some()
            || self.iothread_period.is_some()
            || self.iothread_quota.is_some()
    }

    fn check(&mut self) -> Result<(), XmlError> {
        check_cpu_tune("shares", self.shares.map(|v| v as i64))?;
        for (name, p) in [
            ("period", self.period),
            ("global_period", self.global_period),
            ("emulator_period", self.emulator_period),
            ("iothread_period", self.iothread_period),
        ] {
            check_cpu_tune(name, p.map(|v| v as i64))?;
        }
        for (name, q) in [
            ("quota", self.quota),
            ("global_quota", self.global_quota),
            ("emulator_quota", self.emulator_quota),
            ("iothread_quota", self.iothread_quota),
        ] {
            check_cpu_tune(name, q)?;
        }
        Ok(())
    }

    /// The CPU set I/O thread `id` is pinned to, if it is.
    pub fn iothread(&self, id: u32) -> Option<&str> {
        self.iothreadpins
            .iter()
            .find(|p| p.iothread == id)
            .map(|p| p.cpuset.as_str())
    }

    /// The CPU set vCPU `n` is pinned to, if it is.
    pub fn vcpu(&self, n: u32) -> Option<&str> {
        self.vcpupins
            .iter()
            .find(|p| p.vcpu == n)
            .map(|p| p.cpuset.as_str())
    }
}

/// A `<cputune>` value in libvirt's range: shares 2–262144, a period 1000–1000000 µs,
/// a quota -1 (none) or 1000–[`CPU_QUOTA_MAX`] µs (0 leaves a value unset).
pub fn check_cpu_tune(name: &str, v: Option<i64>) -> Result<(), XmlError> {
    let Some(v) = v.filter(|v| *v != 0) else {
        return Ok(());
    };
    let ok = match name {
        "shares" | "cpu_shares" => (2..=262_144).contains(&v),
        n if n.ends_with("period") => (1000..=1_000_000).contains(&v),
        _ => v == -1 || (1000..=CPU_QUOTA_MAX).contains(&v),
    };
    if ok {
        Ok(())
    } else {
        Err(XmlError::Invalid(format!(
            "value of cputune {name} ({v}) is out of range"
        )))
    }
}

xml_element! {
    /// `<vcpupin vcpu='N' cpuset='…'/>`.
    pub struct VcpuPin {
        attr vcpu: u32 = "vcpu",
        attr cpuset: String = "cpuset",
    }
    check VcpuPin::check;
}

impl VcpuPin {
    fn check(&mut self) -> Result<(), XmlError> {
        self.cpuset = crate::format_cpuset(&crate::parse_cpuset(&self.cpuset)?);
        Ok(())
    }
}

xml_element! {
    /// `<emulatorpin cpuset='…'/>`.
    pub struct EmulatorPin {
        attr cpuset: String = "cpuset",
    }
    check EmulatorPin::check;
}

impl EmulatorPin {
    fn check(&mut self) -> Result<(), XmlError> {
        self.cpuset = crate::format_cpuset(&crate::parse_cpuset(&self.cpuset)?);
        Ok(())
    }
}

xml_element! {
    /// `<pm>`: whether the guest may suspend to memory (S3) or to disk (S4).
    #[derive(Default)]
    pub struct Pm {
        in_attr_opt suspend_to_mem: YesNo = "suspend-to-mem@enabled",
        in_attr_opt suspend_to_disk: YesNo = "suspend-to-disk@enabled",
    }
}

impl Domain {
    /// Parse a domain definition.
    pub fn parse(xml: &str) -> Result<Domain, XmlError> {
        crate::model::parse_document(xml, "domain", |root| Domain::from_node(root, xml))
    }

    /// Parses a definition a user gives, and refuses it when the model would not keep all
    /// of it: an element or attribute Vireo does not know is named in an
    /// [`XmlError::Unsupported`], never dropped without a word.
    pub fn parse_kept(xml: &str) -> Result<Domain, XmlError> {
        let def = Domain::parse(xml)?;
        crate::fidelity::check_kept(xml, &def.format(), DOMAIN_VERBATIM, DOMAIN_NORMALISED)?;
        Ok(def)
    }

    /// Format as libvirt-style XML (no `id` attribute).
    pub fn format(&self) -> String {
        self.format_with_id(None)
    }

    /// Format as libvirt-style XML, putting `id='N'` on the root element
    /// when `id` is given (running domains).
    pub fn format_with_id(&self, id: Option<i32>) -> String {
        let mut w = Writer::new();
        w.elem("domain")
            .attr("type", &self.dom_type)
            .opt("id", id)
            .open();
        w.text_elem("name", &self.name);
        if let Some(u) = &self.uuid {
            w.text_elem("uuid", &format_uuid(u));
        }
        if let Some(t) = &self.title {
            w.text_elem("title", t);
        }
        if let Some(d) = &self.description {
            w.text_elem("description", d);
        }
        if let Some(m) = &self.metadata {
            if m.trim().is_empty() {
                w.elem("metadata").empty();
            } else {
                w.elem("metadata").open();
                w.raw(m);
                w.close("metadata");
            }
        }
        if let Some(m) = &self.max_memory {
            m.write_to(&mut w, "maxMemory");
        }
        w.elem("memory")
            .attr("unit", "KiB")
            .text(&self.memory_kib.to_string());
        w.elem("currentMemory")
            .attr("unit", "KiB")
            .text(&self.current_memory_kib.to_string());
        if let Some(b) = self.blkiotune.as_ref().filter(|b| !b.is_empty()) {
            b.write_to(&mut w, "blkiotune");
        }
        if let Some(m) = self.memtune.as_ref().filter(|m| !m.is_empty()) {
            m.write_to(&mut w, "memtune");
        }
        if let Some(m) = &self.memory_backing {
            m.write_to(&mut w, "memoryBacking");
        }
        w.elem("vcpu")
            .attr("placement", self.vcpu_placement)
            .opt("cpuset", self.vcpu_cpuset.as_deref())
            .opt("current", self.vcpu_current)
            .text(&self.vcpus.to_string());
        self.iothreads.write(&mut w);
        if let Some(c) = self.cputune.as_ref().filter(|c| !c.is_empty()) {
            c.write_to(&mut w, "cputune");
        }
        if let Some(n) = &self.numatune {
            n.write_to(&mut w, "numatune");
        }
        for s in &self.sysinfo {
            s.write_to(&mut w, "sysinfo");
        }
        self.os.write_to(&mut w, "os");
        if !self.features.is_empty() {
            w.elem("features").open();
            for f in &self.features {
                write_feature(&mut w, f);
            }
            w.close("features");
        }
        if let Some(cpu) = &self.cpu {
            cpu.write_to(&mut w, "cpu");
        }
        if let Some(clock) = &self.clock {
            clock.write_to(&mut w, "clock");
        }
        w.text_elem("on_poweroff", self.on_poweroff.as_str());
        w.text_elem("on_reboot", self.on_reboot.as_str());
        w.text_elem("on_crash", self.on_crash.as_str());
        if let Some(pm) = &self.pm {
            pm.write_to(&mut w, "pm");
        }
        if !self.devices.is_empty() {
            self.devices.write_to(&mut w, "devices");
        }
        w.close("domain");
        w.finish()
    }

    /// Maximum memory of the guest in KiB (the `<memory>` value), as
    /// reported by `virDomainGetInfo`'s `maxMem`.
    pub fn max_memory_kib(&self) -> u64 {
        self.memory_kib
    }

    /// The memory the guest boots with, in KiB: `<memory>` less the memory devices'.
    pub fn initial_memory_kib(&self) -> u64 {
        let devices: u64 = self.devices.memories.iter().map(|m| m.size_kib()).sum();
        self.memory_kib.saturating_sub(devices)
    }

    /// The guest's NUMA cells (empty without `<cpu><numa>`).
    pub fn numa_cells(&self) -> &[crate::NumaCell] {
        self.cpu
            .as_ref()
            .and_then(|c| c.numa.as_ref())
            .map_or(&[], |n| n.cells.as_slice())
    }

    /// Number of vCPUs online at boot.
    pub fn current_vcpus(&self) -> u32 {
        self.vcpu_current.unwrap_or(self.vcpus)
    }

    /// Whether `<features>` contains an element called `name`.
    pub fn has_feature(&self, name: &str) -> bool {
        self.features.iter().any(|f| f.name == name)
    }

    fn from_node(root: Node, input: &str) -> Result<Domain, XmlError> {
        let dom_type = root
            .attribute("type")
            .ok_or_else(|| XmlError::Invalid("missing 'type' attribute on <domain>".into()))?;
        if !DOMAIN_TYPES.contains(&dom_type) {
            return Err(XmlError::Invalid(format!(
                "unknown domain type '{dom_type}'"
            )));
        }

        let name = child_text(root, "name").unwrap_or_default();
        if name.trim().is_empty() {
            return Err(missing("<name>", "domain"));
        }
        if name.contains('/') {
            return Err(XmlError::Invalid("domain name must not contain '/'".into()));
        }

        let uuid = match child_text(root, "uuid") {
            None => None,
            Some(s) => Some(
                parse_uuid(&s).ok_or_else(|| XmlError::Invalid(format!("invalid uuid '{s}'")))?,
            ),
        };

        let title = child_text(root, "title");
        if let Some(t) = &title {
            if t.contains('\n') {
                return Err(XmlError::Invalid(
                    "domain title must not contain newlines".into(),
                ));
            }
        }
        let description = child_text(root, "description");
        let metadata = child(root, "metadata").map(|m| metadata_inner(m, input));

        let memory_kib = match child(root, "memory") {
            Some(n) => parse_scaled_kib(n, "memory")?,
            None => return Err(missing("<memory>", "domain")),
        };
        if memory_kib == 0 {
            return Err(XmlError::Invalid(
                "invalid value '0' for <memory>: must be greater than zero".into(),
            ));
        }
        let max_memory: Option<crate::MaxMemory> = field::child_opt(root, "maxMemory")?;
        let mut current_memory_kib = match child(root, "currentMemory") {
            Some(n) => parse_scaled_kib(n, "currentMemory")?,
            None => memory_kib,
        };
        if current_memory_kib == 0 || current_memory_kib > memory_kib {
            current_memory_kib = memory_kib;
        }

        let mut vcpus = 1u32;
        let mut vcpu_current = None;
        let mut vcpu_placement = VcpuPlacement::Static;
        let mut vcpu_cpuset = None;
        if let Some(v) = child(root, "vcpu") {
            vcpus = parse_int(&text(v), "<vcpu>")?;
            if vcpus == 0 {
                return Err(XmlError::Invalid(
                    "invalid value '0' for <vcpu>: must be at least 1".into(),
                ));
            }
            vcpu_current = attr_int::<u32>(v, "current")?;
            match vcpu_current {
                Some(0) => {
                    return Err(XmlError::Invalid(
                        "invalid value '0' for attribute 'current' of <vcpu>: must be at least 1"
                            .into(),
                    ))
                }
                Some(c) if c > vcpus => {
                    return Err(XmlError::Invalid(format!(
                        "current vcpus ({c}) must not exceed maximum vcpus ({vcpus})"
                    )))
                }
                Some(c) if c == vcpus => vcpu_current = None,
                _ => {}
            }
            if let Some(p) = attr_enum(v, "placement")? {
                vcpu_placement = p;
            }
            vcpu_cpuset = attr(v, "cpuset");
        }

        let os = match child(root, "os") {
            Some(n) => Os::from_node(n)?,
            None => return Err(missing("<os>", "domain")),
        };

        let features = match child(root, "features") {
            Some(f) => parse_features(f, 0)?
                .into_iter()
                .filter(|f| KNOWN_FEATURES.contains(&f.name.as_str()))
                .collect(),
            None => Vec::new(),
        };

        let cpu: Option<Cpu> = field::child_opt(root, "cpu")?;
        let numatune: Option<crate::Numatune> = field::child_opt(root, "numatune")?;
        let clock = field::child_opt(root, "clock")?;

        let on_poweroff = lifecycle(root, "on_poweroff", LifecycleAction::Destroy, false)?;
        let on_reboot = lifecycle(root, "on_reboot", LifecycleAction::Restart, false)?;
        let on_crash = lifecycle(root, "on_crash", LifecycleAction::Destroy, true)?;
        let pm = field::child_opt(root, "pm")?;
        let memory_backing: Option<MemoryBacking> = field::child_opt(root, "memoryBacking")?;
        let cputune: Option<Cputune> = field::child_opt(root, "cputune")?;
        let memtune: Option<crate::Memtune> = field::child_opt(root, "memtune")?;
        let blkiotune: Option<crate::Blkiotune> = field::child_opt(root, "blkiotune")?;
        if let Some(c) = &cputune {
            for p in &c.vcpupins {
                if p.vcpu >= vcpus {
                    return Err(XmlError::Invalid(format!(
                        "<vcpupin vcpu='{}'> is not below the {vcpus} vCPUs",
                        p.vcpu
                    )));
                }
                if c.vcpupins.iter().filter(|q| q.vcpu == p.vcpu).count() > 1 {
                    return Err(XmlError::Invalid(format!(
                        "<vcpupin vcpu='{}'> appears twice",
                        p.vcpu
                    )));
                }
            }
        }
        if let Some(cs) = &vcpu_cpuset {
            crate::parse_cpuset(cs)?;
        }
        let iothreads = crate::IoThreads::parse(root)?;
        if let Some(c) = &cputune {
            for p in &c.iothreadpins {
                if iothreads.get(p.iothread).is_none() {
                    return Err(XmlError::Invalid(format!(
                        "<iothreadpin iothread='{}'> names no I/O thread of the domain",
                        p.iothread
                    )));
                }
                if c.iothreadpins
                    .iter()
                    .filter(|q| q.iothread == p.iothread)
                    .count()
                    > 1
                {
                    return Err(XmlError::Invalid(format!(
                        "<iothreadpin iothread='{}'> appears twice",
                        p.iothread
                    )));
                }
            }
        }
        let sysinfo = field::children_of(root, "sysinfo")?;

        let devices = match child(root, "devices") {
            Some(d) => Devices::from_node(d)?,
            None => Devices::default(),
        };

        for d in &devices.disks {
            if let Some(t) = d.driver.as_ref().and_then(|r| r.iothread) {
                if iothreads.get(t).is_none() {
                    return Err(XmlError::Invalid(format!(
                        "disk '{}': iothread '{t}' is not one of the domain's <iothreadids>",
                        d.target.dev
                    )));
                }
            }
        }
        for c in &devices.controllers {
            if let Some((_, v)) = c.driver_attrs.iter().find(|(k, _)| k == "iothread") {
                let id: u32 = parse_int(v, "attribute 'iothread' of controller <driver>")?;
                if iothreads.get(id).is_none() {
                    return Err(XmlError::Invalid(format!(
                        "controller: iothread '{id}' is not one of the domain's <iothreadids>"
                    )));
                }
            }
        }

        let boot_orders = devices.boot_orders();
        if !boot_orders.is_empty() && !os.boot_devs.is_empty() {
            return Err(XmlError::Unsupported(
                "per-device boot elements cannot be used together with os/boot elements".into(),
            ));
        }
        let mut seen = HashSet::new();
        for o in boot_orders {
            if !seen.insert(o) {
                return Err(XmlError::Invalid(format!(
                    "boot order {o} is already used by another device"
                )));
            }
        }

        // libvirt's total: the NUMA cells' memory (else <memory>) and the memory devices'.
        let devices_kib: u64 = devices.memories.iter().map(|m| m.size_kib()).sum();
        let mut memory_kib = memory_kib;
        if let Some(cells) = cpu.as_ref().and_then(|c| c.numa.as_ref()) {
            if !cells.cells.is_empty() {
                memory_kib = cells.cells.iter().map(|c| c.memory).sum::<u64>() + devices_kib;
                current_memory_kib = match child(root, "currentMemory") {
                    Some(_) => current_memory_kib.min(memory_kib),
                    None => memory_kib,
                };
            }
        }
        if memory_kib <= devices_kib {
            return Err(XmlError::Invalid(
                "the memory devices leave no memory for the guest to boot with".into(),
            ));
        }
        if let Some(m) = &max_memory {
            if m.value < memory_kib {
                return Err(XmlError::Invalid(format!(
                    "<maxMemory> ({} KiB) must not be smaller than <memory> ({memory_kib} KiB)",
                    m.value
                )));
            }
        }

        Ok(Domain {
            dom_type: dom_type.to_string(),
            name,
            uuid,
            title,
            description,
            metadata,
            max_memory,
            memory_kib,
            current_memory_kib,
            vcpus,
            vcpu_current,
            vcpu_placement,
            vcpu_cpuset,
            sysinfo,
            os,
            features,
            cpu,
            clock,
            on_poweroff,
            on_reboot,
            on_crash,
            pm,
            cputune,
            memtune,
            blkiotune,
            numatune,
            iothreads,
            memory_backing,
            devices,
        })
    }
}

/// Parse a libvirt scaled integer (`unit` attribute, default KiB) into KiB.
fn parse_scaled_kib(n: Node, elem: &str) -> Result<u64, XmlError> {
    let raw = text(n);
    let value: u64 = parse_int(&raw, &format!("<{elem}>"))?;
    let unit = n.attribute("unit").unwrap_or("KiB");
    if unit_multiplier(unit).is_none() {
        return Err(XmlError::Invalid(format!(
            "unknown unit '{unit}' for <{elem}>"
        )));
    }
    to_kib(value, unit).ok_or_else(|| {
        XmlError::Invalid(format!(
            "invalid value '{}' for <{elem}>: too large",
            raw.trim()
        ))
    })
}

fn lifecycle(
    root: Node,
    name: &str,
    default: LifecycleAction,
    crash: bool,
) -> Result<LifecycleAction, XmlError> {
    let Some(s) = child_text(root, name) else {
        return Ok(default);
    };
    let s = s.trim();
    let bad = || XmlError::Invalid(format!("unknown <{name}> action '{s}'"));
    let action: LifecycleAction = s.parse().map_err(|_| bad())?;
    if !crash
        && matches!(
            action,
            LifecycleAction::CoredumpDestroy | LifecycleAction::CoredumpRestart
        )
    {
        return Err(bad());
    }
    Ok(action)
}

/// Extract the inner XML of `<metadata>` verbatim. Namespace declarations
/// that a top-level child relies on but inherits from an ancestor are
/// added to that child's start tag so the text stands on its own.
pub(crate) fn metadata_inner(m: Node, input: &str) -> String {
    let content: Vec<Node> = m
        .children()
        .filter(|c| !(c.is_text() && c.text().is_some_and(|t| t.trim().is_empty())))
        .collect();
    let (Some(first), Some(last)) = (content.first(), content.last()) else {
        return String::new();
    };
    let (mut start, mut end) = (first.range().start, last.range().end);
    // Leading/trailing text belongs to the content but its surrounding
    // whitespace is layout, not data.
    if let Some(raw) = input.get(start..end) {
        start += raw.len() - raw.trim_start().len();
        end -= raw.len() - raw.trim_end().len();
    }
    let Some(slice) = input.get(start..end) else {
        return String::new();
    };

    let inherited: Vec<(Option<String>, String)> = m
        .namespaces()
        .filter(|ns| ns.name() != Some("xml"))
        .map(|ns| (ns.name().map(str::to_string), ns.uri().to_string()))
        .collect();

    let mut inserts: Vec<(usize, String)> = Vec::new();
    for el in content.iter().filter(|c| c.is_element()) {
        let el_start = el.range().start;
        let Some(tag) = input.get(el_start..el.range().end) else {
            continue;
        };
        let (name_end, declared) = start_tag_info(tag);
        let used = used_namespaces(*el);
        let mut extra = String::new();
        for (prefix, uri) in &inherited {
            let attr_name = match prefix {
                Some(p) => format!("xmlns:{p}"),
                None => "xmlns".to_string(),
            };
            if declared.contains(&attr_name) || !used.contains(uri.as_str()) {
                continue;
            }
            extra.push(' ');
            extra.push_str(&attr_name);
            extra.push_str("='");
            extra.push_str(&crate::escape(uri));
            extra.push('\'');
        }
        if !extra.is_empty() {
            inserts.push((el_start - start + name_end, extra));
        }
    }

    let mut out = String::with_capacity(slice.len() + 64);
    let mut pos = 0usize;
    for (at, extra) in inserts {
        if let Some(piece) = slice.get(pos..at) {
            out.push_str(piece);
        }
        out.push_str(&extra);
        pos = at;
    }
    if let Some(rest) = slice.get(pos..) {
        out.push_str(rest);
    }
    out
}

/// For the text of an element starting with its start tag, return the byte
/// offset just past the qualified name and the attribute names written in
/// the start tag.
fn start_tag_info(tag: &str) -> (usize, Vec<String>) {
    let b = tag.as_bytes();
    let mut i = 1usize; // past '<'
    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'/' && b[i] != b'>' {
        i += 1;
    }
    let name_end = i;
    let mut names = Vec::new();
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] == b'/' || b[i] == b'>' {
            break;
        }
        let s = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' {
            i += 1;
        }
        if let Some(n) = tag.get(s..i) {
            names.push(n.to_string());
        }
        while i < b.len() && b[i] != b'\'' && b[i] != b'"' {
            i += 1;
        }
        let Some(&q) = b.get(i) else { break };
        i += 1;
        while i < b.len() && b[i] != q {
            i += 1;
        }
        i += 1;
    }
    (name_end, names)
}

/// Namespace URIs used by elements and attributes in the subtree of `el`.
fn used_namespaces<'a>(el: Node<'a, '_>) -> HashSet<&'a str> {
    let mut used = HashSet::new();
    for d in el.descendants().filter(|d| d.is_element()) {
        if let Some(ns) = d.tag_name().namespace() {
            used.insert(ns);
        }
        for a in d.attributes() {
            if let Some(ns) = a.namespace() {
                used.insert(ns);
            }
        }
    }
    used
}

fn parse_features(n: Node, depth: usize) -> Result<Vec<Feature>, XmlError> {
    if depth > MAX_GENERIC_DEPTH {
        return Err(XmlError::Invalid(
            "elements inside <features> are nested too deeply".into(),
        ));
    }
    let mut out = Vec::new();
    for c in n
        .children()
        .filter(|c| c.is_element() && c.tag_name().namespace().is_none())
    {
        let children = parse_features(c, depth + 1)?;
        let t = text(c);
        let t = t.trim();
        out.push(Feature {
            name: c.tag_name().name().to_string(),
            attrs: crate::util::attr_list(c, &[]),
            text: if children.is_empty() && !t.is_empty() {
                Some(t.to_string())
            } else {
                None
            },
            children,
        });
    }
    Ok(out)
}

fn write_feature(w: &mut Writer, f: &Feature) {
    let e = w.elem(&f.name).attrs(&f.attrs);
    if !f.children.is_empty() {
        e.open();
        for c in &f.children {
            write_feature(w, c);
        }
        w.close(&f.name);
    } else if let Some(t) = &f.text {
        e.text(t);
    } else {
        e.empty();
    }
}
