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
        for (i, n) in names.iter().enumerate() {
            let v = self
                .value(&format!("--{n}"))
                .or_else(|| pos.next().copied());
            if v.is_none() && i < required {
                bail!("command '{}' requires <{n}> option", self.cmd);
            }
            out.push(v);
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
