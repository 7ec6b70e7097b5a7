//! Faults: daemons and shims killed with SIGKILL at random points of define, start, destroy,
//! snapshot-create and vol-upload (a seeded loop, its seed printed so that a failure can be
//! replayed with `VIREO_FAULT_SEED`; `VIREO_FAULT_ROUNDS` makes it longer); a full disk under
//! the definitions and their journal; a QEMU that stopped answering (SIGSTOP) during monitor
//! commands; clients that vanish in the middle of a stream. Afterwards no definition is lost,
//! no VM is lost or doubled, nothing stale is left, and every daemon serves.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use vireo_tests::{fails, guest_xml, ok, run_cmd, wait_exit, write_file, Daemon, Layout};

// ---------------------------------------------------------------------------------------
// Randomness that can be replayed.

/// splitmix64: small, good enough, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// The seed of this run: `VIREO_FAULT_SEED`, else the clock's. Printed either way.
fn seed(what: &str) -> u64 {
    let s = std::env::var("VIREO_FAULT_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    println!("faults, {what}: seed {s} (VIREO_FAULT_SEED={s} replays it)");
    s
}

// ---------------------------------------------------------------------------------------
// Processes, files and cgroups.

/// The shims of the VM `uuid` (whose command line names its `RUN/shim/UUID.xml`).
fn shims_of(root: &Path, uuid: &str) -> Vec<i32> {
    let root = root.to_string_lossy();
    vireo_tests::procs()
        .into_iter()
        .filter(|(_, _, c)| c.contains("vireo-shim") && c.contains(&*root) && c.contains(uuid))
        .map(|(p, _, _)| p)
        .collect()
}

/// The QEMU processes running the VM `name` (`-name guest=NAME,`) or `uuid` for the
/// daemons under `root`: its command line names files under the root, or its parent is
/// one of their shims.
fn qemus_of(root: &Path, name: &str, uuid: &str) -> Vec<i32> {
    let root = root.to_string_lossy();
    let all = vireo_tests::procs();
    let guest = format!("guest={name},");
    // By its UUID (`-uuid`, unique to this test's daemons), else by name only where it is
    // this test's (its command line, or its shim's, names the test's root): the layouts
    // run side by side, each with a VM of the same name.
    let ours = |ppid: &i32, c: &str| {
        c.contains(&*root)
            || all
                .iter()
                .any(|(p, _, pc)| p == ppid && pc.contains("vireo-shim") && pc.contains(&*root))
    };
    all.iter()
        .filter(|(_, ppid, c)| {
            c.contains("qemu-system") && (c.contains(uuid) || (c.contains(&guest) && ours(ppid, c)))
        })
        .map(|(p, _, _)| *p)
        .collect()
}

/// What is left of the VM `uuid`'s cgroup: a directory `vireo-qemu-UUID` where the shim
/// makes it (v2: beside this process's cgroup, the daemons and shims being in ours; v1: in
/// it, per controller; at the top of a hierarchy a container mounts at its own cgroup).
fn vm_cgroups(uuid: &str) -> Vec<PathBuf> {
    let name = vireo_qemu::cgroup::name_of(uuid);
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let paths: Vec<&str> = own
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .collect();
    let mut found = Vec::new();
    for top in ["", "unified", "cpu", "memory", "blkio", "cpu,cpuacct"] {
        let top = Path::new("/sys/fs/cgroup").join(top);
        for p in &paths {
            let own = top.join(p.trim_start_matches('/'));
            let mut at = vec![top.join(&name), own.join(&name)];
            at.extend(own.parent().map(|d| d.join(&name)));
            for d in at {
                if d.is_dir() && !found.contains(&d) {
                    found.push(d);
                }
            }
        }
    }
    found
}

/// Temp files (`.NAME.tmpPID` and the like) anywhere under `dir`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            if is_dir {
                todo.push(e.path());
            } else if n.contains(".tmp") || n.ends_with('~') {
                found.push(e.path());
            }
        }
    }
    found
}

/// Polls `check` (every 50 ms, for at most `secs` seconds) until it holds: for what the
/// daemons finish on their own after a crash, where nothing signals the end. The last
/// complaint if it never holds.
fn settle(secs: u64, mut check: impl FnMut() -> Result<(), String>) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match check() {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Every daemon answers: domains, pools, volumes, networks.
#[track_caller]
fn all_serving(d: &Daemon) {
    ok(&d.virsh(&["list", "--all"]));
    ok(&d.virsh(&["pool-list", "--all"]));
    ok(&d.virsh(&["vol-list", "default"]));
    ok(&d.virsh(&["net-list", "--all"]));
}

// ---------------------------------------------------------------------------------------
// The kill loop.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Define,
    Start,
    Destroy,
    Snapshot,
    Upload,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Define => "define",
            Op::Start => "start",
            Op::Destroy => "destroy",
            Op::Snapshot => "snapshot-create",
            Op::Upload => "vol-upload",
        }
    }
}

