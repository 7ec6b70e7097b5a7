//! Pipes handed to a child process. A process of its own: the fork here must not race the
//! unit tests that watch a socket close.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;

/// A pipe's bytes reach a child at the fd it is given, also when the pipe already has that
/// number (where dup2 alone would leave it closing on exec).
#[test]
fn a_pipe_reaches_a_child_at_its_own_number_too() {
    for same in [false, true] {
        let p = vireo_fdpass::pipe_with(b"secret bytes").unwrap();
        let raw = p.as_raw_fd();
        let to = if same { raw } else { 37 };
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c").arg(format!("cat /dev/fd/{to}"));
        // SAFETY: only inherit_as (fcntl, dup2) runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || vireo_fdpass::inherit_as(raw, to));
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.stdout, b"secret bytes", "same={same}: {out:?}");
    }
    assert!(
        vireo_fdpass::pipe_with(&vec![0u8; 1 << 20]).is_err(),
        "more than a pipe holds"
    );
}
