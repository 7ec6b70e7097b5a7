//! Devices attached to and detached from a domain: its persistent definition (CONFIG), the
//! running VM through its shim (LIVE), or both. An interface on a network or host bridge
//! gets its port and tap from the network driver, and the tap reaches the shim as a
//! descriptor; a detached interface's port goes back when the guest has let it go. A host
//! device is leased from the node device driver ([`crate::hotplug_hostdev`]).

use std::sync::Arc;

use vireo_driver::events::DeviceEvent;
use vireo_driver::{DriverError, Result};
use vireo_proto::remote::{
    affect, event, procs, Domain as Handle, DomainFlagsArgs, DomainGetXmlDescRet,
};
use vireo_proto::typed::TypedParam;
use vireo_proto::vireo::{
    procs as vprocs, ShimAttachArgs, ShimAttachRet, ShimDetachArgs, ShimDetachRet, VIREO_PROGRAM,
    VIREO_VERSION,
};
use vireo_rpc::client::{CallError, Connection};
use vireo_xml::{Chardev, Disk, DiskType, Domain, Input, InputBus, InputType, Interface, XmlError};

use crate::driver::{no_domain_uuid, QemuDriver};

/// How long a detach waits for the guest before it returns (the device still goes when the
/// guest lets it go, with a DEVICE_REMOVED event), as libvirt waits.
const DETACH_WAIT_MS: u32 = 5_000;

/// A device as a device call gives it.
enum Device {
    Interface(Box<Interface>),
    Disk(Box<Disk>),
    Input(Box<Input>),
    Channel(Box<Chardev>),
    Memory(Box<vireo_xml::MemoryDevice>),
    Controller(Box<vireo_xml::Controller>),
    Hostdev(Box<vireo_xml::Hostdev>),
}

/// The element name of a device's XML (`disk`, `interface`, …).
fn root_name(xml: &str) -> Option<&str> {
    let mut rest = xml.trim_start();
    // Skip an XML declaration and comments.
    loop {
        if let Some(r) = rest.strip_prefix("<?") {
            rest = r.split_once("?>")?.1.trim_start();
        } else if let Some(r) = rest.strip_prefix("<!--") {
            rest = r.split_once("-->")?.1.trim_start();
        } else {
            break;
        }
    }
    let r = rest.strip_prefix('<')?;
    let end = r
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .unwrap_or(r.len());
    Some(&r[..end])
}

fn xml_error(e: XmlError) -> DriverError {
    match e {
        XmlError::Syntax { line, col, msg } => {
            DriverError::XmlSyntax(format!("(device_definition):{line}:{col}: {msg}"))
        }
        XmlError::Invalid(m) => DriverError::XmlInvalid(m),
        XmlError::Unsupported(m) => DriverError::ConfigUnsupported(m),
    }
}

/// Reads the device XML of a call. What attach and update would not keep is refused;
/// detach only matches, so its XML may say more than the model knows.
fn parse_device(xml: &str, verb: &str) -> Result<Device> {
    fn read<T: vireo_xml::XmlElement>(xml: &str, root: &str, verb: &str) -> Result<Box<T>> {
        let v = if verb == "detaching" {
            vireo_xml::parse_root(xml, root)
        } else {
            vireo_xml::parse_root_kept(xml, root)
        };
        v.map(Box::new).map_err(xml_error)
    }
    match root_name(xml) {
        Some("interface") => Ok(Device::Interface(read(xml, "interface", verb)?)),
        Some("disk") => Ok(Device::Disk(read(xml, "disk", verb)?)),
        Some("input") => Ok(Device::Input(read(xml, "input", verb)?)),
        Some("channel") => Ok(Device::Channel(read(xml, "channel", verb)?)),
        Some("memory") => Ok(Device::Memory(read(xml, "memory", verb)?)),
        Some("controller") => Ok(Device::Controller(read(xml, "controller", verb)?)),
        Some("hostdev") => Ok(Device::Hostdev(read(xml, "hostdev", verb)?)),
        Some(other) if !other.is_empty() => Err(DriverError::ConfigUnsupported(format!(
            "{verb} <{other}> devices is not supported by Vireo yet"
        ))),
        _ => Err(DriverError::XmlInvalid(
            "the device XML has no element".into(),
        )),
    }
}

/// The controller of `all` that `want` names: by type and index.
fn find_controller(all: &[vireo_xml::Controller], want: &vireo_xml::Controller) -> Result<usize> {
    all.iter()
        .position(|c| {
            c.ctl_type == want.ctl_type && c.index.unwrap_or(0) == want.index.unwrap_or(0)
        })
        .ok_or_else(|| {
            DriverError::DeviceMissing(format!(
                "controller {}:{} not found",
                want.ctl_type,
                want.index.unwrap_or(0)
            ))
        })
}

/// The index a controller added without one gets: the first its type has free (libvirt's).
fn unused_index(all: &[vireo_xml::Controller], t: vireo_xml::ControllerType) -> u32 {
    (0..)
        .find(|i| {
            !all.iter()
                .any(|c| c.ctl_type == t && c.index.unwrap_or(0) == *i)
        })
        .unwrap_or(0)
}

/// A controller being added: its index (the first free when it has none) and a check that
/// no controller of its type has that index yet (libvirt's "target TYPE:N already exists").
fn new_controller(all: &[vireo_xml::Controller], c: &mut vireo_xml::Controller) -> Result<()> {
    let index = match c.index {
        Some(i) => i,
        None => unused_index(all, c.ctl_type),
    };
    c.index = Some(index);
    if find_controller(all, c).is_ok() {
        return Err(DriverError::OperationFailed(format!(
            "target {}:{index} already exists",
            c.ctl_type
        )));
    }
    Ok(())
}

