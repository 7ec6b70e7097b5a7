//! UEFI firmware (`<os firmware='efi'>`): the OVMF build to run is chosen at start from
//! what the definition asks (secure boot, enrolled keys) among Debian's `ovmf` package,
//! and each domain gets its own NVRAM (its UEFI variables), copied from the firmware's
//! template at its first start and kept under `<state>/qemu/nvram/NAME_VARS.fd`.

use std::path::{Path, PathBuf};

use vireo_driver::{DriverError, Result};
use vireo_xml::{Domain, Loader, LoaderType, Nvram, OsFirmware};

/// Debian's OVMF builds: (code, whether it enforces secure boot).
const OVMF_DIR: &str = "/usr/share/OVMF";
const CODE: &str = "OVMF_CODE_4M.fd";
const CODE_SECURE: &str = "OVMF_CODE_4M.secboot.fd";
/// Variable stores: empty, and with Microsoft's and Debian's keys enrolled.
const VARS: &str = "OVMF_VARS_4M.fd";
const VARS_ENROLLED: &str = "OVMF_VARS_4M.ms.fd";

/// The firmware files Debian's ovmf package installs, if it is installed: (code, secure
/// code, vars, enrolled vars).
pub fn ovmf() -> Option<[PathBuf; 4]> {
    let dir = Path::new(OVMF_DIR);
    let files = [CODE, CODE_SECURE, VARS, VARS_ENROLLED].map(|f| dir.join(f));
    files.iter().all(|f| f.is_file()).then_some(files)
}

fn unsupported(m: impl Into<String>) -> DriverError {
    DriverError::ConfigUnsupported(m.into())
}

/// Completes `def`'s firmware for a start: `<os firmware='efi'>` gets the OVMF build that
/// fits and an NVRAM under `nvram_dir`; a pflash loader with a variable store gets its
/// NVRAM file made from the template if it has none yet.
pub fn prepare(def: &mut Domain, nvram_dir: &Path) -> Result<()> {
    let secure_asked = def.os.loader.as_ref().and_then(|l| l.secure) == Some(true)
        || def.os.firmware_feature("secure-boot") == Some(true);
    if def.os.firmware == Some(OsFirmware::Efi)
        && def
            .os
            .loader
            .as_ref()
            .and_then(|l| l.path.as_ref())
            .is_none()
    {
        let Some([code, code_secure, vars, vars_enrolled]) = ovmf() else {
            return Err(unsupported(format!(
                "no UEFI firmware: install Debian's ovmf package ({OVMF_DIR})"
            )));
        };
        let enrolled = def.os.firmware_feature("enrolled-keys");
        if enrolled == Some(true) && !secure_asked {
            return Err(unsupported(
                "enrolled keys without secure boot: no firmware offers that",
            ));
        }
        let loader = def.os.loader.get_or_insert_with(Loader::default);
        loader.path = Some(
            if secure_asked { &code_secure } else { &code }
                .display()
                .to_string(),
        );
        loader.readonly = Some(true);
        loader.loader_type = Some(LoaderType::Pflash);
        loader.secure = Some(secure_asked);
        let nvram = def.os.nvram.get_or_insert_with(Nvram::default);
        if nvram.template.is_none() {
            let t = if secure_asked && enrolled != Some(false) {
                &vars_enrolled
            } else {
                &vars
            };
            nvram.template = Some(t.display().to_string());
        }
    }
    let Some(loader) = def.os.loader.clone() else {
        if def.os.nvram.is_some() {
            return Err(unsupported("<nvram> needs a <loader>"));
        }
        return Ok(());
    };
    let pflash = loader.loader_type == Some(LoaderType::Pflash);
    if !pflash && def.os.nvram.is_some() {
        return Err(unsupported("<nvram> needs <loader type='pflash'>"));
    }
    if loader.secure == Some(true) {
        let machine = def.os.os_type.machine.as_deref().unwrap_or("pc");
        if crate::pci::machine_family(machine) != Some(crate::pci::Family::Q35) {
            return Err(unsupported("secure boot needs a q35 machine (SMM)"));
        }
    }
    // A read-only code image keeps its variables apart, in the domain's own NVRAM.
    if pflash && loader.readonly == Some(true) {
        let name = def.name.clone();
        let nvram = def.os.nvram.get_or_insert_with(Nvram::default);
        let path = match &nvram.path {
            Some(p) => PathBuf::from(p),
            None => {
                let p = nvram_dir.join(format!("{name}_VARS.fd"));
                nvram.path = Some(p.display().to_string());
                p
            }
        };
        if !path.exists() {
            let Some(template) = nvram.template.clone() else {
                return Err(unsupported(format!(
                    "the NVRAM {} does not exist and <nvram> names no template",
                    path.display()
                )));
            };
            copy_template(Path::new(&template), &path)?;
        }
    }
    Ok(())
}

/// Makes the NVRAM from its template: a temp file beside it, synced, renamed.
fn copy_template(template: &Path, to: &Path) -> Result<()> {
    let data = std::fs::read(template)
        .map_err(|e| DriverError::io(format!("cannot read {}", template.display()), e))?;
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| DriverError::io(format!("cannot create {}", dir.display()), e))?;
    }
    vireo_driver::store::write_atomic(to, &data)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| DriverError::io(format!("cannot protect {}", to.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dom(os: &str) -> Domain {
        Domain::parse(&format!(
            "<domain type='qemu'><name>fw</name><memory>65536</memory><os>{os}</os></domain>"
        ))
        .unwrap()
    }

    #[test]
    fn nvram_made_from_its_template_once() {
        let t = tempfile::tempdir().unwrap();
        let template = t.path().join("vars.fd");
        std::fs::write(&template, b"VARS").unwrap();
        let mut d = dom(&format!(
            "<type machine='q35'>hvm</type><loader readonly='yes' type='pflash'>/x/code.fd</loader>\
             <nvram template='{}'/>",
            template.display()
        ));
        prepare(&mut d, t.path()).unwrap();
        let nv = t.path().join("fw_VARS.fd");
        assert_eq!(d.os.nvram.as_ref().unwrap().path.as_deref(), nv.to_str());
        assert_eq!(std::fs::read(&nv).unwrap(), b"VARS");
        // The guest's variables are never overwritten by the template again.
        std::fs::write(&nv, b"GUEST").unwrap();
        prepare(&mut d, t.path()).unwrap();
        assert_eq!(std::fs::read(&nv).unwrap(), b"GUEST");
    }

    #[test]
    fn refusals() {
        let t = tempfile::tempdir().unwrap();
        let e = |os: &str| {
            let mut d = dom(os);
            prepare(&mut d, t.path()).unwrap_err().to_string()
        };
        assert!(e("<type machine='pc'>hvm</type><loader secure='yes' type='pflash' readonly='yes'>/c</loader><nvram template='/t'/>")
            .contains("q35"));
        assert!(
            e("<type>hvm</type><loader type='rom'>/c</loader><nvram>/n</nvram>").contains("pflash")
        );
        assert!(e(
            "<type machine='q35'>hvm</type><loader readonly='yes' type='pflash'>/c</loader>"
        )
        .contains("no template"));
        if ovmf().is_some() {
            let mut d = dom("<type machine='q35'>hvm</type>");
            d.os.firmware = Some(OsFirmware::Efi);
            prepare(&mut d, t.path()).unwrap();
            let l = d.os.loader.unwrap();
            assert!(l.path.unwrap().ends_with(CODE));
        }
    }
}
