//! Secret calls: define, look up, values, list.

use tokio::sync::mpsc::UnboundedReceiver;
use vireo_proto::network::{EventDeregisterAnyArgs, EventRegisterAnyRet};
use vireo_proto::remote::{procs, Uuid};
use vireo_proto::secret::*;
use vireo_rpc::Frame;
use vireo_xdr::Opaque;

use crate::storage::split_callback;
use crate::{uri, Connect, Result};

/// One secret event: a lifecycle event (`event_id` is `event::ID_LIFECYCLE`, `event`
/// `event::DEFINED` or `event::UNDEFINED`) or a new value (`event::ID_VALUE_CHANGED`,
/// `event` and `detail` 0).
#[derive(Debug, Clone)]
pub struct SecretEvent {
    pub secret: Secret,
    pub event_id: i32,
    pub event: i32,
    pub detail: i32,
}

/// The events of one registration (see [`Connect::secret_events`]).
pub struct SecretEvents {
    rx: UnboundedReceiver<Frame>,
    callback_id: i32,
}

impl SecretEvents {
    /// The daemon's id of this registration.
    pub fn callback_id(&self) -> i32 {
        self.callback_id
    }

    /// The next event of this registration; `None` once the connection is gone. Messages
    /// that are not ours, or that do not decode, are skipped.
    pub async fn next(&mut self) -> Option<SecretEvent> {
        loop {
            let f = self.rx.recv().await?;
            let Some((id, body)) = split_callback(&f.payload) else {
                continue;
            };
            if id != self.callback_id {
                continue;
            }
            match f.header.proc_ {
                procs::SECRET_EVENT_LIFECYCLE => {
                    if let Ok(b) = vireo_xdr::from_bytes::<SecretEventLifecycleBody>(body) {
                        return Some(SecretEvent {
                            secret: b.secret,
                            event_id: event::ID_LIFECYCLE,
                            event: b.event,
                            detail: b.detail,
                        });
                    }
                }
                procs::SECRET_EVENT_VALUE_CHANGED => {
                    if let Ok(b) = vireo_xdr::from_bytes::<SecretEventValueChangedBody>(body) {
                        return Some(SecretEvent {
                            secret: b.secret,
                            event_id: event::ID_VALUE_CHANGED,
                            event: 0,
                            detail: 0,
                        });
                    }
                }
                _ => {}
            }
        }
    }
}

impl Connect {
    pub async fn secret_define_xml(&self, xml: &str) -> Result<Secret> {
        let r: SecretRet = self
            .call(
                procs::SECRET_DEFINE_XML,
                &SecretDefineXmlArgs {
                    xml: xml.into(),
                    flags: 0,
                },
            )
            .await?;
        Ok(r.secret)
    }

    pub async fn secret_undefine(&self, s: &Secret) -> Result<()> {
        self.call(procs::SECRET_UNDEFINE, &SecretArgs { secret: s.clone() })
            .await
    }

    pub async fn secret_lookup_by_uuid(&self, uuid: &Uuid) -> Result<Secret> {
        let r: SecretRet = self
            .call(
                procs::SECRET_LOOKUP_BY_UUID,
                &SecretLookupByUuidArgs { uuid: *uuid },
            )
            .await?;
        Ok(r.secret)
    }

    pub async fn secret_lookup_by_usage(&self, usage_type: i32, usage_id: &str) -> Result<Secret> {
        let r: SecretRet = self
            .call(
                procs::SECRET_LOOKUP_BY_USAGE,
                &SecretLookupByUsageArgs {
                    usage_type,
                    usage_id: usage_id.into(),
                },
            )
            .await?;
        Ok(r.secret)
    }

    /// Finds a secret the way virsh does: by UUID.
    pub async fn secret_lookup(&self, key: &str) -> Result<Secret> {
        match uri::parse_uuid(key) {
            Some(u) => self.secret_lookup_by_uuid(&u).await,
            None => Err(crate::ClientError::Uri(format!("'{key}' is not a UUID"))),
        }
    }

    pub async fn secret_xml_desc(&self, s: &Secret) -> Result<String> {
        let r: SecretGetXmlDescRet = self
            .call(
                procs::SECRET_GET_XML_DESC,
                &SecretFlagsArgs {
                    secret: s.clone(),
                    flags: 0,
                },
            )
            .await?;
        Ok(r.xml)
    }

    pub async fn secret_set_value(&self, s: &Secret, value: &[u8]) -> Result<()> {
        self.call(
            procs::SECRET_SET_VALUE,
            &SecretSetValueArgs {
                secret: s.clone(),
                value: Opaque(value.to_vec()),
                flags: 0,
            },
        )
        .await
    }

    pub async fn secret_get_value(&self, s: &Secret) -> Result<Vec<u8>> {
        let r: SecretGetValueRet = self
            .call(
                procs::SECRET_GET_VALUE,
                &SecretFlagsArgs {
                    secret: s.clone(),
                    flags: 0,
                },
            )
            .await?;
        Ok(r.value.0)
    }

    pub async fn list_all_secrets(&self, flags: u32) -> Result<Vec<Secret>> {
        let r: ConnectListAllSecretsRet = self
            .call(
                procs::CONNECT_LIST_ALL_SECRETS,
                &ConnectListAllSecretsArgs {
                    need_results: 1,
                    flags,
                },
            )
            .await?;
        Ok(r.secrets.0)
    }

    /// Registers for the secret events of `event_id` (`event::ID_LIFECYCLE` or
    /// `event::ID_VALUE_CHANGED`) of `secret`, or of every secret, and returns them as they
    /// come. Takes this connection's event stream: one registration per connection.
    pub async fn secret_events(
        &self,
        secret: Option<&Secret>,
        event_id: i32,
    ) -> Result<SecretEvents> {
        let rx = self.connection().events();
        let r: EventRegisterAnyRet = self
            .call(
                procs::CONNECT_SECRET_EVENT_REGISTER_ANY,
                &ConnectSecretEventRegisterAnyArgs {
                    event_id,
                    secret: secret.cloned(),
                },
            )
            .await?;
        Ok(SecretEvents {
            rx,
            callback_id: r.callback_id,
        })
    }

    pub async fn secret_event_deregister(&self, callback_id: i32) -> Result<()> {
        self.call(
            procs::CONNECT_SECRET_EVENT_DEREGISTER_ANY,
            &EventDeregisterAnyArgs { callback_id },
        )
        .await
    }
}
