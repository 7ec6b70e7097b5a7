//! A server seen from the outside: its clients, their credentials and its limits, behind an
//! object-safe trait, so that an admin service can list and manage servers whatever their
//! [`Service`] type. [`Named`] adapts any [`Server`] using only its public API.

use std::sync::{Arc, Weak};
use std::time::SystemTime;

use crate::server::{Server, Service};

/// libvirt's `VIR_CLIENT_TRANS_UNIX`.
pub const TRANSPORT_UNIX: u32 = 0;
/// libvirt's `VIR_CLIENT_TRANS_TCP`.
pub const TRANSPORT_TCP: u32 = 1;
/// libvirt's `VIR_CLIENT_TRANS_TLS`.
pub const TRANSPORT_TLS: u32 = 2;

/// One connected client, as an administrator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSummary {
    /// The server's id for the client (unique for the server's lifetime, never reused).
    pub id: u64,
    pub connected_at: SystemTime,
    /// Connected through a read-only socket.
    pub readonly: bool,
    /// The peer's credentials (`SO_PEERCRED`).
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    /// One of libvirt's `virClientTransport` values.
    pub transport: u32,
    /// The peer's address, `IP;PORT` as libvirt writes it (TCP and TLS).
    pub sock_addr: Option<String>,
    /// The distinguished name of the client's certificate (TLS).
    pub x509_dname: Option<String>,
    /// The user SASL authenticated.
    pub sasl_user: Option<String>,
}

/// A server's client limits and how close it is to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections beyond this many are refused.
    pub max_clients: usize,
    /// Clients connected now.
    pub clients: usize,
    /// Calls one client may have in progress at once.
    pub max_client_requests: usize,
}

/// What an admin service needs to know about, and do to, one server.
pub trait ServerInfo: Send + Sync {
    /// The server's name, as `virt-admin srv-list` shows it.
    fn name(&self) -> &str;
    /// Every connected client, by id.
    fn clients(&self) -> Vec<ClientSummary>;
    /// One client, if it is connected.
    fn client(&self, id: u64) -> Option<ClientSummary> {
        self.clients().into_iter().find(|c| c.id == id)
    }
    /// Disconnects a client; false when there is no such client.
    fn disconnect(&self, id: u64) -> bool;
    fn limits(&self) -> Limits;
}

enum Handle<S: Service> {
    Strong(Arc<Server<S>>),
    Weak(Weak<Server<S>>),
}

/// A [`Server`] under a name.
pub struct Named<S: Service> {
    name: String,
    server: Handle<S>,
}

impl<S: Service> Named<S> {
    /// Names `server`, keeping it alive.
    pub fn new(name: impl Into<String>, server: &Arc<Server<S>>) -> Self {
        Named {
            name: name.into(),
            server: Handle::Strong(Arc::clone(server)),
        }
    }

    /// Names `server` without keeping it alive: for a service that lists the server it runs
    /// in (a strong reference would be a cycle). Once the server is gone it has no clients.
    pub fn weak(name: impl Into<String>, server: &Arc<Server<S>>) -> Self {
        Named {
            name: name.into(),
            server: Handle::Weak(Arc::downgrade(server)),
        }
    }

    fn server(&self) -> Option<Arc<Server<S>>> {
        match &self.server {
            Handle::Strong(s) => Some(Arc::clone(s)),
            Handle::Weak(w) => w.upgrade(),
        }
    }
}

impl<S: Service> ServerInfo for Named<S> {
    fn name(&self) -> &str {
        &self.name
    }

