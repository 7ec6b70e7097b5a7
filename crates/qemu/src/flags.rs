//! The flags libvirt knows for the domain calls whose handlers take a flags word without
//! checking it themselves, for the daemon (before it answers or forwards one) and for a
//! VM's shim (whichever endpoint the call came in on) to refuse the others, as libvirt
//! refuses them: `virDomainGetXMLDesc` (SECURE, INACTIVE, UPDATE_CPU, MIGRATABLE),
//! `virDomainGetVcpusFlags` (LIVE, CONFIG, MAXIMUM), `virDomainDestroyFlags` (GRACEFUL,
//! REMOVE_LOGS), the shutdown and reboot modes (ACPI … PARAVIRT), and none for the rest.

use vireo_proto::remote::{procs, DomainFlagsArgs, DomainGetBlockInfoArgs};
use vireo_xdr::from_bytes;

/// The flags libvirt knows for call `p`; `None` for calls not listed here.
pub fn known(p: i32) -> Option<u32> {
    Some(match p {
        procs::DOMAIN_GET_XML_DESC => 0xf,
        procs::DOMAIN_GET_VCPUS_FLAGS => 7,
        procs::DOMAIN_DESTROY_FLAGS => 3,
        procs::DOMAIN_SHUTDOWN_FLAGS | procs::DOMAIN_REBOOT => 0x1f,
        procs::DOMAIN_RESET
        | procs::DOMAIN_GET_GUEST_VCPUS
        | procs::DOMAIN_MIGRATE_GET_MAX_DOWNTIME
        | procs::DOMAIN_GET_BLOCK_INFO => 0,
        _ => return None,
    })
}

/// The flags of call `p`'s arguments that libvirt does not know (0: none, or a call not
/// listed, or arguments that do not decode: their handler says so).
pub fn unknown(p: i32, payload: &[u8]) -> u32 {
    let Some(known) = known(p) else { return 0 };
    let flags = if p == procs::DOMAIN_GET_BLOCK_INFO {
        from_bytes::<DomainGetBlockInfoArgs>(payload).map(|a| a.flags)
    } else {
        from_bytes::<DomainFlagsArgs>(payload).map(|a| a.flags)
    };
    flags.map_or(0, |f| f & !known)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vireo_proto::remote::Domain;
    use vireo_xdr::to_bytes;

    #[test]
    fn unknown_flags_are_found() {
        let a = DomainFlagsArgs {
            dom: Domain {
                name: "a".into(),
                uuid: [0; 16],
                id: -1,
            },
            flags: 0x104,
        };
        let bytes = to_bytes(&a);
        assert_eq!(unknown(procs::DOMAIN_DESTROY_FLAGS, &bytes), 0x104);
        assert_eq!(unknown(procs::DOMAIN_GET_XML_DESC, &bytes), 0x100);
        assert_eq!(unknown(procs::DOMAIN_SUSPEND, &bytes), 0);
        assert_eq!(unknown(procs::DOMAIN_DESTROY_FLAGS, &[1, 2]), 0);
    }
}
