//! `vireod`: the monolithic daemon, every driver in one process.
fn main() -> std::process::ExitCode {
    vireo_daemon::cmdline::main(vireo_daemon::role::Role::Monolithic)
}
