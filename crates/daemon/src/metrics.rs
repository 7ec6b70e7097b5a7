//! The daemon's metrics, in Prometheus' text format: calls by procedure and result with
//! their latencies, clients by socket, authentication failures, domains by state and the
//! health of their shims (the daemons that run VMs), and the process's own figures.
//!
//! They are served on the admin socket (Vireo's `DAEMON_METRICS` procedure, what `vireo
//! admin-metrics` prints) and, with `metrics_listen` in the .conf (or `--metrics-listen`),
//! as `GET /metrics` over plain HTTP on a loopback address. Nothing there asks who is
//! scraping, so another address must be allowed explicitly (`metrics_allow_remote = 1`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use vireo_qemu::health::{Health, STATE_NAMES};
use vireo_qemu::QemuDriver;
use vireo_rpc::metrics::{write_process, write_servers, ServerMetrics, Text};

/// HTTP connections served at once; more wait to be accepted.
const HTTP_CONNECTIONS: usize = 8;
/// How long one HTTP connection may stay open.
const HTTP_CONNECTION_TIME: Duration = Duration::from_secs(30);

/// What a daemon's metrics are made of.
pub struct Exporter {
    daemon: &'static str,
    /// Each server's counters; true for the admin server.
    servers: Vec<(Arc<ServerMetrics>, bool)>,
    qemu: Option<Arc<QemuDriver>>,
}

impl Exporter {
    pub fn new(
        daemon: &'static str,
        servers: Vec<(Arc<ServerMetrics>, bool)>,
        qemu: Option<Arc<QemuDriver>>,
    ) -> Self {
        Exporter {
            daemon,
            servers,
            qemu,
        }
    }

    /// Every metric, now.
    pub fn render(&self) -> String {
        let mut t = Text::new();
        t.family(
            "vireo_daemon_info",
            "gauge",
            "The daemon's name and version (always 1)",
        );
        t.sample(
            "vireo_daemon_info",
            &[
                ("daemon", self.daemon),
                ("version", env!("CARGO_PKG_VERSION")),
            ],
            1,
        );
        let servers: Vec<(&ServerMetrics, bool)> =
            self.servers.iter().map(|(m, a)| (&**m, *a)).collect();
        write_servers(&mut t, &servers);
        if let Some(q) = &self.qemu {
            write_domains(&mut t, &q.health());
        }
        write_process(&mut t);
        t.into_string()
    }
}

/// The `vireo_domains` and `vireo_shim*` families.
fn write_domains(t: &mut Text, h: &Health) {
    t.family(
        "vireo_domains",
        "gauge",
        "Domains by state (libvirt's state names)",
    );
    for (name, n) in STATE_NAMES.iter().zip(h.by_state) {
        t.sample("vireo_domains", &[("state", name)], n);
    }
    t.family(
        "vireo_shims_connected",
        "gauge",
        "VM shims the daemon is connected to",
    );
    t.sample("vireo_shims_connected", &[], h.shims.len() as u64);
    t.family(
        "vireo_shim_calls_failed_total",
        "counter",
        "Calls to a VM's shim that got no answer (the shim gone, its socket failed)",
    );
    t.sample("vireo_shim_calls_failed_total", &[], h.shim_calls_failed);
    t.family(
        "vireo_shims_lost_total",
        "counter",
        "Shims that went away while their VM was running",
    );
    t.sample("vireo_shims_lost_total", &[], h.shims_lost);
    t.family(
        "vireo_shim_last_answer_timestamp_seconds",
        "gauge",
        "When each running domain's shim last answered a call, in seconds since the epoch",
    );
    for (dom, at) in &h.shims {
        if let Some(at) = at {
            let secs = at.duration_since(UNIX_EPOCH).unwrap_or_default();
            t.sample_f(
                "vireo_shim_last_answer_timestamp_seconds",
                &[("domain", dom)],
                secs.as_secs_f64(),
            );
        }
    }
}

/// The address `metrics_listen` names: `HOST:PORT` with an IP address (`[::1]:9177` for
/// IPv6) or `localhost`. A non-loopback address is refused unless `allow_remote`.
pub fn check_listen(addr: &str, allow_remote: bool) -> Result<SocketAddr, String> {
    let parsed = match addr.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => match addr.rsplit_once(':') {
            Some(("localhost", port)) => {
                let port = port
                    .parse()
                    .map_err(|_| format!("metrics_listen '{addr}': invalid port '{port}'"))?;
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
            }
            _ => {
                return Err(format!(
                    "metrics_listen '{addr}': expected ADDRESS:PORT, e.g. 127.0.0.1:9177 or \
                     [::1]:9177"
                ))
            }
        },
    };
    if !parsed.ip().is_loopback() && !allow_remote {
        return Err(format!(
            "metrics_listen '{addr}' is not a loopback address: the metrics are served to \
             anyone who connects, so only 127.0.0.0/8 and ::1 are allowed (set \
             metrics_allow_remote = 1 to allow others)"
        ));
    }
    Ok(parsed)
}

