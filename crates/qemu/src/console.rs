//! Which pty `virsh console` reaches: the one a console or serial device of the running
//! domain (its live XML) was given by QEMU.

use vireo_driver::DriverError;
use vireo_xml::Domain;

/// The pty of device `dev` (`serialN` / `consoleN`), or of the default console (the first
/// console, else the first serial port), as libvirt picks it.
pub fn pty_of(def: &Domain, dev: Option<&str>) -> Result<String, DriverError> {
    let chosen = match dev {
        None => def.devices.consoles.first().or(def.devices.serials.first()),
        Some(name) => {
            let idx = |prefix: &str| {
                name.strip_prefix(prefix)
                    .and_then(|n| n.parse::<usize>().ok())
            };
            match (idx("serial"), idx("console")) {
                (Some(i), _) => def.devices.serials.get(i),
                (_, Some(i)) => def.devices.consoles.get(i),
                _ => None,
            }
        }
    };
    chosen.and_then(|c| c.tty.clone()).ok_or_else(|| {
        DriverError::OperationFailed(match dev {
            Some(d) => format!("character device {d} is not using a PTY"),
            None => "cannot find default console device".into(),
        })
    })
}
