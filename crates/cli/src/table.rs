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

/// What lists the names a command's first positional takes (a domain, a network, a
/// pool): the `vireo` command that prints them, one a line.
fn name_list(e: &Entry) -> Option<&'static str> {
    match e.positionals.first().copied() {
        Some("domain") => Some(DOMAINS),
        Some("network") => Some(NETWORKS),
        // The storage commands describe their pool as the option it may also be given as.
        None if e.name.starts_with("pool-") && e.valued.contains(&"--pool") => Some(POOLS),
        _ => None,
    }
}

const DOMAINS: &str = "list --all --name";
const NETWORKS: &str = "net-list --all --name";
const POOLS: &str = "pool-list --all --name";

/// Shell functions, for bash and zsh alike, that complete the names of domains, networks
/// and pools (a command's first positional, or the value of `--domain`, `--network`,
/// `--pool`) by asking `vireo` itself, on the URI the line gives with `-c`:
/// `_vireo_names WORDS…` takes the words before the one completed and prints the names,
/// or fails when that word is not a name. Appended to clap's scripts.
pub fn names_functions() -> String {
    let mut lists = String::new();
    let mut valued = String::new();
    for e in entries() {
        if let Some(l) = name_list(&e) {
            lists.push_str(&format!("        {}) echo '{l}' ;;\n", e.name));
        }
        if !e.valued.is_empty() {
            valued.push_str(&format!(
                "        {}) echo ' {} ' ;;\n",
                e.name,
                e.valued.join(" ")
            ));
        }
    }
    format!(
        r#"
# Names of domains, networks and pools, from vireo itself (not clap's).
_vireo_name_list() {{
    case "$1" in
{lists}    esac
}}

_vireo_valued() {{
    case "$1" in
{valued}    esac
}}

_vireo_names() {{
    local w cmd="" skip=0 pos=0 list="" prev=""
    local uri=""
    shift
    for w in "$@"; do
        if [ "$skip" = 1 ]; then
            skip=0
            [ "$prev" = "-c" ] || [ "$prev" = "--connect" ] && uri=$w
            prev=$w
            continue
        fi
        if [ -z "$cmd" ]; then
            case "$w" in
                -c|--connect) skip=1 ;;
                -*) ;;
                *) cmd=$w ;;
            esac
        else
            case "$(_vireo_valued "$cmd")" in
                *" $w "*) skip=1 ;;
                *) case "$w" in -*) ;; *) pos=$((pos + 1)) ;; esac ;;
            esac
        fi
        prev=$w
    done
    [ -n "$cmd" ] || return 1
    if [ "$skip" = 1 ]; then
        case "$prev" in
            --domain) list='{DOMAINS}' ;;
            --network) list='{NETWORKS}' ;;
            --pool) list='{POOLS}' ;;
            *) return 1 ;;
        esac
    elif [ "$pos" = 0 ]; then
        list=$(_vireo_name_list "$cmd")
    fi
    [ -n "$list" ] || return 1
    # eval: $list is one of the three commands above, split into words in either shell.
    if [ -n "$uri" ]; then
        eval "vireo -c \"\$uri\" $list" 2>/dev/null
    else
        eval "vireo $list" 2>/dev/null
    fi
}}
"#
    )
}

/// What bash needs besides clap's script: the names, then clap's completion.
pub const BASH_NAMES: &str = r#"
_vireo_with_names() {
    local line=${COMP_LINE:0:COMP_POINT} cur names
    local -a words
    read -ra words <<<"$line"
    if [[ $line == *[[:space:]] ]]; then cur=""; else cur=${words[-1]}; unset 'words[-1]'; fi
    if [[ $cur != -* ]] && names=$(_vireo_names "${words[@]}"); then
        COMPREPLY=($(compgen -W "$names" -- "$cur"))
        return 0
    fi
    _vireo "$@"
}
complete -F _vireo_with_names -o bashdefault -o default vireo
"#;

/// What zsh needs besides clap's script: the names, then clap's completion.
pub const ZSH_NAMES: &str = r#"
_vireo_with_names() {
    local names
    if [[ ${words[CURRENT]} != -* ]] && names=$(_vireo_names "${(@)words[1,CURRENT-1]}"); then
        compadd -- ${(f)names}
        return 0
    fi
    _vireo "$@"
}
compdef _vireo_with_names vireo
"#;

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
