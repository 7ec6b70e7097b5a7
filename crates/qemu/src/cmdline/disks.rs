//! Disks: the `-blockdev` nodes of their images (with qcow2 backing chains and LUKS
//! secrets) and their `-device`; hot-plugged disks and cdrom media; disk aliases.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Value};
use vireo_storagefile::Layer;
use vireo_xml::{Address, AddressType, DiskBus, DiskCache, DiskDevice, DiskIo, DiskType};

use super::slots::hotplug_pci_place;
use super::util::{json_obj, on_off, Opts};
use super::{unsupported, Builder, Result};
use crate::pci::Family;

impl<'a> Builder<'a> {
    pub(super) fn disks(&mut self) -> Result<()> {
        let def = self.def;
        let disks = &def.devices.disks;
        let count = disks.len();
        let mut names = BTreeSet::new();
        let mut ide_units = BTreeSet::new();
        let mut sata_ports = BTreeSet::new();
        let mut virtio_ids = BTreeSet::new();
        let mut scsi_units = BTreeSet::new();
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
                    let place = scsi_place(disk, index, &def.devices.controllers, &what)?;
                    if !scsi_units.insert(place.id.clone()) {
                        return unsupported(format!("{what}: its SCSI address is used twice"));
                    }
                    (
                        if cdrom { "scsi-cd" } else { "scsi-hd" },
                        place.opts(),
                        place.id,
                    )
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
            o = o.set_opt("iothread", set.iothread.map(|t| format!("iothread{t}")));
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

    /// The secret object holding an encrypted disk's passphrase (`-object secret`, read
    /// from the pipe the launcher gave QEMU); returns its id.
    fn disk_secret(
        &mut self,
        enc: &vireo_xml::Encryption,
        format_node: &str,
        what: &str,
    ) -> Result<String> {
        let uuid = vireo_xml::format_uuid(&luks_secret(enc, what)?);
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
        let id = secret_id(format_node, 0);
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
}

/// The UUID of the passphrase secret of an encrypted disk (LUKS, one `<secret
/// type='passphrase' uuid='…'/>`: what Vireo can open).
pub fn luks_secret(enc: &vireo_xml::Encryption, what: &str) -> Result<[u8; 16]> {
    if enc.format != "luks" {
        return unsupported(format!(
            "{what}: encryption format '{}' is not supported (luks)",
            enc.format
        ));
    }
    match enc.secret.as_slice() {
        [s] if s.secret_type == "passphrase" => match s.uuid {
            Some(u) => Ok(u),
            None => unsupported(format!(
                "{what}: LUKS encryption needs one <secret type='passphrase' uuid='…'/>"
            )),
        },
        _ => unsupported(format!(
            "{what}: LUKS encryption needs one <secret type='passphrase' uuid='…'/>"
        )),
    }
}

/// The id of the `k`th secret object named after a disk's format node.
fn secret_id(format_node: &str, k: usize) -> String {
    if k == 0 {
        format!("{format_node}-encryption-secret0")
    } else {
        format!("{format_node}-encryption-secret0-{k}")
    }
}

/// The id of the secret object of an encrypted disk plugged in with block nodes
/// `libvirt-{node}-…`: the first of its names no object in `taken` has.
pub fn hotplug_secret_id(node: usize, taken: impl Fn(&str) -> bool) -> String {
    let format_node = format!("libvirt-{node}-format");
    (0..)
        .map(|k| secret_id(&format_node, k))
        .find(|id| !taken(id))
        .unwrap_or_default()
}

/// The `object-add` arguments of a secret object that reads a passphrase from QEMU's
/// own descriptor `fd` (one `add-fd` gave it).
pub fn secret_object(id: &str, fd: i64) -> Value {
    json!({
        "qom-type": "secret",
        "id": id,
        "file": format!("/dev/fd/{fd}"),
        "format": "raw",
    })
}

/// The secret object each disk of a starting VM reads its passphrase through, as the
/// command line names them (one per secret, named after the first disk that uses it).
pub fn initial_secret_ids(disks: &[vireo_xml::Disk]) -> Vec<Option<String>> {
    let count = disks.len();
    let mut by_uuid: std::collections::BTreeMap<[u8; 16], String> = Default::default();
    disks
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let enc = d.encryption.as_ref()?;
            disk_path(d, "").ok().flatten()?;
            let uuid = luks_secret(enc, "").ok()?;
            let id = by_uuid
                .entry(uuid)
                .or_insert_with(|| secret_id(&format!("libvirt-{}-format", count - i), 0));
            Some(id.clone())
        })
        .collect()
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

/// `(bus, unit)` of a drive address on controller 0 (IDE: bus 0-1, unit 0-1; SATA: bus 0,
/// unit = port 0-5).
fn drive_address(a: &Address, what: &str, max_bus: u64, max_unit: u64) -> Result<(u32, u32)> {
    let (controller, bus, target, unit) = drive_address4(a, what)?;
    if controller != 0 || target != 0 || bus > max_bus || unit > max_unit {
        return unsupported(format!(
            "{what}: drive address {controller}:{bus}:{target}:{unit} is not available"
        ));
    }
    Ok((bus as u32, unit as u32))
}

/// `(controller, bus, target, unit)` of a drive address (missing parts are 0).
fn drive_address4(a: &Address, what: &str) -> Result<(u64, u64, u64, u64)> {
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
    Ok((
        num("controller")?,
        num("bus")?,
        num("target")?,
        num("unit")?,
    ))
}

/// How a disk's image is read: format, cache mode (direct, no-flush, write-cache), AIO and
/// whether it is read-only.
pub(crate) struct DiskSettings {
    format: &'static str,
    cache: Option<(bool, bool, bool)>,
    aio: Option<&'static str>,
    readonly: bool,
    cdrom: bool,
    iothread: Option<u32>,
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
    if drv.iothread.is_some() && bus != DiskBus::Virtio {
        return unsupported(format!(
            "{what}: only virtio disks can run in an I/O thread (bus '{bus}')"
        ));
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
        iothread: drv.iothread,
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

/// Where a SCSI disk sits: on its controller's bus (controller 0 unless its drive address
/// names another), with libvirt's drive address (by default unit = the disk's index), as
/// the controller model addresses its devices.
struct ScsiPlace {
    bus: String,
    /// virtio-scsi: channel, scsi-id (target) and lun (unit); lsilogic: scsi-id = unit.
    channel: Option<u32>,
    scsi_id: u32,
    lun: Option<u32>,
    id: String,
}

impl ScsiPlace {
    fn opts(&self) -> String {
        let mut o = format!("bus={}", self.bus);
        if let Some(c) = self.channel {
            o.push_str(&format!(",channel={c}"));
        }
        o.push_str(&format!(",scsi-id={}", self.scsi_id));
        if let Some(l) = self.lun {
            o.push_str(&format!(",lun={l}"));
        }
        o
    }

    fn set_json(&self, device: &mut Value) {
        device["bus"] = json!(self.bus);
        if let Some(c) = self.channel {
            device["channel"] = json!(c);
        }
        device["scsi-id"] = json!(self.scsi_id);
        if let Some(l) = self.lun {
            device["lun"] = json!(l);
        }
    }
}

/// The model of SCSI controller `index` (libvirt's default for x86 is lsilogic).
fn scsi_model<'c>(
    controllers: &'c [vireo_xml::Controller],
    index: u64,
    what: &str,
) -> Result<&'c str> {
    let c = controllers.iter().find(|c| {
        c.ctl_type == vireo_xml::ControllerType::Scsi && u64::from(c.index.unwrap_or(0)) == index
    });
    match c {
        Some(c) => Ok(c.model.as_deref().unwrap_or("lsilogic")),
        None if index == 0 => unsupported(format!(
            "{what}: there is no <controller type='scsi'> for it"
        )),
        None => unsupported(format!(
            "{what}: there is no <controller type='scsi' index='{index}'> for it"
        )),
    }
}

fn scsi_place(
    disk: &vireo_xml::Disk,
    index: u32,
    controllers: &[vireo_xml::Controller],
    what: &str,
) -> Result<ScsiPlace> {
    let (controller, bus, target, unit) = match &disk.address {
        Some(a) => drive_address4(a, what)?,
        None => (0, 0, 0, u64::from(index)),
    };
    let model = scsi_model(controllers, controller, what)?;
    let id = format!("scsi{controller}-{bus}-{target}-{unit}");
    let qbus = format!("scsi{controller}.0");
    let at = format!("{controller}:{bus}:{target}:{unit}");
    match model {
        // Seven devices and the adapter on one narrow bus.
        "lsilogic" => {
            if bus != 0 || target != 0 || unit > 6 {
                return unsupported(format!(
                    "{what}: drive address {at} is not available on an lsilogic controller \
                     (bus 0, target 0, unit 0-6)"
                ));
            }
            Ok(ScsiPlace {
                bus: qbus,
                channel: None,
                scsi_id: unit as u32,
                lun: None,
                id,
            })
        }
        "virtio-scsi" => {
            if bus != 0 || target > 255 || unit > 16383 {
                return unsupported(format!(
                    "{what}: drive address {at} is not available on a virtio-scsi controller \
                     (bus 0, target 0-255, unit 0-16383)"
                ));
            }
            Ok(ScsiPlace {
                bus: qbus,
                channel: Some(0),
                scsi_id: target as u32,
                lun: Some(unit as u32),
                id,
            })
        }
        other => unsupported(format!(
            "<controller type='scsi' model='{other}'> is not supported (lsilogic, virtio-scsi)"
        )),
    }
}

/// The index of the SCSI controller a SCSI disk sits on (None: not a SCSI disk).
pub fn scsi_controller_of(disk: &vireo_xml::Disk) -> Option<u64> {
    let scsi = disk.target.bus == Some(DiskBus::Scsi)
        || (disk.target.bus.is_none() && disk.target.dev.starts_with("sd"));
    if !scsi {
        return None;
    }
    match &disk.address {
        Some(a) if a.addr_type == AddressType::Drive => Some(a.get_num("controller").unwrap_or(0)),
        _ => Some(0),
    }
}

/// A disk hot-plugged into a running VM (on a hot-pluggable bus: virtio, or a SCSI
/// controller's): its block nodes, named `libvirt-{node}-…`, and the `device_add`
/// arguments. `controllers` are the running VM's; `secret` is the id of the secret object
/// an encrypted disk's passphrase is in. Returns (nodes, device, device id).
pub fn hotplug_disk(
    disk: &vireo_xml::Disk,
    node: usize,
    controllers: &[vireo_xml::Controller],
    secret: Option<&str>,
) -> Result<(DiskNodes, Value, String)> {
    let dev = disk.target.dev.as_str();
    let what = format!("<disk> '{dev}'");
    let Some((prefix, index)) = disk_name_index(dev) else {
        return unsupported(format!("{what}: not a valid disk target name"));
    };
    let bus = disk.target.bus.unwrap_or(match prefix {
        "vd" => DiskBus::Virtio,
        "sd" => DiskBus::Scsi,
        _ => DiskBus::Ide,
    });
    let scsi = match (bus, disk.device) {
        (DiskBus::Virtio, DiskDevice::Disk) => None,
        (DiskBus::Scsi, DiskDevice::Disk | DiskDevice::Cdrom) => {
            Some(scsi_place(disk, index, controllers, &what)?)
        }
        _ => {
            return unsupported(format!(
                "{what}: only virtio and SCSI disks can be hot-plugged (bus '{bus}', device '{}')",
                disk.device
            ))
        }
    };
    let secret = match (&disk.encryption, secret) {
        (None, _) => None,
        (Some(enc), Some(id)) => {
            luks_secret(enc, &what)?;
            Some(id)
        }
        (Some(_), None) => return unsupported(format!("{what}: its passphrase was not given")),
    };
    let set = disk_settings(disk, bus, &what)?;
    let Some(path) = disk_path(disk, &what)? else {
        return unsupported(format!("{what}: no <source>"));
    };
    let nodes = disk_nodes(disk, path, node, &set, secret, &what)?;
    let (driver, id) = match &scsi {
        None => ("virtio-blk-pci", format!("virtio-disk{index}")),
        Some(p) if disk.device == DiskDevice::Cdrom => ("scsi-cd", p.id.clone()),
        Some(p) => ("scsi-hd", p.id.clone()),
    };
    let mut device = json!({"driver": driver, "id": id, "drive": nodes.top});
    if let Some(c) = set.cache {
        device["write-cache"] = json!(on_off(c.2));
    }
    if let Some(serial) = &disk.serial {
        device["serial"] = json!(serial);
    }
    if disk.shareable {
        device["share-rw"] = json!(true);
    }
    if let Some(t) = set.iothread {
        device["iothread"] = json!(format!("iothread{t}"));
    }
    match &scsi {
        None => hotplug_pci_place(&mut device, disk.address.as_ref(), &what)?,
        Some(p) => p.set_json(&mut device),
    }
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
        DiskBus::Scsi => {
            let (c, b, t, u) = match &disk.address {
                Some(a) => drive_address4(a, "").ok()?,
                None => (0, 0, 0, u64::from(index)),
            };
            Some(format!("scsi{c}-{b}-{t}-{u}"))
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
}
