//! The machine: `-machine` features, CPU model, SMP topology, memory checks, clock
//! (`-rtc`, PIT policy), lifecycle actions, boot order and power management (`<pm>`).

use vireo_xml::{
    BootDev, ClockOffset, CpuCheck, CpuFeaturePolicy, CpuMatch, CpuMode, DiskDevice, Feature,
    LifecycleAction, TickPolicy, TimerName, VcpuPlacement,
};

use super::util::{is_simple_name, on_off, Opts};
use serde_json::Value;

use super::util::json_obj;
use super::{unsupported, Builder, Result};
use crate::pci::Family;

/// Settings that end up as `-machine` options.
#[derive(Default)]
pub(super) struct MachineOpts {
    pub(super) acpi: bool,
    pub(super) hpet_off: bool,
    pub(super) smm: Option<bool>,
    pub(super) vmport: Option<bool>,
    pub(super) i8042_off: bool,
    pub(super) vmcoreinfo: bool,
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

impl<'a> Builder<'a> {
    /// `<pm>`: S3 and S4 are properties of the chipset's power-management device.
    pub(super) fn power_management(&mut self) {
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

    pub(super) fn check_memory_and_placement(&self) -> Result<()> {
        let def = self.def;
        // Less memory at boot than the maximum: the balloon takes the rest before the CPUs
        // run (the shim sets it), so it needs one.
        let balloon = def
            .devices
            .memballoon
            .as_ref()
            .is_some_and(|m| m.model == vireo_xml::MemballoonModel::Virtio);
        if def.current_memory_kib < def.memory_kib && !balloon {
            return unsupported(format!(
                "<currentMemory> ({} KiB) smaller than <memory> ({} KiB) needs a \
                 <memballoon model='virtio'>",
                def.current_memory_kib, def.memory_kib
            ));
        }
        if def.vcpu_placement == VcpuPlacement::Auto {
            return unsupported("<vcpu placement='auto'> is not supported (needs numad)");
        }
        if def.vcpus > self.max_cpus {
            return unsupported(format!(
                "{} vCPUs exceed the maximum of {} for machine type '{}'",
                def.vcpus, self.max_cpus, self.machine
            ));
        }
        Ok(())
    }

    pub(super) fn smp(&self) -> Result<String> {
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

    pub(super) fn cpu(&self) -> Result<Option<String>> {
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
            // The driver turns host-model into a named model and features before a
            // start (cpumodel.rs). Left here only when QEMU could not be asked: the host
            // CPU under KVM and the richest emulated CPU under TCG, at least what
            // host-model would give.
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

    pub(super) fn features(&self) -> Result<MachineOpts> {
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
    pub(super) fn clock(&self, m: &mut MachineOpts) -> Result<(String, Option<&'static str>)> {
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
                    // As libvirt: 'catchup' is the in-kernel PIT's own way (nothing to
                    // say), 'merge' no PIT of QEMU's has.
                    let policy = match t.tickpolicy {
                        None | Some(TickPolicy::Catchup) => None,
                        Some(TickPolicy::Delay) => Some("delay"),
                        Some(TickPolicy::Discard) => Some("discard"),
                        Some(p) => return unsupported(format!("unsupported pit tickpolicy '{p}'")),
                    };
                    // Without KVM the PIT is QEMU's own, which delays lost ticks whatever
                    // the policy (libvirt's setting is for the in-kernel one only).
                    pit = policy.filter(|_| self.kvm);
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
    pub(super) fn lifecycle(&self) -> Result<bool> {
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

    /// `-smbios` tables from `<sysinfo type='smbios'>`, when `<os><smbios mode='sysinfo'/>`
    /// asks for them (libvirt's names are QEMU's keys).
    pub(super) fn smbios(&self) -> Result<Vec<String>> {
        let def = self.def;
        if let Some(s) = def.sysinfo.iter().find(|s| s.sysinfo_type != "smbios") {
            return unsupported(format!(
                "<sysinfo type='{}'> is not supported (smbios)",
                s.sysinfo_type
            ));
        }
        match def.os.smbios.as_ref().map(|s| s.mode.as_str()) {
            None | Some("emulate") => return Ok(Vec::new()),
            Some("sysinfo") => {}
            Some("host") => return unsupported("<smbios mode='host'> is not supported"),
            Some(other) => return unsupported(format!("<smbios mode='{other}'> is not valid")),
        }
        let Some(si) = def.sysinfo.first() else {
            return unsupported("<smbios mode='sysinfo'> needs a <sysinfo type='smbios'>");
        };
        if !si.entries.is_empty() {
            return unsupported("<sysinfo type='smbios'> takes its entries in blocks");
        }
        let mut out = Vec::new();
        let mut table = |ty: u32, block: &vireo_xml::SysinfoBlock, what: &str, keys: &[&str]| {
            let mut o = Opts::new(&format!("type={ty}"));
            for e in &block.entries {
                let name = e.name.as_deref().unwrap_or("");
                if !keys.contains(&name) || e.file.is_some() {
                    return unsupported(format!(
                        "<sysinfo><{what}><entry name='{name}'> is not valid"
                    ));
                }
                let value = e.value.as_deref().unwrap_or("");
                if ty == 1 && name == "uuid" {
                    let same = vireo_xml::parse_uuid(value).is_some_and(|u| Some(u) == def.uuid);
                    if !same {
                        return unsupported(
                            "UUID mismatch between <uuid> and <sysinfo><system><entry name='uuid'>",
                        );
                    }
                }
                o = o.set(name, value);
            }
            out.push(o.done());
            Ok(())
        };
        if let Some(b) = &si.bios {
            table(0, b, "bios", &["vendor", "version", "date", "release"])?;
        }
        if let Some(b) = &si.system {
            table(
                1,
                b,
                "system",
                &[
                    "manufacturer",
                    "product",
                    "version",
                    "serial",
                    "uuid",
                    "sku",
                    "family",
                ],
            )?;
        }
        if si.base_boards.len() > 1 {
            return unsupported("more than one <sysinfo><baseBoard> is not supported");
        }
        for b in &si.base_boards {
            table(
                2,
                b,
                "baseBoard",
                &[
                    "manufacturer",
                    "product",
                    "version",
                    "serial",
                    "asset",
                    "location",
                ],
            )?;
        }
        if let Some(b) = &si.chassis {
            table(
                3,
                b,
                "chassis",
                &["manufacturer", "version", "serial", "asset", "sku"],
            )?;
        }
        if let Some(oem) = &si.oem_strings {
            let mut o = Opts::new("type=11");
            for e in &oem.entries {
                o = o.set("value", e.value.as_deref().unwrap_or(""));
            }
            out.push(o.done());
        }
        Ok(out)
    }

    /// The firmware (`<os><loader>`, `<nvram>`, as the driver completed them): a ROM is
    /// `-bios`; pflash code and variables are two block nodes the machine maps
    /// (`pflash0`, `pflash1`). Returns the `-machine` options that go with them.
    pub(super) fn firmware(&mut self) -> Result<Vec<(&'static str, String)>> {
        let os = &self.def.os;
        let Some(loader) = &os.loader else {
            if os.firmware == Some(vireo_xml::OsFirmware::Efi) {
                return unsupported(
                    "<os firmware='efi'> has no firmware chosen (the driver chooses it at start)",
                );
            }
            return Ok(Vec::new());
        };
        let Some(code) = loader.path.as_deref() else {
            return unsupported("<loader> names no firmware file");
        };
        if loader.loader_type != Some(vireo_xml::LoaderType::Pflash) {
            if loader.secure == Some(true) {
                return unsupported("secure boot needs <loader type='pflash'>");
            }
            self.arg2("-bios", code.to_string());
            return Ok(Vec::new());
        }
        let mut machine = Vec::new();
        let flash = |n: u32, file: &str, read_only: bool| {
            let storage = format!("libvirt-pflash{n}-storage");
            let format = format!("libvirt-pflash{n}-format");
            let file_node = [
                ("driver", Value::from("file")),
                ("filename", Value::from(file)),
                ("node-name", Value::from(storage.as_str())),
                ("auto-read-only", Value::from(true)),
                ("discard", Value::from("unmap")),
            ];
            let format_node = [
                ("node-name", Value::from(format.as_str())),
                ("read-only", Value::from(read_only)),
                ("driver", Value::from("raw")),
                ("file", Value::from(storage.as_str())),
            ];
            (json_obj(&file_node), json_obj(&format_node), format)
        };
        let (a, b, f0) = flash(0, code, loader.readonly == Some(true));
        self.arg2("-blockdev", a);
        self.arg2("-blockdev", b);
        machine.push(("pflash0", f0));
        if let Some(nv) = os.nvram.as_ref().and_then(|n| n.path.as_deref()) {
            let (a, b, f1) = flash(1, nv, false);
            self.arg2("-blockdev", a);
            self.arg2("-blockdev", b);
            machine.push(("pflash1", f1));
        }
        if loader.secure == Some(true) {
            if self.family != Family::Q35 {
                return unsupported("secure boot needs a q35 machine (SMM)");
            }
            self.arg2("-global", "driver=cfi.pflash01,property=secure,value=on");
            machine.push(("smm", "on".to_string()));
        }
        Ok(machine)
    }

    /// `-boot` value; fills the bootindex of disks and interfaces.
    pub(super) fn boot(&mut self) -> Result<String> {
        let def = self.def;
        let os = &def.os;
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
}

/// The `-object` (and `object-add`) fields of I/O thread `t`: QEMU's id `iothreadN`.
pub fn iothread_object(t: &vireo_xml::IoThread) -> Vec<(&'static str, serde_json::Value)> {
    let mut o = vec![
        ("qom-type", serde_json::json!("iothread")),
        ("id", serde_json::json!(format!("iothread{}", t.id))),
    ];
    if let Some(n) = t.thread_pool_min {
        o.push(("thread-pool-min", serde_json::json!(n)));
    }
    if let Some(n) = t.thread_pool_max {
        o.push(("thread-pool-max", serde_json::json!(n)));
    }
    o
}
