//! The secret driver (`vireo-secretd`, and `vireod`): secrets defined by XML, their values
//! encrypted at rest, lookups by UUID and by usage, listing with libvirt's filters, and
//! lifecycle and value-changed events.
//!
//! On disk, under the configuration directory: `secrets/UUID.xml` (the definition) and
//! `secrets/UUID.value` (the value, sealed by [`vault::Vault`] with a key kept in the state
//! directory). Ephemeral secrets never touch the disk. Every write is atomic and synced
//! before the call returns.

mod error;
pub mod vault;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use vireo_driver::events::{EventBus, ObjectEvent};
use vireo_driver::store;
use vireo_proto::remote::{procs, Uuid};
use vireo_proto::secret::{
    event, list_flags, Secret as Handle, SecretEventLifecycleBody, SecretEventValueChangedBody,
    DEFINE_VALIDATE, SECRET_LIST_MAX, SECRET_VALUE_MAX,
};
use vireo_xml::{format_uuid, Secret};
use zeroize::Zeroizing;

pub use error::{Result, SecretError};
use vault::Vault;

/// Secrets one host may hold: a client cannot make the daemon keep an endless list.
pub const MAX_SECRETS: usize = SECRET_LIST_MAX;

struct Obj {
    /// The definition, its UUID always set.
    def: Secret,
    value: Option<Zeroizing<Vec<u8>>>,
}

impl Obj {
    fn uuid(&self) -> Uuid {
        self.def.uuid.unwrap_or_default()
    }

    fn handle(&self) -> Handle {
        let (usage_type, usage_id) = self.def.usage_id().unwrap_or_default();
        Handle {
            uuid: self.uuid(),
            usage_type,
            usage_id,
        }
    }
}

pub struct SecretDriver {
    dir: PathBuf,
    vault: Vault,
    objs: Mutex<BTreeMap<Uuid, Obj>>,
    events: EventBus<ObjectEvent>,
}

