//! `vireo`: a virsh-compatible command line for Vireo (and libvirt) daemons.

mod agent;
mod args;
mod blockjob;
mod cnum;
mod commands;
mod cpu;
mod devices;
mod edit;
mod interface;
mod iothread;
mod json;
mod metadata;
mod metrics;
mod migrate;
mod network;
mod nodedev;
mod nwfilter;
mod resources;
mod save;
mod secret;
mod snapshot;
mod stats;
mod storage;
mod table;
mod tuning;
mod vcpu;
mod viewer;
mod virsh;
mod xmlnode;

use std::process::ExitCode;

/// The commands, as `vireo help` lists them after the options.
const COMMANDS_HELP: &str = "Commands as virsh has them (COMMAND [ARGS...]):
  version                  versions of the library and the hypervisor
  uri                      the connection URI
  hostname                 the host's name
  nodeinfo                 the host's CPUs and memory
  capabilities             the capabilities XML
  list [--all] [--inactive] [--name] [--uuid]
                           list domains
  define FILE              define a domain from an XML file
  undefine [--managed-save] DOMAIN
                           remove a domain's definition (and its managed save image)
  dumpxml DOMAIN           the domain's XML
  dominfo DOMAIN           information about a domain
  domstate [--reason] DOMAIN
                           the domain's state
  domuuid DOMAIN           the domain's UUID
  domid DOMAIN             the domain's id
  domname DOMAIN           the domain's name
  autostart [--disable] DOMAIN
                           start (or not) the domain when the daemon starts
  start [--paused] [--force-boot] DOMAIN
                           start a defined domain (from its managed save image, if it
                           has one, unless --force-boot)
  create [--paused] FILE   start a transient domain from an XML file
  shutdown DOMAIN          ask the guest to power off (ACPI)
  destroy DOMAIN           stop the domain at once
  suspend DOMAIN / resume DOMAIN
                           pause and continue the CPUs
  reboot DOMAIN / reset DOMAIN
                           graceful reboot / hard reset
  attach-device / detach-device / update-device DOMAIN FILE
      [--live] [--config] [--current] [--persistent] [--force (update)]
                           plug, unplug or change a device (none: the running domain)
  domstats [--state] [--cpu-total] [--balloon] [--vcpu] [--interface] [--block]
      [--list-active|--list-inactive|--list-running|…] [--enforce] [DOMAIN…]
                           statistics of every domain (or those named)
  dommemstat DOMAIN        memory statistics (the balloon, and the guest's own)
  domblkstat DOMAIN DISK / domifstat DOMAIN INTERFACE
                           a disk's / an interface's counters
  domblkinfo DOMAIN DISK   a disk's capacity, allocation and host size
  save [--running|--paused] [--bypass-cache] [--xml FILE] [--verbose] DOMAIN FILE
                           the running domain's state into FILE; the domain stops
  restore [--running|--paused] [--bypass-cache] [--xml FILE] [--verbose] FILE
                           start the domain saved in FILE where it was
  managedsave [--running|--paused] [--bypass-cache] [--verbose] DOMAIN
                           save the domain's state for its next start
  managedsave-remove DOMAIN
                           drop the managed save image
  save-image-dumpxml [--security-info] FILE
                           the definition stored in a save image
  domjobinfo DOMAIN / domjobabort DOMAIN
                           the job running on the domain (a save, a migration), and its end
  migrate [--live] [--p2p [--tunnelled]] [--persistent] [--undefinesource] [--suspend]
      [--copy-storage-all|--copy-storage-inc] [--auto-converge] [--postcopy
      [--postcopy-after-precopy]] [--verbose] [--migrateuri URI] [--dname NAME]
      [--xml FILE] [--persistent-xml FILE] [--bandwidth MiB/s] [--listen-address ADDR]
      [--migrate-disks DISK,...] [--disks-port PORT] DOMAIN DESTURI
                           move the running domain to another host, with a progress bar
  migrate-setspeed DOMAIN MiB/s [--postcopy] / migrate-getspeed DOMAIN [--postcopy]
  migrate-setmaxdowntime DOMAIN MS / migrate-getmaxdowntime DOMAIN / migrate-postcopy DOMAIN
  snapshot-create-as DOMAIN [NAME [DESCRIPTION]] [--print-xml] [--no-metadata] [--halt]
      [--disk-only] [--reuse-external] [--quiesce] [--atomic] [--live] [--validate]
      [--memspec [file=]PATH[,snapshot=TYPE]]
      [[--diskspec] DISK[,snapshot=TYPE][,driver=FMT][,stype=file|block][,file=PATH]]...
                           take a snapshot (or print its XML)
  snapshot-create DOMAIN [FILE] [--redefine [--current]] [--no-metadata] [--halt]
      [--disk-only] [--reuse-external] [--quiesce] [--atomic] [--live] [--validate]
                           take (or redefine) a snapshot from XML
  snapshot-list DOMAIN [--parent|--roots|--tree|--name] [--from SNAP|--current]
      [--descendants] [--topological] [--leaves] [--no-leaves] [--metadata]
      [--no-metadata] [--inactive] [--active] [--disk-only] [--internal] [--external]
  snapshot-current DOMAIN [--name] [--security-info] [SNAP]
                           the current snapshot (or make SNAP current)
  snapshot-info / snapshot-parent DOMAIN (SNAP | --current)
  snapshot-dumpxml DOMAIN SNAP [--security-info]
  snapshot-revert DOMAIN (SNAP | --current) [--running|--paused] [--force] [--reset-nvram]
  snapshot-delete DOMAIN (SNAP | --current) [--children|--children-only] [--metadata]
  blockcommit DOMAIN DISK [--base IMG] [--top IMG] [--shallow] [--active] [--delete]
      [--keep-relative] [--wait] [--verbose] [--timeout SECS] [--pivot|--keep-overlay]
      [--async] [--bandwidth N [--bytes]]
                           commit an image of the disk's chain into the one below
  blockpull DOMAIN DISK [--base IMG] [--keep-relative] [--wait] [--verbose]
      [--timeout SECS] [--async] [--bandwidth N [--bytes]]
                           fill the disk's image from its backing chain
  blockcopy DOMAIN DISK (DEST [--format FMT] [--blockdev] | --xml FILE) [--shallow]
      [--reuse-external] [--transient-job] [--synchronous-writes] [--granularity N]
      [--buf-size N] [--wait] [--verbose] [--timeout SECS] [--pivot|--finish] [--async]
      [--bandwidth N [--bytes]] [--print-xml]
                           copy the disk while the guest runs, then pivot to the copy
  blockjob DOMAIN DISK [--info] [--raw] [--bytes] | --bandwidth N [--bytes] |
      --abort [--async] [--pivot]
                           a block job's progress, speed and end
      (with --wait or --verbose a job is followed as virsh follows it: progress on
      stderr, --timeout or Ctrl-C aborts it)
  setmem DOMAIN SIZE / setmaxmem DOMAIN SIZE [--live] [--config] [--current]
                           the guest's memory (live through its balloon) / maximum
  setvcpus DOMAIN COUNT [--config] [--maximum] [--live] [--current]
                           the guest's vCPUs (in the definition)
  vcpuinfo DOMAIN          each vCPU's host CPU, time and affinity
  domifaddr DOMAIN [--source lease|arp] [--interface NAME] [--full]
                           the addresses of the guest's interfaces
  send-key DOMAIN [--codeset C] [--holdtime MS] KEY…
                           press keys (KEY_A, … or numbers of the codeset)
  domcapabilities [--machine M] [--virttype T]
                           what a guest may use on this host
  memtune DOMAIN [--hard-limit N] [--soft-limit N] [--swap-hard-limit N]
      [--min-guarantee N] [--live] [--config] [--current]
                           the memory limits (KiB, or a size with its unit; -1: none),
                           or set them
  schedinfo DOMAIN [[--set] NAME=VALUE]... [--weight N] [--cap N] [--live] [--config]
      [--current]
                           the scheduler and its parameters (cpu_shares, global_period,
                           vcpu_quota, …), or set some
  blkiotune DOMAIN [--weight N] [--device-weights LIST] [--device-read-iops-sec LIST]
      [--device-write-iops-sec LIST] [--device-read-bytes-sec LIST]
      [--device-write-bytes-sec LIST] [--live] [--config] [--current]
                           the block I/O weight and per-device limits (LIST:
                           /dev/PATH,VALUE,…), or set them
  iothreadinfo DOMAIN [--live] [--config] [--current]
                           the domain's I/O threads and the host CPUs each may run on
  iothreadpin DOMAIN ID CPULIST / iothreadadd DOMAIN ID / iothreaddel DOMAIN ID
      [--live] [--config] [--current]
                           pin an I/O thread to host CPUs (CPULIST r: all), add, remove one
  iothreadset DOMAIN ID [--poll-max-ns N] [--poll-grow N] [--poll-shrink N]
      [--thread-pool-min N] [--thread-pool-max N] [--live] [--config] [--current]
                           tune a running I/O thread's polling and worker pool
  guestvcpus DOMAIN [--cpulist LIST (--enable|--disable)]
                           the guest's vCPUs as its agent sees them, or some on/offline
  detach-device-alias DOMAIN ALIAS [--live] [--config] [--current]
                           ask for the device with that alias to go
  cpu-compare FILE [--error] [--validate] / hypervisor-cpu-compare FILE [--virttype T]
      [--emulator PATH] [--arch A] [--machine M] [--error] [--validate]
                           a CPU definition against the host's CPU / the hypervisor's
                           (exit status 1 when incompatible)
  cpu-baseline FILE [--features] [--migratable] / hypervisor-cpu-baseline
      (FILE | --model NAME) [--virttype T] [--emulator PATH] [--arch A] [--machine M]
      [--features] [--migratable]
                           the CPU all the CPUs in FILE can be
      (FILE: a <cpu>, a domain XML, capabilities or domain capabilities)
  cpu-models ARCH          the CPU models the hypervisor knows for ARCH
  vcpucount DOMAIN [--maximum|--active] [--live|--config|--current] [--guest]
                           the domain's vCPU counts (all four without an option)
  vcpupin DOMAIN [[--vcpu] N [[--cpulist] LIST]] [--live] [--config] [--current]
  emulatorpin DOMAIN [[--cpulist] LIST] [--live] [--config] [--current]
                           the host CPUs each vCPU (the emulator) may run on, or set them
  domblklist DOMAIN [--inactive] [--details] / domiflist DOMAIN [--inactive]
                           the domain's disks / interfaces
  domif-getlink DOMAIN IFACE [--config] / domif-setlink DOMAIN IFACE up|down [--config]
      [--print-xml]        an interface's link (IFACE: its MAC address or host device)
  attach-disk DOMAIN SOURCE TARGET [--targetbus B] [--driver D] [--subdriver FMT]
      [--iothread N] [--cache C] [--io IO] [--type disk|cdrom|floppy|lun]
      [--mode readonly|shareable] [--sourcetype file|block|network] [--serial S]
      [--wwn W] [--alias A] [--rawio] [--address pci:D.B.S.F|scsi:C.B.U|ide:C.B.U|
      sata:C.B.U|usb:B.P|ccw:C.S.D] [--multifunction] [--source-protocol P]
      [--source-host-name H[:PORT]] [--source-host-transport T] [--source-host-socket S]
      [--print-xml] [--persistent] [--config] [--live] [--current]
  attach-interface DOMAIN TYPE SOURCE [--target DEV] [--mac MAC] [--script PATH]
      [--model M] [--alias A] [--inbound AVG[,PEAK[,BURST[,FLOOR]]]]
      [--outbound AVG[,PEAK[,BURST]]] [--managed] [--source-mode server|client]
      [--print-xml] [--persistent] [--config] [--live] [--current]
                           plug in the device XML virsh would build (or print it)
  detach-disk DOMAIN TARGET / detach-interface DOMAIN TYPE [--mac MAC]
      [--print-xml] [--persistent] [--config] [--live] [--current]
                           unplug the device as the domain's XML has it
  change-media DOMAIN PATH [SOURCE] [--eject|--insert|--update] [--block] [--force]
      [--print-xml] [--live] [--config] [--current]
                           change a CD-ROM's or floppy's media (PATH: target or source)
  desc DOMAIN [--title] [--live|--config|--current] [NEW-DESC...]
  metadata DOMAIN URI [--key K] [--set XML | --remove] [--live|--config|--current]
                           the title, description or an application's metadata, or set it
  qemu-agent-command DOMAIN [--timeout SECS|--async|--block] [--pretty] CMD...
  guestinfo DOMAIN [--user] [--os] [--timezone] [--hostname] [--filesystem] [--disk]
      [--interface]        what the guest agent tells of the guest
  domfsfreeze DOMAIN [MOUNTPOINT...] / domfsthaw DOMAIN [MOUNTPOINT...] / domfsinfo DOMAIN
  set-user-password DOMAIN USER PASSWORD [--encrypted]
  domtime DOMAIN [--pretty] | [--now|--sync|--time SECS]
  domhostname DOMAIN [--source agent|lease]
  screenshot DOMAIN [[--file] FILE] [--screen N]
  domdisplay DOMAIN [--type T|--all] [--include-password] / vncdisplay DOMAIN
                           where a viewer connects to the running domain
  secret-define FILE       define or redefine a secret from an XML file
  secret-undefine SECRET   remove a secret
  secret-list [--ephemeral] [--no-ephemeral] [--private] [--no-private]
                           list secrets
  secret-dumpxml SECRET    the secret's XML
  secret-set-value SECRET (--file FILE [--plain] | --base64 VALUE)
                           set the secret's value (from a file: base64, or raw with --plain)
  secret-get-value [--plain] SECRET
                           the secret's value, base64 (or raw with --plain)
  pool-list [--all] [--inactive] [--name]     pool-info POOL     pool-dumpxml POOL
  pool-define FILE / pool-create FILE / pool-define-as NAME TYPE [--target DIR]
      [--source-dev DEV] [--source-name VG] [--source-format FMT] / pool-create-as …
  pool-build [--overwrite] POOL / pool-start POOL / pool-destroy POOL / pool-delete POOL
  pool-undefine POOL / pool-refresh POOL / pool-autostart [--disable] POOL
  vol-list POOL   vol-info VOL   vol-dumpxml VOL   vol-path VOL   (VOL: --pool P NAME, or a path)
  vol-create POOL FILE / vol-create-as POOL NAME SIZE [--format F] [--allocation SIZE]
      [--backing-vol VOL] [--backing-vol-format F]
  vol-clone VOL NEWNAME / vol-resize VOL SIZE [--shrink] [--delta] / vol-delete VOL
  vol-wipe VOL [--algorithm zero|nnsa|dod|bsi|gutmann|schneier|pfitzner7|pfitzner33|random|trim]
  vol-upload VOL FILE [--sparse] [--offset N] / vol-download VOL FILE [--sparse] [--offset N]
      [--length N]       (a progress bar on a terminal)
  net-list [--all] [--inactive] [--persistent] [--transient] [--autostart]
      [--no-autostart] [--name | --uuid | --table]
  net-info NET / net-uuid NAME / net-name UUID / net-dumpxml [--inactive] NET
  net-define FILE / net-create FILE (both [--validate]) / net-start NET / net-destroy NET
  net-undefine NET / net-autostart [--disable] NET
  net-update NET COMMAND SECTION XML [--parent-index N] [--live] [--config] [--current]
      COMMAND: add|add-last|add-first|modify|delete; SECTION: bridge|domain|ip|
      ip-dhcp-host|ip-dhcp-range|forward|forward-interface|forward-pf|portgroup|
      dns-host|dns-txt|dns-srv; XML: the element (starting with '<') or a file holding it
  net-dhcp-leases NET [--mac MAC]
  net-port-list NET [--uuid] / net-port-create NET FILE / net-port-dumpxml NET PORT
  net-port-delete NET PORT
  net-event [NET] (--list | --event lifecycle [--loop] [--timeout SECS] [--timestamp])
  nodedev-list [--tree | --cap CAP[,CAP…]] [--inactive | --all]
                           the host's devices (CAP: system, pci, usb_device, usb, net,
                           scsi_host, scsi_target, scsi, storage, scsi_generic, drm,
                           mdev_types, mdev, fc_host, vports, …)
  nodedev-dumpxml DEVICE   a device's XML (DEVICE: a name, or WWNN,WWPN of a SCSI host)
  nodedev-event [DEVICE] (--list | --event lifecycle|update [--loop] [--timeout SECS]
      [--timestamp])
  nodedev-info DEVICE / nodedev-detach DEVICE [--driver vfio] / nodedev-reattach DEVICE
  nodedev-reset DEVICE     PCI devices for VMs and back
  nodedev-create FILE / nodedev-define FILE (both [--validate]) / nodedev-start DEVICE
  nodedev-destroy DEVICE / nodedev-undefine DEVICE / nodedev-autostart [--disable] DEVICE
                           mediated devices (<capability type='mdev'>)
  nwfilter-list / nwfilter-define FILE [--validate] / nwfilter-undefine FILTER
  nwfilter-dumpxml FILTER
  nwfilter-binding-list / nwfilter-binding-create FILE [--validate]
  nwfilter-binding-delete PORTDEV / nwfilter-binding-dumpxml PORTDEV
  iface-list [--all | --inactive] / iface-dumpxml [--inactive] IFACE
  iface-define FILE [--validate] / iface-undefine IFACE / iface-start IFACE
  iface-destroy IFACE      (exits 1 after it worked, as virsh 9 does)
  iface-mac NAME / iface-name MAC / iface-begin / iface-commit / iface-rollback
  admin-metrics            the daemon's metrics (Prometheus text), from its admin socket
