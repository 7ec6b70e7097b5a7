//! Input devices: PS/2 (part of the machine), USB and virtio keyboards, mice and
//! tablets; hot-plugged inputs.

use serde_json::{json, Value};
use vireo_xml::{Address, AddressType, InputBus, InputType};

use super::slots::hotplug_pci_place;
use super::util::Opts;
use super::{unsupported, Builder, Result};

impl<'a> Builder<'a> {
    pub(super) fn plan_inputs(&self) -> Result<InputPlan> {
        let mut plan = InputPlan::default();
        let ps2_off = self
            .def
            .features
            .iter()
            .any(|f| f.name == "ps2" && f.attr("state") == Some("off"));
        for (i, inp) in self.def.devices.inputs.iter().enumerate() {
            let what = format!("<input type='{}'>", inp.input_type);
            let bus = input_bus(inp, &what)?;
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

    pub(super) fn emit_inputs(&mut self, plan: InputPlan) -> Result<()> {
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
}

#[derive(Default)]
pub(super) struct InputPlan {
    pub(super) needs_usb: bool,
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

/// The port of a `<address type='usb' bus='0' port='1'>` (ports may be nested: `1.2`).
pub(super) fn usb_port(a: &Address, what: &str) -> Result<String> {
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

/// The bus an input device is on (a tablet defaults to USB, the rest to PS/2); host input
/// passthrough is refused.
fn input_bus(inp: &vireo_xml::Input, what: &str) -> Result<InputBus> {
    if matches!(inp.input_type, InputType::Passthrough | InputType::Evdev)
        || !inp.source_attrs.is_empty()
    {
        return unsupported(format!("{what} (host input passthrough) is not supported"));
    }
    Ok(inp.bus.unwrap_or(match inp.input_type {
        InputType::Tablet => InputBus::Usb,
        _ => InputBus::Ps2,
    }))
}

/// The `device_add` arguments of an input device hot-plugged with id `id` (USB or
/// virtio; PS/2 devices are part of the machine).
pub fn input_device(inp: &vireo_xml::Input, id: &str) -> Result<Value> {
    let what = format!("<input type='{}'>", inp.input_type);
    let bus = input_bus(inp, &what)?;
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
