//! memtune, schedinfo and blkiotune, each printing what virsh prints for it: a domain's
//! memory limits, scheduler parameters and block I/O weight and per-device limits, read
//! (live or from the definition) or changed, with virsh's refusals in its order (sizes,
//! numbers and `--set name=value` read as virsh reads them) and the blank line after.

use anyhow::{anyhow, bail, Context, Result};
use vireo_client::{Connect, Domain};
use vireo_proto::remote::affect;
use vireo_proto::typed::{TypedParam, TypedValue};

use crate::args::Args;
use crate::cnum::{c_number, c_space, opt_int, CNumber};
use crate::iothread::affect_flags;
use crate::network::Quiet;
use crate::virsh::{begin, domain, finish, given, Opt, Spec};

pub const COMMANDS: [&str; 3] = ["memtune", "schedinfo", "blkiotune"];

/// libvirt's "no limit" of a memory parameter (KiB), which virsh shows as `unlimited`
/// and sends for a negative size.
const MEMORY_UNLIMITED: u64 = 9_007_199_254_740_991;

/// memtune's options and the parameters they set, in virsh's order.
const MEMORY_PARAMS: [(&str, &str); 4] = [
    ("hard-limit", "hard_limit"),
    ("soft-limit", "soft_limit"),
    ("swap-hard-limit", "swap_hard_limit"),
    ("min-guarantee", "min_guarantee"),
];

/// blkiotune's per-device options and the parameters they set, in virsh's order.
const BLKIO_DEVICE_PARAMS: [(&str, &str); 5] = [
    ("device-weights", "device_weight"),
    ("device-read-iops-sec", "device_read_iops_sec"),
    ("device-write-iops-sec", "device_write_iops_sec"),
    ("device-read-bytes-sec", "device_read_bytes_sec"),
    ("device-write-bytes-sec", "device_write_bytes_sec"),
];

pub(crate) fn spec(cmd: &str) -> Option<Spec> {
    const AFFECT: &[&str] = &["--config", "--live", "--current"];
    Some(match cmd {
        "memtune" => Spec {
            switches: AFFECT,
            valued: &[
                "--domain",
                "--hard-limit",
                "--soft-limit",
                "--swap-hard-limit",
                "--min-guarantee",
            ],
            positionals: &[
                "domain",
                "hard-limit",
                "soft-limit",
                "swap-hard-limit",
                "min-guarantee",
            ],
            required: 1,
            list: None,
        },
        // --weight and --cap are taken by name only; the positionals left over are --set.
        "schedinfo" => Spec {
            switches: AFFECT,
            valued: &["--domain", "--weight", "--cap", "--set"],
            positionals: &["domain"],
            required: 1,
            list: Some("--set"),
        },
        "blkiotune" => Spec {
            switches: AFFECT,
            valued: &[
                "--domain",
                "--weight",
                "--device-weights",
                "--device-read-iops-sec",
                "--device-write-iops-sec",
                "--device-read-bytes-sec",
                "--device-write-bytes-sec",
            ],
            positionals: &[
                "domain",
                "weight",
                "device-weights",
                "device-read-iops-sec",
                "device-write-iops-sec",
                "device-read-bytes-sec",
                "device-write-bytes-sec",
            ],
            required: 1,
            list: None,
        },
        _ => return None,
    })
}

pub async fn run(uri: &str, readonly: bool, cmd: &str, rest: &[String]) -> Result<()> {
    let (p, c) = begin(uri, readonly, cmd, rest, spec).await?;
    let (a, opt) = (&p.args, |name: &str| p.opt(name));
    let r = match cmd {
        "memtune" => memtune(&c, a, &opt).await,
        "schedinfo" => schedinfo(&c, a, &opt, &p.list).await,
        _ => blkiotune(&c, a, &opt).await,
    };
    finish(c, r).await
}

/// A parameter as virsh prints it: its name in 15 columns, then its value.
fn print_param(p: &TypedParam) {
    println!("{:<15}: {}", p.field, crate::stats::value_text(&p.value));
}

