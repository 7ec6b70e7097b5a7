//! virsh-style arguments: `--switch`, `--option VALUE`, and positionals (which may also be
//! given by name, `--pool default`).

use anyhow::{anyhow, bail, Result};

/// The valued options virsh takes as integers (the others it takes as strings): its
/// message for a missing value names the type, and a required one missing is named
/// `--NAME`, not `<NAME>`.
const NUMERIC: &[&str] = &[
    "--parent-index",
    "--timeout",
    "--offset",
    "--length",
    "--bandwidth",
    "--granularity",
    "--buf-size",
    "--iothread",
    "--id",
    "--poll-max-ns",
    "--poll-grow",
    "--poll-shrink",
    "--thread-pool-min",
    "--thread-pool-max",
    "--hard-limit",
    "--soft-limit",
    "--swap-hard-limit",
    "--min-guarantee",
    "--weight",
    "--cap",
    "--vcpu",
    "--screen",
    "--time",
];

pub struct Args<'a> {
    cmd: &'a str,
    switches: Vec<&'a str>,
    values: Vec<(&'a str, &'a str)>,
    pos: Vec<&'a str>,
    /// Positionals (`None`) and valued options (`Some(name)`) in the order given.
    order: Vec<(Option<&'a str>, &'a str)>,
    /// The option that may be given many times and takes the positionals left over
    /// (virsh's `[--diskspec] <string>...`).
    list: Option<&'a str>,
}

