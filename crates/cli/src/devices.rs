//! A domain's disks and interfaces: domblklist, domiflist, domif-getlink read from its XML;
//! attach-disk and attach-interface building the device XML virsh builds; detach-disk,
//! detach-interface, change-media and domif-setlink taking the device out of the domain's
//! XML (changed where they change it) as virsh does. Each prints what virsh prints, with
//! virsh's refusals in virsh's order.

use std::os::unix::fs::FileTypeExt;

use anyhow::{anyhow, bail, Context, Result};
use vireo_client::{Connect, DeviceOp, Domain};
use vireo_proto::remote::affect;

use crate::cnum::{c_number_radix, CNumber};
use crate::virsh::{begin, domain, escape, finish, given, s, Parsed, Spec};
use crate::xmlnode::{Element, Node};

pub const COMMANDS: [&str; 9] = [
    "domblklist",
    "domiflist",
    "domif-getlink",
    "domif-setlink",
    "attach-disk",
    "detach-disk",
    "attach-interface",
    "detach-interface",
    "change-media",
];

/// `VIR_DOMAIN_XML_INACTIVE`, `VIR_DOMAIN_DEVICE_MODIFY_FORCE`.
const XML_INACTIVE: u32 = 2;
const MODIFY_FORCE: u32 = 4;

pub(crate) fn spec(cmd: &str) -> Option<Spec> {
    Some(match cmd {
        "domblklist" => s(&["--inactive", "--details"], &["--domain"], &["domain"], 1),
        "domiflist" => s(&["--inactive"], &["--domain"], &["domain"], 1),
        "domif-getlink" => s(
            &["--config"],
            &["--domain", "--interface"],
            &["domain", "interface"],
            2,
        ),
        "domif-setlink" => s(
            &["--config", "--print-xml"],
            &["--domain", "--interface", "--state"],
            &["domain", "interface", "state"],
            3,
        ),
        "attach-disk" => {
            const SWITCHES: &[&str] = &[
                "--rawio",
                "--multifunction",
                "--print-xml",
                "--persistent",
                "--config",
                "--live",
                "--current",
            ];
            const NAMES: &[&str] = &[
                "domain",
                "source",
                "target",
                "targetbus",
                "driver",
                "subdriver",
                "iothread",
                "cache",
                "io",
                "type",
                "mode",
                "sourcetype",
                "serial",
                "wwn",
                "alias",
                "address",
                "source-protocol",
                "source-host-name",
                "source-host-transport",
                "source-host-socket",
            ];
            const VALUED: &[&str] = &[
                "--domain",
                "--source",
                "--target",
                "--targetbus",
                "--driver",
                "--subdriver",
                "--iothread",
                "--cache",
                "--io",
                "--type",
                "--mode",
                "--sourcetype",
                "--serial",
                "--wwn",
                "--alias",
                "--address",
                "--source-protocol",
                "--source-host-name",
                "--source-host-transport",
                "--source-host-socket",
            ];
            s(SWITCHES, VALUED, NAMES, 3)
        }
        "detach-disk" => s(
            &[
                "--persistent",
                "--config",
                "--live",
                "--current",
                "--print-xml",
            ],
            &["--domain", "--target"],
            &["domain", "target"],
            2,
        ),
        "attach-interface" => s(
            &[
                "--persistent",
                "--config",
                "--live",
                "--current",
                "--print-xml",
                "--managed",
            ],
            &[
                "--domain",
                "--type",
                "--source",
                "--target",
                "--mac",
                "--script",
                "--model",
                "--alias",
                "--inbound",
                "--outbound",
                "--source-mode",
            ],
            &[
                "domain",
                "type",
                "source",
                "target",
                "mac",
                "script",
                "model",
                "alias",
                "inbound",
                "outbound",
                "source-mode",
            ],
            3,
        ),
        "detach-interface" => s(
            &[
                "--persistent",
                "--config",
                "--live",
                "--current",
                "--print-xml",
            ],
            &["--domain", "--type", "--mac"],
            &["domain", "type", "mac"],
            2,
        ),
        "change-media" => s(
            &[
                "--eject",
                "--insert",
                "--update",
                "--current",
                "--live",
                "--config",
                "--force",
                "--print-xml",
                "--block",
            ],
            &["--domain", "--path", "--source"],
            &["domain", "path", "source"],
            2,
        ),
        _ => return None,
    })
}

