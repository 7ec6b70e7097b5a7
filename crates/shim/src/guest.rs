//! libvirt's calls answered by the guest agent (`crates/shim/src/agent.rs`): guestinfo,
//! fsfreeze / fsthaw, guest time, set-user-password, hostname, fsinfo, interface addresses
//! (agent source), a shutdown or reboot through the agent, and `qemu-agent-command`.

use std::time::Duration;

use anyhow::bail;
use serde_json::{json, Value};
use vireo_proto::error::{code, domain as errdom};
use vireo_proto::remote::*;
use vireo_proto::typed::{TypedParam, TypedValue};
use vireo_proto::RemoteError;
use vireo_xdr::Array;

use crate::agent::DEFAULT_WAIT;
use crate::serve::{args, check_uuid, ret, to_remote};
use crate::stats::BadArg;
use crate::vm::Vm;

/// `virDomainGuestInfoTypes`.
mod info {
    pub const USERS: u32 = 1;
    pub const OS: u32 = 2;
    pub const TIMEZONE: u32 = 4;
    pub const HOSTNAME: u32 = 8;
    pub const FILESYSTEM: u32 = 16;
    pub const DISKS: u32 = 32;
    pub const INTERFACES: u32 = 64;
    pub const ALL: u32 = 127;
}

/// `VIR_DOMAIN_TIME_SYNC`, `VIR_DOMAIN_PASSWORD_ENCRYPTED`, `VIR_DOMAIN_GET_HOSTNAME_*`.
const TIME_SYNC: u32 = 1;
const PASSWORD_ENCRYPTED: u32 = 1;
const HOSTNAME_LEASE: u32 = 1;
const HOSTNAME_AGENT: u32 = 2;

/// `VIR_IP_ADDR_TYPE_*`.
const IPV4: i32 = 0;
const IPV6: i32 = 1;

fn bad_flags(flags: u32, known: u32) -> anyhow::Result<()> {
    if flags & !known != 0 {
        bail!(BadArg(format!(
            "unsupported flags (0x{:x})",
            flags & !known
        )));
    }
    Ok(())
}

/// The procedures answered here.
pub fn serves(p: i32) -> bool {
    matches!(
        p,
        procs::DOMAIN_GET_GUEST_INFO
            | procs::DOMAIN_FSFREEZE
            | procs::DOMAIN_FSTHAW
            | procs::DOMAIN_GET_TIME
            | procs::DOMAIN_SET_TIME
            | procs::DOMAIN_SET_USER_PASSWORD
            | procs::DOMAIN_GET_HOSTNAME
            | procs::DOMAIN_GET_FSINFO
            | procs::DOMAIN_INTERFACE_ADDRESSES
            | procs::DOMAIN_GET_GUEST_VCPUS
            | procs::DOMAIN_SET_GUEST_VCPUS
            | procs::DOMAIN_PM_SUSPEND_FOR_DURATION
            | procs::DOMAIN_PM_WAKEUP
    )
}

/// The guest's vCPUs as its agent reports them: (logical id, online, can go offline).
async fn guest_vcpus(vm: &Vm) -> anyhow::Result<Vec<(usize, bool, bool)>> {
    let v = vm
        .agent("guest-get-vcpus", None, Some(DEFAULT_WAIT))
        .await?;
    Ok(v.as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|c| {
            Some((
                usize::try_from(c["logical-id"].as_u64()?).ok()?,
                c["online"].as_bool()?,
                c["can-offline"].as_bool().unwrap_or(false),
            ))
        })
        .collect())
}

/// Answers one of the procedures [`serves`] names.
pub async fn serve(vm: &Vm, p: i32, payload: &[u8]) -> Result<Vec<u8>, RemoteError> {
    let r = answer(vm, p, payload).await;
    r.map_err(crate::serve::remote_of)
}