/// The virtio-serial controller a channel or virtio console is on: its address's, else
/// the lowest index the definition has (where the command line puts it).
fn vserial_controller_of(def: &Domain, ch: &Chardev) -> u32 {
    let named = ch
        .address
        .as_ref()
        .filter(|a| a.addr_type == vireo_xml::AddressType::VirtioSerial)
        .and_then(|a| a.get_num("controller"));
    match named {
        Some(c) => u32::try_from(c).unwrap_or(u32::MAX),
        None => def
            .devices
            .controllers
            .iter()
            .filter(|c| c.ctl_type == vireo_xml::ControllerType::VirtioSerial)
            .map(|c| c.index.unwrap_or(0))
            .min()
            .unwrap_or(0),
    }
}

/// Whether devices still sit on the controller: disks on a SCSI controller, channels and
/// virtio consoles on a virtio-serial one (libvirt's busy check).
fn controller_busy(def: &Domain, c: &vireo_xml::Controller) -> bool {
    let index = c.index.unwrap_or(0);
    match c.ctl_type {
        vireo_xml::ControllerType::Scsi => def
            .devices
            .disks
            .iter()
            .any(|d| crate::cmdline::scsi_controller_of(d) == Some(u64::from(index))),
        vireo_xml::ControllerType::VirtioSerial => {
            let virtio_console = |c: &&Chardev| {
                c.target.as_ref().and_then(|t| t.target_type.as_deref()) == Some("virtio")
            };
            def.devices
                .channels
                .iter()
                .chain(def.devices.consoles.iter().filter(virtio_console))
                .any(|ch| vserial_controller_of(def, ch) == index)
        }
        _ => false,
    }
}

/// Refuses to take a controller away while devices sit on it.
fn controller_idle(def: &Domain, c: &vireo_xml::Controller) -> Result<()> {
    if controller_busy(def, c) {
        return Err(DriverError::OperationFailed(
            "device cannot be detached: device is busy".into(),
        ));
    }
    Ok(())
}

/// Refuses to unplug a controller QEMU cannot let go of, or one devices sit on.
fn controller_unpluggable(def: &Domain, c: &vireo_xml::Controller) -> Result<String> {
    let id = match c.ctl_type {
        vireo_xml::ControllerType::Scsi | vireo_xml::ControllerType::VirtioSerial => {
            crate::cmdline::controller_id(c)
        }
        _ => None,
    };
    let Some(id) = id else {
        return Err(DriverError::ConfigUnsupported(format!(
            "'{}' controller cannot be hot unplugged.",
            c.ctl_type
        )));
    };
    controller_idle(def, c)?;
    Ok(c.alias.clone().unwrap_or(id))
}

/// Removes the device with alias `alias` (of the kinds that can be detached) from `def`;
/// false when there is none.
fn remove_by_alias(def: &mut Domain, alias: &str) -> bool {
    let is = |a: &Option<String>| a.as_deref() == Some(alias);
    let d = &mut def.devices;
    if let Some(n) = d.disks.iter().position(|x| is(&x.alias)) {
        d.disks.remove(n);
    } else if let Some(n) = d.interfaces.iter().position(|x| is(&x.alias)) {
        d.interfaces.remove(n);
    } else if let Some(n) = d.inputs.iter().position(|x| is(&x.alias)) {
        d.inputs.remove(n);
    } else if let Some(n) = d.channels.iter().position(|x| is(&x.alias)) {
        d.channels.remove(n);
    } else if let Some(n) = d.memories.iter().position(|x| is(&x.alias)) {
        crate::memdev::remove(def, n);
    } else if let Some(n) = d.hostdevs.iter().position(|x| is(&x.alias)) {
        d.hostdevs.remove(n);
    } else if let Some(n) = d.controllers.iter().position(|x| is(&x.alias)) {
        d.controllers.remove(n);
    } else {
        return false;
    }
    true
}

/// Which definitions a call changes: (live, config), from its flags and the domain.
pub(crate) fn targets(flags: u32, active: bool, persistent: bool) -> Result<(bool, bool)> {
    let unknown = flags & !(affect::LIVE | affect::CONFIG);
    if unknown != 0 {
        return Err(DriverError::InvalidArg(format!(
            "unsupported flags (0x{unknown:x})"
        )));
    }
    let (mut live, mut config) = (flags & affect::LIVE != 0, flags & affect::CONFIG != 0);
    if !live && !config {
        live = active;
        config = !active;
    }
    if live && !active {
        return Err(DriverError::OperationInvalid(
            "domain is not running".into(),
        ));
    }
    if config && !persistent {
        return Err(DriverError::OperationInvalid(
            "cannot modify device on transient domain".into(),
        ));
    }
    Ok((live, config))
}

/// The one interface of `ifaces` that `want` names: by MAC address and alias when it
/// gives them (libvirt's matching).
fn find_interface(ifaces: &[Interface], want: &Interface) -> Result<usize> {
    let hits: Vec<usize> = ifaces
        .iter()
        .enumerate()
        .filter(|(_, i)| want.mac.is_none() || i.mac == want.mac)
        .filter(|(_, i)| want.alias.is_none() || i.alias == want.alias)
        .map(|(n, _)| n)
        .collect();
    let what = match &want.mac {
        Some(m) => format!("MAC address {m}"),
        None => "the given interface".into(),
    };
    match hits.as_slice() {
        [n] => Ok(*n),
        [] => Err(DriverError::DeviceMissing(format!(
            "no device matching {what} found"
        ))),
        _ => Err(DriverError::OperationFailed(format!(
            "multiple devices matching {what} found"
        ))),
    }
}

/// The disk of `disks` with `want`'s target.
fn find_disk(disks: &[Disk], want: &Disk) -> Result<usize> {
    disks
        .iter()
        .position(|d| d.target.dev == want.target.dev)
        .ok_or_else(|| DriverError::DeviceMissing(format!("disk {} not found", want.target.dev)))
}

/// An input device's bus, as the command line reads it when none is given.
fn input_bus(i: &Input) -> InputBus {
    i.bus.unwrap_or(match i.input_type {
        InputType::Tablet => InputBus::Usb,
        _ => InputBus::Ps2,
    })
}