pub async fn run(uri: &str, readonly: bool, cmd: &str, rest: &[String]) -> Result<()> {
    // virsh's option aliases, as the options they stand for.
    let rest: Vec<String> = rest
        .iter()
        .map(|a| match (cmd, a.as_str()) {
            ("attach-disk", "--shareable") => "--mode=shareable".to_string(),
            ("domif-setlink" | "domif-getlink", "--persistent") => "--config".to_string(),
            _ => a.clone(),
        })
        .collect();
    let (p, c) = begin(uri, readonly, cmd, &rest, spec).await?;
    let r = match cmd {
        "domblklist" => blk_list(&c, &p).await,
        "domiflist" => if_list(&c, &p).await,
        "domif-getlink" => get_link(&c, &p).await,
        "domif-setlink" => set_link(&c, &p).await,
        "attach-disk" => attach_disk(&c, &p).await,
        "detach-disk" => detach_disk(&c, &p).await,
        "attach-interface" => attach_interface(&c, &p).await,
        "detach-interface" => detach_interface(&c, &p).await,
        _ => change_media(&c, &p).await,
    };
    finish(c, r).await
}

/// The domain's XML (`flags`: `XML_INACTIVE` for its definition).
async fn xml_of(c: &Connect, d: &Domain, flags: u32) -> Result<Element> {
    Element::parse(&c.xml_desc(d, flags).await?, "domain")
}

async fn blk_list(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    let flags = p.args.flags(&[("--inactive", XML_INACTIVE)]);
    let details = p.args.has("--details");
    let d = domain(c, p.opt("domain")).await?;
    let xml = xml_of(c, &d, flags).await?;
    let mut rows = vec![if details {
        vec!["Type", "Device", "Target", "Source"]
    } else {
        vec!["Target", "Source"]
    }
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>()];
    for disk in xml.find_all("devices/disk") {
        let kind = disk.attr("type");
        let device = disk.attr("device");
        if details && (kind.is_none() || device.is_none()) {
            bail!("unable to query block list details");
        }
        let target = disk
            .attr_at("target", "dev")
            .ok_or_else(|| anyhow!("unable to query block list"))?;
        let source = if kind == Some("nvme") {
            Some(nvme_source(disk).ok_or_else(|| anyhow!("Unable to query NVMe disk address"))?)
        } else {
            disk.first_attr_of("source", &["file", "dev", "dir", "name", "volume", "path"])
                .map(str::to_string)
        };
        let source = source.unwrap_or_else(|| "-".to_string());
        let mut row = Vec::with_capacity(4);
        if details {
            row.push(kind.unwrap_or_default().to_string());
            row.push(device.unwrap_or_default().to_string());
        }
        row.push(target.to_string());
        row.push(source);
        rows.push(row);
    }
    print!("{}", crate::commands::table_text(&rows));
    Ok(())
}

/// An NVMe disk's source as virsh names it: `nvme://DDDD:BB:SS.F/NAMESPACE`.
fn nvme_source(disk: &Element) -> Option<String> {
    let ns = disk.attr_at("source", "namespace")?;
    let a = *disk.find_all("source/address").first()?;
    let hex = |k: &str| -> Option<u64> {
        let v = a.attr(k)?;
        let (n, end) = c_number_radix(v.as_bytes(), 0, 16)?;
        (end == v.len()).then_some(n.magnitude?)
    };
    Some(format!(
        "nvme://{:04x}:{:02x}:{:02x}.{}/{ns}",
        hex("domain")?,
        hex("bus")?,
        hex("slot")?,
        hex("function")?
    ))
}

async fn if_list(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    let flags = p.args.flags(&[("--inactive", XML_INACTIVE)]);
    let d = domain(c, p.opt("domain")).await?;
    let xml = xml_of(c, &d, flags).await?;
    let mut rows = vec![["Interface", "Type", "Source", "Model", "MAC"]
        .map(String::from)
        .to_vec()];
    for i in xml.find_all("devices/interface") {
        let or_dash = |v: Option<&str>| v.unwrap_or("-").to_string();
        rows.push(vec![
            or_dash(i.attr_at("target", "dev")),
            i.attr("type").unwrap_or_default().to_string(),
            or_dash(i.first_attr_of("source", &["bridge", "dev", "network", "name", "path"])),
            or_dash(i.attr_at("model", "type")),
            or_dash(i.attr_at("mac", "address")),
        ]);
    }
    print!("{}", crate::commands::table_text(&rows));
    Ok(())
}

/// A MAC address as libvirt reads it: six groups of one or two hex digits, by colons.
fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let b = s.as_bytes();
    let mut out = [0u8; 6];
    let mut at = 0;
    for (i, slot) in out.iter_mut().enumerate() {
        let n = b[at..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
        if !(1..=2).contains(&n) {
            return None;
        }
        *slot = u8::from_str_radix(&s[at..at + n], 16).ok()?;
        at += n;
        match b.get(at) {
            None if i == 5 => return Some(out),
            Some(&c) if i == 5 && c <= b' ' => return Some(out),
            Some(b':') if i < 5 => at += 1,
            _ => return None,
        }
    }
    None
}

