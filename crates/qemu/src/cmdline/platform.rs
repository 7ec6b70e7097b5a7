//! Platform devices: sound cards and their audio backends, USB hubs, watchdogs, panic
//! notifiers, shared memory (ivshmem), the IOMMU and the vsock device.

use vireo_xml::{
    IommuModel, PanicModel, SoundModel, TpmBackendType, TpmModel, WatchdogAction, WatchdogModel,
};

use super::util::{is_simple_name, on_off, Opts};
use super::{unsupported, Builder, Result};
use crate::pci::Family;

/// Whether a USB device of the definition needs the USB controller (a hub, a USB
/// sound card).
pub(super) fn needs_usb(def: &vireo_xml::Domain) -> bool {
    !def.devices.hubs.is_empty()
        || !def.devices.redirdevs.is_empty()
        || !def.devices.smartcards.is_empty()
        || def
            .devices
            .controllers
            .iter()
            .any(|c| c.ctl_type == vireo_xml::ControllerType::Ccid)
        || def
            .devices
            .sounds
            .iter()
            .any(|s| s.model == SoundModel::Usb)
}

impl<'a> Builder<'a> {
    /// `<filesystem>` shared with virtiofs: the shim runs virtiofsd on `fsN.sock` in the
    /// VM's runtime directory; QEMU's vhost-user-fs device talks to it.
    pub(super) fn filesystems(&mut self) -> Result<()> {
        let def = self.def;
        for (i, f) in def.devices.filesystems.iter().enumerate() {
            let what = format!("<filesystem> {i}");
            let driver = f.driver.as_ref().and_then(|d| d.driver_type.as_deref());
            if driver != Some("virtiofs") {
                return unsupported(format!(
                    "{what}: driver '{}' is not supported (virtiofs)",
                    driver.unwrap_or("path")
                ));
            }
            if f.fs_type.as_deref().is_some_and(|t| t != "mount") {
                return unsupported(format!("{what}: only type='mount' is shared by virtiofs"));
            }
            if f.readonly {
                return unsupported(format!(
                    "{what}: QEMU 7.2's virtiofsd cannot share read-only"
                ));
            }
            let Some(tag) = f.target.as_deref() else {
                return unsupported(format!("{what} needs <target dir=…> (the guest's tag)"));
            };
            if f.source.is_none() {
                return unsupported(format!("{what} needs <source dir=…>"));
            }
            let chardev = format!("chr-vu-fs{i}");
            self.arg2(
                "-chardev",
                Opts::new("socket")
                    .set("id", &chardev)
                    .set(
                        "path",
                        self.cfg.run_dir.join(format!("fs{i}.sock")).display(),
                    )
                    .done(),
            );
            let addr = self.pci.place(f.address.as_ref(), &what)?;
            let queue = f.driver.as_ref().and_then(|d| d.queue).unwrap_or(1024);
            let dev = Opts::new("vhost-user-fs-pci")
                .set("id", format!("fs{i}"))
                .set("chardev", &chardev)
                .set("queue-size", queue)
                .set("tag", tag)
                .raw(&addr)
                .done();
            self.arg2("-device", dev);
        }
        Ok(())
    }