/// The input of `inputs` that `want` names: by type and bus (and alias, if given).
fn find_input(inputs: &[Input], want: &Input) -> Result<usize> {
    inputs
        .iter()
        .position(|i| {
            i.input_type == want.input_type
                && input_bus(i) == input_bus(want)
                && (want.alias.is_none() || i.alias == want.alias)
        })
        .ok_or_else(|| {
            DriverError::DeviceMissing(format!(
                "matching input device not found (type '{}')",
                want.input_type
            ))
        })
}

/// The channel of `channels` that `want` names: by target name (and alias, if given).
fn find_channel(channels: &[Chardev], want: &Chardev) -> Result<usize> {
    let name = |c: &Chardev| c.target.as_ref().and_then(|t| t.name.clone());
    channels
        .iter()
        .position(|c| name(c) == name(want) && (want.alias.is_none() || c.alias == want.alias))
        .ok_or_else(|| {
            DriverError::DeviceMissing(format!(
                "channel '{}' not found",
                name(want).unwrap_or_default()
            ))
        })
}

fn cmdline_error(e: crate::cmdline::CmdlineError) -> DriverError {
    let crate::cmdline::CmdlineError::Unsupported(m) = e;
    DriverError::ConfigUnsupported(m)
}

/// What a call to a VM's shim failed with, as the daemon's client hears it: the shim's
/// own error as it came; a shim that went away (its VM with it) as libvirt says a QEMU
/// that went away mid-call.
pub(crate) fn shim_error(e: CallError) -> DriverError {
    match e {
        CallError::Remote(r) => DriverError::Peer(Box::new(r)),
        CallError::Closed => DriverError::OperationFailed("domain is no longer running".into()),
        e => DriverError::OperationFailed(format!("domain's shim: {e}")),
    }
}

impl QemuDriver {
    /// The domain's (active, persistent, persistent definition).
    pub(crate) fn device_target(&self, h: &Handle) -> Result<(bool, bool, Domain)> {
        let reg = self.read();
        let o = reg
            .by_uuid
            .get(&h.uuid)
            .ok_or_else(|| no_domain_uuid(&h.uuid, &h.name))?;
        Ok((o.active(), o.persistent, o.def.clone()))
    }

    /// Writes a changed persistent definition (checked at start, as a defined one is).
    pub(crate) fn save_config(&self, h: &Handle, def: Domain) -> Result<()> {
        let mut reg = self.write();
        let o = reg
            .by_uuid
            .get_mut(&h.uuid)
            .ok_or_else(|| no_domain_uuid(&h.uuid, &h.name))?;
        self.defs.put(&def.name, def.format().as_bytes())?;
        o.def = def;
        Ok(())
    }

    /// One of the shim's own calls (VIREO program) for the running VM, its reply decoded.
    pub(crate) async fn shim_call<A: vireo_xdr::Xdr, R: vireo_xdr::Xdr>(
        &self,
        h: &Handle,
        proc_: i32,
        args: &A,
    ) -> Result<R> {
        let conn = self.shim_conn(h)?;
        conn.call_fds(VIREO_PROGRAM, VIREO_VERSION, proc_, args)
            .await
            .map(|(r, _)| r)
            .map_err(shim_error)
    }

    pub(crate) fn shim_conn(&self, h: &Handle) -> Result<Arc<Connection>> {
        let reg = self.read();
        reg.by_uuid
            .get(&h.uuid)
            .and_then(|o| o.shim.clone())
            .ok_or_else(|| DriverError::OperationInvalid("domain is not running".into()))
    }

    /// The running VM's definition, as its shim has it now.
    pub(crate) async fn live_def(&self, h: &Handle) -> Result<Domain> {
        let conn = self.shim_conn(h)?;
        let r: DomainGetXmlDescRet = conn
            .call(
                procs::DOMAIN_GET_XML_DESC,
                &DomainFlagsArgs {
                    dom: h.clone(),
                    flags: 0,
                },
            )
            .await
            .map_err(shim_error)?;
        Domain::parse(&r.xml).map_err(xml_error)
    }

