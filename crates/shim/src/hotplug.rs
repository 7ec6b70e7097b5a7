//! Devices plugged into and unplugged from the running VM. The QEMU daemon prepares a
//! device (its tap made by the network driver, its MAC address given) and the shim adds it
//! to QEMU; an unplug asks the guest, and the device goes when QEMU says the guest let it
//! go (`DEVICE_DELETED`), with a DEVICE_REMOVED event to the shim's clients.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail};
use serde_json::{json, Value};
use vireo_proto::remote::{procs, state};
use vireo_xml::{Chardev, Disk, Input, InputBus, InputType, Interface, InterfaceType};

use crate::vm::{OpFailed, OpInvalid, Vm};

/// A guest interface of the running VM, with its QEMU ids.
#[derive(Debug, Clone)]
pub struct Nic {
    pub def: Interface,
    /// The device's id (`net0`, or the user's `ua-` alias).
    pub id: String,
    /// Its backend's id.
    pub netdev: String,
    /// An unplug was asked and the guest has not answered yet.
    pub removing: bool,
}

impl Nic {
    /// What the live XML and the events call it: the user's alias, else its id.
    pub fn alias(&self) -> &str {
        self.def.alias.as_deref().unwrap_or(&self.id)
    }
}

/// A disk of the running VM.
#[derive(Debug, Clone)]
pub struct LiveDisk {
    /// As the live XML shows it (a volume disk as its volume).
    pub shown: Disk,
    /// The device's id.
    pub id: String,
    /// Its block nodes are `libvirt-{node}-…`.
    pub node: usize,
    /// How many external snapshots put an overlay on top of its image since QEMU opened
    /// it: overlay `k` is `libvirt-{node}-s{k}-…`.
    pub overlays: usize,
    /// The node the device reads and writes through: the image's format node, the newest
    /// overlay's, or the base a commit pivoted to.
    pub top: String,
    /// Older node numbers whose backing layers the disk still reads (a shallow copy
    /// pivoted onto an image over them); removed with the disk.
    pub kept: Vec<usize>,
    pub removing: bool,
    /// The secret object an encrypted disk's passphrase is in (disks of one secret that
    /// the VM started with share it); it goes with the last disk that uses it.
    pub secret: Option<String>,
}

impl LiveDisk {
    pub fn alias(&self) -> &str {
        self.shown.alias.as_deref().unwrap_or(&self.id)
    }

    pub fn top_node(&self) -> String {
        self.top.clone()
    }

    /// The disk is now the image opened as nodes `libvirt-{node}-…`.
    pub fn set_node(&mut self, node: usize) {
        self.node = node;
        self.overlays = 0;
        self.top = format!("libvirt-{node}-format");
    }
}

/// The disks QEMU was started with (`shown` as the live XML shows them, `run` as QEMU
/// opened them), with the ids, node names and secret objects the command line gives them.
pub fn initial_disks(shown: &[Disk], run: &[Disk]) -> Vec<LiveDisk> {
    let count = shown.len();
    let secrets = vireo_qemu::cmdline::initial_secret_ids(run);
    shown
        .iter()
        .enumerate()
        .map(|(i, d)| LiveDisk {
            secret: secrets.get(i).cloned().flatten(),
            shown: d.clone(),
            id: vireo_qemu::cmdline::disk_alias(d).unwrap_or_else(|| format!("disk{i}")),
            node: count - i,
            overlays: 0,
            kept: Vec::new(),
            top: format!("libvirt-{}-format", count - i),
            removing: false,
        })
        .collect()
}

/// An input device of the running VM (PS/2 ones belong to the machine: no id).
#[derive(Debug, Clone)]
pub struct LiveInput {
    pub def: Input,
    pub id: Option<String>,
}

/// A virtio channel of the running VM, with its device's and its backend's ids.
#[derive(Debug, Clone)]
pub struct LiveChannel {
    pub def: Chardev,
    pub id: String,
    pub chardev: String,
}

/// The input devices QEMU was started with, with the ids the command line gives them.
pub fn initial_inputs(inputs: &[Input]) -> Vec<LiveInput> {
    inputs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let bus = d.bus.unwrap_or(match d.input_type {
                InputType::Tablet => InputBus::Usb,
                _ => InputBus::Ps2,
            });
            LiveInput {
                def: d.clone(),
                id: matches!(bus, InputBus::Usb | InputBus::Virtio).then(|| format!("input{i}")),
            }
        })
        .collect()
}

/// The channels QEMU was started with.
pub fn initial_channels(channels: &[Chardev]) -> Vec<LiveChannel> {
    channels
        .iter()
        .enumerate()
        .map(|(i, c)| LiveChannel {
            def: c.clone(),
            id: format!("channel{i}"),
            chardev: format!("charchannel{i}"),
        })
        .collect()
}

