//! Secrets (`vireo-secretd`, or `vireod`) with the real virsh and python3-libvirt, in
//! every layout: definitions and values survive a kill -9, values are encrypted at rest,
//! private values never reach a client, bad input changes nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use vireo_tests::{fails, ok, same_as_virsh, validate, Daemon, Layout};

const UUID: &str = "6f3b0b9c-2d55-4c1e-9a57-0b3f2c1d4e5a";
const VALUE: &[u8] = b"correct horse battery staple";

fn write(d: &Daemon, name: &str, data: &[u8]) -> PathBuf {
    let p = d.root.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

fn secrets_with_virsh(layout: Layout) {
    let d = Daemon::start_in(layout);
    let xml = write(
        &d,
        "s.xml",
        format!(
            "<secret ephemeral='no' private='no'><uuid>{UUID}</uuid><description>disk</description>\
             <usage type='volume'><volume>/images/d.qcow2</volume></usage></secret>"
        )
        .as_bytes(),
    );
    let out = ok(&d.virsh(&["secret-define", xml.to_str().unwrap()]));
    assert_eq!(out.trim(), format!("Secret {UUID} created"));
    let list = ok(&d.virsh(&["secret-list"]));
    assert!(
        list.contains(&format!(" {UUID}   volume /images/d.qcow2")),
        "{list}"
    );
    let dump = ok(&d.virsh(&["secret-dumpxml", UUID]));
    assert!(
        dump.starts_with("<secret ephemeral='no' private='no'>"),
        "{dump}"
    );
    assert!(dump.contains("<volume>/images/d.qcow2</volume>"), "{dump}");
    validate(&dump, "secret", &d.root);

    let value = write(&d, "value", VALUE);
    let out = ok(&d.virsh(&[
        "secret-set-value",
        UUID,
        "--file",
        value.to_str().unwrap(),
        "--plain",
    ]));
    assert!(out.contains("Secret value set"), "{out}");
    let got = ok(&d.virsh(&["secret-get-value", UUID, "--plain"]));
    assert_eq!(got.trim_end_matches('\n').as_bytes(), VALUE);

    // At rest: the value is nowhere in the clear, the key is root's alone.
    let on_disk = std::fs::read(d.config_dir().join(format!("secrets/{UUID}.value"))).unwrap();
    assert!(!on_disk.windows(VALUE.len()).any(|w| w == VALUE));
    let key = d.root.join("var/lib/vireo/secrets/secrets-encryption-key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        !d.log().contains("correct horse"),
        "the value reached the log"
    );

    // Filters.
    let eph = ok(&d.virsh(&["secret-list", "--ephemeral"]));
    assert!(!eph.contains(UUID), "{eph}");
    let no_eph = ok(&d.virsh(&["secret-list", "--no-ephemeral", "--no-private"]));
    assert!(no_eph.contains(UUID), "{no_eph}");

    // A private secret's value is refused to every client.
    let private = write(
        &d,
        "p.xml",
        b"<secret private='yes'><usage type='ceph'><name>client.admin</name></usage></secret>",
    );
    let out = ok(&d.virsh(&["secret-define", private.to_str().unwrap()]));
    let puuid = out.split_whitespace().nth(1).unwrap().to_string();
    ok(&d.virsh(&[
        "secret-set-value",
        &puuid,
        "--file",
        value.to_str().unwrap(),
        "--plain",
    ]));
    let err = fails(&d.virsh(&["secret-get-value", &puuid]));
    assert!(err.contains("Invalid secret: secret is private"), "{err}");

    // Bad input: a clear error, nothing defined, the daemon keeps serving.
    for (name, bad) in [
        ("bad1.xml", "<secret><usage type='volume'/></secret>"),
        ("bad2.xml", "<secret><uuid>not-a-uuid</uuid></secret>"),
        ("bad3.xml", "<secret ephemeral='sometimes'/>"),
        ("bad4.xml", "<secret"),
    ] {
        let p = write(&d, name, bad.as_bytes());
        let err = fails(&d.virsh(&["secret-define", p.to_str().unwrap()]));
        assert!(err.contains("XML error"), "{bad}: {err}");
    }
    let err = fails(&d.virsh(&["secret-get-value", "00000000-0000-0000-0000-000000000000"]));
    assert!(err.contains("Secret not found"), "{err}");
    let list = ok(&d.virsh(&["secret-list"]));
    assert_eq!(
        list.lines().filter(|l| l.contains("-4")).count(),
        2,
        "{list}"
    );

    ok(&d.virsh(&["secret-undefine", &puuid]));
    let out = ok(&d.virsh(&["secret-undefine", UUID]));
    assert!(out.contains(&format!("Secret {UUID} deleted")), "{out}");
    assert!(!d
        .config_dir()
        .join(format!("secrets/{UUID}.value"))
        .exists());
    let list = ok(&d.virsh(&["secret-list"]));
    assert!(!list.contains(UUID), "{list}");
}

fn secrets_with_python(layout: Layout) {
    let d = Daemon::start_in(layout);
    let out = ok(&d.python("secrets.py", &[]));
    assert!(out.contains("secrets ok"), "{out}");
}

/// An acknowledged definition and value survive the daemon's kill -9; an ephemeral secret
/// does not (it lived in memory only).
fn secrets_survive_kill_9(layout: Layout) {
    let mut d = Daemon::start_in(layout);
    let xml = write(
        &d,
        "s.xml",
        format!("<secret><uuid>{UUID}</uuid><usage type='iscsi'><target>iqn.x</target></usage></secret>")
            .as_bytes(),
    );
    ok(&d.virsh(&["secret-define", xml.to_str().unwrap()]));
    let value = write(&d, "value", VALUE);
    ok(&d.virsh(&[
        "secret-set-value",
        UUID,
        "--file",
        value.to_str().unwrap(),
        "--plain",
    ]));
    let eph = write(&d, "e.xml", b"<secret ephemeral='yes'/>");
    ok(&d.virsh(&["secret-define", eph.to_str().unwrap()]));
    d.kill9();
    d.restart();
    let list = ok(&d.virsh(&["secret-list"]));
    assert!(list.contains(&format!(" {UUID}   iscsi iqn.x")), "{list}");
    assert_eq!(
        list.lines().filter(|l| l.contains("-4")).count(),
        1,
        "{list}"
    );
    let got = ok(&d.virsh(&["secret-get-value", UUID, "--plain"]));
    assert_eq!(got.trim_end_matches('\n').as_bytes(), VALUE);
}

/// Our `vireo` command: the same output as virsh for every secret command.
fn secrets_with_vireo_cli(layout: Layout) {
    let d = Daemon::start_in(layout);
    let xml = write(
        &d,
        "s.xml",
        format!("<secret><uuid>{UUID}</uuid><usage type='tls'><name>web</name></usage></secret>")
            .as_bytes(),
    );
    let out = ok(&d.vireo(&["secret-define", xml.to_str().unwrap()]));
    assert_eq!(out, format!("Secret {UUID} created\n\n"));
    let unused = write(&d, "u.xml", b"<secret ephemeral='yes'/>");
    ok(&d.virsh(&["secret-define", unused.to_str().unwrap()]));
    let raw = write(&d, "raw", VALUE);
    let b64 = write(&d, "b64", b"Y29ycmVjdCBob3JzZQ==\n");
    assert_eq!(
        ok(&d.vireo(&["secret-set-value", UUID, "--file", b64.to_str().unwrap()])),
        "Secret value set\n\n"
    );
    assert_eq!(
        ok(&d.vireo(&["secret-get-value", "--plain", UUID])),
        "correct horse\n"
    );
    ok(&d.vireo(&[
        "secret-set-value",
        "--secret",
        UUID,
        "--file",
        raw.to_str().unwrap(),
        "--plain",
    ]));
    for cmd in [
        &["secret-list"][..],
        &["secret-list", "--ephemeral"],
        &["secret-list", "--no-ephemeral", "--no-private"],
        &["secret-dumpxml", UUID],
        &["secret-get-value", UUID],
        &["secret-get-value", UUID, "--plain"],
    ] {
        assert_eq!(
            ok(&d.vireo(cmd)),
            ok(&d.virsh(cmd)),
            "output of {cmd:?} differs"
        );
    }
    // secret-set-value's refusals, as virsh words them (each with its blank line).
    let missing = d.root.join("missing");
    let missing = missing.to_str().unwrap();
    for cmd in [
        &["secret-set-value", UUID][..],
        &["secret-set-value", UUID, "--file", missing],
        &["secret-set-value", UUID, "--file", missing, "--plain"],
        &["secret-set-value", UUID, "--base64", "x", "--file", missing],
        &["secret-set-value", UUID, "--base64", "Y29y", "--plain"],
        &["secret-set-value", UUID, "--interactive"],
        &["secret-set-value", UUID, "--interactive", "--plain"],
        &[
            "secret-set-value",
            UUID,
            "--interactive",
            "--base64",
            "Y29y",
        ],
        &["secret-set-value", UUID, "--interactive", "--file", missing],
        &[
            "secret-set-value",
            "00000000-0000-0000-0000-000000000000",
            "--base64",
            "Y29y",
        ],
        &["secret-set-value", "--file", missing],
        &["secret-get-value", "00000000-0000-0000-0000-000000000000"],
    ] {
        same_as_virsh(&d, cmd);
    }
    // --interactive reads a line (from standard input when there is no terminal, as
    // getpass(3) does): each sets the value the other then reads.
    let typed = |prog: &std::path::Path, line: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new("setsid")
            .arg("-w")
            .arg(prog)
            .args(["-c", &d.uri(), "secret-set-value", UUID, "--interactive"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    };
    let vireo = vireo_tests::bin("vireo");
    let virsh = std::path::Path::new("virsh");
    let ours = typed(&vireo, "typed by vireo\n");
    assert_eq!(
        ok(&d.virsh(&["secret-get-value", UUID, "--plain"])),
        "typed by vireo\n"
    );
    let theirs = typed(virsh, "typed by virsh\n");
    assert_eq!(
        ok(&d.vireo(&["secret-get-value", UUID, "--plain"])),
        "typed by virsh\n"
    );
    assert_eq!(
        vireo_tests::output_parts(&ours),
        vireo_tests::output_parts(&theirs)
    );
    assert_eq!(ok(&ours), "Enter new value for secret:Secret value set\n\n");
    let err = fails(&d.vireo(&["secret-dumpxml", "00000000-0000-0000-0000-000000000000"]));
    assert!(err.contains("error: failed to get secret"), "{err}");
    assert!(err.contains("Secret not found"), "{err}");
    let bad = write(&d, "bad.xml", b"<secret><usage type='volume'/></secret>");
    let err = fails(&d.vireo(&["secret-define", bad.to_str().unwrap()]));
    assert!(err.contains("Failed to set attributes from"), "{err}");
    assert_eq!(
        ok(&d.vireo(&["secret-undefine", UUID])),
        format!("Secret {UUID} deleted\n\n")
    );
    assert_eq!(
        ok(&d.vireo(&["secret-list", "--no-ephemeral"])),
        ok(&d.virsh(&["secret-list", "--no-ephemeral"]))
    );
}

vireo_tests::in_every_layout!(
    secrets_with_virsh,
    secrets_with_python,
    secrets_survive_kill_9,
    secrets_with_vireo_cli,
);
