//! Definitions survive a crash of the daemon, and a crash in the middle of a define leaves
//! the old or the new definition, never a broken one.

use rustix::process::Signal;
use vireo_tests::{data, ok, Daemon, Layout};

fn definitions_survive_kill_9(layout: Layout) {
    let mut d = Daemon::start_in(layout);
    ok(&d.virsh(&["define", data("minimal.xml").to_str().unwrap()]));
    ok(&d.virsh(&["define", data("full.xml").to_str().unwrap()]));
    ok(&d.virsh(&["autostart", "vec1"]));
    let before = ok(&d.virsh(&["dumpxml", "full"]));
    d.kill9();
    d.restart();
    let mut names: Vec<String> = ok(&d.virsh(&["list", "--all", "--name"]))
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    names.sort();
    assert_eq!(names, ["full", "vec1"]);
    assert_eq!(ok(&d.virsh(&["dumpxml", "full"])), before);
    // vec1 is marked autostart, so the new daemon started it.
    let info = ok(&d.virsh(&["dominfo", "vec1"]));
    assert!(info.contains("Autostart:      enable"), "{info}");
    assert!(info.contains("State:          running"), "{info}");
    ok(&d.virsh(&["destroy", "vec1"]));
    // no temp files left behind, every stored file is a whole definition
    for e in std::fs::read_dir(d.config_dir().join("qemu")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with('.'), "leftover {name}");
        if name.ends_with(".xml") {
            let text = std::fs::read_to_string(e.path()).unwrap();
            assert!(
                text.trim_end().ends_with("</domain>"),
                "{name} is cut short"
            );
        }
    }
    ok(&d.virsh(&["undefine", "vec1"]));
    d.kill9();
    d.restart();
    assert_eq!(ok(&d.virsh(&["list", "--all", "--name"])), "full\n\n");
}

/// Redefines one domain over and over, alternating two versions, while the daemon is
/// killed at arbitrary moments. After every restart the domain is one of the two versions.
#[test]
fn crash_during_define_leaves_old_or_new() {
    let mut d = Daemon::start();
    let a = std::fs::read_to_string(data("minimal.xml")).unwrap();
    let b = a.replace("<vcpu>1</vcpu>", "<vcpu>2</vcpu>");
    let fa = d.root.join("a.xml");
    let fb = d.root.join("b.xml");
    std::fs::write(&fa, &a).unwrap();
    std::fs::write(&fb, &b).unwrap();
    ok(&d.virsh(&["define", fa.to_str().unwrap()]));
    let script = vireo_tests::tests_dir().join("python/redefine_loop.py");
    for round in 0..8 {
        let mut child = std::process::Command::new(vireo_tests::python3())
            .arg(&script)
            .arg(d.uri())
            .arg(&fa)
            .arg(&fb)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the loop has done some redefinitions (it prints a line per define).
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        for _ in 0..(5 + round * 7) {
            if lines.next().is_none() {
                break;
            }
        }
        d.kill9();
        let _ = child.kill();
        let _ = child.wait();
        let dir = d.config_dir().join("qemu");
        let stored = std::fs::read_to_string(dir.join("vec1.xml")).unwrap();
        assert!(
            stored.contains("<vcpu placement='static'>1</vcpu>")
                || stored.contains("<vcpu placement='static'>2</vcpu>"),
            "round {round}: stored definition is neither version:\n{stored}"
        );
        assert!(stored.trim_end().ends_with("</domain>"));
        d.restart();
        let info = ok(&d.virsh(&["dominfo", "vec1"]));
        assert!(
            info.contains("CPU(s):         1") || info.contains("CPU(s):         2"),
            "{info}"
        );
        // leftover temp files were cleaned at start
        for e in std::fs::read_dir(&dir).unwrap() {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!n.contains(".tmp"), "leftover temp file {n}");
        }
    }
}

vireo_tests::in_every_layout!(definitions_survive_kill_9,);

/// Definitions acknowledged just before a crash are back after the restart, even when
/// their files never reached the disk (they were in the journal only): the daemon is frozen
/// the moment the last define is answered and killed, and the test then removes every file
/// its writer may have made in between (a power cut can lose unsynced files).
#[test]
fn defines_just_before_kill_9_are_replayed() {
    let mut d = Daemon::start();
    let uri = d.uri();
    let pids = d.pids();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let names: Vec<String> = (0..40).map(|i| format!("burst{i:02}")).collect();
    rt.block_on(async {
        let c = vireo_client::Connect::open(&uri, false).await.unwrap();
        for n in &names {
            let xml = format!(
                "<domain type='qemu'><name>{n}</name><memory unit='MiB'>64</memory>\
                 <os><type>hvm</type></os></domain>"
            );
            c.define_xml(&xml).await.unwrap();
        }
        for p in &pids {
            vireo_tests::signal(*p, Signal::STOP);
        }
    });
    d.kill9();
    // Files are written behind the journal, unsynced: a power cut may take any of them.
    // Take them all; every definition must come back from the journal alone.
    for n in &names {
        let _ = std::fs::remove_file(d.config_dir().join(format!("qemu/{n}.xml")));
    }
    d.restart();
    let listed = ok(&d.virsh(&["list", "--all", "--name"]));
    let mut got: Vec<&str> = listed.lines().filter(|l| !l.is_empty()).collect();
    got.sort();
    assert_eq!(got, names);
    for n in &names {
        let f = d.config_dir().join(format!("qemu/{n}.xml"));
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        assert!(text.contains(&format!("<name>{n}</name>")), "{n}: {text}");
    }
}