/// Who is killed: a daemon of the layout, or the VM's shim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Victim {
    Daemon(&'static str),
    Shim,
}

impl Victim {
    fn name(self) -> &'static str {
        match self {
            Victim::Daemon(n) => n,
            Victim::Shim => "vireo-shim",
        }
    }
}

/// The (operation, victim) cells of a layout's matrix.
fn cells(layout: Layout) -> Vec<(Op, Victim)> {
    let (domains, storage): (&[&'static str], &[&'static str]) = match layout {
        Layout::Monolithic => (&["vireod"], &["vireod"]),
        Layout::Modular => (&["vireo-qemud"], &["vireo-storaged"]),
        Layout::Proxied => (
            &["vireo-proxyd", "vireo-qemud"],
            &["vireo-proxyd", "vireo-storaged"],
        ),
    };
    let mut v = Vec::new();
    for op in [Op::Define, Op::Start, Op::Destroy, Op::Snapshot, Op::Upload] {
        let daemons = if op == Op::Upload { storage } else { domains };
        v.extend(daemons.iter().map(|n| (op, Victim::Daemon(n))));
        if matches!(op, Op::Start | Op::Destroy | Op::Snapshot) {
            v.push((op, Victim::Shim));
        }
    }
    v
}

/// How a round's client fared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// The operation succeeded.
    Completed,
    /// It failed with an error from the daemon.
    Failed,
    /// The connection ended under the client.
    Disconnected,
}

fn outcome(o: &Output) -> Outcome {
    if o.status.success() {
        return Outcome::Completed;
    }
    // Killed by SIGPIPE (141 through `timeout`): virsh writing a stream to a connection
    // that ended.
    use std::os::unix::process::ExitStatusExt;
    if o.status.code() == Some(128 + libc::SIGPIPE) || o.status.signal() == Some(libc::SIGPIPE) {
        return Outcome::Disconnected;
    }
    let err = String::from_utf8_lossy(&o.stderr);
    let gone = [
        "End of file while reading data",
        "Cannot recv data",
        "Cannot write data",
        "Connection reset",
        "Broken pipe",
        "Failed to connect",
        "failed to connect",
        "client socket is closed",
        "no valid connection",
    ];
    if gone.iter().any(|g| err.contains(g)) {
        Outcome::Disconnected
    } else {
        Outcome::Failed
    }
}

#[derive(Default)]
struct Cell {
    rounds: u32,
    completed: u32,
    failed: u32,
    disconnected: u32,
    /// Rounds whose victim was not there to kill (the shim not started yet, or gone).
    absent: u32,
}

/// One domain of the loop: its UUID, disk image, and whether it runs.
struct Dom {
    uuid: String,
    image: Option<PathBuf>,
    running: bool,
}

struct World {
    doms: BTreeMap<String, Dom>,
    volume: PathBuf,
    source: PathBuf,
}

fn domuuid(d: &Daemon, name: &str) -> String {
    ok(&d.virsh(&["domuuid", name])).trim().to_string()
}

/// A domain of the test guest with a qcow2 disk of its own (internal snapshots need one).
fn define_with_qcow2(d: &Daemon, name: &str) -> Dom {
    let img = d.root.join(format!("{name}.qcow2"));
    let i = img.to_str().unwrap();
    ok(&run_cmd(
        "qemu-img",
        &["create", "-q", "-f", "qcow2", i, "32M"],
    ));
    let disk = format!(
        "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
         <source file='{i}'/><target dev='vda' bus='virtio'/></disk><memballoon model='none'/>"
    );
    let xml = guest_xml(name).replace("<memballoon model='none'/>", &disk);
    ok(&d.virsh(&["define", &write_file(d, &format!("{name}.xml"), &xml)]));
    Dom {
        uuid: domuuid(d, name),
        image: Some(img),
        running: false,
    }
}

/// The state `virsh domstate` reports: running (or paused, …) or shut off.
fn is_running(d: &Daemon, name: &str) -> bool {
    !ok(&d.virsh(&["domstate", name])).contains("shut off")
}