    /// `virDomainAttachDeviceFlags`.
    pub async fn attach_device(self: &Arc<Self>, h: &Handle, xml: &str, flags: u32) -> Result<()> {
        let (active, persistent, def) = self.device_target(h)?;
        let (live, config) = targets(flags, active, persistent)?;
        let dev = parse_device(xml, "attaching")?;
        let mut new_config = config.then(|| def.clone());
        match dev {
            Device::Interface(mut iface) => {
                if iface.mac.is_none() {
                    let b = *uuid::Uuid::new_v4().as_bytes();
                    iface.mac = Some(vireo_xml::format_mac(&[0x52, 0x54, 0x00, b[0], b[1], b[2]]));
                }
                if let Some(d) = &mut new_config {
                    if d.devices.interfaces.iter().any(|i| i.mac == iface.mac) {
                        return Err(DriverError::OperationInvalid(format!(
                            "an interface with MAC address {} is already present",
                            iface.mac.as_deref().unwrap_or_default()
                        )));
                    }
                    d.devices.interfaces.push((*iface).clone());
                }
                if live {
                    let mut iface = *iface;
                    let pcie = crate::pci::nic_is_pcie(iface.model.as_deref());
                    self.place_live(h, &mut iface.address, pcie, "<interface>")
                        .await?;
                    self.attach_live(h, &def, iface).await?;
                }
            }
            Device::Disk(disk) => {
                if let Some(d) = &mut new_config {
                    if d.devices
                        .disks
                        .iter()
                        .any(|x| x.target.dev == disk.target.dev)
                    {
                        return Err(DriverError::OperationFailed(format!(
                            "target {} already exists",
                            disk.target.dev
                        )));
                    }
                    d.devices.disks.push((*disk).clone());
                }
                if live {
                    let mut disk = *disk;
                    let what = format!("<disk> '{}'", disk.target.dev);
                    let virtio = disk.target.bus == Some(vireo_xml::DiskBus::Virtio)
                        || (disk.target.bus.is_none() && disk.target.dev.starts_with("vd"));
                    if virtio {
                        self.place_live(h, &mut disk.address, true, &what).await?;
                    }
                    self.attach_disk_live(h, &def, disk).await?;
                }
            }
            Device::Input(inp) => {
                if let Some(d) = &mut new_config {
                    d.devices.inputs.push((*inp).clone());
                }
                if live {
                    let mut inp = *inp;
                    if inp.bus == Some(vireo_xml::InputBus::Virtio) {
                        self.place_live(h, &mut inp.address, true, "<input>")
                            .await?;
                    }
                    self.attach_simple(h, vireo_xml::format_root(&inp, "input"))
                        .await?;
                }
            }
            Device::Channel(ch) => {
                let name = ch.target.as_ref().and_then(|t| t.name.clone());
                if let (Some(d), Some(n)) = (&mut new_config, &name) {
                    if find_channel(&d.devices.channels, &ch).is_ok() {
                        return Err(DriverError::OperationFailed(format!(
                            "a channel named '{n}' already exists"
                        )));
                    }
                }
                if let Some(d) = &mut new_config {
                    d.devices.channels.push((*ch).clone());
                }
                if live {
                    self.attach_simple(h, vireo_xml::format_root(&*ch, "channel"))
                        .await?;
                }
            }
            Device::Controller(c) => {
                if let Some(d) = &mut new_config {
                    let mut c = (*c).clone();
                    new_controller(&d.devices.controllers, &mut c)?;
                    d.devices.controllers.push(c);
                }
                if live {
                    let mut c = *c;
                    let running = self.live_def(h).await?;
                    new_controller(&running.devices.controllers, &mut c)?;
                    crate::cmdline::hotplug_controller(&c).map_err(cmdline_error)?;
                    self.place_live(h, &mut c.address, true, "<controller>")
                        .await?;
                    self.attach_simple(h, vireo_xml::format_root(&c, "controller"))
                        .await?;
                }
            }
            Device::Memory(m) => {
                if let Some(d) = &mut new_config {
                    crate::memdev::add(d, (*m).clone())?;
                }
                if live {
                    let mut m = *m;
                    // The running VM's room counts what was plugged in since it started.
                    crate::memdev::add(&mut self.live_def(h).await?, m.clone())?;
                    if m.model == vireo_xml::MemoryModel::VirtioMem {
                        self.place_live(h, &mut m.address, true, "<memory>").await?;
                    }
                    self.attach_simple(h, vireo_xml::format_root(&m, "memory"))
                        .await?;
                }
            }
            Device::Hostdev(hd) => {
                // Into the persistent definition, the device leased when the domain
                // starts; into the running VM, leased now.
                if let Some(d) = &mut new_config {
                    if d.devices.hostdevs.iter().any(|x| x.same_device(&hd)) {
                        return Err(DriverError::OperationInvalid(
                            "device is already in the domain configuration".into(),
                        ));
                    }
                    d.devices.hostdevs.push((*hd).clone());
                    // What the whole definition must satisfy (boot orders, places).
                    Domain::parse(&d.format()).map_err(xml_error)?;
                }
                if live {
                    self.attach_hostdev_live(h, *hd).await?;
                }
            }
        }
        if let Some(mut d) = new_config {
            // The new device's PCI place in the persistent definition.
            if let Some(family) = crate::cmdline::family_of(&d, self.caps()) {
                crate::pci::assign(&mut d, family).map_err(DriverError::ConfigUnsupported)?;
            }
            self.save_config(h, d)?;
        }
        Ok(())
    }

    /// Gives a PCI device being plugged into the running guest a free place of the live
    /// topology (a free root port on q35), unless the device XML names one.
    pub(crate) async fn place_live(
        &self,
        h: &Handle,
        addr: &mut Option<vireo_xml::Address>,
        pcie: bool,
        what: &str,
    ) -> Result<()> {
        if addr.is_some() {
            return Ok(());
        }
        let live = self.live_def(h).await?;
        let Some(family) = crate::cmdline::family_of(&live, self.caps()) else {
            return Ok(());
        };
        let at = crate::pci::Topology::of(&live, family)
            .and_then(|mut t| t.place_hotplug(pcie, what))
            .map_err(DriverError::OperationFailed)?;
        *addr = Some(crate::pci::address(at, false));
        Ok(())
    }

    /// Plugs a device that needs nothing from the other drivers (an input, a channel).
    async fn attach_simple(&self, h: &Handle, xml: String) -> Result<()> {
        let conn = self.shim_conn(h)?;
        let (ret, _): (ShimAttachRet, _) = conn
            .call_fds(
                VIREO_PROGRAM,
                VIREO_VERSION,
                vprocs::SHIM_ATTACH_DEVICE,
                &ShimAttachArgs {
                    xml,
                    shown: None,
                    flags: 0,
                },
            )
            .await
            .map_err(shim_error)?;
        self.publish_device(h.uuid, event::ID_DEVICE_ADDED, ret.alias);
        Ok(())
    }

    /// Plugs a disk into the running VM: a volume becomes its file through the storage
    /// driver, and the live XML goes on showing the volume. An encrypted disk's passphrase
    /// comes from the secret driver and goes to the shim in a pipe, never in a message.
    async fn attach_disk_live(
        self: &Arc<Self>,
        h: &Handle,
        def: &Domain,
        disk: Disk,
    ) -> Result<()> {
        let conn = self.shim_conn(h)?;
        let passphrase = match &disk.encryption {
            Some(enc) => Some(self.passphrase_pipe(&disk, enc).await?),
            None => None,
        };
        let args = self.disk_args(def, &disk).await?;
        let r: std::result::Result<(ShimAttachRet, _), CallError> = match passphrase {
            Some(fd) => {
                conn.call_sending_fds(
                    VIREO_PROGRAM,
                    VIREO_VERSION,
                    vprocs::SHIM_ATTACH_DEVICE,
                    &args,
                    vec![fd],
                )
                .await
            }
            None => {
                conn.call_fds(
                    VIREO_PROGRAM,
                    VIREO_VERSION,
                    vprocs::SHIM_ATTACH_DEVICE,
                    &args,
                )
                .await
            }
        };
        let (ret, _) = r.map_err(shim_error)?;
        self.publish_device(h.uuid, event::ID_DEVICE_ADDED, ret.alias);
        Ok(())
    }

