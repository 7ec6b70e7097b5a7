//! Remote access over TLS and TCP: `vireod --listen` (monolithic) and `vireo-proxyd
//! --listen` (modular, in front of the driver daemons) with certificates the test makes (a
//! CA, a server certificate for 127.0.0.1, client certificates in libvirt's `pkipath`
//! layout), reached by the unmodified virsh, python-libvirt and our `vireo` over
//! `qemu+tls://127.0.0.1/system`; the refusals (a client certificate from another CA, an
//! expired one, a DN not in `tls_allowed_dn_list`, a wrong SASL password) and a client
//! stalled mid-handshake while others are served. Everything listens on the loopback of
//! the test's own network namespace, and every client runs in it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use vireo_tests::{
    bin, fails, guest_xml, ok, output_parts, python3, run_cmd, tests_dir, Daemon, Layout,
};

/// A certificate authority of the test's.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::CountryName, "GB");
    d.push(DnType::OrganizationName, "Vireo Test");
    d.push(DnType::CommonName, cn);
    d
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name = dn(name);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = p.self_signed(&key).expect("CA");
        Ca { cert, key }
    }

    /// A certificate for `cn` (a server for 127.0.0.1 and localhost, or a client), valid
    /// now unless `expired`: (cert PEM, key PEM).
    fn issue(&self, cn: &str, server: bool, expired: bool) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let names = if server {
            vec!["127.0.0.1".to_string(), "localhost".to_string()]
        } else {
            Vec::new()
        };
        let mut p = CertificateParams::new(names).expect("params");
        p.distinguished_name = dn(cn);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        if expired {
            p.not_before = rcgen::date_time_ymd(2001, 1, 1);
            p.not_after = rcgen::date_time_ymd(2002, 1, 1);
        }
        let cert = p.signed_by(&key, &self.cert, &self.key).expect("sign");
        (cert.pem(), key.serialize_pem())
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// The test's certificates: the server's in libvirt's places under the daemons' root, and
/// one `pkipath` directory per client under `ROOT/clients/NAME`.
fn make_pki(root: &Path) {
    let ca = Ca::new("Vireo Test CA");
    let other = Ca::new("Someone Else's CA");
    let (cert, key) = ca.issue("server", true, false);
    write(&root.join("etc/pki/CA/cacert.pem"), &ca.cert.pem());
    write(&root.join("etc/pki/libvirt/servercert.pem"), &cert);
    write(&root.join("etc/pki/libvirt/private/serverkey.pem"), &key);
    let client = |name: &str, issuer: &Ca, cn: &str, expired: bool, trust: &Ca| {
        let dir = root.join("clients").join(name);
        let (cert, key) = issuer.issue(cn, false, expired);
        write(&dir.join("cacert.pem"), &trust.cert.pem());
        write(&dir.join("clientcert.pem"), &cert);
        write(&dir.join("clientkey.pem"), &key);
    };
    client("good", &ca, "client1", false, &ca);
    client("second", &ca, "client2", false, &ca);
    client("intruder", &ca, "intruder", false, &ca);
    client("expired", &ca, "client3", true, &ca);
    client("foreign", &other, "client4", false, &ca);
    // Trusts another CA than the one that signed the server's certificate.
    client("distrust", &other, "client5", false, &other);
}

const CONF: &str = r#"listen_addr = "127.0.0.1"
listen_tcp = 1
auth_tcp = "none"
tls_allowed_dn_list = ["C=GB,O=Vireo Test,CN=client*"]
"#;

/// The daemons of `layout` listening for remote clients (`--listen`) with `conf`.
fn start(layout: Layout, conf: &str) -> Daemon {
    let conf = conf.to_string();
    Daemon::start_prepared(
        layout,
        move |root| {
            make_pki(root);
            for name in ["vireod", "vireo-proxyd"] {
                write(&root.join(format!("etc/vireo/{name}.conf")), &conf);
            }
        },
        &["--listen"],
    )
}

fn tls_uri(d: &Daemon, client: &str, extra: &str) -> String {
    format!(
        "qemu+tls://127.0.0.1/system?pkipath={}{extra}",
        d.root.join("clients").join(client).display()
    )
}

