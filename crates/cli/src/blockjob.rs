//! blockcommit, blockpull, blockcopy and blockjob, each printing what virsh prints for it.
//! With --wait (or an option that implies it) the job is followed to its end as virsh
//! follows it: the job's events say how it ended, its progress is read every half second
//! (and shown with --verbose, `\rBlock Pull: [ 42 %]` on stderr), a --timeout or Ctrl-C
//! aborts it, and a copy or active commit, once ready, is pivoted or finished if asked.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use vireo_client::{BlockJobEvents, BlockJobInfo, Connect, Domain};
use vireo_proto::error::code;
use vireo_proto::remote::block_job as bj;
use vireo_proto::typed::{TypedParam, TypedValue};

use crate::args::Args;
use crate::cnum::whole_number;
use crate::network::Quiet;
use crate::virsh::{begin, domain, escape, finish, given, progress, read_file, Opt, Spec};

pub const COMMANDS: [&str; 4] = ["blockcommit", "blockpull", "blockcopy", "blockjob"];

/// How often a job we wait for is looked at.
const POLL: Duration = Duration::from_millis(500);

/// How many looks find the job gone, without the event of its end, before it is taken as
/// completed.
const GONE_POLLS: u32 = 3;

pub(crate) fn spec(cmd: &str) -> Option<Spec> {
    Some(match cmd {
        "blockcommit" => Spec {
            switches: &[
                "--shallow",
                "--active",
                "--delete",
                "--wait",
                "--verbose",
                "--pivot",
                "--keep-overlay",
                "--async",
                "--keep-relative",
                "--bytes",
            ],
            valued: &[
                "--domain",
                "--path",
                "--bandwidth",
                "--base",
                "--top",
                "--timeout",
            ],
            positionals: &["domain", "path", "bandwidth", "base", "top", "timeout"],
            required: 2,
            list: None,
        },
        "blockpull" => Spec {
            switches: &[
                "--wait",
                "--verbose",
                "--async",
                "--keep-relative",
                "--bytes",
            ],
            valued: &["--domain", "--path", "--bandwidth", "--base", "--timeout"],
            positionals: &["domain", "path", "bandwidth", "base", "timeout"],
            required: 2,
            list: None,
        },
        "blockcopy" => Spec {
            switches: &[
                "--shallow",
                "--reuse-external",
                "--blockdev",
                "--wait",
                "--verbose",
                "--pivot",
                "--finish",
                "--async",
                "--bytes",
                "--transient-job",
                "--synchronous-writes",
                "--print-xml",
            ],
            valued: &[
                "--domain",
                "--path",
                "--dest",
                "--bandwidth",
                "--timeout",
                "--xml",
                "--format",
                "--granularity",
                "--buf-size",
            ],
            positionals: &[
                "domain",
                "path",
                "dest",
                "bandwidth",
                "timeout",
                "xml",
                "format",
                "granularity",
                "buf-size",
            ],
            required: 2,
            list: None,
        },
        "blockjob" => Spec {
            switches: &[
                "--abort", "--async", "--pivot", "--info", "--bytes", "--raw",
            ],
            valued: &["--domain", "--path", "--bandwidth"],
            positionals: &["domain", "path", "bandwidth"],
            required: 2,
            list: None,
        },
        _ => return None,
    })
}

pub async fn run(uri: &str, readonly: bool, cmd: &str, rest: &[String]) -> Result<()> {
    let (p, c) = begin(uri, readonly, cmd, rest, spec).await?;
    let (a, opt) = (&p.args, |name: &str| p.opt(name));
    let r = match cmd {
        "blockcommit" => commit(&c, a, &opt).await,
        "blockpull" => pull(&c, a, &opt).await,
        "blockcopy" => copy(&c, a, &opt).await,
        _ => job(&c, a, &opt).await,
    };
    finish(c, r).await
}

/// Refuses two options given together, in virsh's words.
fn exclusive(pairs: &[(&str, bool, &str, bool)]) -> Result<()> {
    for (x, gx, y, gy) in pairs {
        if *gx && *gy {
            bail!("Options --{x} and --{y} are mutually exclusive");
        }
    }
    Ok(())
}

