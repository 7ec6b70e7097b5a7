//! What virsh does alike in the snapshot and block job commands: the domain lookup and its
//! one-line failure, the refusal of an empty option value, a file read with virsh's
//! message, the XML escaping of what it puts into a document, the job progress line, and
//! the blank line it prints after every command it ran.

use std::io::Write;

use anyhow::{anyhow, bail, Result};
use vireo_client::{Connect, Domain};
pub(crate) use vireo_proto::error::os_text;

/// A command's switches, valued options, positionals (in virsh's order: every valued
/// option may be given by place), how many of those are required, and the option that
/// takes the positionals left over.
pub struct Spec {
    pub switches: &'static [&'static str],
    pub valued: &'static [&'static str],
    pub positionals: &'static [&'static str],
    pub required: usize,
    pub list: Option<&'static str>,
}

/// A command's spec without a list option.
pub fn s(
    switches: &'static [&'static str],
    valued: &'static [&'static str],
    positionals: &'static [&'static str],
    required: usize,
) -> Spec {
    Spec {
        switches,
        valued,
        positionals,
        required,
        list: None,
    }
}

/// A command's option reader: the value of each named positional (or its option).
pub type Opt<'x> = dyn Fn(&str) -> Option<&'x str> + 'x;

/// A command line read by its [`Spec`]: the arguments, each named positional, and the
/// values of the list option.
pub struct Parsed<'a> {
    pub args: crate::args::Args<'a>,
    names: &'static [&'static str],
    pos: Vec<Option<&'a str>>,
    /// Each value of the spec's list option (and each positional left over), in order.
    pub list: Vec<&'a str>,
}

impl<'a> Parsed<'a> {
    /// Missing and extra arguments are refused here, before anything runs, as virsh does.
    pub fn new(cmd: &'a str, rest: &'a [String], sp: &Spec) -> Result<Parsed<'a>> {
        let args = crate::args::Args::parse_with_list(cmd, rest, sp.switches, sp.valued, sp.list)?;
        let (pos, list) = args.positionals_and_list(sp.positionals, sp.required)?;
        Ok(Parsed {
            args,
            names: sp.positionals,
            pos,
            list,
        })
    }

    /// The value of positional `name`.
    pub fn opt(&self, name: &str) -> Option<&'a str> {
        self.names
            .iter()
            .position(|p| *p == name)
            .and_then(|i| self.pos.get(i).copied().flatten())
    }

    /// Whether option `name` was given (a switch, a valued option, or by place).
    pub fn present(&self, name: &str) -> bool {
        let flag = format!("--{name}");
        self.args.has(&flag) || self.args.value(&flag).is_some() || self.opt(name).is_some()
    }

    /// virsh's refusal of two options given together, for each pair in turn.
    pub fn exclusive(&self, pairs: &[(&str, &str)]) -> Result<()> {
        for (x, y) in pairs {
            if self.present(x) && self.present(y) {
                bail!("Options --{x} and --{y} are mutually exclusive");
            }
        }
        Ok(())
    }

    /// virsh's refusal of an option given without the one it needs: `(option, needed)`.
    pub fn requires(&self, pairs: &[(&str, &str)]) -> Result<()> {
        for (x, needed) in pairs {
            if self.present(x) && !self.present(needed) {
                bail!("Option --{needed} is required by option --{x}");
            }
        }
        Ok(())
    }

    /// The value of option `name` (by place, or `--name value`), refused when empty.
    pub fn string(&self, name: &str) -> Result<Option<&'a str>> {
        let v = self
            .opt(name)
            .or_else(|| self.args.value(&format!("--{name}")));
        given(name, v)
    }
}

/// The connection a command runs on, with virsh's message when there is none.
/// A command of a module whose options `spec` describes: its words read (missing and
/// extra ones refused before anything runs, as virsh does), and the connection it runs on.
pub async fn begin<'a>(
    uri: &str,
    readonly: bool,
    cmd: &'a str,
    rest: &'a [String],
    spec: fn(&str) -> Option<Spec>,
) -> Result<(Parsed<'a>, Connect)> {
    let sp = spec(cmd).ok_or_else(|| anyhow!("unknown command: '{cmd}'"))?;
    let p = Parsed::new(cmd, rest, &sp)?;
    Ok((p, connect(uri, readonly).await?))
}