/// A command in the daemons' namespace, with a time limit, C locale and `env`.
fn in_ns(d: &Daemon, env: &[(&str, &str)], program: &str, args: &[&str]) -> Output {
    let mut c = d.ns_command("timeout");
    c.args(["--kill-after=5", "120", program])
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn virsh(d: &Daemon, uri: &str, args: &[&str]) -> Output {
    in_ns(d, &[], "virsh", &[&["-c", uri], args].concat())
}

fn vireo(d: &Daemon, uri: &str, args: &[&str]) -> Output {
    let b = bin("vireo");
    in_ns(
        d,
        &[],
        b.to_str().expect("utf-8"),
        &[&["-c", uri], args].concat(),
    )
}

fn refused_by_server(o: &Output) {
    let e = fails(o);
    assert!(
        e.contains("server verification (of our certificate or IP address) failed"),
        "{e}"
    );
}

/// Real virsh, python-libvirt and our vireo over TLS: define, start (paused), list, the
/// connection's facts; plain TCP with auth_tcp = "none" too.
fn tls_clients(layout: Layout) {
    let d = start(layout, CONF);
    let uri = tls_uri(&d, "good", "");
    let xml = d.root.join("vm1.xml");
    std::fs::write(&xml, guest_xml("vm1")).expect("xml");
    let defined = ok(&virsh(&d, &uri, &["define", xml.to_str().expect("utf-8")]));
    assert!(defined.contains("Domain 'vm1' defined"), "{defined}");
    ok(&virsh(&d, &uri, &["start", "--paused", "vm1"]));
    let list = ok(&virsh(&d, &uri, &["list", "--all"]));
    assert!(list.contains("vm1") && list.contains("paused"), "{list}");
    // Our CLI says exactly what virsh says, over the same TLS URI.
    for args in [&["list", "--all"][..], &["domstate", "vm1"], &["uri"]] {
        assert_eq!(
            output_parts(&vireo(&d, &uri, args)),
            output_parts(&virsh(&d, &uri, args)),
            "{args:?}"
        );
    }
    // python-libvirt.
    let script = tests_dir().join("python/remote_tls.py");
    let out = ok(&in_ns(
        &d,
        &[],
        python3(),
        &[script.to_str().expect("utf-8"), "list", &uri],
    ));
    assert!(out.contains("domains=vm1"), "{out}");
    assert!(out.contains("secure=1 encrypted=1"), "{out}");
    // A second client certificate of the allowed list, and plain TCP.
    let second = ok(&virsh(&d, &tls_uri(&d, "second", ""), &["domstate", "vm1"]));
    assert_eq!(second.trim(), "paused");
    let tcp = ok(&virsh(
        &d,
        "qemu+tcp://127.0.0.1/system",
        &["domstate", "vm1"],
    ));
    assert_eq!(tcp.trim(), "paused");
    ok(&virsh(&d, &uri, &["destroy", "vm1"]));
    ok(&virsh(&d, &uri, &["undefine", "vm1"]));
}

/// Clients the server refuses: a certificate from another CA, an expired one, a DN not in
/// tls_allowed_dn_list; and one that stalls mid-handshake while another is served. Each
/// refused client gets its connection closed before the confirmation byte, as libvirtd
/// does; the daemon goes on serving.
fn tls_refusals(layout: Layout) {
    let d = start(layout, CONF);
    // `no_sanity=1` and `no_verify=1` make libvirt's client skip its own checks of the
    // certificates, so that the server is the one to judge them.
    for who in ["foreign", "expired", "intruder"] {
        let uri = tls_uri(&d, who, "&no_verify=1&no_sanity=1");
        refused_by_server(&virsh(&d, &uri, &["list"]));
        refused_by_server(&vireo(&d, &uri, &["list"]));
    }
    // Without it, libvirt's client refuses an expired certificate of its own, and a server
    // its CA did not sign.
    for program in ["virsh", "vireo"] {
        let o = match program {
            "virsh" => virsh(&d, &tls_uri(&d, "expired", ""), &["list"]),
            _ => vireo(&d, &tls_uri(&d, "expired", ""), &["list"]),
        };
        let e = fails(&o);
        assert!(e.contains("has expired"), "{program}: {e}");
    }
    let e = fails(&virsh(&d, &tls_uri(&d, "distrust", ""), &["list"]));
    assert!(e.contains("failed to connect to the hypervisor"), "{e}");
    let e = fails(&vireo(&d, &tls_uri(&d, "distrust", ""), &["list"]));
    assert!(e.contains("TLS handshake failed"), "{e}");
    // A client that sends the start of a ClientHello and stalls.
    let mut stall = d
        .ns_command(python3())
        .args([
            "-c",
            "import socket,sys\n\
             s=socket.create_connection(('127.0.0.1',16514))\n\
             s.sendall(bytes([22,3,1,0,200,1,0]))\n\
             print('STALLED',flush=True)\n\
             sys.stdin.readline()\n",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("staller");
    let mut line = String::new();
    BufReader::new(stall.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    assert_eq!(line.trim(), "STALLED");
    let list = ok(&virsh(&d, &tls_uri(&d, "good", ""), &["list", "--all"]));
    assert!(list.contains("Name"), "{list}");
    let _ = stall.stdin.as_mut().expect("stdin").write_all(b"\n");
    let _ = stall.wait();
    // Still serving after all that.
    ok(&virsh(&d, &tls_uri(&d, "good", ""), &["hostname"]));
    assert!(d.log().contains("refused"), "{}", d.log());
    // The refused certificates are in the listening daemon's metrics.
    let front = match layout {
        Layout::Monolithic => "vireod",
        _ => "vireo-proxyd",
    };
    let admin = d.run_dir().join(format!("{front}-admin-sock"));
    let uri = format!("{front}:///system?socket={}", admin.display());
    let vireo = bin("vireo");
    let text = ok(&run_cmd(
        vireo.to_str().unwrap(),
        &["-c", &uri, "admin-metrics"],
    ));
    let value = |sample: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {sample} in\n{text}"))
    };
    assert!(value(r#"vireo_auth_failures_total{socket="tls"}"#) >= 6.0);
    assert!(value(r#"vireo_clients_connected_total{socket="tls"}"#) >= 2.0);
    assert_eq!(value(r#"vireo_auth_failures_total{socket="rw"}"#), 0.0);
}

/// SASL (SCRAM-SHA-256) over TLS: users made by vireo-saslpasswd, credentials from
/// libvirt's auth.conf; a wrong password is refused with libvirt's error and nothing is
/// served; a user not in sasl_allowed_username_list likewise.
fn tls_sasl(layout: Layout) {
    let conf = format!(
        "{}auth_tcp = \"sasl\"\nauth_tls = \"sasl\"\nsasl_allowed_username_list = [\"fred\", \"admin*\"]\n",
        CONF.replace("auth_tcp = \"none\"\n", "")
    );
    let d = start(layout, &conf);
    for (user, pass) in [("fred", "s3cret"), ("joe", "joes")] {
        let mut p = Command::new(bin("vireo-saslpasswd"))
            .args(["--root", d.root.to_str().expect("utf-8"), "-p", user])
            .stdin(Stdio::piped())
            .spawn()
            .expect("vireo-saslpasswd");
        writeln!(p.stdin.as_mut().expect("stdin"), "{pass}").expect("password");
        assert!(p.wait().expect("wait").success());
    }
    let users = std::fs::read_to_string(d.root.join("etc/vireo/sasl-users")).expect("users");
    assert!(!users.contains("s3cret"), "passwords are never stored");
    let auth = |user: &str, pass: &str| -> PathBuf {
        let f = d.root.join(format!("auth-{user}-{pass}.conf"));
        std::fs::write(
            &f,
            format!(
                "[credentials-t]\nauthname={user}\npassword={pass}\n\n\
                 [auth-libvirt-127.0.0.1]\ncredentials=t\n"
            ),
        )
        .expect("auth.conf");
        f
    };
    let uri = tls_uri(&d, "good", "");
    let with = |file: &Path, program: &str, args: &[&str]| {
        in_ns(
            &d,
            &[("LIBVIRT_AUTH_FILE", file.to_str().expect("utf-8"))],
            program,
            &[&["-c", uri.as_str()], args].concat(),
        )
    };
    let vireo = bin("vireo");
    let vireo = vireo.to_str().expect("utf-8");
    let good = auth("fred", "s3cret");
    ok(&with(&good, "virsh", &["list", "--all"]));
    assert_eq!(
        output_parts(&with(&good, vireo, &["list", "--all"])),
        output_parts(&with(&good, "virsh", &["list", "--all"]))
    );
    for bad in [
        auth("fred", "wrong"),
        auth("joe", "joes"),
        auth("nobody", "x"),
    ] {
        let e = fails(&with(&bad, "virsh", &["list"]));
        assert!(e.contains("authentication failed"), "{e}");
        let e = fails(&with(&bad, vireo, &["list"]));
        assert!(e.contains("authentication failed"), "{e}");
    }
    let script = tests_dir().join("python/remote_tls.py");
    let out = ok(&in_ns(
        &d,
        &[("LIBVIRT_AUTH_FILE", good.to_str().expect("utf-8"))],
        python3(),
        &[script.to_str().expect("utf-8"), "list", &uri],
    ));
    assert!(out.contains("domains="), "{out}");
    // virt-admin sees the remote client as libvirtd shows one: TLS, its address, its
    // certificate's DN and its SASL user (vireod's own server holds the client).
    if layout == Layout::Monolithic {
        let mut held = d
            .ns_command(python3())
            .args([script.to_str().expect("utf-8"), "hold", &uri])
            .env("LIBVIRT_AUTH_FILE", good.to_str().expect("utf-8"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("held client");
        let mut line = String::new();
        BufReader::new(held.stdout.as_mut().expect("stdout"))
            .read_line(&mut line)
            .expect("read");
        assert_eq!(line.trim(), "OPEN");
        let admin = format!(
            "vireod:///system?socket={}",
            d.run_dir().join("vireod-admin-sock").display()
        );
        let list = ok(&run_cmd(
            "virt-admin",
            &["-c", &admin, "srv-clients-list", "vireod"],
        ));
        let id = list
            .lines()
            .find(|l| l.contains("tls"))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no TLS client in {list}"))
            .to_string();
        let info = ok(&run_cmd(
            "virt-admin",
            &["-c", &admin, "client-info", "vireod", &id],
        ));
        for want in [
            "sasl_user_name      : fred",
            "tls_x509_dname      : C=GB,O=Vireo Test,CN=client1",
        ] {
            assert!(
                info.lines()
                    .any(|l| l.split_whitespace().collect::<Vec<_>>()
                        == want.split_whitespace().collect::<Vec<_>>()),
                "{want} not in {info}"
            );
        }
        assert!(
            info.contains("sock_addr") && info.contains("127.0.0.1"),
            "{info}"
        );
        let _ = held.stdin.as_mut().expect("stdin").write_all(b"\n");
        let _ = held.wait();
    }
    // Plain TCP with SASL: no mechanism with a security layer, so libvirt's client is
    // refused (Vireo, as libvirtd, offers SCRAM only where the transport is secure), and
    // the daemon said so when it started.
    let tcp = "qemu+tcp://127.0.0.1/system";
    let e = fails(&in_ns(
        &d,
        &[("LIBVIRT_AUTH_FILE", good.to_str().expect("utf-8"))],
        "virsh",
        &["-c", tcp, "list"],
    ));
    assert!(e.contains("authentication failed"), "{e}");
    assert!(d.log().contains("auth_tcp = \"sasl\" needs"), "{}", d.log());
}

/// Each test with vireod and with vireo-proxyd in front of the modular daemons (the
/// layouts with a remote-facing daemon).
macro_rules! remote_layouts {
    ($($name:ident),*) => {$(
        mod $name {
            #[test]
            fn monolithic() {
                super::$name(vireo_tests::Layout::Monolithic)
            }
            #[test]
            fn proxied() {
                super::$name(vireo_tests::Layout::Proxied)
            }
        }
    )*};
}

remote_layouts!(tls_clients, tls_refusals, tls_sasl);
