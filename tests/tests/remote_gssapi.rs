//! SASL GSSAPI (Kerberos) on plain TCP: `vireod --listen` (monolithic) and `vireo-proxyd
//! --listen` (in front of the driver daemons) with `auth_tcp = "sasl"` and the service key
//! of `libvirt/127.0.0.1` in their keytab, reached at `qemu+tcp://127.0.0.1/system` by the
//! unmodified virsh (cyrus-sasl's GSSAPI plugin), python-libvirt and our `vireo`, each with
//! a ticket from a KDC the test makes: its database, keytabs, krb5.conf and kdc.conf in the
//! test's temp dir (KRB5_CONFIG, KRB5_KDC_PROFILE, KRB5CCNAME point there), `krb5kdc`
//! listening on port 88 of the loopback of the test's own network namespace, where every
//! client runs too. A principal not in `sasl_allowed_username_list` and a client without a
//! ticket are refused as libvirtd refuses them, and the daemon goes on serving.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use vireo_tests::{
    bin, fails, guest_xml, ok, output_parts, proc_status_field, procs, python3, tests_dir, Daemon,
    Layout,
};

const REALM: &str = "VIREO.TEST";
/// The host name the clients use, and so the service principal's: `libvirt/HOST`.
const HOST: &str = "127.0.0.1";

/// The test's Kerberos files: `ROOT/krb5/…`.
fn krb_dir(root: &Path) -> PathBuf {
    root.join("krb5")
}

fn krb_env(root: &Path) -> Vec<(String, String)> {
    let dir = krb_dir(root);
    vec![
        (
            "KRB5_CONFIG".into(),
            dir.join("krb5.conf").display().to_string(),
        ),
        (
            "KRB5_KDC_PROFILE".into(),
            dir.join("kdc.conf").display().to_string(),
        ),
    ]
}

/// Runs a Kerberos admin program on the test's files (no network).
fn krb_admin(root: &Path, program: &str, args: &[&str]) {
    let mut c = Command::new(program);
    c.args(args).stdin(Stdio::null());
    for (k, v) in krb_env(root) {
        c.env(k, v);
    }
    let o = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (scripts/install-deps installs it): {e}"));
    assert!(
        o.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The realm's database with the principals `fred`, `mallory` and `libvirt/HOST` (random
/// keys), the service key in the daemons' keytab (`ROOT/etc/vireo/krb5.tab`, the default
/// place) and each user's key in a keytab of its own (`ROOT/krb5/USER.keytab`) for kinit.
fn make_realm(root: &Path) {
    let dir = krb_dir(root);
    std::fs::create_dir_all(&dir).expect("krb5 dir");
    std::fs::write(
        dir.join("krb5.conf"),
        format!(
            "[libdefaults]\n default_realm = {REALM}\n dns_lookup_kdc = false\n dns_lookup_realm = false\n dns_canonicalize_hostname = false\n rdns = false\n[realms]\n {REALM} = {{\n  kdc = 127.0.0.1:88\n }}\n"
        ),
    )
    .expect("krb5.conf");
    let d = dir.display();
    std::fs::write(
        dir.join("kdc.conf"),
        format!(
            "[kdcdefaults]\n kdc_ports = 88\n kdc_tcp_ports = 88\n[realms]\n {REALM} = {{\n  database_name = {d}/principal\n  key_stash_file = {d}/stash\n  acl_file = {d}/kadm5.acl\n }}\n[logging]\n kdc = STDERR\n"
        ),
    )
    .expect("kdc.conf");
    std::fs::write(dir.join("kadm5.acl"), "").expect("acl");
    krb_admin(
        root,
        "kdb5_util",
        &["create", "-s", "-r", REALM, "-P", "test master key"],
    );
    let etc = root.join("etc/vireo");
    std::fs::create_dir_all(&etc).expect("etc");
    let service = format!("libvirt/{HOST}");
    let server_keytab = etc.join("krb5.tab");
    let mut queries = vec![
        format!("addprinc -randkey {service}"),
        format!("ktadd -k {} {service}", server_keytab.display()),
    ];
    for user in ["fred", "mallory"] {
        queries.push(format!("addprinc -randkey {user}"));
        queries.push(format!(
            "ktadd -k {} {user}",
            dir.join(format!("{user}.keytab")).display()
        ));
    }
    for q in &queries {
        krb_admin(root, "kadmin.local", &["-r", REALM, "-q", q]);
    }
}

/// The KDC, in the daemons' network namespace, until dropped.
struct Kdc {
    child: Child,
}

impl Kdc {
    /// Starts `krb5kdc -n` and waits for its own word that it serves ("commencing
    /// operation" in its log, which goes to its stderr).
    fn start(d: &Daemon) -> Kdc {
        let mut c = d.ns_command("krb5kdc");
        c.arg("-n").stdin(Stdio::null()).stdout(Stdio::null());
        c.stderr(Stdio::piped());
        for (k, v) in krb_env(&d.root) {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("krb5kdc");
        let err = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        // Reads the KDC's log to its end (so that it never blocks on a full pipe).
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if line.contains("commencing operation") {
                    let _ = tx.send(Ok(()));
                }
                seen.push(line);
                if seen.len() > 50 {
                    seen.remove(0);
                }
            }
            let _ = tx.send(Err(seen.join("\n")));
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(())) => Kdc { child },
            Ok(Err(log)) => panic!("krb5kdc ended before serving:\n{log}"),
            Err(_) => {
                let _ = child.kill();
                panic!("krb5kdc did not start within 30 s")
            }
        }
    }
}