pub async fn connect(uri: &str, readonly: bool) -> Result<Connect> {
    use anyhow::Context;
    Connect::open(uri, readonly)
        .await
        .context("failed to connect to the hypervisor")
}

/// The domain `key` names (id, UUID or name). virsh drops the daemon's reason and says
/// only this.
pub async fn domain(c: &Connect, key: Option<&str>) -> Result<Domain> {
    let key = given("domain", key)?.unwrap_or_default();
    c.lookup(key)
        .await
        .map_err(|_| anyhow!("failed to get domain '{key}'"))
}

/// An option's value, refused when given empty (as virsh refuses most of them).
pub fn given<'a>(name: &str, v: Option<&'a str>) -> Result<Option<&'a str>> {
    match v {
        Some("") => bail!("Failed to get option '{name}': Option argument is empty"),
        v => Ok(v),
    }
}

/// A file's text, or virsh's message naming the file and the system's reason.
pub fn read_file(path: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| anyhow!("Failed to open file '{path}': {}", os_text(&e)))
}

/// Escapes `s` for element text or a single-quoted attribute, as virsh does: the five
/// markup characters as entities, tabs and line ends kept, other control characters
/// dropped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            '\t' | '\n' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

/// A job's progress as virsh shows it on stderr: `\rLABEL: [ 42 %]`, 100 only once
/// nothing remains.
pub fn progress(label: &str, remaining: u64, total: u64) {
    let pct = if remaining == 0 {
        100
    } else {
        // In floating point, as virsh computes it (no overflow, truncated).
        let p = (100.0 - remaining as f64 * 100.0 / total as f64) as i32;
        p.min(99)
    };
    let _ = std::io::stdout().flush();
    let mut err = std::io::stderr();
    let _ = write!(err, "\r{label}: [{pct:3} %]");
    let _ = err.flush();
}

/// After a command's body (`r`, what it came to): the blank line virsh ends every command
/// it ran with, whether it worked or not; then the connection is closed.
pub async fn finish(c: Connect, r: Result<()>) -> Result<()> {
    println!();
    let _ = c.close().await;
    r
}

/// A time broken down into its calendar fields, as `struct tm` has them (`year` in full,
/// `month` from 1) with the offset from UTC in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tm {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub min: u32,
    pub sec: u32,
    pub gmtoff: i32,
}

fn broken_down<Z: chrono::TimeZone>(t: chrono::DateTime<Z>) -> Tm {
    use chrono::{Datelike, Offset, Timelike};
    Tm {
        year: t.year(),
        month: t.month(),
        day: t.day(),
        hour: t.hour(),
        min: t.minute(),
        sec: t.second(),
        gmtoff: t.offset().fix().local_minus_utc(),
    }
}

/// The broken-down local time of `secs` since the epoch (None when out of range).
pub fn local_tm(secs: i64) -> Option<Tm> {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_opt(secs, 0)
        .earliest()
        .map(broken_down)
}

/// The broken-down UTC time of `secs` since the epoch.
pub fn utc_tm(secs: i64) -> Option<Tm> {
    chrono::DateTime::from_timestamp(secs, 0).map(broken_down)
}

/// `tm` as `YYYY-MM-DD{sep}HH:MM:SS`.
pub fn tm_text(tm: &Tm, sep: char) -> String {
    format!(
        "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}",
        tm.year, tm.month, tm.day, tm.hour, tm.min, tm.sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_as_virsh_escapes() {
        assert_eq!(escape("a'b<c>&\"d"), "a&apos;b&lt;c&gt;&amp;&quot;d");
        assert_eq!(escape("x\ny\u{1}z"), "x\nyz");
    }

    #[test]
    fn empty_values_are_refused_by_name() {
        assert_eq!(given("name", Some("a")).unwrap(), Some("a"));
        assert_eq!(given("name", None).unwrap(), None);
        let e = given("name", Some("")).err().unwrap();
        assert_eq!(
            e.to_string(),
            "Failed to get option 'name': Option argument is empty"
        );
    }

    #[test]
    fn unreadable_files_are_named() {
        let e = read_file("/nonexistent/x.xml").err().unwrap();
        assert_eq!(
            e.to_string(),
            "Failed to open file '/nonexistent/x.xml': No such file or directory"
        );
    }
}