/// `--bandwidth` as virsh reads it: a plain number (MiB/s, or bytes/s with `bytes`; a
/// negative one wraps as C's `strtoul` wraps it), or a size with a unit (`10M`, `1GiB`,
/// `5KB`), in bytes, sent as whole MiB/s unless `bytes`.
fn bandwidth(v: &str, bytes: bool) -> Result<u64> {
    if let Some((neg, n)) = whole_number(v) {
        return Ok(if neg { n.wrapping_neg() } else { n });
    }
    let bad =
        format!("Scaled numeric value '{v}' for <--bandwidth> option is malformed or out of range");
    // The number, then its unit: what `strtoull` takes, without a sign.
    let t = v.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let t = t.strip_prefix('+').unwrap_or(t);
    let end = t.bytes().take_while(u8::is_ascii_digit).count();
    let Ok(n) = t[..end].parse::<u64>() else {
        bail!(bad);
    };
    let scaled = scaled(n, &t[end..]).map_err(|why| anyhow!(why).context(bad))?;
    Ok(if bytes { scaled } else { scaled >> 20 })
}

/// `n` times its unit: `k`, `M`, `G`, `T`, `P`, `E` are powers of 1024 (also as `KiB` …),
/// `KB` … powers of 1000, `b` is a byte.
fn scaled(n: u64, unit: &str) -> std::result::Result<u64, String> {
    if unit.is_empty() {
        return Ok(n);
    }
    let unknown = || format!("invalid argument: unknown suffix '{unit}'");
    let mut chars = unit.chars();
    let first = chars.next().unwrap_or_default();
    let tail = chars.as_str();
    let base: u64 = if tail.is_empty() || tail.eq_ignore_ascii_case("iB") {
        1024
    } else if tail.eq_ignore_ascii_case("B") {
        1000
    } else {
        return Err(unknown());
    };
    let power = match first.to_ascii_lowercase() {
        'b' => 0,
        'k' => 1,
        'm' => 2,
        'g' => 3,
        't' => 4,
        'p' => 5,
        'e' => 6,
        _ => return Err(unknown()),
    };
    let scale = base.pow(power);
    n.checked_mul(scale)
        .ok_or_else(|| format!("numerical overflow: value too large: {n}{unit}"))
}

/// A numeric option virsh takes as a non-negative integer of at most `max`.
fn unsigned(name: &str, v: Option<&str>, max: u64) -> Result<Option<u64>> {
    let Some(v) = v else { return Ok(None) };
    match whole_number(v) {
        Some((false, n)) if n <= max => Ok(Some(n)),
        _ => bail!("Numeric value '{v}' for <{name}> option is malformed or out of range"),
    }
}

/// `--timeout SECONDS`: a positive number of seconds that fits in milliseconds.
fn timeout(v: Option<&str>) -> Result<Option<Duration>> {
    let Some(v) = v else { return Ok(None) };
    match whole_number(v) {
        Some((false, n)) if n > 0 && n <= (i32::MAX / 1000) as u64 => {
            Ok(Some(Duration::from_secs(n)))
        }
        _ => bail!("Numeric value '{v}' for <timeout> option is malformed or out of range"),
    }
}

/// virsh's name of a job type.
fn job_name(type_: i32) -> &'static str {
    match type_ {
        bj::TYPE_PULL => "Block Pull",
        bj::TYPE_COPY => "Block Copy",
        bj::TYPE_COMMIT => "Block Commit",
        bj::TYPE_ACTIVE_COMMIT => "Active Block Commit",
        5 => "Backup",
        _ => "Unknown job",
    }
}

/// A job being waited for: the disk, how it is shown, when and how it is aborted.
struct Wait<'a> {
    c: &'a Connect,
    d: &'a Domain,
    path: &'a str,
    label: &'static str,
    verbose: bool,
    timeout: Option<Duration>,
    /// How the job is aborted when it times out (`ABORT_ASYNC` with --async).
    abort_flags: u32,
    /// `None` when the daemon would not send them: then a job that went is taken as
    /// completed, and one at its end as ready.
    events: Option<BlockJobEvents>,
}