    /// The IOMMU comes before the devices it translates for.
    pub(super) fn iommu(&mut self) -> Result<()> {
        let def = self.def;
        let Some(io) = &def.devices.iommu else {
            return Ok(());
        };
        let drv = io.driver.clone().unwrap_or_default();
        match io.model {
            IommuModel::Intel => {
                if self.family != Family::Q35 {
                    return unsupported("<iommu model='intel'> needs a q35 machine");
                }
                if io.address.is_some() {
                    return unsupported("<iommu model='intel'> takes no address");
                }
                if drv.eim == Some(true) && drv.intremap != Some(true) {
                    return unsupported("<iommu>: eim needs intremap='on'");
                }
                let dev = Opts::new("intel-iommu")
                    .set("id", "iommu0")
                    .set_opt("intremap", drv.intremap.map(on_off))
                    .set_opt("caching-mode", drv.caching_mode.map(on_off))
                    .set_opt("eim", drv.eim.map(on_off))
                    .set_opt("device-iotlb", drv.iotlb.map(on_off))
                    .set_opt("aw-bits", drv.aw_bits)
                    .done();
                self.arg2("-device", dev);
            }
            IommuModel::Virtio => {
                if drv != Default::default() {
                    return unsupported("<iommu model='virtio'>: <driver> options are intel's");
                }
                let addr = self.pci.place(io.address.as_ref(), "<iommu>")?;
                let dev = Opts::new("virtio-iommu-pci")
                    .set("id", "iommu0")
                    .raw(&addr)
                    .done();
                self.arg2("-device", dev);
            }
            IommuModel::Smmuv3 => return unsupported("<iommu model='smmuv3'> is for ARM machines"),
        }
        Ok(())
    }

    /// The TPM: the host's (passthrough), an emulator the shim runs beside QEMU
    /// (`swtpm.sock` in the VM's runtime directory), or one already running (external).
    pub(super) fn tpms(&mut self) -> Result<()> {
        let def = self.def;
        let tpms = &def.devices.tpms;
        if tpms.len() > 1 {
            return unsupported("only one <tpm> is supported");
        }
        let Some(t) = tpms.first() else {
            return Ok(());
        };
        let model = match t.model.unwrap_or(TpmModel::Tis) {
            TpmModel::Tis => "tpm-tis",
            TpmModel::Crb => "tpm-crb",
            other => return unsupported(format!("<tpm model='{other}'> is not for x86")),
        };
        if t.address.is_some() {
            return unsupported("<tpm> takes no address");
        }
        let b = &t.backend;
        if model == "tpm-crb" && b.version.as_deref() == Some("1.2") {
            return unsupported("<tpm model='tpm-crb'> is a TPM 2.0 device");
        }
        let tpmdev = match b.backend_type {
            TpmBackendType::Passthrough => {
                let path = b.device.as_deref().unwrap_or("/dev/tpm0");
                Opts::new("passthrough")
                    .set("id", "tpm-tpm0")
                    .set("path", path)
                    .done()
            }
            TpmBackendType::Emulator | TpmBackendType::External => {
                let sock = match b.backend_type {
                    TpmBackendType::Emulator => self.cfg.run_dir.join("swtpm.sock"),
                    _ => {
                        let Some(p) = b.source.as_ref().and_then(|s| s.path.as_deref()) else {
                            return unsupported(
                                "an external <tpm> backend needs <source path=...>",
                            );
                        };
                        std::path::PathBuf::from(p)
                    }
                };
                self.arg2(
                    "-chardev",
                    Opts::new("socket")
                        .set("id", "chrtpm")
                        .set("path", sock.display())
                        .done(),
                );
                Opts::new("emulator")
                    .set("id", "tpm-tpm0")
                    .set("chardev", "chrtpm")
                    .done()
            }
        };
        self.arg2("-tpmdev", tpmdev);
        self.arg2(
            "-device",
            Opts::new(model)
                .set("tpmdev", "tpm-tpm0")
                .set("id", "tpm0")
                .done(),
        );
        Ok(())
    }

