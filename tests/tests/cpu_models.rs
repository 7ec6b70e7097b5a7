//! CPU models with virsh: domcapabilities' host-model CPU (the richest QEMU model within
//! what the host gives a guest, and the features beyond it), and cpu-compare /
//! hypervisor-cpu-compare / cpu-baseline / hypervisor-cpu-baseline worked out from QEMU's
//! own model definitions.

use vireo_tests::{fails, ok, write_file, Daemon};

/// The host-model CPU of domcapabilities as a `<cpu>` definition: (its XML, the model).
fn host_model_cpu(d: &Daemon) -> (String, String) {
    let caps = ok(&d.virsh(&["domcapabilities"]));
    let mode = caps
        .split("<mode name='host-model' supported='yes'>")
        .nth(1)
        .and_then(|r| r.split("</mode>").next())
        .unwrap_or_else(|| panic!("no host-model CPU: {caps}"))
        .to_string();
    let model = mode
        .split("<model fallback='forbid'>")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap_or_default()
        .to_string();
    assert!(!model.is_empty(), "{mode}");
    (
        format!("<cpu mode='custom' match='exact'>{mode}</cpu>"),
        model,
    )
}

#[test]
fn cpu_compare_and_baseline() {
    let d = Daemon::start();
    let (cpu, model) = host_model_cpu(&d);
    // The model is one QEMU has.
    assert!(ok(&d.virsh(&["cpu-models", "x86_64"]))
        .lines()
        .any(|l| l.trim() == model));
    let f = write_file(&d, "cpu.xml", &cpu);
    let out = ok(&d.virsh(&["cpu-compare", &f]));
    assert!(out.contains("is identical to host CPU"), "{out}");
    let out = ok(&d.virsh(&["hypervisor-cpu-compare", &f]));
    assert!(
        out.contains("is identical to the CPU provided by hypervisor"),
        "{out}"
    );

    // The bare model: the host has more.
    let bare = write_file(
        &d,
        "bare.xml",
        &format!("<cpu mode='custom' match='exact'><model>{model}</model></cpu>"),
    );
    let out = ok(&d.virsh(&["cpu-compare", &bare]));
    assert!(out.contains("superset"), "{out}");

    // A feature no host has: incompatible, and with --error the reason.
    let bad = write_file(
        &d,
        "bad.xml",
        &cpu.replace(
            "</cpu>",
            "<feature policy='require' name='vireo-no-such-feature'/></cpu>",
        ),
    );
    // (virsh exits 1 for an incompatible CPU.)
    let (out, _, _) = vireo_tests::output_parts(&d.virsh(&["cpu-compare", &bad]));
    assert!(out.contains("incompatible"), "{out}");
    let e = fails(&d.virsh(&["cpu-compare", "--error", &bad]));
    assert!(
        e.contains("does not provide required features: vireo-no-such-feature"),
        "{e}"
    );
    let e = fails(&d.virsh(&[
        "cpu-compare",
        &write_file(
            &d,
            "unknown.xml",
            "<cpu mode='custom'><model>NoSuchModel</model></cpu>",
        ),
    ]));
    assert!(e.contains("NoSuchModel"), "{e}");

    // The baseline of the host's CPU is the host-model CPU again; with --features the
    // model's own features are listed too.
    let out = ok(&d.virsh(&["cpu-baseline", &f]));
    assert!(
        out.contains(&format!("<model fallback='forbid'>{model}</model>")),
        "{out}"
    );
    let full = ok(&d.virsh(&["hypervisor-cpu-baseline", "--features", &f]));
    assert!(full.contains(&format!(">{model}<")), "{full}");
    let count = |s: &str| s.matches("<feature ").count();
    assert!(count(&full) >= count(&out), "{full}\n{out}");
    // Two CPUs: what they share. The bare model and the host's: the bare model.
    let both = write_file(
        &d,
        "both.xml",
        &format!("{cpu}\n{}", std::fs::read_to_string(&bare).expect("bare")),
    );
    let out = ok(&d.virsh(&["cpu-baseline", &both]));
    assert!(out.contains(&format!(">{model}<")), "{out}");
    assert_eq!(count(&out), 0, "{out}");
}
