//! The daemons' metrics (Prometheus' text format): on the admin socket through `vireo
//! admin-metrics`, and over HTTP with `metrics_listen` (scraped with python's urllib inside the
//! daemons' own network namespace). The text is parsed, not grepped: every sample must
//! belong to a family declared before it, with well-formed labels and values.

use std::collections::HashMap;
use std::path::Path;

use rustix::process::Signal;
use vireo_tests::{
    bin, fails, guest_xml, in_ns, ok, python3, run_cmd, shim_pid, write_file, Daemon, EventLog,
    Layout, NetNs,
};

/// One sample: its name, labels and value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// A scrape, parsed: the families' types and the samples.
#[derive(Debug)]
struct Scrape {
    types: HashMap<String, String>,
    samples: Vec<Sample>,
}

impl Scrape {
    /// Parses the text exposition format strictly enough to catch a malformed scrape.
    fn parse(text: &str) -> Scrape {
        let mut types = HashMap::new();
        let mut samples = Vec::new();
        let mut family: Option<(String, String)> = None;
        for (n, line) in text.lines().enumerate() {
            let at = format!("line {}: {line:?}", n + 1);
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# ") {
                let mut parts = rest.splitn(3, ' ');
                let (kw, name) = (parts.next().unwrap(), parts.next().expect(&at));
                assert!(valid_name(name), "{at}: bad metric name");
                if kw == "TYPE" {
                    let kind = parts.next().expect(&at).to_string();
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"]
                            .contains(&kind.as_str()),
                        "{at}: bad type"
                    );
                    assert!(
                        types.insert(name.to_string(), kind.clone()).is_none(),
                        "{at}: family declared twice"
                    );
                    family = Some((name.to_string(), kind));
                }
                continue;
            }
            let (name, rest) = match line.find(['{', ' ']) {
                Some(i) => line.split_at(i),
                None => panic!("{at}: no value"),
            };
            assert!(valid_name(name), "{at}: bad metric name");
            let (labels, value) = if let Some(body) = rest.strip_prefix('{') {
                parse_labels(body, &at)
            } else {
                (HashMap::new(), rest)
            };
            let value = value.trim();
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("{at}: bad value")),
            };
            let (fam, kind) = family.as_ref().expect("a sample before any TYPE");
            let belongs = name == fam
                || (kind == "histogram"
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(fam)));
            assert!(belongs, "{at}: not of family {fam}");
            samples.push(Sample {
                name: name.to_string(),
                labels,
                value,
            });
        }
        Scrape { types, samples }
    }

    /// The samples named `name` whose labels include `want`.
    fn find(&self, name: &str, want: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && want
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The one sample named `name` with exactly these labels.
    #[track_caller]
    fn one(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<_> = self
            .find(name, labels)
            .into_iter()
            .filter(|s| s.labels.len() == labels.len())
            .collect();
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0].value
    }
}

fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

