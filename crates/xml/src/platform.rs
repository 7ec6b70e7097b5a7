//! The platform devices of `<devices>`: sound cards and audio backends, USB hubs,
//! watchdogs, panic notifiers, shared memory, the IOMMU and the vsock device.

use crate::devices::Address;
use crate::util::{one_of, positive, str_enum};
use crate::{xml_element, XmlError};

str_enum! {
    /// `<sound model=...>`.
    SoundModel, "sound model" {
        Sb16 => "sb16",
        Es1370 => "es1370",
        Pcspk => "pcspk",
        Ac97 => "ac97",
        Ich6 => "ich6",
        Ich7 => "ich7",
        Ich9 => "ich9",
        Usb => "usb",
        Ics2000 => "ics2000",
    }
}

xml_element! {
    /// `<sound><codec type='duplex|micro|output'/>`.
    pub struct SoundCodec {
        attr codec_type: String = "type",
    }
    check SoundCodec::check;
}

impl SoundCodec {
    fn check(&mut self) -> Result<(), XmlError> {
        one_of(
            &Some(self.codec_type.clone()),
            &["duplex", "micro", "output"],
            "sound codec type",
        )
    }
}

xml_element! {
    /// `<sound>`.
    pub struct Sound {
        attr model: SoundModel = "model",
        children codecs: SoundCodec = "codec",
        /// The `<audio id>` backend it plays through.
        in_attr_opt audio: u32 = "audio@id",
        in_attr_opt alias: String = "alias@name",
        child_opt address: Address = "address",
    }
}

xml_element! {
    /// `<audio id='1' type='none'/>`: an audio backend.
    pub struct Audio {
        attr id: u32 = "id",
        attr audio_type: String = "type",
    }
    check Audio::check;
}

impl Audio {
    fn check(&mut self) -> Result<(), XmlError> {
        positive(Some(self.id), "attribute 'id' of <audio>")
    }
}

xml_element! {
    /// `<hub type='usb'/>`.
    pub struct Hub {
        attr hub_type: String = "type",
        in_attr_opt alias: String = "alias@name",
        child_opt address: Address = "address",
    }
}

str_enum! {
    /// `<watchdog model=...>`.
    WatchdogModel, "watchdog model" {
        I6300esb => "i6300esb",
        Ib700 => "ib700",
        Diag288 => "diag288",
        Itco => "itco",
    }
}

str_enum! {
    /// `<watchdog action=...>`.
    WatchdogAction, "watchdog action" {
        Reset => "reset",
        Shutdown => "shutdown",
        Poweroff => "poweroff",
        Pause => "pause",
        None => "none",
        Dump => "dump",
        InjectNmi => "inject-nmi",
    }
}

xml_element! {
    /// `<watchdog>`.
    pub struct Watchdog {
        attr model: WatchdogModel = "model",
        attr_opt action: WatchdogAction = "action",
        in_attr_opt alias: String = "alias@name",
        child_opt address: Address = "address",
    }
}

str_enum! {
    /// `<panic model=...>`.
    PanicModel, "panic model" {
        Isa => "isa",
        Pseries => "pseries",
        Hyperv => "hyperv",
        S390 => "s390",
        Pvpanic => "pvpanic",
    }
}

xml_element! {
    /// `<panic>`.
    pub struct Panic {
        attr_opt model: PanicModel = "model",
        in_attr_opt alias: String = "alias@name",
        child_opt address: Address = "address",
    }
}

xml_element! {
    /// `<shmem><model type=...>`.
    pub struct ShmemModel {
        attr model_type: String = "type",
    }
}

xml_element! {
    /// `<shmem><size unit=...>N</size>`.
    pub struct ShmemSize {
        attr_opt unit: String = "unit",
        text value: u64 = "",
    }
}