/// The first `{prefix}N` that `taken` says is free.
pub(crate) fn free_id(prefix: &str, taken: impl Fn(&str) -> bool) -> String {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|id| !taken(id))
        .unwrap_or_default()
}

/// A device QEMU cannot have as asked (libvirt's "unsupported configuration").
#[derive(Debug)]
pub struct Unsupported(pub String);
impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unsupported configuration: {}", self.0)
    }
}
impl std::error::Error for Unsupported {}

fn unsupported(e: vireo_qemu::cmdline::CmdlineError) -> anyhow::Error {
    let vireo_qemu::cmdline::CmdlineError::Unsupported(m) = e;
    anyhow!(Unsupported(m))
}

/// A device the call names is not there.
#[derive(Debug)]
pub struct Missing(pub String);
impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "device not found: {}", self.0)
    }
}
impl std::error::Error for Missing {}

/// The interfaces QEMU was started with: ids as the command line gives them.
pub fn initial_nics(ifaces: &[Interface]) -> Vec<Nic> {
    ifaces
        .iter()
        .enumerate()
        .map(|(i, n)| Nic {
            def: n.clone(),
            id: format!("net{i}"),
            netdev: format!("hostnet{i}"),
            removing: false,
        })
        .collect()
}

/// A free device id: the user's alias when it is one (`ua-…`) and free, else the first
/// free `netN`.
fn pick_id(nics: &[Nic], alias: Option<&str>) -> anyhow::Result<String> {
    let taken = |id: &str| nics.iter().any(|n| n.id == id || n.alias() == id);
    if let Some(a) = alias {
        if !a.starts_with("ua-") {
            bail!(OpInvalid(format!(
                "a device alias must start with 'ua-' ('{a}' does not)"
            )));
        }
        if taken(a) {
            bail!(OpInvalid(format!("non unique alias detected: {a}")));
        }
        return Ok(a.to_string());
    }
    (0..)
        .map(|i| format!("net{i}"))
        .find(|id| !taken(id))
        .ok_or_else(|| anyhow!("no free device id"))
}

impl Vm {
    /// Hot-plugs a guest interface: its backend (user-mode, or the tap the daemon sent),
    /// then the device. Returns its alias. On failure QEMU is left as it was.
    pub async fn attach_interface(
        &self,
        iface: Interface,
        tap: Option<OwnedFd>,
    ) -> anyhow::Result<String> {
        self.require_running()?;
        let (id, netdev) = {
            let nics = self.nics();
            if let Some(m) = &iface.mac {
                if nics.iter().any(|n| n.def.mac.as_ref() == Some(m)) {
                    bail!(OpInvalid(format!(
                        "an interface with MAC address {m} is already present"
                    )));
                }
            }
            let id = pick_id(&nics, iface.alias.as_deref())?;
            let netdev = format!("host{id}");
            (id, netdev)
        };
        let device =
            vireo_qemu::cmdline::interface_device(&iface, &id, &netdev).map_err(unsupported)?;
        let qmp = self.qmp();
        let mut fdname = None;
        let backend = match (iface.if_type, tap) {
            (InterfaceType::User, None) => json!({"type": "user", "id": netdev}),
            (
                InterfaceType::Network | InterfaceType::Bridge | InterfaceType::Ethernet,
                Some(fd),
            ) => {
                let name = format!("fd-{netdev}");
                qmp.execute_with_fd("getfd", Some(json!({ "fdname": name })), fd.as_fd())
                    .await
                    .map_err(|e| anyhow!(OpFailed(format!("cannot pass the tap to QEMU: {e}"))))?;
                fdname = Some(name.clone());
                json!({"type": "tap", "id": netdev, "fd": name})
            }
            (t, fd) => bail!(OpInvalid(format!(
                "cannot hot-plug an interface of type '{t}' {} a tap device",
                if fd.is_some() { "with" } else { "without" }
            ))),
        };
        if let Err(e) = qmp.execute("netdev_add", Some(backend)).await {
            if let Some(n) = fdname {
                let _ = qmp.execute("closefd", Some(json!({ "fdname": n }))).await;
            }
            bail!(OpFailed(format!("cannot add the interface's backend: {e}")));
        }
        if let Err(e) = qmp.execute("device_add", Some(device)).await {
            let _ = qmp
                .execute("netdev_del", Some(json!({ "id": netdev })))
                .await;
            bail!(OpFailed(format!("cannot add the interface: {e}")));
        }
        let nic = Nic {
            def: iface,
            id,
            netdev,
            removing: false,
        };
        let alias = nic.alias().to_string();
        self.nics().push(nic);
        Ok(alias)
    }