/// `k="v",…}` then the rest of the line.
fn parse_labels<'a>(body: &'a str, at: &str) -> (HashMap<String, String>, &'a str) {
    let mut labels = HashMap::new();
    let mut rest = body;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return (labels, r);
        }
        let eq = rest
            .find('=')
            .unwrap_or_else(|| panic!("{at}: label without ="));
        let key = &rest[..eq];
        assert!(
            valid_name(key) && !key.contains(':'),
            "{at}: bad label name {key:?}"
        );
        let mut chars = rest[eq + 1..].char_indices();
        assert_eq!(chars.next().map(|c| c.1), Some('"'), "{at}: unquoted value");
        let mut value = String::new();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => panic!("{at}: bad escape {other:?}"),
                },
                Some((i, '"')) => break eq + 1 + i + 1,
                Some((_, c)) => value.push(c),
                None => panic!("{at}: unterminated label value"),
            }
        };
        assert!(
            labels.insert(key.to_string(), value).is_none(),
            "{at}: label {key} twice"
        );
        rest = &rest[end..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// `GET url` with python's urllib (no proxy) inside the daemons' network namespace: the
/// status, the content type and the body.
fn http_get(d: &Daemon, url: &str) -> (u16, String, String) {
    const GET: &str = "import sys, urllib.request, urllib.error\n\
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))\n\
        try:\n    r = opener.open(sys.argv[1], timeout=30)\n\
        except urllib.error.HTTPError as e:\n    r = e\n\
        body = r.read().decode()\n\
        sys.stdout.write('%d\\n%s\\n%s' % (r.getcode(), r.headers.get('Content-Type', ''), body))\n";
    let out = in_ns(d, python3(), &["-c", GET, url]);
    let mut parts = out.splitn(3, '\n');
    let status = parts.next().and_then(|s| s.parse().ok()).expect("a status");
    let ctype = parts.next().unwrap_or_default().to_string();
    (status, ctype, parts.next().unwrap_or_default().to_string())
}

/// The daemon that runs the domains in `layout`.
fn domain_daemon(layout: Layout) -> &'static str {
    match layout {
        Layout::Monolithic => "vireod",
        _ => "vireo-qemud",
    }
}

/// `vireo admin-metrics` on `daemon`'s admin socket, parsed.
fn admin_metrics(d: &Daemon, daemon: &str) -> Scrape {
    let sock = d.run_dir().join(format!("{daemon}-admin-sock"));
    let uri = format!("{daemon}:///system?socket={}", sock.display());
    let vireo = bin("vireo");
    let text = ok(&run_cmd(
        vireo.to_str().unwrap(),
        &["-c", &uri, "admin-metrics"],
    ));
    Scrape::parse(&text)
}

/// The checks every scrape of the domain daemon passes after the calls the test made.
fn check_calls_and_domains(s: &Scrape) {
    assert_eq!(
        s.types.get("vireo_rpc_calls_total").map(String::as_str),
        Some("counter")
    );
    assert_eq!(
        s.types
            .get("vireo_rpc_call_duration_seconds")
            .map(String::as_str),
        Some("histogram")
    );
    let calls = |proc_: &str, result: &str| {
        s.find(
            "vireo_rpc_calls_total",
            &[
                ("program", "remote"),
                ("procedure", proc_),
                ("result", result),
            ],
        )
        .iter()
        .map(|x| x.value)
        .sum::<f64>()
    };
    // The failing dominfo: a lookup of a domain that does not exist.
    assert!(
        calls("DOMAIN_LOOKUP_BY_NAME", "VIR_ERR_NO_DOMAIN") >= 1.0,
        "{:?}",
        s.find(
            "vireo_rpc_calls_total",
            &[("procedure", "DOMAIN_LOOKUP_BY_NAME")]
        )
    );
    assert!(calls("DOMAIN_LOOKUP_BY_NAME", "ok") >= 2.0);
    assert!(calls("DOMAIN_DEFINE_XML", "ok") + calls("DOMAIN_DEFINE_XML_FLAGS", "ok") >= 1.0);
    assert!(calls("DOMAIN_CREATE_WITH_FLAGS", "ok") >= 1.0);
    assert!(calls("CONNECT_LIST_ALL_DOMAINS", "ok") >= 1.0);
    // Each procedure's histogram: cumulative buckets ending in +Inf, which is the count,
    // which is the calls of every result.
    for proc_ in ["DOMAIN_LOOKUP_BY_NAME", "DOMAIN_CREATE_WITH_FLAGS"] {
        let labels = [("program", "remote"), ("procedure", proc_)];
        let buckets = s.find("vireo_rpc_call_duration_seconds_bucket", &labels);
        assert_eq!(buckets.len(), 18, "{proc_}: 17 bounds and +Inf");
        let mut last = 0.0;
        let mut prev_le = 0.0;
        for b in &buckets {
            assert!(b.value >= last, "{proc_}: buckets must be cumulative");
            last = b.value;
            let le: f64 = match b.labels["le"].as_str() {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap(),
            };
            assert!(le > prev_le, "{proc_}: bounds must rise");
            prev_le = le;
        }
        assert_eq!(buckets[0].labels["le"], "0.00005");
        assert_eq!(buckets[16].labels["le"], "10");
        let count = s.one("vireo_rpc_call_duration_seconds_count", &labels);
        assert_eq!(last, count, "{proc_}: +Inf is the count");
        let all: f64 = s
            .find("vireo_rpc_calls_total", &labels)
            .iter()
            .map(|x| x.value)
            .sum();
        assert_eq!(all, count, "{proc_}: every call is in the histogram");
        assert!(count >= 1.0);
        assert!(s.one("vireo_rpc_call_duration_seconds_sum", &labels) > 0.0);
    }
    // Domains by state: the one started paused.
    assert_eq!(s.one("vireo_domains", &[("state", "paused")]), 1.0);
    assert_eq!(s.one("vireo_domains", &[("state", "running")]), 0.0);
    assert_eq!(s.one("vireo_shims_connected", &[]), 1.0);
    assert_eq!(s.one("vireo_shims_lost_total", &[]), 0.0);
    assert_eq!(s.one("vireo_shim_calls_failed_total", &[]), 0.0);
    let answered = s.one(
        "vireo_shim_last_answer_timestamp_seconds",
        &[("domain", "vm1")],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        answered > now - 600.0 && answered <= now + 1.0,
        "{answered}"
    );
    // Clients: every virsh came through the read-write socket.
    assert!(s.one("vireo_clients_connected_total", &[("socket", "rw")]) >= 5.0);
    assert!(s.one("process_resident_memory_bytes", &[]) > 1e6);
    assert!(s.one("process_open_fds", &[]) >= 3.0);
    assert!(s.one("process_threads", &[]) >= 1.0);
    assert!(s.one("vireo_uptime_seconds", &[]) >= 0.0);
}