xml_element! {
    /// `<shmem name=...>`: memory shared with the host and other guests.
    pub struct Shmem {
        attr name: String = "name",
        attr_opt role: String = "role",
        child_opt model: ShmemModel = "model",
        child_opt size: ShmemSize = "size",
        attrs_in server: () = "server",
        attrs_in msi: () = "msi",
        in_attr_opt alias: String = "alias@name",
        child_opt address: Address = "address",
    }
    check Shmem::check;
}

impl Shmem {
    fn check(&mut self) -> Result<(), XmlError> {
        one_of(&self.role, &["master", "peer"], "shmem role")?;
        if self.name.is_empty() || self.name.contains('/') || self.name == "." || self.name == ".."
        {
            return Err(XmlError::Invalid(format!(
                "invalid shmem name '{}'",
                self.name
            )));
        }
        Ok(())
    }

    /// The size in bytes (default 4 MiB, as libvirt's).
    pub fn size_bytes(&self) -> Result<u64, XmlError> {
        let Some(s) = &self.size else {
            return Ok(4 << 20);
        };
        // libvirt reads a shmem size in bytes unless a unit says otherwise.
        crate::unit_multiplier(s.unit.as_deref().unwrap_or("b"))
            .and_then(|m| s.value.checked_mul(m))
            .ok_or_else(|| XmlError::Invalid(format!("invalid shmem size {}", s.value)))
    }
}

str_enum! {
    /// `<iommu model=...>`.
    IommuModel, "iommu model" {
        Intel => "intel",
        Smmuv3 => "smmuv3",
        Virtio => "virtio",
    }
}

xml_element! {
    /// `<iommu><driver .../>`.
    #[derive(Default)]
    pub struct IommuDriver {
        on_off intremap: bool = "intremap",
        on_off caching_mode: bool = "caching_mode",
        on_off eim: bool = "eim",
        on_off iotlb: bool = "iotlb",
        attr_opt aw_bits: u32 = "aw_bits",
    }
}

xml_element! {
    /// `<iommu>`.
    pub struct Iommu {
        attr model: IommuModel = "model",
        child_opt driver: IommuDriver = "driver",
        in_attr_opt alias: String = "alias@name",
        child_opt address: Address = "address",
    }
}

xml_element! {
    /// `<vsock><cid auto='yes|no' address='N'/>`.
    #[derive(Default)]
    pub struct VsockCid {
        yes_no auto: bool = "auto",
        attr_opt address: u32 = "address",
    }
    check VsockCid::check;
}

impl VsockCid {
    fn check(&mut self) -> Result<(), XmlError> {
        // 0, 1 and 2 are the hypervisor's, the loopback's and the host's.
        if let Some(a) = self.address {
            if a < 3 || a == u32::MAX {
                return Err(XmlError::Invalid(format!(
                    "vsock CID {a} is reserved (3 or more)"
                )));
            }
        }
        Ok(())
    }
}

xml_element! {
    /// `<vsock model='virtio'>`.
    pub struct Vsock {
        attr_opt model: String = "model",
        child_opt cid: VsockCid = "cid",
        in_attr_opt alias: String = "alias@name",
        child_opt address: Address = "address",
    }
}

#[cfg(test)]
mod tests {
    use crate::Domain;

    const DEVICES: &str = "<sound model='ich9'><codec type='micro'/><audio id='1'/></sound>\
        <audio id='1' type='none'/><hub type='usb'/>\
        <watchdog model='i6300esb' action='inject-nmi'/><panic model='isa'><address type='isa' iobase='0x505'/></panic>\
        <shmem name='s' role='peer'><model type='ivshmem-plain'/><size unit='M'>4</size></shmem>\
        <iommu model='intel'><driver intremap='on' caching_mode='off' aw_bits='48'/></iommu>\
        <vsock model='virtio'><cid auto='no' address='7'/></vsock>";

