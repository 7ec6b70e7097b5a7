//! Our own `vireo` command's snapshot and block job commands against a TCG guest with a
//! qcow2 disk (one boot): snapshots made, listed (table, tree, parents, names), shown,
//! reverted and deleted with vireo print what virsh prints for the same calls; an active
//! commit and a copy, each pivoted, a pull, and a throttled copy watched with
//! `blockjob --info` and aborted, with virsh's messages; and the refusals, word for word.

use vireo_tests::{
    done_then_refused, guest_shell, ok, output_parts, run_cmd, same_as_virsh, write_file, Daemon,
};

fn define_with_disk(d: &Daemon) -> String {
    vireo_tests::define_with_disk(d, "vm1.qcow2", "qcow2")
}

/// The image vda is on.
fn source(d: &Daemon) -> String {
    let out = ok(&d.virsh(&["domblklist", "vm1"]));
    out.lines()
        .find_map(|l| l.trim().strip_prefix("vda"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Each of `calls` prints the same with vireo as with virsh, and ends alike.
#[track_caller]
fn all_same(d: &Daemon, calls: &[&[&str]]) {
    for args in calls {
        same_as_virsh(d, args);
    }
}

#[test]
fn vireo_snapshots_and_block_jobs() {
    let d = Daemon::start();
    let img = define_with_disk(&d);
    let root = d.root.to_str().expect("utf-8").to_string();

    // Of the shut-off domain, then of the running guest (memory and disk).
    done_then_refused(
        &d,
        &[
            "snapshot-create-as",
            "vm1",
            "off1",
            "--description",
            "before <boot>",
        ],
        "Domain snapshot off1 created\n",
    );
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    guest_shell(
        &d,
        "vm1",
        &[
            "--resume",
            "dd if=/dev/urandom of=/dev/vda bs=1M seek=1 count=8 conv=fsync 2>/dev/null; echo W-$((1+1))",
            "W-2",
        ],
    );
    for name in ["run1", "run2"] {
        assert_eq!(
            ok(&d.vireo(&["snapshot-create-as", "vm1", name])),
            format!("Domain snapshot {name} created\n")
        );
    }
    // Back to run1, and a sibling of run2 from there: a tree with a branch.
    assert_eq!(
        ok(&d.vireo(&["snapshot-revert", "vm1", "run1"])),
        "Domain snapshot run1 reverted\n\n"
    );
    assert_eq!(
        ok(&d.virsh(&["domstate", "--reason", "vm1"])).trim(),
        "running (from snapshot)"
    );
    let xml = write_file(
        &d,
        "run3.xml",
        "<domainsnapshot><name>Run3</name><description>from a file</description></domainsnapshot>",
    );
    assert_eq!(
        ok(&d.vireo(&["snapshot-create", "vm1", &xml])),
        format!("Domain snapshot Run3 created from '{xml}'\n")
    );

    all_same(
        &d,
        &[
            &["snapshot-list", "vm1"],
            &["snapshot-list", "vm1", "--tree"],
            &["snapshot-list", "vm1", "--parent"],
            &["snapshot-list", "vm1", "--name"],
            &["snapshot-list", "vm1", "--roots"],
            &["snapshot-list", "vm1", "--leaves", "--name"],
            &["snapshot-list", "vm1", "--active"],
            &["snapshot-list", "vm1", "--topological", "--tree"],
            &["snapshot-list", "vm1", "--from", "off1", "--descendants"],
            &["snapshot-list", "vm1", "--from", "run1", "--tree"],
            &["snapshot-list", "vm1", "--current", "--tree"],
            &["snapshot-info", "vm1", "run1"],
            &["snapshot-info", "vm1", "--current"],
            &["snapshot-info", "vm1", "off1"],
            &["snapshot-dumpxml", "vm1", "off1"],
            &["snapshot-dumpxml", "vm1", "Run3", "--security-info"],
            &["snapshot-current", "vm1", "--name"],
            &["snapshot-current", "vm1"],
            &["snapshot-parent", "vm1", "run2"],
            &["snapshot-parent", "vm1", "--current"],
            // And the refusals.
            &["snapshot-parent", "vm1", "off1"],
            &["snapshot-info", "vm1"],
            &["snapshot-info", "vm1", "x", "--current"],
            &["snapshot-dumpxml", "vm1", "nope"],
            &["snapshot-list", "vm1", "--tree", "--name"],
            &["snapshot-list", "vm1", "--tree", "--leaves"],
            &["snapshot-list", "vm1", "--descendants"],
            &["snapshot-list", "nope"],
            &["snapshot-list", "vm1", "--bogus"],
            &["snapshot-revert", "vm1", "nope"],
            &["snapshot-revert", "vm1", "run1", "--running", "--paused"],
            &[
                "snapshot-delete",
                "vm1",
                "run1",
                "--children",
                "--children-only",
            ],
            &["snapshot-create", "vm1", "--current"],
            &["snapshot-create-as", "vm1", "a/b"],
            &["snapshot-create-as", "vm1", "--name", ""],
            &[
                "snapshot-create-as",
                "vm1",
                "--print-xml",
                "x",
                "a 'description'",
                "--memspec",
                "snapshot=no",
                "--diskspec",
                "vda,snapshot=external,driver=qcow2,file=/a,,b",
                "vdb",
            ],
            &[
                "snapshot-create-as",
                "vm1",
                "--print-xml",
                "--diskspec",
                "vda,stype=dir",
            ],
            &["snapshot-create-as", "vm1", "--print-xml", "--memspec", "m"],
        ],
    );
    // Made current, then deleted (twice: the second time refused as virsh refuses it).
    assert_eq!(
        ok(&d.vireo(&["snapshot-current", "vm1", "--snapshotname", "run2"])),
        "Snapshot run2 set as current\n"
    );
    same_as_virsh(&d, &["snapshot-current", "vm1", "--name"]);
    done_then_refused(
        &d,
        &["snapshot-delete", "vm1", "run2"],
        "Domain snapshot run2 deleted\n\n",
    );
    assert_eq!(
        ok(&d.vireo(&["snapshot-delete", "vm1", "run1", "--children-only"])),
        "Domain snapshot run1 children deleted\n\n"
    );
    same_as_virsh(&d, &["snapshot-list", "vm1", "--tree"]);
    let tags = ok(&run_cmd("qemu-img", &["snapshot", "-U", "-l", &img]));
    assert!(!tags.contains("Run3") && tags.contains("run1"), "{tags}");

    // Block jobs: an active commit of an overlay, pivoted back to the base.
    let overlay = |name: &str| {
        assert_eq!(
            ok(&d.vireo(&[
                "snapshot-create-as",
                "vm1",
                name,
                "--disk-only",
                "--no-metadata",
            ])),
            format!("Domain snapshot {name} created\n")
        );
        assert_ne!(source(&d), img);
    };
    overlay("s1");
    all_same(
        &d,
        &[
            &["blockcommit", "vm1", "vda", "--wait"],
            &["blockcommit", "vm1", "vda", "--verbose"],
            &["blockcommit", "vm1", "vda", "--pivot", "--keep-overlay"],
            &["blockcommit", "vm1", "vda", "--bandwidth", "1,5"],
            &["blockcommit", "vm1", "vda", "--timeout", "0"],
            &["blockpull", "vm1", "vda", "--verbose"],
            &["blockcopy", "vm1", "vda"],
            &["blockcopy", "vm1", "vda", "/x", "--xml", "f"],
            &[
                "blockcopy",
                "vm1",
                "vda",
                "/x",
                "--print-xml",
                "--format",
                "qcow2",
            ],
            &["blockjob", "vm1", "vda", "--raw", "--abort"],
            &["blockjob", "vm1", "vda", "--info"],
            &["blockjob", "vm1", "vda", "--raw"],
            &["blockjob", "vm1", "vdz", "--info"],
            &["blockjob", "vm1", "vda", "--abort"],
        ],
    );
    assert_eq!(
        ok(&d.vireo(&["blockcommit", "vm1", "vda", "--active", "--pivot", "--wait"])),
        "\nSuccessfully pivoted\n"
    );
    assert_eq!(source(&d), img);

    // A pull of an overlay.
    overlay("s2");
    let o = d.vireo(&["blockpull", "vm1", "vda", "--wait", "--verbose"]);
    let (out, err, _) = output_parts(&o);
    assert_eq!(out, "\nPull complete\n", "{err}");
    assert!(err.ends_with("\rBlock Pull: [100 %]"), "{err:?}");
    let pulled = source(&d);
    let info = ok(&run_cmd("qemu-img", &["info", "-U", &pulled]));
    assert!(!info.contains("backing file"), "{info}");

    // A copy, pivoted to.
    let copy = format!("{root}/copy.qcow2");
    assert_eq!(
        ok(&d.vireo(&[
            "blockcopy",
            "vm1",
            "vda",
            &copy,
            "--format",
            "qcow2",
            "--pivot",
            "--wait",
            "--transient-job",
        ])),
        "\nSuccessfully pivoted\n"
    );
    assert_eq!(source(&d), copy);

    // A copy throttled to 1 MiB/s, watched, sped up, then aborted.
    let slow = format!("{root}/slow.qcow2");
    assert_eq!(
        ok(&d.vireo(&[
            "blockcopy",
            "vm1",
            "vda",
            &slow,
            "--transient-job",
            "--bandwidth",
            "1",
        ])),
        "Block Copy started\n"
    );
    let ours = output_parts(&d.vireo(&["blockjob", "vm1", "vda", "--info"]));
    let theirs = output_parts(&d.virsh(&["blockjob", "vm1", "vda", "--info"]));
    assert_eq!(
        ours.0,
        "    Bandwidth limit: 1048576 bytes/s (1.000 MiB/s)\n\n"
    );
    assert_eq!(ours.0, theirs.0);
    // The progress may move between the two calls; its form may not.
    for err in [&ours.1, &theirs.1] {
        assert!(
            err.starts_with("\rBlock Copy: [") && err.ends_with(" %]"),
            "{err:?}"
        );
    }
    same_as_virsh(&d, &["blockjob", "vm1", "vda", "--pivot"]);
    assert_eq!(
        ok(&d.vireo(&["blockjob", "vm1", "vda", "--bandwidth", "2"])),
        "\n"
    );
    let bw = ok(&d.virsh(&["blockjob", "vm1", "vda", "--info", "--bytes"]));
    assert!(
        bw.contains("Bandwidth limit: 2097152 bytes/s (2.000 MiB/s)"),
        "{bw}"
    );
    same_as_virsh(
        &d,
        &[
            "blockcopy",
            "vm1",
            "vda",
            &format!("{root}/other.qcow2"),
            "--transient-job",
        ],
    );
    assert_eq!(ok(&d.vireo(&["blockjob", "vm1", "vda", "--abort"])), "\n");
    same_as_virsh(&d, &["blockjob", "vm1", "vda", "--info"]);
    assert_eq!(source(&d), copy);
    ok(&d.virsh(&["destroy", "vm1"]));
    same_as_virsh(&d, &["blockjob", "vm1", "vda", "--info"]);
    ok(&d.virsh(&["undefine", "vm1", "--snapshots-metadata"]));
}