    /// `<audio>` backends, then the sound cards that play through them.
    pub(super) fn sound(&mut self) -> Result<()> {
        let def = self.def;
        let d = &def.devices;
        for a in &d.audios {
            if a.audio_type != "none" {
                return unsupported(format!(
                    "<audio type='{}'> is not supported (none)",
                    a.audio_type
                ));
            }
            if d.audios.iter().filter(|b| b.id == a.id).count() > 1 {
                return unsupported(format!("<audio id='{}'> appears twice", a.id));
            }
            self.arg2("-audiodev", format!("none,id=audio{}", a.id));
        }
        // A card with no <audio> plays into nothing (QEMU wants a backend named).
        let default_audio = if d.audios.is_empty() && !d.sounds.is_empty() {
            self.arg2("-audiodev", "none,id=audio1");
            Some(1)
        } else {
            d.audios.first().map(|a| a.id)
        };
        for (i, s) in d.sounds.iter().enumerate() {
            let what = format!("<sound model='{}'>", s.model);
            let audio = match s.audio.or(default_audio) {
                Some(id) if d.audios.is_empty() || d.audios.iter().any(|a| a.id == id) => {
                    format!("audio{id}")
                }
                Some(id) => return unsupported(format!("{what}: no <audio id='{id}'>")),
                None => return unsupported(format!("{what}: no <audio> backend")),
            };
            let id = format!("sound{i}");
            let hda = match s.model {
                SoundModel::Ich6 => Some("intel-hda"),
                SoundModel::Ich9 => Some("ich9-intel-hda"),
                _ => None,
            };
            if hda.is_none() && !s.codecs.is_empty() {
                return unsupported(format!("{what}: only ich6 and ich9 have codecs"));
            }
            match s.model {
                SoundModel::Ich6 | SoundModel::Ich9 => {
                    let addr = match (s.address.as_ref(), s.model, self.family) {
                        // libvirt's (and the real chipset's) place for ICH9's HD audio.
                        (None, SoundModel::Ich9, Family::Q35) => {
                            self.pci.place_at(0x1b, 0, &what)?
                        }
                        (a, _, _) => self.pci.place(a, &what)?,
                    };
                    let dev = Opts::new(hda.unwrap_or("intel-hda"))
                        .set("id", &id)
                        .raw(&addr)
                        .done();
                    self.arg2("-device", dev);
                    let codecs: Vec<&str> = if s.codecs.is_empty() {
                        vec!["duplex"]
                    } else {
                        s.codecs.iter().map(|c| c.codec_type.as_str()).collect()
                    };
                    for (k, c) in codecs.iter().enumerate() {
                        let codec = Opts::new(&format!("hda-{c}"))
                            .set("id", format!("{id}-codec{k}"))
                            .set("bus", format!("{id}.0"))
                            .set("cad", k)
                            .set("audiodev", &audio)
                            .done();
                        self.arg2("-device", codec);
                    }
                }
                SoundModel::Ac97 | SoundModel::Es1370 => {
                    let addr = self.pci.place(s.address.as_ref(), &what)?;
                    let model = if s.model == SoundModel::Ac97 {
                        "AC97"
                    } else {
                        "ES1370"
                    };
                    let dev = Opts::new(model)
                        .set("id", &id)
                        .set("audiodev", &audio)
                        .raw(&addr)
                        .done();
                    self.arg2("-device", dev);
                }
                SoundModel::Sb16 => {
                    if s.address.is_some() {
                        return unsupported(format!("{what}: an ISA card takes no address"));
                    }
                    let dev = Opts::new("sb16")
                        .set("id", &id)
                        .set("audiodev", &audio)
                        .done();
                    self.arg2("-device", dev);
                }
                SoundModel::Usb => {
                    let dev = Opts::new("usb-audio")
                        .set("id", &id)
                        .set("bus", "usb.0")
                        .set("audiodev", &audio)
                        .done();
                    self.arg2("-device", dev);
                }
                other => {
                    return unsupported(format!(
                        "<sound model='{other}'> is not supported (ich6, ich9, ac97, es1370, sb16, usb)"
                    ))
                }
            }
        }
        Ok(())
    }

    pub(super) fn hubs(&mut self) -> Result<()> {
        let def = self.def;
        for (i, h) in def.devices.hubs.iter().enumerate() {
            if h.hub_type != "usb" {
                return unsupported(format!(
                    "<hub type='{}'> is not supported (usb)",
                    h.hub_type
                ));
            }
            let port = match &h.address {
                None => None,
                Some(a) => Some(super::input::usb_port(a, "<hub>")?),
            };
            let dev = Opts::new("usb-hub")
                .set("id", format!("hub{i}"))
                .set("bus", "usb.0")
                .set_opt("port", port)
                .done();
            self.arg2("-device", dev);
        }
        Ok(())
    }

