//! `vireo-storaged`: the daemon of one driver.
fn main() -> std::process::ExitCode {
    vireo_daemon::cmdline::main(vireo_daemon::role::Role::Driver(
        vireo_proto::family::Family::Storage,
    ))
}