    /// The read end of a pipe holding an encrypted disk's passphrase (from the secret
    /// driver), for QEMU to read once.
    async fn passphrase_pipe(
        &self,
        disk: &Disk,
        enc: &vireo_xml::Encryption,
    ) -> Result<std::os::fd::OwnedFd> {
        let what = format!("<disk> '{}'", disk.target.dev);
        let uuid = crate::cmdline::luks_secret(enc, &what).map_err(cmdline_error)?;
        let peers = self.peers.get().ok_or_else(|| {
            DriverError::OperationInvalid(format!(
                "disk '{}' is encrypted, but no secret driver is reachable",
                disk.target.dev
            ))
        })?;
        let value = peers.secret_value(uuid).await?;
        vireo_fdpass::pipe_with(&value).map_err(|e| {
            DriverError::OperationFailed(format!(
                "cannot hand the passphrase of disk '{}' to the VM's shim: {e}",
                disk.target.dev
            ))
        })
    }

    /// Plugs an interface into the running VM: its port and tap first (for a network or
    /// host bridge), then the shim adds it to QEMU.
    async fn attach_live(
        self: &Arc<Self>,
        h: &Handle,
        def: &Domain,
        iface: Interface,
    ) -> Result<()> {
        let conn = self.shim_conn(h)?;
        // The port's owner is the domain; the interface alone is what is plugged.
        let mut one = def.clone();
        one.devices.interfaces = vec![iface];
        let port = crate::peers::interface_port(&mut one, 0, self.peers.get()).await?;
        let Some(iface) = one.devices.interfaces.pop() else {
            return Err(DriverError::Internal("interface vanished".into()));
        };
        let (port_ref, fds) = match port {
            Some((r, p)) => (Some(r), vec![p.fd]),
            None => (None, Vec::new()),
        };
        let args = ShimAttachArgs {
            xml: vireo_xml::format_root(&iface, "interface"),
            shown: None,
            flags: 0,
        };
        let r: std::result::Result<(ShimAttachRet, _), CallError> = if fds.is_empty() {
            conn.call_fds(
                VIREO_PROGRAM,
                VIREO_VERSION,
                vprocs::SHIM_ATTACH_DEVICE,
                &args,
            )
            .await
        } else {
            conn.call_sending_fds(
                VIREO_PROGRAM,
                VIREO_VERSION,
                vprocs::SHIM_ATTACH_DEVICE,
                &args,
                fds,
            )
            .await
        };
        let alias = match r {
            Ok((ret, _)) => ret.alias,
            Err(e) => {
                if let Some(r) = port_ref {
                    crate::peers::release_ports(&[r], self.peers.get()).await;
                }
                return Err(shim_error(e));
            }
        };
        if let Some(r) = port_ref {
            // Stopped meanwhile: the port goes back.
            let leftover = {
                let mut reg = self.write();
                match reg.by_uuid.get_mut(&h.uuid).filter(|o| o.active()) {
                    Some(o) => {
                        o.ports.push((alias.clone(), r));
                        None
                    }
                    None => Some(r),
                }
            };
            if let Some(r) = leftover {
                crate::peers::release_ports(&[r], self.peers.get()).await;
            }
        }
        self.publish_device(h.uuid, event::ID_DEVICE_ADDED, alias);
        Ok(())
    }

    /// What the shim gets of a disk: as QEMU opens it (a volume resolved to its file
    /// through the storage driver) and, for a volume, as the live XML shows it.
    async fn disk_args(&self, def: &Domain, disk: &Disk) -> Result<ShimAttachArgs> {
        let mut one = def.clone();
        one.devices.disks = vec![disk.clone()];
        let resolved = crate::peers::resolve(&one, self.peers.get()).await?;
        let Some(run) = resolved.devices.disks.into_iter().next() else {
            return Err(DriverError::Internal("disk vanished".into()));
        };
        Ok(ShimAttachArgs {
            xml: vireo_xml::format_root(&run, "disk"),
            shown: (disk.disk_type == DiskType::Volume)
                .then(|| vireo_xml::format_root(disk, "disk")),
            flags: 0,
        })
    }

