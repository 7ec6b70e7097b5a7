//! A port's `<bandwidth>` on its tap: inbound (to the guest, the tap's egress) shaped with
//! an HTB class (`tc`, average as rate, peak as ceiling, burst), outbound (from the guest,
//! the tap's ingress) limited with an nftables `netdev` table of the port's own
//! (`vireo-bw-PORT`, by the port's UUID: a tap's name may be another guest's by the time
//! the port is released; average as rate, burst), since this kernel has no tc police
//! action.
//! libvirt's units: KiB/s and KiB (tc's `kbps` and `kb`).

use vireo_xml::Bandwidth;

use crate::error::Result;
use crate::host::{run, run_with_input};

fn table(port: &[u8; 16]) -> String {
    let hex: String = port.iter().map(|b| format!("{b:02x}")).collect();
    format!("vireo-bw-{hex}")
}

/// Puts the limits of port `port` in place on `tap` (nothing for an empty bandwidth).
pub fn apply(port: &[u8; 16], tap: &str, bw: &Bandwidth) -> Result<()> {
    if let Some(r) = bw.inbound.as_ref().and_then(|r| r.average.map(|a| (a, r))) {
        let (avg, rate) = r;
        let ceil = rate.peak.unwrap_or(avg).max(avg);
        run(
            "tc",
            &[
                "qdisc", "replace", "dev", tap, "root", "handle", "1:", "htb", "default", "1",
            ],
        )?;
        let (rate_s, ceil_s) = (format!("{avg}kbps"), format!("{ceil}kbps"));
        let mut args = vec![
            "class", "replace", "dev", tap, "parent", "1:", "classid", "1:1", "htb", "rate",
            &rate_s, "ceil", &ceil_s,
        ];
        let burst;
        if let Some(b) = rate.burst {
            burst = format!("{b}kb");
            args.extend(["burst", &burst]);
        }
        run("tc", &args)?;
    }
    if let Some((avg, rate)) = bw.outbound.as_ref().and_then(|r| r.average.map(|a| (a, r))) {
        let t = table(port);
        let burst = rate.burst.unwrap_or(avg).max(1);
        let script = format!(
            "table netdev {t}\ndelete table netdev {t}\ntable netdev {t} {{\n  chain ingress {{\n    \
             type filter hook ingress device \"{tap}\" priority 0; policy accept;\n    \
             limit rate over {avg} kbytes/second burst {burst} kbytes drop\n  }}\n}}\n"
        );
        run_with_input("nft", &["-f", "-"], Some(&script))?;
    }
    Ok(())
}

/// Removes the port's outbound limit (the tap's qdiscs go with the tap).
pub fn remove(port: &[u8; 16]) {
    let t = table(port);
    let _ = run_with_input(
        "nft",
        &["-f", "-"],
        Some(&format!("table netdev {t}\ndelete table netdev {t}\n")),
    );
}