    pub(super) fn watchdogs(&mut self) -> Result<()> {
        let def = self.def;
        let ws = &def.devices.watchdogs;
        // QEMU has one action for every watchdog.
        let mut action: Option<WatchdogAction> = None;
        for (i, w) in ws.iter().enumerate() {
            let what = format!("<watchdog model='{}'>", w.model);
            let a = w.action.unwrap_or(WatchdogAction::Reset);
            if action.is_some_and(|b| b != a) {
                return unsupported("every <watchdog> must have the same action");
            }
            action = Some(a);
            let id = format!("watchdog{i}");
            match w.model {
                WatchdogModel::I6300esb => {
                    let addr = self.pci.place(w.address.as_ref(), &what)?;
                    self.arg2(
                        "-device",
                        Opts::new("i6300esb").set("id", &id).raw(&addr).done(),
                    );
                }
                WatchdogModel::Ib700 => {
                    if w.address.is_some() {
                        return unsupported(format!("{what}: an ISA device takes no address"));
                    }
                    self.arg2("-device", Opts::new("ib700").set("id", &id).done());
                }
                WatchdogModel::Itco => {
                    if self.family != Family::Q35 {
                        return unsupported(format!("{what} is part of q35's ICH9"));
                    }
                    // ICH9's TCO watchdog is always there; this lets it reset the machine.
                    self.arg2("-global", "ICH9-LPC.noreboot=off");
                }
                WatchdogModel::Diag288 => {
                    return unsupported(format!("{what} is for s390 machines"))
                }
            }
        }
        if let Some(a) = action {
            let qemu = match a {
                WatchdogAction::Reset => "reset",
                WatchdogAction::Shutdown => "shutdown",
                WatchdogAction::Poweroff => "poweroff",
                WatchdogAction::Pause => "pause",
                WatchdogAction::None => "none",
                WatchdogAction::InjectNmi => "inject-nmi",
                WatchdogAction::Dump => {
                    return unsupported("<watchdog action='dump'> is not supported by Vireo yet")
                }
            };
            self.arg2("-action", format!("watchdog={qemu}"));
        }
        Ok(())
    }

    pub(super) fn panics(&mut self) -> Result<()> {
        let def = self.def;
        for (i, p) in def.devices.panics.iter().enumerate() {
            let what = "<panic>";
            match p.model.unwrap_or(PanicModel::Isa) {
                PanicModel::Isa => {
                    let iobase = match &p.address {
                        None => None,
                        Some(a) if a.addr_type == vireo_xml::AddressType::Isa => {
                            a.get_num("iobase")
                        }
                        Some(_) => {
                            return unsupported(format!(
                                "{what}: an ISA device needs an ISA address"
                            ))
                        }
                    };
                    let dev = Opts::new("pvpanic")
                        .set("id", format!("panic{i}"))
                        .set_opt("ioport", iobase)
                        .done();
                    self.arg2("-device", dev);
                }
                PanicModel::Pvpanic => {
                    let addr = self.pci.place(p.address.as_ref(), what)?;
                    let dev = Opts::new("pvpanic-pci")
                        .set("id", format!("panic{i}"))
                        .raw(&addr)
                        .done();
                    self.arg2("-device", dev);
                }
                other => {
                    return unsupported(format!(
                        "<panic model='{other}'> is not supported (isa, pvpanic)"
                    ))
                }
            }
        }
        Ok(())
    }

