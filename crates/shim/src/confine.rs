//! Once QEMU runs, the shim holds no privilege in effect: its effective capabilities are
//! empty, it can never gain any again (`PR_SET_NO_NEW_PRIVS`, and a bounding set of only
//! [`KEEP`]), and a seccomp filter of its own refuses (EPERM) the system calls a shim has
//! no business making: mounts and namespaces, module and kexec loading, ptrace and other
//! processes' memory, identity changes, clocks, keys, BPF, swap, reboot.
//!
//! A few things it does for the VM later need a capability, and only those stay
//! *permitted*: signalling and pinning a QEMU of another user (or of root's capabilities:
//! `CAP_KILL`, `CAP_SYS_NICE`), giving files to QEMU's user and back (`CAP_CHOWN`,
//! `CAP_FOWNER`), removing the VM's cgroup from a hierarchy root that only a capability
//! may change (`CAP_DAC_OVERRIDE`), raising QEMU's locked-memory limit for a VFIO device
//! plugged in (`CAP_SYS_RESOURCE`). [`privileged`] runs such an operation on a thread of
//! its own that raises them for its life alone: capabilities are per thread, so every
//! other thread, the one serving clients included, never has one in effect.
//!
//! The shim is single-threaded (a current-thread runtime) when it confines itself, so
//! dropping the main thread's capabilities drops the process's.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use rustix::thread::{CapabilitySet, CapabilitySets};

/// What stays permitted (never effective but in [`privileged`]).
const KEEP: CapabilitySet = CapabilitySet::CHOWN
    .union(CapabilitySet::FOWNER)
    .union(CapabilitySet::DAC_OVERRIDE)
    .union(CapabilitySet::KILL)
    .union(CapabilitySet::SYS_NICE)
    .union(CapabilitySet::SYS_RESOURCE);

/// Whether [`confine`] ran: before, every thread has its capabilities in effect.
static CONFINED: AtomicBool = AtomicBool::new(false);

/// The system calls refused after start.
#[cfg(target_arch = "x86_64")]
const REFUSED: &[i64] = &[
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_setns,
    libc::SYS_unshare,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_setuid,
    libc::SYS_setgid,
    libc::SYS_setreuid,
    libc::SYS_setregid,
    libc::SYS_setresuid,
    libc::SYS_setresgid,
    libc::SYS_setgroups,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_adjtimex,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_keyctl,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_acct,
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_open_by_handle_at,
];

/// Drops the shim's privileges (see the module's text). Called once QEMU runs. Refused,
/// with nothing changed, when the shim has more than one thread: capabilities are per
/// thread, and the others would keep theirs.
///
/// `qemu_uid` is the user QEMU runs as. The kernel sends QEMU its parent-death signal (the
/// shim's end is QEMU's) with the rights of the shim's thread as it ends, which then has
/// no capability in effect: a root shim could no longer signal a QEMU of another user.
/// The shim's real uid becomes QEMU's (its effective and saved uids stay root, and so do
/// its file rights and permitted capabilities), which lets that signal through.
pub fn confine(qemu_uid: Option<u32>) -> anyhow::Result<()> {
    let threads = std::fs::read_dir("/proc/self/task")
        .context("cannot count the shim's threads")?
        .count();
    if threads > 1 {
        anyhow::bail!("{threads} threads at confinement: the others would keep their capabilities");
    }
    if let Some(uid) = qemu_uid.filter(|&u| u != 0) {
        if rustix::process::getuid().is_root() {
            let uid = rustix::process::Uid::from_raw(uid);
            rustix::thread::set_thread_res_uid(uid, None, None)
                .context("cannot take QEMU's user as the shim's real uid")?;
        }
    }
    // The bounding set first: that needs CAP_SETPCAP, which goes next.
    for cap in CapabilitySet::all().difference(KEEP).iter() {
        let _ = rustix::thread::remove_capability_from_bounding_set(cap);
    }
    let have = rustix::thread::capabilities(None).context("capabilities")?;
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: CapabilitySet::empty(),
            permitted: have.permitted & KEEP,
            inheritable: CapabilitySet::empty(),
        },
    )
    .context("cannot drop capabilities")?;
    rustix::thread::set_no_new_privs(true).context("PR_SET_NO_NEW_PRIVS")?;
    filter()?;
    CONFINED.store(true, Ordering::SeqCst);
    Ok(())
}

/// Runs `f` with the permitted capabilities in effect, on a thread of its own (after
/// [`confine`]; before, on this one, which has them all).
pub fn privileged<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if !CONFINED.load(Ordering::SeqCst) {
        return f();
    }
    std::thread::scope(|s| {
        let t = s.spawn(|| {
            if let Ok(have) = rustix::thread::capabilities(None) {
                let _ = rustix::thread::set_capabilities(
                    None,
                    CapabilitySets {
                        effective: have.permitted,
                        ..have
                    },
                );
            }
            f()
        });
        match t.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

#[cfg(target_arch = "x86_64")]
fn program() -> anyhow::Result<seccompiler::BpfProgram> {
    use seccompiler::{SeccompAction, SeccompFilter, TargetArch};
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
        REFUSED.iter().map(|&n| (n, Vec::new())).collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        TargetArch::x86_64,
    )
    .context("seccomp filter")?;
    filter.try_into().context("seccomp filter")
}

#[cfg(target_arch = "x86_64")]
fn filter() -> anyhow::Result<()> {
    seccompiler::apply_filter_all_threads(&program()?).context("cannot apply the seccomp filter")
}

#[cfg(not(target_arch = "x86_64"))]
fn filter() -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_refused_calls_make_a_filter() {
        let p = program().expect("filter");
        assert!(p.len() > REFUSED.len());
    }

    #[test]
    fn refused_with_other_threads() {
        // The test harness runs this test on a thread of its own.
        let e = confine(None).expect_err("confined with several threads");
        assert!(e.to_string().contains("threads at confinement"), "{e}");
        assert!(!CONFINED.load(Ordering::SeqCst));
        let s = std::fs::read_to_string("/proc/self/status").expect("status");
        assert!(s.contains("NoNewPrivs:\t0"), "{s}");
    }

    #[test]
    fn unconfined_runs_in_place() {
        let here = std::thread::current().id();
        assert_eq!(privileged(|| std::thread::current().id()), here);
    }
}