async fn memtune(c: &Connect, a: &Args<'_>, opt: &Opt<'_>) -> Result<()> {
    let flags = affect_flags(a)?;
    let d = domain(c, opt("domain")).await?;
    let mut params = Vec::new();
    for (name, field) in MEMORY_PARAMS {
        if let Some(v) = opt(name) {
            let kib = memtune_size(v).map_err(|why| {
                let head = format!("Unable to parse integer parameter {name}");
                match why {
                    Some(why) => anyhow!(why).context(head),
                    None => anyhow!(head),
                }
            })?;
            params.push(TypedParam::new(field, TypedValue::ULLong(kib)));
        }
    }
    if !params.is_empty() {
        c.set_memory_params(&d, &params, flags)
            .await
            .context("Unable to change memory parameters")?;
        return Ok(());
    }
    let (_, n) = c
        .memory_params(&d, 0, flags)
        .await
        .context("Unable to get number of memory parameters")?;
    if n == 0 {
        return Ok(());
    }
    let (list, _) = c
        .memory_params(&d, n, flags)
        .await
        .context("Unable to get memory parameters")?;
    for p in &list {
        match p.value {
            TypedValue::ULLong(MEMORY_UNLIMITED) => println!("{:<15}: unlimited", p.field),
            _ => print_param(p),
        }
    }
    Ok(())
}

async fn schedinfo(c: &Connect, a: &Args<'_>, opt: &Opt<'_>, set: &[&str]) -> Result<()> {
    let flags = affect_flags(a)?;
    let (live, config) = (a.has("--live"), a.has("--config"));
    // virsh asks with flags once any affect option is given, else with the calls of old.
    let with_flags = flags != affect::CURRENT || a.has("--current");
    // Both cannot be read at once: a change to both is read back from the current state.
    let read_flags = if live && config {
        affect::CURRENT
    } else {
        flags
    };
    let d = domain(c, opt("domain")).await?;
    let n = match c.scheduler_type(&d).await {
        Ok((kind, n)) => {
            println!("{:<15}: {kind}", "Scheduler");
            n
        }
        Err(e) => {
            println!("{:<15}: Unknown", "Scheduler");
            return Err(e.into());
        }
    };
    if n == 0 {
        // virsh fails here, saying nothing.
        return Err(Quiet.into());
    }
    let mut params = read_sched(c, &d, n, with_flags.then_some(read_flags)).await?;
    let updates = sched_updates(&params, a, set)?;
    if !updates.is_empty() {
        if with_flags {
            c.set_scheduler_params_flags(&d, &updates, flags).await?;
        } else {
            c.set_scheduler_params(&d, &updates).await?;
        }
        let n = i32::try_from(params.len()).unwrap_or(i32::MAX);
        params = read_sched(c, &d, n, with_flags.then_some(read_flags)).await?;
    } else if live && config {
        bail!("cannot query both live and config at once");
    }
    for p in &params {
        print_param(p);
    }
    Ok(())
}

/// The scheduler's parameters, with `flags` (GET_SCHEDULER_PARAMETERS_FLAGS) or without
/// (GET_SCHEDULER_PARAMETERS).
async fn read_sched(
    c: &Connect,
    d: &Domain,
    n: i32,
    flags: Option<u32>,
) -> Result<Vec<TypedParam>> {
    Ok(match flags {
        Some(f) => c.scheduler_params_flags(d, n, f).await?,
        None => c.scheduler_params(d, n).await?,
    })
}

/// The parameters `--set name=value` (each in turn), then `--cap` and `--weight` change,
/// each typed as the domain's parameter of that name is.
fn sched_updates(current: &[TypedParam], a: &Args, set: &[&str]) -> Result<Vec<TypedParam>> {
    let mut out = Vec::new();
    for s in set {
        let (field, value) = s
            .split_once('=')
            .ok_or_else(|| anyhow!("Invalid syntax for --set, expecting name=value"))?;
        out.push(sched_update(current, field, value)?);
    }
    for name in ["cap", "weight"] {
        if let Some(v) = given(name, a.value(&format!("--{name}")))? {
            out.push(sched_update(current, name, v)?);
        }
    }
    Ok(out)
}

fn sched_update(current: &[TypedParam], field: &str, value: &str) -> Result<TypedParam> {
    let p = current
        .iter()
        .find(|p| p.field == field)
        .ok_or_else(|| anyhow!("invalid scheduler option: {field}"))?;
    Ok(TypedParam::new(
        field,
        typed_from_str(field, &p.value, value)?,
    ))
}