    pub(super) fn shmems(&mut self) -> Result<()> {
        let def = self.def;
        for (i, s) in def.devices.shmems.iter().enumerate() {
            let what = format!("<shmem name='{}'>", s.name);
            let model = s
                .model
                .as_ref()
                .map_or("ivshmem-plain", |m| m.model_type.as_str());
            if model != "ivshmem-plain" {
                return unsupported(format!(
                    "{what}: model '{model}' is not supported (ivshmem-plain)"
                ));
            }
            if !s.server.is_empty() || !s.msi.is_empty() {
                return unsupported(format!("{what}: <server> and <msi> are ivshmem-doorbell's"));
            }
            if !is_simple_name(&s.name) {
                return unsupported(format!("{what}: the name must be a plain file name"));
            }
            let size = s
                .size_bytes()
                .map_err(|e| super::CmdlineError::Unsupported(format!("{what}: {e}")))?;
            if size == 0 || !size.is_power_of_two() {
                return unsupported(format!("{what}: the size must be a power of two"));
            }
            let mem = format!("shmmem-shmem{i}");
            let obj = Opts::new("memory-backend-file")
                .set("id", &mem)
                .set("mem-path", format!("/dev/shm/{}", s.name))
                .set("size", size)
                .set("share", "on")
                .done();
            self.arg2("-object", obj);
            let addr = self.pci.place(s.address.as_ref(), &what)?;
            let dev = Opts::new("ivshmem-plain")
                .set("id", format!("shmem{i}"))
                .set("memdev", &mem)
                .raw(&addr)
                .done();
            self.arg2("-device", dev);
        }
        Ok(())
    }

    pub(super) fn vsock(&mut self) -> Result<()> {
        let def = self.def;
        let Some(v) = &def.devices.vsock else {
            return Ok(());
        };
        let model = v.model.as_deref().unwrap_or("virtio");
        if model != "virtio" {
            return unsupported(format!("<vsock model='{model}'> is not supported (virtio)"));
        }
        // The driver picks a free CID at start when the definition lets it.
        let Some(cid) = v.cid.as_ref().and_then(|c| c.address) else {
            return unsupported("<vsock> has no CID (the driver gives one at start)");
        };
        let addr = self.pci.place(v.address.as_ref(), "<vsock>")?;
        let dev = Opts::new("vhost-vsock-pci")
            .set("id", "vsock0")
            .set("guest-cid", cid)
            .raw(&addr)
            .done();
        self.arg2("-device", dev);
        Ok(())
    }
}

/// A `<redirfilter>` as usb-redir's `filter` property: `class:vendor:product:version:allow`
/// rules joined by `|` (-1 matches anything).
fn redir_filter(f: &vireo_xml::Redirfilter) -> Result<String> {
    let num = |v: &Option<String>, what: &str| -> Result<String> {
        match v.as_deref() {
            None | Some("-1") => Ok("-1".into()),
            Some(s) => {
                let n = s
                    .strip_prefix("0x")
                    .map(|h| u32::from_str_radix(h, 16))
                    .unwrap_or_else(|| s.parse::<u32>());
                match n {
                    Ok(n) => Ok(format!("0x{n:04x}")),
                    Err(_) => unsupported(format!(
                        "<redirfilter><usbdev {what}='{s}'> is not a number"
                    )),
                }
            }
        }
    };
    let mut rules = Vec::new();
    for r in &f.rules {
        // A version is written as a decimal "major.minor", the device's BCD.
        let version = match r.version.as_deref() {
            None | Some("-1") => "-1".to_string(),
            Some(v) => {
                let (maj, min) = v.split_once('.').unwrap_or((v, "0"));
                match (maj.parse::<u32>(), min.parse::<u32>()) {
                    (Ok(a), Ok(b)) if a < 100 && b < 100 => {
                        let bcd = |n: u32| (n / 10) * 16 + n % 10;
                        format!("0x{:02x}{:02x}", bcd(a), bcd(b))
                    }
                    _ => {
                        return unsupported(format!(
                            "<redirfilter><usbdev version='{v}'> is not a version"
                        ))
                    }
                }
            }
        };
        let Some(allow) = r.allow else {
            return unsupported("<redirfilter><usbdev> needs allow='yes|no'");
        };
        rules.push(format!(
            "{}:{}:{}:{version}:{}",
            num(&r.class, "class")?,
            num(&r.vendor, "vendor")?,
            num(&r.product, "product")?,
            u8::from(allow)
        ));
    }
    Ok(rules.join("|"))
}

