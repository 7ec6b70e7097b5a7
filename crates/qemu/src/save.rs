//! Saving a running domain's state to a file and restoring it (`virsh save`/`restore`),
//! and the managed save image a persistent domain keeps until its next start
//! (`virsh managedsave`). The shim has QEMU write its migration stream into the file the
//! daemon opened; a restore hands the file to a new shim, whose QEMU reads it back.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vireo_driver::{DriverError, Result};
use vireo_proto::remote::{state, Domain as Handle};
use vireo_proto::vireo::{procs as vprocs, ShimSaveArgs, VIREO_PROGRAM, VIREO_VERSION};
use vireo_xml::Domain;

use crate::driver::{no_domain_uuid, xml_error, QemuDriver};
use crate::lifecycle::START_PAUSED;
use crate::saveimage::{self, ImageHeader};

// BYPASS_CACHE: the image's pages leave the page cache afterwards. RUNNING / PAUSED: the
// restored guest runs / stays paused, whatever it did when saved.
use vireo_proto::remote::save_flags::{
    BYPASS_CACHE as SAVE_BYPASS_CACHE, PAUSED as SAVE_PAUSED, RUNNING as SAVE_RUNNING,
};

/// `VIR_DOMAIN_START_FORCE_BOOT`: boot, dropping the managed save image.
pub const START_FORCE_BOOT: u32 = 8;
/// `VIR_DOMAIN_START_BYPASS_CACHE`.
const START_BYPASS_CACHE: u32 = 4;
/// `VIR_DOMAIN_SAVE_IMAGE_XML_SECURE`.
pub const SAVE_IMAGE_XML_SECURE: u32 = 1;

/// How long a shim may take to end after its VM was saved.
const SHIM_EXIT: std::time::Duration = std::time::Duration::from_secs(30);

fn check_save_flags(flags: u32) -> Result<()> {
    let known = SAVE_BYPASS_CACHE | SAVE_RUNNING | SAVE_PAUSED;
    if flags & !known != 0 {
        return Err(DriverError::InvalidArg(format!(
            "unsupported flags (0x{:x})",
            flags & !known
        )));
    }
    if flags & SAVE_RUNNING != 0 && flags & SAVE_PAUSED != 0 {
        return Err(DriverError::InvalidArg(
            "flags 'running' and 'paused' are mutually exclusive".into(),
        ));
    }
    Ok(())
}

/// A path from a client must be absolute: the daemon's working directory is nobody's.
fn client_path(path: &str) -> Result<PathBuf> {
    let p = PathBuf::from(path);
    if !p.is_absolute() {
        return Err(DriverError::InvalidArg(format!(
            "path '{path}' is not absolute"
        )));
    }
    Ok(p)
}

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> DriverError {
    move |e| DriverError::io(what, e)
}

/// Asks the kernel to drop the file's cached pages (`BYPASS_CACHE`).
fn drop_cache(f: &File) {
    let _ = rustix::fs::fadvise(f, 0, None, rustix::fs::Advice::DontNeed);
}

/// A save image being written: a temp file beside its path with the header in it; QEMU
/// writes the rest through [`NewImage::for_qemu`]. [`NewImage::finish`] makes it the
/// image, durably; dropped before that, the temp file goes.
pub(crate) struct NewImage {
    file: File,
    tmp: PathBuf,
    path: PathBuf,
    done: bool,
}