DOMAIN is a name, a UUID or an id; SECRET is a UUID; POOL, NET and FILTER a name or a
UUID; PORT a UUID; IFACE a host interface's name or MAC address; PORTDEV the host-side
device of a guest interface (e.g. vnet0); SNAP a snapshot's name; DISK a disk's target
(vda) or image; N MiB/s, or bytes/s with --bytes, or a size with its unit (10M).";

/// The command line: the global options, then a command with its own arguments, which
/// its module reads as virsh does (virsh's messages for what it refuses); `completion`
/// prints a shell's completion script.
fn cli() -> clap::Command {
    use clap::{Arg, ArgAction, Command};
    Command::new("vireo")
        .about("A virsh-compatible command line for Vireo (and libvirt) daemons")
        .version(env!("CARGO_PKG_VERSION"))
        .override_usage("vireo [-c URI] [-r] COMMAND [ARGS...]")
        .disable_version_flag(true)
        .arg(
            Arg::new("connect")
                .short('c')
                .long("connect")
                .value_name("URI")
                .help(
                    "connect to URI (default: $VIREO_DEFAULT_URI, $LIBVIRT_DEFAULT_URI, \
                     or qemu:///system as root, qemu:///session otherwise)",
                ),
        )
        .arg(
            Arg::new("readonly")
                .short('r')
                .long("readonly")
                .action(ArgAction::SetTrue)
                .help("connect read-only"),
        )
        .arg(
            Arg::new("version")
                .short('v')
                .long("version")
                .action(ArgAction::Version)
                .help("print the version"),
        )
        .subcommand(
            Command::new("completion")
                .about("print the completion script for a shell")
                .arg(
                    Arg::new("shell")
                        .required(true)
                        .value_parser(["bash", "zsh"]),
                ),
        )
        .allow_external_subcommands(true)
        .external_subcommand_value_parser(clap::value_parser!(String))
        .after_help(COMMANDS_HELP)
}