/// Kills the shim of `uuid`: at once if it is there, else as soon as it
/// appears while `client` still runs. Whether it found one.
fn kill_shim(root: &Path, uuid: &str, client: &mut std::process::Child) -> bool {
    loop {
        if let Some(pid) = shims_of(root, uuid).first() {
            vireo_tests::signal(*pid, Signal::KILL);
            return true;
        }
        if client.try_wait().ok().flatten().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Checks every invariant after a round; `target` is the domain the round worked on
/// (whose state may have changed), `new` a domain it may have defined.
fn check_invariants(d: &Daemon, w: &mut World, target: Option<&str>, new: Option<&str>) {
    all_serving(d);
    // No definition lost, the new one whole or absent.
    let listed: Vec<String> = ok(&d.virsh(&["list", "--all", "--name"]))
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    for n in w.doms.keys() {
        assert!(listed.contains(n), "domain {n} lost; listed: {listed:?}");
    }
    for n in &listed {
        assert!(
            w.doms.contains_key(n) || Some(n.as_str()) == new,
            "domain {n} appeared from nowhere"
        );
    }
    if let Some(n) = new.filter(|n| listed.iter().any(|l| l == n)) {
        let xml = ok(&d.virsh(&["dumpxml", n]));
        assert!(xml.contains(&format!("<name>{n}</name>")), "{xml}");
        assert!(xml.trim_end().ends_with("</domain>"), "{xml}");
        let file = d.config_dir().join(format!("qemu/{n}.xml"));
        settle(10, || {
            let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
            (text.contains(&format!("<name>{n}</name>")) && text.trim_end().ends_with("</domain>"))
                .then_some(())
                .ok_or(format!("{} is not whole:\n{text}", file.display()))
        })
        .unwrap();
        w.doms.insert(
            n.to_string(),
            Dom {
                uuid: domuuid(d, n),
                image: None,
                running: false,
            },
        );
    }
    // Every stored definition is whole.
    for e in std::fs::read_dir(d.config_dir().join("qemu"))
        .unwrap()
        .flatten()
    {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "xml") {
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(
                text.trim_end().ends_with("</domain>"),
                "{} is cut short",
                p.display()
            );
        }
    }
    // No VM lost or doubled, nothing left of the stopped ones.
    let ids = ok(&d.virsh(&["list"]));
    let mut seen_ids: Vec<&str> = ids
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let n_ids = seen_ids.len();
    seen_ids.sort();
    seen_ids.dedup();
    assert_eq!(seen_ids.len(), n_ids, "an id shown twice:\n{ids}");
    let run_dir = d.run_dir();
    let shim_dir = run_dir.join("shim");
    for (name, dom) in w.doms.iter_mut() {
        let running = is_running(d, name);
        if Some(name.as_str()) != target {
            assert_eq!(
                running,
                dom.running,
                "{name} was {} and the round did not touch it",
                if dom.running { "running" } else { "shut off" }
            );
        }
        dom.running = running;
        let root = d.root.clone();
        let uuid = dom.uuid.clone();
        let res = settle(30, || {
            let qemus = qemus_of(&root, name, &uuid);
            let shims = shims_of(&root, &uuid);
            let want = usize::from(running);
            if qemus.len() != want || shims.len() != want {
                return Err(format!(
                    "{name} ({}): QEMU {qemus:?}, shims {shims:?}",
                    if running { "running" } else { "shut off" }
                ));
            }
            if !running {
                let stale: Vec<String> = std::fs::read_dir(&shim_dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|f| f.starts_with(&uuid))
                    .collect();
                if !stale.is_empty() {
                    return Err(format!("{name} is shut off, left in run/shim: {stale:?}"));
                }
                let endpoints: Vec<PathBuf> =
                    [format!("vm/{name}-sock"), format!("vm/{name}-sock-ro")]
                        .iter()
                        .map(|p| run_dir.join(p))
                        .chain([run_dir.join("qemu").join(&uuid)])
                        .filter(|p| p.exists())
                        .collect();
                if !endpoints.is_empty() {
                    return Err(format!("{name} is shut off, left: {endpoints:?}"));
                }
                let cgroups = vm_cgroups(&uuid);
                if !cgroups.is_empty() {
                    return Err(format!(
                        "{name} is shut off, its cgroup is left: {cgroups:?}"
                    ));
                }
            }
            Ok(())
        });
        if let Err(e) = res {
            panic!("{e}\nlog:\n{}", tail(&d.log()));
        }
        // A snapshot the metadata names is in the image.
        if let Some(img) = &dom.image {
            let listed = ok(&d.virsh(&["snapshot-list", name, "--name"]));
            let tags = ok(&run_cmd(
                "qemu-img",
                &["snapshot", "-U", "-l", img.to_str().unwrap()],
            ));
            for s in listed.lines().filter(|l| !l.trim().is_empty()) {
                assert!(
                    tags.lines()
                        .any(|l| l.split_whitespace().nth(1) == Some(s.trim())),
                    "{name}: snapshot {s} is not in the image:\n{tags}"
                );
                ok(&d.virsh(&["snapshot-dumpxml", name, s.trim()]));
            }
        }
    }
    // No temp files anywhere the daemons keep state.
    for dir in ["etc/vireo", "run/vireo", "var/lib/vireo"] {
        let left = temp_files(&d.root.join(dir));
        assert!(left.is_empty(), "temp files left: {left:?}");
    }
    // The volume is not left locked or busy: it takes a small upload.
    let small = d.root.join("small.img");
    std::fs::write(&small, b"small upload").unwrap();
    ok(&d.virsh(&[
        "vol-upload",
        w.volume.file_name().unwrap().to_str().unwrap(),
        small.to_str().unwrap(),
        "--pool",
        "default",
    ]));
    assert!(std::fs::read(&w.volume)
        .unwrap()
        .starts_with(b"small upload"));
    assert!(w.source.exists());
}

/// The last lines of a log, for a failure's message.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn kill_loop(layout: Layout) {
    let mut rng = Rng(seed(&format!("kill loop, {layout:?}")));
    let cells = cells(layout);
    let rounds: usize = std::env::var("VIREO_FAULT_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(cells.len());
    let mut d = Daemon::start_in(layout);
    // The loop's domains; one runs from the start. Guests start paused: QEMU is whole,
    // its CPU idle.
    let mut w = World {
        doms: BTreeMap::new(),
        volume: d.root.join("var/lib/vireo/images/up.img"),
        source: d.root.join("upload.src"),
    };
    for n in ["f0", "f1", "f2"] {
        let dom = define_with_qcow2(&d, n);
        w.doms.insert(n.to_string(), dom);
    }
    ok(&d.virsh(&["vol-create-as", "default", "up.img", "48M"]));
    let pattern: Vec<u8> = (0..48u32 << 20).map(|i| (i % 251) as u8 | 1).collect();
    std::fs::write(&w.source, pattern).unwrap();
    // How long each operation takes here, client included: the kill comes within that
    // and a quarter more (so that some come after the end).
    let timed = |args: &[&str]| {
        let t = Instant::now();
        ok(&d.virsh(args));
        t.elapsed().as_millis() as u64 * 5 / 4 + 1
    };
    let cal = write_file(&d, "cal.xml", &guest_xml("cal"));
    let src = w.source.to_string_lossy().into_owned();
    let window: BTreeMap<Op, u64> = [
        (Op::Define, timed(&["define", &cal])),
        (Op::Start, timed(&["start", "--paused", "f0"])),
        (Op::Snapshot, timed(&["snapshot-create-as", "f0", "cal"])),
        (Op::Destroy, timed(&["destroy", "f0"])),
        (
            Op::Upload,
            timed(&["vol-upload", "up.img", &src, "--pool", "default"]),
        ),
    ]
    .into();
    println!("windows (ms): {window:?}");
    w.doms.insert(
        "cal".into(),
        Dom {
            uuid: domuuid(&d, "cal"),
            image: None,
            running: false,
        },
    );
    ok(&d.virsh(&["start", "--paused", "f0"]));
    w.doms.get_mut("f0").unwrap().running = true;
    let cg = vm_cgroups(&w.doms["f0"].uuid);
    println!(
        "VM cgroups: {}",
        if cg.is_empty() {
            "none made here, none to check".to_string()
        } else {
            format!("checked, e.g. {}", cg[0].display())
        }
    );

    // Each cell once in a random order (by default, all), then random cells.
    let mut order: Vec<(Op, Victim)> = cells.clone();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut matrix: BTreeMap<(Op, Victim), Cell> = BTreeMap::new();
    let uri = d.uri();
    for round in 0..rounds {
        let (op, victim) = if round < order.len() {
            order[round]
        } else {
            cells[rng.below(cells.len() as u64) as usize]
        };
        let delay = Duration::from_millis(rng.below(window[&op]));
        // The domain to work on, brought to the state the operation needs first.
        let pick = |w: &World, running: bool, rng: &mut Rng| -> Option<String> {
            let c: Vec<&String> = w
                .doms
                .iter()
                .filter(|(_, v)| v.image.is_some() && v.running == running)
                .map(|(n, _)| n)
                .collect();
            (!c.is_empty()).then(|| c[rng.below(c.len() as u64) as usize].clone())
        };
        let target: Option<String> = match op {
            Op::Start => Some(pick(&w, false, &mut rng).unwrap_or_else(|| {
                let n = pick(&w, true, &mut rng).unwrap();
                ok(&d.virsh(&["destroy", &n]));
                w.doms.get_mut(&n).unwrap().running = false;
                n
            })),
            Op::Destroy | Op::Snapshot => Some(pick(&w, true, &mut rng).unwrap_or_else(|| {
                let n = pick(&w, false, &mut rng).unwrap();
                ok(&d.virsh(&["start", "--paused", &n]));
                w.doms.get_mut(&n).unwrap().running = true;
                n
            })),
            Op::Define | Op::Upload => None,
        };
        let new = (op == Op::Define).then(|| format!("new{round}"));
        let args: Vec<String> = match op {
            Op::Define => {
                let n = new.as_deref().unwrap();
                vec![
                    "define".into(),
                    write_file(&d, &format!("{n}.xml"), &guest_xml(n)),
                ]
            }
            Op::Start => vec!["start".into(), "--paused".into(), target.clone().unwrap()],
            Op::Destroy => vec!["destroy".into(), target.clone().unwrap()],
            Op::Snapshot => vec![
                "snapshot-create-as".into(),
                target.clone().unwrap(),
                format!("s{round}"),
            ],
            Op::Upload => vec![
                "vol-upload".into(),
                "up.img".into(),
                w.source.to_string_lossy().into_owned(),
                "--pool".into(),
                "default".into(),
            ],
        };
        println!(
            "round {round}: {} x {} after {} ms{}",
            op.name(),
            victim.name(),
            delay.as_millis(),
            target
                .as_deref()
                .map(|t| format!(" on {t}"))
                .unwrap_or_default()
        );
        let mut client = Command::new("timeout")
            .args(["--kill-after=5", "120", "virsh", "-c", &uri])
            .args(&args)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A random point in the operation: a random delay is the point here.
        std::thread::sleep(delay);
        let killed = match victim {
            Victim::Daemon(name) => {
                d.kill9_one(name);
                true
            }
            Victim::Shim => {
                let uuid = w.doms[target.as_deref().unwrap()].uuid.clone();
                kill_shim(&d.root, &uuid, &mut client)
            }
        };
        let out = client.wait_with_output().unwrap();
        if let Victim::Daemon(name) = victim {
            d.start_one(name, &[]);
        }
        let how = outcome(&out);
        println!(
            "  -> {how:?}{} ({}): {}",
            if killed { "" } else { " (victim absent)" },
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let cell = matrix.entry((op, victim)).or_default();
        cell.rounds += 1;
        cell.absent += u32::from(!killed);
        match how {
            Outcome::Completed => cell.completed += 1,
            Outcome::Failed => cell.failed += 1,
            Outcome::Disconnected => cell.disconnected += 1,
        }
        check_invariants(&d, &mut w, target.as_deref(), new.as_deref());
    }
    // The matrix.
    // Outcomes: the client's operation completed, failed with an error, or lost its
    // connection (or found none); absent: the victim was not there to kill (a shim not
    // started yet, or gone). Every round that got here kept every invariant.
    println!("fault matrix, {layout:?} ({rounds} rounds):");
    println!(
        "  {:<16} {:<15} {:>6} {:>9} {:>6} {:>12} {:>6}  invariants",
        "operation", "killed", "rounds", "completed", "failed", "disconnected", "absent"
    );
    for ((op, victim), c) in &matrix {
        println!(
            "  {:<16} {:<15} {:>6} {:>9} {:>6} {:>12} {:>6}  held",
            op.name(),
            victim.name(),
            c.rounds,
            c.completed,
            c.failed,
            c.disconnected,
            c.absent
        );
    }
    // Nothing outlives the test: the VMs go.
    for (n, dom) in &w.doms {
        if dom.running {
            ok(&d.virsh(&["destroy", n]));
        }
    }
}

vireo_tests::in_every_layout!(kill_loop);

// ---------------------------------------------------------------------------------------
// A full disk.

/// A small tmpfs mounted on `dir` for as long as this lives: unmounted (lazily) when it
/// goes, also when the test fails; then `root` (the test's, which its `Daemon` could not
/// remove over the mount) goes too.
struct Tmpfs {
    dir: PathBuf,
    root: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str, root: &Path) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        ok(&run_cmd(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "vireo-faults",
                dir.to_str().unwrap(),
            ],
        ));
        Tmpfs {
            dir: dir.to_path_buf(),
            root: root.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = run_cmd("umount", &["-l", self.dir.to_str().unwrap_or("")]);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Fills the file system of `dir` to the last byte with `dir/filler`.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0x55u8; 64 << 10];
    let mut small = false;
    loop {
        let n = if small { 512 } else { chunk.len() };
        match f.write(&chunk[..n]) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && !small => small = true,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    path
}

/// Definitions and their journal on a small file system that fills up: defines go on
/// while the journal (its room taken when it was made) has room, and fail with the
/// system's reason once a checkpoint needs room for files; the earlier definitions stay
/// whole; the daemon, killed, starts again on the full disk with every definition it
/// acknowledged; once there is room, defines work and every file is written.
#[test]
fn full_disk_during_define_and_checkpoint() {
    let mut disk = None;
    let mut d = Daemon::start_prepared(
        Layout::Monolithic,
        |root| disk = Some(Tmpfs::mount(&root.join("etc/vireo"), "6m", root)),
        &[],
    );
    // `disk` was made before `d`: it goes after the daemons, unmounted once they are gone.
    assert!(disk.is_some());
    let defs = d.config_dir().join("qemu");
    for n in ["keep1", "keep2"] {
        ok(&d.virsh(&[
            "define",
            &write_file(&d, &format!("{n}.xml"), &guest_xml(n)),
        ]));
    }
    let stored = |n: &str| std::fs::read_to_string(defs.join(format!("{n}.xml")));
    settle(10, || {
        ["keep1", "keep2"]
            .iter()
            .all(|n| stored(n).is_ok_and(|t| t.trim_end().ends_with("</domain>")))
            .then_some(())
            .ok_or("definitions not written".to_string())
    })
    .unwrap();
    let before: Vec<(String, String)> = ["keep1", "keep2"]
        .iter()
        .map(|n| (stored(n).unwrap(), ok(&d.virsh(&["dumpxml", n]))))
        .collect();
    let filler = fill(&d.config_dir());

    // Big definitions (a long description) fill the journal in a few defines.
    let desc = "x".repeat(200 << 10);
    let mut acked = Vec::new();
    let mut refusal = None;
    for i in 0..12 {
        let n = format!("big{i}");
        let xml = guest_xml(&n).replace(
            "<memory",
            &format!("<description>{desc}</description><memory"),
        );
        let o = d.virsh(&["define", &write_file(&d, &format!("{n}.xml"), &xml)]);
        if o.status.success() {
            acked.push(n);
        } else {
            refusal = Some(String::from_utf8_lossy(&o.stderr).into_owned());
            break;
        }
    }
    let refusal = refusal.expect("a define on a full disk must fail once the journal is full");
    println!(
        "full disk: {} defines journaled, then: {}",
        acked.len(),
        refusal.trim()
    );
    assert!(refusal.contains("No space left on device"), "{refusal}");
    all_serving(&d);
    let check_all = |d: &Daemon, acked: &[String]| {
        for (n, (file, xml)) in ["keep1", "keep2"].iter().zip(&before) {
            assert_eq!(&stored(n).unwrap(), file, "{n}'s file changed");
            assert_eq!(&ok(&d.virsh(&["dumpxml", n])), xml, "{n} changed");
        }
        let listed = ok(&d.virsh(&["list", "--all", "--name"]));
        for n in acked {
            assert!(listed.lines().any(|l| l == n), "{n} lost: {listed}");
        }
    };
    check_all(&d, &acked);

    // A crash, and a start (a checkpoint) on the full disk.
    d.kill9();
    d.restart();
    all_serving(&d);
    check_all(&d, &acked);

    // Room again: defines work, every file is written, and stays after a crash.
    std::fs::remove_file(&filler).unwrap();
    ok(&d.virsh(&["define", &write_file(&d, "after.xml", &guest_xml("after"))]));
    acked.push("after".into());
    settle(30, || {
        for n in &acked {
            let t = stored(n).map_err(|e| format!("{n}: {e}"))?;
            if !t.trim_end().ends_with("</domain>") {
                return Err(format!("{n} is not whole"));
            }
        }
        Ok(())
    })
    .unwrap();
    d.kill9();
    d.restart();
    check_all(&d, &acked);
    let left = temp_files(&d.config_dir());
    assert!(left.is_empty(), "temp files left: {left:?}");
    d.terminate();
}

// ---------------------------------------------------------------------------------------
// A QEMU that does not answer.

/// SIGCONT to a stopped process when dropped, so that a failing test leaves none stopped.
struct Stopped(i32);

impl Stopped {
    fn new(pid: i32) -> Stopped {
        vireo_tests::signal(pid, Signal::STOP);
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        vireo_tests::signal(self.0, Signal::CONT);
    }
}

fn start_paused(d: &Daemon, name: &str) {
    ok(&d.virsh(&[
        "define",
        &write_file(d, &format!("{name}.xml"), &guest_xml(name)),
    ]));
    ok(&d.virsh(&["start", "--paused", name]));
}

/// QEMU stopped (SIGSTOP) during monitor commands: a suspend fails with libvirt's timeout
/// error after a bounded time, statistics come back in a bounded time too, while the daemon
/// and the other VMs keep serving; once QEMU goes on (SIGCONT) its VM works again; a stopped
/// QEMU is destroyed all the same.
#[test]
fn a_hung_qemu_times_out_and_recovers() {
    let d = Daemon::start();
    start_paused(&d, "other");
    ok(&d.virsh(&["define", &write_file(&d, "hung.xml", &guest_xml("hung"))]));
    ok(&d.virsh(&["start", "hung"]));
    let pid = d.qemu_pid("hung").expect("hung's QEMU");
    let uri = d.uri();
    let stopped = Stopped::new(pid);
    let monitor = |args: &'static [&'static str]| {
        let uri = uri.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            let o = run_cmd("virsh", &[&["-c", uri.as_str()], args].concat());
            (o, t.elapsed())
        })
    };
    let suspend = monitor(&["suspend", "hung"]);
    // Meanwhile the daemon and the other VM serve.
    let t = Instant::now();
    all_serving(&d);
    assert!(ok(&d.virsh(&["dominfo", "hung"])).contains("running"));
    ok(&d.virsh(&["resume", "other"]));
    ok(&d.virsh(&["suspend", "other"]));
    ok(&d.virsh(&["domstats", "other"]));
    let others = t.elapsed();
    let (o, took) = suspend.join().unwrap();
    let err = fails(&o);
    println!("hung QEMU: suspend failed after {took:?}: {}", err.trim());
    assert!(err.contains("Timed out during operation"), "{err}");
    println!("hung QEMU: the daemon and the other VM answered meanwhile, in {others:?}");
    // Statistics need several monitor commands: they come back, in a bounded time.
    let t = Instant::now();
    let stats = d.virsh(&["domstats", "hung"]);
    println!(
        "hung QEMU: domstats ended after {:?} ({})",
        t.elapsed(),
        if stats.status.success() {
            "partial statistics"
        } else {
            "failed"
        }
    );
    // QEMU goes on: it runs the suspend it was sent, and the VM works again.
    drop(stopped);
    settle(30, || {
        let st = ok(&d.virsh(&["domstate", "hung"]));
        st.contains("paused").then_some(()).ok_or(st)
    })
    .unwrap();
    ok(&d.virsh(&["resume", "hung"]));
    ok(&d.virsh(&["suspend", "hung"]));
    ok(&d.virsh(&["resume", "hung"]));
    ok(&d.virsh(&["domstats", "hung"]));
    // A stopped QEMU is destroyed all the same.
    let _stopped = Stopped::new(pid);
    ok(&d.virsh(&["destroy", "hung"]));
    assert!(
        wait_exit(pid, Duration::from_secs(30)),
        "hung's QEMU still runs"
    );
    assert!(ok(&d.virsh(&["domstate", "hung"])).contains("shut off"));
    ok(&d.virsh(&["destroy", "other"]));
}