    /// `virDomainDetachDeviceFlags`. A live detach asks the guest and waits a while; the
    /// device goes when the guest lets it go (DEVICE_REMOVED).
    pub async fn detach_device(self: &Arc<Self>, h: &Handle, xml: &str, flags: u32) -> Result<()> {
        let (active, persistent, def) = self.device_target(h)?;
        let (live, config) = targets(flags, active, persistent)?;
        let dev = parse_device(xml, "detaching")?;
        let new_config = if config {
            let mut d = def;
            match &dev {
                Device::Interface(want) => {
                    let n = find_interface(&d.devices.interfaces, want)?;
                    d.devices.interfaces.remove(n);
                }
                Device::Disk(want) => {
                    let n = find_disk(&d.devices.disks, want)?;
                    d.devices.disks.remove(n);
                }
                Device::Input(want) => {
                    let n = find_input(&d.devices.inputs, want)?;
                    d.devices.inputs.remove(n);
                }
                Device::Channel(want) => {
                    let n = find_channel(&d.devices.channels, want)?;
                    d.devices.channels.remove(n);
                }
                Device::Memory(want) => {
                    let n = crate::memdev::find(&d.devices.memories, want)?;
                    crate::memdev::remove(&mut d, n);
                }
                Device::Controller(want) => {
                    let n = find_controller(&d.devices.controllers, want)?;
                    controller_idle(&d, &d.devices.controllers[n])?;
                    d.devices.controllers.remove(n);
                }
                Device::Hostdev(want) => {
                    let n = d
                        .devices
                        .hostdevs
                        .iter()
                        .position(|x| x.same_device(want))
                        .ok_or_else(|| {
                            DriverError::DeviceMissing(
                                "device not present in domain configuration".into(),
                            )
                        })?;
                    d.devices.hostdevs.remove(n);
                }
            }
            Some(d)
        } else {
            None
        };
        if live {
            let running = self.live_def(h).await?;
            let alias = match &dev {
                Device::Interface(want) => {
                    let n = find_interface(&running.devices.interfaces, want)?;
                    running.devices.interfaces[n]
                        .alias
                        .clone()
                        .unwrap_or_else(|| format!("net{n}"))
                }
                Device::Disk(want) => {
                    let n = find_disk(&running.devices.disks, want)?;
                    let d = &running.devices.disks[n];
                    d.alias
                        .clone()
                        .or_else(|| crate::cmdline::disk_alias(d))
                        .unwrap_or_default()
                }
                Device::Input(want) => {
                    let n = find_input(&running.devices.inputs, want)?;
                    running.devices.inputs[n].alias.clone().unwrap_or_default()
                }
                Device::Channel(want) => {
                    let n = find_channel(&running.devices.channels, want)?;
                    running.devices.channels[n]
                        .alias
                        .clone()
                        .unwrap_or_default()
                }
                Device::Memory(want) => {
                    let n = crate::memdev::find(&running.devices.memories, want)?;
                    running.devices.memories[n]
                        .alias
                        .clone()
                        .unwrap_or_default()
                }
                Device::Controller(want) => {
                    let n = find_controller(&running.devices.controllers, want)?;
                    controller_unpluggable(&running, &running.devices.controllers[n])?
                }
                Device::Hostdev(want) => crate::hotplug_hostdev::live_alias(&running, want)?,
            };
            let _: ShimDetachRet = self
                .shim_call(
                    h,
                    vprocs::SHIM_DETACH_DEVICE,
                    &ShimDetachArgs {
                        alias,
                        wait_ms: DETACH_WAIT_MS,
                    },
                )
                .await?;
        }
        if let Some(d) = new_config {
            self.save_config(h, d)?;
        }
        Ok(())
    }

    /// `virDomainDetachDeviceAlias`: the device with this alias leaves the definition and
    /// is asked to leave the running VM; it is gone when DEVICE_REMOVED says so (no wait).
    pub async fn detach_device_alias(
        self: &Arc<Self>,
        h: &Handle,
        alias: &str,
        flags: u32,
    ) -> Result<()> {
        let (active, persistent, def) = self.device_target(h)?;
        let (live, config) = targets(flags, active, persistent)?;
        let missing = || DriverError::DeviceMissing(format!("no device found with alias {alias}"));
        let new_config = if config {
            let mut d = def;
            if let Some(c) = d
                .devices
                .controllers
                .iter()
                .find(|c| c.alias.as_deref() == Some(alias))
            {
                controller_idle(&d, c)?;
            }
            if !remove_by_alias(&mut d, alias) {
                return Err(missing());
            }
            Some(d)
        } else {
            None
        };
        if live {
            let mut running = self.live_def(h).await?;
            let ctl = running
                .devices
                .controllers
                .iter()
                .find(|c| c.alias.as_deref() == Some(alias));
            if let Some(c) = ctl {
                controller_unpluggable(&running, c)?;
            }
            if !remove_by_alias(&mut running, alias) {
                return Err(missing());
            }
            let _: ShimDetachRet = self
                .shim_call(
                    h,
                    vprocs::SHIM_DETACH_DEVICE,
                    &ShimDetachArgs {
                        alias: alias.to_string(),
                        wait_ms: 0,
                    },
                )
                .await?;
        }
        if let Some(d) = new_config {
            self.save_config(h, d)?;
        }
        Ok(())
    }

    /// `virDomainUpdateDeviceFlags`: a cdrom's medium (its `<source>`), changed or ejected.
    pub async fn update_device(self: &Arc<Self>, h: &Handle, xml: &str, flags: u32) -> Result<()> {
        let (active, persistent, def) = self.device_target(h)?;
        let (live, config) = targets(flags & !affect::FORCE, active, persistent)?;
        let disk = match parse_device(xml, "updating")? {
            Device::Disk(d) => *d,
            Device::Memory(m) => return self.update_memory(h, def, &m, live, config).await,
            Device::Interface(i) => return self.update_interface(h, def, &i, live, config).await,
            _ => {
                return Err(DriverError::ConfigUnsupported(format!(
                    "updating <{}> devices is not supported by Vireo yet",
                    root_name(xml).unwrap_or_default()
                )))
            }
        };
        if disk.device != vireo_xml::DiskDevice::Cdrom {
            return Err(DriverError::ConfigUnsupported(format!(
                "disk {}: only a cdrom's medium can be changed",
                disk.target.dev
            )));
        }
        let new_config = if config {
            let mut d = def.clone();
            let n = find_disk(&d.devices.disks, &disk)?;
            let old = &mut d.devices.disks[n];
            if old.device != vireo_xml::DiskDevice::Cdrom {
                return Err(DriverError::ConfigUnsupported(format!(
                    "disk {} is not a cdrom",
                    disk.target.dev
                )));
            }
            old.disk_type = disk.disk_type;
            old.source = disk.source.clone();
            if let Some(drv) = &disk.driver {
                old.driver = Some(drv.clone());
            }
            Some(d)
        } else {
            None
        };
        if live {
            let args = self.disk_args(&def, &disk).await?;
            let () = self.shim_call(h, vprocs::SHIM_CHANGE_MEDIA, &args).await?;
        }
        if let Some(d) = new_config {
            self.save_config(h, d)?;
        }
        Ok(())
    }

