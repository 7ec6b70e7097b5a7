//! `virDomainGetMetadata` / `virDomainSetMetadata`: title, description and applications'
//! `<metadata>` elements, in the running VM's definition (its shim keeps it) and/or the
//! persistent one, with a METADATA_CHANGE event.

use vireo_driver::events::DeviceEvent;
use vireo_driver::{DriverError, Result};
use vireo_proto::remote::{event, procs, Domain as Handle, DomainSetMetadataArgs};
use vireo_xml::{Domain, XmlError};

use crate::driver::QemuDriver;

fn xml_error(e: XmlError) -> DriverError {
    match e {
        XmlError::Unsupported(m) => DriverError::ConfigUnsupported(m),
        XmlError::Invalid(m) | XmlError::Syntax { msg: m, .. } => DriverError::InvalidArg(m),
    }
}

impl QemuDriver {
    /// The metadata of `kind` (and namespace `uri`) of the running or the persistent
    /// definition, as the flags choose.
    pub async fn get_metadata(
        &self,
        h: &Handle,
        kind: i32,
        uri: Option<&str>,
        flags: u32,
    ) -> Result<String> {
        use vireo_proto::remote::affect::{CONFIG, LIVE};
        let (active, _, def) = self.device_target(h)?;
        if flags & !(LIVE | CONFIG) != 0 {
            return Err(DriverError::InvalidArg(format!(
                "unsupported flags (0x{:x})",
                flags & !(LIVE | CONFIG)
            )));
        }
        let live = match (flags & LIVE != 0, flags & CONFIG != 0) {
            (false, false) => active,
            (true, false) if !active => {
                return Err(DriverError::OperationInvalid(
                    "domain is not running".into(),
                ))
            }
            (true, false) => true,
            (false, true) => false,
            (true, true) => {
                return Err(DriverError::InvalidArg(
                    "flags 'affect live' and 'affect config' are mutually exclusive".into(),
                ))
            }
        };
        let def: Domain = if live { self.live_def(h).await? } else { def };
        def.get_metadata(kind, uri)
            .map_err(xml_error)?
            .ok_or_else(|| {
                DriverError::NoMetadata("Requested metadata element is not present".into())
            })
    }

    /// Sets (or removes) metadata in the running VM and/or the persistent definition.
    pub async fn set_metadata(&self, a: &DomainSetMetadataArgs) -> Result<()> {
        let h = &a.dom;
        let (active, persistent, def) = self.device_target(h)?;
        let (live, config) = crate::hotplug::targets(a.flags, active, persistent)?;
        let (value, key, uri) = (a.metadata.as_deref(), a.key.as_deref(), a.uri.as_deref());
        // The change is tried on the definition first, so a bad value changes nothing.
        let mut new = def.clone();
        new.set_metadata(a.type_, value, key, uri)
            .map_err(xml_error)?;
        if live {
            let conn = self.shim_conn(h)?;
            let args = DomainSetMetadataArgs {
                flags: vireo_proto::remote::affect::LIVE,
                ..a.clone()
            };
            let _: () = conn
                .call(procs::DOMAIN_SET_METADATA, &args)
                .await
                .map_err(crate::hotplug::shim_error)?;
        }
        if config {
            self.save_config(h, new)?;
        }
        let nsuri = if a.type_ == vireo_xml::metadata::kind::ELEMENT {
            uri.unwrap_or_default().to_string()
        } else {
            String::new()
        };
        let dom = self.with(h, |o| o.handle())?;
        self.device_events().publish(DeviceEvent {
            dom,
            event_id: event::ID_METADATA_CHANGE,
            alias: nsuri,
            detail: a.type_,
            status: 0,
            size: 0,
            params: Vec::new(),
            body: Vec::new(),
        });
        Ok(())
    }
}