async fn answer(vm: &Vm, p: i32, payload: &[u8]) -> anyhow::Result<Vec<u8>> {
    match p {
        procs::DOMAIN_GET_GUEST_INFO => {
            let a: DomainGetGuestInfoArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            bad_flags(a.flags, 0)?;
            if a.types & !info::ALL != 0 {
                bail!(BadArg(format!(
                    "unsupported guest info types (0x{:x})",
                    a.types & !info::ALL
                )));
            }
            let params = guest_info(vm, a.types).await?;
            Ok(ret(DomainGetGuestInfoRet {
                params: Array(params),
            })?)
        }
        procs::DOMAIN_FSFREEZE | procs::DOMAIN_FSTHAW => {
            let a: DomainFsfreezeArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            bad_flags(a.flags, 0)?;
            let freeze = p == procs::DOMAIN_FSFREEZE;
            let n = match (freeze, a.mountpoints.0.is_empty()) {
                (true, true) => vm.agent("guest-fsfreeze-freeze", None, Some(DEFAULT_WAIT)),
                (true, false) => vm.agent(
                    "guest-fsfreeze-freeze-list",
                    Some(json!({ "mountpoints": a.mountpoints.0 })),
                    Some(DEFAULT_WAIT),
                ),
                (false, _) => vm.agent("guest-fsfreeze-thaw", None, Some(DEFAULT_WAIT)),
            }
            .await?;
            Ok(ret(DomainFsfreezeRet {
                filesystems: n.as_i64().and_then(|n| i32::try_from(n).ok()).unwrap_or(0),
            })?)
        }
        procs::DOMAIN_GET_TIME => {
            let a: DomainFlagsArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            bad_flags(a.flags, 0)?;
            let ns = vm
                .agent("guest-get-time", None, Some(DEFAULT_WAIT))
                .await?
                .as_i64()
                .unwrap_or(0);
            Ok(ret(DomainGetTimeRet {
                seconds: ns.div_euclid(1_000_000_000),
                nseconds: ns.rem_euclid(1_000_000_000) as u32,
            })?)
        }
        procs::DOMAIN_SET_TIME => {
            let a: DomainSetTimeArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            bad_flags(a.flags, TIME_SYNC)?;
            let arg = if a.flags & TIME_SYNC != 0 {
                // The guest reads its clock from the RTC.
                None
            } else {
                if a.nseconds >= 1_000_000_000 {
                    bail!(BadArg(format!("invalid nseconds value: {}", a.nseconds)));
                }
                let ns = a
                    .seconds
                    .checked_mul(1_000_000_000)
                    .and_then(|s| s.checked_add(i64::from(a.nseconds)))
                    .ok_or_else(|| BadArg(format!("time value too big: {}", a.seconds)))?;
                Some(json!({ "time": ns }))
            };
            vm.agent("guest-set-time", arg, Some(DEFAULT_WAIT)).await?;
            Ok(Vec::new())
        }
        procs::DOMAIN_PM_SUSPEND_FOR_DURATION => {
            use vireo_proto::domevent::pm_target;
            let a: vireo_proto::domevent::DomainPmSuspendForDurationArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            bad_flags(a.flags, 0)?;
            if a.duration != 0 {
                bail!(BadArg("Duration not supported. Use 0 for now".into()));
            }
            let (cmd, s3, s4) = match a.target {
                pm_target::MEM => ("guest-suspend-ram", true, false),
                pm_target::DISK => ("guest-suspend-disk", false, true),
                pm_target::HYBRID => ("guest-suspend-hybrid", true, true),
                t => bail!(BadArg(format!("Unknown suspend target: {t}"))),
            };
            vm.require_running()?;
            let pm = vm.def.pm.clone().unwrap_or_default();
            let off = |v: &Option<vireo_xml::YesNo>| matches!(v, Some(vireo_xml::YesNo::No));
            if s3 && off(&pm.suspend_to_mem) {
                bail!(crate::vm::OpInvalid(
                    "S3 state is disabled for this domain".into()
                ));
            }
            if s4 && off(&pm.suspend_to_disk) {
                bail!(crate::vm::OpInvalid(
                    "S4 state is disabled for this domain".into()
                ));
            }
            // The agent answers no suspend command: the guest goes away instead.
            vm.agent(cmd, None, None).await?;
            Ok(Vec::new())
        }
        procs::DOMAIN_PM_WAKEUP => {
            let a: DomainFlagsArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            bad_flags(a.flags, 0)?;
            if vm.state().0 != state::PMSUSPENDED {
                bail!(crate::vm::OpInvalid("domain is not suspended".into()));
            }
            vm.qmp().execute("system_wakeup", None).await?;
            Ok(Vec::new())
        }
        procs::DOMAIN_SET_USER_PASSWORD => {
            let a: DomainSetUserPasswordArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            bad_flags(a.flags, PASSWORD_ENCRYPTED)?;
            let (Some(user), Some(password)) = (a.user, a.password) else {
                bail!(BadArg("a user and a password are needed".into()));
            };
            use base64::Engine as _;
            let encoded = base64::engine::general_purpose::STANDARD.encode(password.as_bytes());
            vm.agent(
                "guest-set-user-password",
                Some(json!({
                    "username": user,
                    "password": encoded,
                    "crypted": a.flags & PASSWORD_ENCRYPTED != 0,
                })),
                Some(DEFAULT_WAIT),
            )
            .await?;
            Ok(Vec::new())
        }
        procs::DOMAIN_GET_GUEST_VCPUS => {
            let a: DomainFlagsArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            bad_flags(a.flags, 0)?;
            let cpus = guest_vcpus(vm).await?;
            let set = |f: &dyn Fn(&(usize, bool, bool)) -> bool| {
                vireo_xml::format_cpuset(&cpus.iter().filter(|c| f(c)).map(|c| c.0).collect())
            };
            Ok(ret(DomainGetGuestVcpusRet {
                params: vireo_xdr::Array(vec![
                    TypedParam::string("vcpus", set(&|_| true)),
                    TypedParam::string("online", set(&|c| c.1)),
                    TypedParam::string("offlinable", set(&|c| c.2)),
                ]),
            })?)
        }
        procs::DOMAIN_SET_GUEST_VCPUS => {
            let a: DomainSetGuestVcpusArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            bad_flags(a.flags, 0)?;
            if !matches!(a.state, 0 | 1) {
                bail!(BadArg(format!("unknown state {}", a.state)));
            }
            let want = vireo_xml::parse_cpuset(&a.cpumap).map_err(|e| BadArg(e.detail()))?;
            let cpus = guest_vcpus(vm).await?;
            let mut asked = Vec::new();
            for id in &want {
                let Some(c) = cpus.iter().find(|c| c.0 == *id) else {
                    bail!(BadArg(format!("vCPU '{id}' is not present in the guest")));
                };
                if a.state == 0 && !c.2 {
                    bail!(BadArg(format!("vCPU '{id}' is not offlinable")));
                }
                asked.push(json!({ "logical-id": id, "online": a.state == 1 }));
            }
            let n = vm
                .agent(
                    "guest-set-vcpus",
                    Some(json!({ "vcpus": asked })),
                    Some(DEFAULT_WAIT),
                )
                .await?;
            if n.as_u64() != Some(asked.len() as u64) {
                bail!(crate::vm::OpFailed(format!(
                    "the guest changed {} of the {} vCPUs asked",
                    n.as_u64().unwrap_or(0),
                    asked.len()
                )));
            }
            Ok(Vec::new())
        }
        procs::DOMAIN_GET_HOSTNAME => {
            let a: DomainFlagsArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            bad_flags(a.flags, HOSTNAME_AGENT | HOSTNAME_LEASE)?;
            if a.flags & HOSTNAME_LEASE != 0 {
                bail!(crate::hotplug::Unsupported(
                    "the hostname from DHCP leases is not supported by Vireo yet".into()
                ));
            }
            let v = vm
                .agent("guest-get-host-name", None, Some(DEFAULT_WAIT))
                .await?;
            Ok(ret(DomainGetHostnameRet {
                hostname: v["host-name"].as_str().unwrap_or_default().to_string(),
            })?)
        }
        procs::DOMAIN_GET_FSINFO => {
            let a: DomainFlagsArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            bad_flags(a.flags, 0)?;
            let fs = vm
                .agent("guest-get-fsinfo", None, Some(DEFAULT_WAIT))
                .await?;
            let info: Vec<DomainFsinfo> = fs
                .as_array()
                .map(|a| a.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|f| DomainFsinfo {
                    mountpoint: f["mountpoint"].as_str().unwrap_or_default().to_string(),
                    name: f["name"].as_str().unwrap_or_default().to_string(),
                    fstype: f["type"].as_str().unwrap_or_default().to_string(),
                    dev_aliases: Array(disk_aliases(vm, &f["disk"])),
                })
                .collect();
            let n = info.len() as u32;
            Ok(ret(DomainGetFsinfoRet {
                info: Array(info),
                ret: n,
            })?)
        }
        _ => {
            let a: DomainInterfaceAddressesArgs = args(payload)?;
            check_uuid(vm, &a.dom.uuid)?;
            bad_flags(a.flags, 0)?;
            let ifaces = vm
                .agent("guest-network-get-interfaces", None, Some(DEFAULT_WAIT))
                .await?;
            let out: Vec<DomainInterface> = ifaces
                .as_array()
                .map(|a| a.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|i| DomainInterface {
                    name: i["name"].as_str().unwrap_or_default().to_string(),
                    hwaddr: i["hardware-address"].as_str().map(str::to_string),
                    addrs: Array(addresses(&i["ip-addresses"])),
                })
                .collect();
            Ok(ret(DomainInterfaceAddressesRet { ifaces: Array(out) })?)
        }
    }
}

