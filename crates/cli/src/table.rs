//! Every command and its options, gathered from the one description each module keeps of
//! its own commands (`spec` or `options` there, which that module's parser reads): the
//! completions and `vireo help` are made from it, so they offer what the parser takes.

use crate::virsh::Spec;

/// One command: its switches (no value), valued options (`--opt VALUE`) and the names of
/// its positionals, in virsh's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub name: &'static str,
    pub switches: Vec<&'static str>,
    pub valued: Vec<&'static str>,
    pub positionals: Vec<&'static str>,
}

/// What a module says of one of its commands (the name is filled in by [`entries`]).
type Describe = fn(&str) -> Option<Entry>;

fn of_spec(sp: Option<Spec>) -> Option<Entry> {
    let sp = sp?;
    Some(Entry {
        name: "",
        switches: sp.switches.to_vec(),
        valued: sp.valued.to_vec(),
        positionals: sp.positionals.to_vec(),
    })
}

fn of_options(o: Option<(&[&'static str], &[&'static str])>) -> Option<Entry> {
    let (switches, valued) = o?;
    Some(Entry {
        name: "",
        switches: switches.to_vec(),
        valued: valued.to_vec(),
        positionals: Vec::new(),
    })
}

/// Each module's commands and where their description is.
fn modules() -> Vec<(&'static [&'static str], Describe)> {
    vec![
        (crate::commands::COMMANDS, |c| {
            of_spec(crate::commands::spec(c))
        }),
        (crate::secret::COMMANDS, |c| {
            of_options(crate::secret::options(c))
        }),
        (crate::storage::COMMANDS, |c| {
            of_options(crate::storage::options(c))
        }),
        (crate::network::NET_COMMANDS, |c| {
            of_spec(crate::network::spec(c))
        }),
        (crate::nodedev::COMMANDS, |c| {
            of_spec(crate::nodedev::spec(c))
        }),
        (crate::stats::COMMANDS, |c| {
            let (switches, valued) = crate::stats::options(c)?;
            of_options(Some((&switches, &valued)))
        }),
        (&crate::tuning::COMMANDS, |c| {
            of_options(crate::tuning::options(c))
        }),
        (&crate::save::COMMANDS, |c| {
            of_options(crate::save::options(c))
        }),
        (&crate::migrate::COMMANDS, |c| {
            let (switches, valued) = crate::migrate::options(c)?;
            of_options(Some((&switches, valued)))
        }),
        (&crate::snapshot::COMMANDS, |c| {
            of_spec(crate::snapshot::spec(c))
        }),
        (&crate::blockjob::COMMANDS, |c| {
            of_spec(crate::blockjob::spec(c))
        }),
        (&crate::iothread::COMMANDS, |c| {
            of_spec(crate::iothread::spec(c))
        }),
        (&crate::cpu::COMMANDS, |c| of_spec(crate::cpu::spec(c))),
        (&crate::agent::COMMANDS, |c| of_spec(crate::agent::spec(c))),
        (&crate::viewer::COMMANDS, |c| {
            of_spec(crate::viewer::spec(c))
        }),
        (&crate::metadata::COMMANDS, |c| {
            of_spec(crate::metadata::spec(c))
        }),
        (&crate::vcpu::COMMANDS, |c| of_spec(crate::vcpu::spec(c))),
        (&crate::devices::COMMANDS, |c| {
            of_spec(crate::devices::spec(c))
        }),
        (&crate::resources::COMMANDS, |c| {
            of_spec(crate::resources::spec(c))
        }),
        (crate::nwfilter::COMMANDS, |c| {
            of_spec(crate::nwfilter::spec(c))
        }),
        (crate::interface::COMMANDS, |c| {
            of_spec(crate::interface::spec(c))
        }),
        // admin-metrics takes no argument at all.
        (crate::metrics::COMMANDS, |_| Some(Entry::default())),
    ]
}

/// Every command, in the order of the modules, each with its options.
pub fn entries() -> Vec<Entry> {
    let mut out = Vec::new();
    for (names, describe) in modules() {
        for &name in names {
            if let Some(e) = describe(name) {
                out.push(Entry { name, ..e });
            }
        }
    }
    out
}

/// The command line as clap describes it, every command with its options: what the
/// completions are generated from.
pub fn clap_command(base: clap::Command) -> clap::Command {
    use clap::{Arg, ArgAction};
    let mut cmd = base;
    for e in entries() {
        let mut sub = clap::Command::new(e.name).disable_help_flag(true);
        let mut seen = std::collections::HashSet::new();
        for s in &e.switches {
            let long = s.trim_start_matches("--");
            if seen.insert(long) {
                sub = sub.arg(Arg::new(long).long(long).action(ArgAction::SetTrue));
            }
        }
        for v in &e.valued {
            let long = v.trim_start_matches("--");
            if seen.insert(long) {
                let arg = Arg::new(long).long(long).value_name("VALUE").num_args(1);
                sub = sub.arg(arg);
            }
        }
        cmd = cmd.subcommand(sub);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_described_once() {
        let mut names = std::collections::HashSet::new();
        for (list, describe) in modules() {
            for &n in list {
                assert!(describe(n).is_some(), "{n} has no description");
                assert!(names.insert(n), "{n} listed twice");
            }
        }
        for n in [
            "start",
            "list",
            "net-list",
            "pool-list",
            "vol-upload",
            "domstats",
        ] {
            assert!(names.contains(n), "{n}");
        }
    }

    #[test]
    fn an_entry_has_what_the_parser_takes() {
        let start = entries().into_iter().find(|e| e.name == "start").unwrap();
        assert_eq!(start.switches, ["--paused", "--force-boot"]);
        assert_eq!(start.positionals, ["domain"]);
        let vol = entries()
            .into_iter()
            .find(|e| e.name == "vol-upload")
            .unwrap();
        assert!(vol.valued.contains(&"--offset") && vol.switches.contains(&"--sparse"));
        let c = clap_command(clap::Command::new("vireo"));
        c.debug_assert();
    }
}
