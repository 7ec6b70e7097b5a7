//! Character devices: serial ports, consoles (serial and virtio) and virtio-serial
//! channels, with their `-chardev` backends; hot-plugged channels.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use vireo_xml::{Address, AddressType, Chardev, ChardevType};

use super::util::{check_socket_path, is_simple_name, on_off, Opts};
use super::{unsupported, Builder, Result};

impl<'a> Builder<'a> {
    /// The `-chardev` value for a serial, console or channel backend.
    pub(super) fn chardev_backend(
        &self,
        c: &Chardev,
        id: &str,
        what: &str,
        default_socket: &str,
    ) -> Result<String> {
        if c.protocol.is_some() && c.dev_type != ChardevType::Tcp {
            return unsupported(format!("{what}: <protocol> is only for type 'tcp'"));
        }
        if c.sources.len() > 1 {
            return unsupported(format!("{what}: more than one <source>"));
        }
        let src = c.sources.first();
        // A pty's <source path> and the tty attribute describe a previous run.
        let mut o = match c.dev_type {
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
            ChardevType::Tcp => {
                let (Some(host), Some(service)) = (
                    src.and_then(|s| s.host.as_deref()),
                    src.and_then(|s| s.service.as_deref()),
                ) else {
                    return unsupported(format!(
                        "{what}: type 'tcp' needs <source host=… service=…/>"
                    ));
                };
                let Ok(port) = service.parse::<u16>() else {
                    return unsupported(format!("{what}: service '{service}' is not a port"));
                };
                if src.and_then(|s| s.tls) == Some(true) {
                    return unsupported(format!("{what}: TLS on a tcp character device"));
                }
                let telnet = match c.protocol.as_deref() {
                    None | Some("raw") => false,
                    Some("telnet") => true,
                    Some(p) => {
                        return unsupported(format!(
                            "{what}: protocol '{p}' is not supported (raw, telnet)"
                        ))
                    }
                };
                let bind = src.and_then(|s| s.mode.as_deref()) == Some("bind");
                let o = Opts::new("socket")
                    .set("id", id)
                    .set("host", host)
                    .set("port", port)
                    .set_opt("telnet", telnet.then_some("on"));
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
                "{what}: character device type '{other}' is not supported (pty, file, unix, tcp, null)"
            ))
            }
        };
        if let Some(log) = &c.log {
            let append = match log.append.as_deref() {
                None => None,
                Some(v @ ("on" | "off")) => Some(v),
                Some(v) => {
                    return unsupported(format!("{what}: <log append='{v}'> is not on or off"))
                }
            };
            o = o.set("logfile", &log.file).set_opt("logappend", append);
        }
        Ok(o.done())
    }

    pub(super) fn chardevs(&mut self) -> Result<()> {
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

        // virtio-serial ports, on the controller the address names (else the first one):
        // explicit ones first; port 0 belongs to a console.
        let controllers = vserial_controllers(&d.controllers);
        let first = controllers.first().copied().unwrap_or(0);
        let mut wanted: Vec<(bool, u32, Option<u32>)> = Vec::new();
        for ch in d.channels.iter() {
            let (c, p) = vserial_port(ch.address.as_ref(), "<channel>")?;
            wanted.push((false, c.unwrap_or(first), p));
        }
        for (_, c) in &virtio_consoles {
            let (ctl, p) = vserial_port(c.address.as_ref(), "<console>")?;
            wanted.push((true, ctl.unwrap_or(first), p));
        }
        for (console, ctl, port) in &wanted {
            if !controllers.contains(ctl) {
                return unsupported(format!(
                    "<{}>: there is no <controller type='virtio-serial' index='{ctl}'>",
                    if *console { "console" } else { "channel" }
                ));
            }
            if let Some(p) = port {
                if *p == 0 && !console {
                    return unsupported("<channel>: virtio-serial port 0 is reserved for consoles");
                }
                if !self.vserial_ports.insert((*ctl, *p)) {
                    return unsupported(format!(
                        "virtio-serial port {p} of controller {ctl} is used twice"
                    ));
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
            let (ctl, nr) = match wanted.get(i) {
                Some((_, c, Some(p))) => (*c, *p),
                Some((_, c, None)) => (*c, self.next_vserial_port(*c, 1)),
                None => (first, self.next_vserial_port(first, 1)),
            };
            let dev = Opts::new("virtserialport")
                .set("bus", format!("virtio-serial{ctl}.0"))
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
            let (ctl, nr) = match wanted.get(d.channels.len() + k) {
                Some((_, c, Some(p))) => (*c, *p),
                Some((_, c, None)) => (*c, self.next_vserial_port(*c, 0)),
                None => (first, self.next_vserial_port(first, 0)),
            };
            let dev = Opts::new("virtconsole")
                .set("bus", format!("virtio-serial{ctl}.0"))
                .set("nr", nr)
                .set("chardev", &id)
                .set("id", format!("console{i}"))
                .done();
            self.arg2("-device", dev);
        }
        Ok(())
    }

    /// The first free port from `from` on virtio-serial controller `ctl`, taken.
    fn next_vserial_port(&mut self, ctl: u32, from: u32) -> u32 {
        let mut p = from;
        while self.vserial_ports.contains(&(ctl, p)) {
            p += 1;
        }
        self.vserial_ports.insert((ctl, p));
        p
    }
}

/// The indexes of the virtio-serial controllers, lowest first (a definition that names
/// none has controller 0 when it needs one).
fn vserial_controllers(all: &[vireo_xml::Controller]) -> Vec<u32> {
    let mut v: Vec<u32> = all
        .iter()
        .filter(|c| c.ctl_type == vireo_xml::ControllerType::VirtioSerial)
        .map(|c| c.index.unwrap_or(0))
        .collect();
    if v.is_empty() {
        v.push(0);
    }
    v.sort_unstable();
    v
}

/// The controller and port of a `<address type='virtio-serial'>` (bus 0).
fn vserial_port(a: Option<&Address>, what: &str) -> Result<(Option<u32>, Option<u32>)> {
    let Some(a) = a else { return Ok((None, None)) };
    if a.addr_type != AddressType::VirtioSerial {
        return unsupported(format!(
            "{what}: address type '{}' is not valid here (virtio-serial)",
            a.addr_type
        ));
    }
    let num = |k: &str| a.get(k).map(|_| a.get_num(k));
    let controller = match num("controller") {
        None => None,
        Some(Some(c)) if c < 256 => Some(c as u32),
        Some(_) => return unsupported(format!("{what}: invalid virtio-serial controller")),
    };
    match num("bus") {
        None | Some(Some(0)) => {}
        _ => {
            return unsupported(format!(
                "{what}: only bus 0 of a virtio-serial controller is available"
            ))
        }
    }
    match num("port") {
        None => Ok((controller, None)),
        Some(Some(p)) if p < 31 => Ok((controller, Some(p as u32))),
        Some(_) => unsupported(format!("{what}: invalid virtio-serial port")),
    }
}

/// A virtio channel hot-plugged with ids `id` (device) and `chardev`: the `chardev-add`
/// arguments (a UNIX socket the VM listens on: its `<source path>`, else `default_path`)
/// and the `device_add` ones. The port goes on the virtio-serial controller its address
/// names, else the first of `controllers` (the running VM's).
pub fn channel_device(
    ch: &Chardev,
    id: &str,
    chardev: &str,
    default_path: &Path,
    controllers: &[vireo_xml::Controller],
) -> Result<(Value, Value)> {
    let what = "<channel>";
    let (ctl, port) = vserial_port(ch.address.as_ref(), what)?;
    let present: Vec<u32> = controllers
        .iter()
        .filter(|c| c.ctl_type == vireo_xml::ControllerType::VirtioSerial)
        .map(|c| c.index.unwrap_or(0))
        .collect();
    let ctl = match ctl {
        Some(c) => c,
        None => present.iter().min().copied().unwrap_or(0),
    };
    if !present.contains(&ctl) {
        return unsupported(format!(
            "{what}: there is no <controller type='virtio-serial' index='{ctl}'>"
        ));
    }
    if port == Some(0) {
        return unsupported(format!(
            "{what}: virtio-serial port 0 is reserved for consoles"
        ));
    }
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
    let mut dev = json!({
        "driver": "virtserialport",
        "bus": format!("virtio-serial{ctl}.0"),
        "chardev": chardev,
        "id": id,
    });
    if let Some(p) = port {
        dev["nr"] = json!(p);
    }
    if let Some(name) = ch.target.as_ref().and_then(|t| t.name.as_deref()) {
        dev["name"] = json!(name);
    }
    Ok((backend, dev))
}