// ---------------------------------------------------------------------------------------
// Clients that vanish in the middle of a stream.

/// How much the process `pid` has read (`rchar` of /proc/PID/io).
fn read_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("rchar:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A python-libvirt client with the console of `name` open: `hold` keeps reading until
/// killed, `once` leaves at once.
fn console_client(d: &Daemon, name: &str, mode: &str) -> std::process::Child {
    const SCRIPT: &str = r#"
import sys, libvirt
c = libvirt.open(sys.argv[1])
st = c.newStream(0)
c.lookupByName(sys.argv[2]).openConsole(None, st, 0)
print("OPEN", flush=True)
if sys.argv[3] == "hold":
    while True:
        st.recv(4096)
st.abort()
"#;
    Command::new(vireo_tests::python3())
        .args(["-c", SCRIPT, &d.uri(), name, mode])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (bounded) for `child` to print its first line; that line.
fn first_line(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut l = String::new();
        let _ = std::io::BufReader::new(out).read_line(&mut l);
        let _ = tx.send(l);
    });
    rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default()
}

/// Clients killed (SIGKILL) in the middle of a vol-upload, a vol-download and a console
/// session: the daemons keep serving, the volume takes the next upload, a new console
/// opens without force, no temp file is left and the daemons' memory stays put.
fn clients_vanishing_mid_stream(layout: Layout) {
    const SIZE: usize = 96 << 20;
    let d = Daemon::start_in(layout);
    ok(&d.virsh(&["vol-create-as", "default", "big.img", "96M"]));
    let vol = d.root.join("var/lib/vireo/images/big.img");
    let pattern: Vec<u8> = (0..SIZE as u32).map(|i| (i % 253) as u8 | 1).collect();
    std::fs::write(&vol, &pattern).unwrap();
    let src = d.root.join("src.img");
    std::fs::write(&src, &pattern).unwrap();
    drop(pattern);
    start_paused(&d, "con");
    let out = d.root.join("down.img");
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let spawn = |args: &[&str]| {
        Command::new("virsh")
            .args(["-c", &d.uri()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let wait_until = |what: &str, cond: &dyn Fn() -> bool| {
        settle(60, || cond().then_some(()).ok_or(what.to_string())).unwrap();
    };
    let kill = |mut c: std::process::Child| {
        let _ = c.kill();
        let _ = c.wait();
    };
    // The first round warms the daemons up; memory is compared from its end.
    let mut rss0 = 0;
    const ROUNDS: usize = 4;
    for round in 0..ROUNDS {
        // An upload, killed once the client has read 8 MiB of its file.
        let c = spawn(&[
            "vol-upload",
            "big.img",
            src.to_str().unwrap(),
            "--pool",
            "default",
        ]);
        let pid = c.id();
        wait_until("the upload does not start", &|| read_bytes(pid) > 8 << 20);
        kill(c);
        // A download, killed once 8 MiB have come.
        let _ = std::fs::remove_file(&out);
        let c = spawn(&[
            "vol-download",
            "big.img",
            out.to_str().unwrap(),
            "--pool",
            "default",
        ]);
        wait_until("the download does not start", &|| size(&out) > 8 << 20);
        kill(c);
        // A console session, killed while it reads.
        let mut c = console_client(&d, "con", "hold");
        assert_eq!(first_line(&mut c).trim(), "OPEN");
        kill(c);
        // The console is free again (once the daemon has seen the client go).
        settle(30, || {
            let mut c = console_client(&d, "con", "once");
            let l = first_line(&mut c);
            let st = c.wait().unwrap();
            (st.success() && l.trim() == "OPEN")
                .then_some(())
                .ok_or("the console stays taken".to_string())
        })
        .unwrap();
        // The volume takes a whole upload, and reads back.
        ok(&d.virsh(&[
            "vol-upload",
            "big.img",
            src.to_str().unwrap(),
            "--pool",
            "default",
        ]));
        ok(&d.virsh(&[
            "vol-download",
            "big.img",
            out.to_str().unwrap(),
            "--pool",
            "default",
        ]));
        assert_eq!(size(&out), SIZE as u64);
        all_serving(&d);
        if round == 0 {
            rss0 = d.rss();
        }
    }
    let rss = d.rss();
    println!(
        "vanishing clients, {layout:?}: {ROUNDS} rounds; daemons' RSS {} MiB after the first, {} MiB after the last",
        rss0 >> 20,
        rss >> 20
    );
    assert!(
        rss < rss0 + (48 << 20),
        "the daemons grew from {rss0} to {rss} bytes"
    );
    for dir in ["etc/vireo", "run/vireo", "var/lib/vireo"] {
        let left = temp_files(&d.root.join(dir));
        assert!(left.is_empty(), "temp files left: {left:?}");
    }
    ok(&d.virsh(&["destroy", "con"]));
}

#[test]
fn clients_vanishing_mid_stream_monolithic() {
    clients_vanishing_mid_stream(Layout::Monolithic);
}

#[test]
fn clients_vanishing_mid_stream_proxied() {
    clients_vanishing_mid_stream(Layout::Proxied);
}