    /// Hot-plugs a disk (`run` as QEMU opens it, `shown` as the live XML shows it): an
    /// encrypted one's secret object (its passphrase read from the pipe `passphrase`), its
    /// block nodes, then the device. Returns its alias. On failure QEMU is left as it was.
    pub async fn attach_disk(
        &self,
        run: Disk,
        shown: Disk,
        passphrase: Option<OwnedFd>,
    ) -> anyhow::Result<String> {
        self.require_running()?;
        self.give_disk(&run);
        let (node, secret) = {
            let disks = self.disks();
            if disks.iter().any(|d| d.shown.target.dev == run.target.dev) {
                bail!(OpInvalid(format!(
                    "target {} already exists",
                    run.target.dev
                )));
            }
            let node = disks.iter().map(|d| d.node).max().unwrap_or(0) + 1;
            let secret = run.encryption.is_some().then(|| {
                vireo_qemu::cmdline::hotplug_secret_id(node, |id| {
                    disks.iter().any(|d| d.secret.as_deref() == Some(id))
                })
            });
            (node, secret)
        };
        let (nodes, device, id) = vireo_qemu::cmdline::hotplug_disk(
            &run,
            node,
            &self.controllers().clone(),
            secret.as_deref(),
        )
        .map_err(unsupported)?;
        match (&secret, passphrase) {
            (Some(s), Some(fd)) => self.add_secret(s, fd).await?,
            (None, None) => {}
            (Some(_), None) => bail!(OpInvalid(format!(
                "disk {}: the passphrase of an encrypted disk comes in a pipe",
                run.target.dev
            ))),
            (None, Some(_)) => bail!(OpInvalid(format!(
                "disk {} is not encrypted: it takes no passphrase",
                run.target.dev
            ))),
        }
        let qmp = self.qmp();
        let added = match self.add_nodes(&nodes).await {
            Ok(a) => a,
            Err(e) => {
                self.del_secret(secret.as_deref()).await;
                return Err(e);
            }
        };
        if let Err(e) = qmp.execute("device_add", Some(device)).await {
            self.del_nodes(&added).await;
            self.del_secret(secret.as_deref()).await;
            bail!(OpFailed(format!("cannot add the disk: {e}")));
        }
        let disk = LiveDisk {
            shown,
            id,
            node,
            overlays: 0,
            kept: Vec::new(),
            top: format!("libvirt-{node}-format"),
            removing: false,
            secret,
        };
        let alias = disk.alias().to_string();
        self.disks().push(disk);
        Ok(alias)
    }

    /// Makes secret object `id` holding the passphrase in the pipe `fd`: QEMU gets the
    /// descriptor (`add-fd`), reads it through its own `/dev/fd/N` and closes it again.
    async fn add_secret(&self, id: &str, fd: OwnedFd) -> anyhow::Result<()> {
        let qmp = self.qmp();
        let got = qmp
            .execute_with_fd("add-fd", None, fd.as_fd())
            .await
            .map_err(|e| anyhow!(OpFailed(format!("cannot pass the passphrase to QEMU: {e}"))))?;
        drop(fd);
        let (Some(set), Some(n)) = (
            got.get("fdset-id").and_then(Value::as_i64),
            got.get("fd").and_then(Value::as_i64),
        ) else {
            bail!(OpFailed(format!("add-fd answered {got}")));
        };
        let made = qmp
            .execute(
                "object-add",
                Some(vireo_qemu::cmdline::secret_object(id, n)),
            )
            .await;
        // QEMU has read the pipe (or failed to): its copy goes.
        if let Err(e) = qmp
            .execute("remove-fd", Some(json!({ "fdset-id": set })))
            .await
        {
            eprintln!("vireo-shim: cannot close fd set {set}: {e}");
        }
        made.map_err(|e| anyhow!(OpFailed(format!("cannot make the disk's secret: {e}"))))?;
        Ok(())
    }

    /// Removes a secret object no disk reads through any more.
    async fn del_secret(&self, id: Option<&str>) {
        let Some(id) = id else { return };
        if self.disks().iter().any(|d| d.secret.as_deref() == Some(id)) {
            return;
        }
        if let Err(e) = self
            .qmp()
            .execute("object-del", Some(json!({ "id": id })))
            .await
        {
            eprintln!("vireo-shim: cannot remove secret object {id}: {e}");
        }
    }

