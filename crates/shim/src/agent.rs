//! The guest agent (qemu-ga) on the VM's `org.qemu.guest_agent.0` channel: the shim is its
//! one client. QEMU listens on the channel's UNIX socket; the shim connects when a call
//! needs the agent, resynchronises (`guest-sync-delimited`: a 0xFF marker, then the id it
//! sent back) and runs the command. Whether the guest side is open is known from QEMU's
//! `VSERPORT_CHANGE` events, which also become libvirt's AGENT_LIFECYCLE events.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{anyhow, bail};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use vireo_proto::remote::procs;

use crate::vm::Vm;

/// The channel name qemu-ga listens on.
pub const AGENT_CHANNEL: &str = "org.qemu.guest_agent.0";

/// How long a resynchronisation may take.
const SYNC_WAIT: Duration = Duration::from_secs(5);
/// How long a command may take unless its caller says otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);
/// The longest line the agent may send (its answers are small; a guest cannot make the
/// shim hold more).
const MAX_LINE: usize = 16 << 20;

/// The agent is not there (`VIR_ERR_AGENT_UNRESPONSIVE`).
#[derive(Debug)]
pub struct Unresponsive(pub String);
impl std::fmt::Display for Unresponsive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Guest agent is not responding: {}", self.0)
    }
}
impl std::error::Error for Unresponsive {}

/// The VM has no agent channel (`VIR_ERR_ARGUMENT_UNSUPPORTED`).
#[derive(Debug)]
pub struct NotConfigured;
impl std::fmt::Display for NotConfigured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QEMU guest agent is not configured")
    }
}
impl std::error::Error for NotConfigured {}

/// The agent answered with an error.
#[derive(Debug)]
pub struct AgentError(pub String);
impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl std::error::Error for AgentError {}

/// The connection to the agent, made when first needed.
struct Conn {
    rd: BufReader<tokio::net::unix::OwnedReadHalf>,
    wr: tokio::net::unix::OwnedWriteHalf,
}

/// The agent's state in the shim.
#[derive(Default)]
pub struct Agent {
    conn: tokio::sync::Mutex<Option<Conn>>,
    /// The guest has the port open (qemu-ga runs).
    open: AtomicBool,
    next_id: AtomicU32,
}

impl Agent {
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }
}

async fn read_line(c: &mut Conn) -> anyhow::Result<Vec<u8>> {
    let mut line = Vec::new();
    let n = (&mut c.rd)
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        bail!("the agent's channel closed");
    }
    Ok(line)
}

/// Skips everything up to the agent's 0xFF marker, then reads the answer to the sync with
/// `id` (stale answers of earlier commands are dropped on the way).
async fn sync(c: &mut Conn, id: u32) -> anyhow::Result<()> {
    let msg = json!({"execute": "guest-sync-delimited", "arguments": {"id": id}});
    let mut out = vec![0xff];
    out.extend_from_slice(msg.to_string().as_bytes());
    out.push(b'\n');
    c.wr.write_all(&out).await?;
    loop {
        let mut skipped = Vec::new();
        (&mut c.rd)
            .take(MAX_LINE as u64)
            .read_until(0xff, &mut skipped)
            .await?;
        if skipped.last() != Some(&0xff) {
            bail!("the agent's channel closed");
        }
        let line = read_line(c).await?;
        let v: Value = serde_json::from_slice(&line).unwrap_or(Value::Null);
        if v["return"].as_u64() == Some(u64::from(id)) {
            return Ok(());
        }
    }
}

impl Vm {
    /// The agent channel's chardev and device ids, if the VM has one.
    fn agent_channel(&self) -> Option<(String, String)> {
        self.channels()
            .iter()
            .find(|c| c.def.target.as_ref().and_then(|t| t.name.as_deref()) == Some(AGENT_CHANNEL))
            .map(|c| (c.chardev.clone(), c.id.clone()))
    }

    /// Reads whether the guest has the agent's port open (at start and after a restart
    /// of the shim, before any event said so).
    pub async fn probe_agent(&self) {
        let Some((chardev, _)) = self.agent_channel() else {
            return;
        };
        if let Ok(Value::Array(all)) = self.qmp().execute("query-chardev", None).await {
            let open = all
                .iter()
                .find(|c| c["label"] == chardev.as_str())
                .and_then(|c| c["frontend-open"].as_bool())
                .unwrap_or(false);
            self.agent.open.store(open, Ordering::SeqCst);
        }
    }

    /// QEMU's VSERPORT_CHANGE: the guest opened or closed a virtio-serial port; for the
    /// agent's, the clients hear AGENT_LIFECYCLE (connected 1 / disconnected 2, reason
    /// channel 2) and a closed port drops the connection.
    pub async fn on_vserport_change(&self, data: &Value) {
        let Some((_, id)) = self.agent_channel() else {
            return;
        };
        if data["id"] != id.as_str() {
            return;
        }
        let open = data["open"].as_bool().unwrap_or(false);
        let was = self.agent.open.swap(open, Ordering::SeqCst);
        if !open {
            *self.agent.conn.lock().await = None;
        }
        if was != open {
            let msg = vireo_proto::remote::DomainEventCallbackAgentLifecycleMsg {
                callback_id: 0,
                dom: crate::serve::handle(self),
                state: if open { 1 } else { 2 },
                reason: 2,
            };
            self.emit_message(
                procs::DOMAIN_EVENT_CALLBACK_AGENT_LIFECYCLE,
                vireo_xdr::to_bytes(&msg),
            );
        }
    }