async fn get_link(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    let iface = given("interface", p.opt("interface"))?.unwrap_or_default();
    let flags = p.args.flags(&[("--config", XML_INACTIVE)]);
    let d = domain(c, p.opt("domain")).await?;
    let xml = xml_of(c, &d, flags).await?;
    let mac = parse_mac(iface).map(|m| vireo_xml::format_mac(&m));
    let found: Vec<&Element> = xml
        .find_all("devices/interface")
        .into_iter()
        .filter(|i| {
            i.all("mac")
                .any(|m| m.attr("address") == Some(mac.as_deref().unwrap_or("")))
                || i.all("target").any(|t| t.attr("dev") == Some(iface))
        })
        .collect();
    match found.as_slice() {
        [] => match mac {
            Some(m) => bail!("Interface (mac: {m}) not found."),
            None => bail!("Interface (dev: {iface}) not found."),
        },
        [i] => print!("{iface} {}", i.attr_at("link", "state").unwrap_or("up")),
        _ => bail!("multiple matching interfaces found"),
    }
    Ok(())
}

async fn set_link(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    let d = domain(c, p.opt("domain")).await?;
    let iface = given("interface", p.opt("interface"))?.unwrap_or_default();
    let state = given("state", p.opt("state"))?.unwrap_or_default();
    if state != "up" && state != "down" {
        bail!("invalid link state '{state}'");
    }
    let (mut flags, xml_flags) = if p.args.has("--config") {
        (affect::CONFIG, XML_INACTIVE)
    } else {
        (affect::LIVE, 0)
    };
    if c.is_active(&d).await.is_ok_and(|a| !a) {
        flags = affect::CONFIG;
    }
    let xml = xml_of(c, &d, xml_flags).await?;
    let ifaces = xml.find_all("devices/interface");
    if ifaces.is_empty() {
        bail!("Failed to extract interface information or no interfaces found");
    }
    let same = |v: Option<&str>| v.is_some_and(|v| v.eq_ignore_ascii_case(iface));
    let found = ifaces
        .into_iter()
        .find(|i| same(i.attr_at("mac", "address")) || same(i.attr_at("target", "dev")))
        .ok_or_else(|| anyhow!("interface '{iface}' not found"))?;
    let mut node = found.clone();
    match node.child_mut("link") {
        Some(link) => link.set_attr("state", state),
        None => node
            .children
            .push(Node::Element(Element::new("link", &[("state", state)]))),
    }
    let text = node.dump();
    if p.args.has("--print-xml") {
        print!("{text}");
        return Ok(());
    }
    c.device(DeviceOp::Update, &d, &text, Some(flags))
        .await
        .context("Failed to update interface link state")?;
    println!("Device updated successfully");
    Ok(())
}

/// `--persistent`, `--config`, `--live`, `--current` as the commands that plug and unplug
/// devices take them: the flags, before `--persistent` adds the running domain.
fn device_flags(p: &Parsed<'_>) -> Result<u32> {
    p.exclusive(&[
        ("persistent", "current"),
        ("current", "live"),
        ("current", "config"),
    ])?;
    Ok(p.args.flags(&[
        ("--config", affect::CONFIG),
        ("--persistent", affect::CONFIG),
        ("--live", affect::LIVE),
    ]))
}

/// Plugs or unplugs `xml` as virsh does: `--persistent` means the running domain too when
/// it runs; the flagless call when no option was given.
async fn device_call(
    c: &Connect,
    p: &Parsed<'_>,
    d: &Domain,
    op: DeviceOp,
    xml: &str,
    mut flags: u32,
) -> vireo_client::Result<()> {
    if p.args.has("--persistent") && c.is_active(d).await.unwrap_or(false) {
        flags |= affect::LIVE;
    }
    let chosen = flags != 0 || p.args.has("--current");
    c.device(op, d, xml, chosen.then_some(flags)).await
}

/// An address as virsh reads `--address` (`pci:D.B.S.F`, `scsi:C.B.U`, `ide:`, `sata:`,
/// `ccw:CSSID.SSID.DEVNO`, `usb:B.P`).
#[derive(Debug, PartialEq)]
enum Address {
    Pci([u64; 4], bool),
    Drive(&'static str, [u64; 3]),
    Ccw([u64; 3]),
    Usb([u64; 2]),
}

impl Address {
    fn parse(s: &str, multifunction: bool) -> Option<Address> {
        let (kind, rest) = s.split_once(':')?;
        let (radix, count) = match kind {
            "pci" => (16, 4),
            "scsi" | "ide" | "sata" => (10, 3),
            "ccw" => (16, 3),
            "usb" => (10, 2),
            _ => return None,
        };
        // Each number as `virStrToLong_uip` reads it (no minus sign, at most 32 bits but
        // a drive's unit), the separator after it skipped whatever it is.
        let b = rest.as_bytes();
        let mut nums = [0u64; 4];
        let mut at = 0;
        for (i, slot) in nums.iter_mut().take(count).enumerate() {
            if i > 0 {
                if at >= b.len() {
                    return None;
                }
                at += 1;
            }
            let (n, end): (CNumber, usize) = c_number_radix(b, at, radix)?;
            let neg = b[at..end].contains(&b'-');
            let v = n.magnitude.filter(|_| !neg)?;
            let wide = kind != "pci" && kind != "ccw" && kind != "usb" && i == 2;
            if !wide && v > u64::from(u32::MAX) {
                return None;
            }
            *slot = v;
            at = end;
        }
        let [a, b_, c, d] = nums;
        Some(match kind {
            "pci" => Address::Pci([a, b_, c, d], multifunction),
            "ccw" => Address::Ccw([a, b_, c]),
            "usb" => Address::Usb([a, b_]),
            "scsi" => Address::Drive("scsi", [a, b_, c]),
            "ide" => Address::Drive("ide", [a, b_, c]),
            _ => Address::Drive("sata", [a, b_, c]),
        })
    }

