//! `virDomainInterfaceAddresses` (`virsh domifaddr`): the addresses of a running guest's
//! interfaces, from its networks' DHCP leases (asked of the network driver) or from the
//! host's ARP table.

use vireo_driver::{DriverError, Result};
use vireo_proto::remote::{ifaddr_source, Domain as Handle};

use crate::driver::QemuDriver;

/// One interface's addresses: (host-side name, MAC, [(type, address, prefix)]).
pub type IfAddrs = (String, Option<String>, Vec<(i32, String, u32)>);

/// `VIR_IP_ADDR_TYPE_IPV4` (the ARP table has IPv4 only).
const IPV4: i32 = 0;

impl QemuDriver {
    pub async fn interface_addresses(
        &self,
        h: &Handle,
        source: u32,
        flags: u32,
    ) -> Result<Vec<IfAddrs>> {
        if flags != 0 {
            return Err(DriverError::InvalidArg(format!(
                "unsupported flags (0x{flags:x})"
            )));
        }
        if !self.is_running(h)? {
            return Err(DriverError::OperationInvalid(
                "domain is not running".into(),
            ));
        }
        let live = self.live_def(h).await?;
        let named = live
            .devices
            .interfaces
            .iter()
            .filter_map(|i| Some((i, i.target_dev.clone()?, i.mac.clone()?)));
        let mut out = Vec::new();
        match source {
            ifaddr_source::LEASE => {
                let peers = self.peers.get().cloned();
                for (iface, name, mac) in named {
                    let Some(net) = iface.source.as_ref().and_then(|s| s.network.clone()) else {
                        continue;
                    };
                    let Some(peers) = &peers else { continue };
                    let leases = peers.dhcp_leases(&net, &mac).await?;
                    if !leases.is_empty() {
                        out.push((name, Some(mac), leases));
                    }
                }
            }
            ifaddr_source::ARP => {
                let arp = std::fs::read_to_string("/proc/net/arp").unwrap_or_default();
                for (_, name, mac) in named {
                    let addrs = arp_addresses(&arp, &mac);
                    if !addrs.is_empty() {
                        out.push((name, Some(mac), addrs));
                    }
                }
            }
            // The daemon asks the VM's shim, which talks to the agent.
            ifaddr_source::AGENT => {
                return Err(DriverError::Internal(
                    "the guest agent's addresses are the VM's shim's to give".into(),
                ))
            }
            other => {
                return Err(DriverError::InvalidArg(format!(
                    "Unknown IP address data source {other}"
                )))
            }
        }
        Ok(out)
    }
}

/// The IPv4 addresses `/proc/net/arp` has for `mac` (complete entries only).
fn arp_addresses(table: &str, mac: &str) -> Vec<(i32, String, u32)> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // IP address, HW type, Flags (0x2: complete), HW address, Mask, Device.
            let complete = f
                .get(2)
                .and_then(|x| u32::from_str_radix(x.trim_start_matches("0x"), 16).ok())
                .is_some_and(|fl| fl & 0x2 != 0);
            (f.len() >= 4 && complete && f[3].eq_ignore_ascii_case(mac))
                .then(|| (IPV4, f[0].to_string(), 0))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_table() {
        let t = "IP address       HW type     Flags       HW address            Mask     Device\n\
                 10.77.0.123      0x1         0x2         52:54:00:aa:bb:01     *        vnat0\n\
                 10.77.0.124      0x1         0x0         52:54:00:aa:bb:01     *        vnat0\n\
                 10.77.0.9        0x1         0x2         52:54:00:aa:bb:02     *        vnat0\n";
        assert_eq!(
            arp_addresses(t, "52:54:00:AA:BB:01"),
            [(IPV4, "10.77.0.123".to_string(), 0)]
        );
        assert!(arp_addresses(t, "52:54:00:aa:bb:03").is_empty());
        assert!(arp_addresses("", "x").is_empty());
    }
}