/// `value` read as a parameter of `like`'s type, as libvirt's
/// `virTypedParamsAddFromString` reads it (base 10, the whole text), with its refusal.
fn typed_from_str(field: &str, like: &TypedValue, value: &str) -> Result<TypedValue> {
    let expected = |what: &str| {
        anyhow!("invalid argument: Invalid value for field '{field}': expected {what}")
    };
    let whole = |(v, end): (CNumber, usize)| (end == value.len()).then_some(v);
    let number = c_number(value.as_bytes(), 0).and_then(whole);
    Ok(match like {
        TypedValue::Int(_) => TypedValue::Int(
            number
                .and_then(CNumber::signed)
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(|| expected("int"))?,
        ),
        TypedValue::UInt(_) => TypedValue::UInt(
            number
                .and_then(CNumber::uint)
                .ok_or_else(|| expected("unsigned int"))?,
        ),
        TypedValue::LLong(_) => TypedValue::LLong(
            number
                .and_then(CNumber::signed)
                .ok_or_else(|| expected("long long"))?,
        ),
        TypedValue::ULLong(_) => TypedValue::ULLong(
            number
                .and_then(CNumber::unsigned)
                .ok_or_else(|| expected("unsigned long long"))?,
        ),
        TypedValue::Double(_) => TypedValue::Double(
            value
                .trim_start_matches(|c: char| c.is_ascii() && c_space(c as u8))
                .parse()
                .map_err(|_| expected("double"))?,
        ),
        TypedValue::Boolean(_) => {
            let is = |w: &str| value.eq_ignore_ascii_case(w);
            if is("true") || is("yes") || value == "1" {
                TypedValue::Boolean(true)
            } else if is("false") || is("no") || value == "0" {
                TypedValue::Boolean(false)
            } else {
                bail!("invalid argument: Invalid boolean value for field '{field}'");
            }
        }
        TypedValue::String(_) => TypedValue::String(value.to_string()),
    })
}

async fn blkiotune(c: &Connect, a: &Args<'_>, opt: &Opt<'_>) -> Result<()> {
    let flags = affect_flags(a)?;
    let d = domain(c, opt("domain")).await?;
    let mut params = Vec::new();
    if let Some(v) = opt("weight") {
        let w = opt_int("weight", v)?;
        let w = u32::try_from(w)
            .ok()
            .filter(|&w| w > 0)
            .ok_or_else(|| anyhow!("Invalid value of {w} for I/O weight"))?;
        params.push(TypedParam::uint("weight", w));
    }
    for (name, field) in BLKIO_DEVICE_PARAMS {
        match opt(name) {
            Some("") => bail!("Unable to parse string parameter"),
            Some(v) => params.push(TypedParam::string(field, v)),
            None => {}
        }
    }
    if !params.is_empty() {
        c.set_blkio_params(&d, &params, flags)
            .await
            .context("Unable to change blkio parameters")?;
        return Ok(());
    }
    let (_, n) = c
        .blkio_params(&d, 0, flags)
        .await
        .context("Unable to get number of blkio parameters")?;
    if n == 0 {
        return Ok(());
    }
    let (list, _) = c
        .blkio_params(&d, n, flags)
        .await
        .context("Unable to get blkio parameters")?;
    for p in &list {
        print_param(p);
    }
    Ok(())
}

/// A memtune size as virsh reads it: a number, negative for no limit, else with an
/// optional unit (KiB without one), in KiB rounded up. `Err(None)`: no number;
/// `Err(Some(reason))`: a bad unit or too large, in libvirt's words.
fn memtune_size(s: &str) -> std::result::Result<u64, Option<String>> {
    let (n, end) = c_number(s.as_bytes(), 0).ok_or(None)?;
    let v = n.signed().ok_or(None)?;
    if v < 0 {
        return Ok(MEMORY_UNLIMITED);
    }
    let bytes = scale(v.unsigned_abs(), &s[end..], 1024, i64::MAX.unsigned_abs())?;
    Ok(bytes.div_ceil(1024))
}