    #[test]
    fn kept_through_a_round_trip_in_libvirt_order() {
        let xml = format!(
            "<domain type='qemu'><name>p</name><memory>65536</memory>\
             <os><type>hvm</type></os><devices>{DEVICES}</devices></domain>"
        );
        let d = Domain::parse_kept(&xml).unwrap();
        let out = d.format();
        let pos = |s: &str| out.find(s).unwrap_or_else(|| panic!("{s} missing: {out}"));
        assert!(pos("<sound") < pos("<audio id") && pos("<audio id") < pos("<hub"));
        assert!(pos("<watchdog") < pos("<panic") && pos("<panic") < pos("<shmem"));
        assert!(pos("<shmem") < pos("<iommu") && pos("<iommu") < pos("<vsock"));
        assert!(
            out.contains("<driver intremap='on' caching_mode='off' aw_bits='48'/>"),
            "{out}"
        );
        assert!(out.contains("<cid auto='no' address='7'/>"), "{out}");
        assert_eq!(d.devices.shmems[0].size_bytes().unwrap(), 4 << 20);
        assert_eq!(Domain::parse(&out).unwrap(), d);
    }

    #[test]
    fn bad_values_are_named() {
        let bad = |dev: &str| {
            Domain::parse(&format!(
                "<domain type='qemu'><name>p</name><memory>65536</memory>\
                 <os><type>hvm</type></os><devices>{dev}</devices></domain>"
            ))
            .unwrap_err()
            .to_string()
        };
        assert!(bad("<sound model='gus'/>").contains("sound model"));
        assert!(bad("<watchdog model='i6300esb' action='explode'/>").contains("watchdog action"));
        assert!(bad("<vsock><cid address='2'/></vsock>").contains("reserved"));
        assert!(bad("<shmem name='../x'/>").contains("invalid shmem name"));
    }
}

str_enum! {
    /// `<tpm model=...>`.
    TpmModel, "tpm model" {
        Tis => "tpm-tis",
        Crb => "tpm-crb",
        Spapr => "tpm-spapr",
        SpaprProxy => "spapr-tpm-proxy",
    }
}

str_enum! {
    /// `<tpm><backend type=...>`.
    TpmBackendType, "tpm backend type" {
        Passthrough => "passthrough",
        Emulator => "emulator",
        External => "external",
    }
}

xml_element! {
    /// `<tpm><backend><source type='unix' mode='connect' path=…/>` (external backend).
    pub struct TpmSource {
        attr_opt source_type: String = "type",
        attr_opt mode: String = "mode",
        attr_opt path: String = "path",
    }
}

xml_element! {
    /// `<tpm><backend>`.
    pub struct TpmBackend {
        attr backend_type: TpmBackendType = "type",
        attr_opt version: String = "version",
        yes_no persistent_state: bool = "persistent_state",
        /// passthrough: the host's TPM.
        in_attr_opt device: String = "device@path",
        child_opt source: TpmSource = "source",
    }
    check TpmBackend::check;
}

impl TpmBackend {
    fn check(&mut self) -> Result<(), XmlError> {
        one_of(&self.version, &["1.2", "2.0"], "tpm backend version")
    }
}

xml_element! {
    /// `<tpm>`.
    pub struct Tpm {
        attr_opt model: TpmModel = "model",
        child backend: TpmBackend = "backend",
        in_attr_opt alias: String = "alias@name",
        child_opt address: Address = "address",
    }
}

xml_element! {
    /// `<filesystem><driver type=… queue=…/>`.
    pub struct FsDriver {
        attr_opt driver_type: String = "type",
        attr_opt queue: u32 = "queue",
    }
}

xml_element! {
    /// `<filesystem>`: a host directory the guest mounts (virtiofs).
    pub struct Filesystem {
        attr_opt fs_type: String = "type",
        attr_opt accessmode: String = "accessmode",
        child_opt driver: FsDriver = "driver",
        /// The virtiofsd to run (`<binary path=…>`).
        in_attr_opt binary: String = "binary@path",
        in_attr_opt source: String = "source@dir",
        /// The tag the guest mounts it by.
        in_attr_opt target: String = "target@dir",
        flag readonly: bool = "readonly",
        in_attr_opt alias: String = "alias@name",
        child_opt address: Address = "address",
    }
}