    /// `domif-setlink` (an `<interface>` update): a card's link state, on the running VM
    /// and in the definition. Other changes to a card are refused.
    async fn update_interface(
        &self,
        h: &Handle,
        def: Domain,
        want: &Interface,
        live: bool,
        config: bool,
    ) -> Result<()> {
        let check = |have: &Interface| -> Result<()> {
            if have.if_type != want.if_type || (want.model.is_some() && have.model != want.model) {
                return Err(DriverError::ConfigUnsupported(
                    "cannot modify network device configuration: only the link state can \
                     change"
                        .into(),
                ));
            }
            Ok(())
        };
        let up = want.link_state != Some(vireo_xml::LinkState::Down);
        let new_config = if config {
            let mut d = def;
            let n = find_interface(&d.devices.interfaces, want)?;
            check(&d.devices.interfaces[n])?;
            d.devices.interfaces[n].link_state = want.link_state;
            Some(d)
        } else {
            None
        };
        if live {
            let running = self.live_def(h).await?;
            let n = find_interface(&running.devices.interfaces, want)?;
            check(&running.devices.interfaces[n])?;
            let alias = running.devices.interfaces[n]
                .alias
                .clone()
                .unwrap_or_else(|| format!("net{n}"));
            let () = self
                .shim_call(
                    h,
                    vprocs::SHIM_SET_LINK,
                    &vireo_proto::vireo::ShimSetLinkArgs {
                        alias,
                        up: i32::from(up),
                    },
                )
                .await?;
        }
        if let Some(d) = new_config {
            self.save_config(h, d)?;
        }
        Ok(())
    }

    /// `update-memory-device`: a virtio-mem device's requested size, on the running VM
    /// (the guest is asked to plug or unplug memory) and in the definition.
    async fn update_memory(
        &self,
        h: &Handle,
        def: Domain,
        want: &vireo_xml::MemoryDevice,
        live: bool,
        config: bool,
    ) -> Result<()> {
        let new_config = if config {
            let mut d = def;
            let mut plain = want.clone();
            // An alias is the running VM's; the definition's device is matched by the rest.
            plain.alias = None;
            let n = crate::memdev::find(&d.devices.memories, &plain)?;
            let kib = crate::memdev::requested(&d.devices.memories[n], want)?;
            crate::memdev::set_requested(&mut d, n, kib);
            Some(d)
        } else {
            None
        };
        if live {
            let running = self.live_def(h).await?;
            let n = crate::memdev::find(&running.devices.memories, want)?;
            let dev = &running.devices.memories[n];
            let kib = crate::memdev::requested(dev, want)?;
            let () = self
                .shim_call(
                    h,
                    vprocs::SHIM_UPDATE_MEMORY,
                    &vireo_proto::vireo::ShimUpdateMemoryArgs {
                        alias: dev.alias.clone().unwrap_or_default(),
                        requested_kib: kib,
                    },
                )
                .await?;
        }
        if let Some(d) = new_config {
            self.save_config(h, d)?;
        }
        Ok(())
    }

    /// The shim says the guest let a device go: its port goes back, clients hear of it.
    pub(crate) fn device_removed(&self, uuid: [u8; 16], alias: String) {
        let port = {
            let mut reg = self.write();
            reg.by_uuid.get_mut(&uuid).and_then(|o| {
                let i = o.ports.iter().position(|(a, _)| *a == alias)?;
                Some(o.ports.remove(i).1)
            })
        };
        if let (Some(port), Some(peers), Ok(rt)) = (
            port,
            self.peers.get().cloned(),
            tokio::runtime::Handle::try_current(),
        ) {
            rt.spawn(async move {
                crate::peers::release_ports(&[port], Some(&peers)).await;
            });
        }
        // A host device's lease goes back.
        self.hostdev_removed(uuid, &alias);
        self.publish_device(uuid, event::ID_DEVICE_REMOVED, alias);
    }

    pub(crate) fn publish_device(&self, uuid: [u8; 16], event_id: i32, alias: String) {
        self.publish_device_status(uuid, event_id, alias, 0, 0);
    }

    /// A device event with what happened and how it ended (a block job's type, status).
    pub(crate) fn publish_device_status(
        &self,
        uuid: [u8; 16],
        event_id: i32,
        alias: String,
        detail: i32,
        status: i32,
    ) {
        self.publish_device_event(uuid, event_id, |e| {
            e.alias = alias;
            e.detail = detail;
            e.status = status;
        });
    }

    /// An event of `vireo_proto::domevent` (its legacy message `body`) about the domain.
    pub(crate) fn publish_event_body(&self, uuid: [u8; 16], event_id: i32, body: Vec<u8>) {
        self.publish_device_event(uuid, event_id, |e| e.body = body);
    }

    /// A virtio-mem device's size changed (the guest plugged or unplugged its blocks).
    pub(crate) fn publish_memory_size(&self, uuid: [u8; 16], alias: String, size: u64) {
        self.publish_device_event(uuid, event::ID_MEMORY_DEVICE_SIZE_CHANGE, |e| {
            e.alias = alias;
            e.size = size;
        });
    }

    /// Publishes event `event_id` about the domain `uuid` (nothing when it is gone);
    /// `fill` sets what it carries beyond those.
    fn publish_device_event(
        &self,
        uuid: [u8; 16],
        event_id: i32,
        fill: impl FnOnce(&mut DeviceEvent),
    ) {
        let dom = {
            let reg = self.read();
            match reg.by_uuid.get(&uuid) {
                Some(o) => o.handle(),
                None => return,
            }
        };
        let mut ev = DeviceEvent {
            dom,
            event_id,
            alias: String::new(),
            detail: 0,
            status: 0,
            size: 0,
            params: Vec::new(),
            body: Vec::new(),
        };
        fill(&mut ev);
        self.device_events.publish(ev);
    }

