//! QEMU's events that become libvirt's domain events other than lifecycle and devices:
//! reboot, RTC change, watchdog, I/O errors, graphics clients, tray moves, balloon changes
//! and the guest's power management, with the state changes libvirt makes for them; and
//! the TUNABLE event of live tuning calls.
//!
//! Each is emitted in its callback form with callback id 0 (the daemon, and clients of the
//! shim's own socket, put their registration's id in its place).

use serde_json::Value;
use vireo_proto::domevent::{self, id, GraphicsAddress, GraphicsIdentity};
use vireo_proto::remote::{event, state};
use vireo_proto::typed::TypedParam;
use vireo_xdr::{Array, Xdr};

use crate::vm::{Lifecycle, Vm};

impl Vm {
    /// Emits event `event_id` whose legacy message is `msg`.
    pub(crate) fn emit_event(&self, event_id: i32, msg: &impl Xdr) {
        if let Some(f) = domevent::forms(event_id) {
            let body = vireo_xdr::to_bytes(msg);
            self.emit_message(f.callback, f.callback_message(0, &body));
        }
    }

    /// Emits TUNABLE with what a live tuning call changed.
    pub(crate) fn emit_tunable(&self, params: Vec<TypedParam>) {
        if params.is_empty() {
            return;
        }
        self.emit_event(
            id::TUNABLE,
            &domevent::TunableMsg {
                dom: crate::serve::handle(self),
                params: Array(params),
            },
        );
    }

    /// Handles the QEMU events of this module; false if `name` is not one of them.
    pub(crate) fn on_other_event(&self, name: &str, data: &Value) -> bool {
        let dom = || crate::serve::handle(self);
        match name {
            "RESET" => self.emit_event(id::REBOOT, &domevent::DomainOnlyMsg { dom: dom() }),
            "RTC_CHANGE" => self.emit_event(
                id::RTC_CHANGE,
                &domevent::RtcChangeMsg {
                    dom: dom(),
                    offset: data["offset"].as_i64().unwrap_or(0),
                },
            ),
            "WATCHDOG" => {
                let action = watchdog_action(data["action"].as_str().unwrap_or(""));
                if action == domevent::watchdog::PAUSE {
                    self.paused_by(state::PAUSED_WATCHDOG, event::SUSPENDED_WATCHDOG);
                }
                self.emit_event(id::WATCHDOG, &domevent::WatchdogMsg { dom: dom(), action });
            }
            "BLOCK_IO_ERROR" => self.on_io_error(data),
            "BLOCK_WRITE_THRESHOLD" => self.on_write_threshold(data),
            "DEVICE_TRAY_MOVED" => {
                let alias = data["id"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .or_else(|| data["device"].as_str())
                    .unwrap_or("");
                let reason = if data["tray-open"].as_bool().unwrap_or(false) {
                    domevent::tray::OPEN
                } else {
                    domevent::tray::CLOSE
                };
                self.emit_event(
                    id::TRAY_CHANGE,
                    &domevent::TrayChangeMsg {
                        dom: dom(),
                        dev_alias: alias.to_string(),
                        reason,
                    },
                );
            }
            "BALLOON_CHANGE" => self.emit_event(
                id::BALLOON_CHANGE,
                &domevent::BalloonChangeMsg {
                    dom: dom(),
                    actual: data["actual"].as_u64().unwrap_or(0) / 1024,
                },
            ),
            "SUSPEND" | "SUSPEND_DISK" => {
                let disk = name == "SUSPEND_DISK";
                self.set(
                    state::PMSUSPENDED,
                    state::PMSUSPENDED_UNKNOWN,
                    Some(Lifecycle {
                        event: event::PMSUSPENDED,
                        detail: if disk {
                            event::PMSUSPENDED_DISK
                        } else {
                            event::PMSUSPENDED_MEMORY
                        },
                    }),
                );
                let e = if disk {
                    id::PMSUSPEND_DISK
                } else {
                    id::PMSUSPEND
                };
                self.emit_event(e, &domevent::DomainOnlyMsg { dom: dom() });
            }
            "WAKEUP" => {
                if self.state().0 == state::PMSUSPENDED {
                    self.set(
                        state::RUNNING,
                        state::RUNNING_WAKEUP,
                        Some(Lifecycle {
                            event: event::STARTED,
                            detail: event::STARTED_WAKEUP,
                        }),
                    );
                }
                self.emit_event(id::PMWAKEUP, &domevent::DomainOnlyMsg { dom: dom() });
            }
            "VNC_CONNECTED" | "VNC_INITIALIZED" | "VNC_DISCONNECTED" | "SPICE_CONNECTED"
            | "SPICE_INITIALIZED" | "SPICE_DISCONNECTED" => {
                let phase = match name.split_once('_').map(|(_, p)| p) {
                    Some("CONNECTED") => domevent::graphics::CONNECT,
                    Some("INITIALIZED") => domevent::graphics::INITIALIZE,
                    _ => domevent::graphics::DISCONNECT,
                };
                self.emit_event(id::GRAPHICS, &graphics_msg(dom(), phase, data));
            }
            _ => return false,
        }
        true
    }

    /// The guest was stopped for `reason` (QEMU's STOP follows and is then no news).
    fn paused_by(&self, reason: i32, detail: i32) {
        if self.state().0 == state::RUNNING {
            self.set(
                state::PAUSED,
                reason,
                Some(Lifecycle {
                    event: event::SUSPENDED,
                    detail,
                }),
            );
        }
    }

    /// BLOCK_IO_ERROR: IO_ERROR and IO_ERROR_REASON for the disk whose node failed; a
    /// guest QEMU stopped for it is paused for an I/O error.
    fn on_io_error(&self, data: &Value) {
        let node = data["node-name"].as_str().unwrap_or("");
        let device = data["device"].as_str().unwrap_or("");
        let (src_path, dev_alias) = {
            let disks = self.disks();
            let d = disks.iter().find(|d| {
                (!node.is_empty()
                    && (d.top == node || node.starts_with(&format!("libvirt-{}-", d.node))))
                    || (!device.is_empty() && d.id == device)
            });
            match d {
                Some(d) => {
                    let src = d.shown.source.as_ref();
                    let path = src
                        .and_then(|s| s.file.clone().or_else(|| s.dev.clone()))
                        .unwrap_or_default();
                    (path, d.alias().to_string())
                }
                None => (String::new(), device.to_string()),
            }
        };
        let action = match data["action"].as_str().unwrap_or("") {
            "stop" => domevent::io_error::PAUSE,
            "report" => domevent::io_error::REPORT,
            _ => domevent::io_error::NONE,
        };
        if action == domevent::io_error::PAUSE {
            self.paused_by(state::PAUSED_IOERROR, event::SUSPENDED_IOERROR);
        }
        // libvirt's reasons: "enospc" when the host ran out of space, else "eio" (or "eperm"
        // when QEMU says the operation was not permitted).
        let reason = if data["nospace"].as_bool().unwrap_or(false) {
            "enospc"
        } else if data["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not permitted"))
        {
            "eperm"
        } else {
            "eio"
        };
        let dom = crate::serve::handle(self);
        self.emit_event(
            id::IO_ERROR,
            &domevent::IoErrorMsg {
                dom: dom.clone(),
                src_path: src_path.clone(),
                dev_alias: dev_alias.clone(),
                action,
            },
        );
        self.emit_event(
            id::IO_ERROR_REASON,
            &domevent::IoErrorReasonMsg {
                dom,
                src_path,
                dev_alias,
                action,
                reason: reason.into(),
            },
        );
    }
}