xml_element! {
    /// `<memoryBacking><source type=…/>`.
    pub struct MemorySource {
        attr source_type: String = "type",
    }
}

xml_element! {
    /// `<memoryBacking><access mode=…/>`.
    pub struct MemoryAccess {
        attr mode: String = "mode",
    }
}

xml_element! {
    /// `<memoryBacking>`: what the guest's memory is made of.
    #[derive(Default)]
    pub struct MemoryBacking {
        child_opt hugepages: crate::Hugepages = "hugepages",
        flag nosharepages: bool = "nosharepages",
        flag locked: bool = "locked",
        child_opt source: MemorySource = "source",
        child_opt access: MemoryAccess = "access",
        child_opt allocation: crate::MemoryAllocation = "allocation",
        flag discard: bool = "discard",
    }
}

impl MemoryBacking {
    /// The guest's memory can be mapped by another process (vhost-user: virtiofsd).
    pub fn shared(&self) -> bool {
        self.access.as_ref().is_some_and(|a| a.mode == "shared")
    }
}

xml_element! {
    /// `<redirdev bus='usb' type=…>`: a USB device of another machine, forwarded over a
    /// character device (usbredir).
    pub struct Redirdev {
        attr bus: String = "bus",
        attr_def dev_type: crate::ChardevType = "type",
        children sources: crate::ChardevSource = "source",
        in_attr_opt protocol: String = "protocol@type",
        in_attr_opt boot_order: u32 = "boot@order",
        in_attr_opt alias: String = "alias@name",
        child_opt address: Address = "address",
    }
    check Redirdev::check;
}

impl Redirdev {
    fn check(&mut self) -> Result<(), XmlError> {
        if self.bus != "usb" {
            return Err(XmlError::Invalid(format!(
                "unknown redirdev bus '{}' (usb)",
                self.bus
            )));
        }
        Ok(())
    }

    /// The character device it is forwarded over.
    pub fn chardev(&self) -> crate::Chardev {
        crate::Chardev::backend(self.dev_type, &self.sources, &self.protocol)
    }
}

xml_element! {
    /// `<redirfilter>`: which USB devices may be forwarded.
    #[derive(Default)]
    pub struct Redirfilter {
        children rules: UsbdevRule = "usbdev",
    }
}

xml_element! {
    /// `<redirfilter><usbdev class vendor product version allow>`: one rule (a missing
    /// field matches any device).
    pub struct UsbdevRule {
        attr_opt class: String = "class",
        attr_opt vendor: String = "vendor",
        attr_opt product: String = "product",
        attr_opt version: String = "version",
        yes_no allow: bool = "allow",
    }
}

xml_element! {
    /// `<smartcard mode=…>`: a smartcard reader on the guest's USB CCID controller.
    pub struct Smartcard {
        attr mode: String = "mode",
        /// `type` of the character device (mode passthrough).
        attr_opt dev_type: crate::ChardevType = "type",
        leaves certificates: String = "certificate",
        leaf_opt database: String = "database",
        children sources: crate::ChardevSource = "source",
        in_attr_opt protocol: String = "protocol@type",
        in_attr_opt alias: String = "alias@name",
        child_opt address: Address = "address",
    }
    check Smartcard::check;
}

impl Smartcard {
    fn check(&mut self) -> Result<(), XmlError> {
        one_of(
            &Some(self.mode.clone()),
            &["host", "host-certificates", "passthrough"],
            "smartcard mode",
        )?;
        match self.mode.as_str() {
            "host-certificates" if self.certificates.len() != 3 => Err(XmlError::Invalid(
                "host-certificates mode needs exactly three certificates".into(),
            )),
            "passthrough" if self.dev_type.is_none() => Err(XmlError::Invalid(
                "passthrough mode requires a character device type attribute".into(),
            )),
            _ => Ok(()),
        }
    }

    /// The character device of a passthrough card.
    pub fn chardev(&self) -> Option<crate::Chardev> {
        Some(crate::Chardev::backend(
            self.dev_type?,
            &self.sources,
            &self.protocol,
        ))
    }
}