impl NewImage {
    /// Creates the temp file (0600) and writes the header: the definition `xml`, and
    /// whether a restored guest runs.
    pub(crate) fn create(path: &Path, xml: &str, running: bool) -> Result<NewImage> {
        let not_a_file = || DriverError::InvalidArg(format!("{} is not a file", path.display()));
        let dir = path.parent().ok_or_else(not_a_file)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(not_a_file)?;
        let tmp = dir.join(format!(".{name}.vireo-save"));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(format!("cannot create {}", tmp.display())))?;
        let mut image = NewImage {
            file,
            tmp,
            path: path.to_path_buf(),
            done: false,
        };
        saveimage::write_header(&mut image.file, xml, running, None)
            .map_err(io_err(format!("cannot write {}", image.tmp.display())))?;
        Ok(image)
    }

    /// The descriptor QEMU writes its stream through (at the stream's offset).
    pub(crate) fn for_qemu(&self) -> Result<OwnedFd> {
        Ok(self
            .file
            .try_clone()
            .map_err(io_err("cannot duplicate the image's descriptor".into()))?
            .into())
    }

    /// Synced, renamed to its path (and the directory synced); with `bypass_cache` its
    /// pages leave the page cache.
    pub(crate) fn finish(mut self, bypass_cache: bool) -> Result<()> {
        self.file
            .sync_all()
            .map_err(io_err(format!("cannot write {}", self.tmp.display())))?;
        if bypass_cache {
            drop_cache(&self.file);
        }
        std::fs::rename(&self.tmp, &self.path)
            .map_err(io_err(format!("cannot rename to {}", self.path.display())))?;
        self.done = true;
        if let Some(d) = self.path.parent().and_then(|d| File::open(d).ok()) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Drop for NewImage {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Opens a save image and reads its header; the file is left at the stream's offset.
pub(crate) fn open_image(path: &Path) -> Result<(File, ImageHeader)> {
    let mut f = File::open(path).map_err(io_err(format!("cannot open {}", path.display())))?;
    let h = saveimage::read_header(&mut f)
        .map_err(|e| DriverError::OperationFailed(format!("{}: {e}", path.display())))?;
    Ok((f, h))
}

/// The XML an image is restored with: the image's, or the caller's replacement for it,
/// which must describe the same domain.
fn image_def_xml(saved_xml: &str, dxml: Option<&str>) -> Result<String> {
    let Some(dxml) = dxml.filter(|x| !x.trim().is_empty()) else {
        return Ok(saved_xml.to_string());
    };
    let saved = Domain::parse(saved_xml)
        .map_err(|e| DriverError::OperationFailed(format!("the image's XML: {e}")))?;
    let mut new = Domain::parse(dxml).map_err(xml_error)?;
    if new.name != saved.name {
        return Err(DriverError::InvalidArg(format!(
            "the XML describes domain '{}', the image holds '{}'",
            new.name, saved.name
        )));
    }
    match (new.uuid, saved.uuid) {
        // Without a uuid the XML is taken as the image's domain.
        (None, Some(u)) => {
            new.uuid = Some(u);
            Ok(new.format())
        }
        (n, s) if n != s => Err(DriverError::InvalidArg(format!(
            "the XML's uuid {} is not the image's {}",
            n.map(|u| vireo_xml::format_uuid(&u)).unwrap_or_default(),
            s.map(|u| vireo_xml::format_uuid(&u)).unwrap_or_default()
        ))),
        _ => Ok(dxml.to_string()),
    }
}

/// Without `secure`, the graphics passwords are left out.
fn shown_xml(xml: &str, secure: bool) -> Result<String> {
    let mut def = Domain::parse(xml)
        .map_err(|e| DriverError::OperationFailed(format!("the image's XML: {e}")))?;
    if !secure {
        for g in &mut def.devices.graphics {
            g.passwd = None;
        }
    }
    Ok(def.format())
}

impl QemuDriver {
    /// Where a domain's emulated TPM keeps its state (swtpm's files).
    pub(crate) fn tpm_state_dir(&self, uuid: &str) -> PathBuf {
        self.cfg.save_dir.with_file_name("swtpm").join(uuid)
    }

    /// Where domains' NVRAM files (UEFI variables) are kept.
    pub(crate) fn nvram_dir(&self) -> PathBuf {
        self.cfg.save_dir.with_file_name("nvram")
    }

    /// Where a domain's managed save image is kept.
    pub(crate) fn managed_save_path(&self, name: &str) -> PathBuf {
        self.cfg.save_dir.join(format!("{name}.save"))
    }

    /// `virDomainSaveFlags`: the running (or paused) domain's state goes into `to`, and
    /// the domain stops. `dxml` replaces the definition stored in the image.
    pub async fn save(
        self: &Arc<Self>,
        h: &Handle,
        to: &str,
        dxml: Option<&str>,
        flags: u32,
    ) -> Result<()> {
        check_save_flags(flags)?;
        let path = client_path(to)?;
        self.save_to(h, &path, dxml, flags).await
    }

    async fn save_to(
        self: &Arc<Self>,
        h: &Handle,
        path: &Path,
        dxml: Option<&str>,
        flags: u32,
    ) -> Result<()> {
        let (conn, was_running) = {
            let reg = self.read();
            let o = reg
                .by_uuid
                .get(&h.uuid)
                .ok_or_else(|| no_domain_uuid(&h.uuid, &h.name))?;
            let conn = o
                .shim
                .clone()
                .ok_or_else(|| DriverError::OperationInvalid("domain is not running".into()))?;
            (conn, o.state.0 == state::RUNNING)
        };
        // The live definition (devices plugged since the start included), stored without
        // the runtime id.
        let mut def = self.live_def(h).await?;
        if dxml.is_some() {
            def = Domain::parse(&image_def_xml(&def.format(), dxml)?).map_err(xml_error)?;
        }
        let running = match (flags & SAVE_RUNNING != 0, flags & SAVE_PAUSED != 0) {
            (true, _) => true,
            (_, true) => false,
            _ => was_running,
        };

        let image = NewImage::create(path, &def.format(), running)?;
        let for_qemu = image.for_qemu()?;
        let r = conn
            .call_sending_fds::<_, ()>(
                VIREO_PROGRAM,
                VIREO_VERSION,
                vprocs::SHIM_SAVE,
                &ShimSaveArgs { flags: 0 },
                vec![for_qemu],
            )
            .await;
        match r {
            // The shim ends with its QEMU; when it is gone, its STOPPED event has been
            // seen and the domain is shut off.
            Ok(_) => {
                if tokio::time::timeout(SHIM_EXIT, conn.closed())
                    .await
                    .is_err()
                {
                    log::warn!("the shim of '{}' outlived its saved VM", h.name);
                }
            }
            Err(e) => return Err(crate::hotplug::shim_error(e)),
        }
        image.finish(flags & SAVE_BYPASS_CACHE != 0)
    }

    /// `virDomainRestoreFlags`: starts the domain saved in `from`, with the image's
    /// definition or `dxml`; running as it was when saved unless a flag says otherwise.
    pub async fn restore(
        self: &Arc<Self>,
        from: &str,
        dxml: Option<&str>,
        flags: u32,
    ) -> Result<Handle> {
        check_save_flags(flags)?;
        let path = client_path(from)?;
        let (file, image) = open_image(&path)?;
        let def = self.prepare(&image_def_xml(&image.xml, dxml)?)?;
        let paused = flags & SAVE_PAUSED != 0 || (!image.running && flags & SAVE_RUNNING == 0);
        let r = self
            .run_transient(
                def,
                if paused { START_PAUSED } else { 0 },
                Some(file.into()),
            )
            .await;
        if flags & SAVE_BYPASS_CACHE != 0 {
            if let Ok(f) = File::open(&path) {
                drop_cache(&f);
            }
        }
        r
    }

    /// `virDomainSaveImageGetXMLDesc`.
    pub fn save_image_xml(&self, file: &str, flags: u32) -> Result<String> {
        if flags & !SAVE_IMAGE_XML_SECURE != 0 {
            return Err(DriverError::InvalidArg(format!(
                "unsupported flags (0x{:x})",
                flags & !SAVE_IMAGE_XML_SECURE
            )));
        }
        let (_, image) = open_image(&client_path(file)?)?;
        shown_xml(&image.xml, flags & SAVE_IMAGE_XML_SECURE != 0)
    }

    /// `virDomainSaveImageDefineXML`: replaces the definition stored in an image (the
    /// same domain; it must fit where the old one was), and with RUNNING or PAUSED, what
    /// the restored guest does.
    pub fn save_image_define(&self, file: &str, dxml: &str, flags: u32) -> Result<()> {
        check_save_flags(flags)?;
        let path = client_path(file)?;
        self.rewrite_image(&path, Some(dxml), flags)
    }

    fn rewrite_image(&self, path: &Path, dxml: Option<&str>, flags: u32) -> Result<()> {
        let (_, image) = open_image(path)?;
        // The new XML is read as a definition would be, and stored complete.
        let xml = self.prepare(&image_def_xml(&image.xml, dxml)?)?.format();
        let running = match (flags & SAVE_RUNNING != 0, flags & SAVE_PAUSED != 0) {
            (true, _) => true,
            (_, true) => false,
            _ => image.running,
        };
        let mut head = std::io::Cursor::new(Vec::new());
        saveimage::write_header(&mut head, &xml, running, Some(image.data_offset))
            .map_err(|e| DriverError::InvalidArg(format!("{}: {e}", path.display())))?;
        // The header is rewritten in place: it is one page-aligned block at the start, and
        // QEMU's stream after it is untouched.
        let mut f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_err(format!("cannot open {}", path.display())))?;
        f.seek(SeekFrom::Start(0))
            .and_then(|_| f.write_all(&head.into_inner()))
            .and_then(|_| f.sync_data())
            .map_err(io_err(format!("cannot write {}", path.display())))
    }

    /// `virDomainManagedSave`: saves a persistent domain to the image its next start
    /// restores.
    pub async fn managed_save(self: &Arc<Self>, h: &Handle, flags: u32) -> Result<()> {
        check_save_flags(flags)?;
        let name = self.with(h, |o| {
            if o.persistent {
                Ok(o.def.name.clone())
            } else {
                Err(DriverError::OperationInvalid(
                    "cannot do managed save for transient domain".into(),
                ))
            }
        })??;
        let path = self.managed_save_path(&name);
        std::fs::create_dir_all(&self.cfg.save_dir).map_err(io_err(format!(
            "cannot create {}",
            self.cfg.save_dir.display()
        )))?;
        self.save_to(h, &path, None, flags).await?;
        if let Some(o) = self.write().by_uuid.get_mut(&h.uuid) {
            o.managed_save = true;
        }
        Ok(())
    }

    /// `virDomainHasManagedSaveImage`.
    pub fn has_managed_save(&self, h: &Handle) -> Result<bool> {
        self.with(h, |o| o.managed_save)
    }

    /// `virDomainManagedSaveRemove`.
    pub fn managed_save_remove(&self, h: &Handle) -> Result<()> {
        let name = self.with(h, |o| o.def.name.clone())?;
        self.drop_managed_save(&h.uuid, &name)
    }

    pub(crate) fn drop_managed_save(&self, uuid: &[u8; 16], name: &str) -> Result<()> {
        vireo_driver::store::remove(&self.managed_save_path(name))?;
        let mut reg = self.write();
        if let Some(o) = reg.by_uuid.get_mut(uuid) {
            o.managed_save = false;
            if !o.active() && o.state.1 == state::SHUTOFF_SAVED {
                o.state = (state::SHUTOFF, state::SHUTOFF_UNKNOWN);
            }
        }
        Ok(())
    }

    /// `virDomainManagedSaveGetXMLDesc`.
    pub fn managed_save_xml(&self, h: &Handle, flags: u32) -> Result<String> {
        if flags & !SAVE_IMAGE_XML_SECURE != 0 {
            return Err(DriverError::InvalidArg(format!(
                "unsupported flags (0x{:x})",
                flags & !SAVE_IMAGE_XML_SECURE
            )));
        }
        let path = self.managed_image(h)?;
        let (_, image) = open_image(&path)?;
        shown_xml(&image.xml, flags & SAVE_IMAGE_XML_SECURE != 0)
    }

    /// `virDomainManagedSaveDefineXML`.
    pub fn managed_save_define(&self, h: &Handle, dxml: &str, flags: u32) -> Result<()> {
        check_save_flags(flags)?;
        let path = self.managed_image(h)?;
        self.rewrite_image(&path, Some(dxml), flags)
    }

    fn managed_image(&self, h: &Handle) -> Result<PathBuf> {
        let (name, has) = self.with(h, |o| (o.def.name.clone(), o.managed_save))?;
        if !has {
            return Err(DriverError::OperationInvalid(format!(
                "domain '{name}' has no managed save image"
            )));
        }
        Ok(self.managed_save_path(&name))
    }

    /// Starts a domain from its managed save image (`start` without FORCE_BOOT); the
    /// image is removed once the domain runs from it.
    pub(crate) async fn start_from_managed_save(
        self: &Arc<Self>,
        uuid: [u8; 16],
        name: &str,
        flags: u32,
    ) -> Result<Handle> {
        let path = self.managed_save_path(name);
        let (file, image) = open_image(&path)?;
        let def = self.prepare(&image.xml)?;
        if def.uuid != Some(uuid) || def.name != name {
            return Err(DriverError::OperationFailed(format!(
                "{} holds another domain",
                path.display()
            )));
        }
        let paused = flags & START_PAUSED != 0 || !image.running;
        let h = self
            .launch(
                def,
                if paused { START_PAUSED } else { 0 },
                Some(file.into()),
            )
            .await?;
        if flags & START_BYPASS_CACHE != 0 {
            if let Ok(f) = File::open(&path) {
                drop_cache(&f);
            }
        }
        if let Err(e) = self.drop_managed_save(&uuid, name) {
            log::warn!("{}: {e}", path.display());
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_paths() {
        assert!(check_save_flags(SAVE_RUNNING | SAVE_BYPASS_CACHE).is_ok());
        let e = check_save_flags(SAVE_RUNNING | SAVE_PAUSED).unwrap_err();
        assert!(e.to_string().contains("mutually exclusive"), "{e}");
        assert!(check_save_flags(64).is_err());
        let e = client_path("vm1.save").unwrap_err();
        assert!(e.to_string().contains("is not absolute"), "{e}");
        assert_eq!(client_path("/a/b").unwrap(), PathBuf::from("/a/b"));
    }

    #[test]
    fn replacement_xml_is_for_the_same_domain() {
        let image = "<domain type='qemu'><name>a</name>\
                     <uuid>11111111-2222-3333-4444-555555555555</uuid>\
                     <memory>65536</memory><os><type>hvm</type></os></domain>";
        assert_eq!(image_def_xml(image, None).unwrap(), image);
        // Without a uuid, the image's.
        let x = image_def_xml(
            image,
            Some(
                "<domain type='qemu'><name>a</name><memory>1</memory>\
                 <os><type>hvm</type></os></domain>",
            ),
        )
        .unwrap();
        assert!(x.contains("11111111-2222-3333-4444-555555555555"), "{x}");
        let other = "<domain type='qemu'><name>b</name><memory>1</memory>\
                     <os><type>hvm</type></os></domain>";
        let e = image_def_xml(image, Some(other)).unwrap_err();
        assert!(e.to_string().contains("the image holds 'a'"), "{e}");
        let e = image_def_xml(
            image,
            Some(
                "<domain type='qemu'><name>a</name>\
                 <uuid>11111111-2222-3333-4444-000000000000</uuid>\
                 <memory>1</memory><os><type>hvm</type></os></domain>",
            ),
        )
        .unwrap_err();
        assert!(e.to_string().contains("is not the image's"), "{e}");
    }
}