/// An interface's addresses as the agent lists them.
fn addresses(list: &Value) -> Vec<DomainIpAddr> {
    list.as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|a| {
            let type_ = match a["ip-address-type"].as_str()? {
                "ipv4" => IPV4,
                "ipv6" => IPV6,
                _ => return None,
            };
            Some(DomainIpAddr {
                type_,
                addr: a["ip-address"].as_str()?.to_string(),
                prefix: a["prefix"].as_u64().unwrap_or(0) as u32,
            })
        })
        .collect()
}

/// The domain's disk targets behind a filesystem's disks, as the agent describes them:
/// by the disk's PCI address (its controller's, for virtio disks the disk's own), else by
/// a device name the guest gives the disk that is one of the domain's targets.
fn disk_aliases(vm: &Vm, disks: &Value) -> Vec<String> {
    let live = vm.disks();
    let mut out = Vec::new();
    for d in disks.as_array().map(|a| a.as_slice()).unwrap_or_default() {
        let pci = &d["pci-controller"];
        let by_pci = live.iter().find(|l| {
            let Some(a) = l.shown.address.as_ref() else {
                return false;
            };
            a.addr_type == vireo_xml::AddressType::Pci
                && ["domain", "bus", "slot", "function"]
                    .iter()
                    .all(|k| a.get_num(k) == pci[*k].as_u64())
        });
        let by_dev = || {
            let dev = d["dev"].as_str()?.rsplit('/').next()?.to_string();
            live.iter().find(|l| l.shown.target.dev == dev)
        };
        if let Some(l) = by_pci.or_else(by_dev) {
            let t = l.shown.target.dev.clone();
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

/// `virDomainGetGuestInfo`: what the agent says of the guest, named as libvirt names it.
/// With no type asked, every type, leaving out those the agent cannot answer.
async fn guest_info(vm: &Vm, types: u32) -> anyhow::Result<Vec<TypedParam>> {
    let all = types == 0;
    let want = |t: u32| all || types & t != 0;
    let mut p: Vec<TypedParam> = Vec::new();
    let s = |f: String, v: &Value| TypedParam::string(&f, v.as_str().unwrap_or_default());
    // Asked for by name, an error is the caller's; in "everything", a gap.
    let get = |cmd: &'static str| async move {
        match vm.agent(cmd, None, Some(DEFAULT_WAIT)).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if all && e.downcast_ref::<crate::agent::AgentError>().is_some() => Ok(None),
            Err(e) => Err(e),
        }
    };
    if want(info::USERS) {
        if let Some(users) = get("guest-get-users").await? {
            let list = users.as_array().cloned().unwrap_or_default();
            p.push(TypedParam::uint("user.count", list.len() as u32));
            for (i, u) in list.iter().enumerate() {
                p.push(s(format!("user.{i}.name"), &u["user"]));
                if u.get("domain").is_some() {
                    p.push(s(format!("user.{i}.domain"), &u["domain"]));
                }
                let ms = (u["login-time"].as_f64().unwrap_or(0.0) * 1000.0) as u64;
                p.push(TypedParam::new(
                    format!("user.{i}.login-time"),
                    TypedValue::ULLong(ms),
                ));
            }
        }
    }
    if want(info::OS) {
        if let Some(os) = get("guest-get-osinfo").await? {
            for (k, f) in [
                ("id", "os.id"),
                ("name", "os.name"),
                ("pretty-name", "os.pretty-name"),
                ("version", "os.version"),
                ("version-id", "os.version-id"),
                ("machine", "os.machine"),
                ("variant", "os.variant"),
                ("variant-id", "os.variant-id"),
                ("kernel-release", "os.kernel-release"),
                ("kernel-version", "os.kernel-version"),
            ] {
                if os.get(k).is_some() {
                    p.push(s(f.to_string(), &os[k]));
                }
            }
        }
    }
    if want(info::TIMEZONE) {
        if let Some(tz) = get("guest-get-timezone").await? {
            if tz.get("zone").is_some() {
                p.push(s("timezone.name".into(), &tz["zone"]));
            }
            p.push(TypedParam::int(
                "timezone.offset",
                tz["offset"].as_i64().unwrap_or(0) as i32,
            ));
        }
    }
    if want(info::HOSTNAME) {
        if let Some(h) = get("guest-get-host-name").await? {
            p.push(s("hostname".into(), &h["host-name"]));
        }
    }
    if want(info::FILESYSTEM) {
        if let Some(fs) = get("guest-get-fsinfo").await? {
            let list = fs.as_array().cloned().unwrap_or_default();
            p.push(TypedParam::uint("fs.count", list.len() as u32));
            for (i, f) in list.iter().enumerate() {
                p.push(s(format!("fs.{i}.mountpoint"), &f["mountpoint"]));
                p.push(s(format!("fs.{i}.name"), &f["name"]));
                p.push(s(format!("fs.{i}.fstype"), &f["type"]));
                for (k, n) in [("total-bytes", "total-bytes"), ("used-bytes", "used-bytes")] {
                    if let Some(v) = f[k].as_u64() {
                        p.push(TypedParam::new(
                            format!("fs.{i}.{n}"),
                            TypedValue::ULLong(v),
                        ));
                    }
                }
                let aliases = disk_aliases(vm, &f["disk"]);
                p.push(TypedParam::uint(
                    &format!("fs.{i}.disk.count"),
                    aliases.len() as u32,
                ));
                for (j, a) in aliases.iter().enumerate() {
                    p.push(TypedParam::string(&format!("fs.{i}.disk.{j}.alias"), a));
                }
            }
        }
    }
    if want(info::DISKS) {
        if let Some(disks) = get("guest-get-disks").await? {
            let list = disks.as_array().cloned().unwrap_or_default();
            p.push(TypedParam::uint("disk.count", list.len() as u32));
            for (i, d) in list.iter().enumerate() {
                p.push(s(format!("disk.{i}.name"), &d["name"]));
                p.push(TypedParam::boolean(
                    &format!("disk.{i}.partition"),
                    d["partition"].as_bool().unwrap_or(false),
                ));
                let deps = d["dependencies"].as_array().cloned().unwrap_or_default();
                if !deps.is_empty() {
                    p.push(TypedParam::uint(
                        &format!("disk.{i}.dependency.count"),
                        deps.len() as u32,
                    ));
                    for (j, dep) in deps.iter().enumerate() {
                        p.push(s(format!("disk.{i}.dependency.{j}.name"), dep));
                    }
                }
                if let Some(addr) = d.get("address") {
                    if let Some(a) = disk_aliases(vm, &json!([addr])).first() {
                        p.push(TypedParam::string(&format!("disk.{i}.alias"), a));
                    }
                }
            }
        }
    }
    if want(info::INTERFACES) {
        if let Some(ifs) = get("guest-network-get-interfaces").await? {
            let list = ifs.as_array().cloned().unwrap_or_default();
            p.push(TypedParam::uint("if.count", list.len() as u32));
            for (i, f) in list.iter().enumerate() {
                p.push(s(format!("if.{i}.name"), &f["name"]));
                if f.get("hardware-address").is_some() {
                    p.push(s(format!("if.{i}.hwaddr"), &f["hardware-address"]));
                }
                let addrs = addresses(&f["ip-addresses"]);
                p.push(TypedParam::uint(
                    &format!("if.{i}.addr.count"),
                    addrs.len() as u32,
                ));
                for (j, a) in addrs.iter().enumerate() {
                    let t = if a.type_ == IPV6 { "ipv6" } else { "ipv4" };
                    p.push(TypedParam::string(&format!("if.{i}.addr.{j}.type"), t));
                    p.push(TypedParam::string(
                        &format!("if.{i}.addr.{j}.addr"),
                        &a.addr,
                    ));
                    p.push(TypedParam::uint(
                        &format!("if.{i}.addr.{j}.prefix"),
                        a.prefix,
                    ));
                }
            }
        }
    }
    Ok(p)
}

/// `qemu-agent-command`: the JSON as given, the agent's whole answer back. `timeout`: -2
/// waits as long as it takes, -1 the default, 0 does not wait, more is seconds.
pub async fn agent_command(vm: &Vm, payload: &[u8]) -> Result<Vec<u8>, RemoteError> {
    let a: QemuDomainAgentCommandArgs = args(payload)?;
    check_uuid(vm, &a.dom.uuid)?;
    if a.flags != 0 {
        return Err(to_remote(&anyhow::anyhow!(BadArg(format!(
            "unsupported flags (0x{:x})",
            a.flags
        )))));
    }
    vm.taint(crate::taint::Taint::CustomGaCommand);
    let wait = match a.timeout {
        -2 => Some(Duration::from_secs(24 * 3600)),
        -1 => Some(DEFAULT_WAIT),
        0 => None,
        t if t > 0 => Some(Duration::from_secs(t as u64)),
        t => {
            return Err(RemoteError::new(
                code::INVALID_ARG,
                errdom::QEMU,
                format!(
                    "invalid argument: guest agent timeout '{t}' is less than the minimum '-2'"
                ),
            ))
        }
    };
    if serde_json::from_str::<Value>(&a.cmd).is_err() {
        return Err(RemoteError::new(
            code::INVALID_ARG,
            errdom::QEMU,
            "invalid argument: the command is not JSON",
        ));
    }
    let v = vm
        .agent_raw(&a.cmd, wait)
        .await
        .map_err(|e| to_remote(&e))?;
    if let Some(e) = v.get("error") {
        return Err(RemoteError::new(
            code::INTERNAL_ERROR,
            errdom::QEMU,
            format!(
                "internal error: unable to execute QEMU agent command: {}",
                e["desc"].as_str().unwrap_or("unknown error")
            ),
        ));
    }
    ret(QemuDomainAgentCommandRet {
        result: wait.map(|_| v.to_string()),
    })
}