impl<'a> Wait<'a> {
    /// The wait for the job about to start on `path`, as `a`'s --verbose and --async ask;
    /// when `blocking`, registered for the domain's block job events first.
    async fn prepare(
        c: &'a Connect,
        d: &'a Domain,
        path: &'a str,
        label: &'static str,
        a: &Args<'_>,
        timeout: Option<Duration>,
        blocking: bool,
    ) -> Wait<'a> {
        let events = if blocking {
            c.block_job_events(d).await.ok()
        } else {
            None
        };
        Wait {
            c,
            d,
            path,
            label,
            verbose: a.has("--verbose"),
            timeout,
            abort_flags: abort_flags(a),
            events,
        }
    }

    /// Follows the job to its end, or to its ready phase: returns `block_job::COMPLETED`,
    /// `READY`, `FAILED` or `CANCELED` (timed out or interrupted, and aborted).
    async fn run(&mut self) -> Result<i32> {
        let start = Instant::now();
        let mut interrupt =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
        let mut interrupted = false;
        let mut status = None;
        let mut shown = None;
        let mut gone = 0;
        let end = loop {
            let info = self
                .c
                .block_job_info(self.d, self.path, 0)
                .await
                .with_context(|| format!("failed to query job for disk {}", self.path))?;
            gone = if info.is_none() { gone + 1 } else { 0 };
            match (&self.events, status, info) {
                (Some(_), Some(s), _) => break s,
                // Without events: a job that went is done, one at its end is ready.
                (None, _, None) => break bj::COMPLETED,
                (None, _, Some(i)) if i.cur == i.end => break bj::READY,
                // No event of ours (the disk named otherwise than the events name it)
                // and the job long gone: it is done, rather than waited for forever.
                (Some(_), None, None) if gone > GONE_POLLS => break bj::COMPLETED,
                _ => {}
            }
            // Shown when it moved, as virsh shows it.
            if let Some(i) = info.filter(|i| self.verbose && (i.cur != 0 || i.end != 0)) {
                if shown != Some((i.cur, i.end)) {
                    progress(self.label, i.end.wrapping_sub(i.cur), i.end);
                    shown = Some((i.cur, i.end));
                }
            }
            if interrupted || self.timeout.is_some_and(|t| start.elapsed() > t) {
                self.c
                    .block_job_abort(self.d, self.path, self.abort_flags)
                    .await
                    .with_context(|| format!("failed to abort job for disk '{}'", self.path))?;
                break bj::CANCELED;
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                Some(ev) = next_event(&mut self.events) => {
                    if ev.disk == self.path {
                        status = Some(ev.status);
                    }
                }
                Some(()) = next_interrupt(&mut interrupt) => interrupted = true,
            }
        };
        if self.verbose && (end == bj::COMPLETED || end == bj::READY) {
            progress(self.label, 0, 1);
        }
        Ok(end)
    }

    /// The job's start came to `r`: the wait goes on if it started, and ends (its
    /// registrations with it) if not.
    async fn started(self, r: vireo_client::Result<()>) -> Result<Self> {
        match r {
            Ok(()) => Ok(self),
            Err(e) => {
                self.close().await;
                Err(e.into())
            }
        }
    }

    /// Ends the registration for the job's events.
    async fn close(self) {
        if let Some(ev) = self.events {
            let _ = ev.close(self.c).await;
        }
    }
}

async fn next_event(events: &mut Option<BlockJobEvents>) -> Option<vireo_client::BlockJobEvent> {
    match events {
        Some(e) => e.next().await,
        None => std::future::pending().await,
    }
}