/// The completion script for `shell`: every command and its options, from the table the
/// commands' parsers read.
fn completion(shell: &str, out: &mut dyn std::io::Write) {
    use clap_complete::Shell;
    let shell = if shell == "zsh" {
        Shell::Zsh
    } else {
        Shell::Bash
    };
    let mut cmd = table::clap_command(cli());
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut cmd, "vireo", &mut text);
    // Names (domains, networks, pools) come from vireo itself, which clap cannot ask.
    text.extend_from_slice(table::names_functions().as_bytes());
    text.extend_from_slice(match shell {
        Shell::Zsh => table::ZSH_NAMES.as_bytes(),
        _ => table::BASH_NAMES.as_bytes(),
    });
    let _ = out.write_all(&text);
}

fn main() -> ExitCode {
    vireo_rpc::keep_stream_buffers();
    let m = match cli().try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            use clap::error::ErrorKind;
            let _ = e.print();
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::FAILURE,
            };
        }
    };
    let args: Vec<String> = match m.subcommand() {
        Some(("completion", sub)) => {
            let shell = sub
                .get_one::<String>("shell")
                .map_or("bash", String::as_str);
            completion(shell, &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Some((cmd, sub)) => std::iter::once(cmd.to_string())
            .chain(sub.get_many::<String>("").into_iter().flatten().cloned())
            .collect(),
        None => {
            eprintln!("{}", cli().render_help());
            return ExitCode::FAILURE;
        }
    };
    let uri = m
        .get_one::<String>("connect")
        .cloned()
        .or_else(|| std::env::var("VIREO_DEFAULT_URI").ok())
        .or_else(|| std::env::var("LIBVIRT_DEFAULT_URI").ok())
        .unwrap_or_else(default_uri);
    let readonly = m.get_flag("readonly");
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(commands::run(&uri, readonly, &args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // virsh prints the failed action, then the daemon's reason, each on a line;
            // some failures it reports by the exit status alone.
            if e.downcast_ref::<network::Quiet>().is_some() {
                return ExitCode::FAILURE;
            }
            for cause in e.chain() {
                eprintln!("error: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn default_uri() -> String {
    let root = rustix::process::getuid().is_root();
    if root {
        "qemu:///system".into()
    } else {
        "qemu:///session".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    /// Runs `shell` with `script` on its standard input: (success, standard output).
    fn run_shell(shell: &str, args: &[&str], script: &[u8]) -> Option<(bool, String)> {
        let mut child = Command::new(shell)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        child.stdin.take()?.write_all(script).ok()?;
        let out = child.wait_with_output().ok()?;
        Some((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ))
    }

    fn script(shell: &str) -> Vec<u8> {
        let mut out = Vec::new();
        completion(shell, &mut out);
        out
    }

    #[test]
    fn the_command_line_is_consistent() {
        cli().debug_assert();
        table::clap_command(cli()).debug_assert();
    }

    #[test]
    fn bash_completes_commands_and_their_options() {
        let mut s = script("bash");
        let (ok, _) = run_shell("bash", &["-n"], &s).expect("bash runs");
        assert!(ok, "bash -n refuses the script");
        // As bash calls the function on <TAB>: the words so far, the one being completed.
        s.extend_from_slice(
            br#"
complete -p vireo >/dev/null || exit 3
COMP_WORDS=(vireo dom); COMP_CWORD=1
_vireo vireo dom vireo
echo "1: ${COMPREPLY[*]}"
COMP_WORDS=(vireo start --); COMP_CWORD=2
_vireo vireo -- start
echo "2: ${COMPREPLY[*]}"
COMP_WORDS=(vireo -c test:///default vol-upload --sp); COMP_CWORD=4
_vireo vireo --sp vol-upload
echo "3: ${COMPREPLY[*]}"
"#,
        );
        let (ok, out) = run_shell("bash", &[], &s).expect("bash runs");
        assert!(ok, "{out}");
        let line = |n: &str| -> Vec<String> {
            out.lines()
                .find_map(|l| l.strip_prefix(n))
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from)
                .collect()
        };
        let dom = line("1: ");
        for c in ["dominfo", "domstate", "domstats", "domifaddr", "domdisplay"] {
            assert!(dom.iter().any(|w| w == c), "{c} not in {dom:?}");
        }
        assert!(dom.iter().all(|w| w.starts_with("dom")), "{dom:?}");
        assert_eq!(line("2: "), ["--paused", "--force-boot"]);
        assert_eq!(line("3: "), ["--sparse"]);
    }

    #[test]
    fn bash_completes_names_from_vireo() {
        let mut s = script("bash");
        // vireo itself stands in: it says what it was asked, and names two things.
        s.extend_from_slice(
            br#"
vireo() { echo "$*" >>"$ASKED"; printf 'one\ntwo\n'; }
ASKED=$(mktemp)
try() {
    COMP_LINE=$2; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
    read -ra COMP_WORDS <<<"$COMP_LINE"; COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    [[ $COMP_LINE == *" " ]] && COMP_CWORD=${#COMP_WORDS[@]}
    _vireo_with_names vireo
    echo "$1: ${COMPREPLY[*]}"
}
try 1 "vireo -c test:///default start o"
try 2 "vireo net-start "
try 3 "vireo attach-disk --domain "
try 4 "vireo pool-info "
try 5 "vireo start --"
try 6 "vireo attach-disk vm1 --source "
try 7 "vireo list "
echo "asked: $(paste -sd'|' "$ASKED")"
rm -f "$ASKED"
"#,
        );
        let (ok, out) = run_shell("bash", &[], &s).expect("bash runs");
        assert!(ok, "{out}");
        let line = |n: &str| -> String {
            out.lines()
                .find_map(|l| l.strip_prefix(n))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        assert_eq!(line("1: "), "one");
        assert_eq!(line("2: "), "one two");
        assert_eq!(line("3: "), "one two");
        assert_eq!(line("4: "), "one two");
        assert_eq!(line("5: "), "--paused --force-boot");
        // A path and a command without a name to take: not names.
        assert!(!line("6: ").contains("one"), "{out}");
        assert!(!line("7: ").contains("one"), "{out}");
        assert_eq!(
            line("asked: "),
            "-c test:///default list --all --name|net-list --all --name|\
             list --all --name|pool-list --all --name"
        );
    }

    #[test]
    fn zsh_script_is_valid() {
        let s = script("zsh");
        let text = String::from_utf8_lossy(&s);
        assert!(text.starts_with("#compdef vireo"), "{text:.200}");
        assert!(text.contains("_vireo()"));
        assert!(text.contains("--paused") && text.contains("--force-boot"));
        assert!(text.contains("'net-list:") || text.contains("\"net-list:"));
        assert!(text.contains("compdef _vireo_with_names vireo"));
        // zsh itself checks the syntax where it is installed (scripts/install-deps brings
        // it); elsewhere the structure above is what is checked.
        match run_shell("zsh", &["-n"], &s) {
            Some((ok, _)) => assert!(ok, "zsh -n refuses the script"),
            None => {
                eprintln!("zsh is not installed: its checks skipped");
                return;
            }
        }
        // The names, as zsh runs the functions (compdef stands in for compinit's).
        let mut t = b"compdef() { :; }\n".to_vec();
        t.extend_from_slice(&s);
        t.extend_from_slice(
            br#"
vireo() { echo "asked $*"; printf 'one\ntwo\n'; }
_vireo_names vireo -c qemu:///system destroy
_vireo_names vireo net-info --network
_vireo_names vireo list || echo "no names"
"#,
        );
        let (ok, out) = run_shell("zsh", &[], &t).expect("zsh runs");
        assert!(ok, "{out}");
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            [
                "asked -c qemu:///system list --all --name",
                "one",
                "two",
                "asked net-list --all --name",
                "one",
                "two",
                "no names"
            ]
        );
    }
}