    /// A job of the domain's ended well (its shim said so, or a migration brought its
    /// statistics here): kept for `domjobinfo --completed` also after the VM is gone, and
    /// JOB_COMPLETED to the clients.
    pub(crate) fn job_completed(&self, uuid: [u8; 16], mut params: Vec<TypedParam>) {
        let dom = {
            let mut reg = self.write();
            let Some(o) = reg.by_uuid.get_mut(&uuid) else {
                return;
            };
            if let Some(d) = o.downtime_seen_there.take() {
                params.retain(|p| p.field != "downtime");
                params.push(TypedParam::new(
                    "downtime",
                    vireo_proto::typed::TypedValue::ULLong(d),
                ));
            }
            o.completed_job = Some(params.clone());
            o.handle()
        };
        self.device_events.publish(DeviceEvent {
            dom,
            event_id: vireo_proto::migrate::event::ID_JOB_COMPLETED,
            alias: String::new(),
            detail: 0,
            status: 0,
            size: 0,
            params,
            body: Vec::new(),
        });
    }

    /// The statistics of the domain's last job that ended well, kept here (taken unless
    /// `keep`).
    pub fn completed_job(&self, h: &Handle, keep: bool) -> Result<Option<Vec<TypedParam>>> {
        let mut reg = self.write();
        let o = reg
            .by_uuid
            .get_mut(&h.uuid)
            .ok_or_else(|| no_domain_uuid(&h.uuid, &h.name))?;
        Ok(if keep {
            o.completed_job.clone()
        } else {
            o.completed_job.take()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vireo_proto::RemoteError;

    #[test]
    fn a_shim_gone_mid_call_is_a_domain_gone() {
        let e = RemoteError::from(shim_error(CallError::Closed));
        assert_eq!(e.code, vireo_proto::error::code::OPERATION_FAILED);
        assert_eq!(
            e.message.as_deref(),
            Some("operation failed: domain is no longer running")
        );
        let mine = RemoteError::rpc("from the shim");
        assert_eq!(
            RemoteError::from(shim_error(CallError::Remote(mine.clone()))).message,
            mine.message
        );
    }

    #[test]
    fn root_names() {
        assert_eq!(root_name("<interface type='user'/>"), Some("interface"));
        assert_eq!(
            root_name("<?xml version='1.0'?>\n<!-- x --> <disk type='file'>"),
            Some("disk")
        );
        assert_eq!(root_name("<hostdev>"), Some("hostdev"));
        assert_eq!(root_name("nothing"), None);
    }

    #[test]
    fn flags_pick_the_definitions() {
        assert_eq!(targets(0, true, true).unwrap(), (true, false));
        assert_eq!(targets(0, false, true).unwrap(), (false, true));
        assert_eq!(targets(3, true, true).unwrap(), (true, true));
        assert!(targets(1, false, true).is_err());
        assert!(targets(2, true, false).is_err());
        assert!(targets(8, true, true).is_err());
    }

    #[test]
    fn controllers_get_free_indexes_and_are_busy_while_used() {
        let def = |devices: &str| {
            Domain::parse(&format!(
                "<domain type='qemu'><name>c</name><memory>65536</memory>\
                 <os><type>hvm</type></os><devices>{devices}</devices></domain>"
            ))
            .unwrap()
        };
        let ctl =
            |x: &str| -> vireo_xml::Controller { vireo_xml::parse_root(x, "controller").unwrap() };
        let d = def("<controller type='scsi' index='0' model='virtio-scsi'/>\
             <controller type='scsi' index='1' model='virtio-scsi'/>\
             <controller type='virtio-serial' index='0'/>\
             <controller type='virtio-serial' index='1'/>\
             <disk type='file'><source file='/a'/><target dev='sda' bus='scsi'/>\
             <address type='drive' controller='1' bus='0' target='0' unit='0'/></disk>\
             <channel type='unix'><target type='virtio' name='a'/></channel>");
        let all = &d.devices.controllers;
        // No index: the first free one; a taken one: libvirt's words.
        let mut c = ctl("<controller type='scsi' model='virtio-scsi'/>");
        new_controller(all, &mut c).unwrap();
        assert_eq!(c.index, Some(2));
        let mut c = ctl("<controller type='virtio-serial' index='1'/>");
        let e = new_controller(all, &mut c).unwrap_err().to_string();
        assert!(e.contains("target virtio-serial:1 already exists"), "{e}");
        // The disk sits on SCSI controller 1, the channel (no address) on virtio-serial 0.
        let busy = |x: &str| controller_busy(&d, &ctl(x));
        assert!(!busy("<controller type='scsi' index='0'/>"));
        assert!(busy("<controller type='scsi' index='1'/>"));
        assert!(busy("<controller type='virtio-serial' index='0'/>"));
        assert!(!busy("<controller type='virtio-serial' index='1'/>"));
        let e = controller_unpluggable(&d, &ctl("<controller type='scsi' index='1'/>"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("device cannot be detached: device is busy"),
            "{e}"
        );
        assert_eq!(
            controller_unpluggable(&d, &ctl("<controller type='virtio-serial' index='1'/>"))
                .unwrap(),
            "virtio-serial1"
        );
        let e = controller_unpluggable(&d, &ctl("<controller type='usb' index='0'/>"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'usb' controller cannot be hot unplugged."),
            "{e}"
        );
    }

    #[test]
    fn interfaces_are_found_by_mac() {
        let i = |mac: &str| -> Interface {
            vireo_xml::parse_root(
                &format!("<interface type='user'><mac address='{mac}'/></interface>"),
                "interface",
            )
            .unwrap()
        };
        let list = vec![i("52:54:00:00:00:01"), i("52:54:00:00:00:02")];
        assert_eq!(find_interface(&list, &i("52:54:00:00:00:02")).unwrap(), 1);
        let e = find_interface(&list, &i("52:54:00:00:00:03")).unwrap_err();
        assert!(matches!(e, DriverError::DeviceMissing(_)), "{e}");
        let any: Interface =
            vireo_xml::parse_root("<interface type='user'/>", "interface").unwrap();
        assert!(find_interface(&list, &any).is_err());
        assert_eq!(find_interface(&list[..1], &any).unwrap(), 0);
    }
}