impl<'a> Args<'a> {
    /// `switches` take no value; `valued` take the next argument.
    pub fn parse(
        cmd: &'a str,
        rest: &'a [String],
        switches: &[&str],
        valued: &[&str],
    ) -> Result<Args<'a>> {
        Args::parse_with_list(cmd, rest, switches, valued, None)
    }

    /// As [`Args::parse`], with `list` (one of `valued`) allowed many times: see
    /// [`Args::positionals_and_list`].
    pub fn parse_with_list(
        cmd: &'a str,
        rest: &'a [String],
        switches: &[&str],
        valued: &[&str],
        list: Option<&'a str>,
    ) -> Result<Args<'a>> {
        let mut a = Args {
            cmd,
            switches: Vec::new(),
            values: Vec::new(),
            pos: Vec::new(),
            order: Vec::new(),
            list,
        };
        let seen = |a: &Args, k: &str| a.list != Some(k) && (a.has(k) || a.value(k).is_some());
        let mut it = rest.iter().map(String::as_str);
        while let Some(x) = it.next() {
            // `--option=value`, as virsh takes it too.
            if let Some((k, v)) = x.split_once('=') {
                if k.starts_with("--") && valued.contains(&k) {
                    if seen(&a, k) {
                        bail!("option {k} already seen");
                    }
                    a.values.push((k, v));
                    a.order.push((Some(k), v));
                    continue;
                }
            }
            if !x.starts_with("--") {
                a.pos.push(x);
                a.order.push((None, x));
            } else if seen(&a, x) {
                bail!("option {x} already seen");
            } else if valued.contains(&x) {
                let v = it.next().ok_or_else(|| {
                    let kind = if NUMERIC.contains(&x) {
                        "number"
                    } else {
                        "string"
                    };
                    anyhow!("expected syntax: {x} <{kind}>")
                })?;
                a.values.push((x, v));
                a.order.push((Some(x), v));
            } else if switches.contains(&x) {
                a.switches.push(x);
            } else {
                bail!("command '{cmd}' doesn't support option {x}");
            }
        }
        Ok(a)
    }

    pub fn has(&self, s: &str) -> bool {
        self.switches.contains(&s)
    }

    /// The flags the switches given stand for, from `(switch, flag)` pairs.
    pub fn flags(&self, table: &[(&str, u32)]) -> u32 {
        table
            .iter()
            .filter(|(s, _)| self.has(s))
            .fold(0, |f, (_, bit)| f | bit)
    }

    pub fn value(&self, k: &str) -> Option<&'a str> {
        self.values.iter().find(|(n, _)| *n == k).map(|(_, v)| *v)
    }

    /// The positional arguments, in order, given by name (`--NAME value`) or by place:
    /// `names` lists them; the first `required` must be there.
    pub fn positionals(&self, names: &[&str], required: usize) -> Result<Vec<Option<&'a str>>> {
        Ok(self.positionals_and_list(names, required)?.0)
    }

    /// [`Args::positionals`], and the values of the list option: each `--LIST value` and
    /// each positional left over once `names` are all given, in the order given.
    pub fn positionals_and_list(
        &self,
        names: &[&str],
        required: usize,
    ) -> Result<(Vec<Option<&'a str>>, Vec<&'a str>)> {
        // As virsh assigns them, in the order given: a positional to the first of `names`
        // not given yet; `--NAME value` to its own, unless a positional took it before.
        let mut out: Vec<Option<&'a str>> = vec![None; names.len()];
        let mut list = Vec::new();
        for (k, v) in &self.order {
            if self.list.is_some() && *k == self.list {
                list.push(*v);
                continue;
            }
            let slot = match k {
                None => match out.iter().position(Option::is_none) {
                    Some(i) => i,
                    None if self.list.is_some() => {
                        list.push(*v);
                        continue;
                    }
                    None => bail!("unexpected data '{v}'"),
                },
                Some(k) => match names.iter().position(|n| k.strip_prefix("--") == Some(n)) {
                    Some(i) if out[i].is_some() => bail!("option {k} already seen"),
                    Some(i) => i,
                    None => continue,
                },
            };
            out[slot] = Some(v);
        }
        // virsh names every missing option, each on a line of its own: a number by its
        // option, the others as data.
        let mut missing: Vec<String> = names
            .iter()
            .zip(&out)
            .take(required)
            .filter(|(_, v)| v.is_none())
            .map(|(n, _)| {
                if NUMERIC.iter().any(|o| o.strip_prefix("--") == Some(n)) {
                    format!("command '{}' requires --{n} option", self.cmd)
                } else {
                    format!("command '{}' requires <{n}> option", self.cmd)
                }
            })
            .collect();
        if let Some(last) = missing.pop() {
            let mut e = anyhow!(last);
            while let Some(m) = missing.pop() {
                e = e.context(m);
            }
            return Err(e);
        }
        Ok((out, list))
    }

    /// Every positional argument, in order (for commands that take a list).
    pub fn all_positionals(&self) -> &[&'a str] {
        &self.pos
    }

    /// The one positional argument (or `--NAME value`).
    pub fn one(&self, name: &str) -> Result<&'a str> {
        Ok(self.positionals(&[name], 1)?[0].unwrap_or_default())
    }

    /// No positional argument.
    pub fn none(&self) -> Result<()> {
        match self.pos.first() {
            Some(x) => bail!("unexpected data '{x}'"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_take_their_value_after_a_space_or_an_equals_sign() {
        let rest = strings(&["--mac=52:54:00:00:00:01", "--network", "n", "--all"]);
        let a = Args::parse("x", &rest, &["--all"], &["--network", "--mac"]).unwrap();
        assert_eq!(a.value("--mac"), Some("52:54:00:00:00:01"));
        assert_eq!(a.one("network").unwrap(), "n");
        assert!(a.has("--all"));
        let rest = strings(&["--mac"]);
        let e = Args::parse("x", &rest, &[], &["--mac"]).err().unwrap();
        assert_eq!(e.to_string(), "expected syntax: --mac <string>");
        let rest = strings(&["--timeout"]);
        let e = Args::parse("x", &rest, &[], &["--timeout"]).err().unwrap();
        assert_eq!(e.to_string(), "expected syntax: --timeout <number>");
        let rest = strings(&["--all=yes"]);
        let e = Args::parse("x", &rest, &["--all"], &[]).err().unwrap();
        assert_eq!(
            e.to_string(),
            "command 'x' doesn't support option --all=yes"
        );
    }

    #[test]
    fn every_missing_argument_is_named() {
        let rest = strings(&["n", "add"]);
        let a = Args::parse("net-update", &rest, &[], &[]).unwrap();
        let e = a
            .positionals(&["network", "command", "section", "xml"], 4)
            .err()
            .unwrap();
        let lines: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        assert_eq!(
            lines,
            [
                "command 'net-update' requires <section> option",
                "command 'net-update' requires <xml> option"
            ]
        );
        let rest = strings(&[]);
        let a = Args::parse("iothreadpin", &rest, &[], &["--iothread"]).unwrap();
        let e = a
            .positionals(&["domain", "iothread", "cpulist"], 3)
            .err()
            .unwrap();
        let lines: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        assert_eq!(
            lines,
            [
                "command 'iothreadpin' requires <domain> option",
                "command 'iothreadpin' requires --iothread option",
                "command 'iothreadpin' requires <cpulist> option"
            ]
        );
        let rest = strings(&["a", "b"]);
        let a = Args::parse("net-info", &rest, &[], &[]).unwrap();
        let e = a.positionals(&["network"], 1).err().unwrap();
        assert_eq!(e.to_string(), "unexpected data 'b'");
    }

    #[test]
    fn the_list_option_repeats_and_takes_the_positionals_left_over() {
        let rest = strings(&["vm", "--diskspec", "vda", "n", "d", "vdb", "--diskspec=vdc"]);
        let a = Args::parse_with_list(
            "snapshot-create-as",
            &rest,
            &[],
            &["--name", "--description", "--diskspec"],
            Some("--diskspec"),
        )
        .unwrap();
        let (pos, list) = a
            .positionals_and_list(&["domain", "name", "description"], 1)
            .unwrap();
        assert_eq!(pos, [Some("vm"), Some("n"), Some("d")]);
        assert_eq!(list, ["vda", "vdb", "vdc"]);
    }

    #[test]
    fn options_and_positionals_fill_in_the_order_given() {
        let names = &["network", "port"][..];
        let rest = strings(&["--port", "p", "n"]);
        let a = Args::parse("x", &rest, &[], &["--network", "--port"]).unwrap();
        assert_eq!(a.positionals(names, 2).unwrap(), [Some("n"), Some("p")]);
        let rest = strings(&["n", "--network", "m"]);
        let a = Args::parse("x", &rest, &[], &["--network", "--port"]).unwrap();
        let e = a.positionals(names, 2).err().unwrap();
        assert_eq!(e.to_string(), "option --network already seen");
        let rest = strings(&["--network", "n", "p", "q"]);
        let a = Args::parse("x", &rest, &[], &["--network", "--port"]).unwrap();
        let e = a.positionals(names, 2).err().unwrap();
        assert_eq!(e.to_string(), "unexpected data 'q'");
        for twice in [&["--all", "--all"][..], &["--mac=a", "--mac", "b"]] {
            let rest = strings(twice);
            let e = Args::parse("x", &rest, &["--all"], &["--mac"])
                .err()
                .unwrap();
            assert!(e.to_string().ends_with("already seen"), "{e}");
        }
    }
}
