//! `virsh qemu-monitor-command`: a QMP command passed to QEMU as the client wrote it, and
//! QEMU's reply (an error reply included) returned as text, as libvirt does; with `--hmp`,
//! a human-monitor command line and its output. What QEMU is told this way is not
//! reflected in the domain's state here: the domain is tainted (`custom-monitor`), as in
//! libvirt.

use serde_json::{json, Value};
use vireo_proto::error::{code, domain as errdom};
use vireo_proto::remote::{
    QemuDomainMonitorCommandArgs, QemuDomainMonitorCommandRet, QEMU_MONITOR_COMMAND_HMP,
};
use vireo_proto::RemoteError;
use vireo_qmp::QmpError;

use crate::serve::{args, check_uuid, ret};
use crate::vm::Vm;

fn invalid(msg: &str) -> RemoteError {
    RemoteError::new(
        code::INVALID_ARG,
        errdom::QEMU,
        format!("invalid argument: {msg}"),
    )
}

pub async fn command(vm: &Vm, payload: &[u8]) -> Result<Vec<u8>, RemoteError> {
    let a: QemuDomainMonitorCommandArgs = args(payload)?;
    check_uuid(vm, &a.dom.uuid)?;
    if a.flags & !QEMU_MONITOR_COMMAND_HMP != 0 {
        return Err(invalid(&format!(
            "unsupported flags (0x{:x})",
            a.flags & !QEMU_MONITOR_COMMAND_HMP
        )));
    }
    vm.taint(crate::taint::Taint::CustomMonitor);
    let (name, arguments) = if a.flags & QEMU_MONITOR_COMMAND_HMP != 0 {
        (
            "human-monitor-command".to_string(),
            Some(json!({ "command-line": a.cmd })),
        )
    } else {
        parse(&a.cmd)?
    };
    let reply = vm.qmp().execute(&name, arguments).await;
    let result = match (reply, a.flags & QEMU_MONITOR_COMMAND_HMP != 0) {
        (Ok(Value::String(out)), true) => out,
        (Ok(v), true) => v.to_string(),
        (Ok(v), false) => json!({ "return": v }).to_string(),
        (Err(QmpError::Command { class, desc }), false) => {
            json!({ "error": { "class": class, "desc": desc } }).to_string()
        }
        (Err(e), _) => {
            return Err(RemoteError::new(
                code::INTERNAL_ERROR,
                errdom::QEMU,
                format!("internal error: {e}"),
            ))
        }
    };
    ret(QemuDomainMonitorCommandRet { result })
}

/// A QMP command as a client writes it: `{"execute": NAME, "arguments": {…}}`.
fn parse(cmd: &str) -> Result<(String, Option<Value>), RemoteError> {
    let Ok(Value::Object(mut o)) = serde_json::from_str::<Value>(cmd) else {
        return Err(invalid("the command is not a JSON object"));
    };
    let Some(Value::String(name)) = o.remove("execute") else {
        return Err(invalid("the command has no \"execute\""));
    };
    let arguments = match o.remove("arguments") {
        None => None,
        Some(Value::Object(m)) => Some(Value::Object(m)),
        Some(_) => return Err(invalid("\"arguments\" is not a JSON object")),
    };
    // An "id" of the client's own is not QEMU's business here: replies are matched by
    // the shim's ids.
    o.remove("id");
    if let Some(k) = o.keys().next() {
        return Err(invalid(&format!("unknown member \"{k}\" in the command")));
    }
    Ok((name, arguments))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_parsed_as_qmp_writes_them() {
        assert_eq!(
            parse(r#"{"execute":"query-status"}"#).unwrap(),
            ("query-status".into(), None)
        );
        let (n, a) = parse(r#"{"execute":"x","arguments":{"a":1},"id":"z"}"#).unwrap();
        assert_eq!((n.as_str(), a), ("x", Some(json!({"a": 1}))));
        for bad in [
            "info status",
            "[]",
            r#"{"arguments":{}}"#,
            r#"{"execute":"x","arguments":[1]}"#,
            r#"{"execute":"x","other":1}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
