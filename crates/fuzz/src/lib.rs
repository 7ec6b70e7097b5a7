//! Fuzz targets for everything Vireo decodes from a peer or a user: the XDR arguments of
//! every procedure the daemons serve ([`calls`]), the frame splitter and headers of the RPC
//! transport, the domain, network, storage, secret, nwfilter, node device and interface
//! XML parsers, and the `.conf` parser ([`targets`]).
//!
//! Each target is a plain function of the input bytes, run under [`alloc`]'s accounting:
//! it must not panic, must not allocate more than a small multiple of its input (a length
//! field never buys memory), and must end quickly (libFuzzer's `-timeout`). The binaries
//! in `fuzz_targets/` hand them to libFuzzer (feature `libfuzzer`, built by
//! `scripts/fuzz` with the coverage instrumentation of the stable compiler); without that
//! feature the crate's tests replay the seed corpus ([`seeds`]) and every input kept in
//! `regressions/` through the same functions.

pub mod alloc;
pub mod calls;
pub mod seeds;
pub mod targets;

/// One fuzz target.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
    /// The most bytes the target may hold at once beyond what it held before, for an
    /// input of this many bytes.
    pub budget: fn(usize) -> usize,
}

fn small(len: usize) -> usize {
    64 * len + (256 << 10)
}

fn xml(len: usize) -> usize {
    1024 * len + (4 << 20)
}

/// Every target, by the name of its binary.
pub const TARGETS: &[Target] = &[
    Target {
        name: "rpc_call",
        run: targets::rpc_call,
        budget: small,
    },
    Target {
        name: "rpc_frame",
        run: targets::rpc_frame,
        budget: small,
    },
    Target {
        name: "xml_domain",
        run: targets::xml_domain,
        budget: xml,
    },
    Target {
        name: "xml_network",
        run: targets::xml_network,
        budget: xml,
    },
    Target {
        name: "xml_storage",
        run: targets::xml_storage,
        budget: xml,
    },
    Target {
        name: "xml_secret",
        run: targets::xml_secret,
        budget: xml,
    },
    Target {
        name: "xml_nwfilter",
        run: targets::xml_nwfilter,
        budget: xml,
    },
    Target {
        name: "xml_nodedev",
        run: targets::xml_nodedev,
        budget: xml,
    },
    Target {
        name: "xml_interface",
        run: targets::xml_interface,
        budget: xml,
    },
    Target {
        name: "conf",
        run: targets::conf,
        budget: small,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> &'static Target {
    TARGETS
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no fuzz target {name}"))
}

/// Runs one input through target `name`, failing (panicking, which libFuzzer reports as a
/// crash) when it takes more memory than its budget.
pub fn run(name: &str, data: &[u8]) {
    let t = target(name);
    let ((), peak) = alloc::measure(|| (t.run)(data));
    let budget = (t.budget)(data.len());
    assert!(
        peak <= budget,
        "{name}: {peak} bytes held for an input of {} bytes (budget {budget})",
        data.len()
    );
}

/// libFuzzer's initialisation hook: with `VIREO_FUZZ_SEED_DIR` set, writes the target's
/// seed corpus there (and its dictionary in the file `VIREO_FUZZ_DICT`, when set) and
/// exits instead of fuzzing (`scripts/fuzz` does this first).
pub fn init(name: &str) {
    let Some(dir) = std::env::var_os("VIREO_FUZZ_SEED_DIR") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    if let Some(dict) = std::env::var_os("VIREO_FUZZ_DICT") {
        let words = seeds::dictionary(name);
        if let Err(e) = std::fs::write(&dict, words.join("\n") + "\n") {
            eprintln!("{name}: cannot write {}: {e}", dict.to_string_lossy());
            std::process::exit(1);
        }
    }
    match seeds::write(name, &dir) {
        Ok(n) => {
            eprintln!("{name}: {n} seeds in {}", dir.display());
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("{name}: cannot write seeds in {}: {e}", dir.display());
            std::process::exit(1);
        }
    }
}