    /// The `<address/>` line.
    fn xml(&self) -> String {
        match self {
            Address::Pci([d, b, s, f], multi) => format!(
                "<address type='pci' domain='0x{d:04x}' bus='0x{b:02x}' slot='0x{s:02x}' \
                 function='0x{f:x}'{}/>\n",
                if *multi { " multifunction='on'" } else { "" }
            ),
            Address::Drive(_, [c, b, u]) => {
                format!("<address type='drive' controller='{c}' bus='{b}' unit='{u}'/>\n")
            }
            Address::Ccw([c, s, d]) => {
                format!(
                    "<address type='ccw' cssid='0x{c:02x}' ssid='0x{s:x}' devno='0x{d:04x}'/>\n"
                )
            }
            Address::Usb([b, p]) => format!("<address type='usb' bus='{b}' port='{p}'/>\n"),
        }
    }
}

/// libvirt's check of a WWN: 16 hex digits, after an optional `0x`.
fn valid_wwn(w: &str) -> bool {
    let digits = w.strip_prefix("0x").unwrap_or(w);
    digits.len() == 16 && digits.bytes().all(|c| c.is_ascii_hexdigit())
}

/// ` name='value'` escaped, when there is a value.
fn attr(name: &str, v: Option<&str>) -> String {
    v.map(|v| format!(" {name}='{}'", escape(v)))
        .unwrap_or_default()
}

async fn attach_disk(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    let flags = device_flags(p)?;
    p.requires(&[
        ("source-host-name", "source-protocol"),
        ("source-host-transport", "source-protocol"),
        ("source-host-socket", "source-protocol"),
        ("source-host-socket", "source-host-transport"),
    ])?;
    p.exclusive(&[("source-host-name", "source-host-socket")])?;
    // The source may be empty (a CD-ROM drive without a disc); the others may not.
    let source = p.opt("source");
    let mut v = std::collections::HashMap::new();
    for name in [
        "target",
        "driver",
        "subdriver",
        "type",
        "mode",
        "iothread",
        "cache",
        "io",
        "serial",
        "wwn",
        "address",
        "targetbus",
        "alias",
        "sourcetype",
        "source-protocol",
        "source-host-name",
        "source-host-transport",
        "source-host-socket",
    ] {
        v.insert(name, p.string(name)?);
    }
    let get = |k: &str| v.get(k).copied().flatten();
    let protocol = get("source-protocol");
    let kind = match get("sourcetype") {
        Some(t @ ("file" | "block" | "network")) => t,
        Some("") | None => {
            if protocol.is_some() {
                "network"
            } else if !matches!(get("driver"), Some("file" | "tap"))
                && source.is_some_and(|s| {
                    std::fs::metadata(s).is_ok_and(|m| m.file_type().is_block_device())
                })
            {
                "block"
            } else {
                "file"
            }
        }
        Some(other) => bail!("Unknown source type: '{other}'"),
    };
    if (kind == "network") != protocol.is_some() {
        bail!("--source-protocol option requires --sourcetype network");
    }
    let mode = get("mode");
    if let Some(m) = mode.filter(|m| *m != "readonly" && *m != "shareable") {
        bail!("No support for {m} in command 'attach-disk'");
    }
    if let Some(w) = get("wwn").filter(|w| !valid_wwn(w)) {
        bail!("internal error: Malformed wwn: {w}");
    }
    let target = get("target").unwrap_or_default();
    let mut x = format!(
        "<disk type='{kind}'{}{}>\n",
        attr("device", get("type")),
        if p.args.has("--rawio") {
            " rawio='yes'"
        } else {
            ""
        }
    );
    let driver: String = [
        ("name", "driver"),
        ("type", "subdriver"),
        ("iothread", "iothread"),
        ("cache", "cache"),
        ("io", "io"),
    ]
    .iter()
    .map(|(a, k)| attr(a, get(k)))
    .collect();
    if !driver.is_empty() {
        x.push_str(&format!("  <driver{driver}/>\n"));
    }
    match kind {
        "network" => {
            let (host_name, host_port) = match get("source-host-name") {
                Some(h) => match h.split_once(':') {
                    Some((n, port)) => (Some(n), Some(port)),
                    None => (Some(h), None),
                },
                None => (None, None),
            };
            let host = [
                attr("transport", get("source-host-transport")),
                attr("socket", get("source-host-socket")),
                attr("name", host_name),
                attr("port", host_port),
            ]
            .concat();
            let head = format!(
                "<source{}{}",
                attr("protocol", protocol),
                attr("name", source)
            );
            if host.is_empty() {
                x.push_str(&format!("  {head}/>\n"));
            } else {
                x.push_str(&format!("  {head}>\n    <host{host}/>\n  </source>\n"));
            }
        }
        _ => {
            let which = if kind == "block" { "dev" } else { "file" };
            x.push_str(&format!("  <source{}/>\n", attr(which, source)));
        }
    }
    x.push_str(&format!("  <target dev='{target}'"));
    if let Some(bus) = get("targetbus") {
        x.push_str(&format!(" bus='{bus}'"));
    }
    x.push_str("/>\n");
    if let Some(m) = mode {
        x.push_str(&format!("  <{m}/>\n"));
    }
    if let Some(s) = get("serial") {
        x.push_str(&format!("  <serial>{s}</serial>\n"));
    }
    if let Some(a) = get("alias") {
        x.push_str(&format!("  <alias name='{a}'/>\n"));
    }
    if let Some(w) = get("wwn") {
        x.push_str(&format!("  <wwn>{w}</wwn>\n"));
    }
    if let Some(a) = get("address") {
        let addr = Address::parse(a, p.args.has("--multifunction"))
            .ok_or_else(|| anyhow!("Invalid address."))?;
        let fits = if target.starts_with("vd") {
            matches!(addr, Address::Pci(..) | Address::Ccw(_))
                .then_some(())
                .ok_or("expecting a pci:0000.00.00.00 or ccw:00.0.0000 address.")
        } else if target.starts_with("sd") {
            matches!(addr, Address::Drive("scsi" | "sata", _) | Address::Usb(_))
                .then_some(())
                .ok_or("expecting a scsi:00.00.00 or usb:00.00 or sata:00.00.00 address.")
        } else if target.starts_with("hd") {
            matches!(addr, Address::Drive("ide", _))
                .then_some(())
                .ok_or("expecting an ide:00.00.00 address.")
        } else {
            Ok(())
        };
        fits.map_err(|e| anyhow!(e))?;
        x.push_str("  ");
        x.push_str(&addr.xml());
    }
    x.push_str("</disk>\n");
    if p.args.has("--print-xml") {
        print!("{x}");
        return Ok(());
    }
    let d = domain(c, p.opt("domain")).await?;
    device_call(c, p, &d, DeviceOp::Attach, &x, flags)
        .await
        .context("Failed to attach disk")?;
    println!("Disk attached successfully");
    Ok(())
}

/// The disk of the domain's XML `doc` whose target, or source path, is `path` (only
/// CD-ROM and floppy drives when `changeable`), without its backing chain.
fn find_disk(doc: &str, path: &str, changeable: bool) -> Result<Element> {
    let xml =
        Element::parse(doc, "domain").map_err(|_| anyhow!("Failed to get disk information"))?;
    let disks = xml.find_all("devices/disk");
    if disks.is_empty() {
        bail!("Failed to get disk information");
    }
    for disk in disks {
        if changeable
            && disk
                .attr("device")
                .is_some_and(|d| d != "cdrom" && d != "floppy")
        {
            continue;
        }
        let src = disk.child("source");
        let by_source = ["file", "dev", "dir", "name"]
            .iter()
            .any(|a| src.and_then(|s| s.attr(a)) == Some(path));
        if disk.attr_at("target", "dev") == Some(path) || by_source {
            let mut d = disk.clone();
            d.remove_child("backingStore");
            return Ok(d);
        }
    }
    bail!("No disk found whose source path or target is {path}")
}

async fn detach_disk(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    let flags = device_flags(p)?;
    let d = domain(c, p.opt("domain")).await?;
    let target = given("target", p.opt("target"))?.unwrap_or_default();
    let xml_flags = if flags == affect::CONFIG {
        XML_INACTIVE
    } else {
        0
    };
    let doc = c.xml_desc(&d, xml_flags).await?;
    let text = find_disk(&doc, target, false)?.dump();
    if p.args.has("--print-xml") {
        print!("{text}");
        return Ok(());
    }
    device_call(c, p, &d, DeviceOp::Detach, &text, flags)
        .await
        .context("Failed to detach disk")?;
    println!("Disk detached successfully");
    Ok(())
}

/// A rate of `--inbound`/`--outbound`: `average,peak,burst,floor`, each optional.
fn rate(s: &str) -> Result<[u64; 4]> {
    let fields: Vec<&str> = s.split(',').collect();
    if fields.len() > 4 {
        bail!("Rate string '{s}' has too many fields");
    }
    let mut out = [0u64; 4];
    for (i, (f, name)) in fields
        .iter()
        .zip(["average", "peak", "burst", "floor"])
        .enumerate()
    {
        if f.is_empty() {
            continue;
        }
        let b = f.as_bytes();
        out[i] = c_number_radix(b, 0, 10)
            .filter(|(n, end)| *end == b.len() && !n.negative)
            .and_then(|(n, _)| n.magnitude)
            .ok_or_else(|| anyhow!("field '{name}' is malformed"))?;
    }
    Ok(out)
}

/// The network interface types libvirt knows.
const NET_TYPES: [&str; 15] = [
    "user",
    "ethernet",
    "vhostuser",
    "server",
    "client",
    "mcast",
    "network",
    "bridge",
    "internal",
    "direct",
    "hostdev",
    "udp",
    "vdpa",
    "null",
    "vds",
];

async fn attach_interface(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    let flags = device_flags(p)?;
    let mut v = std::collections::HashMap::new();
    for name in [
        "type",
        "source",
        "target",
        "mac",
        "script",
        "model",
        "alias",
        "inbound",
        "outbound",
        "source-mode",
    ] {
        v.insert(name, p.string(name)?);
    }
    let get = |k: &str| v.get(k).copied().flatten();
    let kind = get("type").unwrap_or_default();
    let source = get("source").unwrap_or_default();
    let unsupported = || anyhow!("No support for {kind} in command 'attach-interface'");
    if !NET_TYPES.contains(&kind) {
        return Err(unsupported());
    }
    let mode = match get("source-mode") {
        None => None,
        Some(m @ ("server" | "client")) => Some(m),
        Some(m) => bail!("Invalid source mode: {m}"),
    };
    let inbound = get("inbound").map(rate).transpose()?;
    if let Some([avg, _, _, floor]) = inbound {
        if avg == 0 && floor == 0 {
            bail!("either inbound average or floor is mandatory");
        }
    }
    let outbound = get("outbound").map(rate).transpose()?;
    if let Some([avg, _, _, floor]) = outbound {
        if avg == 0 {
            bail!("outbound average is mandatory");
        }
        if floor != 0 {
            bail!("outbound floor is unsupported yet");
        }
    }
    let mut x = format!(
        "<interface type='{kind}'{}>\n",
        if p.args.has("--managed") {
            " managed='yes'"
        } else {
            ""
        }
    );
    match kind {
        "network" | "bridge" => x.push_str(&format!("  <source {kind}='{source}'/>\n")),
        "direct" => x.push_str(&format!("  <source dev='{source}'/>\n")),
        "hostdev" => {
            let addr = Address::parse(&format!("pci:{source}"), false).ok_or_else(|| {
                anyhow!("cannot parse pci address '{source}' for network interface")
            })?;
            x.push_str(&format!("  <source>\n    {}  </source>\n", addr.xml()));
        }
        "vhostuser" => {
            let mode = mode.ok_or_else(|| anyhow!("source-mode is mandatory"))?;
            x.push_str(&format!(
                "  <source type='unix' path='{source}' mode='{mode}'/>\n"
            ));
        }
        _ => return Err(unsupported()),
    }
    for (key, el, at) in [
        ("target", "target", "dev"),
        ("mac", "mac", "address"),
        ("script", "script", "path"),
        ("model", "model", "type"),
        ("alias", "alias", "name"),
    ] {
        if let Some(val) = get(key) {
            x.push_str(&format!("  <{el} {at}='{val}'/>\n"));
        }
    }
    if inbound.is_some() || outbound.is_some() {
        x.push_str("  <bandwidth>\n");
        let put = |x: &mut String, name: &str, vals: [u64; 4], with_floor: bool| {
            x.push_str(&format!("    <{name}"));
            let names = ["average", "peak", "burst", "floor"];
            for (i, v) in vals.iter().enumerate() {
                if *v > 0 && (i < 3 || with_floor) {
                    x.push_str(&format!(" {}='{v}'", names[i]));
                }
            }
            x.push_str("/>\n");
        };
        if let Some(r) = inbound.filter(|r| r[0] != 0 || r[3] != 0) {
            put(&mut x, "inbound", r, true);
        }
        if let Some(r) = outbound.filter(|r| r[0] != 0) {
            put(&mut x, "outbound", r, false);
        }
        x.push_str("  </bandwidth>\n");
    }
    x.push_str("</interface>\n");
    if p.args.has("--print-xml") {
        print!("{x}");
        return Ok(());
    }
    let d = domain(c, p.opt("domain")).await?;
    device_call(c, p, &d, DeviceOp::Attach, &x, flags)
        .await
        .context("Failed to attach interface")?;
    println!("Interface attached successfully");
    Ok(())
}

async fn detach_interface(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    device_flags(p)?;
    let d = domain(c, p.opt("domain")).await?;
    let failed = "Failed to detach interface";
    // virsh's reason, then its word for the command.
    let refused = |e: anyhow::Error| anyhow!(failed).context(e.to_string());
    let kind = given("type", p.opt("type"))
        .map_err(refused)?
        .unwrap_or_default();
    let mac = p.string("mac").map_err(refused)?;
    let print = p.args.has("--print-xml");
    let has = |o: &str| p.args.has(o);
    let config = has("--config") || has("--persistent");
    if config {
        let doc = c
            .xml_desc(&d, XML_INACTIVE)
            .await
            .map_err(anyhow::Error::from)
            .context(failed)?;
        let text = interface_of(&doc, kind, mac).map_err(|e| anyhow!(failed).context(e))?;
        if print {
            print!("{text}");
        } else {
            detach_call(c, p, &d, &text, affect::CONFIG)
                .await
                .context(failed)?;
        }
    }
    let live = has("--live") || (has("--persistent") && c.is_active(&d).await.unwrap_or(false));
    if live || !config {
        let flags = if live { affect::LIVE } else { 0 };
        let doc = c
            .xml_desc(&d, 0)
            .await
            .map_err(anyhow::Error::from)
            .context(failed)?;
        let text = match interface_of(&doc, kind, mac) {
            Ok(t) => t,
            // With --print-xml virsh stops at its first word.
            Err(e) if print => return Err(anyhow!(e)),
            Err(e) => return Err(anyhow!(failed).context(e)),
        };
        if print {
            print!("{text}");
        } else {
            detach_call(c, p, &d, &text, flags).await.context(failed)?;
        }
    }
    if !print {
        println!("Interface detached successfully");
    }
    Ok(())
}

/// detach-interface's call: the flagged one when there are flags or `--current`.
async fn detach_call(
    c: &Connect,
    p: &Parsed<'_>,
    d: &Domain,
    xml: &str,
    flags: u32,
) -> vireo_client::Result<()> {
    let chosen = flags != 0 || p.args.has("--current");
    c.device(DeviceOp::Detach, d, xml, chosen.then_some(flags))
        .await
}

/// The one interface of type `kind` (with `mac`, when given) in the domain's XML `doc`,
/// as virsh writes it out; or virsh's reason.
fn interface_of(doc: &str, kind: &str, mac: Option<&str>) -> std::result::Result<String, String> {
    let xml = Element::parse(doc, "domain")
        .map_err(|_| "Failed to get interface information".to_string())?;
    let all: Vec<&Element> = xml
        .find_all("devices/interface")
        .into_iter()
        .filter(|i| i.attr("type") == Some(kind))
        .collect();
    if all.is_empty() {
        return Err(format!("No interface found whose type is {kind}"));
    }
    let found = match mac {
        Some(mac) => {
            let want = parse_mac(mac);
            let mut hits = all.iter().filter(|i| {
                let have = i.attr_at("mac", "address").and_then(parse_mac);
                have.is_some() && have == want
            });
            let first = hits.next();
            if hits.next().is_some() {
                return Err(format!(
                    "Domain has multiple interfaces matching MAC address {mac}. You must use \
                     detach-device and specify the device pci address to remove it."
                ));
            }
            *first.ok_or_else(|| format!("No interface with MAC address {mac} was found"))?
        }
        None if all.len() > 1 => {
            return Err(format!(
                "Domain has {} interfaces. Please specify which one to detach using --mac",
                all.len()
            ))
        }
        None => all[0],
    };
    Ok(found.dump())
}

async fn change_media(c: &Connect, p: &Parsed<'_>) -> Result<()> {
    p.exclusive(&[
        ("eject", "insert"),
        ("eject", "update"),
        ("insert", "update"),
        ("eject", "block"),
    ])?;
    let source = p.string("source")?;
    let has = |o: &str| p.args.has(o);
    // An update without a source is an eject.
    let eject = has("--eject") || (has("--update") && source.is_none());
    let insert = has("--insert");
    let (action, done) = if eject {
        ("eject", "Successfully ejected media.")
    } else if insert {
        ("insert", "Successfully inserted media.")
    } else {
        ("update", "Successfully updated media.")
    };
    p.exclusive(&[("current", "live"), ("current", "config")])?;
    let flags = p.args.flags(&[
        ("--config", affect::CONFIG),
        ("--live", affect::LIVE),
        ("--force", MODIFY_FORCE),
    ]);
    let d = domain(c, p.opt("domain")).await?;
    let path = given("path", p.opt("path"))?.unwrap_or_default();
    let xml_flags = if flags & affect::CONFIG != 0 {
        XML_INACTIVE
    } else {
        0
    };
    let doc = c.xml_desc(&d, xml_flags).await?;
    let mut disk = find_disk(&doc, path, true)?;
    if !matches!(disk.attr("device"), Some("cdrom" | "floppy")) {
        bail!("The disk device '{path}' is not removable");
    }
    let block = has("--block") && !eject;
    let new = if eject {
        if disk.child("source").is_none() {
            bail!("The disk device '{path}' doesn't have media");
        }
        None
    } else {
        Some(source.ok_or_else(|| anyhow!("New disk media source was not specified"))?)
    };
    if let Some(old) = disk.child("source") {
        let has_media = ["file", "dev", "dir", "pool", "name"]
            .iter()
            .any(|a| old.attr(a).is_some());
        if has_media && insert {
            bail!("The disk device '{path}' already has media");
        }
    }
    let policy = disk.attr_at("source", "startupPolicy").map(str::to_string);
    disk.remove_child("source");
    disk.set_attr("type", if block { "block" } else { "file" });
    if let Some(new) = new {
        let mut attrs = vec![(if block { "dev" } else { "file" }, new)];
        if let Some(pol) = policy.as_deref() {
            attrs.push(("startupPolicy", pol));
        }
        let src = Node::Element(Element::new("source", &attrs));
        // Before the target, indented as the target is.
        match disk
            .children
            .iter()
            .position(|n| matches!(n, Node::Element(e) if e.name == "target"))
        {
            Some(t) => {
                let indent = t.checked_sub(1).and_then(|i| match &disk.children[i] {
                    Node::Text(s) if s.trim().is_empty() => Some(s.clone()),
                    _ => None,
                });
                let mut at = t;
                disk.children.insert(at, src);
                at += 1;
                if let Some(ws) = indent {
                    disk.children.insert(at, Node::Text(ws));
                }
            }
            None => disk.children.push(src),
        }
    }
    let text = disk.dump();
    if has("--print-xml") {
        print!("{text}");
        return Ok(());
    }
    c.device(DeviceOp::Update, &d, &text, Some(flags))
        .await
        .with_context(|| format!("Failed to complete action {action} on media"))?;
    print!("{done}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_virsh_reads_them() {
        assert_eq!(
            Address::parse("pci:0.0.7.0", true).unwrap().xml(),
            "<address type='pci' domain='0x0000' bus='0x00' slot='0x07' function='0x0' \
             multifunction='on'/>\n"
        );
        assert_eq!(
            Address::parse("ccw:0xfe.0.0x1", false).unwrap().xml(),
            "<address type='ccw' cssid='0xfe' ssid='0x0' devno='0x0001'/>\n"
        );
        assert_eq!(
            Address::parse("scsi:0:0:3", false),
            Some(Address::Drive("scsi", [0, 0, 3]))
        );
        for bad in ["pci:0.0.7", "bogus", "x:1", "usb:1.-2", "ide:a.0.0", "pci:"] {
            assert_eq!(Address::parse(bad, false), None, "{bad}");
        }
    }

    #[test]
    fn macs_rates_and_wwns() {
        assert_eq!(
            parse_mac("52:54:0:AA:bb:1"),
            Some([0x52, 0x54, 0, 0xaa, 0xbb, 1])
        );
        assert_eq!(
            parse_mac("52:54:00:aa:bb:01 "),
            Some([0x52, 0x54, 0, 0xaa, 0xbb, 1])
        );
        for bad in [
            "52:54:00:aa:bb",
            "52-54-00-aa-bb-01",
            "x",
            "052:54:00:aa:bb:01",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
        assert_eq!(rate("100,,300").unwrap(), [100, 0, 300, 0]);
        assert_eq!(rate(" +5").unwrap(), [5, 0, 0, 0]);
        assert_eq!(
            rate("1,x").unwrap_err().to_string(),
            "field 'peak' is malformed"
        );
        assert_eq!(
            rate("-5").unwrap_err().to_string(),
            "field 'average' is malformed"
        );
        assert!(rate(",,,,").is_err());
        assert!(valid_wwn("5000c50015ea71ac") && valid_wwn("0x5000c50015ea71ac"));
        assert!(!valid_wwn("zz"));
    }

    #[test]
    fn media_changes_keep_the_disk_as_it_was_written() {
        let doc = "<domain>\n  <devices>\n    <disk type='file' device='cdrom'>\n      \
            <source file='/a.iso'/>\n      <target dev='hdc' bus='ide'/>\n    </disk>\n  \
            </devices>\n</domain>";
        let d = find_disk(doc, "/a.iso", true).unwrap();
        assert_eq!(d.attr_at("target", "dev"), Some("hdc"));
        assert!(find_disk(doc, "vda", false).is_err());
    }
}
