//! virsh-style arguments: `--switch`, `--option VALUE`, and positionals (which may also be
//! given by name, `--pool default`).

use anyhow::{anyhow, bail, Result};

pub struct Args<'a> {
    cmd: &'a str,
    switches: Vec<&'a str>,
    values: Vec<(&'a str, &'a str)>,
    pos: Vec<&'a str>,
}

impl<'a> Args<'a> {
    /// `switches` take no value; `valued` take the next argument.
    pub fn parse(
        cmd: &'a str,
        rest: &'a [String],
        switches: &[&str],
        valued: &[&str],
    ) -> Result<Args<'a>> {
        let mut a = Args {
            cmd,
            switches: Vec::new(),
            values: Vec::new(),
            pos: Vec::new(),
        };
        let mut it = rest.iter().map(String::as_str);
        while let Some(x) = it.next() {
            // `--option=value`, as virsh takes it too.
            if let Some((k, v)) = x.split_once('=') {
                if k.starts_with("--") && valued.contains(&k) {
                    a.values.push((k, v));
                    continue;
                }
            }
            if !x.starts_with("--") {
                a.pos.push(x);
            } else if valued.contains(&x) {
                let v = it
                    .next()
                    .ok_or_else(|| anyhow!("option '{x}' requires an argument"))?;
                a.values.push((x, v));
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

    pub fn value(&self, k: &str) -> Option<&'a str> {
        self.values.iter().find(|(n, _)| *n == k).map(|(_, v)| *v)
    }

    /// The positional arguments, in order, given by name (`--NAME value`) or by place:
    /// `names` lists them; the first `required` must be there.
    pub fn positionals(&self, names: &[&str], required: usize) -> Result<Vec<Option<&'a str>>> {
        let mut pos = self.pos.iter();
        let mut out = Vec::with_capacity(names.len());
        let mut missing = Vec::new();
        for (i, n) in names.iter().enumerate() {
            let v = self
                .value(&format!("--{n}"))
                .or_else(|| pos.next().copied());
            if v.is_none() && i < required {
                missing.push(format!("command '{}' requires <{n}> option", self.cmd));
            }
            out.push(v);
        }
        // virsh names every missing option, each on a line of its own.
        if let Some(last) = missing.pop() {
            let mut e = anyhow!(last);
            while let Some(m) = missing.pop() {
                e = e.context(m);
            }
            return Err(e);
        }
        if let Some(x) = pos.next() {
            bail!("unexpected data '{x}'");
        }
        Ok(out)
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
        let rest = strings(&["a", "b"]);
        let a = Args::parse("net-info", &rest, &[], &[]).unwrap();
        let e = a.positionals(&["network"], 1).err().unwrap();
        assert_eq!(e.to_string(), "unexpected data 'b'");
    }
}
