//! Network filter calls: list, look up, define and undefine filters; create, look up, list
//! and delete filter bindings.

use vireo_proto::error::domain::NWFILTER;
use vireo_proto::nwfilter::*;
use vireo_proto::remote::{procs, Uuid};

use crate::{uri, Connect, Result};

impl Connect {
    async fn nwfilter_call<A: vireo_xdr::Xdr>(&self, proc_: i32, args: &A) -> Result<NwFilter> {
        let r: NwFilterRet = self.call(proc_, args).await?;
        Ok(r.nwfilter)
    }

    /// Every filter (`virConnectListAllNWFilters`; libvirt defines no flags).
    pub async fn list_all_nwfilters(&self) -> Result<Vec<NwFilter>> {
        let r: ListAllNwFiltersRet = self
            .call(
                procs::CONNECT_LIST_ALL_NWFILTERS,
                &ListAllArgs {
                    need_results: 1,
                    flags: 0,
                },
            )
            .await?;
        Ok(r.filters.0)
    }

    /// How many filters there are (the call older daemons have).
    pub async fn num_of_nwfilters(&self) -> Result<i32> {
        let r: NumRet = self.call(procs::CONNECT_NUM_OF_NWFILTERS, &()).await?;
        Ok(r.num)
    }

    /// The names of at most `max` filters (the call older daemons have).
    pub async fn list_nwfilter_names(&self, max: i32) -> Result<Vec<String>> {
        let r: NamesRet = self
            .call(
                procs::CONNECT_LIST_NWFILTERS,
                &MaxNamesArgs { maxnames: max },
            )
            .await?;
        Ok(r.names.0)
    }

    pub async fn nwfilter_lookup_by_name(&self, name: &str) -> Result<NwFilter> {
        self.nwfilter_call(
            procs::NWFILTER_LOOKUP_BY_NAME,
            &NameArgs { name: name.into() },
        )
        .await
    }

    pub async fn nwfilter_lookup_by_uuid(&self, uuid: &Uuid) -> Result<NwFilter> {
        self.nwfilter_call(procs::NWFILTER_LOOKUP_BY_UUID, &UuidArgs { uuid: *uuid })
            .await
    }

    /// Finds a filter the way virsh does: a key as long as a UUID is tried as one first,
    /// then everything as a name (whose error is the one returned).
    pub async fn nwfilter_lookup(&self, key: &str) -> Result<NwFilter> {
        if key.len() == 36 {
            if let Some(u) = uri::parse_uuid(key) {
                if let Ok(f) = self.nwfilter_lookup_by_uuid(&u).await {
                    return Ok(f);
                }
            }
        }
        self.nwfilter_lookup_by_name(key).await
    }

    /// Defines (or redefines) a filter; `flags`: `DEFINE_VALIDATE`. Without flags, the
    /// call every daemon has, as libvirt's clients make it.
    ///
    /// The calls that change something are refused on a read-only connection before
    /// anything is sent, as libvirt refuses them.
    pub async fn nwfilter_define_xml(&self, xml: &str, flags: u32) -> Result<NwFilter> {
        if flags == 0 {
            self.check_writable("virNWFilterDefineXML", NWFILTER)?;
            self.nwfilter_call(procs::NWFILTER_DEFINE_XML, &XmlArgs { xml: xml.into() })
                .await
        } else {
            self.check_writable("virNWFilterDefineXMLFlags", NWFILTER)?;
            self.nwfilter_call(
                procs::NWFILTER_DEFINE_XML_FLAGS,
                &XmlFlagsArgs {
                    xml: xml.into(),
                    flags,
                },
            )
            .await
        }
    }

    pub async fn nwfilter_undefine(&self, f: &NwFilter) -> Result<()> {
        self.check_writable("virNWFilterUndefine", NWFILTER)?;
        self.call(
            procs::NWFILTER_UNDEFINE,
            &NwFilterArgs {
                nwfilter: f.clone(),
            },
        )
        .await
    }

    pub async fn nwfilter_xml_desc(&self, f: &NwFilter) -> Result<String> {
        let r: XmlRet = self
            .call(
                procs::NWFILTER_GET_XML_DESC,
                &NwFilterFlagsArgs {
                    nwfilter: f.clone(),
                    flags: 0,
                },
            )
            .await?;
        Ok(r.xml)
    }

    /// Every filter binding (libvirt defines no flags).
    pub async fn list_all_nwfilter_bindings(&self) -> Result<Vec<NwFilterBinding>> {
        let r: ListAllBindingsRet = self
            .call(
                procs::CONNECT_LIST_ALL_NWFILTER_BINDINGS,
                &ListAllArgs {
                    need_results: 1,
                    flags: 0,
                },
            )
            .await?;
        Ok(r.bindings.0)
    }

    /// The binding of a port device (the host side of a guest interface).
    pub async fn nwfilter_binding_lookup(&self, portdev: &str) -> Result<NwFilterBinding> {
        let r: BindingRet = self
            .call(
                procs::NWFILTER_BINDING_LOOKUP_BY_PORT_DEV,
                &NameArgs {
                    name: portdev.into(),
                },
            )
            .await?;
        Ok(r.nwfilter)
    }

    /// Creates a binding; `flags`: `BINDING_CREATE_VALIDATE`.
    pub async fn nwfilter_binding_create_xml(
        &self,
        xml: &str,
        flags: u32,
    ) -> Result<NwFilterBinding> {
        self.check_writable("virNWFilterBindingCreateXML", NWFILTER)?;
        let r: BindingRet = self
            .call(
                procs::NWFILTER_BINDING_CREATE_XML,
                &XmlFlagsArgs {
                    xml: xml.into(),
                    flags,
                },
            )
            .await?;
        Ok(r.nwfilter)
    }

    pub async fn nwfilter_binding_delete(&self, b: &NwFilterBinding) -> Result<()> {
        self.check_writable("virNWFilterBindingDelete", NWFILTER)?;
        self.call(
            procs::NWFILTER_BINDING_DELETE,
            &BindingArgs {
                nwfilter: b.clone(),
            },
        )
        .await
    }

    pub async fn nwfilter_binding_xml_desc(&self, b: &NwFilterBinding) -> Result<String> {
        let r: XmlRet = self
            .call(
                procs::NWFILTER_BINDING_GET_XML_DESC,
                &BindingFlagsArgs {
                    nwfilter: b.clone(),
                    flags: 0,
                },
            )
            .await?;
        Ok(r.xml)
    }
}