/// Binds the metrics port (at start, so that a port in use stops the daemon there).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("metrics_listen: cannot listen on {addr}: {e}"))
}

/// Serves `GET /metrics` on `listener` until `stop` turns true.
pub async fn serve_http(
    listener: TcpListener,
    exporter: Arc<Exporter>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(HTTP_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = stop.changed() => return,
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (tcp, _) = tokio::select! {
            _ = stop.changed() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    log::warn!("metrics: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let exporter = Arc::clone(&exporter);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let r = answer(&exporter, &req);
                async move { Ok::<_, std::convert::Infallible>(r) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(HTTP_CONNECTION_TIME, conn).await;
            drop(permit);
        });
    }
}

/// The answer to one HTTP request.
fn answer<B>(exporter: &Exporter, req: &hyper::Request<B>) -> hyper::Response<String> {
    use hyper::{header, Method, StatusCode};
    let plain = |status: StatusCode, body: &str| {
        let mut r = hyper::Response::new(body.to_string());
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    if req.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "Not found: the metrics are at /metrics\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "Use GET\n");
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let mut r = hyper::Response::new(exporter.render());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_unless_allowed() {
        for ok in [
            "127.0.0.1:9177",
            "127.8.9.10:1",
            "[::1]:9177",
            "localhost:9177",
        ] {
            assert!(check_listen(ok, false).is_ok(), "{ok}");
        }
        for bad in ["0.0.0.0:9177", "192.0.2.1:9177", "[::]:9177"] {
            let e = check_listen(bad, false).unwrap_err();
            assert!(e.contains("not a loopback address"), "{e}");
            assert!(check_listen(bad, true).is_ok(), "{bad}");
        }
        for junk in ["9177", "127.0.0.1", "localhost:x", "example.org:9177"] {
            assert!(check_listen(junk, false).is_err(), "{junk}");
        }
    }

    #[test]
    fn domains_and_shims() {
        let mut h = Health {
            shim_calls_failed: 2,
            shims_lost: 1,
            ..Health::default()
        };
        h.by_state[3] = 1;
        h.by_state[5] = 4;
        h.shims.push((
            "vm\"1".into(),
            Some(UNIX_EPOCH + Duration::from_millis(1_500)),
        ));
        h.shims.push(("vm2".into(), None));
        let mut t = Text::new();
        write_domains(&mut t, &h);
        let s = t.into_string();
        for want in [
            r#"vireo_domains{state="paused"} 1"#,
            r#"vireo_domains{state="shutoff"} 4"#,
            r#"vireo_domains{state="running"} 0"#,
            "vireo_shims_connected 2",
            "vireo_shim_calls_failed_total 2",
            "vireo_shims_lost_total 1",
            r#"vireo_shim_last_answer_timestamp_seconds{domain="vm\"1"} 1.5"#,
        ] {
            assert!(s.lines().any(|l| l == want), "no {want} in\n{s}");
        }
        assert!(!s.contains("vm2"));
    }

    #[tokio::test]
    async fn http_serves_metrics_only() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let m = Arc::new(ServerMetrics::default());
        m.calls.record(
            vireo_proto::REMOTE_PROGRAM,
            157,
            Ok(()),
            Duration::from_micros(3),
        );
        let exp = Arc::new(Exporter::new("vireod", vec![(m, false)], None));
        let l = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = l.local_addr().unwrap();
        let (stop_tx, stop) = watch::channel(false);
        let task = tokio::spawn(serve_http(l, exp, stop));
        let get = |req: &'static str| async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(req.as_bytes()).await.unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).await.unwrap();
            out
        };
        let r = get("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("content-type: text/plain; version=0.0.4"), "{r}");
        assert!(r.contains(r#"vireo_daemon_info{daemon="vireod""#), "{r}");
        assert!(r.contains(r#"procedure="CONNECT_GET_LIB_VERSION",result="ok"} 1"#));
        let r = get("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 404"), "{r}");
        let r = get(
            "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 405"), "{r}");
        stop_tx.send_replace(true);
        task.await.unwrap();
    }
}
