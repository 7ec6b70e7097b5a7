//! What a domain's guest agent answers: a raw agent command (the QEMU program's
//! `virDomainQemuAgentCommand`), the guest's own view (guest info, filesystems, time,
//! hostname), its filesystems frozen and thawed, a user's password set. Each call libvirt's
//! library refuses on a read-only connection is refused here before it is sent, alike.

use vireo_proto::error::domain::DOMAIN;
use vireo_proto::remote::*;
use vireo_proto::typed::TypedParam;
use vireo_proto::{QEMU_PROGRAM, QEMU_VERSION};
use vireo_xdr::Xdr;

use crate::{Connect, Result};

/// `virDomainGuestInfoTypes`.
pub mod guest_info {
    pub const USERS: u32 = 1;
    pub const OS: u32 = 2;
    pub const TIMEZONE: u32 = 4;
    pub const HOSTNAME: u32 = 8;
    pub const FILESYSTEM: u32 = 16;
    pub const DISKS: u32 = 32;
    pub const INTERFACES: u32 = 64;
}

/// `VIR_DOMAIN_QEMU_AGENT_COMMAND_*`: the timeouts that are not seconds.
pub mod agent_timeout {
    pub const BLOCK: i32 = -2;
    pub const DEFAULT: i32 = -1;
    pub const NOWAIT: i32 = 0;
}

impl Connect {
    /// `virDomainQemuAgentCommand`: `cmd` (JSON) to the guest agent; its answer (none when
    /// not waited for).
    pub async fn agent_command(
        &self,
        dom: &Domain,
        cmd: &str,
        timeout: i32,
    ) -> Result<Option<String>> {
        self.check_writable("virDomainQemuAgentCommand", DOMAIN)?;
        let args = QemuDomainAgentCommandArgs {
            dom: dom.clone(),
            cmd: cmd.to_string(),
            timeout,
            flags: 0,
        };
        let reply = self
            .connection()
            .call_raw(
                QEMU_PROGRAM,
                QEMU_VERSION,
                vireo_proto::QEMU_PROC_DOMAIN_AGENT_COMMAND,
                |o| args.encode(o),
            )
            .await?;
        let r: QemuDomainAgentCommandRet =
            vireo_xdr::from_bytes(&reply).map_err(vireo_rpc::client::CallError::Decode)?;
        Ok(r.result)
    }

    /// `virDomainGetGuestInfo`: the [`guest_info`] groups asked for (0: all of them).
    pub async fn guest_info(&self, dom: &Domain, types: u32) -> Result<Vec<TypedParam>> {
        self.check_writable("virDomainGetGuestInfo", DOMAIN)?;
        let r: DomainGetGuestInfoRet = self
            .call(
                procs::DOMAIN_GET_GUEST_INFO,
                &DomainGetGuestInfoArgs {
                    dom: dom.clone(),
                    types,
                    flags: 0,
                },
            )
            .await?;
        Ok(r.params.0)
    }

    /// `virDomainFSFreeze` (`thaw`: `virDomainFSThaw`) of `mountpoints` (none: all of
    /// them); how many filesystems it froze (thawed).
    pub async fn fs_freeze(&self, dom: &Domain, mountpoints: &[&str], thaw: bool) -> Result<i32> {
        let (api, proc_) = if thaw {
            ("virDomainFSThaw", procs::DOMAIN_FSTHAW)
        } else {
            ("virDomainFSFreeze", procs::DOMAIN_FSFREEZE)
        };
        self.check_writable(api, DOMAIN)?;
        let r: DomainFsfreezeRet = self
            .call(
                proc_,
                &DomainFsfreezeArgs {
                    dom: dom.clone(),
                    mountpoints: vireo_xdr::Array(
                        mountpoints.iter().map(|m| m.to_string()).collect(),
                    ),
                    flags: 0,
                },
            )
            .await?;
        Ok(r.filesystems)
    }

    /// `virDomainGetFSInfo`: the guest's mounted filesystems.
    pub async fn fs_info(&self, dom: &Domain) -> Result<Vec<DomainFsinfo>> {
        self.check_writable("virDomainGetFSInfo", DOMAIN)?;
        let r: DomainGetFsinfoRet = self
            .call(
                procs::DOMAIN_GET_FSINFO,
                &DomainFlagsArgs {
                    dom: dom.clone(),
                    flags: 0,
                },
            )
            .await?;
        Ok(r.info.0)
    }

    /// `virDomainSetUserPassword` (`flags`: `VIR_DOMAIN_PASSWORD_ENCRYPTED`).
    pub async fn set_user_password(
        &self,
        dom: &Domain,
        user: &str,
        password: &str,
        flags: u32,
    ) -> Result<()> {
        self.check_writable("virDomainSetUserPassword", DOMAIN)?;
        self.call(
            procs::DOMAIN_SET_USER_PASSWORD,
            &DomainSetUserPasswordArgs {
                dom: dom.clone(),
                user: Some(user.to_string()),
                password: Some(password.to_string()),
                flags,
            },
        )
        .await
    }

    /// `virDomainGetTime`: the guest's clock (seconds, nanoseconds).
    pub async fn guest_time(&self, dom: &Domain) -> Result<(i64, u32)> {
        self.check_writable("virDomainGetTime", DOMAIN)?;
        let r: DomainGetTimeRet = self
            .call(
                procs::DOMAIN_GET_TIME,
                &DomainFlagsArgs {
                    dom: dom.clone(),
                    flags: 0,
                },
            )
            .await?;
        Ok((r.seconds, r.nseconds))
    }

    /// `virDomainSetTime` (`flags`: `VIR_DOMAIN_TIME_SYNC`, from the guest's RTC).
    pub async fn set_guest_time(
        &self,
        dom: &Domain,
        seconds: i64,
        nseconds: u32,
        flags: u32,
    ) -> Result<()> {
        self.check_writable("virDomainSetTime", DOMAIN)?;
        self.call(
            procs::DOMAIN_SET_TIME,
            &DomainSetTimeArgs {
                dom: dom.clone(),
                seconds,
                nseconds,
                flags,
            },
        )
        .await
    }

    /// `virDomainGetHostname` (`flags`: `VIR_DOMAIN_GET_HOSTNAME_LEASE` 1, `_AGENT` 2).
    pub async fn domain_hostname(&self, dom: &Domain, flags: u32) -> Result<String> {
        self.check_writable("virDomainGetHostname", DOMAIN)?;
        let r: DomainGetHostnameRet = self
            .call(
                procs::DOMAIN_GET_HOSTNAME,
                &DomainFlagsArgs {
                    dom: dom.clone(),
                    flags,
                },
            )
            .await?;
        Ok(r.hostname)
    }
}