fn metrics(layout: Layout) {
    let dom = domain_daemon(layout);
    // The HTTP endpoint only where the daemons have a network namespace of their own.
    let http = NetNs::new().is_some();
    let d = Daemon::start_prepared(
        layout,
        |root: &Path| {
            let etc = root.join("etc/vireo");
            std::fs::create_dir_all(&etc).unwrap();
            if http {
                std::fs::write(
                    etc.join(format!("{dom}.conf")),
                    "metrics_listen = \"127.0.0.1:9177\"\n",
                )
                .unwrap();
                if layout == Layout::Proxied {
                    std::fs::write(
                        etc.join("vireo-proxyd.conf"),
                        "metrics_listen = \"[::1]:9178\"\n",
                    )
                    .unwrap();
                }
            }
        },
        &[],
    );
    let mut ev = EventLog::start(&d);
    ok(&d.virsh(&["list", "--all"]));
    fails(&d.virsh(&["dominfo", "nosuch"]));
    ok(&d.virsh(&["define", &write_file(&d, "vm1.xml", &guest_xml("vm1"))]));
    ok(&d.virsh(&["start", "--paused", "vm1"]));
    ok(&d.virsh(&["dominfo", "vm1"]));

    let s = admin_metrics(&d, dom);
    check_calls_and_domains(&s);
    assert_eq!(
        s.one(
            "vireo_daemon_info",
            &[("daemon", dom), ("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    // The admin client asking is itself connected, and its call counted next time.
    assert_eq!(s.one("vireo_clients", &[("socket", "admin")]), 1.0);
    let again = admin_metrics(&d, dom);
    assert!(
        again.one(
            "vireo_rpc_calls_total",
            &[
                ("program", "vireo"),
                ("procedure", "DAEMON_METRICS"),
                ("result", "ok")
            ]
        ) >= 1.0
    );
    if layout == Layout::Proxied {
        let p = admin_metrics(&d, "vireo-proxyd");
        assert_eq!(
            p.one(
                "vireo_daemon_info",
                &[
                    ("daemon", "vireo-proxyd"),
                    ("version", env!("CARGO_PKG_VERSION"))
                ]
            ),
            1.0
        );
        assert!(p.one("vireo_clients_connected_total", &[("socket", "rw")]) >= 5.0);
        assert!(p.find("vireo_domains", &[]).is_empty());
    }

    if http {
        let (status, ctype, text) = http_get(&d, "http://127.0.0.1:9177/metrics");
        assert_eq!(status, 200, "{text}");
        assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
        let h = Scrape::parse(&text);
        check_calls_and_domains(&h);
        assert_eq!(h.one("vireo_clients", &[("socket", "admin")]), 0.0);
        // Anything but GET /metrics is turned away.
        let (status, _, _) = http_get(&d, "http://127.0.0.1:9177/");
        assert_eq!(status, 404);
        if layout == Layout::Proxied {
            let (status, _, text) = http_get(&d, "http://[::1]:9178/metrics");
            assert_eq!(status, 200, "{text}");
            let p = Scrape::parse(&text);
            assert!(p.one("vireo_clients_connected_total", &[("socket", "rw")]) >= 5.0);
        }
    }
    // A shim that dies while its VM runs is a shim lost; a destroyed VM's is not.
    let shim = shim_pid(&d.root, "vm1").expect("its shim");
    vireo_tests::signal(shim, Signal::KILL);
    ev.wait_for("vm1 5 5");
    let after = admin_metrics(&d, dom);
    assert_eq!(after.one("vireo_domains", &[("state", "paused")]), 0.0);
    assert_eq!(after.one("vireo_domains", &[("state", "shutoff")]), 1.0);
    assert_eq!(after.one("vireo_shims_connected", &[]), 0.0);
    assert_eq!(after.one("vireo_shims_lost_total", &[]), 1.0);
    assert!(after
        .find("vireo_shim_last_answer_timestamp_seconds", &[])
        .is_empty());
    ok(&d.virsh(&["start", "vm1"]));
    let running = admin_metrics(&d, dom);
    assert_eq!(running.one("vireo_domains", &[("state", "running")]), 1.0);
    ok(&d.virsh(&["destroy", "vm1"]));
    let after = admin_metrics(&d, dom);
    assert_eq!(after.one("vireo_domains", &[("state", "shutoff")]), 1.0);
    assert_eq!(after.one("vireo_shims_lost_total", &[]), 1.0);
}

vireo_tests::in_every_layout!(metrics);

/// A `metrics_listen` that is not a loopback address stops the daemon at start, with a
/// clear message, from the command line and from the .conf alike (in a network namespace
/// of the test's own, should it not be refused).
#[test]
fn non_loopback_metrics_listen_is_refused() {
    let Some(ns) = NetNs::new() else {
        eprintln!("skipped: needs root for a network namespace");
        return;
    };
    let root = tempfile::Builder::new()
        .prefix("vireo-test")
        .tempdir()
        .unwrap();
    let vireod = bin("vireod");
    let run = |extra: &[&str]| {
        let o = ns
            .command("timeout")
            .args(["30"])
            .arg(&vireod)
            .arg("--root")
            .arg(root.path())
            .args(extra)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{extra:?} was accepted");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = run(&["--metrics-listen", "0.0.0.0:9177"]);
    assert!(
        e.contains("metrics_listen '0.0.0.0:9177' is not a loopback address"),
        "{e}"
    );
    let etc = root.path().join("etc/vireo");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(
        etc.join("vireod.conf"),
        "metrics_listen = \"[2001:db8::1]:9177\"\n",
    )
    .unwrap();
    let e = run(&[]);
    assert!(e.contains("is not a loopback address"), "{e}");
    let e = run(&["--metrics-listen", "nonsense"]);
    assert!(e.contains("expected ADDRESS:PORT"), "{e}");
    // Nothing was left listening or running.
    assert!(!root.path().join("run/vireo/vireod-sock").exists());
}