async fn next_interrupt(sig: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match sig {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// How virsh ends a job it waited for: without waiting for the end with --async.
fn abort_flags(a: &Args) -> u32 {
    if a.has("--async") {
        bj::ABORT_ASYNC
    } else {
        0
    }
}

/// Waits for the job: its status once completed or ready; an error once aborted (after
/// `aborted` is printed, exiting as virsh does, with no message) or failed (`failed`).
async fn outcome(mut w: Wait<'_>, aborted: &str, failed: &str) -> Result<i32> {
    let r = w.run().await;
    w.close().await;
    match r? {
        bj::CANCELED => {
            print!("\n{aborted}");
            Err(Quiet.into())
        }
        bj::FAILED => bail!("\n{failed}"),
        s => Ok(s),
    }
}

/// A command's option or positional, by name.
/// `blockcommit`.
async fn commit(c: &Connect, a: &Args<'_>, opt: &Opt<'_>) -> Result<()> {
    let pivot = a.has("--pivot");
    let keep = a.has("--keep-overlay");
    exclusive(&[("pivot", pivot, "keep-overlay", keep)])?;
    let active = a.has("--active") || pivot || keep;
    let path = given("path", opt("path"))?.unwrap_or_default();
    let base = given("base", opt("base"))?;
    let top = given("top", opt("top"))?;
    let bytes = a.has("--bytes");
    let bw = opt("bandwidth").map(|v| bandwidth(v, bytes)).transpose()?;
    let mut flags = a.flags(&[
        ("--bytes", bj::COMMIT_BANDWIDTH_BYTES),
        ("--shallow", bj::COMMIT_SHALLOW),
        ("--delete", bj::COMMIT_DELETE),
        ("--keep-relative", bj::COMMIT_RELATIVE),
    ]);
    if active {
        flags |= bj::COMMIT_ACTIVE;
    }
    let timeout = timeout(opt("timeout"))?;
    let blocking = a.has("--wait") || pivot || keep || timeout.is_some();
    require_blocking(a, blocking, "--keep-overlay")?;
    let d = domain(c, opt("domain")).await?;
    let w = Wait::prepare(c, &d, path, "Block commit", a, timeout, blocking).await;
    let r = c
        .block_commit(&d, path, base, top, bw.unwrap_or(0), flags)
        .await;
    let w = w.started(r).await?;
    if !blocking {
        print!(
            "{}",
            if active {
                "Active Block Commit started"
            } else {
                "Block Commit started"
            }
        );
        return Ok(());
    }
    outcome(w, "Commit aborted", "Commit failed").await?;
    let end_flags = abort_flags(a);
    if !active {
        print!("\nCommit complete");
    } else if pivot {
        c.block_job_abort(&d, path, end_flags | bj::ABORT_PIVOT)
            .await
            .with_context(|| format!("failed to pivot job for disk {path}"))?;
        print!("\nSuccessfully pivoted");
    } else if keep {
        c.block_job_abort(&d, path, end_flags)
            .await
            .with_context(|| format!("failed to finish job for disk {path}"))?;
        print!("\nCommit complete, overlay image kept");
    } else {
        print!("\nNow in synchronized phase");
    }
    Ok(())
}

/// --verbose and --async only mean something to a command that waits.
fn require_blocking(a: &Args, blocking: bool, last: &str) -> Result<()> {
    if blocking {
        return Ok(());
    }
    for o in ["--verbose", "--async"] {
        if a.has(o) {
            bail!("{o} requires at least one of --timeout, --wait, --pivot, or {last}");
        }
    }
    Ok(())
}

/// `blockpull`.
async fn pull(c: &Connect, a: &Args<'_>, opt: &Opt<'_>) -> Result<()> {
    let wait = a.has("--wait");
    for o in ["--verbose", "--async"] {
        if a.has(o) && !wait {
            bail!("Option --wait is required by option {o}");
        }
    }
    let path = given("path", opt("path"))?.unwrap_or_default();
    let base = given("base", opt("base"))?;
    let bytes = a.has("--bytes");
    let bw = opt("bandwidth")
        .map(|v| bandwidth(v, bytes))
        .transpose()?
        .unwrap_or(0);
    let timeout = timeout(opt("timeout"))?;
    let d = domain(c, opt("domain")).await?;
    let w = Wait::prepare(c, &d, path, "Block Pull", a, timeout, wait).await;
    let bytes_flag = if bytes { bj::PULL_BANDWIDTH_BYTES } else { 0 };
    // A partial or relative pull is a rebase.
    let r = if base.is_some() || a.has("--keep-relative") {
        let relative = if a.has("--keep-relative") {
            bj::REBASE_RELATIVE
        } else {
            0
        };
        c.block_rebase(&d, path, base, bw, bytes_flag | relative)
            .await
    } else {
        c.block_pull(&d, path, bw, bytes_flag).await
    };
    let w = w.started(r).await?;
    if !wait {
        print!("Block Pull started");
        return Ok(());
    }
    outcome(w, "Pull aborted", "Pull failed").await?;
    print!("\nPull complete");
    Ok(())
}

/// `blockcopy`: with the older call (a rebase that copies) unless an option needs the
/// newer one, as virsh chooses.
async fn copy(c: &Connect, a: &Args<'_>, opt: &Opt<'_>) -> Result<()> {
    let pivot = a.has("--pivot");
    let finish_job = a.has("--finish");
    let blockdev = a.has("--blockdev");
    let path = given("path", opt("path"))?.unwrap_or_default();
    let dest = given("dest", opt("dest"))?;
    let xml_file = given("xml", opt("xml"))?;
    let format = given("format", opt("format"))?;
    exclusive(&[
        ("dest", dest.is_some(), "xml", xml_file.is_some()),
        ("format", format.is_some(), "xml", xml_file.is_some()),
        ("blockdev", blockdev, "xml", xml_file.is_some()),
        ("pivot", pivot, "finish", finish_job),
    ])?;
    if dest.is_none() && xml_file.is_none() {
        bail!("need either --dest or --xml");
    }
    let bytes = a.has("--bytes");
    let bw = opt("bandwidth")
        .map(|v| bandwidth(v, bytes))
        .transpose()?
        .unwrap_or(0);
    let granularity = unsigned("granularity", opt("granularity"), u32::MAX.into())?.unwrap_or(0);
    let buf_size = unsigned("buf-size", opt("buf-size"), u64::MAX)?.unwrap_or(0);
    let timeout = timeout(opt("timeout"))?;
    let blocking = a.has("--wait") || pivot || finish_job || timeout.is_some();
    require_blocking(a, blocking, "--finish")?;
    let d = domain(c, opt("domain")).await?;
    let transient = a.has("--transient-job");
    let sync_writes = a.has("--synchronous-writes");
    let newer = xml_file.is_some()
        || granularity != 0
        || buf_size != 0
        || transient
        || sync_writes
        || format.is_some_and(|f| f != "raw");
    let xml = match (xml_file, dest) {
        (Some(f), _) => read_file(f)?,
        (None, Some(dest)) => dest_xml(dest, format, blockdev),
        (None, None) => String::new(),
    };
    if a.has("--print-xml") {
        print!("{xml}");
        return Ok(());
    }
    let start = if newer {
        let mut params = Vec::new();
        if bw != 0 {
            let limit = u64::MAX >> 20;
            if !bytes && bw > limit {
                bail!("bandwidth must be less than {limit}");
            }
            let b = if bytes { bw } else { bw << 20 };
            params.push(TypedParam::new("bandwidth", TypedValue::ULLong(b)));
        }
        if granularity != 0 {
            params.push(TypedParam::new(
                "granularity",
                TypedValue::UInt(u32::try_from(granularity).unwrap_or(u32::MAX)),
            ));
        }
        if buf_size != 0 {
            params.push(TypedParam::new("buf-size", TypedValue::ULLong(buf_size)));
        }
        let flags = a.flags(&[
            ("--shallow", bj::COPY_SHALLOW),
            ("--reuse-external", bj::COPY_REUSE_EXT),
            ("--transient-job", bj::COPY_TRANSIENT_JOB),
            ("--synchronous-writes", bj::COPY_SYNCHRONOUS_WRITES),
        ]);
        Start::Copy(params, flags)
    } else {
        let mut flags = bj::REBASE_COPY
            | a.flags(&[
                ("--shallow", bj::REBASE_SHALLOW),
                ("--reuse-external", bj::REBASE_REUSE_EXT),
                ("--blockdev", bj::REBASE_COPY_DEV),
                ("--bytes", bj::REBASE_BANDWIDTH_BYTES),
            ]);
        if format == Some("raw") {
            flags |= bj::REBASE_COPY_RAW;
        }
        Start::Rebase(flags)
    };
    let w = Wait::prepare(c, &d, path, "Block Copy", a, timeout, blocking).await;
    let r = match start {
        Start::Copy(params, flags) => c.block_copy(&d, path, &xml, params, flags).await,
        Start::Rebase(flags) => c.block_rebase(&d, path, dest, bw, flags).await,
    };
    let w = w.started(r).await?;
    if !blocking {
        print!("Block Copy started");
        return Ok(());
    }
    outcome(w, "Copy aborted", "Copy failed").await?;
    let end_flags = abort_flags(a);
    if pivot {
        c.block_job_abort(&d, path, end_flags | bj::ABORT_PIVOT)
            .await
            .with_context(|| format!("failed to pivot job for disk {path}"))?;
        print!("\nSuccessfully pivoted");
    } else if finish_job {
        c.block_job_abort(&d, path, end_flags)
            .await
            .with_context(|| format!("failed to finish job for disk {path}"))?;
        print!("\nSuccessfully copied");
    } else {
        print!("\nNow in mirroring phase");
    }
    Ok(())
}

/// How a copy is started: `virDomainBlockCopy` with its parameters and flags, or
/// `virDomainBlockRebase` with `REBASE_COPY` and the other flags.
enum Start {
    Copy(Vec<TypedParam>, u32),
    Rebase(u32),
}

/// The `<disk>` virsh describes a copy's destination with.
fn dest_xml(dest: &str, format: Option<&str>, blockdev: bool) -> String {
    let (kind, attr) = if blockdev {
        ("block", "dev")
    } else {
        ("file", "file")
    };
    let mut x = format!(
        "<disk type='{kind}'>\n  <source {attr}='{}'/>\n",
        escape(dest)
    );
    if let Some(f) = format {
        x.push_str(&format!("  <driver type='{}'/>\n", escape(f)));
    }
    x.push_str("</disk>\n");
    x
}

/// `blockjob`: a new speed, the end of the job, or its progress.
async fn job(c: &Connect, a: &Args<'_>, opt: &Opt<'_>) -> Result<()> {
    let raw = a.has("--raw");
    let info = a.has("--info");
    let (abort, pivot, is_async) = (a.has("--abort"), a.has("--pivot"), a.has("--async"));
    let speed = opt("bandwidth");
    exclusive(&[
        ("raw", raw, "abort", abort),
        ("raw", raw, "pivot", pivot),
        ("raw", raw, "async", is_async),
        ("raw", raw, "bandwidth", speed.is_some()),
        ("info", info, "abort", abort),
        ("info", info, "pivot", pivot),
        ("info", info, "async", is_async),
        ("info", info, "bandwidth", speed.is_some()),
    ])?;
    let d = domain(c, opt("domain")).await?;
    let path = given("path", opt("path"))?.unwrap_or_default();
    let bytes = a.has("--bytes");
    if let Some(v) = speed {
        let bw = bandwidth(v, bytes)?;
        let flags = if bytes { bj::SPEED_BANDWIDTH_BYTES } else { 0 };
        c.block_job_set_speed(&d, path, bw, flags).await?;
        return Ok(());
    }
    if abort || pivot || is_async {
        let mut flags = 0;
        if is_async {
            flags |= bj::ABORT_ASYNC;
        }
        if pivot {
            flags |= bj::ABORT_PIVOT;
        }
        c.block_job_abort(&d, path, flags).await?;
        return Ok(());
    }
    show_info(c, &d, path, raw, bytes).await
}

/// The job's progress and speed (`--raw`: its numbers).
async fn show_info(c: &Connect, d: &Domain, path: &str, raw: bool, bytes: bool) -> Result<()> {
    // Bytes/s asked for unless raw wants MiB/s; a daemon that cannot say it in bytes is
    // asked again in MiB/s.
    let mut in_bytes = bytes || !raw;
    let mut got: Option<Option<BlockJobInfo>> = None;
    if in_bytes {
        match c.block_job_info(d, path, bj::INFO_BANDWIDTH_BYTES).await {
            Ok(i) => got = Some(i),
            Err(e)
                if !bytes
                    && !raw
                    && matches!(e.code(), Some(code::INVALID_ARG) | Some(code::OVERFLOW)) =>
            {
                in_bytes = false
            }
            Err(e) => return Err(e.into()),
        }
    }
    let found = match got {
        Some(i) => i,
        None => c.block_job_info(d, path, 0).await?,
    };
    let Some(i) = found else {
        if !raw {
            print!("No current block job for {path}");
        }
        return Ok(());
    };
    if raw {
        println!(
            " type={}\n bandwidth={}\n cur={}\n end={}",
            job_name(i.type_),
            i.bandwidth,
            i.cur,
            i.end
        );
        return Ok(());
    }
    let speed = if in_bytes {
        i.bandwidth
    } else {
        i.bandwidth
            .checked_mul(1 << 20)
            .ok_or_else(|| anyhow!("overflow in converting {} MiB/s to bytes\n", i.bandwidth))?
    };
    progress(job_name(i.type_), i.end.wrapping_sub(i.cur), i.end);
    if speed != 0 {
        let (v, unit) = pretty(speed);
        print!("    Bandwidth limit: {speed} bytes/s ({v:.3} {unit}/s)");
    }
    println!();
    Ok(())
}

/// A byte count in the largest binary unit under which it is at least 1.
fn pretty(n: u64) -> (f64, &'static str) {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    (v, units[u])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidths_read_as_virsh_reads_them() {
        let ok = |v: &str, bytes| bandwidth(v, bytes).unwrap();
        assert_eq!(ok("5", false), 5);
        assert_eq!(ok(" +7", false), 7);
        assert_eq!(ok("010", false), 10);
        assert_eq!(ok("-1", true), u64::MAX);
        assert_eq!(ok("1M", false), 1);
        assert_eq!(ok("1k", false), 0);
        assert_eq!(ok("1G", true), 1 << 30);
        assert_eq!(ok("1KB", true), 1000);
        assert_eq!(ok("1kib", true), 1024);
        assert_eq!(ok("1b", true), 1);
        assert_eq!(ok("4096T", false), 4096 << 20);
        let lines = |v: &str| -> Vec<String> {
            bandwidth(v, false)
                .err()
                .map(|e| e.chain().map(ToString::to_string).collect())
                .unwrap_or_default()
        };
        let bad = |v: &str| {
            format!(
                "Scaled numeric value '{v}' for <--bandwidth> option is malformed or out of range"
            )
        };
        assert_eq!(lines("abc"), [bad("abc")]);
        assert_eq!(lines("99999999999999999999"), [bad("99999999999999999999")]);
        assert_eq!(
            lines("1,5"),
            [bad("1,5"), "invalid argument: unknown suffix ',5'".into()]
        );
        assert_eq!(
            lines("1Mi"),
            [bad("1Mi"), "invalid argument: unknown suffix 'Mi'".into()]
        );
        assert_eq!(
            lines("20000E"),
            [
                bad("20000E"),
                "numerical overflow: value too large: 20000E".into()
            ]
        );
    }

    #[test]
    fn timeouts_and_sizes_are_checked() {
        assert_eq!(timeout(Some("5")).unwrap(), Some(Duration::from_secs(5)));
        for bad in ["0", "-5", "abc", "99999999999"] {
            let e = timeout(Some(bad)).err().unwrap();
            assert_eq!(
                e.to_string(),
                format!("Numeric value '{bad}' for <timeout> option is malformed or out of range")
            );
        }
        assert_eq!(
            unsigned("buf-size", Some("10"), u64::MAX).unwrap(),
            Some(10)
        );
        assert!(unsigned("buf-size", Some("-1"), u64::MAX).is_err());
        assert!(unsigned("granularity", Some("4294967296"), u32::MAX.into()).is_err());
    }

    #[test]
    fn copy_destinations_are_described_as_virsh_describes_them() {
        assert_eq!(
            dest_xml("/x", Some("qcow2"), false),
            "<disk type='file'>\n  <source file='/x'/>\n  <driver type='qcow2'/>\n</disk>\n"
        );
        assert_eq!(
            dest_xml("/dev/sdz", None, true),
            "<disk type='block'>\n  <source dev='/dev/sdz'/>\n</disk>\n"
        );
    }

    #[test]
    fn sizes_in_their_unit() {
        assert_eq!(pretty(2097152), (2.0, "MiB"));
        assert_eq!(pretty(512), (512.0, "B"));
        assert_eq!(pretty(1536), (1.5, "KiB"));
    }
}