    /// Changes a cdrom's medium (`run` with its new source, or none to eject): the tray is
    /// opened (forced: the guest may have locked it), the old medium removed and its block
    /// nodes with it, the new one opened and inserted, the tray closed.
    pub async fn change_media(&self, run: Disk, shown: Disk) -> anyhow::Result<()> {
        self.require_running()?;
        self.give_disk(&run);
        let (id, old, node) = {
            let disks = self.disks();
            let Some(d) = disks.iter().find(|d| d.shown.target.dev == run.target.dev) else {
                bail!(Missing(format!("disk {} not found", run.target.dev)));
            };
            if d.shown.device != vireo_xml::DiskDevice::Cdrom {
                bail!(OpInvalid(format!(
                    "disk {} is not a cdrom: only a cdrom's medium can be changed",
                    run.target.dev
                )));
            }
            let next = disks.iter().map(|d| d.node).max().unwrap_or(0) + 1;
            (d.id.clone(), d.node, next)
        };
        let nodes = vireo_qemu::cmdline::media_nodes(&run, node).map_err(unsupported)?;
        let qmp = self.qmp();
        qmp.execute("blockdev-open-tray", Some(json!({"id": id, "force": true})))
            .await
            .map_err(|e| anyhow!(OpFailed(format!("cannot open the tray: {e}"))))?;
        qmp.execute("blockdev-remove-medium", Some(json!({ "id": id })))
            .await
            .map_err(|e| anyhow!(OpFailed(format!("cannot remove the medium: {e}"))))?;
        let were = self.files_of_nodes(&[old]).await;
        self.remove_nodes(old).await;
        let mut now = node;
        if let Some(nodes) = nodes {
            if let Err(e) = self.add_nodes(&nodes).await {
                self.set_medium(&run.target.dev, None, node);
                return Err(e);
            }
            qmp.execute(
                "blockdev-insert-medium",
                Some(json!({"id": id, "node-name": nodes.top})),
            )
            .await
            .map_err(|e| anyhow!(OpFailed(format!("cannot insert the medium: {e}"))))?;
        } else {
            now = old;
        }
        let _ = qmp
            .execute("blockdev-close-tray", Some(json!({ "id": id })))
            .await;
        self.set_medium(&run.target.dev, Some(shown), now);
        self.give_back_unused(were).await;
        Ok(())
    }

    /// The files QEMU has open through its block nodes, by node name (None when QEMU does
    /// not say).
    async fn node_files(&self) -> Option<Vec<(String, PathBuf)>> {
        let nodes = self
            .qmp()
            .execute("query-named-block-nodes", Some(json!({ "flat": true })))
            .await
            .ok()?;
        let files = nodes
            .as_array()?
            .iter()
            .filter(|n| {
                let drv = n.get("drv").and_then(Value::as_str);
                matches!(drv, Some("file" | "host_device" | "host_cdrom"))
            })
            .filter_map(|n| {
                let name = n.get("node-name")?.as_str()?;
                let file = n.get("file")?.as_str()?;
                Some((name.to_string(), PathBuf::from(file)))
            })
            .collect();
        Some(files)
    }

