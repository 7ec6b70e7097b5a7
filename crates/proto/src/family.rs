//! Which driver owns a REMOTE procedure: the split into one daemon per driver routes by
//! this. The numbers are libvirt's; everything not listed belongs to the hypervisor driver
//! (domains, plus the connection- and node-level calls every daemon answers).

/// An API family, served by one daemon in the modular setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Hypervisor,
    Network,
    NwFilter,
    Storage,
    Secret,
    NodeDev,
    Interface,
}

impl Family {
    pub const ALL: [Family; 7] = [
        Family::Hypervisor,
        Family::Network,
        Family::NwFilter,
        Family::Storage,
        Family::Secret,
        Family::NodeDev,
        Family::Interface,
    ];

    /// The daemon that serves this family.
    pub fn daemon(self) -> &'static str {
        match self {
            Family::Hypervisor => "vireo-qemud",
            Family::Network => "vireo-networkd",
            Family::NwFilter => "vireo-nwfilterd",
            Family::Storage => "vireo-storaged",
            Family::Secret => "vireo-secretd",
            Family::NodeDev => "vireo-nodedevd",
            Family::Interface => "vireo-interfaced",
        }
    }

    /// The URI scheme (driver name) a client uses for this family.
    pub fn scheme(self) -> &'static str {
        match self {
            Family::Hypervisor => "qemu",
            Family::Network => "network",
            Family::NwFilter => "nwfilter",
            Family::Storage => "storage",
            Family::Secret => "secret",
            Family::NodeDev => "nodedev",
            Family::Interface => "interface",
        }
    }

    pub fn from_scheme(s: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.scheme() == s)
    }

    /// libvirt's public API prefix, for "not supported" messages.
    pub fn api(self) -> &'static str {
        match self {
            Family::Hypervisor => "domain",
            Family::Network => "network",
            Family::NwFilter => "nwfilter",
            Family::Storage => "storage",
            Family::Secret => "secret",
            Family::NodeDev => "node device",
            Family::Interface => "interface",
        }
    }
}

const NETWORK: &[i32] = &[
    36, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 52, 152, 153, 283, 291, 313, 314, 315,
    341, 404, 405, 406, 407, 408, 409, 410, 432, 437, 444, 445, 446,
];
// Not 65, 256, 257 or 353: the interface statistics, parameters and addresses of a
// domain are the hypervisor driver's.
const INTERFACE: &[i32] = &[
    126, 127, 128, 129, 130, 131, 132, 133, 134, 137, 138, 156, 220, 221, 222, 284,
];
const STORAGE: &[i32] = &[
    71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94,
    95, 96, 97, 98, 99, 100, 125, 154, 155, 165, 208, 209, 259, 260, 281, 282, 368, 369, 370, 373,
    378, 391, 403,
];
const NODEDEV: &[i32] = &[
    111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 123, 124, 285, 297, 301, 374, 375, 376, 377,
    428, 429, 430, 433, 434, 435, 436,
];
const SECRET: &[i32] = &[
    139, 140, 141, 142, 143, 144, 145, 146, 147, 287, 380, 381, 382, 383,
];
const NWFILTER: &[i32] = &[
    175, 176, 177, 178, 179, 180, 181, 286, 397, 398, 399, 400, 401, 431,
];

/// The family that owns procedure `p` of the REMOTE program.
pub fn family_of(p: i32) -> Family {
    for (list, fam) in [
        (NETWORK, Family::Network),
        (INTERFACE, Family::Interface),
        (STORAGE, Family::Storage),
        (NODEDEV, Family::NodeDev),
        (SECRET, Family::Secret),
        (NWFILTER, Family::NwFilter),
    ] {
        if list.binary_search(&p).is_ok() {
            return fam;
        }
    }
    Family::Hypervisor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_disjoint() {
        let all = [NETWORK, INTERFACE, STORAGE, NODEDEV, SECRET, NWFILTER];
        let mut seen = std::collections::HashSet::new();
        for l in all {
            assert!(l.windows(2).all(|w| w[0] < w[1]));
            for p in l {
                assert!(seen.insert(*p), "{p} twice");
            }
        }
        assert_eq!(family_of(283), Family::Network);
        assert_eq!(family_of(281), Family::Storage);
        assert_eq!(family_of(273), Family::Hypervisor);
        // A domain's interface statistics, parameters and addresses.
        for p in [65, 256, 257, 353] {
            assert_eq!(family_of(p), Family::Hypervisor, "{p}");
        }
        assert_eq!(family_of(1), Family::Hypervisor);
        assert_eq!(Family::from_scheme("nodedev"), Some(Family::NodeDev));
    }

    #[test]
    fn network_and_nwfilter_procedures_are_named_and_routed() {
        use crate::remote::proc_name;
        for &p in NETWORK.iter().chain(NWFILTER) {
            assert!(proc_name(p).is_some(), "{p} has no name");
        }
        for p in 1..1000 {
            let Some(name) = proc_name(p) else { continue };
            if name.contains("NWFILTER") {
                assert_eq!(family_of(p), Family::NwFilter, "{name}");
            } else if name.contains("NETWORK") {
                assert_eq!(family_of(p), Family::Network, "{name}");
            }
        }
    }
}