    /// Runs agent command `cmd` (with `args`) and returns what it returned. `wait`: how
    /// long to wait for the answer (None: send and do not wait, for commands after which
    /// the agent says nothing, such as `guest-shutdown`).
    pub async fn agent(
        &self,
        cmd: &str,
        args: Option<Value>,
        wait: Option<Duration>,
    ) -> anyhow::Result<Value> {
        let mut msg = json!({ "execute": cmd });
        if let Some(a) = args {
            msg["arguments"] = a;
        }
        self.agent_raw(&msg.to_string(), wait).await.and_then(|v| {
            if let Some(e) = v.get("error") {
                let desc = e["desc"].as_str().unwrap_or("unknown error");
                bail!(AgentError(format!(
                    "unable to execute QEMU agent command '{cmd}': {desc}"
                )));
            }
            Ok(v.get("return").cloned().unwrap_or(Value::Null))
        })
    }

    /// Sends one JSON command as given and returns the agent's whole answer
    /// (`{"return": …}` or `{"error": …}`).
    pub async fn agent_raw(&self, text: &str, wait: Option<Duration>) -> anyhow::Result<Value> {
        self.require_running()?;
        let Some((chardev, _)) = self.agent_channel() else {
            bail!(NotConfigured);
        };
        if !self.agent.is_open() {
            bail!(Unresponsive("QEMU guest agent is not connected".into()));
        }
        let mut guard = self.agent.conn.lock().await;
        if guard.is_none() {
            let path = self.chardev_path(&chardev).await?;
            let s = UnixStream::connect(&path)
                .await
                .map_err(|e| anyhow!(Unresponsive(format!("cannot reach {path}: {e}"))))?;
            let (r, w) = s.into_split();
            *guard = Some(Conn {
                rd: BufReader::new(r),
                wr: w,
            });
        }
        let Some(c) = guard.as_mut() else {
            bail!(Unresponsive("no connection".into()));
        };
        let id = self.agent.next_id.fetch_add(1, Ordering::SeqCst) ^ std::process::id();
        let r = async {
            match tokio::time::timeout(SYNC_WAIT, sync(c, id)).await {
                Ok(r) => r?,
                Err(_) => bail!(Unresponsive("Guest agent not available for now".into())),
            }
            c.wr.write_all(text.trim().as_bytes()).await?;
            c.wr.write_all(b"\n").await?;
            let Some(wait) = wait else {
                return Ok(Value::Null);
            };
            match tokio::time::timeout(wait, read_line(c)).await {
                Ok(line) => Ok(serde_json::from_slice(&line?)
                    .map_err(|e| anyhow!("the agent's answer is not JSON: {e}"))?),
                Err(_) => bail!(Unresponsive("Guest agent not available for now".into())),
            }
        }
        .await;
        if r.is_err() {
            // Whatever was half read goes with the connection.
            *guard = None;
        }
        r
    }

    /// A shutdown (or with `reboot`, a reboot) as `flags` ask: ACPI (1; the default) or
    /// the guest agent (2); with both, the agent first, ACPI if it cannot.
    pub async fn shutdown_mode(&self, flags: u32, reboot: bool) -> anyhow::Result<()> {
        const ACPI: u32 = 1;
        const AGENT: u32 = 2;
        if flags & !(ACPI | AGENT) != 0 {
            bail!(crate::hotplug::Unsupported(format!(
                "shutdown or reboot mode 0x{:x} is not supported (acpi, agent)",
                flags & !(ACPI | AGENT)
            )));
        }
        if flags & AGENT == 0 {
            return self.acpi_power(reboot).await;
        }
        self.require(&[vireo_proto::remote::state::RUNNING], "running")?;
        let mode = if reboot { "reboot" } else { "powerdown" };
        // The agent does not answer a shutdown: it goes with the guest.
        match self
            .agent("guest-shutdown", Some(json!({ "mode": mode })), None)
            .await
        {
            Ok(_) => Ok(()),
            Err(_) if flags & ACPI != 0 => self.acpi_power(reboot).await,
            Err(e) => Err(e),
        }
    }

    async fn acpi_power(&self, reboot: bool) -> anyhow::Result<()> {
        if reboot {
            self.reboot().await
        } else {
            self.shutdown().await
        }
    }

    /// The path of a UNIX socket chardev QEMU listens on (`query-chardev`'s filename:
    /// `disconnected:unix:PATH,server=on` or `unix:PATH,server=on <-> …`).
    async fn chardev_path(&self, label: &str) -> anyhow::Result<String> {
        let all = self.qmp().execute("query-chardev", None).await?;
        let name = all
            .as_array()
            .and_then(|a| a.iter().find(|c| c["label"] == label))
            .and_then(|c| c["filename"].as_str())
            .ok_or_else(|| anyhow!(Unresponsive(format!("no chardev {label}"))))?;
        let rest = name.strip_prefix("disconnected:").unwrap_or(name);
        let path = rest
            .strip_prefix("unix:")
            .and_then(|p| p.split([',', ' ']).next())
            .ok_or_else(|| {
                anyhow!(Unresponsive(format!(
                    "the agent's channel is not a UNIX socket ({name})"
                )))
            })?;
        Ok(path.to_string())
    }
}
