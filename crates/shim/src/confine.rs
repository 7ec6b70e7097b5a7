//! Once QEMU runs, the shim keeps no privilege it does not use: of the capabilities only
//! `CAP_SYS_NICE` (QEMU still runs as root, with root's capabilities, and the kernel lets a
//! process set another's CPU affinity only if it holds all the target's capabilities or
//! this one: the shim pins QEMU's threads), no way to gain any again
//! (`PR_SET_NO_NEW_PRIVS`: a later helper runs with none either), and a seccomp filter of
//! its own on every thread that refuses (EPERM) the system calls a shim has no business
//! making: mounts and namespaces, module and kexec loading, ptrace and other processes'
//! memory, identity changes, clocks, keys, BPF, swap, reboot.
//!
//! What the shim still does needs nothing else: it talks to QEMU over the monitor it
//! holds, signals the threads of a process of its own user, writes the VM's cgroup files
//! (its own), and gets every other file descriptor from the daemon. When QEMU gets a user
//! of its own, `CAP_SYS_NICE` goes too.

use std::collections::BTreeMap;

use anyhow::Context;
use rustix::thread::{CapabilitySet, CapabilitySets};

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

/// Drops the shim's privileges (see the module's text). Called once QEMU runs.
pub fn confine() -> anyhow::Result<()> {
    rustix::thread::set_no_new_privs(true).context("PR_SET_NO_NEW_PRIVS")?;
    let have = rustix::thread::capabilities(None).context("capabilities")?;
    let keep = have.permitted & CapabilitySet::SYS_NICE;
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: keep,
            permitted: keep,
            inheritable: CapabilitySet::empty(),
        },
    )
    .context("cannot drop capabilities")?;
    filter()
}

#[cfg(target_arch = "x86_64")]
fn filter() -> anyhow::Result<()> {
    use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
        REFUSED.iter().map(|&n| (n, Vec::new())).collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        TargetArch::x86_64,
    )
    .context("seccomp filter")?;
    let program: BpfProgram = filter.try_into().context("seccomp filter")?;
    seccompiler::apply_filter_all_threads(&program).context("cannot apply the seccomp filter")
}

#[cfg(not(target_arch = "x86_64"))]
fn filter() -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refused_calls_make_a_filter() {
        use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
        let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
            REFUSED.iter().map(|&n| (n, Vec::new())).collect();
        let f = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(1),
            TargetArch::x86_64,
        )
        .unwrap();
        let p: BpfProgram = f.try_into().unwrap();
        assert!(p.len() > REFUSED.len());
    }
}
