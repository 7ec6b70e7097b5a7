//! The daemon's log, steered by libvirt-style `log_filters` and `log_outputs` (from the
//! .conf, changed at run time through the admin program): priorities 1 debug, 2 info,
//! 3 warning, 4 error. A message passes if its priority reaches that of the first filter
//! whose name it contains (the crate and module it comes from, e.g. `rpc` or `qemu`), or
//! warning when no filter matches; then every output whose priority it reaches gets it.
//! `journald` and `syslog` outputs write to standard error, where systemd collects it.

use std::io::Write;
use std::sync::Arc;

use log::{Level, LevelFilter, Metadata, Record};

use crate::admin::LogSettings;

/// libvirt's default priority when no filter matches: warnings and errors.
const DEFAULT_PRIORITY: u8 = 3;

struct Logger {
    name: &'static str,
    settings: Arc<LogSettings>,
}

/// Installs the logger for this process (the first call wins).
pub fn init(name: &'static str, settings: Arc<LogSettings>) {
    if log::set_boxed_logger(Box::new(Logger { name, settings })).is_ok() {
        log::set_max_level(LevelFilter::Trace);
    }
}

fn priority(l: Level) -> u8 {
    match l {
        Level::Trace | Level::Debug => 1,
        Level::Info => 2,
        Level::Warn => 3,
        Level::Error => 4,
    }
}

/// The priority a message from `target` needs.
fn threshold(filters: &[String], target: &str) -> u8 {
    filters
        .iter()
        .filter_map(|f| {
            let (p, name) = f.split_once(':')?;
            let name = name.strip_prefix('+').unwrap_or(name);
            target.contains(name).then(|| p.parse().ok()).flatten()
        })
        .next()
        .unwrap_or(DEFAULT_PRIORITY)
}

impl log::Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        let (filters, _) = self.settings.parts();
        priority(m.level()) >= threshold(&filters, m.target())
    }

    fn log(&self, r: &Record) {
        let prio = priority(r.level());
        let (filters, outputs) = self.settings.parts();
        if prio < threshold(&filters, r.target()) {
            return;
        }
        let line = format!(
            "{}: {}: {}: {}\n",
            self.name,
            r.level(),
            r.target(),
            r.args()
        );
        for o in outputs {
            let mut parts = o.splitn(3, ':');
            let min: u8 = parts
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(DEFAULT_PRIORITY);
            if prio < min {
                continue;
            }
            match (parts.next(), parts.next()) {
                (Some("file"), Some(path)) => {
                    if let Ok(mut f) = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                    {
                        let _ = f.write_all(line.as_bytes());
                    }
                }
                _ => {
                    let _ = std::io::stderr().write_all(line.as_bytes());
                }
            }
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_filter_decides() {
        let f = vec!["1:rpc".to_string(), "4:vireo".to_string()];
        assert_eq!(threshold(&f, "vireo_rpc::server"), 1);
        assert_eq!(threshold(&f, "vireo_qemu::driver"), 4);
        assert_eq!(threshold(&f, "tokio"), DEFAULT_PRIORITY);
    }
}