impl SecretDriver {
    /// Loads every stored secret from `config_dir/secrets`, with the key in
    /// `state_dir/secrets` (made at the first start). A definition or value that cannot be
    /// read is logged and skipped, never fatal.
    pub fn open(
        config_dir: &Path,
        state_dir: &Path,
        events: EventBus<ObjectEvent>,
    ) -> Result<SecretDriver> {
        let dir = config_dir.join("secrets");
        // Definitions say which volumes and hosts the secrets unlock: root's (or the
        // user's) alone, like the values.
        fs::create_dir_all(&dir)
            .map_err(|e| SecretError::io(format!("cannot create {}", dir.display()), e))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| SecretError::io(format!("cannot restrict {}", dir.display()), e))?;
        let vault = Vault::open(&state_dir.join("secrets/secrets-encryption-key"))?;
        let mut objs = BTreeMap::new();
        for path in store::list_xml(&dir)? {
            match load(&vault, &path) {
                Ok(o) => {
                    objs.insert(o.uuid(), o);
                }
                Err(e) => log::warn!("skipping secret {}: {e}", path.display()),
            }
        }
        Ok(SecretDriver {
            dir,
            vault,
            objs: Mutex::new(objs),
            events,
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Uuid, Obj>> {
        self.objs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn xml_path(&self, u: &Uuid) -> PathBuf {
        self.dir.join(format!("{}.xml", format_uuid(u)))
    }

    fn value_path(&self, u: &Uuid) -> PathBuf {
        self.dir.join(format!("{}.value", format_uuid(u)))
    }

    /// `virSecretDefineXML`: a new secret, or a new definition of an existing one (its
    /// value is kept).
    pub fn define_xml(&self, xml: &str, flags: u32) -> Result<Handle> {
        check_flags(flags, DEFINE_VALIDATE)?;
        let mut def = Secret::parse(xml)?;
        let usage = def.usage_id()?;
        let mut objs = self.lock();
        // The usage names one secret only.
        if usage.0 != 0 {
            if let Some(other) = objs
                .values()
                .find(|o| o.def.usage_id().ok().as_ref() == Some(&usage))
            {
                if def.uuid != Some(other.uuid()) {
                    return Err(SecretError::Internal(format!(
                        "a secret with UUID {} already defined for use with {}",
                        format_uuid(&other.uuid()),
                        usage.1
                    )));
                }
            }
        }
        let uuid = match def.uuid {
            Some(u) => u,
            None => loop {
                let u = *uuid::Uuid::new_v4().as_bytes();
                if !objs.contains_key(&u) {
                    break u;
                }
            },
        };
        def.uuid = Some(uuid);
        let old = objs.get(&uuid);
        if let Some(old) = old {
            let old_usage = old.def.usage_id()?;
            if old_usage != usage {
                return Err(SecretError::Internal(format!(
                    "a secret with UUID {} is already defined for use with {}",
                    format_uuid(&uuid),
                    old_usage.1
                )));
            }
            if old.def.is_private() && !def.is_private() {
                return Err(SecretError::Invalid(
                    "cannot change private flag on existing secret".into(),
                ));
            }
        } else if objs.len() >= MAX_SECRETS {
            return Err(SecretError::InvalidArg(format!(
                "too many secrets (limit {MAX_SECRETS})"
            )));
        }
        let value = old.and_then(|o| o.value.clone());
        if def.is_ephemeral() {
            store::remove(&self.value_path(&uuid))?;
            store::remove(&self.xml_path(&uuid))?;
        } else {
            // The value first: a definition on disk never points at a value still to come.
            if let Some(v) = &value {
                store::write_atomic(&self.value_path(&uuid), &self.vault.seal(&uuid, v)?)?;
            }
            store::write_atomic(&self.xml_path(&uuid), def.format().as_bytes())?;
        }
        let obj = Obj { def, value };
        let h = obj.handle();
        objs.insert(uuid, obj);
        drop(objs);
        self.lifecycle(&h, event::DEFINED);
        Ok(h)
    }

    /// `virSecretUndefine`.
    pub fn undefine(&self, h: &Handle) -> Result<()> {
        let mut objs = self.lock();
        let obj = objs.get(&h.uuid).ok_or_else(|| no_uuid(&h.uuid))?;
        let h = obj.handle();
        store::remove(&self.value_path(&h.uuid))?;
        store::remove(&self.xml_path(&h.uuid))?;
        objs.remove(&h.uuid);
        drop(objs);
        self.lifecycle(&h, event::UNDEFINED);
        Ok(())
    }

    pub fn lookup_by_uuid(&self, uuid: &Uuid) -> Result<Handle> {
        self.lock()
            .get(uuid)
            .map(Obj::handle)
            .ok_or_else(|| no_uuid(uuid))
    }

    pub fn lookup_by_usage(&self, usage_type: i32, usage_id: &str) -> Result<Handle> {
        self.lock()
            .values()
            .map(Obj::handle)
            .find(|h| h.usage_type == usage_type && h.usage_id == usage_id)
            .ok_or_else(|| {
                SecretError::NoSecret(format!("no secret with matching usage '{usage_id}'"))
            })
    }

    pub fn xml_desc(&self, h: &Handle, flags: u32) -> Result<String> {
        check_flags(flags, 0)?;
        self.with(h, |o| Ok(o.def.format()))
    }

    /// `virSecretSetValue`: stored sealed (unless ephemeral) before the call returns.
    pub fn set_value(&self, h: &Handle, value: &[u8], flags: u32) -> Result<()> {
        check_flags(flags, 0)?;
        if value.len() > SECRET_VALUE_MAX {
            return Err(SecretError::InvalidArg(format!(
                "secret value is {} bytes, more than {SECRET_VALUE_MAX}",
                value.len()
            )));
        }
        let mut objs = self.lock();
        let obj = objs.get_mut(&h.uuid).ok_or_else(|| no_uuid(&h.uuid))?;
        if !obj.def.is_ephemeral() {
            store::write_atomic(&self.value_path(&h.uuid), &self.vault.seal(&h.uuid, value)?)?;
        }
        obj.value = Some(Zeroizing::new(value.to_vec()));
        let h = obj.handle();
        drop(objs);
        self.publish(
            &h,
            event::ID_VALUE_CHANGED,
            procs::SECRET_EVENT_VALUE_CHANGED,
            vireo_xdr::to_bytes(&SecretEventValueChangedBody { secret: h.clone() }),
        );
        Ok(())
    }

    /// `virSecretGetValue`. A private secret's value goes only to `internal` callers: the
    /// daemons themselves, never a client.
    pub fn get_value(&self, h: &Handle, flags: u32, internal: bool) -> Result<Zeroizing<Vec<u8>>> {
        check_flags(flags, 0)?;
        self.with(h, |o| {
            if o.def.is_private() && !internal {
                return Err(SecretError::Invalid("secret is private".into()));
            }
            o.value.clone().ok_or_else(|| {
                SecretError::NoSecret(format!(
                    "secret '{}' does not have a value",
                    format_uuid(&h.uuid)
                ))
            })
        })
    }

    /// `virConnectListAllSecrets` with its filter flags, in UUID order.
    pub fn list_all(&self, flags: u32) -> Result<Vec<Handle>> {
        use list_flags::*;
        check_flags(flags, EPHEMERAL | NO_EPHEMERAL | PRIVATE | NO_PRIVATE)?;
        // A pair of flags not given lets every secret through; one given, its half.
        let pick = |yes: u32, no: u32, v: bool| {
            flags & (yes | no) == 0 || flags & if v { yes } else { no } != 0
        };
        Ok(self
            .lock()
            .values()
            .filter(|o| pick(EPHEMERAL, NO_EPHEMERAL, o.def.is_ephemeral()))
            .filter(|o| pick(PRIVATE, NO_PRIVATE, o.def.is_private()))
            .map(Obj::handle)
            .collect())
    }

    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Whether any ephemeral secret exists (it would be lost if the daemon exited idle).
    pub fn has_ephemeral(&self) -> bool {
        self.lock().values().any(|o| o.def.is_ephemeral())
    }

    fn with<T>(&self, h: &Handle, f: impl FnOnce(&Obj) -> Result<T>) -> Result<T> {
        let objs = self.lock();
        f(objs.get(&h.uuid).ok_or_else(|| no_uuid(&h.uuid))?)
    }

    fn lifecycle(&self, h: &Handle, ev: i32) {
        let body = SecretEventLifecycleBody {
            secret: h.clone(),
            event: ev,
            detail: 0,
        };
        self.publish(
            h,
            event::ID_LIFECYCLE,
            procs::SECRET_EVENT_LIFECYCLE,
            vireo_xdr::to_bytes(&body),
        );
    }

    fn publish(&self, h: &Handle, event_id: i32, proc_: i32, body: Vec<u8>) {
        self.events.publish(ObjectEvent {
            register_proc: procs::CONNECT_SECRET_EVENT_REGISTER_ANY,
            event_id,
            key: h.uuid.to_vec(),
            proc_,
            body,
        });
    }
}

fn load(vault: &Vault, path: &Path) -> Result<Obj> {
    let xml = fs::read_to_string(path)
        .map_err(|e| SecretError::io(format!("cannot read {}", path.display()), e))?;
    let def = Secret::parse(&xml)?;
    let uuid = def
        .uuid
        .ok_or_else(|| SecretError::Internal("stored secret has no UUID".into()))?;
    let value_path = path.with_extension("value");
    let value = match fs::read(&value_path) {
        Ok(data) => match vault.unseal(&uuid, &data) {
            Ok(v) => Some(v),
            Err(e) => {
                log::warn!("secret {}: value not loaded: {e}", format_uuid(&uuid));
                None
            }
        },
        Err(_) => None,
    };
    Ok(Obj { def, value })
}

fn no_uuid(u: &Uuid) -> SecretError {
    SecretError::NoSecret(format!("no secret with matching uuid '{}'", format_uuid(u)))
}

fn check_flags(flags: u32, allowed: u32) -> Result<()> {
    if flags & !allowed != 0 {
        return Err(SecretError::InvalidArg(format!(
            "unsupported flags (0x{:x})",
            flags & !allowed
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
