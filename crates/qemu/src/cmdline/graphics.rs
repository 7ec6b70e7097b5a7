//! Graphics (VNC, with its `-audiodev`) and the video device.

use std::path::PathBuf;

use vireo_xml::{GraphicsType, ListenType, VideoModelType};

use super::util::{check_socket_path, esc, is_simple_name, Opts};
use super::{unsupported, Builder, Result, VNC_AUTO_LAST_DISPLAY};

impl<'a> Builder<'a> {
    pub(super) fn graphics(&mut self) -> Result<()> {
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

    pub(super) fn video(&mut self) -> Result<()> {
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
}
