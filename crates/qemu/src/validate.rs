//! `virsh define --validate` / `create --validate`: the XML as given is checked against
//! libvirt's domain schema (the RELAX NG files Debian's libvirt-clients installs) with
//! `xmllint`, before Vireo reads it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use vireo_driver::{DriverError, Result};

/// Where libvirt's schemas are.
const SCHEMAS: &str = "/usr/share/libvirt/schemas";
#[cfg(test)]
const SCHEMA: &str = "/usr/share/libvirt/schemas/domain.rng";

/// `VIR_DOMAIN_DEFINE_VALIDATE`.
pub const DEFINE_VALIDATE: u32 = 1;
/// `VIR_DOMAIN_START_VALIDATE`.
pub const START_VALIDATE: u32 = 16;

/// Checks `xml` against the domain schema; the error carries xmllint's complaint.
pub fn domain_schema(xml: &str) -> Result<()> {
    schema(xml, "domain")
}

/// Checks `xml` against libvirt's schema `name` (`domain`, `domainsnapshot` …).
pub fn schema(xml: &str, name: &str) -> Result<()> {
    let rng = format!("{SCHEMAS}/{name}.rng");
    if !Path::new(&rng).is_file() {
        return Err(DriverError::NoSupport(format!(
            "schema validation needs libvirt's schemas ({rng}, from libvirt-clients)"
        )));
    }
    let mut child = Command::new("xmllint")
        .args(["--noout", "--relaxng", &rng, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| DriverError::NoSupport(format!("schema validation needs xmllint ({e})")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A write error means xmllint stopped early; its status says why.
        let _ = stdin.write_all(xml.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| DriverError::io("xmllint", e))?;
    if out.status.success() {
        return Ok(());
    }
    let why = String::from_utf8_lossy(&out.stderr);
    // xmllint names the document "-"; the last line only repeats that it failed.
    let detail: Vec<&str> = why
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.ends_with("fails to validate"))
        .take(8)
        .collect();
    Err(DriverError::XmlSchema(format!(
        "Unable to validate doc against {rng}\n{}",
        detail.join("\n")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_errors_say_why() {
        if !Path::new(SCHEMA).is_file() {
            return; // no schemas on this machine: nothing to check
        }
        let good = "<domain type='qemu'><name>a</name><memory>65536</memory>\
                    <os><type>hvm</type></os></domain>";
        assert!(domain_schema(good).is_ok());
        let e = domain_schema(&good.replace("<domain ", "<domain frob='1' "))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("XML document failed to validate against schema"),
            "{e}"
        );
    }
}