impl<'a> Builder<'a> {
    /// `<redirdev bus='usb'>`: usb-redir devices on the USB bus, each over its character
    /// device (tcp or unix; SPICE is not there to carry spicevmc), with `<redirfilter>`.
    pub(super) fn redirdevs(&mut self) -> Result<()> {
        let def = self.def;
        if def.devices.redirfilter.is_some() && def.devices.redirdevs.is_empty() {
            return unsupported("<redirfilter> without a <redirdev>");
        }
        let filter = match &def.devices.redirfilter {
            Some(f) => Some(redir_filter(f)?),
            None => None,
        };
        for (i, r) in def.devices.redirdevs.iter().enumerate() {
            let what = format!("<redirdev> {i}");
            let id = format!("charredir{i}");
            let backend =
                self.chardev_backend(&r.chardev(), &id, &what, &format!("redir{i}.sock"))?;
            self.arg2("-chardev", backend);
            let port = match &r.address {
                Some(a) => Some(super::input::usb_port(a, &what)?),
                None => None,
            };
            let dev = Opts::new("usb-redir")
                .set("chardev", &id)
                .set("id", format!("redir{i}"))
                .set("bus", "usb.0")
                .set_opt("port", port)
                .set_opt("filter", filter.as_deref().map(|f| f.replace(',', ",,")))
                .set_opt("bootindex", r.boot_order)
                .done();
            self.arg2("-device", dev);
        }
        Ok(())
    }

    /// `<smartcard>`: the USB CCID reader (`usb-ccid`) and its card: emulated from the
    /// host's NSS database (mode host, or the three certificates of host-certificates), or
    /// passed through from a character device (passthrough).
    pub(super) fn smartcards(&mut self) -> Result<()> {
        let def = self.def;
        let ccid = def
            .devices
            .controllers
            .iter()
            .find(|c| c.ctl_type == vireo_xml::ControllerType::Ccid);
        if def.devices.smartcards.is_empty() && ccid.is_none() {
            return Ok(());
        }
        if def.devices.smartcards.len() > 1 {
            return unsupported("only one <smartcard> is supported (one CCID reader)");
        }
        let port = match ccid.and_then(|c| c.address.as_ref()) {
            Some(a) => Some(super::input::usb_port(a, "<controller type='ccid'>")?),
            None => None,
        };
        let reader = Opts::new("usb-ccid")
            .set("id", "ccid0")
            .set("bus", "usb.0")
            .set_opt("port", port)
            .done();
        self.arg2("-device", reader);
        let Some(s) = def.devices.smartcards.first() else {
            return Ok(());
        };
        let what = format!("<smartcard mode='{}'>", s.mode);
        let card = match s.mode.as_str() {
            "host" => Opts::new("ccid-card-emulated").set("backend", "nss-emulated"),
            "host-certificates" => {
                let mut o = Opts::new("ccid-card-emulated").set("backend", "certificates");
                for (k, c) in s.certificates.iter().enumerate() {
                    o = o.set(&format!("cert{}", k + 1), c);
                }
                o.set("db", s.database.as_deref().unwrap_or("/etc/pki/nssdb"))
            }
            _ => {
                let Some(ch) = s.chardev() else {
                    return unsupported(format!("{what} needs a character device type"));
                };
                let backend =
                    self.chardev_backend(&ch, "charsmartcard0", &what, "smartcard0.sock")?;
                self.arg2("-chardev", backend);
                Opts::new("ccid-card-passthru").set("chardev", "charsmartcard0")
            }
        };
        self.arg2(
            "-device",
            card.set("id", "smartcard0").set("bus", "ccid0.0").done(),
        );
        Ok(())
    }
}