    /// The files opened through the nodes of disk nodes `nodes` (`libvirt-{n}-…`); none
    /// asked for when the files were not given to QEMU's user.
    async fn files_of_nodes(&self, nodes: &[usize]) -> Vec<PathBuf> {
        if self.owning_for.is_none() {
            return Vec::new();
        }
        let prefixes: Vec<String> = nodes.iter().map(|n| format!("libvirt-{n}-")).collect();
        self.node_files()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|(name, _)| prefixes.iter().any(|p| name.starts_with(p)))
            .map(|(_, file)| file)
            .collect()
    }

    /// Of `were`, the files of block nodes just removed, those no node opens any more go
    /// back to their owners (see [`crate::owner`]).
    async fn give_back_unused(&self, were: Vec<PathBuf>) {
        if were.is_empty() {
            return;
        }
        let Some(still) = self.node_files().await else {
            return;
        };
        let gone: Vec<PathBuf> = were
            .into_iter()
            .filter(|f| !still.iter().any(|(_, s)| s == f))
            .collect();
        self.give_back(&gone);
    }

    /// Opens a disk's block nodes (`blockdev-add`), deepest first; returns their names.
    /// On failure those opened are closed again.
    async fn add_nodes(
        &self,
        nodes: &vireo_qemu::cmdline::DiskNodes,
    ) -> anyhow::Result<Vec<String>> {
        let mut added: Vec<String> = Vec::new();
        for n in &nodes.nodes {
            let obj = vireo_qemu::cmdline::node_object(n);
            let name = obj
                .get("node-name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if let Err(e) = self.qmp().execute("blockdev-add", Some(obj)).await {
                self.del_nodes(&added).await;
                bail!(OpFailed(format!("cannot open the disk's image: {e}")));
            }
            added.push(name);
        }
        Ok(added)
    }

    /// Closes block nodes, the last opened first.
    async fn del_nodes(&self, names: &[String]) {
        for name in names.iter().rev() {
            let _ = self
                .qmp()
                .execute("blockdev-del", Some(json!({ "node-name": name })))
                .await;
        }
    }

    /// Records a cdrom's medium: `shown` (None: empty) whose nodes are `libvirt-{node}-…`.
    fn set_medium(&self, dev: &str, shown: Option<Disk>, node: usize) {
        let mut disks = self.disks();
        if let Some(d) = disks.iter_mut().find(|d| d.shown.target.dev == dev) {
            match shown {
                Some(mut s) => {
                    s.alias = d.shown.alias.clone();
                    s.address = d.shown.address.clone();
                    d.shown = s;
                }
                None => d.shown.source = None,
            }
            d.set_node(node);
        }
    }

    /// `domif-setlink`: the link of the card with this alias (or id) up or down.
    pub async fn set_link(&self, alias: &str, up: bool) -> anyhow::Result<()> {
        self.require_running()?;
        let Some(id) = self
            .nics()
            .iter()
            .find(|n| n.alias() == alias || n.id == alias)
            .map(|n| n.id.clone())
        else {
            bail!(Missing(format!("no interface with alias '{alias}'")));
        };
        self.qmp()
            .execute("set_link", Some(json!({ "name": id, "up": up })))
            .await
            .map_err(|e| anyhow!(OpFailed(format!("cannot set the link of {alias}: {e}"))))?;
        if let Some(n) = self.nics().iter_mut().find(|n| n.id == id) {
            n.def.link_state = Some(if up {
                vireo_xml::LinkState::Up
            } else {
                vireo_xml::LinkState::Down
            });
        }
        Ok(())
    }

    /// Hot-plugs a SCSI or virtio-serial controller (its index given). Returns its alias.
    pub async fn attach_controller(&self, mut c: vireo_xml::Controller) -> anyhow::Result<String> {
        self.require_running()?;
        let device = vireo_qemu::cmdline::hotplug_controller(&c).map_err(unsupported)?;
        let Some(id) = vireo_qemu::cmdline::controller_id(&c) else {
            bail!(Unsupported(format!(
                "'{}' controller cannot be hot plugged.",
                c.ctl_type
            )));
        };
        if self
            .controllers()
            .iter()
            .any(|x| x.ctl_type == c.ctl_type && x.index.unwrap_or(0) == c.index.unwrap_or(0))
        {
            bail!(OpFailed(format!(
                "target {}:{} already exists",
                c.ctl_type,
                c.index.unwrap_or(0)
            )));
        }
        self.qmp()
            .execute("device_add", Some(device))
            .await
            .map_err(|e| anyhow!(OpFailed(format!("cannot add the controller: {e}"))))?;
        c.alias = Some(id.clone());
        c.index = Some(c.index.unwrap_or(0));
        self.controllers().push(c);
        Ok(id)
    }

    /// The QEMU id of the SCSI or virtio-serial controller with this alias. (Whether
    /// devices still use it is the daemon's check.)
    fn controller_id(&self, alias: &str) -> anyhow::Result<Option<String>> {
        Ok(self.controllers().iter().find_map(|c| {
            let id = vireo_qemu::cmdline::controller_id(c)?;
            (c.alias.as_deref() == Some(alias) || id == alias).then_some(id)
        }))
    }

    /// A controller the guest let go: forgotten; returns its alias.
    fn controller_deleted(&self, id: &str) -> Option<String> {
        let mut cs = self.controllers();
        let i = cs
            .iter()
            .position(|c| vireo_qemu::cmdline::controller_id(c).as_deref() == Some(id))?;
        let c = cs.remove(i);
        Some(c.alias.unwrap_or_else(|| id.to_string()))
    }

    /// Hot-plugs an input device (USB or virtio). Returns its alias.
    pub async fn attach_input(&self, inp: Input) -> anyhow::Result<String> {
        self.require_running()?;
        let id = {
            let inputs = self.inputs();
            free_id("input", |id| {
                inputs.iter().any(|i| i.id.as_deref() == Some(id))
            })
        };
        let device = vireo_qemu::cmdline::input_device(&inp, &id).map_err(unsupported)?;
        self.qmp()
            .execute("device_add", Some(device))
            .await
            .map_err(|e| anyhow!(OpFailed(format!("cannot add the input device: {e}"))))?;
        let alias = inp.alias.clone().unwrap_or_else(|| id.clone());
        self.inputs().push(LiveInput {
            def: inp,
            id: Some(id),
        });
        Ok(alias)
    }

    /// Hot-plugs a virtio channel: its socket (which the VM listens on), then its port.
    /// Returns its alias.
    pub async fn attach_channel(&self, mut ch: Chardev) -> anyhow::Result<String> {
        self.require_running()?;
        let (id, chardev) = {
            let chans = self.channels();
            let n = free_id("channel", |id| {
                chans
                    .iter()
                    .any(|c| c.id == id || c.chardev == format!("char{id}"))
            });
            (n.clone(), format!("char{n}"))
        };
        let default_path = self.qemu_dir().join(format!("{id}.sock"));
        let controllers = self.controllers().clone();
        let (backend, device) =
            vireo_qemu::cmdline::channel_device(&ch, &id, &chardev, &default_path, &controllers)
                .map_err(unsupported)?;
        let qmp = self.qmp();
        qmp.execute("chardev-add", Some(backend))
            .await
            .map_err(|e| anyhow!(OpFailed(format!("cannot make the channel's socket: {e}"))))?;
        if let Err(e) = qmp.execute("device_add", Some(device)).await {
            let _ = qmp
                .execute("chardev-remove", Some(json!({ "id": chardev })))
                .await;
            bail!(OpFailed(format!("cannot add the channel: {e}")));
        }
        // The live XML names the socket, as for a channel the VM started with.
        if ch.sources.first().and_then(|s| s.path.as_ref()).is_none() {
            let src = vireo_xml::ChardevSource {
                mode: Some("bind".into()),
                path: Some(default_path.display().to_string()),
                ..Default::default()
            };
            match ch.sources.first_mut() {
                Some(s) => *s = src,
                None => ch.sources.push(src),
            }
        }
        let alias = ch.alias.clone().unwrap_or_else(|| id.clone());
        self.channels().push(LiveChannel {
            def: ch,
            id,
            chardev,
        });
        Ok(alias)
    }

    /// Asks the guest to release the device with this alias and waits up to `wait` for it.
    /// True when it is gone, false when the guest has not let go yet.
    pub async fn detach(&self, alias: &str, wait: Duration) -> anyhow::Result<bool> {
        self.require_running()?;
        let id = {
            let mut nics = self.nics();
            let mut disks = self.disks();
            if let Some(n) = nics
                .iter_mut()
                .find(|n| n.alias() == alias || n.id == alias)
            {
                n.removing = true;
                n.id.clone()
            } else if let Some(d) = disks
                .iter_mut()
                .find(|d| d.alias() == alias || d.id == alias)
            {
                if !d.id.starts_with("virtio-disk") && !d.id.starts_with("scsi") {
                    bail!(OpInvalid(format!(
                        "disk '{}' is not on a hot-pluggable bus",
                        d.shown.target.dev
                    )));
                }
                d.removing = true;
                d.id.clone()
            } else if let Some(id) = self.other_id(alias)? {
                id
            } else {
                bail!(Missing(format!("no device with alias '{alias}'")));
            }
        };
        let mut removed = self.removed_rx();
        self.rejected().retain(|x| *x != id);
        if let Err(e) = self
            .qmp()
            .execute("device_del", Some(json!({ "id": id })))
            .await
        {
            // Already on its way out (asked before) is no error.
            if !e.to_string().contains("in the process of unplug") {
                if let Some(n) = self.nics().iter_mut().find(|n| n.id == id) {
                    n.removing = false;
                }
                if let Some(d) = self.disks().iter_mut().find(|d| d.id == id) {
                    d.removing = false;
                }
                bail!(OpFailed(format!("cannot detach device '{alias}': {e}")));
            }
        }
        // Gone when no device of any kind has the id any more.
        let gone = || self.alias_of(&id).is_none();
        if gone() {
            return Ok(true);
        }
        let refused = || self.rejected().contains(&id);
        let r = tokio::time::timeout(wait, async {
            while removed.changed().await.is_ok() {
                if gone() {
                    return Ok(true);
                }
                if refused() {
                    return Err(());
                }
            }
            Ok(false)
        })
        .await;
        match r {
            Ok(Err(())) => bail!(OpFailed(
                "unplug of device was rejected by the guest".into()
            )),
            Ok(Ok(gone)) => Ok(gone),
            Err(_) => Ok(false),
        }
    }

    /// QEMU's `DEVICE_DELETED`: the guest let the device go. Its backend goes too, and the
    /// clients hear of it.
    pub async fn on_device_deleted(&self, data: &Value) {
        let Some(id) = data.get("device").and_then(Value::as_str) else {
            return;
        };
        let disk = {
            let mut disks = self.disks();
            disks
                .iter()
                .position(|d| d.id == id)
                .map(|i| disks.remove(i))
        };
        if let Some(disk) = disk {
            let mut nodes = vec![disk.node];
            nodes.extend(&disk.kept);
            let were = self.files_of_nodes(&nodes).await;
            for n in nodes {
                self.remove_nodes(n).await;
            }
            self.del_secret(disk.secret.as_deref()).await;
            self.give_back_unused(were).await;
            self.bump_removed();
            self.emit_device(
                procs::DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED,
                disk.alias().to_string(),
            );
            return;
        }
        if let Some(alias) = self.other_deleted(id).await {
            self.bump_removed();
            self.emit_device(procs::DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED, alias);
            return;
        }
        let nic = {
            let mut nics = self.nics();
            let Some(i) = nics.iter().position(|n| n.id == id) else {
                return;
            };
            nics.remove(i)
        };
        if let Err(e) = self
            .qmp()
            .execute("netdev_del", Some(json!({ "id": nic.netdev })))
            .await
        {
            eprintln!("vireo-shim: cannot remove backend {}: {e}", nic.netdev);
        }
        self.bump_removed();
        self.emit_device(
            procs::DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED,
            nic.alias().to_string(),
        );
    }

    /// The id of the input or channel with this alias (an input the machine has built in
    /// cannot go).
    fn other_id(&self, alias: &str) -> anyhow::Result<Option<String>> {
        for i in self.inputs().iter() {
            let id = i.id.as_deref();
            if i.def.alias.as_deref() == Some(alias) || (i.def.alias.is_none() && id == Some(alias))
            {
                return match id {
                    Some(id) => Ok(Some(id.to_string())),
                    None => bail!(OpInvalid(format!(
                        "input '{alias}' is part of the machine and cannot be detached"
                    ))),
                };
            }
        }
        if let Some(id) = self.memory_id(alias) {
            return Ok(Some(id));
        }
        if let Some(id) = self.hostdev_id(alias) {
            return Ok(Some(id));
        }
        if let Some(id) = self.controller_id(alias)? {
            return Ok(Some(id));
        }
        Ok(self
            .channels()
            .iter()
            .find(|c| c.def.alias.as_deref().unwrap_or(&c.id) == alias || c.id == alias)
            .map(|c| c.id.clone()))
    }

    /// An input or channel the guest let go: forgotten (a channel's socket closed);
    /// returns its alias.
    async fn other_deleted(&self, id: &str) -> Option<String> {
        let input = {
            let mut inputs = self.inputs();
            inputs
                .iter()
                .position(|i| i.id.as_deref() == Some(id))
                .map(|n| inputs.remove(n))
        };
        if let Some(i) = input {
            return Some(i.def.alias.unwrap_or_else(|| id.to_string()));
        }
        if let Some(alias) = self.memory_deleted(id).await {
            return Some(alias);
        }
        if let Some(alias) = self.hostdev_deleted(id).await {
            return Some(alias);
        }
        if let Some(alias) = self.controller_deleted(id) {
            return Some(alias);
        }
        let ch = {
            let mut chans = self.channels();
            chans
                .iter()
                .position(|c| c.id == id)
                .map(|n| chans.remove(n))
        }?;
        if let Err(e) = self
            .qmp()
            .execute("chardev-remove", Some(json!({ "id": ch.chardev })))
            .await
        {
            eprintln!("vireo-shim: cannot remove chardev {}: {e}", ch.chardev);
        }
        Some(ch.def.alias.unwrap_or(ch.id))
    }

    /// Removes a gone disk's block nodes (`libvirt-{node}-…`), top first: the overlays of
    /// external snapshots, the image's format and storage nodes, then each backing layer's.
    pub(crate) async fn remove_nodes(&self, node: usize) {
        let qmp = self.qmp();
        let present: Vec<String> = match qmp.execute("query-named-block-nodes", None).await {
            Ok(Value::Array(a)) => a
                .iter()
                .filter_map(|n| n.get("node-name")?.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let prefix = format!("libvirt-{node}-");
        // External snapshots' overlays first, newest first.
        let mut names = Vec::new();
        let mut ks: Vec<usize> = present
            .iter()
            .filter_map(|n| {
                n.strip_prefix(&prefix)?
                    .strip_prefix('s')?
                    .strip_suffix("-format")
            })
            .filter_map(|k| k.parse().ok())
            .collect();
        ks.sort_unstable();
        for k in ks.into_iter().rev() {
            names.push(format!("{prefix}s{k}-format"));
            names.push(format!("{prefix}s{k}-storage"));
        }
        names.push(format!("{prefix}format"));
        names.push(format!("{prefix}storage"));
        for k in 1.. {
            let f = format!("{prefix}b{k}-format");
            if !present.contains(&f) {
                break;
            }
            names.push(f);
            names.push(format!("{prefix}b{k}-storage"));
        }
        for name in names.iter().filter(|n| present.contains(n)) {
            if let Err(e) = qmp
                .execute("blockdev-del", Some(json!({ "node-name": name })))
                .await
            {
                eprintln!("vireo-shim: cannot remove block node {name}: {e}");
            }
        }
    }

    /// QEMU's `DEVICE_UNPLUG_GUEST_ERROR`: the guest refused to let the device go.
    pub fn on_unplug_error(&self, data: &Value) {
        let Some(id) = data.get("device").and_then(Value::as_str) else {
            return;
        };
        self.unplug_rejected(id);
    }

    /// QEMU's `ACPI_DEVICE_OST`: the guest's answer (`_OST`) to a request about a device.
    /// A DIMM whose eject request (source 3, or 0x103 ejection processing) ends in a
    /// failure (1, or 0x80-0x83: the guest's OS cannot or will not eject it) stays: the
    /// guest refused, as libvirt reads it.
    pub fn on_acpi_ost(&self, data: &Value) {
        let info = data.get("info").unwrap_or(data);
        let (Some(id), Some(kind), Some(source), Some(status)) = (
            info.get("device").and_then(Value::as_str),
            info.get("slot-type").and_then(Value::as_str),
            info.get("source").and_then(Value::as_u64),
            info.get("status").and_then(Value::as_u64),
        ) else {
            return;
        };
        if kind == "DIMM"
            && matches!(source, 0x3 | 0x103)
            && (status == 1 || (0x80..=0x83).contains(&status))
        {
            self.unplug_rejected(id);
        }
    }

    /// The guest refused to let device `id` go: it stays (no longer on its way out), an
    /// unplug waiting for it learns so, and the clients hear DEVICE_REMOVAL_FAILED.
    fn unplug_rejected(&self, id: &str) {
        let Some(alias) = self.alias_of(id) else {
            return;
        };
        if let Some(n) = self.nics().iter_mut().find(|n| n.id == id) {
            n.removing = false;
        }
        if let Some(d) = self.disks().iter_mut().find(|d| d.id == id) {
            d.removing = false;
        }
        {
            let mut r = self.rejected();
            if !r.iter().any(|x| x == id) {
                r.push(id.to_string());
            }
        }
        self.bump_removed();
        self.emit_device(procs::DOMAIN_EVENT_CALLBACK_DEVICE_REMOVAL_FAILED, alias);
    }

    /// The alias (as the live XML and the events say) of the device with QEMU id `id`.
    fn alias_of(&self, id: &str) -> Option<String> {
        if let Some(n) = self.nics().iter().find(|n| n.id == id) {
            return Some(n.alias().to_string());
        }
        if let Some(d) = self.disks().iter().find(|d| d.id == id) {
            return Some(d.alias().to_string());
        }
        if self.has_hostdev(id) || self.memories().iter().any(|m| m.id == id) {
            return Some(id.to_string());
        }
        if let Some(i) = self.inputs().iter().find(|i| i.id.as_deref() == Some(id)) {
            return Some(i.def.alias.clone().unwrap_or_else(|| id.to_string()));
        }
        if let Some(c) = self.channels().iter().find(|c| c.id == id) {
            return Some(c.def.alias.clone().unwrap_or_else(|| id.to_string()));
        }
        self.controllers()
            .iter()
            .find(|c| vireo_qemu::cmdline::controller_id(c).as_deref() == Some(id))
            .map(|c| c.alias.clone().unwrap_or_else(|| id.to_string()))
    }

    pub(crate) fn require_running(&self) -> anyhow::Result<()> {
        match self.state().0 {
            state::RUNNING | state::PAUSED => Ok(()),
            _ => bail!(OpInvalid("domain is not running".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nic(id: &str, alias: Option<&str>) -> Nic {
        let mut def: Interface =
            vireo_xml::parse_root("<interface type='user'/>", "interface").unwrap();
        def.alias = alias.map(str::to_string);
        Nic {
            def,
            id: id.into(),
            netdev: format!("host{id}"),
            removing: false,
        }
    }

    #[test]
    fn ids_are_free_and_user_aliases_checked() {
        let nics = vec![
            nic("net0", None),
            nic("net2", None),
            nic("ua-x", Some("ua-x")),
        ];
        assert_eq!(pick_id(&nics, None).unwrap(), "net1");
        assert_eq!(pick_id(&nics, Some("ua-y")).unwrap(), "ua-y");
        assert!(pick_id(&nics, Some("ua-x")).is_err());
        assert!(pick_id(&nics, Some("net5")).is_err());
        assert_eq!(nics[2].alias(), "ua-x");
        assert_eq!(nics[0].alias(), "net0");
    }
}