impl Drop for Kdc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command in the daemons' namespace with the test's krb5.conf, the credential cache
/// `ccache` (under ROOT/krb5), a time limit and C locale.
fn as_user(d: &Daemon, ccache: &str, program: &str, args: &[&str]) -> Output {
    let mut c = d.ns_command("timeout");
    c.args(["--kill-after=5", "120", program])
        .args(args)
        .env("LC_ALL", "C")
        .env(
            "KRB5CCNAME",
            format!("FILE:{}", krb_dir(&d.root).join(ccache).display()),
        )
        .stdin(Stdio::null());
    for (k, v) in krb_env(&d.root) {
        c.env(k, v);
    }
    c.output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// Gets `user` a ticket into the ccache `cc-USER`.
fn kinit(d: &Daemon, user: &str) {
    let keytab = krb_dir(&d.root).join(format!("{user}.keytab"));
    ok(&as_user(
        d,
        &format!("cc-{user}"),
        "kinit",
        &["-k", "-t", keytab.to_str().expect("utf-8"), user],
    ));
}

const URI: &str = "qemu+tcp://127.0.0.1/system";

/// While a login's security layer lasts, the daemon's `vireo-gss-helper` holding its
/// context has no capability and can gain none: seen in /proc during a virsh session.
fn helper_is_confined(d: &Daemon) {
    let mut c = d.ns_command("timeout");
    c.args(["--kill-after=5", "120", "virsh", "-c", URI])
        .env("LC_ALL", "C")
        .env(
            "KRB5CCNAME",
            format!("FILE:{}", krb_dir(&d.root).join("cc-fred").display()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in krb_env(&d.root) {
        c.env(k, v);
    }
    let mut virsh = c.spawn().expect("virsh");
    let mut to = virsh.stdin.take().expect("stdin");
    let mut from = BufReader::new(virsh.stdout.take().expect("stdout")).lines();
    writeln!(to, "list --all").expect("to virsh");
    // Its answer says the layer is up.
    while !from
        .next()
        .expect("virsh ended")
        .expect("virsh output")
        .contains("vm1")
    {}
    // This login's helper alone: those of the logins before ended with their connections.
    let helpers = helpers_become(d, 1);
    let field = |k: &str| proc_status_field(helpers[0], k);
    for k in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(field(k), "0000000000000000", "{k} of helper {}", helpers[0]);
    }
    assert_eq!(field("NoNewPrivs"), "1", "helper {}", helpers[0]);
    writeln!(to, "quit").expect("to virsh");
    drop(to);
    assert!(virsh.wait().expect("virsh").success());
    helpers_become(d, 0);
}

/// Waits (10 s at most) until the daemons have `n` GSSAPI helpers; returns their pids.
fn helpers_become(d: &Daemon, n: usize) -> Vec<i32> {
    let daemons = d.pids();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let helpers: Vec<i32> = procs()
            .into_iter()
            .filter(|(_, ppid, cmd)| {
                daemons.contains(ppid) && cmd.contains("vireo-gss-helper accept")
            })
            .map(|(pid, _, _)| pid)
            .collect();
        if helpers.len() == n {
            return helpers;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "GSSAPI helpers {helpers:?}, not {n}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

const CONF: &str = r#"listen_addr = "127.0.0.1"
listen_tcp = 1
listen_tls = 0
auth_tcp = "sasl"
sasl_allowed_username_list = ["admin*", "fred@VIREO.TEST"]
log_filters = "2:remote_access"
log_outputs = "2:stderr"
"#;

fn gssapi_tcp(layout: Layout) {
    let d = Daemon::start_prepared(
        layout,
        |root| {
            make_realm(root);
            for name in ["vireod", "vireo-proxyd"] {
                std::fs::write(root.join(format!("etc/vireo/{name}.conf")), CONF)
                    .expect("daemon .conf");
            }
        },
        &["--listen"],
    );
    assert!(
        d.log()
            .contains("SASL GSSAPI (Kerberos) on plain TCP with the keys of"),
        "{}",
        d.log()
    );
    let _kdc = Kdc::start(&d);
    kinit(&d, "fred");
    kinit(&d, "mallory");
    let virsh = |cc: &str, args: &[&str]| as_user(&d, cc, "virsh", &[&["-c", URI], args].concat());

    // fred, in the allowed list, defines and lists a domain with the real virsh. Its
    // description is long enough to cross the layer in several packets each way, each as
    // large as the other side takes.
    let xml = d.root.join("vm1.xml");
    let long = "0123456789abcdef".repeat(12_000);
    let with_desc = guest_xml("vm1").replacen(
        "<name>vm1</name>",
        &format!("<name>vm1</name><description>{long}</description>"),
        1,
    );
    assert!(with_desc.contains(&long));
    std::fs::write(&xml, with_desc).expect("xml");
    let defined = ok(&virsh("cc-fred", &["define", xml.to_str().expect("utf-8")]));
    assert!(defined.contains("Domain 'vm1' defined"), "{defined}");
    let list = ok(&virsh("cc-fred", &["list", "--all"]));
    assert!(list.contains("vm1") && list.contains("shut off"), "{list}");
    let dumped = ok(&virsh("cc-fred", &["desc", "vm1"]));
    assert_eq!(dumped.trim(), long);
    // The exchange ended with a confidentiality layer (libvirt's client wants 56 bits at
    // least on plain TCP, and checked it too).
    let log = d.log();
    let ssf: u32 = log
        .lines()
        .find_map(|l| {
            l.contains("SASL client 'fred@VIREO.TEST' authenticated with GSSAPI, SSF ")
                .then(|| l.rsplit(' ').next()?.parse().ok())
                .flatten()
        })
        .unwrap_or_else(|| panic!("no GSSAPI login in the log:\n{log}"));
    assert!(ssf >= 56, "SSF {ssf}");

    helper_is_confined(&d);

    // python-libvirt: the connection is secure and encrypted by the SASL layer.
    let script = tests_dir().join("python/remote_tls.py");
    let out = ok(&as_user(
        &d,
        "cc-fred",
        python3(),
        &[script.to_str().expect("utf-8"), "list", URI],
    ));
    assert!(out.contains("domains=vm1"), "{out}");
    assert!(out.contains("secure=1 encrypted=1"), "{out}");

    // Our vireo logs in with the same ticket and says what virsh says.
    let vireo = bin("vireo");
    let vireo = vireo.to_str().expect("utf-8");
    for args in [
        &["list", "--all"][..],
        &["domstate", "vm1"],
        &["desc", "vm1"],
    ] {
        assert_eq!(
            output_parts(&as_user(
                &d,
                "cc-fred",
                vireo,
                &[&["-c", URI], args].concat()
            )),
            output_parts(&virsh("cc-fred", args)),
            "{args:?}"
        );
    }
    // SCRAM has no security layer: not offered on plain TCP.
    let scram = format!("{URI}?auth=sasl.scram-sha-256");
    let e = fails(&as_user(&d, "cc-fred", vireo, &["-c", &scram, "list"]));
    assert!(
        e.contains("SASL mechanism SCRAM-SHA-256 not supported by server"),
        "{e}"
    );

    // mallory has a good ticket but is not in sasl_allowed_username_list: libvirt's
    // refusal, and nothing served.
    let e = fails(&virsh("cc-mallory", &["list", "--all"]));
    assert!(e.contains("authentication failed"), "{e}");
    assert!(!e.contains("vm1"), "{e}");
    assert!(
        d.log().contains(
            "SASL client identity 'mallory@VIREO.TEST' not allowed by sasl_allowed_username_list"
        ),
        "{}",
        d.log()
    );
    // A client without a ticket: cyrus-sasl cannot even start.
    let e = fails(&virsh("cc-nobody", &["list", "--all"]));
    assert!(e.contains("authentication failed"), "{e}");
    assert!(e.contains("No Kerberos credentials available"), "{e}");

    // The daemon goes on serving.
    ok(&virsh("cc-fred", &["undefine", "vm1"]));
    let list = ok(&virsh("cc-fred", &["list", "--all"]));
    assert!(!list.contains("vm1"), "{list}");
}

/// With vireod and with vireo-proxyd in front of the modular daemons.
mod gssapi_tcp {
    #[test]
    fn monolithic() {
        super::gssapi_tcp(vireo_tests::Layout::Monolithic)
    }
    #[test]
    fn proxied() {
        super::gssapi_tcp(vireo_tests::Layout::Proxied)
    }
}