/// libvirt's watchdog action for QEMU's name of it.
fn watchdog_action(a: &str) -> i32 {
    use domevent::watchdog::*;
    match a {
        "pause" => PAUSE,
        "reset" => RESET,
        "poweroff" => POWEROFF,
        "shutdown" => SHUTDOWN,
        "debug" => DEBUG,
        "inject-nmi" => INJECTNMI,
        _ => NONE,
    }
}

/// A graphics event from QEMU's `server` and `client` descriptions.
fn graphics_msg(
    dom: vireo_proto::remote::Domain,
    phase: i32,
    data: &Value,
) -> domevent::GraphicsMsg {
    let address = |v: &Value| GraphicsAddress {
        family: match v["family"].as_str() {
            Some("ipv6") => domevent::graphics::IPV6,
            Some("unix") => domevent::graphics::UNIX,
            _ => domevent::graphics::IPV4,
        },
        node: v["host"].as_str().unwrap_or("").to_string(),
        service: v["service"]
            .as_str()
            .map(str::to_string)
            .or_else(|| v["port"].as_str().map(str::to_string))
            .or_else(|| v["port"].as_u64().map(|p| p.to_string()))
            .unwrap_or_default(),
    };
    let server = &data["server"];
    let client = &data["client"];
    let mut subject = Vec::new();
    if let Some(dn) = client["x509_dname"].as_str() {
        subject.push(GraphicsIdentity {
            type_: "x509dname".into(),
            name: dn.into(),
        });
    }
    if let Some(user) = client["sasl_username"].as_str() {
        subject.push(GraphicsIdentity {
            type_: "saslUsername".into(),
            name: user.into(),
        });
    }
    domevent::GraphicsMsg {
        dom,
        phase,
        local: address(server),
        remote: address(client),
        auth_scheme: server["auth"].as_str().unwrap_or("none").to_string(),
        subject: Array(subject),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn graphics_addresses_and_identities_from_qemu() {
        let dom = vireo_proto::remote::Domain {
            name: "vm".into(),
            uuid: [1; 16],
            id: 1,
        };
        let m = graphics_msg(
            dom,
            domevent::graphics::INITIALIZE,
            &json!({
                "server": {"host": "127.0.0.1", "service": "5900", "family": "ipv4",
                           "websocket": false, "auth": "none"},
                "client": {"host": "::1", "service": "40000", "family": "ipv6",
                           "websocket": false, "x509_dname": "CN=me"}
            }),
        );
        assert_eq!(m.local.node, "127.0.0.1");
        assert_eq!(m.local.service, "5900");
        assert_eq!(m.remote.family, domevent::graphics::IPV6);
        assert_eq!(m.auth_scheme, "none");
        assert_eq!(m.subject.0.len(), 1);
        assert_eq!(m.subject.0[0].type_, "x509dname");
    }

    #[test]
    fn watchdog_actions_in_libvirt_numbers() {
        assert_eq!(watchdog_action("pause"), 1);
        assert_eq!(watchdog_action("inject-nmi"), 6);
        assert_eq!(watchdog_action("something new"), 0);
    }
}