    fn clients(&self) -> Vec<ClientSummary> {
        let Some(server) = self.server() else {
            return Vec::new();
        };
        let mut v: Vec<ClientSummary> = server
            .clients()
            .iter()
            // A client being torn down is gone as far as anyone asking is concerned.
            .filter(|c| !c.is_closed())
            .map(|c| {
                // Who the client acts for (a forwarding daemon vouches for its caller).
                let id = c.effective_identity();
                ClientSummary {
                    id: c.id,
                    connected_at: c.connected_at,
                    readonly: c.readonly,
                    uid: id.uid,
                    gid: id.gid,
                    pid: id.pid,
                    transport: c.conn.transport as u32,
                    sock_addr: c.conn.addr.map(|a| format!("{};{}", a.ip(), a.port())),
                    x509_dname: c.x509_dname(),
                    sasl_user: c.sasl_user(),
                }
            })
            .collect();
        v.sort_by_key(|c| c.id);
        v
    }

    fn disconnect(&self, id: u64) -> bool {
        let Some(server) = self.server() else {
            return false;
        };
        match server
            .clients()
            .into_iter()
            .find(|c| c.id == id && !c.is_closed())
        {
            Some(c) => {
                c.close();
                true
            }
            None => false,
        }
    }

    fn limits(&self) -> Limits {
        let clients = self.clients().len();
        match self.server() {
            Some(s) => Limits {
                max_clients: s.config().max_clients,
                clients,
                max_client_requests: s.config().max_client_requests,
            },
            None => Limits {
                max_clients: 0,
                clients,
                max_client_requests: 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{Client, Dispatch, Outcome, ServerConfig};
    use std::io::Write;
    use vireo_proto::Header;

    struct Echo;

    impl Service for Echo {
        type ClientData = ();
        fn knows_program(&self, _prog: u32, _vers: u32) -> bool {
            true
        }
        fn call(self: Arc<Self>, _c: &Arc<Client<()>>, _h: Header, _p: &[u8]) -> Dispatch {
            Dispatch::Now(Outcome::Reply(Vec::new()))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lists_and_disconnects_clients() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sock");
        let listener = crate::server::bind_unix(&path, 0o700).unwrap();
        let server = Server::new(Arc::new(Echo), ServerConfig::default());
        let s = Arc::clone(&server);
        let task = tokio::spawn(async move { s.serve(listener, true).await });
        let named = Named::new("test", &server);
        assert_eq!(named.name(), "test");
        assert!(named.clients().is_empty());

        let p = path.clone();
        let mut raw = tokio::task::spawn_blocking(move || {
            let mut s = std::os::unix::net::UnixStream::connect(p).unwrap();
            // A keepalive PONG: answered by nothing, but proves the server read it.
            let frame = vireo_proto::header::encode_frame(
                &Header::new(
                    vireo_proto::KEEPALIVE_PROGRAM,
                    1,
                    vireo_proto::KEEPALIVE_PONG,
                    vireo_proto::MessageType::Message,
                    0,
                    vireo_proto::Status::Ok,
                ),
                &[],
            );
            s.write_all(&frame).unwrap();
            s
        })
        .await
        .unwrap();
        let mut clients = Vec::new();
        for _ in 0..200 {
            clients = named.clients();
            if !clients.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(clients.len(), 1);
        let c = &clients[0];
        assert!(c.readonly);
        assert_eq!(c.pid, Some(std::process::id() as i32));
        assert_eq!(c.transport, TRANSPORT_UNIX);
        assert_eq!(named.client(c.id).as_ref(), Some(c));
        assert_eq!(named.limits().clients, 1);
        assert_eq!(named.limits().max_clients, 5000);

        assert!(!named.disconnect(c.id + 100));
        assert!(named.disconnect(c.id));
        let n = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            raw.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            let mut b = [0u8; 16];
            raw.read(&mut b).unwrap_or(0)
        })
        .await
        .unwrap();
        assert_eq!(n, 0, "the connection should be closed");

        let weak = Named::weak("w", &server);
        server.shutdown();
        task.await.unwrap();
        server.wait_idle().await;
        drop(server);
        drop(named);
        assert!(weak.clients().is_empty());
        assert!(!weak.disconnect(1));
    }
}
