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

/// The host-model CPU domcapabilities offers for `virttype`: (model, features).
fn offered_host_model(d: &Daemon, virttype: &str) -> (String, Vec<String>) {
    let caps = ok(&d.virsh(&["domcapabilities", "--virttype", virttype]));
    let mode = caps
        .split("<mode name='host-model' supported='yes'>")
        .nth(1)
        .and_then(|r| r.split("</mode>").next())
        .unwrap_or_else(|| panic!("no host-model CPU: {caps}"));
    let model = mode
        .split("<model fallback='forbid'>")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap_or_else(|| panic!("no model: {mode}"))
        .to_string();
    let features = mode
        .split("<feature policy='require' name='")
        .skip(1)
        .filter_map(|r| r.split('\'').next())
        .map(str::to_string)
        .collect();
    (model, features)
}

/// The `-cpu` argument of the QEMU running domain `name`.
fn qemu_cpu_arg(d: &Daemon, name: &str) -> String {
    let pid = vireo_tests::qemu_pid_under(&d.root, name).expect("QEMU runs");
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<String> = cmd
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let i = args.iter().position(|a| a == "-cpu").expect("-cpu");
    args[i + 1].clone()
}

/// A host-model CPU starts as libvirt starts it: the running definition names the model and
/// features domcapabilities offers for the domain's accelerator, with the domain's own
/// features on top, and QEMU runs exactly that; the inactive definition keeps host-model.
/// The TCG guest boots with it; a KVM domain (only started, paused, and destroyed) gets
/// KVM's host-model.
#[test]
fn host_model_is_expanded_at_start() {
    let d = Daemon::start();
    let (model, extra) = offered_host_model(&d, "qemu");
    // The guest turns one of the host's features off (or a model's when there are none).
    let off = extra.first().cloned().unwrap_or_else(|| "pse36".into());
    let cpu = format!("<cpu mode='host-model'><feature policy='disable' name='{off}'/></cpu>");
    let xml = vireo_tests::guest_xml("hm").replace("</os>", &format!("</os>{cpu}"));
    ok(&d.virsh(&["define", &write_file(&d, "hm.xml", &xml)]));
    ok(&d.virsh(&["start", "--paused", "hm"]));

    let live = ok(&d.virsh(&["dumpxml", "hm"]));
    assert!(
        live.contains("<cpu mode='custom' match='exact' check='partial'>"),
        "{live}"
    );
    assert!(
        live.contains(&format!("<model fallback='forbid'>{model}</model>")),
        "{live}"
    );
    for f in &extra {
        let policy = if *f == off { "disable" } else { "require" };
        assert!(
            live.contains(&format!("<feature policy='{policy}' name='{f}'/>")),
            "{f}: {live}"
        );
    }
    let inactive = ok(&d.virsh(&["dumpxml", "--inactive", "hm"]));
    assert!(inactive.contains("<cpu mode='host-model'"), "{inactive}");
    assert!(!inactive.contains("<model"), "{inactive}");
    let arg = qemu_cpu_arg(&d, "hm");
    assert!(
        arg.starts_with(&format!("{model},")) || arg == model,
        "{arg}"
    );
    assert!(arg.contains(&format!("{off}=off")), "{arg}");
    for f in extra.iter().filter(|f| **f != off) {
        assert!(arg.contains(&format!(",{f}=on")), "{f}: {arg}");
    }
    let console = vireo_tests::tests_dir().join("python/console.py");
    let seen = ok(&vireo_tests::run_cmd(
        vireo_tests::python3(),
        &[console.to_str().unwrap(), &d.uri(), "hm", "--resume"],
    ));
    assert!(seen.contains("VIREO-GUEST-READY"), "{seen}");
    ok(&d.virsh(&["destroy", "hm"]));

    // Under KVM, KVM's host-model (nested KVM runs no guest code: started paused only).
    // The nested KVM of this project's machines offers IA32_ARCH_CAPABILITIES but refuses
    // QEMU's write of it (even `-cpu host` fails so): the domain turns it off, as a user of
    // such a host does.
    if std::path::Path::new("/dev/kvm").exists() {
        let (kvm_model, _) = offered_host_model(&d, "kvm");
        let xml = vireo_tests::guest_xml("hmk")
            .replace("<domain type='qemu'>", "<domain type='kvm'>")
            .replace(
                "</os>",
                "</os><cpu mode='host-model'>\
                 <feature policy='disable' name='arch-capabilities'/></cpu>",
            );
        ok(&d.virsh(&["define", &write_file(&d, "hmk.xml", &xml)]));
        ok(&d.virsh(&["start", "--paused", "hmk"]));
        let live = ok(&d.virsh(&["dumpxml", "hmk"]));
        ok(&d.virsh(&["destroy", "hmk"]));
        assert!(
            live.contains(&format!("<model fallback='forbid'>{kvm_model}</model>")),
            "{live}"
        );
    }
}
