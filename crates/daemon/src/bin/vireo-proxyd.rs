//! `vireo-proxyd`: the legacy socket, forwarding each call to its driver's daemon.
fn main() -> std::process::ExitCode {
    vireo_daemon::cmdline::main(vireo_daemon::role::Role::Proxy)
}