/// libvirt's `virScaleInteger`: `value` times the unit `suffix` names (`scale` without
/// one), at most `limit`.
fn scale(
    value: u64,
    suffix: &str,
    scale: u64,
    limit: u64,
) -> std::result::Result<u64, Option<String>> {
    let unknown = || Some(format!("invalid argument: unknown suffix '{suffix}'"));
    let lower = suffix.to_ascii_lowercase();
    let scale = if suffix.is_empty() {
        scale
    } else if matches!(lower.as_str(), "b" | "byte" | "bytes") {
        1
    } else {
        let b = lower.as_bytes();
        let base: u64 = match &b[1..] {
            [] | [b'i', b'b'] => 1024,
            [b'b'] => 1000,
            _ => return Err(unknown()),
        };
        let power = match b[0] {
            b'k' => 1,
            b'm' => 2,
            b'g' => 3,
            b't' => 4,
            b'p' => 5,
            b'e' => 6,
            _ => return Err(unknown()),
        };
        base.pow(power)
    };
    if value != 0 && value > limit / scale {
        return Err(Some(format!(
            "numerical overflow: value too large: {value}{suffix}"
        )));
    }
    Ok(value * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memtune_sizes_as_virsh_reads_them() {
        assert_eq!(memtune_size("1024"), Ok(1024));
        assert_eq!(memtune_size(" +5"), Ok(5));
        assert_eq!(memtune_size("2M"), Ok(2048));
        assert_eq!(memtune_size("10MiB"), Ok(10240));
        assert_eq!(memtune_size("10mb"), Ok(9766));
        assert_eq!(memtune_size("1b"), Ok(1));
        assert_eq!(memtune_size("1023bytes"), Ok(1));
        assert_eq!(memtune_size("1KB"), Ok(1));
        assert_eq!(memtune_size("1e"), Ok(1 << 50));
        assert_eq!(memtune_size("8191P"), Ok(8191 << 40));
        assert_eq!(memtune_size("-0"), Ok(0));
        assert_eq!(memtune_size("-1"), Ok(MEMORY_UNLIMITED));
        assert_eq!(memtune_size("-1x"), Ok(MEMORY_UNLIMITED));
        for bad in ["", " ", "abc", "-", "9999999999999999999"] {
            assert_eq!(memtune_size(bad), Err(None), "{bad:?}");
        }
        let unknown = |s: &str| Err(Some(format!("invalid argument: unknown suffix '{s}'")));
        assert_eq!(memtune_size("1x"), unknown("x"));
        assert_eq!(memtune_size("5 "), unknown(" "));
        assert_eq!(memtune_size("1.5"), unknown(".5"));
        assert_eq!(memtune_size("1kbb"), unknown("kbb"));
        assert_eq!(memtune_size("1é"), unknown("é"));
        assert_eq!(
            memtune_size("8E"),
            Err(Some("numerical overflow: value too large: 8E".into()))
        );
        assert_eq!(
            memtune_size("9223372036854775807"),
            Err(Some(
                "numerical overflow: value too large: 9223372036854775807".into()
            ))
        );
    }

    #[test]
    fn set_values_typed_as_the_parameters_are() {
        let ull = TypedValue::ULLong(0);
        let ll = TypedValue::LLong(0);
        let text = |r: Result<TypedValue>| r.unwrap_err().to_string();
        assert_eq!(
            typed_from_str("s", &ull, "+700").unwrap(),
            TypedValue::ULLong(700)
        );
        assert_eq!(
            typed_from_str("s", &ull, "-1").unwrap(),
            TypedValue::ULLong(u64::MAX)
        );
        assert_eq!(
            typed_from_str("q", &ll, " -5000").unwrap(),
            TypedValue::LLong(-5000)
        );
        assert_eq!(
            typed_from_str("q", &ll, "-9223372036854775808").unwrap(),
            TypedValue::LLong(i64::MIN)
        );
        assert_eq!(
            text(typed_from_str("cpu_shares", &ull, "abc")),
            "invalid argument: Invalid value for field 'cpu_shares': expected unsigned long long"
        );
        for bad in ["", "5 ", "0x10", "18446744073709551616"] {
            assert!(typed_from_str("s", &ull, bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            text(typed_from_str("q", &ll, "9223372036854775808")),
            "invalid argument: Invalid value for field 'q': expected long long"
        );
        let ui = TypedValue::UInt(0);
        assert_eq!(
            typed_from_str("w", &ui, "-1").unwrap(),
            TypedValue::UInt(u32::MAX)
        );
        assert!(typed_from_str("w", &ui, "4294967296").is_err());
        let i = TypedValue::Int(0);
        assert!(typed_from_str("w", &i, "2147483648").is_err());
        let b = TypedValue::Boolean(false);
        assert_eq!(
            typed_from_str("b", &b, "YES").unwrap(),
            TypedValue::Boolean(true)
        );
        assert_eq!(
            text(typed_from_str("b", &b, "2")),
            "invalid argument: Invalid boolean value for field 'b'"
        );
    }
}
