//! Every target over its seed corpus and over every input kept in `regressions/<target>/`
//! (each one a crash the fuzzer found, fixed since): none may panic or exceed its memory
//! budget. Also checks that the procedure table covers every argument type the
//! dispatchers decode.

use std::collections::BTreeSet;
use std::path::Path;

use vireo_fuzz::{calls, seeds, TARGETS};

#[test]
fn every_target_passes_its_seeds() {
    for t in TARGETS {
        let seeds = seeds::seeds(t.name);
        assert!(seeds.len() >= 3, "{}: only {} seeds", t.name, seeds.len());
        for s in &seeds {
            vireo_fuzz::run(t.name, s);
        }
    }
}

#[test]
fn every_regression_input_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut n = 0;
    for t in TARGETS {
        let Ok(rd) = std::fs::read_dir(dir.join(t.name)) else {
            continue;
        };
        for e in rd.flatten() {
            let data = std::fs::read(e.path()).unwrap();
            eprintln!("{}: {}", t.name, e.path().display());
            vireo_fuzz::run(t.name, &data);
            n += 1;
        }
    }
    eprintln!("{n} regression inputs");
}

#[test]
fn every_call_seed_decodes_and_procedures_are_unique() {
    let mut seen = BTreeSet::new();
    for c in calls::CALLS {
        assert!(
            seen.insert((c.prog, c.proc_)),
            "{} {} twice",
            c.prog,
            c.proc_
        );
        let input = calls::input(c.prog, c.proc_, &(c.seed)()).unwrap();
        vireo_fuzz::run("rpc_call", &input);
    }
    assert!(calls::CALLS.len() > 250, "{}", calls::CALLS.len());
}

/// Names `XxxArgs` used in the non-test part of a Rust source.
fn args_types(src: &str, out: &mut BTreeSet<String>) {
    let code = src.split("#[cfg(test)]").next().unwrap_or("");
    for w in code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if w.ends_with("Args") && w.starts_with(|c: char| c.is_ascii_uppercase()) {
            out.insert(w.to_string());
        }
    }
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn table_covers_every_decoded_type() {
    let root = seeds::repo();
    // The argument types proto declares.
    let mut declared = BTreeSet::new();
    let mut files = Vec::new();
    sources(&root.join("crates/proto/src"), &mut files);
    for f in &files {
        args_types(&std::fs::read_to_string(f).unwrap(), &mut declared);
    }
    // Those the daemons, the QEMU driver and the shims use.
    let mut used = BTreeSet::new();
    let mut files = Vec::new();
    for c in ["daemon", "qemu", "shim"] {
        sources(&root.join("crates").join(c).join("src"), &mut files);
    }
    for f in &files {
        args_types(&std::fs::read_to_string(f).unwrap(), &mut used);
    }
    let in_table: BTreeSet<String> = calls::CALLS
        .iter()
        .map(|c| c.ty.rsplit("::").next().unwrap().trim().to_string())
        .collect();
    let missing: Vec<_> = used
        .intersection(&declared)
        .filter(|t| !in_table.contains(*t))
        .collect();
    assert!(
        missing.is_empty(),
        "argument types the dispatchers use but crates/fuzz/src/calls.rs does not: {missing:?}"
    );
}
